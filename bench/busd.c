/* SPDX-License-Identifier: MIT */
/*
 * busd.c — the control plane: a real busd, started for this section on
 * private directories, and what its clients and its host pay for it.
 *
 *   memory   busd's RSS before and after creating many small topics;
 *   attach   bus_connect, bus_sub_attach, bus_sub_close, bus_disconnect,
 *            each timed, for the default 1 MiB ring and a 64 KiB ring (a
 *            consumer maps the ring twice: if it prefaults it, size
 *            matters), and the library's mapping step alone;
 *   rate     bus_ping and bus_stat round trips per second on one
 *            connection, against a bare SOCK_SEQPACKET socketpair echo
 *            moving the same bytes, round by round;
 *   idle     busd's CPU time over a window with no client, with one idle
 *            connection, and with an idle named consumer attached.
 *
 * Nothing is pinned: this is the control plane, and the scheduler places
 * busd and its clients as it would in production. The clients run in a
 * child process with a deadline (run_one), so a hang or a crash in busd or
 * libbus fails the case instead of the benchmark. busd is started from the
 * parent and registered for cleanup, with its directory tree, before the
 * fork: SIGINT or an error anywhere still kills it and removes the tree.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bus.h>
/* The wire format, for the sizes the raw socketpair echo sends; and the
 * library's own mapping step, timed alone to split an attach between busd
 * and the client. */
#include "proto.h"
#include "seg.h"

#include "bench.h"

#define READY_TIMEOUT_MS 10000
#define STOP_TIMEOUT_MS  10000  /* a durable busd syncs its logs on SIGTERM */
#define SETTLE_NS        100000000ull   /* let busd finish a hangup first */
#define WARMUP           20

const uint64_t busd_ring[BUSD_RINGS] = { BUS_RING_DEFAULT, 64 << 10 };
static const char *const ring_topic[BUSD_RINGS] = { "attach.1m", "attach.64k" };

static const char *err_str(int rc)
{
	return strerror(rc < 0 ? -rc : rc);
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ------------------------------------------------------------------------ */
/* Starting and stopping busd                                               */
/* ------------------------------------------------------------------------ */

/* The last line or so busd wrote to stderr: the reason it gave up. */
const char *busd_said(const struct busd_proc *d)
{
	static char buf[400];
	char path[160];
	ssize_t n = 0;
	off_t end;
	int fd;

	buf[0] = 0;
	snprintf(path, sizeof(path), "%s/busd.err", d->root);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return buf;
	end = lseek(fd, 0, SEEK_END);
	if (end > 0) {
		off_t from = end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0;

		n = pread(fd, buf, sizeof(buf) - 1, from);
	}
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = 0;
	/* Whole lines only: drop a first line that was cut. */
	if (end > (off_t)sizeof(buf) - 1) {
		char *nl = strchr(buf, '\n');

		if (nl)
			memmove(buf, nl + 1, strlen(nl + 1) + 1);
	}
	for (char *c = buf; *c; c++)
		if (*c == '\n')
			*c = ' ';
	return buf;
}

static const char *status_str(int st)
{
	static char buf[48];

	if (WIFEXITED(st))
		snprintf(buf, sizeof(buf), "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, sizeof(buf), "killed by signal %d", WTERMSIG(st));
	else
		snprintf(buf, sizeof(buf), "status 0x%x", st);
	return buf;
}

/* busd lives next to us: BUILD/bench/bus-bench -> BUILD/bin/busd. */
static int find_busd(struct busd_proc *d)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n <= 0) {
		child_fail("readlink /proc/self/exe: %s", strerror(errno));
		return -ENOENT;
	}
	self[n] = 0;
	for (int up = 0; up < 2; up++) {
		slash = strrchr(self, '/');
		if (!slash) {
			child_fail("cannot place %s in a build directory", self);
			return -ENOENT;
		}
		*slash = 0;
	}
	if (strlen(self) + sizeof("/bin/busd") > sizeof(d->bin)) {
		child_fail("path too long: %s", self);
		return -ENAMETOOLONG;
	}
	memcpy(d->bin, self, strlen(self));
	memcpy(d->bin + strlen(self), "/bin/busd", sizeof("/bin/busd"));
	if (access(d->bin, X_OK) < 0) {
		int e = errno;

		child_fail("no busd at %s (%s): `make` builds it", d->bin, strerror(e));
		return -e;
	}
	return 0;
}

/* mkdtemp under `under`, registered for removal with no signal in between. */
static int make_root(char *buf, size_t len, const char *under, const char *tag)
{
	sigset_t stop, old;
	int rc = 0;

	snprintf(buf, len, "%s/bus-bench-%d-%s.XXXXXX", under, (int)getpid(), tag);
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	sigprocmask(SIG_BLOCK, &stop, &old);
	if (mkdtemp(buf))
		cleanup_add_tree(buf);
	else
		rc = -errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		child_fail("mkdtemp %s: %s", buf, strerror(-rc));
		buf[0] = 0;
	}
	return rc;
}

