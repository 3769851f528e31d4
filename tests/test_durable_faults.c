/* SPDX-License-Identifier: MIT */
/*
 * Description: durable topics under real faults, with a real busd: a full
 * disk (a small tmpfs mounted as busd's state directory), kill -9 of busd
 * while a producer writes at full speed, the last log segment truncated or
 * corrupted at random offsets (recovery keeps every complete chunk before
 * the damage and nothing after; the reader stops at the damage), and
 * hostile files: a read-only log directory, a file where a log directory
 * should be, a segment replaced by a symlink, a segment in a newer format.
 *
 * Mounting needs root (CI runs as root); where it is not permitted the test
 * is skipped, saying so. Every test that mounts first moves into a mount
 * namespace of its own (private propagation), so its mounts vanish with it
 * whatever happens; the suite's .fini unmounts them anyway.
 *
 * Children never use cr_assert; the test process forks only while it holds
 * no bus connection (see test_durable.c).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus.h"
#include "t_busd.h"
#include "t_log.h"
#include "t_mount.h"
#include "t_util.h"

#define MAXEV 512
#define SEC 1000000000ll
#define MS 1000000ll

/* ------------------------------------------------------------------------ */
/* Mounts, and a busd to stop before unmounting                             */
/* ------------------------------------------------------------------------ */

static struct t_busd *live;   /* killed by the .fini before it unmounts */

static void faults_fini(void)
{
	if (live && live->pid > 0)
		t_busd_kill(live);
	live = NULL;
	t_unmount_all();
	t_fini();
}

TestSuite(durable_faults, .init = t_init, .fini = faults_fini, .timeout = 120);

/* dir, read-only, in place. */
static void mount_readonly(const char *dir)
{
	if (mount(dir, dir, NULL, MS_BIND, NULL) < 0) {
		if (errno == EPERM)
			cr_skip_test("bind mount: EPERM (needs root)");
		cr_assert_fail("bind mount %s: %s", dir, strerror(errno));
	}
	remember_mount(dir);
	cr_assert_eq(mount(NULL, dir, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL), 0,
		     "remount %s read-only: %s", dir, strerror(errno));
}

/* ------------------------------------------------------------------------ */
/* Events and logs                                                          */
/* ------------------------------------------------------------------------ */

static struct bus *connect_to(const struct t_busd *d)
{
	struct bus *b;

	cr_assert_eq(bus_connect(d->dir, &b), 0, "%s", bus_errmsg());
	return b;
}

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

static uint64_t events_for_bytes(uint64_t seed, uint64_t first, uint64_t bytes)
{
	uint64_t n = 0, sum = 0;

	while (sum < bytes) {
		sum += t_rec_size(t_len_for(seed, first + n, 8, MAXEV));
		n++;
	}
	return n;
}

/* What is being tried, for the messages of log_expect_err(). */
static const char *doing = "";
static char doing_buf[256];

/* Read the log in dir: exactly [first, last], every payload intact; then
 * the end (want_err 0), or the error want_err with `msg` in bus_errmsg(). */
static void log_expect_err(const char *dir, uint64_t seed, uint64_t first, uint64_t last,
			   int want_err, const char *msg)
{
	struct bus_event ev;
	struct bus_log *l;
	int r;

	cr_assert_eq(bus_log_open(dir, &l), 0, "%s%s", doing, bus_errmsg());
	for (uint64_t want = first; want <= last; want++) {
		r = bus_log_next(l, &ev);
		cr_assert_eq(r, 1, "%slog event %llu: %d (%s)", doing, (unsigned long long)want, r,
			     bus_errmsg());
		cr_assert_eq(ev.seq, want, "%sgot %llu, expected %llu", doing,
			     (unsigned long long)ev.seq, (unsigned long long)want);
		cr_assert_eq(ev.type, (uint32_t)want, "%s", doing);
		cr_assert_eq(t_check(ev.data, ev.len, seed, ev.seq), 0, "%spayload of %llu", doing,
			     (unsigned long long)want);
	}
	r = bus_log_next(l, &ev);
	cr_assert_eq(r, want_err, "%safter event %llu: %d (%s), seq %llu", doing,
		     (unsigned long long)last, r, bus_errmsg(),
		     r == 1 ? (unsigned long long)ev.seq : 0ull);
	if (msg)
		cr_assert_not_null(strstr(bus_errmsg(), msg), "%s\"%s\" lacks \"%s\"", doing,
				   bus_errmsg(), msg);
	/* It stays stopped there. */
	if (want_err) {
		r = bus_log_next(l, &ev);
		cr_assert_eq(r, want_err, "%sasked again after the error: %d (%s), seq %llu",
			     doing, r, bus_errmsg(), r == 1 ? (unsigned long long)ev.seq : 0ull);
	}
	bus_log_close(l);
}

static void log_expect(const char *dir, uint64_t seed, uint64_t first, uint64_t last)
{
	log_expect_err(dir, seed, first, last, 0, NULL);
}

/* busd's directories inside the test's, by a name of our own (so that the
 * state directory can be a mount point before busd starts). */
static void busd_paths(struct t_busd *d, const char *tag)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "%s/%s.bus", t_dir(), tag);
	snprintf(d->shm, sizeof(d->shm), "%s/%s.shm", t_dir(), tag);
	snprintf(d->state, sizeof(d->state), "%s/%s.state", t_dir(), tag);
	snprintf(d->err, sizeof(d->err), "%s/%s.err", t_dir(), tag);
	cr_assert_eq(mkdir(d->shm, 0700), 0);
	cr_assert_eq(mkdir(d->state, 0700), 0);
}

/* Occurrences of needle in busd's stderr after byte `from`. */
static int err_count_from(const struct t_busd *d, size_t from, const char *needle)
{
	uint8_t *buf;
	size_t len;
	int n = 0;

	if (t_file_read(d->err, &buf, &len) < 0)
		return 0;
	if (from < len)
		for (const char *p = (const char *)buf + from; (p = strstr(p, needle));
		     p += strlen(needle))
			n++;
	free(buf);
	return n;
}

static size_t err_size(const struct t_busd *d)
{
	struct stat st;

	return stat(d->err, &st) == 0 ? (size_t)st.st_size : 0;
}

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

/* The first sequence numbers of the segments in a log directory, sorted. */
static int list_segs(const char *dir, uint64_t *first, int max)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(dp, "%s", dir);
	while ((e = readdir(dp))) {
		if (strlen(e->d_name) != 24 || strcmp(e->d_name + 20, ".log") ||
		    strspn(e->d_name, "0123456789") != 20)
			continue;
		cr_assert_lt(n, max);
		first[n++] = strtoull(e->d_name, NULL, 10);
	}
	closedir(dp);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && first[j - 1] > first[j]; j--) {
			uint64_t t = first[j];

			first[j] = first[j - 1];
			first[j - 1] = t;
		}
	return n;
}

