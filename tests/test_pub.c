/* SPDX-License-Identifier: MIT */
/* Description: the producer API — claim/commit, publish, batches, sequence
 * numbers, timestamps, type words, sizes, the lease, deletion. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "t_util.h"

TestSuite(pub, .init = t_init, .fini = t_fini, .timeout = 60);

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *topic(const char *tag, uint64_t ring, uint32_t max_event)
{
	const char *t = t_topic(tag);
	struct bus_topic_opts o = { .ring_size = ring, .max_event = max_event };

	cr_assert_eq(bus_topic_create(t, &o), 0, "%s", bus_errmsg());
	return t;
}

Test(pub, claim_commit_is_zero_copy_and_gets_seq_type_and_timestamp)
{
	const char *t = topic("cc", 65536, 0);
	struct bus_pub *p;
	struct bus_sub *s;
	struct bus_event ev;
	uint64_t before, after;
	void *buf;

	cr_assert_eq(bus_pub_open(t, &p), 0);
	cr_assert_eq(bus_sub_open(t, NULL, &s), 0);
	cr_assert_eq(bus_pub_next_seq(p), 1);
	cr_assert_eq(bus_pub_claim(p, 100, &buf), 0);
	memcpy(buf, "zero-copy", 9);
	before = wall_ns();
	cr_assert_eq(bus_pub_commit(p, 0xdeadbeef, 9, 0), 0);
	after = wall_ns();
	cr_assert_eq(bus_sub_next(s, &ev), 1);
	cr_assert_eq(ev.len, 9);
	cr_assert_eq(memcmp(ev.data, "zero-copy", 9), 0);
	cr_assert_eq(ev.type, 0xdeadbeef);
	cr_assert_eq(ev.seq, 1);
	/* The TSC-interpolated clock agrees with CLOCK_REALTIME to well within
	 * a millisecond. */
	cr_assert_geq(ev.ts_ns + 1000000, before, "ts %llu before %llu",
		      (unsigned long long)ev.ts_ns, (unsigned long long)before);
	cr_assert_leq(ev.ts_ns, after + 1000000);
	/* The consumer's view is the very bytes claim pointed at (both map the
	 * same pages): no copy on either side. */
	memcpy(buf, "ZERO", 4);
	cr_assert_eq(memcmp(ev.data, "ZERO-copy", 9), 0);
	cr_assert_eq(bus_pub_next_seq(p), 2);
	bus_sub_close(s);
	bus_pub_close(p);
	bus_topic_remove(t);
}

Test(pub, timestamps_do_not_go_backwards_and_track_the_wall_clock)
{
	const char *t = topic("ts", 1 << 20, 0);
	struct bus_pub *p;
	struct bus_sub *s;
	struct bus_event ev;
	uint64_t prev = 0, i;

	cr_assert_eq(bus_pub_open(t, &p), 0);
	cr_assert_eq(bus_sub_open(t, NULL, &s), 0);
	for (i = 0; i < 2000; i++) {
		uint64_t w;

		cr_assert_eq(bus_pub_publish(p, 0, &i, sizeof(i), 0), 0);
		w = wall_ns();
		cr_assert_eq(bus_sub_next(s, &ev), 1);
		cr_assert_geq(ev.ts_ns, prev);
		cr_assert_leq(ev.ts_ns, w + 200000, "event stamped in the future by %lld ns",
			      (long long)(ev.ts_ns - w));
		cr_assert_geq(ev.ts_ns + 200000, w - 200000 > w ? 0 : w - 200000);
		prev = ev.ts_ns;
		if (i % 100 == 0)
			usleep(500); /* cross several ~1 ms resync intervals */
	}
	bus_sub_close(s);
	bus_pub_close(p);
	bus_topic_remove(t);
}

