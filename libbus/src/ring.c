/* SPDX-License-Identifier: MIT */
/*
 * ring.c — finding records in a ring we do not write: the oldest intact one
 * and the newest visible one. Used by consumers (start positions, resync) and
 * by bus_topic_stat(). Every header read here may race with the producer
 * rewriting it; each is confirmed by a tail check after it (C2).
 */
#include "atomics.h"
#include "ring.h"

/*
 * The oldest intact record and its sequence number, consistently: either a
 * record at tail whose header we read before confirming tail did not move
 * (C2), or an empty ring (tail == head) where tail_seq is the next number
 * (T2: tail_seq is stored before tail, and cannot change while head == tail
 * because the producer only moves tail over published records).
 */
void ring_oldest(const struct seg *s, uint64_t *pos, uint64_t *seq, uint64_t *head)
{
	for (;;) {
		uint64_t t = at_load_acquire(&s->hdr->tail);     /* pairs with T2 */
		uint64_t ts = at_load_acquire(&s->hdr->tail_seq); /* pairs with T2 */
		uint64_t h = at_load_acquire(&s->hdr->head);     /* C1 */
		const struct rec_hdr *r;
		uint64_t rs;
		uint32_t len;

		if (h == t) {
			*pos = t;
			*seq = ts;
			*head = h;
			return;
		}
		r = ring_rec(s->ring, s->mask, t);
		rs = r->seq;
		len = r->len;
		at_fence_acquire(); /* C2 */
		/* A bad length with tail unchanged is corruption, not a race:
		 * take it, and let peek() report it. */
		(void)len;
		if (at_load_relaxed(&s->hdr->tail) == t) {
			*pos = t;
			*seq = rs;
			*head = h;
			return;
		}
		/* Lapped while we looked: try again from the new tail. */
	}
}

/* The newest visible record (position, seq, length), or 0 if none was ever
 * published or it is being overwritten. */
int ring_newest(const struct seg *s, uint64_t *pos, uint64_t *seq, uint64_t *size)
{
	/* `last` is stored after head (pub.c), so loading it first (acquire)
	 * guarantees the head we load next covers the record it names. head may
	 * be further (a later publish whose `last` we have not seen, or a
	 * producer that died between the two stores): walk from `last` to head. */
	uint64_t l = at_load_acquire(&s->hdr->last);
	uint64_t h = at_load_acquire(&s->hdr->head);  /* C1 */
	const struct rec_hdr *r;
	uint64_t rs, q = l;
	uint32_t len;
	int steps = 0;

	if (h == 0)
		return 0;
	for (;;) {
		r = ring_rec(s->ring, s->mask, q);
		rs = r->seq;
		len = r->len;
		if (len > s->g.max_event || q + rec_size(len) >= h || ++steps > 4096)
			break;
		q += rec_size(len);
	}
	at_fence_acquire(); /* C2, for every header read above */
	if (at_load_relaxed(&s->hdr->tail) <= l && len <= s->g.max_event &&
	    q + rec_size(len) == h) {
		*pos = q;
		*seq = rs;
		*size = rec_size(len);
		return 1;
	}
	/* `last` was overwritten (a fast producer, or a big record that
	 * invalidated the whole ring): walk from the oldest record instead. */
	for (steps = 0; steps < 16; steps++) {
		uint64_t t, ts, hh;

		ring_oldest(s, &t, &ts, &hh);
		if (t == hh)
			return 0;
		for (q = t, rs = ts;; q += rec_size(len), rs++) {
			r = ring_rec(s->ring, s->mask, q);
			len = r->len;
			if (len > s->g.max_event || q + rec_size(len) >= hh)
				break;
		}
		at_fence_acquire(); /* C2 */
		if (at_load_relaxed(&s->hdr->tail) > t)
			continue;
		if (len > s->g.max_event || q + rec_size(len) != hh)
			return 0;  /* corrupt: let the first read report it */
		*pos = q;
		*seq = rs;
		*size = rec_size(len);
		return 1;
	}
	return 0;
}

