/* SPDX-License-Identifier: MIT */
/*
 * Description: busd end to end, through libbus, with real processes: a
 * topic's life from create to delete, the producer lease, named cursors
 * across consumer deaths and busd restarts, permissions and names, many
 * topics and many consumers, one busd per bus, the stale-segment sweep, and
 * what a stopped busd leaves behind.
 *
 * Children never use cr_assert: they report through a shared page (or their
 * exit status, with a diagnosis on stderr from t_fail) and the test asserts.
 * The test process forks only while it holds no bus connection: a connection
 * has a watcher thread, and under TSan a child of a multi-threaded process
 * may not start threads of its own (bus_connect does).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus.h"
#include "t_busd.h"
#include "t_util.h"

#define SEC 1000000000ull
#define KILLED (128 + SIGKILL)  /* t_wait_pid() of a SIGKILLed child */
#define MAXEV 512u              /* largest payload the tests publish */

TestSuite(busd, .init = t_init, .fini = t_fini, .timeout = 60);

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* The bus id of d: FNV-1a-64 of the bus directory's realpath, as 16 hex
 * digits (busd-design: "Paths and identity"). */
static void bus_id_of(const struct t_busd *d, char id[17])
{
	char real[PATH_MAX];
	uint64_t h = 0xcbf29ce484222325ull;

	cr_assert_not_null(realpath(d->dir, real), "realpath %s", d->dir);
	for (const unsigned char *p = (const unsigned char *)real; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ull;
	}
	snprintf(id, 17, "%016llx", (unsigned long long)h);
}

/* Does SHM/bus-ID.TOPIC SUFFIX exist? (topic NULL: the anchor bus-ID) */
static int seg_exists(const char *shm, const char *id, const char *topic, const char *suffix)
{
	char p[1400];

	if (topic)
		snprintf(p, sizeof(p), "%s/bus-%s.%s%s", shm, id, topic, suffix);
	else
		snprintf(p, sizeof(p), "%s/bus-%s", shm, id);
	return access(p, F_OK) == 0;
}

/* Wait until *flag is at least v (a child's handshake): 0, or -1 when the
 * child exited first or `secs` passed. */
static int wait_flag(_Atomic uint32_t *flag, uint32_t v, pid_t pid, unsigned secs)
{
	uint64_t end = t_now_ns() + secs * SEC;

	while (atomic_load(flag) < v) {
		siginfo_t si;

		memset(&si, 0, sizeof(si));
		if (pid > 0 && waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid == pid)
			return -1;
		if (t_now_ns() > end)
			return -1;
		t_nap_us(1000);
	}
	return 0;
}

/* Publish n events: payload t_fill(seed, seq), type = seq. */
static int publish_n(struct bus_pub *p, uint64_t seed, uint64_t n, unsigned flags)
{
	uint8_t buf[MAXEV];

	for (uint64_t i = 0; i < n; i++) {
		uint64_t seq = bus_pub_next_seq(p);
		uint32_t len = t_len_for(seed, seq, 8, MAXEV);
		void *dst;
		int r;

		if (seq & 1) {
			t_fill(buf, len, seed, seq);
			r = bus_pub_publish(p, (uint32_t)seq, buf, len, flags);
		} else {
			r = bus_pub_claim(p, len, &dst);
			if (r == 0) {
				t_fill(dst, len, seed, seq);
				r = bus_pub_commit(p, (uint32_t)seq, len, flags);
			}
		}
		if (r != 0)
			return t_fail("publish seq %llu: %d (%s)", (unsigned long long)seq, r,
				      bus_errmsg());
	}
	return 0;
}

/* Read and check every event from *expected up to `until` (exclusive): gap
 * free, each payload as publish_n() wrote it. Waits up to 10 s for each.
 * 0, or 1 with a diagnosis on stderr. */
static int read_check(struct bus_sub *s, uint64_t seed, uint64_t *expected, uint64_t until)
{
	uint8_t buf[MAXEV];
	struct bus_event ev;

	while (*expected < until) {
		int r = bus_sub_read(s, buf, sizeof(buf), &ev);

		if (r == 0) {
			r = bus_sub_wait(s, 10 * (int64_t)SEC);
			if (r == -ETIMEDOUT)
				return t_fail("no event %llu within 10 s",
					      (unsigned long long)*expected);
			if (r < 0 && r != -EINTR)
				return t_fail("bus_sub_wait = %d", r);
			continue;
		}
		if (r != 1)
			return t_fail("at seq %llu: bus_sub_read = %d (%s; ev.seq %llu, lost %llu)",
				      (unsigned long long)*expected, r, bus_errmsg(),
				      (unsigned long long)ev.seq, (unsigned long long)ev.lost);
		if (ev.seq != *expected || ev.type != (uint32_t)ev.seq ||
		    ev.len != t_len_for(seed, ev.seq, 8, MAXEV) || t_check(ev.data, ev.len, seed, ev.seq))
			return t_fail("bad event: seq %llu (expected %llu), type %u, %u bytes "
				      "(expected %u), checksum %s", (unsigned long long)ev.seq,
				      (unsigned long long)*expected, ev.type, ev.len,
				      t_len_for(seed, ev.seq, 8, MAXEV),
				      t_check(ev.data, ev.len, seed, ev.seq) ? "bad" : "ok");
		(*expected)++;
	}
	return 0;
}

static struct bus *connect_to(const struct t_busd *d)
{
	struct bus *b = NULL;
	int r = bus_connect(d->dir, &b);

	cr_assert_eq(r, 0, "bus_connect(%s) = %d (%s)", d->dir, r, bus_errmsg());
	return b;
}

/* Create topic on d and publish n events with seed, through a connection
 * that is gone when this returns (so that the test may fork). */
static void create_and_fill(const struct t_busd *d, const char *topic,
			    const struct bus_topic_opts *o, uint64_t seed, uint64_t n)
{
	struct bus *b = connect_to(d);
	struct bus_pub *p;

	cr_assert_eq(bus_create(b, topic, o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, topic, &p), 0, "%s", bus_errmsg());
	cr_assert_eq(publish_n(p, seed, n, 0), 0);
	bus_pub_close(p);
	bus_disconnect(b);
}

/* bus_sub_attach, retried while it says -EBUSY: busd notices that a
 * consumer died when its connection hangs up, asynchronously. */
static int sub_attach_retry(struct bus *b, const char *topic, const struct bus_sub_opts *o,
			    struct bus_sub **s)
{
	uint64_t end = t_now_ns() + 5 * SEC;
	int r;

	while ((r = bus_sub_attach(b, topic, o, s)) == -EBUSY && t_now_ns() < end)
		t_nap_us(2000);
	return r;
}

/* The consumer of `pid` among those bus_stat() reports, or NULL. */
static const struct bus_consumer_info *cons_of(const struct bus_consumer_info *ci, int n,
					       pid_t pid)
{
	for (int i = 0; i < n; i++)
		if (ci[i].pid == (uint32_t)pid)
			return &ci[i];
	return NULL;
}

/* t_wait_pid() with a deadline: a child that hangs is killed (128 + 9). */
static int wait_exit(pid_t pid, unsigned secs)
{
	uint64_t end = t_now_ns() + secs * SEC;
	siginfo_t si;

	for (;;) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid == pid)
			return t_wait_pid(pid);
		if (t_now_ns() > end) {
			t_fail("child %d still running after %u s: killed", (int)pid, secs);
			kill(pid, SIGKILL);
			return t_wait_pid(pid);
		}
		t_nap_us(2000);
	}
}

/* One role a child plays; one shared page each. */
struct role {
	char dir[600];              /* bus directory */
	char topic[BUS_NAME_MAX + 1];
	char group[BUS_NAME_MAX + 1]; /* "" = anonymous */
	char path[1400];            /* direct segment path (bus_sub_open) */
	uint64_t seed;
	uint64_t first;             /* sequence number it must start at (0 = any) */
	uint64_t n;                 /* events to publish or read */
	uint64_t commit_at;         /* named: read up to here (exclusive), commit */
	uint64_t read_to;           /* ... then read up to here without committing */
	uint64_t commit_at2;        /* after `go`: read up to here and commit */
	_Atomic uint64_t start;     /* bus_sub_next_seq() right after the attach */
	_Atomic uint64_t end;       /* where it stopped */
	_Atomic uint32_t ready;     /* 1: phase one done; 2: phase two done */
	_Atomic uint32_t go;        /* parent: do phase two */
	_Atomic uint32_t quit;      /* parent: close everything and exit 0 */
};

static struct role *role_new(const struct t_busd *d, const char *topic, uint64_t seed)
{
	struct role *c = t_shared(sizeof(*c));

	snprintf(c->dir, sizeof(c->dir), "%s", d->dir);
	snprintf(c->topic, sizeof(c->topic), "%s", topic);
	c->seed = seed;
	return c;
}

/* Block until the parent sets flag (at most 30 s). */
static int await(_Atomic uint32_t *flag)
{
	uint64_t end = t_now_ns() + 30 * SEC;

	while (!atomic_load(flag)) {
		if (t_now_ns() > end)
			return -1;
		t_nap_us(1000);
	}
	return 0;
}

