/* SPDX-License-Identifier: MIT */
/*
 * Description: a consumer the producer laps loses events, and is told exactly
 * which: one -ENOBUFS per lap whose ev.seq is the first lost sequence number
 * and ev.lost the count, then intact events in order. A view the producer
 * overwrote is never confirmed, and a copy is never torn.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "t_util.h"

#define SEC 1000000000ull

/* Bytes a record of len payload bytes takes in the ring: a 24-byte header
 * and the payload, padded to 8 (the record format of layout.h). */
static uint64_t rec_bytes(uint32_t len)
{
	return (24u + (uint64_t)len + 7u) & ~7ull;
}

static uint64_t publish_seq(struct bus_pub *pub, uint64_t seed, uint32_t min, uint32_t max)
{
	uint8_t buf[4096];
	uint64_t seq = bus_pub_next_seq(pub);
	uint32_t len = t_len_for(seed, seq, min, max);

	t_fill(buf, len, seed, seq);
	cr_assert_eq(bus_pub_publish(pub, (uint32_t)seq, buf, len, 0), 0, "publish seq %llu: %s",
		     (unsigned long long)seq, bus_errmsg());
	return rec_bytes(len);
}

/* Wait (bounded) until *v reaches want. */
static int await_u64(_Atomic uint64_t *v, uint64_t want, uint64_t timeout_ns)
{
	uint64_t deadline = t_now_ns() + timeout_ns;

	while (atomic_load(v) < want) {
		if (t_now_ns() > deadline)
			return -1;
		t_nap_us(100);
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* A stopped consumer                                                       */
/* ------------------------------------------------------------------------ */

#define STOP_RING  (64u << 10)
#define STOP_MAX   1024u

struct stop_ctl {
	const char *topic;
	uint64_t seed;
	pid_t parent;
	_Atomic uint64_t ready;
	_Atomic uint64_t expected;  /* the next seq the child will accept */
	_Atomic uint64_t end;       /* stop once expected reaches this (0: not yet) */
	_Atomic uint64_t release;   /* the parent has looked at the slot: exit */
	/* Findings. */
	_Atomic uint64_t gaps;
	_Atomic uint64_t gap_seq;
	_Atomic uint64_t gap_lost;
	_Atomic uint64_t received;
};

static int stopped_consumer(void *arg)
{
	struct stop_ctl *c = arg;
	uint8_t buf[STOP_MAX];
	struct bus_sub *sub;
	struct bus_event ev;
	uint64_t expected, deadline = t_now_ns() + 60 * SEC;
	int r;

	r = bus_sub_open(c->topic, NULL, &sub);
	if (r != 0)
		return t_fail("consumer: bus_sub_open = %d (%s)", r, bus_errmsg());
	expected = bus_sub_next_seq(sub);
	atomic_store(&c->expected, expected);
	atomic_store(&c->ready, 1);
	for (;;) {
		uint64_t end = atomic_load(&c->end);

		if (end && expected == end)
			break;
		if (t_now_ns() > deadline) {
			r = t_fail("consumer: still at seq %llu after 60 s (end %llu)",
				 (unsigned long long)expected, (unsigned long long)end);
			goto out;
		}
		r = bus_sub_read(sub, buf, sizeof(buf), &ev);
		if (r == 1) {
			uint32_t len = t_len_for(c->seed, ev.seq, 8, STOP_MAX);

			if (ev.seq != expected || ev.len != len || ev.type != (uint32_t)ev.seq ||
			    t_check(ev.data, ev.len, c->seed, ev.seq)) {
				r = t_fail("consumer: bad event: seq %llu (expected %llu), %u bytes "
					 "(expected %u), type %u, checksum %s",
					 (unsigned long long)ev.seq, (unsigned long long)expected,
					 ev.len, len, ev.type,
					 t_check(ev.data, ev.len, c->seed, ev.seq) ? "bad" : "ok");
				goto out;
			}
			expected++;
			atomic_fetch_add(&c->received, 1);
		} else if (r == -ENOBUFS) {
			if (atomic_fetch_add(&c->gaps, 1) == 0) {
				atomic_store(&c->gap_seq, ev.seq);
				atomic_store(&c->gap_lost, ev.lost);
			}
			if (ev.seq != expected) {
				r = t_fail("consumer: gap reported from seq %llu, expected %llu",
					 (unsigned long long)ev.seq, (unsigned long long)expected);
				goto out;
			}
			expected += ev.lost;
		} else if (r == 0) {
			r = bus_sub_wait(sub, 100000000);
			if (r != 1 && r != -ETIMEDOUT && r != -EINTR) {
				r = t_fail("consumer: bus_sub_wait = %d", r);
				goto out;
			}
		} else {
			r = t_fail("consumer: bus_sub_read = %d (%s)", r, bus_errmsg());
			goto out;
		}
		atomic_store(&c->expected, expected);
	}
	/* Nothing beyond the end; this call also publishes our counters. */
	r = bus_sub_read(sub, buf, sizeof(buf), &ev);
	if (r != 0) {
		r = t_fail("consumer: bus_sub_read after the end = %d", r);
		goto out;
	}
	atomic_store(&c->expected, expected + 1); /* tells the parent we are done */
	if (await_u64(&c->release, 1, 30 * SEC) < 0)
		r = t_fail("consumer: the parent never released us");
out:
	bus_sub_close(sub);
	return r;
}

TestSuite(lapping, .init = t_init, .fini = t_fini, .timeout = 120);

Test(lapping, sigstopped_consumer_gets_one_gap_of_exactly_the_events_it_missed)
{
	const char *topic = t_topic("stop");
	struct bus_topic_opts o = { .ring_size = STOP_RING, .max_event = STOP_MAX };
	struct stop_ctl *c = t_shared(sizeof(*c));
	struct bus_topic_info info;
	struct bus_consumer_info ci[4];
	struct bus_pub *pub;
	uint64_t first, before, bytes = 0, oldest, resume_next, end, lost;
	pid_t pid;
	int st, i, n;

	c->topic = topic;
	c->seed = t_rand();
	c->parent = getpid();
	cr_assert_eq(bus_topic_create(topic, &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_open(topic, &pub), 0, "%s", bus_errmsg());
	first = bus_pub_next_seq(pub);
	pid = t_fork(stopped_consumer, c);
	cr_assert_eq(await_u64(&c->ready, 1, 10 * SEC), 0, "the consumer did not attach");

	/* Phase 1: the consumer keeps up. */
	for (i = 0; i < 50; i++)
		publish_seq(pub, c->seed, 8, STOP_MAX);
	before = first + 50;
	cr_assert_eq(await_u64(&c->expected, before, 10 * SEC), 0,
		     "the consumer read up to %llu of %llu", (unsigned long long)c->expected,
		     (unsigned long long)before);

	/* Phase 2: stopped, it misses three rings' worth. */
	cr_assert_eq(kill(pid, SIGSTOP), 0);
	cr_assert_eq(waitpid(pid, &st, WUNTRACED), pid);
	cr_assert(WIFSTOPPED(st), "consumer not stopped (status 0x%x)", st);
	while (bytes < 3 * (uint64_t)STOP_RING)
		bytes += publish_seq(pub, c->seed, 8, STOP_MAX);
	cr_assert_eq(bus_topic_stat(topic, &info, NULL, 0), 1);
	oldest = info.oldest_seq;
	resume_next = bus_pub_next_seq(pub);
	cr_assert_eq(info.next_seq, resume_next);
	cr_assert_gt(oldest, before, "three rings later the consumer's next event (%llu) "
		     "is still in the ring (oldest %llu)", (unsigned long long)before,
		     (unsigned long long)oldest);
	lost = oldest - before;

	/* Phase 3: resumed with the producer idle, it must land on `oldest`. */
	cr_assert_eq(kill(pid, SIGCONT), 0);
	cr_assert_eq(await_u64(&c->expected, resume_next, 10 * SEC), 0,
		     "after SIGCONT the consumer reached %llu of %llu",
		     (unsigned long long)c->expected, (unsigned long long)resume_next);
	/* Then a few more, less than a ring: no further gap. */
	for (i = 0; i < 30; i++)
		publish_seq(pub, c->seed, 8, STOP_MAX);
	end = bus_pub_next_seq(pub);
	atomic_store(&c->end, end);
	cr_assert_eq(await_u64(&c->expected, end + 1, 10 * SEC), 0,
		     "the consumer reached %llu of %llu", (unsigned long long)c->expected,
		     (unsigned long long)end);

	n = bus_topic_stat(topic, &info, ci, 4);
	atomic_store(&c->release, 1);
	cr_assert_eq(t_wait_pid(pid), 0, "the consumer failed (its diagnosis is on stderr)");

	cr_expect_eq(c->gaps, 1, "%llu gaps reported, expected exactly one",
		     (unsigned long long)c->gaps);
	cr_expect_eq(c->gap_seq, before, "the gap starts at %llu, expected %llu",
		     (unsigned long long)c->gap_seq, (unsigned long long)before);
	cr_expect_eq(c->gap_lost, lost, "the gap lost %llu events, expected %llu (oldest %llu - %llu)",
		     (unsigned long long)c->gap_lost, (unsigned long long)lost,
		     (unsigned long long)oldest, (unsigned long long)before);
	cr_expect_eq(c->received, (end - first) - lost);
	/* The consumer's slot says the same. */
	cr_assert_eq(n, 1);
	cr_expect_eq(ci[0].pid, (uint32_t)pid);
	cr_expect_eq(ci[0].lapped, 1);
	cr_expect_eq(ci[0].lost, lost);
	cr_expect_eq(ci[0].events, (end - first) - lost);
	cr_expect_eq(ci[0].next_seq, end);
	bus_pub_close(pub);
}

/* ------------------------------------------------------------------------ */
/* An overwritten zero-copy view                                            */
/* ------------------------------------------------------------------------ */

Test(lapping, confirm_rejects_a_view_overwritten_after_next_and_next_reports_the_gap_from_it)
{
	const char *topic = t_topic("confirm");
	struct bus_topic_opts o = { .ring_size = 16u << 10, .max_event = 512 };
	uint64_t seed = t_rand(), bytes = 0, view_seq, expected, end;
	struct bus_topic_info info;
	struct bus_event ev, view;
	struct bus_pub *pub;
	struct bus_sub *sub;
	uint8_t copy[512];
	int i;

	cr_assert_eq(bus_topic_create(topic, &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_open(topic, &pub), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_open(topic, NULL, &sub), 0, "%s", bus_errmsg());
	for (i = 0; i < 3; i++)
		publish_seq(pub, seed, 8, 512);

	/* An intact view confirms. */
	cr_assert_eq(bus_sub_next(sub, &ev), 1);
	cr_assert_eq(ev.seq, 1);
	cr_assert_eq(t_check(ev.data, ev.len, seed, ev.seq), 0);
	cr_assert_eq(bus_sub_confirm(sub, &ev), 0);

	/* A view, then more than a ring published over it. */
	cr_assert_eq(bus_sub_next(sub, &view), 1);
	view_seq = view.seq;
	cr_assert_eq(view_seq, 2);
	cr_assert_eq(t_check(view.data, view.len, seed, view.seq), 0);
	memcpy(copy, view.data, view.len);
	while (bytes < 2 * (uint64_t)o.ring_size)
		bytes += publish_seq(pub, seed, 8, 512);
	cr_assert_neq(memcmp(copy, view.data, view.len), 0,
		      "the view's bytes were not overwritten: the test proves nothing");
	cr_assert_eq(bus_sub_confirm(sub, &view), -ENOBUFS);

	/* The gap starts at the view's event, not after it. */
	cr_assert_eq(bus_topic_stat(topic, &info, NULL, 0), 1);
	cr_assert_eq(bus_sub_next(sub, &ev), -ENOBUFS);
	cr_assert_eq(ev.seq, view_seq, "gap from %llu, expected %llu", (unsigned long long)ev.seq,
		     (unsigned long long)view_seq);
	cr_assert_eq(ev.lost, info.oldest_seq - view_seq, "lost %llu, expected %llu",
		     (unsigned long long)ev.lost, (unsigned long long)(info.oldest_seq - view_seq));

	/* Then every remaining event, intact and confirmed, and nothing else. */
	expected = info.oldest_seq;
	end = bus_pub_next_seq(pub);
	while (expected < end) {
		cr_assert_eq(bus_sub_next(sub, &ev), 1, "at seq %llu", (unsigned long long)expected);
		cr_assert_eq(ev.seq, expected);
		cr_assert_eq(ev.len, t_len_for(seed, ev.seq, 8, 512));
		cr_assert_eq(t_check(ev.data, ev.len, seed, ev.seq), 0);
		cr_assert_eq(bus_sub_confirm(sub, &ev), 0);
		expected++;
	}
	cr_assert_eq(bus_sub_next(sub, &ev), 0);
	bus_sub_close(sub);
	bus_pub_close(pub);
}

/* ------------------------------------------------------------------------ */
/* Continuous lapping                                                       */
/* ------------------------------------------------------------------------ */

#define TORN_RING (8u << 10)
#define TORN_MAX  2048u

struct torn_ctl {
	const char *topic;
	uint64_t seed;
	uint64_t n;
	int zero_copy;      /* next + confirm instead of read */
	pid_t parent;
	_Atomic uint32_t ready;
	_Atomic uint32_t failed;    /* the producer failed: the consumer stops */
	_Atomic uint64_t received, lost, gaps, overwritten_views, bad_unconfirmed;
};

static int torn_producer(void *arg)
{
	struct torn_ctl *c = arg;
	struct bus_pub *pub;
	uint64_t seq, end, deadline;
	void *buf;
	int r;

	r = bus_pub_open(c->topic, &pub);
	if (r != 0) {
		atomic_store(&c->failed, 1);
		return t_fail("producer: bus_pub_open = %d (%s)", r, bus_errmsg());
	}
	deadline = t_now_ns() + 30 * SEC;
	while (!atomic_load(&c->ready)) { /* the consumer holds a cursor */
		if (t_now_ns() > deadline) {
			bus_pub_close(pub);
			return t_fail("producer: the consumer did not attach within 30 s");
		}
		t_nap_us(100);
	}
	seq = bus_pub_next_seq(pub);
	end = seq + c->n;
	for (; seq < end; seq++) {
		uint32_t len = t_len_for(c->seed, seq, 8, TORN_MAX);

		/* Zero copy: the payload is written in place, byte by byte over
		 * what a consumer may be copying. */
		r = bus_pub_claim(pub, len, &buf);
		if (r == 0) {
			t_fill(buf, len, c->seed, seq);
			r = bus_pub_commit(pub, (uint32_t)seq, len, 0);
		}
		if (r != 0) {
			atomic_store(&c->failed, 1);
			bus_pub_close(pub);
			return t_fail("producer: seq %llu: %d (%s)", (unsigned long long)seq, r,
				    bus_errmsg());
		}
	}
	bus_pub_close(pub);
	return 0;
}

static int torn_consumer(void *arg)
{
	struct torn_ctl *c = arg;
	uint8_t buf[TORN_MAX];
	struct bus_sub *sub;
	struct bus_event ev;
	uint64_t expected, end, deadline = t_now_ns() + 100 * SEC;
	int r;

	r = bus_sub_open(c->topic, NULL, &sub);
	if (r != 0)
		return t_fail("consumer: bus_sub_open = %d (%s)", r, bus_errmsg());
	expected = bus_sub_next_seq(sub);
	end = expected + c->n;
	atomic_store(&c->ready, 1);
	while (expected < end) {
		r = c->zero_copy ? bus_sub_next(sub, &ev) : bus_sub_read(sub, buf, sizeof(buf), &ev);
		if (r == 1) {
			int bad = ev.seq != expected ||
				  ev.len != t_len_for(c->seed, ev.seq, 8, TORN_MAX) ||
				  ev.type != (uint32_t)ev.seq ||
				  t_check(ev.data, ev.len, c->seed, ev.seq);

			int conf = c->zero_copy ? bus_sub_confirm(sub, &ev) : 0;

			if (conf == -ENOBUFS) {
				/* Overwritten while checked: not received; the
				 * next call reports the gap from here. */
				atomic_fetch_add(&c->overwritten_views, 1);
				atomic_fetch_add(&c->bad_unconfirmed, (uint64_t)bad);
				continue;
			}
			if (conf != 0) {
				r = t_fail("consumer: bus_sub_confirm = %d", conf);
				goto out;
			}
			if (bad) {
				r = t_fail("consumer: torn or wrong event accepted: seq %llu (expected "
					 "%llu), %u bytes, checksum %s", (unsigned long long)ev.seq,
					 (unsigned long long)expected, ev.len,
					 t_check(ev.data, ev.len, c->seed, ev.seq) ? "bad" : "ok");
				goto out;
			}
			expected++;
			atomic_fetch_add(&c->received, 1);
			/* Now and then fall far behind, so laps are certain. */
			if (t_rand() % 512 == 0)
				t_nap_us(t_rand() % 200);
		} else if (r == -ENOBUFS) {
			if (ev.seq != expected || ev.lost == 0 || ev.lost > end - expected) {
				r = t_fail("consumer: gap of %llu from %llu, expected from %llu",
					 (unsigned long long)ev.lost, (unsigned long long)ev.seq,
					 (unsigned long long)expected);
				goto out;
			}
			expected += ev.lost;
			atomic_fetch_add(&c->lost, ev.lost);
			atomic_fetch_add(&c->gaps, 1);
		} else if (r == 0) {
			if (atomic_load(&c->failed)) {
				r = t_fail("consumer: the producer failed at seq %llu",
					 (unsigned long long)expected);
				goto out;
			}
			if (t_now_ns() > deadline) {
				r = t_fail("consumer: stuck at seq %llu", (unsigned long long)expected);
				goto out;
			}
			r = bus_sub_wait(sub, 100000000);
			if (r != 1 && r != -ETIMEDOUT && r != -EINTR) {
				r = t_fail("consumer: bus_sub_wait = %d", r);
				goto out;
			}
		} else {
			r = t_fail("consumer: %d (%s) at seq %llu", r, bus_errmsg(),
				 (unsigned long long)expected);
			goto out;
		}
	}
	r = 0;
out:
	bus_sub_close(sub);
	return r;
}

static void run_torn(int zero_copy)
{
	const char *topic = t_topic(zero_copy ? "torn-next" : "torn-read");
	struct bus_topic_opts o = { .ring_size = TORN_RING, .max_event = TORN_MAX };
	struct torn_ctl *c = t_shared(sizeof(*c));
	struct t_proc prod, cons;
	int rc;

#ifdef __SANITIZE_THREAD__
	cr_skip_test("a consumer is lapped on purpose here: its seqlock reads race with the "
		     "producer by design (docs/ARCHITECTURE.md) and TSan reports that; the "
		     "plain and ASan builds run this test");
#endif

	c->topic = topic;
	c->seed = t_rand();
	c->n = t_scaled(3000000, 30000);
	c->zero_copy = zero_copy;
	c->parent = getpid();
	cr_assert_eq(bus_topic_create(topic, &o), 0, "%s", bus_errmsg());
	t_spawn(&cons, torn_consumer, c);
	t_spawn(&prod, torn_producer, c);
	rc = t_join(&prod);
	cr_assert_eq(rc, 0, "the producer failed with %d", rc);
	rc = t_join(&cons);
	cr_assert_eq(rc, 0, "the consumer failed with %d (its diagnosis is on stderr)", rc);
	cr_expect_eq(c->received + c->lost, c->n, "%llu received + %llu lost != %llu published",
		     (unsigned long long)c->received, (unsigned long long)c->lost,
		     (unsigned long long)c->n);
	cr_expect_gt(c->gaps, 0, "never lapped: the test proves nothing");
	cr_log_info("%s: %llu received, %llu lost in %llu gaps", zero_copy ? "next+confirm" : "read",
		    (unsigned long long)c->received, (unsigned long long)c->lost,
		    (unsigned long long)c->gaps);
	if (zero_copy)
		cr_log_info("next+confirm: %llu views overwritten while checked, %llu of them "
			    "visibly torn, all rejected by bus_sub_confirm()",
			    (unsigned long long)c->overwritten_views,
			    (unsigned long long)c->bad_unconfirmed);
}

Test(lapping, read_never_returns_a_torn_payload_while_lapped_continuously)
{
	run_torn(0);
}

Test(lapping, confirm_never_accepts_a_torn_view_while_lapped_continuously)
{
	run_torn(1);
}