Test(pub, publish_copies_and_sequence_is_gap_free)
{
	const char *t = topic("seq", 65536, 0);
	struct bus_pub *p;
	struct bus_sub *s;
	struct bus_event ev;
	char buf[64];
	uint64_t i;

	cr_assert_eq(bus_pub_open(t, &p), 0);
	cr_assert_eq(bus_sub_open(t, NULL, &s), 0);
	for (i = 1; i <= 300; i++) {
		uint32_t len = t_len_for(1, i, 0, sizeof(buf));

		t_fill(buf, len, 1, i);
		cr_assert_eq(bus_pub_publish(p, (uint32_t)i, buf, len, 0), 0);
		memset(buf, 0, sizeof(buf)); /* the ring has its own copy */
		cr_assert_eq(bus_sub_next(s, &ev), 1);
		cr_assert_eq(ev.seq, i);
		cr_assert_eq(ev.type, (uint32_t)i);
		cr_assert_eq(ev.len, len);
		cr_assert_eq(t_check(ev.data, ev.len, 1, i), 0);
	}
	cr_assert_eq(bus_sub_next(s, &ev), 0);
	bus_sub_close(s);
	bus_pub_close(p);
	bus_topic_remove(t);
}

Test(pub, zero_length_events_are_events)
{
	const char *t = topic("zero", 65536, 0);
	struct bus_pub *p;
	struct bus_sub *s;
	struct bus_event ev;

	cr_assert_eq(bus_pub_open(t, &p), 0);
	cr_assert_eq(bus_sub_open(t, NULL, &s), 0);
	cr_assert_eq(bus_pub_publish(p, 5, NULL, 0, 0), 0);
	cr_assert_eq(bus_sub_next(s, &ev), 1);
	cr_assert_eq(ev.len, 0);
	cr_assert_eq(ev.type, 5);
	bus_sub_close(s);
	bus_pub_close(p);
	bus_topic_remove(t);
}

Test(pub, batch_is_invisible_until_flush_then_visible_at_once)
{
	const char *t = topic("batch", 65536, 0);
	struct bus_pub *p;
	struct bus_sub *s;
	struct bus_event ev;
	struct bus_topic_info ti;
	uint64_t i, ts = 0;

	cr_assert_eq(bus_pub_open(t, &p), 0);
	cr_assert_eq(bus_sub_open(t, NULL, &s), 0);
	for (i = 0; i < 10; i++)
		cr_assert_eq(bus_pub_publish(p, 0, &i, sizeof(i), BUS_MORE), 0);
	cr_assert_eq(bus_sub_next(s, &ev), 0, "a BUS_MORE event became visible early");
	cr_assert_eq(bus_topic_stat(t, &ti, NULL, 0), 1);
	cr_assert_eq(ti.next_seq, 1, "statistics ran ahead of visibility");
	cr_assert_eq(bus_pub_next_seq(p), 11);
	cr_assert_eq(bus_pub_flush(p), 10);
	for (i = 0; i < 10; i++) {
		cr_assert_eq(bus_sub_next(s, &ev), 1);
		cr_assert_eq(ev.seq, i + 1);
		cr_assert_eq(*(const uint64_t *)ev.data, i);
		if (i == 0)
			ts = ev.ts_ns;
		cr_assert_eq(ev.ts_ns, ts, "a batch shares the moment it became visible");
	}
	cr_assert_eq(bus_sub_next(s, &ev), 0);
	cr_assert_eq(bus_pub_flush(p), 0);
	/* A commit without BUS_MORE publishes the whole pending batch too. */
	cr_assert_eq(bus_pub_publish(p, 0, "a", 1, BUS_MORE), 0);
	cr_assert_eq(bus_pub_publish(p, 0, "b", 1, 0), 0);
	cr_assert_eq(bus_sub_next(s, &ev), 1);
	cr_assert_eq(bus_sub_next(s, &ev), 1);
	cr_assert_eq(*(const char *)ev.data, 'b');
	bus_sub_close(s);
	bus_pub_close(p);
	bus_topic_remove(t);
}