/* ------------------------------------------------------------------------ */
/* A full disk                                                              */
/* ------------------------------------------------------------------------ */

Test(durable_faults, a_full_disk_degrades_the_topic_and_everything_resumes_when_space_returns)
{
	static struct t_busd d;
	struct bus_topic_opts o = { .ring_size = 64 << 10, .max_event = MAXEV,
				    .flags = BUS_TOPIC_DURABLE, .segment_bytes = 1 << 20 };
	uint64_t seed = t_rand(), last = 0, more = 2000, cap, t0, errors;
	struct bus_topic_info ti;
	const char *enospc = "'full': log write failed: No space left on device";
	char ballast[800], dir[800];
	struct bus_pub *p;
	struct bus *b;
	void *zero;
	int r = 0;

	private_mounts();
	busd_paths(&d, "full");
	/* 4 MiB, 1 MiB of it taken by a file we remove later. */
	mount_tmpfs(d.state, "size=4m,mode=0700");
	snprintf(ballast, sizeof(ballast), "%s/ballast", d.state);
	zero = calloc(1, 1 << 20);
	cr_assert_eq(t_file_write(ballast, zero, 1 << 20), 0);
	free(zero);
	/* busd's own log file would fill the disk too: stderr only. */
	cr_assert_eq(t_busd_restart(&d, "--log-file", "-", NULL), 0);
	live = &d;
	snprintf(dir, sizeof(dir), "%s/log/full", d.state);
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "full", &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "full", &p), 0, "%s", bus_errmsg());
	bus_pub_set_timeout(p, 300 * MS);

	/* Until the flusher cannot write: the disk is full. A flusher that is
	 * merely slow (sanitizers) is waited for again. */
	cap = events_for_bytes(seed, 1, 8 << 20);
	t0 = t_now_ns();
	for (uint64_t s = 1; s <= cap;) {
		uint8_t buf[MAXEV];
		uint32_t len = t_len_for(seed, s, 8, MAXEV);

		t_fill(buf, len, seed, s);
		r = bus_pub_publish(p, (uint32_t)s, buf, len, 0);
		if (r == 0) {
			last = s++;
			continue;
		}
		if (r != -ETIMEDOUT || strstr(bus_errmsg(), "log writes failing") ||
		    t_now_ns() - t0 > 60 * SEC)
			break;
	}
	cr_assert_eq(r, -ETIMEDOUT, "publish %llu: %d (%s)", (unsigned long long)last + 1, r,
		     bus_errmsg());
	cr_assert_not_null(strstr(bus_errmsg(), "log writes failing"), "%s", bus_errmsg());
	cr_assert_not_null(strstr(bus_errmsg(), "full disk"), "%s", bus_errmsg());
	cr_assert_gt(last, events_for_bytes(seed, 1, 1 << 20), "only %llu events fit",
		     (unsigned long long)last);
	cr_assert_eq(bus_pub_sync(p, last, 300 * MS), -ETIMEDOUT);
	cr_assert_not_null(strstr(bus_errmsg(), "log writes failing"), "%s", bus_errmsg());
	cr_assert_geq(bus_stat(b, "full", &ti, NULL, 0), 0, "%s", bus_errmsg());
	cr_assert_eq(ti.degraded, 1);
	cr_assert_geq(ti.flush_errors, 1);
	cr_assert_leq(ti.flushed_seq, last);
	cr_assert_leq(ti.durable_seq, ti.flushed_seq);
	errors = ti.flush_errors;

	/* It stays degraded for a while (busd retries every second), and says
	 * so once. */
	t0 = t_now_ns();
	while (t_now_ns() - t0 < 2500 * MS) {
		uint8_t buf[MAXEV];
		uint32_t len = t_len_for(seed, last + 1, 8, MAXEV);

		t_fill(buf, len, seed, last + 1);
		cr_assert_eq(bus_pub_publish(p, (uint32_t)(last + 1), buf, len, 0), -ETIMEDOUT);
	}
	cr_assert_eq(t_file_count(d.err, enospc), 1, "busd said \"%s\" %d times", enospc,
		     t_file_count(d.err, enospc));
	cr_assert_eq(t_file_count(d.err, "no longer degraded"), 0);
	cr_assert_geq(bus_stat(b, "full", &ti, NULL, 0), 0, "%s", bus_errmsg());
	cr_assert_eq(ti.degraded, 1);
	cr_assert_gt(ti.flush_errors, errors, "busd did not retry");

	/* Space again: the flusher catches up, the producer goes on. */
	cr_assert_eq(unlink(ballast), 0);
	cr_assert_eq(t_file_wait_count(d.err, "'full': log writes succeed again; the topic is no "
				       "longer degraded", 1, 5000), 1);
	bus_pub_set_timeout(p, 10 * SEC);
	publish_n(p, seed, last + 1, more);
	cr_assert_eq(bus_pub_sync(p, last + more, 10 * SEC), 0, "%s", bus_errmsg());
	cr_assert_geq(bus_stat(b, "full", &ti, NULL, 0), 0, "%s", bus_errmsg());
	cr_assert_eq(ti.degraded, 0);
	cr_assert_eq(ti.flushed_seq, last + more + 1);
	cr_assert_eq(ti.durable_seq, last + more + 1);
	bus_pub_close(p);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
	live = NULL;
	cr_assert_eq(t_file_count(d.err, enospc), 1);
	cr_assert_eq(t_file_count(d.err, "no longer degraded"), 1);
	/* Nothing flushed before the disk filled was damaged; nothing is
	 * missing or doubled where it failed. */
	log_expect(dir, seed, 1, last + more);
	unmount(d.state);
}

/* ------------------------------------------------------------------------ */
/* kill -9 busd while the producer writes at full speed                     */
/* ------------------------------------------------------------------------ */

#define KILLS 3
#define SYNC_EVERY 256

struct k9_ctl {
	char dir[600];
	uint64_t seed, total;
	_Atomic uint64_t published;   /* the producer's last published */
	_Atomic uint64_t synced;      /* ... and last bus_pub_sync()ed */
};

