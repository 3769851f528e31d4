/* SPDX-License-Identifier: MIT */
/*
 * t_cli.h — running the `bus` command from a test (prefix none: the helpers
 * are static, for test_cli*.c only; include after criterion.h).
 *
 *   run(&o, how, argv)   fork + exec, stdin from a buffer (else /dev/null),
 *                        stdout and stderr captured whole (into files, so
 *                        that a large output never blocks), exit status
 *                        (128 + signal when killed, -1 after a timeout)
 *   BUS(&o, &d, ...)     run T_BUILD_DIR/bin/bus --bus d.dir ...
 *   bg_start/bg_stop     a command in the background (tail -f, top)
 *   expect_json, jget... a strict JSON reader: validates a whole document
 *                        (balanced, quoted, escaped, numbers by the grammar)
 *                        and reads members by key
 *
 * Every child dies with the test (PR_SET_PDEATHSIG); background ones are
 * also registered for t_fini(). Children never see the caller's
 * BUS_ADDRESS unless a test sets one. Suites use cli_fini as .fini: t_fini()
 * plus the outputs a failed assertion left unfreed (for LeakSanitizer).
 */
#ifndef T_CLI_H
#define T_CLI_H

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t_busd.h"
#include "t_util.h"

#ifndef T_BUILD_DIR
#define T_BUILD_DIR "build"
#endif
#define BUS_BIN T_BUILD_DIR "/bin/bus"

#define T_CLI_UNUSED __attribute__((unused))

struct out {
	int status;                /* exit code; 128 + signal; -1 timed out */
	char *out, *err;           /* NUL-terminated (may hold NULs: see *_len) */
	size_t out_len, err_len;
	char cmd[1024];            /* the command line, for messages */
};

struct how {
	const void *in;            /* standard input (NULL: /dev/null) */
	size_t in_len;
	const char *bus_address;   /* BUS_ADDRESS for the child */
	unsigned uid;              /* run as this uid and gid (0: as we are) */
	unsigned timeout_ms;       /* 0: 60 s */
	int in_fd;                 /* > 0: this descriptor is standard input */
};

#define ARGV(...) ((const char *[]){ __VA_ARGS__, NULL })
#define RUN(o, how, ...) run((o), (how), ARGV(__VA_ARGS__))
#define BUS(o, d, ...) run((o), NULL, ARGV(BUS_BIN, "--bus", (d)->dir, __VA_ARGS__))
#define BUS_IN(o, d, data, len, ...) \
	run((o), &(struct how){ .in = (data), .in_len = (len) }, \
	    ARGV(BUS_BIN, "--bus", (d)->dir, __VA_ARGS__))

static T_CLI_UNUSED char *slurp(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	size_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*len = 0;
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return calloc(1, 1);
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		abort();
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);

		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = 0;
	*len = n;
	return buf;
}

static T_CLI_UNUSED void describe(char *buf, size_t size, const char *const *argv)
{
	size_t n = 0;

	buf[0] = 0;
	for (int i = 0; argv[i] && n < size; i++) {
		const char *a = argv[i];

		if (i == 0 && strrchr(a, '/'))
			a = strrchr(a, '/') + 1;
		n += (size_t)snprintf(buf + n, size - n, i ? " %s" : "%s", a);
	}
}

