/* SPDX-License-Identifier: MIT */
/*
 * Description: a producer killed with SIGKILL at any point leaves the topic
 * consistent: consumers see only whole, committed, flushed events; the kernel
 * drops the lease so the next producer can attach; and the next producer
 * continues the sequence exactly where what consumers could see ends. While a
 * producer lives, a second one is refused with -EBUSY.
 *
 * Producers here are always real processes (t_fork): they are killed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "ring.h"
#include "t_util.h"

#define SEC 1000000000ull
#define KILLED (128 + SIGKILL)  /* t_wait_pid() of a SIGKILLed child */

TestSuite(crash, .init = t_init, .fini = t_fini, .timeout = 120);

/* ------------------------------------------------------------------------ */
/* Killed at random points                                                  */
/* ------------------------------------------------------------------------ */

#define RAND_RING (4u << 20)
#define RAND_MAX_EVENT 1024u

struct rand_ctl {
	const char *topic;
	uint64_t seed;
	pid_t parent;
	/* Per producer, reset by the parent before each fork. */
	_Atomic uint32_t opened;    /* bus_pub_open() returned */
	_Atomic int32_t open_rc;
	_Atomic uint64_t start_seq; /* its bus_pub_next_seq() right after the open */
	char errmsg[256];
};

/* Publishes t_fill(seed, seq) events through a random mix of APIs until it
 * is killed. */
static int doomed_producer(void *arg)
{
	struct rand_ctl *c = arg;
	static uint8_t scratch[RAND_MAX_EVENT];
	uint64_t deadline, seq;
	struct bus_pub *pub;
	void *buf;
	int r;

	r = bus_pub_open(c->topic, &pub);
	atomic_store(&c->open_rc, r);
	if (r != 0) {
		snprintf(c->errmsg, sizeof(c->errmsg), "%s", bus_errmsg());
		atomic_store(&c->opened, 1);
		return 3;
	}
	atomic_store(&c->start_seq, bus_pub_next_seq(pub));
	atomic_store(&c->opened, 1);
	deadline = t_now_ns() + 20 * SEC; /* the parent kills us long before */
	while (t_now_ns() < deadline) {
		unsigned how = (unsigned)(t_rand() % 4), k = 1, i;

		if (how == 3)
			k = 1 + (unsigned)(t_rand() % 32);
		for (i = 0; i < k; i++) {
			unsigned flags = how == 3 ? BUS_MORE : 0;
			uint32_t len;

			seq = bus_pub_next_seq(pub);
			len = t_len_for(c->seed, seq, 1, RAND_MAX_EVENT);
			if (t_rand() % 2) {
				t_fill(scratch, len, c->seed, seq);
				r = bus_pub_publish(pub, (uint32_t)seq, scratch, len, flags);
			} else {
				/* Claim up to the maximum, commit the real length. */
				r = bus_pub_claim(pub, t_rand() % 2 ? len : RAND_MAX_EVENT, &buf);
				if (r == 0) {
					t_fill(buf, len, c->seed, seq);
					r = bus_pub_commit(pub, (uint32_t)seq, len, flags);
				}
			}
			if (r != 0)
				return t_fail("producer: seq %llu: %d (%s)", (unsigned long long)seq,
					    r, bus_errmsg());
		}
		if (how == 3)
			bus_pub_flush(pub);
	}
	return t_fail("producer: not killed within 20 s");
}

struct reader {
	struct bus_sub *sub;
	uint64_t seed;
	uint64_t expected;  /* next seq we accept */
	uint64_t received, lost, gaps;
	uint8_t buf[RAND_MAX_EVENT];
};

/* Read whatever is there (at most until `until`, a monotonic deadline; 0 =
 * until the ring is empty). Every event is checked; a gap must start exactly
 * where we are. */
/* Read and check what is there. until == 0: until nothing is left (the
 * producer must be dead, or this may not end); else until that time, even
 * while events keep coming (a consumer slower than the producer, as under
 * TSan, would otherwise never return). */
