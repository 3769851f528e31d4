/* SPDX-License-Identifier: MIT */
/*
 * t_mount.h — mounts for fault tests (Criterion suites only: it asserts and
 * skips). A test first moves into a mount namespace of its own with
 * private propagation, so its mounts vanish with it whatever happens; the
 * suite's .fini calls t_unmount_all() anyway. Mounting needs root
 * (CAP_SYS_ADMIN); where it is refused the test is skipped, saying so.
 *
 * Header-only, static: each suite that includes it has its own table.
 */
#ifndef T_MOUNT_H
#define T_MOUNT_H

#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>

#define T_MOUNTS_MAX 8

static char t_mounts[T_MOUNTS_MAX][700];
static int t_nmounts;

/* A mount namespace of our own, nothing propagating back to the host. */
static inline void private_mounts(void)
{
	if (unshare(CLONE_NEWNS) < 0) {
		if (errno == EPERM)
			cr_skip_test("mounting a test file system needs root (CAP_SYS_ADMIN): "
				     "unshare(CLONE_NEWNS) = EPERM");
		cr_assert_fail("unshare(CLONE_NEWNS): %s", strerror(errno));
	}
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "%s", strerror(errno));
}

static inline void remember_mount(const char *dir)
{
	cr_assert_lt(t_nmounts, T_MOUNTS_MAX);
	snprintf(t_mounts[t_nmounts++], sizeof(t_mounts[0]), "%s", dir);
}

static inline void mount_tmpfs(const char *dir, const char *opts)
{
	if (mount("tmpfs", dir, "tmpfs", 0, opts) < 0) {
		if (errno == EPERM)
			cr_skip_test("mount -t tmpfs: EPERM (needs root)");
		cr_assert_fail("mount tmpfs on %s: %s", dir, strerror(errno));
	}
	remember_mount(dir);
}

static inline void unmount(const char *dir)
{
	cr_assert_eq(umount2(dir, 0), 0, "umount %s: %s", dir, strerror(errno));
	for (int i = 0; i < t_nmounts; i++)
		if (!strcmp(t_mounts[i], dir)) {
			memmove(&t_mounts[i], &t_mounts[i + 1],
				(size_t)(t_nmounts - i - 1) * sizeof(t_mounts[0]));
			t_nmounts--;
			break;
		}
}

/* For a .fini: detach whatever is still mounted, innermost first. */
static inline void t_unmount_all(void)
{
	while (t_nmounts > 0)
		umount2(t_mounts[--t_nmounts], MNT_DETACH);
}

#endif
