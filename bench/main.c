/* SPDX-License-Identifier: MIT */
/*
 * bus-bench — bus against its peers and against the machine, in one run.
 *
 *   bus-bench [--csv FILE] [--quick] [--no-bus] [--no-peers] [--only SECTIONS]
 *
 * SECTIONS is a comma list of tp, lat, limits, prod, busd, durable (default:
 * all). The targets are ratios between numbers measured in the same run,
 * because a shared VM's absolute numbers move from run to run; the ratios
 * much less.
 * Exit status: 0 when every case ran and lost or garbled nothing it must
 * not; 1 otherwise (a missed performance target is reported, not fatal).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <bus.h>

#include "bench.h"

static FILE *csv;
static int errors;
static int noisy;          /* cases flagged for other load */
/* Inputs of the ratios measured beside other load (see noise_note). */
static int sus_lat[LAT_NKINDS], sus_rtt, sus_fx, sus_mc, sus_prod[PROD_NKINDS];

static int suspect(const struct noise *n)
{
	return noise_frac(n) > NOISE_FLAG;
}
static struct noise total_noise;

/* ------------------------------------------------------------------------ */
/* Output helpers                                                           */
/* ------------------------------------------------------------------------ */

static void csv_row(const char *section, const char *name, size_t bytes,
		    const char *metric, double value, const char *unit)
{
	if (csv)
		fprintf(csv, "%s,%s,%zu,%s,%.10g,%s\n", section, name, bytes,
			metric, value, unit);
}

/* A row whose value is text, quoted as RFC 4180 says. */
static void csv_text(const char *name, const char *metric, const char *text)
{
	if (!csv)
		return;
	fprintf(csv, "machine,%s,0,%s,\"", name, metric);
	for (const char *c = text; *c; c++) {
		if (*c == '"')
			fputc('"', csv);
		fputc(*c, csv);
	}
	fprintf(csv, "\",text\n");
}

static void report_error(const char *what, int rc)
{
	const char *why = rc == -ETIMEDOUT ? "timed out" : rc == -ECHILD ? "a process failed"
			: rc == -EIO ? "verification failed" : strerror(-rc);

	errors++;
	printf("  !! %s FAILED (%s): %s\n", what, why, bench_err());
	fflush(stdout);
	bench_err_clear();
}

/* " [other load 23%]" when a case ran beside something else, else "". */
static const char *noise_note(const char *id, size_t bytes, const char *section,
			      const struct noise *n)
{
	static char buf[64];
	double f = noise_frac(n);

	csv_row(section, id, bytes, "other_load_pct", 100 * f, "%");
	buf[0] = 0;
	if (f > NOISE_FLAG) {
		noisy++;
		snprintf(buf, sizeof(buf), "  [! other load %.0f%%]", 100 * f);
	}
	return buf;
}

static void read_line_value(const char *path, const char *key, char *out, size_t len)
{
	FILE *f = fopen(path, "r");
	char line[512];

	snprintf(out, len, "?");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *c = strchr(line, ':');

		if (!strncmp(line, key, strlen(key)) && c) {
			c++;
			while (*c == ' ' || *c == '\t')
				c++;
			c[strcspn(c, "\n")] = 0;
			snprintf(out, len, "%s", c);
			break;
		}
	}
	fclose(f);
}

static int cpu_flag(const char *flag)
{
	char flags[4096], *save = NULL;

	read_line_value("/proc/cpuinfo", "flags", flags, sizeof(flags));
	for (char *t = strtok_r(flags, " ", &save); t; t = strtok_r(NULL, " ", &save))
		if (!strcmp(t, flag))
			return 1;
	return 0;
}

static void print_machine(void)
{
	char model[256], cs[64] = "?";
	struct utsname u;
	FILE *f;

	read_line_value("/proc/cpuinfo", "model name", model, sizeof(model));
	uname(&u);
	f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
	if (f) {
		if (fgets(cs, sizeof(cs), f))
			cs[strcspn(cs, "\n")] = 0;
		fclose(f);
	}
	printf("bus-bench %s — libbus %s\n", cfg.quick ? "(BENCH_QUICK: short runs)" : "",
	       cfg.no_bus ? "(not measured)" : bus_version());
	printf("machine : %s, %ld CPUs online, %s %s %s%s\n", model,
	       sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release, u.machine,
	       cpu_flag("hypervisor") ? " (virtual machine)" : "");
	printf("clock   : TSC %.1f MHz%s, clocksource %s\n", cfg.tsc_per_ns * 1000,
	       cpu_flag("constant_tsc") && cpu_flag("nonstop_tsc") ? " invariant" : " NOT invariant",
	       cs);
	printf("pinning : producer CPU %d, consumer CPU %d, separate processes\n",
	       cfg.prod_cpu, cfg.cons_cpu);
	printf("runs    : throughput %d rounds x %.2f s (+%.2f s warm-up) per case, median; "
	       "latency %.2f s at %u ev/s\n",
	       cfg.reps, cfg.tp_s, cfg.warm_s, cfg.lat_s, cfg.lat_rate);
	csv_row("machine", "tsc", 0, "mhz", cfg.tsc_per_ns * 1000, "MHz");
	csv_row("machine", "cpus", 0, "online", (double)sysconf(_SC_NPROCESSORS_ONLN), "cpus");
	csv_row("machine", "run", 0, "quick", cfg.quick, "flag");
	csv_text("cpu", "model", model);
	csv_text("kernel", "release", u.release);
	csv_text("libbus", "version", cfg.no_bus ? "-" : bus_version());
}

/*
 * The hypervisor may run the two vCPUs on other physical cores at any time,
 * which changes the cache-line round trip severalfold (this VM has shown
 * 100 ns and 450 ns) and with it every cross-core number. A short ping-pong
 * before each throughput round and after each section tells whether a run's
 * numbers were taken on one placement; the summary prints them all.
 */
#define MAX_PROBES 24

static struct {
	const char *where;
	double p50;
} probes[MAX_PROBES];
static int nprobes;

static void placement_note(const char *where, const struct lat_stats *st)
{
	if (nprobes < MAX_PROBES) {
		probes[nprobes].where = where;
		probes[nprobes++].p50 = st->p50;
	}
	csv_row("placement", where, 0, "cacheline_rtt_p50_ns", st->p50, "ns");
}

static void placement_check(const char *where)
{
	struct lat_stats st;

	if (!limit_pingpong(cfg.pingpongs / 20, &st))
		placement_note(where, &st);
}