static int k9_producer(void *arg)
{
	struct k9_ctl *c = arg;
	uint8_t buf[MAXEV];
	struct bus_pub *p;
	struct bus *b;
	int r;

	if ((r = bus_connect(c->dir, &b)) < 0)
		return t_fail("producer: bus_connect = %d (%s)", r, bus_errmsg());
	if ((r = bus_pub_attach(b, "k9", &p)) < 0)
		return t_fail("producer: bus_pub_attach = %d (%s)", r, bus_errmsg());
	/* While busd is down the ring fills and the producer waits. */
	bus_pub_set_timeout(p, 30 * SEC);
	for (uint64_t s = 1; s <= c->total; s++) {
		uint32_t len = t_len_for(c->seed, s, 8, MAXEV);

		t_fill(buf, len, c->seed, s);
		if ((r = bus_pub_publish(p, (uint32_t)s, buf, len, 0)) < 0)
			return t_fail("producer: publish %llu = %d (%s)", (unsigned long long)s, r,
				      bus_errmsg());
		atomic_store(&c->published, s);
		if (s % SYNC_EVERY == 0 || s == c->total) {
			if ((r = bus_pub_sync(p, s, 30 * SEC)) < 0)
				return t_fail("producer: sync %llu = %d (%s)", (unsigned long long)s,
					      r, bus_errmsg());
			atomic_store(&c->synced, s);
		}
	}
	bus_pub_close(p);
	bus_disconnect(b);
	return 0;
}

/* The log right after a kill: events 1..E without a gap, E >= synced. A
 * write the kill cut short may end it (the reader follows, so a short last
 * chunk is "not yet"). */
static uint64_t log_prefix(const char *dir, uint64_t seed)
{
	struct bus_event ev;
	struct bus_log *l;
	uint64_t want = 1;
	int r;

	cr_assert_eq(bus_log_open(dir, &l), 0, "%s", bus_errmsg());
	bus_log_follow(l, 1);
	while ((r = bus_log_next(l, &ev)) == 1) {
		cr_assert_eq(ev.seq, want);
		cr_assert_eq(t_check(ev.data, ev.len, seed, ev.seq), 0, "payload of %llu",
			     (unsigned long long)want);
		want++;
	}
	cr_assert_eq(r, 0, "after event %llu: %d (%s)", (unsigned long long)want - 1, r,
		     bus_errmsg());
	bus_log_close(l);
	return want - 1;
}

Test(durable_faults, kill_9_busd_under_load_loses_nothing_the_producer_saw_synced)
{
	static struct t_busd d;
	struct bus_topic_opts o = { .ring_size = 64 << 10, .max_event = MAXEV,
				    .flags = BUS_TOPIC_DURABLE, .fsync = BUS_FSYNC_ALWAYS,
				    .segment_bytes = 1 << 20 };
	struct k9_ctl *c = t_shared(sizeof(*c));
	char dir[700];
	struct bus *b;
	pid_t prod;

	c->seed = t_rand();
	c->total = events_for_bytes(c->seed, 1, t_scaled(12 << 20, 3 << 20));
	cr_assert_eq(t_busd_start(&d, NULL), 0);
	live = &d;
	snprintf(c->dir, sizeof(c->dir), "%s", d.dir);
	snprintf(dir, sizeof(dir), "%s/log/k9", d.state);
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "k9", &o), 0, "%s", bus_errmsg());
	bus_disconnect(b);

	prod = t_fork(k9_producer, c);
	for (int k = 1; k <= KILLS; k++) {
		uint64_t at = c->total * (uint64_t)k / (KILLS + 1), synced, e;
		uint64_t end = t_now_ns() + 60 * SEC;

		while (atomic_load(&c->published) < at && t_now_ns() < end)
			t_nap_us(200);
		cr_assert_geq(atomic_load(&c->published), at, "the producer is stuck at %llu",
			      (unsigned long long)atomic_load(&c->published));
		synced = atomic_load(&c->synced);
		t_busd_kill(&d);
		e = log_prefix(dir, c->seed);
		cr_assert_geq(e, synced, "kill %d: the producer synced %llu, the log ends at %llu",
			      k, (unsigned long long)synced, (unsigned long long)e);
		cr_assert_eq(t_busd_restart(&d, NULL), 0);
	}
	cr_assert_eq(t_wait_pid(prod), 0);
	cr_assert_eq(atomic_load(&c->synced), c->total);
	cr_assert_eq(t_busd_stop(&d), 0);
	live = NULL;
	log_expect(dir, c->seed, 1, c->total);
	cr_assert_eq(t_file_count(d.err, "are missing from the log"), 0);
}

/* ------------------------------------------------------------------------ */
/* The last segment damaged                                                 */
/* ------------------------------------------------------------------------ */

#define MAXCH 8192

/* A stopped busd and a topic "dmg" whose log is two segments; a pristine
 * copy of the last one and of its index, and its chunks as read from the
 * chunk headers. */
struct dmg {
	struct t_busd d;
	char dir[700], seg[800], idx[800], name[32];
	uint8_t *log, *ix;
	size_t len, ixlen;
	struct t_chunk ch[MAXCH];
	int nch;
	uint64_t seed, n, first, oldest;
};

static void dmg_setup(struct dmg *m, uint64_t bytes)
{
	struct bus_topic_opts o = { .ring_size = 16 << 10, .max_event = MAXEV,
				    .flags = BUS_TOPIC_DURABLE, .fsync = BUS_FSYNC_NONE,
				    .batch_bytes = 4 << 10, .segment_bytes = 1 << 20 };
	struct bus_topic_info ti;
	uint64_t segs[8];
	struct bus_pub *p;
	struct bus *b;
	int ns;

	m->seed = t_rand();
	m->n = events_for_bytes(m->seed, 1, bytes);
	cr_assert_eq(t_busd_start(&m->d, NULL), 0);
	live = &m->d;
	snprintf(m->dir, sizeof(m->dir), "%s/log/dmg", m->d.state);
	b = connect_to(&m->d);
	cr_assert_eq(bus_create(b, "dmg", &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "dmg", &p), 0, "%s", bus_errmsg());
	bus_pub_set_timeout(p, 10 * SEC);
	publish_n(p, m->seed, 1, m->n);
	cr_assert_eq(bus_pub_sync(p, m->n, 10 * SEC), 0, "%s", bus_errmsg());
	cr_assert_geq(bus_stat(b, "dmg", &ti, NULL, 0), 0, "%s", bus_errmsg());
	m->oldest = ti.oldest_seq;
	bus_pub_close(p);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&m->d), 0);

	ns = list_segs(m->dir, segs, 8);
	cr_assert_geq(ns, 1);
	m->first = segs[ns - 1];
	t_seg_name(m->name, sizeof(m->name), m->first);
	snprintf(m->seg, sizeof(m->seg), "%s/%s", m->dir, m->name);
	snprintf(m->idx, sizeof(m->idx), "%s/%020llu.idx", m->dir, (unsigned long long)m->first);
	cr_assert_eq(t_file_read(m->seg, &m->log, &m->len), 0);
	cr_assert_eq(t_file_read(m->idx, &m->ix, &m->ixlen), 0);
	m->nch = t_log_chunks(m->log, m->len, m->ch, MAXCH);
	cr_assert_gt(m->nch, 0);
	cr_assert_leq(m->nch, MAXCH);
	cr_assert_eq(m->ch[0].first_seq, m->first);
	cr_assert_eq(m->ch[m->nch - 1].end, m->len);
	cr_assert_eq(m->ch[m->nch - 1].first_seq + m->ch[m->nch - 1].count, m->n + 1);
}

