/* SPDX-License-Identifier: MIT */
/*
 * Description: resource exhaustion (issue 6), end to end with a real busd
 * and the `bus` command:
 *
 *  - shared memory: busd's segment directory on a small tmpfs. A topic that
 *    does not fit fails at creation with -ENOSPC and a hint about sizing
 *    /dev/shm, leaves nothing behind, and busd and the other topics go on;
 *    running out of inodes says so too. A tmpfs that fills up after the
 *    topics exist never SIGBUSes a producer or a consumer: every file a
 *    client maps has all its pages reserved (checked from st_blocks).
 *  - the log disk: full (a small tmpfs), unwritable mid-flight (the log
 *    directory made immutable, so the next segment cannot be created) and
 *    failing with EIO (ext4 on a loop device whose size is cut to the file
 *    system's tables, below all file data, then restored; both fsync
 *    policies that sync): the topic is degraded in bus_stat and
 *    `bus info`, the producer waits a bounded time and gets -ETIMEDOUT
 *    naming the cause, and once the disk works again every event is in the
 *    log, readable (after a remount, for EIO: what the disk holds, not the
 *    page cache), and none that bus_pub_sync() acknowledged is lost.
 *  - limits: consumer slots per topic, one producer per topic, producers and
 *    consumers per connection, connections per busd (--max-clients), and
 *    busd's descriptors (busd has no topic count limit of its own: topics are
 *    bounded by shared memory and by RLIMIT_NOFILE). Each error's code, and
 *    that its message names the limit and how to raise it.
 *
 * Mounting needs root (CI runs as root); where it is not permitted the test
 * is skipped, saying so. A test that mounts first moves into a mount
 * namespace of its own, so its mounts vanish with it whatever happens; the
 * suite's .fini kills busd, unmounts and releases the loop device anyway.
 * The test process forks only while it holds no bus connection (children
 * may not inherit one); `bus` commands are exec'd at once, which is fine.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus.h"
#include "proto.h"    /* PROTO_ERR_MAX: the longest message busd sends */
#include "t_busd.h"
#include "t_cli.h"
#include "t_log.h"
#include "t_mount.h"
#include "t_util.h"

#define MAXEV 512
#define SEC 1000000000ll
#define MS 1000000ll

/* ------------------------------------------------------------------------ */
/* Mounts, a loop device, and a busd to stop before unmounting              */
/* ------------------------------------------------------------------------ */

static struct t_busd *live;    /* killed by the .fini before it unmounts */
static int loop_fd = -1;       /* our loop device (autoclear: freed with its last user) */
static char immutable[700];    /* a directory we made immutable */
static struct bus_log *open_log;  /* closed by the .fini if an assertion left it open */

static void set_immutable(const char *dir, int on);

static void limits_fini(void)
{
	if (live && live->pid > 0)
		t_busd_kill(live);
	live = NULL;
	if (immutable[0])
		set_immutable(immutable, 0);
	bus_log_close(open_log);
	open_log = NULL;
	t_unmount_all();
	if (loop_fd >= 0) {
		ioctl(loop_fd, LOOP_CLR_FD, 0);
		close(loop_fd);
		loop_fd = -1;
	}
	cli_fini();
}

TestSuite(limits, .init = t_init, .fini = limits_fini, .timeout = 120);

/* FS_IMMUTABLE_FL on a directory: nobody, root included, may create or
 * remove a file in it; files already open stay writable. */
static void set_immutable(const char *dir, int on)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), flags = 0;

	if (fd < 0)
		return;
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
		flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
		if (ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0)
			snprintf(immutable, sizeof(immutable), "%s", on ? dir : "");
	}
	close(fd);
}

/* ------------------------------------------------------------------------ */
/* busd, events, logs                                                       */
/* ------------------------------------------------------------------------ */

/* busd's directories inside the test's, by a name of our own (so that the
 * segment or state directory can be a mount point before busd starts). */
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

static struct bus *connect_to(const struct t_busd *d)
{
	struct bus *b;

	cr_assert_eq(bus_connect(d->dir, &b), 0, "%s", bus_errmsg());
	return b;
}

static int pub_one(struct bus_pub *p, uint64_t seed, uint64_t s)
{
	uint8_t buf[MAXEV];
	uint32_t len = t_len_for(seed, s, 8, MAXEV);

	t_fill(buf, len, seed, s);
	return bus_pub_publish(p, (uint32_t)s, buf, len, 0);
}

static void publish_n(struct bus_pub *p, uint64_t seed, uint64_t first, uint64_t n)
{
	for (uint64_t s = first; s < first + n; s++) {
		int r = pub_one(p, seed, s);

		cr_assert_eq(r, 0, "publish %llu: %d (%s)", (unsigned long long)s, r, bus_errmsg());
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

/* The log in dir holds exactly [first, last], every payload intact. `why`
 * says what the events are, for the messages. */
static void log_expect(const char *dir, uint64_t seed, uint64_t first, uint64_t last,
		       const char *why)
{
	struct bus_event ev;
	struct bus_log *l;
	int r;

	cr_assert_eq(bus_log_open(dir, &l), 0, "%s: %s", why, bus_errmsg());
	open_log = l;
	for (uint64_t want = first; want <= last; want++) {
		r = bus_log_next(l, &ev);
		cr_assert_eq(r, 1, "%s: the log lost event %llu (of %llu..%llu): %d (%s)", why,
			     (unsigned long long)want, (unsigned long long)first,
			     (unsigned long long)last, r, bus_errmsg());
		cr_assert_eq(ev.seq, want, "%s: got %llu, expected %llu", why,
			     (unsigned long long)ev.seq, (unsigned long long)want);
		cr_assert_eq(ev.type, (uint32_t)want, "%s: event %llu", why,
			     (unsigned long long)want);
		cr_assert_eq(t_check(ev.data, ev.len, seed, ev.seq), 0, "%s: payload of %llu", why,
			     (unsigned long long)want);
	}
	r = bus_log_next(l, &ev);
	cr_assert_eq(r, 0, "%s: after event %llu: %d (%s), seq %llu", why,
		     (unsigned long long)last, r, bus_errmsg(),
		     r == 1 ? (unsigned long long)ev.seq : 0ull);
	bus_log_close(l);
	open_log = NULL;
}

/* A consumer attached through busd from the oldest event reads exactly
 * [first, last], intact: from the log, then the ring, as one stream. */
static void replay_expect(struct bus *b, const char *topic, uint64_t seed, uint64_t first,
			  uint64_t last)
{
	struct bus_sub_opts so = { .from = BUS_FROM_OLDEST };
	uint8_t buf[MAXEV];
	struct bus_event ev;
	struct bus_sub *s;
	int r;

	cr_assert_eq(bus_sub_attach(b, topic, &so, &s), 0, "%s", bus_errmsg());
	for (uint64_t want = first; want <= last; want++) {
		while ((r = bus_sub_read(s, buf, sizeof(buf), &ev)) == 0)
			cr_assert_eq(bus_sub_wait(s, 5 * SEC), 1, "consumer: event %llu never came",
				     (unsigned long long)want);
		cr_assert_eq(r, 1, "consumer: event %llu: %d (%s)", (unsigned long long)want, r,
			     bus_errmsg());
		cr_assert_eq(ev.seq, want, "consumer: got %llu, expected %llu",
			     (unsigned long long)ev.seq, (unsigned long long)want);
		cr_assert_eq(t_check(ev.data, ev.len, seed, ev.seq), 0, "consumer: payload of %llu",
			     (unsigned long long)want);
	}
	cr_assert_eq(bus_sub_read(s, buf, sizeof(buf), &ev), 0, "consumer: more than %llu",
		     (unsigned long long)last);
	bus_sub_close(s);
}

static int has(const char *hay, const char *needle)
{
	return hay && strstr(hay, needle) != NULL;
}

/* Files in dir whose name contains needle. */
static int files_with(const char *dir, const char *needle)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d, "%s: %s", dir, strerror(errno));
	while ((e = readdir(d)))
		n += e->d_name[0] != '.' && strstr(e->d_name, needle) != NULL;
	closedir(d);
	return n;
}

