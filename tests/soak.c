/* SPDX-License-Identifier: MIT */
/*
 * soak.c — the crash soak (issue 6): a real busd, one producer and four
 * consumers, each a process of its own, and at random moments one of them,
 * busd included, killed with SIGKILL and started again, over and over,
 * while every event is checked. A standalone program, not a Criterion
 * suite: `make soak` runs it (SOAK_ARGS passes options), CI runs it for a
 * minute, and by hand it runs as long as asked (--seconds, --kills).
 *
 * The parties:
 *  - busd on a private bus (tests/t_busd.c) with two topics: "soak.durable"
 *    (BUS_TOPIC_DURABLE, a 64 KiB ring, 1 MiB log segments, the least
 *    allowed, so that they roll every few seconds, 32 MiB retained) and
 *    "soak.volatile" (a 32 KiB ring). The rings are small on purpose: a
 *    consumer that pauses is lapped, which on the durable topic sends it to
 *    the log and on the volatile one makes it lose events, with a report.
 *    fsync "always" by default: the log is on tmpfs, where a sync costs
 *    nothing, and it makes "acknowledged" (bus_pub_sync) mean both flushed
 *    and durable; --fsync picks another policy.
 *  - the producer publishes bursts to both topics, every way the API has
 *    (publish, claim + commit, publishv, BUS_MORE batches), payloads that are
 *    a function of (topic seed, seq) with a checksum (t_fill), and every few
 *    ms waits with bus_pub_sync() until the durable topic has flushed what
 *    it published: that is what it counts as acknowledged. A restarted
 *    producer continues the sequence where the ring says it stopped.
 *  - consumers: a named and an anonymous one on each topic. A named one
 *    resumes after its last bus_sub_commit(); the anonymous durable one
 *    restarts at the sequence it had reached (BUS_FROM_SEQ, often from the
 *    log); the anonymous volatile one starts at the oldest event each time.
 *    Each incarnation reads either with bus_sub_read() or with
 *    bus_sub_next() + bus_sub_confirm(), and pauses now and then.
 *
 * What is checked, all the time:
 *  - every event a consumer gets is whole: its length, type word and
 *    payload checksum are those of its sequence number (else: torn);
 *  - within an incarnation sequence numbers go up by exactly one, except
 *    across a gap report (-ENOBUFS), which must start at the next expected
 *    seq; the next event is then exactly the one after the gap. A gap on the
 *    durable topic, or a jump without a report, is lost;
 *  - across incarnations, a named consumer and the anonymous durable one
 *    start no later than where the previous one got to (else lost), and a
 *    named one no earlier than its last commit (else its cursor went back);
 *  - a restarted producer finds every event its predecessor saw published;
 *  - the supervisor follows the durable log as it is written (bus_log in
 *    follow mode): every seq once, in order, whole. Each time it kills busd
 *    it reads the log to its end and checks that it holds every event the
 *    producer had seen acknowledged before the kill.
 * At the end the producer stops, the consumers must reach its last seq
 * (delivered, or on the volatile topic reported as a gap), the named cursors
 * must resume exactly there, busd must stop cleanly (exit 0), and the log,
 * read again from scratch, must hold every seq from its oldest to the last
 * one published. A party that dies of anything but our SIGKILL, or a
 * sanitizer report in busd's stderr, fails the run.
 *
 * The supervisor (this process, with no thread of its own while it forks)
 * kills a party chosen at random every --interval ms, reaps it and starts it
 * again at once (busd: until it says READY=1). Half of the kills are aimed:
 * a party spends most of its time asleep between bursts, so the supervisor
 * first waits (at most 20 ms) for the producer to be inside a publish, a
 * consumer inside a read, or busd to be flushing (the producer waits for it
 * in bus_pub_sync()); the summary says what each party was doing when it
 * was killed. A party whose attach was cut
 * short by a busd kill, when busd may or may not have granted it (its reply
 * was lost: -ECONNRESET), exits with EX_RETRY and is started afresh, since
 * busd keeps what it granted for as long as that pid lives.
 *
 * Output: a first line with the seed and settings, then a summary whose
 * lines start with a fixed key (kills:, published:, delivered:, replayed:,
 * gaps(volatile, reported):, lost:, torn:, wall:, result:). Findings are
 * reported on stderr as they happen (LOST, TORN, REWIND, DISORDER, FAIL).
 *
 * Everything lives in a private directory on /dev/shm (t_init(): inside
 * $BUS_TEST_SHM if set), removed at the end with every process, also on
 * failure and on SIGINT/SIGTERM (a second signal is not needed: the first
 * one stops the run and cleans up). Children die with the supervisor
 * (PR_SET_PDEATHSIG) if it is killed itself.
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus.h"
#include "t_busd.h"
#include "t_util.h"

#define SEC 1000000000ull
#define MS 1000000ull
#define EX_RETRY 75            /* a party asks to be started afresh (EX_TEMPFAIL) */
#define MAXEV 1024u            /* payloads are 1..MAXEV bytes */
#define BATCH_MAX 8            /* events in one publishv() or BUS_MORE batch */
#define SAY_MAX 20             /* diagnostic lines per party kind, then quiet */

enum { T_DUR, T_VOL, NTOPIC };
static const char *const topic_name[NTOPIC] = { "soak.durable", "soak.volatile" };
/* The type word of seq is tag ^ seq: a record of the wrong topic or seq shows. */
static const uint32_t type_tag[NTOPIC] = { 0xd0000000u, 0x50000000u };

#define NCONS 4
enum { P_BUSD, P_PROD, P_CONS, NPARTY = P_CONS + NCONS };

struct cons_def {
	const char *name;
	int topic;
	const char *group;   /* named cursor, NULL = anonymous */
};
static const struct cons_def cons_def[NCONS] = {
	{ "named-durable", T_DUR, "soak-nd" },
	{ "anon-durable", T_DUR, NULL },
	{ "named-volatile", T_VOL, "soak-nv" },
	{ "anon-volatile", T_VOL, NULL },
};

/* ------------------------------------------------------------------------ */
/* The shared stats block: written by the parties, read by the supervisor,  */
/* and it outlives every party that is killed.                              */
/* ------------------------------------------------------------------------ */

struct pstat {                       /* per topic, written by the producer */
	_Atomic uint64_t next;       /* bus_pub_next_seq() after the last publish that returned */
	_Atomic uint64_t acked;      /* durable: every seq below it was bus_pub_sync()ed */
	_Atomic uint64_t final;      /* next seq once the producer stopped for good */
};

struct cstat {
	_Atomic uint64_t next;       /* every seq below it was delivered or reported as a gap */
	_Atomic uint64_t high;       /* one past the highest seq ever delivered */
	_Atomic uint64_t committed;  /* named: the last position bus_sub_commit() stored */
	_Atomic uint64_t delivered;  /* first deliveries */
	_Atomic uint64_t redelivered;/* at-least-once: seen again after a restart */
	_Atomic uint64_t gap_reports, gap_events;
	_Atomic uint64_t lost;       /* skipped without a report, or a gap where none may be */
	_Atomic uint64_t torn;       /* wrong length, type word or checksum; a corrupt read */
	_Atomic uint64_t disorder;   /* a seq that went backwards within an incarnation */
	_Atomic uint64_t rewinds;    /* a named cursor resumed before its last commit */
	_Atomic uint64_t overwritten;/* bus_sub_confirm() said the view was overwritten */
	_Atomic uint64_t eagain;     /* -EAGAIN from next/read (log and ring kept moving) */
	_Atomic uint64_t from_log;   /* events delivered from the log files, not the ring */
	_Atomic uint64_t incarnations;
	_Atomic uint64_t by_read;    /* incarnations that used bus_sub_read() (the rest: next) */
	_Atomic uint64_t pauses;     /* pauses it took to get lapped */
};

