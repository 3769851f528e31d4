/* SPDX-License-Identifier: MIT */
/* Description: waiting — adaptive spin then futex sleep, timeouts, no lost
 * wakeups, futex_waitv over several topics, and no system call on a publish
 * when nobody sleeps. */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "bus.h"
#include "t_util.h"

TestSuite(wait, .init = t_init, .fini = t_fini, .timeout = 120);

static const char *mk(const char *tag)
{
	const char *t = t_topic(tag);

	cr_assert_eq(bus_topic_create(t, &(struct bus_topic_opts){ .ring_size = 65536 }), 0);
	return t;
}

Test(wait, times_out_when_nothing_is_published)
{
	const char *t = mk("timeout");
	struct bus_sub *s;
	uint64_t t0, el;

	cr_assert_eq(bus_sub_open(t, NULL, &s), 0);
	t0 = t_now_ns();
	cr_assert_eq(bus_sub_wait(s, 30000000), -ETIMEDOUT);
	el = t_now_ns() - t0;
	cr_assert_geq(el, 30000000);
	cr_assert_lt(el, 2000000000ull);
	cr_assert_eq(bus_sub_wait(s, 0), -ETIMEDOUT);
	bus_sub_set_spin(s, 0);
	cr_assert_eq(bus_sub_wait(s, 1000000), -ETIMEDOUT);
	bus_sub_close(s);
	bus_topic_remove(t);
}

Test(wait, returns_at_once_when_an_event_is_there)
{
	const char *t = mk("ready");
	struct bus_pub *p;
	struct bus_sub *s;

	cr_assert_eq(bus_pub_open(t, &p), 0);
	cr_assert_eq(bus_sub_open(t, NULL, &s), 0);
	cr_assert_eq(bus_pub_publish(p, 0, "x", 1, 0), 0);
	cr_assert_eq(bus_sub_wait(s, 0), 1);
	cr_assert_eq(bus_sub_wait(s, -1), 1);
	bus_sub_close(s);
	bus_pub_close(p);
	bus_topic_remove(t);
}

/* Ping-pong between two processes over two topics, both sides sleeping on
 * the futex every time (spin 0) with no timeout: a single lost wakeup hangs
 * the test until Criterion's timeout fails it. */
struct pp {
	const char *ping, *pong;
	int rounds;
};

static int ponger(void *arg)
{
	struct pp *a = arg;
	struct bus_sub *s;
	struct bus_pub *p;
	struct bus_event ev;
	int i, r;

	if (bus_sub_open(a->ping, NULL, &s) < 0 || bus_pub_open(a->pong, &p) < 0)
		return 1;
	bus_sub_set_spin(s, 0);
	for (i = 0; i < a->rounds; i++) {
		while ((r = bus_sub_next(s, &ev)) == 0)
			if (bus_sub_wait(s, -1) < 0)
				return 2;
		if (r != 1 || ev.seq != (uint64_t)i + 1)
			return 3;
		if (bus_pub_publish(p, 0, &i, sizeof(i), 0) < 0)
			return 4;
	}
	bus_pub_close(p);
	bus_sub_close(s);
	return 0;
}

Test(wait, sleeping_ping_pong_loses_no_wakeup)
{
	struct pp a = { .ping = mk("ping"), .pong = mk("pong"), .rounds = (int)t_scaled(20000, 2000) };
	struct bus_pub *p;
	struct bus_sub *s;
	struct bus_event ev;
	struct bus_topic_info ti;
	struct t_proc child;
	int i, r;

	cr_assert_eq(bus_sub_open(a.pong, NULL, &s), 0);
	bus_sub_set_spin(s, 0);
	t_spawn(&child, ponger, &a);
	/* Wait for the ponger's consumer slot before the first ping. */
	while (bus_topic_stat(a.ping, &ti, NULL, 0) < 1)
		usleep(1000);
	cr_assert_eq(bus_pub_open(a.ping, &p), 0);
	for (i = 0; i < a.rounds; i++) {
		cr_assert_eq(bus_pub_publish(p, 0, &i, sizeof(i), 0), 0);
		while ((r = bus_sub_next(s, &ev)) == 0)
			cr_assert_eq(bus_sub_wait(s, -1), 1);
		cr_assert_eq(r, 1);
		cr_assert_eq(*(const int *)ev.data, i);
	}
	cr_assert_eq(t_join(&child), 0);
	cr_assert_eq(bus_topic_stat(a.ping, &ti, NULL, 0), 0);
	/* The futex path was really taken (most rounds find the ponger asleep). */
	cr_assert_gt(ti.wakeups, 0);
	cr_log_info("%d round trips, %llu FUTEX_WAKEs", a.rounds, (unsigned long long)ti.wakeups);
	bus_sub_close(s);
	bus_pub_close(p);
	bus_topic_remove(a.ping);
	bus_topic_remove(a.pong);
}

/* wait_any: a child waits on three topics; the parent publishes on one. */
struct any {
	const char *t[3];
	int *result;
};

static int wait_three(void *arg)
{
	struct any *a = arg;
	struct bus_sub *s[3];
	int i, r;

	for (i = 0; i < 3; i++)
		if (bus_sub_open(a->t[i], &(struct bus_sub_opts){ .from = BUS_FROM_END }, &s[i]) < 0)
			return 1;
	__atomic_store_n(&a->result[0], 1, __ATOMIC_RELEASE); /* attached */
	r = bus_wait_any(s, 3, 10000000000ll);
	a->result[1] = r;
	for (i = 0; i < 3; i++)
		bus_sub_close(s[i]);
	return 0;
}

