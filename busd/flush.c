/* SPDX-License-Identifier: MIT */
/*
 * flush.c — the flusher: busd writes each durable topic's ring to its log
 * on disk with io_uring, straight from the shared mapping.
 *
 * Per topic, one write is in flight at a time:
 *
 *   kick ──▶ head > flushed? ──no──▶ announce (W1/W2/W3) ──▶ FUTEX_WAIT on
 *     ▲            │ yes                                     wake_gen (io_uring)
 *     │            ▼                                               │
 *     │      batch big enough or linger over? ──no──▶ timer ───────┤
 *     │            │ yes                                           │
 *     │            ▼                                               │
 *     │      walk the records, seal a chunk (CRC-32C), WRITEV ─────┤
 *     │            ▼                                               │
 *     └──── publish flushed (F1 release, F3 fence, wake the ◀──────┘
 *           producer if it waits); fdatasync per the policy
 *
 * The bytes between flushed and head cannot change under us: the producer
 * never moves its tail past `flushed` (pub.c, flush_wait_for). busd sleeps
 * on a topic exactly like a consumer: it raises wake_req to the generation
 * it sleeps on, and the producer's next publish wakes it. An idle durable
 * topic therefore costs nothing but a bounded (1 s) futex wait.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomics.h"
#include "busd.h"
#include "crc32c.h"
#include "err.h"
#include "log.h"
#include "ring.h"
#include "wait.h"

#define SLEEP_BOUND_S     1
#define RETRY_NS          1000000000ull   /* after a failed write */
#define NO_FUTEX_POLL_NS  10000000ull     /* kernels without io_uring futex */

static int no_futex;                      /* IORING_OP_FUTEX_WAIT missing */

static uint64_t mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- settings (topic.conf) ---------------------------------------------- */

void dur_defaults(struct dur_cfg *d)
{
	if (!d->fsync)
		d->fsync = BUS_FSYNC_INTERVAL;
	if (!d->fsync_interval_ns)
		d->fsync_interval_ns = 1000000000ull;
	if (!d->fsync_bytes)
		d->fsync_bytes = 16ull << 20;
	if (!d->linger_ns)
		d->linger_ns = 1000000ull;
	if (!d->batch_bytes)
		d->batch_bytes = 256ull << 10;
	if (!d->segment_bytes)
		d->segment_bytes = 64ull << 20;
}

static const char *fsync_name(uint32_t f)
{
	return f == BUS_FSYNC_NONE ? "none" : f == BUS_FSYNC_ALWAYS ? "always" : "interval";
}

int dur_check(const struct dur_cfg *d, char *why, size_t size)
{
	if (d->fsync > BUS_FSYNC_ALWAYS)
		snprintf(why, size, "fsync policy %u: expected none, interval or always", d->fsync);
	else if (d->batch_bytes > LOG_CHUNK_MAX)
		snprintf(why, size, "batch of %llu bytes: at most %u",
			 (unsigned long long)d->batch_bytes, LOG_CHUNK_MAX);
	else if (d->segment_bytes && d->segment_bytes < (1u << 20))
		snprintf(why, size, "log segments of %llu bytes: at least 1 MiB",
			 (unsigned long long)d->segment_bytes);
	else
		return 0;
	return -EINVAL;
}

static int conf_write(int dirfd, const struct topic_conf *c)
{
	char buf[1024];
	int fd, n;

	n = snprintf(buf, sizeof(buf),
		     "# bus topic settings (written by busd; read at start)\n"
		     "format=1\nring_size=%llu\nmax_event=%u\nmax_consumers=%u\nflags=%u\n"
		     "mode=%o\nuid=%u\ngid=%u\nfsync=%s\nfsync_interval_ns=%llu\nfsync_bytes=%llu\n"
		     "linger_ns=%llu\nbatch_bytes=%llu\nsegment_bytes=%llu\n"
		     "retain_bytes=%llu\nretain_age_ns=%llu\n",
		     (unsigned long long)c->ring_size, c->max_event, c->max_consumers, c->flags,
		     c->mode, c->uid, c->gid, fsync_name(c->d.fsync),
		     (unsigned long long)c->d.fsync_interval_ns,
		     (unsigned long long)c->d.fsync_bytes, (unsigned long long)c->d.linger_ns,
		     (unsigned long long)c->d.batch_bytes, (unsigned long long)c->d.segment_bytes,
		     (unsigned long long)c->d.retain_bytes,
		     (unsigned long long)c->d.retain_age_ns);
	unlinkat(dirfd, LOG_CONF ".tmp", 0);
	fd = openat(dirfd, LOG_CONF ".tmp", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return -errno;
	if (write(fd, buf, (size_t)n) != n || fsync(fd) < 0) {
		int e = errno ? errno : EIO;

		close(fd);
		unlinkat(dirfd, LOG_CONF ".tmp", 0);
		return -e;
	}
	close(fd);
	if (renameat(dirfd, LOG_CONF ".tmp", dirfd, LOG_CONF) < 0)
		return -errno;
	return 0;
}

int conf_read(int dirfd, struct topic_conf *c)
{
	char line[256], val[64];
	FILE *f;
	int fd = openat(dirfd, LOG_CONF, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	memset(c, 0, sizeof(*c));
	c->uid = c->gid = UINT32_MAX;
	if (fd < 0 || !(f = fdopen(fd, "r"))) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		char key[64];
		unsigned long long v;

		if (line[0] == '#' || sscanf(line, "%63[a-z_]=%63s", key, val) != 2)
			continue;
		v = strtoull(val, NULL, !strcmp(key, "mode") ? 8 : 10);
		if (!strcmp(key, "ring_size"))
			c->ring_size = v;
		else if (!strcmp(key, "max_event"))
			c->max_event = (uint32_t)v;
		else if (!strcmp(key, "max_consumers"))
			c->max_consumers = (uint32_t)v;
		else if (!strcmp(key, "flags"))
			c->flags = (uint32_t)v;
		else if (!strcmp(key, "mode"))
			c->mode = (uint32_t)v;
		else if (!strcmp(key, "uid"))
			c->uid = (uint32_t)v;
		else if (!strcmp(key, "gid"))
			c->gid = (uint32_t)v;
		else if (!strcmp(key, "fsync"))
			c->d.fsync = !strcmp(val, "none") ? BUS_FSYNC_NONE :
				     !strcmp(val, "always") ? BUS_FSYNC_ALWAYS : BUS_FSYNC_INTERVAL;
		else if (!strcmp(key, "fsync_interval_ns"))
			c->d.fsync_interval_ns = v;
		else if (!strcmp(key, "fsync_bytes"))
			c->d.fsync_bytes = v;
		else if (!strcmp(key, "linger_ns"))
			c->d.linger_ns = v;
		else if (!strcmp(key, "batch_bytes"))
			c->d.batch_bytes = v;
		else if (!strcmp(key, "segment_bytes"))
			c->d.segment_bytes = v;
		else if (!strcmp(key, "retain_bytes"))
			c->d.retain_bytes = v;
		else if (!strcmp(key, "retain_age_ns"))
			c->d.retain_age_ns = v;
	}
	fclose(f);
	dur_defaults(&c->d);
	return c->ring_size ? 0 : -EBADMSG;
}

/* ---- files ---------------------------------------------------------------- */

static int log_dir_open(const char *topic, int create)
{
	char path[4400];
	int fd;

	snprintf(path, sizeof(path), "%s/log", cfg.state_dir);
	if (create && mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), "%s/log/%s", cfg.state_dir, topic);
	if (create && mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOTDIR) {
		struct stat st;

		/* O_DIRECTORY | O_NOFOLLOW reports a symlink (to a directory
		 * or not) as "not a directory": say what refused it. */
		if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
			errno = ELOOP;
	}
	return fd < 0 ? -errno : fd;
}

