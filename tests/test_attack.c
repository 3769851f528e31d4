/* SPDX-License-Identifier: MIT */
/*
 * Description: the attack matrix (issue 6). One test per row; in each, a
 * hostile client or a hostile file system tries to get in and must fail,
 * and busd keeps serving a well-behaved client throughout:
 *
 *   row 1  another uid goes for a 0600 topic: attach as producer and as
 *          consumer (libbus and raw packets), open its segment, consumer
 *          area, log directory and log files directly, connect to a 0600
 *          busd.sock;
 *   row 2  a consumer writes to the ring and the producer state (it faults
 *          at the exact address), then fills everything it may write (its
 *          slot, the other slots, the consumer header) with garbage, and
 *          finally truncates the consumer area under everyone's mappings
 *          (and the producer its segment);
 *   row 3  names with '/', "..", a NUL, 129 bytes, non-ASCII, control
 *          characters, or none, through libbus and as raw packet bytes;
 *   row 4  symlinks and files planted where busd creates a segment, its
 *          socket, lock, anchor, log file, cursor file, or a topic's log;
 *   row 5  garbage, truncated, oversized and wrong-version packets, request
 *          floods from many connections, and connections until busd runs
 *          out of descriptors.
 *
 * What a consumer can still do to the others, which row 2 measures and logs
 * but does not assert (the docs' known limitations): hold wake_req at its
 * maximum, so that sleeping consumers wake only at their 1 s bound; give
 * free slots owners that look alive, so that new consumers get -EUSERS;
 * overwrite every slot's position, statistics and commit word (busd takes a
 * named cursor's position from it); break the consumer header, so that new
 * consumers and producers cannot attach; and truncate the consumer area,
 * which kills (SIGBUS) every client of the topic that touches it next.
 *
 * Children never use cr_assert: they fill a shared page and the test
 * asserts. The test process forks only while it holds no bus connection (a
 * connection has a watcher thread; see test_busd.c).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "layout.h"
#include "proto.h"
#include "ring.h"       /* struct bus_sub: a hostile consumer finds its mappings */
#include "t_busd.h"
#include "t_raw.h"
#include "t_log.h"
#include "t_util.h"

TestSuite(attack, .init = t_init, .fini = t_fini, .timeout = 60);

#define SEC 1000000000ull
#define MS 1000000ull
#define NOBODY 65534u
#define MAXEV 512u               /* largest payload the tests publish */
#define PING_BOUND_NS SEC        /* a well-behaved request under attack: behaviour, not speed */

#ifdef __SANITIZE_THREAD__
#define TSAN 1   /* consumers map read-write there (seg.c: alias_find) */
#else
#define TSAN 0
#endif

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* The bus id: FNV-1a-64 of the bus directory's realpath, 16 hex digits. */
static void bus_id_of(const struct t_busd *d, char id[17])
{
	char real[PATH_MAX];
	uint64_t h = 0xcbf29ce484222325ull;

	cr_assert_not_null(realpath(d->dir, real), "realpath %s", d->dir);
	for (const unsigned char *p = (const unsigned char *)real; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ull;
	}
	snprintf(id, 17, "%016llx", (unsigned long long)h);
}

/* busd runs (not merely unreaped: kill(pid, 0) succeeds on a zombie). */
static int busd_alive(const struct t_busd *d)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (d->pid <= 0 || waitid(P_PID, (id_t)d->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return 0;
	return si.si_pid != d->pid;
}

static struct bus *connect_to(const struct t_busd *d)
{
	struct bus *b = NULL;
	int r = bus_connect(d->dir, &b);

	cr_assert_eq(r, 0, "bus_connect(%s) = %d (%s)", d->dir, r, bus_errmsg());
	return b;
}

/* busd is alive and serves a new client end to end, each request within
 * PING_BOUND_NS. */
static void check_healthy(const struct t_busd *d)
{
	static unsigned n;
	struct bus_topic_opts o = { .ring_size = 64u << 10 };
	uint8_t out[200], in[200];
	struct bus_event ev;
	struct bus_pub *pub;
	struct bus_sub *sub;
	struct bus *b;
	char topic[64];
	uint64_t t0 = t_now_ns();
	int r;

	cr_assert(busd_alive(d), "busd (pid %d) is gone (stderr in %s)", (int)d->pid, d->err);
	snprintf(topic, sizeof(topic), "health.%d.%u", (int)getpid(), n++);
	r = bus_connect(d->dir, &b);
	cr_assert_eq(r, 0, "bus_connect = %d (%s)", r, bus_errmsg());
	cr_assert_eq(bus_ping(b), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, topic, &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, topic, &pub), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_attach(b, topic, NULL, &sub), 0, "%s", bus_errmsg());
	t_fill(out, sizeof(out), 11, 1);
	cr_assert_eq(bus_pub_publish(pub, 42, out, sizeof(out), 0), 0);
	cr_assert_eq(bus_sub_read(sub, in, sizeof(in), &ev), 1);
	cr_assert_eq(ev.seq, 1);
	cr_assert_eq(t_check(ev.data, ev.len, 11, 1), 0);
	bus_sub_close(sub);
	bus_pub_close(pub);
	cr_assert_eq(bus_delete(b, topic), 0, "%s", bus_errmsg());
	bus_disconnect(b);
	cr_assert(busd_alive(d), "busd (pid %d) is gone (stderr in %s)", (int)d->pid, d->err);
	cr_assert_lt(t_now_ns() - t0, 6 * PING_BOUND_NS, "a well-behaved client took %llu ms",
		     (unsigned long long)((t_now_ns() - t0) / MS));
}

/* busd's stderr mentions needle (after its restarts). */
static void err_says(const struct t_busd *d, const char *needle)
{
	cr_assert_geq(t_file_count(d->err, needle), 1, "busd did not say \"%s\" (see %s)", needle,
		      d->err);
}

/* Nothing of a topic in the segment directory: neither file, no temporary. */
static void no_segment(const struct t_busd *d, const char *id, const char *topic)
{
	char p[1400], pre[300];
	struct stat st;

	snprintf(p, sizeof(p), "%s/bus-%s.%s", d->shm, id, topic);
	cr_assert(lstat(p, &st) < 0 && errno == ENOENT, "%s exists", p);
	snprintf(p, sizeof(p), "%s/bus-%s.%s" CONS_SUFFIX, d->shm, id, topic);
	cr_assert(lstat(p, &st) < 0 && errno == ENOENT, "%s exists", p);
	snprintf(pre, sizeof(pre), "bus-%s.%s.tmp.", id, topic);
	cr_assert_eq(t_count_files(d->shm, pre), 0, "a temporary %s* was left", pre);
	snprintf(pre, sizeof(pre), "bus-%s.%s" CONS_SUFFIX ".tmp.", id, topic);
	cr_assert_eq(t_count_files(d->shm, pre), 0, "a temporary %s* was left", pre);
}

static int is_type(const char *path, mode_t type)
{
	struct stat st;

	return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == type;
}

/* A round trip on an established connection, timed against the bound. */
static void timed_ping(struct bus *b, uint64_t *worst)
{
	uint64_t t0 = t_now_ns(), dt;
	int r = bus_ping(b);

	dt = t_now_ns() - t0;
	cr_assert_eq(r, 0, "ping = %d (%s)", r, bus_errmsg());
	cr_assert_lt(dt, PING_BOUND_NS, "a ping took %llu ms", (unsigned long long)(dt / MS));
	if (worst && dt > *worst)
		*worst = dt;
}

/* Wait until *flag is at least v: 0, or -1 when the child exited first or
 * secs passed. */
static int wait_flag(_Atomic uint32_t *flag, uint32_t v, pid_t pid, unsigned secs)
{
	uint64_t end = t_now_ns() + secs * SEC;

	while (atomic_load(flag) < v) {
		siginfo_t si;

		memset(&si, 0, sizeof(si));
		if (pid > 0 && waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid == pid)
			return -1;
		if (t_now_ns() > end)
			return -1;
		t_nap_us(1000);
	}
	return 0;
}

/* For children: wait until *flag is at least v (at most 60 s). */
static int await_flag(_Atomic uint32_t *flag, uint32_t v)
{
	uint64_t end = t_now_ns() + 60 * SEC;

	while (atomic_load(flag) < v) {
		if (t_now_ns() > end)
			return -1;
		t_nap_us(1000);
	}
	return 0;
}

/* t_wait_pid() with a deadline: a child that hangs is killed (128 + 9). */
static int wait_exit(pid_t pid, unsigned secs)
{
	uint64_t end = t_now_ns() + secs * SEC;
	siginfo_t si;

	for (;;) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid == pid)
			return t_wait_pid(pid);
		if (t_now_ns() > end) {
			t_fail("child %d still running after %u s: killed", (int)pid, secs);
			kill(pid, SIGKILL);
			return t_wait_pid(pid);
		}
		t_nap_us(2000);
	}
}

/* In a child: become uid/gid nobody with no supplementary groups (root's
 * group 0 would open group bits). 0, or -errno. */