/* Every regular file in dir has all its pages allocated (st_blocks covers
 * st_size). A file that was only ftruncate'd to size has holes, and a
 * client that maps it gets SIGBUS on first touch once the tmpfs is full.
 * Returns the number of files checked. */
static int expect_all_reserved(const char *dir, const char *when)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d, "%s: %s", dir, strerror(errno));
	while ((e = readdir(d))) {
		struct stat st;

		if (e->d_name[0] == '.' || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW))
			continue;
		if (!S_ISREG(st.st_mode))
			continue;
		n++;
		cr_assert_geq((uint64_t)st.st_blocks * 512, (uint64_t)st.st_size,
			      "%s: %s/%s has %llu bytes but only %llu allocated: a client that "
			      "maps it can get SIGBUS when the file system fills", when, dir,
			      e->d_name, (unsigned long long)st.st_size,
			      (unsigned long long)st.st_blocks * 512);
	}
	closedir(d);
	return n;
}

/* Fill the file system of dir to the last block with a file `name`;
 * returns how many bytes it took. */
static uint64_t fill_up(const char *dir, const char *name)
{
	static const uint8_t zero[64 << 10];
	char path[800];
	struct statvfs sv;
	uint64_t n = 0;
	size_t chunk = sizeof(zero);
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	for (;;) {
		ssize_t w = write(fd, zero, chunk);

		if (w > 0) {
			n += (uint64_t)w;
			continue;
		}
		cr_assert(w < 0 && errno == ENOSPC, "filling %s: %s", path, strerror(errno));
		if (chunk == 4096)
			break;
		chunk = 4096;
	}
	close(fd);
	cr_assert_eq(statvfs(dir, &sv), 0);
	cr_assert_eq(sv.f_bavail, 0, "%s still has %llu blocks free", dir,
		     (unsigned long long)sv.f_bavail);
	return n;
}

/* ------------------------------------------------------------------------ */
/* Shared memory                                                            */
/* ------------------------------------------------------------------------ */

Test(limits, a_topic_that_does_not_fit_in_shm_is_enospc_with_a_sizing_hint)
{
	static struct t_busd d;
	struct bus_topic_opts o = { .ring_size = 256 << 10 };
	struct bus_topic_entry list[4];
	struct bus_pub *p;
	struct bus_sub *s;
	struct bus_event ev;
	struct bus *b;
	struct out co;
	char name[32], msg[PROTO_ERR_MAX];
	uint8_t buf[MAXEV];
	uint64_t seed = t_rand();
	int n, r = 0, files;

	private_mounts();
	busd_paths(&d, "small");
	mount_tmpfs(d.shm, "size=4m,mode=0700");
	cr_assert_eq(t_busd_restart(&d, NULL), 0);
	live = &d;
	b = connect_to(&d);

	/* A 256 KiB ring takes 260 KiB or so: about 15 fit in 4 MiB. */
	for (n = 0; n < 64; n++) {
		snprintf(name, sizeof(name), "t%02d", n);
		r = bus_create(b, name, &o);
		if (r < 0)
			break;
	}
	snprintf(msg, sizeof(msg), "%s", bus_errmsg());
	cr_assert_eq(r, -ENOSPC, "topic %d: %d (%s)", n, r, msg);
	cr_assert_geq(n, 8, "only %d topics of 256 KiB fit in 4 MiB", n);
	/* What is wrong, where, and what to do about it. */
	cr_assert(has(msg, "topic 't") && has(msg, "no space left on its file system") &&
		  has(msg, d.shm), "does not say which file system is full: %s", msg);
	cr_assert(has(msg, "smaller ring") && has(msg, "mount -o remount,size=") &&
		  has(msg, "/dev/shm") && has(msg, "--shm-size"),
		  "no hint about sizing /dev/shm: %s", msg);
	cr_assert(!has(msg, ".tmp."), "names a temporary file: %s", msg);
	cr_log_info("shm full after %d topics of 256 KiB: %s", n, msg);

	/* Nothing half-created: two files per topic, the anchor, no temporary. */
	files = t_count_files(d.shm, "");
	cr_assert_eq(files, 2 * n + 1, "%d files in %s for %d topics", files, d.shm, n);
	cr_assert_eq(files_with(d.shm, ".tmp."), 0);
	cr_assert_eq(bus_stat(b, name, NULL, NULL, 0), -ENOENT, "%s", bus_errmsg());
	cr_assert_eq(bus_list(b, list, 4), n);
	expect_all_reserved(d.shm, "after creating topics until one did not fit");

	/* busd is fine and the topics that fit work. */
	cr_assert_eq(bus_ping(b), 0, "%s", bus_errmsg());
	cr_assert_eq(kill(d.pid, 0), 0);
	cr_assert_eq(bus_pub_attach(b, "t00", &p), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_attach(b, "t00", NULL, &s), 0, "%s", bus_errmsg());
	publish_n(p, seed, 1, 200);
	for (uint64_t want = 1; want <= 200; want++) {
		cr_assert_eq(bus_sub_read(s, buf, sizeof(buf), &ev), 1, "event %llu: %s",
			     (unsigned long long)want, bus_errmsg());
		cr_assert_eq(ev.seq, want);
		cr_assert_eq(t_check(ev.data, ev.len, seed, want), 0);
	}
	bus_sub_close(s);
	bus_pub_close(p);

	/* The same message through `bus create` (its default ring is 16 MiB). */
	BUS(&co, &d, "create", "big");
	expect_exit(&co, 1);
	cr_assert(has(co.err, "bus: create big:") &&
		  has(co.err, "no space left on its file system") &&
		  has(co.err, "mount -o remount,size=") && has(co.err, "--shm-size"),
		  "bus create: %s", co.err);
	done(&co);
	cr_assert_eq(t_count_files(d.shm, ""), files);

	/* Space again (a topic deleted): the one that did not fit does. */
	cr_assert_eq(bus_delete(b, "t00"), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, name, &o), 0, "%s", bus_errmsg());
	cr_assert_eq(t_count_files(d.shm, ""), files);

	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
	live = NULL;
	/* The segments outlive busd (the next one adopts them): the tmpfs
	 * goes, and they with it. */
	unmount(d.shm);
}