static void dmg_free(struct dmg *m)
{
	free(m->log);
	free(m->ix);
}

/* The pristine last segment and index back; and unless keep_shm, the
 * shared memory gone (a reboot: busd recreates the topic from the log, so
 * what recovery kept is exactly what the log holds). */
static void dmg_restore(struct dmg *m, int keep_shm)
{
	char corrupt[900];

	cr_assert_eq(t_file_write(m->seg, m->log, m->len), 0);
	cr_assert_eq(t_file_write(m->idx, m->ix, m->ixlen), 0);
	snprintf(corrupt, sizeof(corrupt), "%s.corrupt", m->seg);
	unlink(corrupt);
	if (!keep_shm)
		rm_prefix(m->d.shm, "bus-");
}

/* The chunk that byte x of the segment falls in. */
static int chunk_at(const struct dmg *m, uint64_t x)
{
	for (int j = 0; j < m->nch; j++)
		if (x >= m->ch[j].off && x < m->ch[j].end)
			return j;
	cr_assert_fail("offset %llu is in no chunk", (unsigned long long)x);
	return -1;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

Test(durable_faults, recovery_keeps_every_complete_chunk_before_the_damage_and_nothing_after)
{
	static struct dmg m;
	uint64_t rng = 0x9e3779b97f4a7c15ull;  /* fixed: the same cases every run */
	int cases = (int)t_scaled(200, 20);

	dmg_setup(&m, 3 << 19);  /* 1.5 MiB: the last segment has dozens of chunks */
	cr_assert_geq(m.nch, 20, "%d chunks", m.nch);
	for (int c = 0; c < cases; c++) {
		uint64_t x = 64 + xorshift(&rng) % (m.len - 64), k, keep;
		int flip = c % 2, j = chunk_at(&m, x), clean;
		char what[200], msg[300], at[100];
		struct bus_topic_info ti;
		struct stat st;
		struct bus *b;
		size_t from;

		dmg_restore(&m, 0);
		keep = m.ch[j].off;
		k = m.ch[j].first_seq - 1;
		clean = !flip && x == keep;  /* cut exactly between two chunks */
		if (flip) {
			uint8_t *bad = malloc(m.len);

			cr_assert_not_null(bad);
			memcpy(bad, m.log, m.len);
			bad[x] ^= (uint8_t)(1 + xorshift(&rng) % 255);
			cr_assert_eq(t_file_write(m.seg, bad, m.len), 0);
			free(bad);
			snprintf(what, sizeof(what), "case %d: byte %llu flipped (chunk %d at %llu)", c,
				 (unsigned long long)x, j, (unsigned long long)keep);
		} else {
			cr_assert_eq(truncate(m.seg, (off_t)x), 0);
			snprintf(what, sizeof(what), "case %d: cut at %llu (chunk %d at %llu)", c,
				 (unsigned long long)x, j, (unsigned long long)keep);
		}

		snprintf(doing_buf, sizeof(doing_buf), "%s: ", what);
		doing = doing_buf;
		/* The reader, before busd touches it: every event up to the
		 * damaged chunk, then the damage, named; never an event of it. */
		snprintf(at, sizeof(at), "%s: corrupt at offset %llu", m.name,
			 (unsigned long long)keep);
		log_expect_err(m.dir, m.seed, 1, k, clean ? 0 : -EBADMSG, clean ? NULL : at);

		/* Recovery: cut back to the last whole chunk, said so. */
		from = err_size(&m.d);
		cr_assert_eq(t_busd_restart(&m.d, NULL), 0, "%s", what);
		snprintf(msg, sizeof(msg), " at offset %llu; dropping the last %llu bytes (events "
			 "from %llu on were not in the log)", (unsigned long long)keep,
			 (unsigned long long)((flip ? m.len : x) - keep), (unsigned long long)k + 1);
		cr_assert_eq(err_count_from(&m.d, from, msg), clean ? 0 : 1, "%s: busd did not say "
			     "\"%s\"", what, msg);
		cr_assert_eq(stat(m.seg, &st), 0);
		cr_assert_eq((uint64_t)st.st_size, keep, "%s: %llu bytes left", what,
			     (unsigned long long)st.st_size);
		log_expect(m.dir, m.seed, 1, k);
		/* ...and the topic is back where its log ends. */
		b = connect_to(&m.d);
		cr_assert_geq(bus_stat(b, "dmg", &ti, NULL, 0), 0, "%s: %s", what, bus_errmsg());
		cr_assert_eq(ti.first_seq, k + 1, "%s", what);
		cr_assert_eq(ti.next_seq, k + 1, "%s", what);
		if (c % 25 == 0) {  /* now and then: it goes on from there */
			struct bus_pub *p;

			cr_assert_eq(bus_pub_attach(b, "dmg", &p), 0, "%s", bus_errmsg());
			cr_assert_eq(bus_pub_next_seq(p), k + 1);
			publish_n(p, m.seed, k + 1, 20);
			cr_assert_eq(bus_pub_sync(p, k + 20, 10 * SEC), 0, "%s", bus_errmsg());
			bus_pub_close(p);
			log_expect(m.dir, m.seed, 1, k + 20);
		}
		bus_disconnect(b);
		cr_assert_eq(t_busd_stop(&m.d), 0, "%s", what);
	}
	doing = "";
	live = NULL;
	dmg_free(&m);
}

/* A lost tail that the ring still holds: after a busd restart (the shared
 * segment survived), recovery cuts the log back and the flusher writes the
 * lost events again from the ring. */
Test(durable_faults, recovery_rewrites_a_lost_tail_that_the_ring_still_holds)
{
	static struct dmg m;
	struct bus_log_info li;
	struct bus_topic_info ti;
	struct bus_log *l;
	struct bus *b;
	uint64_t end, x;
	int j;
	uint8_t *bad;
	char msg[300];

	dmg_setup(&m, 3 << 19);
	for (j = 0; j < m.nch && m.ch[j].first_seq < m.oldest; j++)
		;
	cr_assert_lt(j, m.nch, "no chunk is wholly in the ring (it holds %llu..)",
		     (unsigned long long)m.oldest);
	dmg_restore(&m, 1);
	bad = malloc(m.len);
	cr_assert_not_null(bad);
	memcpy(bad, m.log, m.len);
	x = m.ch[j].off + 64 + (m.ch[j].end - m.ch[j].off - 64) / 2;
	bad[x] ^= 0x40;
	cr_assert_eq(t_file_write(m.seg, bad, m.len), 0);
	free(bad);

	cr_assert_eq(t_busd_restart(&m.d, NULL), 0);
	snprintf(msg, sizeof(msg), "log segment %s: CRC mismatch at offset %llu; dropping the last "
		 "%llu bytes (events from %llu on were not in the log)", m.name,
		 (unsigned long long)m.ch[j].off, (unsigned long long)(m.len - m.ch[j].off),
		 (unsigned long long)m.ch[j].first_seq);
	cr_assert_eq(t_file_count(m.d.err, msg), 1, "busd did not say \"%s\"", msg);
	/* The flusher writes them again. */
	end = t_now_ns() + 10 * SEC;
	do {
		cr_assert_eq(bus_log_open(m.dir, &l), 0, "%s", bus_errmsg());
		cr_assert_eq(bus_log_info(l, &li), 0, "%s", bus_errmsg());
		bus_log_close(l);
		if (li.next_seq == m.n + 1)
			break;
		t_nap_us(10000);
	} while (t_now_ns() < end);
	cr_assert_eq(li.next_seq, m.n + 1);
	log_expect(m.dir, m.seed, 1, m.n);
	cr_assert_eq(t_file_count(m.d.err, "are missing from the log"), 0);
	b = connect_to(&m.d);
	cr_assert_geq(bus_stat(b, "dmg", &ti, NULL, 0), 0, "%s", bus_errmsg());
	cr_assert_eq(ti.first_seq, 1);
	cr_assert_eq(ti.next_seq, m.n + 1);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&m.d), 0);
	live = NULL;
	dmg_free(&m);
}

