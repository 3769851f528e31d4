/* SPDX-License-Identifier: MIT */
/*
 * Description: busd is never on the data path (DESIGN.md invariant 1).
 * kill -9 busd under load, several times, and start it again: the producer
 * never sees an error, every consumer receives every event exactly once in
 * order with its payload intact, and afterwards every client has
 * re-registered with the new busd by itself: the lease, the consumer slots
 * and the named cursor are where they were, a second producer is refused,
 * the producer's close releases the lease, and a consumer that dies frees
 * its slot. A client that was idle while busd restarted just goes on, even
 * with its very first request after the restart; a consumer closed through
 * busd, before or after a restart, gives its slot back.
 *
 * Producer and consumers are real processes (t_fork), each with its own
 * bus_connect: busd tells clients apart by pid, and one is killed. They are
 * forked before the test process starts any thread (bus_connect's watcher),
 * so this also holds under TSan.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus.h"
#include "t_busd.h"
#include "t_util.h"

TestSuite(busd_restart, .init = t_init, .fini = t_fini, .timeout = 60);

#define SEC 1000000000ull
#define MS 1000000ull
#define KILLED (128 + SIGKILL)

#define TOPIC "orders.created"
#define GROUP "audit"
#define NCONS 3                 /* consumer 0 has the named cursor */
#define RING (16u << 20)
#define MAX_LEN 2048u
/* The producer stops adding payload here, well inside the ring: nobody can
 * be lapped, however slow (sanitizers) a consumer is. */
#define PAYLOAD_CAP (10u << 20)
#define BATCH 16                /* events per burst; a burst every 8 ms */
#define COMMIT_EVERY 64

struct ctl {
	char dir[600];
	uint64_t seed;
	_Atomic int go;              /* the topic exists */
	_Atomic int stop;            /* producer: stop publishing */
	_Atomic int close_pub;       /* producer: bus_pub_close() */
	_Atomic int pub_quit;        /* producer: disconnect and exit */
	_Atomic int cons_quit;       /* consumers: close, disconnect, exit */
	_Atomic int pub_state;       /* 1 attached, 2 stopped, 3 closed */
	_Atomic uint64_t pub_next;   /* its next seq once stopped */
	_Atomic uint64_t target;     /* consumers: read every seq below this */
	_Atomic int ready[NCONS];
	_Atomic uint64_t next[NCONS];     /* next seq each consumer expects */
	_Atomic uint64_t received[NCONS];
	_Atomic uint64_t committed[NCONS];
};

static int wait_flag(_Atomic int *f, int want, const char *who, const char *what)
{
	uint64_t deadline = t_now_ns() + 50 * SEC;

	while (atomic_load(f) != want) {
		if (t_now_ns() > deadline)
			return t_fail("%s: waited 50 s for %s", who, what);
		t_nap_us(1000);
	}
	return 0;
}

static int producer(void *arg)
{
	struct ctl *c = arg;
	uint8_t buf[MAX_LEN];
	uint64_t payload = 0;
	struct bus_pub *pub;
	struct bus *b;
	int r;

	if (wait_flag(&c->go, 1, "producer", "the topic"))
		return 1;
	for (int i = 0; i < NCONS; i++)
		if (wait_flag(&c->ready[i], 1, "producer", "the consumers"))
			return 1;
	if ((r = bus_connect(c->dir, &b)) < 0)
		return t_fail("producer: bus_connect = %d (%s)", r, bus_errmsg());
	if ((r = bus_pub_attach(b, TOPIC, &pub)) < 0)
		return t_fail("producer: bus_pub_attach = %d (%s)", r, bus_errmsg());
	atomic_store(&c->pub_state, 1);
	while (!atomic_load(&c->stop)) {
		for (int i = 0; i < BATCH && payload < PAYLOAD_CAP; i++) {
			uint64_t seq = bus_pub_next_seq(pub);
			uint32_t len = t_len_for(c->seed, seq, 1, MAX_LEN);
			void *p;

			/* Both ways in: a copy, and claim + commit. */
			if (seq % 2) {
				t_fill(buf, len, c->seed, seq);
				r = bus_pub_publish(pub, (uint32_t)seq, buf, len, 0);
			} else if ((r = bus_pub_claim(pub, len, &p)) == 0) {
				t_fill(p, len, c->seed, seq);
				r = bus_pub_commit(pub, (uint32_t)seq, len, 0);
			}
			if (r != 0)
				return t_fail("producer: seq %llu: %d (%s)", (unsigned long long)seq,
					      r, bus_errmsg());
			payload += len;
		}
		t_nap_us(8000);
	}
	atomic_store(&c->pub_next, bus_pub_next_seq(pub));
	atomic_store(&c->pub_state, 2);
	if (wait_flag(&c->close_pub, 1, "producer", "close"))
		return 1;
	bus_pub_close(pub);
	atomic_store(&c->pub_state, 3);
	if (wait_flag(&c->pub_quit, 1, "producer", "quit"))
		return 1;
	bus_disconnect(b);
	return 0;
}

