/* SPDX-License-Identifier: MIT */
/*
 * util.c — clocks, the payload pattern, process pairs, cleanup and
 * statistics for bus-bench.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bus.h>

#include "bench.h"

struct bench_cfg cfg;
uint64_t pattern[MSG_MAX / 8];

/* ------------------------------------------------------------------------ */
/* Time                                                                     */
/* ------------------------------------------------------------------------ */

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Ticks per ns over a busy-waited interval: long enough that the two
 * clock reads at each end are noise (~20 ns over 100 ms). */
void tsc_calibrate(double seconds)
{
	uint64_t t0 = now_ns(), c0 = tsc();
	uint64_t end = t0 + (uint64_t)(seconds * 1e9), t1, c1;

	do {
		t1 = now_ns();
	} while (t1 < end);
	c1 = tsc();
	cfg.tsc_per_ns = (double)(c1 - c0) / (double)(t1 - t0);
}

double ticks_to_ns(int64_t ticks)
{
	return (double)ticks / cfg.tsc_per_ns;
}

uint64_t ns_to_ticks(double ns)
{
	return (uint64_t)(ns * cfg.tsc_per_ns);
}

/* ------------------------------------------------------------------------ */
/* Payload                                                                  */
/* ------------------------------------------------------------------------ */

/* splitmix64: a fixed seed, so the parent and every child (which inherit the
 * array through fork anyway) agree on the pattern. */
void pattern_init(void)
{
	uint64_t s = 0x9e3779b97f4a7c15ull;

	for (size_t i = 0; i < MSG_MAX / 8; i++) {
		uint64_t z = (s += 0x9e3779b97f4a7c15ull);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		pattern[i] = z ^ (z >> 31);
	}
}

uint64_t pattern_tail_xor(size_t len)
{
	uint64_t x = 0;

	for (size_t i = 2; i < len / 8; i++)
		x ^= pattern[i];
	return x;
}

/* ------------------------------------------------------------------------ */
/* Shared memory, CPUs, errors                                              */
/* ------------------------------------------------------------------------ */

void *shm_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("bus-bench: mmap");
		exit(1);
	}
	return p;
}

void shm_unmap(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

int pin_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) ? -errno : 0;
}

/* Children report failures through a page shared with the parent: their
 * stderr would interleave with the table. */
static char *err_page;
#define ERR_LEN 1024