Test(busd, starts_serves_and_stops_cleanly)
{
	struct t_busd d;
	struct bus *b;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	cr_assert_eq(bus_connect(d.dir, &b), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_ping(b), 0, "%s", bus_errmsg());
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
	cr_assert_eq(t_count_files(d.dir, "busd.sock"), 0, "the socket is removed on SIGTERM");
	cr_assert_eq(bus_connect(d.dir, &b), -ENOENT);
	cr_assert(strstr(bus_errmsg(), "no busd is running"), "%s", bus_errmsg());
}

/* ------------------------------------------------------------------------ */
/* A topic's life across processes                                          */
/* ------------------------------------------------------------------------ */

static int producer_main(void *arg)
{
	struct role *c = arg;
	struct bus_pub *p;
	struct bus *b;
	int r;

	if ((r = bus_connect(c->dir, &b)) < 0)
		return t_fail("producer: bus_connect = %d (%s)", r, bus_errmsg());
	if ((r = bus_pub_attach(b, c->topic, &p)) < 0)
		return t_fail("producer: bus_pub_attach = %d (%s)", r, bus_errmsg());
	atomic_store(&c->start, bus_pub_next_seq(p));
	if (c->first && bus_pub_next_seq(p) != c->first)
		return t_fail("producer: starts at seq %llu, expected %llu",
			      (unsigned long long)bus_pub_next_seq(p), (unsigned long long)c->first);
	if (publish_n(p, c->seed, c->n, 0))
		return 1;
	atomic_store(&c->end, bus_pub_next_seq(p));
	bus_pub_close(p);
	bus_disconnect(b);
	return 0;
}

/* Reads c->n events from c->first on, then finds nothing more. */
static int consumer_main(void *arg)
{
	struct role *c = arg;
	struct bus_sub_opts o = { .from = BUS_FROM_OLDEST, .group = c->group[0] ? c->group : NULL };
	struct bus_event ev;
	struct bus_sub *s;
	struct bus *b;
	uint8_t buf[MAXEV];
	uint64_t seq;
	int r;

	if ((r = bus_connect(c->dir, &b)) < 0)
		return t_fail("consumer: bus_connect = %d (%s)", r, bus_errmsg());
	if ((r = bus_sub_attach(b, c->topic, &o, &s)) < 0)
		return t_fail("consumer: bus_sub_attach = %d (%s)", r, bus_errmsg());
	seq = bus_sub_next_seq(s);
	atomic_store(&c->start, seq);
	atomic_store(&c->ready, 1);
	if (seq != c->first)
		return t_fail("consumer: starts at seq %llu, expected %llu",
			      (unsigned long long)seq, (unsigned long long)c->first);
	if (read_check(s, c->seed, &seq, c->first + c->n))
		return 1;
	if ((r = bus_sub_read(s, buf, sizeof(buf), &ev)) != 0)
		return t_fail("consumer: after the last event, bus_sub_read = %d (seq %llu)", r,
			      (unsigned long long)ev.seq);
	atomic_store(&c->end, seq);
	bus_sub_close(s);
	bus_disconnect(b);
	return 0;
}

/* Attached at the end, sleeps in bus_sub_wait(); reads what comes until the
 * topic is deleted, then must get -EPIPE (and keep getting it). */
static int drain_to_epipe_main(void *arg)
{
	struct role *c = arg;
	struct bus_sub_opts o = { .from = BUS_FROM_END };
	uint64_t deadline = t_now_ns() + 20 * SEC, seq;
	struct bus_event ev;
	struct bus_sub *s;
	struct bus *b;
	uint8_t buf[MAXEV];
	int r;

	if ((r = bus_connect(c->dir, &b)) < 0)
		return t_fail("waiter: bus_connect = %d (%s)", r, bus_errmsg());
	if ((r = bus_sub_attach(b, c->topic, &o, &s)) < 0)
		return t_fail("waiter: bus_sub_attach = %d (%s)", r, bus_errmsg());
	seq = bus_sub_next_seq(s);
	atomic_store(&c->start, seq);
	atomic_store(&c->ready, 1);
	for (;;) {
		r = bus_sub_read(s, buf, sizeof(buf), &ev);
		if (r == 1) {
			if (ev.seq != seq || t_check(ev.data, ev.len, c->seed, ev.seq))
				return t_fail("waiter: seq %llu (expected %llu), checksum %s",
					      (unsigned long long)ev.seq, (unsigned long long)seq,
					      t_check(ev.data, ev.len, c->seed, ev.seq) ? "bad" : "ok");
			seq++;
			continue;
		}
		if (r == -EPIPE)
			break;
		if (r != 0)
			return t_fail("waiter: bus_sub_read = %d at seq %llu", r,
				      (unsigned long long)seq);
		if (t_now_ns() > deadline)
			return t_fail("waiter: no -EPIPE within 20 s (at seq %llu)",
				      (unsigned long long)seq);
		r = bus_sub_wait(s, 10 * (int64_t)SEC);
		if (r < 0 && r != -ETIMEDOUT && r != -EINTR)
			return t_fail("waiter: bus_sub_wait = %d", r);
	}
	atomic_store(&c->end, seq);
	if ((r = bus_sub_read(s, buf, sizeof(buf), &ev)) != -EPIPE)
		return t_fail("waiter: a second read after -EPIPE = %d", r);
	bus_sub_close(s);
	bus_disconnect(b);
	return 0;
}

Test(busd, topic_lives_from_create_through_producer_and_consumer_processes_to_delete)
{
	const char *topic = "orders.created";
	struct bus_topic_opts o = { .ring_size = 4u << 20, .max_event = MAXEV };
	uint64_t n = t_scaled(5000, 500), m = 7, seed = t_rand(), seq;
	struct role *pc, *cc, *wc;
	struct bus_topic_info info;
	struct bus_sub *late;
	struct bus_pub *pub;
	struct t_busd d;
	struct bus *b;
	pid_t prod, cons, waiter;
	char id[17];
	void *buf;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	bus_id_of(&d, id);
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, topic, &o), 0, "%s", bus_errmsg());
	cr_assert(seg_exists(d.shm, id, topic, ""), "no %s/bus-%s.%s", d.shm, id, topic);
	cr_assert(seg_exists(d.shm, id, topic, "@cons"));
	cr_assert_eq(bus_create(b, topic, &o), -EEXIST);
	bus_disconnect(b);

	/* n events, each checked, from one process to another. n * MAXEV is
	 * less than the ring: the consumer can never be lapped. */
	pc = role_new(&d, topic, seed);
	cc = role_new(&d, topic, seed);
	pc->first = cc->first = 1;
	pc->n = cc->n = n;
	cons = t_fork(consumer_main, cc);
	cr_assert_eq(wait_flag(&cc->ready, 1, cons, 10), 0, "the consumer did not attach");
	prod = t_fork(producer_main, pc);
	cr_assert_eq(wait_exit(prod, 30), 0, "the producer failed (diagnosis on stderr)");
	cr_assert_eq(wait_exit(cons, 30), 0, "the consumer failed (diagnosis on stderr)");
	cr_assert_eq(pc->end, 1 + n);
	cr_assert_eq(cc->end, 1 + n);

	/* A consumer asleep in another process when the topic goes. */
	wc = role_new(&d, topic, seed);
	waiter = t_fork(drain_to_epipe_main, wc);
	cr_assert_eq(wait_flag(&wc->ready, 1, waiter, 10), 0, "the waiter did not attach");
	cr_assert_eq(wc->start, 1 + n);

	b = connect_to(&d);
	/* The first producer closed: the lease is free at once, and the
	 * sequence goes on. */
	cr_assert_eq(bus_pub_attach(b, topic, &pub), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_next_seq(pub), 1 + n);
	cr_assert_eq(bus_sub_attach(b, topic, &(struct bus_sub_opts){ .from = BUS_FROM_END },
				    &late), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_next_seq(late), 1 + n);
	cr_assert_eq(bus_stat(b, topic, &info, NULL, 0), 2, "the waiter and `late` are attached "
		     "(the first consumer closed)");
	cr_assert_eq(info.producer_pid, (uint32_t)getpid());
	cr_assert_eq(info.next_seq, 1 + n);
	cr_assert_eq(info.events, n);
	cr_assert_eq(info.deleted, 0);

	cr_assert_eq(publish_n(pub, seed, m, 0), 0);
	cr_assert_eq(bus_delete(b, topic), 0, "%s", bus_errmsg());

	/* The files are gone at once; only the anchor is left. */
	cr_assert(!seg_exists(d.shm, id, topic, ""), "the segment is still in %s", d.shm);
	cr_assert(!seg_exists(d.shm, id, topic, "@cons"), "the consumer area is still in %s", d.shm);
	cr_assert_eq(t_count_files(d.shm, ""), 1, "%d files in %s; only the anchor bus-%s should "
		     "be left", t_count_files(d.shm, ""), d.shm, id);
	cr_assert(seg_exists(d.shm, id, NULL, NULL));

	/* An attached consumer reads what remains, then -EPIPE, for good. */
	seq = 1 + n;
	cr_assert_eq(read_check(late, seed, &seq, 1 + n + m), 0);
	cr_assert_eq(bus_sub_read(late, &(uint8_t[MAXEV]){ 0 }, MAXEV,
				  &(struct bus_event){ 0 }), -EPIPE);
	cr_assert_eq(bus_sub_next(late, &(struct bus_event){ 0 }), -EPIPE);
	/* An attached producer cannot publish any more. */
	cr_assert_eq(bus_pub_publish(pub, 1, "x", 1, 0), -EPIPE);
	cr_assert_eq(bus_pub_claim(pub, 8, &buf), -EPIPE);
	/* busd has forgotten the name. */
	cr_assert_eq(bus_stat(b, topic, &info, NULL, 0), -ENOENT);
	cr_assert_eq(bus_list(b, NULL, 0), 0);
	cr_assert_eq(bus_pub_attach(b, topic, &(struct bus_pub *){ NULL }), -ENOENT);
	cr_assert_eq(bus_sub_attach(b, topic, NULL, &(struct bus_sub *){ NULL }), -ENOENT);
	cr_assert_eq(bus_delete(b, topic), -ENOENT);

	cr_assert_eq(wait_exit(waiter, 30), 0, "the waiter failed (diagnosis on stderr)");
	cr_assert_eq(wc->end, 1 + n + m, "the waiter stopped at %llu",
		     (unsigned long long)wc->end);
	bus_sub_close(late);
	bus_pub_close(pub);

	/* The name is free: a new topic starts over. */
	cr_assert_eq(bus_create(b, topic, NULL), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_stat(b, topic, &info, NULL, 0), 0);
	cr_assert_eq(info.next_seq, 1);
	cr_assert_eq(info.events, 0);
	cr_assert_eq(info.producer_pid, 0);
	cr_assert_eq(info.deleted, 0);
	cr_assert_eq(t_count_files(d.shm, ""), 3);
	bus_disconnect(b);
}