struct cons_arg {
	struct ctl *c;
	int i;
};

static int consumer(void *arg)
{
	struct cons_arg *a = arg;
	struct ctl *c = a->c;
	struct bus_sub_opts o = { .from = BUS_FROM_OLDEST, .group = a->i == 0 ? GROUP : NULL };
	uint64_t expected, deadline = t_now_ns() + 55 * SEC;
	static uint8_t buf[MAX_LEN];
	struct bus_event ev;
	struct bus_sub *sub;
	struct bus *b;
	int r;

	if (wait_flag(&c->go, 1, "consumer", "the topic"))
		return 1;
	if ((r = bus_connect(c->dir, &b)) < 0)
		return t_fail("consumer %d: bus_connect = %d (%s)", a->i, r, bus_errmsg());
	if ((r = bus_sub_attach(b, TOPIC, &o, &sub)) < 0)
		return t_fail("consumer %d: bus_sub_attach = %d (%s)", a->i, r, bus_errmsg());
	expected = bus_sub_next_seq(sub);
	if (expected != 1)
		return t_fail("consumer %d: starts at seq %llu, expected 1", a->i,
			      (unsigned long long)expected);
	atomic_store(&c->next[a->i], expected);
	atomic_store(&c->ready[a->i], 1);
	for (;;) {
		if (t_now_ns() > deadline)
			return t_fail("consumer %d: still running after 55 s (at seq %llu)", a->i,
				      (unsigned long long)expected);
		r = bus_sub_read(sub, buf, sizeof(buf), &ev);
		if (r == 1) {
			uint32_t len = t_len_for(c->seed, ev.seq, 1, MAX_LEN);

			if (ev.seq != expected || ev.len != len || ev.type != (uint32_t)ev.seq ||
			    t_check(ev.data, ev.len, c->seed, ev.seq))
				return t_fail("consumer %d: seq %llu (expected %llu), %u bytes "
					      "(expected %u), type %u, checksum %s", a->i,
					      (unsigned long long)ev.seq,
					      (unsigned long long)expected, ev.len, len, ev.type,
					      t_check(ev.data, ev.len, c->seed, ev.seq) ? "bad" : "ok");
			expected++;
			atomic_fetch_add(&c->received[a->i], 1);
			if (a->i == 0 && expected % COMMIT_EVERY == 0) {
				if ((r = bus_sub_commit(sub)) != 0)
					return t_fail("consumer 0: commit = %d (%s)", r, bus_errmsg());
				atomic_store(&c->committed[0], expected);
			}
			atomic_store(&c->next[a->i], expected);
			continue;
		}
		if (r != 0)
			return t_fail("consumer %d: read = %d (%s) at seq %llu, lost %llu", a->i, r,
				      bus_errmsg(), (unsigned long long)expected,
				      (unsigned long long)ev.lost);
		/* Caught up. At the target, the named cursor commits all. */
		if (expected == atomic_load(&c->target) && a->i == 0 &&
		    atomic_load(&c->committed[0]) != expected) {
			if ((r = bus_sub_commit(sub)) != 0)
				return t_fail("consumer 0: commit = %d (%s)", r, bus_errmsg());
			atomic_store(&c->committed[0], expected);
		}
		if (atomic_load(&c->cons_quit))
			break;
		r = bus_sub_wait(sub, 20 * (int64_t)MS);
		if (r != 1 && r != -ETIMEDOUT)
			return t_fail("consumer %d: wait = %d", a->i, r);
	}
	bus_sub_close(sub);
	bus_disconnect(b);
	return 0;
}

