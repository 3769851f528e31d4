/* SPDX-License-Identifier: MIT */
/*
 * clock.h — a cheap wall clock for event timestamps.
 *
 * clock_gettime(CLOCK_REALTIME) costs ~30 ns on the KVM guests we run on,
 * most of a publish's budget. When the kernel itself uses the TSC as its
 * clocksource, we do what the vDSO does, minus its per-call ordering: read
 * the TSC (~10 ns, not serialising) and scale it from a (tsc, ns) pair taken
 * with clock_gettime at most every ~1 ms. The scale is refined on every
 * resync over a baseline that grows, so it converges on the kernel's; within
 * one interval the error is bounded by the scale error times 1 ms (well under
 * a microsecond after the first few ms). Timestamps never step back by less
 * than 1 ms (interpolation noise is clamped); a real clock step passes.
 */
#ifndef BUS_CLOCK_H
#define BUS_CLOCK_H

#include <stdint.h>

struct bus_clock {
	uint64_t tsc0, ns0;     /* the last resync point */
	uint64_t mult;          /* ns per tick, 32.32 fixed point */
	uint64_t interval;      /* ticks between resyncs (~1 ms) */
	uint64_t cal_tsc, cal_ns;  /* the calibration baseline */
	uint64_t last;          /* last value returned */
	int use_tsc;
};

void clock_init(struct bus_clock *c);
uint64_t clock_resync(struct bus_clock *c);

#if defined(__x86_64__)
#include <x86intrin.h>
static inline uint64_t clock_now(struct bus_clock *c)
{
	if (c->use_tsc) {
		uint64_t t = __rdtsc();
		uint64_t d = t - c->tsc0;

		if (d < c->interval) {
			uint64_t ns = c->ns0 + ((d * c->mult) >> 32);

			if (ns < c->last)
				ns = c->last;
			c->last = ns;
			return ns;
		}
		return clock_resync(c);
	}
	return clock_resync(c);
}
#else
static inline uint64_t clock_now(struct bus_clock *c)
{
	return clock_resync(c);
}
#endif

#endif