int child_fail(const char *fmt, ...)
{
	va_list ap;

	if (err_page && !err_page[0]) {
		int n = snprintf(err_page, ERR_LEN, "[pid %d] ", (int)getpid());

		va_start(ap, fmt);
		vsnprintf(err_page + n, ERR_LEN - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

const char *bench_err(void)
{
	return err_page && err_page[0] ? err_page : "(no detail)";
}

void bench_err_clear(void)
{
	if (err_page)
		err_page[0] = 0;
}

/* ------------------------------------------------------------------------ */
/* Cleanup                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Whatever happens (error, timeout, ^C), nothing may stay in /dev/shm or as a
 * process. Topics and paths are registered before they are created; the
 * parent removes them at exit or on a signal. Children die with the parent
 * (PR_SET_PDEATHSIG) and never run the parent's atexit handler (_exit).
 */
#define MAX_NAMES 64
#define NAME_LEN 96

static char topics[MAX_NAMES][NAME_LEN];
static char paths[MAX_NAMES][NAME_LEN];
static char trees[4][NAME_LEN];
static volatile pid_t kids[2];
static volatile pid_t daemon_pid;  /* busd of the busd section */
static pid_t parent_pid;

static void add_name(char (*tab)[NAME_LEN], const char *name)
{
	for (int i = 0; i < MAX_NAMES; i++) {
		if (!tab[i][0]) {
			snprintf(tab[i], NAME_LEN, "%s", name);
			return;
		}
	}
	fprintf(stderr, "bus-bench: too many names to clean up\n");
	exit(1);
}

void cleanup_add_topic(const char *name)
{
	add_name(topics, name);
}

void cleanup_add_path(const char *path)
{
	add_name(paths, path);
}

void cleanup_done_topic(const char *name)
{
	for (int i = 0; i < MAX_NAMES; i++)
		if (!strcmp(topics[i], name))
			topics[i][0] = 0;
}

/* Async-signal-safe: unlink() the two files bus.h documents for a name
 * without '/' (NAME and NAME@cons in /dev/shm) instead of calling into
 * libbus from a signal handler. */
static void unlink_topic_files(const char *name)
{
	char p[NAME_LEN + 16];
	size_t n = strlen(name);

	memcpy(p, "/dev/shm/", 9);
	memcpy(p + 9, name, n + 1);
	unlink(p);
	memcpy(p + 9 + n, "@cons", 6);
	unlink(p);
}

void cleanup_add_tree(const char *path)
{
	for (int i = 0; i < 4; i++) {
		if (!trees[i][0]) {
			snprintf(trees[i], NAME_LEN, "%s", path);
			return;
		}
	}
	fprintf(stderr, "bus-bench: too many directories to clean up\n");
	exit(1);
}

void cleanup_done_tree(const char *path)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(trees[i], path))
			trees[i][0] = 0;
}

void cleanup_set_daemon(pid_t pid)
{
	daemon_pid = pid;
}

/*
 * Remove everything below the directory dfd, then nothing else (the caller
 * removes the directory itself). Async-signal-safe: only getdents64,
 * unlinkat, openat and close, no opendir's malloc. Entries are removed while
 * the directory is read, which may make a read skip some: so it rereads
 * from the start until a pass finds nothing left (or removes nothing).
 */
static void rm_below(int dfd, int depth)
{
	char buf[2048] __attribute__((aligned(8)));

	for (int pass = 0; pass < 16; pass++) {
		int left = 0, removed = 0;
		ssize_t n;

		lseek(dfd, 0, SEEK_SET);
		while ((n = getdents64(dfd, buf, sizeof(buf))) > 0) {
			for (ssize_t off = 0; off < n;) {
				struct dirent64 *d = (struct dirent64 *)(void *)(buf + off);
				const char *nm = d->d_name;

				off += d->d_reclen;
				if (nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2])))
					continue;
				left++;
				if (unlinkat(dfd, nm, 0) == 0) {
					removed++;
					continue;
				}
				if (errno == EISDIR && depth < 4) {
					int sub = openat(dfd, nm, O_RDONLY | O_DIRECTORY |
							 O_NOFOLLOW | O_CLOEXEC);

					if (sub >= 0) {
						rm_below(sub, depth + 1);
						close(sub);
					}
					if (unlinkat(dfd, nm, AT_REMOVEDIR) == 0)
						removed++;
				}
			}
		}
		if (!left || !removed)
			return;
	}
}

int rm_tree(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	rm_below(fd, 0);
	close(fd);
	return rmdir(path) ? -errno : 0;
}

static void kill_kids(void)
{
	for (int i = 0; i < 2; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGKILL);
}

void cleanup_all(void)
{
	if (getpid() != parent_pid)
		return;
	kill_kids();
	if (daemon_pid > 0)
		kill(daemon_pid, SIGKILL);
	for (int i = 0; i < MAX_NAMES; i++) {
		if (topics[i][0]) {
			if (!cfg.no_bus)
				bus_topic_remove(topics[i]);
			unlink_topic_files(topics[i]);  /* in case remove failed */
			topics[i][0] = 0;
		}
		if (paths[i][0]) {
			unlink(paths[i]);
			paths[i][0] = 0;
		}
	}
	if (daemon_pid > 0) {
		waitpid(daemon_pid, NULL, 0);  /* SIGKILLed above */
		daemon_pid = 0;
	}
	for (int i = 0; i < 4; i++) {
		if (trees[i][0]) {
			rm_tree(trees[i]);
			trees[i][0] = 0;
		}
	}
}