struct shared {
	char dir[600];               /* the bus directory */
	uint64_t seed[NTOPIC];
	uint32_t burst, nap_us, pause_every;
	_Atomic int stop_pub;        /* producer: stop publishing, sync, report final */
	_Atomic int pub_done;        /* producer: final[] is set */
	_Atomic int quit;            /* everyone: close, disconnect, exit 0 */
	struct pstat t[NTOPIC];
	_Atomic uint64_t prod_lost;  /* events a restarted producer did not find */
	_Atomic uint64_t prod_incarnations, prod_syncs;
	struct cstat c[NCONS];
	_Atomic uint64_t retry_down[NPARTY];  /* connect/attach retried: busd down or restarting */
	_Atomic uint64_t retry_busy[NPARTY];  /* attach retried: -EBUSY (lease, named cursor) */
	_Atomic int where[NPARTY];   /* what each party is doing (enum where), seen at a kill */
	_Atomic int said[NPARTY];
};

static struct shared *sh;

/* What a party was doing when it was killed (producer / consumer). */
enum where { W_START, W_WORK, W_WAIT, W_PAUSE, NWHERE };
static const char *const where_name[NWHERE] = { "attaching", "working", "waiting", "pausing" };
#define WHERE(p, w) atomic_store(&sh->where[p], (w))

/*
 * The random choices of this process (xorshift64). Not t_rand(): its state
 * is inherited through fork(), so every party, and every incarnation of it,
 * would make the same "random" choices. The supervisor seeds it with --seed
 * (the kill schedule and the payload seeds follow from it); a party reseeds
 * its copy from its pid and the time.
 */
