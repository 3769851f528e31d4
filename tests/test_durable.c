/* SPDX-License-Identifier: MIT */
/*
 * Description: durable topics end to end, with a real busd: the flusher,
 * the log on disk, a consumer that falls behind and continues from the log
 * back into the ring, starting by sequence and by time, replay after busd
 * restarts and after a simulated reboot, retention, and bus_pub_sync.
 * (Faults — a full disk, kill -9 under load, damaged segments, hostile
 * files — are in test_durable_faults.c.)
 *
 * Children never use cr_assert: they report through a shared page and their
 * exit status. The test process forks only while it holds no bus connection
 * (a connection has a watcher thread; under TSan a child of a multi-threaded
 * process must not start threads of its own).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus.h"
#include "t_busd.h"
#include "t_log.h"
#include "t_util.h"

TestSuite(durable, .init = t_init, .fini = t_fini, .timeout = 120);

#define MAXEV 512
#define SEC 1000000000ll
#define MS 1000000ll
#define LOG_EV UINT64_MAX  /* ev.pos_ of an event read from the log */

static struct bus *connect_to(const struct t_busd *d)
{
	struct bus *b;

	cr_assert_eq(bus_connect(d->dir, &b), 0, "%s", bus_errmsg());
	return b;
}

/* Publish events [first, first + n) with checksummed payloads of varying
 * length. */
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

/* How many events from `first` on take at least `bytes` in the ring. */
static uint64_t events_for_bytes(uint64_t seed, uint64_t first, uint64_t bytes)
{
	uint64_t n = 0, sum = 0;

	while (sum < bytes) {
		sum += t_rec_size(t_len_for(seed, first + n, 8, MAXEV));
		n++;
	}
	return n;
}

/* The next event, waiting up to 5 s for one. */
static int next_ev(struct bus_sub *s, struct bus_event *ev)
{
	uint64_t end = t_now_ns() + 5 * SEC;
	int r;

	while ((r = bus_sub_next(s, ev)) == 0 && t_now_ns() < end)
		bus_sub_wait(s, 100 * MS);
	return r;
}

/* Read events [first, first + n) and check each one. */
static void expect_n(struct bus_sub *s, uint64_t seed, uint64_t first, uint64_t n)
{
	struct bus_event ev;

	for (uint64_t want = first; want < first + n; want++) {
		int r = next_ev(s, &ev);

		cr_assert_eq(r, 1, "event %llu: next = %d (%s), lost %llu", (unsigned long long)want,
			     r, bus_errmsg(), (unsigned long long)ev.lost);
		cr_assert_eq(ev.seq, want);
		cr_assert_eq(ev.type, (uint32_t)want);
		cr_assert_eq(ev.len, t_len_for(seed, want, 8, MAXEV));
		cr_assert_eq(t_check(ev.data, ev.len, seed, ev.seq), 0, "payload of %llu",
			     (unsigned long long)ev.seq);
		cr_assert_eq(bus_sub_confirm(s, &ev), 0);
	}
}

/* Nothing more for now: next() says 0 (after a short wait). */
static void expect_nothing(struct bus_sub *s)
{
	struct bus_event ev;

	cr_assert_eq(bus_sub_next(s, &ev), 0, "seq %llu", (unsigned long long)ev.seq);
	cr_assert_eq(bus_sub_wait(s, 20 * MS), -ETIMEDOUT);
	cr_assert_eq(bus_sub_next(s, &ev), 0, "seq %llu", (unsigned long long)ev.seq);
}

/* Read the log in dir with no busd involved: exactly [first, last], every
 * payload intact, then the end. */
static void log_expect(const char *dir, uint64_t seed, uint64_t first, uint64_t last)
{
	struct bus_event ev;
	struct bus_log *l;

	cr_assert_eq(bus_log_open(dir, &l), 0, "%s", bus_errmsg());
	for (uint64_t want = first; want <= last; want++) {
		int r = bus_log_next(l, &ev);

		cr_assert_eq(r, 1, "log event %llu: %d (%s)", (unsigned long long)want, r,
			     bus_errmsg());
		cr_assert_eq(ev.seq, want);
		cr_assert_eq(t_check(ev.data, ev.len, seed, ev.seq), 0);
	}
	cr_assert_eq(bus_log_next(l, &ev), 0, "seq %llu after the end", (unsigned long long)ev.seq);
	bus_log_close(l);
}