Test(limits, running_out_of_shm_inodes_is_enospc_naming_the_inode_limit)
{
	static struct t_busd d;
	struct bus_topic_opts o = { .ring_size = 4096 };
	struct bus *b;
	char msg[PROTO_ERR_MAX];
	int r;

	private_mounts();
	busd_paths(&d, "inodes");
	/* The root directory, the anchor and two topics of two files each. */
	mount_tmpfs(d.shm, "size=4m,nr_inodes=6,mode=0700");
	cr_assert_eq(t_busd_restart(&d, NULL), 0);
	live = &d;
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "one", &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, "two", &o), 0, "%s", bus_errmsg());
	r = bus_create(b, "three", &o);
	snprintf(msg, sizeof(msg), "%s", bus_errmsg());
	cr_assert_eq(r, -ENOSPC, "%d (%s)", r, msg);
	cr_assert(has(msg, "topic 'three'") && has(msg, "no free inodes") && has(msg, d.shm) &&
		  has(msg, "nr_inodes"), "does not name the inode limit: %s", msg);
	cr_log_info("shm out of inodes: %s", msg);
	cr_assert_eq(t_count_files(d.shm, ""), 5);
	cr_assert_eq(files_with(d.shm, ".tmp."), 0);
	cr_assert_eq(bus_delete(b, "one"), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, "three", &o), 0, "%s", bus_errmsg());
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
	live = NULL;
	unmount(d.shm);
}

/* The children of the SIGBUS test: a producer and a consumer of one topic
 * that attach, say so, wait for `go` (the tmpfs is full by then), then
 * publish and read several rings' worth. */
struct fill_ctl {
	char dir[600], topic[32];
	uint64_t seed, n;
	_Atomic int ready, go;
};

static int fill_producer(void *arg)
{
	struct fill_ctl *c = arg;
	struct bus_pub *p;
	struct bus *b;
	int r;

	if ((r = bus_connect(c->dir, &b)) < 0 || (r = bus_pub_attach(b, c->topic, &p)) < 0)
		return t_fail("producer: %d (%s)", r, bus_errmsg());
	atomic_fetch_add(&c->ready, 1);
	while (!atomic_load(&c->go))
		t_nap_us(1000);
	for (uint64_t s = 1; s <= c->n; s++) {
		if ((r = pub_one(p, c->seed, s)) < 0)
			return t_fail("producer: publish %llu: %d (%s)", (unsigned long long)s, r,
				      bus_errmsg());
		if (s % 64 == 0)
			t_nap_us(50);  /* let the consumer keep up, mostly */
	}
	bus_pub_close(p);
	bus_disconnect(b);
	return 0;
}

static int fill_consumer(void *arg)
{
	struct fill_ctl *c = arg;
	struct bus_sub_opts so = { .from = BUS_FROM_OLDEST };
	uint8_t buf[MAXEV];
	struct bus_event ev;
	struct bus_sub *s;
	struct bus *b;
	uint64_t next = 1, got = 0;
	int r;

	if ((r = bus_connect(c->dir, &b)) < 0 || (r = bus_sub_attach(b, c->topic, &so, &s)) < 0)
		return t_fail("consumer: %d (%s)", r, bus_errmsg());
	atomic_fetch_add(&c->ready, 1);
	while (next <= c->n) {
		r = bus_sub_read(s, buf, sizeof(buf), &ev);
		if (r == 0) {
			if ((r = bus_sub_wait(s, 10 * SEC)) != 1)
				return t_fail("consumer: waiting for %llu: %d",
					      (unsigned long long)next, r);
			continue;
		}
		if (r == -ENOBUFS) {  /* lapped: a gap report, never garbage */
			if (ev.seq != next)
				return t_fail("consumer: gap at %llu, expected %llu",
					      (unsigned long long)ev.seq, (unsigned long long)next);
			next += ev.lost;
			continue;
		}
		if (r != 1)
			return t_fail("consumer: read: %d (%s)", r, bus_errmsg());
		if (ev.seq != next || t_check(ev.data, ev.len, c->seed, ev.seq))
			return t_fail("consumer: event %llu (expected %llu) is not what was "
				      "published", (unsigned long long)ev.seq,
				      (unsigned long long)next);
		next++;
		got++;
	}
	bus_sub_close(s);
	bus_disconnect(b);
	return got ? 0 : t_fail("consumer: read nothing");
}

/* Run a producer and a consumer of topic; fill the tmpfs under them when
 * both are attached (fill != NULL), then let them go. */
static void run_pair(const struct t_busd *d, const char *topic, uint64_t n, const char *fill)
{
	struct fill_ctl *c = t_shared(sizeof(*c));
	pid_t pp, pc;
	int sp, sc;

	snprintf(c->dir, sizeof(c->dir), "%s", d->dir);
	snprintf(c->topic, sizeof(c->topic), "%s", topic);
	c->seed = t_rand();
	c->n = n;
	pc = t_fork(fill_consumer, c);
	pp = t_fork(fill_producer, c);
	for (uint64_t end = t_now_ns() + 10 * SEC; atomic_load(&c->ready) < 2 && t_now_ns() < end;)
		t_nap_us(1000);
	cr_assert_eq(atomic_load(&c->ready), 2, "producer and consumer did not attach");
	if (fill)
		fill_up(d->shm, fill);
	atomic_store(&c->go, 1);
	sp = t_wait_pid(pp);
	sc = t_wait_pid(pc);
	cr_assert_neq(sp, 128 + SIGBUS, "the producer of '%s' got SIGBUS", topic);
	cr_assert_neq(sc, 128 + SIGBUS, "the consumer of '%s' got SIGBUS", topic);
	cr_assert_eq(sp, 0, "producer of '%s': exit %d", topic, sp);
	cr_assert_eq(sc, 0, "consumer of '%s': exit %d", topic, sc);
}