static uint64_t rng;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* One line on stderr about a finding, at most SAY_MAX per party kind. */
static void say(int party, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int party, const char *fmt, ...)
{
	va_list ap;

	if (atomic_fetch_add(&sh->said[party], 1) >= SAY_MAX)
		return;
	fprintf(stderr, "soak[%d]: ", (int)getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint32_t type_of(int t, uint64_t seq)
{
	return type_tag[t] ^ (uint32_t)seq;
}

static uint32_t len_of(int t, uint64_t seq)
{
	return t_len_for(sh->seed[t], seq, 1, MAXEV);
}

/* 0 when ev is exactly the event the producer made for its seq. */
static int bad_event(int t, const struct bus_event *ev)
{
	return ev->len != len_of(t, ev->seq) || ev->type != type_of(t, ev->seq) ||
	       t_check(ev->data, ev->len, sh->seed[t], ev->seq);
}

static void store_max(_Atomic uint64_t *v, uint64_t x)
{
	uint64_t cur = atomic_load(v);

	while (cur < x && !atomic_compare_exchange_weak(v, &cur, x))
		;
}

/* ------------------------------------------------------------------------ */
/* Connecting and attaching while busd comes and goes                       */
/* ------------------------------------------------------------------------ */

/* A connect does nothing on busd's side, so it is always safe to repeat. */
static int connect_bus(int party, struct bus **b)
{
	uint64_t end = t_now_ns() + 20 * SEC;
	int r;

	for (;;) {
		r = bus_connect(sh->dir, b);
		if (r == 0)
			return 0;
		if ((r != -ECONNREFUSED && r != -ENOENT && r != -ECONNRESET && r != -EAGAIN) ||
		    t_now_ns() > end)
			return t_fail("bus_connect = %d (%s)", r, bus_errmsg());
		atomic_fetch_add(&sh->retry_down[party], 1);
		t_nap_us(2000);
	}
}

/*
 * An attach failed with r: 0 to try again here, EX_RETRY to start the party
 * afresh, 1 to fail. busd killed while it handled the request leaves the
 * outcome unknown (-ECONNRESET): it may have granted a lease or a slot to
 * this pid, which the next busd keeps for as long as the pid lives, so only
 * a new process can ask again. busd down (-ECONNREFUSED), or the lease or
 * named cursor still held by the incarnation that was just killed (busd
 * learns of the death asynchronously: -EBUSY), are retried for a while.
 */
static int attach_failed(int party, int r, uint64_t end, const char *what)
{
	if (r == -ECONNRESET || r == -ETIMEDOUT)
		return EX_RETRY;
	if ((r == -ECONNREFUSED || r == -ENOENT || r == -EBUSY || r == -EAGAIN) &&
	    t_now_ns() < end) {
		atomic_fetch_add(r == -EBUSY ? &sh->retry_busy[party] : &sh->retry_down[party], 1);
		t_nap_us(2000);
		return 0;
	}
	return t_fail("%s = %d (%s)", what, r, bus_errmsg());
}

/* ------------------------------------------------------------------------ */
/* The producer                                                             */
/* ------------------------------------------------------------------------ */

/* Publish k events to topic t, by a random mix of the API's ways in. The
 * stats move only once events are visible: a batch that is cut short by a
 * kill is invisible, and the next producer reuses its sequence numbers. */
static int publish_some(struct bus_pub *p, int t, unsigned k)
{
	static uint8_t bufs[BATCH_MAX][MAXEV];
	struct bus_msg msgs[BATCH_MAX];
	uint64_t seed = sh->seed[t];

	while (k > 0) {
		unsigned m = 1 + (unsigned)(rnd() % BATCH_MAX), how = (unsigned)(rnd() % 5);
		uint64_t seq = bus_pub_next_seq(p);
		uint32_t len;
		void *buf;
		int r = 0;

		if (m > k)
			m = k;
		switch (how) {
		case 0:  /* a copy */
			m = 1;
			len = len_of(t, seq);
			t_fill(bufs[0], len, seed, seq);
			r = bus_pub_publish(p, type_of(t, seq), bufs[0], len, 0);
			break;
		case 1:  /* zero copy, claiming more than it needs */
			m = 1;
			len = len_of(t, seq);
			r = bus_pub_claim(p, MAXEV, &buf);
			if (r == 0) {
				t_fill(buf, len, seed, seq);
				r = bus_pub_commit(p, type_of(t, seq), len, 0);
			}
			break;
		case 2:  /* publishv */
			for (unsigned i = 0; i < m; i++) {
				len = len_of(t, seq + i);
				t_fill(bufs[i], len, seed, seq + i);
				msgs[i] = (struct bus_msg){ bufs[i], len, type_of(t, seq + i) };
			}
			r = bus_pub_publishv(p, msgs, m);
			if (r >= 0 && (unsigned)r != m)
				return t_fail("producer: %s: publishv published %d of %u",
					      topic_name[t], r, m);
			r = r < 0 ? r : 0;
			break;
		default:  /* a BUS_MORE batch, made visible by a flush (3) or its last commit (4) */
			for (unsigned i = 0; i < m && r == 0; i++) {
				unsigned fl = i + 1 < m || how == 3 ? BUS_MORE : 0;

				len = len_of(t, seq + i);
				r = bus_pub_claim(p, len, &buf);
				if (r == 0) {
					t_fill(buf, len, seed, seq + i);
					r = bus_pub_commit(p, type_of(t, seq + i), len, fl);
				}
			}
			if (r == 0 && (r = bus_pub_flush(p)) >= 0) {
				/* The last commit without BUS_MORE published them all. */
				if ((unsigned)r != (how == 3 ? m : 0))
					return t_fail("producer: %s: bus_pub_flush made %d of %u "
						      "visible", topic_name[t], r, m);
				r = 0;
			}
			break;
		}
		if (r < 0)
			return t_fail("producer: %s: publishing seq %llu: %d (%s)", topic_name[t],
				      (unsigned long long)seq, r, bus_errmsg());
		if (bus_pub_next_seq(p) != seq + m)
			return t_fail("producer: %s: %u events from seq %llu, but the next is %llu",
				      topic_name[t], m, (unsigned long long)seq,
				      (unsigned long long)bus_pub_next_seq(p));
		atomic_store(&sh->t[t].next, seq + m);
		k -= m;
	}
	return 0;
}

/* Wait until the log holds everything published: then it is acknowledged. */
static int sync_durable(struct bus_pub *p)
{
	uint64_t next = bus_pub_next_seq(p);
	int r;

	if (next <= 1)
		return 0;
	r = bus_pub_sync(p, next - 1, 30 * (int64_t)SEC);
	if (r < 0)
		return t_fail("producer: bus_pub_sync(%llu) = %d (%s)", (unsigned long long)next - 1,
			      r, bus_errmsg());
	atomic_store(&sh->t[T_DUR].acked, next);
	atomic_fetch_add(&sh->prod_syncs, 1);
	return 0;
}

static int producer(void)
{
	struct bus_pub *pub[NTOPIC] = { NULL };
	uint64_t end = t_now_ns() + 20 * SEC, last_sync;
	struct bus *b;
	int r, rc = 1;

	if (connect_bus(P_PROD, &b))
		return 1;
	for (int t = 0; t < NTOPIC; t++) {
		while ((r = bus_pub_attach(b, topic_name[t], &pub[t])) < 0) {
			if ((rc = attach_failed(P_PROD, r, end, "producer: bus_pub_attach")))
				goto out;
		}
	}
	rc = 1;
	/* While busd is down the durable ring fills and the producer waits
	 * for the flusher: long enough for any restart. */
	bus_pub_set_timeout(pub[T_DUR], 30 * (int64_t)SEC);
	for (int t = 0; t < NTOPIC; t++) {
		uint64_t n = bus_pub_next_seq(pub[t]), seen = atomic_load(&sh->t[t].next);

		if (n < seen) {
			atomic_fetch_add(&sh->prod_lost, seen - n);
			say(P_PROD, "LOST: producer: %s: the ring ends before seq %llu, but the last "
			    "producer saw it published up to %llu", topic_name[t],
			    (unsigned long long)n, (unsigned long long)seen - 1);
		}
		atomic_store(&sh->t[t].next, n);
	}
	atomic_fetch_add(&sh->prod_incarnations, 1);
	last_sync = t_now_ns();
	while (!atomic_load(&sh->stop_pub)) {
		WHERE(P_PROD, W_WORK);   /* publishing */
		for (int t = 0; t < NTOPIC; t++)
			if (publish_some(pub[t], t, 1 + (unsigned)(rnd() % (2 * sh->burst))))
				goto out;
		if (t_now_ns() - last_sync >= 5 * MS) {
			WHERE(P_PROD, W_WAIT);  /* in bus_pub_sync() */
			if (sync_durable(pub[T_DUR]))
				goto out;
			last_sync = t_now_ns();
		}
		WHERE(P_PROD, W_PAUSE);
		if (sh->nap_us)
			t_nap_us(rnd() % (2 * sh->nap_us));
	}
	if (sync_durable(pub[T_DUR]))
		goto out;
	for (int t = 0; t < NTOPIC; t++)
		atomic_store(&sh->t[t].final, bus_pub_next_seq(pub[t]));
	atomic_store(&sh->pub_done, 1);
	while (!atomic_load(&sh->quit))
		t_nap_us(2000);
	rc = 0;
out:
	for (int t = 0; t < NTOPIC; t++)
		bus_pub_close(pub[t]);
	bus_disconnect(b);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Consumers                                                                */
/* ------------------------------------------------------------------------ */

static int commit(struct bus_sub *sub, struct cstat *cs, const char *who)
{
	int r = bus_sub_commit(sub);

	if (r < 0)
		return t_fail("%s: bus_sub_commit = %d (%s)", who, r, bus_errmsg());
	atomic_store(&cs->committed, bus_sub_next_seq(sub));
	return 0;
}

static int consumer(int i)
{
	static uint8_t buf[MAXEV];
	const struct cons_def *cd = &cons_def[i];
	const int party = P_CONS + i, t = cd->topic, durable = t == T_DUR;
	const int cross = cd->group || durable;  /* continuity across incarnations */
	struct cstat *cs = &sh->c[i];
	struct bus_sub_opts o = { .from = BUS_FROM_OLDEST, .group = cd->group };
	uint64_t end = t_now_ns() + 20 * SEC, prev = atomic_load(&cs->next), expect;
	unsigned since_commit = 0, commit_every = 16 + (unsigned)(rnd() % 128);
	const int use_read = (int)(rnd() & 1);
	struct bus_event ev;
	struct bus_sub *sub = NULL;
	struct bus *b;
	int r, rc = 1;

	if (connect_bus(party, &b))
		return 1;
	if (!cd->group && durable) {
		o.from = BUS_FROM_SEQ;
		o.seq = prev;
	}
	while ((r = bus_sub_attach(b, topic_name[t], &o, &sub)) < 0) {
		if ((rc = attach_failed(party, r, end, "bus_sub_attach")))
			goto out;
	}
	rc = 1;
	atomic_fetch_add(&cs->incarnations, 1);
	if (use_read)
		atomic_fetch_add(&cs->by_read, 1);
	expect = bus_sub_next_seq(sub);
	if (cross) {
		if (expect > prev) {
			atomic_fetch_add(&cs->lost, expect - prev);
			say(party, "LOST: %s resumes at seq %llu, but got only to %llu before",
			    cd->name, (unsigned long long)expect, (unsigned long long)prev);
		}
		if (cd->group && expect < atomic_load(&cs->committed)) {
			atomic_fetch_add(&cs->rewinds, 1);
			say(party, "REWIND: %s resumes at seq %llu, before its last commit %llu",
			    cd->name, (unsigned long long)expect,
			    (unsigned long long)atomic_load(&cs->committed));
		}
		if (!cd->group && expect < prev) {
			atomic_fetch_add(&cs->disorder, 1);
			say(party, "%s: BUS_FROM_SEQ %llu starts at %llu", cd->name,
			    (unsigned long long)prev, (unsigned long long)expect);
		}
	} else {
		atomic_store(&cs->next, expect);
	}

	for (;;) {
		if (atomic_load(&sh->quit)) {
			/* Done at the producer's last seq, or when told to give up. */
			if (atomic_load(&sh->quit) > 1 || !atomic_load(&sh->pub_done) ||
			    expect >= atomic_load(&sh->t[t].final))
				break;
		}
		WHERE(party, W_WORK);
		r = use_read ? bus_sub_read(sub, buf, sizeof(buf), &ev) : bus_sub_next(sub, &ev);
		if (r == 1) {
			int pause = sh->pause_every && rnd() % sh->pause_every == 0, bad;

			/* Now and then a pause, long enough to be lapped: in half
			 * the cases (bus_sub_next) holding the view, which the
			 * producer then overwrites under us. */
			if (pause && !use_read && (rnd() & 1)) {
				WHERE(party, W_PAUSE);
				atomic_fetch_add(&cs->pauses, 1);
				t_nap_us(10000 + rnd() % 90000);
				pause = 0;
			}
			bad = bad_event(t, &ev);

			if (!use_read) {
				int c = bus_sub_confirm(sub, &ev);

				/* Overwritten while we looked: not received; the
				 * next call reports it (a gap, or the log). */
				if (c == -ENOBUFS) {
					atomic_fetch_add(&cs->overwritten, 1);
					continue;
				}
				if (c < 0) {
					t_fail("%s: bus_sub_confirm = %d (%s)", cd->name, c,
					       bus_errmsg());
					goto out;
				}
			}
			if (bad) {
				atomic_fetch_add(&cs->torn, 1);
				say(party, "TORN: %s: seq %llu: %u bytes (expected %u), type %#x, "
				    "checksum %s", cd->name, (unsigned long long)ev.seq, ev.len,
				    len_of(t, ev.seq), ev.type,
				    t_check(ev.data, ev.len, sh->seed[t], ev.seq) ? "bad" : "good");
			}
			if (ev.seq > expect) {
				atomic_fetch_add(&cs->lost, ev.seq - expect);
				say(party, "LOST: %s: got seq %llu, expected %llu, no gap reported",
				    cd->name, (unsigned long long)ev.seq,
				    (unsigned long long)expect);
			} else if (ev.seq < expect) {
				atomic_fetch_add(&cs->disorder, 1);
				say(party, "DISORDER: %s: got seq %llu after %llu", cd->name,
				    (unsigned long long)ev.seq, (unsigned long long)expect - 1);
			}
			/* Read from the log: a private copy, ev.pos_ = UINT64_MAX. */
			if (ev.pos_ == UINT64_MAX)
				atomic_fetch_add(&cs->from_log, 1);
			expect = ev.seq + 1;
			if (expect > atomic_load(&cs->high)) {
				atomic_fetch_add(&cs->delivered, 1);
				atomic_store(&cs->high, expect);
			} else {
				atomic_fetch_add(&cs->redelivered, 1);
			}
			if (cross)
				store_max(&cs->next, expect);
			else
				atomic_store(&cs->next, expect);
			if (cd->group && ++since_commit >= commit_every) {
				if (commit(sub, cs, cd->name))
					goto out;
				since_commit = 0;
			}
			if (pause) {
				WHERE(party, W_PAUSE);
				atomic_fetch_add(&cs->pauses, 1);
				t_nap_us(10000 + rnd() % 90000);
			}
			continue;
		}
		if (r == 0) {
			if (cd->group && since_commit) {
				if (commit(sub, cs, cd->name))
					goto out;
				since_commit = 0;
			}
			WHERE(party, W_WAIT);
			r = bus_sub_wait(sub, 50 * (int64_t)MS);
			if (r != 1 && r != -ETIMEDOUT && r != -EINTR) {
				t_fail("%s: bus_sub_wait = %d (%s)", cd->name, r, bus_errmsg());
				goto out;
			}
			continue;
		}
		if (r == -ENOBUFS) {
			uint64_t to = ev.seq + ev.lost, high = atomic_load(&cs->high);

			if (ev.seq != expect || ev.lost == 0) {
				say(party, "%s: a gap report of %llu event(s) at seq %llu, expected "
				    "at %llu", cd->name, (unsigned long long)ev.lost,
				    (unsigned long long)ev.seq, (unsigned long long)expect);
				if (ev.seq > expect)
					atomic_fetch_add(&cs->lost, ev.seq - expect);
				else
					atomic_fetch_add(&cs->disorder, 1);
			}
			if (durable) {
				atomic_fetch_add(&cs->lost, ev.lost);
				say(party, "LOST: %s: a gap of %llu event(s) at seq %llu on the "
				    "durable topic", cd->name, (unsigned long long)ev.lost,
				    (unsigned long long)ev.seq);
			} else {
				atomic_fetch_add(&cs->gap_reports, 1);
				if (to > high)
					atomic_fetch_add(&cs->gap_events,
							 to - (ev.seq > high ? ev.seq : high));
			}
			expect = to;
			if (cross)
				store_max(&cs->next, expect);
			else
				atomic_store(&cs->next, expect);
			continue;
		}
		if (r == -EAGAIN) {  /* log -> ring: the producer kept moving; documented */
			atomic_fetch_add(&cs->eagain, 1);
			continue;
		}
		if (r == -EPROTO || r == -EBADMSG) {
			atomic_fetch_add(&cs->torn, 1);
			say(party, "TORN: %s: corrupt data at seq %llu: %d (%s)", cd->name,
			    (unsigned long long)expect, r, bus_errmsg());
		}
		t_fail("%s: %s = %d (%s) at seq %llu", cd->name,
		       use_read ? "bus_sub_read" : "bus_sub_next", r, bus_errmsg(),
		       (unsigned long long)expect);
		goto out;
	}
	if (cd->group && commit(sub, cs, cd->name))
		goto out;
	while (!atomic_load(&sh->quit))
		t_nap_us(2000);
	rc = 0;
out:
	bus_sub_close(sub);
	bus_disconnect(b);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* The supervisor                                                           */
/* ------------------------------------------------------------------------ */

static const char *const party_name[NPARTY] = {
	"busd", "producer", "named-durable", "anon-durable", "named-volatile", "anon-volatile",
};

static struct {
	unsigned seconds, imin, imax, verbose;
	uint64_t kills, seed;
	int fsync;
} opt = { .seconds = 60, .imin = 2, .imax = 50, .fsync = BUS_FSYNC_ALWAYS };

static struct t_busd d;
static pid_t pids[NPARTY];           /* [P_BUSD] unused: d.pid */
static uint64_t kills[NPARTY], restarts[NPARTY];
static uint64_t killed_in[NPARTY][NWHERE];  /* what it was doing (busd: the producer) */
static uint64_t aimed[NPARTY], aimed_hit[NPARTY];  /* kills aimed at a moment; found it */
static uint64_t busd_down_ns, busd_down_max;  /* SIGKILL to READY=1 of the next busd */
static volatile sig_atomic_t interrupted;
static int failed;                   /* a party failed, busd misbehaved, ... */
static int quitting;                 /* exit 0 is expected from the parties now */
static char logdir[700];

/* The live replay: a follow reader on the durable log. */
static struct bus_log *rl;
static uint64_t rl_next = 1, rl_events, rl_lost, rl_torn, rl_reopens;
static int rl_dead;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "soak: FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	failed = 1;
}

static void on_signal(int sig)
{
	interrupted = sig;
}

static void block_signals(int how)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(how, &set, NULL);
}

static void spawn(int p)
{
	pid_t me = getpid(), pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fail("fork: %s", strerror(errno));
		return;
	}
	WHERE(p, W_START);
	if (pid == 0) {
		int rc;

		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		block_signals(SIG_UNBLOCK);
		/* Die with the supervisor, whatever kills it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != me)
			_exit(99);
		rng ^= t_now_ns() * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid() << 32 ^ (uint64_t)p;
		if (!rng)
			rng = 1;
		rc = p == P_PROD ? producer() : consumer(p - P_CONS);
		exit(rc);
	}
	pids[p] = pid;
}

static const char *busd_args[] = { "--log-level", "info", "--log-file", "-", NULL };

static int busd_start(int restart)
{
	int r;

	/* t_busd waits for READY=1 in a recv() with a timeout, which a signal
	 * would cut short (and it would then kill busd): hold them off. busd
	 * blocks both itself (signalfd), so what it inherits changes nothing. */
	block_signals(SIG_BLOCK);
	if (restart)
		r = t_busd_restart(&d, busd_args[0], busd_args[1], busd_args[2], busd_args[3],
				   NULL);
	else
		r = t_busd_start(&d, busd_args[0], busd_args[1], busd_args[2], busd_args[3],
				 NULL);
	block_signals(SIG_UNBLOCK);
	if (r != 0)
		fail("busd did not %sstart: %d (its stderr is shown at the end)",
		     restart ? "re" : "", r);
	return r;
}

static int party_of(pid_t pid)
{
	if (pid == d.pid)
		return P_BUSD;
	for (int p = P_PROD; p < NPARTY; p++)
		if (pids[p] == pid)
			return p;
	return -1;
}

/* A party ended with status st without being killed by us. */
static void ended(int p, int st)
{
	if (p == P_BUSD) {
		t_forget_pid(d.pid);
		d.pid = 0;
		if (!interrupted)
			fail("busd ended by itself: %s %d", WIFEXITED(st) ? "exit" : "signal",
			     WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		return;
	}
	pid_t pid = pids[p];

	pids[p] = 0;
	if (WIFEXITED(st) && WEXITSTATUS(st) == EX_RETRY && !interrupted) {
		restarts[p]++;
		spawn(p);
		return;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && quitting)
		return;
	if (!interrupted)
		fail("%s (pid %d) ended unexpectedly: %s %d", party_name[p], (int)pid,
		     WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) :
		     WTERMSIG(st));
}

/* Reap whatever ended by itself. */
static void poll_children(void)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		int p = party_of(pid);

		if (p >= 0)
			ended(p, st);
	}
}