/* Every child still running (a child that failed says why on stderr). */
static void assert_alive(const pid_t *pids, int n)
{
	for (int i = 0; i < n; i++) {
		siginfo_t si = { 0 };

		if (!pids[i])
			continue;
		/* WNOWAIT: look, do not reap (t_wait_pid does that). */
		cr_assert_eq(waitid(P_PID, (id_t)pids[i], &si, WEXITED | WNOHANG | WNOWAIT), 0);
		cr_assert_eq(si.si_pid, 0, "child %d (pid %d) ended early (%s %d); its message is "
			     "above", i, (int)pids[i], si.si_code == CLD_EXITED ? "exit" : "signal",
			     si.si_status);
	}
}

static void wait_consumers(struct ctl *c, const pid_t *pids, uint64_t target)
{
	uint64_t deadline = t_now_ns() + 30 * SEC;

	for (int i = 0; i < NCONS; i++) {
		if (!pids[1 + i])
			continue;
		while (atomic_load(&c->next[i]) != target) {
			assert_alive(pids, 1 + NCONS);
			cr_assert_lt(t_now_ns(), deadline, "consumer %d is at seq %llu, the target is "
				     "%llu", i, (unsigned long long)atomic_load(&c->next[i]),
				     (unsigned long long)target);
			t_nap_us(2000);
		}
	}
}

/* Find the consumer of pid in cons[0..n). */
static const struct bus_consumer_info *cons_of(const struct bus_consumer_info *cons, int n,
					       pid_t pid)
{
	for (int i = 0; i < n; i++)
		if (cons[i].pid == (uint32_t)pid)
			return &cons[i];
	return NULL;
}