static void on_signal(int sig)
{
	if (getpid() == parent_pid) {
		kill_kids();
		if (daemon_pid > 0)
			kill(daemon_pid, SIGKILL);
		for (int i = 0; i < 2; i++)  /* SIGKILLed: returns at once */
			if (kids[i] > 0)
				waitpid(kids[i], NULL, 0);
		if (daemon_pid > 0)
			waitpid(daemon_pid, NULL, 0);
		for (int i = 0; i < MAX_NAMES; i++) {
			if (topics[i][0])
				unlink_topic_files(topics[i]);
			if (paths[i][0])
				unlink(paths[i]);
		}
		for (int i = 0; i < 4; i++)
			if (trees[i][0])
				rm_tree(trees[i]);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void on_sigchld(int sig)
{
	(void)sig;
}

void cleanup_init(void)
{
	struct sigaction sa = { .sa_handler = on_sigchld, .sa_flags = SA_NOCLDSTOP };
	sigset_t chld;

	parent_pid = getpid();
	/* A handler (not SIG_DFL, whose action is to ignore) and the signal
	 * blocked: run_pair() collects it with sigtimedwait(). */
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	err_page = shm_map(ERR_LEN);
	atexit(cleanup_all);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, SIG_IGN);  /* a dead peer shows as EPIPE, not a kill */
}

void bench_name(char *buf, size_t len, const char *tag)
{
	snprintf(buf, len, "bus-bench-%d-%s", (int)parent_pid, tag);
}

/* ------------------------------------------------------------------------ */
/* Process pairs                                                            */
/* ------------------------------------------------------------------------ */

static pid_t spawn(int (*fn)(void *), void *arg, int cpu)
{
	pid_t pid = fork();

	if (pid < 0) {
		perror("bus-bench: fork");
		return -1;
	}
	if (pid == 0) {
		sigset_t none;
		int rc;

		sigemptyset(&none);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent_pid)  /* parent died before prctl */
			_exit(3);
		rc = cpu < 0 ? 0 : pin_cpu(cpu);
		if (rc) {
			child_fail("sched_setaffinity(CPU %d): %s", cpu, strerror(-rc));
			_exit(3);
		}
		rc = fn(arg);
		_exit(rc ? 1 : 0);
	}
	return pid;
}

int wait_flag(_Atomic uint32_t *flag, double timeout_s)
{
	uint64_t end = now_ns() + (uint64_t)(timeout_s * 1e9);
	unsigned n = 0;

	/* acquire: pairs with the other side's release store of the flag, so
	 * what it set up before (an open handle, a bound socket) is done. */
	while (!atomic_load_explicit(flag, memory_order_acquire)) {
		cpu_relax();
		if (!(++n & 1023) && now_ns() > end)
			return -ETIMEDOUT;
	}
	return 0;
}

struct noise last_noise;

/* Busy and stolen CPU-seconds so far of the CPUs in mask (bit n = CPU n),
 * from the per-CPU lines of /proc/stat (10 ms ticks). */
static void proc_stat(unsigned mask, double *busy, double *steal)
{
	unsigned long long v[8];
	double hz = (double)sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "r");
	char line[512];
	int cpu;

	*busy = *steal = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu,
			   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 9)
			continue;
		if (cpu < 0 || cpu >= 32 || !(mask & (1u << cpu)))
			continue;
		/* user nice system idle iowait irq softirq steal */
		*busy += (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / hz;
		*steal += (double)v[7] / hz;
	}
	fclose(f);
}

static double rusage_s(const struct rusage *r)
{
	return (double)(r->ru_utime.tv_sec + r->ru_stime.tv_sec) +
	       (double)(r->ru_utime.tv_usec + r->ru_stime.tv_usec) / 1e6;
}

void noise_add(struct noise *acc, const struct noise *n)
{
	acc->wall_s += n->wall_s;
	acc->other_s += n->other_s;
	acc->steal_s += n->steal_s;
}

double noise_frac(const struct noise *n)
{
	return n->wall_s > 0 ? (n->other_s + n->steal_s) / n->wall_s : 0;
}

/* Wait for a SIGCHLD until *end. At the deadline the children are killed
 * once, with 10 s more to die; after that bus-bench gives up. */
static void wait_slice(uint64_t *end, int *timed_out, double timeout_s, const sigset_t *chld)
{
	uint64_t now = now_ns();
	struct timespec ts;

	if (now >= *end) {
		if (*timed_out) {  /* SIGKILLed 10 s ago and still there */
			fprintf(stderr, "bus-bench: children do not die\n");
			exit(1);
		}
		*timed_out = 1;
		child_fail("timed out after %.1f s (killed)", timeout_s);
		kill_kids();
		*end = now + 10000000000ull;
		return;
	}
	ts.tv_sec = (time_t)((*end - now) / 1000000000ull);
	ts.tv_nsec = (long)((*end - now) % 1000000000ull);
	sigtimedwait(chld, NULL, &ts);
}