/* Returns 1 when the round trip moved by more than 1.5x over the run. */
static int placement_summary(void)
{
	double lo = 1e18, hi = 0;

	if (!nprobes)
		return 0;
	printf("cache-line round trip p50 over the run:");
	for (int i = 0; i < nprobes; i++) {
		printf("%s %s %.0f ns", i ? "," : "", probes[i].where, probes[i].p50);
		lo = probes[i].p50 < lo ? probes[i].p50 : lo;
		hi = probes[i].p50 > hi ? probes[i].p50 : hi;
	}
	printf("\n");
	return hi > 1.5 * lo;
}

/* ------------------------------------------------------------------------ */
/* 1. Throughput                                                            */
/* ------------------------------------------------------------------------ */

static const size_t sizes[] = { 64, 1024, 16384 };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static const struct {
	enum tp_kind kind;
	const char *id, *label;
	int bus;
} tp_cases[] = {
	{ TP_BUS_BUSY,  "bus_busy",     "bus gated, busy-poll", 1 },
	{ TP_BUS_SLEEP, "bus_sleep",    "bus gated, sleeping", 1 },
	{ TP_BUS_FREE,  "bus_nongated", "bus non-gated, busy-poll", 1 },
	{ TP_BUS_BATCH, "bus_batch64",  "bus gated, busy, BUS_MORE x64", 1 },
	{ TP_PIPE,      "pipe",         "pipe", 0 },
	{ TP_UNIX,      "unix",         "unix stream socketpair", 0 },
	{ TP_ZMQ,       "zmq",          "zeromq ipc PUSH/PULL", 0 },
	{ TP_SPSC,      "spsc_ring",    "naive SPSC ring (machine limit)", 0 },
};
#define NTP (sizeof(tp_cases) / sizeof(tp_cases[0]))

/* The order within a round: the naive ring right after bus busy-poll, so
 * that the pair behind the "bus / naive ring" ratio runs back to back. */
static const size_t run_order[NTP] = { 0, 7, 1, 2, 3, 4, 5, 6 };

struct tp_case {
	int ran, ok, n;
	double ev[BENCH_MAX_REPS];
	double med, min, max;     /* events/s */
	uint64_t sent, lost, wakeups, waits, eagain;
	struct noise noise;
	int suspect;
};

static struct tp_case tpr[NSIZES][TP_NKINDS];

static int k_is_peer(enum tp_kind k)
{
	return k == TP_PIPE || k == TP_UNIX || k == TP_ZMQ;
}

static int tp_wanted(size_t c, size_t s)
{
	if (tp_cases[c].bus && cfg.no_bus)
		return 0;
	if (cfg.no_peers && (k_is_peer(tp_cases[c].kind)))
		return 0;
	return tp_cases[c].kind != TP_SPSC || sizes[s] == 64;
}

static void tp_once(size_t c, size_t s, int rep)
{
	struct tp_case *t = &tpr[s][tp_cases[c].kind];
	enum tp_kind k = tp_cases[c].kind;
	struct tp_run r;
	char what[96];
	int rc;

	if (!t->ok)
		return;   /* failed in an earlier round */
	rc = k == TP_SPSC ? limit_spsc(&r)
	   : tp_cases[c].bus ? bus_tp(k, sizes[s], &r) : peer_tp(k, sizes[s], &r);
	noise_add(&total_noise, &last_noise);
	if (rc) {
		snprintf(what, sizeof(what), "%s, %zu B (round %d)", tp_cases[c].label,
			 sizes[s], rep + 1);
		report_error(what, rc);
		t->ok = 0;
		return;
	}
	noise_add(&t->noise, &last_noise);
	t->ev[t->n++] = r.evps;
	t->sent += r.sent;
	t->lost += r.lost;
	t->wakeups += r.wakeups;
	t->waits += r.producer_waits;
	t->eagain += r.eagain;
}

static void tp_row(size_t c, size_t s)
{
	struct tp_case *t = &tpr[s][tp_cases[c].kind];
	const char *id = tp_cases[c].id;
	size_t bytes = sizes[s];

	if (!t->ok)
		return;
	t->med = median(t->ev, t->n);
	t->min = t->max = t->ev[0];
	for (int i = 1; i < t->n; i++) {
		t->min = t->ev[i] < t->min ? t->ev[i] : t->min;
		t->max = t->ev[i] > t->max ? t->ev[i] : t->max;
	}
	printf("%-31s %5zu B %9.3f  (%6.3f - %6.3f) %8.3f %10llu", tp_cases[c].label, bytes,
	       t->med / 1e6, t->min / 1e6, t->max / 1e6, t->med * (double)bytes / 1e9,
	       (unsigned long long)t->lost);
	if (tp_cases[c].bus)
		printf(" %9.1f %9.1f", (double)t->wakeups * 1e6 / (double)t->sent,
		       (double)t->waits * 1e6 / (double)t->sent);
	else
		printf(" %9s %9s", "-", "-");
	if (t->lost)
		printf("  (%.2f%% lost)", 100.0 * (double)t->lost / (double)t->sent);
	if (t->eagain)
		printf("  (%llu claim timeouts)", (unsigned long long)t->eagain);
	printf("%s\n", noise_note(id, bytes, "throughput", &t->noise));
	t->suspect = suspect(&t->noise);
	csv_row("throughput", id, bytes, "events_per_s", t->med, "ev/s");
	csv_row("throughput", id, bytes, "events_per_s_min", t->min, "ev/s");
	csv_row("throughput", id, bytes, "events_per_s_max", t->max, "ev/s");
	for (int i = 0; i < t->n; i++) {
		char m[32];

		snprintf(m, sizeof(m), "events_per_s_round%d", i + 1);
		csv_row("throughput", id, bytes, m, t->ev[i], "ev/s");
	}
	csv_row("throughput", id, bytes, "gb_per_s", t->med * (double)bytes / 1e9, "GB/s");
	csv_row("throughput", id, bytes, "events_sent", (double)t->sent, "events");
	csv_row("throughput", id, bytes, "events_lost", (double)t->lost, "events");
	if (tp_cases[c].bus) {
		csv_row("throughput", id, bytes, "wakeups_per_mev",
			(double)t->wakeups * 1e6 / (double)t->sent, "wakeups/Mev");
		csv_row("throughput", id, bytes, "producer_waits_per_mev",
			(double)t->waits * 1e6 / (double)t->sent, "waits/Mev");
	}
}

/*
 * Rounds, not repetitions: every case of a size runs once per round, and
 * the median is taken over the rounds. When the hypervisor moves the vCPUs
 * (see placement_check) mid-section, every case sees the same mix of
 * placements instead of some cases getting all their runs on the slow one.
 */