static int become_nobody(void)
{
	pid_t parent = getppid();

	if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
		return -errno;
	/* Changing credentials cleared the parent-death signal t_fork set. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(99);
	return 0;
}

/* Let others reach path: o+x on every directory on the way that lacks it. */
static void make_traversable(const char *path)
{
	char p[700];
	struct stat st;

	snprintf(p, sizeof(p), "%s", path);
	for (char *c = p + 1;; c++) {
		if (*c == '/' || !*c) {
			char keep = *c;

			*c = 0;
			cr_assert_eq(stat(p, &st), 0, "stat %s", p);
			if (S_ISDIR(st.st_mode) && (st.st_mode & 0011) != 0011)
				cr_assert_eq(chmod(p, (st.st_mode & 07777) | 0011), 0, "chmod %s",
					     p);
			*c = keep;
			if (!keep)
				break;
		}
	}
}

/* open(2) as a result: 0 (and the descriptor closed) or -errno. */
static int try_open(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

/* Publish events seq next..until-1 on p: payload t_fill(seed, seq), type =
 * seq. */
static int publish_to(struct bus_pub *p, uint64_t seed, uint64_t until)
{
	uint8_t buf[MAXEV];

	while (bus_pub_next_seq(p) < until) {
		uint64_t seq = bus_pub_next_seq(p);
		uint32_t len = t_len_for(seed, seq, 8, MAXEV);
		int r;

		t_fill(buf, len, seed, seq);
		r = bus_pub_publish(p, (uint32_t)seq, buf, len, 0);
		if (r != 0)
			return t_fail("publish seq %llu: %d (%s)", (unsigned long long)seq, r,
				      bus_errmsg());
	}
	return 0;
}

/* A file's bytes and times, to prove nobody wrote it. */
struct snap {
	char path[700];
	uint8_t *buf;
	size_t len;
	struct stat st;
};

static void snap_take(struct snap *s, const char *path)
{
	snprintf(s->path, sizeof(s->path), "%s", path);
	cr_assert_eq(t_file_read(path, &s->buf, &s->len), 0, "read %s", path);
	cr_assert_eq(stat(path, &s->st), 0, "stat %s", path);
}

/* Unchanged: same inode, size, bytes, modification and change times. */
static void snap_same(const struct snap *s, const char *when)
{
	struct stat st;
	uint8_t *now;
	size_t len;

	cr_assert_eq(stat(s->path, &st), 0, "%s: %s is gone", when, s->path);
	cr_assert_eq(st.st_ino, s->st.st_ino, "%s: %s was replaced", when, s->path);
	cr_assert_eq(t_file_read(s->path, &now, &len), 0);
	cr_assert_eq(len, s->len, "%s: %s is %zu bytes, was %zu", when, s->path, len, s->len);
	cr_assert_eq(memcmp(now, s->buf, len), 0, "%s: %s was written", when, s->path);
	free(now);
	cr_assert(st.st_mtim.tv_sec == s->st.st_mtim.tv_sec &&
		  st.st_mtim.tv_nsec == s->st.st_mtim.tv_nsec, "%s: %s's mtime changed", when,
		  s->path);
	cr_assert(st.st_ctim.tv_sec == s->st.st_ctim.tv_sec &&
		  st.st_ctim.tv_nsec == s->st.st_ctim.tv_nsec, "%s: %s's ctime changed (chmod, "
		  "chown or a write)", when, s->path);
	cr_assert_eq(st.st_mode, s->st.st_mode, "%s: %s's mode changed", when, s->path);
}

static void snap_free(struct snap *s)
{
	free(s->buf);
	s->buf = NULL;
}

/* A victim file outside every bus directory, with an old mtime so that any
 * write would show. */
static void make_victim(const char *path, const char *text, struct snap *s)
{
	struct timespec old[2] = { { 978307200, 0 }, { 978307200, 0 } };  /* 2001-01-01 */

	cr_assert_eq(t_file_write(path, text, strlen(text)), 0, "write %s", path);
	cr_assert_eq(utimensat(AT_FDCWD, path, old, 0), 0);
	snap_take(s, path);
}

/* A symlink at link is still that symlink, to target. */
static void still_link(const char *link, const char *target)
{
	char got[PATH_MAX];
	struct stat st;
	ssize_t n;

	cr_assert_eq(lstat(link, &st), 0, "%s is gone", link);
	cr_assert(S_ISLNK(st.st_mode), "%s is no longer a symlink (mode %o)", link, st.st_mode);
	n = readlink(link, got, sizeof(got) - 1);
	cr_assert_gt(n, 0);
	got[n] = 0;
	cr_assert_str_eq(got, target, "%s now points to %s", link, got);
}

/* Every path under dir (relative, sorted, one per line) into a malloc'd
 * string: a directory's listing to compare before and after an attack. */
static void list_tree_into(const char *dir, const char *rel, char **out, size_t *len)
{
	char p[1400], r[1400];
	struct dirent **v;
	int n;

	snprintf(p, sizeof(p), "%s%s%s", dir, *rel ? "/" : "", rel);
	n = scandir(p, &v, NULL, alphasort);
	if (n < 0)
		return;
	for (int i = 0; i < n; i++) {
		const char *e = v[i]->d_name;

		if (strcmp(e, ".") && strcmp(e, "..")) {
			size_t add;

			snprintf(r, sizeof(r), "%s%s%s", rel, *rel ? "/" : "", e);
			add = strlen(r) + 1;
			*out = realloc(*out, *len + add + 1);
			cr_assert_not_null(*out);
			memcpy(*out + *len, r, add - 1);
			(*out)[*len + add - 1] = '\n';
			*len += add;
			(*out)[*len] = 0;
			if (v[i]->d_type == DT_DIR)
				list_tree_into(dir, r, out, len);
		}
		free(v[i]);
	}
	free(v);
}

static char *list_tree(const char *dir)
{
	char *s = calloc(1, 1);
	size_t len = 0;

	cr_assert_not_null(s);
	list_tree_into(dir, "", &s, &len);
	return s;
}

/* busd's open descriptors (/proc/PID/fd). */
static int count_fds(pid_t pid)
{
	char p[64];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(p, sizeof(p), "/proc/%d/fd", (int)pid);
	d = opendir(p);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* ------------------------------------------------------------------------ */
/* Raw protocol                                                             */
/* ------------------------------------------------------------------------ */

static const char *reply_msg(const struct rx *r)
{
	return r->blen && r->h.status < 0 ? (const char *)r->body : "";
}

static struct rx *rx_new(void)
{
	struct rx *r = malloc(sizeof(*r));

	cr_assert_not_null(r);
	return r;
}

/* The next packet is the reply to (op, id) with status want (0 or -errno),
 * no descriptors unless it succeeded, and for an error a NUL-terminated
 * message containing needle (NULL: any). Returns the body length. */
static size_t expect_reply(int fd, uint16_t op, uint32_t id, int want, const char *needle)
{
	struct rx *r = rx_new();
	ssize_t n = raw_recv(fd, r);
	size_t blen = r->blen;

	cr_assert_geq(n, (ssize_t)HDR, "op %u id %u: no reply (recv = %zd: %s), expected %d", op,
		      id, n, n < 0 ? strerror((int)-n) : "hangup", want);
	cr_assert_eq(r->h.magic, PROTO_MAGIC);
	cr_assert_eq(r->h.op, op, "reply op %u, expected %u", r->h.op, op);
	cr_assert_eq(r->h.id, id, "reply id %u, expected %u", r->h.id, id);
	cr_assert_eq(r->h.status, want, "op %u: status %d (%s), expected %d", op, r->h.status,
		     reply_msg(r), want);
	if (want < 0) {
		cr_assert_geq(r->blen, 2, "op %u: an error reply without a message", op);
		cr_assert_eq(r->body[r->blen - 1], 0, "the message is not NUL-terminated");
		cr_assert_eq(r->nfds, 0, "an error reply carried %d descriptors", r->nfds);
		if (needle)
			cr_assert(strstr(reply_msg(r), needle), "op %u: '%s' does not say '%s'", op,
				  reply_msg(r), needle);
	}
	free(r);
	return blen;
}

/* busd hung up on fd: end of stream (or a reset, if it closed with our
 * packets unread), nothing else. Closes fd. */
static void expect_closed(int fd)
{
	struct rx *r = rx_new();
	ssize_t n = raw_recv(fd, r);

	if (n == -ECONNRESET)
		n = raw_recv(fd, r);
	cr_assert(n == 0 || n == -ECONNRESET, "busd did not close the connection: recv = %zd "
		  "(%s; op %u status %d '%s')", n, n < 0 ? strerror((int)-n) : "a packet",
		  r->h.op, r->h.status, n > 0 ? reply_msg(r) : "");
	free(r);
	close(fd);
}

static void raw_hello(int fd, uint32_t id)
{
	struct req_hello q = { 1, 1, 0, 0 };
	uint8_t buf[64];

	raw_send(fd, buf, mk(buf, OP_HELLO, id, &q, sizeof(q)));
	cr_assert_geq(expect_reply(fd, OP_HELLO, id, 0, NULL), sizeof(struct rep_hello));
}

static void raw_ping(int fd, uint32_t id)
{
	uint8_t buf[HDR];

	raw_send(fd, buf, mk(buf, OP_PING, id, NULL, 0));
	cr_assert_eq(expect_reply(fd, OP_PING, id, 0, NULL), 0);
}

static void set_name(struct proto_name *n, const void *s, size_t len)
{
	memset(n, 0, sizeof(*n));
	n->len = (uint16_t)len;
	memcpy(n->s, s, len > PROTO_NAME_MAX ? PROTO_NAME_MAX : len);
}

/* One raw request on a connection that said HELLO: the reply's status and
 * descriptor count, its message into msg. For children: no asserting. */
static int raw_try(int fd, uint16_t op, uint32_t id, const void *body, size_t blen, int *nfds,
		   char *msg, size_t msize)
{
	struct rx *r = malloc(sizeof(*r));
	uint8_t buf[1024];
	ssize_t n;
	int st;

	if (!r)
		return -ENOMEM;
	*nfds = 0;
	msg[0] = 0;
	st = raw_send_r(fd, buf, mk(buf, op, id, body, blen));
	if (st == 0) {
		n = raw_recv(fd, r);
		if (n < (ssize_t)HDR || r->h.op != op || r->h.id != id) {
			st = n < 0 ? (int)n : -EBADMSG;
		} else {
			st = r->h.status;
			size_t k = strnlen(reply_msg(r), msize - 1);

			*nfds = r->nfds;
			memcpy(msg, reply_msg(r), k);
			msg[k] = 0;
		}
	}
	free(r);
	return st;
}

/* ------------------------------------------------------------------------ */
/* Row 1: another uid                                                       */
/* ------------------------------------------------------------------------ */

#define MAX_PROBES 96

/* One thing the other user tried: what keeps the topic safe, what it got. */
struct probe {
	char what[160];
	int32_t want;
	int32_t got;
	int32_t nfds;           /* raw requests: descriptors that came back */
	char msg[256];
};

struct uid_attack {
	char dir[600];          /* bus with a 0666 socket: the topics' modes decide */
	char dir600[600];       /* bus with the default 0600 socket */
	char shm[600], state[600];
	char id[17];
	char seg_log[32];       /* privdur's first log segment, "%020llu.log" */
	uint64_t seed;
	_Atomic uint32_t phase, done;
	int32_t cred_rc;
	_Atomic int32_t n;
	struct probe p[MAX_PROBES];
};

static void probe(struct uid_attack *a, int want, int got, int nfds, const char *msg,
		  const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void probe(struct uid_attack *a, int want, int got, int nfds, const char *msg,
		  const char *fmt, ...)
{
	int i = atomic_fetch_add(&a->n, 1);
	va_list ap;

	if (i >= MAX_PROBES)
		return;
	va_start(ap, fmt);
	vsnprintf(a->p[i].what, sizeof(a->p[i].what), fmt, ap);
	va_end(ap);
	a->p[i].want = want;
	a->p[i].got = got;
	a->p[i].nfds = nfds;
	snprintf(a->p[i].msg, sizeof(a->p[i].msg), "%s", msg ? msg : "");
}

/* Open path read-only and read-write: both must be refused. */
static void probe_file(struct uid_attack *a, const char *path)
{
	int fd;

	probe(a, -EACCES, try_open(path, O_RDONLY), 0, NULL, "open(%s, O_RDONLY)", path);
	probe(a, -EACCES, try_open(path, O_RDWR), 0, NULL, "open(%s, O_RDWR)", path);
	/* O_PATH needs no permission on the file, but the descriptor reads
	 * nothing, and reopening it checks the file's mode again. */
	fd = open(path, O_PATH | O_CLOEXEC);
	if (fd >= 0) {
		char p[64];

		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		probe(a, -EACCES, try_open(p, O_RDWR), 0, NULL, "reopen O_PATH of %s O_RDWR",
		      path);
		probe(a, -EACCES, try_open(p, O_RDONLY), 0, NULL, "reopen O_PATH of %s O_RDONLY",
		      path);
		close(fd);
	}
}

static int uid_attack_main(void *arg)
{
	struct uid_attack *a = arg;
	struct req_open qo;
	struct req_topic qt;
	struct req_close_sub qc;
	struct bus_event ev;
	struct bus_sub *s;
	struct bus_pub *p;
	struct bus_log *l;
	struct bus *b;
	char path[1400], msg[256];
	uint8_t buf[MAXEV];
	int r, fd, nfds;

	if ((a->cred_rc = become_nobody()) < 0)
		return t_fail("cannot become nobody: %s", strerror(-a->cred_rc));

	r = bus_connect(a->dir, &b);
	probe(a, 0, r, 0, bus_errmsg(), "bus_connect to a bus with a 0666 socket");
	if (r < 0)
		return 1;
	/* The control: nobody does get through where the mode lets it. */
	if (!TSAN) {
		r = bus_sub_attach(b, "public", NULL, &s);
		probe(a, 0, r, 0, bus_errmsg(), "bus_sub_attach(\"public\"), a 0644 topic");
		if (r == 0) {
			r = bus_sub_read(s, buf, sizeof(buf), &ev);
			probe(a, 1, r, 0, bus_errmsg(), "read event 1 of \"public\"");
			bus_sub_close(s);
		}
	}
	r = bus_pub_attach(b, "private", &p);
	probe(a, -EACCES, r, 0, bus_errmsg(), "bus_pub_attach(\"private\")");
	if (r == 0)
		bus_pub_close(p);
	r = bus_sub_attach(b, "private", NULL, &s);
	probe(a, -EACCES, r, 0, bus_errmsg(), "bus_sub_attach(\"private\")");
	if (r == 0)
		bus_sub_close(s);
	r = bus_sub_attach(b, "private", &(struct bus_sub_opts){ .group = "mine" }, &s);
	probe(a, -EACCES, r, 0, bus_errmsg(), "bus_sub_attach(\"private\", group \"mine\")");
	if (r == 0)
		bus_sub_close(s);
	r = bus_pub_attach(b, "privdur", &p);
	probe(a, -EACCES, r, 0, bus_errmsg(), "bus_pub_attach(\"privdur\")");
	if (r == 0)
		bus_pub_close(p);
	r = bus_sub_attach(b, "privdur", NULL, &s);
	probe(a, -EACCES, r, 0, bus_errmsg(), "bus_sub_attach(\"privdur\")");
	if (r == 0)
		bus_sub_close(s);
	r = bus_log_attach(b, "privdur", &l);
	probe(a, -EACCES, r, 0, bus_errmsg(), "bus_log_attach(\"privdur\")");
	if (r == 0)
		bus_log_close(l);
	probe(a, -EACCES, bus_stat(b, "private", NULL, NULL, 0), 0, bus_errmsg(),
	      "bus_stat(\"private\")");
	probe(a, -EACCES, bus_delete(b, "private"), 0, bus_errmsg(), "bus_delete(\"private\")");
	probe(a, -EEXIST, bus_create(b, "private", NULL), 0, bus_errmsg(),
	      "bus_create(\"private\") over root's");
	bus_disconnect(b);

	/* The same as raw packets: refused, and no descriptor rides along. */
	fd = raw_connect(a->dir, SOCK_SEQPACKET);
	if (fd < 0)
		return t_fail("raw connect: %s", strerror(-fd));
	{
		struct req_hello q = { 1, 1, 0, 0 };

		r = raw_try(fd, OP_HELLO, 1, &q, sizeof(q), &nfds, msg, sizeof(msg));
		probe(a, 0, r, nfds, msg, "raw HELLO");
	}
	memset(&qo, 0, sizeof(qo));
	set_name(&qo.topic, "private", 7);
	qo.slot = PROTO_NEW_SLOT;
	r = raw_try(fd, OP_OPEN_SUB, 2, &qo, sizeof(qo), &nfds, msg, sizeof(msg));
	probe(a, -EACCES, r, nfds, msg, "raw OPEN_SUB \"private\"");
	r = raw_try(fd, OP_OPEN_PUB, 3, &qo, sizeof(qo), &nfds, msg, sizeof(msg));
	probe(a, -EACCES, r, nfds, msg, "raw OPEN_PUB \"private\"");
	/* Reclaiming slot 0 or the lease: busd checks who asks. */
	qo.slot = 0;
	qo.reclaim = 1;
	r = raw_try(fd, OP_OPEN_SUB, 4, &qo, sizeof(qo), &nfds, msg, sizeof(msg));
	probe(a, -EACCES, r, nfds, msg, "raw OPEN_SUB \"private\" reclaiming slot 0");
	r = raw_try(fd, OP_OPEN_PUB, 5, &qo, sizeof(qo), &nfds, msg, sizeof(msg));
	probe(a, -EACCES, r, nfds, msg, "raw OPEN_PUB \"private\" reclaiming the lease");
	memset(&qt, 0, sizeof(qt));
	set_name(&qt.topic, "privdur", 7);
	r = raw_try(fd, OP_OPEN_LOG, 6, &qt, sizeof(qt), &nfds, msg, sizeof(msg));
	probe(a, -EACCES, r, nfds, msg, "raw OPEN_LOG \"privdur\"");
	set_name(&qt.topic, "private", 7);
	r = raw_try(fd, OP_CLOSE_PUB, 7, &qt, sizeof(qt), &nfds, msg, sizeof(msg));
	probe(a, -ENOENT, r, nfds, msg, "raw CLOSE_PUB \"private\" (end root's lease)");
	memset(&qc, 0, sizeof(qc));
	set_name(&qc.topic, "private", 7);
	r = raw_try(fd, OP_CLOSE_SUB, 8, &qc, sizeof(qc), &nfds, msg, sizeof(msg));
	probe(a, -ENOENT, r, nfds, msg, "raw CLOSE_SUB \"private\" slot 0 (free root's slot)");
	r = raw_try(fd, OP_DELETE, 9, &qt, sizeof(qt), &nfds, msg, sizeof(msg));
	probe(a, -EACCES, r, nfds, msg, "raw DELETE \"private\"");
	close(fd);

	/* Around busd: the files themselves. */
	snprintf(path, sizeof(path), "%s/bus-%s.private", a->shm, a->id);
	probe_file(a, path);
	snprintf(path, sizeof(path), "%s/bus-%s.private" CONS_SUFFIX, a->shm, a->id);
	probe_file(a, path);
	snprintf(path, sizeof(path), "%s/bus-%s.privdur", a->shm, a->id);
	probe_file(a, path);
	snprintf(path, sizeof(path), "%s/bus-%s.privdur" CONS_SUFFIX, a->shm, a->id);
	probe_file(a, path);
	snprintf(path, sizeof(path), "%s/" PROTO_LOCK, a->dir);
	probe(a, -EACCES, try_open(path, O_RDWR), 0, NULL, "open(%s, O_RDWR)", path);
	snprintf(path, sizeof(path), "%s/log", a->state);
	probe(a, -EACCES, try_open(path, O_RDONLY | O_DIRECTORY), 0, NULL, "opendir %s", path);
	snprintf(path, sizeof(path), "%s/log/privdur", a->state);
	probe(a, -EACCES, try_open(path, O_RDONLY | O_DIRECTORY), 0, NULL, "opendir %s", path);
	snprintf(path, sizeof(path), "%s/log/privdur/topic.conf", a->state);
	probe(a, -EACCES, try_open(path, O_RDONLY), 0, NULL, "open(%s, O_RDONLY)", path);
	snprintf(path, sizeof(path), "%s/log/privdur/%s", a->state, a->seg_log);
	probe(a, -EACCES, try_open(path, O_RDONLY), 0, NULL, "open(%s, O_RDONLY)", path);

	/* A busd with the default socket mode: not even a connection. */
	r = raw_connect(a->dir600, SOCK_SEQPACKET);
	probe(a, -EACCES, r < 0 ? r : 0, 0, NULL, "connect() to %s/" PROTO_SOCKET " (0600)",
	      a->dir600);
	if (r >= 0)
		close(r);
	r = bus_connect(a->dir600, &b);
	probe(a, -EACCES, r, 0, bus_errmsg(), "bus_connect to %s (0600 socket)", a->dir600);
	if (r == 0)
		bus_disconnect(b);

	/* Phase 2: the parent opened STATE/log and the topic's log directory
	 * to traversal; the files' own modes still refuse. */
	atomic_store(&a->done, 1);
	if (await_flag(&a->phase, 2) < 0)
		return t_fail("no phase 2");
	snprintf(path, sizeof(path), "%s/log/privdur", a->state);
	probe(a, -EACCES, try_open(path, O_RDONLY | O_DIRECTORY), 0, NULL,
	      "opendir %s (traversable)", path);
	snprintf(path, sizeof(path), "%s/log/privdur/topic.conf", a->state);
	probe_file(a, path);
	snprintf(path, sizeof(path), "%s/log/privdur/%s", a->state, a->seg_log);
	probe_file(a, path);
	probe(a, -EACCES, unlink(path) < 0 ? -errno : 0, 0, NULL, "unlink(%s)", path);
	snprintf(path, sizeof(path), "%s/log/privdur/%.20s.idx", a->state, a->seg_log);
	probe_file(a, path);
	snprintf(path, sizeof(path), "%s/log/privdur/planted", a->state);
	probe(a, -EACCES, try_open(path, O_WRONLY | O_CREAT | O_EXCL), 0, NULL,
	      "create %s", path);
	atomic_store(&a->done, 2);
	return 0;
}

Test(attack, row1_another_uid_cannot_open_a_0600_topic_or_reach_its_files)
{
	struct bus_topic_opts dur = { .flags = BUS_TOPIC_DURABLE, .fsync = BUS_FSYNC_ALWAYS };
	struct bus_topic_opts pub = { .mode = 0644 };
	struct t_busd d, d2;
	struct uid_attack *a;
	struct bus_event ev;
	struct bus_pub *p;
	struct bus_sub *s;
	struct snap conf, seg;
	struct stat st;
	struct bus *b;
	char path[1400], logdir[800], logs[800];
	uint8_t buf[MAXEV];
	const char *topics[] = { "private", "privdur", "public" };
	pid_t pid;

	if (geteuid() != 0)
		cr_skip_test("needs root to run a client as another user (CI runs as root)");
	a = t_shared(sizeof(*a));
	a->seed = t_rand();
	cr_assert_eq(t_busd_start(&d, "--socket-mode", "0666", NULL), 0);
	cr_assert_eq(t_busd_start(&d2, NULL), 0);
	snprintf(a->dir, sizeof(a->dir), "%s", d.dir);
	snprintf(a->dir600, sizeof(a->dir600), "%s", d2.dir);
	snprintf(a->shm, sizeof(a->shm), "%s", d.shm);
	snprintf(a->state, sizeof(a->state), "%s", d.state);
	bus_id_of(&d, a->id);
	/* Every directory on the way is open to traversal: what refuses is the
	 * mode of the socket, the topic, its files and STATE/log, nothing else. */
	make_traversable(d.dir);
	make_traversable(d.shm);
	make_traversable(d.state);
	make_traversable(d2.dir);

	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "private", NULL), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, "privdur", &dur), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, "public", &pub), 0, "%s", bus_errmsg());
	for (size_t i = 0; i < 3; i++) {
		cr_assert_eq(bus_pub_attach(b, topics[i], &p), 0, "%s", bus_errmsg());
		cr_assert_eq(publish_to(p, a->seed, 2), 0);
		if (i == 1)
			cr_assert_eq(bus_pub_sync(p, 1, 5 * (int64_t)SEC), 0, "%s", bus_errmsg());
		bus_pub_close(p);
	}
	bus_disconnect(b);

	/* What the files say, as root sees them. */
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/bus-%s.%s", d.shm, a->id, topics[i]);
		cr_assert_eq(stat(path, &st), 0, "%s", path);
		cr_assert_eq(st.st_mode & 07777, 0600, "%s: mode %04o", path, st.st_mode & 07777);
		cr_assert_eq(st.st_uid, 0);
		snprintf(path, sizeof(path), "%s/bus-%s.%s" CONS_SUFFIX, d.shm, a->id, topics[i]);
		cr_assert_eq(stat(path, &st), 0, "%s", path);
		cr_assert_eq(st.st_mode & 07777, 0600, "%s: mode %04o (a 0600 topic's consumer "
			     "area is writable by its readers only, the owner)", path,
			     st.st_mode & 07777);
	}
	snprintf(logs, sizeof(logs), "%s/log", d.state);
	cr_assert_eq(stat(logs, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700, "%s: mode %04o", logs, st.st_mode & 07777);
	snprintf(logdir, sizeof(logdir), "%s/log/privdur", d.state);
	cr_assert_eq(stat(logdir, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700, "%s: mode %04o", logdir, st.st_mode & 07777);
	t_seg_name(a->seg_log, sizeof(a->seg_log), 1);
	snprintf(path, sizeof(path), "%s/%s", logdir, a->seg_log);
	cr_assert_eq(stat(path, &st), 0, "%s", path);
	cr_assert_eq(st.st_mode & 07777, 0600, "%s: mode %04o", path, st.st_mode & 07777);
	snap_take(&seg, path);
	snprintf(path, sizeof(path), "%s/topic.conf", logdir);
	cr_assert_eq(stat(path, &st), 0, "%s", path);
	cr_assert_eq(st.st_mode & 07777, 0600, "%s: mode %04o", path, st.st_mode & 07777);
	snap_take(&conf, path);
	snprintf(path, sizeof(path), "%s/" PROTO_SOCKET, d2.dir);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 0777, 0600, "%s: mode %04o", path, st.st_mode & 0777);

	pid = t_fork(uid_attack_main, a);
	cr_assert_eq(wait_flag(&a->done, 1, pid, 20), 0, "the nobody child failed in phase 1");
	cr_assert_eq(chmod(logs, 0711), 0);
	cr_assert_eq(chmod(logdir, 0711), 0);
	atomic_store(&a->phase, 2);
	cr_assert_eq(wait_exit(pid, 20), 0, "the nobody child failed (diagnosis on stderr)");
	cr_assert_eq(chmod(logdir, 0700), 0);
	cr_assert_eq(chmod(logs, 0700), 0);

	cr_assert_eq(a->cred_rc, 0);
	cr_assert_eq(a->n, TSAN ? 57 : 59, "%d probes ran", (int)a->n);
	cr_assert_leq(a->n, MAX_PROBES);
	for (int i = 0; i < a->n && i < MAX_PROBES; i++) {
		const struct probe *q = &a->p[i];

		cr_assert_eq(q->got, q->want, "nobody: %s = %d (%s), expected %d (%s)%s%s", q->what,
			     q->got, q->got < 0 ? strerror(-q->got) : "ok", q->want,
			     q->want < 0 ? strerror(-q->want) : "ok", q->msg[0] ? ": " : "",
			     q->msg);
		cr_assert_eq(q->nfds, 0, "nobody: %s brought %d descriptors", q->what, q->nfds);
		/* A refusal by busd says which topic and why. */
		if (q->want == -EACCES && q->msg[0])
			cr_assert(strcasestr(q->msg, "permission denied") ||
				  strstr(q->msg, "owner"), "nobody: %s: \"%s\"", q->what, q->msg);
	}

	cr_log_info("row 1: %d attempts by uid %u, each refused or (the controls) allowed",
		    (int)a->n, NOBODY);
	/* Nothing changed: root's events are intact, the log untouched. */
	snap_same(&conf, "after the other user");
	snap_same(&seg, "after the other user");
	snap_free(&conf);
	snap_free(&seg);
	b = connect_to(&d);
	cr_assert_eq(bus_list(b, NULL, 0), 3);
	for (size_t i = 0; i < 3; i++) {
		cr_assert_eq(bus_sub_attach(b, topics[i], NULL, &s), 0, "%s", bus_errmsg());
		cr_assert_eq(bus_sub_read(s, buf, sizeof(buf), &ev), 1, "%s", topics[i]);
		cr_assert_eq(ev.seq, 1);
		cr_assert_eq(ev.len, t_len_for(a->seed, 1, 8, MAXEV));
		cr_assert_eq(t_check(ev.data, ev.len, a->seed, 1), 0);
		bus_sub_close(s);
	}
	bus_disconnect(b);
	check_healthy(&d);
	check_healthy(&d2);
}

