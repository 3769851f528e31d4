/* SPDX-License-Identifier: MIT */
/*
 * pub.c — the producer side of the ring (protocol in ring.h).
 *
 * The hot path (claim, commit, publish) does no system call, takes no lock
 * and formats nothing: a bounds check, the record writes, three stores to the
 * producer's own cache line, a compiler barrier and one load of a line that
 * changes only when a consumer is about to sleep.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "atomics.h"
#include "err.h"
#include "ring.h"
#include "wait.h"

#define DEFAULT_TIMEOUT_NS 1000000000ll

/* ------------------------------------------------------------------------ */
/* Attach and recovery                                                      */
/* ------------------------------------------------------------------------ */

/* A record starts at `pos` (sequence number `seq`); callers have checked
 * pos >= p->chunk_end: it is the first in its chunk, remember it. */
static void chunk_note(struct bus_pub *p, uint64_t pos, uint64_t seq)
{
	uint64_t c = pos >> p->chunk_shift;

	p->first[c & (CHUNK_TABLE - 1)] = (struct chunk_first){ pos, seq };
	p->chunk_end = (c + 1) << p->chunk_shift;
}

/* Write a record's header (the payload is in place already). len and type
 * go in one 8-byte store: rec_hdr has len at +0 and type at +4. */
static inline void rec_write(struct rec_hdr *r, uint64_t len, uint32_t type, uint64_t seq,
			     uint64_t ts)
{
	uint64_t lt = len | (uint64_t)type << 32;

	memcpy(r, &lt, sizeof(lt));
	r->seq = seq;
	r->ts_ns = ts;
}

/*
 * Find where the previous producer stopped. head and tail are authoritative
 * (the previous producer published them). One walk over [tail, head) checks
 * every record (length in bounds, sequence numbers consecutive, the last one
 * ending exactly at head), rebuilds the chunk table and finds the newest
 * record; the next sequence number is the newest one's + 1, or tail_seq when
 * the ring holds no record. A producer killed between claim and commit left
 * its bytes beyond head, where nobody looks. O(records in the ring), once
 * per producer open.
 */
static int pub_recover(struct bus_pub *p, const char *name)
{
	struct seg_hdr *h = p->hdr;
	uint64_t head = at_load_acquire(&h->head);  /* no other writer: lease held */
	uint64_t tail = at_load_acquire(&h->tail);
	uint64_t seq = at_load_acquire(&h->tail_seq);
	uint64_t q;

	if (tail > head || head - tail > p->cap || !rec_pos_ok(tail) || !rec_pos_ok(head))
		return bus_err(EPROTO, "topic '%s' is corrupt: tail %llu, head %llu", name,
			       (unsigned long long)tail, (unsigned long long)head);
	if (tail < head)  /* the record at tail knows its number */
		seq = ring_rec(p->ring, p->mask, tail)->seq;
	if (seq < p->seg.g.first_seq)
		return bus_err(EPROTO, "topic '%s' is corrupt: sequence %llu before the first, %llu",
			       name, (unsigned long long)seq,
			       (unsigned long long)p->seg.g.first_seq);
	p->tail = tail;
	p->tail_seq = seq;
	p->tail_limit = tail + p->cap;
	p->chunk_end = 0;
	p->last = head;
	for (q = tail; q < head; seq++) {
		const struct rec_hdr *r = ring_rec(p->ring, p->mask, q);

		if (r->len > p->max_event || r->seq != seq)
			return bus_err(EPROTO, "topic '%s' is corrupt: bad record at %llu", name,
				       (unsigned long long)q);
		if (q >= p->chunk_end)
			chunk_note(p, q, seq);
		p->last = q;
		q += rec_size(r->len);
	}
	if (q != head)
		return bus_err(EPROTO, "topic '%s' is corrupt: records overrun head", name);
	/* The previous producer may have died between its head store and its
	 * `last` store: make `last` exact again. */
	if (tail < head)
		at_store_release(&h->last, p->last);
	p->pos = p->published = head;
	p->seq = seq;
	p->bytes = at_load_relaxed(&h->bytes);
	p->waits = at_load_relaxed(&h->waits);
	p->wakeups = at_load_relaxed(&h->wakeups);
	return 0;
}