static void run_throughput(void)
{
	static const char *where[NSIZES][BENCH_MAX_REPS] = {
		{ "64 B #1", "64 B #2", "64 B #3", "64 B #4", "64 B #5" },
		{ "1 KiB #1", "1 KiB #2", "1 KiB #3", "1 KiB #4", "1 KiB #5" },
		{ "16 KiB #1", "16 KiB #2", "16 KiB #3", "16 KiB #4", "16 KiB #5" },
	};

	printf("\n== 1. Throughput: 1 producer -> 1 consumer, every payload byte read and checked ==\n");
	printf("%-31s %7s %9s %17s %8s %10s %9s %9s\n", "case", "size", "Mev/s",
	       "(min - max)", "GB/s", "lost", "wake/Mev", "waits/Mev");
	fflush(stdout);
	for (size_t s = 0; s < NSIZES; s++) {
		for (size_t c = 0; c < NTP; c++) {
			memset(&tpr[s][tp_cases[c].kind], 0, sizeof(tpr[s][0]));
			tpr[s][tp_cases[c].kind].ran = tpr[s][tp_cases[c].kind].ok = tp_wanted(c, s);
		}
		for (int rep = 0; rep < cfg.reps; rep++) {
			placement_check(where[s][rep]);
			for (size_t i = 0; i < NTP; i++)
				if (tp_wanted(run_order[i], s))
					tp_once(run_order[i], s, rep);
		}
		for (size_t c = 0; c < NTP; c++)
			tp_row(c, s);
	}
	printf("(Mev/s: median of %d rounds, events in the timed part / (end marker received - "
	       "start); lost: summed over the rounds; wake/Mev: FUTEX_WAKE calls by the producer "
	       "per million events; waits/Mev: times the gated producer waited for room)\n",
	       cfg.reps);
}

/* ------------------------------------------------------------------------ */
/* 2. Latency                                                               */
/* ------------------------------------------------------------------------ */

static const struct {
	enum lat_kind kind;
	const char *id, *label;
} lat_cases[] = {
	{ LAT_BUS_BUSY,   "bus_busy",   "bus busy-poll" },
	{ LAT_BUS_SLEEP0, "bus_sleep0", "bus sleeping, spin 0" },
	{ LAT_BUS_SLEEP,  "bus_sleep",  "bus sleeping, default spin" },
};

static struct lat_result latr[LAT_NKINDS];
static int lat_ok[LAT_NKINDS];

static void lat_header(void)
{
	printf("%-31s %9s %9s %9s %9s %9s %8s\n", "case", "min", "p50", "p99",
	       "p99.9", "max", "samples");
}

static void lat_row(const char *label, const struct lat_stats *st)
{
	printf("%-31s %9.0f %9.0f %9.0f %9.0f %9.0f %8llu", label, st->min, st->p50,
	       st->p99, st->p999, st->max, (unsigned long long)st->n);
}

static void lat_csv(const char *section, const char *id, size_t bytes,
		    const struct lat_stats *st)
{
	csv_row(section, id, bytes, "min_ns", st->min, "ns");
	csv_row(section, id, bytes, "p50_ns", st->p50, "ns");
	csv_row(section, id, bytes, "p99_ns", st->p99, "ns");
	csv_row(section, id, bytes, "p999_ns", st->p999, "ns");
	csv_row(section, id, bytes, "max_ns", st->max, "ns");
	csv_row(section, id, bytes, "samples", (double)st->n, "samples");
}

static void run_latency(void)
{
	printf("\n== 2. One-way latency, 64 B events at %u ev/s, ns (producer TSC stamp before "
	       "publish -> consumer rdtscp on receipt) ==\n", cfg.lat_rate);
	lat_header();
	for (size_t c = 0; c < LAT_NKINDS; c++) {
		struct lat_result *r = &latr[lat_cases[c].kind];
		int rc = bus_lat(lat_cases[c].kind, r);

		noise_add(&total_noise, &last_noise);
		if (rc) {
			report_error(lat_cases[c].label, rc);
			continue;
		}
		lat_ok[lat_cases[c].kind] = 1;
		lat_row(lat_cases[c].label, &r->st);
		printf("  wake/Mev %.0f", (double)r->wakeups * 1e6 / (double)r->events);
		if (r->lost)
			printf("  LOST %llu", (unsigned long long)r->lost);
		if (r->st.negative)
			printf("  (%llu negative: TSC skew?)", (unsigned long long)r->st.negative);
		printf("%s\n", noise_note(lat_cases[c].id, 64, "latency", &last_noise));
		sus_lat[lat_cases[c].kind] = suspect(&last_noise);
		fflush(stdout);
		lat_csv("latency", lat_cases[c].id, 64, &r->st);
		csv_row("latency", lat_cases[c].id, 64, "wakeups_per_mev",
			(double)r->wakeups * 1e6 / (double)r->events, "wakeups/Mev");
		csv_row("latency", lat_cases[c].id, 64, "events_lost", (double)r->lost, "events");
	}
}

/* ------------------------------------------------------------------------ */
/* 3. Machine limits                                                        */
/* ------------------------------------------------------------------------ */

static struct lat_stats rtt;
static struct futex_result fx;
static struct memcpy_result mc;
static struct hiccup_result hic;
static int rtt_ok, fx_ok, mc_ok;