Test(limits, a_shm_that_fills_up_later_never_sigbuses_producers_or_consumers)
{
	static struct t_busd d;
	struct bus_topic_opts o = { .ring_size = 64 << 10, .max_event = MAXEV };
	struct bus_topic_opts od = { .ring_size = 64 << 10, .max_event = MAXEV,
				     .flags = BUS_TOPIC_DURABLE };
	struct bus *b;
	int files;

	private_mounts();
	busd_paths(&d, "fill");
	mount_tmpfs(d.shm, "size=2m,mode=0700");
	cr_assert_eq(t_busd_restart(&d, NULL), 0);
	live = &d;
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "early", &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, "late", &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, "dur", &od), 0, "%s", bus_errmsg());
	bus_disconnect(b);
	/* Every file busd made in the segment directory, before anyone
	 * touched it: the segments, the consumer areas, the anchor. */
	files = expect_all_reserved(d.shm, "after bus_create");
	cr_assert_eq(files, 7);

	/* Attached before the tmpfs fills, running after: 8 rings' worth. */
	run_pair(&d, "early", events_for_bytes(1, 1, 8 * (64 << 10)), "ballast");
	/* Attaching (the producer prefaults its mapping, the consumer takes a
	 * slot in NAME@cons) and running on a full tmpfs. */
	run_pair(&d, "late", events_for_bytes(1, 1, 8 * (64 << 10)), NULL);

	/* The same for a ring that busd recreates from a durable topic's log
	 * (after a reboot emptied /dev/shm): it reserves it the same way. */
	cr_assert_eq(t_busd_stop(&d), 0);
	unmount(d.shm);
	mount_tmpfs(d.shm, "size=2m,mode=0700");
	cr_assert_eq(t_busd_restart(&d, NULL), 0);
	cr_assert_eq(t_file_count(d.err, "recreated durable topic 'dur'"), 1);
	cr_assert_eq(expect_all_reserved(d.shm, "after busd recreated a durable topic"), 3);
	run_pair(&d, "dur", events_for_bytes(1, 1, 2 * (64 << 10)), "ballast");
	cr_assert_eq(t_busd_stop(&d), 0);
	live = NULL;
	unmount(d.shm);
}

/* ------------------------------------------------------------------------ */
/* The log disk: full, unwritable, failing                                  */
/* ------------------------------------------------------------------------ */

/* Publish from `next` until the producer gives up (-ETIMEDOUT), at most
 * `cap` events; a flusher that is merely slow (sanitizers) is waited for
 * again. Returns the first sequence number not published, and how long the
 * failing publish took in *took_ns. */
static uint64_t publish_until_stuck(struct bus_pub *p, uint64_t seed, uint64_t next,
				    uint64_t cap, uint64_t *took_ns)
{
	uint64_t t0 = t_now_ns(), t1 = 0;
	int r = 0;

	while (next < cap) {
		t1 = t_now_ns();
		r = pub_one(p, seed, next);
		if (r == 0) {
			next++;
			continue;
		}
		if (r != -ETIMEDOUT || has(bus_errmsg(), "log writes failing") ||
		    t_now_ns() - t0 > 60 * SEC)
			break;
	}
	cr_assert_eq(r, -ETIMEDOUT, "publish %llu: %d (%s)", (unsigned long long)next, r,
		     bus_errmsg());
	*took_ns = t_now_ns() - t1;
	return next;
}

/* A producer out of room on a durable topic whose log cannot be written:
 * publish waits its timeout (300 ms), bounded, then -ETIMEDOUT naming the
 * cause. took_ns: how long the publish that gave up took. */
static void expect_stuck(struct bus_pub *p, uint64_t seed, uint64_t next, uint64_t took_ns)
{
	uint64_t t0;
	int r;

	cr_assert_geq(took_ns, 300 * MS, "the producer gave up after %llu ms, before its timeout",
		      (unsigned long long)(took_ns / MS));
	cr_assert_lt(took_ns, 1300 * MS, "the producer's wait was not bounded by its timeout: "
		     "%llu ms", (unsigned long long)(took_ns / MS));
	cr_assert(has(bus_errmsg(), "log writes failing") && has(bus_errmsg(), "busd's log"),
		  "the producer is not told the cause: %s", bus_errmsg());
	t0 = t_now_ns();
	r = pub_one(p, seed, next);
	cr_assert_eq(r, -ETIMEDOUT, "%d (%s)", r, bus_errmsg());
	cr_assert_lt(t_now_ns() - t0, 1300 * MS);
}

/* What a user sees of a degraded topic: bus_pub_sync() of the last event
 * published waits its 300 ms and gets -ETIMEDOUT naming the cause; bus_stat,
 * `bus info` and `bus info --json` say degraded. */
static void expect_degraded(struct t_busd *d, struct bus *b, struct bus_pub *p,
			    const char *topic, uint64_t next)
{
	struct bus_topic_info ti;
	struct out o;
	const char *log;
	uint64_t t0 = t_now_ns();
	int r;

	r = bus_pub_sync(p, next - 1, 300 * MS);
	if (r != -ETIMEDOUT) {
		bus_stat(b, topic, &ti, NULL, 0);
		cr_assert_fail("bus_pub_sync(%llu) = %d (%s) while the log cannot be written; "
			       "busd says: degraded %u, %llu failed writes, durable_seq %llu",
			       (unsigned long long)next - 1, r, bus_errmsg(), ti.degraded,
			       (unsigned long long)ti.flush_errors,
			       (unsigned long long)ti.durable_seq);
	}
	cr_assert_lt(t_now_ns() - t0, 1300 * MS, "bus_pub_sync's wait was not bounded");
	cr_assert(has(bus_errmsg(), "log writes failing"), "bus_pub_sync: %s", bus_errmsg());

	cr_assert_geq(bus_stat(b, topic, &ti, NULL, 0), 0, "%s", bus_errmsg());
	cr_assert_eq(ti.degraded, 1, "bus_stat does not say the topic is degraded");
	cr_assert_geq(ti.flush_errors, 1);
	cr_assert_lt(ti.durable_seq, next);

	BUS(&o, d, "info", topic);
	expect_exit(&o, 0);
	cr_assert(has(o.out, "DEGRADED: log writes are failing"), "bus info: %s", o.out);
	done(&o);
	BUS(&o, d, "info", topic, "--json");
	expect_exit(&o, 0);
	expect_json(o.out);
	log = jget(o.out, "log");
	cr_assert_not_null(log, "bus info --json: no log: %s", o.out);
	cr_assert_eq(jbool(log, "degraded"), 1, "bus info --json: %s", o.out);
	done(&o);
}

/* Space or writability is back: the topic recovers by itself and the
 * producer carries on from `next` to `last`; then everything is synced. */
static void expect_recovery(struct t_busd *d, struct bus *b, struct bus_pub *p,
			    const char *topic, uint64_t seed, uint64_t next, uint64_t last)
{
	struct bus_topic_info ti;
	char msg[200];

	snprintf(msg, sizeof(msg), "'%s': log writes succeed again; the topic is no longer "
		 "degraded", topic);
	cr_assert_geq(t_file_wait_count(d->err, msg, 1, 5000), 1, "busd did not say \"%s\"", msg);
	bus_pub_set_timeout(p, 10 * SEC);
	publish_n(p, seed, next, last - next + 1);
	cr_assert_eq(bus_pub_sync(p, last, 10 * SEC), 0, "%s", bus_errmsg());
	cr_assert_geq(bus_stat(b, topic, &ti, NULL, 0), 0, "%s", bus_errmsg());
	cr_assert_eq(ti.degraded, 0);
	cr_assert_eq(ti.flushed_seq, last + 1);
	cr_assert_eq(ti.durable_seq, last + 1);
}

