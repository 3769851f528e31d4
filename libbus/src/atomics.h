/* SPDX-License-Identifier: MIT */
/*
 * atomics.h — the one place where raw atomic_* calls live.
 *
 * Every call site names the ordering it needs and what it pairs with; these
 * wrappers only make the ordering visible in the name. Shared-memory fields
 * are _Atomic; nothing here relies on volatile.
 */
#ifndef BUS_ATOMICS_H
#define BUS_ATOMICS_H

#include <stdatomic.h>
#include <stdint.h>

#define at_load_relaxed(p)     atomic_load_explicit((p), memory_order_relaxed)
#define at_load_acquire(p)     atomic_load_explicit((p), memory_order_acquire)
#define at_store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define at_store_release(p, v) atomic_store_explicit((p), (v), memory_order_release)

#define at_cas(p, expp, v) \
	atomic_compare_exchange_strong_explicit((p), (expp), (v), \
		memory_order_seq_cst, memory_order_seq_cst)
#define at_fetch_add(p, v)     atomic_fetch_add_explicit((p), (v), memory_order_seq_cst)

/* Orders earlier loads before later loads and stores. */
#define at_fence_acquire()     atomic_thread_fence(memory_order_acquire)
/* Orders earlier loads and stores before later stores. */
#define at_fence_release()     atomic_thread_fence(memory_order_release)
/* Full barrier: also orders earlier stores before later loads (Dekker). */
#define at_fence_seq_cst()     atomic_thread_fence(memory_order_seq_cst)
/* Keeps the compiler from moving memory accesses across; no CPU fence. The
 * light side of an asymmetric barrier (the heavy side is membarrier(2)). */
#define at_compiler_barrier()  atomic_signal_fence(memory_order_seq_cst)

static inline void at_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* Atomically raise *p to v if it is lower (a CAS loop; slow paths only). */
/* Raise *p to v. Always a full barrier (callers announce with it, W2, and
 * rely on it to order their later loads): when there is nothing to store,
 * an explicit seq_cst fence stands in for the CAS. */
static inline void at_max_u32(_Atomic uint32_t *p, uint32_t v)
{
	uint32_t cur = atomic_load_explicit(p, memory_order_relaxed);
	/* Generations wrap: "lower" is a signed distance, as for TCP sequences. */
	while ((int32_t)(v - cur) > 0) {
		if (at_cas(p, &cur, v))
			return;
	}
	atomic_thread_fence(memory_order_seq_cst);
}

#endif