/* ------------------------------------------------------------------------ */
/* The producer lease                                                       */
/* ------------------------------------------------------------------------ */

/* Publishes c->n events, then 3 more with BUS_MORE that it never flushes,
 * reports, and holds the lease until it is killed. */
static int lease_holder_main(void *arg)
{
	struct role *c = arg;
	struct bus_pub *p;
	struct bus *b;
	uint8_t buf[64];
	int r;

	if ((r = bus_connect(c->dir, &b)) < 0)
		return t_fail("holder: bus_connect = %d (%s)", r, bus_errmsg());
	if ((r = bus_pub_attach(b, c->topic, &p)) < 0)
		return t_fail("holder: bus_pub_attach = %d (%s)", r, bus_errmsg());
	atomic_store(&c->start, bus_pub_next_seq(p));
	if (publish_n(p, c->seed, c->n, 0))
		return 1;
	atomic_store(&c->end, bus_pub_next_seq(p));
	/* Invisible until a flush that never comes: not events at all. */
	for (int i = 0; i < 3; i++) {
		memset(buf, 0xee, sizeof(buf));
		if ((r = bus_pub_publish(p, 0xdead, buf, sizeof(buf), BUS_MORE)) != 0)
			return t_fail("holder: BUS_MORE publish = %d", r);
	}
	atomic_store(&c->ready, 1);
	await(&c->quit);
	return t_fail("holder: not killed within 30 s");
}

Test(busd, lease_refuses_a_second_producer_and_passes_on_when_the_holder_is_killed)
{
	const char *topic = "lease";
	struct bus_topic_opts o = { .ring_size = 1u << 20, .max_event = MAXEV };
	uint64_t k = t_scaled(1000, 100), seed = t_rand(), end, deadline;
	struct role *hc, *cc;
	struct bus_topic_info info;
	struct bus_pub *pub = NULL;
	struct t_busd d;
	struct bus *b;
	pid_t holder, cons;
	char want[64];
	int r, tries = 0;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, topic, &o), 0, "%s", bus_errmsg());
	bus_disconnect(b);

	/* A consumer in its own process sees both producers' events. */
	cc = role_new(&d, topic, seed);
	cc->first = 1;
	cc->n = 2 * k;
	cons = t_fork(consumer_main, cc);
	cr_assert_eq(wait_flag(&cc->ready, 1, cons, 10), 0, "the consumer did not attach");

	hc = role_new(&d, topic, seed);
	hc->n = k;
	holder = t_fork(lease_holder_main, hc);
	cr_assert_eq(wait_flag(&hc->ready, 1, holder, 20), 0, "the holder did not get going");
	cr_assert_eq(hc->start, 1);
	end = hc->end;
	cr_assert_eq(end, 1 + k);

	/* Another process: -EBUSY, naming the holder. */
	b = connect_to(&d);
	pub = (struct bus_pub *)&pub;
	cr_assert_eq(bus_pub_attach(b, topic, &pub), -EBUSY);
	cr_assert_null(pub, "a refused attach must clear *pub");
	snprintf(want, sizeof(want), "pid %d", (int)holder);
	cr_assert(strstr(bus_errmsg(), want), "bus_errmsg() = \"%s\" does not name %s",
		  bus_errmsg(), want);
	cr_assert(strstr(bus_errmsg(), "'lease'"), "bus_errmsg() = \"%s\"", bus_errmsg());
	cr_assert_eq(bus_stat(b, topic, &info, NULL, 0), 1);
	cr_assert_eq(info.producer_pid, (uint32_t)holder);
	cr_assert_eq(info.next_seq, end, "the unflushed batch is not published");

	/* kill -9: busd sees the connection hang up and frees the lease. */
	cr_assert_eq(kill(holder, SIGKILL), 0);
	cr_assert_eq(t_wait_pid(holder), KILLED);
	deadline = t_now_ns() + 5 * SEC;
	while ((r = bus_pub_attach(b, topic, &pub)) == -EBUSY && t_now_ns() < deadline) {
		tries++;
		t_nap_us(2000);
	}
	cr_assert_eq(r, 0, "bus_pub_attach after the holder died = %d (%s)", r, bus_errmsg());
	/* Exactly where the dead producer's visible events end: no number is
	 * used twice, none is skipped. */
	cr_assert_eq(bus_pub_next_seq(pub), end, "new producer starts at %llu, expected %llu",
		     (unsigned long long)bus_pub_next_seq(pub), (unsigned long long)end);
	cr_assert_eq(bus_stat(b, topic, &info, NULL, 0), 1);
	cr_assert_eq(info.producer_pid, (uint32_t)getpid());
	cr_assert_eq(publish_n(pub, seed, k, 0), 0);
	cr_assert_eq(bus_pub_next_seq(pub), 1 + 2 * k);
	bus_pub_close(pub);

	/* The consumer saw 1 .. 2k, gap free and intact, and nothing else. */
	cr_assert_eq(wait_exit(cons, 30), 0, "the consumer failed (diagnosis on stderr)");
	cr_assert_eq(cc->end, 1 + 2 * k);
	cr_assert_eq(bus_stat(b, topic, &info, NULL, 0), 0);
	cr_assert_eq(info.producer_pid, 0, "the lease is released on close");
	cr_assert_eq(info.next_seq, 1 + 2 * k);
	bus_disconnect(b);
	cr_log_info("lease: the new producer attached after %d -EBUSY", tries);
}

/* ------------------------------------------------------------------------ */
/* Named cursors                                                            */
/* ------------------------------------------------------------------------ */

/*
 * A named consumer: attaches (retrying -EBUSY: its predecessor's death is
 * noticed asynchronously), reads up to commit_at and commits, reads on up to
 * read_to without committing, says ready = 1. On `go`: reads up to
 * commit_at2, commits, ready = 2. On `quit`: closes and exits 0. Otherwise
 * it waits to be killed.
 */
static int named_main(void *arg)
{
	struct role *c = arg;
	struct bus_sub_opts o = { .from = BUS_FROM_OLDEST, .group = c->group };
	struct bus_sub *s;
	struct bus *b;
	uint64_t seq, end = t_now_ns() + 30 * SEC;
	int r;

	if ((r = bus_connect(c->dir, &b)) < 0)
		return t_fail("named: bus_connect = %d (%s)", r, bus_errmsg());
	if ((r = sub_attach_retry(b, c->topic, &o, &s)) < 0)
		return t_fail("named: bus_sub_attach = %d (%s)", r, bus_errmsg());
	seq = bus_sub_next_seq(s);
	atomic_store(&c->start, seq);
	if (c->first && seq != c->first) {
		atomic_store(&c->ready, 1);
		return t_fail("named: resumes at %llu, expected %llu", (unsigned long long)seq,
			      (unsigned long long)c->first);
	}
	if (read_check(s, c->seed, &seq, c->commit_at))
		return 1;
	if ((r = bus_sub_commit(s)) != 0)
		return t_fail("named: bus_sub_commit = %d", r);
	if (read_check(s, c->seed, &seq, c->read_to))
		return 1;
	atomic_store(&c->end, seq);
	atomic_store(&c->ready, 1);
	while (!atomic_load(&c->quit)) {
		if (atomic_load(&c->go) && atomic_load(&c->ready) == 1) {
			if (read_check(s, c->seed, &seq, c->commit_at2))
				return 1;
			if ((r = bus_sub_commit(s)) != 0)
				return t_fail("named: second bus_sub_commit = %d", r);
			atomic_store(&c->end, seq);
			atomic_store(&c->ready, 2);
		}
		if (t_now_ns() > end)
			return t_fail("named: neither killed nor told to quit within 30 s");
		t_nap_us(1000);
	}
	bus_sub_close(s);
	bus_disconnect(b);
	return 0;
}