Test(limits, a_full_log_disk_end_to_end)
{
	static struct t_busd d;
	struct bus_topic_opts o = { .ring_size = 64 << 10, .max_event = MAXEV,
				    .flags = BUS_TOPIC_DURABLE };
	uint64_t seed = t_rand(), acked, next, last, took;
	char ballast[800], dir[800];
	struct bus_pub *p;
	struct bus *b;

	private_mounts();
	busd_paths(&d, "full");
	mount_tmpfs(d.state, "size=2m,mode=0700");
	/* busd's own log file would fill the disk too: stderr only. */
	cr_assert_eq(t_busd_restart(&d, "--log-file", "-", NULL), 0);
	live = &d;
	snprintf(dir, sizeof(dir), "%s/log/full", d.state);
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "full", &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "full", &p), 0, "%s", bus_errmsg());

	/* Acknowledged: on disk before the disk fills. */
	acked = events_for_bytes(seed, 1, 256 << 10);
	publish_n(p, seed, 1, acked);
	cr_assert_eq(bus_pub_sync(p, acked, 5 * SEC), 0, "%s", bus_errmsg());

	/* The disk fills; the producer keeps publishing until the ring is full
	 * of events that cannot be written, then waits its 300 ms and stops. */
	fill_up(d.state, "ballast");
	bus_pub_set_timeout(p, 300 * MS);
	next = publish_until_stuck(p, seed, acked + 1, events_for_bytes(seed, 1, 8 << 20), &took);
	cr_assert(has(bus_errmsg(), "full disk"), "%s", bus_errmsg());
	expect_stuck(p, seed, next, took);
	expect_degraded(&d, b, p, "full", next);
	cr_assert_eq(t_file_count(d.err, "'full': log write failed: No space left on device"), 1);

	/* Space again. */
	snprintf(ballast, sizeof(ballast), "%s/ballast", d.state);
	cr_assert_eq(unlink(ballast), 0);
	last = next + 1000;
	expect_recovery(&d, b, p, "full", seed, next, last);
	bus_pub_close(p);
	/* Replayable: a consumer from the oldest event reads all of it. */
	replay_expect(b, "full", seed, 1, last);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
	live = NULL;
	log_expect(dir, seed, 1, last, "after a full disk");
	unmount(d.state);
}

Test(limits, a_log_directory_that_becomes_unwritable_end_to_end)
{
	static struct t_busd d;
	struct bus_topic_opts o = { .ring_size = 64 << 10, .max_event = MAXEV,
				    .flags = BUS_TOPIC_DURABLE, .segment_bytes = 1 << 20 };
	uint64_t seed = t_rand(), acked, next, last, took;
	struct bus_topic_info ti;
	char dir[800];
	struct bus_pub *p;
	struct bus *b;

	private_mounts();
	busd_paths(&d, "ro");
	/* A tmpfs of our own: the immutable flag goes with it whatever happens. */
	mount_tmpfs(d.state, "size=16m,mode=0700");
	cr_assert_eq(t_busd_restart(&d, "--log-file", "-", NULL), 0);
	live = &d;
	snprintf(dir, sizeof(dir), "%s/log/ro", d.state);
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "ro", &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, "ro", &p), 0, "%s", bus_errmsg());
	acked = events_for_bytes(seed, 1, 512 << 10);
	publish_n(p, seed, 1, acked);
	cr_assert_eq(bus_pub_sync(p, acked, 5 * SEC), 0, "%s", bus_errmsg());

	/* Nobody may create a file in the log directory now: the segment
	 * being written stays writable, the next one (at 1 MiB) cannot be
	 * made. */
	set_immutable(dir, 1);
	if (!immutable[0])
		cr_skip_test("cannot make %s immutable (FS_IOC_SETFLAGS on tmpfs needs Linux "
			     "6.0): %s", dir, strerror(errno));
	bus_pub_set_timeout(p, 300 * MS);
	next = publish_until_stuck(p, seed, acked + 1, events_for_bytes(seed, 1, 8 << 20), &took);
	cr_assert_gt(next - 1, events_for_bytes(seed, 1, 1 << 20) - 64,
		     "stuck at %llu, before the segment was full", (unsigned long long)next);
	expect_stuck(p, seed, next, took);
	expect_degraded(&d, b, p, "ro", next);
	cr_assert_eq(t_file_count(d.err, "'ro': log write failed: Operation not permitted"), 1,
		     "busd did not say why the log cannot be written");
	cr_assert_geq(bus_stat(b, "ro", &ti, NULL, 0), 0);
	cr_assert_geq(ti.flushed_seq, acked + 1);

	set_immutable(dir, 0);
	cr_assert_eq(immutable[0], 0);
	last = next + 1000;
	expect_recovery(&d, b, p, "ro", seed, next, last);
	bus_pub_close(p);
	replay_expect(b, "ro", seed, 1, last);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
	live = NULL;
	log_expect(dir, seed, 1, last, "after an unwritable log directory");
	unmount(d.state);
}

/* ---- EIO: ext4 on a loop device whose size we cut ----------------------- */

/* Run a command quietly; its exit status (127: not found). */
static int run_quiet(const char *const *argv)
{
	int st;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);

		dup2(nul, 1);
		dup2(nul, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static const char *find_prog(const char *name)
{
	static char path[64];
	const char *dirs[] = { "/usr/sbin", "/sbin", "/usr/bin", "/bin" };

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dirs[i], name);
		if (access(path, X_OK) == 0)
			return path;
	}
	return NULL;
}

/* Bind a free loop device to img (autoclear: it is released when the last
 * user, our descriptor or a mount, lets go). Its path into dev. */
static void loop_attach(const char *img, char *dev, size_t size)
{
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC), ffd, n;

	if (ctl < 0)
		cr_skip_test("no loop devices (/dev/loop-control: %s): cannot make an EIO",
			     strerror(errno));
	ffd = open(img, O_RDWR | O_CLOEXEC);
	cr_assert_geq(ffd, 0, "%s: %s", img, strerror(errno));
	for (int tries = 0; tries < 16; tries++) {
		struct loop_config lc;

		/* Other processes may take the same free device first. */
		n = ioctl(ctl, LOOP_CTL_GET_FREE);
		cr_assert_geq(n, 0, "LOOP_CTL_GET_FREE: %s", strerror(errno));
		snprintf(dev, size, "/dev/loop%d", n);
		loop_fd = open(dev, O_RDWR | O_CLOEXEC);
		if (loop_fd < 0)
			continue;
		memset(&lc, 0, sizeof(lc));
		lc.fd = (uint32_t)ffd;
		lc.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		if (ioctl(loop_fd, LOOP_CONFIGURE, &lc) == 0)
			break;
		cr_assert_eq(errno, EBUSY, "LOOP_CONFIGURE %s: %s", dev, strerror(errno));
		close(loop_fd);
		loop_fd = -1;
	}
	close(ffd);
	close(ctl);
	cr_assert_geq(loop_fd, 0, "no free loop device");
}

/* The loop device ends at `bytes` (0: at the end of its file). */
static void loop_limit(uint64_t bytes)
{
	struct loop_info64 li;

	cr_assert_eq(ioctl(loop_fd, LOOP_GET_STATUS64, &li), 0, "%s", strerror(errno));
	li.lo_sizelimit = bytes;
	cr_assert_eq(ioctl(loop_fd, LOOP_SET_STATUS64, &li), 0, "%s", strerror(errno));
}