/*
 * The parent sleeps in sigtimedwait() until a child exits: polling with a
 * timer would wake it every few ms on one of the two measured CPUs and show
 * up in the latency tails. SIGCHLD stays blocked in the parent (see
 * cleanup_init) so none is lost between waitpid() and sigtimedwait().
 */
int run_pair(int (*cons)(void *), int (*prod)(void *), void *arg,
	     double timeout_s)
{
	uint64_t start = now_ns(), end = start + (uint64_t)(timeout_s * 1e9);
	int failed = 0, timed_out = 0, left = 0;
	unsigned cpus = (cons ? 1u << cfg.cons_cpu : 0) | (prod ? 1u << cfg.prod_cpu : 0);
	double busy0, steal0, busy1, steal1, kids_s = 0, other;
	sigset_t chld;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	fflush(NULL);  /* or the children would print our buffered output */
	proc_stat(cpus, &busy0, &steal0);
	kids[0] = kids[1] = 0;
	if (cons) {
		kids[1] = spawn(cons, arg, cfg.cons_cpu);
		if (kids[1] < 0)
			return -ECHILD;
		left++;
	}
	if (prod) {
		kids[0] = spawn(prod, arg, cfg.prod_cpu);
		if (kids[0] < 0) {
			kill_kids();
			waitpid(kids[1], NULL, 0);
			kids[1] = 0;
			return -ECHILD;
		}
		left++;
	}
	while (left) {
		int st;
		struct rusage ru;
		pid_t p = wait4(-1, &st, WNOHANG, &ru);

		if (p > 0) {
			kids_s += rusage_s(&ru);
			for (int i = 0; i < 2; i++) {
				if (kids[i] != p)
					continue;
				kids[i] = 0;
				left--;
				if (!WIFEXITED(st) || WEXITSTATUS(st))
					failed = 1;
				if (WIFSIGNALED(st) && !timed_out)
					child_fail("child %d killed by signal %d",
						   (int)p, WTERMSIG(st));
			}
			continue;
		}
		wait_slice(&end, &timed_out, timeout_s, &chld);
	}
	/* Only the CPUs the children were pinned to; what the parent used
	 * meanwhile (forks, a few wake-ups) counts as "other": it is small. */
	proc_stat(cpus, &busy1, &steal1);
	other = (busy1 - busy0) - kids_s;
	last_noise.wall_s = (double)(now_ns() - start) / 1e9;
	last_noise.other_s = other > 0 ? other : 0;
	last_noise.steal_s = steal1 - steal0;
	if (timed_out)
		return -ETIMEDOUT;
	return failed ? -ECHILD : 0;
}

/*
 * One child, not pinned (the control-plane cases let the scheduler place
 * it, as it would place a real client). Waits for that pid only: busd, the
 * parent's other child in the busd section, must not be reaped here.
 */
int run_one(int (*fn)(void *), void *arg, double timeout_s, double *cpu_s)
{
	uint64_t end = now_ns() + (uint64_t)(timeout_s * 1e9);
	int timed_out = 0, st = 0;
	struct rusage ru;
	sigset_t chld;
	pid_t p;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	fflush(NULL);
	kids[0] = spawn(fn, arg, -1);
	kids[1] = 0;
	if (kids[0] < 0) {
		kids[0] = 0;
		return -ECHILD;
	}
	while ((p = wait4(kids[0], &st, WNOHANG, &ru)) == 0) {
		wait_slice(&end, &timed_out, timeout_s, &chld);
	}
	kids[0] = 0;
	if (p < 0)
		return -ECHILD;
	if (cpu_s)
		*cpu_s = rusage_s(&ru);
	if (WIFSIGNALED(st) && !timed_out)
		child_fail("child %d killed by signal %d", (int)p, WTERMSIG(st));
	if (timed_out)
		return -ETIMEDOUT;
	return WIFEXITED(st) && !WEXITSTATUS(st) ? 0 : -ECHILD;
}