static void log_dir(char *buf, size_t size, const struct t_busd *d, const char *topic)
{
	snprintf(buf, size, "%s/log/%s", d->state, topic);
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

/* ------------------------------------------------------------------------ */
/* A consumer process stopped while 20 rings go by                          */
/* ------------------------------------------------------------------------ */

#define STOP_RING (64u << 10)
#define STOP_EXTRA 10

struct stop_ctl {
	char dir[600];
	uint64_t seed, n;
	_Atomic int ready;            /* consumer attached */
	_Atomic int pub_done;         /* producer: n published and synced */
	_Atomic int more;             /* producer: publish the extra ones */
	_Atomic uint64_t received;    /* consumer: events so far */
	_Atomic uint64_t from_log, from_ring, to_ring, to_log;
	_Atomic int first_from_log;
};

static int stopped_consumer(void *arg)
{
	struct stop_ctl *c = arg;
	uint64_t want = 1, end = c->n + STOP_EXTRA, deadline;
	struct bus_event ev;
	struct bus_sub *s;
	struct bus *b;
	int r, prev = -1;

	if ((r = bus_connect(c->dir, &b)) < 0)
		return t_fail("consumer: bus_connect = %d (%s)", r, bus_errmsg());
	if ((r = bus_sub_attach(b, "stop", NULL, &s)) < 0)
		return t_fail("consumer: bus_sub_attach = %d (%s)", r, bus_errmsg());
	atomic_store(&c->ready, 1);
	/* Stopped for a while somewhere in here: deadlines are generous. */
	deadline = t_now_ns() + 100 * SEC;
	while (want <= end) {
		r = bus_sub_next(s, &ev);
		if (r == 0) {
			if (t_now_ns() > deadline)
				return t_fail("consumer: nothing after event %llu",
					      (unsigned long long)want - 1);
			bus_sub_wait(s, 100 * MS);
			continue;
		}
		if (r != 1)
			return t_fail("consumer: event %llu: next = %d (%s), lost %llu",
				      (unsigned long long)want, r, bus_errmsg(),
				      (unsigned long long)ev.lost);
		if (ev.seq != want)
			return t_fail("consumer: got %llu, expected %llu",
				      (unsigned long long)ev.seq, (unsigned long long)want);
		if (ev.type != (uint32_t)want || t_check(ev.data, ev.len, c->seed, ev.seq))
			return t_fail("consumer: event %llu damaged", (unsigned long long)want);
		if ((r = bus_sub_confirm(s, &ev)) != 0)
			return t_fail("consumer: confirm %llu = %d", (unsigned long long)want, r);
		int log = ev.pos_ == LOG_EV;

		if (prev < 0)
			atomic_store(&c->first_from_log, log);
		else if (prev != log)
			atomic_fetch_add(log ? &c->to_log : &c->to_ring, 1);
		prev = log;
		atomic_fetch_add(log ? &c->from_log : &c->from_ring, 1);
		atomic_store(&c->received, want);
		want++;
	}
	bus_sub_close(s);
	bus_disconnect(b);
	return 0;
}

static int stop_producer(void *arg)
{
	struct stop_ctl *c = arg;
	uint8_t buf[MAXEV];
	uint64_t deadline;
	struct bus_pub *p;
	struct bus *b;
	int r;

	if ((r = bus_connect(c->dir, &b)) < 0)
		return t_fail("producer: bus_connect = %d (%s)", r, bus_errmsg());
	if ((r = bus_pub_attach(b, "stop", &p)) < 0)
		return t_fail("producer: bus_pub_attach = %d (%s)", r, bus_errmsg());
	bus_pub_set_timeout(p, 20 * SEC);  /* sanitizers make busd slow */
	for (uint64_t s = 1; s <= c->n + STOP_EXTRA; s++) {
		uint32_t len = t_len_for(c->seed, s, 8, MAXEV);

		if (s == c->n + 1) {
			if ((r = bus_pub_sync(p, c->n, 20 * SEC)) < 0)
				return t_fail("producer: sync = %d (%s)", r, bus_errmsg());
			atomic_store(&c->pub_done, 1);
			deadline = t_now_ns() + 100 * SEC;
			while (!atomic_load(&c->more)) {
				if (t_now_ns() > deadline)
					return t_fail("producer: never told to go on");
				t_nap_us(1000);
			}
		}
		t_fill(buf, len, c->seed, s);
		if ((r = bus_pub_publish(p, (uint32_t)s, buf, len, 0)) < 0)
			return t_fail("producer: publish %llu = %d (%s)", (unsigned long long)s, r,
				      bus_errmsg());
	}
	if ((r = bus_pub_sync(p, c->n + STOP_EXTRA, 20 * SEC)) < 0)
		return t_fail("producer: sync = %d (%s)", r, bus_errmsg());
	bus_pub_close(p);
	bus_disconnect(b);
	return 0;
}

static void wait_until(_Atomic uint64_t *v, uint64_t want, const char *what)
{
	uint64_t end = t_now_ns() + 100 * SEC;

	while (atomic_load(v) < want && t_now_ns() < end)
		t_nap_us(1000);
	cr_assert_geq(atomic_load(v), want, "waited 100 s for %s", what);
}

Test(durable, a_stopped_consumer_process_reads_twenty_rings_from_the_log_then_the_ring)
{
	struct bus_topic_opts o = { .ring_size = STOP_RING, .max_event = MAXEV,
				    .flags = BUS_TOPIC_DURABLE, .segment_bytes = 1 << 20 };
	struct stop_ctl *c = t_shared(sizeof(*c));
	struct bus_topic_info ti;
	struct t_busd d;
	struct bus *b;
	pid_t cons, prod;
	int st;

	c->seed = t_rand();
	c->n = events_for_bytes(c->seed, 1, 20ull * STOP_RING);
	cr_assert_eq(t_busd_start(&d, NULL), 0);
	snprintf(c->dir, sizeof(c->dir), "%s", d.dir);
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "stop", &o), 0, "%s", bus_errmsg());
	bus_disconnect(b);

	cons = t_fork(stopped_consumer, c);
	for (uint64_t end = t_now_ns() + 30 * SEC; !atomic_load(&c->ready) && t_now_ns() < end;)
		t_nap_us(1000);
	cr_assert(atomic_load(&c->ready), "the consumer did not attach");
	cr_assert_eq(kill(cons, SIGSTOP), 0);
	cr_assert_eq(waitpid(cons, &st, WUNTRACED), cons);
	cr_assert(WIFSTOPPED(st));

	prod = t_fork(stop_producer, c);
	for (uint64_t end = t_now_ns() + 100 * SEC; !atomic_load(&c->pub_done) && t_now_ns() < end;)
		t_nap_us(1000);
	cr_assert(atomic_load(&c->pub_done), "the producer did not publish and sync %llu events",
		  (unsigned long long)c->n);
	cr_assert_eq(atomic_load(&c->received), 0);
	cr_assert_eq(kill(cons, SIGCONT), 0);
	wait_until(&c->received, c->n, "the consumer to read everything published");
	atomic_store(&c->more, 1);
	cr_assert_eq(t_wait_pid(prod), 0);
	cr_assert_eq(t_wait_pid(cons), 0);

	/* Everything was synced before it woke up: all of it came from the
	 * log, then it was back in the ring for the live events. */
	cr_assert_eq(atomic_load(&c->received), c->n + STOP_EXTRA);
	cr_assert_eq(atomic_load(&c->first_from_log), 1);
	cr_assert_eq(atomic_load(&c->from_log), c->n);
	cr_assert_eq(atomic_load(&c->from_ring), STOP_EXTRA);
	cr_assert_eq(atomic_load(&c->to_ring), 1);
	cr_assert_eq(atomic_load(&c->to_log), 0);

	b = connect_to(&d);
	cr_assert_geq(bus_stat(b, "stop", &ti, NULL, 0), 0, "%s", bus_errmsg());
	cr_assert_eq(ti.next_seq, c->n + STOP_EXTRA + 1);
	cr_assert_gt(ti.oldest_seq, c->n / 2, "the ring still holds the start: not 20 rings");
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
}