/* ------------------------------------------------------------------------ */
/* Row 2: a hostile consumer                                                */
/* ------------------------------------------------------------------------ */

#define R2_SLOTS 8u
#define NFAULT 12

enum { H_READY = 1, H_FAULTS, H_GARBAGE, H_FINAL, H_HEADER, H_TRUNCATE };

struct reader {
	struct row2 *w;
	char group[32];              /* "" = anonymous */
	_Atomic uint64_t got;        /* the next sequence number it expects */
	_Atomic uint32_t ready;
	uint32_t slot;
	int32_t rc;
	uint64_t worst_calm_ns;      /* longest delivery latency, before... */
	uint64_t worst_hijack_ns;    /* ... and while the hostile held wake_req */
	char why[256];
};

/* A write the hostile consumer tried: where, and the signal that stopped it. */
struct fault {
	char what[48];
	uintptr_t addr;
	int32_t sig, code;
	uintptr_t at;                /* si_addr */
	int32_t changed;             /* the byte changed anyway */
};

struct hostile {
	_Atomic uint32_t phase, done;
	uint32_t slot;
	struct fault f[NFAULT];
	int32_t nf;
	int32_t mprotect_ring, mprotect_hdr, mmap_rw, accmode, pwrite_seg, ftrunc_seg;
	int32_t falloc_seg, reopen_rw, same_inode, child_status;
	int32_t maps_seg, maps_seg_w, maps_cons_rw;
	_Atomic uint64_t passes;     /* garbage passes over the consumer area */
	int32_t close_other, close_g, reclaim_g, reclaim_own;
	int32_t trunc_rc;
	char why[256];
};

struct row2 {
	char dir[600], topic[64], id[17];
	uint64_t seed;
	int32_t as_nobody;
	_Atomic uint64_t target;     /* parent: publish up to here (exclusive) */
	_Atomic uint64_t until;      /* published up to here */
	_Atomic uint32_t hijack;     /* parent: the hostile holds wake_req now */
	_Atomic uint32_t pub_ready, quit;
	_Atomic uint32_t ptrunc, ptrunc_done;  /* the producer truncates its segment */
	int32_t pub_rc, ptrunc_rc;
	pid_t g_pid, n_pid;
	uint32_t g_slot, n_slot;
	struct reader r[2];          /* G (anonymous), N (named cursor "keep") */
	struct hostile h;
};

static int producer_main(void *arg)
{
	struct row2 *w = arg;
	struct bus_pub *p;
	struct bus *b;
	int r;

	if ((r = bus_connect(w->dir, &b)) < 0 || (r = bus_pub_attach(b, w->topic, &p)) < 0) {
		w->pub_rc = r;
		return t_fail("producer: %d (%s)", r, bus_errmsg());
	}
	atomic_store(&w->pub_ready, 1);
	while (!atomic_load(&w->quit)) {
		uint64_t t = atomic_load(&w->target);

		if (atomic_load(&w->ptrunc) && !atomic_load(&w->ptrunc_done)) {
			/* Its own file: a producer holds it read-write. From
			 * here on the mapping is not to be touched. */
			w->ptrunc_rc = ftruncate(p->seg.fd, 0) < 0 ? -errno : 0;
			atomic_store(&w->ptrunc_done, 1);
		}
		if (atomic_load(&w->ptrunc_done)) {
			t_nap_us(1000);
			continue;
		}

		if (bus_pub_next_seq(p) < t) {
			if ((r = publish_to(p, w->seed, t)) != 0) {
				w->pub_rc = -EIO;
				return r;
			}
			atomic_store(&w->until, t);
			continue;
		}
		t_nap_us(1000);
	}
	if (atomic_load(&w->ptrunc_done))
		_exit(0);  /* closing would store to the truncated header */
	bus_pub_close(p);
	bus_disconnect(b);
	return 0;
}

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec;
}

/* Read and check every event as publish_to() wrote it, until told to quit;
 * measure each event's delivery latency (now - its commit timestamp). */