Test(pub, a_batch_larger_than_the_ring_is_published_in_parts)
{
	const char *t = topic("bigbatch", 4096, 0);
	struct bus_pub *p;
	struct bus_topic_info ti;
	uint64_t i;
	char buf[200] = { 0 };

	cr_assert_eq(bus_pub_open(t, &p), 0);
	for (i = 0; i < 100; i++)  /* 100 x 224 bytes: over five rings */
		cr_assert_eq(bus_pub_publish(p, 0, buf, sizeof(buf), BUS_MORE), 0);
	bus_pub_flush(p);
	cr_assert_eq(bus_topic_stat(t, &ti, NULL, 0), 0);
	cr_assert_eq(ti.next_seq, 101);
	cr_assert_gt(ti.oldest_seq, 80);
	bus_pub_close(p);
	bus_topic_remove(t);
}

Test(pub, oversized_event_is_emsgsize)
{
	const char *t = topic("big", 65536, 1000);
	struct bus_pub *p;
	void *buf;
	static char data[2000];

	cr_assert_eq(bus_pub_open(t, &p), 0);
	cr_assert_eq(bus_pub_claim(p, 1001, &buf), -EMSGSIZE);
	cr_assert(strstr(bus_errmsg(), "1000"), "%s", bus_errmsg());
	cr_assert_eq(bus_pub_publish(p, 0, data, 2000, 0), -EMSGSIZE);
	cr_assert_eq(bus_pub_publish(p, 0, data, 1000, 0), 0);
	cr_assert_eq(bus_pub_next_seq(p), 2, "a refused event took no sequence number");
	bus_pub_close(p);
	bus_topic_remove(t);
}

Test(pub, default_max_event_is_a_quarter_of_the_ring)
{
	const char *t = topic("quarter", 65536, 0);
	struct bus_pub *p;
	void *buf;

	cr_assert_eq(bus_pub_open(t, &p), 0);
	cr_assert_eq(bus_pub_claim(p, 16384, &buf), 0);
	cr_assert_eq(bus_pub_claim(p, 16385, &buf), -EMSGSIZE);
	bus_pub_close(p);
	bus_topic_remove(t);
}

Test(pub, commit_without_claim_or_larger_than_claimed_is_einval)
{
	const char *t = topic("inval", 65536, 0);
	struct bus_pub *p;
	void *buf;

	cr_assert_eq(bus_pub_open(t, &p), 0);
	cr_assert_eq(bus_pub_commit(p, 0, 1, 0), -EINVAL);
	cr_assert_eq(bus_pub_claim(p, 10, &buf), 0);
	cr_assert_eq(bus_pub_commit(p, 0, 11, 0), -EINVAL);
	cr_assert_eq(bus_pub_commit(p, 0, 10, 0), 0);
	cr_assert_eq(bus_pub_commit(p, 0, 10, 0), -EINVAL, "a claim is committed once");
	bus_pub_close(p);
	bus_topic_remove(t);
}

Test(pub, second_producer_is_ebusy_naming_the_holder)
{
	const char *t = topic("lease", 65536, 0);
	struct bus_pub *p, *q;
	char pid[32];

	cr_assert_eq(bus_pub_open(t, &p), 0);
	cr_assert_eq(bus_pub_open(t, &q), -EBUSY);
	snprintf(pid, sizeof(pid), "pid %d", (int)getpid());
	cr_assert(strstr(bus_errmsg(), pid), "%s", bus_errmsg());
	bus_pub_close(p);
	cr_assert_eq(bus_pub_open(t, &q), 0, "the lease is free after close");
	bus_pub_close(q);
	bus_topic_remove(t);
}

