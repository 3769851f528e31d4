/* SPDX-License-Identifier: MIT */
/*
 * limits.c — what this machine allows, measured in the same run as bus:
 * the classic fixed-slot SPSC ring, the cache-line round trip between the
 * two cores, the futex wake-to-run latency across processes, and cold
 * memcpy bandwidth.
 */
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define CACHELINE 64

/* ------------------------------------------------------------------------ */
/* The classic fixed-slot SPSC ring                                         */
/* ------------------------------------------------------------------------ */

/*
 * Lamport's ring with cached indices, as found in most code bases: 64-byte
 * slots; each side keeps a private copy of the other's index and rereads
 * the shared one only when the copy says full (producer) or empty
 * (consumer). Both indices are published after every message (a release
 * store each: a plain mov on x86).
 *
 * The slot IS the message: w[0] = sequence number (the 8-byte header),
 * w[1..7] = 56 bytes of payload, verified like every other transport's
 * 64-byte message. 4096 slots (256 KiB) fit this machine's 1 MiB L2.
 *
 *   producer                              consumer
 *   write slot[head]                      cached_head = load_acquire(head) (A)
 *   store_release(head, head + 1)  (A)    read slot[tail]
 *   cached_tail = load_acquire(tail) (B)  store_release(tail, tail + 1)  (B)
 * A: the consumer sees the slot's bytes once it sees the new head.
 * B: the producer reuses a slot only after the consumer's reads of it.
 */
#ifndef SPSC_SLOTS
#define SPSC_SLOTS 4096u
#endif

struct spsc {
	_Alignas(CACHELINE) _Atomic uint64_t head;   /* producer writes */
	_Alignas(CACHELINE) _Atomic uint64_t tail;   /* consumer writes */
	_Alignas(CACHELINE) struct tp_shared sh;
	_Alignas(CACHELINE) uint64_t slot[SPSC_SLOTS][CACHELINE / 8];
};

static int spsc_prod(void *arg)
{
	struct spsc *q = arg;
	uint64_t head = 0, cached_tail = 0, seq = 0;
	struct tp_clock clk;
	int end = 0;

	if (wait_flag(&q->sh.ready, 10))
		return child_fail("spsc producer: consumer never got ready");
	tp_clock_start(&clk);
	for (;;) {
		for (unsigned i = 0; i < TP_CHECK; i++) {
			uint64_t *s;

			while (head - cached_tail == SPSC_SLOTS) {
				/* B: pairs with the consumer's release of tail */
				cached_tail = atomic_load_explicit(&q->tail,
								   memory_order_acquire);
				if (head - cached_tail == SPSC_SLOTS)
					cpu_relax();
			}
			s = q->slot[head & (SPSC_SLOTS - 1)];
			s[0] = end ? END_SEQ : seq++;
			memcpy(s + 1, pattern + 1, CACHELINE - 8);
			/* A: the slot's bytes before the index that shows it */
			atomic_store_explicit(&q->head, ++head, memory_order_release);
			if (end)
				return 0;
		}
		if (!tp_clock_tick(&clk, &q->sh, seq)) {
			q->sh.sent = seq;
			end = 1;   /* the next slot written is the end marker */
		}
	}
}

static int spsc_cons(void *arg)
{
	struct spsc *q = arg;
	uint64_t tail = 0, cached_head = 0;
	uint64_t tailx = pattern_tail_xor(CACHELINE);
	struct verify v = { 0 };

	atomic_store_explicit(&q->sh.ready, 1, memory_order_release);
	for (;;) {
		const uint64_t *s;

		while (tail == cached_head) {
			/* A: pairs with the producer's release of head */
			cached_head = atomic_load_explicit(&q->head, memory_order_acquire);
			if (tail == cached_head)
				cpu_relax();
		}
		s = q->slot[tail & (SPSC_SLOTS - 1)];
		if (s[0] == END_SEQ) {
			q->sh.t_end_ns = now_ns();
			q->sh.v = v;
			return 0;
		}
		verify_msg(&v, s, CACHELINE, tailx);
		/* B: our reads of the slot before the producer may reuse it */
		atomic_store_explicit(&q->tail, ++tail, memory_order_release);
	}
}

