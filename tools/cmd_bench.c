/* SPDX-License-Identifier: MIT */
/*
 * cmd_bench.c — bus bench: a quick benchmark of this machine's bus, in the
 * spirit of redis-benchmark and `nats bench`.
 *
 * One temporary topic (on the connected bus, or with --standalone a private
 * segment and no busd), a producer thread and a consumer thread, pinned to
 * two different CPUs when there are two. For each size, the producer
 * publishes as fast as it can for --duration while the consumer reads
 * (throughput, published and received). Then the latency run: the producer
 * publishes 64-byte events at a steady rate, each carrying the
 * CLOCK_MONOTONIC time just before its publish; the consumer takes the time
 * as soon as bus_sub_next() returns it, and the difference is the one-way
 * latency (both threads read the same clock, so no skew). The topic is
 * deleted at the end, on an error, and on Ctrl-C.
 *
 * This is the quick look a user wants; bench/ (`make bench`) is the
 * thorough one, with processes, peers and the machine's limits.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define TYPE_DATA   1u
#define TYPE_END    2u               /* ends a run */
#define MAX_SIZES   16
#define LAT_SIZE    64u
#define WAIT_NS     (100 * 1000000ll) /* a consumer's wait slice: notices Ctrl-C */
#define WARM_NS     (100 * 1000000ull) /* latency: not sampled at first (or a
					    * fifth of a shorter run) */

struct bench_cfg {
	uint64_t sizes[MAX_SIZES];
	int nsizes;
	uint64_t duration_ns;
	uint64_t ring;
	uint64_t rate;           /* latency run: events per second */
	int latency;             /* run it */
	int busy;                /* the consumer spins instead of waiting */
	int standalone;
	const char *shm;
	int cpu[2];              /* producer, consumer; -1: not pinned */
};

struct tp_result {
	uint64_t size;
	uint64_t published, received, lost;
	double pub_s, sub_s;     /* seconds each side took */
};

struct lat_result {
	uint64_t samples, lost;
	uint64_t min, p50, p99, p999, max;
	double mean;
};

/* What the two threads of one run share. */
struct run {
	const struct bench_cfg *cfg;
	struct bus_pub *pub;
	struct bus_sub *sub;
	uint32_t size;
	int lat;                 /* a latency run */
	uint64_t warm;           /* ... its first ns are not sampled */
	_Atomic int cons_ready;
	_Atomic int prod_done;
	_Atomic uint64_t t0;     /* when the producer started (mono ns) */
	/* producer */
	uint64_t published;
	uint64_t pub_end;
	int pub_err;
	/* consumer */
	uint64_t received, lost, sub_end;
	int sub_err;
	uint64_t *samples;
	uint64_t nsamples, cap;
};

/* ---- clocks and CPUs ----------------------------------------------------- */

static inline uint64_t mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* Two CPUs this process may run on, or -1s. */
static void pick_cpus(int cpu[2])
{
	cpu_set_t set;
	int n = 0;

	cpu[0] = cpu[1] = -1;
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return;
	for (int i = 0; i < CPU_SETSIZE && n < 2; i++)
		if (CPU_ISSET(i, &set))
			cpu[n++] = i;
	if (n < 2)
		cpu[0] = cpu[1] = -1;
}

static int spawn(pthread_t *t, void *(*fn)(void *), void *arg, int cpu)
{
	pthread_attr_t a;
	cpu_set_t set;
	int r;

	pthread_attr_init(&a);
	if (cpu >= 0) {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		pthread_attr_setaffinity_np(&a, sizeof(set), &set);
	}
	r = pthread_create(t, &a, fn, arg);
	pthread_attr_destroy(&a);
	return -r;
}

/* ---- the two threads ----------------------------------------------------- */

