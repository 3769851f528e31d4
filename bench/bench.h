/* SPDX-License-Identifier: MIT */
/*
 * bench.h — shared pieces of bus-bench: configuration, clocks, the payload
 * and its verification, process pairs, statistics and the result records
 * each section fills for main.c to print.
 *
 * Every cross-core measurement runs as two processes (fork), the producer
 * pinned to CPU 0 and the consumer to CPU 1, talking through memory mapped
 * MAP_SHARED before the fork (or through the transport under test).
 */
#ifndef BENCH_H
#define BENCH_H

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

#define BENCH_MAX_REPS 5

struct bench_cfg {
	double tp_s;        /* timed part of one throughput run, seconds */
	double warm_s;      /* untimed warm-up before it (page faults, caches) */
	int reps;           /* throughput rounds (one run of every case each); median */
	double lat_s;       /* timed part of one latency run */
	double lat_warm_s;  /* events discarded at the start of a latency run */
	unsigned lat_rate;  /* events per second in latency runs */
	double prod_s;      /* producer-cost run */
	uint64_t pingpongs; /* cache-line round trips measured */
	int quick;          /* BENCH_QUICK=1: every case ~5x shorter */
	int no_bus;         /* --no-bus: only peers and machine limits */
	int no_peers;       /* --no-peers: only bus and machine limits */
	double tsc_per_ns;  /* TSC ticks per nanosecond (calibrated) */
	int prod_cpu;       /* 0 */
	int cons_cpu;       /* 1 */
};

extern struct bench_cfg cfg;

/* ------------------------------------------------------------------------ */
/* Time                                                                     */
/* ------------------------------------------------------------------------ */

/* Plain rdtsc for stamps taken *before* an action: if it is executed early,
 * the measured latency only gets larger, never flattering. */
static inline uint64_t tsc(void)
{
	return __builtin_ia32_rdtsc();
}

/* rdtscp waits for earlier instructions to finish, so a stamp taken on
 * receipt cannot be hoisted above the load that saw the event. */
static inline uint64_t tscp(void)
{
	unsigned aux;

	return __builtin_ia32_rdtscp(&aux);
}

static inline void cpu_relax(void)
{
	__builtin_ia32_pause();
}

uint64_t now_ns(void);          /* CLOCK_MONOTONIC, the same in every process */
void tsc_calibrate(double seconds);
double ticks_to_ns(int64_t ticks);
uint64_t ns_to_ticks(double ns);

/* ------------------------------------------------------------------------ */
/* Payload                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Every message is a whole number of 8-byte words:
 *   w[0]      sequence number of the message, counted by the producer
 *             (END_SEQ marks the end of a stream transport's run);
 *   w[1]      a TSC stamp in latency runs, pattern otherwise;
 *   w[2..n-1] a fixed pseudo-random pattern.
 * The consumer xors every word (so it reads every byte) and checks that the
 * xor of w[2..] matches the pattern's: a torn or overwritten message shows
 * up as "garbled", a gap in w[0] as "lost".
 */
#define MSG_MAX   16384u
#define END_SEQ   UINT64_MAX
#define END_TYPE  0xFFFFFFFFu   /* bus type word that ends a run */

extern uint64_t pattern[MSG_MAX / 8];

void pattern_init(void);
uint64_t pattern_tail_xor(size_t len);

static inline uint64_t load64(const void *p)
{
	uint64_t w;

	memcpy(&w, p, sizeof(w));  /* transports may hand us unaligned bytes */
	return w;
}

/* Xor of every 8-byte word of p (len is a multiple of 8). Four accumulators
 * so the loop is bound by loads, not by one dependency chain. */
static inline uint64_t payload_xor(const void *p, size_t len)
{
	const unsigned char *c = p;
	uint64_t a = 0, b = 0, d = 0, e = 0;
	size_t i = 0;

	for (; i + 32 <= len; i += 32) {
		a ^= load64(c + i);
		b ^= load64(c + i + 8);
		d ^= load64(c + i + 16);
		e ^= load64(c + i + 24);
	}
	for (; i + 8 <= len; i += 8)
		a ^= load64(c + i);
	return a ^ b ^ d ^ e;
}