/* Busy and stolen CPU-seconds so far, all CPUs. */
void cpu_busy(double *busy, double *steal)
{
	proc_stat(~0u, busy, steal);
}

/* ------------------------------------------------------------------------ */
/* Statistics                                                               */
/* ------------------------------------------------------------------------ */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double pct(const int64_t *s, size_t n, double q)
{
	size_t i = (size_t)(q * (double)(n - 1) + 0.5);

	return ticks_to_ns(s[i]);
}

void lat_stats_ticks(int64_t *ticks, size_t n, struct lat_stats *st)
{
	double sum = 0;

	memset(st, 0, sizeof(*st));
	if (!n)
		return;
	qsort(ticks, n, sizeof(*ticks), cmp_i64);
	for (size_t i = 0; i < n; i++) {
		sum += (double)ticks[i];
		if (ticks[i] < 0)
			st->negative++;
	}
	st->n = n;
	st->min = ticks_to_ns(ticks[0]);
	st->p50 = pct(ticks, n, 0.50);
	st->p99 = pct(ticks, n, 0.99);
	st->p999 = pct(ticks, n, 0.999);
	st->max = ticks_to_ns(ticks[n - 1]);
	st->mean = sum / (double)n / cfg.tsc_per_ns;
}

double median(double *v, int n)
{
	double s[16];

	if (n <= 0)
		return 0;
	if (n > 16)
		n = 16;
	memcpy(s, v, sizeof(double) * (size_t)n);
	qsort(s, (size_t)n, sizeof(double), cmp_dbl);
	return n & 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* ------------------------------------------------------------------------ */
/* Throughput bookkeeping                                                   */
/* ------------------------------------------------------------------------ */

int tp_finish(const struct tp_shared *sh, size_t size, int lossless,
	      struct tp_run *r)
{
	uint64_t timed = sh->sent - sh->seq0;
	double secs = (double)(sh->t_end_ns - sh->t0_ns) / 1e9;

	(void)size;
	r->sent = sh->sent;
	r->received = sh->v.events;
	r->lost = sh->v.lost;
	r->garbled = sh->v.garbled;
	r->bus_lost = sh->bus_lost;
	r->bus_seq_err = sh->bus_seq_err;
	r->confirm_fail = sh->confirm_fail;
	r->eagain = sh->eagain;
	r->wait_timeouts = sh->wait_timeouts;
	r->evps = 0;
	if (!sh->t0_ns || sh->t_end_ns <= sh->t0_ns) {
		child_fail("run never reached its timed part (t0 %llu, end %llu)",
			   (unsigned long long)sh->t0_ns,
			   (unsigned long long)sh->t_end_ns);
		return -EIO;
	}
	r->evps = (double)timed / secs;
	/* A lossless transport must deliver every message exactly once, and
	 * the bus must report every loss it causes: anything else is a bug in
	 * the transport (or in this benchmark), never a number to print. */
	if (sh->v.garbled || sh->bus_seq_err) {
		child_fail("%llu garbled messages, %llu bus sequence errors",
			   (unsigned long long)sh->v.garbled,
			   (unsigned long long)sh->bus_seq_err);
		return -EIO;
	}
	if (lossless && (sh->v.lost || sh->v.events != sh->sent)) {
		child_fail("lossless run: sent %llu, received %llu, lost %llu",
			   (unsigned long long)sh->sent,
			   (unsigned long long)sh->v.events,
			   (unsigned long long)sh->v.lost);
		return -EIO;
	}
	if (!lossless && sh->v.events + sh->v.lost != sh->sent) {
		child_fail("sent %llu != received %llu + lost %llu",
			   (unsigned long long)sh->sent,
			   (unsigned long long)sh->v.events,
			   (unsigned long long)sh->v.lost);
		return -EIO;
	}
	if (sh->bus_lost != sh->v.lost) {
		child_fail("silent loss: bus reported %llu lost, payload gaps %llu",
			   (unsigned long long)sh->bus_lost,
			   (unsigned long long)sh->v.lost);
		return -EIO;
	}
	return 0;
}
