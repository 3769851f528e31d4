/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "atomics.h"
#include "clock.h"
#include "wait.h"

#define MS 1000000ull

/* Is the kernel's clocksource the TSC? Only then is it safe to scale the TSC
 * ourselves (it is then invariant and synchronised across CPUs). */
static int tsc_is_clocksource(void)
{
	static _Atomic int cached = -1;
	char buf[32] = "";
	int v = at_load_relaxed(&cached), fd;
	ssize_t n;

	if (v >= 0)
		return v;
	v = 0;
	fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource",
		  O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		v = n >= 3 && !strncmp(buf, "tsc", 3) && (n == 3 || buf[3] == '\n');
	}
	at_store_relaxed(&cached, v);
	return v;
}

#if defined(__x86_64__)
#include <x86intrin.h>
/* One (tsc, realtime) pair; the TSC is read on both sides of clock_gettime
 * and the midpoint taken, which halves the pairing error. */
static void pair(uint64_t *tsc, uint64_t *ns)
{
	uint64_t a = __rdtsc();

	*ns = real_ns();
	*tsc = a + (__rdtsc() - a) / 2;
}
#endif

void clock_init(struct bus_clock *c)
{
	memset(c, 0, sizeof(*c));
#if defined(__x86_64__)
	if (tsc_is_clocksource()) {
		uint64_t t1, n1, t2, n2, m1 = mono_ns();

		pair(&t1, &n1);
		while (mono_ns() - m1 < 200000) /* 200 us first calibration */
			;
		pair(&t2, &n2);
		if (t2 > t1 && n2 > n1) {
			c->mult = (uint64_t)(((unsigned __int128)(n2 - n1) << 32) / (t2 - t1));
			c->interval = (t2 - t1) * MS / (n2 - n1);
			c->cal_tsc = t1;
			c->cal_ns = n1;
			c->tsc0 = t2;
			c->ns0 = n2;
			c->last = n2;
			c->use_tsc = c->mult > 0 && c->interval > 0;
		}
	}
#endif
}

uint64_t clock_resync(struct bus_clock *c)
{
	uint64_t ns;

#if defined(__x86_64__)
	if (c->use_tsc) {
		uint64_t t;

		pair(&t, &ns);
		/* Refine the scale over the whole baseline unless the wall clock
		 * stepped (then restart the baseline). */
		if (ns > c->cal_ns && t > c->cal_tsc) {
			uint64_t m = (uint64_t)(((unsigned __int128)(ns - c->cal_ns) << 32) /
						(t - c->cal_tsc));
			if (m > c->mult - c->mult / 64 && m < c->mult + c->mult / 64) {
				c->mult = m;
				c->interval = (uint64_t)(((unsigned __int128)MS << 32) / m);
			} else {
				c->cal_tsc = t;
				c->cal_ns = ns;
			}
		} else {
			c->cal_tsc = t;
			c->cal_ns = ns;
		}
		c->tsc0 = t;
		c->ns0 = ns;
	} else
#endif
	{
		ns = real_ns();
	}
	/* Clamp interpolation noise; let a real step (>= 1 ms back) through. */
	if (ns < c->last && c->last - ns < MS)
		ns = c->last;
	c->last = ns;
	return ns;
}