/* The exec'd child: never returns. */
static T_CLI_UNUSED void child_exec(const struct how *h, int in, int out, int err,
				    const char *const *argv)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	dup2(in, 0);
	dup2(out, 1);
	dup2(err, 2);
	unsetenv("BUS_ADDRESS");
	if (h && h->bus_address)
		setenv("BUS_ADDRESS", h->bus_address, 1);
	if (h && h->uid) {
		if (setgroups(0, NULL) < 0 || setgid(h->uid) < 0 || setuid(h->uid) < 0) {
			dprintf(2, "t_cli: cannot become uid %u: %s\n", h->uid, strerror(errno));
			_exit(126);
		}
		prctl(PR_SET_PDEATHSIG, SIGKILL);  /* cleared by the credential change */
	}
	execv(argv[0], (char *const *)argv);
	dprintf(2, "t_cli: exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static unsigned t_cli_seq;

/* Outputs not yet done(): a failed assertion leaves the test without
 * freeing them, and LeakSanitizer would blame the test. cli_fini() (the
 * suites' .fini) frees them. */
static char *t_cli_live[64];

static void t_cli_keep(char *p)
{
	for (size_t i = 0; i < sizeof(t_cli_live) / sizeof(t_cli_live[0]); i++) {
		if (!t_cli_live[i]) {
			t_cli_live[i] = p;
			return;
		}
	}
}

static void t_cli_drop(char *p)
{
	for (size_t i = 0; p && i < sizeof(t_cli_live) / sizeof(t_cli_live[0]); i++)
		if (t_cli_live[i] == p)
			t_cli_live[i] = NULL;
	free(p);
}

/* t_fini(), and the outputs a failed test did not free. */
static T_CLI_UNUSED void cli_fini(void)
{
	for (size_t i = 0; i < sizeof(t_cli_live) / sizeof(t_cli_live[0]); i++) {
		free(t_cli_live[i]);
		t_cli_live[i] = NULL;
	}
	t_fini();
}

static T_CLI_UNUSED void run(struct out *o, const struct how *h, const char *const *argv)
{
	char pin[700], pout[700], perr[700];
	unsigned timeout = h && h->timeout_ms ? h->timeout_ms : 60000, seq = t_cli_seq++;
	uint64_t end;
	int in, out, err, st;
	pid_t pid;

	memset(o, 0, sizeof(*o));
	describe(o->cmd, sizeof(o->cmd), argv);
	snprintf(pin, sizeof(pin), "%s/cli%u.in", t_dir(), seq);
	snprintf(pout, sizeof(pout), "%s/cli%u.out", t_dir(), seq);
	snprintf(perr, sizeof(perr), "%s/cli%u.err", t_dir(), seq);
	if (h && h->in_fd > 0) {
		in = dup(h->in_fd);
	} else if (h && h->in) {
		in = open(pin, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		cr_assert_geq(in, 0, "%s: %s", pin, strerror(errno));
		cr_assert_eq(write(in, h->in, h->in_len), (ssize_t)h->in_len);
		lseek(in, 0, SEEK_SET);
		unlink(pin);
	} else {
		in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	out = open(pout, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	err = open(perr, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert(in >= 0 && out >= 0 && err >= 0, "%s: %s", o->cmd, strerror(errno));
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0)
		child_exec(h, in, out, err, argv);
	close(in);
	close(out);
	close(err);
	end = t_now_ns() + (uint64_t)timeout * 1000000ull;
	o->status = -1;
	for (unsigned nap = 100;; nap = nap < 20000 ? nap * 2 : nap) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid) {
			o->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			break;
		}
		if (r < 0 && errno != EINTR)
			break;
		if (t_now_ns() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			break;
		}
		t_nap_us(nap);
	}
	o->out = slurp(pout, &o->out_len);
	o->err = slurp(perr, &o->err_len);
	t_cli_keep(o->out);
	t_cli_keep(o->err);
	unlink(pout);
	unlink(perr);
}

static T_CLI_UNUSED void done(struct out *o)
{
	t_cli_drop(o->out);
	t_cli_drop(o->err);
	o->out = o->err = NULL;
}

#define expect_exit(o, code) \
	cr_assert_eq((o)->status, (code), "%s: exit %d, expected %d%s\nstdout: %.1500s\n" \
		     "stderr: %.1500s", (o)->cmd, (o)->status, (code), \
		     (o)->status == -1 ? " (timed out)" : "", (o)->out, (o)->err)

static T_CLI_UNUSED int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Split s in place at newlines; up to max lines; returns the number of
 * lines (a last line without a newline counts). */
static T_CLI_UNUSED int split_lines(char *s, char **lines, int max)
{
	int n = 0;

	while (*s) {
		char *e = strchr(s, '\n');

		if (n < max)
			lines[n] = s;
		n++;
		if (!e)
			break;
		*e = 0;
		s = e + 1;
	}
	return n;
}

static T_CLI_UNUSED void start_busd(struct t_busd *d)
{
	int r = t_busd_start(d, NULL);

	cr_assert_eq(r, 0, "busd did not start (%d); its stderr is %s", r, d->err);
}

/* Let others reach path: o+x on every directory on the way that lacks it. */
static T_CLI_UNUSED void make_traversable(const char *path)
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
				cr_assert_eq(chmod(p, (st.st_mode & 07777) | 0011), 0, "chmod %s", p);
			*c = keep;
			if (!keep)
				break;
		}
	}
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                     */
/* ------------------------------------------------------------------------ */

