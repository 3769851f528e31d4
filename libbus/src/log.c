/* SPDX-License-Identifier: MIT */
/*
 * log.c — the log of a durable topic, read side (and the helpers busd uses
 * to write it). The format is in logfmt.h and docs/LOG-FORMAT.md.
 *
 * Every chunk is checked before any of its events is returned: header
 * fields, CRC-32C over header and records, and each record's length and
 * sequence number. A chunk that fails is reported with its file and offset
 * and reading stops there: a reader never returns an event from a chunk it
 * could not verify. On a live log (the flusher appending), a short or
 * unverifiable *last* chunk of the *last* segment is a write in progress:
 * "nothing more yet", not corruption.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "err.h"
#include "layout.h"
#include "log.h"

void log_name(char *buf, size_t size, uint64_t first_seq, const char *ext)
{
	snprintf(buf, size, "%020llu%s", (unsigned long long)first_seq, ext);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int log_list(int dirfd, uint64_t **firsts, size_t *n)
{
	int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	uint64_t *v = NULL;
	size_t cnt = 0, cap = 0;

	*firsts = NULL;
	*n = 0;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return bus_err(errno, "cannot list the log directory: %s", strerror(errno));
	}
	rewinddir(d);
	while ((e = readdir(d))) {
		char *end;
		unsigned long long s;

		if (strlen(e->d_name) != LOG_NAME_DIGITS + 4 ||
		    strcmp(e->d_name + LOG_NAME_DIGITS, ".log") ||
		    strspn(e->d_name, "0123456789") != LOG_NAME_DIGITS)
			continue;
		s = strtoull(e->d_name, &end, 10);
		if (cnt == cap) {
			size_t nc = cap ? 2 * cap : 16;
			uint64_t *nv = realloc(v, nc * sizeof(*nv));

			if (!nv) {
				free(v);
				closedir(d);
				return bus_err(ENOMEM, "out of memory");
			}
			v = nv;
			cap = nc;
		}
		v[cnt++] = s;
	}
	closedir(d);
	if (cnt) /* qsort(NULL, 0, ...) is undefined */
		qsort(v, cnt, sizeof(*v), cmp_u64);
	*firsts = v;
	*n = cnt;
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void log_file_hdr_init(struct log_file_hdr *h, const char *magic, uint64_t first_seq)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, magic, 8);
	h->version = LOG_VERSION;
	h->hdr_size = LOG_HDR_SIZE;
	h->first_seq = first_seq;
	h->created_ns = now_ns();
	h->crc = crc32c(0, h, sizeof(*h));
}

int log_file_hdr_check(const struct log_file_hdr *h, const char *magic, uint64_t first_seq)
{
	struct log_file_hdr c = *h;

	c.crc = 0;
	if (memcmp(h->magic, magic, 8))
		return -EPROTO;
	if (h->version != LOG_VERSION)
		return -EPROTONOSUPPORT;
	if (h->hdr_size != LOG_HDR_SIZE || crc32c(0, &c, sizeof(c)) != h->crc ||
	    h->first_seq != first_seq || h->flags)
		return -EBADMSG;
	for (size_t i = 0; i < sizeof(h->reserved); i++)
		if (h->reserved[i])
			return -EBADMSG;
	return 0;
}

void log_chunk_seal(struct log_chunk_hdr *h, uint64_t first_seq, uint32_t count,
		    uint64_t first_ts, uint64_t last_ts, const struct iovec *iov, int iovcnt)
{
	uint64_t len = 0;
	uint32_t crc;

	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	memset(h, 0, sizeof(*h));
	h->magic = LOG_CHUNK_MAGIC;
	h->version = LOG_VERSION;
	h->hdr_size = LOG_HDR_SIZE;
	h->count = count;
	h->first_seq = first_seq;
	h->first_ts = first_ts;
	h->last_ts = last_ts;
	h->len = len;
	crc = crc32c(0, h, sizeof(*h));
	for (int i = 0; i < iovcnt; i++)
		crc = crc32c(crc, iov[i].iov_base, iov[i].iov_len);
	h->crc = crc;
}

void log_idx_seal(struct log_idx_entry *e)
{
	e->crc = crc32c(0, e, offsetof(struct log_idx_entry, crc));
}