static void *producer(void *arg)
{
	struct run *r = arg;
	uint64_t deadline, period = 0, next, n = 0, mask = r->size >= 4096 ? 15 : 255;
	uint8_t *buf = calloc(1, r->size ? r->size : 1);
	int e;

	if (!buf) {
		r->pub_err = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < r->size; i++)
		buf[i] = (uint8_t)(i * 131u + 7u);
	while (!atomic_load_explicit(&r->cons_ready, memory_order_acquire) && !interrupted)
		relax();
	if (r->lat)
		period = 1000000000ull / r->cfg->rate;
	next = mono();
	atomic_store_explicit(&r->t0, next, memory_order_release);
	deadline = next + r->cfg->duration_ns;
	for (;;) {
		if (r->lat) {
			uint64_t now;

			next += period;
			while ((now = mono()) < next)
				relax();
			if (now >= deadline || interrupted)
				break;
			now = mono();
			memcpy(buf, &now, sizeof(now));
		} else if (!(n & mask) && (mono() >= deadline || interrupted)) {
			break;
		}
		e = bus_pub_publish(r->pub, TYPE_DATA, buf, r->size, 0);
		if (e < 0) {
			r->pub_err = e;
			break;
		}
		n++;
	}
	r->pub_end = mono();
	r->published = n;
	e = bus_pub_publish(r->pub, TYPE_END, NULL, 0, 0);
	if (e < 0 && !r->pub_err)
		r->pub_err = e;
out:
	free(buf);
	atomic_store_explicit(&r->prod_done, 1, memory_order_release);
	return NULL;
}

static void *consumer(void *arg)
{
	struct run *r = arg;
	struct bus_event ev;
	uint64_t sum = 0, idle_since = 0;
	int e;

	atomic_store_explicit(&r->cons_ready, 1, memory_order_release);
	for (;;) {
		e = bus_sub_next(r->sub, &ev);
		if (e == 1) {
			uint64_t now = r->lat ? mono() : 0, stamp = 0;

			idle_since = 0;
			if (ev.type == TYPE_END) {
				r->sub_end = mono();
				break;
			}
			if (r->lat && ev.len >= sizeof(stamp))
				memcpy(&stamp, ev.data, sizeof(stamp));
			else if (ev.len)  /* touch the payload, as a reader would */
				sum += ((const uint8_t *)ev.data)[0] +
				       ((const uint8_t *)ev.data)[ev.len - 1];
			if (bus_sub_confirm(r->sub, &ev) < 0)
				continue;  /* overwritten: the next call reports the gap */
			r->received++;
			if (r->lat && stamp && now >= stamp &&
			    stamp - atomic_load_explicit(&r->t0, memory_order_acquire) >= r->warm &&
			    r->nsamples < r->cap)
				r->samples[r->nsamples++] = now - stamp;
			continue;
		}
		if (e == -ENOBUFS) {
			r->lost += ev.lost;
			continue;
		}
		if (e < 0) {
			r->sub_err = e;
			break;
		}
		/* Nothing now. The END event ends the run; a producer that failed
		 * before it, or Ctrl-C, ends it too. */
		if (interrupted ||
		    atomic_load_explicit(&r->prod_done, memory_order_acquire)) {
			if (!idle_since)
				idle_since = mono();
			else if (interrupted || mono() - idle_since > 500000000ull)
				break;
		}
		if (r->cfg->busy) {
			relax();
			continue;
		}
		e = bus_sub_wait(r->sub, WAIT_NS);
		if (e < 0 && e != -ETIMEDOUT && e != -EINTR) {
			r->sub_err = e;
			break;
		}
	}
	if (!r->sub_end)
		r->sub_end = mono();
	if (sum == 1)  /* keep the touch from being optimised away */
		__asm__ __volatile__("" ::: "memory");
	return NULL;
}

