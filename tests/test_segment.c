/* SPDX-License-Identifier: MIT */
/* Description: topic segments — create, validate on open, remove, read-only
 * consumers, space reserved up front. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus.h"
#include "layout.h"
#include "t_util.h"

TestSuite(segment, .init = t_init, .fini = t_fini, .timeout = 60);

static void patch(const char *path, off_t off, const void *bytes, size_t n)
{
	int fd = open(path, O_RDWR);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, bytes, n, off), (ssize_t)n);
	close(fd);
}

static int open_sub(const char *t)
{
	struct bus_sub *s = NULL;
	int r = bus_sub_open(t, NULL, &s);

	bus_sub_close(s);
	return r;
}

Test(segment, create_open_remove_leaves_nothing)
{
	const char *t = t_topic("a");
	char cons[600];
	struct stat st;
	struct bus_topic_info ti;

	cr_assert_eq(bus_topic_create(t, NULL), 0, "%s", bus_errmsg());
	cr_assert_eq(stat(t, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq((uint64_t)st.st_size, SEG_HDR_SIZE + BUS_RING_DEFAULT);
	snprintf(cons, sizeof(cons), "%s@cons", t);
	cr_assert_eq(stat(cons, &st), 0);
	cr_assert_eq(bus_topic_stat(t, &ti, NULL, 0), 0);
	cr_assert_eq(ti.ring_size, BUS_RING_DEFAULT);
	cr_assert_eq(ti.max_event, BUS_RING_DEFAULT / 4);
	cr_assert_eq(ti.max_consumers, BUS_CONSUMERS_DEFAULT);
	cr_assert_eq(ti.first_seq, 1);
	cr_assert_eq(ti.next_seq, 1);
	cr_assert_eq(bus_topic_remove(t), 0, "%s", bus_errmsg());
	cr_assert_eq(stat(t, &st), -1);
	cr_assert_eq(stat(cons, &st), -1);
}

Test(segment, create_twice_is_eexist)
{
	const char *t = t_topic("dup");

	cr_assert_eq(bus_topic_create(t, NULL), 0);
	cr_assert_eq(bus_topic_create(t, NULL), -EEXIST);
	cr_assert(strstr(bus_errmsg(), "already exists"), "%s", bus_errmsg());
	cr_assert_eq(bus_topic_remove(t), 0);
}

Test(segment, bad_geometry_is_einval_with_a_message)
{
	const char *t = t_topic("geo");
	struct bus_topic_opts o = { 0 };

	o.ring_size = 3000;
	cr_assert_eq(bus_topic_create(t, &o), -EINVAL);
	cr_assert(strstr(bus_errmsg(), "power of two"), "%s", bus_errmsg());
	o.ring_size = 2048;
	cr_assert_eq(bus_topic_create(t, &o), -EINVAL);
	o.ring_size = 65536;
	o.max_event = 65536 / 2 + 1;
	cr_assert_eq(bus_topic_create(t, &o), -EINVAL);
	cr_assert(strstr(bus_errmsg(), "half the ring"), "%s", bus_errmsg());
	o.max_event = 0;
	o.max_consumers = BUS_CONSUMERS_MAX + 1;
	cr_assert_eq(bus_topic_create(t, &o), -EINVAL);
	o.max_consumers = 0;
	o.flags = 0x80;
	cr_assert_eq(bus_topic_create(t, &o), -EINVAL);
	o.flags = 0;
	o.mode = 01777;
	cr_assert_eq(bus_topic_create(t, &o), -EINVAL);
	cr_assert_eq(access(t, F_OK), -1, "a failed create left a file");
	cr_assert_eq(bus_topic_create("", NULL), -EINVAL);
}

Test(segment, max_event_may_be_half_the_ring)
{
	const char *t = t_topic("half");
	struct bus_topic_opts o = { .ring_size = 8192, .max_event = 4096 };
	struct bus_pub *p;
	struct bus_sub *s;
	struct bus_event ev;
	static char big[4096];
	int i;

	cr_assert_eq(bus_topic_create(t, &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_open(t, &p), 0);
	cr_assert_eq(bus_sub_open(t, NULL, &s), 0);
	for (i = 0; i < 5; i++) {
		t_fill(big, sizeof(big), 7, (uint64_t)i + 1);
		cr_assert_eq(bus_pub_publish(p, 0, big, sizeof(big), 0), 0, "%s", bus_errmsg());
		cr_assert_eq(bus_sub_next(s, &ev), 1);
		cr_assert_eq(ev.len, 4096);
		cr_assert_eq(t_check(ev.data, ev.len, 7, ev.seq), 0);
		cr_assert_eq(bus_sub_confirm(s, &ev), 0);
	}
	bus_sub_close(s);
	bus_pub_close(p);
	/* A fresh producer finds its place even when the ring holds one event. */
	cr_assert_eq(bus_pub_open(t, &p), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_next_seq(p), 6);
	bus_pub_close(p);
	cr_assert_eq(bus_topic_remove(t), 0);
}