/* The last segment cut inside its file header (a crash while rolling),
 * then a reboot: the torn segment is dropped, the topic starts again where
 * the intact log ends, and goes on. */
Test(durable_faults, a_segment_cut_inside_its_file_header_is_dropped_and_the_log_goes_on)
{
	static struct dmg m;
	struct bus_topic_info ti;
	struct bus_pub *p;
	struct bus *b;
	uint64_t k;
	char msg[300];

	dmg_setup(&m, 3 << 19);
	cr_assert_gt(m.first, 1, "one segment only");
	k = m.first - 1;  /* the end of the intact segment before */
	dmg_restore(&m, 0);
	cr_assert_eq(truncate(m.seg, 30), 0);
	snprintf(msg, sizeof(msg), "%s: corrupt at offset 0", m.name);
	log_expect_err(m.dir, m.seed, 1, k, -EBADMSG, msg);

	cr_assert_eq(t_busd_restart(&m.d, NULL), 0);
	b = connect_to(&m.d);
	cr_assert_geq(bus_stat(b, "dmg", &ti, NULL, 0), 0, "%s", bus_errmsg());
	cr_assert_eq(ti.first_seq, k + 1, "the ring starts at %llu, the log ends at %llu",
		     (unsigned long long)ti.first_seq, (unsigned long long)k);
	cr_assert_eq(ti.next_seq, k + 1);
	cr_assert_eq(bus_pub_attach(b, "dmg", &p), 0, "%s", bus_errmsg());
	bus_pub_set_timeout(p, 5 * SEC);
	cr_assert_eq(bus_pub_next_seq(p), k + 1);
	publish_n(p, m.seed, k + 1, 20);
	cr_assert_eq(bus_pub_sync(p, k + 20, 5 * SEC), 0, "%s", bus_errmsg());
	bus_pub_close(p);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&m.d), 0);
	live = NULL;
	log_expect(m.dir, m.seed, 1, k + 20);
	dmg_free(&m);
}

/* The last segment with a bad file header (its magic), damaged. */
static uint8_t *bad_magic(struct dmg *m)
{
	uint8_t *bad = malloc(m->len);

	cr_assert_not_null(bad);
	memcpy(bad, m->log, m->len);
	bad[1] ^= 0x20;
	cr_assert_eq(t_file_write(m->seg, bad, m->len), 0);
	return bad;
}

/* ...after a busd restart (the shared segment survived): set aside byte
 * for byte as NAME.corrupt; the log goes on after what the ring holds,
 * and readers see the events it lost as a gap. */
Test(durable_faults, a_segment_with_a_bad_file_header_is_set_aside_and_the_log_goes_on)
{
	static struct dmg m;
	struct bus_sub *s;
	struct bus_event ev;
	struct bus_pub *p;
	struct bus_log *l;
	struct bus *b;
	uint64_t k;
	uint8_t *bad, *kept;
	size_t len;
	char corrupt[900], msg[300];
	int r;

	dmg_setup(&m, 3 << 19);
	cr_assert_gt(m.first, 1, "one segment only");
	cr_assert_gt(m.oldest, m.first, "the ring still holds the whole last segment");
	k = m.first - 1;
	dmg_restore(&m, 1);
	bad = bad_magic(&m);
	snprintf(msg, sizeof(msg), "%s: corrupt at offset 0", m.name);
	log_expect_err(m.dir, m.seed, 1, k, -EBADMSG, msg);

	cr_assert_eq(t_busd_restart(&m.d, NULL), 0);
	snprintf(msg, sizeof(msg), "log segment %s has a bad file header; renamed to %s.corrupt",
		 m.name, m.name);
	cr_assert_eq(t_file_count(m.d.err, msg), 1, "busd did not say \"%s\"", msg);
	snprintf(msg, sizeof(msg), "events %llu..%llu are missing from the log",
		 (unsigned long long)k + 1, (unsigned long long)m.n);
	cr_assert_eq(t_file_count(m.d.err, msg), 1, "busd did not say \"%s\"", msg);
	snprintf(corrupt, sizeof(corrupt), "%s.corrupt", m.seg);
	cr_assert_eq(t_file_read(corrupt, &kept, &len), 0, "%s", corrupt);
	cr_assert_eq(len, m.len);
	cr_assert_eq(memcmp(kept, bad, len), 0);
	free(kept);
	free(bad);

	b = connect_to(&m.d);
	cr_assert_eq(bus_pub_attach(b, "dmg", &p), 0, "%s", bus_errmsg());
	bus_pub_set_timeout(p, 5 * SEC);
	cr_assert_eq(bus_pub_next_seq(p), m.n + 1);
	publish_n(p, m.seed, m.n + 1, 20);
	cr_assert_eq(bus_pub_sync(p, m.n + 20, 5 * SEC), 0, "%s", bus_errmsg());
	/* A reader of the files, and a consumer from the oldest: 1..k, the
	 * set-aside events as a gap, then on. */
	cr_assert_eq(bus_log_open(m.dir, &l), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_attach(b, "dmg", NULL, &s), 0, "%s", bus_errmsg());
	for (uint64_t want = 1; want <= m.n + 20; want++) {
		if (want == k + 1) {
			r = bus_log_next(l, &ev);
			cr_assert_eq(r, -ENOBUFS, "log after %llu: %d (%s)", (unsigned long long)k, r,
				     bus_errmsg());
			cr_assert_eq(ev.seq, k + 1);
			cr_assert_eq(ev.lost, m.n - k);
			r = bus_sub_next(s, &ev);
			cr_assert_eq(r, -ENOBUFS, "consumer after %llu: %d (%s)", (unsigned long long)k,
				     r, bus_errmsg());
			cr_assert_eq(ev.seq, k + 1);
			cr_assert_eq(ev.lost, m.n - k);
			want = m.n + 1;
		}
		r = bus_log_next(l, &ev);
		cr_assert_eq(r, 1, "log event %llu: %d (%s)", (unsigned long long)want, r, bus_errmsg());
		cr_assert_eq(ev.seq, want);
		cr_assert_eq(t_check(ev.data, ev.len, m.seed, ev.seq), 0);
		r = bus_sub_next(s, &ev);
		cr_assert_eq(r, 1, "consumer event %llu: %d (%s)", (unsigned long long)want, r,
			     bus_errmsg());
		cr_assert_eq(ev.seq, want);
		cr_assert_eq(t_check(ev.data, ev.len, m.seed, ev.seq), 0);
	}
	cr_assert_eq(bus_log_next(l, &ev), 0);
	cr_assert_eq(bus_sub_next(s, &ev), 0);
	bus_log_close(l);
	bus_sub_close(s);
	bus_pub_close(p);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&m.d), 0);
	live = NULL;
	dmg_free(&m);
}