Test(pub, new_producer_continues_the_sequence)
{
	const char *t = t_topic("cont");
	struct bus_pub *p;
	struct bus_sub *s;
	struct bus_event ev;
	int i, round;

	cr_assert_eq(bus_topic_create(t, &(struct bus_topic_opts){ .ring_size = 4096,
								   .first_seq = 1000 }), 0);
	cr_assert_eq(bus_sub_open(t, NULL, &s), 0);
	for (round = 0; round < 5; round++) {
		cr_assert_eq(bus_pub_open(t, &p), 0);
		cr_assert_eq(bus_pub_next_seq(p), 1000 + (uint64_t)round * 7);
		for (i = 0; i < 7; i++)
			cr_assert_eq(bus_pub_publish(p, 0, "x", 1, i == 6 ? 0 : BUS_MORE), 0);
		bus_pub_close(p);
		for (i = 0; i < 7; i++) {
			cr_assert_eq(bus_sub_next(s, &ev), 1);
			cr_assert_eq(ev.seq, 1000 + (uint64_t)round * 7 + (uint64_t)i);
		}
	}
	/* Close publishes what is pending. */
	cr_assert_eq(bus_pub_open(t, &p), 0);
	cr_assert_eq(bus_pub_publish(p, 0, "y", 1, BUS_MORE), 0);
	bus_pub_close(p);
	cr_assert_eq(bus_sub_next(s, &ev), 1);
	cr_assert_eq(ev.seq, 1035);
	bus_sub_close(s);
	bus_topic_remove(t);
}

Test(pub, publishing_to_a_deleted_topic_is_epipe)
{
	const char *t = topic("del", 65536, 0);
	struct bus_pub *p;

	cr_assert_eq(bus_pub_open(t, &p), 0);
	cr_assert_eq(bus_pub_publish(p, 0, "a", 1, 0), 0);
	cr_assert_eq(bus_topic_remove(t), 0);
	cr_assert_eq(bus_pub_publish(p, 0, "b", 1, 0), -EPIPE);
	cr_assert(strstr(bus_errmsg(), "deleted"), "%s", bus_errmsg());
	bus_pub_close(p);
}

Test(pub, statistics_count_events_bytes_and_no_wakeups_without_sleepers)
{
	const char *t = topic("stats", 65536, 0);
	struct bus_pub *p;
	struct bus_sub *s;
	struct bus_topic_info ti;
	struct bus_consumer_info ci[2];
	struct bus_event ev;
	int i;

	cr_assert_eq(bus_pub_open(t, &p), 0);
	cr_assert_eq(bus_sub_open(t, NULL, &s), 0);
	for (i = 0; i < 1000; i++)
		cr_assert_eq(bus_pub_publish(p, 0, "12345", 5, 0), 0);
	for (i = 0; i < 400; i++)
		cr_assert_eq(bus_sub_next(s, &ev), 1);
	cr_assert_eq(bus_sub_next(s, &ev), 1); /* publishes the cursor of the 400 before */
	cr_assert_eq(bus_topic_stat(t, &ti, ci, 2), 1);
	cr_assert_eq(ti.events, 1000);
	cr_assert_eq(ti.bytes, 5000);
	cr_assert_eq(ti.next_seq, 1001);
	cr_assert_eq(ti.producer_pid, (uint32_t)getpid());
	cr_assert_eq(ti.wakeups, 0, "a publish with nobody asleep made a FUTEX_WAKE");
	cr_assert_eq(ti.consumers, 1);
	cr_assert_eq(ci[0].pid, (uint32_t)getpid());
	cr_assert_eq(ci[0].next_seq, 401);
	cr_assert_eq(ci[0].lag, 600);
	cr_assert_eq(ci[0].events, 400);
	cr_assert_eq(ti.max_lag, 600);
	bus_sub_close(s);
	bus_pub_close(p);
	cr_assert_eq(bus_topic_stat(t, &ti, NULL, 0), 0);
	cr_assert_eq(ti.producer_pid, 0);
	bus_topic_remove(t);
}