Test(busd_restart, kill_9_under_load_loses_nothing_and_clients_reattach)
{
	struct bus_topic_opts o = { .ring_size = RING, .max_event = MAX_LEN };
	struct ctl *c = t_shared(sizeof(*c));
	struct cons_arg *ca = t_shared(sizeof(*ca) * NCONS);
	struct bus_consumer_info cons[8];
	struct bus_topic_info info;
	struct t_busd d;
	struct bus_pub *pub;
	struct bus *b;
	pid_t pids[1 + NCONS];      /* producer, consumers */
	uint64_t rnd, n_end, more, t0;
	char needle[64];
	uint8_t buf[MAX_LEN];
	int kills, n;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	snprintf(c->dir, sizeof(c->dir), "%s", d.dir);
	c->seed = t_rand();
	rnd = c->seed;
	cr_log_info("seed %llu", (unsigned long long)c->seed);
	/* Children first: the test process has no thread yet. */
	pids[0] = t_fork(producer, c);
	for (int i = 0; i < NCONS; i++) {
		ca[i] = (struct cons_arg){ c, i };
		pids[1 + i] = t_fork(consumer, &ca[i]);
	}
	cr_assert_eq(bus_connect(d.dir, &b), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, TOPIC, &o), 0, "%s", bus_errmsg());
	atomic_store(&c->go, 1);
	t0 = t_now_ns();
	while (atomic_load(&c->pub_state) != 1) {
		assert_alive(pids, 1 + NCONS);
		cr_assert_lt(t_now_ns() - t0, 10 * SEC, "the clients did not attach within 10 s");
		t_nap_us(1000);
	}

	/* kill -9 busd 3-5 times while events flow; start it again after a
	 * pause of 10-300 ms each time. */
	kills = 3 + (int)((rnd >> 8) % 3);
	for (int k = 0; k < kills; k++) {
		rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
		t_nap_us(150000 + (rnd >> 33) % 450000);
		t_busd_kill(&d);
		t_nap_us(10000 + (rnd >> 17) % 290000);
		cr_assert_eq(t_busd_restart(&d, NULL), 0, "restart %d failed", k + 1);
	}
	t_nap_us(300000);
	atomic_store(&c->stop, 1);
	while (atomic_load(&c->pub_state) != 2) {
		assert_alive(pids, 1 + NCONS);
		cr_assert_lt(t_now_ns() - t0, 40 * SEC, "the producer did not stop");
		t_nap_us(1000);
	}
	n_end = atomic_load(&c->pub_next);
	cr_assert_gt(n_end, 200, "only %llu events were published", (unsigned long long)n_end - 1);
	atomic_store(&c->target, n_end);
	wait_consumers(c, pids, n_end);
	for (int i = 0; i < NCONS; i++)
		cr_assert_eq(atomic_load(&c->received[i]), n_end - 1, "consumer %d received %llu "
			     "events of %llu", i, (unsigned long long)atomic_load(&c->received[i]),
			     (unsigned long long)(n_end - 1));
	t0 = t_now_ns();
	while (atomic_load(&c->committed[0]) != n_end) {
		assert_alive(pids, 1 + NCONS);
		cr_assert_lt(t_now_ns() - t0, 10 * SEC, "the named consumer did not commit");
		t_nap_us(1000);
	}

	/* The new busd knows everyone: the producer and all three consumers,
	 * the named one by its cursor, committed up to the end. */
	n = bus_stat(b, TOPIC, &info, cons, 8);
	cr_assert_eq(n, NCONS, "bus_stat = %d (%s)", n, bus_errmsg());
	cr_assert_eq(info.producer_pid, (uint32_t)pids[0]);
	cr_assert_eq(info.next_seq, n_end);
	cr_assert_eq(info.consumers, NCONS);
	for (int i = 0; i < NCONS; i++) {
		const struct bus_consumer_info *ci = cons_of(cons, n, pids[1 + i]);

		cr_assert_not_null(ci, "consumer %d (pid %d) is not in bus_stat", i, (int)pids[1 + i]);
		cr_assert_str_eq(ci->group, i == 0 ? GROUP : "", "consumer %d has cursor '%s'", i,
				 ci->group);
		cr_assert_eq(ci->next_seq, n_end);
		cr_assert_eq(ci->commit, i == 0 ? n_end : 0);
	}
	cr_assert_eq(bus_pub_attach(b, TOPIC, &pub), -EBUSY);
	snprintf(needle, sizeof(needle), "(pid %d)", (int)pids[0]);
	cr_assert(strstr(bus_errmsg(), needle), "'%s' does not name the producer %s",
		  bus_errmsg(), needle);

	/* The producer closes its handle but lives on. Only a producer that
	 * re-registered with this busd releases the lease this way (one the
	 * new busd merely adopted stays with the live pid): so the next
	 * attach must succeed at once. */
	atomic_store(&c->close_pub, 1);
	t0 = t_now_ns();
	while (atomic_load(&c->pub_state) != 3) {
		assert_alive(pids, 1 + NCONS);
		cr_assert_lt(t_now_ns() - t0, 10 * SEC, "the producer did not close");
		t_nap_us(1000);
	}
	cr_assert_eq(bus_pub_attach(b, TOPIC, &pub), 0, "after the producer closed: %s",
		     bus_errmsg());
	cr_assert_eq(bus_pub_next_seq(pub), n_end);
	atomic_store(&c->pub_quit, 1);
	cr_assert_eq(t_wait_pid(pids[0]), 0, "the producer failed");
	pids[0] = 0;
	/* The sequence goes on, and everybody reads it. */
	more = t_scaled(500, 100);
	for (uint64_t seq = n_end; seq < n_end + more; seq++) {
		uint32_t len = t_len_for(c->seed, seq, 1, MAX_LEN);

		t_fill(buf, len, c->seed, seq);
		cr_assert_eq(bus_pub_publish(pub, (uint32_t)seq, buf, len, 0), 0, "%s",
			     bus_errmsg());
	}
	atomic_store(&c->target, n_end + more);
	wait_consumers(c, pids, n_end + more);
	n = bus_stat(b, TOPIC, &info, cons, 8);
	cr_assert_eq(n, NCONS);
	cr_assert_eq(info.producer_pid, (uint32_t)getpid());

	/* A consumer killed with SIGKILL: busd frees its slot (it learns of
	 * the death asynchronously). */
	cr_assert_eq(kill(pids[3], SIGKILL), 0);
	cr_assert_eq(t_wait_pid(pids[3]), KILLED);
	t0 = t_now_ns();
	while ((n = bus_stat(b, TOPIC, &info, cons, 8)) == NCONS && t_now_ns() - t0 < 2 * SEC)
		t_nap_us(5000);
	cr_assert_eq(n, NCONS - 1, "bus_stat = %d 2 s after a consumer was killed", n);
	cr_assert_null(cons_of(cons, n, pids[3]));
	cr_assert_not_null(cons_of(cons, n, pids[1]));
	cr_assert_not_null(cons_of(cons, n, pids[2]));
	cr_assert_str_eq(cons_of(cons, n, pids[1])->group, GROUP);
	pids[3] = 0;

	atomic_store(&c->cons_quit, 1);
	cr_assert_eq(t_wait_pid(pids[1]), 0, "consumer 0 failed");
	cr_assert_eq(t_wait_pid(pids[2]), 0, "consumer 1 failed");
	n = bus_stat(b, TOPIC, &info, NULL, 0);
	cr_assert_eq(n, 0, "%d consumers left after all closed", n);
	bus_pub_close(pub);
	cr_assert_eq(kill(d.pid, 0), 0);
	cr_log_info("%d busd kills, %llu events, every consumer got all of them",
		    kills, (unsigned long long)(n_end + more - 1));
	bus_disconnect(b);
}