/* Read the durable log as far as it goes now (at most max events). */
static void replay_step(uint64_t max)
{
	struct bus_event ev;
	int r;

	if (rl_dead)
		return;
	if (!rl) {
		if (atomic_load(&sh->t[T_DUR].acked) == 0 || bus_log_open(logdir, &rl) < 0) {
			rl = NULL;
			return;
		}
		bus_log_follow(rl, 1);
	}
	while (max--) {
		r = bus_log_next(rl, &ev);
		if (r == 0)
			return;
		if (r == 1) {
			if (ev.seq != rl_next) {
				say(P_BUSD, "%s: log replay: seq %llu, expected %llu",
				    ev.seq > rl_next ? "LOST" : "DISORDER",
				    (unsigned long long)ev.seq, (unsigned long long)rl_next);
				if (ev.seq > rl_next)
					rl_lost += ev.seq - rl_next;
				else
					rl_torn++;
			}
			if (bad_event(T_DUR, &ev)) {
				rl_torn++;
				say(P_BUSD, "TORN: log replay: seq %llu", (unsigned long long)ev.seq);
			}
			rl_next = ev.seq + 1;
			rl_events++;
			continue;
		}
		if (r == -ENOBUFS) {
			rl_lost += ev.lost;
			say(P_BUSD, "LOST: the log lacks %llu event(s) from seq %llu",
			    (unsigned long long)ev.lost, (unsigned long long)ev.seq);
			rl_next = ev.seq + ev.lost;
			continue;
		}
		if (r == -EBADMSG)
			rl_torn++;
		say(P_BUSD, "log replay stops at seq %llu: %d (%s)", (unsigned long long)rl_next,
		    r, bus_errmsg());
		fail("the durable log cannot be read at seq %llu: %d (%s)",
		     (unsigned long long)rl_next, r, bus_errmsg());
		rl_dead = 1;
		return;
	}
}