Test(wait, wait_any_returns_the_topic_that_got_an_event)
{
	struct any a = { .t = { mk("a0"), mk("a1"), mk("a2") }, .result = t_shared(4096) };
	struct bus_pub *p;
	struct t_proc child;

	t_spawn(&child, wait_three, &a);
	while (!__atomic_load_n(&a.result[0], __ATOMIC_ACQUIRE))
		usleep(1000);
	usleep(20000); /* let it fall asleep in futex_waitv */
	cr_assert_eq(bus_pub_open(a.t[2], &p), 0);
	cr_assert_eq(bus_pub_publish(p, 0, "z", 1, 0), 0);
	cr_assert_eq(t_join(&child), 0);
	cr_assert_eq(a.result[1], 2);
	bus_pub_close(p);
	for (int i = 0; i < 3; i++)
		bus_topic_remove(a.t[i]);
}

Test(wait, wait_any_times_out_and_rejects_bad_counts)
{
	const char *t = mk("any-to");
	struct bus_sub *s;
	uint64_t t0;

	cr_assert_eq(bus_sub_open(t, NULL, &s), 0);
	t0 = t_now_ns();
	cr_assert_eq(bus_wait_any(&s, 1, 20000000), -ETIMEDOUT);
	cr_assert_geq(t_now_ns() - t0, 20000000);
	cr_assert_eq(bus_wait_any(&s, 0, 0), -EINVAL);
	cr_assert_eq(bus_wait_any(&s, 129, 0), -EINVAL);
	bus_sub_close(s);
	bus_topic_remove(t);
}

static void on_alarm(int sig)
{
	(void)sig;
}

Test(wait, a_signal_interrupts_the_sleep_with_eintr)
{
	const char *t = mk("intr");
	struct bus_sub *s;
	struct sigaction sa = { .sa_handler = on_alarm }; /* no SA_RESTART */
	struct itimerval it = { .it_value = { .tv_usec = 50000 } };

	cr_assert_eq(sigaction(SIGALRM, &sa, NULL), 0);
	cr_assert_eq(bus_sub_open(t, NULL, &s), 0);
	bus_sub_set_spin(s, 0);
	cr_assert_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
	cr_assert_eq(bus_sub_wait(s, 5000000000ll), -EINTR);
	bus_sub_close(s);
	bus_topic_remove(t);
}

/* A sleeping consumer is woken by the deletion of its topic. */
static const char *del_topic;

static int wait_for_delete(void *arg)
{
	struct bus_sub *s;
	struct bus_event ev;

	(void)arg;
	if (bus_sub_open(del_topic, NULL, &s) < 0)
		return 1;
	bus_sub_set_spin(s, 0);
	if (bus_sub_wait(s, 10000000000ll) != 1)
		return 2;
	return bus_sub_next(s, &ev) == -EPIPE ? 0 : 3;
}

Test(wait, deleting_the_topic_wakes_sleepers)
{
	struct bus_topic_info ti;
	struct t_proc child;

	del_topic = mk("wdel");
	t_spawn(&child, wait_for_delete, NULL);
	while (bus_topic_stat(del_topic, &ti, NULL, 0) < 1)
		usleep(1000);
	usleep(20000);
	cr_assert_eq(bus_topic_remove(del_topic), 0);
	cr_assert_eq(t_join(&child), 0);
}

/*
 * The strongest form of "a publish with nobody asleep makes no system call":
 * after attaching, the child installs a seccomp filter under which any system
 * call but write and exit_group kills it (not strict mode: on x86 that also
 * disables the TSC, which the timestamps use). It then publishes and consumes
 * a million events (a consumer attached, never sleeping) and reports through
 * a pipe. Surviving is the proof.
 */
static const char *sc_topic;
static int sc_pipe[2];

static int publish_under_seccomp(void *arg)
{
	struct bus_pub *p;
	struct bus_sub *s;
	struct bus_event ev;
	uint64_t i, got = 0, n = (uint64_t)(uintptr_t)arg;
	char ok = 'y';

	if (bus_pub_open(sc_topic, &p) < 0 || bus_sub_open(sc_topic, NULL, &s) < 0)
		return 1;
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_write, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_exit_group, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		return 2;
	for (i = 0; i < n; i++) {
		bus_pub_publish(p, 0, &i, sizeof(i), (i & 15) != 15 ? BUS_MORE : 0);
		if ((i & 15) == 15)
			while (bus_sub_next(s, &ev) == 1)
				got++;
	}
	if (got != n)
		ok = 'n';
	if (write(sc_pipe[1], &ok, 1) != 1)
		ok = 'n';
	/* exit_group, not exit: exit ends only this thread, and a process
	 * with another thread (a sanitizer's) would linger. */
	syscall(SYS_exit_group, ok == 'y' ? 0 : 3);
	return 4;
}

Test(wait, publishing_and_consuming_make_no_system_call)
{
	char c = 0;
	int st;

#ifdef __SANITIZE_THREAD__
	cr_skip_test("the TSan runtime makes system calls of its own; this is not a race test");
#endif
	sc_topic = mk("seccomp");
	cr_assert_eq(pipe(sc_pipe), 0);
	st = t_wait_pid(t_fork(publish_under_seccomp, (void *)(uintptr_t)t_scaled(1000000, 10000)));
	cr_assert_eq(st, 0, "the child died (status %d): a system call on the data path?", st);
	cr_assert_eq(read(sc_pipe[0], &c, 1), 1);
	cr_assert_eq(c, 'y');
	close(sc_pipe[0]);
	close(sc_pipe[1]);
	bus_topic_remove(sc_topic);
}
