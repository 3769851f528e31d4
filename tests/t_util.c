/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "t_util.h"

static char dir[512];
static int own_dir;
static char *names[256];
static int nnames;
static pid_t kids[256];
static int nkids;

static void rm_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char p[1024];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
		if (e->d_type == DT_DIR)
			rm_tree(p);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(path);
}

void t_init(void)
{
	const char *base = getenv("BUS_TEST_SHM");
	char tmpl[] = "/dev/shm/bus-test.XXXXXX";

	/* A directory per test process, inside the run's directory if any. */
	if (base && *base) {
		snprintf(dir, sizeof(dir), "%s/t%d", base, (int)getpid());
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			perror("t_init mkdir");
			abort();
		}
	} else {
		if (!mkdtemp(tmpl)) {
			perror("t_init mkdtemp");
			abort();
		}
		snprintf(dir, sizeof(dir), "%s", tmpl);
	}
	own_dir = 1;
}

void t_fini(void)
{
	int i;

	for (i = 0; i < nkids; i++) {
		if (kids[i] > 0) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
		}
	}
	nkids = 0;
	if (own_dir)
		rm_tree(dir);
	own_dir = 0;
	for (i = 0; i < nnames; i++)
		free(names[i]);
	nnames = 0;
}

const char *t_dir(void)
{
	return dir;
}

const char *t_topic(const char *tag)
{
	char *s;

	if (asprintf(&s, "%s/%s", dir, tag) < 0)
		abort();
	if (nnames < (int)(sizeof(names) / sizeof(names[0])))
		names[nnames++] = s;
	return s;
}

double t_scale(void)
{
	const char *s = getenv("BUS_TEST_SCALE");
	double v = s ? atof(s) : 1.0;

	return v > 0 ? v : 1.0;
}

uint64_t t_scaled(uint64_t n, uint64_t min)
{
	uint64_t v = (uint64_t)((double)n * t_scale());

	return v < min ? min : v;
}

int t_use_threads(void)
{
	const char *s = getenv("BUS_TEST_THREADS");

	return s && *s == '1';
}

struct thr_arg {
	int (*fn)(void *);
	void *arg;
	int rc;
};

static void *thr_main(void *a)
{
	struct thr_arg *t = a;

	t->rc = t->fn(t->arg);
	return NULL;
}

void t_spawn(struct t_proc *p, int (*fn)(void *), void *arg)
{
	memset(p, 0, sizeof(*p));
	if (t_use_threads()) {
		struct thr_arg *t = malloc(sizeof(*t));
		pthread_t th;

		if (!t)
			abort();
		t->fn = fn;
		t->arg = arg;
		t->rc = -1;
		if (pthread_create(&th, NULL, thr_main, t))
			abort();
		p->thread = (unsigned long)th;
		p->priv = t;
		return;
	}
	p->pid = t_fork(fn, arg);
}

int t_join(struct t_proc *p)
{
	if (p->priv) {
		struct thr_arg *t = p->priv;
		int rc;

		pthread_join((pthread_t)p->thread, NULL);
		rc = t->rc;
		free(t);
		p->priv = NULL;
		return rc;
	}
	return t_wait_pid(p->pid);
}

pid_t t_fork(int (*fn)(void *), void *arg)
{
	pid_t pid, me;

	fflush(NULL);
	me = getpid();
	pid = fork();
	if (pid < 0) {
		perror("fork");
		abort();
	}
	if (pid == 0) {
		/* Die with the test if it is killed (Criterion kills a test
		 * that times out; its children must not outlive it). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != me) /* it died before prctl took effect */
			_exit(99);
		int rc = fn(arg);

		_exit(rc & 0xff);
	}
	if (nkids < (int)(sizeof(kids) / sizeof(kids[0])))
		kids[nkids++] = pid;
	return pid;
}

void t_adopt_pid(pid_t pid)
{
	if (nkids < (int)(sizeof(kids) / sizeof(kids[0])))
		kids[nkids++] = pid;
}

void t_forget_pid(pid_t pid)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i] == pid)
			kids[i] = 0;
}

int t_wait_pid(pid_t pid)
{
	int st, i;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	for (i = 0; i < nkids; i++)
		if (kids[i] == pid)
			kids[i] = 0;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -1;
}

static uint64_t mix(uint64_t x)
{
	/* splitmix64 finaliser */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

uint32_t t_len_for(uint64_t seed, uint64_t seq, uint32_t min, uint32_t max)
{
	return min + (uint32_t)(mix(seed ^ (seq * 0x2545f4914f6cdd1dull)) % (max - min + 1));
}

static uint64_t sum_bytes(const unsigned char *p, uint32_t n, uint64_t seed)
{
	uint64_t h = seed ^ 0xcbf29ce484222325ull, w;
	uint32_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

void t_fill(void *buf, uint32_t len, uint64_t seed, uint64_t seq)
{
	unsigned char *p = buf;
	uint64_t x = mix(seed + seq), h;
	uint32_t i = 0;

	for (; i + 8 <= len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
	for (; i < len; i++)
		p[i] = (unsigned char)(x >> (8 * (i & 7)));
	if (len >= 8) {
		h = sum_bytes(p + 8, len - 8, seed ^ seq);
		memcpy(p, &h, 8);
	}
}

int t_check(const void *buf, uint32_t len, uint64_t seed, uint64_t seq)
{
	const unsigned char *p = buf;
	uint64_t h;

	if (len < 8) {
		unsigned char want[8];

		t_fill(want, len, seed, seq);
		return memcmp(want, p, len) != 0;
	}
	memcpy(&h, p, 8);
	return h != sum_bytes(p + 8, len - 8, seed ^ seq);
}

uint64_t t_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t t_rand(void)
{
	static __thread uint64_t s;

	if (!s)
		s = mix((uint64_t)getpid() ^ t_now_ns() ^ (uint64_t)(uintptr_t)&s);
	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	return s;
}

void *t_shared(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		abort();
	return p;
}

void t_nap_us(uint64_t us)
{
	struct timespec ts = { .tv_sec = (time_t)(us / 1000000),
			       .tv_nsec = (long)(us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int t_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s[%d]: ", program_invocation_short_name, (int)getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}