/* Everything after the segment is attached: the lease, recovery, clock. */
static int pub_start(struct bus_pub *p, const char *name, int64_t lock_wait_ns)
{
	uint64_t until = mono_ns() + (uint64_t)lock_wait_ns;
	int r;

	/* The lease: an exclusive lock on the open file, which the kernel
	 * drops when the holder exits, however it exits. */
	while (flock(p->seg.fd, LOCK_EX | LOCK_NB) < 0) {
		uint32_t pid = at_load_relaxed(&p->seg.hdr->pub_pid);

		if (errno == EWOULDBLOCK && mono_ns() < until) {
			struct timespec ts = { 0, 1000000 };

			nanosleep(&ts, NULL);
			continue;
		}
		if (errno == EWOULDBLOCK)
			return bus_err(EBUSY, "topic '%s' already has a producer (pid %u)", name, pid);
		return bus_err(errno, "cannot lock topic '%s': %s", name, strerror(errno));
	}
	p->hdr = p->seg.hdr;
	p->chdr = p->seg.chdr;
	p->ring = p->seg.ring;
	p->mask = p->seg.mask;
	p->cap = p->seg.g.ring_size;
	p->max_event = p->seg.g.max_event;
	p->chunk_shift = p->seg.g.chunk_shift;
	p->timeout_ns = DEFAULT_TIMEOUT_NS;
	if (at_load_relaxed(&p->hdr->state) != SEG_STATE_LIVE)
		return bus_err(EPIPE, "topic '%s' was deleted", name);
	r = pub_recover(p, name);
	if (r < 0)
		return r;
	clock_init(&p->clk);
	p->asym = membarrier_register();
	/* Published before the first head store (release) that consumers
	 * could pair with; consumers only use it to choose a fallback. */
	at_store_release(&p->hdr->pub_fence, p->asym ? FENCE_ASYM : FENCE_FULL);
	at_store_relaxed(&p->hdr->pub_pid, (uint32_t)getpid());
	at_store_relaxed(&p->hdr->pub_opens, at_load_relaxed(&p->hdr->pub_opens) + 1);
	return 0;
}

BUS_EXPORT int bus_pub_open(const char *name, struct bus_pub **out)
{
	struct bus_pub *p;
	int r;

	if (!out)
		return bus_err(EINVAL, "bus_pub_open: no result pointer");
	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return bus_err(ENOMEM, "out of memory");
	r = seg_attach(name, SEG_PRODUCER, &p->seg);
	if (r == 0)
		r = pub_start(p, name, 0);
	if (r < 0) {
		seg_detach(&p->seg);
		free(p);
		return r;
	}
	*out = p;
	bus_err_clear();
	return 0;
}

int pub_open_fds(const char *name, int fd, int cfd, int64_t lock_wait_ns, struct bus_pub **out)
{
	struct bus_pub *p = calloc(1, sizeof(*p));
	int r;

	*out = NULL;
	if (!p) {
		close(fd);
		close(cfd);
		return bus_err(ENOMEM, "out of memory");
	}
	r = seg_attach_fds(fd, cfd, name, SEG_PRODUCER, &p->seg);
	if (r == 0)
		r = pub_start(p, name, lock_wait_ns);
	if (r < 0) {
		seg_detach(&p->seg);
		free(p);
		return r;
	}
	*out = p;
	return 0;
}

BUS_EXPORT void bus_pub_close(struct bus_pub *p)
{
	if (!p)
		return;
	bus_pub_flush(p);
	at_store_relaxed(&p->hdr->pub_pid, 0);
	seg_detach(&p->seg); /* closing the fd releases the lease */
	if (p->link)
		client_release(p->link); /* ... and busd's (or busd notices) */
	free(p);
}