static struct role *named_role(const struct t_busd *d, const char *topic, uint64_t seed,
			       uint64_t first, uint64_t commit_at, uint64_t read_to)
{
	struct role *c = role_new(d, topic, seed);

	snprintf(c->group, sizeof(c->group), "g");
	c->first = first;
	c->commit_at = commit_at;
	c->read_to = read_to;
	return c;
}

static pid_t named_start(struct role *c)
{
	pid_t pid = t_fork(named_main, c);

	cr_assert_eq(wait_flag(&c->ready, 1, pid, 20), 0, "the named consumer failed to start "
		     "(diagnosis on stderr)");
	cr_assert_eq(c->start, c->first, "the named consumer started at %llu, expected %llu",
		     (unsigned long long)c->start, (unsigned long long)c->first);
	return pid;
}

static void kill_wait(pid_t pid)
{
	cr_assert_eq(kill(pid, SIGKILL), 0);
	cr_assert_eq(t_wait_pid(pid), KILLED, "the child died of something else first "
		     "(diagnosis on stderr)");
}

/* Attach group g in this process (retrying -EBUSY) and check where it resumes. */
static struct bus_sub *resume_here(struct bus *b, const char *topic, uint64_t want)
{
	struct bus_sub *s = NULL;
	int r = sub_attach_retry(b, topic, &(struct bus_sub_opts){ .group = "g" }, &s);

	cr_assert_eq(r, 0, "bus_sub_attach(group g) = %d (%s)", r, bus_errmsg());
	cr_assert_eq(bus_sub_next_seq(s), want, "cursor g resumes at %llu, expected %llu",
		     (unsigned long long)bus_sub_next_seq(s), (unsigned long long)want);
	return s;
}

/* The cursor file says topic/group is at seq (the format of STATE/cursors:
 * "ID SEQ TOPIC GROUP" lines). */
static int cursor_file_has(const struct t_busd *d, const char *topic, const char *group,
			   uint64_t seq)
{
	char path[700], line[600], t[BUS_NAME_MAX + 2], g[BUS_NAME_MAX + 2];
	unsigned long long s;
	int found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/cursors", d->state);
	if (!(f = fopen(path, "re")))
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%*u %llu %129s %129s", &s, t, g) == 3 && !strcmp(t, topic) &&
		    !strcmp(g, group) && s == seq)
			found = 1;
	fclose(f);
	return found;
}

Test(busd, named_cursor_resumes_at_the_commit_of_a_killed_consumer_and_is_exclusive)
{
	const char *topic = "cursor";
	uint64_t seed = t_rand();
	struct bus_consumer_info ci[8];
	const struct bus_consumer_info *mine;
	struct role *x, *y;
	struct bus_sub *s, *other;
	struct t_busd d;
	struct bus *b;
	char want[64];
	pid_t px, py;
	int n;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	create_and_fill(&d, topic, NULL, seed, 100);

	/* X reads 1..40, commits after 30, and is killed. */
	x = named_role(&d, topic, seed, 1, 31, 41);
	px = named_start(x);
	cr_assert_eq(x->end, 41);

	b = connect_to(&d);
	s = (struct bus_sub *)&s;
	cr_assert_eq(bus_sub_attach(b, topic, &(struct bus_sub_opts){ .group = "g" }, &s), -EBUSY,
		     "a second consumer of cursor g while X holds it");
	cr_assert_null(s);
	snprintf(want, sizeof(want), "pid %d", (int)px);
	cr_assert(strstr(bus_errmsg(), "'g'") && strstr(bus_errmsg(), want),
		  "bus_errmsg() = \"%s\" should name cursor 'g' and %s", bus_errmsg(), want);
	/* What busd reports about X's cursor. */
	n = bus_stat(b, topic, NULL, ci, 8);
	cr_assert_eq(n, 1, "%d consumers", n);
	mine = cons_of(ci, n, px);
	cr_assert_not_null(mine);
	cr_assert_str_eq(mine->group, "g");
	cr_assert_eq(mine->commit, 31);
	/* Its position is published on entry to each read: the event it read
	 * last (40) still counts as unread (bus.h, bus_topic_stat). */
	cr_assert_eq(mine->next_seq, 40);
	/* Another cursor and an anonymous consumer are independent of it. */
	cr_assert_eq(bus_sub_attach(b, topic, &(struct bus_sub_opts){ .group = "h" }, &other), 0,
		     "%s", bus_errmsg());
	cr_assert_eq(bus_sub_next_seq(other), 1, "a new cursor starts at `from` (OLDEST)");
	bus_sub_close(other);
	cr_assert_eq(bus_sub_attach(b, topic, NULL, &other), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_next_seq(other), 1);
	bus_sub_close(other);
	bus_disconnect(b);

	kill_wait(px);

	/* Y, a new process, resumes at 31 exactly: 31..40 again (at least
	 * once), nothing before. It commits 101 and closes. */
	y = named_role(&d, topic, seed, 31, 101, 101);
	py = named_start(y);
	atomic_store(&y->quit, 1);
	cr_assert_eq(wait_exit(py, 30), 0, "Y failed (diagnosis on stderr)");

	/* A clean close hands the cursor back at once, at Y's commit. */
	b = connect_to(&d);
	cr_assert_eq(bus_sub_attach(b, topic, &(struct bus_sub_opts){ .group = "g" }, &s), 0,
		     "%s", bus_errmsg());
	cr_assert_eq(bus_sub_next_seq(s), 101);
	cr_assert_eq(bus_sub_read(s, &(uint8_t[MAXEV]){ 0 }, MAXEV, &(struct bus_event){ 0 }), 0);
	bus_sub_close(s);
	bus_disconnect(b);
}

Test(busd, named_cursor_survives_a_clean_busd_restart)
{
	const char *topic = "cursor.clean";
	uint64_t seed = t_rand(), seq;
	struct role *x, *y;
	struct bus_sub *s;
	struct t_busd d;
	struct bus *b;
	char want[64];
	pid_t px, py;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	create_and_fill(&d, topic, NULL, seed, 100);

	/* X commits 41 (has read to 45) and stays attached while busd stops
	 * and starts again. */
	x = named_role(&d, topic, seed, 1, 41, 46);
	x->commit_at2 = 61;
	px = named_start(x);
	cr_assert_eq(t_busd_stop(&d), 0);
	cr_assert_eq(t_busd_restart(&d, NULL), 0);

	/* The new busd knows the cursor is X's. */
	b = connect_to(&d);
	cr_assert_eq(bus_sub_attach(b, topic, &(struct bus_sub_opts){ .group = "g" }, &s), -EBUSY,
		     "after the restart cursor g is still X's");
	snprintf(want, sizeof(want), "pid %d", (int)px);
	cr_assert(strstr(bus_errmsg(), want), "bus_errmsg() = \"%s\"", bus_errmsg());
	bus_disconnect(b);

	/* X goes on, commits 61, and is killed. */
	atomic_store(&x->go, 1);
	cr_assert_eq(wait_flag(&x->ready, 2, px, 20), 0, "X failed (diagnosis on stderr)");
	kill_wait(px);
	b = connect_to(&d);
	s = resume_here(b, topic, 61);

	/* We read to 70; Y commits 71 and closes (Y, not us: a process that
	 * lives on after closing is a_closed_named_consumer_...'s subject).
	 * busd stops cleanly and starts again. */
	seq = 61;
	cr_assert_eq(read_check(s, seed, &seq, 71), 0);
	bus_sub_close(s);
	bus_disconnect(b);
	y = named_role(&d, topic, seed, 61, 71, 71);
	py = named_start(y);
	atomic_store(&y->quit, 1);
	cr_assert_eq(wait_exit(py, 30), 0, "Y failed (diagnosis on stderr)");
	cr_assert_eq(t_busd_stop(&d), 0);
	cr_assert(cursor_file_has(&d, topic, "g", 71), "%s/cursors does not say g is at 71",
		  d.state);
	cr_assert_eq(t_busd_restart(&d, NULL), 0);
	b = connect_to(&d);
	s = resume_here(b, topic, 71);
	seq = 71;
	cr_assert_eq(read_check(s, seed, &seq, 101), 0);
	bus_sub_close(s);
	bus_disconnect(b);
}