#define EIO_CUT (64u << 10)   /* where the device ends while it fails */

/* Where on the device the lowest block of a file lies (after syncing it). */
static uint64_t first_block(const char *path)
{
	struct {
		struct fiemap f;
		struct fiemap_extent e[64];
	} fm;
	uint64_t lo = UINT64_MAX;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	memset(&fm, 0, sizeof(fm));
	fm.f.fm_length = ~0ull;
	fm.f.fm_flags = FIEMAP_FLAG_SYNC;
	fm.f.fm_extent_count = 64;
	cr_assert_eq(ioctl(fd, FS_IOC_FIEMAP, &fm), 0, "FIEMAP %s: %s", path, strerror(errno));
	close(fd);
	for (unsigned i = 0; i < fm.f.fm_mapped_extents; i++)
		if (fm.e[i].fe_physical < lo)
			lo = fm.e[i].fe_physical;
	return lo;
}

/*
 * A durable topic whose log disk starts failing with EIO, then works again.
 * Under fsync always the producer runs out of room and waits; under the
 * interval policy it goes on (busd's writes land in the page cache) and the
 * failure shows at the next sync. Either way bus_pub_sync() must not call
 * an event durable that is not on the disk: what the disk holds is read
 * back after a remount.
 */
static void eio_scenario(uint32_t fsync, const char *tag, int drop_pages)
{
	static struct t_busd d;
	struct bus_topic_opts o = { .ring_size = 64 << 10, .max_event = MAXEV,
				    .flags = BUS_TOPIC_DURABLE, .fsync = fsync };
	uint64_t seed = t_rand(), acked, next, last, took, cut, durable;
	char imgdir[700], img[800], dev[64], dir[800], segpath[900], name[32], why[300];
	char failed[200];
	const char *mkfs = find_prog("mkfs.ext4");
	struct bus_topic_info ti;
	struct bus_pub *p;
	struct bus *b;
	int fd, r;

	if (!mkfs)
		cr_skip_test("mkfs.ext4 is not installed (e2fsprogs): cannot make an EIO");
	private_mounts();
	busd_paths(&d, tag);
	/* The disk image lives on a tmpfs of ours, the file system on it is
	 * mounted as busd's state directory. */
	snprintf(imgdir, sizeof(imgdir), "%s/%s.img", t_dir(), tag);
	cr_assert_eq(mkdir(imgdir, 0700), 0);
	mount_tmpfs(imgdir, "size=48m,mode=0700");
	snprintf(img, sizeof(img), "%s/disk", imgdir);
	fd = open(img, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 32 << 20), 0);
	close(fd);
	/* A layout with every table in the first 64 KiB: superblock, group
	 * descriptors, bitmaps, an inode table for 128 inodes (blocks 0-11),
	 * then the root and lost+found directories; all file data after. */
	cr_assert_eq(run_quiet(ARGV(mkfs, "-q", "-F", "-b", "4096", "-N", "128", "-O",
				    "^has_journal,^resize_inode,^flex_bg", "-E", "nodiscard", img)),
		     0, "%s failed", mkfs);
	loop_attach(img, dev, sizeof(dev));
	if (mount(dev, d.state, "ext4", 0, "errors=continue") < 0)
		cr_skip_test("cannot mount ext4 from %s: %s", dev, strerror(errno));
	remember_mount(d.state);
	cr_assert_eq(chmod(d.state, 0700), 0);

	cr_assert_eq(t_busd_restart(&d, "--log-file", "-", NULL), 0);
	live = &d;
	snprintf(dir, sizeof(dir), "%s/log/%s", d.state, tag);
	snprintf(failed, sizeof(failed), "'%s': log write failed: Input/output error", tag);
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, tag, &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, tag, &p), 0, "%s", bus_errmsg());
	acked = events_for_bytes(seed, 1, 256 << 10);
	publish_n(p, seed, 1, acked);
	cr_assert_eq(bus_pub_sync(p, acked, 5 * SEC), 0, "%s", bus_errmsg());

	/* The device now ends at 64 KiB: every write of file data fails with
	 * EIO wherever ext4 puts it, the file system's own tables stay
	 * writable. Reads come from the page cache. */
	t_seg_name(name, sizeof(name), 1);
	snprintf(segpath, sizeof(segpath), "%s/%s", dir, name);
	cut = first_block(segpath);
	cr_assert(cut >= EIO_CUT && cut < 32ull << 20, "the log starts at byte %llu of the device, "
		  "expected after the tables (%u)", (unsigned long long)cut, EIO_CUT);
	loop_limit(EIO_CUT);

	bus_pub_set_timeout(p, 300 * MS);
	if (fsync == BUS_FSYNC_ALWAYS) {
		/* The producer's ring fills with events busd cannot get onto
		 * the disk; it waits its 300 ms and gives up. */
		next = publish_until_stuck(p, seed, acked + 1,
					   events_for_bytes(seed, 1, 8 << 20), &took);
		expect_stuck(p, seed, next, took);
	} else {
		/* Half a ring: the producer goes on, the sync fails. */
		next = acked + 1 + events_for_bytes(seed, acked + 1, 32 << 10);
		publish_n(p, seed, acked + 1, next - acked - 1);
	}
	expect_degraded(&d, b, p, tag, next);
	if (drop_pages) {
		/* The pages the disk refused are clean now: make the kernel
		 * drop them, so that reading them back gives what the disk
		 * holds (nothing). busd must notice and write those events
		 * again from the ring, which under fsync always still holds
		 * them. */
		int dc = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);

		if (dc < 0)
			cr_skip_test("cannot drop the page cache (%s): needs root", strerror(errno));
		cr_assert_eq(write(dc, "1", 1), 1, "drop_caches: %s", strerror(errno));
		close(dc);
	}
	cr_assert_geq(t_file_count(d.err, failed), 1, "busd did not say \"%s\"", failed);
	cr_assert_geq(bus_stat(b, tag, &ti, NULL, 0), 0);
	durable = ti.durable_seq;

	/* While the disk keeps failing, busd retries every second and must
	 * keep failing: an fdatasync() that follows a failed one returns 0
	 * once the error has been reported, although the pages it could not
	 * write are lost (ext4 leaves their blocks unwritten: zeros). Nothing
	 * may be called durable then. (Expectations, not assertions: what the
	 * disk holds in the end is checked below either way.) */
	t_nap_us(2500 * 1000);
	cr_assert_geq(bus_stat(b, tag, &ti, NULL, 0), 0);
	cr_expect_eq(ti.degraded, 1, "fsync %s: busd calls the topic healthy again while every "
		     "write to the disk still fails (%llu failed writes so far)", tag,
		     (unsigned long long)ti.flush_errors);
	cr_expect_eq(ti.durable_seq, durable, "fsync %s: durable_seq moved from %llu to %llu "
		     "while every write to the disk fails: bus_pub_sync() acknowledges events "
		     "that are not on the disk", tag, (unsigned long long)durable,
		     (unsigned long long)ti.durable_seq);
	r = bus_pub_sync(p, next - 1, 300 * MS);
	cr_expect_eq(r, -ETIMEDOUT, "fsync %s: bus_pub_sync(%llu) = %d while every write to the "
		     "disk fails", tag, (unsigned long long)(next - 1), r);

	if (drop_pages)
		cr_assert_geq(t_file_wait_count(d.err, "again from the ring", 1, 10000), 1,
			      "busd never noticed that the page cache lost the data it wrote");
	/* The disk works again: the topic recovers, the producer goes on, and
	 * bus_pub_sync() acknowledges everything. */
	loop_limit(0);
	last = next + 1000;
	expect_recovery(&d, b, p, tag, seed, next, last);
	bus_pub_close(p);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
	live = NULL;
	/* What the disk holds, not what the page cache remembers. */
	unmount(d.state);
	cr_assert_eq(mount(dev, d.state, "ext4", 0, "errors=continue"), 0, "%s", strerror(errno));
	remember_mount(d.state);
	snprintf(why, sizeof(why), "fsync %s: read back after a remount (bus_pub_sync "
		 "acknowledged events 1..%llu; the disk failed while %llu..%llu were written)",
		 tag, (unsigned long long)last, (unsigned long long)acked + 1,
		 (unsigned long long)next - 1);
	log_expect(dir, seed, 1, last, why);
	unmount(d.state);
	close(loop_fd);
	loop_fd = -1;
	unmount(imgdir);
}