static const char *js_value(const char *p, int depth);

static T_CLI_UNUSED const char *js_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* Each returns the end of what it read, or NULL when it is not JSON. */
static const char *js_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	for (;;) {
		unsigned char c = (unsigned char)*p;

		if (c == '"')
			return p + 1;
		if (c < 0x20)  /* control characters (and the end) must be escaped */
			return NULL;
		if (c == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!isxdigit((unsigned char)p[i]))
						return NULL;
				p += 4;
			} else if (!*p || !strchr("\"\\/bfnrt", *p)) {
				return NULL;
			}
		}
		p++;
	}
}

static const char *js_number(const char *p)
{
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (isdigit((unsigned char)*p))
			p++;
	else
		return NULL;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return NULL;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!isdigit((unsigned char)*p))
			return NULL;
		while (isdigit((unsigned char)*p))
			p++;
	}
	return p;
}

static const char *js_value(const char *p, int depth)
{
	p = js_ws(p);
	if (depth > 64)
		return NULL;
	switch (*p) {
	case '"':
		return js_string(p);
	case '{':
		p = js_ws(p + 1);
		if (*p == '}')
			return p + 1;
		for (;;) {
			if (!(p = js_string(js_ws(p))))
				return NULL;
			p = js_ws(p);
			if (*p++ != ':')
				return NULL;
			if (!(p = js_value(p, depth + 1)))
				return NULL;
			p = js_ws(p);
			if (*p == '}')
				return p + 1;
			if (*p++ != ',')
				return NULL;
		}
	case '[':
		p = js_ws(p + 1);
		if (*p == ']')
			return p + 1;
		for (;;) {
			if (!(p = js_value(p, depth + 1)))
				return NULL;
			p = js_ws(p);
			if (*p == ']')
				return p + 1;
			if (*p++ != ',')
				return NULL;
		}
	case 't':
		return strncmp(p, "true", 4) ? NULL : p + 4;
	case 'f':
		return strncmp(p, "false", 5) ? NULL : p + 5;
	case 'n':
		return strncmp(p, "null", 4) ? NULL : p + 4;
	default:
		return js_number(p);
	}
}

/* A whole document: one value, nothing after it but white space. */
static T_CLI_UNUSED int json_valid(const char *s)
{
	const char *e = js_value(s, 0);

	return e && !*js_ws(e);
}

#define expect_json(s) cr_assert(json_valid(s), "not valid JSON: %.2000s", (s))

/* The value of member key of the object at obj (JSON already validated),
 * or NULL. */
static T_CLI_UNUSED const char *jget(const char *obj, const char *key)
{
	const char *p;
	size_t n = strlen(key);

	if (!obj || *(obj = js_ws(obj)) != '{')
		return NULL;
	p = js_ws(obj + 1);
	if (*p == '}')
		return NULL;
	for (;;) {
		const char *k = p, *ke = js_string(p), *v;

		if (!ke)
			return NULL;
		p = js_ws(ke);
		p = js_ws(p + 1);  /* ':' */
		v = p;
		if ((size_t)(ke - k) == n + 2 && !strncmp(k + 1, key, n))
			return v;
		if (!(p = js_value(p, 0)))
			return NULL;
		p = js_ws(p);
		if (*p != ',')
			return NULL;
		p = js_ws(p + 1);
	}
}

/* Element i of the array at arr, or NULL. */
static T_CLI_UNUSED const char *jidx(const char *arr, int i)
{
	const char *p;

	if (!arr || *(arr = js_ws(arr)) != '[')
		return NULL;
	p = js_ws(arr + 1);
	if (*p == ']')
		return NULL;
	for (int k = 0;; k++) {
		if (k == i)
			return p;
		if (!(p = js_value(p, 0)))
			return NULL;
		p = js_ws(p);
		if (*p != ',')
			return NULL;
		p = js_ws(p + 1);
	}
}

/* Length of the array at arr (-1: not an array). */
static T_CLI_UNUSED int jlen(const char *arr)
{
	int n = 0;

	if (!arr || *js_ws(arr) != '[')
		return -1;
	while (jidx(arr, n))
		n++;
	return n;
}

