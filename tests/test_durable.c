/* SPDX-License-Identifier: MIT */
/* test_durable.c — durable topics: the flusher, the log, catch-up, replay. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "bus.h"
#include "t_busd.h"
#include "t_util.h"

TestSuite(durable, .init = t_init, .fini = t_fini, .timeout = 120);

#define MAXEV 512

static struct bus *connect_to(const struct t_busd *d)
{
	struct bus *b;

	cr_assert_eq(bus_connect(d->dir, &b), 0, "%s", bus_errmsg());
	return b;
}

/* Publish events [1, n] with checksummed payloads of varying length. */
static void publish_n(struct bus_pub *p, uint64_t seed, uint64_t first, uint64_t n)
{
	uint8_t buf[MAXEV];

	for (uint64_t s = first; s < first + n; s++) {
		uint32_t len = t_len_for(seed, s, 8, MAXEV);

		t_fill(buf, len, seed, s);
		cr_assert_eq(bus_pub_publish(p, (uint32_t)s, buf, len, 0), 0, "publish %llu: %s",
			     (unsigned long long)s, bus_errmsg());
	}
}

/* Read events [first, first + n) and check each one. */
static void expect_n(struct bus_sub *s, uint64_t seed, uint64_t first, uint64_t n)
{
	struct bus_event ev;

	for (uint64_t want = first; want < first + n; want++) {
		int r = bus_sub_next(s, &ev);

		if (r == 0) {
			cr_assert_geq(bus_sub_wait(s, 5000000000ll), 0, "%s", bus_errmsg());
			r = bus_sub_next(s, &ev);
		}
		cr_assert_eq(r, 1, "event %llu: next = %d (%s), lost %llu", (unsigned long long)want,
			     r, bus_errmsg(), (unsigned long long)ev.lost);
		cr_assert_eq(ev.seq, want);
		cr_assert_eq(t_check(ev.data, ev.len, seed, ev.seq), 0, "payload of %llu",
			     (unsigned long long)ev.seq);
		cr_assert_eq(bus_sub_confirm(s, &ev), 0);
	}
}

Test(durable, an_idle_consumer_crosses_from_the_log_back_into_the_ring)
{
	struct bus_topic_opts o = { .ring_size = 64 << 10, .max_event = MAXEV,
				    .flags = BUS_TOPIC_DURABLE, .segment_bytes = 1 << 20 };
	uint64_t seed = t_rand(), n = t_scaled(40000, 4000);
	struct bus_sub *s;
	struct bus_pub *p;
	struct t_busd d;
	struct bus *b;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "d", &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_attach(b, "d", NULL, &s), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "d", &p), 0, "%s", bus_errmsg());
	/* ~20 rings' worth while the consumer does nothing. */
	publish_n(p, seed, 1, n);
	expect_n(s, seed, 1, n);
	/* ...and it is in the ring again: live events keep coming. */
	publish_n(p, seed, n + 1, 10);
	expect_n(s, seed, n + 1, 10);
	cr_assert_eq(bus_pub_sync(p, n + 10, 5000000000ll), 0, "%s", bus_errmsg());
	bus_sub_close(s);
	bus_pub_close(p);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
}

Test(durable, the_log_survives_busd_and_reads_offline)
{
	struct bus_topic_opts o = { .ring_size = 64 << 10, .max_event = MAXEV,
				    .flags = BUS_TOPIC_DURABLE, .fsync = BUS_FSYNC_ALWAYS };
	uint64_t seed = t_rand(), n = t_scaled(5000, 500);
	struct bus_log_info li;
	struct bus_event ev;
	struct bus_log *l;
	struct bus_pub *p;
	struct t_busd d;
	struct bus *b;
	char dir[700];

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "k", &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "k", &p), 0, "%s", bus_errmsg());
	publish_n(p, seed, 1, n);
	cr_assert_eq(bus_pub_sync(p, n, 5000000000ll), 0, "%s", bus_errmsg());
	{
		struct bus_topic_info ti;

		cr_assert_eq(bus_stat(b, "k", &ti, NULL, 0), 0, "%s", bus_errmsg());
		cr_assert_eq(ti.flags & BUS_TOPIC_DURABLE, BUS_TOPIC_DURABLE);
		cr_assert_eq(ti.durable_seq, n + 1, "fsync always: everything synced is durable");
		cr_assert_eq(ti.flushed_seq, n + 1);
		cr_assert_eq(ti.degraded, 0);
		cr_assert_eq(ti.flush_errors, 0);
	}
	bus_pub_close(p);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);

	/* No busd: the directory alone. */
	snprintf(dir, sizeof(dir), "%s/log/k", d.state);
	cr_assert_eq(bus_log_open(dir, &l), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_log_info(l, &li), 0, "%s", bus_errmsg());
	cr_assert_eq(li.first_seq, 1);
	cr_assert_eq(li.next_seq, n + 1);
	for (uint64_t want = 1; want <= n; want++) {
		cr_assert_eq(bus_log_next(l, &ev), 1, "%s", bus_errmsg());
		cr_assert_eq(ev.seq, want);
		cr_assert_eq(t_check(ev.data, ev.len, seed, ev.seq), 0);
	}
	cr_assert_eq(bus_log_next(l, &ev), 0);
	cr_assert_eq(bus_log_seek(l, n / 2), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_log_next(l, &ev), 1);
	cr_assert_eq(ev.seq, n / 2);
	bus_log_close(l);
}