Test(pub, publishv_makes_a_vector_visible_at_once)
{
	const char *t = topic("vec", 65536, 100);
	struct bus_pub *p;
	struct bus_sub *s;
	struct bus_event ev;
	struct bus_msg m[5];
	char data[5][100];
	uint64_t i, ts = 0;

	cr_assert_eq(bus_pub_open(t, &p), 0);
	cr_assert_eq(bus_sub_open(t, NULL, &s), 0);
	for (i = 0; i < 5; i++) {
		uint32_t len = (uint32_t)(i * 20);  /* 0, 20, 40, 60, 80 bytes */

		t_fill(data[i], len, 9, i + 1);
		m[i] = (struct bus_msg){ data[i], len, (uint32_t)(100 + i) };
	}
	m[0].data = NULL;  /* allowed for an empty event */
	cr_assert_eq(bus_pub_publishv(p, m, 5), 5, "%s", bus_errmsg());
	for (i = 0; i < 5; i++) {
		cr_assert_eq(bus_sub_next(s, &ev), 1);
		cr_assert_eq(ev.seq, i + 1);
		cr_assert_eq(ev.type, 100 + i);
		cr_assert_eq(ev.len, i * 20);
		cr_assert_eq(t_check(ev.data, ev.len, 9, i + 1), 0);
		if (i == 0)
			ts = ev.ts_ns;
		cr_assert_eq(ev.ts_ns, ts, "one timestamp for the vector");
	}
	cr_assert_eq(bus_sub_next(s, &ev), 0);
	cr_assert_eq(bus_pub_publishv(p, m, 0), 0);

	/* Too large anywhere in the vector: nothing is published. */
	m[3].len = 101;
	cr_assert_eq(bus_pub_publishv(p, m, 5), -EMSGSIZE);
	cr_assert(strstr(bus_errmsg(), "event 3 of 5"), "%s", bus_errmsg());
	cr_assert_eq(bus_sub_next(s, &ev), 0);
	cr_assert_eq(bus_pub_next_seq(p), 6);

	/* Pending BUS_MORE events go out with the vector, in order. */
	m[3].len = 60;
	cr_assert_eq(bus_pub_publish(p, 7, "more", 4, BUS_MORE), 0);
	cr_assert_eq(bus_pub_publishv(p, m + 1, 2), 2);
	cr_assert_eq(bus_sub_next(s, &ev), 1);
	cr_assert_eq(ev.seq, 6);
	cr_assert_eq(ev.type, 7);
	cr_assert_eq(bus_sub_next(s, &ev), 1);
	cr_assert_eq(ev.seq, 7);
	cr_assert_eq(bus_sub_next(s, &ev), 1);
	cr_assert_eq(ev.seq, 8);

	cr_assert_eq(bus_topic_remove(t), 0);
	cr_assert_eq(bus_pub_publishv(p, m, 1), -EPIPE);
	bus_sub_close(s);
	bus_pub_close(p);
}

Test(pub, publishv_larger_than_the_ring_is_published_in_parts)
{
	const char *t = topic("vecbig", 4096, 0);
	struct bus_pub *p;
	struct bus_sub *s;
	struct bus_topic_info ti;
	struct bus_event ev;
	static struct bus_msg m[200];
	static uint64_t v[200];
	uint64_t i, first;

	cr_assert_eq(bus_pub_open(t, &p), 0);
	cr_assert_eq(bus_sub_open(t, NULL, &s), 0);
	for (i = 0; i < 200; i++) {  /* 200 x 32 bytes: over 1.5 rings */
		v[i] = i + 1;
		m[i] = (struct bus_msg){ &v[i], sizeof(v[i]), 0 };
	}
	cr_assert_eq(bus_pub_publishv(p, m, 200), 200, "%s", bus_errmsg());
	cr_assert_eq(bus_topic_stat(t, &ti, NULL, 0), 1);
	cr_assert_eq(ti.next_seq, 201);
	/* The consumer was lapped by the first part; what is left is exact. */
	cr_assert_eq(bus_sub_next(s, &ev), -ENOBUFS);
	first = ev.seq + ev.lost;
	for (i = first; i <= 200; i++) {
		cr_assert_eq(bus_sub_next(s, &ev), 1);
		cr_assert_eq(ev.seq, i);
		cr_assert_eq(*(const uint64_t *)ev.data, i);
	}
	cr_assert_eq(bus_sub_next(s, &ev), 0);
	bus_sub_close(s);
	bus_pub_close(p);
	bus_topic_remove(t);
}