/* ------------------------------------------------------------------------ */
/* Start by time                                                            */
/* ------------------------------------------------------------------------ */

/* Replace key=value in a durable topic's topic.conf (busd reads it when it
 * adopts the topic). */
static void conf_set(const struct t_busd *d, const char *topic, const char *key, const char *val)
{
	char path[800], out[4096];
	size_t len, o = 0, kl = strlen(key);
	uint8_t *buf;
	int found = 0;

	snprintf(path, sizeof(path), "%s/log/%s/topic.conf", d->state, topic);
	cr_assert_eq(t_file_read(path, &buf, &len), 0, "%s", path);
	for (char *sv, *line = strtok_r((char *)buf, "\n", &sv); line;
	     line = strtok_r(NULL, "\n", &sv)) {
		if (!strncmp(line, key, kl) && line[kl] == '=') {
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%s=%s\n", key, val);
			found = 1;
		} else {
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%s\n", line);
		}
	}
	free(buf);
	cr_assert(found, "no %s in %s", key, path);
	cr_assert_lt(o, sizeof(out));
	cr_assert_eq(t_file_write(path, out, o), 0);
}

/* The first sequence number in [1, last] whose timestamp is >= t (ts is
 * indexed by sequence number and never decreases), or last + 1. */
static uint64_t first_at(const uint64_t *ts, uint64_t last, uint64_t t)
{
	uint64_t lo = 1, hi = last + 1;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (ts[mid] >= t)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* A consumer from time t gets exactly the events from the first at or
 * after t to `last`, then nothing. */
static void from_time_case(struct bus *b, const uint64_t *ts, uint64_t last, uint64_t seed,
			   uint64_t t)
{
	struct bus_sub_opts so = { .from = BUS_FROM_TIME, .ts_ns = t };
	uint64_t want = first_at(ts, last, t);
	struct bus_event ev;
	struct bus_sub *s;

	cr_assert_eq(bus_sub_attach(b, "time", &so, &s), 0, "%s", bus_errmsg());
	if (want <= last) {
		cr_assert_eq(next_ev(s, &ev), 1, "from time %llu: %s", (unsigned long long)t,
			     bus_errmsg());
		cr_assert_eq(ev.seq, want, "from time %llu (event %llu has %llu)",
			     (unsigned long long)t, (unsigned long long)want,
			     (unsigned long long)ts[want]);
		cr_assert_eq(ev.ts_ns, ts[want]);
		cr_assert_eq(t_check(ev.data, ev.len, seed, ev.seq), 0);
		expect_n(s, seed, want + 1, last - want);
	}
	expect_nothing(s);
	bus_sub_close(s);
}

/* bus_log_seek_time on a log that holds [1, in_log]. */
static void log_time_case(struct bus_log *l, const uint64_t *ts, uint64_t in_log, uint64_t seed,
			  uint64_t t)
{
	uint64_t want = first_at(ts, in_log, t);
	struct bus_event ev;

	cr_assert_eq(bus_log_seek_time(l, t), 0, "%s", bus_errmsg());
	for (uint64_t i = 0; i < 3 && want + i <= in_log; i++) {
		cr_assert_eq(bus_log_next(l, &ev), 1, "log from time %llu: %s",
			     (unsigned long long)t, bus_errmsg());
		cr_assert_eq(ev.seq, want + i, "log from time %llu", (unsigned long long)t);
		cr_assert_eq(ev.ts_ns, ts[want + i]);
		cr_assert_eq(t_check(ev.data, ev.len, seed, ev.seq), 0);
	}
	if (want > in_log)
		cr_assert_eq(bus_log_next(l, &ev), 0, "log from time %llu: event %llu",
			     (unsigned long long)t, (unsigned long long)ev.seq);
}

Test(durable, from_time_starts_at_the_first_event_at_or_after_it_in_the_log_or_the_ring)
{
	struct bus_topic_opts o = { .ring_size = 256 << 10, .max_event = MAXEV,
				    .flags = BUS_TOPIC_DURABLE, .fsync = BUS_FSYNC_NONE,
				    .segment_bytes = 1 << 20 };
	uint64_t seed = t_rand(), na, nb = 40, last, oldest, *ts, t;
	struct bus_topic_info ti;
	struct bus_log_info li;
	struct bus_event ev;
	struct bus_sub *s;
	struct bus_pub *p;
	struct bus_log *l;
	struct t_busd d;
	struct bus *b;
	char dir[700];

	/* A: 2.5 MiB, in the log (three segments; most of it only there). */
	na = events_for_bytes(seed, 1, 5 << 19);
	last = na + nb;
	cr_assert_eq(t_busd_start(&d, NULL), 0);
	log_dir(dir, sizeof(dir), &d, "time");
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "time", &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "time", &p), 0, "%s", bus_errmsg());
	bus_pub_set_timeout(p, 10 * SEC);
	publish_n(p, seed, 1, na);
	cr_assert_eq(bus_pub_sync(p, na, 10 * SEC), 0, "%s", bus_errmsg());
	bus_pub_close(p);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);

	/* B: 40 events that stay in the ring only: the flusher now waits a
	 * minute to batch anything smaller than 4 MiB. */
	conf_set(&d, "time", "linger_ns", "60000000000");
	conf_set(&d, "time", "batch_bytes", "4194304");
	cr_assert_eq(t_busd_restart(&d, NULL), 0);
	b = connect_to(&d);
	cr_assert_eq(bus_pub_attach(b, "time", &p), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_next_seq(p), na + 1);
	publish_n(p, seed, na + 1, nb);
	cr_assert_eq(bus_log_open(dir, &l), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_log_info(l, &li), 0, "%s", bus_errmsg());
	cr_assert_eq(li.next_seq, na + 1, "B is in the log already: this test needs it not to be");
	cr_assert_geq(li.segments, 3);
	bus_log_close(l);

	/* First pass: every event's timestamp. */
	ts = calloc(last + 2, sizeof(*ts));
	cr_assert_not_null(ts);
	cr_assert_eq(bus_sub_attach(b, "time", NULL, &s), 0, "%s", bus_errmsg());
	for (uint64_t want = 1; want <= last; want++) {
		cr_assert_eq(next_ev(s, &ev), 1, "%s", bus_errmsg());
		cr_assert_eq(ev.seq, want);
		ts[want] = ev.ts_ns;
		cr_assert_geq(ts[want], ts[want - 1], "the clock went backwards: timestamps of "
			      "%llu and %llu", (unsigned long long)want - 1, (unsigned long long)want);
	}
	bus_sub_close(s);
	cr_assert_geq(bus_stat(b, "time", &ti, NULL, 0), 0, "%s", bus_errmsg());
	oldest = ti.oldest_seq;
	cr_assert(oldest > 2 && oldest <= na, "the ring holds %llu.., A ends at %llu",
		  (unsigned long long)oldest, (unsigned long long)na);

	/* Older than everything. */
	from_time_case(b, ts, last, seed, 1);
	from_time_case(b, ts, last, seed, ts[1] - 1);
	from_time_case(b, ts, last, seed, ts[1]);
	/* Only in the log. */
	for (int i = 0; i < 6; i++) {
		uint64_t k = 2 + t_rand() % (oldest - 2);

		from_time_case(b, ts, last, seed, ts[k]);
		from_time_case(b, ts, last, seed, ts[k] + 1);
	}
	/* In both; the last in the log; the first and others only in the ring. */
	from_time_case(b, ts, last, seed, ts[oldest]);
	from_time_case(b, ts, last, seed, ts[na]);
	from_time_case(b, ts, last, seed, ts[na] + 1);
	from_time_case(b, ts, last, seed, ts[na + 1]);
	from_time_case(b, ts, last, seed, ts[na + 1 + t_rand() % nb]);
	from_time_case(b, ts, last, seed, ts[last]);

	/* The log alone: bus_log_seek_time through busd and offline. */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 0)
			cr_assert_eq(bus_log_attach(b, "time", &l), 0, "%s", bus_errmsg());
		else
			cr_assert_eq(bus_log_open(dir, &l), 0, "%s", bus_errmsg());
		log_time_case(l, ts, na, seed, 1);
		log_time_case(l, ts, na, seed, ts[1]);
		for (int i = 0; i < 8; i++) {
			uint64_t k = 1 + t_rand() % na;

			log_time_case(l, ts, na, seed, ts[k]);
			log_time_case(l, ts, na, seed, ts[k] + 1);
		}
		log_time_case(l, ts, na, seed, ts[na]);
		log_time_case(l, ts, na, seed, ts[na] + 1);
		bus_log_close(l);
	}

	/* Newer than everything: nothing, until the next event. */
	t = ts[last] + 1;
	{
		struct bus_sub_opts so = { .from = BUS_FROM_TIME, .ts_ns = t };

		cr_assert_eq(bus_sub_attach(b, "time", &so, &s), 0, "%s", bus_errmsg());
		expect_nothing(s);
		publish_n(p, seed, last + 1, 1);
		expect_n(s, seed, last + 1, 1);
		expect_nothing(s);
		bus_sub_close(s);
	}
	free(ts);
	bus_pub_close(p);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
	log_expect(dir, seed, 1, last + 1);  /* shutdown wrote B and the last one */
}