struct verify {
	uint64_t expect;   /* next w[0] expected */
	uint64_t events;   /* messages accepted */
	uint64_t bytes;    /* payload bytes read */
	uint64_t lost;     /* gaps in w[0] */
	uint64_t garbled;  /* bad pattern, or w[0] going backwards */
	uint64_t sink;     /* sum of the xors: keeps the reads alive */
};

/* Account for one message whose words were already read: x = xor of all its
 * words, w0/w1 its first two words. Split from verify_msg() so the bus
 * consumer can confirm the view between reading and accounting. */
static inline void verify_account(struct verify *v, uint64_t w0, uint64_t w1,
				  uint64_t x, size_t len, uint64_t tailx)
{
	v->events++;
	v->bytes += len;
	v->sink += x;
	if ((x ^ w0 ^ w1) != tailx) {
		v->garbled++;      /* w0 is not trustworthy either */
		v->expect++;
		return;
	}
	if (w0 != v->expect) {
		if (w0 > v->expect)
			v->lost += w0 - v->expect;
		else
			v->garbled++;
	}
	v->expect = w0 + 1;
}

static inline void verify_msg(struct verify *v, const void *p, size_t len,
			      uint64_t tailx)
{
	uint64_t x = payload_xor(p, len);

	verify_account(v, load64(p), load64((const char *)p + 8), x, len, tailx);
}

/* ------------------------------------------------------------------------ */
/* Processes and shared memory                                              */
/* ------------------------------------------------------------------------ */

void *shm_map(size_t len);              /* MAP_SHARED|MAP_ANONYMOUS, zeroed */
void shm_unmap(void *p, size_t len);
int pin_cpu(int cpu);

/*
 * Run cons (on cfg.cons_cpu) and prod (on cfg.prod_cpu) as two child
 * processes, the consumer forked first; either may be NULL. Waits for both
 * at most timeout_s, then kills them. Returns 0 if both returned 0,
 * -ETIMEDOUT, or -ECHILD (a child failed: see bench_err()).
 */
int run_pair(int (*cons)(void *), int (*prod)(void *), void *arg,
	     double timeout_s);

/*
 * Run fn in one child process, not pinned, at most timeout_s, then kill it.
 * Returns 0 if it returned 0, -ETIMEDOUT or -ECHILD (see bench_err()).
 * *cpu_s (may be NULL) gets the child's user + system CPU time.
 */
int run_one(int (*fn)(void *), void *arg, double timeout_s, double *cpu_s);

/* CPU-seconds the kernel counted as busy, and as stolen, on all CPUs so
 * far (/proc/stat, 10 ms ticks). */
void cpu_busy(double *busy, double *steal);

/*
 * Other load during a run_pair(): CPU time the kernel counted as busy on any
 * CPU (/proc/stat) minus what this process and its children used, plus the
 * time the hypervisor stole. This is a shared 2-CPU VM: a number measured
 * while something else ran is flagged, not silently printed.
 */
struct noise {
	double wall_s;    /* wall time of the runs */
	double other_s;   /* CPU-seconds used by other processes (10 ms ticks) */
	double steal_s;   /* CPU-seconds stolen by the hypervisor */
};

#define NOISE_FLAG 0.10   /* flag a case when other + steal > 10% of one CPU */

extern struct noise last_noise;  /* of the last run_pair() */

void noise_add(struct noise *acc, const struct noise *n);
double noise_frac(const struct noise *n);  /* (other + steal) / wall */

/* Wait for *flag != 0 (set by the other process), at most timeout_s. */
int wait_flag(_Atomic uint32_t *flag, double timeout_s);

/* From a child: record why it failed (the first message wins) and return -1. */
int child_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *bench_err(void);
void bench_err_clear(void);

/* Parent: remember a bus topic / a path so every exit path removes it. */
void cleanup_add_topic(const char *name);
void cleanup_done_topic(const char *name);
void cleanup_add_path(const char *path);
/* ... a directory, removed with everything in it (rm_tree) ... */
void cleanup_add_tree(const char *path);
void cleanup_done_tree(const char *path);
/* ... and a daemon (busd) to SIGKILL; 0 = none. */
void cleanup_set_daemon(pid_t pid);
void cleanup_init(void);
void cleanup_all(void);