BUS_EXPORT uint64_t bus_pub_next_seq(const struct bus_pub *p)
{
	return p->seq;
}

BUS_EXPORT void bus_pub_set_timeout(struct bus_pub *p, int64_t timeout_ns)
{
	p->timeout_ns = timeout_ns < 0 ? INT64_MAX : timeout_ns;
}

/* ------------------------------------------------------------------------ */
/* Wakeups                                                                  */
/* ------------------------------------------------------------------------ */

void pub_wake(struct bus_pub *p)
{
	/* Pairs with W1 in the consumer: one that loads the new generation
	 * also sees the head stored before it. The RMW (not a plain store)
	 * because bus_topic_remove() bumps the word too. */
	at_fetch_add(&p->hdr->wake_gen, 1);
	futex_wake_all(&p->hdr->wake_gen);
	/* One writer (us): a plain increment, no RMW on the statistics. */
	at_store_relaxed(&p->hdr->wakeups, ++p->wakeups);
}

/* ------------------------------------------------------------------------ */
/* Gating: wait until gating consumers have read what we must overwrite     */
/* ------------------------------------------------------------------------ */

/* Lowest position of a live gating consumer, or UINT64_MAX. *who gets its
 * slot index. Dead owners (kill -9) do not gate: they will never read. */
static uint64_t gate_min(struct bus_pub *p, int check_alive, int *who, int *any_asym)
{
	uint64_t min = UINT64_MAX;
	uint32_t i;

	*any_asym = 0;
	for (i = 0; i < p->seg.g.nslots; i++) {
		struct cons_slot *s = &p->seg.slots[i];
		uint32_t owner = at_load_relaxed(&s->owner);
		uint32_t flags;
		uint64_t pos;

		if (!owner)
			continue;
		/* Acquire: pairs with the release store of flags at open, after
		 * which the slot's pos is the consumer's real position. */
		flags = at_load_acquire(&s->flags);
		if (!(flags & SLOT_GATING))
			continue;
		if (check_alive && !pid_alive(owner))
			continue;
		/* G3: pairs with G1 (the consumer's release store of pos): the
		 * bytes before pos are no longer read once we see it. */
		pos = at_load_acquire(&s->pos);
		if (pos < min) {
			min = pos;
			*who = (int)i;
		}
		*any_asym |= !!(flags & SLOT_ASYM);
	}
	return min;
}

/* Wait until every gating consumer is at or beyond `need`. Returns the lowest
 * gating position (>= need), or -EAGAIN after the timeout. */
static int64_t gate_wait(struct bus_pub *p, uint64_t need)
{
	uint64_t start = 0, now, min;
	int who = -1, asym, spins = 0, counted = 0;

	for (;;) {
		min = gate_min(p, start != 0, &who, &asym);
		if (min >= need)
			return (int64_t)(min > INT64_MAX ? INT64_MAX : min);
		if (!counted) {
			counted = 1;
			at_store_relaxed(&p->hdr->waits, ++p->waits);
		}
		if (spins++ < 2000) {
			at_cpu_relax();
			continue;
		}
		now = mono_ns();
		if (!start)
			start = now;
		if ((int64_t)(now - start) >= p->timeout_ns) {
			struct cons_slot *s = &p->seg.slots[who];

			return bus_err(EAGAIN, "gating consumer in slot %d (pid %u) has not read "
				       "sequence %llu after %lld ms; producer gave up",
				       who, at_load_relaxed(&s->owner),
				       (unsigned long long)at_load_relaxed(&s->seq),
				       (long long)(p->timeout_ns / 1000000));
		}
		/* Sleep on gate_gen: announce it (gate_req = gen), then G4, then
		 * look once more; a consumer that moves after G4 sees the request
		 * (G2 on its side) and bumps gate_gen. */
		uint32_t gen = at_load_acquire(&p->chdr->gate_gen);
		at_store_relaxed(&p->chdr->gate_req, gen);
		if (!asym || membarrier_heavy() < 0)
			at_fence_seq_cst();
		min = gate_min(p, 1, &who, &asym);
		if (min >= need)
			continue;
		/* Bounded sleeps: a consumer that registered no light side
		 * (asym == 0 and membarrier missing) is polled every 10 ms. */
		int64_t left = p->timeout_ns - (int64_t)(mono_ns() - start);
		futex_wait_shared(&p->chdr->gate_gen, gen, left < 10000000 ? left : 10000000);
	}
}