Test(segment, open_rejects_wrong_magic_version_geometry_and_truncation)
{
	const char *t = t_topic("bad");
	struct bus_pub *p = NULL;
	uint64_t v64;
	uint32_t v32;

	cr_assert_eq(bus_topic_create(t, &(struct bus_topic_opts){ .ring_size = 65536 }), 0);

	v64 = 0x1122334455667788ull; /* magic */
	patch(t, offsetof(struct seg_hdr, magic), &v64, 8);
	cr_assert_eq(open_sub(t), -EPROTO);
	cr_assert(strstr(bus_errmsg(), "magic"), "%s", bus_errmsg());
	cr_assert_eq(bus_pub_open(t, &p), -EPROTO);
	v64 = SEG_MAGIC;
	patch(t, offsetof(struct seg_hdr, magic), &v64, 8);
	cr_assert_eq(open_sub(t), 0, "%s", bus_errmsg());

	v32 = SEG_VERSION + 1;
	patch(t, offsetof(struct seg_hdr, version), &v32, 4);
	cr_assert_eq(open_sub(t), -EPROTO);
	cr_assert(strstr(bus_errmsg(), "version"), "%s", bus_errmsg());
	v32 = SEG_VERSION;
	patch(t, offsetof(struct seg_hdr, version), &v32, 4);

	v64 = 65537; /* not a power of two */
	patch(t, offsetof(struct seg_hdr, ring_size), &v64, 8);
	cr_assert_eq(open_sub(t), -EINVAL);
	cr_assert(strstr(bus_errmsg(), "geometry"), "%s", bus_errmsg());
	v64 = 1ull << 40; /* larger than anything we map */
	patch(t, offsetof(struct seg_hdr, ring_size), &v64, 8);
	cr_assert_eq(open_sub(t), -EINVAL);
	v64 = 131072; /* plausible, but the file is smaller */
	patch(t, offsetof(struct seg_hdr, ring_size), &v64, 8);
	cr_assert_eq(open_sub(t), -EPROTO);
	cr_assert(strstr(bus_errmsg(), "truncated"), "%s", bus_errmsg());
	v64 = 65536;
	patch(t, offsetof(struct seg_hdr, ring_size), &v64, 8);

	v32 = 65536; /* max_event > ring/2 */
	patch(t, offsetof(struct seg_hdr, max_event), &v32, 4);
	cr_assert_eq(open_sub(t), -EINVAL);
	v32 = 16384;
	patch(t, offsetof(struct seg_hdr, max_event), &v32, 4);

	v32 = 0; /* no consumer slots */
	patch(t, offsetof(struct seg_hdr, max_consumers), &v32, 4);
	cr_assert_eq(open_sub(t), -EINVAL);
	v32 = 64;
	patch(t, offsetof(struct seg_hdr, max_consumers), &v32, 4);
	cr_assert_eq(open_sub(t), 0, "%s", bus_errmsg());

	cr_assert_eq(truncate(t, 4096 + 1000), 0);
	cr_assert_eq(open_sub(t), -EPROTO);
	cr_assert(strstr(bus_errmsg(), "truncated"), "%s", bus_errmsg());
	cr_assert_eq(truncate(t, 100), 0);
	cr_assert_eq(open_sub(t), -EPROTO);
	cr_assert_eq(truncate(t, 0), 0);
	cr_assert_eq(open_sub(t), -EPROTO);
	/* remove refuses what is not a valid segment; clean up by hand */
	cr_assert_eq(bus_topic_remove(t), -EPROTO);
	unlink(t);
	{
		char c[600];

		snprintf(c, sizeof(c), "%s@cons", t);
		unlink(c);
	}
}