Test(busd, named_cursor_survives_busd_kill_9)
{
	const char *topic = "cursor.crash";
	uint64_t seed = t_rand(), deadline, seq;
	struct role *x, *y, *z;
	struct bus_sub *s;
	struct t_busd d;
	struct bus *b;
	char want[64];
	pid_t px, py, pz;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	create_and_fill(&d, topic, NULL, seed, 100);

	/* 1. X commits 21 and stays attached: busd's 1 s timer persists it. */
	x = named_role(&d, topic, seed, 1, 21, 26);
	px = named_start(x);
	deadline = t_now_ns() + 3 * SEC;
	while (!cursor_file_has(&d, topic, "g", 21) && t_now_ns() < deadline)
		t_nap_us(20000);
	cr_assert(cursor_file_has(&d, topic, "g", 21), "the commit of an attached named consumer "
		  "was not persisted within 3 s (%s/cursors)", d.state);
	/* busd dies, then X dies while there is no busd; a new busd... */
	t_busd_kill(&d);
	kill_wait(px);
	cr_assert_eq(t_busd_restart(&d, NULL), 0);
	/* ... gives the cursor to Y at 21. */
	y = named_role(&d, topic, seed, 21, 51, 56);
	y->commit_at2 = 71;
	py = named_start(y);

	/* 2. busd dies under Y, which keeps its cursor across the restart
	 * (its libbus reconnects) and commits 71 afterwards. */
	t_busd_kill(&d);
	cr_assert_eq(t_busd_restart(&d, NULL), 0);
	b = connect_to(&d);
	cr_assert_eq(bus_sub_attach(b, topic, &(struct bus_sub_opts){ .group = "g" }, &s), -EBUSY,
		     "a new busd must keep live Y's cursor");
	snprintf(want, sizeof(want), "pid %d", (int)py);
	cr_assert(strstr(bus_errmsg(), want), "bus_errmsg() = \"%s\"", bus_errmsg());
	bus_disconnect(b);
	/* Give Y's libbus time to reconnect (its backoff is at most 500 ms),
	 * so that Y's death is seen as a hangup rather than through the pid
	 * the new busd watches. */
	t_nap_us(1000000);
	atomic_store(&y->go, 1);
	cr_assert_eq(wait_flag(&y->ready, 2, py, 20), 0, "Y failed (diagnosis on stderr)");
	kill_wait(py);

	/* 3. Z resumes at 71; it is killed first (the hangup persists its
	 * commit), then busd. */
	z = named_role(&d, topic, seed, 71, 91, 95);
	pz = named_start(z);
	kill_wait(pz);
	deadline = t_now_ns() + 3 * SEC;
	while (!cursor_file_has(&d, topic, "g", 91) && t_now_ns() < deadline)
		t_nap_us(5000);
	cr_assert(cursor_file_has(&d, topic, "g", 91), "Z's commit was not persisted when it died");
	t_busd_kill(&d);
	cr_assert_eq(t_busd_restart(&d, NULL), 0);
	b = connect_to(&d);
	s = resume_here(b, topic, 91);
	seq = 91;
	cr_assert_eq(read_check(s, seed, &seq, 101), 0);
	bus_sub_close(s);
	bus_disconnect(b);
}

Test(busd, deleting_a_topic_drops_its_named_cursors)
{
	uint64_t seed = t_rand(), seq;
	struct bus_sub *s;
	struct bus_pub *p;
	struct t_busd d;
	struct bus *b;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "t", NULL), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "t", &p), 0, "%s", bus_errmsg());
	cr_assert_eq(publish_n(p, seed, 20, 0), 0);
	bus_pub_close(p);
	cr_assert_eq(bus_sub_attach(b, "t", &(struct bus_sub_opts){ .group = "g" }, &s), 0);
	seq = 1;
	cr_assert_eq(read_check(s, seed, &seq, 6), 0);
	cr_assert_eq(bus_sub_commit(s), 0);
	bus_sub_close(s);
	cr_assert_eq(bus_delete(b, "t"), 0, "%s", bus_errmsg());

	/* Same name, new topic, 20 events: cursor g is new (from = END), it
	 * does not resume at 6. */
	cr_assert_eq(bus_create(b, "t", NULL), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "t", &p), 0, "%s", bus_errmsg());
	cr_assert_eq(publish_n(p, seed, 20, 0), 0);
	bus_pub_close(p);
	cr_assert_eq(bus_sub_attach(b, "t", &(struct bus_sub_opts){ .from = BUS_FROM_END,
								   .group = "g" }, &s), 0, "%s",
		     bus_errmsg());
	cr_assert_eq(bus_sub_next_seq(s), 21, "the deleted topic's cursor g came back at %llu",
		     (unsigned long long)bus_sub_next_seq(s));
	bus_sub_close(s);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
	cr_assert(!cursor_file_has(&d, "t", "g", 6), "the cursor file still has the deleted "
		  "topic's cursor at 6");
}

/* ------------------------------------------------------------------------ */
/* Consumer slots                                                           */
/* ------------------------------------------------------------------------ */

Test(busd, a_closed_consumer_frees_its_slot_in_a_live_process)
{
	struct bus_topic_opts o = { .max_consumers = 2 };
	struct bus_topic_info info;
	struct bus_sub *s;
	struct t_busd d;
	struct bus *b;
	int r;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "slots", &o), 0, "%s", bus_errmsg());
	for (int i = 0; i < 5; i++) {
		r = bus_sub_attach(b, "slots", NULL, &s);
		cr_assert_eq(r, 0, "attach #%d on a 2-slot topic, every earlier one closed: %d (%s)",
			     i + 1, r, bus_errmsg());
		cr_expect_eq(bus_stat(b, "slots", &info, NULL, 0), 1);
		bus_sub_close(s);
		cr_expect_eq(bus_stat(b, "slots", &info, NULL, 0), 0,
			     "a closed consumer is still counted (after attach #%d)", i + 1);
	}
	bus_disconnect(b);
}

Test(busd, a_closed_named_consumer_can_come_back_after_busd_kill_9)
{
	uint64_t seed = t_rand();
	struct bus_sub *s;
	struct t_busd d;
	struct bus *b;
	int r;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	create_and_fill(&d, "back", NULL, seed, 10);
	b = connect_to(&d);
	s = resume_here(b, "back", 1);
	cr_assert_eq(bus_sub_commit(s), 0);
	bus_sub_close(s);   /* we let go of the cursor; we live on */
	t_busd_kill(&d);
	cr_assert_eq(t_busd_restart(&d, NULL), 0);
	r = bus_sub_attach(b, "back", &(struct bus_sub_opts){ .group = "g" }, &s);
	cr_assert_eq(r, 0, "re-attaching a cursor this process closed before busd died: %d (%s)",
		     r, bus_errmsg());
	cr_assert_eq(bus_sub_next_seq(s), 1);
	bus_sub_close(s);
	bus_disconnect(b);
}

/* ------------------------------------------------------------------------ */
/* Permissions and names                                                    */
/* ------------------------------------------------------------------------ */

#define NOBODY 65534u

/* What uid nobody could do; filled by the child, asserted by the test. */
struct perm_res {
	char dir[600];
	uint64_t seed;
	int32_t cred_rc, connect_rc;
	int32_t sub_private, pub_private, stat_private, delete_private;
	int32_t sub_public, read_public, check_public, pub_public, delete_public;
	uint64_t public_seq;
	int32_t list_n;
	int32_t create_own;
	char list_first[BUS_NAME_MAX + 1];
	char msg_sub_private[512], msg_pub_private[512], msg_pub_public[512];
	char msg_delete_public[512];
};

static int nobody_main(void *arg)
{
	struct perm_res *r = arg;
	struct bus_topic_entry e[4];
	struct bus_event ev;
	struct bus_sub *s;
	struct bus_pub *p;
	struct bus *b;
	uint8_t buf[MAXEV];

	/* Supplementary groups first: root's group 0 would open group bits. */
	if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0) {
		r->cred_rc = -errno;
		return t_fail("nobody: cannot drop privileges: %s", strerror(errno));
	}
	/* Changing credentials cleared the parent-death signal t_fork set. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		return 99;
	if ((r->connect_rc = bus_connect(r->dir, &b)) < 0)
		return t_fail("nobody: bus_connect = %d (%s)", r->connect_rc, bus_errmsg());

	r->sub_private = bus_sub_attach(b, "private", NULL, &s);
	snprintf(r->msg_sub_private, sizeof(r->msg_sub_private), "%s", bus_errmsg());
	if (r->sub_private == 0)
		bus_sub_close(s);
	r->pub_private = bus_pub_attach(b, "private", &p);
	snprintf(r->msg_pub_private, sizeof(r->msg_pub_private), "%s", bus_errmsg());
	if (r->pub_private == 0)
		bus_pub_close(p);
	r->stat_private = bus_stat(b, "private", NULL, NULL, 0);
	r->delete_private = bus_delete(b, "private");

#ifdef __SANITIZE_THREAD__
	/* TSan builds map consumers read-write (seg.c: alias_find): a reader
	 * without write permission cannot attach there. */
	r->sub_public = -ENOSYS;
#else
	r->sub_public = bus_sub_attach(b, "public", NULL, &s);
