/* SPDX-License-Identifier: MIT */
/*
 * corrupt.c — the corrupted-log generator (issue 6): a standalone program,
 * not a Criterion suite.
 *
 * Once, a real busd (private directories, removed on every way out) writes
 * the log of a durable topic: a few thousand events with deterministic
 * payloads (t_fill), published in BUS_MORE batches of 1..16 events with a
 * bus_pub_sync() after each, so that every batch is one chunk and the
 * layout of the log (segments, chunk offsets, sequence numbers) is a
 * function of the seed alone; only timestamps and CRCs differ between runs.
 * That log is the pristine copy.
 *
 * Each case then puts the pristine copy back, damages one file of it (a
 * segment, or an index): truncation, 1-8 flipped bits, a range overwritten
 * with random bytes, or a range zeroed, at random offsets biased towards the
 * places where the format has structure (file header, chunk headers, chunk
 * and entry boundaries), and computes what must happen from the pristine
 * chunk map alone (t_log_chunks, byte offsets, no libbus): the first byte
 * that differs names the first bad chunk, its offset, and the events before
 * it. Then, each as a process that may crash:
 *
 *   1. `bus log verify DIR` exits 1 and names the first bad file and offset
 *      exactly, or exits 0 when the damage left a sound log;
 *   2. the reader (bus_log_open, bus_log_next) returns exactly the events
 *      before the damage, byte for byte, then the error the API specifies
 *      (-EBADMSG naming the file and offset; -EPROTONOSUPPORT for a file
 *      header of another version; -ENOBUFS for the hole a segment cut at a
 *      chunk boundary leaves), and stays stopped there; then, on the same
 *      handle, a bus_log_seek() to a random event, which must read on as a
 *      reader from there would (the index is a hint: a damaged, cut or
 *      stale one must not change what is read), where that is specified:
 *      anywhere but after the damage in the damaged segment;
 *   3. busd recovery after a reboot (the topic's shared memory gone, so
 *      busd recreates the topic from the log): damage in the last segment
 *      is cut back to the last sound chunk, and exactly that is kept (a
 *      torn file header: the segment removed; any other bad file header:
 *      the topic not recreated, nothing touched); damage anywhere else is
 *      left as it is (recovery reads only the last segment; readers report
 *      the older damage), and the topic continues after the last segment.
 *      Every file is compared with what it must be afterwards, and where
 *      the recovered log must be sound the reader and verify read it again;
 *   4. nothing dies by a signal or reports a sanitizer error.
 *
 * "Valid" for verify: every chunk sound, sequence numbers continuous across
 * chunks and segments, and every index entry pointing at a sound chunk that
 * holds what it says (bus(1)); an index that lists fewer chunks than its
 * segment has, or ends in a partial entry in the last segment, is a warning.
 * So a last segment cut exactly at a chunk boundary is sound only when its
 * index is cut to match (the shape a crash leaves); with its index intact,
 * the first error is the first entry that points past the cut.
 *
 * The model assumes that a changed chunk fails its CRC-32C; a change that
 * keeps it (2^-32 for random bytes) would show as a verify failure.
 *
 * Usage: corrupt [--cases N] [--seed S] [--case N] [-v]; see --help.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus.h"
#include "t_busd.h"
#include "t_log.h"
#include "t_util.h"

#ifndef T_BUILD_DIR
#define T_BUILD_DIR "build"
#endif

#define TOPIC      "crpt"
#define MAXEV      1024
#define MAXSEG     32
#define BATCH_MAX  16
#define LOG_BYTES  (7ull << 19)  /* 3.5 MiB: three full segments of 1 MiB, half a fourth */
#define SEC        1000000000ll
#define NOPE       UINT64_MAX    /* no byte differs */

/* ------------------------------------------------------------------------ */
/* Little helpers                                                           */
/* ------------------------------------------------------------------------ */

static volatile sig_atomic_t stop_sig;
static int verbose;