/* ------------------------------------------------------------------------ */
/* Replay after busd restarts and a reboot                                  */
/* ------------------------------------------------------------------------ */

enum replay_how { REPLAY_SIGTERM, REPLAY_KILL9, REPLAY_REBOOT };

/* Remove the files in dir whose name starts with prefix; how many. */
static int rm_prefix(const char *dir, const char *prefix)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(dp, "%s", dir);
	while ((e = readdir(dp)))
		if (!strncmp(e->d_name, prefix, strlen(prefix)) && !unlinkat(dirfd(dp), e->d_name, 0))
			n++;
	closedir(dp);
	return n;
}

static void replay(enum replay_how how)
{
	struct bus_topic_opts o = { .ring_size = 64 << 10, .max_event = MAXEV,
				    .flags = BUS_TOPIC_DURABLE, .segment_bytes = 1 << 20 };
	struct bus_sub_opts go = { .group = "audit" };
	uint64_t seed = t_rand(), n, m = 100, k = 50;
	struct bus_topic_info ti;
	struct bus_sub *all, *g;
	struct bus_pub *p;
	struct t_busd d;
	struct bus *b;
	char dir[700], msg[200];

	n = events_for_bytes(seed, 1, t_scaled(3 << 20, 1 << 20));
	cr_assert_eq(t_busd_start(&d, NULL), 0);
	log_dir(dir, sizeof(dir), &d, "replay");
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "replay", &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_attach(b, "replay", &go, &g), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "replay", &p), 0, "%s", bus_errmsg());
	bus_pub_set_timeout(p, 10 * SEC);
	publish_n(p, seed, 1, n);
	/* The named cursor commits at m: long gone from the ring. */
	expect_n(g, seed, 1, m);
	cr_assert_eq(bus_sub_commit(g), 0, "%s", bus_errmsg());
	bus_sub_close(g);
	cr_assert_eq(bus_pub_sync(p, n, 10 * SEC), 0, "%s", bus_errmsg());
	bus_pub_close(p);
	bus_disconnect(b);

	switch (how) {
	case REPLAY_SIGTERM:
		cr_assert_eq(t_busd_stop(&d), 0);
		break;
	case REPLAY_KILL9:
		t_busd_kill(&d);
		break;
	case REPLAY_REBOOT:
		cr_assert_eq(t_busd_stop(&d), 0);
		/* The segment, its @cons and the anchor: /dev/shm is empty. */
		cr_assert_geq(rm_prefix(d.shm, "bus-"), 2);
		cr_assert_eq(t_count_files(d.shm, ""), 0);
		break;
	}
	cr_assert_eq(t_busd_restart(&d, NULL), 0);
	b = connect_to(&d);
	cr_assert_geq(bus_stat(b, "replay", &ti, NULL, 0), 0, "%s", bus_errmsg());
	cr_assert_eq(ti.next_seq, n + 1);
	cr_assert(ti.flags & BUS_TOPIC_DURABLE);
	if (how == REPLAY_REBOOT) {
		/* A new ring that starts where the log ends. */
		cr_assert_eq(ti.first_seq, n + 1);
		cr_assert_eq(ti.oldest_seq, n + 1);
		cr_assert_eq(ti.events, 0);
		cr_assert_eq(ti.ring_size, o.ring_size);
		cr_assert_eq(ti.max_event, o.max_event);
		snprintf(msg, sizeof(msg), "recreated durable topic 'replay' from its log: the "
			 "ring starts at event %llu", (unsigned long long)n + 1);
		cr_assert_eq(t_file_count(d.err, msg), 1, "busd's log lacks \"%s\"", msg);
	}
	cr_assert_eq(bus_sub_attach(b, "replay", NULL, &all), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_attach(b, "replay", &go, &g), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "replay", &p), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_next_seq(p), n + 1);
	/* From the oldest: the whole log; the cursor: after its commit. */
	expect_n(all, seed, 1, n);
	expect_n(g, seed, m + 1, n - m);
	/* Then the new events, live. */
	publish_n(p, seed, n + 1, k);
	expect_n(all, seed, n + 1, k);
	expect_n(g, seed, n + 1, k);
	expect_nothing(all);
	expect_nothing(g);
	cr_assert_eq(bus_pub_sync(p, n + k, 10 * SEC), 0, "%s", bus_errmsg());
	bus_sub_close(all);
	bus_sub_close(g);
	bus_pub_close(p);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
	log_expect(dir, seed, 1, n + k);
}

