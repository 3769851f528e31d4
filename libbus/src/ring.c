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

		/* A misaligned tail is corruption: do not read a header there;
		 * the first read at *pos reports it. */
		if (h == t || !rec_pos_ok(t)) {
			*pos = t;
			*seq = ts;
			*head = h;
			return;
		}
		r = ring_rec(s->ring, s->mask, t);
		rs = r->seq;
		at_fence_acquire(); /* C2 */
		/* Tail unchanged: the header was intact. (Its length is not
		 * checked here; a corrupt one is reported by the first read.) */
		if (at_load_relaxed(&s->hdr->tail) == t) {
			*pos = t;
			*seq = rs;
			*head = h;
			return;
		}
		/* Lapped while we looked: try again from the new tail. */
	}
}

int ring_walk(const struct seg *s, uint64_t *q, uint64_t *seq, uint64_t end,
	      uint64_t stop, uint32_t *len)
{
	for (;;) {
		const struct rec_hdr *r = ring_rec(s->ring, s->mask, *q);

		if (!rec_pos_ok(*q))
			return 0;
		*len = r->len;
		if (*len > s->g.max_event || r->seq != *seq)
			return 0;
		if (*seq >= stop || *q + rec_size(*len) >= end)
			return 1;
		*q += rec_size(*len);
		(*seq)++;
	}
}

/* The newest visible record (position, seq, record size), or 0 if none was
 * ever published or none is intact. */
int ring_newest(const struct seg *s, uint64_t *pos, uint64_t *seq, uint64_t *size)
{
	/* `last` is stored after head (pub.c), so loading it first (acquire)
	 * guarantees the head we load next covers the record it names. head may
	 * be further (a later publish whose `last` we have not seen, or a
	 * producer that died between the two stores): walk from `last` to head. */
	uint64_t l = at_load_acquire(&s->hdr->last);
	uint64_t h = at_load_acquire(&s->hdr->head);  /* C1 */
	uint64_t q = l, qs = 0, t, hh;
	uint32_t len = 0;
	int ok = 0, tries;

	if (h == 0)
		return 0;
	if (rec_pos_ok(l)) {  /* else walk from the oldest, below */
		qs = ring_rec(s->ring, s->mask, l)->seq;
		ok = ring_walk(s, &q, &qs, h, UINT64_MAX, &len);
	}
	at_fence_acquire(); /* C2, for every header read above */
	/* Otherwise `last` was overwritten (a fast producer, or a big record
	 * that invalidated the whole ring): walk from the oldest record. */
	for (tries = 0; !(ok && at_load_relaxed(&s->hdr->tail) <= l); tries++) {
		if (tries == 16)
			return 0;
		ring_oldest(s, &l, &qs, &hh);  /* l: where this walk starts */
		if (l == hh)
			return 0;
		q = l;
		h = hh;
		ok = ring_walk(s, &q, &qs, h, UINT64_MAX, &len);
		at_fence_acquire(); /* C2 */
		t = at_load_relaxed(&s->hdr->tail);
		if (t <= l && !ok)
			return 0;  /* intact but bad: corrupt; the first read reports it */
	}
	if (q + rec_size(len) != h)
		return 0;      /* corrupt, as above */
	*pos = q;
	*seq = qs;
	*size = rec_size(len);
	return 1;
}