Test(segment, truncated_consumer_area_is_eproto)
{
	const char *t = t_topic("cbad");
	char c[600];

	cr_assert_eq(bus_topic_create(t, NULL), 0);
	snprintf(c, sizeof(c), "%s@cons", t);
	cr_assert_eq(truncate(c, 4096), 0);
	cr_assert_eq(open_sub(t), -EPROTO);
	cr_assert(strstr(bus_errmsg(), "consumer area"), "%s", bus_errmsg());
	unlink(c);
	cr_assert_eq(open_sub(t), -ENOENT);
	unlink(t);
}

Test(segment, missing_topic_is_enoent_and_garbage_file_is_eproto)
{
	const char *t = t_topic("nope");
	struct bus_pub *p;
	int fd;

	cr_assert_eq(open_sub(t), -ENOENT);
	cr_assert(strstr(bus_errmsg(), "no topic"), "%s", bus_errmsg());
	cr_assert_eq(bus_pub_open(t, &p), -ENOENT);
	cr_assert_eq(bus_topic_remove(t), -ENOENT);
	fd = open(t, O_CREAT | O_WRONLY, 0600);
	cr_assert_eq(write(fd, "hello, not a segment", 20), 20);
	close(fd);
	cr_assert_eq(open_sub(t), -EPROTO);
	cr_assert_eq(bus_topic_remove(t), -EPROTO);
	cr_assert_eq(access(t, F_OK), 0, "remove must not unlink a foreign file");
	unlink(t);
}

Test(segment, symlink_is_not_followed)
{
	const char *t = t_topic("real");
	const char *l = t_topic("link");

	cr_assert_eq(bus_topic_create(t, NULL), 0);
	cr_assert_eq(symlink(t, l), 0);
	cr_assert_eq(open_sub(l), -ELOOP);
	unlink(l);
	cr_assert_eq(symlink("/tmp/bus-test-nonexistent-target", l), 0);
	cr_assert_eq(bus_topic_create(l, NULL), -EEXIST);
	cr_assert_eq(access("/tmp/bus-test-nonexistent-target", F_OK), -1);
	unlink(l);
	cr_assert_eq(bus_topic_remove(t), 0);
}