Test(busd_restart, an_idle_client_just_goes_on_after_busd_restarts)
{
	struct bus_event ev;
	struct bus_topic_info info;
	struct bus_consumer_info ci;
	struct bus_pub *pub;
	struct bus_sub *sub, *sub2;
	struct t_busd d;
	struct bus *b;
	uint64_t rnd = t_rand(), t0;
	uint8_t out[100], in[100];
	int r;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	cr_assert_eq(bus_connect(d.dir, &b), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, "before", NULL), 0, "%s", bus_errmsg());

	/* Round 1: restarted behind the client's back; its next call works. */
	t_busd_kill(&d);
	t_nap_us(10000 + rnd % 290000);
	cr_assert_eq(t_busd_restart(&d, NULL), 0);
	cr_assert_eq(bus_create(b, "after", NULL), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_attach(b, "after", NULL, &sub), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_attach(b, "before", NULL, &sub2), 0, "the adopted topic: %s",
		     bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "after", &pub), 0, "%s", bus_errmsg());

	/* Round 2: a call while busd is down fails, and says why (the dead
	 * busd's socket file is still there: refused); after the restart
	 * the next call works. */
	t_busd_kill(&d);
	/* (For a few ms after the kill the dead busd's io_uring still holds
	 * its listening socket: a connect succeeds and is then reset.) */
	t0 = t_now_ns();
	while ((r = bus_ping(b)) == -ECONNRESET && t_now_ns() - t0 < SEC)
		t_nap_us(1000);
	cr_assert_eq(r, -ECONNREFUSED, "bus_ping with busd down = %d (%s)", r, bus_errmsg());
	cr_assert(strstr(bus_errmsg(), "busd"), "%s", bus_errmsg());
	cr_assert_eq(t_busd_restart(&d, NULL), 0);
	cr_assert_eq(bus_create(b, "third", NULL), 0, "%s", bus_errmsg());

	/* Round 3: the client's watcher has reconnected before it calls. */
	t_busd_kill(&d);
	t_nap_us(10000 + (rnd >> 20) % 290000);
	cr_assert_eq(t_busd_restart(&d, NULL), 0);
	t_nap_us(1000000);
	cr_assert_eq(bus_create(b, "fourth", NULL), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_list(b, NULL, 0), 4);
	/* What it held through all that is still its own, and works. */
	cr_assert_eq(bus_stat(b, "after", &info, &ci, 1), 1, "%s", bus_errmsg());
	cr_assert_eq(info.producer_pid, (uint32_t)getpid());
	cr_assert_eq(ci.pid, (uint32_t)getpid());
	t_fill(out, sizeof(out), 5, 1);
	cr_assert_eq(bus_pub_publish(pub, 9, out, sizeof(out), 0), 0);
	cr_assert_eq(bus_sub_read(sub, in, sizeof(in), &ev), 1);
	cr_assert_eq(ev.seq, 1);
	cr_assert_eq(ev.len, sizeof(out));
	cr_assert_eq(t_check(ev.data, ev.len, 5, 1), 0);
	bus_pub_close(pub);
	bus_sub_close(sub);
	bus_sub_close(sub2);
	/* Closed through the connection: the lease is free at once. */
	cr_assert_eq(bus_pub_attach(b, "after", &pub), 0, "%s", bus_errmsg());
	bus_pub_close(pub);
	cr_assert_eq(bus_delete(b, "after"), 0, "%s", bus_errmsg());
	bus_disconnect(b);
}