#endif
	if (r->sub_public == 0) {
		r->read_public = bus_sub_read(s, buf, sizeof(buf), &ev);
		if (r->read_public == 1) {
			r->public_seq = ev.seq;
			r->check_public = t_check(ev.data, ev.len, r->seed, ev.seq);
		}
		bus_sub_close(s);
	}
	r->pub_public = bus_pub_attach(b, "public", &p);
	snprintf(r->msg_pub_public, sizeof(r->msg_pub_public), "%s", bus_errmsg());
	if (r->pub_public == 0)
		bus_pub_close(p);
	r->delete_public = bus_delete(b, "public");
	snprintf(r->msg_delete_public, sizeof(r->msg_delete_public), "%s", bus_errmsg());

	memset(e, 0, sizeof(e));
	r->list_n = bus_list(b, e, 4);
	snprintf(r->list_first, sizeof(r->list_first), "%s", e[0].name);
	r->create_own = bus_create(b, "nobodys", NULL);
	bus_disconnect(b);
	return 0;
}

/* Let others reach path: o+x on every directory on the way that lacks it. */
static void make_traversable(const char *path)
{
	char p[700];
	struct stat st;

	snprintf(p, sizeof(p), "%s", path);
	for (char *c = p + 1;; c++) {
		if (*c == '/' || !*c) {
			char keep = *c;

			*c = 0;
			cr_assert_eq(stat(p, &st), 0, "stat %s", p);
			if (S_ISDIR(st.st_mode) && (st.st_mode & 0011) != 0011)
				cr_assert_eq(chmod(p, (st.st_mode & 07777) | 0011), 0, "chmod %s", p);
			*c = keep;
			if (!keep)
				break;
		}
	}
}

Test(busd, topic_permissions_are_enforced_like_files_for_another_user)
{
	struct bus_topic_opts pub_opts = { .mode = 0644 };
	struct perm_res *r;
	struct bus_topic_info info;
	struct bus_pub *p;
	struct t_busd d;
	struct stat st;
	struct bus *b;
	char path[1400], id[17];
	pid_t pid;

	if (geteuid() != 0)
		cr_skip_test("needs root to run a client as another user (CI runs as root)");
	cr_assert_eq(t_busd_start(&d, "--socket-mode", "0666", NULL), 0);
	bus_id_of(&d, id);
	snprintf(path, sizeof(path), "%s/busd.sock", d.dir);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0666, "socket mode %04o", st.st_mode & 0777);
	make_traversable(d.dir);

	r = t_shared(sizeof(*r));
	snprintf(r->dir, sizeof(r->dir), "%s", d.dir);
	r->seed = t_rand();
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "private", NULL), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, "public", &pub_opts), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "public", &p), 0, "%s", bus_errmsg());
	cr_assert_eq(publish_n(p, r->seed, 1, 0), 0);
	bus_pub_close(p);
	bus_disconnect(b);

	pid = t_fork(nobody_main, r);
	cr_assert_eq(wait_exit(pid, 20), 0, "the nobody child failed (diagnosis on stderr)");

	/* 0600 root's: nothing at all. */
	cr_assert_eq(r->sub_private, -EACCES, "consume a 0600 topic of root: %d", r->sub_private);
	cr_assert(strstr(r->msg_sub_private, "topic 'private'") &&
		  strstr(r->msg_sub_private, "permission denied"), "\"%s\"", r->msg_sub_private);
	cr_assert_eq(r->pub_private, -EACCES, "produce a 0600 topic of root: %d", r->pub_private);
	cr_assert(strstr(r->msg_pub_private, "topic 'private'") &&
		  strstr(r->msg_pub_private, "permission denied"), "\"%s\"", r->msg_pub_private);
	cr_assert_eq(r->stat_private, -EACCES);
	cr_assert_eq(r->delete_private, -EACCES);
	/* 0644: read, not write, not delete. */
#ifndef __SANITIZE_THREAD__
	cr_assert_eq(r->sub_public, 0, "consume a 0644 topic: %d", r->sub_public);
	cr_assert_eq(r->read_public, 1);
	cr_assert_eq(r->public_seq, 1);
	cr_assert_eq(r->check_public, 0, "the event nobody read is corrupt");
#endif
	cr_assert_eq(r->pub_public, -EACCES, "produce a 0644 topic of root: %d", r->pub_public);
	cr_assert(strstr(r->msg_pub_public, "topic 'public'"), "\"%s\"", r->msg_pub_public);
	cr_assert_eq(r->delete_public, -EACCES, "delete a 0644 topic of root: %d", r->delete_public);
	cr_assert(strstr(r->msg_delete_public, "topic 'public'"), "\"%s\"", r->msg_delete_public);
	/* bus_list shows what one may read. */
	cr_assert_eq(r->list_n, 1, "nobody lists %d topics", r->list_n);
	cr_assert_str_eq(r->list_first, "public");
	/* What nobody creates is nobody's, as a file would be. */
	cr_assert_eq(r->create_own, 0);
	snprintf(path, sizeof(path), "%s/bus-%s.nobodys", d.shm, id);
	cr_assert_eq(stat(path, &st), 0, "%s", path);
	cr_assert_eq(st.st_uid, NOBODY);
	cr_assert_eq(st.st_gid, NOBODY);
	cr_assert_eq(st.st_mode & 07777, 0600, "mode %04o", st.st_mode & 07777);
	snprintf(path, sizeof(path), "%s/bus-%s.nobodys@cons", d.shm, id);
	cr_assert_eq(stat(path, &st), 0, "%s", path);
	cr_assert_eq(st.st_uid, NOBODY);

	/* Nothing was removed; root may do everything. */
	b = connect_to(&d);
	cr_assert_eq(bus_list(b, NULL, 0), 3);
	cr_assert_eq(bus_stat(b, "nobodys", &info, NULL, 0), 0);
	cr_assert_eq(info.uid, NOBODY);
	cr_assert_eq(info.gid, NOBODY);
	cr_assert_eq(info.mode, 0600);
	cr_assert_eq(bus_stat(b, "public", &info, NULL, 0), 0);
	cr_assert_eq(info.mode, 0644);
	cr_assert_eq(info.uid, 0);
	cr_assert_eq(bus_pub_attach(b, "nobodys", &p), 0, "root bypasses the mode: %s",
		     bus_errmsg());
	bus_pub_close(p);
	cr_assert_eq(bus_delete(b, "nobodys"), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_delete(b, "public"), 0, "%s", bus_errmsg());
	bus_disconnect(b);
}

Test(busd, bad_names_are_refused_with_einval_and_create_nothing)
{
	char over[BUS_NAME_MAX + 2], max[BUS_NAME_MAX + 1], overmsg[64];
	struct bus_topic_entry e[2];
	struct bus_sub *s;
	struct bus_pub *p;
	struct t_busd d;
	struct bus *b;
	char id[17];
	const struct {
		const char *name, *says;
	} bad[] = {
		{ "a/b", "'/'" },
		{ "../x", "dot" },
		{ "..", "dot" },
		{ "a..b", "'..'" },
		{ ".hidden", "dot" },
		{ "", "empty" },
		{ "caf\xc3\xa9", "0xc3" },
		{ "tab\there", "0x09" },
		{ "sp ace", "' '" },
		{ over, overmsg },
	};

	memset(over, 'a', BUS_NAME_MAX + 1);
	over[BUS_NAME_MAX + 1] = 0;
	memset(max, 'b', BUS_NAME_MAX);
	max[BUS_NAME_MAX] = 0;
	snprintf(overmsg, sizeof(overmsg), "%u", BUS_NAME_MAX + 1);

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	bus_id_of(&d, id);
	b = connect_to(&d);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *n = bad[i].name;
		int r = bus_create(b, n, NULL);

		cr_assert_eq(r, -EINVAL, "bus_create(\"%s\") = %d", n, r);
		cr_assert(strstr(bus_errmsg(), bad[i].says), "bus_create(\"%s\"): \"%s\" does not "
			  "say \"%s\"", n, bus_errmsg(), bad[i].says);
		cr_assert_eq(bus_delete(b, n), -EINVAL, "bus_delete(\"%s\")", n);
		cr_assert_eq(bus_stat(b, n, NULL, NULL, 0), -EINVAL, "bus_stat(\"%s\")", n);
		cr_assert_eq(bus_pub_attach(b, n, &p), -EINVAL, "bus_pub_attach(\"%s\")", n);
		cr_assert_eq(bus_sub_attach(b, n, NULL, &s), -EINVAL, "bus_sub_attach(\"%s\")", n);
	}
	cr_assert_eq(t_count_files(d.shm, ""), 1, "%d files in %s after refused creates; only "
		     "the anchor should be there", t_count_files(d.shm, ""), d.shm);
	cr_assert_eq(bus_list(b, NULL, 0), 0);

	/* 128 bytes is allowed, for topics and cursors alike. */
	cr_assert_eq(bus_create(b, max, NULL), 0, "a %u-byte name: %s", BUS_NAME_MAX, bus_errmsg());
	cr_assert(seg_exists(d.shm, id, max, ""));
	cr_assert_eq(bus_list(b, e, 2), 1);
	cr_assert_str_eq(e[0].name, max);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = bus_sub_attach(b, max, &(struct bus_sub_opts){ .group = bad[i].name }, &s);

		cr_assert_eq(r, -EINVAL, "cursor name \"%s\": %d", bad[i].name, r);
		cr_assert(strstr(bus_errmsg(), "cursor"), "\"%s\"", bus_errmsg());
	}
	cr_assert_eq(bus_sub_attach(b, max, &(struct bus_sub_opts){ .group = max }, &s), 0,
		     "a %u-byte cursor name: %s", BUS_NAME_MAX, bus_errmsg());
	bus_sub_close(s);
	cr_assert_eq(t_count_files(d.shm, ""), 3);
	bus_disconnect(b);
}

