/* SPDX-License-Identifier: MIT */
/*
 * cmd_log.c — bus log verify, bus log dump: a durable topic's log, checked
 * or taken apart chunk by chunk.
 *
 * Both read the log directory directly (format: logfmt.h and
 * docs/LOG-FORMAT.md), so they work with no busd on a copy or a backup; given
 * a topic name they ask busd for the directory (bus_log_attach) and treat
 * the log as live: the last chunk of the last segment may be a write in
 * progress, not corruption, and retention may remove old segments while we
 * read. The chunk checks are libbus's own (log_chunk_hdr_check,
 * log_chunk_check, log_file_hdr_check), the ones every reader and busd's
 * recovery apply; what this file adds is walking past a bad chunk when its
 * header still says where the next one starts, continuity across segments,
 * and the index files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "crc32c.h"
#include "layout.h"
#include "log.h"

/* ---- opening a log -------------------------------------------------------- */

/* "bus: log verify WHAT: ...", returns 1. */
static int lfail(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int lfail(const char *what, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bus: %s %s: ", cli.cmd, what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

struct logdir {
	int dirfd;
	const char *what;        /* the path or topic, for messages */
	int live;                /* through busd: busd may be appending */
	uint64_t *segs;          /* first sequence numbers, sorted */
	size_t nsegs;
	int single;              /* PATH named one segment file */
	uint64_t total;          /* bytes of the .log files */
	struct bus *bus;
};

static int parse_seg_name(const char *name, uint64_t *first)
{
	if (strlen(name) != LOG_NAME_DIGITS + 4 || strcmp(name + LOG_NAME_DIGITS, ".log") ||
	    strspn(name, "0123456789") != LOG_NAME_DIGITS)
		return -1;
	*first = strtoull(name, NULL, 10);
	return 0;
}

/* PATH (a directory, or one NNN.log) when it has a '/' or names a directory
 * or file that exists; else a topic on the bus. 0, or an exit status. */
static int logdir_open(const char *arg, struct logdir *ld)
{
	struct stat st;
	struct bus_log *l;
	int r;

	memset(ld, 0, sizeof(*ld));
	ld->dirfd = -1;
	ld->what = arg;
	if (strchr(arg, '/') || stat(arg, &st) == 0) {
		if (stat(arg, &st) < 0)
			return lfail(arg, "%s", strerror(errno));
		if (S_ISREG(st.st_mode)) {
			const char *base = strrchr(arg, '/');
			char dir[4096];
			uint64_t first;

			base = base ? base + 1 : arg;
			if (parse_seg_name(base, &first) < 0)
				return lfail(arg, "not a log directory, nor a segment file "
					     "(NNNNNNNNNNNNNNNNNNNN.log)");
			snprintf(dir, sizeof(dir), "%.*s", (int)(base - arg), arg);
			ld->dirfd = open(dir[0] ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (ld->dirfd < 0)
				return lfail(dir, "%s", strerror(errno));
			ld->segs = malloc(sizeof(*ld->segs));
			if (!ld->segs)
				return fail("out of memory");
			ld->segs[0] = first;
			ld->nsegs = 1;
			ld->single = 1;
			return 0;
		}
		if (!S_ISDIR(st.st_mode))
			return lfail(arg, "not a log directory");
		ld->dirfd = open(arg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (ld->dirfd < 0)
			return lfail(arg, "%s", strerror(errno));
	} else {
		if (check_topic(arg) < 0)
			return EXIT_USAGE;
		if (!(ld->bus = cli_connect()))
			return 1;
		r = bus_log_attach(ld->bus, arg, &l);
		if (r < 0)
			return fail_bus(arg, r);
		ld->dirfd = fcntl(l->dirfd, F_DUPFD_CLOEXEC, 0);
		bus_log_close(l);
		if (ld->dirfd < 0)
			return lfail(arg, "%s", strerror(errno));
		ld->live = 1;
	}
	r = log_list(ld->dirfd, &ld->segs, &ld->nsegs);
	if (r < 0)
		return fail_bus(arg, r);
	return 0;
}

static void logdir_close(struct logdir *ld)
{
	if (ld->dirfd >= 0)
		close(ld->dirfd);
	free(ld->segs);
	bus_disconnect(ld->bus);
}

/* ---- walking a segment ---------------------------------------------------- */

/* What the walk says about one chunk (or about the place where chunks stop). */
struct chunk {
	uint64_t off;
	struct log_chunk_hdr h;
	const uint8_t *recs;     /* its records, when they could be read */
	int ok;                  /* every check passed, sequence included */
	int hdr_ok;              /* the header is sane: its fields mean something */
	int tail;                /* live log: the last chunk, still being written */
	int last;                /* the walk stops here (nothing after it is read) */
	const char *why;         /* when not ok */
};

struct walk {
	int dirfd;
	uint64_t first;          /* the segment's number */
	int live_last;           /* the active segment of a live log */
	uint8_t *buf;            /* LOG_CHUNK_MAX */
	int (*on_chunk)(struct walk *w, const struct chunk *c);
	void *arg;
	/* out */
	char name[32];
	uint64_t size;
	struct log_file_hdr fh;
	int fh_ok;
	const char *fh_why;      /* the file itself: cannot open, bad header */
	int fh_err;              /* errno of a failed open */
	uint64_t next_seq;       /* after the last sound chunk */
	uint64_t end;            /* where the walk stopped */
};

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return done == len;
}

/*
 * Walk the chunks of one segment, calling on_chunk for each (sound or not).
 * A chunk whose header is sane but whose CRC, records or sequence are not
 * is reported and stepped over (its length says where the next starts); a
 * chunk whose header is not sane, or that runs past the end of the file,
 * ends the walk. Returns 0, -EINTR on Ctrl-C, or what on_chunk returned.
 */
static int walk_segment(struct walk *w)
{
	struct stat st;
	uint64_t off, expect;
	int fd, r = 0;

	log_name(w->name, sizeof(w->name), w->first, ".log");
	w->fh_ok = 0;
	w->fh_why = NULL;
	w->fh_err = 0;
	w->size = 0;
	w->next_seq = expect = w->first;
	w->end = 0;
	fd = openat(w->dirfd, w->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		w->fh_err = errno;
		w->fh_why = strerror(errno);
		if (fd >= 0)
			close(fd);
		return 0;
	}
	w->size = (uint64_t)st.st_size;
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	r = read_at(fd, &w->fh, sizeof(w->fh), 0);
	if (r <= 0) {
		w->fh_why = r < 0 ? strerror(-r) : w->live_last && !w->size ?
			NULL : "file shorter than its header";
		close(fd);
		return 0;
	}
	r = log_file_hdr_check(&w->fh, LOG_FILE_MAGIC, w->first);
	if (r < 0) {
		w->fh_why = r == -EPROTONOSUPPORT ? "a log format version this bus does not read" :
			    r == -EPROTO ? "bad file magic (not a bus log segment)" :
			    w->fh.first_seq != w->first ? "the file header's first_seq is not "
							   "the one in its name" : "bad file header";
		close(fd);
		return 0;
	}
	w->fh_ok = 1;
	r = 0;
	for (off = LOG_HDR_SIZE; off < w->size && !r;) {
		struct chunk c = { .off = off };
		uint64_t end;

		if (interrupted) {
			r = -EINTR;
			break;
		}
		if (w->size - off < sizeof(c.h)) {
			c.why = "truncated chunk header";
			c.last = 1;
			c.tail = w->live_last;
			memset(&c.h, 0, sizeof(c.h));
			read_at(fd, &c.h, (size_t)(w->size - off), off);
			r = w->on_chunk(w, &c);
			break;
		}
		if ((r = read_at(fd, &c.h, sizeof(c.h), off)) < 0) {
			c.why = strerror(-r);
			c.last = 1;
			r = w->on_chunk(w, &c);
			break;
		}
		r = 0;
		if (log_chunk_hdr_check(&c.h, &c.why) < 0) {
			/* Nothing after it can be found: the length is not
			 * to be trusted. On a live log it may be a chunk
			 * being written, if no more than a chunk follows. */
			c.last = 1;
			c.tail = w->live_last && w->size - off <= sizeof(c.h) + LOG_CHUNK_MAX;
			r = w->on_chunk(w, &c);
			break;
		}
		c.hdr_ok = 1;
		end = off + sizeof(c.h) + c.h.len;
		if (end > w->size) {
			c.why = "truncated chunk (it runs past the end of the file)";
			c.last = 1;
			c.tail = w->live_last;
			r = w->on_chunk(w, &c);
			break;
		}
		if ((r = read_at(fd, w->buf, c.h.len, off + sizeof(c.h))) <= 0) {
			c.why = r < 0 ? strerror(-r) : "truncated chunk";
			c.last = 1;
			r = w->on_chunk(w, &c);
			break;
		}
		r = 0;
		c.recs = w->buf;
		if (log_chunk_check(&c.h, w->buf, &c.why) < 0) {
			/* A live log's last chunk may be mid-write. */
			c.tail = w->live_last && end == w->size;
		} else if (c.h.first_seq != expect) {
			c.why = c.h.first_seq > expect ? "sequence numbers do not continue from the "
				"previous chunk (events are missing)" : "sequence numbers do not "
				"continue from the previous chunk (they go back)";
		} else {
			c.ok = 1;
			w->next_seq = c.h.first_seq + c.h.count;
		}
		expect = c.h.first_seq + c.h.count;
		r = w->on_chunk(w, &c);
		off = end;
	}
	w->end = off;
	close(fd);
	return r;
}

/* ---- verify --------------------------------------------------------------- */

struct problem {
	char file[40];
	int64_t off;             /* -1: the file as a whole */
	char why[240];
};

struct plist {
	struct problem *v;
	size_t n, cap;
	uint64_t count;          /* including those not kept */
};

#define PROBLEMS_KEPT 1000

static void add(struct plist *p, const char *file, int64_t off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void add(struct plist *p, const char *file, int64_t off, const char *fmt, ...)
{
	struct problem *e;
	va_list ap;

	p->count++;
	if (p->n == PROBLEMS_KEPT)
		return;
	if (p->n == p->cap) {
		size_t nc = p->cap ? 2 * p->cap : 16;
		struct problem *v = realloc(p->v, nc * sizeof(*v));

		if (!v)
			return;
		p->v = v;
		p->cap = nc;
	}
	e = &p->v[p->n++];
	snprintf(e->file, sizeof(e->file), "%s", file);
	e->off = off;
	va_start(ap, fmt);
	vsnprintf(e->why, sizeof(e->why), fmt, ap);
	va_end(ap);
}

struct idx_chunk {
	uint64_t off, first_seq, first_ts;
	uint32_t count;
	int ok;                  /* else reported already: entries may point at it */
};

struct verify {
	struct logdir *ld;
	struct plist err, warn;
	uint64_t segments, chunks, events, bytes, idx_bytes;
	uint64_t first_seq, next_seq, first_ts, last_ts;
	int have_events;
	/* the segment being walked: its sound chunks, for the index check */
	struct idx_chunk *ch;
	size_t nch, capch;
	/* progress */
	uint64_t done_before;    /* bytes of the segments already walked */
	uint64_t t0, shown_at;
	int progress;            /* 1 when it may be shown, 2 once shown */
};

static void progress(struct verify *v, uint64_t done)
{
	uint64_t now = mono_ns_();
	char a[16], b[16];

	if (!v->progress || now - v->t0 < 500000000ull || now - v->shown_at < 100000000ull)
		return;
	v->shown_at = now;
	v->progress = 2;
	fmt_size(a, sizeof(a), done);
	fmt_size(b, sizeof(b), v->ld->total);
	fprintf(stderr, "\rbus log verify: %3.0f%%  %s of %s  %.0f MB/s   ",
		v->ld->total ? 100.0 * (double)done / (double)v->ld->total : 100.0, a, b,
		(double)done / 1e6 / ((double)(now - v->t0) / 1e9));
}

static void progress_end(struct verify *v)
{
	if (v->progress == 2)
		fprintf(stderr, "\r%60s\r", "");
}

static int verify_chunk(struct walk *w, const struct chunk *c)
{
	struct verify *v = w->arg;

	if (c->hdr_ok) {
		if (v->nch == v->capch) {
			size_t nc = v->capch ? 2 * v->capch : 256;
			struct idx_chunk *n = realloc(v->ch, nc * sizeof(*n));

			if (!n)
				return -ENOMEM;
			v->ch = n;
			v->capch = nc;
		}
		v->ch[v->nch++] = (struct idx_chunk){ c->off, c->h.first_seq, c->h.first_ts,
						      c->h.count, c->ok };
	}
	if (c->ok) {
		v->chunks++;
		v->events += c->h.count;
		if (!v->have_events) {
			v->have_events = 1;
			v->first_seq = c->h.first_seq;
			v->first_ts = c->h.first_ts;
		}
		v->next_seq = c->h.first_seq + c->h.count;
		v->last_ts = c->h.last_ts;
	} else if (c->tail) {
		add(&v->warn, w->name, (int64_t)c->off, "the last chunk is still being written "
		    "(%llu bytes so far): %s", (unsigned long long)(w->size - c->off), c->why);
	} else if (c->last) {
		add(&v->err, w->name, (int64_t)c->off, "%s; the last %llu bytes of the file "
		    "cannot be read", c->why, (unsigned long long)(w->size - c->off));
	} else {
		add(&v->err, w->name, (int64_t)c->off, "%s (chunk of events %llu..%llu)", c->why,
		    (unsigned long long)c->h.first_seq,
		    (unsigned long long)(c->h.first_seq + c->h.count - 1));
	}
	progress(v, v->done_before + c->off);
	return 0;
}

/* The index of the segment just walked: every entry must point at a sound
 * chunk and say what it holds. */
static void verify_index(struct verify *v, struct walk *w, int last)
{
	struct log_file_hdr fh;
	struct log_idx_entry e;
	struct stat st;
	char name[32];
	uint64_t n, matched = 0;
	size_t k = 0;
	int fd, r;

	log_name(name, sizeof(name), w->first, ".idx");
	fd = openat(v->ld->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			add(&v->warn, name, -1, "missing: readers scan %s from its start instead",
			    w->name);
		else
			add(&v->err, name, -1, "%s", strerror(errno));
		return;
	}
	if (fstat(fd, &st) < 0) {
		add(&v->err, name, -1, "%s", strerror(errno));
		close(fd);
		return;
	}
	v->idx_bytes += (uint64_t)st.st_size;
	r = read_at(fd, &fh, sizeof(fh), 0);
	if (r <= 0) {
		add(&v->err, name, 0, "%s", r < 0 ? strerror(-r) : "file shorter than its header");
		close(fd);
		return;
	}
	r = log_file_hdr_check(&fh, LOG_IDX_MAGIC, w->first);
	if (r < 0) {
		add(&v->err, name, 0, "%s", r == -EPROTONOSUPPORT ? "an index format version "
		    "this bus does not read" : r == -EPROTO ? "bad file magic (not a bus index)" :
		    "bad file header");
		close(fd);
		return;
	}
	n = ((uint64_t)st.st_size - LOG_HDR_SIZE) / sizeof(e);
	if (((uint64_t)st.st_size - LOG_HDR_SIZE) % sizeof(e)) {
		uint64_t at = LOG_HDR_SIZE + n * sizeof(e);

		/* Readers ignore it, and busd rebuilds the last segment's
		 * index when it starts: a crash (or a write in progress)
		 * leaves this there. */
		if (last)
			add(&v->warn, name, (int64_t)at, "a partial entry at the end (%s)",
			    w->live_last ? "being written" : "busd rebuilds this index when it "
			    "starts");
		else
			add(&v->err, name, (int64_t)at, "a partial entry at the end (%llu bytes)",
			    (unsigned long long)((uint64_t)st.st_size - at));
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t at = LOG_HDR_SIZE + i * sizeof(e);

		if (read_at(fd, &e, sizeof(e), at) <= 0) {
			add(&v->err, name, (int64_t)at, "cannot read entry %llu",
			    (unsigned long long)i);
			break;
		}
		if (crc32c(0, &e, offsetof(struct log_idx_entry, crc)) != e.crc) {
			add(&v->err, name, (int64_t)at, "entry %llu: CRC mismatch",
			    (unsigned long long)i);
			continue;
		}
		/* A live log: chunks written since we walked the segment are
		 * not ours to judge (their entries come after them). */
		if (v->ld->live && e.offset >= w->end)
			break;
		/* Entries follow the chunks in order: look from the last match. */
		while (k < v->nch && v->ch[k].off < e.offset)
			k++;
		if (k == v->nch || v->ch[k].off != e.offset) {
			size_t lo = 0, hi = v->nch;

			while (lo < hi) {  /* anywhere? */
				size_t mid = (lo + hi) / 2;

				if (v->ch[mid].off < e.offset)
					lo = mid + 1;
				else
					hi = mid;
			}
			if (lo < v->nch && v->ch[lo].off == e.offset)
				add(&v->err, name, (int64_t)at, "entry %llu (offset %llu) is out of "
				    "order: an earlier entry points further into %s",
				    (unsigned long long)i, (unsigned long long)e.offset, w->name);
			else
				add(&v->err, name, (int64_t)at, "entry %llu points at offset %llu of "
				    "%s, where no chunk starts", (unsigned long long)i,
				    (unsigned long long)e.offset, w->name);
			continue;
		}
		if (!v->ch[k].ok) {
			/* A bad chunk, reported as such: the entry may be right. */
			matched++;
			k++;
			continue;
		}
		if (v->ch[k].first_seq != e.first_seq || v->ch[k].count != e.count ||
		    v->ch[k].first_ts != e.first_ts) {
			add(&v->err, name, (int64_t)at, "entry %llu (offset %llu) says first_seq "
			    "%llu, count %u, first_ts %llu; the chunk there has %llu, %u, %llu",
			    (unsigned long long)i, (unsigned long long)e.offset,
			    (unsigned long long)e.first_seq, e.count,
			    (unsigned long long)e.first_ts,
			    (unsigned long long)v->ch[k].first_seq, v->ch[k].count,
			    (unsigned long long)v->ch[k].first_ts);
			continue;
		}
		matched++;
		k++;
	}
	if (matched < v->nch && matched == n)
		add(&v->warn, name, -1, "lists %llu of the %zu chunks of %s%s",
		    (unsigned long long)matched, v->nch, w->name, w->live_last ?
		    " (it lags the segment while busd writes)" : "; readers scan for the rest");
	close(fd);
}

/* Names in the directory that tell of trouble: set-aside segments, indexes
 * without their segment. */
static void verify_strays(struct verify *v)
{
	int fd = openat(v->ld->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	int conf = 0;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		uint64_t first;
		char log[32];
		struct stat st;

		if (!strcmp(e->d_name, LOG_CONF))
			conf = 1;
		if (len > 8 && !strcmp(e->d_name + len - 8, ".corrupt"))
			add(&v->warn, e->d_name, -1, "a segment busd's recovery set aside (bad file "
			    "header); it is not part of the log");
		if (len == LOG_NAME_DIGITS + 4 && !strcmp(e->d_name + LOG_NAME_DIGITS, ".idx") &&
		    strspn(e->d_name, "0123456789") == LOG_NAME_DIGITS) {
			first = strtoull(e->d_name, NULL, 10);
			log_name(log, sizeof(log), first, ".log");
			if (fstatat(v->ld->dirfd, log, &st, AT_SYMLINK_NOFOLLOW) < 0)
				add(&v->warn, e->d_name, -1, "an index without its segment %s", log);
		}
	}
	closedir(d);
	if (!conf && !v->ld->nsegs)
		add(&v->err, v->ld->what, -1, "not a log directory: no segments and no "
		    LOG_CONF);
}

static void print_problems(const char *key, const struct plist *p)
{
	for (size_t i = 0; i < p->n; i++) {
		const struct problem *e = &p->v[i];

		if (cli.json) {
			printf("%s{\"file\":", i ? "," : "");
			json_str(stdout, e->file, strlen(e->file));
			if (e->off >= 0)
				printf(",\"offset\":%lld,\"why\":", (long long)e->off);
			else
				printf(",\"offset\":null,\"why\":");
			json_str(stdout, e->why, strlen(e->why));
			printf("}");
		} else if (cli.tty) {
			if (e->off >= 0)
				printf("%-8s %s at offset %lld: %s\n", key, e->file, (long long)e->off,
				       e->why);
			else
				printf("%-8s %s: %s\n", key, e->file, e->why);
		} else {
			if (e->off >= 0)
				printf("%s\t%s\t%lld\t%s\n", key, e->file, (long long)e->off, e->why);
			else
				printf("%s\t%s\t-\t%s\n", key, e->file, e->why);
		}
	}
	if (p->count > p->n && !cli.json)
		printf(cli.tty ? "%-8s ... and %llu more\n" : "%s\t-\t-\t... and %llu more\n", key,
		       (unsigned long long)(p->count - p->n));
}

static void kv(const char *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void kv(const char *k, const char *fmt, ...)
{
	va_list ap;

	printf(cli.tty ? "%-10s " : "%s\t", k);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void verify_report(struct verify *v, int stopped)
{
	const struct problem *first = v->err.n ? &v->err.v[0] : NULL;
	const char *result = stopped ? "interrupted" : v->err.count ? "corrupt" : "ok";
	char ts0[48] = "", ts1[48] = "", sz[16];

	if (v->have_events) {
		fmt_time(ts0, sizeof(ts0), v->first_ts);
		fmt_time(ts1, sizeof(ts1), v->last_ts);
	}
	if (cli.json) {
		printf("{\"log\":");
		json_str(stdout, v->ld->what, strlen(v->ld->what));
		printf(",\"live\":%s,\"result\":\"%s\",\"ok\":%s,\"segments\":%llu,\"chunks\":%llu,"
		       "\"events\":%llu,\"bytes\":%llu,\"index_bytes\":%llu,",
		       v->ld->live ? "true" : "false", result,
		       !stopped && !v->err.count ? "true" : "false",
		       (unsigned long long)v->segments, (unsigned long long)v->chunks,
		       (unsigned long long)v->events, (unsigned long long)v->bytes,
		       (unsigned long long)v->idx_bytes);
		if (v->have_events)
			printf("\"first_seq\":%llu,\"last_seq\":%llu,\"first_ts\":\"%s\","
			       "\"last_ts\":\"%s\",\"first_ts_ns\":%llu,\"last_ts_ns\":%llu,",
			       (unsigned long long)v->first_seq,
			       (unsigned long long)(v->next_seq - 1), ts0, ts1,
			       (unsigned long long)v->first_ts, (unsigned long long)v->last_ts);
		else
			printf("\"first_seq\":null,\"last_seq\":null,\"first_ts\":null,"
			       "\"last_ts\":null,\"first_ts_ns\":null,\"last_ts_ns\":null,");
		printf("\"first_bad\":");
		if (first) {
			printf("{\"file\":");
			json_str(stdout, first->file, strlen(first->file));
			if (first->off >= 0)
				printf(",\"offset\":%lld,\"why\":", (long long)first->off);
			else
				printf(",\"offset\":null,\"why\":");
			json_str(stdout, first->why, strlen(first->why));
			printf("}");
		} else {
			printf("null");
		}
		printf(",\"error_count\":%llu,\"errors\":[", (unsigned long long)v->err.count);
		print_problems("error", &v->err);
		printf("],\"warning_count\":%llu,\"warnings\":[", (unsigned long long)v->warn.count);
		print_problems("warning", &v->warn);
		printf("]}\n");
		return;
	}
	print_problems("error", &v->err);
	print_problems("warning", &v->warn);
	kv("log", "%s%s", v->ld->what, v->ld->live ? " (live, through busd)" : "");
	if (cli.tty) {
		fmt_size(sz, sizeof(sz), v->bytes);
		kv("segments", "%llu (%s)", (unsigned long long)v->segments, sz);
		kv("chunks", "%llu", (unsigned long long)v->chunks);
		if (v->have_events) {
			kv("events", "%llu, seq %llu..%llu", (unsigned long long)v->events,
			   (unsigned long long)v->first_seq, (unsigned long long)(v->next_seq - 1));
			kv("time", "%s .. %s", ts0, ts1);
		} else {
			kv("events", "none");
		}
		if (stopped)
			kv("result", "INTERRUPTED: not all of the log was checked");
		else if (first && first->off >= 0)
			kv("result", "CORRUPT: %llu error%s; the first: %s at offset %lld: %s",
			   (unsigned long long)v->err.count, v->err.count == 1 ? "" : "s",
			   first->file, (long long)first->off, first->why);
		else if (first)
			kv("result", "CORRUPT: %llu error%s; the first: %s: %s",
			   (unsigned long long)v->err.count, v->err.count == 1 ? "" : "s",
			   first->file, first->why);
		else
			kv("result", "ok%s", v->warn.count ? " (with warnings)" : "");
		return;
	}
	kv("segments", "%llu", (unsigned long long)v->segments);
	kv("chunks", "%llu", (unsigned long long)v->chunks);
	kv("events", "%llu", (unsigned long long)v->events);
	kv("bytes", "%llu", (unsigned long long)v->bytes);
	kv("first_seq", "%llu", v->have_events ? (unsigned long long)v->first_seq : 0ull);
	kv("last_seq", "%llu", v->have_events ? (unsigned long long)(v->next_seq - 1) : 0ull);
	kv("first_ts", "%s", v->have_events ? ts0 : "-");
	kv("last_ts", "%s", v->have_events ? ts1 : "-");
	kv("errors", "%llu", (unsigned long long)v->err.count);
	kv("warnings", "%llu", (unsigned long long)v->warn.count);
	kv("result", "%s", result);
}

static int log_verify(struct logdir *ld)
{
	struct verify v = { .ld = ld };
	struct walk w = { .dirfd = ld->dirfd, .on_chunk = verify_chunk, .arg = &v };
	uint64_t expect = 0, errs = 0;
	int r = 0, stopped = 0, prev_bad = 0;

	w.buf = malloc(LOG_CHUNK_MAX);
	if (!w.buf)
		return fail("out of memory");
	for (size_t i = 0; i < ld->nsegs; i++) {
		struct stat st;
		char name[32];

		log_name(name, sizeof(name), ld->segs[i], ".log");
		if (fstatat(ld->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			ld->total += (uint64_t)st.st_size;
	}
	v.t0 = mono_ns_();
	v.progress = isatty(2) && !cli.quiet;
	if (!ld->single)
		verify_strays(&v);
	for (size_t i = 0; i < ld->nsegs && !interrupted; i++) {
		w.first = ld->segs[i];
		w.live_last = ld->live && i + 1 == ld->nsegs;
		v.nch = 0;
		errs = v.err.count;
		r = walk_segment(&w);
		if (r == -EINTR) {
			stopped = 1;
			r = 0;
			break;
		}
		if (r < 0)
			break;
		if (w.fh_err == ENOENT && ld->live) {
			/* Retention removed it since we listed the directory. */
			add(&v.warn, w.name, -1, "removed by retention while being verified");
			continue;
		}
		v.segments++;
		v.bytes += w.size;
		v.done_before += w.size;
		if (!w.fh_ok) {
			if (w.fh_why)
				add(&v.err, w.name, w.fh_err ? -1 : 0, "%s", w.fh_why);
			else
				add(&v.warn, w.name, -1, "empty: being created");
			prev_bad = 1;
			continue;
		}
		/* Segments follow each other without a gap or an overlap (after
		 * a segment with errors, the gap is already reported). */
		if (expect && w.first != expect && !prev_bad)
			add(&v.err, w.name, -1, w.first > expect ? "events %llu..%llu are missing: "
			    "the previous segment ends before them" : "starts at event %llu, but "
			    "the previous segment already reaches %llu",
			    (unsigned long long)(w.first > expect ? expect : w.first),
			    (unsigned long long)(w.first > expect ? w.first - 1 : expect - 1));
		expect = w.next_seq;
		prev_bad = v.err.count > errs;
		verify_index(&v, &w, i + 1 == ld->nsegs);
	}
	if (interrupted)
		stopped = 1;
	progress_end(&v);
	if (!r) {
		verify_report(&v, stopped);
		fflush(stdout);
		if (stopped) {
			r = lfail(ld->what, "interrupted; the log was not completely verified");
		} else if (v.err.count) {
			const struct problem *e = &v.err.v[0];

			if (e->off >= 0)
				fprintf(stderr, "bus: %s %s: corrupt: %s at offset %lld: %s\n",
					cli.cmd, ld->what, e->file, (long long)e->off, e->why);
			else
				fprintf(stderr, "bus: %s %s: corrupt: %s: %s\n", cli.cmd, ld->what,
					e->file, e->why);
			r = 1;
		}
	} else {
		r = lfail(ld->what, "%s", strerror(-r));
	}
	free(v.err.v);
	free(v.warn.v);
	free(v.ch);
	free(w.buf);
	return r;
}

/* ---- dump ----------------------------------------------------------------- */

struct dump {
	uint64_t bad;
	uint64_t chunks;
};

static void hex_prefix(FILE *f, const uint8_t *p, uint32_t len)
{
	uint32_t n = len < 32 ? len : 32;

	for (uint32_t i = 0; i < n; i++)
		fprintf(f, "%02x", p[i]);
	if (len > n)
		fputs("...", f);
}

/* The records of a chunk, bounds-checked (a bad chunk's may be garbage). */
static void dump_events(const struct chunk *c)
{
	uint64_t off = 0;
	int first = 1;

	if (cli.json)
		printf(",\"events\":[");
	for (uint32_t i = 0; i < c->h.count && c->recs; i++) {
		struct rec_hdr r;

		if (c->h.len - off < sizeof(r))
			break;
		memcpy(&r, c->recs + off, sizeof(r));
		if (r.len > c->h.len - off - sizeof(r))
			break;
		if (cli.json) {
			printf("%s{\"seq\":%llu,\"type\":%u,\"len\":%u,\"ts_ns\":%llu,\"hex\":\"",
			       first ? "" : ",", (unsigned long long)r.seq, r.type, r.len,
			       (unsigned long long)r.ts_ns);
			hex_prefix(stdout, c->recs + off + sizeof(r), r.len);
			printf("\"}");
		} else if (cli.tty) {
			printf("    seq %-12llu type %-6u len %-8u ", (unsigned long long)r.seq, r.type,
			       r.len);
			hex_prefix(stdout, c->recs + off + sizeof(r), r.len);
			putchar('\n');
		} else {
			printf("event\t%llu\t%u\t%u\t%llu\t", (unsigned long long)r.seq, r.type, r.len,
			       (unsigned long long)r.ts_ns);
			hex_prefix(stdout, c->recs + off + sizeof(r), r.len);
			putchar('\n');
		}
		first = 0;
		off += rec_size(r.len);
		if (off > c->h.len)
			break;
	}
	if (cli.json)
		printf("]");
}

static int dump_chunk(struct walk *w, const struct chunk *c)
{
	struct dump *d = w->arg;
	const char *crc = c->ok ? "ok" : c->tail ? "incomplete" : "bad";
	char ts0[48] = "-", ts1[48] = "-";

	d->chunks++;
	if (!c->ok && !c->tail)
		d->bad++;
	if (c->hdr_ok) {
		fmt_time(ts0, sizeof(ts0), c->h.first_ts);
		fmt_time(ts1, sizeof(ts1), c->h.last_ts);
	}
	if (cli.json) {
		printf("{\"kind\":\"chunk\",\"file\":\"%s\",\"offset\":%llu,\"first_seq\":%llu,"
		       "\"count\":%u,\"len\":%llu,\"first_ts\":\"%s\",\"last_ts\":\"%s\","
		       "\"first_ts_ns\":%llu,\"last_ts_ns\":%llu,\"crc\":\"%s\",\"why\":", w->name,
		       (unsigned long long)c->off, (unsigned long long)c->h.first_seq, c->h.count,
		       (unsigned long long)c->h.len, ts0, ts1, (unsigned long long)c->h.first_ts,
		       (unsigned long long)c->h.last_ts, crc);
		if (c->why)
			json_str(stdout, c->why, strlen(c->why));
		else
			printf("null");
		if (cli.verbose && c->hdr_ok)
			dump_events(c);
		printf("}\n");
	} else if (cli.tty) {
		printf("  %-10llu %-12llu %7u %9llu  %-30s  %-30s  %s%s%s\n",
		       (unsigned long long)c->off, (unsigned long long)c->h.first_seq, c->h.count,
		       (unsigned long long)c->h.len, ts0, ts1, crc, c->why ? ": " : "",
		       c->why ? c->why : "");
		if (cli.verbose && c->hdr_ok)
			dump_events(c);
	} else {
		printf("chunk\t%s\t%llu\t%llu\t%u\t%llu\t%s\t%s\t%s\t%s\n", w->name,
		       (unsigned long long)c->off, (unsigned long long)c->h.first_seq, c->h.count,
		       (unsigned long long)c->h.len, ts0, ts1, crc, c->why ? c->why : "-");
		if (cli.verbose && c->hdr_ok)
			dump_events(c);
	}
	if (c->last && !cli.json && cli.tty && c->off < w->size)
		printf("  (the rest of %s, %llu bytes from offset %llu, cannot be walked)\n",
		       w->name, (unsigned long long)(w->size - c->off), (unsigned long long)c->off);
	return 0;
}

static void dump_segment_line(const struct walk *w)
{
	char ts[48] = "-";

	if (w->fh_ok)
		fmt_time(ts, sizeof(ts), w->fh.created_ns);
	if (cli.json) {
		printf("{\"kind\":\"segment\",\"file\":\"%s\",\"first_seq\":%llu,\"bytes\":%llu,"
		       "\"created\":\"%s\",\"ok\":%s,\"why\":", w->name, (unsigned long long)w->first,
		       (unsigned long long)w->size, ts, w->fh_ok ? "true" : "false");
		if (w->fh_why)
			json_str(stdout, w->fh_why, strlen(w->fh_why));
		else
			printf("null");
		printf("}\n");
	} else if (cli.tty) {
		printf("%s: first_seq %llu, %llu bytes, created %s%s%s\n", w->name,
		       (unsigned long long)w->first, (unsigned long long)w->size, ts,
		       w->fh_why ? "; BAD: " : "", w->fh_why ? w->fh_why : "");
		if (w->fh_ok)
			printf("  %-10s %-12s %7s %9s  %-30s  %-30s  %s\n", "OFFSET", "FIRST_SEQ",
			       "COUNT", "LEN", "FIRST_TS", "LAST_TS", "CRC");
	} else {
		printf("segment\t%s\t%llu\t%llu\t%s\t%s\n", w->name, (unsigned long long)w->first,
		       (unsigned long long)w->size, ts, w->fh_why ? w->fh_why : "ok");
	}
}

/* The walk calls dump_chunk as it goes; the segment's line comes first, so
 * read the header before walking. */
static int dump_seg_header(struct walk *w)
{
	int fd;
	ssize_t n;
	struct stat st;

	log_name(w->name, sizeof(w->name), w->first, ".log");
	w->fh_ok = 0;
	w->fh_why = NULL;
	w->fh_err = 0;
	w->size = 0;
	fd = openat(w->dirfd, w->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		w->fh_err = errno;
		w->fh_why = strerror(errno);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	w->size = (uint64_t)st.st_size;
	n = pread(fd, &w->fh, sizeof(w->fh), 0);
	close(fd);
	if (n != (ssize_t)sizeof(w->fh)) {
		w->fh_why = "file shorter than its header";
		return -1;
	}
	if (log_file_hdr_check(&w->fh, LOG_FILE_MAGIC, w->first) < 0) {
		w->fh_why = "bad file header";
		return -1;
	}
	w->fh_ok = 1;
	return 0;
}

static int log_dump(struct logdir *ld)
{
	struct dump d = { 0 };
	struct walk w = { .dirfd = ld->dirfd, .on_chunk = dump_chunk, .arg = &d };
	int r = 0, bad_files = 0;

	w.buf = malloc(LOG_CHUNK_MAX);
	if (!w.buf)
		return fail("out of memory");
	if (!ld->nsegs && !cli.quiet)
		fprintf(stderr, "bus: log dump %s: no segments\n", ld->what);
	for (size_t i = 0; i < ld->nsegs && !interrupted; i++) {
		w.first = ld->segs[i];
		w.live_last = ld->live && i + 1 == ld->nsegs;
		if (dump_seg_header(&w) < 0) {
			if (ld->live && w.fh_err == ENOENT)
				continue;  /* retention removed it since the listing */
			if (!(w.live_last && !w.size))
				bad_files++;
			dump_segment_line(&w);
			continue;
		}
		dump_segment_line(&w);
		r = walk_segment(&w);
		if (r < 0)
			break;
	}
	fflush(stdout);
	if (r == -EINTR || interrupted)
		r = lfail(ld->what, "interrupted");
	else if (r < 0)
		r = lfail(ld->what, "%s", strerror(-r));
	else if (d.bad || bad_files) {
		fprintf(stderr, "bus: log dump %s: ", ld->what);
		if (d.bad)
			fprintf(stderr, "%llu bad chunk%s%s", (unsigned long long)d.bad,
				d.bad == 1 ? "" : "s", bad_files ? ", " : "");
		if (bad_files)
			fprintf(stderr, "%d segment file%s with a bad header", bad_files,
				bad_files == 1 ? "" : "s");
		fprintf(stderr, " (`bus log verify` for the details)\n");
		r = 1;
	}
	free(w.buf);
	return r;
}

/* ---- the command ---------------------------------------------------------- */

static int cmd_log(int argc, char **argv)
{
	struct logdir ld;
	const char *sub;
	int r;

	if (argc < 2)
		return usage_error("verify or dump?");
	sub = argv[1];
	if (strcmp(sub, "verify") && strcmp(sub, "dump"))
		return usage_error("no subcommand '%s' (verify or dump)", sub);
	for (int i = 2; i < argc; i++)
		if (argv[i][0] == '-' && argv[i][1] && strcmp(argv[i], "--"))
			return usage_error("bad option '%s'", argv[i]);
	if (argc > 2 && !strcmp(argv[2], "--")) {
		argv++;
		argc--;
	}
	if (argc != 3)
		return argc < 3 ? usage_error("which log? a directory, a segment file or a topic") :
				  usage_error("unexpected argument '%s'", argv[3]);
	cli.cmd = !strcmp(sub, "verify") ? "log verify" : "log dump";
	r = logdir_open(argv[2], &ld);
	if (r) {
		logdir_close(&ld);
		return r;
	}
	catch_interrupts();
	r = !strcmp(sub, "verify") ? log_verify(&ld) : log_dump(&ld);
	logdir_close(&ld);
	return r;
}

const struct command def_log = {
	"log", cmd_log, "check a durable topic's log, or dump it chunk by chunk",
	  "Usage: bus log verify [--json] PATH|TOPIC\n"
	  "       bus log dump [-v] [--json] PATH|TOPIC\n"
	  "Read a durable topic's log directly from its files. PATH is a log\n"
	  "directory (STATE/log/TOPIC, or a copy of one) or one segment file\n"
	  "(NNNNNNNNNNNNNNNNNNNN.log): no busd is needed. An argument without a '/'\n"
	  "that is not an existing file or directory is a topic: busd says where its\n"
	  "log is, and the log is taken as live (a last chunk still being written,\n"
	  "or an index entry not yet written, is a warning, not an error).\n"
	  "\n"
	  "verify  checks every segment: its file header; every chunk's header, CRC\n"
	  "        and records (lengths, sequence numbers, timestamps); that sequence\n"
	  "        numbers continue from chunk to chunk and segment to segment; and\n"
	  "        that every entry of each index (.idx) points at a sound chunk with\n"
	  "        the same first_seq, first_ts and count (a missing index is a\n"
	  "        warning). Prints each error and warning (FILE, OFFSET, why), then a\n"
	  "        summary: segments, chunks, events, bytes, first..last sequence and\n"
	  "        time, result. On a terminal a table, else tab-separated lines:\n"
	  "        'error|warning FILE OFFSET WHY' (OFFSET '-' for a whole file), then\n"
	  "        'KEY VALUE' for log, segments, chunks, events, bytes, first_seq,\n"
	  "        last_seq, first_ts, last_ts, errors, warnings and result (ok,\n"
	  "        corrupt or interrupted). Exit status 0 when the log is sound\n"
	  "        (warnings allowed), 1 when anything is wrong (the first bad file\n"
	  "        and offset also go to stderr) or when interrupted.\n"
	  "        Shows progress on a terminal; Ctrl-C stops it.\n"
	  "dump    prints each segment (file, first_seq, bytes, created) and each\n"
	  "        chunk: offset, first_seq, count, len, first and last timestamp,\n"
	  "        and crc ok, bad (with why) or incomplete (being written). With -v\n"
	  "        also each event: seq, type, len and its first 32 bytes in hex.\n"
	  "        Walks past a bad chunk when its header still gives its length.\n"
	  "        Without a terminal: lines 'segment FILE FIRST_SEQ BYTES CREATED OK',\n"
	  "        'chunk FILE OFFSET FIRST_SEQ COUNT LEN FIRST_TS LAST_TS CRC WHY' and\n"
	  "        'event SEQ TYPE LEN TS_NS HEX', tab-separated. Exit status 1 if a\n"
	  "        chunk or segment header is bad.\n"
	  "\n"
	  "--json  verify: one object (log, live, result, ok, segments, chunks, events,\n"
	  "        bytes, index_bytes, first_seq, last_seq, first_ts, last_ts,\n"
	  "        first_ts_ns, last_ts_ns, first_bad, error_count, errors,\n"
	  "        warning_count, warnings; each problem {file, offset, why}).\n"
	  "        dump: one object per line, {\"kind\":\"segment\",...} or\n"
	  "        {\"kind\":\"chunk\",...} with the fields above (and \"events\" with -v).\n"
	  "Examples:\n"
	  "  bus log verify orders\n"
	  "  bus log verify ~/.local/state/bus/log/orders\n"
	  "  bus -v log dump ./backup/orders/00000000000000000001.log | less\n"
};
