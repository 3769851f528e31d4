/* SPDX-License-Identifier: MIT */
/* wait.h — futexes, membarrier and clocks for the slow paths. */
#ifndef BUS_WAIT_H
#define BUS_WAIT_H

#include <stdint.h>
#include <time.h>

/* FUTEX_WAIT on a shared (not private) word; works on read-only mappings.
 * rel_ns < 0 waits forever. Returns 0 (woken or value changed), -ETIMEDOUT,
 * -EINTR. */
int futex_wait_shared(const _Atomic uint32_t *addr, uint32_t val, int64_t rel_ns);
/* FUTEX_WAKE everyone waiting on the word. */
int futex_wake_all(_Atomic uint32_t *addr);

/*
 * The heavy side of an asymmetric barrier: after it returns, every thread of
 * every process registered with membarrier_register() has executed a full
 * barrier, so their earlier stores are visible and their later loads see our
 * earlier stores. Returns 0, or -errno if membarrier is not available (the
 * caller then falls back to polling).
 */
int membarrier_heavy(void);
/* Register this process so that membarrier_heavy() reaches it; returns 1 if
 * the light side (a compiler barrier) may be used, 0 if not. Idempotent. */
int membarrier_register(void);

/* 1 if a process with this pid exists (or may: EPERM), 0 if not or pid 0.
 * Slot owners and producers are judged by it; it assumes one PID namespace. */
int pid_alive(uint32_t pid);

uint64_t mono_ns(void);
uint64_t real_ns(void);

#endif
