/* SPDX-License-Identifier: MIT */
/* Description: optional gating — the producer does not overwrite what a
 * gating consumer has not read; it waits (bounded) and then says -EAGAIN;
 * other consumers are not waited for; a dead gating consumer does not block. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus.h"
#include "t_util.h"

TestSuite(gating, .init = t_init, .fini = t_fini, .timeout = 120);

static const char *gtopic(const char *tag)
{
	const char *t = t_topic(tag);

	cr_assert_eq(bus_topic_create(t, &(struct bus_topic_opts){
				     .ring_size = 8192, .flags = BUS_TOPIC_GATING }), 0);
	return t;
}

struct slow {
	const char *t;
	uint64_t n;
	volatile int *ready;
};

/* A gating consumer that reads slowly and checks every event. */
static int slow_reader(void *arg)
{
	struct slow *a = arg;
	struct bus_sub *s;
	struct bus_event ev;
	uint64_t want = 1;
	int r;

	if (bus_sub_open(a->t, &(struct bus_sub_opts){ .flags = BUS_SUB_GATING }, &s) < 0)
		return 1;
	__atomic_store_n(a->ready, 1, __ATOMIC_RELEASE);
	while (want <= a->n) {
		r = bus_sub_next(s, &ev);
		if (r == 0) {
			bus_sub_wait(s, 100000000);
			continue;
		}
		if (r != 1 || ev.seq != want || t_check(ev.data, ev.len, 3, ev.seq))
			return 2;
		if (bus_sub_confirm(s, &ev))
			return 3;
		if (want % 64 == 0)
			usleep(200);
		want++;
	}
	bus_sub_close(s);
	return 0;
}

Test(gating, producer_waits_for_a_slow_gating_consumer_and_nothing_is_lost)
{
	struct slow a = { .t = gtopic("slow"), .n = t_scaled(20000, 2000), .ready = t_shared(4096) };
	struct bus_pub *p;
	struct bus_topic_info ti;
	struct t_proc c;
	char buf[100];
	uint64_t i;

	t_spawn(&c, slow_reader, &a);
	while (!__atomic_load_n(a.ready, __ATOMIC_ACQUIRE))
		usleep(1000);
	cr_assert_eq(bus_pub_open(a.t, &p), 0);
	bus_pub_set_timeout(p, 10000000000ll);
	for (i = 1; i <= a.n; i++) {  /* ~200 rings' worth */
		uint32_t len = t_len_for(3, i, 8, sizeof(buf));

		t_fill(buf, len, 3, i);
		cr_assert_eq(bus_pub_publish(p, 0, buf, len, 0), 0, "%s", bus_errmsg());
	}
	cr_assert_eq(t_join(&c), 0);
	cr_assert_eq(bus_topic_stat(a.t, &ti, NULL, 0), 0);
	cr_assert_gt(ti.producer_waits, 0, "the producer never had to wait: test too easy");
	bus_pub_close(p);
	bus_topic_remove(a.t);
}

static const char *stuck_topic;

static int stop_after_open(void *arg)
{
	struct bus_sub *s;
	struct bus_event ev;
	uint64_t n = 0;

	(void)arg;
	if (bus_sub_open(stuck_topic, &(struct bus_sub_opts){ .flags = BUS_SUB_GATING }, &s) < 0)
		return 1;
	raise(SIGSTOP);
	/* Resumed: read everything that is there, in order, no gap. */
	for (;;) {
		int r = bus_sub_next(s, &ev);

		if (r == 0)
			break;
		if (r != 1 || ev.seq != ++n)
			return 2;
	}
	return n > 0 ? 0 : 3;
}

Test(gating, stuck_gating_consumer_makes_claim_fail_with_eagain_then_recover)
{
	struct bus_pub *p;
	struct bus_topic_info ti;
	pid_t pid;
	int r = 0, st, i;
	uint64_t t0;
	char buf[512] = { 0 }, pidstr[32];

	stuck_topic = gtopic("stuck");
	pid = t_fork(stop_after_open, NULL);
	do {
		waitpid(pid, &st, WUNTRACED);
	} while (!WIFSTOPPED(st));
	cr_assert_eq(bus_pub_open(stuck_topic, &p), 0);
	bus_pub_set_timeout(p, 100000000);  /* 100 ms */
	t0 = t_now_ns();
	for (i = 0; i < 100 && (r = bus_pub_publish(p, 0, buf, sizeof(buf), 0)) == 0; i++)
		;
	cr_assert_eq(r, -EAGAIN, "after %d events", i);
	cr_assert_geq(t_now_ns() - t0, 100000000);
	snprintf(pidstr, sizeof(pidstr), "pid %d", (int)pid);
	cr_assert(strstr(bus_errmsg(), pidstr), "%s", bus_errmsg());
	cr_assert_lt(i, 20, "a 8 KiB ring holds at most 15 such events");
	/* Nothing was overwritten: the stuck consumer reads all i events. */
	kill(pid, SIGCONT);
	cr_assert_eq(t_wait_pid(pid), 0);
	/* It is gone: the producer goes on. */
	cr_assert_eq(bus_pub_publish(p, 0, buf, sizeof(buf), 0), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_topic_stat(stuck_topic, &ti, NULL, 0), 0);
	cr_assert_gt(ti.producer_waits, 0);
	bus_pub_close(p);
	bus_topic_remove(stuck_topic);
}

static int open_gating_and_die(void *arg)
{
	struct bus_sub *s;

	(void)arg;
	if (bus_sub_open(stuck_topic, &(struct bus_sub_opts){ .flags = BUS_SUB_GATING }, &s) < 0)
		return 1;
	raise(SIGKILL);
	return 2;
}

Test(gating, dead_gating_consumer_does_not_block_the_producer)
{
	struct bus_pub *p;
	char buf[512] = { 0 };
	int i;

	stuck_topic = gtopic("dead");
	cr_assert_eq(t_wait_pid(t_fork(open_gating_and_die, NULL)), 128 + SIGKILL);
	cr_assert_eq(bus_pub_open(stuck_topic, &p), 0);
	bus_pub_set_timeout(p, 5000000000ll);
	for (i = 0; i < 200; i++)
		cr_assert_eq(bus_pub_publish(p, 0, buf, sizeof(buf), 0), 0, "%s", bus_errmsg());
	bus_pub_close(p);
	bus_topic_remove(stuck_topic);
}

Test(gating, non_gating_consumer_of_a_gating_topic_is_lapped_not_waited_for)
{
	const char *t = gtopic("mixed");
	struct bus_pub *p;
	struct bus_sub *s;
	struct bus_event ev;
	uint64_t i;

	cr_assert_eq(bus_sub_open(t, NULL, &s), 0);
	cr_assert_eq(bus_pub_open(t, &p), 0);
	bus_pub_set_timeout(p, 0);
	for (i = 1; i <= 1000; i++)
		cr_assert_eq(bus_pub_publish(p, 0, &i, sizeof(i), 0), 0);
	uint64_t lost;

	cr_assert_eq(bus_sub_next(s, &ev), -ENOBUFS);
	cr_assert_eq(ev.seq, 1);
	lost = ev.lost;
	cr_assert_gt(lost, 700);
	for (i = 1 + lost; i <= 1000; i++) {
		cr_assert_eq(bus_sub_next(s, &ev), 1);
		cr_assert_eq(ev.seq, i, "resumes right after the gap, then in order");
	}
	cr_assert_eq(bus_sub_next(s, &ev), 0);
	bus_sub_close(s);
	bus_pub_close(p);
	bus_topic_remove(t);
}