/* One run: both threads, to the end. 0, or -errno. */
static int run_pair(struct run *r)
{
	pthread_t tp, tc;
	sigset_t all, old;
	int e, have_c, have_p = 0;

	/* Ctrl-C goes to the main thread (the workers start with every
	 * signal blocked, then poll `interrupted`). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	e = spawn(&tc, consumer, r, r->cfg->cpu[1]);
	have_c = e == 0;
	if (have_c) {
		e = spawn(&tp, producer, r, r->cfg->cpu[0]);
		have_p = e == 0;
		if (!have_p)  /* the consumer stops once it has waited a while */
			atomic_store_explicit(&r->prod_done, 1, memory_order_release);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (have_p)
		pthread_join(tp, NULL);
	if (have_c)
		pthread_join(tc, NULL);
	if (e < 0)
		return e;
	return r->pub_err ? r->pub_err : r->sub_err;
}

/* ---- statistics ----------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *v, uint64_t n, double p)
{
	uint64_t i = (uint64_t)(p * (double)(n - 1) + 0.5);

	return v[i < n ? i : n - 1];
}

static void lat_stats(struct run *r, struct lat_result *l)
{
	double sum = 0;

	memset(l, 0, sizeof(*l));
	l->lost = r->lost;
	l->samples = r->nsamples;
	if (!r->nsamples)
		return;
	qsort(r->samples, r->nsamples, sizeof(uint64_t), cmp_u64);
	for (uint64_t i = 0; i < r->nsamples; i++)
		sum += (double)r->samples[i];
	l->mean = sum / (double)r->nsamples;
	l->min = r->samples[0];
	l->max = r->samples[r->nsamples - 1];
	l->p50 = pct(r->samples, r->nsamples, 0.50);
	l->p99 = pct(r->samples, r->nsamples, 0.99);
	l->p999 = pct(r->samples, r->nsamples, 0.999);
}

/* ---- output --------------------------------------------------------------- */

static void fmt_ns(char *buf, size_t n, double ns)
{
	if (ns < 1000)
		snprintf(buf, n, "%.0fns", ns);
	else if (ns < 1e6)
		snprintf(buf, n, "%.1fus", ns / 1e3);
	else
		snprintf(buf, n, "%.2fms", ns / 1e6);
}

/* 12345678 -> "12,345,678" */
static void fmt_count(char *buf, size_t n, double v)
{
	char t[32];
	size_t len, j = 0;

	snprintf(t, sizeof(t), "%.0f", v);
	len = strlen(t);
	for (size_t i = 0; i < len && j + 2 < n; i++) {
		if (i && (len - i) % 3 == 0)
			buf[j++] = ',';
		buf[j++] = t[i];
	}
	buf[j] = 0;
}

static double rate_of(uint64_t n, double s)
{
	return s > 0 ? (double)n / s : 0;
}

static void print_tp_head(void)
{
	if (cli.tty && !cli.json)
		printf("%8s  %14s %10s  %14s %10s  %10s\n", "SIZE", "PUBLISHED/s", "MB/s",
		       "RECEIVED/s", "MB/s", "LOST");
}

static void print_tp(const struct tp_result *t, int first)
{
	double pe = rate_of(t->published, t->pub_s), se = rate_of(t->received, t->sub_s);
	double pm = pe * (double)t->size / 1e6, sm = se * (double)t->size / 1e6;
	char a[32], b[32];

	if (cli.json) {
		printf("%s{\"size\":%llu,\"published\":%llu,\"received\":%llu,\"lost\":%llu,"
		       "\"pub_seconds\":%.6f,\"sub_seconds\":%.6f,\"pub_events_per_s\":%.0f,"
		       "\"pub_mb_per_s\":%.1f,\"sub_events_per_s\":%.0f,\"sub_mb_per_s\":%.1f}",
		       first ? "" : ",", (unsigned long long)t->size,
		       (unsigned long long)t->published, (unsigned long long)t->received,
		       (unsigned long long)t->lost, t->pub_s, t->sub_s, pe, pm, se, sm);
	} else if (cli.tty) {
		fmt_count(a, sizeof(a), pe);
		fmt_count(b, sizeof(b), se);
		printf("%8llu  %14s %10.1f  %14s %10.1f  %10llu\n", (unsigned long long)t->size, a,
		       pm, b, sm, (unsigned long long)t->lost);
	} else {
		printf("throughput\t%llu\t%.0f\t%.1f\t%.0f\t%.1f\t%llu\n",
		       (unsigned long long)t->size, pe, pm, se, sm, (unsigned long long)t->lost);
	}
	fflush(stdout);
}