/*
 * Who may read the log: whoever may read the topic. Consumers and readers
 * open the files through the directory descriptor busd hands them, with
 * their own credentials, so the files carry the topic's owner, group and
 * read bits (the directory gets search bits where it has read bits).
 */
static void log_perms(struct flusher *f, int fd, int is_dir)
{
	/* Only read bits for group and others: reading a topic lets a client
	 * read its log, never change or delete it (producing does not either:
	 * the log is busd's). The owner keeps read-write. */
	uint32_t m = 0600 | (f->t->mode & 0044);

	if (is_dir)
		m |= 0100 | ((m & 0044) >> 2);
	if (geteuid() == 0 && fchown(fd, f->t->uid, f->t->gid) < 0)
		log_warn("'%s': cannot give its log to uid %u: %s", f->t->name, f->t->uid,
			 strerror(errno));
	if (fchmod(fd, m) < 0)
		log_warn("'%s': cannot set its log's mode: %s", f->t->name, strerror(errno));
}

/* Create segment `first` (and its index) and make it current. */
/* Sync the active segment (io_uring fdatasync); the completion is
 * flush_sync_done(). Remembers what the sync covers: if it succeeds, that
 * much is on the disk (ok_*). */
static void start_sync(struct flusher *f)
{
	f->sync_seq = f->seq;
	f->sync_pos = f->pos;
	f->sync_size = f->seg_size;
	f->sync_idx = f->idx_size;
	f->sync_seg = f->seg_first;
	loop_flush_sync(f);
}

/* The segment is on the disk up to where it is now. */
static void mark_synced(struct flusher *f)
{
	f->ok_size = f->seg_size;
	f->ok_idx = f->idx_size;
	f->ok_pos = f->pos;
	f->ok_seq = f->seq;
	f->ok_known = 1;
}

