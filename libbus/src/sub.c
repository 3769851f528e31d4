/* SPDX-License-Identifier: MIT */
/*
 * sub.c — the consumer side of the ring (protocol in ring.h).
 *
 * The fast path of bus_sub_next(): three stores to the consumer's own slot
 * line, a header read, and one load of `tail`, a line the producer rewrites
 * only once per 1/16 ring, so it is nearly always in our cache. `head` is
 * loaded only when everything up to the last loaded head has been consumed:
 * a consumer that falls behind takes everything published in one go.
 */
#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fcntl.h>

#include "atomics.h"
#include "log.h"
#include "err.h"
#include "ring.h"
#include "wait.h"

#define DEFAULT_SPIN_NS 10000
#define MAX_SLEEP_NS    1000000000ll

/* ------------------------------------------------------------------------ */
/* Positions                                                                */
/* ------------------------------------------------------------------------ */

/* Find the record with sequence number `want` by walking from the tail. */
static int seek_seq(struct bus_sub *s, uint64_t want, const char *name)
{
	uint64_t t, ts, h, lp, ls, lsz;
	int tries;

	for (tries = 0; tries < 64; tries++) {
		ring_oldest(&s->seg, &t, &ts, &h);
		if (!ring_newest(&s->seg, &lp, &ls, &lsz)) {
			/* Nothing published, or all of it being overwritten. */
			if (want == ts) {
				s->pos = t;
				s->seq = ts;
				return 0;
			}
			/* The tail moved since ring_oldest(): look again
			 * before saying the sequence is not there. */
			if (at_load_acquire(&s->hdr->tail) != t)
				continue;
			return bus_err(ERANGE, "topic '%s': sequence %llu is not in the ring "
				       "(it holds no event; the next will be %llu)", name,
				       (unsigned long long)want, (unsigned long long)ts);
		}
		if (want < ts || want > ls + 1)
			return bus_err(ERANGE, "topic '%s': sequence %llu is not in the ring "
				       "(it holds %llu..%llu)", name, (unsigned long long)want,
				       (unsigned long long)ts, (unsigned long long)ls);
		if (want == ls + 1 || want == ls) {
			s->pos = want == ls ? lp : lp + lsz;
			s->seq = want;
			return 0;
		}
		/* Walk; every header read is confirmed by the tail check after. */
		uint64_t q = t, seq = ts;
		uint32_t len;
		int ok = ring_walk(&s->seg, &q, &seq, lp + lsz, want, &len);

		at_fence_acquire(); /* C2 for every header read above */
		if (at_load_relaxed(&s->hdr->tail) > t)
			continue; /* lapped during the walk */
		if (!ok || seq != want)
			return bus_err(EPROTO, "topic '%s' is corrupt near position %llu", name,
				       (unsigned long long)q);
		s->pos = q;
		s->seq = seq;
		return 0;
	}
	return bus_err(EAGAIN, "topic '%s': the producer overwrites the ring faster than "
		       "sequence %llu can be found", name, (unsigned long long)want);
}

/* ------------------------------------------------------------------------ */
/* Attach                                                                   */
/* ------------------------------------------------------------------------ */

/* Take a free slot, or one whose owner died without closing it. */
static struct cons_slot *slot_claim(struct seg *sg)
{
	uint32_t me = (uint32_t)getpid(), i, pass;

	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < sg->g.nslots; i++) {
			struct cons_slot *sl = &sg->slots[i];
			uint32_t cur = at_load_relaxed(&sl->owner);

			if (cur && (pass == 0 || pid_alive(cur)))
				continue;
			/* seq_cst CAS: the claim is the slot's only shared RMW. */
			if (at_cas(&sl->owner, &cur, me))
				return sl;
		}
	}
	return NULL;
}

static void slot_publish(struct bus_sub *s);

/* A named cursor resumes at `resume`. What the ring no longer holds is
 * reported as a gap: a position below the tail makes the first next() see
 * a lap and resync() count the lost events from s->seq on. */
enum { LOG_AT_SEQ, LOG_AT_SEQ_STRICT, LOG_AT_OLDEST, LOG_AT_TIME };
static int enter_log(struct bus_sub *s, int how);

/* The first record with a timestamp >= ts, walking the ring from its
 * oldest (each header confirmed by the tail check after the walk). */