Test(segment, mode_is_applied_despite_umask)
{
	const char *t = t_topic("mode");
	struct stat st;
	mode_t old = umask(077);

	char cons[600];

	cr_assert_eq(bus_topic_create(t, &(struct bus_topic_opts){ .mode = 0640 }), 0);
	umask(old);
	cr_assert_eq(stat(t, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0640);
	/* Who may read (consume) may write a cursor. */
	snprintf(cons, sizeof(cons), "%s@cons", t);
	cr_assert_eq(stat(cons, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0660);
	cr_assert_eq(bus_topic_remove(t), 0);
}

/* A consumer maps the ring read-only from an O_RDONLY descriptor: writing to
 * it must fault. The child tries; it must die with SIGSEGV. */
static const char *ro_topic;

static int write_ring(void *arg)
{
	struct bus_sub *s;
	struct bus_event ev;

	/* Die of the fault itself, not of a sanitizer's handler for it. */
	signal(SIGSEGV, SIG_DFL);
	if (bus_sub_open(ro_topic, NULL, &s) < 0)
		return 2;
	if (bus_sub_next(s, &ev) != 1)
		return 3;
	(void)arg;
	((volatile char *)ev.data)[0] = 'X';  /* the ring, through the consumer's view */
	return 0; /* not reached if the kernel enforces read-only */
}

static int write_header(void *arg)
{
	struct bus_sub *s;
	struct bus_topic_info ti;
	int fd;
	void *m;

	(void)arg;
	signal(SIGSEGV, SIG_DFL);
	if (bus_sub_open(ro_topic, NULL, &s) < 0)
		return 2;
	/* And no way to upgrade: the descriptor is O_RDONLY. */
	fd = open(ro_topic, O_RDONLY);
	m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m != MAP_FAILED)
		return 4;
	m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	if (mprotect(m, 4096, PROT_READ | PROT_WRITE) == 0)
		return 5;
	(void)bus_topic_stat(ro_topic, &ti, NULL, 0);
	((volatile uint64_t *)m)[16] = 0; /* head: a write through the read-only map */
	return 0;
}

Test(segment, consumer_writing_to_the_ring_or_header_dies_with_sigsegv)
{
	struct bus_pub *p;

#ifdef __SANITIZE_THREAD__
	cr_skip_test("TSan builds map consumers read-write (seg.c: alias_find); "
		     "the read-only enforcement is tested by the other builds");
#endif
	ro_topic = t_topic("ro");
	cr_assert_eq(bus_topic_create(ro_topic, NULL), 0);
	cr_assert_eq(bus_pub_open(ro_topic, &p), 0);
	cr_assert_eq(bus_pub_publish(p, 1, "payload", 7, 0), 0);
	cr_assert_eq(t_wait_pid(t_fork(write_ring, (void *)1)), 128 + SIGSEGV);
	cr_assert_eq(t_wait_pid(t_fork(write_header, NULL)), 128 + SIGSEGV);
	bus_pub_close(p);
	cr_assert_eq(bus_topic_remove(ro_topic), 0);
}

/* The pages are reserved at creation: a segment that does not fit fails now,
 * with -ENOSPC and a hint, never with SIGBUS later. A small tmpfs is mounted
 * when we may (CI runs as root); otherwise a ring larger than /dev/shm. */
Test(segment, too_large_for_the_tmpfs_is_enospc_at_creation)
{
	char mnt[600], t[700];
	int mounted;

	snprintf(mnt, sizeof(mnt), "%s/small", t_dir());
	cr_assert_eq(mkdir(mnt, 0700), 0);
	mounted = mount("bus-test", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m") == 0;
	if (mounted) {
		snprintf(t, sizeof(t), "%s/big", mnt);
		cr_assert_eq(bus_topic_create(t, &(struct bus_topic_opts){ .ring_size = 4u << 20 }),
			     -ENOSPC);
		cr_assert(strstr(bus_errmsg(), "no space"), "%s", bus_errmsg());
		cr_assert(strstr(bus_errmsg(), "64 MiB"), "a sizing hint: %s", bus_errmsg());
		/* Nothing half-created is left behind. */
		cr_assert_eq(rmdir(mnt), -1);  /* still mounted */
		cr_assert_eq(bus_topic_create(t, &(struct bus_topic_opts){ .ring_size = 65536 }), 0);
		cr_assert_eq(bus_topic_remove(t), 0);
		cr_assert_eq(umount(mnt), 0);
	} else {
		int e = errno;

		rmdir(mnt);
		cr_skip_test("cannot mount a small tmpfs here (%s); run as root (CI does)",
			     strerror(e));
	}
	cr_assert_eq(rmdir(mnt), 0);
}