int busd_start(struct busd_proc *d, const char *tag, const char *state_under, int cpu)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char err[128], notify[128], buf[256];
	sigset_t stop, old;
	uint64_t t0, deadline;
	int ns, rc, st;
	pid_t pid;

	memset(d, 0, sizeof(*d));
	if ((rc = find_busd(d)))
		return rc;
	if ((rc = make_root(d->root, sizeof(d->root), "/dev/shm", tag)))
		return rc;
	if (state_under && (rc = make_root(d->disk, sizeof(d->disk), state_under, tag)))
		return rc;
	snprintf(d->bus, sizeof(d->bus), "%s/bus", d->root);
	snprintf(d->shm, sizeof(d->shm), "%s/shm", d->root);
	snprintf(d->state, sizeof(d->state), "%s/state", state_under ? d->disk : d->root);
	snprintf(err, sizeof(err), "%s/busd.err", d->root);
	snprintf(notify, sizeof(notify), "%s/notify", d->root);
	if (mkdir(d->shm, 0700) < 0 || mkdir(d->state, 0700) < 0) {
		rc = -errno;
		child_fail("mkdir %s or %s: %s", d->shm, d->state, strerror(-rc));
		return rc;
	}

	/* Readiness as systemd sees it: a datagram "READY=1" on $NOTIFY_SOCKET. */
	ns = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memcpy(sa.sun_path, notify, strlen(notify) + 1);
	if (ns < 0 || bind(ns, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		child_fail("notify socket %s: %s", notify, strerror(errno));
		if (ns >= 0)
			close(ns);
		return rc;
	}

	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	fflush(NULL);
	t0 = now_ns();
	sigprocmask(SIG_BLOCK, &stop, &old);   /* until busd is registered */
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		sigprocmask(SIG_SETMASK, &old, NULL);
		close(ns);
		child_fail("fork: %s", strerror(-rc));
		return rc;
	}
	if (pid == 0) {
		sigset_t none;
		int efd = open(err, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (cpu >= 0)  /* before exec: busd and every thread it creates */
			pin_cpu(cpu);
		/* What bus-bench changed for itself must not reach busd: the
		 * blocked SIGCHLD, the ignored SIGPIPE (SIG_IGN survives exec),
		 * the CSV and other descriptors. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
		}
		if (efd >= 0)
			dup2(efd, 2);
		close_range(3, ~0u, 0);
		setenv("NOTIFY_SOCKET", notify, 1);
		/* Its log to stderr only (busd.err): not on a measured disk. */
		execl(d->bin, d->bin, "--bus", d->bus, "--shm", d->shm, "--state", d->state,
		      "--log-file", "-", (char *)NULL);
		_exit(127);
	}
	d->pid = pid;
	cleanup_set_daemon(pid);
	sigprocmask(SIG_SETMASK, &old, NULL);

	deadline = t0 + READY_TIMEOUT_MS * 1000000ull;
	for (;;) {
		struct pollfd p = { ns, POLLIN, 0 };
		ssize_t n;

		if (waitpid(pid, &st, WNOHANG) == pid) {
			d->pid = 0;
			cleanup_set_daemon(0);
			close(ns);
			child_fail("busd %s before it was ready: %s", status_str(st), busd_said(d));
			return -ECHILD;
		}
		if (now_ns() > deadline) {
			close(ns);
			child_fail("busd (pid %d) not ready after %d ms: %s", (int)pid,
				   READY_TIMEOUT_MS, busd_said(d));
			return -ETIMEDOUT;
		}
		/* Short slices: a busd that dies early is noticed at once. */
		if (poll(&p, 1, 50) <= 0)
			continue;
		n = recv(ns, buf, sizeof(buf) - 1, MSG_DONTWAIT);
		if (n <= 0)
			continue;
		buf[n] = 0;
		if (strstr(buf, "READY=1"))
			break;
	}
	d->start_ms = (double)(now_ns() - t0) / 1e6;
	close(ns);
	unlink(notify);
	return 0;
}

int busd_check(struct busd_proc *d)
{
	int st;

	if (d->pid <= 0) {
		child_fail("busd is not running");
		return -ESRCH;
	}
	if (waitpid(d->pid, &st, WNOHANG) != d->pid)
		return 0;
	d->pid = 0;
	cleanup_set_daemon(0);
	child_fail("busd %s: %s", status_str(st), busd_said(d));
	return -ESRCH;
}