static void run_limits(void)
{
	int rc;

	printf("\n== 3. Machine limits (same run, same pinning) ==\n");
	if (tpr[0][TP_SPSC].ok) {
		char label[64];

		snprintf(label, sizeof(label), "naive SPSC ring, %u x 64 B slots", spsc_slots);
		printf("%-39s %.3f Mev/s (measured in section 1, beside bus 64 B)\n", label,
		       tpr[0][TP_SPSC].med / 1e6);
	}
	rc = limit_pingpong(cfg.pingpongs, &rtt);
	noise_add(&total_noise, &last_noise);
	if (rc) {
		report_error("cache-line round trip", rc);
	} else {
		rtt_ok = 1;
		sus_rtt = suspect(&last_noise);
		printf("%-39s p50 %.0f ns, p99 %.0f ns, p99.9 %.0f ns (%llu round trips)%s\n",
		       "cache-line round trip CPU0<->CPU1", rtt.p50, rtt.p99, rtt.p999,
		       (unsigned long long)rtt.n,
		       noise_note("cacheline_rtt", 0, "limits", &last_noise));
		lat_csv("limits", "cacheline_rtt", 0, &rtt);
		placement_note("limits", &rtt);
	}
	fflush(stdout);
	rc = limit_futex(&fx);
	noise_add(&total_noise, &last_noise);
	if (rc) {
		report_error("futex wake-to-run", rc);
	} else {
		char label[64];

		fx_ok = 1;
		sus_fx = suspect(&last_noise);
		snprintf(label, sizeof(label), "futex wake-to-run, %u wakes/s", cfg.lat_rate);
		printf("%-39s p50 %.0f ns, p99 %.0f ns, p99.9 %.0f ns, max %.0f ns "
		       "(%llu wakes, %llu not asleep yet)%s\n", label, fx.wake_to_run.p50,
		       fx.wake_to_run.p99, fx.wake_to_run.p999, fx.wake_to_run.max,
		       (unsigned long long)fx.wake_to_run.n, (unsigned long long)fx.not_slept,
		       noise_note("futex_wake_to_run", 0, "limits", &last_noise));
		printf("%-39s p50 %.0f ns, p99 %.0f ns\n", "FUTEX_WAKE call, in the waker",
		       fx.wake_call.p50, fx.wake_call.p99);
		lat_csv("limits", "futex_wake_to_run", 0, &fx.wake_to_run);
		lat_csv("limits", "futex_wake_call", 0, &fx.wake_call);
	}
	fflush(stdout);
	rc = limit_hiccup(&hic);
	noise_add(&total_noise, &last_noise);
	if (rc) {
		report_error("spinning vCPU hiccups", rc);
	} else {
		for (int c = 0; c < 2; c++) {
			char label[64], id[32];
			int cpu = c ? cfg.cons_cpu : cfg.prod_cpu;

			snprintf(label, sizeof(label), "spinning vCPU hiccups, CPU %d", cpu);
			snprintf(id, sizeof(id), "hiccup_cpu%d", cpu);
			printf("%-39s %.0f gaps > 10 us per s, %.2f%% of the time in gaps > 2 us, "
			       "longest %.0f us%s\n", label, hic.cpu[c].per_s, hic.cpu[c].lost_pct,
			       hic.cpu[c].max_us, c ? "" : noise_note("hiccup", 0, "limits", &last_noise));
			csv_row("limits", id, 0, "gaps_over_10us_per_s", hic.cpu[c].per_s, "1/s");
			csv_row("limits", id, 0, "time_in_gaps_pct", hic.cpu[c].lost_pct, "%");
			csv_row("limits", id, 0, "longest_gap_us", hic.cpu[c].max_us, "us");
		}
	}
	fflush(stdout);
	rc = limit_memcpy(&mc);
	noise_add(&total_noise, &last_noise);
	if (rc) {
		report_error("cold memcpy", rc);
	} else {
		mc_ok = 1;
		sus_mc = suspect(&last_noise);
		printf("%-39s %.2f GB/s, median of %d copies (best %.2f)%s\n",
		       "memcpy, cold, 256 MiB buffers", mc.gbps, mc.copies, mc.best_gbps,
		       noise_note("memcpy_cold", mc.bytes, "limits", &last_noise));
		csv_row("limits", "memcpy_cold", mc.bytes, "gb_per_s", mc.gbps, "GB/s");
	}
	fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* 4. Producer cost                                                         */
/* ------------------------------------------------------------------------ */

static const struct {
	enum prod_kind kind;
	const char *id, *label;
} prod_cases[] = {
	{ PROD_SINGLE, "publish",       "bus_pub_publish, one at a time" },
	{ PROD_BATCH,  "publish_batch", "bus_pub_publish BUS_MORE x64 + flush" },
	{ PROD_CLAIM,  "claim_batch",   "claim/commit BUS_MORE x64 + flush" },
	{ PROD_SINGLE_BIG, "publish_4m", "bus_pub_publish, 4 MiB ring" },
	{ PROD_VEC,    "publishv",      "bus_pub_publishv of 64 events" },
};

static struct prod_result prodr[PROD_NKINDS];
static double cons_ns;
static int prod_ok[PROD_NKINDS];

static void run_producer(void)
{
	printf("\n== 4. Producer cost, 64 B events, no consumer, CPU 0, default 1 MiB ring ==\n");
	printf("%-39s %10s %12s %14s\n", "case", "ns/event", "Mev/s", "FUTEX_WAKEs");
	for (size_t c = 0; c < PROD_NKINDS; c++) {
		struct prod_result *r = &prodr[prod_cases[c].kind];
		int rc = bus_prod(prod_cases[c].kind, r);

		noise_add(&total_noise, &last_noise);
		if (rc) {
			report_error(prod_cases[c].label, rc);
			continue;
		}
		prod_ok[prod_cases[c].kind] = 1;
		sus_prod[prod_cases[c].kind] = suspect(&last_noise);
		printf("%-39s %10.2f %12.2f %14llu%s\n", prod_cases[c].label, r->ns_per_event,
		       1e3 / r->ns_per_event, (unsigned long long)r->wakeups,
		       noise_note(prod_cases[c].id, 64, "producer", &last_noise));
		fflush(stdout);
		csv_row("producer", prod_cases[c].id, 64, "ns_per_event", r->ns_per_event, "ns");
		csv_row("producer", prod_cases[c].id, 64, "wakeups", (double)r->wakeups, "calls");
	}
	{
		double ns;
		int rc = bus_cons_cost(&ns);

		noise_add(&total_noise, &last_noise);
		if (rc) {
			report_error("consumer cost", rc);
		} else {
			cons_ns = ns;
			printf("%-39s %10.2f %12.2f %14s%s\n", "consumer: bus_sub_next + read 64 B*",
			       ns, 1e3 / ns, "-", noise_note("consumer_next", 64, "producer", &last_noise));
			csv_row("producer", "consumer_next", 64, "ns_per_event", ns, "ns");
		}
	}
	printf("(* same process and core as the producer, ring pre-filled: no cache line "
	       "crosses cores, this is the library's own cost per event)\n");
	printf("(publish makes no system call other than FUTEX_WAKE, and makes that only "
	       "when a consumer sleeps: FUTEX_WAKEs above must be 0)\n");
}

/* ------------------------------------------------------------------------ */
/* 5. Ratios                                                                */
/* ------------------------------------------------------------------------ */

static int misses, suspect_ratios;

/* target: > 0 means ratio >= target; < 0 means ratio <= -target; 0: none */
static void ratio(const char *id, const char *label, int have, int sus, double value,
		  const char *unit, double target)
{
	char tgt[32] = "", res[8] = "";

	if (target > 0)
		snprintf(tgt, sizeof(tgt), ">= %g%s", target, unit);
	else if (target < 0)
		snprintf(tgt, sizeof(tgt), "<= %g%s", -target, unit);
	if (!have) {
		printf("%-58s %10s %12s %6s\n", label, "n/a", tgt, target ? "n/a" : "");
		return;
	}
	if (target) {
		int pass = target > 0 ? value >= target : value <= -target;

		snprintf(res, sizeof(res), "%s", pass ? "PASS" : "MISS");
		misses += !pass;
	}
	printf("%-58s %9.3g%s %12s %6s%s\n", label, value, unit, tgt, res,
	       sus ? " [!]" : "");
	if (sus)
		suspect_ratios++;
	csv_row("ratio", id, 0, "value", value, unit[0] == 'x' ? "ratio" : "ns");
	if (target) {
		csv_row("ratio", id, 0, target > 0 ? "target_min" : "target_max",
			target > 0 ? target : -target, unit[0] == 'x' ? "ratio" : "ns");
		csv_row("ratio", id, 0, "pass", res[0] == 'P', "bool");
	}
}

static void run_ratios(void)
{
	static const char *peer_id[] = { [TP_PIPE] = "pipe", [TP_UNIX] = "unix", [TP_ZMQ] = "zmq" };
	static const char *peer_name[] = { [TP_PIPE] = "pipe", [TP_UNIX] = "unix socket",
					   [TP_ZMQ] = "zeromq" };
	const struct tp_case *b64 = &tpr[0][TP_BUS_BUSY], *b1k = &tpr[1][TP_BUS_BUSY];
	const struct lat_result *lb = &latr[LAT_BUS_BUSY], *l0 = &latr[LAT_BUS_SLEEP0];
	const struct lat_result *ls = &latr[LAT_BUS_SLEEP];
	char label[96], id[64];
	int sleep_have = 1, sleep_sus = 0;
	double sleep_min = 1e9;

	printf("\n== 5. Ratios (same run) and targets ==\n");
	printf("%-58s %10s %12s %6s\n", "ratio", "value", "target", "result");
	for (size_t s = 0; s < NSIZES; s++) {
		const struct tp_case *b = &tpr[s][TP_BUS_BUSY];

		for (int p = TP_PIPE; p <= TP_ZMQ; p++) {
			const struct tp_case *q = &tpr[s][p];

			snprintf(label, sizeof(label), "bus busy-poll / %s, %zu B events/s",
				 peer_name[p], sizes[s]);
			snprintf(id, sizeof(id), "bus_over_%s_%zu", peer_id[p], sizes[s]);
			ratio(id, label, b->ok && q->ok, b->suspect || q->suspect,
			      b->ok && q->ok ? b->med / q->med : 0, "x",
			      s == 0 && p == TP_ZMQ ? 10 : 0);
		}
	}
	/* Median of the per-round ratios: each pair ran back to back. */
	{
		const struct tp_case *q = &tpr[0][TP_SPSC];
		double r[BENCH_MAX_REPS];
		int n = 0, have = b64->ok && q->ok && b64->n == q->n;

		for (int i = 0; have && i < b64->n; i++)
			r[n++] = b64->ev[i] / q->ev[i];
		ratio("bus_over_spsc_64", "bus busy-poll 64 B / naive SPSC ring, events/s",
		      have, b64->suspect || q->suspect, have ? median(r, n) : 0, "x", 3);
	}
	ratio("bus_1k_over_memcpy", "bus busy-poll 1 KiB GB/s / cold memcpy GB/s",
	      b1k->ok && mc_ok, b1k->suspect || sus_mc,
	      mc_ok ? b1k->med * 1024 / 1e9 / mc.gbps : 0, "x", 0.5);
	ratio("lat_busy_over_rtt", "bus busy-poll latency p50 / cache-line round trip p50",
	      lat_ok[LAT_BUS_BUSY] && rtt_ok, sus_lat[LAT_BUS_BUSY] || sus_rtt,
	      rtt_ok ? lb->st.p50 / rtt.p50 : 0, "x", -1);
	ratio("lat_sleep0_over_futex", "bus sleeping (spin 0) latency p50 / futex wake-to-run p50",
	      lat_ok[LAT_BUS_SLEEP0] && fx_ok, sus_lat[LAT_BUS_SLEEP0] || sus_fx,
	      fx_ok ? l0->st.p50 / fx.wake_to_run.p50 : 0, "x", -1.2);
	ratio("lat_sleep_over_futex", "bus sleeping (default spin) latency p50 / futex p50",
	      lat_ok[LAT_BUS_SLEEP] && fx_ok, sus_lat[LAT_BUS_SLEEP] || sus_fx,
	      fx_ok ? ls->st.p50 / fx.wake_to_run.p50 : 0, "x", 0);
	for (size_t s = 0; s < NSIZES; s++) {
		const struct tp_case *b = &tpr[s][TP_BUS_BUSY], *z = &tpr[s][TP_BUS_SLEEP];
		int have = b->ok && z->ok, sus = b->suspect || z->suspect;

		snprintf(label, sizeof(label), "bus sleeping / busy-poll throughput, %zu B", sizes[s]);
		snprintf(id, sizeof(id), "sleep_over_busy_%zu", sizes[s]);
		ratio(id, label, have, sus, have ? z->med / b->med : 0, "x", 0);
		if (have && z->med / b->med < sleep_min) {
			sleep_min = z->med / b->med;
			sleep_sus = sus;
		}
		sleep_have &= have;
	}
	ratio("sleep_over_busy_min", "bus sleeping / busy-poll throughput, worst size",
	      sleep_have, sleep_sus, sleep_min, "x", 0.8);
	ratio("producer_ns_single", "producer ns per 64 B event, one at a time",
	      prod_ok[PROD_SINGLE], sus_prod[PROD_SINGLE], prodr[PROD_SINGLE].ns_per_event,
	      " ns", -40);
	ratio("producer_ns_batch", "producer ns per 64 B event, BUS_MORE x64 + flush",
	      prod_ok[PROD_BATCH], sus_prod[PROD_BATCH], prodr[PROD_BATCH].ns_per_event,
	      " ns", -10);
	ratio("producer_ns_claim", "producer ns per 64 B event, claim/commit x64 + flush",
	      prod_ok[PROD_CLAIM], sus_prod[PROD_CLAIM], prodr[PROD_CLAIM].ns_per_event,
	      " ns", 0);
	ratio("producer_ns_publishv", "producer ns per 64 B event, bus_pub_publishv x64",
	      prod_ok[PROD_VEC], sus_prod[PROD_VEC], prodr[PROD_VEC].ns_per_event,
	      " ns", -10);
	{
		uint64_t w = 0, ev = 0;
		int have = 1;

		for (int k = 0; k < PROD_NKINDS; k++) {
			have &= prod_ok[k];
			w += prodr[k].wakeups;
			ev += prodr[k].events;
		}
		/* FUTEX_WAKE is the only system call publish can make (strace in
		 * docs/PERFORMANCE.md); the topic counts every one it makes. */
		if (!have) {
			printf("%-58s %10s %12s %6s\n", "syscalls per publish, nobody asleep",
			       "n/a", "== 0", "n/a");
			return;
		}
		printf("%-58s %10.3g %12s %6s\n", "syscalls per publish, nobody asleep",
		       ev ? (double)w / (double)ev : 0.0, "== 0", w ? "MISS" : "PASS");
		misses += !!w;
		csv_row("ratio", "syscalls_per_publish_idle", 0, "value", (double)w / (double)ev,
			"calls");
		csv_row("ratio", "syscalls_per_publish_idle", 0, "target_max", 0, "calls");
		csv_row("ratio", "syscalls_per_publish_idle", 0, "pass", !w, "bool");
	}
}

/* ------------------------------------------------------------------------ */
/* 6. busd, the control plane                                               */
/* ------------------------------------------------------------------------ */

#define ATTACH_TARGET_US 100.0
#define MEM_TOPICS       1000u

static const char *ring_label(uint64_t ring)
{
	static char buf[2][32];
	static int i;

	i ^= 1;
	if (ring >= (1u << 20))
		snprintf(buf[i], sizeof(buf[i]), "%llu MiB", (unsigned long long)(ring >> 20));
	else
		snprintf(buf[i], sizeof(buf[i]), "%llu KiB", (unsigned long long)(ring >> 10));
	return buf[i];
}

/* One PASS/MISS line's verdict, counted with the ratios' misses. */
static const char *verdict(const char *id, size_t bytes, int pass, double target,
			   const char *metric, const char *unit)
{
	misses += !pass;
	csv_row("busd", id, bytes, metric, target, unit);
	csv_row("busd", id, bytes, "pass", pass, "bool");
	return pass ? "PASS" : "MISS";
}

static void busd_mem_rows(const struct busd_mem_result *m)
{
	static const char *ids[] = { "fresh", "before", "after" };
	const struct busd_mem *v[] = { &m->fresh, &m->before, &m->after };
	char label[80];
	double n = m->topics, scale = (double)MEM_TOPICS / n;
	double per[4] = {
		(double)(m->after.rss - m->before.rss) / n,
		(double)(m->after.anon - m->before.anon) / n,
		(double)(m->after.file - m->before.file) / n,
		(double)(m->after.shmem - m->before.shmem) / n,
	};

	printf("%-50s %10s %10s %10s %10s\n", "busd memory, /proc/PID/status (KiB)", "VmRSS",
	       "RssAnon", "RssFile", "RssShmem");
	for (int i = 0; i < 3; i++) {
		static const char *what[] = { "just started, no client", "one client connected" };

		if (i == 2)
			snprintf(label, sizeof(label), "after %u topics of %s", m->topics,
				 ring_label(m->ring));
		printf("%-50s %10ld %10ld %10ld %10ld\n", i == 2 ? label : what[i], v[i]->rss,
		       v[i]->anon, v[i]->file, v[i]->shmem);
	}
	printf("%-50s %10.2f %10.2f %10.2f %10.2f\n", "per topic (after - connected) / topics",
	       per[0], per[1], per[2], per[3]);
	if (m->topics != MEM_TOPICS) {
		snprintf(label, sizeof(label), "SCALED to %u topics (not measured)", MEM_TOPICS);
		printf("%-50s %10.0f %10.0f %10.0f %10.0f\n", label,
		       (double)m->before.rss + per[0] * MEM_TOPICS,
		       (double)m->before.anon + per[1] * MEM_TOPICS,
		       (double)m->before.file + per[2] * MEM_TOPICS,
		       (double)m->before.shmem + per[3] * MEM_TOPICS);
		printf("(quick run: %u topics measured; the SCALED line is the per-topic figure x %u "
		       "added to the connected busd, x%.0f)\n", m->topics, MEM_TOPICS, scale);
	}
	printf("bus_create round trip, mean over the %u creates: %.1f us\n", m->topics, m->create_us);
	for (int i = 0; i < 3; i++) {
		csv_row("busd", ids[i], 0, "vmrss_kib", (double)v[i]->rss, "KiB");
		csv_row("busd", ids[i], 0, "rss_anon_kib", (double)v[i]->anon, "KiB");
		csv_row("busd", ids[i], 0, "rss_file_kib", (double)v[i]->file, "KiB");
		csv_row("busd", ids[i], 0, "rss_shmem_kib", (double)v[i]->shmem, "KiB");
	}
	csv_row("busd", "mem_per_topic", m->ring, "topics", n, "topics");
	csv_row("busd", "mem_per_topic", m->ring, "vmrss_kib", per[0], "KiB");
	csv_row("busd", "mem_per_topic", m->ring, "rss_anon_kib", per[1], "KiB");
	csv_row("busd", "mem_per_topic", m->ring, "rss_file_kib", per[2], "KiB");
	csv_row("busd", "mem_per_topic", m->ring, "rss_shmem_kib", per[3], "KiB");
	csv_row("busd", "create", m->ring, "mean_us", m->create_us, "us");
}

static void busd_attach_rows(const struct busd_attach_result *a)
{
	static const struct {
		enum busd_step step;
		const char *id, *label;
		int target;
	} rows[] = {
		{ BS_CONNECT,      "connect",        "bus_connect", 0 },
		{ BS_ATTACH,       "attach",         "bus_sub_attach, connection kept open", 1 },
		{ BS_MAP,          "map",            "  of which mapping the segment*", 0 },
		{ BS_ATTACH_FRESH, "attach_fresh",   "bus_sub_attach, new connection", 0 },
		{ BS_CONN_ATTACH,  "connect_attach", "bus_connect + bus_sub_attach", 1 },
		{ BS_CLOSE,        "close",          "bus_sub_close", 0 },
		{ BS_UNMAP,        "unmap",          "  of which unmapping it*", 0 },
		{ BS_DISCONNECT,   "disconnect",     "bus_disconnect", 0 },
		{ BS_CYCLE,        "cycle",          "connect+attach+close+disconnect", 0 },
	};

	printf("%-50s %8s %8s %8s %8s %10s %6s\n", "consumer attach, us", "p50", "p99", "mean",
	       "max", "target", "result");
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		for (int k = 0; k < BUSD_RINGS; k++) {
			const struct lat_stats *st = &a->st[k][rows[i].step];
			char label[96], tgt[16] = "", id[48];
			const char *res = "";

			snprintf(label, sizeof(label), "%s, %s ring", rows[i].label,
				 ring_label(busd_ring[k]));
			snprintf(id, sizeof(id), "attach_%s", rows[i].id);
			if (rows[i].target) {
				snprintf(tgt, sizeof(tgt), "<= %.0f", ATTACH_TARGET_US);
				res = verdict(id, busd_ring[k], st->p50 <= ATTACH_TARGET_US * 1e3,
					      ATTACH_TARGET_US * 1e3, "target_p50_max_ns", "ns");
			}
			printf("%-50s %8.1f %8.1f %8.1f %8.1f %10s %6s\n", label, st->p50 / 1e3,
			       st->p99 / 1e3, st->mean / 1e3, st->max / 1e3, tgt, res);
			lat_csv("busd", id, busd_ring[k], st);
		}
	}
	printf("(%llu of each, after 20 warm-up; the rings alternate within each iteration; "
	       "* the library's seg_attach_fds and seg_detach timed alone, on descriptors opened "
	       "by the client, no busd)%s\n",
	       (unsigned long long)a->n, noise_note("attach", 0, "busd", &a->noise));
}