Test(durable, replay_after_busd_stops_and_starts_again)
{
	replay(REPLAY_SIGTERM);
}

Test(durable, replay_after_busd_is_killed)
{
	replay(REPLAY_KILL9);
}

Test(durable, replay_after_a_reboot_recreates_the_topic_where_the_log_ends)
{
	replay(REPLAY_REBOOT);
}

/* ------------------------------------------------------------------------ */
/* Retention                                                                */
/* ------------------------------------------------------------------------ */

#define MAXSEG 64

struct segs {
	int n, nidx;
	uint64_t first[MAXSEG], size[MAXSEG];
};

static int cmp_seg(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The segments in a log directory, sorted; every .idx must have its .log. */
static void list_segs(const char *dir, struct segs *sg)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	uint64_t idx[MAXSEG];

	cr_assert_not_null(dp, "%s", dir);
	memset(sg, 0, sizeof(*sg));
	while ((e = readdir(dp))) {
		size_t l = strlen(e->d_name);
		struct stat st;

		if (l != 24 || strspn(e->d_name, "0123456789") != 20)
			continue;
		cr_assert_eq(fstatat(dirfd(dp), e->d_name, &st, AT_SYMLINK_NOFOLLOW), 0);
		if (!strcmp(e->d_name + 20, ".log")) {
			cr_assert_lt(sg->n, MAXSEG);
			sg->first[sg->n] = strtoull(e->d_name, NULL, 10);
			sg->size[sg->n++] = (uint64_t)st.st_size;
		} else if (!strcmp(e->d_name + 20, ".idx")) {
			cr_assert_lt(sg->nidx, MAXSEG);
			idx[sg->nidx++] = strtoull(e->d_name, NULL, 10);
		}
	}
	closedir(dp);
	/* sort first[] and size[] together: pairs */
	for (int i = 1; i < sg->n; i++)
		for (int j = i; j > 0 && sg->first[j - 1] > sg->first[j]; j--) {
			uint64_t f = sg->first[j], s = sg->size[j];

			sg->first[j] = sg->first[j - 1];
			sg->size[j] = sg->size[j - 1];
			sg->first[j - 1] = f;
			sg->size[j - 1] = s;
		}
	qsort(idx, (size_t)sg->nidx, sizeof(*idx), cmp_seg);
	cr_assert_eq(sg->nidx, sg->n, "%d index files for %d segments", sg->nidx, sg->n);
	for (int i = 0; i < sg->n; i++)
		cr_assert_eq(idx[i], sg->first[i]);
}

/* Each segment holds exactly [first[i], first[i+1]) in whole chunks (read
 * from the chunk headers), the last one up to `last`. */