/* ...after a reboot: busd cannot tell where the log ends, so it does not
 * recreate the topic (which could reuse sequence numbers), says why, and
 * touches nothing. */
Test(durable_faults, after_a_reboot_a_log_with_a_bad_last_header_is_not_recreated_or_touched)
{
	static struct dmg m;
	struct bus_topic_info ti;
	struct bus *b;
	uint8_t *bad, *now;
	size_t len;
	char msg[1100];

	dmg_setup(&m, 3 << 19);
	cr_assert_gt(m.first, 1, "one segment only");
	dmg_restore(&m, 0);
	bad = bad_magic(&m);
	cr_assert_eq(t_busd_restart(&m.d, NULL), 0);
	snprintf(msg, sizeof(msg), "not recreating durable topic 'dmg': its log cannot be read: "
		 "log %s/%s", m.dir, m.name);
	cr_assert_eq(t_file_count(m.d.err, msg), 1, "busd did not say \"%s\"", msg);
	b = connect_to(&m.d);
	cr_assert_eq(bus_stat(b, "dmg", &ti, NULL, 0), -ENOENT);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&m.d), 0);
	live = NULL;
	cr_assert_eq(t_file_read(m.seg, &now, &len), 0);
	cr_assert_eq(len, m.len);
	cr_assert_eq(memcmp(now, bad, len), 0);
	free(now);
	cr_assert_eq(t_file_read(m.idx, &now, &len), 0);
	cr_assert_eq(len, m.ixlen);
	cr_assert_eq(memcmp(now, m.ix, len), 0);
	free(now);
	free(bad);
	dmg_free(&m);
}

/* A last segment whose file header does not verify (it is the segment
 * before it, with the real one's chunks after): the reader reports it and
 * stays stopped there, however often it is asked; it never reads on at
 * some offset of a file it could not verify. */
Test(durable_faults, the_reader_stays_stopped_at_a_segment_whose_header_fails)
{
	static struct dmg m;
	uint64_t segs[8];
	char prev[800], msg[100];
	uint8_t *a, *bad;
	size_t alen;

	dmg_setup(&m, 3 << 19);
	live = NULL;
	cr_assert_eq(list_segs(m.dir, segs, 8), 2);
	snprintf(prev, sizeof(prev), "%s/%020llu.log", m.dir, (unsigned long long)segs[0]);
	cr_assert_eq(t_file_read(prev, &a, &alen), 0);
	bad = malloc(alen + m.len - 64);
	cr_assert_not_null(bad);
	memcpy(bad, a, alen);
	memcpy(bad + alen, m.log + 64, m.len - 64);
	cr_assert_eq(t_file_write(m.seg, bad, alen + m.len - 64), 0);
	snprintf(msg, sizeof(msg), "%s: corrupt at offset 0: bad file header", m.name);
	log_expect_err(m.dir, m.seed, 1, m.first - 1, -EBADMSG, msg);
	free(a);
	free(bad);
	dmg_free(&m);
}

/* ------------------------------------------------------------------------ */
/* Hostile files                                                            */
/* ------------------------------------------------------------------------ */

/* Publish until the producer gives up (the flusher does not move): the
 * error, and how many went in. */
static int publish_until_stuck(struct bus_pub *p, uint64_t seed, uint64_t first, uint64_t *n)
{
	uint8_t buf[MAXEV];
	int r = 0;

	bus_pub_set_timeout(p, 300 * MS);
	for (*n = 0; *n < 100000; (*n)++) {
		uint64_t s = first + *n;
		uint32_t len = t_len_for(seed, s, 8, MAXEV);

		t_fill(buf, len, seed, s);
		if ((r = bus_pub_publish(p, (uint32_t)s, buf, len, 0)) < 0)
			break;
	}
	return r;
}