/*
 * Durable topics: the flusher (busd) reads [flushed, head) from the ring and
 * writes it to the log, so the tail must not pass `flushed` (invariant 6).
 * The same Dekker pattern as gating: F1, busd's release store of flushed
 * after its write completed, pairs with our acquire load (busd is done with
 * the bytes before it); to sleep we raise flush_req to the generation we
 * sleep on, fence (F2), and look again; busd fences after its store (F3)
 * and wakes flush_gen when it sees our request. Sleeps are bounded.
 */
static int pub_publish(struct bus_pub *p);

static int flush_wait_for(struct bus_pub *p, _Atomic uint64_t *word, uint64_t need,
			  int64_t timeout_ns, const char *what)
{
	uint64_t start = 0, now;
	int spins = 0, counted = 0, woke = 0;

	for (;;) {
		if (at_load_acquire(word) >= need)  /* F1 */
			return 0;
		if (at_load_relaxed(&p->hdr->state) != SEG_STATE_LIVE)
			return bus_err(EPIPE, "topic was deleted");
		if (!counted && word == &p->hdr->flushed) {
			counted = 1;
			at_store_relaxed(&p->hdr->waits, ++p->waits);
		}
		if (spins++ < 200) {
			at_cpu_relax();
			continue;
		}
		now = mono_ns();
		if (!start)
			start = now;
		if ((int64_t)(now - start) >= timeout_ns) {
			uint32_t st = at_load_relaxed(&p->hdr->flush_state);

			return bus_err(ETIMEDOUT, "durable topic: %s has not caught up after %lld ms "
				       "(%s); is busd running? the producer gave up waiting",
				       what, (long long)(timeout_ns / 1000000),
				       st == FLUSH_DEGRADED ? "busd reports its log writes failing, "
				       "e.g. a full disk: see busd's log" : "the flusher is behind");
		}
		uint32_t gen = at_load_acquire(&p->hdr->flush_gen);
		at_store_relaxed(&p->hdr->flush_req, gen);
		at_fence_seq_cst();                     /* F2: pairs with F3 */
		if (at_load_acquire(word) >= need)
			return 0;
		/* A flusher lingering over a small batch sleeps on wake_gen
		 * without asking for wakes; tell it, once per wait, that we
		 * are out of room (it then sees flush_req and writes now). */
		if (!woke) {
			woke = 1;
			pub_wake(p);
		}
		int64_t left = timeout_ns - (int64_t)(mono_ns() - start);
		futex_wait_shared(&p->hdr->flush_gen, gen, left < 100000000 ? left : 100000000);
	}
}

BUS_EXPORT int bus_pub_sync(struct bus_pub *p, uint64_t seq, int64_t timeout_ns)
{
	if (!(p->seg.g.flags & BUS_TOPIC_DURABLE))
		return bus_err(EINVAL, "bus_pub_sync: the topic is not durable");
	if (seq >= p->seq)
		return bus_err(EINVAL, "bus_pub_sync: sequence %llu was not published yet "
			       "(next is %llu)", (unsigned long long)seq, (unsigned long long)p->seq);
	pub_publish(p);
	return flush_wait_for(p, &p->hdr->durable_seq, seq + 1,
			      timeout_ns < 0 ? INT64_MAX : timeout_ns, "the log (busd)");
}

/* ------------------------------------------------------------------------ */
/* Publishing                                                               */
/* ------------------------------------------------------------------------ */