static void check_seg_contents(const char *dir, const struct segs *sg, uint64_t last)
{
	struct t_chunk ch[4096];

	for (int i = 0; i < sg->n; i++) {
		char path[800], name[32];
		uint8_t *buf;
		size_t len;
		int nc;

		t_seg_name(name, sizeof(name), sg->first[i]);
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		cr_assert_eq(t_file_read(path, &buf, &len), 0, "%s", path);
		nc = t_log_chunks(buf, len, ch, 4096);
		free(buf);
		cr_assert_gt(nc, 0, "%s: %d chunks", path, nc);
		cr_assert_leq(nc, 4096);
		cr_assert_eq(ch[0].first_seq, sg->first[i], "%s", path);
		for (int c = 1; c < nc; c++)
			cr_assert_eq(ch[c].first_seq, ch[c - 1].first_seq + ch[c - 1].count);
		cr_assert_eq(ch[nc - 1].first_seq + ch[nc - 1].count,
			     i + 1 < sg->n ? sg->first[i + 1] : last + 1, "%s", path);
	}
}

Test(durable, retention_removes_whole_old_segments_and_keeps_the_newest)
{
	const uint64_t retain = 5ull << 19;  /* 2.5 MiB: two full segments and the active */
	struct bus_topic_opts o = { .ring_size = 64 << 10, .max_event = MAXEV,
				    .flags = BUS_TOPIC_DURABLE, .fsync = BUS_FSYNC_NONE,
				    .batch_bytes = 16 << 10, .segment_bytes = 1 << 20,
				    .retain_bytes = retain };
	struct bus_sub_opts so = { .group = "slow" };
	uint64_t seed = t_rand(), n, removed_first = UINT64_MAX, prev = 0;
	int removed = 0;
	struct bus_event ev;
	struct bus_sub *s;
	struct bus_pub *p;
	struct bus_log *l;
	struct t_busd d;
	struct segs sg;
	struct bus *b;
	char dir[700], *txt, *q;
	uint8_t *buf;
	size_t len;

	n = events_for_bytes(seed, 1, t_scaled(8 << 20, 5 << 20));
	cr_assert_eq(t_busd_start(&d, NULL), 0);
	log_dir(dir, sizeof(dir), &d, "ret");
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "ret", &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_attach(b, "ret", &so, &s), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "ret", &p), 0, "%s", bus_errmsg());
	bus_pub_set_timeout(p, 10 * SEC);
	publish_n(p, seed, 1, 10);
	expect_n(s, seed, 1, 10);
	cr_assert_eq(bus_sub_commit(s), 0);
	bus_sub_close(s);
	publish_n(p, seed, 11, n - 10);
	cr_assert_eq(bus_pub_sync(p, n, 10 * SEC), 0, "%s", bus_errmsg());

	/* Segments close at (1 MiB - one ring, 1 MiB]: two closed ones and
	 * the active one fit in 2.5 MiB, three closed ones do not. */
	list_segs(dir, &sg);
	cr_assert_eq(sg.n, 3, "%d segments", sg.n);
	cr_assert_gt(sg.first[0], 11);
	cr_assert_leq(sg.size[0], 1 << 20);
	cr_assert_leq(sg.size[1], 1 << 20);
	cr_assert_leq(sg.size[0] + sg.size[1] + 64, retain);
	check_seg_contents(dir, &sg, n);
	log_expect(dir, seed, sg.first[0], n);

	/* busd said what it removed: whole segments from the first on, in
	 * order, all older than what is left. */
	cr_assert_eq(t_file_read(d.err, &buf, &len), 0);
	txt = (char *)buf;
	for (q = txt; (q = strstr(q, "'ret': retention removed log segment ")); q++) {
		unsigned long long f = strtoull(q + strlen("'ret': retention removed log segment "),
						NULL, 10);

		cr_assert_gt(f, prev);
		cr_assert_lt(f, sg.first[0]);
		if (removed_first == UINT64_MAX)
			removed_first = f;
		prev = f;
		removed++;
	}
	free(buf);
	cr_assert_eq(removed_first, 1);
	cr_assert_geq(removed, 2);
	cr_assert_eq(t_file_count(d.err, "retention removed log segment"), removed);
	cr_assert_eq(t_file_count(d.err, "(age)"), 0);

	/* Asking for what is gone: -ERANGE by sequence, a gap for the cursor. */
	{
		struct bus_sub_opts fs = { .from = BUS_FROM_SEQ, .seq = 1 };

		cr_assert_eq(bus_sub_attach(b, "ret", &fs, &s), -ERANGE);
		fs.seq = sg.first[0] - 1;
		cr_assert_eq(bus_sub_attach(b, "ret", &fs, &s), -ERANGE);
		fs.seq = sg.first[0];
		cr_assert_eq(bus_sub_attach(b, "ret", &fs, &s), 0, "%s", bus_errmsg());
		expect_n(s, seed, sg.first[0], 5);
		bus_sub_close(s);
	}
	cr_assert_eq(bus_sub_attach(b, "ret", NULL, &s), 0, "%s", bus_errmsg());
	expect_n(s, seed, sg.first[0], 5);
	bus_sub_close(s);
	cr_assert_eq(bus_sub_attach(b, "ret", &so, &s), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_next(s, &ev), -ENOBUFS);
	cr_assert_eq(ev.seq, 11);
	cr_assert_eq(ev.lost, sg.first[0] - 11);
	expect_n(s, seed, sg.first[0], 5);
	bus_sub_close(s);
	cr_assert_eq(bus_log_attach(b, "ret", &l), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_log_seek(l, 1), -ERANGE);
	cr_assert_eq(bus_log_seek(l, sg.first[0] - 1), -ERANGE);
	cr_assert_eq(bus_log_seek(l, sg.first[0]), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_log_next(l, &ev), 1, "%s", bus_errmsg());
	cr_assert_eq(ev.seq, sg.first[0]);
	bus_log_close(l);

	bus_pub_close(p);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
}