Test(durable_faults, a_read_only_log_directory_is_reported_and_left_alone)
{
	static struct dmg m;
	struct bus_topic_opts o = { .flags = BUS_TOPIC_DURABLE };
	struct bus_topic_info ti;
	char logroot[700], msg[300];
	struct bus_pub *p;
	struct bus *b;
	uint8_t *now;
	size_t len;
	int files;

	private_mounts();
	dmg_setup(&m, 1 << 19);
	mount_readonly(m.dir);
	cr_assert_eq(t_busd_restart(&m.d, NULL), 0);
	snprintf(msg, sizeof(msg), "'dmg': cannot open log segment %s: Read-only file system",
		 m.name);
	cr_assert_eq(t_file_count(m.d.err, msg), 1, "busd did not say \"%s\"", msg);
	b = connect_to(&m.d);
	cr_assert_eq(bus_pub_attach(b, "dmg", &p), 0, "%s", bus_errmsg());
	publish_n(p, m.seed, m.n + 1, 10);  /* room in the ring: fine */
	t_nap_us(100000);
	cr_assert_eq(t_file_read(m.seg, &now, &len), 0);
	cr_assert_eq(len, m.len);
	cr_assert_eq(memcmp(now, m.log, len), 0);
	free(now);
	bus_pub_close(p);

	/* A new durable topic cannot get a log: refused, nothing left. */
	snprintf(logroot, sizeof(logroot), "%s/log", m.d.state);
	mount_readonly(logroot);
	files = t_count_files(m.d.shm, "");
	cr_assert_eq(bus_create(b, "fresh", &o), -EROFS, "%s", bus_errmsg());
	cr_assert_not_null(strstr(bus_errmsg(), "cannot create its log"), "%s", bus_errmsg());
	cr_assert_eq(bus_stat(b, "fresh", &ti, NULL, 0), -ENOENT);
	cr_assert_eq(t_count_files(m.d.shm, ""), files);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&m.d), 0);
	unmount(logroot);
	unmount(m.dir);

	/* Writable again: the next busd flushes what the ring kept. */
	cr_assert_eq(t_busd_restart(&m.d, NULL), 0);
	b = connect_to(&m.d);
	cr_assert_eq(bus_pub_attach(b, "dmg", &p), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_sync(p, m.n + 10, 5 * SEC), 0, "%s", bus_errmsg());
	bus_pub_close(p);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&m.d), 0);
	live = NULL;
	log_expect(m.dir, m.seed, 1, m.n + 10);
	dmg_free(&m);
}

Test(durable_faults, a_file_where_the_log_directory_should_be_is_refused_and_kept)
{
	static struct t_busd d;
	struct bus_topic_opts o = { .flags = BUS_TOPIC_DURABLE };
	const char text[] = "not a log directory\n";
	struct bus_topic_info ti;
	char path[800];
	struct bus *b;
	uint8_t *buf;
	size_t len;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	live = &d;
	snprintf(path, sizeof(path), "%s/log", d.state);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/log/x", d.state);
	cr_assert_eq(t_file_write(path, text, sizeof(text) - 1), 0);
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "x", &o), -ENOTDIR, "%s", bus_errmsg());
	cr_assert_not_null(strstr(bus_errmsg(), "cannot create its log"), "%s", bus_errmsg());
	cr_assert_eq(bus_stat(b, "x", &ti, NULL, 0), -ENOENT);
	cr_assert_eq(t_file_read(path, &buf, &len), 0);
	cr_assert_eq(len, sizeof(text) - 1);
	cr_assert_eq(memcmp(buf, text, len), 0);
	free(buf);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
	live = NULL;
}

/* A reboot (the shared memory gone) with a last segment busd cannot read:
 * the topic is not recreated (it could reuse sequence numbers), busd says
 * why, and the segment is not touched. */
static void reboot_not_recreated(struct dmg *m)
{
	struct bus_topic_info ti;
	struct bus *b;
	size_t from = err_size(&m->d);
	char msg[200];

	cr_assert_geq(rm_prefix(m->d.shm, "bus-"), 2);
	cr_assert_eq(t_busd_restart(&m->d, NULL), 0);
	live = &m->d;
	snprintf(msg, sizeof(msg), "not recreating durable topic 'dmg': its log cannot be read");
	cr_assert_eq(err_count_from(&m->d, from, msg), 1, "busd did not say \"%s\"", msg);
	b = connect_to(&m->d);
	cr_assert_eq(bus_stat(b, "dmg", &ti, NULL, 0), -ENOENT);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&m->d), 0);
	live = NULL;
}

Test(durable_faults, a_segment_replaced_by_a_symlink_is_not_followed)
{
	static struct dmg m;
	char target[800], link[800], msg[300];
	struct stat st;
	struct bus_pub *p;
	struct bus *b;
	uint8_t *now;
	size_t len;
	ssize_t n;

	dmg_setup(&m, 3 << 19);
	cr_assert_gt(m.first, 1, "one segment only");
	/* The last segment now lives elsewhere; a symlink in its place. */
	snprintf(target, sizeof(target), "%s/elsewhere.log", t_dir());
	cr_assert_eq(t_file_write(target, m.log, m.len), 0);
	cr_assert_eq(unlink(m.seg), 0);
	cr_assert_eq(symlink(target, m.seg), 0);
	snprintf(msg, sizeof(msg), "%s: Too many levels of symbolic links", m.name);
	log_expect_err(m.dir, m.seed, 1, m.first - 1, -ELOOP, msg);

	cr_assert_eq(t_busd_restart(&m.d, NULL), 0);
	snprintf(msg, sizeof(msg), "'dmg': cannot open log segment %s: Too many levels of "
		 "symbolic links", m.name);
	cr_assert_eq(t_file_count(m.d.err, msg), 1, "busd did not say \"%s\"", msg);
	b = connect_to(&m.d);
	cr_assert_eq(bus_pub_attach(b, "dmg", &p), 0, "%s", bus_errmsg());
	publish_n(p, m.seed, m.n + 1, 10);
	t_nap_us(100000);
	bus_pub_close(p);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&m.d), 0);
	live = NULL;
	reboot_not_recreated(&m);
	/* The link is still a link to the same file, which nobody wrote. */
	cr_assert_eq(lstat(m.seg, &st), 0);
	cr_assert(S_ISLNK(st.st_mode));
	n = readlink(m.seg, link, sizeof(link) - 1);
	cr_assert_gt(n, 0);
	link[n] = 0;
	cr_assert_str_eq(link, target);
	cr_assert_eq(t_file_read(target, &now, &len), 0);
	cr_assert_eq(len, m.len);
	cr_assert_eq(memcmp(now, m.log, len), 0);
	free(now);
	dmg_free(&m);
}