Test(limits, a_log_disk_that_fails_with_eio_end_to_end_fsync_always)
{
	eio_scenario(BUS_FSYNC_ALWAYS, "always", 0);
}

Test(limits, a_log_disk_that_fails_with_eio_end_to_end_fsync_interval)
{
	eio_scenario(BUS_FSYNC_INTERVAL, "interval", 0);
}

/* Under fsync always, even pages the kernel dropped after the failure are
 * not lost: the ring still holds their events (flushed has not moved). */
Test(limits, a_log_disk_that_fails_with_eio_and_drops_the_pages_loses_nothing_fsync_always)
{
	eio_scenario(BUS_FSYNC_ALWAYS, "dropped", 1);
}

/* ------------------------------------------------------------------------ */
/* Limits                                                                   */
/* ------------------------------------------------------------------------ */

Test(limits, consumer_slots_per_topic_eusers_names_the_limit)
{
	static struct t_busd d;
	struct bus_sub *subs[BUS_CONSUMERS_DEFAULT + 1], *extra;
	struct bus_topic_opts small = { .ring_size = 4096, .max_consumers = 2 };
	char msg[PROTO_ERR_MAX], path[800];
	struct bus *b;
	struct out o;
	int r;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	live = &d;
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "many", NULL), 0, "%s", bus_errmsg());
	for (unsigned i = 0; i < BUS_CONSUMERS_DEFAULT; i++)
		cr_assert_eq(bus_sub_attach(b, "many", NULL, &subs[i]), 0, "consumer %u: %s", i,
			     bus_errmsg());
	r = bus_sub_attach(b, "many", NULL, &extra);
	snprintf(msg, sizeof(msg), "%s", bus_errmsg());
	cr_assert_eq(r, -EUSERS, "%d (%s)", r, msg);
	cr_assert(has(msg, "'many'") && has(msg, "all 64 consumer slots are taken"),
		  "does not name the limit: %s", msg);
	cr_assert(has(msg, "max_consumers") && has(msg, "--consumers"),
		  "does not say how to raise it: %s", msg);
	cr_log_info("consumer slots: %s", msg);
	/* A slot that frees is taken again. */
	bus_sub_close(subs[7]);
	cr_assert_eq(bus_sub_attach(b, "many", NULL, &subs[7]), 0, "%s", bus_errmsg());
	for (unsigned i = 0; i < BUS_CONSUMERS_DEFAULT; i++)
		bus_sub_close(subs[i]);

	/* The limit chosen at creation, from the command line. */
	BUS(&o, &d, "create", "two", "--consumers", "2");
	expect_exit(&o, 0);
	done(&o);
	cr_assert_eq(bus_sub_attach(b, "two", NULL, &subs[0]), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_attach(b, "two", NULL, &subs[1]), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_attach(b, "two", NULL, &extra), -EUSERS);
	cr_assert(has(bus_errmsg(), "all 2 consumer slots"), "%s", bus_errmsg());
	bus_sub_close(subs[0]);
	bus_sub_close(subs[1]);
	bus_disconnect(b);

	/* Without busd (a segment opened directly), the same code. */
	snprintf(path, sizeof(path), "%s/direct", t_dir());
	cr_assert_eq(bus_topic_create(path, &small), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_open(path, NULL, &subs[0]), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_open(path, NULL, &subs[1]), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_open(path, NULL, &extra), -EUSERS);
	cr_assert(has(bus_errmsg(), "all 2 consumer slots"), "%s", bus_errmsg());
	bus_sub_close(subs[0]);
	bus_sub_close(subs[1]);
	cr_assert_eq(bus_topic_remove(path), 0);
	cr_assert_eq(t_busd_stop(&d), 0);
	live = NULL;
}

static int hold_producer(void *arg)
{
	struct fill_ctl *c = arg;
	struct bus_pub *p;
	struct bus *b;
	int r;

	if ((r = bus_connect(c->dir, &b)) < 0 || (r = bus_pub_attach(b, c->topic, &p)) < 0)
		return t_fail("producer: %d (%s)", r, bus_errmsg());
	atomic_store(&c->ready, 1);
	while (!atomic_load(&c->go))
		t_nap_us(1000);
	bus_pub_close(p);
	bus_disconnect(b);
	return 0;
}

Test(limits, one_producer_per_topic_ebusy_names_the_holder)
{
	static struct t_busd d;
	struct fill_ctl *c = t_shared(sizeof(*c));
	struct bus_pub *p;
	struct bus *b;
	char pid[32], msg[PROTO_ERR_MAX];
	pid_t holder;
	int r;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	live = &d;
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "one", NULL), 0, "%s", bus_errmsg());
	bus_disconnect(b);
	snprintf(c->dir, sizeof(c->dir), "%s", d.dir);
	snprintf(c->topic, sizeof(c->topic), "one");
	holder = t_fork(hold_producer, c);
	for (uint64_t end = t_now_ns() + 10 * SEC; !atomic_load(&c->ready) && t_now_ns() < end;)
		t_nap_us(1000);
	cr_assert_eq(atomic_load(&c->ready), 1);

	b = connect_to(&d);
	r = bus_pub_attach(b, "one", &p);
	snprintf(msg, sizeof(msg), "%s", bus_errmsg());
	snprintf(pid, sizeof(pid), "pid %d", (int)holder);
	cr_assert_eq(r, -EBUSY, "%d (%s)", r, msg);
	cr_assert(has(msg, "'one' already has a producer") && has(msg, pid),
		  "does not name the holder (%s): %s", pid, msg);
	cr_assert(has(msg, "one producer at a time"), "does not name the limit: %s", msg);
	cr_log_info("second producer: %s", msg);
	atomic_store(&c->go, 1);
	cr_assert_eq(t_wait_pid(holder), 0);
	/* Free again once the holder closed. */
	cr_assert_eq(bus_pub_attach(b, "one", &p), 0, "%s", bus_errmsg());
	bus_pub_close(p);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
	live = NULL;
}