static void busd_rate_rows(const struct busd_rate_result *r)
{
	static const char *ids[] = { "ping", "stat" };
	static const char *names[] = { "bus_ping", "bus_stat" };

	printf("%-50s %9s %8s %8s %9s %8s %8s\n", "control round trips, one connection", "req/s",
	       "p50 us", "p99 us", "raw req/s", "raw p50", "busd/raw");
	for (int k = 0; k < BR_N; k++) {
		double ratio[BENCH_MAX_REPS], busd = median((double *)r->busd[k], r->rounds);
		double raw = median((double *)r->raw[k], r->rounds), q;
		char label[96];

		for (int i = 0; i < r->rounds; i++)
			ratio[i] = r->busd[k][i] / r->raw[k][i];
		q = median(ratio, r->rounds);
		snprintf(label, sizeof(label), "%s (%zu B request, %zu B reply)", names[k],
			 r->req_len[k], r->rep_len[k]);
		printf("%-50s %9.0f %8.1f %8.1f %9.0f %8.1f %7.3fx\n", label, busd,
		       r->busd_rtt[k].p50 / 1e3, r->busd_rtt[k].p99 / 1e3, raw,
		       r->raw_rtt[k].p50 / 1e3, q);
		csv_row("busd", ids[k], r->req_len[k], "round_trips_per_s", busd, "1/s");
		for (int i = 0; i < r->rounds; i++) {
			char m[40];

			snprintf(m, sizeof(m), "round_trips_per_s_round%d", i + 1);
			csv_row("busd", ids[k], r->req_len[k], m, r->busd[k][i], "1/s");
			snprintf(m, sizeof(m), "raw_round_trips_per_s_round%d", i + 1);
			csv_row("busd", ids[k], r->req_len[k], m, r->raw[k][i], "1/s");
		}
		csv_row("busd", ids[k], r->req_len[k], "raw_round_trips_per_s", raw, "1/s");
		csv_row("busd", ids[k], r->req_len[k], "busd_over_raw", q, "ratio");
		csv_row("busd", ids[k], r->req_len[k], "p50_ns", r->busd_rtt[k].p50, "ns");
		csv_row("busd", ids[k], r->req_len[k], "p99_ns", r->busd_rtt[k].p99, "ns");
		csv_row("busd", ids[k], r->req_len[k], "raw_p50_ns", r->raw_rtt[k].p50, "ns");
		csv_row("busd", ids[k], r->req_len[k], "raw_p99_ns", r->raw_rtt[k].p99, "ns");
	}
	printf("(median of %d rounds of %.2f s each way; raw: the same bytes over "
	       "socketpair(AF_UNIX, SOCK_SEQPACKET) to an echo process, blocking recv/send; "
	       "busd/raw: median of the per-round ratios)%s\n", r->rounds, r->round_s,
	       noise_note("rate", 0, "busd", &r->noise));
}