int log_chunk_hdr_check(const struct log_chunk_hdr *h, const char **why)
{
	if (h->magic != LOG_CHUNK_MAGIC)
		*why = "bad chunk magic";
	else if (h->version != LOG_VERSION)
		*why = "chunk format version this libbus does not read";
	else if (h->hdr_size != LOG_HDR_SIZE || h->flags || h->reserved0 || h->reserved1)
		*why = "bad chunk header fields";
	else if (!h->count || h->len % REC_ALIGN || h->len > LOG_CHUNK_MAX ||
		 h->len < (uint64_t)h->count * sizeof(struct rec_hdr))
		*why = "impossible chunk length or count";
	else
		return 0;
	return -EBADMSG;
}

int log_chunk_check(const struct log_chunk_hdr *h, const uint8_t *recs, const char **why)
{
	struct log_chunk_hdr c = *h;
	uint64_t off = 0, seq = h->first_seq, ts = 0;
	uint32_t i;

	if (log_chunk_hdr_check(h, why) < 0)
		return -EBADMSG;
	c.crc = 0;
	if (crc32c(crc32c(0, &c, sizeof(c)), recs, h->len) != h->crc) {
		*why = "CRC mismatch";
		return -EBADMSG;
	}
	/* The CRC matches, so these are the bytes busd wrote; still check
	 * them: busd copied them from a ring a hostile producer can write. */
	for (i = 0; i < h->count; i++) {
		struct rec_hdr r;

		if (h->len - off < sizeof(r))
			break;
		memcpy(&r, recs + off, sizeof(r));
		if (r.seq != seq || r.len > h->len - off - sizeof(r) ||
		    rec_size(r.len) > h->len - off) {
			*why = "bad record in chunk";
			return -EBADMSG;
		}
		if (i == 0 && r.ts_ns != h->first_ts) {
			*why = "first timestamp does not match the chunk header";
			return -EBADMSG;
		}
		ts = r.ts_ns;
		off += rec_size(r.len);
		seq++;
	}
	if (i != h->count || off != h->len || ts != h->last_ts) {
		*why = "chunk records do not match its header";
		return -EBADMSG;
	}
	return 0;
}

static int read_full(int fd, void *buf, size_t len, uint64_t off)
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
	return (int)(done == len);  /* 1 complete, 0 short (end of file) */
}

int log_scan_segment(int fd, uint64_t first_seq, struct log_scan *sc)
{
	struct log_file_hdr fh;
	struct log_chunk_hdr h;
	struct stat st;
	uint8_t *buf = NULL;
	uint64_t off;
	int r;

	sc->valid_end = 0;
	sc->chunks = 0;
	sc->first_seq = sc->next_seq = first_seq;
	sc->first_ts = sc->last_ts = 0;
	sc->why = NULL;
	if (fstat(fd, &st) < 0)
		return -errno;
	sc->file_size = (uint64_t)st.st_size;
	r = read_full(fd, &fh, sizeof(fh), 0);
	if (r < 0)
		return r;
	if (r == 0) {
		sc->why = "file shorter than its header";
		return 1;
	}
	r = log_file_hdr_check(&fh, LOG_FILE_MAGIC, first_seq);
	if (r < 0) {
		sc->why = r == -EPROTONOSUPPORT ? "log format version this libbus does not read"
						 : "bad file header";
		return r;
	}
	off = LOG_HDR_SIZE;
	sc->valid_end = off;
	buf = malloc(LOG_CHUNK_MAX);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (off == sc->file_size) {
			r = 0;
			break;
		}
		r = read_full(fd, &h, sizeof(h), off);
		if (r < 0)
			break;
		r = 1;
		if (off + sizeof(h) > sc->file_size) {
			sc->why = "truncated chunk header";
			break;
		}
		if (log_chunk_hdr_check(&h, &sc->why) < 0)
			break;
		if (off + sizeof(h) + h.len > sc->file_size) {
			sc->why = "truncated chunk";
			break;
		}
		if (read_full(fd, buf, h.len, off + sizeof(h)) != 1) {
			sc->why = "truncated chunk";
			break;
		}
		if (log_chunk_check(&h, buf, &sc->why) < 0)
			break;
		if (h.first_seq != sc->next_seq) {
			sc->why = "sequence numbers do not continue from the previous chunk";
			break;
		}
		if (!sc->chunks)
			sc->first_ts = h.first_ts;
		if (sc->on_chunk)
			sc->on_chunk(sc->arg, &h, off);
		sc->chunks++;
		sc->next_seq = h.first_seq + h.count;
		sc->last_ts = h.last_ts;
		off += sizeof(h) + h.len;
		sc->valid_end = off;
	}
	free(buf);
	return r;
}