static void print_lat(const struct bench_cfg *c, const struct lat_result *l)
{
	char v[6][24];

	if (cli.json) {
		printf("{\"size\":%u,\"rate\":%llu,\"consumer\":\"%s\",\"samples\":%llu,"
		       "\"lost\":%llu,\"min_ns\":%llu,\"p50_ns\":%llu,\"p99_ns\":%llu,"
		       "\"p999_ns\":%llu,\"max_ns\":%llu,\"mean_ns\":%.0f}", LAT_SIZE,
		       (unsigned long long)c->rate, c->busy ? "busy" : "wait",
		       (unsigned long long)l->samples, (unsigned long long)l->lost,
		       (unsigned long long)l->min, (unsigned long long)l->p50,
		       (unsigned long long)l->p99, (unsigned long long)l->p999,
		       (unsigned long long)l->max, l->mean);
	} else if (cli.tty) {
		fmt_ns(v[0], sizeof(v[0]), (double)l->min);
		fmt_ns(v[1], sizeof(v[1]), (double)l->p50);
		fmt_ns(v[2], sizeof(v[2]), (double)l->p99);
		fmt_ns(v[3], sizeof(v[3]), (double)l->p999);
		fmt_ns(v[4], sizeof(v[4]), (double)l->max);
		fmt_ns(v[5], sizeof(v[5]), l->mean);
		printf("\nlatency, one-way: %u-byte events at %llu/s; the consumer %s\n", LAT_SIZE,
		       (unsigned long long)c->rate, c->busy ? "spins on bus_sub_next()" :
		       "waits in bus_sub_wait() (spins briefly, then sleeps on the futex)");
		printf("  min %s  p50 %s  p99 %s  p99.9 %s  max %s  mean %s  (%llu samples%s)\n",
		       v[0], v[1], v[2], v[3], v[4], v[5], (unsigned long long)l->samples,
		       l->lost ? ", some events lost" : "");
	} else {
		printf("latency\t%u\t%llu\t%s\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%.0f\n", LAT_SIZE,
		       (unsigned long long)c->rate, c->busy ? "busy" : "wait",
		       (unsigned long long)l->samples, (unsigned long long)l->min,
		       (unsigned long long)l->p50, (unsigned long long)l->p99,
		       (unsigned long long)l->p999, (unsigned long long)l->max, l->mean);
	}
}

static void progress(const char *what)
{
	if (isatty(2) && !cli.quiet && !cli.json) {
		if (what)
			fprintf(stderr, "\r  running: %-50s", what);
		else
			fprintf(stderr, "\r%62s\r", "");
	}
}

/* ---- the topic ------------------------------------------------------------ */

struct target {
	struct bus *bus;
	char name[4200];         /* topic name, or segment path (standalone) */
	int created;
};

static int target_open(const struct bench_cfg *c, struct target *t, uint64_t max_event,
		       struct bus_pub **pub, struct bus_sub **sub)
{
	struct bus_topic_opts o = { .ring_size = c->ring, .max_event = (uint32_t)max_event };
	struct bus_sub_opts so = { .from = BUS_FROM_END };
	int r = -EEXIST;