static void busd_idle_rows(const struct busd_idle_result *r)
{
	static const char *ids[] = { "idle_none", "idle_client", "idle_named" };
	static const char *labels[] = { "no client", "one idle client, no topic open",
					"one idle client + named consumer attached" };

	printf("%-50s %8s %8s %10s %9s %10s %6s\n", "busd CPU while idle", "window", "ticks",
	       "on-CPU us", "switches", "target", "result");
	for (int i = 0; i < BI_N; i++) {
		const struct busd_idle *w = &r->w[i];

		if (!r->ok[i]) {
			printf("%-50s %8s\n", labels[i], "n/a");
			continue;
		}
		printf("%-50s %6.2f s %8ld %10.1f %9llu %10s %6s\n", labels[i], w->window_s,
		       w->ticks, (double)w->run_ns / 1e3, (unsigned long long)w->switches,
		       "== 0 ticks", verdict(ids[i], 0, w->ticks == 0, 0, "target_ticks", "ticks"));
		csv_row("busd", ids[i], 0, "window_s", w->window_s, "s");
		csv_row("busd", ids[i], 0, "ticks", (double)w->ticks, "ticks");
		csv_row("busd", ids[i], 0, "on_cpu_ns", (double)w->run_ns, "ns");
		csv_row("busd", ids[i], 0, "context_switches", (double)w->switches, "switches");
	}
	printf("(ticks: utime + stime of /proc/PID/stat, 1/%ld s; on-CPU: schedstat of its "
	       "threads; a named consumer arms busd's 1 s cursor-persist timer)\n",
	       sysconf(_SC_CLK_TCK));
}