/*
 * busd is dead: its log is what it wrote. It must hold every event the
 * producer saw acknowledged before the kill. A follow reader that comes up
 * short gets a second opinion from a fresh reader: a follow reader that
 * lost track of a segment fails the run too (a reader bug, though not a
 * lost event).
 */
static void replay_check(uint64_t acked)
{
	struct bus_log *l;

	replay_step(UINT64_MAX);
	if (rl_dead || rl_next >= acked)
		return;
	if (bus_log_open(logdir, &l) == 0) {
		bus_log_follow(l, 1);
		if (bus_log_seek(l, rl_next) == 0) {
			say(P_BUSD, "the log follow reader stopped at seq %llu, before the acked "
			    "%llu: reading on with a fresh reader", (unsigned long long)rl_next,
			    (unsigned long long)acked);
			bus_log_close(rl);
			rl = l;
			rl_reopens++;
			replay_step(UINT64_MAX);
		} else {
			bus_log_close(l);
		}
	}
	if (!rl_dead && rl_next < acked) {
		rl_lost += acked - rl_next;
		say(P_BUSD, "LOST: the log ends at seq %llu, but events up to %llu were "
		    "acknowledged", (unsigned long long)rl_next - 1,
		    (unsigned long long)acked - 1);
	}
}

static uint64_t sum_u64(const uint64_t *v, int n)
{
	uint64_t s = 0;

	while (n--)
		s += *v++;
	return s;
}

static uint64_t total_kills(void)
{
	uint64_t n = 0;

	for (int p = 0; p < NPARTY; p++)
		n += kills[p];
	return n;
}

static uint64_t sum_c(size_t off)
{
	uint64_t n = 0;

	for (int i = 0; i < NCONS; i++)
		n += atomic_load((_Atomic uint64_t *)((char *)&sh->c[i] + off));
	return n;
}
#define SUM_C(field) sum_c(offsetof(struct cstat, field))

static uint64_t sum_parties(const _Atomic uint64_t *v, int from)
{
	uint64_t n = 0;

	for (int p = from; p < NPARTY; p++)
		n += atomic_load(&v[p]);
	return n;
}

/* The last seq the producer saw synced to the durable log (0: none yet). */
static uint64_t last_acked(void)
{
	uint64_t a = atomic_load(&sh->t[T_DUR].acked);

	return a ? a - 1 : 0;
}

static uint64_t t0, last_progress;

static void progress(void)
{
	uint64_t now = t_now_ns();

	if (!opt.verbose || now - last_progress < 5 * SEC)
		return;
	last_progress = now;
	fprintf(stderr, "soak: %4llu s: kills %llu (busd %llu, producer %llu), published %llu + "
		"%llu, acked %llu, delivered %llu, replayed %llu, gaps %llu, lost %llu, torn "
		"%llu\n", (unsigned long long)((now - t0) / SEC), (unsigned long long)total_kills(),
		(unsigned long long)kills[P_BUSD], (unsigned long long)kills[P_PROD],
		(unsigned long long)atomic_load(&sh->t[T_DUR].next) - 1,
		(unsigned long long)atomic_load(&sh->t[T_VOL].next) - 1,
		(unsigned long long)last_acked(), (unsigned long long)SUM_C(delivered),
		(unsigned long long)rl_events,
		(unsigned long long)SUM_C(gap_reports),
		(unsigned long long)(SUM_C(lost) + atomic_load(&sh->prod_lost) + rl_lost),
		(unsigned long long)(SUM_C(torn) + rl_torn));
}

/* Wait until `until` (monotonic ns) doing the supervisor's chores; 1 if the
 * run must stop (a failure or a signal). */
static int idle_until(uint64_t until)
{
	for (;;) {
		uint64_t now;

		poll_children();
		replay_step(20000);
		progress();
		if (failed || interrupted)
			return 1;
		now = t_now_ns();
		if (now >= until)
			return 0;
		t_nap_us(until - now > 5 * MS ? 5000 : (until - now) / 1000 + 1);
	}
}

/* Wait for cond() up to timeout_s, doing the chores; 0 when it holds. */
static int wait_for(int (*cond)(void), unsigned timeout_s)
{
	uint64_t end = t_now_ns() + timeout_s * SEC;

	while (!cond()) {
		if (t_now_ns() > end)
			return -1;
		if (idle_until(t_now_ns() + 2 * MS))
			return -1;
	}
	return 0;
}

/*
 * Wait, spinning politely, until party p is doing w, at most max_ns: 1 if
 * it got there. Kills at random moments mostly find a party asleep between
 * two bursts; an aimed kill lands while the producer is inside a publish, a
 * consumer inside a read, or busd flushing (the producer waits in
 * bus_pub_sync() for it).
 */
static int await_where(int p, int w, uint64_t max_ns)
{
	uint64_t end = t_now_ns() + max_ns;

	while (atomic_load(&sh->where[p]) != w) {
		if (t_now_ns() > end)
			return 0;
		sched_yield();
	}
	return 1;
}