/* Remove a directory and everything in it (async-signal-safe). 0 or -errno
 * of the final rmdir; a path that does not exist is 0. */
int rm_tree(const char *path);

/* A unique name for this run: "bus-bench-<pid>-<tag>". */
void bench_name(char *buf, size_t len, const char *tag);

/* ------------------------------------------------------------------------ */
/* Statistics                                                               */
/* ------------------------------------------------------------------------ */

struct lat_stats {
	uint64_t n;
	double min, p50, p99, p999, max, mean;  /* ns */
	uint64_t negative;                      /* samples < 0 (TSC skew) */
};

/* Sorts ticks[] in place and fills *st (converted to ns). */
void lat_stats_ticks(int64_t *ticks, size_t n, struct lat_stats *st);
double median(double *v, int n);

/* ------------------------------------------------------------------------ */
/* Throughput runs                                                          */
/* ------------------------------------------------------------------------ */

/* State of one throughput run, in shared memory. Fields are written by one
 * process and read by the parent after waitpid(), which orders them. */
struct tp_shared {
	_Atomic uint32_t ready;  /* consumer attached; producer may start */
	uint32_t pad_;
	uint64_t t0_ns;          /* producer: start of the timed part */
	uint64_t seq0;           /* producer: first w[0] of the timed part */
	uint64_t sent;           /* producer: messages sent, end marker excluded */
	uint64_t eagain;         /* producer: gated claims that timed out */
	uint64_t t_end_ns;       /* consumer: end marker received */
	uint64_t wait_timeouts;  /* consumer: bus_sub_wait() timeouts */
	uint64_t bus_lost;       /* consumer: losses the bus reported (ENOBUFS) */
	uint64_t bus_seq_err;    /* consumer: bus sequence numbers out of order */
	uint64_t confirm_fail;   /* consumer: views overwritten while read */
	struct verify v;
};

/* The producer's clock: warm up for cfg.warm_s, then time cfg.tp_s.
 * tp_clock_tick() is called every TP_CHECK messages; 0 = stop. */
#define TP_CHECK 64u

struct tp_clock {
	uint64_t warm_end, end;
	int timed;
};

static inline void tp_clock_start(struct tp_clock *c)
{
	c->warm_end = now_ns() + (uint64_t)(cfg.warm_s * 1e9);
	c->end = 0;
	c->timed = 0;
}

static inline int tp_clock_tick(struct tp_clock *c, struct tp_shared *sh,
				uint64_t next_seq)
{
	uint64_t t = now_ns();

	if (!c->timed) {
		if (t >= c->warm_end) {
			c->timed = 1;
			sh->t0_ns = t;
			sh->seq0 = next_seq;
			c->end = t + (uint64_t)(cfg.tp_s * 1e9);
		}
		return 1;
	}
	return t < c->end;
}

/* One run's outcome, as the parent computes it. */
struct tp_run {
	double evps;             /* messages per second in the timed part */
	uint64_t sent, received, lost, garbled;
	uint64_t bus_lost, bus_seq_err, confirm_fail;
	uint64_t wakeups, producer_waits, eagain, wait_timeouts;
};

/* Fill *r from a finished run's shared state; checks the lossless
 * invariants and returns -EIO (with bench_err()) when they fail. */
int tp_finish(const struct tp_shared *sh, size_t size, int lossless,
	      struct tp_run *r);

/* The transports of section 1. */
enum tp_kind {
	TP_BUS_BUSY,      /* gated topic, busy-poll consumer */
	TP_BUS_SLEEP,     /* gated topic, bus_sub_wait() consumer, default spin */
	TP_BUS_FREE,      /* non-gated topic (default), busy-poll consumer */
	TP_BUS_BATCH,     /* gated, busy-poll; producer batches 64 with BUS_MORE */
	TP_PIPE,
	TP_UNIX,
	TP_ZMQ,
	TP_SPSC,          /* the naive fixed-slot ring (machine limit), 64 B only */
	TP_NKINDS
};