static int reader_main(void *arg)
{
	struct reader *rd = arg;
	struct row2 *w = rd->w;
	struct bus_sub_opts o = { .from = BUS_FROM_OLDEST,
				  .group = rd->group[0] ? rd->group : NULL };
	uint64_t expected = 1, due = 0;
	struct bus_event ev;
	struct bus_sub *s;
	struct bus *b;
	uint8_t buf[MAXEV];
	int r;

	/* Row 2 ends by truncating the consumer area under us: die of it
	 * plainly (a sanitizer's handler would report it as a bug of ours). */
	signal(SIGBUS, SIG_DFL);
	if ((r = bus_connect(w->dir, &b)) < 0 || (r = bus_sub_attach(b, w->topic, &o, &s)) < 0) {
		rd->rc = r;
		snprintf(rd->why, sizeof(rd->why), "attach: %s", bus_errmsg());
		return 1;
	}
	rd->slot = (uint32_t)(s->slot - s->seg.slots);
	atomic_store(&rd->got, expected);
	atomic_store(&rd->ready, 1);
	for (;;) {
		uint64_t now;

		r = bus_sub_read(s, buf, sizeof(buf), &ev);
		now = t_now_ns();
		if (r == 1) {
			uint64_t lat = wall_ns() - ev.ts_ns;
			uint64_t *worst = atomic_load(&w->hijack) ? &rd->worst_hijack_ns :
								  &rd->worst_calm_ns;

			if (ev.seq != expected || ev.type != (uint32_t)ev.seq ||
			    ev.len != t_len_for(w->seed, ev.seq, 8, MAXEV) ||
			    t_check(ev.data, ev.len, w->seed, ev.seq)) {
				rd->rc = -EBADMSG;
				snprintf(rd->why, sizeof(rd->why), "bad event: seq %llu (expected "
					 "%llu), type %u, %u bytes",
					 (unsigned long long)ev.seq, (unsigned long long)expected,
					 ev.type, ev.len);
				return 1;
			}
			atomic_store(&rd->got, ++expected);
			if (o.group)
				bus_sub_commit(s);
			if (lat < 60 * SEC && lat > *worst)
				*worst = lat;
			due = 0;
			continue;
		}
		if (r < 0) {
			rd->rc = r;
			snprintf(rd->why, sizeof(rd->why), "at seq %llu: %d (%s; lost %llu)",
				 (unsigned long long)expected, r, bus_errmsg(),
				 (unsigned long long)ev.lost);
			return 1;
		}
		if (expected < atomic_load(&w->until)) {
			if (!due)
				due = now;
			if (now - due > 10 * SEC) {
				rd->rc = -ETIMEDOUT;
				snprintf(rd->why, sizeof(rd->why), "event %llu, published, not "
					 "delivered within 10 s", (unsigned long long)expected);
				return 1;
			}
		} else if (atomic_load(&w->quit)) {
			break;
		}
		/* Longer than the library's own 1 s bound on a sleep, so that a
		 * lost wake shows as what it costs. */
		r = bus_sub_wait(s, 1500 * (int64_t)MS);
		if (r < 0 && r != -ETIMEDOUT && r != -EINTR) {
			rd->rc = r;
			snprintf(rd->why, sizeof(rd->why), "bus_sub_wait = %d", r);
			return 1;
		}
	}
	bus_sub_close(s);
	bus_disconnect(b);
	return 0;
}

static sigjmp_buf fault_jb;
static volatile sig_atomic_t fault_sig, fault_code;
static void *volatile fault_addr;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	fault_sig = sig;
	fault_code = si->si_code;
	fault_addr = si->si_addr;
	siglongjmp(fault_jb, 1);
}

/* Flip a byte the consumer maps read-only; record what stopped it. */
static void try_write(struct hostile *h, const char *what, const volatile void *target)
{
	volatile uint8_t *p = (volatile uint8_t *)(uintptr_t)target;
	struct fault *f;
	uint8_t before = *p;

	if (h->nf >= NFAULT)
		return;
	f = &h->f[h->nf++];
	snprintf(f->what, sizeof(f->what), "%s", what);
	f->addr = (uintptr_t)p;
	fault_sig = 0;
	if (sigsetjmp(fault_jb, 1) == 0) {
		*p = (uint8_t)(before ^ 0x5a);
		f->sig = 0;  /* the write went through */
	} else {
		f->sig = fault_sig;
		f->code = fault_code;
		f->at = (uintptr_t)fault_addr;
	}
	f->changed = *p != before;
}

/* What /proc/self/maps says about our mappings of the topic's two files. */
static void read_maps(struct hostile *h, const char *seg_name)
{
	char line[1024], cons[300];
	FILE *f = fopen("/proc/self/maps", "re");

	snprintf(cons, sizeof(cons), "%s" CONS_SUFFIX, seg_name);
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char perms[8] = "", *path = strchr(line, '/');
		size_t n;

		if (!path || sscanf(line, "%*s %7s", perms) != 1)
			continue;
		path[strcspn(path, "\n")] = 0;
		n = strlen(path);
		if (n > strlen(cons) && !strcmp(path + n - strlen(cons), cons)) {
			h->maps_cons_rw += !strcmp(perms, "rw-s");
		} else if (n > strlen(seg_name) && !strcmp(path + n - strlen(seg_name), seg_name)) {
			h->maps_seg++;
			h->maps_seg_w += strchr(perms, 'w') != NULL;
		}
	}
	fclose(f);
}

/* Phase H_FAULTS: everything a consumer might try on the read-only side. */
static void hostile_faults(struct row2 *w, struct hostile *h, struct bus_sub *s)
{
	const struct seg_hdr *hdr = s->seg.hdr;
	const uint8_t *ring = s->seg.ring;
	uint64_t cap = s->seg.g.ring_size;
	struct sigaction sa = { .sa_sigaction = on_fault, .sa_flags = SA_SIGINFO };
	char p[64], name[256];
	struct stat a, c;
	void *m;
	pid_t kid;
	int fd, st;

	snprintf(name, sizeof(name), "/bus-%s.%s", w->id, w->topic);
	read_maps(h, name);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	try_write(h, "ring[0]", &ring[0]);
	try_write(h, "ring[cap - 1]", &ring[cap - 1]);
	try_write(h, "ring[cap] (second mapping)", &ring[cap]);
	try_write(h, "ring[2 cap - 1]", &ring[2 * cap - 1]);
	try_write(h, "hdr.magic", &hdr->magic);
	try_write(h, "hdr.head (producer)", &hdr->head);
	try_write(h, "hdr.last (producer)", &hdr->last);
	try_write(h, "hdr.tail (producer)", &hdr->tail);
	try_write(h, "hdr.wake_gen (producer)", &hdr->wake_gen);
	try_write(h, "hdr.pub_pid (producer)", &hdr->pub_pid);
	try_write(h, "hdr.flushed (busd)", &hdr->flushed);
	try_write(h, "hdr.state", &hdr->state);
	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);

	/* The kernel will not upgrade the mapping or map the file again
	 * writable: the descriptor is O_RDONLY. */
	h->mprotect_ring = mprotect((void *)(uintptr_t)ring, 4096, PROT_READ | PROT_WRITE) < 0 ?
			   -errno : 0;
	h->mprotect_hdr = mprotect((void *)(uintptr_t)hdr, 4096, PROT_READ | PROT_WRITE) < 0 ?
			  -errno : 0;
	m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, s->seg.fd, 0);
	h->mmap_rw = m == MAP_FAILED ? -errno : 0;
	if (m != MAP_FAILED)
		munmap(m, 4096);
	h->accmode = fcntl(s->seg.fd, F_GETFL) & O_ACCMODE;
	h->pwrite_seg = pwrite(s->seg.fd, "x", 1, SEG_HDR_SIZE) < 0 ? -errno : 0;
	h->ftrunc_seg = ftruncate(s->seg.fd, 0) < 0 ? -errno : 0;
	h->falloc_seg = fallocate(s->seg.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
				  4096) < 0 ? -errno : 0;
	/* Reopening the descriptor by its /proc link checks the file's mode
	 * with our own credentials. */
	snprintf(p, sizeof(p), "/proc/self/fd/%d", s->seg.fd);
	fd = open(p, O_RDWR | O_CLOEXEC);
	h->reopen_rw = fd < 0 ? -errno : 0;
	if (fd >= 0)
		close(fd);
	h->same_inode = fstat(s->seg.fd, &a) == 0 && fstat(s->seg.cfd, &c) == 0 &&
			a.st_ino == c.st_ino;
	/* And without a handler: a write kills the process. */
	kid = fork();
	if (kid == 0) {
		signal(SIGSEGV, SIG_DFL);
		*(volatile uint8_t *)(uintptr_t)&ring[64] = 1;
		_exit(0);
	}
	h->child_status = kid > 0 && waitpid(kid, &st, 0) == kid ?
			  (WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st)) : -1;
}

/* One pass of garbage over everything the consumer area lets us write. */
static void garbage_pass(struct row2 *w, struct bus_sub *s, uint64_t i)
{
	const uint32_t owners[] = { 0, 1, UINT32_MAX, (uint32_t)getpid(), (uint32_t)w->g_pid };

	for (uint32_t k = 0; k < s->seg.g.nslots; k++) {
		struct cons_slot *sl = &s->seg.slots[k];

		atomic_store(&sl->owner, owners[(i + k) % 5]);
		atomic_store(&sl->flags, UINT32_MAX);
		atomic_store(&sl->pos, UINT64_MAX - i);
		atomic_store(&sl->seq, t_rand());
		atomic_store(&sl->events, t_rand());
		atomic_store(&sl->lapped, t_rand());
		atomic_store(&sl->lost, t_rand());
		atomic_store(&sl->sleeping, (uint32_t)t_rand());
		atomic_store(&sl->commit, t_rand());
		atomic_store(&sl->group, (uint32_t)t_rand());
	}
	/* The highest generation there is: no sleeper's announcement can
	 * raise it (a CAS-max), so the producer never sees one. */
	atomic_store(&s->chdr->wake_req, UINT32_MAX);
	atomic_store(&s->chdr->gate_gen, (uint32_t)t_rand());
	atomic_store(&s->chdr->gate_req, (uint32_t)t_rand());
}

/* The garbage busd finds when it looks (deterministic, see the test). */
static void garbage_final(struct row2 *w, struct bus_sub *s, uint32_t me, uint32_t n_group)
{
	uint32_t n = s->seg.g.nslots, last_free = n;

	for (uint32_t k = 0; k < n; k++)
		if (k != w->g_slot && k != w->n_slot && k != me)
			last_free = k;
	for (uint32_t k = 0; k < n; k++) {
		struct cons_slot *sl = &s->seg.slots[k];
		uint32_t owner = k == last_free ? 0 : UINT32_MAX;

		if (k == w->g_slot)
			owner = 0;                      /* G's slot looks free */
		else if (k == w->n_slot)
			owner = (uint32_t)w->n_pid;     /* N's is left alone */
		else if (k == me)
			owner = (uint32_t)w->g_pid;     /* ours claims to be G's */
		atomic_store(&sl->owner, owner);
		atomic_store(&sl->flags, UINT32_MAX);
		atomic_store(&sl->pos, UINT64_MAX);
		atomic_store(&sl->seq, 0x5e90000000000000ull);
		atomic_store(&sl->sleeping, 1);
		atomic_store(&sl->commit, k == w->n_slot ? 999999 : 3);
		atomic_store(&sl->group, k == w->n_slot || k == me || k == w->g_slot ? n_group :
				       0xfffffff0u + k);
	}
	atomic_store(&s->chdr->wake_req, UINT32_MAX);
}

static int hostile_main(void *arg)
{
	struct row2 *w = arg;
	struct hostile *h = &w->h;
	struct bus_sub *s;
	struct bus *b;
	uint32_t n_group = 0;
	char msg[256];
	int r, fd, nfds;

	if (w->as_nobody && (r = become_nobody()) < 0) {
		snprintf(h->why, sizeof(h->why), "cannot become nobody: %s", strerror(-r));
		return 1;
	}
	if ((r = bus_connect(w->dir, &b)) < 0 || (r = bus_sub_attach(b, w->topic, NULL, &s)) < 0) {
		snprintf(h->why, sizeof(h->why), "attach: %d (%s)", r, bus_errmsg());
		return 1;
	}
	h->slot = (uint32_t)(s->slot - s->seg.slots);
	atomic_store(&h->done, H_READY);

	if (await_flag(&h->phase, H_FAULTS) < 0)
		return 1;
	if (!TSAN)
		hostile_faults(w, h, s);
	atomic_store(&h->done, H_FAULTS);

	if (await_flag(&h->phase, H_GARBAGE) < 0)
		return 1;
	n_group = atomic_load(&s->seg.slots[w->n_slot].group);
	for (uint64_t i = 0; atomic_load(&h->phase) == H_GARBAGE; i++) {
		garbage_pass(w, s, i);
		atomic_store(&h->passes, i + 1);
		t_nap_us(500);
	}
	garbage_final(w, s, h->slot, n_group);
	/* Through busd: free or take over the slots of others. */
	fd = raw_connect(w->dir, SOCK_SEQPACKET);
	if (fd >= 0) {
		struct req_hello q = { 1, 1, 0, 0 };
		struct req_close_sub qc;
		struct req_open qo;

		raw_try(fd, OP_HELLO, 1, &q, sizeof(q), &nfds, msg, sizeof(msg));
		memset(&qc, 0, sizeof(qc));
		set_name(&qc.topic, w->topic, strlen(w->topic));
		qc.slot = w->n_slot;
		h->close_other = raw_try(fd, OP_CLOSE_SUB, 2, &qc, sizeof(qc), &nfds, msg,
					 sizeof(msg));
		qc.slot = w->g_slot;
		h->close_g = raw_try(fd, OP_CLOSE_SUB, 3, &qc, sizeof(qc), &nfds, msg, sizeof(msg));
		memset(&qo, 0, sizeof(qo));
		set_name(&qo.topic, w->topic, strlen(w->topic));
		qo.reclaim = 1;
		qo.slot = w->g_slot;
		h->reclaim_g = raw_try(fd, OP_OPEN_SUB, 4, &qo, sizeof(qo), &nfds, msg,
				       sizeof(msg));
		qo.slot = h->slot;
		h->reclaim_own = raw_try(fd, OP_OPEN_SUB, 5, &qo, sizeof(qo), &nfds, msg,
					 sizeof(msg));
		close(fd);
	}
	atomic_store(&h->done, H_FINAL);

	/* The consumer header: magic, version and slot count are writable too. */
	if (await_flag(&h->phase, H_HEADER) < 0)
		return 1;
	*(volatile uint64_t *)&s->chdr->magic = 0;
	*(volatile uint32_t *)&s->chdr->version = 99;
	*(volatile uint32_t *)&s->chdr->nslots = 1;
	atomic_store(&h->done, H_HEADER);

	/* And the file itself: truncated under every mapping of it. From here
	 * on we touch neither the mapping nor the handle. */
	if (await_flag(&h->phase, H_TRUNCATE) < 0)
		return 1;
	h->trunc_rc = ftruncate(s->seg.cfd, 0) < 0 ? -errno : 0;
	atomic_store(&h->done, H_TRUNCATE);
	await_flag(&w->quit, 1);
	return 0;
}