static void kill_party(int p, int aim)
{
	int st, w;

	if (aim) {
		aimed[p]++;
		/* A consumer reads right after a burst is published. */
		if (p >= P_CONS)
			await_where(P_PROD, W_WORK, 20 * MS);
		aimed_hit[p] += p == P_BUSD ? await_where(P_PROD, W_WAIT, 20 * MS) :
					      await_where(p, W_WORK, 20 * MS);
	}

	if (p == P_BUSD) {
		uint64_t acked = atomic_load(&sh->t[T_DUR].acked), t = t_now_ns();
		pid_t pid = d.pid;

		w = atomic_load(&sh->where[P_PROD]);
		kill(pid, SIGKILL);
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) {
			ended(P_BUSD, st);
			return;
		}
		t_forget_pid(pid);
		d.pid = 0;
		kills[p]++;
		killed_in[p][w]++;
		replay_check(acked);
		if (busd_start(1) == 0) {
			t = t_now_ns() - t;
			busd_down_ns += t;
			if (t > busd_down_max)
				busd_down_max = t;
		}
		return;
	}
	if (!pids[p])
		return;
	w = atomic_load(&sh->where[p]);
	kill(pids[p], SIGKILL);
	while (waitpid(pids[p], &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) {
		ended(p, st);  /* it ended by itself just before: restarted there if it asked */
		return;
	}
	kills[p]++;
	killed_in[p][w]++;
	spawn(p);
}

static void kill_all(void)
{
	for (int p = P_PROD; p < NPARTY; p++) {
		if (pids[p] > 0) {
			kill(pids[p], SIGKILL);
			while (waitpid(pids[p], NULL, 0) < 0 && errno == EINTR)
				;
			pids[p] = 0;
		}
	}
	if (d.pid > 0)
		t_busd_kill(&d);
}

static int cons_attached(void)
{
	for (int i = 0; i < NCONS; i++)
		if (atomic_load(&sh->c[i].incarnations) == 0)
			return 0;
	return 1;
}

static int pub_done(void)
{
	return atomic_load(&sh->pub_done);
}

static int cons_drained(void)
{
	for (int i = 0; i < NCONS; i++)
		if (atomic_load(&sh->c[i].next) < atomic_load(&sh->t[cons_def[i].topic].final))
			return 0;
	return 1;
}

static int all_exited(void)
{
	for (int p = P_PROD; p < NPARTY; p++)
		if (pids[p])
			return 0;
	return 1;
}

/* Create the topics through busd, then let go of the connection (and its
 * thread): the supervisor forks its parties from a single thread. */
static int create_topics(void)
{
	struct bus_topic_opts o[NTOPIC] = {
		[T_DUR] = { .ring_size = 64 << 10, .max_event = MAXEV, .flags = BUS_TOPIC_DURABLE,
			    .fsync = (uint32_t)opt.fsync, .fsync_interval_ns = 5 * MS,
			    .segment_bytes = 1 << 20, .retain_bytes = 32 << 20 },
		[T_VOL] = { .ring_size = 32 << 10, .max_event = MAXEV },
	};
	struct bus *b;
	int r;

	if ((r = bus_connect(d.dir, &b)) < 0) {
		fail("bus_connect = %d (%s)", r, bus_errmsg());
		return r;
	}
	for (int t = 0; t < NTOPIC && r == 0; t++)
		if ((r = bus_create(b, topic_name[t], &o[t])) < 0)
			fail("bus_create %s = %d (%s)", topic_name[t], r, bus_errmsg());
	bus_disconnect(b);
	return r;
}

/* A named cursor, attached afresh once its consumer has gone, must resume
 * exactly after its last commit: the producer's last seq. */
static uint64_t check_cursors(const uint64_t *final)
{
	uint64_t lost = 0;
	struct bus *b;
	int r;

	if ((r = bus_connect(d.dir, &b)) < 0) {
		fail("bus_connect = %d (%s)", r, bus_errmsg());
		return 0;
	}
	for (int i = 0; i < NCONS; i++) {
		struct bus_sub_opts o = { .from = BUS_FROM_END, .group = cons_def[i].group };
		uint64_t at, end = t_now_ns() + 10 * SEC;
		struct bus_sub *sub;

		if (!o.group)
			continue;
		/* -EBUSY while busd is still letting go of the consumer's slot. */
		while ((r = bus_sub_attach(b, topic_name[cons_def[i].topic], &o, &sub)) == -EBUSY &&
		       t_now_ns() < end)
			t_nap_us(5000);
		if (r < 0) {
			fail("the cursor of %s: bus_sub_attach = %d (%s)", cons_def[i].name, r,
			     bus_errmsg());
			continue;
		}
		at = bus_sub_next_seq(sub);
		if (at != final[cons_def[i].topic]) {
			fail("the cursor of %s resumes at %llu, not after the producer's last seq "
			     "%llu, which its consumer read and committed", cons_def[i].name,
			     (unsigned long long)at, (unsigned long long)final[cons_def[i].topic] - 1);
			if (at > final[cons_def[i].topic])
				lost++;
		}
		bus_sub_close(sub);
	}
	bus_disconnect(b);
	return lost;
}

/* Read the whole durable log from scratch: every seq from its oldest to
 * final - 1, once, in order, whole. */
static uint64_t final_replay(uint64_t final, uint64_t *first, uint64_t *last, uint64_t *lost,
			     uint64_t *torn)
{
	struct bus_log_info li;
	struct bus_event ev;
	struct bus_log *l;
	uint64_t n = 0, want;
	int r;

	if ((r = bus_log_open(logdir, &l)) < 0) {
		fail("bus_log_open(%s) = %d (%s)", logdir, r, bus_errmsg());
		return 0;
	}
	if ((r = bus_log_info(l, &li)) < 0) {
		fail("bus_log_info = %d (%s)", r, bus_errmsg());
		bus_log_close(l);
		return 0;
	}
	*first = want = li.first_seq;
	while ((r = bus_log_next(l, &ev)) != 0) {
		if (r == -ENOBUFS) {  /* a hole; reading goes on after it */
			*lost += ev.lost;
			fail("final replay: the log lacks %llu event(s) from seq %llu",
			     (unsigned long long)ev.lost, (unsigned long long)ev.seq);
			want = ev.seq + ev.lost;
			continue;
		}
		if (r < 0) {
			(*torn)++;
			fail("final replay stops at seq %llu: %d (%s)", (unsigned long long)want, r,
			     bus_errmsg());
			break;
		}
		if (ev.seq != want) {
			fail("final replay: seq %llu, expected %llu", (unsigned long long)ev.seq,
			     (unsigned long long)want);
			if (ev.seq > want)
				*lost += ev.seq - want;
			else
				(*torn)++;
		}
		if (bad_event(T_DUR, &ev)) {
			(*torn)++;
			say(P_BUSD, "TORN: final replay: seq %llu", (unsigned long long)ev.seq);
		}
		want = ev.seq + 1;
		n++;
	}
	*last = want - 1;
	if (r == 0 && want != final) {
		fail("final replay: the log ends at seq %llu, the producer's last is %llu",
		     (unsigned long long)want - 1, (unsigned long long)final - 1);
		if (want < final)
			*lost += final - want;
	}
	bus_log_close(l);
	return n;
}

/* Sanitizer reports and busd's own errors in its stderr (all incarnations). */
static void scan_busd_err(uint64_t *errors, uint64_t *warnings)
{
	FILE *f = fopen(d.err, "r");
	char line[1200];
	int shown = 0;

	*errors = *warnings = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "Sanitizer") || strstr(line, "runtime error:")) {
			if (!failed || shown < 10)
				fprintf(stderr, "soak: busd: %s", line);
			if (!failed)
				fail("busd's stderr has a sanitizer report (above)");
			shown++;
		}
		if (!strncmp(line, "<3>", 3)) {
			if (opt.verbose || shown < 10)
				fprintf(stderr, "soak: busd error: %s", line + 3);
			shown++;
			(*errors)++;
		} else if (!strncmp(line, "<4>", 3)) {
			if (opt.verbose)
				fprintf(stderr, "soak: busd warning: %s", line + 3);
			(*warnings)++;
		}
	}
	fclose(f);
}

/* The last lines of busd's stderr, for a run that failed (the file goes
 * with the run's directory). */