static int seek_time_ring(struct bus_sub *s, uint64_t ts)
{
	for (int tries = 0; tries < 64; tries++) {
		uint64_t t, tseq, h, q, seq;
		int ok = 1;

		ring_oldest(&s->seg, &t, &tseq, &h);
		q = t;
		seq = tseq;
		while (q < h) {
			const struct rec_hdr *rh = ring_rec(s->ring, s->mask, q);
			uint32_t len;
			uint64_t rseq, rts;

			if (!rec_pos_ok(q)) {
				ok = 0;
				break;
			}
			len = rh->len;
			rseq = rh->seq;
			rts = rh->ts_ns;
			if (len > s->max_event || rseq != seq || q + rec_size(len) > h) {
				ok = 0;
				break;
			}
			if (rts >= ts)
				break;
			q += rec_size(len);
			seq++;
		}
		at_fence_acquire();  /* C2 for every header read above */
		if (at_load_relaxed(&s->hdr->tail) > t)
			continue;    /* lapped during the walk */
		if (!ok)
			return bus_err(EPROTO, "topic '%s' is corrupt near position %llu", s->name,
				       (unsigned long long)q);
		s->pos = q;
		s->seq = seq;
		return 0;
	}
	return bus_err(EAGAIN, "topic '%s': the producer overwrites the ring faster than a "
		       "time can be found in it", s->name);
}

static int durable(const struct bus_sub *s)
{
	return s->logfd >= 0 && (s->seg.g.flags & BUS_TOPIC_DURABLE) && !s->gating;
}

static void seek_resume(struct bus_sub *s, uint64_t resume, const char *name)
{
	uint64_t head, pos, seq;

	if (seek_seq(s, resume, name) == 0)
		return;
	ring_oldest(&s->seg, &pos, &seq, &head);
	if (resume < seq && durable(s)) {
		s->seq = resume;  /* from the log; what retention removed is a gap */
		if (enter_log(s, LOG_AT_SEQ) == 0)
			return;
	}
	if (resume < seq && at_load_acquire(&s->hdr->tail) > 0) {
		s->pos = 0;
		s->seq = resume;
		return;
	}
	/* Ahead of the topic (it was re-created) or before its first event:
	 * everything it holds is new to this cursor. */
	s->pos = pos;
	s->seq = seq;
}

/* Everything after the segment is attached and a slot is held. */
static int sub_start(struct bus_sub *s, const char *name, const struct bus_sub_opts *o,
		     int has_resume, uint64_t resume)
{
	uint64_t pos, seq, size, head;
	int r;

	s->hdr = s->seg.hdr;
	s->chdr = s->seg.chdr;
	s->ring = s->seg.ring;
	s->mask = s->seg.mask;
	s->max_event = s->seg.g.max_event;
	s->spin_ns = DEFAULT_SPIN_NS;
	s->gating = !!(o->flags & BUS_SUB_GATING);
	snprintf(s->name, sizeof(s->name), "%s", name);
	/* A dead previous owner may have left SLOT_GATING behind. */
	at_store_release(&s->slot->flags, 0);

	if (has_resume) {
		seek_resume(s, resume, name);
	} else {
		switch (o->from) {
		case BUS_FROM_OLDEST:
			ring_oldest(&s->seg, &s->pos, &s->seq, &head);
			if (durable(s))  /* the oldest is in the log, if it holds any */
				enter_log(s, LOG_AT_OLDEST);
			break;
		case BUS_FROM_TIME:
			s->from_ts = o->ts_ns;
			if (durable(s) && enter_log(s, LOG_AT_TIME) == 0)
				break;
			r = seek_time_ring(s, o->ts_ns);
			if (r < 0)
				return r;
			break;
		case BUS_FROM_NEWEST:
		case BUS_FROM_END:
			if (ring_newest(&s->seg, &pos, &seq, &size)) {
				s->pos = o->from == BUS_FROM_NEWEST ? pos : pos + size;
				s->seq = o->from == BUS_FROM_NEWEST ? seq : seq + 1;
			} else {
				ring_oldest(&s->seg, &s->pos, &s->seq, &head);
			}
			break;
		case BUS_FROM_SEQ:
			r = seek_seq(s, o->seq, name);
			if (r == -ERANGE && durable(s)) {
				ring_oldest(&s->seg, &pos, &seq, &head);
				if (o->seq < seq) {
					s->seq = o->seq;
					r = enter_log(s, LOG_AT_SEQ_STRICT);
				}
			}
			if (r < 0)
				return r;
			break;
		}
	}

	s->asym = s->gating && membarrier_register();
	at_store_relaxed(&s->slot->events, 0);
	at_store_relaxed(&s->slot->lapped, 0);
	at_store_relaxed(&s->slot->lost, 0);
	at_store_relaxed(&s->slot->sleeping, 0);
	slot_publish(s);
	/* Flags last (release): a producer that sees SLOT_GATING (acquire)
	 * also sees the position it must not overwrite. */
	at_store_release(&s->slot->flags, (s->gating ? SLOT_GATING : 0) |
					  (s->asym ? SLOT_ASYM : 0));
	/* A gating producer scans slots only when it moves the tail; the fence
	 * makes our flag and position visible before we read anything else, so
	 * only a tail move already under way can miss us (the window documented
	 * in bus.h; the first read then reports it as a gap). */
	if (s->gating)
		at_fence_seq_cst();
	return 0;
}