#define jnum(obj, key) jnum_((obj), (key), __FILE__, __LINE__)
static T_CLI_UNUSED uint64_t jnum_(const char *obj, const char *key, const char *file, int line)
{
	const char *v = jget(obj, key);

	cr_assert(v && isdigit((unsigned char)*v) && js_number(v),
		  "%s:%d: no non-negative number \"%s\" in %.500s", file, line, key,
		  obj ? obj : "(null)");
	return strtoull(v, NULL, 10);
}

#define jbool(obj, key) jbool_((obj), (key), __FILE__, __LINE__)
static T_CLI_UNUSED int jbool_(const char *obj, const char *key, const char *file, int line)
{
	const char *v = jget(obj, key);

	cr_assert(v && (!strncmp(v, "true", 4) || !strncmp(v, "false", 5)),
		  "%s:%d: no boolean \"%s\" in %.500s", file, line, key, obj ? obj : "(null)");
	return *v == 't';
}

/* The decoded string member key (malloc'd; NUL-terminated; *len without
 * the NUL), or NULL when there is none. \uXXXX becomes UTF-8. */
static T_CLI_UNUSED char *jstr_n(const char *obj, const char *key, size_t *len)
{
	const char *v = jget(obj, key), *e;
	char *s, *o;

	if (!v || *v != '"' || !(e = js_string(v)))
		return NULL;
	s = o = malloc((size_t)(e - v) + 1);
	if (!s)
		abort();
	for (v++; v < e - 1; v++) {
		if (*v != '\\') {
			*o++ = *v;
			continue;
		}
		switch (*++v) {
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u': {
			unsigned c = (unsigned)strtoul((char[5]){ v[1], v[2], v[3], v[4], 0 }, NULL, 16);

			v += 4;
			if (c < 0x80) {
				*o++ = (char)c;
			} else if (c < 0x800) {
				*o++ = (char)(0xc0 | c >> 6);
				*o++ = (char)(0x80 | (c & 63));
			} else {
				*o++ = (char)(0xe0 | c >> 12);
				*o++ = (char)(0x80 | ((c >> 6) & 63));
				*o++ = (char)(0x80 | (c & 63));
			}
			break;
		}
		default: *o++ = *v; break;  /* " \ / */
		}
	}
	*o = 0;
	if (len)
		*len = (size_t)(o - s);
	return s;
}

#define jstr(obj, key) jstr_((obj), (key), __FILE__, __LINE__)
static T_CLI_UNUSED char *jstr_(const char *obj, const char *key, const char *file, int line)
{
	char *s = jstr_n(obj, key, NULL);

	cr_assert_not_null(s, "%s:%d: no string \"%s\" in %.500s", file, line, key,
			   obj ? obj : "(null)");
	return s;
}

/* Is member key a string equal to want? */
static T_CLI_UNUSED int jstr_is(const char *obj, const char *key, const char *want)
{
	char *s = jstr_n(obj, key, NULL);
	int r = s && !strcmp(s, want);

	free(s);
	return r;
}

/* ------------------------------------------------------------------------ */
/* Background commands                                                      */
/* ------------------------------------------------------------------------ */

struct bg {
	pid_t pid;
	char out[700], err[700];
	char cmd[1024];
	char *seen;   /* the output bg_wait_output saw last (freed by bg_stop) */
};