int peer_tp(enum tp_kind kind, size_t size, struct tp_run *r);
int bus_tp(enum tp_kind kind, size_t size, struct tp_run *r);

/* ------------------------------------------------------------------------ */
/* Latency, limits, producer cost                                           */
/* ------------------------------------------------------------------------ */

enum lat_kind {
	LAT_BUS_BUSY,     /* busy-poll consumer */
	LAT_BUS_SLEEP0,   /* bus_sub_wait() with bus_sub_set_spin(sub, 0) */
	LAT_BUS_SLEEP,    /* bus_sub_wait() with the default spin */
	LAT_NKINDS
};

struct lat_result {
	struct lat_stats st;
	uint64_t lost, garbled, wakeups, events;
};

int bus_lat(enum lat_kind kind, struct lat_result *r);

struct futex_result {
	struct lat_stats wake_to_run;  /* stamp before the bump -> sleeper runs */
	struct lat_stats wake_call;    /* the FUTEX_WAKE syscall in the waker */
	uint64_t not_slept;            /* sleeper found the word already changed */
};

struct memcpy_result {
	double gbps;      /* median of the copies, bytes copied per second / 1e9 */
	double best_gbps;
	size_t bytes;
	int copies;
};

/* What a spinning vCPU does not get: gaps between back-to-back TSC reads. */
struct hiccup_cpu {
	double per_s;     /* interruptions longer than 10 us, per second */
	double lost_pct;  /* share of the time in gaps longer than 2 us */
	double max_us;    /* longest gap */
};

struct hiccup_result {
	struct hiccup_cpu cpu[2];  /* [0] = producer CPU, [1] = consumer CPU */
	double seconds;
};

int limit_spsc(struct tp_run *r);
extern const unsigned spsc_slots;
int limit_hiccup(struct hiccup_result *r);
int limit_pingpong(uint64_t rounds, struct lat_stats *rtt);
int limit_futex(struct futex_result *r);
int limit_memcpy(struct memcpy_result *r);

enum prod_kind {
	PROD_SINGLE,      /* bus_pub_publish() one at a time */
	PROD_BATCH,       /* 64 x bus_pub_publish(BUS_MORE), bus_pub_flush() */
	PROD_CLAIM,       /* 64 x claim + write + commit(BUS_MORE), flush */
	PROD_SINGLE_BIG,  /* PROD_SINGLE on the 4 MiB ring of the other cases */
	PROD_VEC,         /* bus_pub_publishv() of 64 events */
	PROD_NKINDS
};

struct prod_result {
	double ns_per_event;
	uint64_t events, wakeups;
};

int bus_prod(enum prod_kind kind, struct prod_result *r);

/* Consumer cost: bus_sub_next() + reading the 64 bytes, ring pre-filled by
 * a producer handle in the same process, so no cache line moves between
 * cores: the library's own instructions per event. */
int bus_cons_cost(double *ns_per_event);

/* ------------------------------------------------------------------------ */
/* busd: the control plane (busd.c)                                         */
/* ------------------------------------------------------------------------ */

/* A private busd for the busd section: the binary next to bus-bench
 * (BUILD/bench/bus-bench -> BUILD/bin/busd), its bus, segment and state
 * directories in one mkdtemp directory under /dev/shm. */
struct busd_proc {
	pid_t pid;          /* 0 when not running */
	char root[96];      /* mkdtemp under /dev/shm: bus, shm, busd.err ("" before) */
	char disk[96];      /* a second mkdtemp for the state, if asked for ("" if not) */
	char bus[128];      /* root/bus: the address for bus_connect */
	char shm[128];      /* root/shm: the segments */
	char state[128];    /* root/state, or disk/state */
	char bin[4096];
	double start_ms;    /* fork to READY=1 */
};

/* Start busd and wait for READY=1 on $NOTIFY_SOCKET (10 s at most). tag
 * names the directories (bus-bench-PID-TAG.XXXXXX); state_under, if not
 * NULL, puts the state (durable topics' logs) in a directory of its own
 * there (a real disk, say); cpu >= 0 pins busd and its threads to it. */