/* ---- the reader ---------------------------------------------------------- */

int log_open_fd(int dirfd, const char *what, struct bus_log **out)
{
	struct bus_log *l = calloc(1, sizeof(*l));
	int r;

	*out = NULL;
	if (!l) {
		close(dirfd);
		return bus_err(ENOMEM, "out of memory");
	}
	l->dirfd = dirfd;
	l->fd = -1;
	l->limit = UINT64_MAX;
	snprintf(l->dir, sizeof(l->dir), "%s", what);
	r = log_list(dirfd, &l->segs, &l->nsegs);
	if (r < 0) {
		close(dirfd);
		free(l);
		return r;
	}
	l->next_seq = l->nsegs ? l->segs[0] : 0;
	*out = l;
	return 0;
}

static int corrupt(struct bus_log *l, uint64_t off, const char *why)
{
	char name[32];

	log_name(name, sizeof(name), l->segs[l->seg], ".log");
	return bus_err(EBADMSG, "log %s/%s: corrupt at offset %llu: %s; reading stops there",
		       l->dir, name, (unsigned long long)off, why);
}

static int open_seg(struct bus_log *l, size_t i)
{
	struct log_file_hdr fh;
	char name[32];
	int r;

	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	l->seg = i;
	l->len = l->rec = 0;
	log_name(name, sizeof(name), l->segs[i], ".log");
	l->fd = openat(l->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (l->fd < 0 && errno == ENOENT && l->live) {
		/* Retention removed it since we listed: go on with the first
		 * segment after it; the events skipped are reported as a gap
		 * (new_seg). */
		uint64_t *segs, cur = l->segs[i];
		size_t n, k = 0;

		if (log_list(l->dirfd, &segs, &n) < 0)
			return -errno;
		while (k < n && segs[k] <= cur)
			k++;
		free(l->segs);
		l->segs = segs;
		l->nsegs = n;
		l->new_seg = 1;
		if (k == n) {
			/* Nothing after it yet: next time start over from the
			 * newest segment (events already read are skipped). */
			l->seg = n ? n - 1 : 0;
			return 0;
		}
		return open_seg(l, k);
	}
	if (l->fd < 0)
		return bus_err(errno, "log %s/%s: %s", l->dir, name, strerror(errno));
	r = read_full(l->fd, &fh, sizeof(fh), 0);
	if (r < 0)
		return bus_err(-r, "log %s/%s: %s", l->dir, name, strerror(-r));
	if (r == 0) {
		if (!l->live || i + 1 != l->nsegs)
			return corrupt(l, 0, "file shorter than its header");
		/* Not yet: busd creates a segment, then writes its header
		 * (seg_new), and one that died in between leaves it empty for
		 * the next busd to remove. Keep nothing of it: the next call
		 * opens it again by name and reads it from its header (l->off
		 * is still the previous segment's end, and the file may be
		 * replaced). */
		close(l->fd);
		l->fd = -1;
		return 0;
	}
	r = log_file_hdr_check(&fh, LOG_FILE_MAGIC, l->segs[i]);
	if (r == -EPROTONOSUPPORT)
		return bus_err(EPROTONOSUPPORT, "log %s/%s: format version %u; this libbus reads "
			       "version %u", l->dir, name, fh.version, LOG_VERSION);
	if (r < 0)
		return corrupt(l, 0, "bad file header");
	l->off = LOG_HDR_SIZE;
	return 1;
}

/* Load the next chunk: 1, 0 at the end (for now), or -errno. */
static int load_chunk(struct bus_log *l, uint64_t *expect)
{
	struct log_chunk_hdr h;
	const char *why = NULL;
	int r, last;

	for (;;) {
		if (l->fd < 0) {
			if (l->seg >= l->nsegs)
				return 0;
			r = open_seg(l, l->seg);
			if (r <= 0)
				return r;
		}
		last = l->seg + 1 == l->nsegs;
		r = read_full(l->fd, &h, sizeof(h), l->off);
		if (r < 0)
			return bus_err(-r, "log %s: read: %s", l->dir, strerror(-r));
		if (r == 0) {
			struct stat st;

			if (fstat(l->fd, &st) == 0 && (uint64_t)st.st_size == l->off) {
				if (!last && !l->live) {  /* on to the next segment */
					close(l->fd);
					l->fd = -1;
					l->seg++;
					l->new_seg = 1;
					continue;
				}
				if (l->live) {     /* rolled, or retention removed some */
					uint64_t *segs, cur = l->segs[l->seg];
					size_t n, i = 0;

					/* Find our segment by name, not by index:
					 * retention may have removed older ones. */
					if (log_list(l->dirfd, &segs, &n) == 0) {
						while (i < n && segs[i] <= cur)
							i++;
						free(l->segs);
						l->segs = segs;
						l->nsegs = n;
						if (i < n) {
							close(l->fd);
							l->fd = -1;
							l->seg = i;
							l->new_seg = 1;
							continue;
						}
						l->seg = n ? n - 1 : 0;  /* ours is the last */
					}
				}
				return 0;
			}
			if (l->live && last)
				return 0;
			return corrupt(l, l->off, "truncated chunk header");
		}
		if (log_chunk_hdr_check(&h, &why) < 0)
			return l->live && last ? 0 : corrupt(l, l->off, why);
		if (l->cap < h.len) {
			uint8_t *nb = realloc(l->buf, LOG_CHUNK_MAX);

			if (!nb)
				return bus_err(ENOMEM, "out of memory");
			l->buf = nb;
			l->cap = LOG_CHUNK_MAX;
		}
		r = read_full(l->fd, l->buf, h.len, l->off + sizeof(h));
		if (r < 0)
			return bus_err(-r, "log %s: read: %s", l->dir, strerror(-r));
		if (r == 0)
			return l->live && last ? 0 : corrupt(l, l->off, "truncated chunk");
		if (log_chunk_check(&h, l->buf, &why) < 0) {
			struct stat st;

			/* A live log's last chunk may still be being written. */
			if (l->live && last && fstat(l->fd, &st) == 0 &&
			    (uint64_t)st.st_size <= l->off + sizeof(h) + h.len)
				return 0;
			return corrupt(l, l->off, why);
		}
		if (l->off == LOG_HDR_SIZE && h.first_seq != l->segs[l->seg])
			return corrupt(l, l->off, "the first chunk does not start at the sequence "
				       "number the segment is named after");
		if (*expect && h.first_seq != *expect && !l->new_seg)
			return corrupt(l, l->off, "sequence numbers do not continue from the "
				       "previous chunk");
		/* Between segments, a jump is events the log never got (a
		 * crash lost them before they were synced): log_next() reports
		 * it as a gap, as a lapped consumer's is. */
		l->new_seg = 0;
		*expect = h.first_seq + h.count;
		l->chunk_next = *expect;
		l->len = h.len;
		l->rec = 0;
		l->off += sizeof(h) + h.len;
		return 1;
	}
}

static int log_next(struct bus_log *l, struct bus_event *ev, uint64_t min_ts)
{
	uint64_t expect = 0;
	int r;

	for (;;) {
		const struct rec_hdr *rh;

		if (l->rec >= l->len) {
			/* The next chunk continues the one just read, not
			 * next_seq: after a seek that is the target, and the
			 * records before it were skipped without moving it
			 * (the index may start us chunks early, or be
			 * missing). */
			expect = l->len ? l->chunk_next : 0;
			r = load_chunk(l, &expect);
			if (r <= 0)
				return r;
			continue;
		}
		rh = (const struct rec_hdr *)(l->buf + l->rec);
		if (rh->seq < l->next_seq || rh->ts_ns < min_ts) {
			l->rec += rec_size(rh->len);
			if (rh->seq >= l->next_seq)
				l->next_seq = rh->seq + 1;
			continue;
		}
		if (rh->seq > l->next_seq && l->next_seq) {
			/* Only possible across segments (load_chunk checks the
			 * rest): events the log does not have. */
			memset(ev, 0, sizeof(*ev));
			ev->seq = l->next_seq;
			ev->lost = rh->seq - l->next_seq;
			l->next_seq = rh->seq;
			return bus_err(ENOBUFS, "log %s: events %llu..%llu are not in the log",
				       l->dir, (unsigned long long)ev->seq,
				       (unsigned long long)(rh->seq - 1));
		}
		if (rh->seq >= l->limit)
			return 0;
		ev->data = rh + 1;
		ev->len = rh->len;
		ev->type = rh->type;
		ev->seq = rh->seq;
		ev->ts_ns = rh->ts_ns;
		ev->lost = 0;
		ev->pos_ = 0;
		l->rec += rec_size(rh->len);
		l->next_seq = rh->seq + 1;
		return 1;
	}
}

/* The index entry of segment i whose chunk holds `key` (a sequence number,
 * or a timestamp when by_time): the last entry with first <= key. Returns
 * the chunk offset, or LOG_HDR_SIZE (scan from the start) if there is no
 * usable index. */
static uint64_t idx_find(struct bus_log *l, size_t i, uint64_t key, int by_time)
{
	struct log_file_hdr fh;
	struct log_idx_entry e;
	struct stat st;
	char name[32];
	uint64_t lo, hi, best = LOG_HDR_SIZE, n;
	int fd;

	log_name(name, sizeof(name), l->segs[i], ".idx");
	fd = openat(l->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return best;
	if (fstat(fd, &st) < 0 || read_full(fd, &fh, sizeof(fh), 0) != 1 ||
	    log_file_hdr_check(&fh, LOG_IDX_MAGIC, l->segs[i]) < 0) {
		close(fd);
		return best;
	}
	n = ((uint64_t)st.st_size - LOG_HDR_SIZE) / sizeof(e);
	lo = 0;
	hi = n;
	while (lo < hi) {  /* first entry with first > key */
		uint64_t mid = (lo + hi) / 2, v;

		if (read_full(fd, &e, sizeof(e), LOG_HDR_SIZE + mid * sizeof(e)) != 1 ||
		    crc32c(0, &e, offsetof(struct log_idx_entry, crc)) != e.crc) {
			best = LOG_HDR_SIZE;  /* a damaged index: scan instead */
			lo = 0;
			break;
		}
		v = by_time ? e.first_ts : e.first_seq;
		/* By time: the last chunk that starts strictly before, so that
		 * events with exactly that time in earlier chunks are not
		 * skipped (min_ts then skips forward to the first of them). */
		if (by_time ? v < key : v <= key) {
			lo = mid + 1;
			best = e.offset;
		} else {
			hi = mid;
		}
	}
	close(fd);
	/* The index is a hint: the chunk it names must be there and hold
	 * what it says, else scan the segment from its start. */
	if (best != LOG_HDR_SIZE) {
		struct log_chunk_hdr h;
		const char *why;
		char lname[32];
		int lfd;

		log_name(lname, sizeof(lname), l->segs[i], ".log");
		lfd = openat(l->dirfd, lname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (lfd < 0 || read_full(lfd, &h, sizeof(h), best) != 1 ||
		    log_chunk_hdr_check(&h, &why) < 0 || (by_time ? h.first_ts >= key : h.first_seq > key))
			best = LOG_HDR_SIZE;
		if (lfd >= 0)
			close(lfd);
	}
	return best;
}

static int seek_to(struct bus_log *l, size_t i, uint64_t off, uint64_t seq)
{
	int r = open_seg(l, i);

	if (r < 0)
		return r;
	l->len = l->rec = 0;
	l->next_seq = seq;
	if (r == 0)  /* not there yet: read it from its header when it is */
		return 0;
	l->off = off;
	return 0;
}

int log_seek(struct bus_log *l, uint64_t seq)
{
	size_t lo = 0, hi = l->nsegs;

	if (!l->nsegs || seq < l->segs[0])
		return bus_err(ERANGE, "log %s: sequence %llu is older than the log (%s)", l->dir,
			       (unsigned long long)seq, l->nsegs ? "retention removed it" :
			       "it is empty");
	while (lo < hi) {  /* first segment starting after seq */
		size_t mid = (lo + hi) / 2;

		if (l->segs[mid] <= seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return seek_to(l, lo - 1, idx_find(l, lo - 1, seq, 0), seq);
}

/* First timestamp in segment i (its first chunk's), or UINT64_MAX. */
static uint64_t seg_first_ts(struct bus_log *l, size_t i)
{
	struct log_chunk_hdr h;
	const char *why;
	char name[32];
	uint64_t ts = UINT64_MAX;
	int fd;

	log_name(name, sizeof(name), l->segs[i], ".log");
	fd = openat(l->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return ts;
	if (read_full(fd, &h, sizeof(h), LOG_HDR_SIZE) == 1 && log_chunk_hdr_check(&h, &why) == 0)
		ts = h.first_ts;
	close(fd);
	return ts;
}

static int log_seek_time(struct bus_log *l, uint64_t ts, uint64_t *min_ts)
{
	size_t lo = 0, hi = l->nsegs, i;

	*min_ts = ts;
	if (!l->nsegs)
		return 0;
	while (lo < hi) {  /* first segment whose first event is after ts */
		size_t mid = (lo + hi) / 2;

		if (seg_first_ts(l, mid) < ts)
			lo = mid + 1;
		else
			hi = mid;
	}
	i = lo ? lo - 1 : 0;
	/* Expect no particular sequence number: the index puts us at some
	 * chunk of the segment, and min_ts skips to the first event at or
	 * after ts. */
	return seek_to(l, i, idx_find(l, i, ts, 1), 0);
}

/* ---- public -------------------------------------------------------------- */

BUS_EXPORT int bus_log_open(const char *dir, struct bus_log **out)
{
	int fd, r;

	if (!out)
		return bus_err(EINVAL, "bus_log_open: no result pointer");
	*out = NULL;
	if (!dir)
		return bus_err(EINVAL, "bus_log_open: no directory");
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return bus_err(errno, "cannot open log directory %s: %s", dir, strerror(errno));
	r = log_open_fd(fd, dir, out);
	if (r == 0)
		bus_err_clear();
	return r;
}

BUS_EXPORT void bus_log_close(struct bus_log *l)
{
	if (!l)
		return;
	if (l->fd >= 0)
		close(l->fd);
	close(l->dirfd);
	free(l->segs);
	free(l->buf);
	free(l);
}

BUS_EXPORT int bus_log_seek(struct bus_log *l, uint64_t seq)
{
	int r;

	l->failed = 0;
	r = log_seek(l, seq);

	l->min_ts = 0;
	return r;
}

BUS_EXPORT int bus_log_seek_time(struct bus_log *l, uint64_t ts_ns)
{
	l->failed = 0;
	return log_seek_time(l, ts_ns, &l->min_ts);
}

BUS_EXPORT int bus_log_next(struct bus_log *l, struct bus_event *ev)
{
	int r;

	/* Stopped at a corrupt chunk: stay there (a seek may move on). */
	if (l->failed)
		return bus_err(-l->failed, "%s", l->why);
	r = log_next(l, ev, l->min_ts);
	if (r == 1)
		l->min_ts = 0;  /* found the start: from here on, everything */
	else if (r == -EBADMSG || r == -EPROTONOSUPPORT) {
		l->failed = r;
		snprintf(l->why, sizeof(l->why), "%s", bus_errmsg());
	}
	return r;
}

BUS_EXPORT void bus_log_follow(struct bus_log *l, int follow)
{
	l->live = !!follow;
}

BUS_EXPORT int bus_log_info(struct bus_log *l, struct bus_log_info *info)
{
	struct log_scan sc;
	char name[32];
	int fd, r;

	memset(info, 0, sizeof(*info));
	{	/* fresh: retention or a roll may have changed it since open */
		uint64_t *segs;
		size_t n;

		if (log_list(l->dirfd, &segs, &n) == 0) {
			uint64_t cur = l->nsegs ? l->segs[l->seg < l->nsegs ? l->seg : 0] : 0;

			free(l->segs);
			l->segs = segs;
			l->nsegs = n;
			for (l->seg = 0; l->seg + 1 < n && segs[l->seg] < cur; l->seg++)
				;
		}
	}
	if (!l->nsegs)
		return 0;
	info->segments = (uint32_t)l->nsegs;
	info->first_seq = l->segs[0];
	info->first_ts = seg_first_ts(l, 0);
	if (info->first_ts == UINT64_MAX)
		info->first_ts = 0;
	for (size_t i = 0; i < l->nsegs; i++) {
		struct stat st;

		log_name(name, sizeof(name), l->segs[i], ".log");
		if (fstatat(l->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			info->bytes += (uint64_t)st.st_size;
	}
	log_name(name, sizeof(name), l->segs[l->nsegs - 1], ".log");
	fd = openat(l->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return bus_err(errno, "log %s/%s: %s", l->dir, name, strerror(errno));
	memset(&sc, 0, sizeof(sc));
	r = log_scan_segment(fd, l->segs[l->nsegs - 1], &sc);
	close(fd);
	if (r < 0)
		return bus_err(-r, "log %s/%s: %s", l->dir, name, sc.why ? sc.why : strerror(-r));
	info->next_seq = sc.next_seq;
	info->last_ts = sc.last_ts;
	if (l->nsegs == 1 && sc.chunks)
		info->first_ts = sc.first_ts;
	return 0;
}