static int seg_new(struct flusher *f, uint64_t first)
{
	struct log_file_hdr fh;
	char name[32];
	int fd, ifd;

	log_name(name, sizeof(name), first, ".log");
	/* Read-write: after a failed sync, what was written is read back and
	 * written again (rewrite_unsynced). */
	if (f->segfd >= 0 && f->conf.d.fsync != BUS_FSYNC_NONE && fdatasync(f->segfd) < 0) {
		/* Do not leave a segment whose tail the disk may have lost:
		 * the retry rewrites it, then the roll happens. */
		int e = errno;

		f->need_sync = 1;
		return -e;
	}
	fd = openat(f->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	log_perms(f, fd, 0);
	log_file_hdr_init(&fh, LOG_FILE_MAGIC, first);
	if (pwrite(fd, &fh, sizeof(fh), 0) != (ssize_t)sizeof(fh)) {
		int e = errno ? errno : ENOSPC;

		close(fd);
		unlinkat(f->dirfd, name, 0);
		return -e;
	}
	log_name(name, sizeof(name), first, ".idx");
	unlinkat(f->dirfd, name, 0);
	ifd = openat(f->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (ifd >= 0) {
		log_perms(f, ifd, 0);
		log_file_hdr_init(&fh, LOG_IDX_MAGIC, first);
		if (pwrite(ifd, &fh, sizeof(fh), 0) != (ssize_t)sizeof(fh)) {
			close(ifd);
			ifd = -1;  /* the index is a hint: readers scan without it */
		}
	}
	if (f->segfd >= 0) {
		/* (Synced above.) An interval sync may still be in flight on it (io_uring
		 * resolves the descriptor when it runs the operation): close
		 * it when that completes. */
		if (f->sync_busy) {
			if (f->old_segfd >= 0)
				close(f->old_segfd);
			f->old_segfd = f->segfd;
		} else {
			close(f->segfd);
		}
	}
	if (f->idxfd >= 0)
		close(f->idxfd);
	f->segfd = fd;
	f->idxfd = ifd;
	f->seg_first = first;
	f->seg_size = LOG_HDR_SIZE;
	f->idx_size = LOG_HDR_SIZE;
	f->force_roll = 0;
	mark_synced(f);  /* the old segment is on the disk, the new one empty */
	/* The new name must survive a crash before events depend on it. */
	if (f->conf.d.fsync != BUS_FSYNC_NONE)
		fsync(f->dirfd);
	return 0;
}

/* Delete whole old segments beyond the retention limits; never the active
 * one. */
static void retain(struct flusher *f)
{
	uint64_t *segs, total = 0, now = 0;
	size_t n;
	struct timespec ts;

	if (!f->conf.d.retain_bytes && !f->conf.d.retain_age_ns)
		return;
	if (log_list(f->dirfd, &segs, &n) < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		char name[32];

		log_name(name, sizeof(name), segs[i], ".log");
		if (fstatat(f->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			total += (uint64_t)st.st_size;
	}
	for (size_t i = 0; i + 1 < n && segs[i] != f->seg_first; i++) {
		struct stat st;
		char name[32];
		uint64_t size = 0, mtime = 0;
		int old, big;

		log_name(name, sizeof(name), segs[i], ".log");
		if (fstatat(f->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			size = (uint64_t)st.st_size;
			mtime = (uint64_t)st.st_mtim.tv_sec * 1000000000ull +
				(uint64_t)st.st_mtim.tv_nsec;
		}
		/* A closed segment's mtime is when its last event was written. */
		old = f->conf.d.retain_age_ns && now > mtime && now - mtime > f->conf.d.retain_age_ns;
		big = f->conf.d.retain_bytes && total > f->conf.d.retain_bytes;
		if (!old && !big)
			break;
		unlinkat(f->dirfd, name, 0);
		log_name(name, sizeof(name), segs[i], ".idx");
		unlinkat(f->dirfd, name, 0);
		total -= size;
		log_info("'%s': retention removed log segment %020llu (%s)", f->t->name,
			 (unsigned long long)segs[i], old ? "age" : "size");
	}
	free(segs);
}

/* ---- publishing positions --------------------------------------------- */

static void publish(struct flusher *f, uint64_t durable)
{
	struct seg_hdr *h = f->t->seg.hdr;

	/* F1: release; the producer's acquire load of flushed pairs with it
	 * (we are done reading the bytes before it), and a consumer that
	 * loads flushed_seq sees a log that holds every event before it. */
	at_store_release(&h->flushed_seq, f->seq);
	at_store_release(&h->flushed, f->pos);
	if (durable > at_load_relaxed(&h->durable_seq))
		at_store_release(&h->durable_seq, durable);
	/* F3: our stores before the flush_req load; pairs with the producer's
	 * F2 fence (it stores flush_req, fences, re-reads flushed). */
	at_fence_seq_cst();
	if (at_load_relaxed(&h->flush_req) == at_load_relaxed(&h->flush_gen)) {
		at_fetch_add(&h->flush_gen, 1);
		futex_wake_all(&h->flush_gen);
	}
}

static void set_state(struct flusher *f, uint32_t st, int err)
{
	struct seg_hdr *h = f->t->seg.hdr;

	if (st == FLUSH_DEGRADED && !f->degraded)
		log_err("'%s': log write failed: %s; the topic is degraded, retrying every 1 s "
			"(the producer waits, then gets -ETIMEDOUT)", f->t->name, strerror(err));
	if (st == FLUSH_OK && f->degraded)
		log_notice("'%s': log writes succeed again; the topic is no longer degraded",
			   f->t->name);
	f->degraded = st == FLUSH_DEGRADED;
	at_store_relaxed(&h->flush_state, st);
	if (err)
		at_store_relaxed(&h->flush_errors, at_load_relaxed(&h->flush_errors) + 1);
}

/* ---- the cycle ------------------------------------------------------------ */

static void arm_sleep(struct flusher *f)
{
	struct seg_hdr *h = f->t->seg.hdr;
	uint32_t gen;

	if (f->futex_armed && f->announced)
		return;
	/* interval policy: a quiet topic's last writes are synced within the
	 * interval, not only when the next write or the sleep bound comes. Its
	 * own timer: the other one serves the linger, and must stay short. */
	if (f->conf.d.fsync == BUS_FSYNC_INTERVAL && f->unsynced && !f->sync_timer_armed) {
		uint64_t since = mono() - f->last_sync, iv = f->conf.d.fsync_interval_ns;

		loop_flush_sync_timer(f, since >= iv ? 1 : iv - since);
		f->sync_timer_armed = 1;
	}
	if (no_futex) {
		if (f->timer_armed)
			return;
		loop_flush_timer(f, NO_FUTEX_POLL_NS);
		f->timer_armed = 1;
		return;
	}
	/* W1/W2 as a consumer going to sleep (sub.c): the generation we will
	 * sleep on, then raise wake_req to it. W3: the heavy barrier that pairs
	 * with the producer's light P2. */
	gen = at_load_acquire(&h->wake_gen);
	at_max_u32(&f->t->seg.chdr->wake_req, gen);
	if (at_load_relaxed(&h->pub_fence) != FENCE_FULL && membarrier_heavy() < 0) {
		if (!f->timer_armed) {  /* cannot sleep safely: poll */
			loop_flush_timer(f, NO_FUTEX_POLL_NS);
			f->timer_armed = 1;
		}
		return;
	}
	if (at_load_acquire(&h->head) > f->pos) {   /* C1: it moved meanwhile */
		flush_kick(f);
		return;
	}
	f->announced = 1;
	/* A wait armed unannounced while lingering is still pending: if it
	 * waits on this generation, the producer's next publish now ends it
	 * (we asked); if on an older one, wake_gen has moved and it is ending
	 * anyway (its completion brings us back here). */
	if (f->futex_armed)
		return;
	loop_flush_futex(f, &h->wake_gen, gen, SLEEP_BOUND_S);
	f->futex_armed = 1;
}

static int roll_if_needed(struct flusher *f, uint64_t len)
{
	int r;

	if (!f->force_roll && (f->seg_size == LOG_HDR_SIZE ||
			       f->seg_size + LOG_HDR_SIZE + len <= f->conf.d.segment_bytes))
		return 0;
	/* A sync in flight on this segment decides what the disk holds of
	 * it: roll when it is done (flush_sync_done kicks). */
	if (f->sync_busy)
		return 1;
	r = seg_new(f, f->seq);
	if (r < 0)
		return r;
	retain(f);
	return 0;
}

/* Seal the next chunk: [f->pos, head) or as much of it as fits in one
 * chunk. Returns 1 with f->iov and f->w_* set, 0 if there is nothing, or
 * -errno (the topic is degraded or broken). */
static int build_chunk(struct flusher *f, uint64_t head)
{
	const struct seg *s = &f->t->seg;
	uint64_t q = f->pos, seq = f->seq, first_ts = 0, last_ts = 0;
	uint32_t count = 0;
	int r;

	/* Walk whole records: the chunk ends at a record boundary, holds at
	 * most LOG_CHUNK_MAX bytes, and every header is checked (the ring is
	 * shared memory, not trusted memory). */
	while (q < head) {
		const struct rec_hdr *rh = ring_rec(s->ring, s->mask, q);
		uint64_t sz;

		if (rh->len > s->g.max_event || rh->seq != seq || q + rec_size(rh->len) > head) {
			log_err("'%s': corrupt record at ring position %llu (length %u, sequence "
				"%llu, expected %llu); flushing stops", f->t->name,
				(unsigned long long)q, rh->len, (unsigned long long)rh->seq,
				(unsigned long long)seq);
			f->broken = 1;
			set_state(f, FLUSH_DEGRADED, EBADMSG);
			return -EBADMSG;
		}
		sz = rec_size(rh->len);
		if (q + sz - f->pos > LOG_CHUNK_MAX && count)
			break;
		if (!count)
			first_ts = rh->ts_ns;
		last_ts = rh->ts_ns;
		q += sz;
		seq++;
		count++;
	}
	if (!count)
		return 0;
	r = roll_if_needed(f, q - f->pos);
	if (r > 0)
		return 0;
	if (r < 0) {
		set_state(f, FLUSH_DEGRADED, -r);
		f->retry_at = mono() + RETRY_NS;
		return r;
	}
	f->iov[0].iov_base = &f->ch;
	f->iov[0].iov_len = sizeof(f->ch);
	/* The ring is mapped twice back to back: the range is contiguous. */
	f->iov[1].iov_base = (void *)(s->ring + (f->pos & s->mask));
	f->iov[1].iov_len = q - f->pos;
	log_chunk_seal(&f->ch, f->seq, count, first_ts, last_ts, &f->iov[1], 1);
	f->w_end = q;
	f->w_seq = seq;
	f->w_total = sizeof(f->ch) + (q - f->pos);
	f->w_done = 0;
	f->w_off = f->seg_size;
	return 1;
}

void flush_kick(struct flusher *f)
{
	struct topic *t = f->t;
	uint64_t head, now;
	int r;

	/* need_sync: a sync failed; nothing more is written until the retry
	 * (flush_timer_done) has put what the disk may have lost back. */
	if (f->busy || f->broken || f->closing || f->final || t->deleted || f->need_sync)
		return;
	head = at_load_acquire(&t->seg.hdr->head);  /* C1: pairs with the producer's P1 */
	if (head <= f->pos) {
		f->pending_since = 0;
		/* A producer waiting (bus_pub_sync, or for room) under the
		 * interval policy: sync now rather than at the interval. */
		if (f->conf.d.fsync == BUS_FSYNC_INTERVAL && f->unsynced && !f->sync_busy &&
		    at_load_relaxed(&t->seg.hdr->flush_req) ==
			    at_load_relaxed(&t->seg.hdr->flush_gen)) {
			f->sync_busy = 1;
			f->unsynced = 0;
			start_sync(f);
		}
		arm_sleep(f);
		return;
	}
	now = mono();
	/* A producer waiting for room (flush_req raised to flush_gen) cannot
	 * wait for a linger to end. */
	if (at_load_relaxed(&t->seg.hdr->flush_req) == at_load_relaxed(&t->seg.hdr->flush_gen))
		f->pending_since = 1;  /* long ago: the linger is over */
	if (head - f->pos < f->conf.d.batch_bytes && f->conf.d.linger_ns) {
		if (!f->pending_since)
			f->pending_since = now;
		if (now - f->pending_since < f->conf.d.linger_ns) {
			if (!f->timer_armed) {
				loop_flush_timer(f, f->conf.d.linger_ns - (now - f->pending_since));
				f->timer_armed = 1;
			}
			/* Also sleep on the wake word, without announcing: a
			 * publish stays free of syscalls, but a producer out of
			 * room bumps it (flush_wait_for) and we write at once
			 * instead of waiting out the linger. */
			if (!f->futex_armed && !no_futex) {
				loop_flush_futex(f, &t->seg.hdr->wake_gen,
						 at_load_acquire(&t->seg.hdr->wake_gen), SLEEP_BOUND_S);
				f->futex_armed = 1;
				f->announced = 0;
			}
			f->lingering = 1;
			return;
		}
	}
	f->lingering = 0;
	if (f->degraded && now < f->retry_at) {
		if (!f->timer_armed) {
			loop_flush_timer(f, f->retry_at - now);
			f->timer_armed = 1;
		}
		return;
	}
	r = build_chunk(f, head);
	if (r <= 0) {
		if (r < 0 && !f->broken && !f->timer_armed) {
			loop_flush_timer(f, RETRY_NS);
			f->timer_armed = 1;
		}
		return;
	}
	f->busy = 1;
	f->pending_since = 0;
	t->refs++;  /* the write reads the mapping: keep it until it completes */
	loop_flush_write(f, f->iov, 2, f->w_off);
}

/* After a short synchronous write (w_done bytes done): write the rest. */
static void write_rest_sync(struct flusher *f, ssize_t *n)
{
	struct iovec v[2] = { f->iov[0], f->iov[1] };
	uint64_t done = f->w_done;
	int i = 0;

	if (done < v[0].iov_len) {
		v[0].iov_base = (uint8_t *)v[0].iov_base + done;
		v[0].iov_len -= done;
	} else {
		done -= v[0].iov_len;
		v[1].iov_base = (uint8_t *)v[1].iov_base + done;
		v[1].iov_len -= done;
		i = 1;
	}
	*n = pwritev(f->segfd, &v[i], 2 - i, (off_t)(f->w_off + f->w_done));
}

/* A short write: the rest, from where the kernel stopped. */
static void write_rest(struct flusher *f)
{
	uint64_t done = f->w_done;

	f->wiov[0] = f->iov[0];
	f->wiov[1] = f->iov[1];
	if (done < f->wiov[0].iov_len) {
		f->wiov[0].iov_base = (uint8_t *)f->wiov[0].iov_base + done;
		f->wiov[0].iov_len -= done;
		loop_flush_write(f, f->wiov, 2, f->w_off + f->w_done);
		return;
	}
	done -= f->wiov[0].iov_len;
	f->wiov[1].iov_base = (uint8_t *)f->wiov[1].iov_base + done;
	f->wiov[1].iov_len -= done;
	loop_flush_write(f, &f->wiov[1], 1, f->w_off + f->w_done);
}

static void fl_free(struct flusher *f);

void flush_write_done(struct flusher *f, int res)
{
	struct topic *t = f->t;
	uint64_t now = mono();
	int waiting;

	if (f->closing) {  /* deleted while the write was in flight */
		topic_release_ref(t);
		f->busy = 0;
		if (!f->sync_busy)
			fl_free(f);
		return;
	}
	if (res < 0 || (res == 0 && f->w_done < f->w_total)) {
		int e = res < 0 ? -res : ENOSPC;

		/* Drop whatever part of the chunk landed: a reader must find
		 * either the whole chunk or nothing after the last good one. */
		if (ftruncate(f->segfd, (off_t)f->seg_size) < 0)
			log_err("'%s': cannot truncate a failed write: %s", t->name,
				strerror(errno));
		set_state(f, FLUSH_DEGRADED, e);
		f->busy = 0;
		f->retry_at = now + RETRY_NS;
		topic_release_ref(t);
		if (!t->deleted && !f->timer_armed) {
			loop_flush_timer(f, RETRY_NS);
			f->timer_armed = 1;
		}
		return;
	}
	f->w_done += (uint64_t)res;
	if (f->w_done < f->w_total) {
		write_rest(f);
		return;
	}
	if (f->idxfd >= 0) {
		struct log_idx_entry e = { f->ch.first_seq, f->ch.first_ts, f->w_off, f->ch.count, 0 };

		log_idx_seal(&e);
		if (pwrite(f->idxfd, &e, sizeof(e), (off_t)f->idx_size) == (ssize_t)sizeof(e))
			f->idx_size += sizeof(e);
		else {  /* a hint only: drop it, readers scan */
			close(f->idxfd);
			f->idxfd = -1;
		}
	}
	f->seg_size += f->w_total;
	f->pos = f->w_end;
	f->seq = f->w_seq;
	f->unsynced += f->w_total;
	if (f->degraded && !f->need_sync)
		set_state(f, FLUSH_OK, 0);
	topic_release_ref(t);
	if (t->deleted) {
		f->busy = 0;
		return;
	}
	if (f->final) {  /* shutdown: synced once at the end */
		f->busy = 0;
		publish(f, f->conf.d.fsync == BUS_FSYNC_NONE ? f->seq : 0);
		return;
	}
	if (f->conf.d.fsync == BUS_FSYNC_ALWAYS) {
		/* flushed moves only once the data is on disk. */
		start_sync(f);
		return;
	}
	f->busy = 0;
	/* Someone waits (bus_pub_sync, or for room): under the interval
	 * policy, sync now instead of at the interval. Read before publish(),
	 * whose wake changes flush_gen. */
	waiting = at_load_relaxed(&t->seg.hdr->flush_req) ==
		  at_load_relaxed(&t->seg.hdr->flush_gen);
	publish(f, f->conf.d.fsync == BUS_FSYNC_NONE ? f->seq : 0);
	if (f->conf.d.fsync == BUS_FSYNC_INTERVAL && !f->sync_busy && !f->need_sync &&
	    (waiting || f->unsynced >= f->conf.d.fsync_bytes ||
	     now - f->last_sync >= f->conf.d.fsync_interval_ns)) {
		f->sync_busy = 1;
		f->unsynced = 0;
		start_sync(f);
	}
	flush_kick(f);
}

/*
 * After a failed sync: write again what the disk may not hold, i.e. the
 * active segment from ok_size, read back from the page cache. The pages the
 * kernel failed to write are clean now (or dropped), and rewriting them in
 * place proved not enough on ext4 (the blocks allocated during the failure
 * read back as zeros after a remount even when a later sync succeeded), so
 * the range is read into memory, the file cut back to ok_size, and the
 * range appended again: new blocks, dirty pages, and the next fdatasync
 * really writes them (and fails again while the disk does). Every chunk is
 * checked as it is read: a page the kernel dropped reads back as whatever
 * the disk holds. The index is cut back to ok_idx (a hint: readers scan
 * without it, and busd rebuilds it at the next start).
 *
 * Returns 0 when everything was written again (sync next), 1 when data was
 * lost and the flusher has been set up to go on without it, or -errno when
 * it could not read or write (the disk still fails: retry later).
 */
static int rewrite_unsynced(struct flusher *f)
{
	uint64_t total = f->seg_size - f->ok_size, off = 0, seq = f->ok_seq;
	uint8_t *buf = total ? malloc(total) : NULL;
	const char *why = "a short read";
	int e = 0;

	if (total && !buf)
		return -ENOMEM;
	if (total && pread(f->segfd, buf, total, (off_t)f->ok_size) != (ssize_t)total) {
		e = errno ? errno : EIO;
		why = "cannot read it back";
		total = 0;  /* nothing usable */
	}
	/* The sound prefix: whole chunks, continuing from ok_seq. */
	while (off < total) {
		struct log_chunk_hdr h;

		if (total - off < sizeof(h))
			break;
		memcpy(&h, buf + off, sizeof(h));
		if (log_chunk_hdr_check(&h, &why) < 0 || h.len > total - off - sizeof(h) ||
		    log_chunk_check(&h, buf + off + sizeof(h), &why) < 0 ||
		    (f->ok_known && h.first_seq != seq))
			break;
		off += sizeof(h) + h.len;
		seq = h.first_seq + h.count;
	}
	if (ftruncate(f->segfd, (off_t)f->ok_size) < 0 ||
	    (off && pwrite(f->segfd, buf, off, (off_t)f->ok_size) != (ssize_t)off)) {
		e = errno ? errno : EIO;
		/* What is in the file now is unknown: retry later from the
		 * same ok_size (the buffer is gone: a read-back next time). */
		free(buf);
		log_err("'%s': cannot write the log again after an I/O error: %s", f->t->name,
			strerror(e));
		return -e;
	}
	free(buf);
	if (f->idxfd >= 0 && ftruncate(f->idxfd, (off_t)f->ok_idx) < 0) {
		close(f->idxfd);
		f->idxfd = -1;
	}
	f->idx_size = f->ok_idx;
	if (off == f->seg_size - f->ok_size)
		return 0;  /* all of it: sync it */

	/* The page cache no longer held what was written from ok_size + off. */
	f->need_sync = 0;
	if (f->conf.d.fsync == BUS_FSYNC_ALWAYS && f->ok_known) {
		/* flushed has not moved past ok_pos (it moves only after a
		 * sync), so the ring still holds every event since: write
		 * them all again from there. */
		log_warn("'%s': after an I/O error the log lost unsynced data at offset %llu of "
			 "segment %020llu (%s%s); writing events %llu.. again from the ring",
			 f->t->name, (unsigned long long)(f->ok_size + off),
			 (unsigned long long)f->seg_first, why, e ? ", EIO" : "",
			 (unsigned long long)f->ok_seq);
		if (ftruncate(f->segfd, (off_t)f->ok_size) < 0)
			return -errno;
		f->seg_size = f->ok_size;
		f->pos = f->ok_pos;
		f->seq = f->ok_seq;
		return 1;
	}
	/* fsync interval or none: flushed moved on and the producer may
	 * have reused that part of the ring, so these events are gone from
	 * the log. Say exactly which; the log goes on in a new segment, so a
	 * reader sees a gap (-ENOBUFS with the count), not a corrupt chunk.
	 * durable_seq stays below the gap from now on. */
	log_err("'%s': an I/O error lost events %llu..%llu from the log before they reached the "
		"disk (%s at offset %llu of segment %020llu, and the page cache no longer held "
		"them); the log goes on at %llu in a new segment, and readers see the gap",
		f->t->name, (unsigned long long)seq, (unsigned long long)f->seq - 1, why,
		(unsigned long long)(f->ok_size + off), (unsigned long long)f->seg_first,
		(unsigned long long)f->seq);
	f->seg_size = f->ok_size + off;
	f->lost = 1;
	f->force_roll = 1;
	f->need_sync = 1;  /* sync the sound prefix before the roll (seg_new does) */
	return 0;
}

void flush_sync_done(struct flusher *f, int res)
{
	if (f->old_segfd >= 0) {  /* rolled while this sync ran (seg_new) */
		close(f->old_segfd);
		f->old_segfd = -1;
	}
	if (f->closing) {
		f->sync_busy = 0;
		if (f->conf.d.fsync == BUS_FSYNC_ALWAYS)
			f->busy = 0;
		if (!f->busy && !f->sync_busy)
			fl_free(f);
		return;
	}
	f->last_sync = mono();
	if (res < 0) {
		/* After a failed fdatasync the kernel has given up on the dirty
		 * pages (they are clean now, or gone) and reports the error
		 * once: syncing again would return 0 without writing them.
		 * Nothing since the last good sync is durable until it has
		 * been written again and synced: flush_timer_done() does that
		 * (rewrite_unsynced); until then nothing more is written and
		 * durable_seq stays. */
		set_state(f, FLUSH_DEGRADED, -res);
		f->sync_busy = 0;
		if (f->conf.d.fsync == BUS_FSYNC_ALWAYS)
			f->busy = 0;
		f->need_sync = 1;  /* flush_timer_done() tries again */
		f->retry_at = mono() + RETRY_NS;
		if (!f->timer_armed && !f->t->deleted) {
			loop_flush_timer(f, RETRY_NS);
			f->timer_armed = 1;
		}
		return;
	}
	if (f->sync_seg == f->seg_first) {  /* else: rolled since; seg_new synced it */
		f->ok_size = f->sync_size;
		f->ok_idx = f->sync_idx;
		f->ok_pos = f->sync_pos;
		f->ok_seq = f->sync_seq;
		f->ok_known = 1;
	}
	if (f->need_sync) {
		f->need_sync = 0;
		if (!f->lost)
			set_state(f, FLUSH_OK, 0);
	}
	if (f->conf.d.fsync == BUS_FSYNC_ALWAYS)
		f->busy = 0;
	else
		f->sync_busy = 0;
	/* After a loss, durable_seq stays where it was: the events in the
	 * gap never reached the disk, and it means "everything before". */
	publish(f, f->lost ? 0 : f->sync_seq);
	flush_kick(f);  /* a write or a roll may wait for this sync */
}

void flush_timer_done(struct flusher *f)
{
	f->timer_armed = 0;
	/* A sync that failed: the data is written, it must be synced before
	 * it is called durable (and, under ALWAYS, before flushed moves). */
	if (f->need_sync && !f->busy && !f->sync_busy && !f->t->deleted) {
		if (rewrite_unsynced(f) > 0) {  /* lost: writing starts over */
			flush_kick(f);
			return;
		}
		if (f->conf.d.fsync == BUS_FSYNC_ALWAYS)
			f->busy = 1;
		else
			f->sync_busy = 1;
		start_sync(f);
		return;
	}
	/* interval policy: sync what a quiet topic left unsynced */
	/* (Never a plain sync after a failed one: see flush_sync_done.) */
	if (f->conf.d.fsync == BUS_FSYNC_INTERVAL && f->unsynced && !f->sync_busy && !f->busy &&
	    !f->need_sync &&
	    mono() - f->last_sync >= f->conf.d.fsync_interval_ns) {
		f->sync_busy = 1;
		f->unsynced = 0;
		start_sync(f);
	}
	flush_kick(f);
}

void flush_futex_done(struct flusher *f, int res)
{
	uint64_t now = mono();

	f->futex_armed = 0;
	f->announced = 0;
	/* A quiet topic rolls no segment, so age-based retention also runs
	 * here: the sleep is bounded (1 s), checks are at most a minute apart. */
	if (f->conf.d.retain_age_ns && now - f->last_retain >= 60000000000ull) {
		f->last_retain = now;
		retain(f);
	}
	if (res == -EINVAL && !no_futex) {
		log_notice("this kernel's io_uring has no FUTEX_WAIT (Linux 6.7+): durable topics "
			   "are polled every 10 ms instead");
		no_futex = 1;
	}
	flush_kick(f);
}

void flush_sync_timer_done(struct flusher *f)
{
	f->sync_timer_armed = 0;
	/* (Never a plain sync after a failed one: see flush_sync_done.) */
	if (f->conf.d.fsync == BUS_FSYNC_INTERVAL && f->unsynced && !f->sync_busy && !f->busy &&
	    !f->need_sync &&
	    !f->t->deleted) {
		f->sync_busy = 1;
		f->unsynced = 0;
		start_sync(f);
	}
}

/* ---- lifecycle ------------------------------------------------------------ */

static struct flusher *fl_alloc(struct topic *t)
{
	struct flusher *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->t = t;
	f->dirfd = f->segfd = f->idxfd = f->old_segfd = -1;
	f->last_sync = mono();
	if (loop_flusher_add(f) < 0) {
		free(f);
		return NULL;
	}
	return f;
}

static void fl_free(struct flusher *f)
{
	loop_flusher_del(f);
	if (f->segfd >= 0)
		close(f->segfd);
	if (f->old_segfd >= 0)
		close(f->old_segfd);
	if (f->idxfd >= 0)
		close(f->idxfd);
	if (f->dirfd >= 0)
		close(f->dirfd);
	free(f);
}

int flush_log_fd(struct topic *t)
{
	char path[4400];

	snprintf(path, sizeof(path), "%s/log/%s", cfg.state_dir, t->name);
	return open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Does STATE/log/NAME hold segments already? */
int flush_log_exists(const char *name)
{
	uint64_t *segs;
	size_t n = 0;
	int fd = log_dir_open(name, 0);

	if (fd < 0)
		return 0;
	if (log_list(fd, &segs, &n) == 0)
		free(segs);
	close(fd);
	return n > 0;
}

int flush_create(struct topic *t, const struct topic_conf *c)
{
	struct flusher *f = fl_alloc(t);
	int r;

	if (!f)
		return -ENOMEM;
	f->conf = *c;
	f->dirfd = log_dir_open(t->name, 1);
	if (f->dirfd < 0) {
		r = f->dirfd;
		f->dirfd = -1;
		goto fail;
	}
	log_perms(f, f->dirfd, 1);
	r = conf_write(f->dirfd, c);
	if (r < 0)
		goto fail;
	f->seq = t->seg.g.first_seq;
	f->pos = 0;
	r = seg_new(f, f->seq);
	if (r < 0)
		goto fail;
	t->fl = f;
	publish(f, f->seq);
	flush_kick(f);
	return 0;
fail:
	fl_free(f);
	return r;
}

/* Index entries collected while scanning a segment (index rebuild). */
struct idx_build {
	struct log_idx_entry *v;
	size_t n, cap;
};

static void on_chunk(void *arg, const struct log_chunk_hdr *h, uint64_t off)
{
	struct idx_build *b = arg;

	if (b->n == b->cap) {
		size_t nc = b->cap ? 2 * b->cap : 256;
		struct log_idx_entry *v = realloc(b->v, nc * sizeof(*v));

		if (!v)
			return;
		b->v = v;
		b->cap = nc;
	}
	b->v[b->n] = (struct log_idx_entry){ h->first_seq, h->first_ts, off, h->count, 0 };
	log_idx_seal(&b->v[b->n]);
	b->n++;
}

static int idx_rewrite(struct flusher *f, uint64_t first, const struct idx_build *b)
{
	struct log_file_hdr fh;
	char name[32], tmp[40];
	size_t len = b->n * sizeof(*b->v);
	int fd;

	log_name(name, sizeof(name), first, ".idx");
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	unlinkat(f->dirfd, tmp, 0);
	fd = openat(f->dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	log_perms(f, fd, 0);
	log_file_hdr_init(&fh, LOG_IDX_MAGIC, first);
	if (pwrite(fd, &fh, sizeof(fh), 0) != (ssize_t)sizeof(fh) ||
	    (len && pwrite(fd, b->v, len, LOG_HDR_SIZE) != (ssize_t)len) ||
	    renameat(f->dirfd, tmp, f->dirfd, name) < 0) {
		int e = errno ? errno : EIO;

		close(fd);
		unlinkat(f->dirfd, tmp, 0);
		return -e;
	}
	if (f->idxfd >= 0)
		close(f->idxfd);
	f->idxfd = fd;
	f->idx_size = LOG_HDR_SIZE + len;
	return 0;
}

/* Open the last segment for appending: check its tail, truncate a torn or
 * corrupt one, rebuild its index. *next gets the sequence after its last
 * event. 1 if there is no usable segment. */
static int open_last_segment(struct flusher *f, uint64_t *next)
{
	uint64_t *segs;
	size_t n;
	int r;

	for (;;) {
		struct idx_build b = { 0 };
		struct log_scan sc;
		char name[32];
		int fd;

		r = log_list(f->dirfd, &segs, &n);
		if (r < 0)
			return r;
		if (!n) {
			free(segs);
			return 1;
		}
		log_name(name, sizeof(name), segs[n - 1], ".log");
		fd = openat(f->dirfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			r = -errno;
			log_err("'%s': cannot open log segment %s: %s", f->t->name, name,
				strerror(errno));
			free(segs);
			return r;
		}
		memset(&sc, 0, sizeof(sc));
		sc.on_chunk = on_chunk;
		sc.arg = &b;
		r = log_scan_segment(fd, segs[n - 1], &sc);
		if (r == -EPROTONOSUPPORT) {
			log_err("'%s': log segment %s is in a format version this busd does not "
				"write; not touching it, the topic is not flushed", f->t->name, name);
			close(fd);
			free(b.v);
			free(segs);
			return r;
		}
		if (r < 0 && r != -EBADMSG && r != -EPROTO) {
			/* An I/O error is not corruption: touch nothing. */
			log_err("'%s': cannot read log segment %s: %s", f->t->name, name,
				strerror(-r));
			close(fd);
			free(b.v);
			free(segs);
			return r;
		}
		if (r < 0 || (r == 1 && sc.valid_end < LOG_HDR_SIZE)) {
			char bad[64];

			/* A segment whose header never made it (crash while
			 * rolling): empty, drop it. Otherwise keep it aside. */
			if (sc.file_size <= LOG_HDR_SIZE) {
				log_notice("'%s': removing empty log segment %s", f->t->name, name);
				unlinkat(f->dirfd, name, 0);
			} else {
				snprintf(bad, sizeof(bad), "%s.corrupt", name);
				log_err("'%s': log segment %s has a bad file header; renamed to %s",
					f->t->name, name, bad);
				renameat(f->dirfd, name, f->dirfd, bad);
			}
			log_name(name, sizeof(name), segs[n - 1], ".idx");
			unlinkat(f->dirfd, name, 0);
			close(fd);
			free(b.v);
			free(segs);
			continue;
		}
		if (r == 1) {
			log_warn("'%s': log segment %s: %s at offset %llu; dropping the last %llu "
				 "bytes (events from %llu on were not in the log)", f->t->name, name,
				 sc.why, (unsigned long long)sc.valid_end,
				 (unsigned long long)(sc.file_size - sc.valid_end),
				 (unsigned long long)sc.next_seq);
			if (ftruncate(fd, (off_t)sc.valid_end) < 0) {
				r = -errno;
				close(fd);
				free(b.v);
				free(segs);
				return r;
			}
		}
		f->segfd = fd;
		f->seg_first = segs[n - 1];
		f->seg_size = sc.valid_end;
		idx_rewrite(f, f->seg_first, &b);
		*next = sc.next_seq;
		free(b.v);
		free(segs);
		return 0;
	}
}

/* The ring position of sequence `want`, walking whole records from (pos,
 * seq) up to head. 0 and *out, or -1. */
static int ring_find(const struct seg *s, uint64_t pos, uint64_t seq, uint64_t want, uint64_t *out)
{
	/* C1: pairs with the producer's P1; the records before head are
	 * written. Each one's sequence number is checked on the way. */
	uint64_t head = at_load_acquire(&s->hdr->head);

	while (seq < want && pos < head) {
		const struct rec_hdr *rh = ring_rec(s->ring, s->mask, pos);

		if (rh->seq != seq || rh->len > s->g.max_event)
			return -1;
		pos += rec_size(rh->len);
		seq++;
	}
	if (seq != want)
		return -1;
	*out = pos;
	return 0;
}

int flush_open(struct topic *t, int adopted)
{
	struct flusher *f = fl_alloc(t);
	struct seg_hdr *h = t->seg.hdr;
	uint64_t next = 0, fseq, fpos, tseq, tpos, head;
	int r;

	(void)adopted;
	if (!f)
		return -ENOMEM;
	f->dirfd = log_dir_open(t->name, 1);
	if (f->dirfd < 0) {
		r = f->dirfd;
		f->dirfd = -1;
		log_err("'%s': cannot open its log directory: %s", t->name, strerror(-r));
		fl_free(f);
		return r;
	}
	log_perms(f, f->dirfd, 1);
	if (conf_read(f->dirfd, &f->conf) < 0) {
		/* A durable segment without settings: take them from it. */
		memset(&f->conf, 0, sizeof(f->conf));
		f->conf.ring_size = t->seg.g.ring_size;
		f->conf.max_event = t->seg.g.max_event;
		f->conf.max_consumers = t->seg.g.nslots;
		f->conf.flags = t->seg.g.flags;
		f->conf.mode = t->mode;
		f->conf.uid = t->uid;
		f->conf.gid = t->gid;
		dur_defaults(&f->conf.d);
		conf_write(f->dirfd, &f->conf);
		log_notice("'%s': no topic.conf in its log directory; wrote one with defaults",
			   t->name);
	}
	/* The previous busd's positions (it stored them, F1); nobody else
	 * writes them, so these loads only need to see its last stores. */
	fseq = at_load_acquire(&h->flushed_seq);
	fpos = at_load_acquire(&h->flushed);
	/* The oldest record, with T2's pairing done right (ring.c). */
	ring_oldest(&t->seg, &tpos, &tseq, &head);
	if (!fseq) {  /* never flushed: the ring starts where the log must */
		fseq = t->seg.g.first_seq;
		fpos = 0;
	} else if (!rec_pos_ok(fpos) || fpos > head) {
		/* The header is shared with the producer, which may have
		 * scribbled on it: a position that is no record boundary, or
		 * past the head, cannot be flushed from. Start from the ring's
		 * oldest record; the log is reconciled with it below. */
		log_warn("'%s': the flushed position in the topic's header (%llu) is corrupt; "
			 "reconciling the log with the ring's oldest record instead", t->name,
			 (unsigned long long)fpos);
		fpos = tpos;
		fseq = tseq;
	}
	r = open_last_segment(f, &next);
	if (r < 0) {
		fl_free(f);
		return r;
	}
	if (r == 1) {  /* no log at all: start one where the ring is */
		next = fseq;
		r = seg_new(f, next);
		if (r < 0) {
			log_err("'%s': cannot create a log segment: %s", t->name, strerror(-r));
			fl_free(f);
			return r;
		}
	}
	if (next == fseq) {
		f->pos = fpos;
		f->seq = fseq;
	} else if (ring_find(&t->seg, fpos, fseq, next, &f->pos) == 0 ||
		   ring_find(&t->seg, tpos, tseq, next, &f->pos) == 0) {
		/* The log is ahead of what was published as flushed (busd died
		 * after a write, before its store), or behind it but the ring
		 * still holds the difference. */
		f->seq = next;
	} else if (next > fseq) {
		/* The log is ahead of a ring that does not hold its end: the
		 * ring was replaced under it. Flushing from fseq would write
		 * sequence numbers the log has already. */
		log_err("'%s': the log ends at event %llu, past the ring's flushed position "
			"%llu, and the ring does not hold the events between: not flushing this "
			"topic (delete and re-create it)", t->name, (unsigned long long)next - 1,
			(unsigned long long)fseq);
		f->broken = 1;
		f->pos = fpos;
		f->seq = fseq;
		set_state(f, FLUSH_DEGRADED, EILSEQ);
	} else {
		log_err("'%s': the log ends at event %llu but the ring no longer holds what follows "
			"(it starts at %llu, flushed said %llu): events %llu..%llu are missing from "
			"the log; a new log segment starts at %llu", t->name,
			(unsigned long long)next - 1, (unsigned long long)tseq,
			(unsigned long long)fseq, (unsigned long long)next,
			(unsigned long long)fseq - 1, (unsigned long long)fseq);
		f->pos = fpos;
		f->seq = fseq;
		r = seg_new(f, fseq);
		if (r < 0) {
			fl_free(f);
			return r;
		}
	}
	/* What the log holds is in the page cache at least; sync it before
	 * calling it durable under a syncing policy. If that fails, all of the
	 * segment is suspect: the retry writes it again (rewrite_unsynced). */
	t->fl = f;
	mark_synced(f);
	if (f->conf.d.fsync != BUS_FSYNC_NONE && fdatasync(f->segfd) < 0) {
		set_state(f, FLUSH_DEGRADED, errno);
		f->ok_size = f->ok_idx = LOG_HDR_SIZE;
		f->ok_known = 0;
		f->need_sync = 1;
		f->retry_at = mono() + RETRY_NS;
		loop_flush_timer(f, RETRY_NS);
		f->timer_armed = 1;
		publish(f, 0);
		return 0;
	}
	publish(f, f->seq);
	log_info("'%s': log open at event %llu (segment %020llu, %llu bytes)", t->name,
		 (unsigned long long)f->seq, (unsigned long long)f->seg_first,
		 (unsigned long long)f->seg_size);
	flush_kick(f);
	return 0;
}

static void rm_log_dir(const char *name)
{
	char path[4400];
	DIR *d;
	struct dirent *e;
	int fd = log_dir_open(name, 0);

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	snprintf(path, sizeof(path), "%s/log/%s", cfg.state_dir, name);
	rmdir(path);
}

/* Write what is left, synchronously (shutdown: the loop has stopped and
 * drained every write in flight). */
static void flush_final(struct flusher *f)
{
	struct topic *t = f->t;

	f->final = 1;
	while (!f->busy && !f->broken) {
		uint64_t head = at_load_acquire(&t->seg.hdr->head);  /* C1, as in kick */
		ssize_t n;

		if (head <= f->pos || build_chunk(f, head) <= 0)
			break;
		f->busy = 1;
		t->refs++;
		n = pwritev(f->segfd, f->iov, 2, (off_t)f->w_off);
		while (n > 0 && (uint64_t)n < f->w_total) {  /* a short write: the rest */
			ssize_t m;

			f->w_done = (uint64_t)n;
			write_rest_sync(f, &m);
			if (m <= 0) {
				n = m < 0 ? m : -1;
				break;
			}
			n += m;
		}
		f->w_done = 0;
		flush_write_done(f, n < 0 ? -errno : (int)n);
		if (f->degraded)
			break;
	}
	if (f->conf.d.fsync != BUS_FSYNC_NONE && f->segfd >= 0 && fdatasync(f->segfd) == 0)
		publish(f, f->seq);
}

void flush_close(struct topic *t, int remove_log)
{
	struct flusher *f = t->fl;

	if (!f)
		return;
	if (!remove_log)
		flush_final(f);
	loop_flush_cancel(f);
	t->fl = NULL;
	if (remove_log)
		rm_log_dir(t->name);
	if (f->busy || f->sync_busy)
		f->closing = 1;  /* freed when its operation completes */
	else
		fl_free(f);
}