const unsigned spsc_slots = SPSC_SLOTS;

int limit_spsc(struct tp_run *r)
{
	struct spsc *q = shm_map(sizeof(*q));
	int rc;

	memset(r, 0, sizeof(*r));
	rc = run_pair(spsc_cons, spsc_prod, q, cfg.warm_s + cfg.tp_s + 20);
	if (!rc)
		rc = tp_finish(&q->sh, CACHELINE, 1, r);
	shm_unmap(q, sizeof(*q));
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Hiccups of a spinning vCPU                                              */
/* ------------------------------------------------------------------------ */

/*
 * Both CPUs spin reading the TSC back to back for cfg.lat_s; a gap between
 * two reads is time the vCPU did not run this loop (timer tick, VM exit,
 * host preemption). Busy-poll latency tails cannot be better than this.
 */
struct hiccup_shm {
	_Atomic uint32_t ready[2];
	struct hiccup_cpu cpu[2];
};

static int hiccup_run(struct hiccup_shm *h, int me)
{
	uint64_t end, prev, t, gaps = 0, lost = 0, max = 0;
	uint64_t small = ns_to_ticks(2000), big = ns_to_ticks(10000);

	/* start together: a gap on one CPU is often caused by the other */
	atomic_store_explicit(&h->ready[me], 1, memory_order_release);
	if (wait_flag(&h->ready[!me], 10))
		return child_fail("hiccup: other side never got ready");
	prev = tsc();
	end = prev + ns_to_ticks(cfg.lat_s * 1e9);
	while ((t = tsc()) < end) {
		uint64_t g = t - prev;

		prev = t;
		if (g > small) {
			lost += g;
			gaps += g > big;
			if (g > max)
				max = g;
		}
	}
	h->cpu[me].per_s = (double)gaps / cfg.lat_s;
	h->cpu[me].lost_pct = 100.0 * ticks_to_ns((int64_t)lost) / (cfg.lat_s * 1e9);
	h->cpu[me].max_us = ticks_to_ns((int64_t)max) / 1e3;
	return 0;
}

static int hiccup_prod(void *arg)
{
	return hiccup_run(arg, 0);
}

static int hiccup_cons(void *arg)
{
	return hiccup_run(arg, 1);
}

int limit_hiccup(struct hiccup_result *r)
{
	struct hiccup_shm *h = shm_map(sizeof(*h));
	int rc = run_pair(hiccup_cons, hiccup_prod, h, cfg.lat_s + 20);

	memcpy(r->cpu, h->cpu, sizeof(r->cpu));
	r->seconds = cfg.lat_s;
	shm_unmap(h, sizeof(*h));
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Cache-line round trip                                                    */
/* ------------------------------------------------------------------------ */

/*
 * One shared line: A (CPU 0) stores 2i+1 and spins until it reads 2i+2,
 * which B (CPU 1) stores once it has read 2i+1. A times each round trip
 * with the TSC. No pause in these spins: this is the hardware's floor.
 */
struct pingpong {
	_Alignas(CACHELINE) _Atomic uint64_t line;
	_Alignas(CACHELINE) _Atomic uint32_t ready;
	_Alignas(CACHELINE) struct lat_stats st;
	uint64_t n;
};

#define PP_WARM 10000u

static int pp_a(void *arg)
{
	struct pingpong *pp = arg;
	uint64_t n = pp->n + PP_WARM;
	int64_t *rtt = malloc(sizeof(*rtt) * pp->n);

	if (!rtt)
		return child_fail("out of memory");
	if (wait_flag(&pp->ready, 10))
		return child_fail("pingpong: B never got ready");
	for (uint64_t i = 0; i < n; i++) {
		uint64_t t0 = tscp(), t1;

		/* release/acquire: the line itself is the message */
		atomic_store_explicit(&pp->line, 2 * i + 1, memory_order_release);
		while (atomic_load_explicit(&pp->line, memory_order_acquire) != 2 * i + 2)
			;
		t1 = tscp();
		if (i >= PP_WARM)
			rtt[i - PP_WARM] = (int64_t)(t1 - t0);
	}
	lat_stats_ticks(rtt, pp->n, &pp->st);
	free(rtt);
	return 0;
}

static int pp_b(void *arg)
{
	struct pingpong *pp = arg;
	uint64_t n = pp->n + PP_WARM;

	atomic_store_explicit(&pp->ready, 1, memory_order_release);
	for (uint64_t i = 0; i < n; i++) {
		while (atomic_load_explicit(&pp->line, memory_order_acquire) != 2 * i + 1)
			;
		atomic_store_explicit(&pp->line, 2 * i + 2, memory_order_release);
	}
	return 0;
}

int limit_pingpong(uint64_t rounds, struct lat_stats *rtt)
{
	struct pingpong *pp = shm_map(sizeof(*pp));
	int rc;

	pp->n = rounds;
	rc = run_pair(pp_b, pp_a, pp, 30);
	*rtt = pp->st;
	shm_unmap(pp, sizeof(*pp));
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Futex wake-to-run across processes                                       */
/* ------------------------------------------------------------------------ */

/*
 * The sleeper (CPU 1) waits in FUTEX_WAIT on a shared word; the waker
 * (CPU 0), at cfg.lat_rate per second, stamps the TSC, bumps the word and
 * calls FUTEX_WAKE. The sleeper's first instruction after the syscall
 * returns takes its own stamp: wake-to-run = its stamp - the waker's.
 * Shared (not _PRIVATE) futex ops: the word lives in a MAP_SHARED mapping
 * used by two processes.
 */
struct futex_shm {
	_Alignas(CACHELINE) _Atomic uint32_t word;
	_Alignas(CACHELINE) _Atomic uint64_t stamp;
	_Atomic uint32_t done;
	_Atomic uint32_t ready;
	uint64_t n;              /* wakes to do */
	uint64_t not_slept;
	struct lat_stats wake_to_run, wake_call;
};

static long sys_futex(_Atomic uint32_t *uaddr, int op, uint32_t val,
		      const struct timespec *ts)
{
	return syscall(SYS_futex, uaddr, op, val, ts, NULL, 0);
}

static int fx_sleeper(void *arg)
{
	struct futex_shm *f = arg;
	int64_t *lat = malloc(sizeof(*lat) * f->n);
	uint32_t seen = atomic_load_explicit(&f->word, memory_order_acquire);
	size_t n = 0;

	if (!lat)
		return child_fail("out of memory");
	atomic_store_explicit(&f->ready, 1, memory_order_release);
	for (;;) {
		struct timespec to = { 1, 0 };
		long r = sys_futex(&f->word, FUTEX_WAIT, seen, &to);
		uint64_t t = tscp();
		uint32_t cur;

		if (r && errno != EAGAIN && errno != EINTR && errno != ETIMEDOUT)
			return child_fail("FUTEX_WAIT: %s", strerror(errno));
		/* acquire: pairs with the waker's release bump, so the stamp
		 * read below is the one written before this bump */
		cur = atomic_load_explicit(&f->word, memory_order_acquire);
		if (cur == seen)
			continue;     /* spurious or timed out: still waiting */
		seen = cur;
		if (atomic_load_explicit(&f->done, memory_order_relaxed))
			break;
		if (r) {
			/* The word changed before we slept: not a wake-up. */
			f->not_slept++;
			continue;
		}
		if (n < f->n)
			lat[n++] = (int64_t)(t - atomic_load_explicit(&f->stamp,
						memory_order_relaxed));
	}
	lat_stats_ticks(lat, n, &f->wake_to_run);
	free(lat);
	return 0;
}

static int fx_waker(void *arg)
{
	struct futex_shm *f = arg;
	int64_t *cost = malloc(sizeof(*cost) * f->n);
	uint64_t period = ns_to_ticks(1e9 / cfg.lat_rate), next;

	if (!cost)
		return child_fail("out of memory");
	if (wait_flag(&f->ready, 10))
		return child_fail("futex: sleeper never got ready");
	next = tsc() + period;
	for (uint64_t i = 0; i <= f->n; i++) {
		uint64_t t0, t1;

		while (tsc() < next)
			cpu_relax();
		next += period;
		if (i == f->n)
			atomic_store_explicit(&f->done, 1, memory_order_relaxed);
		atomic_store_explicit(&f->stamp, tsc(), memory_order_relaxed);
		/* release: the stamp (and done) before the new word value */
		atomic_fetch_add_explicit(&f->word, 1, memory_order_release);
		t0 = tsc();
		if (sys_futex(&f->word, FUTEX_WAKE, 1, NULL) < 0)
			return child_fail("FUTEX_WAKE: %s", strerror(errno));
		t1 = tscp();
		if (i < f->n)
			cost[i] = (int64_t)(t1 - t0);
	}
	lat_stats_ticks(cost, f->n, &f->wake_call);
	free(cost);
	return 0;
}

int limit_futex(struct futex_result *r)
{
	struct futex_shm *f = shm_map(sizeof(*f));
	int rc;

	f->n = (uint64_t)(cfg.lat_s * cfg.lat_rate);
	rc = run_pair(fx_sleeper, fx_waker, f, cfg.lat_s + 20);
	r->wake_to_run = f->wake_to_run;
	r->wake_call = f->wake_call;
	r->not_slept = f->not_slept;
	shm_unmap(f, sizeof(*f));
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Cold memcpy bandwidth                                                    */
/* ------------------------------------------------------------------------ */

/* 256 MiB each way, 8x the 32 MiB L3: every copy streams from and to DRAM.
 * Pages are touched first so the copies time no page faults. */
#define MEMCPY_BYTES (256ull << 20)
#define MEMCPY_COPIES 5

struct memcpy_shm {
	double gbps[MEMCPY_COPIES];
	uint64_t sink;
};

static int mc_run(void *arg)
{
	struct memcpy_shm *m = arg;
	unsigned char *src = malloc(MEMCPY_BYTES), *dst = malloc(MEMCPY_BYTES);

	if (!src || !dst)
		return child_fail("memcpy: out of memory");
	memset(src, 0x5a, MEMCPY_BYTES);
	memset(dst, 0xa5, MEMCPY_BYTES);
	for (int i = 0; i < MEMCPY_COPIES; i++) {
		uint64_t t0 = now_ns(), t1;

		/* alternate directions so neither buffer stays in cache */
		if (i & 1)
			memcpy(src, dst, MEMCPY_BYTES);
		else
			memcpy(dst, src, MEMCPY_BYTES);
		t1 = now_ns();
		m->gbps[i] = (double)MEMCPY_BYTES / (double)(t1 - t0);
		m->sink += dst[i * 4096] + src[i * 8192];
	}
	free(src);
	free(dst);
	return 0;
}

int limit_memcpy(struct memcpy_result *r)
{
	struct memcpy_shm *m = shm_map(sizeof(*m));
	int rc = run_pair(NULL, mc_run, m, 60);

	memset(r, 0, sizeof(*r));
	if (!rc) {
		r->gbps = median(m->gbps, MEMCPY_COPIES);
		for (int i = 0; i < MEMCPY_COPIES; i++)
			if (m->gbps[i] > r->best_gbps)
				r->best_gbps = m->gbps[i];
		r->bytes = MEMCPY_BYTES;
		r->copies = MEMCPY_COPIES;
	}
	shm_unmap(m, sizeof(*m));
	return rc;
}