Test(durable, retention_never_removes_the_active_segment)
{
	struct bus_topic_opts o = { .ring_size = 64 << 10, .max_event = MAXEV,
				    .flags = BUS_TOPIC_DURABLE, .fsync = BUS_FSYNC_NONE,
				    .batch_bytes = 16 << 10, .segment_bytes = 1 << 20,
				    .retain_bytes = 1 };
	uint64_t seed = t_rand(), n;
	struct bus_pub *p;
	struct t_busd d;
	struct segs sg;
	struct bus *b;
	char dir[700];
	int removed;

	n = events_for_bytes(seed, 1, t_scaled(4 << 20, 3 << 20));
	cr_assert_eq(t_busd_start(&d, NULL), 0);
	log_dir(dir, sizeof(dir), &d, "act");
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "act", &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "act", &p), 0, "%s", bus_errmsg());
	bus_pub_set_timeout(p, 10 * SEC);
	publish_n(p, seed, 1, n);
	cr_assert_eq(bus_pub_sync(p, n, 10 * SEC), 0, "%s", bus_errmsg());
	/* Over the limit on its own, the active segment stays: only it. */
	list_segs(dir, &sg);
	cr_assert_eq(sg.n, 1, "%d segments", sg.n);
	cr_assert_gt(sg.first[0], 1);
	cr_assert_gt(sg.size[0], 1);
	check_seg_contents(dir, &sg, n);
	log_expect(dir, seed, sg.first[0], n);
	removed = t_file_count(d.err, "'act': retention removed log segment");
	cr_assert_geq(removed, 3);
	/* ...and it is still the one being written. */
	publish_n(p, seed, n + 1, 10);
	cr_assert_eq(bus_pub_sync(p, n + 10, 10 * SEC), 0, "%s", bus_errmsg());
	list_segs(dir, &sg);
	cr_assert_eq(sg.n, 1);
	log_expect(dir, seed, sg.first[0], n + 10);
	cr_assert_eq(t_file_count(d.err, "'act': retention removed log segment"), removed);
	bus_pub_close(p);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
}

/* ------------------------------------------------------------------------ */
/* bus_pub_sync and the flusher's batching                                  */
/* ------------------------------------------------------------------------ */

Test(durable, pub_sync_with_fsync_always_returns_once_the_log_holds_the_event)
{
	struct bus_topic_opts o = { .ring_size = 64 << 10, .max_event = MAXEV,
				    .flags = BUS_TOPIC_DURABLE, .fsync = BUS_FSYNC_ALWAYS };
	struct bus_topic_opts vo = { .ring_size = 64 << 10 };
	uint64_t seed = t_rand(), n = t_scaled(300, 50), s;
	struct bus_event ev;
	struct bus_pub *p, *vp;
	struct bus_log *l;
	struct t_busd d;
	struct bus *b;
	char dir[700];
	int st;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	log_dir(dir, sizeof(dir), &d, "sync");
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "sync", &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, "vol", &vo), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "sync", &p), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "vol", &vp), 0, "%s", bus_errmsg());
	/* Not durable; not published yet. */
	publish_n(vp, seed, 1, 1);
	cr_assert_eq(bus_pub_sync(vp, 1, SEC), -EINVAL);
	cr_assert_eq(bus_pub_sync(p, 1, SEC), -EINVAL);

	/* One at a time: once sync returns, a reader of the files finds it. */
	cr_assert_eq(bus_log_open(dir, &l), 0, "%s", bus_errmsg());
	bus_log_follow(l, 1);
	for (s = 1; s <= n; s++) {
		publish_n(p, seed, s, 1);
		cr_assert_eq(bus_pub_sync(p, s, 5 * SEC), 0, "%s", bus_errmsg());
		cr_assert_eq(bus_log_next(l, &ev), 1, "event %llu synced but not in the log: %s",
			     (unsigned long long)s, bus_errmsg());
		cr_assert_eq(ev.seq, s);
		cr_assert_eq(t_check(ev.data, ev.len, seed, ev.seq), 0);
		if (s % 50 == 0) {
			struct bus_topic_info ti;

			cr_assert_geq(bus_stat(b, "sync", &ti, NULL, 0), 0, "%s", bus_errmsg());
			cr_assert_geq(ti.durable_seq, s + 1);
			cr_assert_geq(ti.flushed_seq, ti.durable_seq);
		}
	}
	/* busd stopped: sync gives up, saying why; resumed, it returns. */
	cr_assert_eq(kill(d.pid, SIGSTOP), 0);
	cr_assert_eq(waitpid(d.pid, &st, WUNTRACED), d.pid);
	cr_assert(WIFSTOPPED(st));
	publish_n(p, seed, s, 1);
	cr_assert_eq(bus_pub_sync(p, s, 300 * MS), -ETIMEDOUT);
	cr_assert_not_null(strstr(bus_errmsg(), "busd"), "%s", bus_errmsg());
	cr_assert_eq(bus_log_next(l, &ev), 0, "event %llu is in the log while busd is stopped",
		     (unsigned long long)ev.seq);
	cr_assert_eq(kill(d.pid, SIGCONT), 0);
	cr_assert_eq(bus_pub_sync(p, s, 5 * SEC), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_log_next(l, &ev), 1, "%s", bus_errmsg());
	cr_assert_eq(ev.seq, s);
	bus_log_close(l);
	bus_pub_close(p);
	bus_pub_close(vp);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
}

/* batch_bytes ends a linger early: a producer that fills the ring while the
 * flusher lingers must not wait out the linger. */