/* ------------------------------------------------------------------------ */
/* Scale                                                                    */
/* ------------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

#define MANY 1000u
#define NAMELEN 32

Test(busd, a_thousand_topics_are_created_listed_in_order_and_stated)
{
	struct bus_topic_opts o = { .ring_size = 4096 };
	char (*names)[NAMELEN] = calloc(MANY, NAMELEN), (*sorted)[NAMELEN] = calloc(MANY, NAMELEN);
	unsigned *order = calloc(MANY, sizeof(*order)), left = 0;
	struct bus_topic_entry *e = calloc(MANY + 1, sizeof(*e));
	struct bus_topic_info info;
	struct t_busd d;
	struct bus *b;
	char id[17], prefix[40];
	uint64_t t0, t_create, t_list;

	cr_assert(names && sorted && order && e);
	cr_assert_eq(t_busd_start(&d, NULL), 0);
	bus_id_of(&d, id);
	snprintf(prefix, sizeof(prefix), "bus-%s.", id);
	/* Names whose order is not their creation order, nor numeric. */
	for (unsigned i = 0; i < MANY; i++) {
		snprintf(names[i], NAMELEN, "%s.%u", i % 3 ? "svc" : "app-x", i * 7u % 1009u);
		order[i] = i;
	}
	for (unsigned i = MANY - 1; i > 0; i--) {
		unsigned j = (unsigned)(t_rand() % (i + 1)), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	b = connect_to(&d);
	t0 = t_now_ns();
	for (unsigned i = 0; i < MANY; i++)
		cr_assert_eq(bus_create(b, names[order[i]], &o), 0, "topic #%u %s: %s", i,
			     names[order[i]], bus_errmsg());
	t_create = t_now_ns() - t0;
	cr_assert_eq(t_count_files(d.shm, prefix), 2 * MANY);

	memcpy(sorted, names, MANY * NAMELEN);
	qsort(sorted, MANY, NAMELEN, cmp_str);
	t0 = t_now_ns();
	cr_assert_eq(bus_list(b, e, MANY + 1), (int)MANY);
	t_list = t_now_ns() - t0;
	for (unsigned i = 0; i < MANY; i++) {
		cr_assert_str_eq(e[i].name, sorted[i], "entry %u", i);
		cr_assert_eq(e[i].info.ring_size, 4096);
		cr_assert_eq(e[i].info.max_consumers, BUS_CONSUMERS_DEFAULT);
		cr_assert_eq(e[i].info.next_seq, 1);
		cr_assert_eq(e[i].info.mode, 0600);
	}
	/* A short buffer gets the first entries and the total. */
	memset(e, 0, 4 * sizeof(*e));
	cr_assert_eq(bus_list(b, e, 3), (int)MANY);
	for (unsigned i = 0; i < 3; i++)
		cr_assert_str_eq(e[i].name, sorted[i]);
	cr_assert_eq(e[3].name[0], 0, "bus_list wrote past n");
	cr_assert_eq(bus_list(b, NULL, 0), (int)MANY);

	for (unsigned i = 0; i < 20; i++) {
		const char *n = names[t_rand() % MANY];

		cr_assert_eq(bus_stat(b, n, &info, NULL, 0), 0, "%s: %s", n, bus_errmsg());
		cr_assert_eq(info.ring_size, 4096);
		cr_assert_eq(info.max_event, 1024);
		cr_assert_eq(info.uid, geteuid());
		cr_assert_eq(info.next_seq, 1);
	}

	/* Delete every tenth: the rest stay listed, in order. */
	for (unsigned i = 0; i < MANY; i += 10)
		cr_assert_eq(bus_delete(b, sorted[i]), 0, "%s: %s", sorted[i], bus_errmsg());
	cr_assert_eq(bus_list(b, e, MANY + 1), (int)(MANY - MANY / 10));
	for (unsigned i = 0; i < MANY; i++) {
		if (i % 10 == 0)
			continue;
		cr_assert_str_eq(e[left].name, sorted[i], "entry %u after the deletes", left);
		left++;
	}
	cr_assert_eq(t_count_files(d.shm, prefix), 2 * (int)left);
	bus_disconnect(b);
	cr_log_info("%u topics created in %.1f ms, listed in %.2f ms", MANY, t_create / 1e6,
		    t_list / 1e6);
	free(names);
	free(sorted);
	free(order);
	free(e);
}

#define FAN_WORKERS 4u
#define FAN_PER 16u   /* 4 x 16 = BUS_CONSUMERS_DEFAULT */

struct fan {
	char dir[600];
	uint64_t seed, n;
	_Atomic uint32_t attached, go;
};

/* FAN_PER consumers on one connection; each must read all n events. */
static int fan_worker(void *arg)
{
	struct fan *f = arg;
	struct bus_sub *s[FAN_PER];
	struct bus *b;
	uint64_t seq;
	int r;

	if ((r = bus_connect(f->dir, &b)) < 0)
		return t_fail("fan: bus_connect = %d (%s)", r, bus_errmsg());
	for (unsigned i = 0; i < FAN_PER; i++) {
		if ((r = bus_sub_attach(b, "fan", NULL, &s[i])) < 0)
			return t_fail("fan: consumer %u: bus_sub_attach = %d (%s)", i, r,
				      bus_errmsg());
		atomic_fetch_add(&f->attached, 1);
	}
	if (await(&f->go))
		return t_fail("fan: no go within 30 s");
	for (unsigned i = 0; i < FAN_PER; i++) {
		seq = 1;
		if (read_check(s[i], f->seed, &seq, 1 + f->n))
			return t_fail("fan: consumer %u failed", i);
	}
	for (unsigned i = 0; i < FAN_PER; i++)
		bus_sub_close(s[i]);
	bus_disconnect(b);
	return 0;
}

Test(busd, sixty_four_consumers_get_every_event_and_the_65th_gets_eusers)
{
	struct fan *f = t_shared(sizeof(*f));
	struct t_proc w[FAN_WORKERS];
	struct bus_topic_info info;
	struct bus_sub *extra;
	struct bus_pub *p;
	struct t_busd d;
	struct bus *b;
	uint64_t deadline;
	int r;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	snprintf(f->dir, sizeof(f->dir), "%s", d.dir);
	f->seed = t_rand();
	f->n = t_scaled(2000, 200);  /* less than the 1 MiB ring: no lapping */
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "fan", NULL), 0, "%s", bus_errmsg());
	bus_disconnect(b);

	for (unsigned i = 0; i < FAN_WORKERS; i++)
		t_spawn(&w[i], fan_worker, f);
	deadline = t_now_ns() + 20 * SEC;
	while (atomic_load(&f->attached) < FAN_WORKERS * FAN_PER) {
		cr_assert_lt(t_now_ns(), deadline, "only %u consumers attached within 20 s",
			     atomic_load(&f->attached));
		t_nap_us(2000);
	}
	b = connect_to(&d);
	cr_assert_eq(bus_stat(b, "fan", &info, NULL, 0), (int)BUS_CONSUMERS_DEFAULT);
	cr_assert_eq(info.consumers, BUS_CONSUMERS_DEFAULT);
	r = bus_sub_attach(b, "fan", NULL, &extra);
	cr_assert_eq(r, -EUSERS, "the 65th consumer: %d (%s)", r, bus_errmsg());
	cr_assert_null(extra);
	cr_assert(strstr(bus_errmsg(), "64"), "\"%s\" does not say how many slots there are",
		  bus_errmsg());

	cr_assert_eq(bus_pub_attach(b, "fan", &p), 0, "%s", bus_errmsg());
	atomic_store(&f->go, 1);
	cr_assert_eq(publish_n(p, f->seed, f->n, 0), 0);
	bus_pub_close(p);
	for (unsigned i = 0; i < FAN_WORKERS; i++)
		cr_assert_eq(t_join(&w[i]), 0, "worker %u failed (diagnosis on stderr)", i);
	bus_disconnect(b);
}

/* ------------------------------------------------------------------------ */
/* One busd per bus; stale segments; what a stop leaves                     */
/* ------------------------------------------------------------------------ */

static int read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return n > 0 ? (int)n : -1;
}