	for (int i = 0; i < 100 && r == -EEXIST; i++) {
		if (c->standalone)
			snprintf(t->name, sizeof(t->name), "%s%sbus-bench.%d%s%.0d", c->shm ? c->shm : "",
				 c->shm ? "/" : "", (int)getpid(), i ? "." : "", i);
		else
			snprintf(t->name, sizeof(t->name), "bench.%d%s%.0d", (int)getpid(),
				 i ? "." : "", i);
		r = c->standalone ? bus_topic_create(t->name, &o) : bus_create(t->bus, t->name, &o);
	}
	if (r < 0)
		return fail_bus(t->name, r);
	t->created = 1;
	r = c->standalone ? bus_pub_open(t->name, pub) : bus_pub_attach(t->bus, t->name, pub);
	if (r < 0)
		return fail_bus(t->name, r);
	r = c->standalone ? bus_sub_open(t->name, &so, sub) :
			    bus_sub_attach(t->bus, t->name, &so, sub);
	if (r < 0)
		return fail_bus(t->name, r);
	return 0;
}

static void target_drop(const struct bench_cfg *c, struct target *t)
{
	int r;

	if (!t->created)
		return;
	r = c->standalone ? bus_topic_remove(t->name) : bus_delete(t->bus, t->name);
	if (r < 0)
		fprintf(stderr, "bus: bench %s: could not delete the benchmark's topic: %s\n",
			t->name, bus_errmsg());
	t->created = 0;
}

/* ---- the command ---------------------------------------------------------- */

static int add_sizes(struct bench_cfg *c, const char *list)
{
	char *dup = strdup(list), *save = NULL, *tok;
	int r = 0;

	if (!dup)
		return -ENOMEM;
	for (tok = strtok_r(dup, ",", &save); tok && !r; tok = strtok_r(NULL, ",", &save)) {
		uint64_t v;

		if (parse_size("--size", tok, &v) < 0)
			r = -EINVAL;
		else if (c->nsizes == MAX_SIZES)
			r = usage_error("--size: at most %d sizes", MAX_SIZES) ? -EINVAL : 0;
		else
			c->sizes[c->nsizes++] = v;
	}
	free(dup);
	return r;
}