Test(durable, a_full_batch_is_written_without_waiting_out_the_linger)
{
	struct bus_topic_opts o = { .ring_size = 256 << 10, .max_event = MAXEV,
				    .flags = BUS_TOPIC_DURABLE, .fsync = BUS_FSYNC_NONE,
				    .linger_ns = 30 * SEC, .batch_bytes = 32 << 10 };
	uint64_t seed = t_rand(), n, t0;
	struct bus_pub *p;
	struct t_busd d;
	struct bus *b;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "linger", &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "linger", &p), 0, "%s", bus_errmsg());
	bus_pub_set_timeout(p, 10 * SEC);
	/* A few events: the flusher starts to linger over them. */
	publish_n(p, seed, 1, 10);
	t_nap_us(50000);
	/* Then four rings' worth, far more than a batch. */
	n = events_for_bytes(seed, 11, 1 << 20);
	t0 = t_now_ns();
	publish_n(p, seed, 11, n);
	cr_assert_lt(t_now_ns() - t0, 10 * SEC, "publishing took %.1f s",
		     (double)(t_now_ns() - t0) / 1e9);
	bus_pub_close(p);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
}

/* fsync interval: an event is durable at most fsync_interval_ns after it
 * was written, however quiet the topic is afterwards. */
Test(durable, interval_fsync_makes_an_event_durable_within_the_interval)
{
	const int64_t interval = 300 * MS;
	struct bus_topic_opts o = { .ring_size = 64 << 10, .max_event = MAXEV,
				    .flags = BUS_TOPIC_DURABLE, .fsync = BUS_FSYNC_INTERVAL,
				    .fsync_interval_ns = (uint64_t)interval };
	uint64_t seed = t_rand();
	struct bus_pub *p;
	struct t_busd d;
	struct bus *b;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "iv", &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "iv", &p), 0, "%s", bus_errmsg());
	for (uint64_t s = 1; s <= 3; s++) {
		uint64_t t0;

		publish_n(p, seed, s, 1);
		t0 = t_now_ns();
		cr_assert_eq(bus_pub_sync(p, s, 10 * SEC), 0, "%s", bus_errmsg());
		cr_assert_lt(t_now_ns() - t0, (uint64_t)(interval + 500 * MS),
			     "event %llu became durable after %.2f s; the interval is %.2f s",
			     (unsigned long long)s, (double)(t_now_ns() - t0) / 1e9,
			     (double)interval / 1e9);
	}
	bus_pub_close(p);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
}

/* A consumer reading old segments while retention removes the ones it has
 * not reached yet: what it lost is a gap report, then it goes on from the
 * oldest segment left, to the live events. Never an error, never a stall. */
Test(durable, a_consumer_in_the_log_while_retention_removes_segments_gets_a_gap)
{
	struct bus_topic_opts o = { .ring_size = 64 << 10, .max_event = MAXEV,
				    .flags = BUS_TOPIC_DURABLE, .fsync = BUS_FSYNC_NONE,
				    .batch_bytes = 16 << 10, .segment_bytes = 1 << 20,
				    .retain_bytes = 5ull << 19 };
	uint64_t seed = t_rand(), n1, n2, want, lost = 0;
	struct bus_event ev;
	struct bus_sub *s;
	struct bus_pub *p;
	struct t_busd d;
	struct segs sg;
	struct bus *b;
	char dir[700];
	int r, gaps = 0;

	n1 = events_for_bytes(seed, 1, 5 << 19);  /* 2.5 MiB: three segments, all kept */
	n2 = events_for_bytes(seed, n1 + 1, 4 << 20);
	cr_assert_eq(t_busd_start(&d, NULL), 0);
	log_dir(dir, sizeof(dir), &d, "rr");
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "rr", &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_attach(b, "rr", NULL, &s), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "rr", &p), 0, "%s", bus_errmsg());
	bus_pub_set_timeout(p, 10 * SEC);
	publish_n(p, seed, 1, n1);
	cr_assert_eq(bus_pub_sync(p, n1, 10 * SEC), 0, "%s", bus_errmsg());
	list_segs(dir, &sg);
	cr_assert_eq(sg.first[0], 1, "retention ran already: %d segments from %llu", sg.n,
		     (unsigned long long)sg.first[0]);
	/* Into the log, at the first event of the first segment. */
	expect_n(s, seed, 1, 1);
	/* Four more segments' worth: those after the first go too. */
	publish_n(p, seed, n1 + 1, n2);
	cr_assert_eq(bus_pub_sync(p, n1 + n2, 10 * SEC), 0, "%s", bus_errmsg());
	list_segs(dir, &sg);
	cr_assert_gt(sg.first[0], n1, "retention kept %llu", (unsigned long long)sg.first[0]);
	for (want = 2; want <= n1 + n2;) {
		r = next_ev(s, &ev);
		if (r == -ENOBUFS) {
			cr_assert_eq(ev.seq, want, "gap at %llu, expected at %llu",
				     (unsigned long long)ev.seq, (unsigned long long)want);
			cr_assert_gt(ev.lost, 0);
			want += ev.lost;
			lost += ev.lost;
			gaps++;
			continue;
		}
		cr_assert_eq(r, 1, "event %llu: next = %d (%s)", (unsigned long long)want, r,
			     bus_errmsg());
		cr_assert_eq(ev.seq, want);
		cr_assert_eq(t_check(ev.data, ev.len, seed, ev.seq), 0);
		want++;
	}
	cr_assert_geq(gaps, 1);
	cr_assert_leq(want + 0, n1 + n2 + 1);
	cr_assert_lt(lost, n1 + n2);
	publish_n(p, seed, n1 + n2 + 1, 5);
	expect_n(s, seed, n1 + n2 + 1, 5);
	expect_nothing(s);
	bus_sub_close(s);
	bus_pub_close(p);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
}