Test(durable_faults, a_segment_in_a_newer_format_is_left_alone_and_the_reader_says_so)
{
	static struct dmg m;
	uint8_t *newer, *now;
	uint64_t n;
	uint32_t v = 2, crc = 0;
	struct bus_pub *p;
	struct bus *b;
	char msg[300];
	size_t len;
	int r;

	dmg_setup(&m, 3 << 19);
	cr_assert_gt(m.first, 1, "one segment only");
	/* Version 2, with a header CRC that matches: a valid newer file. */
	newer = malloc(m.len);
	cr_assert_not_null(newer);
	memcpy(newer, m.log, m.len);
	memcpy(newer + 8, &v, 4);
	memcpy(newer + 36, &crc, 4);
	crc = t_crc32c(0, newer, 64);
	memcpy(newer + 36, &crc, 4);
	cr_assert_eq(t_file_write(m.seg, newer, m.len), 0);
	log_expect_err(m.dir, m.seed, 1, m.first - 1, -EPROTONOSUPPORT,
		       "format version 2; this libbus reads version 1");

	cr_assert_eq(t_busd_restart(&m.d, NULL), 0);
	snprintf(msg, sizeof(msg), "'dmg': log segment %s is in a format version this busd does "
		 "not write; not touching it, the topic is not flushed", m.name);
	cr_assert_eq(t_file_count(m.d.err, msg), 1, "busd did not say \"%s\"", msg);
	/* Not flushed: the producer fills the ring, then gets a clear error. */
	b = connect_to(&m.d);
	cr_assert_eq(bus_pub_attach(b, "dmg", &p), 0, "%s", bus_errmsg());
	r = publish_until_stuck(p, m.seed, m.n + 1, &n);
	cr_assert_eq(r, -ETIMEDOUT, "%s", bus_errmsg());
	cr_assert_not_null(strstr(bus_errmsg(), "busd"), "%s", bus_errmsg());
	cr_assert_lt(n, 100000);
	bus_pub_close(p);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&m.d), 0);
	live = NULL;
	reboot_not_recreated(&m);
	/* Byte for byte what was there, index included. */
	cr_assert_eq(t_file_read(m.seg, &now, &len), 0);
	cr_assert_eq(len, m.len);
	cr_assert_eq(memcmp(now, newer, len), 0);
	free(now);
	cr_assert_eq(t_file_read(m.idx, &now, &len), 0);
	cr_assert_eq(len, m.ixlen);
	cr_assert_eq(memcmp(now, m.ix, len), 0);
	free(now);
	free(newer);
	dmg_free(&m);
}

/* ------------------------------------------------------------------------ */
/* A follower meets a segment that busd has created but not yet written     */
/* ------------------------------------------------------------------------ */

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void copy_file(const char *from_dir, const char *to_dir, const char *name)
{
	char p[1400];
	uint8_t *data;
	size_t len;

	snprintf(p, sizeof(p), "%s/%s", from_dir, name);
	cr_assert_eq(t_file_read(p, &data, &len), 0, "%s", p);
	snprintf(p, sizeof(p), "%s/%s", to_dir, name);
	cr_assert_eq(t_file_write(p, data, len), 0, "%s", p);
	free(data);
}

/*
 * busd creates a segment, then writes its header (seg_new), so a follower
 * may find it empty on any ordinary roll. The reader once kept that file
 * open with its offset still at the previous segment's end: it then read
 * nothing when the segment filled, and reported the whole segment as a gap
 * when the next one appeared (found by the crash soak, tests/soak.c).
 */
Test(durable_faults, a_follower_that_meets_an_empty_new_segment_reads_it_once_written)
{
	struct bus_topic_opts o = { .ring_size = 1 << 20, .max_event = 1000,
				    .flags = BUS_TOPIC_DURABLE, .fsync = BUS_FSYNC_NONE,
				    .segment_bytes = 1 << 20 };
	char src[700], dst[700], p[1400], *segs[16];
	uint8_t buf[1000];
	uint64_t s, want = 1;
	struct t_busd d;
	struct bus *b;
	struct bus_pub *pub;
	struct bus_log *l;
	struct bus_event ev;
	struct dirent *e;
	int n = 0, r;
	DIR *dd;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	cr_assert_eq(bus_connect(d.dir, &b), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, "t", &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "t", &pub), 0, "%s", bus_errmsg());
	for (s = 1; s <= 2600; s++) {  /* ~2.6 MB of records: three 1 MiB segments or more */
		t_fill(buf, sizeof(buf), 1, s);
		cr_assert_eq(bus_pub_publish(pub, 0, buf, sizeof(buf), 0), 0, "%s", bus_errmsg());
	}
	bus_pub_close(pub);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);  /* flushes everything */

	snprintf(src, sizeof(src), "%s/log/t", d.state);
	snprintf(dst, sizeof(dst), "%s/follow", t_dir());
	cr_assert_eq(mkdir(dst, 0700), 0);
	cr_assert_not_null(dd = opendir(src));
	while ((e = readdir(dd)))
		if (strstr(e->d_name, ".log") && n < 16)
			segs[n++] = strdup(e->d_name);
	closedir(dd);
	qsort(segs, (size_t)n, sizeof(segs[0]), cmp_name);
	/* At least three; more when a roll comes early (a small first chunk,
	 * then one that does not fit beside it). */
	cr_assert_geq(n, 3, "expected three segments or more, got %d", n);

	/* Segment 1 whole, segment 2 created but empty: "not yet". */
	copy_file(src, dst, segs[0]);
	snprintf(p, sizeof(p), "%s/%s", dst, segs[1]);
	cr_assert_eq(t_file_write(p, "", 0), 0);
	cr_assert_eq(bus_log_open(dst, &l), 0, "%s", bus_errmsg());
	bus_log_follow(l, 1);
	while ((r = bus_log_next(l, &ev)) == 1) {
		cr_assert_eq(ev.seq, want);
		cr_assert_eq(t_check(ev.data, ev.len, 1, ev.seq), 0, "seq %llu",
			     (unsigned long long)ev.seq);
		want++;
	}
	cr_assert_eq(r, 0, "%d: %s", r, bus_errmsg());
	cr_assert_gt(want, 1);

	/* busd writes segment 2 into the same file, then rolls on. */
	{
		uint8_t *data;
		size_t len;
		FILE *f;

		snprintf(p, sizeof(p), "%s/%s", src, segs[1]);
		cr_assert_eq(t_file_read(p, &data, &len), 0);
		snprintf(p, sizeof(p), "%s/%s", dst, segs[1]);
		cr_assert_not_null(f = fopen(p, "r+"));
		cr_assert_eq(fwrite(data, 1, len, f), len);
		fclose(f);
		free(data);
	}
	r = bus_log_next(l, &ev);
	cr_assert_eq(r, 1, "the follower did not read the new segment once written: %d (%s)", r,
		     r < 0 ? bus_errmsg() : "nothing");
	cr_assert_eq(ev.seq, want);
	want++;
	for (int i = 2; i < n; i++)
		copy_file(src, dst, segs[i]);
	while ((r = bus_log_next(l, &ev)) == 1) {
		cr_assert_eq(ev.seq, want, "after seq %llu: %llu", (unsigned long long)want - 1,
			     (unsigned long long)ev.seq);
		cr_assert_eq(t_check(ev.data, ev.len, 1, ev.seq), 0);
		want++;
	}
	cr_assert_eq(r, 0, "%d: %s", r, bus_errmsg());
	cr_assert_eq(want, 2601, "the follower stopped at %llu of 2600",
		     (unsigned long long)want - 1);
	bus_log_close(l);
	for (int i = 0; i < n; i++)
		free(segs[i]);
}