static int cmd_bench(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "duration", required_argument, NULL, 'd' },
		{ "ring", required_argument, NULL, 'r' },
		{ "rate", required_argument, NULL, 'R' },
		{ "no-latency", no_argument, NULL, 'L' },
		{ "busy", no_argument, NULL, 'b' },
		{ "standalone", no_argument, NULL, 'S' },
		{ "shm", required_argument, NULL, 'm' },
		{ 0 },
	};
	struct bench_cfg c = { .duration_ns = 2000000000ull, .ring = 16ull << 20, .rate = 10000,
			       .latency = 1 };
	struct tp_result tp[MAX_SIZES];
	struct lat_result lat;
	struct target t = { 0 };
	struct bus_pub *pub = NULL;
	struct bus_sub *sub = NULL;
	uint64_t max_size = LAT_SIZE;
	int ch, r = 0;
	char ring[16], dur[24];

	optind = 0;
	while ((ch = getopt_long(argc, argv, "s:d:", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (add_sizes(&c, optarg) < 0)
				return EXIT_USAGE;
			break;
		case 'd':
			if (parse_duration("--duration", optarg, &c.duration_ns) < 0)
				return EXIT_USAGE;
			if (c.duration_ns < 10000000ull || c.duration_ns > 3600000000000ull)
				return usage_error("--duration %s: from 10ms to 1h", optarg);
			break;
		case 'r':
			if (parse_size("--ring", optarg, &c.ring) < 0)
				return EXIT_USAGE;
			break;
		case 'R':
			if (parse_u64("--rate", optarg, &c.rate) < 0)
				return EXIT_USAGE;
			if (!c.rate || c.rate > 10000000)
				return usage_error("--rate %s: from 1 to 10000000 events/s", optarg);
			break;
		case 'L':
			c.latency = 0;
			break;
		case 'b':
			c.busy = 1;
			break;
		case 'S':
			c.standalone = 1;
			break;
		case 'm':
			c.shm = optarg;
			break;
		default:
			return usage_error("bad option");
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (c.shm && !c.standalone)
		return usage_error("--shm goes with --standalone (busd places a bus's topics)");
	if (c.ring < BUS_RING_MIN || c.ring > BUS_RING_MAX || (c.ring & (c.ring - 1)))
		return usage_error("--ring: %llu bytes is not a power of two from 4K to 4G",
				   (unsigned long long)c.ring);
	if (!c.nsizes) {
		c.sizes[c.nsizes++] = 64;
		c.sizes[c.nsizes++] = 1024;
	}
	for (int i = 0; i < c.nsizes; i++)
		if (c.sizes[i] > max_size)
			max_size = c.sizes[i];
	if (max_size > c.ring / 4)
		return usage_error("--size: %llu bytes is more than a quarter of the ring (%llu); "
				   "a larger --ring fits it", (unsigned long long)max_size,
				   (unsigned long long)(c.ring / 4));
	pick_cpus(c.cpu);
	if (!c.standalone && !(t.bus = cli_connect()))
		return 1;
	catch_interrupts();
	r = target_open(&c, &t, max_size, &pub, &sub);
	if (r)
		goto out;

	fmt_size(ring, sizeof(ring), c.ring);
	snprintf(dur, sizeof(dur), "%.3gs", (double)c.duration_ns / 1e9);
	if (cli.json) {
		printf("{\"bus\":");
		if (t.bus)
			json_str(stdout, bus_address(t.bus), strlen(bus_address(t.bus)));
		else
			printf("null");
		printf(",\"standalone\":%s,\"topic\":", c.standalone ? "true" : "false");
		json_str(stdout, t.name, strlen(t.name));
		printf(",\"ring\":%llu,\"producer_cpu\":%d,\"consumer_cpu\":%d,\"duration_ns\":%llu,"
		       "\"throughput\":[", (unsigned long long)c.ring, c.cpu[0], c.cpu[1],
		       (unsigned long long)c.duration_ns);
	} else if (cli.tty) {
		printf("bus bench: topic %s %s%s (%s ring), ", t.name, t.bus ? "on " : "(standalone",
		       t.bus ? bus_address(t.bus) : ", no busd)", ring);
		if (c.cpu[0] >= 0)
			printf("producer on CPU %d, consumer on CPU %d, ", c.cpu[0], c.cpu[1]);
		else
			printf("one CPU (threads not pinned), ");
		printf("%s per run\n\n", dur);
	}
	print_tp_head();
	for (int i = 0; i < c.nsizes && !interrupted; i++) {
		struct run rn = { .cfg = &c, .pub = pub, .sub = sub, .size = (uint32_t)c.sizes[i] };
		char what[64];

		snprintf(what, sizeof(what), "%llu-byte events, %s", (unsigned long long)c.sizes[i],
			 dur);
		progress(what);
		r = run_pair(&rn);
		progress(NULL);
		if (r < 0) {
			r = fail_bus(t.name, r);
			goto out;
		}
		if (interrupted)
			break;
		tp[i] = (struct tp_result){ c.sizes[i], rn.published, rn.received, rn.lost,
					    (double)(rn.pub_end - rn.t0) / 1e9,
					    (double)(rn.sub_end - rn.t0) / 1e9 };
		print_tp(&tp[i], i == 0);
	}
	if (cli.json)
		printf("],\"latency\":");
	if (c.latency && !interrupted) {
		struct run rn = { .cfg = &c, .pub = pub, .sub = sub, .size = LAT_SIZE, .lat = 1,
				  .warm = c.duration_ns / 5 < WARM_NS ? c.duration_ns / 5 : WARM_NS };
		uint64_t n = c.rate * c.duration_ns / 1000000000ull + 16;

		rn.cap = n < 50000000 ? n : 50000000;
		rn.samples = malloc(rn.cap * sizeof(uint64_t));
		if (!rn.samples) {
			r = fail("out of memory");
			goto out;
		}
		progress("latency");
		r = run_pair(&rn);
		progress(NULL);
		if (r < 0) {
			free(rn.samples);
			r = fail_bus(t.name, r);
			goto out;
		}
		if (!interrupted) {
			lat_stats(&rn, &lat);
			print_lat(&c, &lat);
		}
		free(rn.samples);
	}
	if (cli.json)
		printf("%s}\n", c.latency && !interrupted ? "" : "null");
	fflush(stdout);
	if (interrupted)
		r = fail("interrupted");
out:
	bus_sub_close(sub);
	bus_pub_close(pub);
	target_drop(&c, &t);
	bus_disconnect(t.bus);
	return r;
}

const struct command def_bench = {
	"bench", cmd_bench, "a quick benchmark of this machine's bus",
	  "Usage: bus bench [--size SIZE[,SIZE...]] [--duration D] [--ring SIZE]\n"
	  "                 [--rate N] [--no-latency] [--busy] [--json]\n"
	  "                 [--standalone [--shm DIR]]\n"
	  "Measure this machine's bus: create a temporary topic (bench.PID), run a\n"
	  "producer thread and a consumer thread on it (pinned to two different CPUs\n"
	  "when there are two), print what they did, delete the topic (also on an\n"
	  "error or Ctrl-C).\n"
	  "\n"
	  "Throughput: for each size, the producer publishes events of that many\n"
	  "bytes as fast as it can (one bus_pub_publish() each) for the duration,\n"
	  "while the consumer reads them (bus_sub_next(), touching the payload).\n"
	  "Prints events/s and MB/s (payload, 10^6 bytes) published and received,\n"
	  "and the events the consumer lost because the producer lapped it (the\n"
	  "producer never waits for a consumer).\n"
	  "Latency: the producer publishes 64-byte events at --rate per second, each\n"
	  "stamped with the monotonic clock just before its publish; the consumer\n"
	  "reads the clock as soon as it gets the event. Prints the one-way latency's\n"
	  "min, p50, p99, p99.9, max and mean (the first 100ms are not sampled).\n"
	  "On a busy machine the tail is mostly the scheduler's: run it on an idle\n"
	  "one, and compare --busy.\n"
	  "\n"
	  "  -s, --size LIST   payload sizes, comma-separated or repeated (default\n"
	  "                    64,1024); each at most a quarter of the ring\n"
	  "  -d, --duration D  each run's length (default 2s)\n"
	  "  --ring SIZE       the topic's ring (default 16M)\n"
	  "  --rate N          latency run: events per second (default 10000)\n"
	  "  --no-latency      skip the latency run\n"
	  "  --busy            the consumer spins on bus_sub_next() instead of\n"
	  "                    waiting in bus_sub_wait() (lower latency, a busy CPU)\n"
	  "  --standalone      no busd: a private topic segment (/dev/shm/bus-bench.PID,\n"
	  "                    or in --shm DIR) through bus_topic_create()\n"
	  "  --json            one object: bus, standalone, topic, ring, producer_cpu,\n"
	  "                    consumer_cpu, duration_ns, throughput (per size: size,\n"
	  "                    published, received, lost, pub_seconds, sub_seconds,\n"
	  "                    pub_events_per_s, pub_mb_per_s, sub_events_per_s,\n"
	  "                    sub_mb_per_s) and latency (size, rate, consumer,\n"
	  "                    samples, lost, min_ns, p50_ns, p99_ns, p999_ns, max_ns,\n"
	  "                    mean_ns; null with --no-latency)\n"
	  "Without a terminal: lines 'throughput SIZE PUB_EPS PUB_MBPS SUB_EPS\n"
	  "SUB_MBPS LOST' and 'latency SIZE RATE CONSUMER SAMPLES MIN P50 P99 P999 MAX\n"
	  "MEAN' (nanoseconds), tab-separated.\n"
	  "For the thorough benchmark (processes, peers, machine limits): make bench.\n"
};