static void show_busd_err(int lines)
{
	FILE *f = fopen(d.err, "r");
	long ends[64] = { 0 };
	int n = 0, c;
	char line[1200];

	if (!f || lines > 63)
		goto out;
	while ((c = getc(f)) != EOF)
		if (c == '\n')
			ends[++n % 64] = ftell(f);
	fseek(f, n > lines ? ends[(n - lines) % 64] : 0, SEEK_SET);
	fprintf(stderr, "soak: the last %d lines of busd's stderr (%s):\n", n < lines ? n : lines,
		d.err);
	while (fgets(line, sizeof(line), f))
		fprintf(stderr, "  %s", line);
out:
	if (f)
		fclose(f);
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: soak [OPTION]...\n"
"Crash soak of bus: busd, a producer and four consumers (named and anonymous,\n"
"on a durable and a volatile topic), one of them killed with SIGKILL at random\n"
"moments and started again, while every event is checked. Exits 0 only if no\n"
"event was lost or torn and nothing failed.\n"
"\n"
"  --seconds N        stop killing after N seconds (default 60; with --kills\n"
"                     and no --seconds: no time limit)\n"
"  --kills N          stop after N kills\n"
"  --seed N           seed of the kill schedule and the payloads (default: random)\n"
"  --interval MIN-MAX time between kills, ms (default 2-50)\n"
"  --burst N          events per topic per producer round, on average (default 8)\n"
"  --nap-us N         producer's pause between rounds, on average (default 1000)\n"
"  --fsync POLICY     durable topic: none, interval (5 ms) or always (default)\n"
"  -v, --verbose      progress every 5 s, busd's errors and warnings\n"
"  -h, --help         this text\n"
"\n"
"Runs in a private directory on /dev/shm ($BUS_TEST_SHM if set), removed at the\n"
"end. busd is T_BUILD_DIR/bin/busd of the build the program belongs to.\n");
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno || end == s || *end || *s == '-' ? -1 : 0;
}

static int parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "kills", required_argument, NULL, 'k' },
		{ "seed", required_argument, NULL, 'S' },
		{ "interval", required_argument, NULL, 'i' },
		{ "burst", required_argument, NULL, 'b' },
		{ "nap-us", required_argument, NULL, 'n' },
		{ "fsync", required_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c, li = 0, have_seconds = 0, have_seed = 0;
	char *dash, lo_hi[64];
	uint64_t v, w;

	sh->burst = 8;
	sh->nap_us = 1000;
	sh->pause_every = 2000;
	while ((c = getopt_long(argc, argv, "vh", lo, &li)) != -1) {
		switch (c) {
		case 's':
			if (parse_u64(optarg, &v) || v > 1000000)
				goto bad;
			opt.seconds = (unsigned)v;
			have_seconds = 1;
			break;
		case 'k':
			if (parse_u64(optarg, &opt.kills))
				goto bad;
			break;
		case 'S':
			if (parse_u64(optarg, &opt.seed))
				goto bad;
			have_seed = 1;
			break;
		case 'i':
			snprintf(lo_hi, sizeof(lo_hi), "%s", optarg);
			dash = strchr(lo_hi, '-');
			if (!dash || strlen(optarg) >= sizeof(lo_hi))
				goto bad;
			*dash = 0;
			if (parse_u64(lo_hi, &v) || parse_u64(dash + 1, &w) || v > w || w > 60000)
				goto bad;
			opt.imin = (unsigned)v;
			opt.imax = (unsigned)w;
			break;
		case 'b':
			if (parse_u64(optarg, &v) || v < 1 || v > 4096)
				goto bad;
			sh->burst = (uint32_t)v;
			break;
		case 'n':
			if (parse_u64(optarg, &v) || v > 1000000)
				goto bad;
			sh->nap_us = (uint32_t)v;
			break;
		case 'f':
			if (!strcmp(optarg, "none"))
				opt.fsync = BUS_FSYNC_NONE;
			else if (!strcmp(optarg, "interval"))
				opt.fsync = BUS_FSYNC_INTERVAL;
			else if (!strcmp(optarg, "always"))
				opt.fsync = BUS_FSYNC_ALWAYS;
			else
				goto bad;
			break;
		case 'v':
			opt.verbose = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			fprintf(stderr, "Try 'soak --help'.\n");
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "soak: unexpected argument '%s'\nTry 'soak --help'.\n",
			argv[optind]);
		return -1;
	}
	if (opt.kills && !have_seconds)
		opt.seconds = 0;
	if (!have_seed)
		opt.seed = t_rand();
	return 0;
bad:
	fprintf(stderr, "soak: --%s '%s': expected %s\nTry 'soak --help'.\n", lo[li].name, optarg,
		c == 'i' ? "MIN-MAX in ms, MIN <= MAX <= 60000" : c == 'f' ?
		"none, interval or always" : "a number in range");
	return -1;
}

