/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "atomics.h"
#include "wait.h"

int futex_wait_shared(const _Atomic uint32_t *addr, uint32_t val, int64_t rel_ns)
{
	struct timespec ts, *tsp = NULL;
	long r;

	if (rel_ns >= 0) {
		ts.tv_sec = rel_ns / 1000000000;
		ts.tv_nsec = rel_ns % 1000000000;
		tsp = &ts;
	}
	/* No FUTEX_PRIVATE_FLAG: the word is in a MAP_SHARED file mapping
	 * that other processes (and a different virtual address) share. */
	r = syscall(SYS_futex, addr, FUTEX_WAIT, val, tsp, NULL, 0);
	if (r < 0) {
		if (errno == EAGAIN)
			return 0;
		return -errno;
	}
	return 0;
}

int futex_wake_all(_Atomic uint32_t *addr)
{
	long r = syscall(SYS_futex, addr, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);

	return r < 0 ? -errno : (int)r;
}

/* -1 unknown, 0 unavailable, 1 registered; for process mb_pid. A forked
 * child inherits the cache but must not trust the parent's registration to
 * have come along (registration belongs to the process's mm): it registers
 * itself. Registering twice is harmless. */
static _Atomic int mb_state = -1;
static _Atomic pid_t mb_pid;

int membarrier_register(void)
{
	int st = at_load_relaxed(&mb_state);
	long q;

	if (st >= 0 && at_load_relaxed(&mb_pid) == getpid())
		return st;
	q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
	st = q > 0 && (q & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
	     syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0;
	at_store_relaxed(&mb_state, st);
	at_store_relaxed(&mb_pid, getpid());
	return st;
}

int membarrier_heavy(void)
{
	/* Our own accesses first: the syscall is a full barrier for us too, but
	 * say so explicitly rather than rely on it. */
	at_fence_seq_cst();
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) < 0)
		return -errno;
	return 0;
}

int pid_alive(uint32_t pid)
{
	return pid && (kill((pid_t)pid, 0) == 0 || errno != ESRCH);
}

uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