/* A slot as the consumer area holds it now (read from the file). */
static struct cons_slot slot_now(const char *cons_path, uint32_t i)
{
	struct cons_slot sl;
	int fd = open(cons_path, O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0, "%s: %s", cons_path, strerror(errno));
	cr_assert_eq(pread(fd, &sl, sizeof(sl), CONS_HDR_SIZE + (off_t)i * sizeof(sl)),
		     (ssize_t)sizeof(sl));
	close(fd);
	return sl;
}

/* Publish up to `to` through the producer child and wait until both
 * readers have checked every event (at most 20 s). */
static void publish_and_read(struct row2 *w, pid_t *pids, uint64_t to)
{
	uint64_t end = t_now_ns() + 20 * SEC;

	atomic_store(&w->target, to);
	for (int i = 0; i < 2; i++) {
		while (atomic_load(&w->r[i].got) < to) {
			cr_assert_eq(w->r[i].rc, 0, "reader %d: %s", i, w->r[i].why);
			cr_assert_eq(w->pub_rc, 0, "the producer failed");
			cr_assert_lt(t_now_ns(), end, "reader %d has %llu of %llu events after "
				     "20 s", i, (unsigned long long)atomic_load(&w->r[i].got) - 1,
				     (unsigned long long)to - 1);
			cr_assert_eq(kill(pids[i], 0), 0, "reader %d is gone", i);
			t_nap_us(2000);
		}
	}
}

Test(attack, row2_a_consumer_cannot_write_the_ring_and_its_garbage_stops_neither_busd_nor_readers)
{
	struct bus_topic_opts o = { .ring_size = 1u << 20, .mode = 0644,
				    .max_consumers = R2_SLOTS };
	struct bus_topic_info ti;
	struct bus_sub *x, *x2;
	struct cons_slot sl;
	struct t_busd d;
	struct row2 *w;
	struct hostile *h;
	struct bus_event ev;
	struct bus *b;
	uint64_t worst = 0;
	char cons[1400];
	uint8_t buf[MAXEV];
	const char *sock_mode;
	pid_t pid_p, pid_h, pids[2];
	uint32_t xs;
	int r, st[2];

	w = t_shared(sizeof(*w));
	h = &w->h;
	w->seed = t_rand();
	w->as_nobody = geteuid() == 0 && !TSAN;
	snprintf(w->topic, sizeof(w->topic), "victim");
	sock_mode = w->as_nobody ? "0666" : "0600";
	cr_assert_eq(t_busd_start(&d, "--socket-mode", sock_mode, NULL), 0);
	snprintf(w->dir, sizeof(w->dir), "%s", d.dir);
	bus_id_of(&d, w->id);
	snprintf(cons, sizeof(cons), "%s/bus-%s.%s" CONS_SUFFIX, d.shm, w->id, w->topic);
	if (w->as_nobody)
		make_traversable(d.dir);
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, w->topic, &o), 0, "%s", bus_errmsg());
	bus_disconnect(b);

	/* The cast: a producer, an anonymous reader G, a named reader N, and
	 * the hostile consumer (as uid nobody, where we can: 0644 lets it
	 * read). */
	w->r[0].w = w->r[1].w = w;
	snprintf(w->r[1].group, sizeof(w->r[1].group), "keep");
	pid_p = t_fork(producer_main, w);
	for (int i = 0; i < 2; i++) {
		pids[i] = t_fork(reader_main, &w->r[i]);
		cr_assert_eq(wait_flag(&w->r[i].ready, 1, pids[i], 10), 0, "reader %d: %s", i,
			     w->r[i].why);
	}
	cr_assert_eq(wait_flag(&w->pub_ready, 1, pid_p, 10), 0, "the producer did not start");
	w->g_pid = pids[0];
	w->n_pid = pids[1];
	w->g_slot = w->r[0].slot;
	w->n_slot = w->r[1].slot;
	pid_h = t_fork(hostile_main, w);
	cr_assert_eq(wait_flag(&h->done, H_READY, pid_h, 10), 0, "hostile: %s", h->why);
	b = connect_to(&d);

	/* 1. The read-only side: every write faults where it was made. */
	atomic_store(&h->phase, H_FAULTS);
	cr_assert_eq(wait_flag(&h->done, H_FAULTS, pid_h, 10), 0, "hostile: %s", h->why);
	if (!TSAN) {
		cr_assert_eq(h->nf, NFAULT);
		for (int i = 0; i < h->nf; i++) {
			const struct fault *f = &h->f[i];

			cr_assert_eq(f->sig, SIGSEGV, "a consumer's write to %s: %s", f->what,
				     f->sig ? strsignal(f->sig) : "went through");
			cr_assert_eq(f->code, SEGV_ACCERR, "%s: si_code %d", f->what, f->code);
			cr_assert_eq(f->at, f->addr, "%s: faulted at %#lx, wrote %#lx", f->what,
				     (unsigned long)f->at, (unsigned long)f->addr);
			cr_assert_eq(f->changed, 0, "%s changed", f->what);
		}
		/* Header and first ring copy are one mapping (adjacent in memory
		 * and in the file), the second copy another. */
		cr_assert_geq(h->maps_seg, 2, "the consumer maps the segment %d times",
			      h->maps_seg);
		cr_assert_eq(h->maps_seg_w, 0, "%d writable mappings of the segment",
			     h->maps_seg_w);
		cr_assert_eq(h->maps_cons_rw, 1, "consumer area mapped rw-s %d times",
			     h->maps_cons_rw);
		cr_assert_eq(h->mprotect_ring, -EACCES, "mprotect(ring, rw) = %d",
			     h->mprotect_ring);
		cr_assert_eq(h->mprotect_hdr, -EACCES, "mprotect(header, rw) = %d",
			     h->mprotect_hdr);
		cr_assert_eq(h->mmap_rw, -EACCES, "mmap of the segment rw = %d", h->mmap_rw);
		cr_assert_eq(h->accmode, O_RDONLY, "the segment's descriptor is not O_RDONLY");
		cr_assert_eq(h->pwrite_seg, -EBADF, "pwrite to the segment = %d", h->pwrite_seg);
		cr_assert_lt(h->ftrunc_seg, 0, "ftruncate of the segment went through");
		cr_assert_eq(h->falloc_seg, -EBADF, "punching a hole = %d", h->falloc_seg);
		cr_assert_eq(h->same_inode, 0, "the consumer area is the segment");
		cr_assert_eq(h->child_status, 128 + SIGSEGV, "an unhandled write ended the child "
			     "with %d", h->child_status);
		if (w->as_nobody)
			cr_assert_eq(h->reopen_rw, -EACCES, "nobody reopened its read-only "
				     "descriptor read-write: %d", h->reopen_rw);
		else
			cr_log_info("row 2: a consumer of the topic owner's uid reopens its "
				    "read-only descriptor read-write (/proc/self/fd): %d",
				    h->reopen_rw);
	}
	timed_ping(b, &worst);

	/* 2. A calm first burst, then garbage everywhere the consumer area
	 * lets the hostile write, rewritten every half millisecond, while
	 * three bursts are published with pauses (the readers go to sleep). */
	publish_and_read(w, pids, 401);
	atomic_store(&w->hijack, 1);
	atomic_store(&h->phase, H_GARBAGE);
	while (atomic_load(&h->passes) < 10) {
		cr_assert_eq(kill(pid_h, 0), 0, "hostile: %s", h->why);
		t_nap_us(1000);
	}
	for (uint64_t to = 801; to <= 1601; to += 400) {
		t_nap_us(200000);
		timed_ping(b, &worst);
		publish_and_read(w, pids, to);
		cr_assert_eq(bus_stat(b, w->topic, &ti, NULL, 0) >= 0, 1, "%s", bus_errmsg());
	}
	atomic_store(&h->phase, H_FINAL);
	cr_assert_eq(wait_flag(&h->done, H_FINAL, pid_h, 10), 0, "hostile: %s", h->why);
	atomic_store(&w->hijack, 0);
	cr_log_info("row 2: %llu garbage passes; worst delivery latency: %llu us calm, %llu ms "
		    "with wake_req held at 0xffffffff (G), %llu us / %llu ms (N)",
		    (unsigned long long)atomic_load(&h->passes),
		    (unsigned long long)(w->r[0].worst_calm_ns / 1000),
		    (unsigned long long)(w->r[0].worst_hijack_ns / MS),
		    (unsigned long long)(w->r[1].worst_calm_ns / 1000),
		    (unsigned long long)(w->r[1].worst_hijack_ns / MS));
	/* A lost wake costs at most the 1 s bound on every sleep. */
	for (int i = 0; i < 2; i++)
		cr_assert_lt(w->r[i].worst_hijack_ns, 2 * SEC, "reader %d waited %llu ms", i,
			     (unsigned long long)(w->r[i].worst_hijack_ns / MS));

	/* busd frees no one else's slot and hands out none that is held. */
	cr_assert_eq(h->close_other, -ENOENT, "CLOSE_SUB of N's slot by the hostile: %d",
		     h->close_other);
	cr_assert_eq(h->close_g, -ENOENT, "CLOSE_SUB of G's slot by the hostile: %d", h->close_g);
	cr_assert_eq(h->reclaim_g, -ESTALE, "reclaiming G's slot: %d", h->reclaim_g);
	cr_assert_eq(h->reclaim_own, -ESTALE, "reclaiming its own slot under G's pid: %d",
		     h->reclaim_own);
	sl = slot_now(cons, w->n_slot);
	cr_assert_eq(atomic_load(&sl.owner), (uint32_t)w->n_pid, "N's slot now says owner %u",
		     atomic_load(&sl.owner));
	cr_assert_eq(bus_sub_attach(b, w->topic, NULL, &x), 0, "%s", bus_errmsg());
	xs = (uint32_t)(x->slot - x->seg.slots);
	cr_assert(xs != w->g_slot && xs != w->n_slot && xs != h->slot, "busd gave slot %u, which "
		  "G (%u), N (%u) or the hostile (%u) holds", xs, w->g_slot, w->n_slot, h->slot);
	cr_assert_eq(bus_sub_read(x, buf, sizeof(buf), &ev), 1, "%s", bus_errmsg());
	cr_assert_eq(ev.seq, 1);
	cr_assert_eq(t_check(ev.data, ev.len, w->seed, 1), 0);
	r = bus_sub_attach(b, w->topic, NULL, &x2);
	if (r == 0) {
		uint32_t x2s = (uint32_t)(x2->slot - x2->seg.slots);

		cr_assert(x2s != w->g_slot && x2s != w->n_slot && x2s != h->slot && x2s != xs,
			  "busd gave slot %u twice", x2s);
		bus_sub_close(x2);
	}
	cr_log_info("row 2: a second new consumer: %d (%s)", r, r ? bus_errmsg() : "attached");
	r = bus_stat(b, w->topic, &ti, NULL, 0);
	cr_assert_geq(r, 0, "%s", bus_errmsg());
	cr_log_info("row 2: bus_stat counts %d consumers (4 are attached: G, N, the hostile, "
		    "the new one)", r);
	bus_sub_close(x);
	timed_ping(b, &worst);

	/* A restart: busd adopts the slots as the garbage left them. */
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
	cr_assert_eq(t_busd_restart(&d, "--socket-mode", sock_mode, NULL), 0, "busd did not "
		     "restart over the garbage (stderr in %s)", d.err);
	b = connect_to(&d);
	timed_ping(b, &worst);
	check_healthy(&d);
	publish_and_read(w, pids, 1701);

	/* 3. The consumer header: new consumers are refused, busd is not. */
	atomic_store(&h->phase, H_HEADER);
	cr_assert_eq(wait_flag(&h->done, H_HEADER, pid_h, 10), 0, "hostile: %s", h->why);
	r = bus_sub_attach(b, w->topic, NULL, &x);
	cr_assert_lt(r, 0, "attached to a consumer area with a bad magic");
	cr_log_info("row 2: attach after the header garbage: %d (%s)", r, bus_errmsg());
	timed_ping(b, &worst);
	publish_and_read(w, pids, 1801);

	/* 4. The consumer area truncated under every mapping. */
	atomic_store(&h->phase, H_TRUNCATE);
	cr_assert_eq(wait_flag(&h->done, H_TRUNCATE, pid_h, 10), 0, "hostile: %s", h->why);
	cr_assert_eq(h->trunc_rc, 0, "ftruncate: %s", strerror(-h->trunc_rc));
	r = bus_stat(b, w->topic, &ti, NULL, 0);
	cr_log_info("row 2: bus_stat of the truncated topic: %d (%s)", r,
		    r < 0 ? bus_errmsg() : "");
	cr_assert(busd_alive(&d), "busd died reading a truncated consumer area (stderr in %s)",
		  d.err);
	err_says(&d, "a client truncated a shared-memory file");
	r = bus_sub_attach(b, w->topic, NULL, &x);
	cr_assert_lt(r, 0, "attached to a truncated consumer area");
	/* busd's cursor timer reads N's slot every second. */
	t_nap_us(1500000);
	timed_ping(b, &worst);
	check_healthy(&d);
	/* The producer may do the same to the segment; and the owner can still
	 * delete the wreck. */
	atomic_store(&w->ptrunc, 1);
	cr_assert_eq(wait_flag(&w->ptrunc_done, 1, pid_p, 10), 0, "the producer did not truncate");
	cr_assert_eq(w->ptrunc_rc, 0, "ftruncate of the segment: %s", strerror(-w->ptrunc_rc));
	r = bus_stat(b, w->topic, &ti, NULL, 0);
	cr_assert(busd_alive(&d), "busd died reading a truncated segment (stderr in %s)", d.err);
	cr_assert_eq(bus_delete(b, w->topic), 0, "%s", bus_errmsg());
	no_segment(&d, w->id, w->topic);
	timed_ping(b, &worst);
	check_healthy(&d);

	atomic_store(&w->quit, 1);
	for (int i = 0; i < 2; i++)
		st[i] = wait_exit(pids[i], 10);
	cr_log_info("row 2: after the truncation G exited %d, N exited %d, the producer %d "
		    "(128 + %d is SIGBUS)", st[0], st[1], wait_exit(pid_p, 10), SIGBUS);
	cr_assert_eq(wait_exit(pid_h, 10), 0, "hostile: %s", h->why);
	bus_disconnect(b);

	/* A busd that starts over the wreck adopts what it can and serves. */
	cr_assert_eq(t_busd_stop(&d), 0);
	cr_assert_eq(t_busd_restart(&d, "--socket-mode", sock_mode, NULL), 0, "busd did not "
		     "restart over a truncated consumer area (stderr in %s)", d.err);
	check_healthy(&d);
	b = connect_to(&d);
	r = bus_stat(b, w->topic, &ti, NULL, 0);
	cr_assert_eq(r, -ENOENT, "the deleted topic came back: %d", r);
	cr_log_info("row 2: worst ping %llu us", (unsigned long long)(worst / 1000));
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
}