int busd_start(struct busd_proc *d, const char *tag, const char *state_under, int cpu);
/* 0 while busd runs; -ESRCH (with bench_err()) once it has exited. */
int busd_check(struct busd_proc *d);
/* SIGTERM, wait 10 s (then SIGKILL), remove the directories. Returns busd's
 * exit status (0: a clean stop), 128 + signal, or -errno; safe after a
 * failed start. */
int busd_stop(struct busd_proc *d);
/* The last lines busd wrote to stderr, joined (a static buffer). */
const char *busd_said(const struct busd_proc *d);

#define BUSD_RINGS 2
extern const uint64_t busd_ring[BUSD_RINGS];  /* the default 1 MiB, 64 KiB */

/* What one consumer attach costs, step by step (ns). */
enum busd_step {
	BS_CONNECT,       /* bus_connect, in the full cycle */
	BS_ATTACH_FRESH,  /* bus_sub_attach, first request on that connection */
	BS_CONN_ATTACH,   /* bus_connect + bus_sub_attach */
	BS_CLOSE,         /* bus_sub_close */
	BS_DISCONNECT,    /* bus_disconnect */
	BS_CYCLE,         /* connect + attach + close + disconnect */
	BS_ATTACH,        /* bus_sub_attach on a connection kept open */
	BS_MAP,           /* of which the client's mapping, no busd involved */
	BS_UNMAP,         /* of bus_sub_close: the unmapping */
	BS_N
};

struct busd_attach_result {
	uint64_t n;                              /* iterations of each loop */
	struct lat_stats st[BUSD_RINGS][BS_N];
	struct noise noise;
	uint32_t leaked;      /* consumers bus_stat still counted after the first
			       * two attach/close pairs (must be 0) */
	uint32_t recreated;   /* topics deleted and created again because of it */
};

struct busd_mem {           /* /proc/PID/status, KiB */
	long rss, anon, file, shmem;
};

struct busd_mem_result {
	unsigned topics;          /* created */
	uint64_t ring;            /* their ring size */
	struct busd_mem fresh;    /* just started, no client */
	struct busd_mem before;   /* the creating client connected */
	struct busd_mem after;    /* after the topics were created */
	double create_us;         /* mean bus_create round trip */
};

enum busd_idle_kind { BI_NONE, BI_CLIENT, BI_NAMED, BI_N };

struct busd_idle {
	double window_s;
	long ticks;               /* utime + stime, clock ticks (/proc/PID/stat) */
	uint64_t run_ns;          /* on-CPU time of all its threads (schedstat) */
	uint64_t switches;        /* context switches of all its threads */
};

struct busd_idle_result {
	int ok[BI_N];
	struct busd_idle w[BI_N];
};

enum busd_rate_kind { BR_PING, BR_STAT, BR_N };

struct busd_rate_result {
	int rounds;
	double round_s;
	size_t req_len[BR_N], rep_len[BR_N];     /* bytes on the wire */
	double busd[BR_N][BENCH_MAX_REPS];       /* round trips/s, per round */
	double raw[BR_N][BENCH_MAX_REPS];        /* socketpair, same sizes */
	struct lat_stats busd_rtt[BR_N], raw_rtt[BR_N];
	struct noise noise;
};

int busd_mem(struct busd_proc *d, unsigned ntopics, struct busd_mem_result *r);
int busd_attach(struct busd_proc *d, uint64_t n, struct busd_attach_result *r);
int busd_rate(struct busd_proc *d, double round_s, int rounds, struct busd_rate_result *r);
int busd_idle(struct busd_proc *d, double window_s, struct busd_idle_result *r);

/* ------------------------------------------------------------------------ */
/* Durable topics (durable.c)                                               */
/* ------------------------------------------------------------------------ */

/* The "durable" group: a private busd with its log on the real disk;
 * prints its tables, writes its CSV rows (section "durable") to csv (may
 * be NULL). Returns the cases that failed; *missed gets the targets missed. */
int run_durable(FILE *csv, int *missed);

#endif /* BENCH_H */