static void drain(struct reader *rd, uint64_t until)
{
	struct bus_event ev;
	unsigned n = 0;
	int r;

	for (;;) {
		if (until && (++n & 255) == 0 && t_now_ns() >= until)
			return;
		r = bus_sub_read(rd->sub, rd->buf, sizeof(rd->buf), &ev);
		if (r == 1) {
			uint32_t len = t_len_for(rd->seed, ev.seq, 1, RAND_MAX_EVENT);

			if (ev.seq != rd->expected || ev.len != len || ev.type != (uint32_t)ev.seq ||
			    t_check(ev.data, ev.len, rd->seed, ev.seq))
				cr_assert_fail("bad event: seq %llu (expected %llu), %u bytes (expected %u), "
					"type %u, checksum %s", (unsigned long long)ev.seq,
					(unsigned long long)rd->expected, ev.len, len, ev.type,
					t_check(ev.data, ev.len, rd->seed, ev.seq) ? "bad" : "ok");
			rd->expected++;
			rd->received++;
		} else if (r == -ENOBUFS) {
			if (ev.seq != rd->expected || ev.lost == 0)
				cr_assert_fail("gap of %llu from seq %llu, expected it from %llu",
					(unsigned long long)ev.lost, (unsigned long long)ev.seq,
					(unsigned long long)rd->expected);
			rd->expected += ev.lost;
			rd->lost += ev.lost;
			rd->gaps++;
		} else if (r == 0) {
			if (!until || t_now_ns() >= until)
				return;
		} else {
			cr_assert_fail("bus_sub_read = %d (%s) at seq %llu", r, bus_errmsg(),
				(unsigned long long)rd->expected);
		}
	}
}