#define HANDLES 1024   /* busd's max_handles: producers + consumers per connection */

Test(limits, producers_and_consumers_per_connection_emfile_names_the_limit)
{
	static struct t_busd d;
	struct bus_topic_opts o = { .ring_size = 4096, .max_consumers = HANDLES + 8 };
	struct bus_sub **subs = calloc(HANDLES, sizeof(*subs)), *extra;
	struct bus_pub *p, *p2;
	char msg[PROTO_ERR_MAX];
	struct bus *b, *b2;
	int r;

	cr_assert_not_null(subs);
	cr_assert_eq(t_busd_start(&d, NULL), 0);
	live = &d;
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "wide", &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, "other", &o), 0, "%s", bus_errmsg());
	/* One producer and 1023 consumers: the connection is full. */
	cr_assert_eq(bus_pub_attach(b, "wide", &p), 0, "%s", bus_errmsg());
	for (int i = 0; i < HANDLES - 1; i++)
		cr_assert_eq(bus_sub_attach(b, "wide", NULL, &subs[i]), 0, "consumer %d: %s", i,
			     bus_errmsg());
	r = bus_sub_attach(b, "wide", NULL, &extra);
	snprintf(msg, sizeof(msg), "%s", bus_errmsg());
	cr_assert_eq(r, -EMFILE, "%d (%s)", r, msg);
	cr_assert(has(msg, "1024 producers and consumers") && has(msg, "per connection"),
		  "does not name the limit: %s", msg);
	cr_assert(has(msg, "another connection"), "does not say how to get more: %s", msg);
	cr_log_info("handles per connection: %s", msg);
	cr_assert_eq(bus_pub_attach(b, "other", &p2), -EMFILE, "%s", bus_errmsg());
	cr_assert(has(bus_errmsg(), "1024 producers and consumers"), "%s", bus_errmsg());

	/* Another connection has its own 1024. */
	b2 = connect_to(&d);
	cr_assert_eq(bus_sub_attach(b2, "wide", NULL, &extra), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b2, "other", &p2), 0, "%s", bus_errmsg());
	bus_pub_close(p2);
	bus_sub_close(extra);
	bus_disconnect(b2);
	/* A closed handle makes room on the first. */
	bus_sub_close(subs[0]);
	cr_assert_eq(bus_sub_attach(b, "wide", NULL, &subs[0]), 0, "%s", bus_errmsg());
	for (int i = 0; i < HANDLES - 1; i++)
		bus_sub_close(subs[i]);
	bus_pub_close(p);
	free(subs);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
	live = NULL;
}

Test(limits, connections_beyond_max_clients_are_refused_naming_the_option)
{
	static struct t_busd d;
	struct bus *a, *b, *c;
	char msg[PROTO_ERR_MAX];
	int r = 0;

	cr_assert_eq(t_busd_start(&d, "--max-clients", "2", NULL), 0);
	live = &d;
	a = connect_to(&d);
	b = connect_to(&d);
	r = bus_connect(d.dir, &c);
	snprintf(msg, sizeof(msg), "%s", bus_errmsg());
	cr_assert_lt(r, 0, "a third connection was accepted with --max-clients 2");
	cr_assert(has(msg, "--max-clients"), "%d: does not name the limit: %s", r, msg);
	cr_log_info("connection refused: %d (%s): %s", r, strerror(-r), msg);
	cr_assert_eq(t_file_wait_count(d.err, "refusing a connection: 2 clients connected, the "
				       "limit (--max-clients)", 1, 2000), 1);
	/* The two connected are unaffected; one leaving makes room. */
	cr_assert_eq(bus_ping(a), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_ping(b), 0, "%s", bus_errmsg());
	bus_disconnect(b);
	for (uint64_t end = t_now_ns() + 5 * SEC; t_now_ns() < end; t_nap_us(20000))
		if ((r = bus_connect(d.dir, &c)) == 0)
			break;
	cr_assert_eq(r, 0, "no room after a client left: %s", bus_errmsg());
	cr_assert_eq(bus_ping(c), 0, "%s", bus_errmsg());
	bus_disconnect(c);
	bus_disconnect(a);
	cr_assert_eq(t_busd_stop(&d), 0);
	live = NULL;
}

/* Descriptors busd has open. */
static int open_fds(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	return t_count_files(path, "");
}

Test(limits, busd_out_of_descriptors_names_rlimit_nofile)
{
	static struct t_busd d;
	struct bus_topic_opts o = { .ring_size = 4096 };
	struct rlimit rl;
	struct bus_sub *s;
	char name[32], msg[PROTO_ERR_MAX];
	struct bus *b;
	int n, r = 0, base;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	live = &d;
	b = connect_to(&d);
	/* busd has no limit of its own on topics: 200 are fine. */
	for (n = 0; n < 200; n++) {
		snprintf(name, sizeof(name), "a%03d", n);
		cr_assert_eq(bus_create(b, name, &o), 0, "topic %d: %s", n, bus_errmsg());
	}
	/* It keeps two descriptors per topic: allow it 20 more. */
	base = open_fds(d.pid);
	rl.rlim_cur = rl.rlim_max = (rlim_t)base + 20;
	if (prlimit(d.pid, RLIMIT_NOFILE, &rl, NULL) < 0)
		cr_skip_test("prlimit(busd): %s", strerror(errno));
	for (n = 0; n < 64; n++) {
		snprintf(name, sizeof(name), "b%02d", n);
		if ((r = bus_create(b, name, &o)) < 0)
			break;
	}
	snprintf(msg, sizeof(msg), "%s", bus_errmsg());
	cr_assert_eq(r, -EMFILE, "topic %d: %d (%s)", n, r, msg);
	cr_assert(n >= 8 && n <= 10, "%d topics fit in 20 descriptors", n);
	cr_assert(has(msg, "file descriptors") && has(msg, "RLIMIT_NOFILE") &&
		  has(msg, "LimitNOFILE") && has(msg, "ulimit -Hn"),
		  "does not name the limit or how to raise it: %s", msg);
	cr_log_info("busd out of descriptors after %d more topics: %s", n, msg);
	cr_assert_eq(files_with(d.shm, ".tmp."), 0);
	cr_assert_eq(t_count_files(d.shm, "bus-"), 1 + 2 * (200 + n));
	/* Handing a topic to a consumer takes two more: the same message. */
	r = bus_sub_attach(b, "a000", NULL, &s);
	cr_assert_eq(r, -EMFILE, "%d (%s)", r, bus_errmsg());
	cr_assert(has(bus_errmsg(), "RLIMIT_NOFILE"), "%s", bus_errmsg());
	/* busd goes on; a deleted topic makes room. */
	cr_assert_eq(bus_ping(b), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_delete(b, "a000"), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, name, &o), 0, "%s", bus_errmsg());
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
	live = NULL;
}