/*
 * Make everything committed up to `head` visible; `last` is the start of the
 * newest record. The hot path counts stores: while a consumer holds the head
 * line, every store the producer makes waits in the store buffer behind the
 * head store, and the fewer there are per event, the more events one line
 * transfer carries. Hence no per-publish bookkeeping beyond what is needed.
 */
static inline void pub_publish_to(struct bus_pub *p, uint64_t head, uint64_t last)
{
	/* P1: pairs with C1. Every record committed since the last publish
	 * becomes visible with this one store. */
	at_store_release(&p->hdr->head, head);
	/* After head, so that `last` never names a record that is not visible
	 * (a producer killed between the two stores leaves `last` one publish
	 * behind, which newest() walks past). Release: a consumer that loads
	 * `last` (acquire) then sees a head at least as far. `bytes` is a
	 * statistic: relaxed, one writer; all three on the same line. */
	at_store_release(&p->hdr->last, last);
	at_store_relaxed(&p->hdr->bytes, p->bytes);
	p->published = head;

	/* P2: head store before the wake_req load (pairs with W3). */
	if (likely(p->asym))
		at_compiler_barrier();
	else
		at_fence_seq_cst();
	/* Relaxed: only compared; W1/P1 order the data. A consumer asks for a
	 * wake by raising wake_req to the generation it sleeps on. */
	if (unlikely(at_load_relaxed(&p->chdr->wake_req) == at_load_relaxed(&p->hdr->wake_gen)))
		pub_wake(p);
}

/* Publish a pending BUS_MORE batch. Returns how many events became visible. */
static int pub_publish(struct bus_pub *p)
{
	int n = (int)p->pending;

	if (!n)
		return 0;
	p->pending = 0;
	p->batch_ts = 0;
	pub_publish_to(p, p->pos, p->last);
	return n;
}

/* The first record boundary at or after `need`, walking from the tail over
 * whole records (gating only: when a gating consumer sits between the chunk
 * boundary and `need`). */
static uint64_t walk_to(struct bus_pub *p, uint64_t need, uint64_t *seq)
{
	uint64_t t = p->tail, s = p->tail_seq;

	while (t < need) {
		t += rec_size(ring_rec(p->ring, p->mask, t)->len);
		s++;
	}
	*seq = s;
	return t;
}

/*
 * Make room for a record ending at `end`: move the tail past every record
 * that overlaps [end - cap, ...) — to the first record of the next chunk,
 * found in the chunk table — never past what a gating consumer has not read,
 * never past what is published.
 */
static int pub_make_room(struct bus_pub *p, uint64_t end)
{
	uint64_t need = end - p->cap, limit, t, s, c, last_c;

	if (at_load_relaxed(&p->hdr->state) != SEG_STATE_LIVE)
		return bus_err(EPIPE, "topic was deleted");
	/* Our own unpublished batch cannot be invalidated: publish it first. */
	if (need > p->published)
		pub_publish(p);
	limit = p->published;
	/* The first record starting in a chunk after need's, if any is
	 * published; else everything up to `published` goes. */
	t = p->published;
	s = p->seq - p->pending;  /* the record at `published` */
	last_c = p->published >> p->chunk_shift;
	for (c = (need >> p->chunk_shift) + 1; c <= last_c; c++) {
		const struct chunk_first *f = &p->first[c & (CHUNK_TABLE - 1)];

		if (f->pos >> p->chunk_shift == c) {
			if (f->pos < t) {
				t = f->pos;
				s = f->seq;
			}
			break;
		}
	}
	if (p->seg.g.flags & BUS_TOPIC_DURABLE) {
		uint64_t f;
		int r = flush_wait_for(p, &p->hdr->flushed, need, p->timeout_ns, "the flusher (busd)");

		if (r < 0)
			return r;
		f = at_load_relaxed(&p->hdr->flushed);  /* >= need, a record boundary */
		if (f < limit)
			limit = f;
		if (t > limit)
			t = walk_to(p, need, &s);
	}
	if (p->seg.g.flags & BUS_TOPIC_GATING) {
		int64_t g = gate_wait(p, need);

		if (g < 0)
			return (int)g;
		if ((uint64_t)g < limit)
			limit = (uint64_t)g;
		if (t > limit)  /* a gating consumer is just past need */
			t = walk_to(p, need, &s);
	}
	/* T2: tail_seq before tail, both release (see ring.h). */
	at_store_release(&p->hdr->tail_seq, s);
	at_store_release(&p->hdr->tail, t);
	/* T3: the tail store before any write into the bytes it gave up;
	 * pairs with C2/C3. */
	at_fence_release();
	p->tail = t;
	p->tail_seq = s;
	p->tail_limit = t + p->cap;
	return 0;
}