/* bus_sub_close() through a connection gives the slot back, whether the
 * consumer attached to this busd or re-registered with a restarted one:
 * a process that attaches and closes over and over never runs out. */
Test(busd_restart, a_closed_consumer_frees_its_slot_before_and_after_a_restart)
{
	struct bus_topic_opts o = { .max_consumers = 2 };
	struct bus_consumer_info ci;
	struct bus_sub *sub;
	struct t_busd d;
	struct bus *b;
	int r;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	cr_assert_eq(bus_connect(d.dir, &b), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, "t", &o), 0, "%s", bus_errmsg());
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 3; i++) {
			r = bus_sub_attach(b, "t", NULL, &sub);
			cr_assert_eq(r, 0, "round %d, attach %d: %d (%s)", round, i, r, bus_errmsg());
			if (i == 0 && round == 1) {
				/* Held across a busd restart, re-registered by
				 * the watcher, then closed. */
				t_busd_kill(&d);
				cr_assert_eq(t_busd_restart(&d, NULL), 0);
				t_nap_us(300000);
				cr_assert_eq(bus_ping(b), 0, "%s", bus_errmsg());
			}
			bus_sub_close(sub);
			memset(&ci, 0, sizeof(ci));
			r = bus_stat(b, "t", NULL, &ci, 1);
			cr_assert_eq(r, 0, "round %d, attach %d: bus_stat = %d after bus_sub_close: "
				     "slot %u still held by pid %u (this process is %d)", round, i, r,
				     ci.slot, ci.pid, (int)getpid());
		}
	}
	bus_disconnect(b);
}

/* The first request right after busd was killed and started again (no
 * pause, as a supervisor restarting it at once would) succeeds: whatever
 * state the old connection is in, the application notices nothing. */
Test(busd_restart, the_first_request_right_after_a_restart_succeeds)
{
	struct bus_sub *sub;
	struct t_busd d;
	struct bus *b;
	char name[32];
	int r;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	cr_assert_eq(bus_connect(d.dir, &b), 0, "%s", bus_errmsg());
	for (int i = 0; i < 5; i++) {
		t_busd_kill(&d);
		cr_assert_eq(t_busd_restart(&d, NULL), 0);
		switch (i % 3) {
		case 0:
			r = bus_ping(b);
			break;
		case 1:
			snprintf(name, sizeof(name), "t%d", i);
			r = bus_create(b, name, NULL);
			break;
		default:
			r = bus_sub_attach(b, "t1", NULL, &sub);
			if (r == 0)
				bus_sub_close(sub);
		}
		cr_assert_eq(r, 0, "restart %d, request %d: %d (%s)", i + 1, i % 3, r, bus_errmsg());
	}
	bus_disconnect(b);
}