static int check_opts(const struct bus_sub_opts *o, const char *fn)
{
	if ((unsigned)o->from > BUS_FROM_TIME)
		return bus_err(EINVAL, "%s: unknown start position %d", fn, (int)o->from);
	if (o->flags & ~BUS_SUB_GATING)
		return bus_err(EINVAL, "%s: unknown flags 0x%x", fn, o->flags);
	return 0;
}

static int gating_ok(const struct bus_sub *s, const struct bus_sub_opts *o, const char *name)
{
	if ((o->flags & BUS_SUB_GATING) && !(s->seg.g.flags & BUS_TOPIC_GATING))
		return bus_err(EINVAL, "topic '%s' was not created with gating; "
			       "a gating consumer needs BUS_TOPIC_GATING", name);
	return 0;
}

BUS_EXPORT int bus_sub_open(const char *name, const struct bus_sub_opts *opts,
			    struct bus_sub **out)
{
	struct bus_sub_opts o = { .from = BUS_FROM_OLDEST };
	struct bus_sub *s;
	int r;

	if (!out)
		return bus_err(EINVAL, "bus_sub_open: no result pointer");
	*out = NULL;
	if (opts)
		o = *opts;
	r = check_opts(&o, "bus_sub_open");
	if (r < 0)
		return r;
	if (o.group)
		return bus_err(EINVAL, "bus_sub_open: named cursors (group '%s') need busd: "
			       "use bus_sub_attach()", o.group);
	s = calloc(1, sizeof(*s));
	if (!s)
		return bus_err(ENOMEM, "out of memory");
	s->logfd = -1;
	r = seg_attach(name, SEG_CONSUMER, &s->seg);
	if (r < 0)
		goto fail;
	r = gating_ok(s, &o, name);
	if (r < 0)
		goto fail;
	s->slot = slot_claim(&s->seg);
	if (!s->slot) {
		r = bus_err(EUSERS, "topic '%s': all %u consumer slots are taken", name,
			    s->seg.g.nslots);
		goto fail;
	}
	/* busd's named-cursor fields: not ours, and stale from a previous owner. */
	at_store_relaxed(&s->slot->group, 0);
	at_store_relaxed(&s->slot->commit, 0);
	r = sub_start(s, name, &o, 0, 0);
	if (r < 0)
		goto fail_slot;
	*out = s;
	bus_err_clear();
	return 0;
fail_slot:
	/* Give the slot back; release, as in bus_sub_close(). */
	at_store_release(&s->slot->owner, 0);
fail:
	seg_detach(&s->seg);
	free(s);
	return r;
}