/* busd died during a step: said once, then the section ends. */
static int busd_gone(struct busd_proc *d)
{
	if (!d->pid)
		return 1;   /* the step that noticed reported it */
	if (!busd_check(d))
		return 0;
	report_error("busd", -ESRCH);
	return 1;
}

static void run_busd(void)
{
	struct busd_proc d;
	struct busd_mem_result mem;
	struct busd_attach_result att;
	struct busd_rate_result rate;
	struct busd_idle_result idle;
	uint64_t n = cfg.quick ? 300 : 2000;
	unsigned ntopics = cfg.quick ? 200 : MEM_TOPICS;
	double idle_s = cfg.quick ? 1.0 : 2.0, round_s = cfg.quick ? 0.1 : 0.5;
	int rc;

	printf("\n== 6. busd, the control plane: a private busd, nothing pinned (%ld CPUs) ==\n",
	       sysconf(_SC_NPROCESSORS_ONLN));
	fflush(stdout);
	rc = busd_start(&d, "busd", NULL, -1);
	if (rc) {
		report_error("starting busd", rc);
		busd_stop(&d);
		return;
	}
	printf("busd %s, pid %d, READY=1 %.1f ms after fork; directories %s\n", d.bin,
	       (int)d.pid, d.start_ms, d.root);
	csv_row("busd", "start", 0, "ready_ms", d.start_ms, "ms");
	fflush(stdout);

	rc = busd_mem(&d, ntopics, &mem);
	if (rc)
		report_error("busd memory", rc);
	else
		busd_mem_rows(&mem);
	fflush(stdout);
	if (busd_gone(&d))
		goto stop;

	rc = busd_attach(&d, n, &att);
	noise_add(&total_noise, &att.noise);
	if (rc)
		report_error("busd attach", rc);
	else
		busd_attach_rows(&att);
	csv_row("busd", "attach", 0, "slots_left_taken", att.leaked, "slots");
	if (att.leaked) {
		/* A bug, not a number: the figures above were taken on topics
		 * created again every 32 iterations to work around it. */
		errors++;
		printf("  !! bus_sub_close does not free the consumer slot: after 2 attach/close "
		       "pairs, bus_stat counts %u consumer(s) on the topic; the topics were "
		       "deleted and created again %u times to keep measuring (a long-lived "
		       "client gets -EUSERS after %u attaches)\n", att.leaked, att.recreated,
		       BUS_CONSUMERS_DEFAULT);
	}
	fflush(stdout);
	if (busd_gone(&d))
		goto stop;

	rc = busd_rate(&d, round_s, 3, &rate);
	noise_add(&total_noise, &rate.noise);
	if (rc)
		report_error("busd control round trips", rc);
	else
		busd_rate_rows(&rate);
	fflush(stdout);
	if (busd_gone(&d))
		goto stop;

	rc = busd_idle(&d, idle_s, &idle);
	if (rc)
		report_error("busd idle CPU", rc);
	busd_idle_rows(&idle);
	fflush(stdout);
stop:
	rc = busd_stop(&d);
	if (rc) {
		errors++;
		printf("  !! stopping busd FAILED: %s\n", bench_err());
		bench_err_clear();
	}
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

static int want(const char *only, const char *sec)
{
	size_t n = strlen(sec);
	const char *p = only;

	if (!only)
		return 1;
	while ((p = strstr(p, sec))) {
		if ((p == only || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
			return 1;
		p += n;
	}
	return 0;
}

static const char *loadavg(void)
{
	static char buf[128];
	FILE *f = fopen("/proc/loadavg", "r");

	snprintf(buf, sizeof(buf), "?\n");
	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			snprintf(buf, sizeof(buf), "?\n");
		fclose(f);
	}
	return buf;
}

static void usage(FILE *f, int status)
{
	fprintf(f, "usage: bus-bench [--csv FILE] [--quick] [--no-bus] [--no-peers] [--only SECTIONS]\n"
		"  --csv FILE     also write every number to FILE (CSV)\n"
		"  --quick        every case ~5x shorter (also BENCH_QUICK=1)\n"
		"  --no-bus       only the peers and the machine limits\n"
		"  --no-peers     only bus and the machine limits (no pipe, socket, ZeroMQ)\n"
		"  --only LIST    comma list of tp, lat, limits, prod, busd, durable (default: all)\n"
		"exit status: 0 ok, 1 a case failed (lost/garbled data, hang, error), 2 usage\n");
	exit(status);
}

int main(int argc, char **argv)
{
	const char *csv_path = NULL, *only = NULL, *q = getenv("BENCH_QUICK");
	double scale;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--csv") && i + 1 < argc)
			csv_path = argv[++i];
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
		else if (!strcmp(argv[i], "--quick"))
			cfg.quick = 1;
		else if (!strcmp(argv[i], "--no-bus"))
			cfg.no_bus = 1;
		else if (!strcmp(argv[i], "--no-peers"))
			cfg.no_peers = 1;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			usage(stdout, 0);
		else
			usage(stderr, 2);
	}
	if (q && *q && strcmp(q, "0"))
		cfg.quick = 1;
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		fprintf(stderr, "bus-bench: needs 2 CPUs\n");
		return 1;
	}
	scale = cfg.quick ? 0.2 : 1.0;
	/* 5 short rounds rather than 3 long ones: the median then survives a
	 * vCPU placement change during one or two of them. */
	cfg.tp_s = 0.3 * scale;
	cfg.warm_s = 0.06 * scale;
	cfg.reps = 5;
	cfg.lat_s = 1.0 * scale;
	cfg.lat_warm_s = 0.05 * scale;
	cfg.lat_rate = 50000;
	cfg.prod_s = 0.5 * scale;
	cfg.pingpongs = (uint64_t)(1000000 * scale);
	cfg.prod_cpu = 0;
	cfg.cons_cpu = 1;

	cleanup_init();
	pattern_init();
	tsc_calibrate(cfg.quick ? 0.05 : 0.2);
	if (csv_path) {
		csv = fopen(csv_path, "w");
		if (!csv) {
			fprintf(stderr, "bus-bench: %s: %s\n", csv_path, strerror(errno));
			return 1;
		}
		fprintf(csv, "section,case,payload_bytes,metric,value,unit\n");
	}
	print_machine();
	printf("load    : %s", loadavg());
	if (!want(only, "tp"))
		placement_check("start");
	if (want(only, "tp"))
		run_throughput();
	if (want(only, "lat") && !cfg.no_bus) {
		run_latency();
		placement_check("after latency");
	}
	if (want(only, "limits"))
		run_limits();
	if (want(only, "prod") && !cfg.no_bus) {
		run_producer();
		placement_check("end");
	}
	if (want(only, "tp") || want(only, "lat") || want(only, "limits") || want(only, "prod"))
		run_ratios();
	if (want(only, "busd") && !cfg.no_bus)
		run_busd();
	if (want(only, "durable") && !cfg.no_bus) {
		int missed = 0;

		errors += run_durable(csv, &missed);
		misses += missed;
	}
	printf("\nother load during the measurements: %.2f CPU-s of other processes, %.2f CPU-s "
	       "stolen, over %.1f s (%.1f%% of one CPU)\n", total_noise.other_s,
	       total_noise.steal_s, total_noise.wall_s, 100 * noise_frac(&total_noise));
	if (placement_summary())
		printf("  !! the vCPUs changed placement during the run: ratios between sections "
		       "are unreliable, compare within a section or rerun\n");
	if (noisy)
		printf("%d case(s) ran beside other load > %.0f%% of a CPU (marked [!]): "
		       "their numbers are suspect, rerun on a quiet machine\n", noisy,
		       100 * NOISE_FLAG);
	if (suspect_ratios)
		printf("%d ratio(s) rest on a number measured beside other load (marked [!])\n",
		       suspect_ratios);
	printf("%d target(s) missed; %d case(s) failed%s\n", misses, errors,
	       errors ? " (see !! lines above: a failed case is a bug to fix, not a number)" : "");
	printf("load    : %s", loadavg());
	if (csv) {
		fclose(csv);
		printf("CSV: %s\n", csv_path);
	}
	cleanup_all();
	return errors ? 1 : 0;
}