/* ------------------------------------------------------------------------ */
/* Row 3: names                                                             */
/* ------------------------------------------------------------------------ */

/* Names that must never reach the file system, with the rule busd names. */
static const struct hostile_name {
	const char *s;
	size_t len;
	const char *rule;
} hnames[] = {
	{ "a/b", 3, "contains '/'" },
	{ "/etc/passwd", 11, "contains '/'" },
	{ "x/../../y", 9, "contains '/'" },
	{ "../x", 4, "starts with a dot" },
	{ "..", 2, "starts with a dot" },
	{ ".hidden", 7, "starts with a dot" },
	{ "x..", 3, "contains '..'" },
	{ "x@cons", 6, "contains '@'" },
	{ "a b", 3, "contains ' '" },
	{ "caf\xc3\xa9", 5, "byte 0xc3 at offset 3" },
	{ "\xff\xfe", 2, "byte 0xff at offset 0" },
	{ "tab\there", 8, "byte 0x09 at offset 3" },
	{ "bell\a", 5, "byte 0x07 at offset 4" },
	{ "del\x7f", 4, "byte 0x7f at offset 3" },
	{ "esc\x1b[2J", 7, "byte 0x1b at offset 3" },
	{ "nl\n", 3, "byte 0x0a at offset 2" },
	{ "", 0, "is empty" },
	/* Raw packets only: a C string cannot carry these. */
	{ "a\0b", 3, "byte 0x00 at offset 1" },
	{ "\0", 1, "byte 0x00 at offset 0" },
	{ "ok\0/../../etc", 13, "byte 0x00 at offset 2" },
};
#define N_HNAMES (sizeof(hnames) / sizeof(hnames[0]))

/* Every field of every request that carries a name. */
static const struct name_field {
	uint16_t op;
	size_t off;
	size_t size;
	uint32_t flags;         /* CREATE: topic flags */
	const char *what;       /* "topic" or "cursor" */
} nfields[] = {
	{ OP_CREATE, offsetof(struct req_create, topic), sizeof(struct req_create), 0, "topic" },
	{ OP_CREATE, offsetof(struct req_create, topic), sizeof(struct req_create),
	  BUS_TOPIC_DURABLE, "topic" },
	{ OP_DELETE, offsetof(struct req_topic, topic), sizeof(struct req_topic), 0, "topic" },
	{ OP_OPEN_PUB, offsetof(struct req_open, topic), sizeof(struct req_open), 0, "topic" },
	{ OP_OPEN_SUB, offsetof(struct req_open, topic), sizeof(struct req_open), 0, "topic" },
	{ OP_OPEN_SUB, offsetof(struct req_open, group), sizeof(struct req_open), 0, "cursor" },
	{ OP_CLOSE_PUB, offsetof(struct req_topic, topic), sizeof(struct req_topic), 0, "topic" },
	{ OP_CLOSE_SUB, offsetof(struct req_close_sub, topic), sizeof(struct req_close_sub), 0,
	  "topic" },
	{ OP_STAT, offsetof(struct req_topic, topic), sizeof(struct req_topic), 0, "topic" },
	{ OP_OPEN_LOG, offsetof(struct req_topic, topic), sizeof(struct req_topic), 0, "topic" },
};
#define N_NFIELDS (sizeof(nfields) / sizeof(nfields[0]))

/* A body for f's op naming the existing topic "ok", with name in field f. */
static void name_body(const struct name_field *f, uint8_t *body, const void *name, size_t len)
{
	memset(body, 0, 600);
	set_name((struct proto_name *)(body + offsetof(struct req_topic, topic)), "ok", 2);
	if (f->op == OP_OPEN_SUB || f->op == OP_OPEN_PUB)
		((struct req_open *)body)->slot = PROTO_NEW_SLOT;
	if (f->op == OP_CREATE)
		((struct req_create *)body)->flags = f->flags;
	set_name((struct proto_name *)(body + f->off), name, len);
}

/* A message busd sends (and logs) has no control bytes: a name cannot
 * smuggle terminal escapes into a client's output or busd's log. */
static int printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

Test(attack, row3_hostile_names_never_reach_the_file_system)
{
	struct bus_topic_opts dur = { .flags = BUS_TOPIC_DURABLE };
	char over[BUS_NAME_MAX + 2], *before, *after, msg[256], id[17], path[1400];
	struct bus_sub_opts so = { 0 };
	struct bus_log *l;
	struct bus_sub *s;
	struct bus_pub *p;
	struct t_busd d;
	struct bus *b;
	uint8_t body[600], *err;
	size_t errlen;
	uint32_t rid = 1;
	int fd, r, nfds, tried = 0;

	memset(over, 'a', BUS_NAME_MAX + 1);
	over[BUS_NAME_MAX + 1] = 0;
	cr_assert_eq(t_busd_start(&d, NULL), 0);
	bus_id_of(&d, id);
	b = connect_to(&d);
	cr_assert_eq(bus_create(b, "ok", &dur), 0, "%s", bus_errmsg());
	before = list_tree(t_dir());

	/* Through libbus: every call that takes a name, as topic and cursor. */
	for (size_t i = 0; i <= N_HNAMES; i++) {
		const char *n = i < N_HNAMES ? hnames[i].s : over;
		const char *rule = i < N_HNAMES ? hnames[i].rule : "129 bytes";
		size_t len = i < N_HNAMES ? hnames[i].len : strlen(over);
		int rc[8], calls = 7;

		if (strlen(n) != len)
			continue;  /* carries a NUL: raw packets below */
		rc[0] = bus_create(b, n, NULL);
		cr_assert(strstr(bus_errmsg(), rule), "bus_create(\"%s\"): \"%s\" does not say "
			  "\"%s\"", n, bus_errmsg(), rule);
		rc[1] = bus_create(b, n, &dur);
		rc[2] = bus_delete(b, n);
		rc[3] = bus_stat(b, n, NULL, NULL, 0);
		rc[4] = bus_pub_attach(b, n, &p);
		rc[5] = bus_sub_attach(b, n, NULL, &s);
		rc[6] = bus_log_attach(b, n, &l);
		if (len) {  /* an empty cursor name is an anonymous consumer */
			so.group = n;
			rc[calls++] = bus_sub_attach(b, "ok", &so, &s);
			cr_assert(strstr(bus_errmsg(), "cursor name"), "\"%s\"", bus_errmsg());
		}
		for (int k = 0; k < calls; k++)
			cr_assert_eq(rc[k], -EINVAL, "name \"%s\", call %d: %d (%s)", n, k, rc[k],
				     strerror(-rc[k]));
		tried += calls;
	}

	/* As raw packet bytes, in every field that carries a name: refused
	 * with the rule, no descriptor, and the connection stays usable. */
	fd = raw_open(&d);
	raw_hello(fd, rid++);
	for (size_t f = 0; f < N_NFIELDS; f++) {
		for (size_t i = 0; i < N_HNAMES; i++) {
			const struct hostile_name *hn = &hnames[i];
			char want[64];

			if (!hn->len && !strcmp(nfields[f].what, "cursor"))
				continue;  /* no cursor name: an anonymous consumer */
			name_body(&nfields[f], body, hn->s, hn->len);
			r = raw_try(fd, nfields[f].op, rid++, body, nfields[f].size, &nfds, msg,
				    sizeof(msg));
			snprintf(want, sizeof(want), "%s name", nfields[f].what);
			cr_assert_eq(r, -EINVAL, "op %u, %s name #%zu: %d (%s)", nfields[f].op,
				     nfields[f].what, i, r, msg);
			cr_assert(strstr(msg, want) && strstr(msg, hn->rule), "op %u, name #%zu: "
				  "'%s' does not say '%s' and '%s'", nfields[f].op, i, msg, want,
				  hn->rule);
			cr_assert(printable(msg), "op %u, name #%zu: the reply carries control "
				  "bytes", nfields[f].op, i);
			cr_assert_eq(nfds, 0);
			tried++;
		}
		raw_ping(fd, rid++);
	}
	/* Bytes after the length are not part of the name. */
	name_body(&nfields[0], body, "tj/../../x\0\xff", 12);
	((struct proto_name *)body)->len = 2;
	cr_assert_eq(raw_try(fd, OP_CREATE, rid++, body, sizeof(struct req_create), &nfds, msg,
			     sizeof(msg)), 0, "%s", msg);
	snprintf(path, sizeof(path), "%s/bus-%s.tj", d.shm, id);
	cr_assert_eq(access(path, F_OK), 0, "the topic is not called 'tj'");
	name_body(&nfields[2], body, "tj\0garbage", 10);
	((struct proto_name *)body)->len = 2;
	cr_assert_eq(raw_try(fd, OP_DELETE, rid++, body, sizeof(struct req_topic), &nfds, msg,
			     sizeof(msg)), 0, "%s", msg);
	close(fd);
	/* A length over 128 is malformed: refused, and the connection closed. */
	for (size_t f = 0; f < N_NFIELDS; f++) {
		static const uint16_t lens[] = { BUS_NAME_MAX + 1, 255, 4096, 65535 };

		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			uint8_t pkt[700];

			fd = raw_open(&d);
			raw_hello(fd, 1);
			name_body(&nfields[f], body, over, BUS_NAME_MAX);
			memcpy(body + nfields[f].off, &lens[i], 2);
			raw_send(fd, pkt, mk(pkt, nfields[f].op, 2, body, nfields[f].size));
			expect_reply(fd, nfields[f].op, 2, -EPROTO, "out of range");
			expect_closed(fd);
			tried++;
		}
	}

	/* Nothing was created, anywhere: same names in the whole test
	 * directory (bus, segments, state, logs) as before. */
	after = list_tree(t_dir());
	cr_assert_str_eq(after, before, "files appeared or vanished:\nbefore:\n%s\nafter:\n%s",
			 before, after);
	free(before);
	free(after);
	cr_assert_eq(bus_stat(b, "ok", NULL, NULL, 0), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_list(b, NULL, 0), 1);
	bus_disconnect(b);
	/* busd logged the refusals without a control byte of the names. */
	cr_assert_eq(t_file_read(d.err, &err, &errlen), 0);
	for (size_t i = 0; i < errlen; i++)
		cr_assert(err[i] == '\n' || (err[i] >= 0x20 && err[i] != 0x7f), "busd's log has "
			  "byte 0x%02x at %zu", err[i], i);
	free(err);
	check_healthy(&d);
	cr_log_info("row 3: %d hostile names refused", tried);
}

/* ------------------------------------------------------------------------ */
/* Row 4: planted files                                                     */
/* ------------------------------------------------------------------------ */

/* Run busd on d's directories (as t_busd does) where it must refuse to
 * start: its exit status (128 + 9 if it still ran after 5 s: killed). */
static int busd_refuses(const struct t_busd *d)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int fd = open(d->err, O_WRONLY | O_CREAT | O_APPEND, 0600);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0)
			dup2(fd, 2);
		unsetenv("NOTIFY_SOCKET");
		execl(t_busd_bin(), t_busd_bin(), "--bus", d->dir, "--shm", d->shm, "--state",
		      d->state, "--log-level", "debug", (char *)NULL);
		_exit(127);
	}
	t_adopt_pid(pid);
	return wait_exit(pid, 5);
}