int sub_open_fds(const char *name, int fd, int cfd, int logfd, uint32_t slot,
		 const struct bus_sub_opts *o, int has_resume, uint64_t resume, struct bus_sub **out)
{
	struct bus_sub *s = calloc(1, sizeof(*s));
	int r;

	*out = NULL;
	if (!s) {
		close(fd);
		close(cfd);
		if (logfd >= 0)
			close(logfd);
		return bus_err(ENOMEM, "out of memory");
	}
	s->logfd = logfd;
	r = seg_attach_fds(fd, cfd, name, SEG_CONSUMER, &s->seg);
	if (r < 0)
		goto fail;
	r = gating_ok(s, o, name);
	if (r < 0)
		goto fail;
	if (slot >= s->seg.g.nslots) {
		r = bus_err(EPROTO, "topic '%s': busd reserved slot %u of %u", name, slot,
			    s->seg.g.nslots);
		goto fail;
	}
	/* busd reserved the slot for us (owner = our pid): the owner's fields
	 * are ours from here on. */
	s->slot = &s->seg.slots[slot];
	r = sub_start(s, name, o, has_resume, resume);
	if (r < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	if (s->log)
		bus_log_close(s->log);
	if (s->logfd >= 0)
		close(s->logfd);
	seg_detach(&s->seg);
	free(s);
	return r;
}

BUS_EXPORT void bus_sub_close(struct bus_sub *s)
{
	if (!s)
		return;
	/* Stop gating before letting go of the slot; the producer must not wait
	 * for a consumer that is gone. Release: our reads are done. */
	at_store_release(&s->slot->flags, 0);
	/* A slot busd reserved is freed by busd (after it has taken the
	 * committed position): were we to clear owner after busd's reply,
	 * we could wipe out the claim of a consumer busd gave it to next. */
	if (!s->link || !client_release(s->link))
		at_store_release(&s->slot->owner, 0);
	/* A producer asleep in gate_wait() may have been waiting for us. */
	if (s->gating) {
		at_fetch_add(&s->chdr->gate_gen, 1);
		futex_wake_all(&s->chdr->gate_gen);
	}
	if (s->log)
		bus_log_close(s->log);
	if (s->logfd >= 0)
		close(s->logfd);
	seg_detach(&s->seg);
	free(s);
}

BUS_EXPORT int bus_sub_commit(struct bus_sub *s)
{
	if (!s->link || !s->commit_ok)
		return bus_err(EINVAL, "bus_sub_commit: this consumer has no named cursor "
			       "(open it with bus_sub_attach() and opts.group)");
	/* Everything before s->seq is processed. Read by busd after we close or
	 * die (the kernel orders that), or by its 1 s persist timer: then any
	 * value that is not torn will do, and a 64-bit store is not torn. */
	at_store_release(&s->slot->commit, s->seq);
	return 0;
}

BUS_EXPORT uint64_t bus_sub_next_seq(const struct bus_sub *s)
{
	return s->seq;
}

BUS_EXPORT void bus_sub_set_spin(struct bus_sub *s, int64_t spin_ns)
{
	s->spin_ns = spin_ns < 0 ? 0 : spin_ns;
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                  */
/* ------------------------------------------------------------------------ */

/* Tell the world (tools, a gating producer) how far we are: everything
 * before s->pos is done with. */
static inline void slot_publish(struct bus_sub *s)
{
	struct cons_slot *sl = s->slot;

	at_store_relaxed(&sl->seq, s->seq);
	at_store_relaxed(&sl->events, s->events);
	/* G1: pairs with G3 in the producer: our reads of the bytes before pos
	 * happen before it overwrites them. */
	at_store_release(&sl->pos, s->pos);
	if (unlikely(s->gating)) {
		/* G2: pos store before the gate_req load (Dekker with G4). */
		if (s->asym)
			at_compiler_barrier();
		else
			at_fence_seq_cst();
		uint32_t req = at_load_relaxed(&s->chdr->gate_req);
		if (unlikely(req == at_load_relaxed(&s->chdr->gate_gen))) {
			/* An RMW: several consumers may wake the producer at
			 * once; any bump ends its futex_wait. */
			at_fetch_add(&s->chdr->gate_gen, 1);
			futex_wake_all(&s->chdr->gate_gen);
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Durable topics: reading from the log                                     */
/* ------------------------------------------------------------------------ */

#define SUB_TO_LOG 2         /* internal: lapped on a durable topic */
#define LOG_POS UINT64_MAX   /* ev->pos_ of an event read from the log */

static int peek(struct bus_sub *s, struct bus_event *ev);
static void advance(struct bus_sub *s, const struct bus_event *ev);

static void leave_log(struct bus_sub *s)
{
	bus_log_close(s->log);
	s->log = NULL;
}

static int gap(struct bus_sub *s, struct bus_event *ev, uint64_t to)
{
	memset(ev, 0, sizeof(*ev));
	ev->seq = s->seq;
	ev->lost = to - s->seq;
	ev->pos_ = LOG_POS;
	s->lapped++;
	s->lost += ev->lost;
	at_store_relaxed(&s->slot->lapped, s->lapped);
	at_store_relaxed(&s->slot->lost, s->lost);
	s->seq = to;
	return -ENOBUFS;
}

/*
 * Switch to the log at s->seq (or at the first event at or after ts_ns).
 * What retention has removed is reported as a gap by the first read
 * (pending_lost). Everything below flushed_seq is in the log files, and the
 * producer never moves its tail past it, so log and ring together always
 * hold every event from the log's first on.
 */
static int enter_log(struct bus_sub *s, int how)
{
	int fd, r;

	if (!s->log) {
		fd = fcntl(s->logfd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return bus_err(errno, "topic '%s': cannot open its log: %s", s->name,
				       strerror(errno));
		r = log_open_fd(fd, s->name, &s->log);
		if (r < 0)
			return r;
		s->log->live = 1;  /* the flusher appends and rolls as we read */
	}
	if (!s->log->nsegs) {  /* nothing on disk (yet): the ring has all */
		leave_log(s);
		return how == LOG_AT_SEQ_STRICT ? bus_err(ERANGE, "topic '%s': sequence %llu "
			"is older than the ring and the log is empty", s->name,
			(unsigned long long)s->seq) : -ERANGE;
	}
	switch (how) {
	case LOG_AT_TIME:
		s->log_time = 1;
		r = bus_log_seek_time(s->log, s->from_ts);
		break;
	case LOG_AT_OLDEST:
		if (s->log->segs[0] >= s->seq) {  /* the ring reaches further back */
			leave_log(s);
			return 0;
		}
		r = log_seek(s->log, s->log->segs[0]);
		if (r == 0)  /* else the ring's oldest, set by the caller, stands */
			s->seq = s->log->segs[0];
		break;
	default:
		r = log_seek(s->log, s->seq);
		if (r == -ERANGE && how == LOG_AT_SEQ) {
			/* Retention removed it: a gap, reported by the first read. */
			s->pending_lost = s->log->segs[0] - s->seq;
			r = log_seek(s->log, s->log->segs[0]);
		}
	}
	if (r < 0)
		leave_log(s);
	return r;
}

/* The next event in log mode; back to the ring once the log is read up to
 * what the flusher has published. */
static int log_next_ev(struct bus_sub *s, struct bus_event *ev)
{
	int r, tries;

	if (s->pending_lost) {
		uint64_t to = s->seq + s->pending_lost;

		s->pending_lost = 0;
		return gap(s, ev, to);
	}
	for (tries = 0; tries < 64; tries++) {
		/* Pairs with busd's release store (F1): the files hold every
		 * event below flushed_seq, complete. */
		s->log->limit = at_load_acquire(&s->hdr->flushed_seq);
		r = bus_log_next(s->log, ev);
		if (r == 1) {
			if (s->log_time) {  /* the first event at or after the time */
				s->log_time = 0;
				s->seq = ev->seq;
			}
			if (ev->seq != s->seq)
				return bus_err(EBADMSG, "topic '%s': the log gave event %llu, expected "
					       "%llu", s->name, (unsigned long long)ev->seq,
					       (unsigned long long)s->seq);
			s->seq++;
			s->events++;
			ev->pos_ = LOG_POS;  /* log bytes do not change: confirm() is 0 */
			at_store_relaxed(&s->slot->seq, s->seq);
			at_store_relaxed(&s->slot->events, s->events);
			return 1;
		}
		if (r == -ENOBUFS) {  /* events the log never got (see log.c) */
			uint64_t to = ev->seq + ev->lost;

			return gap(s, ev, to);
		}
		if (r < 0)
			return r;
		/* Read up to what is flushed: the rest is in the ring (in time
		 * mode nothing in the log was recent enough: find it there). */
		if (s->log_time ? seek_time_ring(s, s->from_ts) == 0 :
				  seek_seq(s, s->seq, s->name) == 0) {
			s->log_time = 0;
			leave_log(s);
			s->head = s->pos;  /* peek() refills */
			slot_publish(s);
			r = peek(s, ev);
			if (r == 1)
				advance(s, ev);
			if (r != SUB_TO_LOG)
				return r;
		}
		/* flushed moved on meanwhile (or we were lapped again): more
		 * from the log. */
	}
	return bus_err(EAGAIN, "topic '%s': could not rejoin the ring at event %llu", s->name,
		       (unsigned long long)s->seq);
}

/* We were lapped (tail passed s->pos): jump to the oldest intact record and
 * report what was skipped — or, on a durable topic, continue from the log. */
static int resync(struct bus_sub *s, struct bus_event *ev)
{
	if (durable(s) && enter_log(s, LOG_AT_SEQ) == 0)
		return SUB_TO_LOG;
	uint64_t pos, seq;

	ring_oldest(&s->seg, &pos, &seq, &s->head);
	if (seq <= s->seq)  /* cannot happen unless the segment is corrupt */
		return bus_err(EPROTO, "lapped, but the oldest event (%llu) is not newer than "
			       "the one expected (%llu): segment corrupt",
			       (unsigned long long)seq, (unsigned long long)s->seq);
	ev->data = NULL;
	ev->len = 0;
	ev->type = 0;
	ev->ts_ns = 0;
	ev->seq = s->seq;
	ev->lost = seq - s->seq;
	ev->pos_ = s->pos;
	s->lapped++;
	s->lost += ev->lost;
	at_store_relaxed(&s->slot->lapped, s->lapped);
	at_store_relaxed(&s->slot->lost, s->lost);
	s->pos = pos;
	s->seq = seq;
	slot_publish(s);
	return -ENOBUFS;
}

/* Nothing between pos and the last head: refresh head, notice laps and
 * deletion. Returns 1 if there is a record now, else what next() returns. */
static int refill(struct bus_sub *s, struct bus_event *ev)
{
	s->head = at_load_acquire(&s->hdr->head);  /* C1: pairs with P1 */
	if (s->pos < s->head)
		return 1;
	/* Caught up: ask for the line the next record will be written to, so
	 * that when head moves the record is on its way already (the two
	 * transfers overlap instead of following each other). A prefetch is a
	 * hint: it reads nothing we use. */
	__builtin_prefetch(s->ring + (s->pos & s->mask));
	/* Lapped while idle? (tail may equal head after a big overwrite.) */
	if (unlikely(at_load_acquire(&s->hdr->tail) > s->pos))
		return resync(s, ev);
	if (unlikely(at_load_relaxed(&s->hdr->state) != SEG_STATE_LIVE)) {
		/* Deleted: drain what is left, then report the end. */
		s->head = at_load_acquire(&s->hdr->head);
		if (s->pos < s->head)
			return 1;
		return -EPIPE;
	}
	return 0;
}

/* Look at the record at s->pos without consuming it. */
static inline int peek(struct bus_sub *s, struct bus_event *ev)
{
	const struct rec_hdr *rh;
	uint32_t len, type;
	uint64_t seq, ts;
	int r;

	if (unlikely(s->pos >= s->head)) {
		r = refill(s, ev);
		if (r != 1)
			return r;
	}
	/* Positions that came from the header (a resync to the tail) may be
	 * corrupt: one test before reading a header there. */
	if (unlikely(!rec_pos_ok(s->pos)))
		return bus_err(EPROTO, "corrupt ring: position %llu is not a record boundary",
			       (unsigned long long)s->pos);
	rh = ring_rec(s->ring, s->mask, s->pos);
	len = rh->len;
	type = rh->type;
	seq = rh->seq;
	ts = rh->ts_ns;
	/* C2: the header loads before the tail load; pairs with T3. */
	at_fence_acquire();
	if (unlikely(at_load_relaxed(&s->hdr->tail) > s->pos))
		return resync(s, ev);
	/* Not lapped, so the header is what the producer committed; still
	 * check it: the segment is shared memory, not trusted memory. */
	if (unlikely(len > s->max_event || seq != s->seq ||
		     s->pos + rec_size(len) > s->head))
		return bus_err(EPROTO, "corrupt record at position %llu: length %u, sequence "
			       "%llu (expected %llu)", (unsigned long long)s->pos, len,
			       (unsigned long long)seq, (unsigned long long)s->seq);
	ev->data = rh + 1;
	ev->len = len;
	ev->type = type;
	ev->seq = seq;
	ev->ts_ns = ts;
	ev->lost = 0;
	ev->pos_ = s->pos;
	return 1;
}

static inline void advance(struct bus_sub *s, const struct bus_event *ev)
{
	s->pos += rec_size(ev->len);
	s->seq++;
	s->events++;
}

BUS_EXPORT int bus_sub_next(struct bus_sub *s, struct bus_event *ev)
{
	int r;

	if (unlikely(s->log))
		return log_next_ev(s, ev);
	/* The previous view is done with: tell the producer/tools. */
	slot_publish(s);
	r = peek(s, ev);
	if (likely(r == 1))
		advance(s, ev);
	else if (r == SUB_TO_LOG)
		r = log_next_ev(s, ev);
	return r;
}

BUS_EXPORT int bus_sub_confirm(struct bus_sub *s, const struct bus_event *ev)
{
	/* C3: the caller's loads of the payload before the tail load. */
	at_fence_acquire();
	if (likely(at_load_relaxed(&s->hdr->tail) <= ev->pos_))
		return 0;
	/* Overwritten while in use. If it is the event next() returned last,
	 * rewind so that the next call reports the gap from it on (it was never
	 * validly received). An older view is not rewound to: the events after
	 * it were delivered already, and going back would deliver them twice. */
	if (ev->seq + 1 == s->seq && ev->pos_ + rec_size(ev->len) == s->pos) {
		s->pos = ev->pos_;
		s->seq = ev->seq;
		s->events--;
	}
	return -ENOBUFS;
}

BUS_EXPORT int bus_sub_read(struct bus_sub *s, void *buf, size_t size, struct bus_event *ev)
{
	int r;

	if (unlikely(s->log)) {
from_log:
		r = log_next_ev(s, ev);
		if (r != 1)
			return r;
		if (ev->pos_ != LOG_POS) {
			/* It rejoined the ring with this event: undo the
			 * advance and read it the ring's way (size check, tail
			 * re-check after the copy). */
			s->pos = ev->pos_;
			s->seq = ev->seq;
			s->events--;
			goto from_ring;
		}
		if (ev->len > size) {
			/* Give it back: the next call reads it again. */
			s->seq = ev->seq;
			s->events--;
			if (s->log)
				log_seek(s->log, ev->seq);
			return bus_err(EMSGSIZE, "event %llu has %u bytes, the buffer %zu",
				       (unsigned long long)ev->seq, ev->len, size);
		}
		memcpy(buf, ev->data, ev->len);
		ev->data = buf;
		return 1;
	}
from_ring:
	slot_publish(s);
	for (;;) {
		r = peek(s, ev);
		if (r == SUB_TO_LOG)
			goto from_log;
		if (r != 1)
			return r;
		if (ev->len > size)
			return bus_err(EMSGSIZE, "event %llu has %u bytes, the buffer %zu",
				       (unsigned long long)ev->seq, ev->len, size);
		memcpy(buf, ev->data, ev->len);
		/* C3: the copy before the tail re-check; pairs with T3. */
		at_fence_acquire();
		if (likely(at_load_relaxed(&s->hdr->tail) <= ev->pos_))
			break;
		/* Torn while copying: peek again, which reports the gap. */
	}
	ev->data = buf;
	advance(s, ev);
	return 1;
}

/* ------------------------------------------------------------------------ */
/* Waiting                                                                  */
/* ------------------------------------------------------------------------ */

static inline int sub_ready(struct bus_sub *s)
{
	if (s->log || s->pending_lost)
		return 1;
	return at_load_acquire(&s->hdr->head) > s->pos ||     /* C1 */
	       at_load_acquire(&s->hdr->tail) > s->pos ||     /* lapped: report it */
	       at_load_relaxed(&s->hdr->state) != SEG_STATE_LIVE;
}

/*
 * Announce that this consumer is about to sleep: W1 reads the generation it
 * will sleep on (acquire, pairs with the producer's RMW on wake_gen in
 * pub_wake(), which follows P1: a consumer that reads the new generation also
 * sees the head stored before it); W2 raises wake_req to it (a CAS max:
 * several consumers may announce at once, and a stale lower value must not
 * win). Returns the generation.
 */
static uint32_t sub_announce(struct bus_sub *s)
{
	uint32_t gen = at_load_acquire(&s->hdr->wake_gen);  /* W1 */

	at_max_u32(&s->chdr->wake_req, gen);                /* W2 */
	return gen;
}

/*
 * W3, after announcing on every consumer in subs: pairs with P2, so that
 * either the producer sees the announcement or we see its head. The seq_cst
 * CAS of W2 already orders our stores before our loads; membarrier makes the
 * producer's compiler-barrier side a real barrier. Returns how long one
 * sleep may last: MAX_SLEEP_NS (invariant 8: every sleep is bounded, so a
 * wakeup lost to a bug or a hostile producer costs latency, never liveness),
 * or 1 ms of polling when membarrier is missing and some producer relies on
 * it.
 */
static int64_t sleep_bound(struct bus_sub *const *subs, unsigned n)
{
	unsigned i;

	if (membarrier_heavy() == 0)
		return MAX_SLEEP_NS;
	for (i = 0; i < n; i++)
		if (at_load_relaxed(&subs[i]->hdr->pub_fence) != FENCE_FULL)
			return 1000000;
	return MAX_SLEEP_NS;  /* every producer fences itself; the CAS pairs */
}

static int64_t remaining(uint64_t deadline)
{
	uint64_t now;

	if (deadline == UINT64_MAX)
		return -1;
	now = mono_ns();
	return now >= deadline ? 0 : (int64_t)(deadline - now);
}

static int64_t min_timeout(int64_t a, int64_t b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

BUS_EXPORT int bus_sub_wait(struct bus_sub *s, int64_t timeout_ns)
{
	uint64_t start, deadline;
	int64_t left, cap;
	uint32_t gen;
	int r;

	if (sub_ready(s))
		return 1;
	/* Everything up to here is read: publish the exact position before we
	 * go quiet (lag shows 0, a gating producer may go on). */
	slot_publish(s);
	start = mono_ns();
	deadline = timeout_ns < 0 ? UINT64_MAX : start + (uint64_t)timeout_ns;
	if (s->spin_ns > 0 && deadline > start) {
		uint64_t spin_end = start + (uint64_t)s->spin_ns;

		if (spin_end > deadline)  /* never spin past the caller's timeout */
			spin_end = deadline;
		unsigned i = 0;

		for (;;) {
			poll_pause();  /* look at most every POLL_TICKS */
			if (sub_ready(s))
				return 1;
			if ((++i & 3) == 0 && mono_ns() >= spin_end)
				break;
		}
	}
	for (;;) {
		left = remaining(deadline);
		if (left == 0)
			return sub_ready(s) ? 1 : -ETIMEDOUT;
		gen = sub_announce(s);
		cap = sleep_bound(&s, 1);
		if (sub_ready(s))
			return 1;
		at_store_relaxed(&s->slot->sleeping, 1);
		r = futex_wait_shared(&s->hdr->wake_gen, gen, min_timeout(left, cap));
		at_store_relaxed(&s->slot->sleeping, 0);
		if (r == -EINTR)
			return -EINTR;
		if (sub_ready(s))
			return 1;
	}
}

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif

struct waitv_entry {          /* struct futex_waitv, spelled out for old headers */
	uint64_t val;
	uint64_t uaddr;
	uint32_t flags;
	uint32_t reserved;
};

#define WAITV_MAX 128

BUS_EXPORT int bus_wait_any(struct bus_sub *const *subs, unsigned n, int64_t timeout_ns)
{
	struct waitv_entry w[WAITV_MAX];
	struct timespec abs;
	uint64_t deadline, until;
	unsigned i;
	long r;

	if (!subs || n == 0 || n > WAITV_MAX)
		return bus_err(EINVAL, "bus_wait_any: %u consumers (1 to %d allowed)", n, WAITV_MAX);
	deadline = timeout_ns < 0 ? UINT64_MAX : mono_ns() + (uint64_t)timeout_ns;
	for (i = 0; i < n; i++)  /* as bus_sub_wait: exact positions before going quiet */
		slot_publish(subs[i]);
	for (;;) {
		for (i = 0; i < n; i++)
			if (sub_ready(subs[i]))
				return (int)i;
		if (remaining(deadline) == 0)
			return -ETIMEDOUT;
		/* Announce on every topic, then one W3 for all of them. */
		for (i = 0; i < n; i++) {
			w[i].val = sub_announce(subs[i]);
			w[i].uaddr = (uint64_t)(uintptr_t)&subs[i]->hdr->wake_gen;
			w[i].flags = FUTEX_32; /* shared: no FUTEX2_PRIVATE */
			w[i].reserved = 0;
		}
		until = mono_ns() + (uint64_t)min_timeout(remaining(deadline), sleep_bound(subs, n));
		for (i = 0; i < n; i++)
			if (sub_ready(subs[i]))
				return (int)i;
		abs.tv_sec = (time_t)(until / 1000000000ull);  /* futex_waitv: absolute */
		abs.tv_nsec = (long)(until % 1000000000ull);
		r = syscall(SYS_futex_waitv, w, n, 0, &abs, CLOCK_MONOTONIC);
		if (r < 0) {
			if (errno == ENOSYS)
				return bus_err(ENOSYS, "futex_waitv needs Linux 5.16 or later");
			if (errno == EINTR)
				return -EINTR;
			if (errno != EAGAIN && errno != ETIMEDOUT)
				return bus_err(errno, "futex_waitv: %s", strerror(errno));
		}
	}
}