int busd_stop(struct busd_proc *d)
{
	int rc = 0, st = 0;

	if (d->pid > 0) {
		uint64_t end = now_ns() + STOP_TIMEOUT_MS * 1000000ull;
		pid_t p;

		kill(d->pid, SIGTERM);
		while ((p = waitpid(d->pid, &st, WNOHANG)) == 0 && now_ns() < end)
			sleep_ns(2000000);
		if (p == 0) {
			kill(d->pid, SIGKILL);
			waitpid(d->pid, &st, 0);
			child_fail("busd did not stop within %d ms of SIGTERM (killed): %s",
				   STOP_TIMEOUT_MS, busd_said(d));
			rc = -ETIMEDOUT;
		} else if (p < 0) {
			rc = -errno;
		} else {
			rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			if (rc)
				child_fail("busd %s on SIGTERM: %s", status_str(st), busd_said(d));
		}
		d->pid = 0;
		cleanup_set_daemon(0);
	}
	for (int i = 0; i < 2; i++) {
		char *root = i ? d->disk : d->root;
		int e;

		if (!root[0])
			continue;
		e = rm_tree(root);
		cleanup_done_tree(root);
		if (e && !rc) {
			child_fail("cannot remove %s: %s", root, strerror(-e));
			rc = e;
		}
		root[0] = 0;
	}
	return rc;
}

/* ------------------------------------------------------------------------ */
/* busd's resources, from /proc                                             */
/* ------------------------------------------------------------------------ */