Test(attack, row4_planted_symlinks_and_files_are_not_followed_or_truncated)
{
	struct bus_topic_opts dur = { .flags = BUS_TOPIC_DURABLE };
	struct bus_sub_opts named = { .group = "c" };
	struct snap v, vf, planted, copy[2];
	struct bus_pub *p;
	char victim[800], vdir[800], vfile[900], id[17], path[1400], p2[1000], real[PATH_MAX];
	char *vlist, *now, logs[800];
	const char *text = "planted by somebody else\n";
	struct t_busd d;
	struct bus_sub *s;
	struct bus *b;
	uint8_t *anchor;
	size_t alen;
	int r, links = 0;

	snprintf(victim, sizeof(victim), "%s/victim", t_dir());
	make_victim(victim, "precious: not a bus file\n", &v);
	snprintf(vdir, sizeof(vdir), "%s/victimdir", t_dir());
	cr_assert_eq(mkdir(vdir, 0700), 0);
	snprintf(vfile, sizeof(vfile), "%s/keep", vdir);
	make_victim(vfile, "a directory somebody else keeps\n", &vf);
	vlist = list_tree(vdir);

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	/* The bus id busd names its segments with: the anchor bus-ID in the
	 * segment directory holds the bus directory it stands for. */
	bus_id_of(&d, id);
	snprintf(path, sizeof(path), "%s/bus-%s", d.shm, id);
	cr_assert_eq(t_file_read(path, &anchor, &alen), 0, "no anchor %s", path);
	cr_assert_not_null(realpath(d.dir, real));
	cr_assert_eq(strncmp((char *)anchor, real, strlen(real)), 0, "anchor says %s", anchor);
	cr_assert_eq(anchor[strlen(real)], '\n');
	free(anchor);
	b = connect_to(&d);

	/* A segment or its consumer area: a symlink, or a file, where busd
	 * would create it. busd creates under temporary names and renames
	 * without replacing: the creation fails, nothing is followed. */
	for (int k = 0; k < 4; k++) {
		char topic[16];
		int cons = k & 1, link = !(k & 2);

		snprintf(topic, sizeof(topic), "s%d", k);
		snprintf(path, sizeof(path), "%s/bus-%s.%s%s", d.shm, id, topic,
			 cons ? CONS_SUFFIX : "");
		if (link) {
			cr_assert_eq(symlink(victim, path), 0);
		} else {
			cr_assert_eq(t_file_write(path, text, strlen(text)), 0);
			snap_take(&planted, path);
		}
		r = bus_create(b, topic, NULL);
		cr_assert_eq(r, -EEXIST, "create over a planted %s at %s: %d (%s)",
			     link ? "symlink" : "file", path, r, bus_errmsg());
		cr_assert(strstr(bus_errmsg(), "exists"), "%s", bus_errmsg());
		if (link) {
			still_link(path, victim);
		} else {
			snap_same(&planted, "after a create over it");
			snap_free(&planted);
		}
		cr_assert_eq(unlink(path), 0);
		no_segment(&d, id, topic);
		snap_same(&v, "after a create over a planted segment");
	}

	/* An existing topic whose segment was swapped for a symlink: busd
	 * refuses to open it for clients, and DELETE removes the link only. */
	cr_assert_eq(bus_create(b, "s5", NULL), 0, "%s", bus_errmsg());
	snprintf(path, sizeof(path), "%s/bus-%s.s5", d.shm, id);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(symlink(victim, path), 0);
	r = bus_pub_attach(b, "s5", &p);
	cr_assert_eq(r, -ELOOP, "attach a producer through a symlink: %d (%s)", r, bus_errmsg());
	r = bus_sub_attach(b, "s5", NULL, &s);
	cr_assert_eq(r, -ELOOP, "attach a consumer through a symlink: %d (%s)", r, bus_errmsg());
	cr_assert_eq(bus_delete(b, "s5"), 0, "%s", bus_errmsg());
	no_segment(&d, id, "s5");
	snap_same(&v, "after a topic's segment was swapped for a symlink");

	/* A durable topic's log directory: a symlink to a directory, a file. */
	snprintf(logs, sizeof(logs), "%s/log", d.state);
	cr_assert(mkdir(logs, 0700) == 0 || errno == EEXIST);
	snprintf(path, sizeof(path), "%s/d1", logs);
	cr_assert_eq(symlink(vdir, path), 0);
	r = bus_create(b, "d1", &dur);
	cr_assert_eq(r, -ELOOP, "create with a symlinked log directory: %d (%s)", r,
		     bus_errmsg());
	cr_assert(strstr(bus_errmsg(), "cannot create its log"), "%s", bus_errmsg());
	still_link(path, vdir);
	no_segment(&d, id, "d1");
	now = list_tree(vdir);
	cr_assert_str_eq(now, vlist, "busd wrote into the directory a symlink pointed to:\n%s",
			 now);
	free(now);
	snap_same(&vf, "after a create through a symlinked log directory");
	snprintf(path, sizeof(path), "%s/d2", logs);
	cr_assert_eq(t_file_write(path, text, strlen(text)), 0);
	snap_take(&planted, path);
	cr_assert_eq(bus_create(b, "d2", &dur), -ENOTDIR, "%s", bus_errmsg());
	snap_same(&planted, "a file where a log directory goes");
	snap_free(&planted);
	no_segment(&d, id, "d2");

	/* Inside a log directory that exists (busd's own, say after a
	 * crash): topic.conf, its temporary and the index are replaced by
	 * renames or unlinked first, never followed; the first segment is
	 * created exclusively, so a link there refuses the creation. */
	snprintf(p2, sizeof(p2), "%s/d3", logs);
	cr_assert_eq(mkdir(p2, 0700), 0);
	snprintf(path, sizeof(path), "%s/topic.conf", p2);
	cr_assert_eq(symlink(victim, path), 0);
	snprintf(path, sizeof(path), "%s/topic.conf.tmp", p2);
	cr_assert_eq(symlink(victim, path), 0);
	snprintf(path, sizeof(path), "%s/", p2);
	t_seg_name(path + strlen(path), sizeof(path) - strlen(path), 1);
	strcpy(path + strlen(path) - 4, ".idx");
	cr_assert_eq(symlink(victim, path), 0);
	cr_assert_eq(bus_create(b, "d3", &dur), 0, "%s", bus_errmsg());
	cr_assert(is_type(path, S_IFREG), "%s is not the index busd wrote", path);
	snprintf(path, sizeof(path), "%s/topic.conf", p2);
	cr_assert(is_type(path, S_IFREG), "%s is not the settings busd wrote", path);
	cr_assert_geq(t_file_count(path, "format=1"), 1);
	snprintf(path, sizeof(path), "%s/topic.conf.tmp", p2);
	cr_assert(!is_type(path, S_IFLNK), "%s", path);
	snap_same(&v, "after a create over planted topic.conf and index links");
	snprintf(p2, sizeof(p2), "%s/d4", logs);
	cr_assert_eq(mkdir(p2, 0700), 0);
	snprintf(path, sizeof(path), "%s/", p2);
	t_seg_name(path + strlen(path), sizeof(path) - strlen(path), 1);
	cr_assert_eq(symlink(victim, path), 0);
	r = bus_create(b, "d4", &dur);
	cr_assert_eq(r, -EEXIST, "create over a planted first log segment: %d (%s)", r,
		     bus_errmsg());
	still_link(path, victim);
	no_segment(&d, id, "d4");
	snap_same(&v, "after a create over a planted log segment");

	/* The old temporary names of the next creations (busd's pid and a
	 * counter): O_EXCL refuses them, nothing is followed, and the names
	 * now carry 64 random bits, so the creation is not stopped either. */
	for (int n = 0; n < 64; n++) {
		snprintf(path, sizeof(path), "%s/bus-%s.s6.tmp.%d.%d", d.shm, id, (int)d.pid, n);
		cr_assert_eq(symlink(victim, path), 0);
		snprintf(path, sizeof(path), "%s/bus-%s.s6" CONS_SUFFIX ".tmp.%d.%d", d.shm, id,
			 (int)d.pid, n);
		cr_assert_eq(symlink(victim, path), 0);
		links += 2;
	}
	r = bus_create(b, "s6", NULL);
	cr_assert_eq(r, 0, "create with predictable temporary names planted: %d (%s)", r,
		     bus_errmsg());
	snprintf(path, sizeof(path), "bus-%s.s6", id);
	cr_assert_eq(t_count_files(d.shm, path), links + 2);
	snap_same(&v, "after a create over planted temporary names");

	/* busd's own files, at start. */
	cr_assert_eq(bus_sub_attach(b, "d3", &named, &s), 0, "%s", bus_errmsg());
	bus_sub_close(s);
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
	/* busd.sock: a symlink or a file there is replaced by the socket
	 * (the bus directory is busd's, and busd holds the lock); a
	 * directory stops busd with a message. */
	snprintf(path, sizeof(path), "%s/" PROTO_SOCKET, d.dir);
	cr_assert_eq(symlink(victim, path), 0);
	cr_assert_eq(t_busd_restart(&d, NULL), 0);
	cr_assert(is_type(path, S_IFSOCK), "busd.sock is not a socket");
	snap_same(&v, "after busd started over a symlinked busd.sock");
	check_healthy(&d);
	cr_assert_eq(t_busd_stop(&d), 0);
	cr_assert_eq(t_file_write(path, text, strlen(text)), 0);
	cr_assert_eq(t_busd_restart(&d, NULL), 0);
	cr_assert(is_type(path, S_IFSOCK), "busd.sock is not a socket");
	cr_assert_eq(t_busd_stop(&d), 0);
	cr_assert_eq(mkdir(path, 0700), 0);
	cr_assert_eq(busd_refuses(&d), 1, "busd started with a directory at %s", path);
	err_says(&d, "cannot bind");
	cr_assert_eq(rmdir(path), 0, "busd removed what was in the directory");
	/* busd.lock: a symlink stops busd, and the file it points to is
	 * neither truncated nor given busd's pid. */
	snprintf(path, sizeof(path), "%s/" PROTO_LOCK, d.dir);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(symlink(victim, path), 0);
	cr_assert_eq(busd_refuses(&d), 1, "busd started with a symlinked lock");
	err_says(&d, PROTO_LOCK ": Too many levels of symbolic links");
	still_link(path, victim);
	snap_same(&v, "after busd refused a symlinked busd.lock");
	cr_assert_eq(unlink(path), 0);
	/* The anchor, busd.log, the cursor file's temporary: replaced by a
	 * rename, or refused, never followed. */
	snprintf(path, sizeof(path), "%s/bus-%s", d.shm, id);
	cr_assert(is_type(path, S_IFREG), "no anchor after a clean stop with segments left");
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(symlink(victim, path), 0);
	snprintf(p2, sizeof(p2), "%s/busd.log", d.state);
	cr_assert_eq(unlink(p2), 0);
	cr_assert_eq(symlink(victim, p2), 0);
	snprintf(vfile, sizeof(vfile), "%s/cursors.tmp", d.state);
	cr_assert_eq(symlink(victim, vfile), 0);
	/* And segments planted for adoption: a symlink to a copy of a real
	 * segment, and a file that is no segment. */
	{
		char src[1400], dst[1000];

		b = NULL;
		for (int k = 0; k < 2; k++) {
			uint8_t *buf;
			size_t len;

			snprintf(src, sizeof(src), "%s/bus-%s.d3%s", d.shm, id,
				 k ? CONS_SUFFIX : "");
			snprintf(dst, sizeof(dst), "%s/copy%d", t_dir(), k);
			cr_assert_eq(t_file_read(src, &buf, &len), 0);
			cr_assert_eq(t_file_write(dst, buf, len), 0);
			free(buf);
			snap_take(&copy[k], dst);
			snprintf(src, sizeof(src), "%s/bus-%s.adopt%s", d.shm, id,
				 k ? CONS_SUFFIX : "");
			cr_assert_eq(symlink(dst, src), 0);
		}
		snprintf(src, sizeof(src), "%s/bus-%s.junk", d.shm, id);
		cr_assert_eq(t_file_write(src, text, strlen(text)), 0);
		snap_take(&planted, src);
	}
	cr_assert_eq(t_busd_restart(&d, NULL), 0, "busd did not start (see %s)", d.err);
	cr_assert(is_type(path, S_IFREG), "the anchor is not busd's file");
	cr_assert_geq(t_file_count(path, real), 1, "the anchor does not name the bus");
	still_link(p2, victim);
	err_says(&d, "busd.log: Too many levels of symbolic links");
	err_says(&d, "not adopting");
	b = connect_to(&d);
	cr_assert_eq(bus_stat(b, "adopt", NULL, NULL, 0), -ENOENT, "a symlinked segment was "
		     "adopted");
	cr_assert_eq(bus_stat(b, "junk", NULL, NULL, 0), -ENOENT);
	snap_same(&planted, "a planted file that is no segment");
	snap_free(&planted);
	/* A new named cursor is persisted through cursors.tmp: refused. */
	named.group = "c2";
	cr_assert_eq(bus_sub_attach(b, "d3", &named, &s), 0, "%s", bus_errmsg());
	bus_sub_close(s);
	err_says(&d, "cannot write cursors");
	still_link(vfile, victim);
	bus_disconnect(b);
	check_healthy(&d);
	cr_assert_eq(t_busd_stop(&d), 0);
	for (int k = 0; k < 2; k++) {
		snap_same(&copy[k], "a segment copy a planted symlink pointed to");
		snap_free(&copy[k]);
	}
	snap_same(&v, "after busd started over planted anchor, log and cursor links");
	snap_same(&vf, "at the end");
	snap_free(&v);
	snap_free(&vf);
	free(vlist);
}

/* ------------------------------------------------------------------------ */
/* Row 5: the control socket                                                */
/* ------------------------------------------------------------------------ */

/* A refusal: an error reply with status want and a message containing
 * needle (NULL: no reply at all), then the hangup. Closes fd. */
static void expect_refusal(int fd, int want, const char *needle)
{
	struct rx *r = rx_new();
	ssize_t n;

	if (needle) {
		n = raw_recv(fd, r);
		cr_assert_geq(n, (ssize_t)HDR, "no error reply (recv = %zd: %s), expected %d (%s)",
			      n, n < 0 ? strerror((int)-n) : "hangup", want, needle);
		cr_assert_eq(r->h.magic, PROTO_MAGIC);
		cr_assert_eq(r->h.status, want, "status %d (%s), expected %d", r->h.status,
			     reply_msg(r), want);
		cr_assert(strstr(reply_msg(r), needle), "'%s' does not say '%s'", reply_msg(r),
			  needle);
		cr_assert(printable(reply_msg(r)), "control bytes in '%s'", reply_msg(r));
		cr_assert_eq(r->nfds, 0);
	}
	free(r);
	expect_closed(fd);
}

/* One hostile packet on a fresh connection (after a HELLO if hello). */
static void hostile_packet(const struct t_busd *d, struct bus *good, int hello,
			   const void *pkt, size_t len, int want, const char *needle)
{
	int fd = raw_open(d);

	if (hello)
		raw_hello(fd, 1);
	raw_send(fd, pkt, len);
	expect_refusal(fd, want, needle);
	timed_ping(good, NULL);
}

/* The flood's second front: connections opened, fed garbage and dropped,
 * as fast as they go, for `ms`. */