/* Where a record of len payload bytes goes; makes room if needed. Returns the
 * record, or NULL with *err set. */
static inline __attribute__((always_inline)) struct rec_hdr *pub_reserve(struct bus_pub *p, size_t len, int *err)
{
	uint64_t end;

	if (unlikely(len > p->max_event)) {
		*err = bus_err(EMSGSIZE, "event of %zu bytes exceeds the topic's maximum of %u",
			       len, p->max_event);
		return NULL;
	}
	end = p->pos + rec_size(len);
	if (unlikely(end > p->tail_limit)) {
		*err = pub_make_room(p, end);
		if (*err < 0)
			return NULL;
	}
	if (unlikely(at_load_relaxed(&p->hdr->state) != SEG_STATE_LIVE)) {
		*err = bus_err(EPIPE, "topic was deleted");
		return NULL;
	}
	return (struct rec_hdr *)(p->ring + (p->pos & p->mask));
}

/* Write the header of the record at p->pos (payload already in place) and
 * publish it unless BUS_MORE. */
static inline __attribute__((always_inline)) int pub_finish(struct bus_pub *p, struct rec_hdr *r, uint32_t type,
			     size_t len, unsigned flags)
{
	uint64_t pos = p->pos, seq = p->seq, ts;

	if (unlikely(flags & ~BUS_MORE))
		return bus_err(EINVAL, "commit of %zu bytes: unknown flags 0x%x", len, flags);
	/* One clock read per batch: the events of a batch share the moment
	 * its first event was committed (a single event: its commit). */
	ts = p->batch_ts;
	if (likely(!ts)) {
		ts = clock_now(&p->clk);
		if (flags & BUS_MORE)
			p->batch_ts = ts;
	}
	rec_write(r, len, type, seq, ts);
	if (unlikely(pos >= p->chunk_end))
		chunk_note(p, pos, seq);
	p->seq = seq + 1;
	p->pos = pos + rec_size(len);
	p->bytes += len;
	if (unlikely((flags & BUS_MORE) || p->pending)) {  /* part of a batch */
		p->last = pos;
		p->pending++;
		if (!(flags & BUS_MORE))
			pub_publish(p);  /* this event ends the batch */
		return 0;
	}
	/* A single event: no batch state to touch (the fewer stores, the
	 * better; see pub_publish_to()). */
	pub_publish_to(p, p->pos, pos);
	return 0;
}

/* Copy n bytes, 8 <= w <= n <= 2w, as two overlapping copies of w bytes
 * (the first and the last w); w is a constant at every call, so each copy is
 * a fixed-size move, the trick libc uses inside memcpy. */
static inline __attribute__((always_inline)) void copy_2w(uint8_t *d, const uint8_t *s,
							   size_t n, size_t w)
{
	uint8_t a[32], b[32];

	memcpy(a, s, w);
	memcpy(b, s + n - w, w);
	memcpy(d, a, w);
	memcpy(d + n - w, b, w);
}

/*
 * memcpy, with payloads up to 64 bytes copied inline: a call into libc's
 * memcpy costs a few ns, a third of a batched publish. data may be NULL when
 * len is 0.
 */
static inline void copy_payload(void *dst, const void *src, size_t len)
{
	if (len >= 32 && len <= 64)
		copy_2w(dst, src, len, 32);
	else if (len >= 16 && len < 32)
		copy_2w(dst, src, len, 16);
	else if (len >= 8 && len < 16)
		copy_2w(dst, src, len, 8);
	else if (len)
		memcpy(dst, src, len);
}