/* Start argv with in_fd as stdin (-1: /dev/null). */
static T_CLI_UNUSED void bg_start(struct bg *g, int in_fd, const char *const *argv)
{
	unsigned seq = t_cli_seq++;
	int in, out, err;

	memset(g, 0, sizeof(*g));
	describe(g->cmd, sizeof(g->cmd), argv);
	snprintf(g->out, sizeof(g->out), "%s/bg%u.out", t_dir(), seq);
	snprintf(g->err, sizeof(g->err), "%s/bg%u.err", t_dir(), seq);
	in = in_fd >= 0 ? dup(in_fd) : open("/dev/null", O_RDONLY | O_CLOEXEC);
	out = open(g->out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	err = open(g->err, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert(in >= 0 && out >= 0 && err >= 0, "%s: %s", g->cmd, strerror(errno));
	fflush(NULL);
	g->pid = fork();
	cr_assert_geq(g->pid, 0);
	if (g->pid == 0)
		child_exec(NULL, in, out, err, argv);
	t_adopt_pid(g->pid);
	close(in);
	close(out);
	close(err);
}

/* Wait until the output contains want: 0, or -1 after ms (or if it exited). */
static T_CLI_UNUSED int bg_wait_output(struct bg *g, const char *want, unsigned ms)
{
	uint64_t end = t_now_ns() + (uint64_t)ms * 1000000ull;
	size_t n;

	for (;;) {
		t_cli_drop(g->seen);
		g->seen = slurp(g->out, &n);
		t_cli_keep(g->seen);
		if (strstr(g->seen, want))
			return 0;
		if (t_now_ns() > end)
			return -1;
		t_nap_us(2000);
	}
}

static T_CLI_UNUSED void bg_collect(struct bg *g, struct out *o, int st)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->cmd, sizeof(o->cmd), "%s", g->cmd);
	o->status = st < 0 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	o->out = slurp(g->out, &o->out_len);
	o->err = slurp(g->err, &o->err_len);
	t_cli_keep(o->out);
	t_cli_keep(o->err);
	unlink(g->out);
	unlink(g->err);
	t_cli_drop(g->seen);
	g->seen = NULL;
	t_forget_pid(g->pid);
	g->pid = 0;
}

/* Has it exited? 1 (and o filled) or 0 (still running; o untouched). */
static T_CLI_UNUSED int bg_exited(struct bg *g, struct out *o)
{
	int st;

	if (waitpid(g->pid, &st, WNOHANG) != g->pid)
		return 0;
	bg_collect(g, o, st);
	return 1;
}

/* Wait up to ms for it to exit by itself: 0 (and o filled) or -1 (still
 * running: then it is killed, o filled, status 128 + SIGKILL). */
static T_CLI_UNUSED int bg_wait_exit(struct bg *g, unsigned ms, struct out *o)
{
	uint64_t end = t_now_ns() + (uint64_t)ms * 1000000ull;
	int st;

	for (;;) {
		if (waitpid(g->pid, &st, WNOHANG) == g->pid) {
			bg_collect(g, o, st);
			return 0;
		}
		if (t_now_ns() > end) {
			kill(g->pid, SIGKILL);
			waitpid(g->pid, &st, 0);
			bg_collect(g, o, st);
			return -1;
		}
		t_nap_us(2000);
	}
}

/* Send sig, then wait (up to 10 s, then SIGKILL). */
static T_CLI_UNUSED void bg_stop(struct bg *g, int sig, struct out *o)
{
	kill(g->pid, sig);
	bg_wait_exit(g, 10000, o);
}

/* ------------------------------------------------------------------------ */
/* Waiting for a topic's state, through `bus --json info`                   */
/* ------------------------------------------------------------------------ */

/* Until topic has n consumers: 0, or -1 after 10 s. */
static T_CLI_UNUSED int wait_consumers(const struct t_busd *d, const char *topic, int n)
{
	uint64_t end = t_now_ns() + 10000000000ull;
	struct out o;

	for (;;) {
		int k;

		run(&o, NULL, ARGV(BUS_BIN, "--bus", d->dir, "--json", "info", topic));
		k = o.status == 0 && json_valid(o.out) ? jlen(jget(o.out, "consumers")) : -1;
		done(&o);
		if (k == n)
			return 0;
		if (t_now_ns() > end)
			return -1;
		t_nap_us(10000);
	}
}

/* Until topic's producer is pid: 0, or -1 after 10 s. */
static T_CLI_UNUSED int wait_producer(const struct t_busd *d, const char *topic, pid_t pid)
{
	uint64_t end = t_now_ns() + 10000000000ull;
	struct out o;

	for (;;) {
		const char *v = NULL;

		run(&o, NULL, ARGV(BUS_BIN, "--bus", d->dir, "--json", "info", topic));
		if (o.status == 0 && json_valid(o.out))
			v = jget(o.out, "producer_pid");
		if (v && strtoll(v, NULL, 10) == pid) {
			done(&o);
			return 0;
		}
		done(&o);
		if (t_now_ns() > end)
			return -1;
		t_nap_us(10000);
	}
}

#endif