Test(crash, producers_killed_at_random_points_leave_a_gap_free_sequence)
{
	const char *topic = t_topic("random");
	struct bus_topic_opts o = { .ring_size = RAND_RING, .max_event = RAND_MAX_EVENT };
	struct rand_ctl *c = t_shared(sizeof(*c));
	struct reader *rd = t_shared(sizeof(*rd));
	uint64_t iters = t_scaled(200, 20), it, deadline, first, empty_runs = 0, stat_ahead = 0;
	struct bus_topic_info info;
	struct bus_pub *pub;
	pid_t pid;
	int rc;

	c->topic = topic;
	c->seed = t_rand();
	c->parent = getpid();
	rd->seed = c->seed;
	cr_assert_eq(bus_topic_create(topic, &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_open(topic, NULL, &rd->sub), 0, "%s", bus_errmsg());
	first = rd->expected = bus_sub_next_seq(rd->sub);

	for (it = 0; it < iters; it++) {
		uint64_t before = rd->expected, delay;
		/* One in eight is killed without waiting for its open to finish
		 * (bus_pub_open() itself takes a few hundred microseconds). */
		int early = it % 8 == 7;

		/* 0-5 ms; one time in four 0-100 us, to die early in its life. */
		delay = t_rand() % 4 ? t_rand() % 5000001 : t_rand() % 100001;

		atomic_store(&c->opened, 0);
		atomic_store(&c->open_rc, 0);
		atomic_store(&c->start_seq, 0);
		pid = t_fork(doomed_producer, c);
		if (early) {
			t_nap_us((t_rand() % 500000) / 1000);
			goto kill_it;
		}
		deadline = t_now_ns() + 10 * SEC;
		while (!atomic_load(&c->opened)) {
			cr_assert_lt(t_now_ns(), deadline, "iteration %llu: the producer did not "
				     "attach within 10 s", (unsigned long long)it);
			drain(rd, t_now_ns() + 1000000);  /* it may start publishing */
		}
		/* The previous producer's lease died with it. */
		cr_assert_eq(atomic_load(&c->open_rc), 0, "iteration %llu: bus_pub_open = %d (%s)",
			     (unsigned long long)it, atomic_load(&c->open_rc), c->errmsg);
		/* It continues exactly after the last event consumers could see
		 * (everything visible was drained after the previous kill). */
		cr_assert_eq(atomic_load(&c->start_seq), before,
			     "iteration %llu: new producer starts at seq %llu, the last visible "
			     "event was %llu", (unsigned long long)it,
			     (unsigned long long)atomic_load(&c->start_seq),
			     (unsigned long long)(before - 1));

		/* Read while it publishes (or sleep), then kill it wherever it is. */
		if (it % 2)
			drain(rd, t_now_ns() + delay);
		else
			t_nap_us((delay) / 1000);
kill_it:
		cr_assert_eq(kill(pid, SIGKILL), 0);
		rc = t_wait_pid(pid);
		cr_assert_eq(rc, KILLED, "iteration %llu: the producer exited with %d "
			     "(its diagnosis is on stderr)", (unsigned long long)it, rc);

		/* It is dead: what is visible now is final. */
		drain(rd, 0);
		if (rd->expected == before)
			empty_runs++;
		if (early && atomic_load(&c->opened) && atomic_load(&c->open_rc) == 0)
			cr_assert_eq(atomic_load(&c->start_seq), before,
				     "iteration %llu: producer started at seq %llu, expected %llu",
				     (unsigned long long)it,
				     (unsigned long long)atomic_load(&c->start_seq),
				     (unsigned long long)before);
		cr_assert_eq(bus_topic_stat(topic, &info, NULL, 0), 1);
		cr_assert_eq(info.producer_pid, 0, "iteration %llu: a dead producer is reported "
			     "as pid %u", (unsigned long long)it, info.producer_pid);
		cr_assert_leq(info.oldest_seq, rd->expected);
		/* next_seq is a statistic the producer stores just before head:
		 * killed in between, it may be ahead of what became visible. */
		cr_assert_geq(info.next_seq, rd->expected, "iteration %llu: next_seq %llu, "
			      "but %llu is visible", (unsigned long long)it,
			      (unsigned long long)info.next_seq, (unsigned long long)(rd->expected - 1));
		if (info.next_seq != rd->expected)
			stat_ahead++;
	}

	/* One more producer: the sequence goes on where consumers stopped. */
	cr_assert_eq(bus_pub_open(topic, &pub), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_next_seq(pub), rd->expected);
	cr_assert_eq(bus_topic_stat(topic, &info, NULL, 0), 1);
	cr_assert_eq(info.next_seq, rd->expected);
	{
		uint8_t buf[RAND_MAX_EVENT];
		uint64_t seq = rd->expected;
		uint32_t len = t_len_for(c->seed, seq, 1, RAND_MAX_EVENT);

		t_fill(buf, len, c->seed, seq);
		cr_assert_eq(bus_pub_publish(pub, (uint32_t)seq, buf, len, 0), 0);
		drain(rd, 0);
		cr_assert_eq(rd->expected, seq + 1);
	}
	bus_pub_close(pub);
	cr_assert_eq(rd->received + rd->lost, rd->expected - first);
	cr_log_info("%llu producers killed: %llu events received, %llu lost in %llu gaps, "
		    "%llu producers killed before anything was visible, stat next_seq ahead "
		    "after %llu kills", (unsigned long long)iters,
		    (unsigned long long)rd->received, (unsigned long long)rd->lost,
		    (unsigned long long)rd->gaps, (unsigned long long)empty_runs,
		    (unsigned long long)stat_ahead);
	bus_sub_close(rd->sub);
}

/* ------------------------------------------------------------------------ */
/* Killed with work in progress                                             */
/* ------------------------------------------------------------------------ */

#define WIP_RING (16u << 10)
#define WIP_MAX  512u
#define WIP_PUBLISHED 100   /* more than a ring: the claim recycles old records */

enum wip { WIP_CLAIMED, WIP_UNFLUSHED };

struct wip_ctl {
	const char *topic;
	uint64_t seed;
	enum wip what;
	pid_t parent;
};

/* Publishes WIP_PUBLISHED events, then leaves one claimed and half written
 * (or a committed BUS_MORE batch unflushed) and dies. The unfinished events
 * carry a different seed: a consumer that saw them would fail t_check(). */
static int wip_producer(void *arg)
{
	struct wip_ctl *c = arg;
	uint8_t tmp[WIP_MAX];
	struct bus_pub *pub;
	uint64_t seq;
	void *buf;
	int i, r;

	r = bus_pub_open(c->topic, &pub);
	if (r != 0)
		return t_fail("producer: bus_pub_open = %d (%s)", r, bus_errmsg());
	for (i = 0; i < WIP_PUBLISHED; i++) {
		uint32_t len;

		seq = bus_pub_next_seq(pub);
		len = t_len_for(c->seed, seq, 8, WIP_MAX);
		t_fill(tmp, len, c->seed, seq);
		r = bus_pub_publish(pub, (uint32_t)seq, tmp, len, 0);
		if (r != 0)
			return t_fail("producer: publish seq %llu = %d", (unsigned long long)seq, r);
	}
	seq = bus_pub_next_seq(pub);
	if (c->what == WIP_CLAIMED) {
		r = bus_pub_claim(pub, WIP_MAX, &buf);
		if (r != 0)
			return t_fail("producer: claim = %d", r);
		t_fill(tmp, WIP_MAX, c->seed ^ 0xdead, seq);
		memcpy(buf, tmp, WIP_MAX / 2);
	} else {
		for (i = 0; i < 5; i++, seq++) {
			t_fill(tmp, 64, c->seed ^ 0xdead, seq);
			r = bus_pub_publish(pub, (uint32_t)seq, tmp, 64, BUS_MORE);
			if (r != 0)
				return t_fail("producer: publish BUS_MORE = %d", r);
		}
	}
	raise(SIGKILL);
	return t_fail("producer: survived SIGKILL");
}

static void killed_with_work_in_progress(enum wip what)
{
	const char *topic = t_topic(what == WIP_CLAIMED ? "claimed" : "unflushed");
	struct bus_topic_opts o = { .ring_size = WIP_RING, .max_event = WIP_MAX };
	struct wip_ctl c = { .topic = topic, .seed = t_rand(), .what = what, .parent = getpid() };
	struct bus_sub *live, *late;
	struct bus_topic_info info;
	struct bus_event ev;
	struct bus_pub *pub;
	uint8_t buf[WIP_MAX];
	uint64_t first, end, seq;
	uint32_t len;
	int r;

	cr_assert_eq(bus_topic_create(topic, &o), 0, "%s", bus_errmsg());
	/* `live` attached before, reads the whole story; it is lapped (the
	 * producer publishes more than a ring) and says so exactly. */
	cr_assert_eq(bus_sub_open(topic, NULL, &live), 0, "%s", bus_errmsg());
	first = bus_sub_next_seq(live);
	cr_assert_eq(t_wait_pid(t_fork(wip_producer, &c)), KILLED,
		     "the producer did not die of SIGKILL (its diagnosis is on stderr)");
	end = first + WIP_PUBLISHED;

	cr_assert_eq(bus_topic_stat(topic, &info, NULL, 0), 1);
	cr_assert_eq(info.producer_pid, 0);
	cr_assert_eq(info.next_seq, end);

	/* `late` attaches after the death: the oldest intact event on. */
	cr_assert_eq(bus_sub_open(topic, NULL, &late), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_next_seq(late), info.oldest_seq);
	for (seq = info.oldest_seq; seq < end; seq++) {
		r = bus_sub_read(late, buf, sizeof(buf), &ev);
		cr_assert_eq(r, 1, "late consumer at seq %llu: %d", (unsigned long long)seq, r);
		cr_assert_eq(ev.seq, seq);
		cr_assert_eq(ev.len, t_len_for(c.seed, seq, 8, WIP_MAX));
		cr_assert_eq(t_check(ev.data, ev.len, c.seed, seq), 0, "seq %llu torn",
			     (unsigned long long)seq);
	}
	cr_assert_eq(bus_sub_read(late, buf, sizeof(buf), &ev), 0,
		     "an event the dead producer never finished is visible: seq %llu, %u bytes",
		     (unsigned long long)ev.seq, ev.len);

	r = bus_sub_read(live, buf, sizeof(buf), &ev);
	cr_assert_eq(r, -ENOBUFS);
	cr_assert_eq(ev.seq, first);
	cr_assert_eq(ev.lost, info.oldest_seq - first);
	while ((r = bus_sub_read(live, buf, sizeof(buf), &ev)) == 1)
		cr_assert_eq(t_check(ev.data, ev.len, c.seed, ev.seq), 0);
	cr_assert_eq(r, 0);
	cr_assert_eq(bus_sub_next_seq(live), end);

	/* The next producer attaches and gets exactly the next number. */
	cr_assert_eq(bus_pub_open(topic, &pub), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_next_seq(pub), end);
	len = t_len_for(c.seed, end, 8, WIP_MAX);
	t_fill(buf, len, c.seed, end);
	cr_assert_eq(bus_pub_publish(pub, (uint32_t)end, buf, len, 0), 0);
	bus_pub_close(pub);
	for (r = 0; r < 2; r++) {
		struct bus_sub *s = r ? late : live;

		cr_assert_eq(bus_sub_read(s, buf, sizeof(buf), &ev), 1);
		cr_assert_eq(ev.seq, end);
		cr_assert_eq(ev.len, len);
		cr_assert_eq(t_check(ev.data, ev.len, c.seed, end), 0);
		cr_assert_eq(bus_sub_read(s, buf, sizeof(buf), &ev), 0);
	}
	bus_sub_close(late);
	bus_sub_close(live);
}

Test(crash, producer_killed_between_claim_and_commit_leaves_nothing_visible)
{
	killed_with_work_in_progress(WIP_CLAIMED);
}

Test(crash, producer_killed_with_an_unflushed_batch_leaves_nothing_visible)
{
	killed_with_work_in_progress(WIP_UNFLUSHED);
}

/* ------------------------------------------------------------------------ */
/* One producer at a time                                                   */
/* ------------------------------------------------------------------------ */

struct busy_ctl {
	const char *topic;
	pid_t parent;
	_Atomic uint32_t attached;
	_Atomic uint32_t release;
};

static int holding_producer(void *arg)
{
	struct busy_ctl *c = arg;
	uint64_t deadline = t_now_ns() + 30 * SEC;
	struct bus_pub *pub;
	int r;

	r = bus_pub_open(c->topic, &pub);
	if (r != 0)
		return t_fail("producer: bus_pub_open = %d (%s)", r, bus_errmsg());
	atomic_store(&c->attached, 1);
	while (!atomic_load(&c->release)) {
		if (t_now_ns() > deadline) {
			bus_pub_close(pub);
			return t_fail("producer: not released within 30 s");
		}
		t_nap_us((1000000) / 1000);
	}
	bus_pub_close(pub);
	return 0;
}

Test(crash, second_producer_gets_ebusy_naming_the_first_ones_pid)
{
	const char *topic = t_topic("busy");
	struct busy_ctl *c = t_shared(sizeof(*c));
	struct bus_topic_info info;
	struct bus_pub *pub = (struct bus_pub *)&pub; /* not NULL: the failed open must clear it */
	uint64_t deadline = t_now_ns() + 10 * SEC;
	char want[32];
	pid_t pid;

	c->topic = topic;
	c->parent = getpid();
	cr_assert_eq(bus_topic_create(topic, NULL), 0, "%s", bus_errmsg());
	pid = t_fork(holding_producer, c);
	while (!atomic_load(&c->attached)) {
		cr_assert_lt(t_now_ns(), deadline, "the first producer did not attach");
		t_nap_us((100000) / 1000);
	}
	cr_assert_eq(bus_pub_open(topic, &pub), -EBUSY);
	cr_assert_null(pub);
	snprintf(want, sizeof(want), "pid %d", (int)pid);
	cr_assert(strstr(bus_errmsg(), want), "bus_errmsg() = \"%s\" does not name %s",
		  bus_errmsg(), want);
	cr_assert_eq(bus_topic_stat(topic, &info, NULL, 0), 0);
	cr_assert_eq(info.producer_pid, (uint32_t)pid);

	/* Once it is gone (closed), the lease is free. */
	atomic_store(&c->release, 1);
	cr_assert_eq(t_wait_pid(pid), 0, "the first producer failed (diagnosis on stderr)");
	cr_assert_eq(bus_pub_open(topic, &pub), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_topic_stat(topic, &info, NULL, 0), 0);
	cr_assert_eq(info.producer_pid, (uint32_t)getpid());
	bus_pub_close(pub);
}


/* ------------------------------------------------------------------------ */
/* Killed between the head store and the `last` store                       */
/* ------------------------------------------------------------------------ */

/*
 * pub_publish() stores head, then last. A producer killed between the two
 * leaves `last` one publish behind. The child makes exactly that state with
 * the library's internals: three visible events, then a two-event batch whose
 * head store is done by hand, then SIGKILL. (Found by review: with the stores
 * the other way round, NEWEST/END consumers started on a record that never
 * became visible and later read garbage.)
 */
static const char *hl_topic;

static int die_between_head_and_last(void *arg)
{
	struct bus_pub *p;
	int i;

	(void)arg;
	if (bus_pub_open(hl_topic, &p) < 0)
		return 1;
	for (i = 0; i < 3; i++)
		bus_pub_publish(p, 1, "visible", 7, 0);
	bus_pub_publish(p, 2, "batch-a", 7, BUS_MORE);
	bus_pub_publish(p, 2, "batch-b", 7, BUS_MORE);
	atomic_store_explicit(&p->hdr->head, p->pos, memory_order_release);
	raise(SIGKILL);
	return 2;
}

Test(crash, producer_killed_between_head_and_last_leaves_exact_start_positions)
{
	struct bus_sub *newest, *end;
	struct bus_pub *p;
	struct bus_event ev;

	hl_topic = t_topic("headlast");
	cr_assert_eq(bus_topic_create(hl_topic, NULL), 0);
	cr_assert_eq(t_wait_pid(t_fork(die_between_head_and_last, NULL)), KILLED);
	cr_assert_eq(bus_sub_open(hl_topic, &(struct bus_sub_opts){ .from = BUS_FROM_NEWEST },
				  &newest), 0);
	cr_assert_eq(bus_sub_open(hl_topic, &(struct bus_sub_opts){ .from = BUS_FROM_END }, &end), 0);
	cr_assert_eq(bus_sub_next_seq(newest), 5, "NEWEST is the last visible event");
	cr_assert_eq(bus_sub_next_seq(end), 6, "END is after it");
	cr_assert_eq(bus_pub_open(hl_topic, &p), 0);
	cr_assert_eq(bus_pub_next_seq(p), 6);
	cr_assert_eq(bus_pub_publish(p, 3, "after", 5, 0), 0);
	cr_assert_eq(bus_sub_next(newest, &ev), 1);
	cr_assert_eq(ev.seq, 5);
	cr_assert_eq(memcmp(ev.data, "batch-b", 7), 0);
	cr_assert_eq(bus_sub_next(newest, &ev), 1);
	cr_assert_eq(ev.seq, 6);
	cr_assert_eq(bus_sub_next(end, &ev), 1);
	cr_assert_eq(ev.seq, 6);
	cr_assert_eq(memcmp(ev.data, "after", 5), 0);
	cr_assert_eq(bus_sub_next(end, &ev), 0);
	bus_sub_close(newest);
	bus_sub_close(end);
	bus_pub_close(p);
	cr_assert_eq(bus_topic_remove(hl_topic), 0);
}