static int churn_main(void *arg)
{
	const char *dir = arg;
	uint64_t end = t_now_ns() + 1500 * MS;
	uint8_t junk[256];
	unsigned n = 0;

	while (t_now_ns() < end) {
		int fd = raw_connect(dir, SOCK_SEQPACKET);

		if (fd < 0)
			continue;
		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (uint8_t)t_rand();
		send(fd, junk, 1 + t_rand() % sizeof(junk), MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		n++;
	}
	return n > 100 ? 0 : t_fail("churn: only %u connections", n);
}

/* Start busd on d's directories as t_busd_start() does, but with
 * RLIMIT_NOFILE set to nofile (soft and hard) before it runs: busd raises
 * its soft limit to the hard one at start, and its multishot accept takes
 * the limit in force when it is armed, so a limit set from outside later
 * (prlimit) would not reach it. 0 once busd said READY=1. */
static int start_busd_nofile(struct t_busd *d, const char *tag, rlim_t nofile)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { 10, 0 };
	char notify[700], buf[256];
	int ns;
	pid_t pid;

	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "%s/%s.bus", t_dir(), tag);
	snprintf(d->shm, sizeof(d->shm), "%s/%s.shm", t_dir(), tag);
	snprintf(d->state, sizeof(d->state), "%s/%s.state", t_dir(), tag);
	snprintf(d->err, sizeof(d->err), "%s/%s.err", t_dir(), tag);
	snprintf(notify, sizeof(notify), "%s/%s.notify", t_dir(), tag);
	cr_assert_eq(mkdir(d->shm, 0700), 0);
	cr_assert_lt(strlen(notify), sizeof(sa.sun_path));
	memcpy(sa.sun_path, notify, strlen(notify) + 1);
	ns = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert(ns >= 0 && bind(ns, (struct sockaddr *)&sa, sizeof(sa)) == 0, "notify socket");
	setsockopt(ns, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct rlimit rl = { nofile, nofile };
		int fd = open(d->err, O_WRONLY | O_CREAT | O_APPEND, 0600);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0)
			dup2(fd, 2);
		setenv("NOTIFY_SOCKET", notify, 1);
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(126);
		execl(t_busd_bin(), t_busd_bin(), "--bus", d->dir, "--shm", d->shm, "--state",
		      d->state, "--log-level", "debug", (char *)NULL);
		_exit(127);
	}
	t_adopt_pid(pid);
	d->pid = pid;
	for (;;) {
		ssize_t n = recv(ns, buf, sizeof(buf) - 1, 0);

		if (n <= 0)
			break;
		buf[n] = 0;
		if (strstr(buf, "READY=1"))
			break;
	}
	close(ns);
	unlink(notify);
	return busd_alive(d) ? 0 : -1;
}

#define LOWFD 40                 /* the descriptor limit of the exhaustion's busd */
#define LOWFD_S "40"

/* Is HELLO on fd answered within ms? 1 yes, 0 no. */
static int hello_answered(int fd, int ms, int send_it)
{
	struct req_hello q = { 1, 1, 0, 0 };
	struct rx *r = rx_new();
	struct pollfd pf = { fd, POLLIN, 0 };
	uint8_t buf[64];
	int ok = 0;

	if (send_it)
		raw_send(fd, buf, mk(buf, OP_HELLO, 1, &q, sizeof(q)));
	if (poll(&pf, 1, ms) == 1 && raw_recv(fd, r) >= (ssize_t)HDR) {
		cr_assert_eq(r->h.op, OP_HELLO);
		cr_assert_eq(r->h.status, 0, "HELLO refused: %s", reply_msg(r));
		ok = 1;
	}
	free(r);
	return ok;
}

Test(attack, row5_hostile_packets_floods_and_descriptor_exhaustion_leave_busd_serving)
{
	static const char http[] = "GET / HTTP/1.0\r\n\r\n";
	struct req_hello hv = { 2, 9, 0, 0 };
	uint8_t pkt[1200], *big = malloc(PROTO_MSG_MAX);
	uint64_t worst = 0, end, t0;
	struct t_busd d;
	struct bus_sub *s;
	struct bus *gc, *late, *gc2;
	struct bus_sub *s2;
	uint32_t slot2;
	int fd, fl[16], conn[64], pend[8], answered[8], base, now, naccepted = 0, npend = 0, r;
	pid_t churn;

	cr_assert_not_null(big);
	cr_assert_eq(t_busd_start(&d, NULL), 0);
	gc = connect_to(&d);
	cr_assert_eq(bus_create(gc, "exh", NULL), 0, "%s", bus_errmsg());

	/* Hostile packets, each on its own connection: refused with a reason,
	 * then hung up on. */
	hostile_packet(&d, gc, 0, http, sizeof(http) - 1, -EPROTO, "magic 0x20544547");
	memset(pkt, 0xff, HDR);
	hostile_packet(&d, gc, 0, pkt, HDR, -EPROTO, "magic 0xffffffff");
	mk(pkt, OP_HELLO, 1, &hv, sizeof(hv));
	hostile_packet(&d, gc, 0, pkt, 7, -EPROTO, "truncated request (7 bytes");
	hostile_packet(&d, gc, 0, pkt, HDR + 8, -EPROTO, "body of 8 bytes, expected 16");
	hostile_packet(&d, gc, 0, pkt, HDR + sizeof(hv), -EPROTO, "versions 2-9");
	for (size_t i = 0; i < PROTO_MSG_MAX; i++)
		big[i] = (uint8_t)t_rand();
	mk(big, OP_PING, 1, NULL, 0);
	hostile_packet(&d, gc, 1, big, 1025, -EMSGSIZE, "larger than 1024 bytes");
	hostile_packet(&d, gc, 0, big, PROTO_MSG_MAX, -EMSGSIZE, "larger than 1024 bytes");
	mk(pkt, OP_PING, 2, NULL, 0);
	((struct proto_hdr *)pkt)->version = 2;
	hostile_packet(&d, gc, 1, pkt, HDR, -EPROTO, "protocol version 2, this busd speaks 1");
	mk(pkt, OP_PING, 3, NULL, 0);
	((struct proto_hdr *)pkt)->status = -1;
	hostile_packet(&d, gc, 1, pkt, HDR, -EPROTO, "status 0");
	memset(pkt, 0, sizeof(pkt));
	mk(pkt, OP_OPEN_SUB, 4, pkt + HDR, sizeof(struct req_create));
	hostile_packet(&d, gc, 1, pkt, HDR + sizeof(struct req_create), -EPROTO, "body of");
	mk(pkt, 0xffff, 5, NULL, 0);
	hostile_packet(&d, gc, 1, pkt, HDR, -EINVAL, "unknown operation 65535");
	hostile_packet(&d, gc, 1, pkt, 0, 0, NULL);  /* empty: end of stream, no reply */
	/* Random bytes of random sizes: always refused (a valid magic is a 1 in
	 * 2^32 chance), never served. */
	for (int i = 0; i < 100; i++) {
		size_t len = 1 + t_rand() % 1100;
		struct rx *rr = rx_new();
		ssize_t n;

		for (size_t k = 0; k < len; k++)
			pkt[k] = (uint8_t)t_rand();
		fd = raw_open(&d);
		raw_send(fd, pkt, len);
		n = raw_recv(fd, rr);
		cr_assert(n == 0 || (n >= (ssize_t)HDR && rr->h.status < 0 && rr->nfds == 0),
			  "random packet %d (%zu bytes): recv %zd, status %d", i, len, n,
			  rr->h.status);
		free(rr);
		expect_closed(fd);
	}
	/* Other socket types do not even connect. */
	r = raw_connect(d.dir, SOCK_STREAM);
	cr_assert_lt(r, 0, "a SOCK_STREAM connected to busd");
	timed_ping(gc, &worst);

	/* A flood: 16 connections fill their socket buffers with requests and
	 * never read a reply, while a child opens, spams and drops
	 * connections; a well-behaved client is served all along. */
	base = count_fds(d.pid);
	for (int i = 0; i < 16; i++) {
		uint32_t id = 1;

		fl[i] = raw_open(&d);
		raw_hello(fl[i], id++);
		cr_assert_eq(fcntl(fl[i], F_SETFL, O_NONBLOCK), 0);
		while (send(fl[i], pkt, mk(pkt, OP_PING, id, NULL, 0), MSG_NOSIGNAL) ==
		       (ssize_t)HDR)
			id++;
		cr_assert(errno == EAGAIN, "flood send: %s", strerror(errno));
	}
	churn = t_fork(churn_main, d.dir);
	end = t_now_ns() + 1200 * MS;
	for (int i = 0; t_now_ns() < end || i < 50; i++)
		timed_ping(gc, &worst);
	check_healthy(&d);
	cr_assert_eq(wait_exit(churn, 10), 0, "the churning child failed");
	for (int i = 0; i < 16; i++)
		close(fl[i]);
	end = t_now_ns() + 2 * SEC;
	while ((now = count_fds(d.pid)) > base && t_now_ns() < end)
		t_nap_us(10000);
	cr_assert_leq(now, base, "busd had %d descriptors before the flood, %d after", base, now);
	cr_log_info("row 5: worst ping during the flood %llu us",
		    (unsigned long long)(worst / 1000));

	check_healthy(&d);
	bus_disconnect(gc);
	cr_assert_eq(t_busd_stop(&d), 0);

	/* Out of descriptors: a busd whose limit is a little above what it
	 * needs to start, then connections until it cannot accept one. */
	cr_assert_eq(start_busd_nofile(&d, "lowfd", LOWFD), 0, "busd with " LOWFD_S " descriptors "
		     "did not start (see its stderr)");
	gc = connect_to(&d);
	cr_assert_eq(bus_create(gc, "exh", NULL), 0, "%s", bus_errmsg());
	gc2 = connect_to(&d);
	cr_assert_eq(bus_sub_attach(gc2, "exh", NULL, &s2), 0, "%s", bus_errmsg());
	base = count_fds(d.pid);
	/* Every connection is served until busd cannot accept one: it says
	 * so, and the connection (which the kernel completed) waits. */
	for (naccepted = 0;; naccepted++) {
		int c;

		cr_assert_lt(naccepted, 64, "busd has %d descriptors after 64 connections",
			     count_fds(d.pid));
		c = raw_open(&d);
		if (hello_answered(c, 300, 1)) {
			conn[naccepted] = c;
			continue;
		}
		if (t_file_count(d.err, "accept: Too many open files") > 0) {
			pend[npend] = c;
			answered[npend++] = 0;
			break;
		}
		cr_assert_eq(hello_answered(c, 3000, 0), 1, "connection %d neither served nor "
			     "refused for want of descriptors (%d in use)", naccepted,
			     count_fds(d.pid));
		conn[naccepted] = c;
	}
	cr_assert_geq(naccepted, 16, "busd ran out after %d connections", naccepted);
	/* A consumer's connection closes while busd has no descriptor to spare
	 * (bus_disconnect() with the consumer still open: a broken connection
	 * that the library would re-establish). Its process runs: the slot is
	 * still its own, whether busd can watch the process or not. */
	slot2 = (uint32_t)(s2->slot - s2->seg.slots);
	bus_disconnect(gc2);
	cr_assert_geq(t_file_wait_count(d.err, "of 'exh' (slot", 1, 3000), 1, "busd did not see "
		      "the consumer's connection close (see %s)", d.err);
	cr_assert_eq(atomic_load(&s2->slot->owner), (uint32_t)getpid(), "busd freed the slot of a "
		     "live consumer because it could not open a pidfd (owner now %u)",
		     atomic_load(&s2->slot->owner));
	/* Meanwhile: the connected client is served; what needs a
	 * descriptor is refused with a reason, not a crash. (ThreadSanitizer's
	 * runtime opens and closes files of its own in busd, which frees a
	 * descriptor now and then: there, an open may get through.) */
	timed_ping(gc, &worst);
	r = bus_sub_attach(gc, "exh", NULL, &s);
	if (TSAN && r == 0) {
		bus_sub_close(s);
	} else {
		cr_assert_lt(r, 0, "busd opened a segment with no descriptor left");
		cr_assert(strstr(bus_errmsg(), "Too many open files") || strstr(bus_errmsg(),
			  "RLIMIT_NOFILE"), "%s", bus_errmsg());
	}
	timed_ping(gc, &worst);
	while (npend < 5) {
		pend[npend] = raw_open(&d);
		answered[npend] = hello_answered(pend[npend], 50, 1);
		cr_assert(TSAN || !answered[npend], "accepted while out of descriptors");
		npend++;
	}
	/* Some connections go: busd accepts again, the waiting ones first. */
	for (int i = 0; i < 16; i++)
		close(conn[--naccepted]);
	t0 = t_now_ns();
	for (int i = 0; i < npend; i++)
		cr_assert(answered[i] || hello_answered(pend[i], 3000, 0), "pending connection %d "
			  "not served 3 s after descriptors were freed", i);
	t0 = t_now_ns() - t0;
	r = bus_connect(d.dir, &late);
	cr_assert_eq(r, 0, "a new client after the exhaustion: %d (%s)", r, bus_errmsg());
	timed_ping(late, &worst);
	cr_assert_eq(bus_sub_attach(late, "exh", NULL, &s), 0, "%s", bus_errmsg());
	cr_assert_neq((uint32_t)(s->slot - s->seg.slots), slot2, "busd gave slot %u, which a live "
		      "consumer holds, to a new one", slot2);
	bus_sub_close(s);
	bus_sub_close(s2);
	cr_log_info("row 5: %d connections (busd at %d descriptors of " LOWFD_S ") exhausted "
		    "it (it logged %d failed accepts); the %d waiting were served %llu ms after 16 "
		    "closed", naccepted + 16, base,
		    t_file_count(d.err, "accept: Too many open files"), npend,
		    (unsigned long long)(t0 / MS));
	bus_disconnect(late);
	check_healthy(&d);
	for (int i = 0; i < npend; i++)
		close(pend[i]);
	while (naccepted > 0)
		close(conn[--naccepted]);
	timed_ping(gc, &worst);
	bus_disconnect(gc);
	check_healthy(&d);
	free(big);
	cr_assert_eq(t_busd_stop(&d), 0);
}