static void on_signal(int sig)
{
	stop_sig = sig;
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* splitmix64: the cases' random numbers, a function of (seed, case). */
struct rng {
	uint64_t s;
};

static uint64_t fin(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd(struct rng *r)
{
	return fin(r->s += 0x9e3779b97f4a7c15ull);
}

/* Case c's generator: both mixed, so that neighbouring cases (and small
 * seeds) do not start from related states. */
static struct rng case_rng(uint64_t seed, uint64_t c)
{
	return (struct rng){ fin(seed ^ fin((c + 1) * 0x9e3779b97f4a7c15ull)) };
}

static uint64_t below(struct rng *r, uint64_t n)
{
	return n ? rnd(r) % n : 0;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		fprintf(stderr, "corrupt: out of memory\n");
		exit(2);
	}
	return p;
}

static void *xdup(const void *src, size_t n)
{
	return memcpy(xmalloc(n), src, n);
}

/* Occurrences of needle in s. */
static int count_str(const char *s, const char *needle)
{
	int n = 0;

	for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static char *read_text(const char *path)
{
	uint8_t *b;
	size_t len;

	if (t_file_read(path, &b, &len) < 0)
		return strdup("");
	return (char *)b;  /* NUL-terminated by t_file_read */
}

/* A failure message, appended to a case's report (bounded). */
struct report {
	char text[2048];
	size_t len;
	int bad;
};

static void note(struct report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(struct report *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	r->bad = 1;
	if (r->len + 2 >= sizeof(r->text))
		return;
	va_start(ap, fmt);
	n = vsnprintf(r->text + r->len, sizeof(r->text) - r->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		r->len += (size_t)n < sizeof(r->text) - r->len ? (size_t)n : sizeof(r->text) - r->len - 1;
	if (r->len + 1 < sizeof(r->text)) {
		r->text[r->len++] = '\n';
		r->text[r->len] = 0;
	}
}

/* A sanitizer's report in a process's stderr is a crash too. */
static int sanitizer_said(const char *err)
{
	return strstr(err, "Sanitizer") || strstr(err, "runtime error:");
}

/* ------------------------------------------------------------------------ */
/* The pristine log                                                         */
/* ------------------------------------------------------------------------ */

struct seg {
	uint64_t first;
	char log[32], idx[32];
	uint8_t *l, *x;          /* pristine .log and .idx */
	size_t llen, xlen;
	struct t_chunk *ch;      /* chunks of the .log, from t_log_chunks */
	int nch;
};

static struct {
	uint64_t seed;
	struct seg s[MAXSEG];
	int ns;
	uint8_t *conf;
	size_t conflen;
	uint64_t n;              /* events 1..n */
	uint64_t chunks, bytes;
	uint32_t layout;         /* CRC of the layout: a replay needs the same one */
	struct t_busd d;
	int busd_up;             /* d was started once: its directories exist */
	char logdir[800];
} P;

static uint64_t publish_log(struct bus_pub *p)
{
	struct rng r = case_rng(P.seed, UINT64_MAX);  /* not a case's */
	uint8_t buf[MAXEV];
	uint64_t s = 1, bytes = 0;

	while (bytes < LOG_BYTES && !stop_sig) {
		uint64_t cnt = 1 + below(&r, BATCH_MAX);

		/* One batch, made visible by one store, then synced: the
		 * flusher finds it whole and writes it as one chunk. */
		for (uint64_t i = 0; i < cnt; i++, s++) {
			uint32_t len = t_len_for(P.seed, s, 8, MAXEV);
			int rc;

			t_fill(buf, len, P.seed, s);
			rc = bus_pub_publish(p, (uint32_t)s, buf, len, i + 1 < cnt ? BUS_MORE : 0);
			if (rc < 0) {
				fprintf(stderr, "corrupt: publish %" PRIu64 ": %s\n", s, bus_errmsg());
				return 0;
			}
			bytes += t_rec_size(len);
		}
		if (bus_pub_sync(p, s - 1, 10 * SEC) < 0) {
			fprintf(stderr, "corrupt: sync %" PRIu64 ": %s\n", s - 1, bus_errmsg());
			return 0;
		}
		bytes += 64;
	}
	return stop_sig ? 0 : s - 1;
}

static int cmp_seg(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

/* Read the log directory as busd left it and check that it has the shape
 * the model relies on: chunks back to back, sequence numbers continuous,
 * every index complete and right. */
static int load_pristine(uint64_t published)
{
	DIR *dp = opendir(P.logdir);
	struct dirent *e;
	uint64_t expect = 1;
	char path[1200];

	if (!dp) {
		fprintf(stderr, "corrupt: %s: %s\n", P.logdir, strerror(errno));
		return -1;
	}
	while ((e = readdir(dp))) {
		size_t len = strlen(e->d_name);

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", P.logdir, e->d_name);
		if (!strcmp(e->d_name, "topic.conf")) {
			if (t_file_read(path, &P.conf, &P.conflen) < 0)
				goto bad_read;
			continue;
		}
		if (len != 24 || strspn(e->d_name, "0123456789") != 20 ||
		    (strcmp(e->d_name + 20, ".log") && strcmp(e->d_name + 20, ".idx"))) {
			fprintf(stderr, "corrupt: unexpected file %s in the pristine log\n", path);
			closedir(dp);
			return -1;
		}
		if (strcmp(e->d_name + 20, ".log"))
			continue;
		if (P.ns == MAXSEG) {
			fprintf(stderr, "corrupt: more than %d segments\n", MAXSEG);
			closedir(dp);
			return -1;
		}
		P.s[P.ns++].first = strtoull(e->d_name, NULL, 10);
	}
	closedir(dp);
	qsort(P.s, (size_t)P.ns, sizeof(P.s[0]), cmp_seg);
	if (P.ns < 3 || !P.conf) {
		fprintf(stderr, "corrupt: the pristine log has %d segments%s; expected several\n",
			P.ns, P.conf ? "" : " and no topic.conf");
		return -1;
	}
	for (int i = 0; i < P.ns; i++) {
		struct seg *s = &P.s[i];

		t_seg_name(s->log, sizeof(s->log), s->first);
		snprintf(s->idx, sizeof(s->idx), "%020" PRIu64 ".idx", s->first);
		snprintf(path, sizeof(path), "%s/%s", P.logdir, s->log);
		if (t_file_read(path, &s->l, &s->llen) < 0)
			goto bad_read;
		snprintf(path, sizeof(path), "%s/%s", P.logdir, s->idx);
		if (t_file_read(path, &s->x, &s->xlen) < 0)
			goto bad_read;
		s->nch = t_log_chunks(s->l, s->llen, NULL, 0);
		if (s->nch < 1 || s->first != expect) {
			fprintf(stderr, "corrupt: pristine %s: %d chunks, starts at %" PRIu64
				", expected %" PRIu64 "\n", s->log, s->nch, s->first, expect);
			return -1;
		}
		s->ch = xmalloc((size_t)s->nch * sizeof(*s->ch));
		t_log_chunks(s->l, s->llen, s->ch, s->nch);
		if (s->xlen != 64 + 32 * (size_t)s->nch) {
			fprintf(stderr, "corrupt: pristine %s has %zu bytes for %d chunks\n", s->idx,
				s->xlen, s->nch);
			return -1;
		}
		for (int j = 0; j < s->nch; j++) {
			const uint8_t *x = s->x + 64 + 32 * (size_t)j;

			if (s->ch[j].first_seq != expect || s->ch[j].count < 1 ||
			    le64(x) != s->ch[j].first_seq || le64(x + 16) != s->ch[j].off ||
			    le32(x + 24) != s->ch[j].count || le32(x + 28) != t_crc32c(0, x, 28)) {
				fprintf(stderr, "corrupt: pristine %s: chunk %d at %" PRIu64
					" (seq %" PRIu64 ") does not continue the log or its index "
					"entry does not match\n", s->log, j, s->ch[j].off,
					s->ch[j].first_seq);
				return -1;
			}
			expect += s->ch[j].count;
			P.layout = t_crc32c(P.layout, &s->ch[j].off, sizeof(s->ch[j].off));
			P.layout = t_crc32c(P.layout, &s->ch[j].first_seq, sizeof(uint64_t));
			P.layout = t_crc32c(P.layout, &s->ch[j].end, sizeof(uint64_t));
		}
		P.chunks += (uint64_t)s->nch;
		P.bytes += s->llen;
	}
	P.n = expect - 1;
	if (P.n != published) {
		fprintf(stderr, "corrupt: the pristine log holds events 1..%" PRIu64 "; %" PRIu64
			" were published\n", P.n, published);
		return -1;
	}
	return 0;
bad_read:
	fprintf(stderr, "corrupt: cannot read %s\n", path);
	return -1;
}

static int make_pristine(void)
{
	struct bus_topic_opts o = { .ring_size = 64 << 10, .max_event = MAXEV,
				    .flags = BUS_TOPIC_DURABLE, .fsync = BUS_FSYNC_NONE,
				    .linger_ns = 1000, .segment_bytes = 1 << 20 };
	struct bus_pub *p;
	struct bus *b;
	uint64_t n;
	int r;

	r = t_busd_start(&P.d, "--log-file", "-", NULL);
	P.busd_up = 1;
	if (r) {
		fprintf(stderr, "corrupt: busd did not start (%d); its stderr: %s\n", r, P.d.err);
		return -1;
	}
	snprintf(P.logdir, sizeof(P.logdir), "%s/log/%s", P.d.state, TOPIC);
	if (bus_connect(P.d.dir, &b) < 0) {
		fprintf(stderr, "corrupt: bus_connect: %s\n", bus_errmsg());
		return -1;
	}
	if (bus_create(b, TOPIC, &o) < 0 || bus_pub_attach(b, TOPIC, &p) < 0) {
		fprintf(stderr, "corrupt: creating the topic: %s\n", bus_errmsg());
		bus_disconnect(b);
		return -1;
	}
	bus_pub_set_timeout(p, 10 * SEC);
	n = publish_log(p);
	bus_pub_close(p);
	bus_disconnect(b);
	r = t_busd_stop(&P.d);
	if (!n || r) {
		if (r)
			fprintf(stderr, "corrupt: busd stopped with status %d\n", r);
		return -1;
	}
	return load_pristine(n);
}

/* What we last wrote to a file of the log directory. A file is written
 * again when it was marked (the mutation's target; the files recovery may
 * change), or when its inode, size or modification time differs (anything
 * else that wrote it: a coarse clock may hide a write in the same tick, so
 * this is the safety net, not the rule); the others are left alone, which
 * saves rewriting megabytes a case. */
struct stamp {
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

static struct stamp stamps[2 * MAXSEG + 1];

static int put_file(const char *name, const uint8_t *buf, size_t len, struct stamp *st,
		    int force)
{
	char path[1200];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", P.logdir, name);
	if (!force && lstat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_ino == st->ino &&
	    sb.st_size == st->size && sb.st_mtim.tv_sec == st->mtime.tv_sec &&
	    sb.st_mtim.tv_nsec == st->mtime.tv_nsec)
		return 0;
	unlink(path);  /* a new inode: whatever busd holds open is not ours */
	if (t_file_write(path, buf, len) < 0 || lstat(path, &sb) < 0) {
		fprintf(stderr, "corrupt: cannot write %s: %s\n", path, strerror(errno));
		return -1;
	}
	*st = (struct stamp){ sb.st_ino, sb.st_size, sb.st_mtim };
	return 0;
}

/* Write this file again at the next restore. */
static void mark(const char *name)
{
	if (!strcmp(name, "topic.conf"))
		stamps[0].ino = 0;
	for (int i = 0; i < P.ns; i++) {
		if (!strcmp(name, P.s[i].log))
			stamps[1 + 2 * i].ino = 0;
		if (!strcmp(name, P.s[i].idx))
			stamps[2 + 2 * i].ino = 0;
	}
}

static int pristine_name(const char *name)
{
	if (!strcmp(name, "topic.conf"))
		return 1;
	for (int i = 0; i < P.ns; i++)
		if (!strcmp(name, P.s[i].log) || !strcmp(name, P.s[i].idx))
			return 1;
	return 0;
}

/* Put the pristine log back (force: every file), and remove the topic's
 * shared memory: a reboot, after which busd recreates the topic from its
 * log. */
static int restore(int force)
{
	DIR *dp;
	struct dirent *e;
	int r = 0;

	if ((dp = opendir(P.d.shm))) {
		while ((e = readdir(dp)))
			if (e->d_name[0] != '.')
				unlinkat(dirfd(dp), e->d_name, 0);
		closedir(dp);
	}
	if ((dp = opendir(P.logdir))) {
		while ((e = readdir(dp)))
			if (e->d_name[0] != '.' && (force || !pristine_name(e->d_name)))
				unlinkat(dirfd(dp), e->d_name, 0);
		closedir(dp);
	} else if (mkdir(P.logdir, 0700) < 0) {
		fprintf(stderr, "corrupt: mkdir %s: %s\n", P.logdir, strerror(errno));
		return -1;
	}
	r |= put_file("topic.conf", P.conf, P.conflen, &stamps[0], force);
	for (int i = 0; i < P.ns; i++) {
		r |= put_file(P.s[i].log, P.s[i].l, P.s[i].llen, &stamps[1 + 2 * i], force);
		r |= put_file(P.s[i].idx, P.s[i].x, P.s[i].xlen, &stamps[2 + 2 * i], force);
	}
	return r ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Mutations                                                                */
/* ------------------------------------------------------------------------ */

enum { K_TRUNC, K_FLIP, K_OVERWRITE, K_ZERO, NKIND };
static const char *const kind_name[NKIND] = { "truncate", "flip", "overwrite", "zero" };

struct mut {
	int kind, seg, idx;      /* the target: segment seg's .log, or its .idx if idx */
	uint8_t *buf;            /* the target's new content */
	size_t len;
	uint8_t *xbuf;           /* cut at a chunk boundary: its index, cut to match */
	size_t xlen;
	char desc[400];
};

static const struct seg *target(const struct mut *m)
{
	return &P.s[m->seg];
}

/* An offset in the target, biased to where the format has structure. */
static uint64_t spot(struct rng *r, const struct seg *s, int idx, size_t len)
{
	uint64_t p = below(r, 100);

	if (p < 12)
		return below(r, 64);                   /* the file header */
	if (!idx && p < 40) {                          /* a chunk header */
		const struct t_chunk *c = &s->ch[below(r, (uint64_t)s->nch)];

		return c->off + below(r, 64);
	}
	return below(r, len);
}

/* A range [*a, *a + *n) of a file of len bytes, 1 byte at least. */
static void range(struct rng *r, const struct seg *s, int idx, size_t len, uint64_t *a,
		  uint64_t *n)
{
	uint64_t p = below(r, 100), max = p < 50 ? 16 : p < 85 ? 512 : 8192;

	*a = spot(r, s, idx, len);
	*n = 1 + below(r, max);
	if (*a + *n > len)
		*n = len - *a;
}

static int in_chunk(const struct seg *s, uint64_t x)
{
	int lo = 0, hi = s->nch - 1;

	while (lo < hi) {  /* last chunk with off <= x */
		int mid = (lo + hi + 1) / 2;

		if (s->ch[mid].off <= x)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

static void gen_mutation(struct rng *r, struct mut *m)
{
	const struct seg *s;
	size_t len;
	char *d = m->desc;
	size_t dsz = sizeof(m->desc);
	int o;

	memset(m, 0, sizeof(*m));
	m->idx = below(r, 100) < 15;
	m->seg = below(r, 100) < 40 ? P.ns - 1 : (int)below(r, (uint64_t)P.ns);
	m->kind = (int)below(r, NKIND);
	s = target(m);
	len = m->idx ? s->xlen : s->llen;
	m->buf = xdup(m->idx ? s->x : s->l, len);
	m->len = len;
	o = snprintf(d, dsz, "%s (%s, %zu bytes): ", m->idx ? s->idx : s->log,
		     m->seg == P.ns - 1 ? "the last segment" : "an older segment", len);

	switch (m->kind) {
	case K_TRUNC: {
		uint64_t p = below(r, 100), at;
		int c = -1;

		if (p < 3) {
			at = len;                                    /* changes nothing */
		} else if (!m->idx && p < 25) {
			c = (int)below(r, (uint64_t)s->nch);         /* a chunk boundary */
			at = s->ch[c].off;
		} else if (m->idx && p < 35) {
			at = 64 + 32 * below(r, (len - 64) / 32 + 1); /* an entry boundary */
		} else {
			at = spot(r, s, m->idx, len);
		}
		m->len = at;
		o += snprintf(d + o, dsz - (size_t)o, "truncate to %" PRIu64 " bytes", at);
		if (c >= 0 && below(r, 2)) {
			/* The shape a crash leaves: the index cut to match. */
			m->xlen = 64 + 32 * (size_t)c;
			m->xbuf = xdup(s->x, m->xlen);
			snprintf(d + o, dsz - (size_t)o, ", and %s to %zu", s->idx, m->xlen);
		}
		break;
	}
	case K_FLIP: {
		uint64_t nb = 1 + below(r, 8), pos[8], base = 0, span = len * 8;

		if (below(r, 2)) {  /* a burst, within 64 bytes */
			base = spot(r, s, m->idx, len);
			span = (len - base < 64 ? len - base : 64) * 8;
			base *= 8;
		}
		o += snprintf(d + o, dsz - (size_t)o, "flip %" PRIu64 " bit%s at", nb,
			      nb > 1 ? "s" : "");
		for (uint64_t i = 0; i < nb; i++) {
			uint64_t b;
			int again;

			do {  /* distinct bits: two flips of one bit would cancel */
				b = base + below(r, span);
				again = 0;
				for (uint64_t j = 0; j < i; j++)
					again |= pos[j] == b;
			} while (again && span > nb);
			pos[i] = b;
			m->buf[b / 8] ^= (uint8_t)(1u << (b % 8));
			if ((size_t)o < dsz)
				o += snprintf(d + o, dsz - (size_t)o, " %" PRIu64 ".%u", b / 8,
					      (unsigned)(b % 8));
		}
		break;
	}
	case K_OVERWRITE: {
		uint64_t a, n;
		int same = below(r, 100) < 5;

		range(r, s, m->idx, len, &a, &n);
		for (uint64_t i = 0; i < n && !same; i++)
			m->buf[a + i] = (uint8_t)rnd(r);
		snprintf(d + o, dsz - (size_t)o, "overwrite %" PRIu64 "..%" PRIu64 " with %s", a,
			 a + n - 1, same ? "the same bytes" : "random bytes");
		break;
	}
	case K_ZERO: {
		uint64_t a, n;

		if (below(r, 100) < 15) {
			/* Reserved fields, zero already: the file header's
			 * (40..63), a chunk header's reserved0/1 (52..63). */
			uint64_t base = 40, rl = 24, k;

			if (!m->idx && below(r, 2)) {
				base = s->ch[below(r, (uint64_t)s->nch)].off + 52;
				rl = 12;
			}
			k = below(r, rl);
			a = base + k;
			n = 1 + below(r, rl - k);
		} else {
			range(r, s, m->idx, len, &a, &n);
		}
		memset(m->buf + a, 0, n);
		snprintf(d + o, dsz - (size_t)o, "zero %" PRIu64 "..%" PRIu64, a, a + n - 1);
		break;
	}
	}
}

static void free_mutation(struct mut *m)
{
	free(m->buf);
	free(m->xbuf);
}

/* Write the pristine copy with the mutation applied. */
static int apply(const struct mut *m)
{
	const struct seg *s = target(m);
	char path[1200];
	int r;

	mark(m->idx ? s->idx : s->log);
	mark(s->idx);
	snprintf(path, sizeof(path), "%s/%s", P.logdir, m->idx ? s->idx : s->log);
	r = t_file_write(path, m->buf, m->len);
	if (!r && m->xbuf) {
		snprintf(path, sizeof(path), "%s/%s", P.logdir, s->idx);
		r = t_file_write(path, m->xbuf, m->xlen);
	}
	return r;
}

/* ------------------------------------------------------------------------ */
/* What must happen, from the pristine chunk map                            */
/* ------------------------------------------------------------------------ */

/* What a reader must return from some position on: events from..to, then
 * (when gap) a gap of that many and the events after it up to the end of
 * the log, then rerr (0: the end), and rerr again when asked again. */
struct run {
	uint64_t from, to, gap;
	int rerr;
};

enum rec {
	R_WHOLE,    /* the last segment is whole: the topic goes on after it */
	R_SHORTER,  /* cut at a chunk boundary: sound, shorter; goes on after it */
	R_CUT,      /* damage in the last segment: truncated at the chunk before it */
	R_REMOVED,  /* the last segment cut inside its file header: removed */
	R_REFUSED,  /* the last segment's file header is bad: not recreated, untouched */
	NREC
};
static const char *const rec_name[NREC] = {
	"last segment whole", "last segment shorter", "last segment cut back",
	"torn last segment removed", "topic not recreated",
};

struct expect {
	int changed;             /* some byte differs from the pristine log */
	/* bus log verify */
	int sound;
	char vfile[32];
	int64_t voff;            /* -1: the file as a whole */
	/* the reader */
	uint64_t upto;           /* events 1..upto */
	uint64_t gap;            /* then a gap of this many, then on to n */
	int rerr;                /* then: 0 (the end), -EBADMSG, -EPROTONOSUPPORT */
	char rfile[32];
	uint64_t roff;
	uint32_t rver;           /* -EPROTONOSUPPORT: the version in the header */
	/* busd recovery */
	int rec;
	uint64_t next;           /* the recreated topic's first sequence number */
	uint64_t cut_at, dropped;
	int sound_after;         /* the recovered log must be sound */
	/* the reader again, after a seek (0: none: not specified there) */
	uint64_t seek;
	struct run sk;
	char what[160];
};

/* The first offset at which the two differ (a length difference is one at
 * the shorter length), or NOPE. */
static uint64_t first_diff(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;

	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return i;
	return alen == blen ? NOPE : n;
}

static void expect_sound(struct expect *e)
{
	e->sound = 1;
	e->upto = P.n;
	e->rerr = 0;
}

static void expect_log(const struct mut *m, struct expect *e)
{
	const struct seg *s = target(m);
	int last = m->seg == P.ns - 1;
	uint64_t d = first_diff(s->l, s->llen, m->buf, m->len);
	int cut_only = m->len < s->llen && d == m->len;

	e->rec = R_WHOLE;
	e->next = P.n + 1;
	if (d == NOPE) {
		expect_sound(e);
		snprintf(e->what, sizeof(e->what), "nothing changed");
		return;
	}
	e->changed = 1;
	if (d < 64) {
		/* The file header: the segment cannot be read at all. */
		snprintf(e->vfile, sizeof(e->vfile), "%s", s->log);
		e->voff = 0;
		e->upto = s->first - 1;
		e->rerr = -EBADMSG;
		if (m->len >= 64 && !memcmp(m->buf, "BUSLOG1\n", 8) && le32(m->buf + 8) != 1) {
			e->rerr = -EPROTONOSUPPORT;
			e->rver = le32(m->buf + 8);
		}
		snprintf(e->rfile, sizeof(e->rfile), "%s", s->log);
		e->roff = 0;
		if (last) {
			e->rec = m->len <= 64 ? R_REMOVED : R_REFUSED;
			e->next = s->first;
		}
		snprintf(e->what, sizeof(e->what), "file header %s at %" PRIu64 "%s",
			 cut_only ? "cut" : "damaged", d,
			 e->rerr == -EPROTONOSUPPORT ? " (its version)" : "");
		return;
	}
	{
		int c = in_chunk(s, d);
		const struct t_chunk *ch = &s->ch[c];

		e->upto = ch->first_seq - 1;
		if (cut_only && d == ch->off) {
			/* Cut exactly between two chunks: what is left is sound. */
			if (m->xbuf && last) {
				e->sound = 1;
			} else if (m->xbuf) {
				/* The hole, reported on the next segment. */
				snprintf(e->vfile, sizeof(e->vfile), "%s", P.s[m->seg + 1].log);
				e->voff = -1;
			} else {
				/* Index entries c.. point past the end. */
				snprintf(e->vfile, sizeof(e->vfile), "%s", s->idx);
				e->voff = 64 + 32 * (int64_t)c;
			}
			if (!last)
				e->gap = P.s[m->seg + 1].first - ch->first_seq;
			e->rerr = 0;
			if (last) {
				e->rec = R_SHORTER;
				e->next = ch->first_seq;
			}
			snprintf(e->what, sizeof(e->what), "cut between chunks %d and %d (events "
				 "from %" PRIu64 " gone)%s", c - 1, c, ch->first_seq,
				 m->xbuf ? ", index cut to match" : "");
			return;
		}
		snprintf(e->vfile, sizeof(e->vfile), "%s", s->log);
		e->voff = (int64_t)ch->off;
		e->rerr = -EBADMSG;
		snprintf(e->rfile, sizeof(e->rfile), "%s", s->log);
		e->roff = ch->off;
		if (last) {
			e->rec = R_CUT;
			e->next = ch->first_seq;
			e->cut_at = ch->off;
			e->dropped = m->len - ch->off;
		}
		snprintf(e->what, sizeof(e->what), "chunk %d at %" PRIu64 " (events %" PRIu64
			 "..%" PRIu64 ") %s at %" PRIu64, c, ch->off, ch->first_seq,
			 ch->first_seq + ch->count - 1, cut_only ? "cut" : "damaged", d);
	}
}

static void expect_idx(const struct mut *m, struct expect *e)
{
	const struct seg *s = target(m);
	int last = m->seg == P.ns - 1;
	uint64_t d = first_diff(s->x, s->xlen, m->buf, m->len);
	int cut_only = m->len < s->xlen && d == m->len;

	e->rec = R_WHOLE;
	e->next = P.n + 1;
	expect_sound(e);  /* readers do not need an index to read from the start */
	e->sound = 0;
	e->changed = d != NOPE;
	snprintf(e->vfile, sizeof(e->vfile), "%s", s->idx);
	if (d == NOPE) {
		e->sound = 1;
		snprintf(e->what, sizeof(e->what), "nothing changed");
	} else if (d < 64) {
		e->voff = 0;
		snprintf(e->what, sizeof(e->what), "index header %s at %" PRIu64,
			 cut_only ? "cut" : "damaged", d);
	} else if (cut_only && (d - 64) % 32 == 0) {
		e->sound = 1;  /* fewer entries: a warning */
		snprintf(e->what, sizeof(e->what), "index cut after entry %" PRIu64, (d - 64) / 32);
	} else if (cut_only) {
		/* A partial entry: what a crash leaves in the last index. */
		e->sound = last;
		e->voff = 64 + 32 * (int64_t)((d - 64) / 32);
		snprintf(e->what, sizeof(e->what), "index cut inside entry %" PRIu64,
			 (d - 64) / 32);
	} else {
		e->voff = 64 + 32 * (int64_t)((d - 64) / 32);
		snprintf(e->what, sizeof(e->what), "index entry %" PRIu64 " damaged",
			 (d - 64) / 32);
	}
}

/* A seek to s after the read from the start: the same as that read from s
 * on where it is defined. After the damage, inside the damaged segment, it
 * is not: the index may take the reader past the bad chunk. */
static void expect_seek(const struct mut *m, struct expect *e, uint64_t s)
{
	uint64_t resume = e->upto + 1 + e->gap;  /* after the gap, if any */

	e->seek = s;
	e->sk = (struct run){ s, e->upto, e->gap, e->rerr };
	if (s <= e->upto)
		return;
	if (!e->rerr && e->gap && s < resume) {
		e->sk = (struct run){ s, s - 1, resume - s, 0 };      /* into the gap */
	} else if (!e->rerr && e->gap) {
		e->sk = (struct run){ s, P.n, 0, 0 };                 /* after it */
	} else if (!e->rerr) {
		e->sk = (struct run){ s, s - 1, 0, 0 };               /* past the end */
	} else if (!m->idx && m->seg + 1 < P.ns && s >= P.s[m->seg + 1].first) {
		e->sk = (struct run){ s, P.n, 0, 0 };                 /* a later segment */
	} else {
		e->seek = 0;
	}
}

static void expect_case(const struct mut *m, struct expect *e)
{
	memset(e, 0, sizeof(*e));
	if (m->idx)
		expect_idx(m, e);
	else
		expect_log(m, e);
	/* After recovery the log is sound if nothing outside the last segment
	 * changed and busd recreated the topic. */
	e->sound_after = e->rec != R_REFUSED && (m->seg == P.ns - 1 || !e->changed);
}

/* ------------------------------------------------------------------------ */
/* Processes                                                                */
/* ------------------------------------------------------------------------ */

/* How a child ended: its exit code, or 128 + the signal that killed it. */
static int wait_child(pid_t pid, int *signaled)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	t_forget_pid(pid);
	*signaled = WIFSIGNALED(st);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

struct vres {
	int status, signaled;
	char *out, *err;
};

/* bus log verify DIR, its stdout and stderr in files of the test directory. */
static int run_verify(struct vres *v)
{
	char out[700], err[700];
	pid_t pid;

	snprintf(out, sizeof(out), "%s/verify.out", t_dir());
	snprintf(err, sizeof(err), "%s/verify.err", t_dir());
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
			_exit(126);
		execl(T_BUILD_DIR "/bin/bus", "bus", "log", "verify", P.logdir, (char *)NULL);
		_exit(127);
	}
	t_adopt_pid(pid);
	v->status = wait_child(pid, &v->signaled);
	v->out = read_text(out);
	v->err = read_text(err);
	return 0;
}

static void free_vres(struct vres *v)
{
	free(v->out);
	free(v->err);
}

/* Check verify's verdict against e (sound, or the first error). Returns
 * 1 if it crashed. */
static int check_verify(const struct expect *e, int sound, struct report *rep, const char *when)
{
	struct vres v = { 0, 0, NULL, NULL };
	char line[160];
	int crashed = 0;

	if (run_verify(&v) < 0) {
		note(rep, "%s: cannot run bus log verify: %s", when, strerror(errno));
		return 0;
	}
	if (v.signaled || sanitizer_said(v.err)) {
		note(rep, "%s: bus log verify CRASHED (status %d): %.300s", when, v.status, v.err);
		crashed = 1;
	} else if (sound) {
		if (v.status != 0 || strstr(v.out, "error\t") || !strstr(v.out, "result\tok\n"))
			note(rep, "%s: bus log verify: expected a sound log (exit 0), got exit %d: "
			     "%.300s%.300s", when, v.status, v.out, v.err);
	} else {
		const char *l = strstr(v.out, "error\t");

		if (e->voff >= 0)
			snprintf(line, sizeof(line), "error\t%s\t%" PRId64 "\t", e->vfile, e->voff);
		else
			snprintf(line, sizeof(line), "error\t%s\t-\t", e->vfile);
		if (v.status != 1 || !l || (l != v.out && l[-1] != '\n') ||
		    strncmp(l, line, strlen(line)) || !strstr(v.out, "result\tcorrupt\n")) {
			const char *nl = l ? strchr(l, '\n') : NULL;

			note(rep, "%s: bus log verify: expected exit 1 and the first error at %s "
			     "offset %" PRId64 ", got exit %d, first error: %.*s", when, e->vfile,
			     e->voff, v.status, l ? (int)(nl ? nl - l : 200) : 6,
			     l ? l : "(none)");
		} else {
			if (e->voff >= 0)
				snprintf(line, sizeof(line), "corrupt: %s at offset %" PRId64 ": ",
					 e->vfile, e->voff);
			else
				snprintf(line, sizeof(line), "corrupt: %s: ", e->vfile);
			if (!strstr(v.err, line))
				note(rep, "%s: bus log verify: stderr lacks \"%s\": %.300s", when, line,
				     v.err);
		}
	}
	if (verbose > 1)
		printf("  bus log verify (%s): exit %d\n%s%s", when, v.status, v.out, v.err);
	free_vres(&v);
	return crashed;
}

/* The reader's verdict, from a child process (which may crash). */
struct rres {
	int ok;
	uint64_t events;
	char msg[600];
};

static int rfail(struct rres *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int rfail(struct rres *res, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->msg, sizeof(res->msg), fmt, ap);
	va_end(ap);
	res->ok = 0;
	return 1;
}

static int expect_events(struct bus_log *l, uint64_t from, uint64_t to, struct rres *res)
{
	static uint8_t want[MAXEV];
	struct bus_event ev;

	for (uint64_t s = from; s <= to; s++) {
		uint32_t len = t_len_for(P.seed, s, 8, MAXEV);
		int r = bus_log_next(l, &ev);

		if (r != 1)
			return rfail(res, "event %" PRIu64 ": got %d (%s)", s, r, bus_errmsg());
		if (ev.seq != s || ev.type != (uint32_t)s || ev.len != len)
			return rfail(res, "event %" PRIu64 ": got seq %" PRIu64 ", type %u, %u bytes "
				     "(expected %u)", s, ev.seq, ev.type, ev.len, len);
		t_fill(want, len, P.seed, s);
		if (memcmp(ev.data, want, len) || t_check(ev.data, ev.len, P.seed, s))
			return rfail(res, "event %" PRIu64 ": payload differs", s);
		res->events++;
	}
	return 0;
}

static int expect_run(struct bus_log *l, const struct expect *e, const struct run *u,
		      struct rres *res)
{
	struct bus_event ev;
	char msg[1000] = "";
	uint64_t last = u->to;
	int r;

	if (expect_events(l, u->from, u->to, res))
		return 1;
	if (u->gap) {
		r = bus_log_next(l, &ev);
		if (r != -ENOBUFS || ev.seq != u->to + 1 || ev.lost != u->gap)
			return rfail(res, "after event %" PRIu64 ": expected a gap of %" PRIu64
				     ", got %d (%s) seq %" PRIu64 " lost %" PRIu64, u->to, u->gap, r,
				     bus_errmsg(), ev.seq, ev.lost);
		if (expect_events(l, u->to + 1 + u->gap, P.n, res))
			return 1;
		last = P.n;
	}
	if (u->rerr == -EBADMSG)
		snprintf(msg, sizeof(msg), "%s/%s: corrupt at offset %" PRIu64 ": ", P.logdir,
			 e->rfile, e->roff);
	else if (u->rerr == -EPROTONOSUPPORT)
		snprintf(msg, sizeof(msg), "%s/%s: format version %u; ", P.logdir, e->rfile,
			 e->rver);
	for (int again = 0; again < 2; again++) {  /* and it stays there */
		r = bus_log_next(l, &ev);
		if (r == 1)
			return rfail(res, "after event %" PRIu64 "%s: expected %d, got event %" PRIu64,
				     last, again ? ", asked again" : "", u->rerr, ev.seq);
		if (r != u->rerr)
			return rfail(res, "after event %" PRIu64 "%s: expected %d, got %d (%s)", last,
				     again ? ", asked again" : "", u->rerr, r, bus_errmsg());
		if (u->rerr && !strstr(bus_errmsg(), msg))
			return rfail(res, "after event %" PRIu64 ": \"%s\" lacks \"%s\"", last,
				     bus_errmsg(), msg);
	}
	return 0;
}

/* Read the log from its start; then, on the same handle (which a seek must
 * move away from a corrupt chunk), from sequence number `seek` if any. */
static int read_log(const struct expect *e, const struct run *u, uint64_t seek,
		    const struct run *su, struct rres *res)
{
	struct bus_log *l;
	int r;

	res->ok = 1;
	if ((r = bus_log_open(P.logdir, &l)) < 0)
		return rfail(res, "bus_log_open: %d (%s)", r, bus_errmsg());
	if (!expect_run(l, e, u, res) && seek) {
		if ((r = bus_log_seek(l, seek)) < 0)
			rfail(res, "bus_log_seek(%" PRIu64 "): %d (%s)", seek, r, bus_errmsg());
		else if (expect_run(l, e, su, res))
			snprintf(res->msg + strlen(res->msg), sizeof(res->msg) - strlen(res->msg),
				 " (after a seek to %" PRIu64 ")", seek);
	}
	bus_log_close(l);
	return !res->ok;
}

/* Run read_log in a child. Returns 1 if it crashed. */
static int check_reader(const struct expect *e, const struct run *u, uint64_t seek,
			const struct run *su, struct report *rep, const char *when)
{
	struct rres *res = t_shared(sizeof(*res));
	int status, signaled, crashed = 0;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		note(rep, "%s: fork: %s", when, strerror(errno));
		munmap(res, sizeof(*res));
		return 0;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(read_log(e, u, seek, su, res));
	}
	t_adopt_pid(pid);
	status = wait_child(pid, &signaled);
	if (signaled) {
		note(rep, "%s: the reader CRASHED (signal %d) after %" PRIu64 " events", when,
		     status - 128, res->events);
		crashed = 1;
	} else if (status || !res->ok) {
		note(rep, "%s: reader: %s", when, res->msg[0] ? res->msg : "exit status");
	}
	if (verbose > 1) {
		printf("  reader (%s): %" PRIu64 " events", when, res->events);
		if (seek)
			printf(" (with a seek to %" PRIu64 ")", seek);
		printf(", %s\n", res->ok ? "as expected" : res->msg);
	}
	munmap(res, sizeof(*res));
	return crashed;
}

/* The whole log, from its start to its end (or to `to`). */
static struct run whole(uint64_t to)
{
	return (struct run){ 1, to, 0, 0 };
}

/* ------------------------------------------------------------------------ */
/* busd recovery                                                            */
/* ------------------------------------------------------------------------ */

/* What a file must be after recovery. */
struct want {
	char name[32];
	const uint8_t *buf;      /* exact content, or */
	size_t len;
	const struct seg *idx;   /* an index rebuilt by busd with `entries` entries */
	uint64_t entries;
	int absent;
	int seen;
};

/* An index busd rebuilt: a valid header of its own, then the pristine
 * entries (they are a function of the chunks). */
static const char *idx_rebuilt(const uint8_t *b, size_t len, const struct want *w)
{
	uint8_t h[64];

	if (len != 64 + 32 * w->entries)
		return "wrong size";
	memcpy(h, b, 64);
	memset(h + 36, 0, 4);
	if (memcmp(b, "BUSIDX1\n", 8) || le32(b + 8) != 1 || le32(b + 12) != 64 ||
	    le64(b + 16) != w->idx->first || le32(b + 32) || t_crc32c(0, h, 64) != le32(b + 36))
		return "bad file header";
	for (int i = 40; i < 64; i++)
		if (b[i])
			return "bad file header";
	if (memcmp(b + 64, w->idx->x + 64, 32 * w->entries))
		return "entries differ from the chunks";
	return NULL;
}

static void check_files(const struct mut *m, const struct expect *e, struct report *rep)
{
	struct want w[2 * MAXSEG + 1];
	int nw = 0, last = P.ns - 1;
	DIR *dp;
	struct dirent *de;
	char path[1200];

	memset(w, 0, sizeof(w));
	snprintf(w[nw].name, sizeof(w[0].name), "topic.conf");
	w[nw].buf = P.conf;
	w[nw++].len = P.conflen;
	for (int i = 0; i < P.ns; i++) {
		const struct seg *s = &P.s[i];
		struct want *l = &w[nw++], *x = &w[nw++];
		int mine = i == m->seg;

		/* What the mutation left... */
		snprintf(l->name, sizeof(l->name), "%s", s->log);
		l->buf = mine && !m->idx ? m->buf : s->l;
		l->len = mine && !m->idx ? m->len : s->llen;
		snprintf(x->name, sizeof(x->name), "%s", s->idx);
		x->buf = mine && m->idx ? m->buf : mine && m->xbuf ? m->xbuf : s->x;
		x->len = mine && m->idx ? m->len : mine && m->xbuf ? m->xlen : s->xlen;
		/* ...and what recovery does to the last segment. */
		if (i == last && e->rec != R_REFUSED && e->rec != R_REMOVED) {
			x->buf = NULL;
			x->idx = s;
			x->entries = (uint64_t)s->nch;
			if (e->rec == R_CUT || e->rec == R_SHORTER) {
				x->entries = (uint64_t)in_chunk(s, e->rec == R_CUT ? e->cut_at :
								l->len);
				if (e->rec == R_CUT)
					l->len = e->cut_at;  /* the pristine prefix */
				l->buf = s->l;
			}
		}
		if (i == last && e->rec == R_REMOVED)
			l->absent = x->absent = 1;
		if (i == last - 1 && e->rec == R_REMOVED) {
			x->buf = NULL;
			x->idx = s;
			x->entries = (uint64_t)s->nch;
		}
	}
	if (!(dp = opendir(P.logdir))) {
		note(rep, "recovery: %s: %s", P.logdir, strerror(errno));
		return;
	}
	while ((de = readdir(dp))) {
		struct want *f = NULL;
		uint8_t *b;
		size_t len;
		const char *why = NULL;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		for (int i = 0; i < nw && !f; i++)
			if (!strcmp(w[i].name, de->d_name))
				f = &w[i];
		if (!f || f->absent) {
			note(rep, "recovery: %s is in the log directory; it should not be",
			     de->d_name);
			continue;
		}
		f->seen = 1;
		snprintf(path, sizeof(path), "%s/%s", P.logdir, de->d_name);
		if (t_file_read(path, &b, &len) < 0) {
			note(rep, "recovery: cannot read %s", path);
			continue;
		}
		if (f->idx)
			why = idx_rebuilt(b, len, f);
		else if (len != f->len)
			why = "wrong size";
		else if (memcmp(b, f->buf, len))
			why = "its bytes differ";
		if (why)
			note(rep, "recovery: %s: %s (%zu bytes; expected %s%zu)", de->d_name, why, len,
			     f->idx ? "an index of " : "", f->idx ? (size_t)(64 + 32 * f->entries) :
			     f->len);
		free(b);
	}
	closedir(dp);
	for (int i = 0; i < nw; i++)
		if (!w[i].seen && !w[i].absent)
			note(rep, "recovery: %s is gone", w[i].name);
}

/* Start busd on the damaged log (after a reboot) and check what it kept.
 * Returns 1 if busd crashed. */
static int check_recovery(const struct mut *m, const struct expect *e, struct report *rep)
{
	const struct seg *ls = &P.s[P.ns - 1];
	struct bus_topic_info ti;
	struct bus *b = NULL;
	char msg[1200], *err;
	int r, st, crashed = 0;

	if (truncate(P.d.err, 0) < 0 && errno != ENOENT)
		note(rep, "recovery: truncate %s: %s", P.d.err, strerror(errno));
	r = t_busd_restart(&P.d, "--log-file", "-", NULL);
	if (r) {
		err = read_text(P.d.err);
		crashed = r > 128 || sanitizer_said(err);
		note(rep, "recovery: busd did not start: %s %d; its stderr: %.400s",
		     r > 128 ? "CRASHED, signal" : "status", r > 128 ? r - 128 : r, err);
		free(err);
		return crashed;
	}
	if ((r = bus_connect(P.d.dir, &b)) < 0) {
		note(rep, "recovery: bus_connect: %s", bus_errmsg());
	} else {
		r = bus_stat(b, TOPIC, &ti, NULL, 0);
		if (e->rec == R_REFUSED) {
			if (r != -ENOENT)
				note(rep, "recovery: the topic should not have been recreated; "
				     "bus_stat = %d", r);
		} else if (r < 0) {
			note(rep, "recovery: the topic was not recreated: bus_stat = %d (%s)", r,
			     bus_errmsg());
		} else if (ti.first_seq != e->next || ti.next_seq != e->next) {
			note(rep, "recovery: the topic starts at %" PRIu64 " (next %" PRIu64 "), "
			     "expected %" PRIu64, ti.first_seq, ti.next_seq, e->next);
		}
		bus_disconnect(b);
	}
	st = t_busd_stop(&P.d);
	err = read_text(P.d.err);
	if (st > 128 || st < 0 || sanitizer_said(err)) {
		note(rep, "recovery: busd CRASHED or vanished (stop status %d): %.400s", st, err);
		crashed = 1;
	} else if (st) {
		note(rep, "recovery: busd exited with status %d", st);
	}

	/* What it said. */
	if (e->rec == R_REFUSED) {
		snprintf(msg, sizeof(msg), "not recreating durable topic '" TOPIC "': its log "
			 "cannot be read: log %s/%s", P.logdir, ls->log);
		if (count_str(err, msg) != 1)
			note(rep, "recovery: busd did not say \"%s\"", msg);
	} else {
		snprintf(msg, sizeof(msg), "recreated durable topic '" TOPIC "' from its log: the "
			 "ring starts at event %" PRIu64 "\n", e->next);
		if (count_str(err, msg) != 1)
			note(rep, "recovery: busd did not say \"%.*s\"", (int)strlen(msg) - 1, msg);
	}
	if (e->rec == R_CUT) {
		snprintf(msg, sizeof(msg), "'" TOPIC "': log segment %s: ", ls->log);
		if (!strstr(err, msg))
			note(rep, "recovery: busd did not say \"%s\"", msg);
		snprintf(msg, sizeof(msg), " at offset %" PRIu64 "; dropping the last %" PRIu64
			 " bytes (events from %" PRIu64 " on were not in the log)", e->cut_at,
			 e->dropped, e->next);
		if (count_str(err, msg) != 1)
			note(rep, "recovery: busd did not say \"%s\"", msg);
	}
	if (e->rec == R_REMOVED) {
		snprintf(msg, sizeof(msg), "'" TOPIC "': removing empty log segment %s", ls->log);
		if (count_str(err, msg) != 1)
			note(rep, "recovery: busd did not say \"%s\"", msg);
	}
	if (e->rec != R_CUT && strstr(err, "dropping the last"))
		note(rep, "recovery: busd dropped something: %.400s", strstr(err, "log segment"));
	if (e->rec != R_REMOVED && strstr(err, "removing empty"))
		note(rep, "recovery: busd removed a segment");
	if (strstr(err, "renamed to") || strstr(err, "missing from the log"))
		note(rep, "recovery: busd set a segment aside or left a hole");
	if (verbose > 1)
		printf("  busd's stderr:\n%s", err);
	free(err);

	/* What it left. */
	check_files(m, e, rep);
	return crashed;
}

/* ------------------------------------------------------------------------ */
/* The cases                                                                */
/* ------------------------------------------------------------------------ */

struct tally {
	uint64_t cases, kind[NKIND], on_idx, on_last, on_older, rec[NREC];
	uint64_t sound, changed, seeks;
	uint64_t verify_ok, reader_ok, recovery_ok, crashes, failures;
	uint64_t ns_restore, ns_verify, ns_reader, ns_recovery;
	uint64_t failed[500];     /* the first failing cases, for the summary */
	int nfailed;
};

static int force_restore = 1;

static void run_case(uint64_t c, struct tally *t)
{
	struct rng r = case_rng(P.seed, c);
	struct report vrep = { .len = 0 }, rrep = { .len = 0 }, crep = { .len = 0 };
	struct expect e;
	struct mut m;
	uint64_t t0, t1, t2, t3, t4;
	int crashed = 0;

	gen_mutation(&r, &m);
	expect_case(&m, &e);
	/* Half the seeks land before the damage. */
	expect_seek(&m, &e, below(&r, 2) && e.upto ? 1 + below(&r, e.upto) : 1 + below(&r, P.n));
	t0 = t_now_ns();
	if (restore(force_restore) < 0 || apply(&m) < 0) {
		fprintf(stderr, "corrupt: cannot write case %" PRIu64 "'s log\n", c);
		free_mutation(&m);
		exit(2);
	}
	if (verbose > 1) {
		printf("case %" PRIu64 ": %s\n  expect: %s; verify: ", c, m.desc, e.what);
		if (e.sound)
			printf("sound");
		else
			printf("first error %s offset %" PRId64, e.vfile, e.voff);
		printf("; reader: events 1..%" PRIu64, e.upto);
		if (e.gap)
			printf(", a gap of %" PRIu64 ", events %" PRIu64 "..%" PRIu64, e.gap,
			       e.upto + e.gap + 1, P.n);
		if (e.rerr)
			printf(", then %s at %s offset %" PRIu64, e.rerr == -EBADMSG ? "-EBADMSG" :
			       "-EPROTONOSUPPORT", e.rfile, e.roff);
		else
			printf(", then the end");
		if (e.seek)
			printf("; after a seek to %" PRIu64 ": events %" PRIu64 "..%" PRIu64
			       "%s%s", e.seek, e.sk.from, e.sk.to, e.sk.gap ? ", a gap" : "",
			       e.sk.rerr ? ", the error" : ", the end");
		else
			printf("; no seek (after the damage)");
		printf("; recovery: %s", rec_name[e.rec]);
		if (e.rec != R_REFUSED)
			printf(", the topic goes on at %" PRIu64, e.next);
		printf("\n");
	}
	t1 = t_now_ns();
	crashed |= check_verify(&e, e.sound, &vrep, "damaged log");
	t2 = t_now_ns();
	{
		struct run rd = { 1, e.upto, e.gap, e.rerr };

		crashed |= check_reader(&e, &rd, e.seek, &e.sk, &rrep, "damaged log");
	}
	t3 = t_now_ns();
	crashed |= check_recovery(&m, &e, &crep);
	if (e.sound_after && !crep.bad) {
		/* The recovered log: whole up to where the topic goes on. */
		struct run rd = whole(e.next - 1);

		crashed |= check_reader(&e, &rd, 0, NULL, &crep, "recovered log");
		crashed |= check_verify(&e, 1, &crep, "recovered log");
	}
	t4 = t_now_ns();
	/* What recovery may have changed; after a failure, everything. */
	mark(P.s[P.ns - 1].log);
	mark(P.s[P.ns - 1].idx);
	mark(P.s[P.ns - 2].idx);
	force_restore = vrep.bad || rrep.bad || crep.bad;
	if (stop_sig) {  /* interrupted: children died of our signal, not of a bug */
		free_mutation(&m);
		return;
	}

	t->cases++;
	t->kind[m.kind]++;
	if (m.idx)
		t->on_idx++;
	else if (m.seg == P.ns - 1)
		t->on_last++;
	else
		t->on_older++;
	t->rec[e.rec]++;
	t->sound += (uint64_t)e.sound;
	t->changed += (uint64_t)e.changed;
	t->seeks += e.seek != 0;
	t->verify_ok += !vrep.bad;
	t->reader_ok += !rrep.bad;
	t->recovery_ok += !crep.bad;
	t->crashes += (uint64_t)crashed;
	t->ns_restore += t1 - t0;
	t->ns_verify += t2 - t1;
	t->ns_reader += t3 - t2;
	t->ns_recovery += t4 - t3;
	if (vrep.bad || rrep.bad || crep.bad) {
		t->failures++;
		if (t->nfailed < (int)(sizeof(t->failed) / sizeof(t->failed[0])))
			t->failed[t->nfailed++] = c;
		if (t->failures <= 20 || verbose > 1)
			printf("FAIL case %" PRIu64 ": %s\n  expected: %s\n%s%s%s  replay: %s "
			       "--seed %" PRIu64 " --case %" PRIu64 "\n", c, m.desc, e.what,
			       vrep.text, rrep.text, crep.text, program_invocation_name, P.seed, c);
	} else if (verbose) {
		printf("ok   case %" PRIu64 ": %s: %s; %s (%.0f ms)\n", c, m.desc, e.what,
		       rec_name[e.rec], (double)(t4 - t0) / 1e6);
	}
	fflush(stdout);
	free_mutation(&m);
}

static void summary(const struct tally *t, double secs, int interrupted)
{
	double n = t->cases ? (double)t->cases : 1;

	printf("\ncorrupt: seed %" PRIu64 ", %" PRIu64 " case%s%s in %.1f s (%.1f ms a case: "
	       "restore %.1f, verify %.1f, reader %.1f, busd recovery and its checks %.1f)\n",
	       P.seed, t->cases, t->cases == 1 ? "" : "s", interrupted ? " (INTERRUPTED)" : "", secs,
	       secs * 1e3 / n, (double)t->ns_restore / 1e6 / n, (double)t->ns_verify / 1e6 / n,
	       (double)t->ns_reader / 1e6 / n, (double)t->ns_recovery / 1e6 / n);
	printf("  log: %d segments, %" PRIu64 " chunks, %" PRIu64 " events, %" PRIu64
	       " bytes, layout %08x\n", P.ns, P.chunks, P.n, P.bytes, P.layout);
	printf("  mutations:");
	for (int i = 0; i < NKIND; i++)
		printf("%s %s %" PRIu64, i ? "," : "", kind_name[i], t->kind[i]);
	printf("; on the last segment %" PRIu64 ", on an older segment %" PRIu64 ", on an "
	       "index %" PRIu64 "\n", t->on_last, t->on_older, t->on_idx);
	printf("  expected: %" PRIu64 " changed nothing, %" PRIu64 " left a sound log, %" PRIu64
	       " corrupt; recovery: ", t->cases - t->changed, t->sound - (t->cases - t->changed),
	       t->cases - t->sound);
	for (int i = 0; i < NREC; i++)
		printf("%s%s %" PRIu64, i ? ", " : "", rec_name[i], t->rec[i]);
	printf("\n  verify correct %" PRIu64 "/%" PRIu64 ", reader correct %" PRIu64 "/%" PRIu64
	       " (%" PRIu64 " with a seek), recovery correct %" PRIu64 "/%" PRIu64 ", crashes %"
	       PRIu64 ", failures %" PRIu64 "\n", t->verify_ok, t->cases, t->reader_ok, t->cases,
	       t->seeks, t->recovery_ok, t->cases, t->crashes, t->failures);
	if (t->nfailed) {
		printf("  failed cases:");
		for (int i = 0; i < t->nfailed; i++)
			printf(" %" PRIu64, t->failed[i]);
		printf("%s\n", t->failures > (uint64_t)t->nfailed ? " ..." : "");
	}
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

static void cleanup(void)
{
	if (P.busd_up && P.d.pid > 0)
		t_busd_kill(&P.d);
	t_fini();  /* kills what is left, removes the test directory */
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: corrupt [--cases N] [--seed S] [--case N] [-v]\n"
"\n"
"Writes a durable topic's log with a real busd (private directories under\n"
"$BUS_TEST_SHM or a new /dev/shm/bus-test.*, removed at exit), then damages\n"
"copies of it at random: truncation, 1-8 flipped bits, a range overwritten\n"
"with random bytes or zeroed, in a segment or an index. For each case it\n"
"checks `bus log verify` (the first bad file and offset, or a sound log),\n"
"the reader (exactly the events before the damage, then the error), busd's\n"
"recovery after a reboot (what it keeps, what it says), and that nothing\n"
"crashes. Exit status 0 only when every case is correct.\n"
"\n"
"  --cases N   cases to run (default 300)\n"
"  --seed S    the seed (default: from the clock); the log's layout and\n"
"              every case are functions of it\n"
"  --case N    run case N only, and show everything about it\n"
"  -v          a line per case (-v -v: everything, as --case)\n"
"  --help      this text\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cases", required_argument, NULL, 'n' },
		{ "seed", required_argument, NULL, 's' },
		{ "case", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
	uint64_t cases = 300, one = 0, t0;
	int have_one = 0, have_seed = 0, o;
	struct tally t;
	char *end;

	while ((o = getopt_long(argc, argv, "n:s:c:vh", opts, NULL)) != -1) {
		switch (o) {
		case 'n':
		case 's':
		case 'c': {
			uint64_t v;

			errno = 0;
			v = strtoull(optarg, &end, 0);
			if (errno || end == optarg || *end || optarg[0] == '-') {
				fprintf(stderr, "corrupt: --%s %s: expected a number\n",
					o == 'n' ? "cases" : o == 's' ? "seed" : "case", optarg);
				return 2;
			}
			if (o == 'n')
				cases = v;
			else if (o == 's')
				P.seed = v, have_seed = 1;
			else
				one = v, have_one = 1;
			break;
		}
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "corrupt: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!have_seed)
		P.seed = t_rand() >> 16;  /* short enough to type */
	if (have_one)
		verbose = 2;
	setvbuf(stdout, NULL, _IOLBF, 0);

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	t_init();
	atexit(cleanup);

	t0 = t_now_ns();
	printf("corrupt: seed %" PRIu64 "; writing the pristine log with busd in %s ...\n",
	       P.seed, t_dir());
	if (make_pristine() < 0) {
		if (stop_sig) {
			fprintf(stderr, "corrupt: interrupted\n");
			return 130;
		}
		fprintf(stderr, "corrupt: could not write the pristine log\n");
		return 2;
	}
	printf("corrupt: %d segments, %" PRIu64 " chunks, %" PRIu64 " events, %" PRIu64
	       " bytes, layout %08x (in %.1f s)\n", P.ns, P.chunks, P.n, P.bytes, P.layout,
	       (double)(t_now_ns() - t0) / 1e9);

	/* The pristine copy itself: sound for verify, whole for the reader. */
	{
		struct report rep = { .len = 0 };
		struct run rd = whole(P.n);
		struct expect e;

		memset(&e, 0, sizeof(e));
		expect_sound(&e);
		if (restore(1) < 0)
			return 2;
		check_verify(&e, 1, &rep, "pristine log");
		check_reader(&e, &rd, 0, NULL, &rep, "pristine log");
		if (rep.bad) {
			fprintf(stderr, "corrupt: the pristine log does not check out:\n%s", rep.text);
			return 1;
		}
	}

	memset(&t, 0, sizeof(t));
	t0 = t_now_ns();
	if (have_one) {
		run_case(one, &t);
	} else {
		for (uint64_t c = 0; c < cases && !stop_sig; c++)
			run_case(c, &t);
	}
	summary(&t, (double)(t_now_ns() - t0) / 1e9, !!stop_sig);
	if (stop_sig)
		return 130;
	return t.failures || t.crashes || t.cases != (have_one ? 1 : cases) ? 1 : 0;
}