BUS_EXPORT int bus_pub_claim(struct bus_pub *p, size_t len, void **buf)
{
	int err = 0;
	struct rec_hdr *r = pub_reserve(p, len, &err);

	if (unlikely(!r))
		return err;
	p->claim = r;
	p->claim_len = (uint32_t)len;
	*buf = r + 1;
	return 0;
}

BUS_EXPORT int bus_pub_commit(struct bus_pub *p, uint32_t type, size_t len, unsigned flags)
{
	struct rec_hdr *r = p->claim;
	int err;

	/* A claim is good until it is committed or another event takes its
	 * place (a publish, or a newer claim). */
	if (unlikely(r != (struct rec_hdr *)(p->ring + (p->pos & p->mask)) || len > p->claim_len))
		return bus_err(EINVAL, !r ? "commit without a claim (%zu bytes)"
				   : len > p->claim_len ? "commit of %zu bytes, more than claimed"
				   : "commit of %zu bytes: the claim was superseded", len);
	err = pub_finish(p, r, type, len, flags);
	if (likely(!err))
		p->claim = NULL;
	return err;
}

BUS_EXPORT int bus_pub_publish(struct bus_pub *p, uint32_t type, const void *data,
			       size_t len, unsigned flags)
{
	int err = 0;
	struct rec_hdr *r = pub_reserve(p, len, &err);

	if (unlikely(!r))
		return err;
	copy_payload(r + 1, data, len);
	return pub_finish(p, r, type, len, flags);
}

BUS_EXPORT int bus_pub_flush(struct bus_pub *p)
{
	return pub_publish(p);
}

BUS_EXPORT int bus_pub_publishv(struct bus_pub *p, const struct bus_msg *m, unsigned n)
{
	uint64_t pos, seq, bytes, last, ts, limit;
	unsigned i, k = 0;
	int err = 0;

	for (i = 0; i < n; i++)
		if (unlikely(m[i].len > p->max_event))
			return bus_err(EMSGSIZE, "event %u of %u has %u bytes, the topic's maximum "
				       "is %u", i, n, m[i].len, p->max_event);
	if (unlikely(at_load_relaxed(&p->hdr->state) != SEG_STATE_LIVE))
		return bus_err(EPIPE, "topic was deleted");
	if (!n)
		return 0;
	/* The producer's state lives in registers for the loop: the payload
	 * stores go through byte pointers the compiler must assume alias *p, so
	 * fields of *p would be reloaded and stored again for every event. It
	 * is written back around pub_make_room() (rare) and at the end. */
	ts = p->batch_ts ? p->batch_ts : clock_now(&p->clk);
	pos = p->pos;
	seq = p->seq;
	bytes = p->bytes;
	last = p->last;
	limit = p->tail_limit;
	for (i = 0; i < n; i++) {
		uint32_t len = m[i].len;
		uint64_t end = pos + rec_size(len);
		struct rec_hdr *r;

		if (unlikely(end > limit)) {
			p->pos = pos;
			p->seq = seq;
			p->bytes = bytes;
			p->last = last;
			p->pending += k;
			k = 0;
			err = pub_make_room(p, end);  /* may publish what is pending */
			if (err < 0)
				break;
			limit = p->tail_limit;
		}
		r = (struct rec_hdr *)(p->ring + (pos & p->mask));
		copy_payload(r + 1, m[i].data, len);
		rec_write(r, len, m[i].type, seq, ts);
		if (unlikely(pos >= p->chunk_end))
			chunk_note(p, pos, seq);
		last = pos;
		pos = end;
		seq++;
		bytes += len;
		k++;
	}
	p->pos = pos;
	p->seq = seq;
	p->bytes = bytes;
	p->last = last;
	p->pending += k;
	p->batch_ts = ts;  /* pub_publish() clears it */
	pub_publish(p);
	return i ? (int)i : err;
}