Test(busd, a_second_busd_on_the_same_bus_exits_1_naming_the_first)
{
	struct t_busd d;
	struct bus *b;
	char err[700], text[2048], want[PATH_MAX + 64], real[PATH_MAX], lock[700];
	uint64_t deadline;
	int st = 0;
	pid_t pid;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	cr_assert_not_null(realpath(d.dir, real));
	snprintf(err, sizeof(err), "%s/second.err", t_dir());
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd < 0 || dup2(fd, 2) < 0)
			_exit(126);
		unsetenv("NOTIFY_SOCKET");
		execl(t_busd_bin(), "busd", "--bus", d.dir, "--shm", d.shm, "--state", d.state,
		      (char *)NULL);
		_exit(127);
	}
	t_adopt_pid(pid);
	deadline = t_now_ns() + 10 * SEC;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		cr_assert_lt(t_now_ns(), deadline, "the second busd is still running after 10 s");
		t_nap_us(5000);
	}
	t_forget_pid(pid);
	cr_assert(WIFEXITED(st), "the second busd died of signal %d", WTERMSIG(st));
	cr_assert_eq(WEXITSTATUS(st), 1, "the second busd exited with %d", WEXITSTATUS(st));
	cr_assert_gt(read_file(err, text, sizeof(text)), 0, "the second busd said nothing");
	snprintf(want, sizeof(want), "another busd (pid %d) already serves %s", (int)d.pid, real);
	cr_assert(strstr(text, want), "its stderr \"%s\" does not say \"%s\"", text, want);

	/* The first one is untouched: socket, lock and service. */
	cr_assert_eq(t_count_files(d.dir, "busd.sock"), 1, "the second busd removed the socket");
	snprintf(lock, sizeof(lock), "%s/busd.lock", d.dir);
	cr_assert_gt(read_file(lock, text, sizeof(text)), 0);
	cr_assert_eq(atoi(text), d.pid, "busd.lock says \"%s\"", text);
	b = connect_to(&d);
	cr_assert_eq(bus_ping(b), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, "still.here", NULL), 0, "%s", bus_errmsg());
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
}

/* Maps a segment directly (bus_sub_open on its path), as any process may,
 * and holds it until killed. */
static int mapper_main(void *arg)
{
	struct role *c = arg;
	struct bus_sub *s;
	int r;

	if ((r = bus_sub_open(c->path, NULL, &s)) < 0)
		return t_fail("mapper: bus_sub_open(%s) = %d (%s)", c->path, r, bus_errmsg());
	atomic_store(&c->ready, 1);
	await(&c->quit);
	bus_sub_close(s);
	return 0;
}

Test(busd, stale_sweep_removes_a_dead_bus_segments_except_those_still_mapped)
{
	struct t_busd a, live, b;
	struct role *m;
	struct bus *c;
	char ida[17], idb[17], anchor[700], text[PATH_MAX + 64], real[PATH_MAX], want[PATH_MAX + 64];
	char stray[700];
	pid_t mapper;
	int fd;

	/* Bus A: three topics; one is mapped by a process of its own. */
	cr_assert_eq(t_busd_start(&a, NULL), 0);
	bus_id_of(&a, ida);
	cr_assert(seg_exists(a.shm, ida, NULL, NULL), "no anchor bus-%s in %s", ida, a.shm);
	snprintf(anchor, sizeof(anchor), "%s/bus-%s", a.shm, ida);
	cr_assert_gt(read_file(anchor, text, sizeof(text)), 0);
	cr_assert_not_null(realpath(a.dir, real));
	snprintf(want, sizeof(want), "%s\n%d\n", real, (int)a.pid);
	cr_assert_str_eq(text, want, "the anchor should hold the bus directory and busd's pid");
	c = connect_to(&a);
	cr_assert_eq(bus_create(c, "kept", &(struct bus_topic_opts){ .ring_size = 4096 }), 0);
	cr_assert_eq(bus_create(c, "gone", &(struct bus_topic_opts){ .ring_size = 4096 }), 0);
	cr_assert_eq(bus_create(c, "gone.too", &(struct bus_topic_opts){ .ring_size = 4096 }), 0);
	bus_disconnect(c);
	m = role_new(&a, "kept", 0);
	snprintf(m->path, sizeof(m->path), "%s/bus-%s.kept", a.shm, ida);
	mapper = t_fork(mapper_main, m);
	cr_assert_eq(wait_flag(&m->ready, 1, mapper, 10), 0, "the mapper failed");
	/* A file of A's that A itself does not map (a segment it would not
	 * adopt, say): only A's lock protects it. */
	snprintf(stray, sizeof(stray), "%s/bus-%s.stray", a.shm, ida);
	fd = open(stray, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "%s", stray);
	close(fd);
	cr_assert_eq(t_count_files(a.shm, ""), 8);

	/* While A lives, another busd on the same segment directory leaves
	 * A's files alone (A holds its lock). */
	cr_assert_eq(t_busd_start(&live, "--shm", a.shm, NULL), 0);
	cr_assert_eq(t_count_files(a.shm, ""), 9, "A's files were touched while A runs");
	cr_assert_eq(access(stray, F_OK), 0, "a file of a live bus was swept");
	cr_assert_eq(t_busd_stop(&live), 0);
	cr_assert_eq(t_count_files(a.shm, ""), 8, "a stopped busd without topics keeps its anchor");

	/* A dies for good; its lock dies with it. B starts on another bus
	 * with the same segment directory and sweeps. */
	t_busd_kill(&a);
	cr_assert_eq(t_count_files(a.shm, ""), 8, "kill -9 leaves everything");
	cr_assert_eq(t_busd_start(&b, "--shm", a.shm, NULL), 0);
	bus_id_of(&b, idb);
	cr_assert(strcmp(ida, idb), "two buses with one id");
	cr_assert(!seg_exists(a.shm, ida, "gone", ""), "an unused segment of a dead bus is left");
	cr_assert(!seg_exists(a.shm, ida, "gone", "@cons"));
	cr_assert(!seg_exists(a.shm, ida, "gone.too", ""));
	cr_assert(!seg_exists(a.shm, ida, "gone.too", "@cons"));
	cr_assert(!seg_exists(a.shm, ida, "stray", ""));
	cr_assert(seg_exists(a.shm, ida, "kept", ""), "a segment a live process maps was removed");
	cr_assert(seg_exists(a.shm, ida, "kept", "@cons"), "the consumer area a live process "
		  "maps was removed");
	cr_assert(seg_exists(a.shm, ida, NULL, NULL), "the anchor went before the segments");
	cr_assert(seg_exists(a.shm, idb, NULL, NULL));
	cr_assert_eq(t_count_files(a.shm, ""), 4);

	/* Once nobody maps it, the next sweep takes the rest and the anchor. */
	kill_wait(mapper);
	cr_assert_eq(t_busd_stop(&b), 0);
	cr_assert_eq(t_busd_restart(&b, "--shm", a.shm, NULL), 0);
	cr_assert(!seg_exists(a.shm, ida, "kept", ""));
	cr_assert(!seg_exists(a.shm, ida, "kept", "@cons"));
	cr_assert(!seg_exists(a.shm, ida, NULL, NULL), "the dead bus's anchor is left");
	cr_assert_eq(t_count_files(a.shm, ""), 1, "only B's anchor should be left");
	cr_assert_eq(t_busd_stop(&b), 0);
	cr_assert_eq(t_count_files(a.shm, ""), 0);
}

Test(busd, a_stopped_busd_whose_topics_were_deleted_leaves_nothing_behind)
{
	uint64_t seed = t_rand(), seq;
	struct bus_sub *s;
	struct bus_pub *p;
	struct t_busd d;
	struct bus *b;
	char id[17];

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	bus_id_of(&d, id);
	cr_assert(seg_exists(d.shm, id, NULL, NULL), "no anchor while busd runs");
	cr_assert_eq(t_count_files(d.dir, "busd.sock"), 1);
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "a", NULL), 0);
	cr_assert_eq(bus_create(b, "b.c", &(struct bus_topic_opts){ .ring_size = 8192 }), 0);
	cr_assert_eq(bus_create(b, "d-e_f", NULL), 0);
	cr_assert_eq(bus_pub_attach(b, "b.c", &p), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_attach(b, "b.c", &(struct bus_sub_opts){ .group = "keep" }, &s), 0);
	cr_assert_eq(publish_n(p, seed, 10, 0), 0);
	seq = 1;
	cr_assert_eq(read_check(s, seed, &seq, 11), 0);
	cr_assert_eq(bus_sub_commit(s), 0);
	bus_sub_close(s);
	bus_pub_close(p);
	cr_assert_eq(t_count_files(d.shm, ""), 7);
	cr_assert_eq(bus_delete(b, "a"), 0);
	cr_assert_eq(bus_delete(b, "b.c"), 0);
	cr_assert_eq(bus_delete(b, "d-e_f"), 0);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
	cr_assert_eq(t_count_files(d.shm, ""), 0, "%d files left in %s", t_count_files(d.shm, ""),
		     d.shm);
	cr_assert_eq(t_count_files(d.dir, "busd.sock"), 0, "the socket is left");
	cr_assert(!cursor_file_has(&d, "b.c", "keep", 11), "the deleted topic's cursor is kept");
}