int main(int argc, char **argv)
{
	uint64_t final[NTOPIC] = { 0 }, deadline, first = 0, last = 0, f_lost = 0, f_torn = 0;
	uint64_t replayed = 0;
	uint64_t berr = 0, bwarn = 0, lost, torn, cursor_lost = 0, undrained = 0, wall;
	struct sigaction sa = { .sa_handler = on_signal };
	int pass, stop_rc;

	sh = t_shared(sizeof(*sh));
	if (parse_args(argc, argv))
		return 2;
	rng = opt.seed ? opt.seed : 1;
	for (int t = 0; t < NTOPIC; t++)
		sh->seed[t] = rnd();
	for (int i = 0; i < NCONS; i++)
		atomic_store(&sh->c[i].next, 1);
	for (int t = 0; t < NTOPIC; t++)
		atomic_store(&sh->t[t].next, 1);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	t_init();
	t0 = last_progress = t_now_ns();
	printf("soak: seed %llu, %s%u s, %s%llu kills, interval %u-%u ms, fsync %s, dir %s\n",
	       (unsigned long long)opt.seed, opt.seconds ? "" : "no limit: ", opt.seconds,
	       opt.kills ? "" : "no limit: ", (unsigned long long)opt.kills, opt.imin, opt.imax,
	       opt.fsync == BUS_FSYNC_NONE ? "none" : opt.fsync == BUS_FSYNC_INTERVAL ?
	       "interval" : "always", t_dir());
	fflush(stdout);

	if (busd_start(0) || create_topics())
		goto out;
	snprintf(sh->dir, sizeof(sh->dir), "%s", d.dir);
	snprintf(logdir, sizeof(logdir), "%s/log/%s", d.state, topic_name[T_DUR]);
	/* Consumers first, so that every one of them starts at seq 1. */
	for (int p = P_CONS; p < NPARTY; p++)
		spawn(p);
	if (wait_for(cons_attached, 30)) {
		if (!failed && !interrupted)
			fail("the consumers did not attach within 30 s");
		goto out;
	}
	spawn(P_PROD);

	/* Kill, restart, go on. */
	deadline = opt.seconds ? t0 + opt.seconds * SEC : UINT64_MAX;
	while (!failed && !interrupted && (!opt.kills || total_kills() < opt.kills)) {
		uint64_t at = t_now_ns() + (opt.imin + rnd() % (opt.imax - opt.imin + 1)) * MS;

		if (at > deadline)
			at = deadline;
		if (idle_until(at) || t_now_ns() >= deadline)
			break;
		kill_party((int)(rnd() % NPARTY), (int)(rnd() & 1));
	}
	if (failed || interrupted)
		goto out;

	/* The end: the producer stops, everyone drains to its last seq. */
	atomic_store(&sh->stop_pub, 1);
	if (wait_for(pub_done, 60)) {
		if (!failed && !interrupted)
			fail("the producer did not stop within 60 s");
		goto out;
	}
	for (int t = 0; t < NTOPIC; t++)
		final[t] = atomic_load(&sh->t[t].final);
	if (wait_for(cons_drained, 60) && !failed && !interrupted) {
		for (int i = 0; i < NCONS; i++) {
			uint64_t n = atomic_load(&sh->c[i].next), f = final[cons_def[i].topic];

			if (n < f) {
				undrained += f - n;
				fprintf(stderr, "soak: LOST: %s got only to seq %llu of %llu in 60 s\n",
					cons_def[i].name, (unsigned long long)n - 1,
					(unsigned long long)f - 1);
			}
		}
		atomic_store(&sh->quit, 2);
	} else {
		atomic_store(&sh->quit, 1);
	}
	if (failed || interrupted)
		goto out;
	quitting = 1;
	if (wait_for(all_exited, 30)) {
		if (!failed && !interrupted)
			fail("the parties did not exit within 30 s");
		goto out;
	}
	cursor_lost = check_cursors(final);
	replay_step(UINT64_MAX);
	stop_rc = t_busd_stop(&d);
	if (stop_rc != 0)
		fail("busd did not stop cleanly: %d", stop_rc);
	/* busd wrote everything at its clean stop: the log ends at final. */
	replay_check(final[T_DUR]);
	if (!rl_dead && rl_next != final[T_DUR])
		fail("the live replay ends at seq %llu, the producer's last is %llu",
		     (unsigned long long)rl_next - 1, (unsigned long long)final[T_DUR] - 1);
	replayed = final_replay(final[T_DUR], &first, &last, &f_lost, &f_torn);

out:
	kill_all();
	scan_busd_err(&berr, &bwarn);
	if (failed)
		show_busd_err(30);
	bus_log_close(rl);
	t_fini();
	wall = t_now_ns() - t0;
	if (rl_reopens)
		fprintf(stderr, "soak: FAIL: the log's follow reader (bus_log_follow) stopped short "
			"of what the log held %llu time(s); a fresh reader on the same files read "
			"on: a reader bug (no event lost)\n", (unsigned long long)rl_reopens);

	lost = atomic_load(&sh->prod_lost) + SUM_C(lost) + rl_lost + f_lost + undrained + cursor_lost;
	torn = SUM_C(torn) + rl_torn + f_torn;
	pass = !failed && !interrupted && lost == 0 && torn == 0 && SUM_C(disorder) == 0 &&
	       SUM_C(rewinds) == 0 && rl_reopens == 0;
	printf("kills: busd=%llu producer=%llu consumers=%llu total=%llu\n",
	       (unsigned long long)kills[P_BUSD], (unsigned long long)kills[P_PROD],
	       (unsigned long long)(total_kills() - kills[P_BUSD] - kills[P_PROD]),
	       (unsigned long long)total_kills());
	printf("busd down per kill (SIGKILL to READY): mean %.1f ms, max %.1f ms\n",
	       kills[P_BUSD] ? (double)busd_down_ns / 1e6 / (double)kills[P_BUSD] : 0.0,
	       (double)busd_down_max / 1e6);
	printf("kills per consumer:");
	for (int i = 0; i < NCONS; i++)
		printf(" %s=%llu", cons_def[i].name, (unsigned long long)kills[P_CONS + i]);
	for (int p = P_BUSD; p <= P_CONS; p++) {
		printf("\n%s killed while%s:", p == P_BUSD ? "busd" : p == P_PROD ? "producer" :
		       "consumers", p == P_BUSD ? " the producer was" : "");
		for (int w = 0; w < NWHERE; w++) {
			uint64_t n = 0;

			for (int q = p; q < (p == P_CONS ? NPARTY : p + 1); q++)
				n += killed_in[q][w];
			printf(" %s=%llu", p != P_CONS && w == W_WORK ? "publishing" :
			       p != P_CONS && w == W_WAIT ? "in-sync" : where_name[w],
			       (unsigned long long)n);
		}
	}
	printf("\naimed kills (found the moment): busd %llu (%llu), producer %llu (%llu), "
	       "consumers %llu (%llu)", (unsigned long long)aimed[P_BUSD],
	       (unsigned long long)aimed_hit[P_BUSD], (unsigned long long)aimed[P_PROD],
	       (unsigned long long)aimed_hit[P_PROD],
	       (unsigned long long)sum_u64(aimed + P_CONS, NCONS),
	       (unsigned long long)sum_u64(aimed_hit + P_CONS, NCONS));
	printf("\nrestarts (attach cut short by a busd kill): producer=%llu consumers=%llu\n",
	       (unsigned long long)restarts[P_PROD],
	       (unsigned long long)(restarts[P_CONS] + restarts[P_CONS + 1] +
				    restarts[P_CONS + 2] + restarts[P_CONS + 3]));
	printf("retries: busd down %llu; -EBUSY producer lease %llu, named cursors %llu\n",
	       (unsigned long long)sum_parties(sh->retry_down, 0),
	       (unsigned long long)atomic_load(&sh->retry_busy[P_PROD]),
	       (unsigned long long)sum_parties(sh->retry_busy, P_CONS));
	printf("published: %llu (durable %llu, volatile %llu; producer incarnations %llu, "
	       "syncs %llu)\n",
	       (unsigned long long)(atomic_load(&sh->t[T_DUR].next) - 1 +
				    atomic_load(&sh->t[T_VOL].next) - 1),
	       (unsigned long long)atomic_load(&sh->t[T_DUR].next) - 1,
	       (unsigned long long)atomic_load(&sh->t[T_VOL].next) - 1,
	       (unsigned long long)atomic_load(&sh->prod_incarnations),
	       (unsigned long long)atomic_load(&sh->prod_syncs));
	printf("acked: durable up to seq %llu (synced), volatile up to seq %llu\n",
	       (unsigned long long)last_acked(),
	       (unsigned long long)atomic_load(&sh->t[T_VOL].next) - 1);
	printf("consumer incarnations: %llu (bus_sub_read %llu, bus_sub_next + confirm %llu); "
	       "pauses %llu\n", (unsigned long long)SUM_C(incarnations),
	       (unsigned long long)SUM_C(by_read),
	       (unsigned long long)(SUM_C(incarnations) - SUM_C(by_read)),
	       (unsigned long long)SUM_C(pauses));
	printf("delivered: %llu (", (unsigned long long)SUM_C(delivered));
	for (int i = 0; i < NCONS; i++)
		printf("%s%s=%llu", i ? " " : "", cons_def[i].name,
		       (unsigned long long)atomic_load(&sh->c[i].delivered));
	printf("); from the log %llu; redelivered (at-least-once) %llu; overwritten views %llu; "
	       "EAGAIN %llu\n", (unsigned long long)SUM_C(from_log),
	       (unsigned long long)SUM_C(redelivered), (unsigned long long)SUM_C(overwritten),
	       (unsigned long long)SUM_C(eagain));
	printf("replayed: %llu (log seqs %llu..%llu, read again after the run); live %llu"
	       " (reader reopened %llu)\n", (unsigned long long)replayed,
	       (unsigned long long)first, (unsigned long long)last,
	       (unsigned long long)rl_events, (unsigned long long)rl_reopens);
	printf("gaps(volatile, reported): %llu reports, %llu events\n",
	       (unsigned long long)SUM_C(gap_reports), (unsigned long long)SUM_C(gap_events));
	printf("disorder: %llu, cursor rewinds: %llu, busd log: %llu errors, %llu warnings\n",
	       (unsigned long long)SUM_C(disorder), (unsigned long long)SUM_C(rewinds),
	       (unsigned long long)berr, (unsigned long long)bwarn);
	printf("lost: %llu\n", (unsigned long long)lost);
	printf("torn: %llu\n", (unsigned long long)torn);
	printf("wall: %.1f s\n", (double)wall / 1e9);
	printf("result: %s\n", pass ? "PASS" : interrupted ? "INTERRUPTED" : "FAIL");
	return pass ? 0 : interrupted ? 128 + interrupted : 1;
}