static long status_kb(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static int read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

static int mem_of(pid_t pid, struct busd_mem *m)
{
	char path[64], buf[4096];
	int rc;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((rc = read_text(path, buf, sizeof(buf)))) {
		child_fail("%s: %s", path, err_str(rc));
		return rc;
	}
	m->rss = status_kb(buf, "\nVmRSS:");
	m->anon = status_kb(buf, "\nRssAnon:");
	m->file = status_kb(buf, "\nRssFile:");
	m->shmem = status_kb(buf, "\nRssShmem:");
	return 0;
}

/* utime + stime of the whole process (all threads), in clock ticks, and
 * the exact on-CPU time and context switches summed over its threads
 * (schedstat and status of each task: io_uring workers are threads too). */
static int cpu_of(pid_t pid, struct busd_idle *c)
{
	char path[320], buf[4096], *p;
	unsigned long long ut, st;
	struct dirent *e;
	DIR *dir;
	int rc;

	memset(c, 0, sizeof(*c));
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((rc = read_text(path, buf, sizeof(buf)))) {
		child_fail("%s: %s", path, err_str(rc));
		return rc;
	}
	/* The command may hold spaces and parentheses: fields count from the
	 * last ')'. utime and stime are fields 14 and 15; state is field 3. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2) {
		child_fail("%s: cannot parse", path);
		return -EPROTO;
	}
	c->ticks = (long)(ut + st);
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir) {
		rc = -errno;
		child_fail("%s: %s", path, strerror(-rc));
		return rc;
	}
	while ((e = readdir(dir))) {
		unsigned long long run;
		long v;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
		if (!read_text(path, buf, sizeof(buf)) && sscanf(buf, "%llu", &run) == 1)
			c->run_ns += run;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, e->d_name);
		if (read_text(path, buf, sizeof(buf)))
			continue;
		if ((v = status_kb(buf, "\nvoluntary_ctxt_switches:")) > 0)
			c->switches += (uint64_t)v;
		if ((v = status_kb(buf, "\nnonvoluntary_ctxt_switches:")) > 0)
			c->switches += (uint64_t)v;
	}
	closedir(dir);
	return 0;
}

/* Other load over a client run: CPU the kernel counted busy on any CPU,
 * minus the client's (its rusage) and busd's (its ticks). */
struct noise_probe {
	uint64_t t0;
	double busy0, steal0;
	long busd0;
};

static void probe_start(struct noise_probe *p, const struct busd_proc *d)
{
	struct busd_idle c;

	p->t0 = now_ns();
	cpu_busy(&p->busy0, &p->steal0);
	p->busd0 = cpu_of(d->pid, &c) ? 0 : c.ticks;
}

static void probe_end(const struct noise_probe *p, const struct busd_proc *d,
		      double client_s, struct noise *n)
{
	double busy1, steal1, hz = (double)sysconf(_SC_CLK_TCK), other;
	struct busd_idle c;
	long busd1 = cpu_of(d->pid, &c) ? p->busd0 : c.ticks;

	cpu_busy(&busy1, &steal1);
	other = (busy1 - p->busy0) - client_s - (double)(busd1 - p->busd0) / hz;
	n->wall_s = (double)(now_ns() - p->t0) / 1e9;
	n->other_s = other > 0 ? other : 0;
	n->steal_s = steal1 - p->steal0;
}

/* ------------------------------------------------------------------------ */
/* Memory: many small topics                                                */
/* ------------------------------------------------------------------------ */

struct mem_arg {
	const struct busd_proc *d;
	struct busd_mem_result *r;
};

static int mem_client(void *varg)
{
	struct mem_arg *a = varg;
	struct bus_topic_opts o = { .ring_size = a->r->ring };
	struct bus *bus;
	uint64_t t0, t1;
	int rc;

	rc = bus_connect(a->d->bus, &bus);
	if (rc)
		return child_fail("bus_connect(%s): %s (%s)", a->d->bus, err_str(rc), bus_errmsg());
	/* One round trip first, so that "before" holds the connection. */
	rc = bus_ping(bus);
	if (rc) {
		child_fail("bus_ping: %s (%s)", err_str(rc), bus_errmsg());
		bus_disconnect(bus);
		return -1;
	}
	if (mem_of(a->d->pid, &a->r->before)) {
		bus_disconnect(bus);
		return -1;
	}
	t0 = now_ns();
	for (unsigned i = 0; i < a->r->topics; i++) {
		char name[32];

		snprintf(name, sizeof(name), "mem.%05u", i);
		rc = bus_create(bus, name, &o);
		if (rc) {
			child_fail("bus_create(%s) #%u: %s (%s)", name, i + 1, err_str(rc),
				   bus_errmsg());
			bus_disconnect(bus);
			return -1;
		}
	}
	t1 = now_ns();
	a->r->create_us = (double)(t1 - t0) / 1e3 / a->r->topics;
	rc = mem_of(a->d->pid, &a->r->after);
	bus_disconnect(bus);
	return rc ? -1 : 0;
}

int busd_mem(struct busd_proc *d, unsigned ntopics, struct busd_mem_result *r)
{
	struct busd_mem_result *sh = shm_map(sizeof(*sh));
	struct mem_arg a = { d, sh };
	int rc;

	memset(r, 0, sizeof(*r));
	sh->topics = ntopics;
	sh->ring = 64 << 10;
	if ((rc = busd_check(d)) || (rc = mem_of(d->pid, &sh->fresh)))
		goto out;
	rc = run_one(mem_client, &a, 30 + ntopics * 0.05, NULL);
	if (!rc)
		rc = busd_check(d);
out:
	*r = *sh;
	shm_unmap(sh, sizeof(*sh));
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Attach                                                                   */
/* ------------------------------------------------------------------------ */

struct attach_arg {
	const struct busd_proc *d;
	struct busd_attach_result *r;
};

/* A consumer that works: an empty topic has nothing to say. */
static int sub_check(struct bus_sub *sub, const char *topic)
{
	struct bus_event ev;
	int rc = bus_sub_next(sub, &ev);

	if (rc != 0)
		return child_fail("bus_sub_next on fresh '%s': %d (%s), expected 0", topic, rc,
				  rc < 0 ? err_str(rc) : "an event");
	return 0;
}

/* connect, attach, (check), close, disconnect: six stamps; the check
 * between t[2] and t[3] is not part of any figure. */
static int cycle(const struct busd_proc *d, const char *topic, uint64_t t[6])
{
	struct bus_sub *sub;
	struct bus *bus;
	int rc;

	memset(t, 0, sizeof(uint64_t) * 6);
	t[0] = tsc();
	rc = bus_connect(d->bus, &bus);
	t[1] = tscp();
	if (rc)
		return child_fail("bus_connect(%s): %s (%s)", d->bus, err_str(rc), bus_errmsg());
	rc = bus_sub_attach(bus, topic, NULL, &sub);
	t[2] = tscp();
	if (rc) {
		child_fail("bus_sub_attach(%s) on a new connection: %s (%s)", topic, err_str(rc),
			   bus_errmsg());
		bus_disconnect(bus);
		return -1;
	}
	rc = sub_check(sub, topic);
	t[3] = tsc();
	bus_sub_close(sub);
	t[4] = tscp();
	bus_disconnect(bus);
	t[5] = tscp();
	return rc;
}

static int create_ring_topic(struct bus *bus, int k)
{
	struct bus_topic_opts o = { .ring_size = busd_ring[k] };
	int rc = bus_create(bus, ring_topic[k], &o);

	if (rc && rc != -EEXIST)
		return child_fail("bus_create(%s): %s (%s)", ring_topic[k], err_str(rc),
				  bus_errmsg());
	return 0;
}

/*
 * Every closed consumer must give its slot back. If bus_stat still counts
 * consumers after the first iteration's two attach/close pairs, the slots
 * leak, and after BUS_CONSUMERS_DEFAULT attaches the topic would refuse
 * with -EUSERS. That is reported (as a failure); to still measure, the
 * topics are then deleted and created again, between iterations, before
 * they run out.
 */
static int leak_check(struct bus *bus, struct busd_attach_result *r)
{
	struct bus_topic_info ti;
	int rc = bus_stat(bus, ring_topic[0], &ti, NULL, 0);

	if (rc < 0)
		return child_fail("bus_stat(%s): %s (%s)", ring_topic[0], err_str(rc),
				  bus_errmsg());
	r->leaked = (uint32_t)rc;
	return 0;
}

static int recreate(struct bus *bus, int k, struct busd_attach_result *r)
{
	int rc = bus_delete(bus, ring_topic[k]);

	if (rc)
		return child_fail("bus_delete(%s): %s (%s)", ring_topic[k], err_str(rc),
				  bus_errmsg());
	r->recreated++;
	return create_ring_topic(bus, k);
}

/* The segment files busd made for topic: SHMDIR/bus-ID.TOPIC (and @cons). */
static int topic_seg_file(const struct busd_proc *d, const char *topic, char *out, size_t len)
{
	char dir[160];
	size_t tl = strlen(topic);
	struct dirent *e;
	DIR *dp;
	int rc = -ENOENT;

	snprintf(dir, sizeof(dir), "%s/shm", d->root);
	dp = opendir(dir);
	if (!dp)
		return -errno;
	while ((e = readdir(dp))) {
		size_t nl = strlen(e->d_name);

		/* "bus-" + 16 hex digits + "." + topic */
		if (nl == 21 + tl && !strncmp(e->d_name, "bus-", 4) && e->d_name[20] == '.' &&
		    !strcmp(e->d_name + 21, topic)) {
			snprintf(out, len, "%s/%s", dir, e->d_name);
			rc = 0;
			break;
		}
	}
	closedir(dp);
	return rc;
}

/*
 * What bus_sub_attach does after busd's reply, alone: seg_attach_fds() as a
 * consumer (validate the header, map the consumer area, map the ring twice,
 * prefaulted or not as libbus decides), and seg_detach() as bus_sub_close
 * does. On descriptors opened here, so busd takes no part.
 */
static int map_only(const struct busd_proc *d, int k, uint64_t n, int64_t *map, int64_t *unmap)
{
	char path[256], cpath[270];
	int fd, cfd, rc;

	if ((rc = topic_seg_file(d, ring_topic[k], path, sizeof(path))))
		return child_fail("no segment file for '%s' in %s/shm: %s", ring_topic[k], d->root,
				  err_str(rc));
	snprintf(cpath, sizeof(cpath), "%s@cons", path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	cfd = open(cpath, O_RDWR | O_CLOEXEC);
	if (fd < 0 || cfd < 0) {
		child_fail("open %s: %s", fd < 0 ? path : cpath, strerror(errno));
		goto fail;
	}
	for (uint64_t i = 0; i < n + WARMUP; i++) {
		int a = fcntl(fd, F_DUPFD_CLOEXEC, 0), b = fcntl(cfd, F_DUPFD_CLOEXEC, 0);
		uint64_t t0, t1, t2;
		struct seg sg;

		if (a < 0 || b < 0) {
			child_fail("dup: %s", strerror(errno));
			if (a >= 0)
				close(a);
			if (b >= 0)
				close(b);
			goto fail;
		}
		t0 = tsc();
		rc = seg_attach_fds(a, b, ring_topic[k], SEG_CONSUMER, &sg);  /* takes a, b */
		t1 = tscp();
		if (rc) {
			child_fail("seg_attach_fds(%s): %s (%s)", path, err_str(rc), bus_errmsg());
			goto fail;
		}
		seg_detach(&sg);
		t2 = tscp();
		if (i >= WARMUP) {
			map[i - WARMUP] = (int64_t)(t1 - t0);
			unmap[i - WARMUP] = (int64_t)(t2 - t1);
		}
	}
	close(fd);
	close(cfd);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	if (cfd >= 0)
		close(cfd);
	return -1;
}

static int attach_client(void *varg)
{
	struct attach_arg *a = varg;
	uint64_t n = a->r->n;
	int64_t *s = malloc(sizeof(*s) * n * BUSD_RINGS * BS_N);
	unsigned used[BUSD_RINGS] = { 0 };
	struct bus *bus;
	int rc;

	if (!s)
		return child_fail("out of memory");
	rc = bus_connect(a->d->bus, &bus);
	if (rc) {
		free(s);
		return child_fail("bus_connect(%s): %s (%s)", a->d->bus, err_str(rc), bus_errmsg());
	}
	for (int k = 0; k < BUSD_RINGS; k++)
		if (create_ring_topic(bus, k))
			goto fail;
	/* The rings alternate within each iteration, so that a slow phase of
	 * this shared VM hits both alike. */
	for (uint64_t i = 0; i < n + WARMUP; i++) {
		if (i == 1 && leak_check(bus, a->r))
			goto fail;
		for (int k = 0; k < BUSD_RINGS; k++) {
			int64_t *row = s + (size_t)k * BS_N * n;
			uint64_t t[6], t0, t1;
			struct bus_sub *sub;

			if (a->r->leaked && used[k] + 2 > BUS_CONSUMERS_DEFAULT) {
				if (recreate(bus, k, a->r))
					goto fail;
				used[k] = 0;
			}
			used[k] += 2;
			if (cycle(a->d, ring_topic[k], t))
				goto fail;
			t0 = tsc();
			rc = bus_sub_attach(bus, ring_topic[k], NULL, &sub);
			t1 = tscp();
			if (rc) {
				child_fail("bus_sub_attach(%s): %s (%s)", ring_topic[k],
					   err_str(rc), bus_errmsg());
				goto fail;
			}
			rc = sub_check(sub, ring_topic[k]);
			bus_sub_close(sub);
			if (rc)
				goto fail;
			if (i < WARMUP)
				continue;
			row[BS_CONNECT * n + i - WARMUP] = (int64_t)(t[1] - t[0]);
			row[BS_ATTACH_FRESH * n + i - WARMUP] = (int64_t)(t[2] - t[1]);
			row[BS_CONN_ATTACH * n + i - WARMUP] = (int64_t)(t[2] - t[0]);
			row[BS_CLOSE * n + i - WARMUP] = (int64_t)(t[4] - t[3]);
			row[BS_DISCONNECT * n + i - WARMUP] = (int64_t)(t[5] - t[4]);
			row[BS_CYCLE * n + i - WARMUP] = (int64_t)(t[5] - t[3] + t[2] - t[0]);
			row[BS_ATTACH * n + i - WARMUP] = (int64_t)(t1 - t0);
		}
	}
	for (int k = 0; k < BUSD_RINGS; k++) {
		int64_t *row = s + (size_t)k * BS_N * n;

		if (map_only(a->d, k, n, row + BS_MAP * n, row + BS_UNMAP * n))
			goto fail;
	}
	bus_disconnect(bus);
	for (int k = 0; k < BUSD_RINGS; k++)
		for (int b = 0; b < BS_N; b++)
			lat_stats_ticks(s + ((size_t)k * BS_N + (size_t)b) * n, n, &a->r->st[k][b]);
	free(s);
	return 0;
fail:
	bus_disconnect(bus);
	free(s);
	return -1;
}

int busd_attach(struct busd_proc *d, uint64_t n, struct busd_attach_result *r)
{
	struct busd_attach_result *sh = shm_map(sizeof(*sh));
	struct attach_arg a = { d, sh };
	struct noise_probe p;
	double client_s = 0;
	int rc;

	sh->n = n;
	if (!(rc = busd_check(d))) {
		probe_start(&p, d);
		rc = run_one(attach_client, &a, 60 + (double)n * 0.01, &client_s);
		probe_end(&p, d, client_s, &sh->noise);
	}
	if (!rc)
		rc = busd_check(d);
	*r = *sh;
	shm_unmap(sh, sizeof(*sh));
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Control requests per second                                              */
/* ------------------------------------------------------------------------ */

#define RATE_TOPIC   "rate"
#define RATE_SAMPLES (1u << 20)   /* per kind, over all rounds */
#define RATE_WARMUP  500

struct rate_arg {
	const struct busd_proc *d;
	struct busd_rate_result *r;
};

/* The other end of the raw socketpair: it answers each request with as
 * many bytes as the request's first word asks for, as busd answers with a
 * reply of a size it knows. Blocking recv and send: the floor. */
static void raw_echo(int fd)
{
	static uint8_t buf[PROTO_MSG_MAX];

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		uint32_t want;

		if (n <= 0)
			_exit(n < 0);
		memcpy(&want, buf, sizeof(want));
		if (want > sizeof(buf))
			want = sizeof(struct proto_hdr);
		if (send(fd, buf, want, MSG_NOSIGNAL) != (ssize_t)want)
			_exit(1);
	}
}

struct raw_ctx {
	int fd;
	size_t req, rep;
	uint8_t tx[1024];
	uint8_t rx[PROTO_MSG_MAX];   /* what libbus receives into */
};

static int raw_op(struct raw_ctx *c)
{
	uint32_t want = (uint32_t)c->rep;
	ssize_t n;

	memcpy(c->tx, &want, sizeof(want));
	if (send(c->fd, c->tx, c->req, MSG_NOSIGNAL) != (ssize_t)c->req)
		return -errno;
	n = recv(c->fd, c->rx, sizeof(c->rx), 0);
	if (n != (ssize_t)c->rep)
		return n < 0 ? -errno : -EPROTO;
	return 0;
}

struct rate_ops {
	struct bus *bus;
	struct raw_ctx *raw;
	size_t req[BR_N], rep[BR_N];
};

/* One request of kind k, to busd (raw = 0) or over the socketpair. */
static int rate_op(struct rate_ops *o, int k, int raw)
{
	struct bus_topic_info info;
	int rc;

	if (raw) {
		o->raw->req = o->req[k];
		o->raw->rep = o->rep[k];
		rc = raw_op(o->raw);
		if (rc)
			child_fail("socketpair round trip: %s", err_str(rc));
		return rc;
	}
	rc = k == BR_PING ? bus_ping(o->bus) : bus_stat(o->bus, RATE_TOPIC, &info, NULL, 0);
	if (rc < 0)
		child_fail("%s: %s (%s)", k == BR_PING ? "bus_ping" : "bus_stat", err_str(rc),
			   bus_errmsg());
	return rc < 0 ? rc : 0;
}

struct samples {
	int64_t *v;
	size_t n;
};

/* Round trips for secs; returns the rate, or < 0. Each one is timed too
 * (two TSC reads: ~20 ns against tens of microseconds). */
static double rate_run(struct rate_ops *o, int k, int raw, double secs, struct samples *s)
{
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9), t, count = 0;

	do {
		for (int i = 0; i < 16; i++) {
			uint64_t a = tsc(), b;

			if (rate_op(o, k, raw))
				return -1;
			b = tscp();
			if (s->n < RATE_SAMPLES)
				s->v[s->n++] = (int64_t)(b - a);
			count++;
		}
	} while ((t = now_ns()) < end);
	return (double)count / ((double)(t - t0) / 1e9);
}

static int rate_client(void *varg)
{
	struct rate_arg *a = varg;
	struct busd_rate_result *r = a->r;
	struct bus_topic_opts topt = { .ring_size = 64 << 10 };
	struct samples smp[BR_N][2] = { { { 0 } } };
	struct raw_ctx *raw = calloc(1, sizeof(*raw));
	struct rate_ops o = {
		.raw = raw,
		.req = { sizeof(struct proto_hdr),
			 sizeof(struct proto_hdr) + sizeof(struct req_topic) },
		.rep = { sizeof(struct proto_hdr),
			 sizeof(struct proto_hdr) + sizeof(struct rep_stat) },
	};
	int sv[2] = { -1, -1 }, rc = -1;
	pid_t echo = -1;

	if (!raw)
		return child_fail("out of memory");
	for (int k = 0; k < BR_N; k++) {
		r->req_len[k] = o.req[k];
		r->rep_len[k] = o.rep[k];
		for (int w = 0; w < 2; w++) {
			smp[k][w].v = malloc(sizeof(int64_t) * RATE_SAMPLES);
			if (!smp[k][w].v) {
				child_fail("out of memory");
				goto out;
			}
		}
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		child_fail("socketpair: %s", strerror(errno));
		goto out;
	}
	echo = fork();
	if (echo < 0) {
		child_fail("fork: %s", strerror(errno));
		goto out;
	}
	if (echo == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(sv[0]);
		raw_echo(sv[1]);
	}
	close(sv[1]);
	sv[1] = -1;
	raw->fd = sv[0];

	rc = bus_connect(a->d->bus, &o.bus);
	if (rc) {
		child_fail("bus_connect(%s): %s (%s)", a->d->bus, err_str(rc), bus_errmsg());
		goto out;
	}
	rc = bus_create(o.bus, RATE_TOPIC, &topt);
	if (rc && rc != -EEXIST) {
		child_fail("bus_create(%s): %s (%s)", RATE_TOPIC, err_str(rc), bus_errmsg());
		goto out;
	}
	rc = -1;
	for (int i = 0; i < RATE_WARMUP; i++)
		for (int k = 0; k < BR_N; k++)
			for (int w = 0; w < 2; w++)
				if (rate_op(&o, k, w))
					goto out;
	/* Rounds: each runs raw then busd for each kind, back to back, so each
	 * ratio compares two numbers taken a second apart. */
	for (int round = 0; round < r->rounds; round++) {
		for (int k = 0; k < BR_N; k++) {
			double raw_s = rate_run(&o, k, 1, r->round_s, &smp[k][1]);
			double busd_s = raw_s < 0 ? -1 : rate_run(&o, k, 0, r->round_s, &smp[k][0]);

			if (busd_s < 0)
				goto out;
			r->raw[k][round] = raw_s;
			r->busd[k][round] = busd_s;
		}
	}
	for (int k = 0; k < BR_N; k++) {
		lat_stats_ticks(smp[k][0].v, smp[k][0].n, &r->busd_rtt[k]);
		lat_stats_ticks(smp[k][1].v, smp[k][1].n, &r->raw_rtt[k]);
	}
	rc = 0;
out:
	bus_disconnect(o.bus);
	if (sv[0] >= 0)
		close(sv[0]);   /* the echo process reads 0 and exits */
	if (sv[1] >= 0)
		close(sv[1]);
	if (echo > 0)
		waitpid(echo, NULL, 0);
	for (int k = 0; k < BR_N; k++)
		for (int w = 0; w < 2; w++)
			free(smp[k][w].v);
	free(raw);
	return rc;
}

int busd_rate(struct busd_proc *d, double round_s, int rounds, struct busd_rate_result *r)
{
	struct busd_rate_result *sh = shm_map(sizeof(*sh));
	struct rate_arg a = { d, sh };
	struct noise_probe p;
	double client_s = 0;
	int rc;

	sh->rounds = rounds > BENCH_MAX_REPS ? BENCH_MAX_REPS : rounds;
	sh->round_s = round_s;
	if (!(rc = busd_check(d))) {
		probe_start(&p, d);
		rc = run_one(rate_client, &a, 30 + 4 * round_s * sh->rounds, &client_s);
		probe_end(&p, d, client_s, &sh->noise);
	}
	if (!rc)
		rc = busd_check(d);
	*r = *sh;
	shm_unmap(sh, sizeof(*sh));
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Idle CPU                                                                 */
/* ------------------------------------------------------------------------ */

#define IDLE_TOPIC "idle"
#define IDLE_GROUP "bench-idle"

struct idle_arg {
	const struct busd_proc *d;
	struct busd_idle_result *r;
	double window_s;
};

/* busd's CPU over a window in which whoever calls this only sleeps. */
static int idle_window(pid_t pid, double secs, struct busd_idle *w)
{
	struct busd_idle a, b;
	uint64_t t0;

	sleep_ns(SETTLE_NS);
	if (cpu_of(pid, &a))
		return -1;
	t0 = now_ns();
	sleep_ns((uint64_t)(secs * 1e9));
	if (cpu_of(pid, &b))
		return -1;
	w->window_s = (double)(now_ns() - t0) / 1e9;
	w->ticks = b.ticks - a.ticks;
	w->run_ns = b.run_ns - a.run_ns;
	w->switches = b.switches - a.switches;
	return 0;
}

static int idle_client(void *varg)
{
	struct idle_arg *a = varg;
	struct bus_topic_opts o = { .ring_size = 64 << 10 };
	struct bus_sub_opts so = { .from = BUS_FROM_OLDEST, .group = IDLE_GROUP };
	struct bus_sub *sub;
	struct bus *bus;
	int rc;

	rc = bus_connect(a->d->bus, &bus);
	if (rc)
		return child_fail("bus_connect(%s): %s (%s)", a->d->bus, err_str(rc), bus_errmsg());
	rc = bus_create(bus, IDLE_TOPIC, &o);
	if (rc && rc != -EEXIST) {
		child_fail("bus_create(%s): %s (%s)", IDLE_TOPIC, err_str(rc), bus_errmsg());
		goto fail;
	}
	if (idle_window(a->d->pid, a->window_s, &a->r->w[BI_CLIENT]))
		goto fail;
	a->r->ok[BI_CLIENT] = 1;
	rc = bus_sub_attach(bus, IDLE_TOPIC, &so, &sub);
	if (rc) {
		child_fail("bus_sub_attach(%s, group %s): %s (%s)", IDLE_TOPIC, IDLE_GROUP,
			   err_str(rc), bus_errmsg());
		goto fail;
	}
	rc = idle_window(a->d->pid, a->window_s, &a->r->w[BI_NAMED]);
	bus_sub_close(sub);
	if (rc)
		goto fail;
	a->r->ok[BI_NAMED] = 1;
	bus_disconnect(bus);
	return 0;
fail:
	bus_disconnect(bus);
	return -1;
}

int busd_idle(struct busd_proc *d, double window_s, struct busd_idle_result *r)
{
	struct busd_idle_result *sh = shm_map(sizeof(*sh));
	struct idle_arg a = { d, sh, window_s };
	int rc;

	if ((rc = busd_check(d)))
		goto out;
	/* No client: the parent is the one sleeping. */
	if ((rc = idle_window(d->pid, window_s, &sh->w[BI_NONE])))
		goto out;
	sh->ok[BI_NONE] = 1;
	rc = run_one(idle_client, &a, 30 + 3 * window_s, NULL);
	if (!rc)
		rc = busd_check(d);
out:
	*r = *sh;
	shm_unmap(sh, sizeof(*sh));
	return rc;
}
