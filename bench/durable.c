/* SPDX-License-Identifier: MIT */
/*
 * durable.c — durable topics (issue 4): what the log costs a producer, how
 * far the flusher trails it, and how fast the log reads back. One private
 * busd for the group; its log directory on the real disk, in one run:
 *
 *   throughput  a producer publishes N bytes of 64 B or 16 KiB events into
 *               a durable topic (fsync none, fsync interval) and ends with
 *               bus_pub_sync() of the last sequence: events/s and MB/s
 *               until all of it is durable. Beside it, on the same disk
 *               and with the same sync policy, the same number of bytes
 *               written by a plain io_uring loop (one write in flight, as
 *               the flusher, each the size of the flusher's mean chunk in
 *               the durable run just before) and by a plain write(2) loop
 *               of the same writes; and the same events into a volatile
 *               topic of the same ring.
 *   lag         while the durable producer runs flat out, every ~10 us it
 *               samples published - flushed (bytes and events) from the
 *               segment header, mapped read-only (SEG_INSPECT).
 *   replay      bus_log_open + bus_log_next (every chunk's CRC checked)
 *               over the whole log, against `cat` of the same segment
 *               files to /dev/null, page cache warm; then 1000 random
 *               seeks by sequence and by time (bus_log_seek /
 *               bus_log_seek_time + the first bus_log_next).
 *
 * The producer is pinned to cfg.prod_cpu, busd to cfg.cons_cpu (as taskset
 * does: pinned before exec, so every thread it starts, io_uring workers
 * included, inherits it; the output says where its threads were allowed
 * to run). The raw loops run on busd's CPU: they do busd's part of the job.
 *
 * Disk: N is the size of the log a case writes (records, chunk and file
 * headers): 1 GiB; quick 64 MiB (32 MiB with fsync interval). Each case's
 * files are removed before the next starts, except the last durable 64 B
 * fsync-none log, kept for the replay; so the group needs about 2 N: 2 GiB,
 * quick 128 MiB (checked with statvfs first; N is scaled down, with a
 * note, when space is short).
 * Before each case, untimed: syncfs(), so no case pays for the last one's
 * dirty pages, and a touch of as much memory as the case will fill (see
 * before_case: this VM returns free pages to its host).
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bus.h>
/* Internal, for the flusher's positions: the segment header's layout and a
 * read-only mapping of it (SEG_INSPECT), and the record size. */
#include "layout.h"
#include "logfmt.h"
#include "seg.h"

#include "bench.h"

/* The topic settings are the defaults a user gets; they can be changed at
 * build time for an experiment (CFLAGS=-DDUR_RING=...), never silently:
 * the table prints them. */
#ifndef DISK_DIR
#define DISK_DIR         "/var/tmp"        /* ext4 on the VM's disk, not tmpfs */
#endif
#ifndef DUR_RING
#define DUR_RING         BUS_RING_DEFAULT  /* 1 MiB */
#endif
#ifndef DUR_LINGER_NS
#define DUR_LINGER_NS    0                 /* 0: the default, 1 ms */
#endif
#ifndef DUR_BATCH
#define DUR_BATCH        0                 /* 0: the default, 256 KiB */
#endif
#define RAW_CHUNK        (256u << 10)      /* if the durable run failed */
#define FSYNC_BYTES      (16ull << 20)     /* the interval policy's defaults */
#define FSYNC_NS         1000000000ull
#define LAG_EVERY_NS     10000.0           /* lag sample period */
#define LAG_MAX          (1u << 20)        /* samples per case */
#define STALL_NS         100000000.0       /* a publish this long is a stall */
#define SEEKS            1000u
#define TYPE_DATA        1u
#define THROUGHPUT_TARGET 0.9
#define REPLAY_TARGET    0.5
#define SEEK_TARGET_NS   1000000.0

static FILE *csv;
static int misses, failures;

static const size_t dur_sizes[] = { 16384, 64 };
#define NSZ 2
enum { POL_INTERVAL, POL_NONE, NPOL };
static const char *const pol_name[NPOL] = { "interval", "none" };
static const uint32_t pol_fsync[NPOL] = { BUS_FSYNC_INTERVAL, BUS_FSYNC_NONE };
enum { K_DURABLE, K_URING, K_WRITE, K_VOLATILE, NK };
static const char *const k_id[NK] = { "durable", "raw_uring", "raw_write", "volatile" };

static const char *err_str(int rc)
{
	return strerror(rc < 0 ? -rc : rc);
}

static void csv_row(const char *name, size_t bytes, const char *metric, double value,
		    const char *unit)
{
	if (csv)
		fprintf(csv, "durable,%s,%zu,%s,%.10g,%s\n", name, bytes, metric, value, unit);
}

/* ------------------------------------------------------------------------ */
/* busd on two private directories                                          */
/* ------------------------------------------------------------------------ */

/*
 * The bus directory and the segments (shm) live in a directory under
 * /dev/shm: rings belong in RAM. The state directory — the log — lives in
 * a directory under DISK_DIR. Both are registered for cleanup before
 * anything is put in them, and busd before it runs.
 */
/* The lines busd wrote to stderr that name 'topic', joined (the last
 * ~600 bytes of them). */
static const char *busd_lines(const struct busd_proc *d, const char *topic)
{
	static char out[600];
	char path[160], line[512], quoted[80];
	FILE *f;

	out[0] = 0;
	snprintf(path, sizeof(path), "%s/busd.err", d->root);
	snprintf(quoted, sizeof(quoted), "'%s'", topic);
	f = fopen(path, "r");
	if (!f)
		return "(no busd.err)";
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(out), l;

		if (!strstr(line, quoted))
			continue;
		line[strcspn(line, "\n")] = 0;
		l = strlen(line);
		if (n + l + 3 >= sizeof(out)) {   /* keep the newest */
			size_t drop = n + l + 3 - sizeof(out) + 1;

			if (drop > n)
				drop = n;
			memmove(out, out + drop, n - drop + 1);
			n -= drop;
		}
		snprintf(out + n, sizeof(out) - n, "%s%s", n ? " | " : "", line);
	}
	fclose(f);
	return out[0] ? out : "(busd said nothing about it)";
}

/* Where busd's threads may run: "N threads on CPU 1, M io-wq workers on
 * 0-1" from /proc/PID/task/x/{comm,status}. */
static void busd_threads(pid_t pid, char *out, size_t len)
{
	char path[320], comm[64], allowed[64], line[256], main_cpus[64] = "?", wq_cpus[64] = "-";
	int nmain = 0, nwq = 0;
	struct dirent *e;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	snprintf(out, len, "?");
	if (!dir)
		return;
	while ((e = readdir(dir))) {
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", (int)pid, e->d_name);
		comm[0] = allowed[0] = 0;
		if ((f = fopen(path, "r"))) {
			if (fgets(comm, sizeof(comm), f))
				comm[strcspn(comm, "\n")] = 0;
			fclose(f);
		}
		snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, e->d_name);
		if ((f = fopen(path, "r"))) {
			while (fgets(line, sizeof(line), f))
				if (!strncmp(line, "Cpus_allowed_list:", 18))
					sscanf(line + 18, " %63s", allowed);
			fclose(f);
		}
		if (!strncmp(comm, "iou-", 4)) {
			nwq++;
			snprintf(wq_cpus, sizeof(wq_cpus), "%s", allowed);
		} else {
			nmain++;
			snprintf(main_cpus, sizeof(main_cpus), "%s", allowed);
		}
	}
	closedir(dir);
	snprintf(out, len, "%d thread(s) on CPU %s, %d io_uring worker(s) on CPU %s", nmain,
		 main_cpus, nwq, wq_cpus);
}

/* ------------------------------------------------------------------------ */
/* Shared state of one case                                                 */
/* ------------------------------------------------------------------------ */

struct lag_sample {
	uint64_t bytes;    /* head - flushed */
	uint64_t events;   /* next_seq - flushed_seq */
};

struct dur_shared {
	/* set by the parent */
	char bus[128];
	char topic[64];
	char segpath[256];     /* the topic's segment, for SEG_INSPECT */
	char file[256];        /* raw cases */
	size_t size;           /* payload bytes per event */
	uint64_t events;       /* to publish */
	uint64_t raw_bytes;    /* raw cases: bytes to write */
	size_t chunk;          /* raw cases: bytes per write */
	int kind, pol;
	/* set by the child */
	uint64_t t0, t_written, t_end;   /* ns: start, all written (flushed), durable */
	uint64_t t_pub;                  /* durable/volatile: last publish returned */
	uint64_t last_seq;
	uint64_t waits;                  /* producer waits for the flusher */
	uint64_t syncs;                  /* raw: fdatasync calls */
	uint64_t stalls;                 /* publishes that took > STALL_NS */
	uint64_t max_stall_ns;           /* the longest publish (about) */
	uint32_t nlag;
	struct lag_sample lag[];         /* LAG_MAX */
};

static size_t dur_shared_len(void)
{
	return sizeof(struct dur_shared) + LAG_MAX * sizeof(struct lag_sample);
}

/* ------------------------------------------------------------------------ */
/* The producers (children, pinned to cfg.prod_cpu)                         */
/* ------------------------------------------------------------------------ */

/* One lag sample: published - flushed, in bytes and in events. head is
 * ours (we are the producer). flushed is busd's: acquire, so the
 * flushed_seq read after it is at least the one stored with it (busd
 * stores flushed_seq, then flushed, both release): the event count may be
 * a little low, never high. */
static void lag_sample(struct dur_shared *sh, const struct seg *seg, uint64_t next_seq)
{
	uint64_t fl = atomic_load_explicit(&seg->hdr->flushed, memory_order_acquire);
	uint64_t fs = atomic_load_explicit(&seg->hdr->flushed_seq, memory_order_relaxed);
	uint64_t hd = atomic_load_explicit(&seg->hdr->head, memory_order_relaxed);

	sh->lag[sh->nlag].bytes = hd > fl ? hd - fl : 0;
	sh->lag[sh->nlag].events = next_seq > fs ? next_seq - fs : 0;
	sh->nlag++;
}

static int produce(void *varg)
{
	struct dur_shared *sh = varg;
	int durable = sh->kind == K_DURABLE;
	uint64_t msg[MSG_MAX / 8], period = ns_to_ticks(LAG_EVERY_NS), next_sample;
	uint64_t t, last, max_gap = 0, stall = ns_to_ticks(STALL_NS);
	unsigned mask = sh->size >= 1024 ? 0 : 15;   /* look at the clock every N events */
	struct seg seg = { .fd = -1, .cfd = -1 };
	struct bus_pub *pub = NULL;
	struct bus *b = NULL;
	int rc;

	if ((rc = pin_cpu(cfg.prod_cpu)))
		return child_fail("sched_setaffinity(CPU %d): %s", cfg.prod_cpu, err_str(rc));
	if ((rc = bus_connect(sh->bus, &b)))
		return child_fail("bus_connect(%s): %s (%s)", sh->bus, err_str(rc), bus_errmsg());
	if ((rc = bus_pub_attach(b, sh->topic, &pub))) {
		child_fail("bus_pub_attach(%s): %s (%s)", sh->topic, err_str(rc), bus_errmsg());
		goto fail;
	}
	if (durable && (rc = seg_attach(sh->segpath, SEG_INSPECT, &seg))) {
		child_fail("seg_attach(%s): %s (%s)", sh->segpath, err_str(rc), bus_errmsg());
		goto fail;
	}
	/* A stall of the flusher is a failure, but not before it is clearly one. */
	bus_pub_set_timeout(pub, 30 * 1000000000ll);
	memcpy(msg, pattern, sh->size);
	sh->nlag = 0;
	sh->t0 = now_ns();
	last = tsc();
	next_sample = last + period;
	for (uint64_t i = 0; i < sh->events; i++) {
		msg[0] = i;
		rc = bus_pub_publish(pub, TYPE_DATA, msg, sh->size, 0);
		if (rc < 0) {
			child_fail("bus_pub_publish (event %llu of %llu): %s (%s)",
				   (unsigned long long)i, (unsigned long long)sh->events,
				   err_str(rc), bus_errmsg());
			goto fail;
		}
		if (i & mask)
			continue;
		t = tsc();
		/* The longest time between two looks at the clock: about the
		 * longest a publish waited for the flusher. */
		if (t - last > max_gap)
			max_gap = t - last;
		if (t - last > stall)
			sh->stalls++;
		last = t;
		if (durable && t >= next_sample && sh->nlag < LAG_MAX) {
			/* No catching up after a stall: one sample per period
			 * the producer ran (a stall is counted above; during
			 * one the lag is about the whole ring). */
			next_sample = t + period;
			lag_sample(sh, &seg, bus_pub_next_seq(pub));
		}
	}
	sh->t_pub = now_ns();
	sh->max_stall_ns = (uint64_t)ticks_to_ns((int64_t)max_gap);
	sh->last_seq = bus_pub_next_seq(pub) - 1;
	if (durable) {
		uint64_t end = now_ns() + 60 * 1000000000ull;

		/* Written (in the page cache) first, then durable: the two differ
		 * by the sync policy. Spinning here costs busd nothing: it runs
		 * on the other CPU. */
		while (atomic_load_explicit(&seg.hdr->flushed_seq, memory_order_acquire) <=
		       sh->last_seq) {
			cpu_relax();
			if (now_ns() > end) {
				child_fail("the flusher did not write the last event within 60 s");
				goto fail;
			}
		}
		sh->t_written = now_ns();
		rc = bus_pub_sync(pub, sh->last_seq, 60 * 1000000000ll);
		if (rc) {
			child_fail("bus_pub_sync(%llu): %s (%s)", (unsigned long long)sh->last_seq,
				   err_str(rc), bus_errmsg());
			goto fail;
		}
		sh->t_end = now_ns();
		sh->waits = atomic_load_explicit(&seg.hdr->waits, memory_order_relaxed);
	} else {
		sh->t_written = sh->t_end = sh->t_pub;
	}
	seg_detach(&seg);
	bus_pub_close(pub);
	bus_disconnect(b);
	return 0;
fail:
	seg_detach(&seg);
	bus_pub_close(pub);
	bus_disconnect(b);
	return -1;
}

/* ------------------------------------------------------------------------ */
/* The raw writers (children, pinned to busd's CPU)                         */
/* ------------------------------------------------------------------------ */

static void *chunk_buf(size_t len)
{
	uint8_t *buf = aligned_alloc(4096, len);

	if (buf)
		for (size_t i = 0; i < len; i += sizeof(pattern))
			memcpy(buf + i, pattern, len - i < sizeof(pattern) ? len - i : sizeof(pattern));
	return buf;
}

/* As the flusher does it: one write in flight, sh->chunk at a time; with the
 * interval policy an fdatasync is started (beside the writes, at most one
 * at a time) when 16 MiB or 1 s went by since the last; one more at the
 * end, waited for. */
static int raw_uring(void *varg)
{
	struct dur_shared *sh = varg;
	int interval = sh->pol == POL_INTERVAL, wbusy = 0, sbusy = 0, fd, rc;
	uint64_t off = 0, unsynced = 0, last_sync;
	struct io_uring ring;
	void *buf;

	if ((rc = pin_cpu(cfg.cons_cpu)))
		return child_fail("sched_setaffinity(CPU %d): %s", cfg.cons_cpu, err_str(rc));
	if (!(buf = chunk_buf(sh->chunk)))
		return child_fail("out of memory");
	if ((rc = io_uring_queue_init(8, &ring, 0)))
		return child_fail("io_uring_queue_init: %s", err_str(rc));
	fd = open(sh->file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return child_fail("%s: %s", sh->file, strerror(errno));
	sh->t0 = last_sync = now_ns();
	while (off < sh->raw_bytes || wbusy || sbusy) {
		struct io_uring_sqe *sqe;
		struct io_uring_cqe *cqe;
		uint64_t what;
		int res;

		if (!wbusy && off < sh->raw_bytes) {
			uint64_t n = sh->raw_bytes - off < sh->chunk ? sh->raw_bytes - off : sh->chunk;

			sqe = io_uring_get_sqe(&ring);
			io_uring_prep_write(sqe, fd, buf, (unsigned)n, off);
			io_uring_sqe_set_data64(sqe, 1);
			wbusy = 1;
		}
		rc = io_uring_submit_and_wait(&ring, 1);
		if (rc < 0)
			return child_fail("io_uring_submit_and_wait: %s", err_str(rc));
		while (io_uring_peek_cqe(&ring, &cqe) == 0) {
			what = io_uring_cqe_get_data64(cqe);
			res = cqe->res;
			io_uring_cqe_seen(&ring, cqe);
			if (res < 0)
				return child_fail("io_uring %s: %s", what == 1 ? "write" : "fsync",
						  err_str(res));
			if (what == 2) {
				sbusy = 0;
				last_sync = now_ns();
				sh->syncs++;
				continue;
			}
			if (res == 0)
				return child_fail("io_uring write: no progress at %llu",
						  (unsigned long long)off);
			wbusy = 0;
			off += (uint64_t)res;
			unsynced += (uint64_t)res;
			if (interval && !sbusy && (unsynced >= FSYNC_BYTES ||
						   now_ns() - last_sync >= FSYNC_NS)) {
				sqe = io_uring_get_sqe(&ring);
				io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
				io_uring_sqe_set_data64(sqe, 2);
				sbusy = 1;
				unsynced = 0;
			}
		}
	}
	sh->t_written = now_ns();
	if (interval) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		struct io_uring_cqe *cqe;

		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		rc = io_uring_submit_and_wait(&ring, 1);
		if (rc < 0 || io_uring_peek_cqe(&ring, &cqe) || cqe->res < 0)
			return child_fail("final io_uring fsync: %s", err_str(rc < 0 ? rc : -EIO));
		io_uring_cqe_seen(&ring, cqe);
		sh->syncs++;
	}
	sh->t_end = now_ns();
	close(fd);
	io_uring_queue_exit(&ring);
	free(buf);
	return 0;
}

static int raw_write(void *varg)
{
	struct dur_shared *sh = varg;
	int interval = sh->pol == POL_INTERVAL, fd, rc;
	uint64_t off = 0, unsynced = 0, last_sync;
	void *buf;

	if ((rc = pin_cpu(cfg.cons_cpu)))
		return child_fail("sched_setaffinity(CPU %d): %s", cfg.cons_cpu, err_str(rc));
	if (!(buf = chunk_buf(sh->chunk)))
		return child_fail("out of memory");
	fd = open(sh->file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return child_fail("%s: %s", sh->file, strerror(errno));
	sh->t0 = last_sync = now_ns();
	while (off < sh->raw_bytes) {
		size_t n = sh->raw_bytes - off < sh->chunk ? sh->raw_bytes - off : sh->chunk;
		ssize_t w = write(fd, buf, n);

		if (w <= 0)
			return child_fail("write: %s", w < 0 ? strerror(errno) : "no progress");
		off += (uint64_t)w;
		unsynced += (uint64_t)w;
		if (interval && (unsynced >= FSYNC_BYTES || now_ns() - last_sync >= FSYNC_NS)) {
			if (fdatasync(fd) < 0)
				return child_fail("fdatasync: %s", strerror(errno));
			last_sync = now_ns();
			unsynced = 0;
			sh->syncs++;
		}
	}
	sh->t_written = now_ns();
	if (interval) {
		if (fdatasync(fd) < 0)
			return child_fail("fdatasync: %s", strerror(errno));
		sh->syncs++;
	}
	sh->t_end = now_ns();
	close(fd);
	free(buf);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Helpers of the parent                                                    */
/* ------------------------------------------------------------------------ */

/* Bytes of the .log files of a log directory, and chunks (index entries). */
static int log_usage(const char *dir, uint64_t *bytes, uint64_t *chunks, unsigned *segs)
{
	struct dirent *e;
	DIR *d = opendir(dir);

	*bytes = *chunks = 0;
	*segs = 0;
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		char path[600];
		struct stat st;

		if (n < 4)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) < 0)
			continue;
		if (!strcmp(e->d_name + n - 4, ".log")) {
			*bytes += (uint64_t)st.st_size;
			(*segs)++;
		} else if (!strcmp(e->d_name + n - 4, ".idx") && st.st_size > LOG_HDR_SIZE) {
			*chunks += ((uint64_t)st.st_size - LOG_HDR_SIZE) / 32;
		}
	}
	closedir(d);
	return 0;
}

/* shm/bus-ID.TOPIC: found by its suffix (the id is busd's hash of the bus
 * directory's real path). */
static int find_segment(const char *shm, const char *topic, char *out, size_t len)
{
	size_t tl = strlen(topic);
	struct dirent *e;
	DIR *d = opendir(shm);
	int rc = -ENOENT;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);

		if (n > tl + 5 && !strncmp(e->d_name, "bus-", 4) && e->d_name[n - tl - 1] == '.' &&
		    !strcmp(e->d_name + n - tl, topic)) {
			snprintf(out, len, "%s/%s", shm, e->d_name);
			rc = 0;
			break;
		}
	}
	closedir(d);
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static uint64_t pct_u64(const uint64_t *s, size_t n, double q)
{
	return n ? s[(size_t)(q * (double)(n - 1) + 0.5)] : 0;
}

/*
 * Before a case, untimed: sync what earlier cases left dirty, and touch
 * (then free) as much memory as the case will put in the page cache. This
 * VM hands freed guest pages back to the host (free page reporting,
 * virtio-balloon); the first touch of such a page faults on the host and
 * costs the guest ~3x a plain copy, so a case whose page cache landed on
 * them ran at 0.6 GB/s, the same case on pages in use a moment before at
 * 2-3 GB/s: a coin toss per case, not a property of what is measured. The
 * kernel reports freed pages only after a delay (seconds), so the case
 * that follows at once gets backed pages.
 */
static void before_case(const char *dir, uint64_t bytes)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	size_t len = (size_t)(bytes + bytes / 4);
	void *p;

	if (fd >= 0) {
		syncfs(fd);
		close(fd);
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		 -1, 0);
	if (p != MAP_FAILED)
		munmap(p, len);
}

/* ------------------------------------------------------------------------ */
/* Section 1 and 2: throughput and lag                                      */
/* ------------------------------------------------------------------------ */

#define MAX_ROUNDS 3

struct tp_cell {
	int n;                       /* rounds that succeeded */
	double evps[MAX_ROUNDS];     /* events/s to durable (the whole run) */
	double disk_bps[MAX_ROUNDS]; /* log (or file) bytes/s to durable */
	double secs[MAX_ROUNDS];
	double tail_ms[MAX_ROUNDS];  /* durable - written */
	double written_s[MAX_ROUNDS];
	uint64_t disk_bytes, chunks, waits, syncs;
	uint64_t stalls;             /* publishes > STALL_NS, all rounds */
	size_t chunk;                /* raw: bytes per write (last round) */
	double max_stall_ms;         /* the longest, all rounds */
	unsigned segs;
	/* lag, pooled over the rounds (durable only) */
	uint64_t *lag_b, *lag_e;
	size_t nlag;
};

static struct tp_cell cells[NSZ][NPOL][NK];

struct dur_run {
	struct busd_proc d;
	struct bus *bus;
	struct dur_shared *sh;
	uint64_t n_bytes[NPOL];      /* log bytes per case */
	int rounds;
	char keep_log[300];          /* kept for the replay */
	char keep_topic[64];
	uint64_t keep_events;
	size_t keep_size;
};

static void cell_add_lag(struct tp_cell *c, const struct dur_shared *sh)
{
	uint64_t *b = realloc(c->lag_b, (c->nlag + sh->nlag) * sizeof(*b));
	uint64_t *e = realloc(c->lag_e, (c->nlag + sh->nlag) * sizeof(*e));

	if (b)
		c->lag_b = b;
	if (e)
		c->lag_e = e;
	if (!b || !e)
		return;
	for (uint32_t i = 0; i < sh->nlag; i++) {
		c->lag_b[c->nlag + i] = sh->lag[i].bytes;
		c->lag_e[c->nlag + i] = sh->lag[i].events;
	}
	c->nlag += sh->nlag;
}

static void case_failed(const char *what, int rc)
{
	failures++;
	printf("  !! %s FAILED (%s): %s\n", what, rc == -ETIMEDOUT ? "timed out" :
	       rc == -ECHILD ? "a process failed" : err_str(rc), bench_err());
	fflush(stdout);
	bench_err_clear();
}

/* One durable or volatile case: create the topic, run the producer, check
 * the log, delete the topic (and its log) unless keep. */
static int run_topic_case(struct dur_run *r, int si, int pol, int kind, int round, int keep)
{
	struct dur_shared *sh = r->sh;
	struct tp_cell *c = &cells[si][pol][kind];
	size_t size = dur_sizes[si];
	struct bus_topic_opts o = { .ring_size = DUR_RING, .linger_ns = DUR_LINGER_NS,
				    .batch_bytes = DUR_BATCH };
	struct bus_topic_info ti;
	char logdir[300], what[96];
	double secs;
	int rc;

	memset(sh, 0, sizeof(*sh));
	snprintf(sh->bus, sizeof(sh->bus), "%s", r->d.bus);
	snprintf(sh->topic, sizeof(sh->topic), "%s.%zu.%s.r%d", k_id[kind], size,
		 kind == K_DURABLE ? pol_name[pol] : "ram", round);
	snprintf(what, sizeof(what), "%s %zu B%s%s, round %d", k_id[kind], size,
		 kind == K_DURABLE ? ", fsync " : "", kind == K_DURABLE ? pol_name[pol] : "",
		 round + 1);
	sh->size = size;
	sh->kind = kind;
	sh->pol = pol;
	sh->events = r->n_bytes[pol] / rec_size(size);
	if (kind == K_DURABLE) {
		o.flags = BUS_TOPIC_DURABLE;
		o.fsync = pol_fsync[pol];
	}
	before_case(r->d.state, sh->events * rec_size(size));
	rc = bus_create(r->bus, sh->topic, &o);
	if (rc) {
		child_fail("bus_create(%s): %s (%s)", sh->topic, err_str(rc), bus_errmsg());
		case_failed(what, rc);
		return rc;
	}
	if (kind == K_DURABLE &&
	    (rc = find_segment(r->d.shm, sh->topic, sh->segpath, sizeof(sh->segpath)))) {
		child_fail("no segment for %s in %s", sh->topic, r->d.shm);
		case_failed(what, rc);
		goto out;
	}
	rc = run_one(produce, sh, cfg.quick ? 60 : 300, NULL);
	if (rc) {
		case_failed(what, rc);
		printf("     busd about %s: %s\n", sh->topic, busd_lines(&r->d, sh->topic));
		goto out;
	}
	if (kind == K_DURABLE) {
		uint64_t bytes, chunks;
		unsigned segs;

		rc = bus_stat(r->bus, sh->topic, &ti, NULL, 0);
		if (rc < 0) {
			child_fail("bus_stat(%s): %s (%s)", sh->topic, err_str(rc), bus_errmsg());
			case_failed(what, rc);
			goto out;
		}
		if (ti.flush_errors || ti.degraded || ti.durable_seq != sh->last_seq + 1) {
			child_fail("after bus_pub_sync(%llu): durable_seq %llu, flushed_seq %llu, "
				   "degraded %u, flush errors %llu; busd said: %s",
				   (unsigned long long)sh->last_seq,
				   (unsigned long long)ti.durable_seq,
				   (unsigned long long)ti.flushed_seq, ti.degraded,
				   (unsigned long long)ti.flush_errors, busd_lines(&r->d, sh->topic));
			rc = -EIO;
			case_failed(what, rc);
			goto out;
		}
		snprintf(logdir, sizeof(logdir), "%s/log/%s", r->d.state, sh->topic);
		log_usage(logdir, &bytes, &chunks, &segs);
		c->disk_bytes = bytes;
		c->chunks = chunks;
		c->segs = segs;
		c->waits = sh->waits;
		c->stalls += sh->stalls;
		if ((double)sh->max_stall_ns / 1e6 > c->max_stall_ms)
			c->max_stall_ms = (double)sh->max_stall_ns / 1e6;
		cell_add_lag(c, sh);
	} else {
		c->disk_bytes = sh->events * rec_size(size);
	}
	secs = (double)(sh->t_end - sh->t0) / 1e9;
	c->evps[c->n] = (double)sh->events / secs;
	c->disk_bps[c->n] = (double)c->disk_bytes / secs;
	c->secs[c->n] = secs;
	c->tail_ms[c->n] = (double)(sh->t_end - sh->t_written) / 1e6;
	c->written_s[c->n] = (double)(sh->t_written - sh->t0) / 1e9;
	c->n++;
	if (keep) {
		snprintf(r->keep_log, sizeof(r->keep_log), "%s", logdir);
		snprintf(r->keep_topic, sizeof(r->keep_topic), "%s", sh->topic);
		r->keep_events = sh->events;
		r->keep_size = size;
		return 0;
	}
out:
	{
		int d = bus_delete(r->bus, sh->topic);

		if (d) {
			child_fail("bus_delete(%s): %s (%s)", sh->topic, err_str(d), bus_errmsg());
			case_failed(what, d);
		}
		/* bus_delete removes the log; make sure, the disk budget counts on it */
		snprintf(logdir, sizeof(logdir), "%s/log/%s", r->d.state, sh->topic);
		rm_tree(logdir);
	}
	return rc;
}

/* A raw loop writing `bytes` (0: the records of the events, and a file
 * header), `chunk` bytes per write. */
static int run_raw_case(struct dur_run *r, int si, int pol, int kind, int round, size_t chunk,
			uint64_t bytes)
{
	struct dur_shared *sh = r->sh;
	struct tp_cell *c = &cells[si][pol][kind];
	size_t size = dur_sizes[si];
	char what[96];
	double secs;
	int rc;

	memset(sh, 0, sizeof(*sh));
	sh->size = size;
	sh->kind = kind;
	sh->pol = pol;
	sh->events = r->n_bytes[pol] / rec_size(size);
	sh->raw_bytes = bytes ? bytes : sh->events * rec_size(size) + LOG_HDR_SIZE;
	sh->chunk = chunk;
	snprintf(sh->file, sizeof(sh->file), "%s/%s.dat", r->d.disk, k_id[kind]);
	snprintf(what, sizeof(what), "%s %zu B, %s, round %d", k_id[kind], size, pol_name[pol],
		 round + 1);
	before_case(r->d.state, sh->raw_bytes);
	rc = run_one(kind == K_URING ? raw_uring : raw_write, sh, cfg.quick ? 60 : 300, NULL);
	unlink(sh->file);
	if (rc) {
		case_failed(what, rc);
		return rc;
	}
	secs = (double)(sh->t_end - sh->t0) / 1e9;
	c->disk_bytes = sh->raw_bytes;
	c->syncs = sh->syncs;
	c->chunk = chunk;
	c->evps[c->n] = (double)sh->events / secs;
	c->disk_bps[c->n] = (double)sh->raw_bytes / secs;
	c->secs[c->n] = secs;
	c->tail_ms[c->n] = (double)(sh->t_end - sh->t_written) / 1e6;
	c->written_s[c->n] = (double)(sh->t_written - sh->t0) / 1e9;
	c->n++;
	return 0;
}

static void spread(const double *v, int n, double *lo, double *hi)
{
	*lo = *hi = n ? v[0] : 0;
	for (int i = 1; i < n; i++) {
		*lo = v[i] < *lo ? v[i] : *lo;
		*hi = v[i] > *hi ? v[i] : *hi;
	}
}

/* Median over the rounds of a per-round ratio a[i] / b[i] (the pair ran
 * seconds apart; the rounds minutes apart). */
static double ratio_med(const double *a, const double *b, int na, int nb)
{
	double q[MAX_ROUNDS];
	int n = na < nb ? na : nb;

	for (int i = 0; i < n; i++)
		q[i] = a[i] / b[i];
	return median(q, n);
}

static void tp_rows(struct dur_run *r)
{
	static const char *klabel[NK] = { "durable topic", "raw io_uring, same chunks",
					  "raw write(2), same chunks", "volatile topic (RAM only)" };

	printf("%-42s %10s %8s %9s %7s %9s %8s %8s %8s %6s\n", "producer throughput to durable",
	       "events/s", "MB/s pay", "MB/s disk", "time s", "written s", "tail ms", "written",
	       "dur/raw", "");
	for (int si = 0; si < NSZ; si++) {
		size_t size = dur_sizes[si];

		for (int pol = 0; pol < NPOL; pol++) {
			const struct tp_cell *dc = &cells[si][pol][K_DURABLE];
			const struct tp_cell *uc = &cells[si][pol][K_URING];

			for (int k = 0; k < NK; k++) {
				const struct tp_cell *c = &cells[si][pol][k];
				char label[96], id[48], res[24] = "", rat[16] = "", wrat[16] = "";
				char disk[16] = "-";
				double ev, bps, lo, hi;

				if (k == K_VOLATILE && pol != POL_NONE)
					continue;
				snprintf(label, sizeof(label), "%5zu B %-9s %s", size,
					 k == K_VOLATILE ? "" : pol_name[pol], klabel[k]);
				snprintf(id, sizeof(id), "%s_%s", k_id[k],
					 k == K_VOLATILE ? "ram" : pol_name[pol]);
				if (!c->n) {
					printf("%-42s %10s\n", label, "n/a");
					continue;
				}
				ev = median((double *)c->evps, c->n);
				bps = median((double *)c->disk_bps, c->n);
				if (k != K_VOLATILE)
					snprintf(disk, sizeof(disk), "%.0f", bps / 1e6);
				if (k == K_DURABLE && uc->n) {
					double qm = ratio_med(dc->disk_bps, uc->disk_bps, dc->n, uc->n);
					double wq[MAX_ROUNDS], wm;
					int pass = qm >= THROUGHPUT_TARGET;

					/* written: bytes per second to the page cache
					 * (syncs during the run included, the final
					 * wait for durability not) */
					for (int i = 0; i < dc->n && i < uc->n; i++)
						wq[i] = ((double)dc->disk_bytes / dc->written_s[i]) /
							((double)uc->disk_bytes / uc->written_s[i]);
					wm = median(wq, dc->n < uc->n ? dc->n : uc->n);
					misses += !pass;
					snprintf(rat, sizeof(rat), "%.3fx", qm);
					snprintf(wrat, sizeof(wrat), "%.3fx", wm);
					snprintf(res, sizeof(res), "%s", pass ? "PASS" : "MISS");
					csv_row(id, size, "over_raw_uring", qm, "ratio");
					csv_row(id, size, "written_over_raw_uring", wm, "ratio");
					csv_row(id, size, "target_min", THROUGHPUT_TARGET, "ratio");
					csv_row(id, size, "pass", pass, "bool");
				}
				if (k == K_DURABLE && cells[si][POL_NONE][K_VOLATILE].n)
					csv_row(id, size, "over_volatile",
						ratio_med(dc->evps, cells[si][POL_NONE][K_VOLATILE].evps,
							  dc->n, cells[si][POL_NONE][K_VOLATILE].n),
						"ratio");
				printf("%-42s %10.0f %8.0f %9s %7.3f %9.3f %8.1f %8s %8s %6s\n", label,
				       ev, ev * (double)size / 1e6, disk,
				       median((double *)c->secs, c->n),
				       median((double *)c->written_s, c->n),
				       median((double *)c->tail_ms, c->n), wrat, rat, res);
				spread(c->evps, c->n, &lo, &hi);
				csv_row(id, size, "events_per_s", ev, "ev/s");
				csv_row(id, size, "events_per_s_min", lo, "ev/s");
				csv_row(id, size, "events_per_s_max", hi, "ev/s");
				csv_row(id, size, "payload_mb_per_s", ev * (double)size / 1e6, "MB/s");
				csv_row(id, size, "disk_mb_per_s", bps / 1e6, "MB/s");
				csv_row(id, size, "seconds", median((double *)c->secs, c->n), "s");
				csv_row(id, size, "written_seconds", median((double *)c->written_s, c->n),
					"s");
				csv_row(id, size, "tail_ms", median((double *)c->tail_ms, c->n), "ms");
				csv_row(id, size, "disk_bytes", (double)c->disk_bytes, "B");
				for (int i = 0; i < c->n; i++) {
					char m[40];

					snprintf(m, sizeof(m), "disk_mb_per_s_round%d", i + 1);
					csv_row(id, size, m, c->disk_bps[i] / 1e6, "MB/s");
					snprintf(m, sizeof(m), "events_per_s_round%d", i + 1);
					csv_row(id, size, m, c->evps[i], "ev/s");
				}
			}
		}
	}
	printf("(N = %llu MiB of log per case with fsync interval, %llu MiB with none; %d "
	       "round(s), median; MB/s pay: payload; disk: "
	       "bytes in the files (records with their 24 B headers, file and chunk headers); "
	       "time: start to all durable (bus_pub_sync of the last event returned; raw: the "
	       "final fdatasync); written s: to all written to the page cache; tail ms: the "
	       "difference; dur/raw: disk MB/s over raw io_uring's, to durable (the target) "
	       "and to written, medians of the per-round ratios; topic: ring %llu KiB, batch "
	       "%s, linger %s, segments 64 MiB; interval = fdatasync every 16 MiB or 1 s; "
	       "before each case, untimed: syncfs and a touch of 1.25 N of memory, as this VM "
	       "returns freed pages to its host)\n",
	       (unsigned long long)(r->n_bytes[POL_INTERVAL] >> 20),
	       (unsigned long long)(r->n_bytes[POL_NONE] >> 20), r->rounds,
	       (unsigned long long)(DUR_RING >> 10), DUR_BATCH ? "(set at build)" : "256 KiB",
	       DUR_LINGER_NS ? "(set at build)" : "1 ms");
	if (DUR_BATCH || DUR_LINGER_NS)
		printf("  !! not the defaults: batch %llu B, linger %llu ns (built with -D)\n",
		       (unsigned long long)DUR_BATCH, (unsigned long long)DUR_LINGER_NS);
	for (int si = 0; si < NSZ; si++)
		for (int pol = 0; pol < NPOL; pol++) {
			const struct tp_cell *c = &cells[si][pol][K_DURABLE];
			const struct tp_cell *u = &cells[si][pol][K_URING];
			char id[32];

			if (!c->n)
				continue;
			printf("  durable %5zu B %-8s: %llu chunks, mean %.0f KiB; %u segment(s); "
			       "producer waited for the flusher %llu times, longest publish %.1f ms, "
			       "%llu over %.0f ms (all rounds); raw: %zu KiB writes, io_uring "
			       "%llu fdatasync\n",
			       dur_sizes[si], pol_name[pol], (unsigned long long)c->chunks,
			       c->chunks ? (double)c->disk_bytes / (double)c->chunks / 1024 : 0,
			       c->segs, (unsigned long long)c->waits, c->max_stall_ms,
			       (unsigned long long)c->stalls, STALL_NS / 1e6, u->chunk >> 10,
			       (unsigned long long)u->syncs);
			snprintf(id, sizeof(id), "durable_%s", pol_name[pol]);
			csv_row(id, dur_sizes[si], "chunks", (double)c->chunks, "chunks");
			csv_row(id, dur_sizes[si], "producer_waits", (double)c->waits, "waits");
			csv_row(id, dur_sizes[si], "longest_publish_ms", c->max_stall_ms, "ms");
			csv_row(id, dur_sizes[si], "publishes_over_100ms", (double)c->stalls,
				"publishes");
		}
}

static void lag_rows(void)
{
	printf("%-42s %9s %9s %9s %9s %9s %9s %9s\n",
	       "flusher lag (published - flushed)", "samples", "p50 KiB", "p99 KiB", "max KiB",
	       "p50 ev", "p99 ev", "max ev");
	for (int si = 0; si < NSZ; si++)
		for (int pol = 0; pol < NPOL; pol++) {
			struct tp_cell *c = &cells[si][pol][K_DURABLE];
			char label[64], id[48];
			uint64_t b50, b99, bmax, e50, e99, emax;

			snprintf(label, sizeof(label), "%5zu B, fsync %s", dur_sizes[si],
				 pol_name[pol]);
			if (!c->nlag) {
				printf("%-42s %9s\n", label, "n/a");
				continue;
			}
			qsort(c->lag_b, c->nlag, sizeof(uint64_t), cmp_u64);
			qsort(c->lag_e, c->nlag, sizeof(uint64_t), cmp_u64);
			b50 = pct_u64(c->lag_b, c->nlag, 0.5);
			b99 = pct_u64(c->lag_b, c->nlag, 0.99);
			bmax = c->lag_b[c->nlag - 1];
			e50 = pct_u64(c->lag_e, c->nlag, 0.5);
			e99 = pct_u64(c->lag_e, c->nlag, 0.99);
			emax = c->lag_e[c->nlag - 1];
			printf("%-42s %9zu %9.1f %9.1f %9.1f %9llu %9llu %9llu\n", label, c->nlag,
			       (double)b50 / 1024, (double)b99 / 1024, (double)bmax / 1024,
			       (unsigned long long)e50, (unsigned long long)e99,
			       (unsigned long long)emax);
			snprintf(id, sizeof(id), "lag_%s", pol_name[pol]);
			csv_row(id, dur_sizes[si], "samples", (double)c->nlag, "samples");
			csv_row(id, dur_sizes[si], "p50_bytes", (double)b50, "B");
			csv_row(id, dur_sizes[si], "p99_bytes", (double)b99, "B");
			csv_row(id, dur_sizes[si], "max_bytes", (double)bmax, "B");
			csv_row(id, dur_sizes[si], "p50_events", (double)e50, "events");
			csv_row(id, dur_sizes[si], "p99_events", (double)e99, "events");
			csv_row(id, dur_sizes[si], "max_events", (double)emax, "events");
			free(c->lag_b);
			free(c->lag_e);
			c->lag_b = c->lag_e = NULL;
			c->nlag = 0;
		}
	printf("(sampled by the producer every %.0f us of its run, all rounds pooled; the "
	       "ring is %llu KiB: the producer waits when the flusher is a whole ring behind)\n",
	       LAG_EVERY_NS / 1e3, (unsigned long long)(DUR_RING >> 10));
}

/* ------------------------------------------------------------------------ */
/* Section 3: replay and seeks                                              */
/* ------------------------------------------------------------------------ */

#define REPLAY_ROUNDS 3

struct replay_shared {
	char dir[300];
	uint64_t expect;            /* events in the log */
	uint64_t first_seq, next_seq, first_ts, last_ts;
	double replay_s[REPLAY_ROUNDS];
	uint64_t events;
	uint64_t seek_seq_ns[SEEKS], seek_time_ns[SEEKS];
	uint64_t bad_seeks;
};

static uint64_t rnd_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int replay(void *varg)
{
	struct replay_shared *rs = varg;
	struct bus_log_info li;
	struct bus_event ev;
	struct bus_log *l;
	uint64_t rnd = 42;
	int rc;

	if ((rc = pin_cpu(cfg.prod_cpu)))
		return child_fail("sched_setaffinity(CPU %d): %s", cfg.prod_cpu, err_str(rc));
	for (int round = 0; round < REPLAY_ROUNDS; round++) {
		uint64_t n = 0, t0 = now_ns(), sink = 0;

		if ((rc = bus_log_open(rs->dir, &l)))
			return child_fail("bus_log_open(%s): %s (%s)", rs->dir, err_str(rc),
					  bus_errmsg());
		while ((rc = bus_log_next(l, &ev)) == 1) {
			/* w[0] of the producer's payload is seq - 1 */
			sink += load64(ev.data) ^ (ev.seq - 1);
			n++;
		}
		rs->replay_s[round] = (double)(now_ns() - t0) / 1e9;
		if (rc < 0) {
			child_fail("bus_log_next after %llu events: %s (%s)", (unsigned long long)n,
				   err_str(rc), bus_errmsg());
			bus_log_close(l);
			return -1;
		}
		if (round == 0 && (rc = bus_log_info(l, &li))) {
			bus_log_close(l);
			return child_fail("bus_log_info: %s (%s)", err_str(rc), bus_errmsg());
		}
		bus_log_close(l);
		if (n != rs->expect || sink)
			return child_fail("replay: %llu events (expected %llu), %s payload",
					  (unsigned long long)n, (unsigned long long)rs->expect,
					  sink ? "wrong" : "right");
		rs->events = n;
	}
	rs->first_seq = li.first_seq;
	rs->next_seq = li.next_seq;
	rs->first_ts = li.first_ts;
	rs->last_ts = li.last_ts;
	if ((rc = bus_log_open(rs->dir, &l)))
		return child_fail("bus_log_open(%s): %s (%s)", rs->dir, err_str(rc), bus_errmsg());
	for (unsigned i = 0; i < SEEKS; i++) {
		uint64_t seq = li.first_seq + rnd_next(&rnd) % (li.next_seq - li.first_seq);
		uint64_t ts = li.first_ts + rnd_next(&rnd) % (li.last_ts - li.first_ts + 1);
		uint64_t t0 = now_ns(), t1, t2;

		rc = bus_log_seek(l, seq);
		if (rc == 0)
			rc = bus_log_next(l, &ev);
		t1 = now_ns();
		if (rc != 1 || ev.seq != seq)
			rs->bad_seeks++;
		rc = bus_log_seek_time(l, ts);
		if (rc == 0)
			rc = bus_log_next(l, &ev);
		t2 = now_ns();
		if (rc != 1 || ev.ts_ns < ts)
			rs->bad_seeks++;
		rs->seek_seq_ns[i] = t1 - t0;
		rs->seek_time_ns[i] = t2 - t1;
	}
	bus_log_close(l);
	if (rs->bad_seeks)
		return child_fail("%llu seeks landed on the wrong event",
				  (unsigned long long)rs->bad_seeks);
	return 0;
}

/* `cat FILES > /dev/null`, pinned like the replay; seconds, or < 0. */
static double run_cat(char **files, int nfiles)
{
	char *argv[80];
	uint64_t t0;
	pid_t pid;
	int st;

	if (nfiles > 77)
		return -1;
	argv[0] = "cat";
	for (int i = 0; i < nfiles; i++)
		argv[i + 1] = files[i];
	argv[nfiles + 1] = NULL;
	fflush(NULL);
	t0 = now_ns();
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		sigset_t none;
		int nul = open("/dev/null", O_WRONLY);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		pin_cpu(cfg.prod_cpu);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (nul >= 0)
			dup2(nul, 1);
		execvp("cat", argv);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		return -1;
	return (double)(now_ns() - t0) / 1e9;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_replay(struct dur_run *r)
{
	struct replay_shared *rs = shm_map(sizeof(*rs));
	char *files[80];
	int nfiles = 0, rc, pass;
	double cat_s[REPLAY_ROUNDS], rep_s, c_s, q, gbps, cat_gbps;
	uint64_t bytes = 0, chunks;
	unsigned segs;
	struct dirent *e;
	DIR *dir;

	snprintf(rs->dir, sizeof(rs->dir), "%s", r->keep_log);
	rs->expect = r->keep_events;
	log_usage(r->keep_log, &bytes, &chunks, &segs);
	dir = opendir(r->keep_log);
	while (dir && (e = readdir(dir)) && nfiles < 77) {
		size_t n = strlen(e->d_name);

		if (n > 4 && !strcmp(e->d_name + n - 4, ".log")) {
			files[nfiles] = malloc(strlen(r->keep_log) + n + 2);
			sprintf(files[nfiles++], "%s/%s", r->keep_log, e->d_name);
		}
	}
	if (dir)
		closedir(dir);
	qsort(files, (size_t)nfiles, sizeof(files[0]), cmp_str);

	printf("%-42s %11s %9s %9s %9s %8s %6s\n", "replay, page cache warm", "events/s",
	       "GB/s", "cat GB/s", "ratio", "target", "result");
	/* Warm the page cache (the log was just written: it is there), and
	 * cat's own binary. */
	if (run_cat(files, nfiles) < 0) {
		child_fail("cat of %d files in %s failed", nfiles, r->keep_log);
		case_failed("cat", -ECHILD);
		goto out;
	}
	for (int i = 0; i < REPLAY_ROUNDS; i++)
		cat_s[i] = run_cat(files, nfiles);
	rc = run_one(replay, rs, 120, NULL);
	if (rc) {
		case_failed("replay", rc);
		goto out;
	}
	rep_s = median(rs->replay_s, REPLAY_ROUNDS);
	c_s = median(cat_s, REPLAY_ROUNDS);
	gbps = (double)bytes / rep_s / 1e9;
	cat_gbps = (double)bytes / c_s / 1e9;
	q = c_s / rep_s;
	pass = q >= REPLAY_TARGET;
	misses += !pass;
	{
		char label[96];

		snprintf(label, sizeof(label), "bus_log_next, %zu B events, CRC checked",
			 r->keep_size);
		printf("%-42s %11.0f %9.2f %9.2f %8.3fx %8s %6s\n", label,
		       (double)rs->events / rep_s, gbps, cat_gbps, q, ">= 0.5x",
		       pass ? "PASS" : "MISS");
	}
	printf("(%llu events, %.1f MiB in %u segment file(s), %llu chunks; median of %d "
	       "passes each, both pinned to CPU %d; cat: coreutils cat of the .log files to "
	       "/dev/null, once untimed first)\n", (unsigned long long)rs->events,
	       (double)bytes / 1048576, segs, (unsigned long long)chunks, REPLAY_ROUNDS,
	       cfg.prod_cpu);
	csv_row("replay", r->keep_size, "events_per_s", (double)rs->events / rep_s, "ev/s");
	csv_row("replay", r->keep_size, "gb_per_s", gbps, "GB/s");
	csv_row("replay", r->keep_size, "cat_gb_per_s", cat_gbps, "GB/s");
	csv_row("replay", r->keep_size, "over_cat", q, "ratio");
	csv_row("replay", r->keep_size, "target_min", REPLAY_TARGET, "ratio");
	csv_row("replay", r->keep_size, "pass", pass, "bool");
	csv_row("replay", r->keep_size, "log_bytes", (double)bytes, "B");
	for (int i = 0; i < REPLAY_ROUNDS; i++) {
		char m[40];

		snprintf(m, sizeof(m), "gb_per_s_round%d", i + 1);
		csv_row("replay", r->keep_size, m, (double)bytes / rs->replay_s[i] / 1e9, "GB/s");
		snprintf(m, sizeof(m), "cat_gb_per_s_round%d", i + 1);
		csv_row("replay", r->keep_size, m, (double)bytes / cat_s[i] / 1e9, "GB/s");
	}

	printf("%-42s %9s %9s %9s %9s %8s %6s\n", "seek + first bus_log_next, us", "p50", "p99",
	       "max", "", "target", "result");
	for (int k = 0; k < 2; k++) {
		uint64_t *v = k ? rs->seek_time_ns : rs->seek_seq_ns;
		static const char *ids[] = { "seek_seq", "seek_time" };
		static const char *labels[] = { "by sequence (bus_log_seek)",
						"by time (bus_log_seek_time)" };
		uint64_t p50, p99, mx;

		qsort(v, SEEKS, sizeof(*v), cmp_u64);
		p50 = pct_u64(v, SEEKS, 0.5);
		p99 = pct_u64(v, SEEKS, 0.99);
		mx = v[SEEKS - 1];
		pass = (double)p99 <= SEEK_TARGET_NS;
		misses += !pass;
		printf("%-42s %9.1f %9.1f %9.1f %9s %8s %6s\n", labels[k], (double)p50 / 1e3,
		       (double)p99 / 1e3, (double)mx / 1e3, "", "p99<=1ms", pass ? "PASS" : "MISS");
		csv_row(ids[k], r->keep_size, "p50_ns", (double)p50, "ns");
		csv_row(ids[k], r->keep_size, "p99_ns", (double)p99, "ns");
		csv_row(ids[k], r->keep_size, "max_ns", (double)mx, "ns");
		csv_row(ids[k], r->keep_size, "target_p99_max_ns", SEEK_TARGET_NS, "ns");
		csv_row(ids[k], r->keep_size, "pass", pass, "bool");
	}
	printf("(%u random targets each, uniform over the log's sequences / its time span; "
	       "every landing checked: the event asked for, or the first at or after the "
	       "time)\n", SEEKS);
out:
	for (int i = 0; i < nfiles; i++)
		free(files[i]);
	shm_unmap(rs, sizeof(*rs));
}

/* ------------------------------------------------------------------------ */
/* Other load                                                               */
/* ------------------------------------------------------------------------ */

/* CPU-seconds this process, its reaped children and busd used so far. */
static double own_cpu_s(pid_t busd)
{
	struct rusage self, kids;
	double s;
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	int fd;

	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	s = (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec + kids.ru_utime.tv_sec +
		     kids.ru_stime.tv_sec) +
	    (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec + kids.ru_utime.tv_usec +
		     kids.ru_stime.tv_usec) / 1e6;
	if (busd <= 0)
		return s;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)busd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return s;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);

	close(fd);
	if (n <= 0)
		return s;
	buf[n] = 0;
	/* utime and stime: fields 14 and 15, counted from the last ')' */
	p = strrchr(buf, ')');
	if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			&ut, &st) == 2)
		s += (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	return s;
}

struct group_load {
	double busy, steal, own;
	uint64_t t;
};

static void load_mark(struct group_load *g, pid_t busd)
{
	cpu_busy(&g->busy, &g->steal);
	g->own = own_cpu_s(busd);
	g->t = now_ns();
}

/* ------------------------------------------------------------------------ */
/* The group                                                                */
/* ------------------------------------------------------------------------ */

static const char *fs_name(long type)
{
	switch ((unsigned long)type) {
	case 0xEF53: return "ext2/3/4";
	case 0x58465342: return "xfs";
	case 0x9123683E: return "btrfs";
	case 0x01021994: return "tmpfs (RAM, not a disk!)";
	case 0x794c7630: return "overlayfs";
	default: return "?";
	}
}

int run_durable(FILE *csv_file, int *missed)
{
	struct dur_run r;
	struct statvfs vs;
	struct statfs fs;
	uint64_t avail, need, n_bytes = cfg.quick ? 64ull << 20 : 1ull << 30;
	char threads[160];
	struct group_load l0 = { 0 }, l2 = { 0 };
	int rc;

	csv = csv_file;
	misses = failures = 0;
	memset(&r, 0, sizeof(r));
	memset(cells, 0, sizeof(cells));
	r.rounds = cfg.quick ? 1 : MAX_ROUNDS;
	printf("\n== 7. durable topics: a private busd, log on disk ==\n");
	if (statvfs(DISK_DIR, &vs) < 0 || statfs(DISK_DIR, &fs) < 0) {
		child_fail("statvfs %s: %s", DISK_DIR, strerror(errno));
		case_failed("durable", -errno);
		goto done;
	}
	/* The largest case's files plus the replay log, and room to spare. */
	avail = (uint64_t)vs.f_bavail * vs.f_frsize;
	need = 2 * n_bytes + (n_bytes >> 2);
	if (avail < need) {
		uint64_t n = (avail * 2 / 5) & ~((1ull << 20) - 1);

		printf("NOTE: %s has %.0f MiB free, %.0f MiB wanted: N scaled down from %llu to "
		       "%llu MiB (the replay log is then below the 1 GiB the spec asks for)\n",
		       DISK_DIR, (double)avail / 1048576, (double)need / 1048576,
		       (unsigned long long)(n_bytes >> 20), (unsigned long long)(n >> 20));
		if (n < (8ull << 20)) {
			printf("  too little disk: the durable group is skipped\n");
			goto done;
		}
		n_bytes = n;
	}
	r.n_bytes[POL_NONE] = n_bytes;
	/* Quick: the interval cases are disk-bound, and end with up to 1 s
	 * of waiting for the interval sync whatever their size: half. */
	r.n_bytes[POL_INTERVAL] = cfg.quick ? n_bytes / 2 : n_bytes;
	csv_row("setup", 0, "n_bytes_none", (double)r.n_bytes[POL_NONE], "B");
	csv_row("setup", 0, "n_bytes_interval", (double)r.n_bytes[POL_INTERVAL], "B");
	csv_row("setup", 0, "disk_free_bytes", (double)avail, "B");
	rc = busd_start(&r.d, "durable", DISK_DIR, cfg.cons_cpu);
	if (rc) {
		case_failed("starting busd", rc);
		goto stop;
	}
	rc = bus_connect(r.d.bus, &r.bus);
	if (rc) {
		child_fail("bus_connect(%s): %s (%s)", r.d.bus, err_str(rc), bus_errmsg());
		case_failed("connecting to busd", rc);
		goto stop;
	}
	busd_threads(r.d.pid, threads, sizeof(threads));
	printf("busd pid %d (%s), ready in %.1f ms; producer on CPU %d\n", (int)r.d.pid, threads,
	       r.d.start_ms, cfg.prod_cpu);
	printf("log directory %s (%s, f_type 0x%lx), %.1f GiB free; rings in %s\n", r.d.state,
	       fs_name((long)fs.f_type), (unsigned long)fs.f_type, (double)avail / (1 << 30),
	       r.d.root);
	fflush(stdout);
	r.sh = shm_map(dur_shared_len());
	load_mark(&l0, r.d.pid);

	/* Within a round, per size and policy: the durable topic, then the
	 * raw loops writing the same bytes in the same chunks as its flusher
	 * did (its mean chunk, to 4 KiB); per size, the volatile topic last.
	 * The durable 64 B fsync-none log of the last round is kept for the
	 * replay (before_case syncs it to disk, untimed, before the raw loops
	 * that follow it). */
	for (int round = 0; round < r.rounds; round++) {
		for (int si = 0; si < NSZ; si++) {
			for (int pol = 0; pol < NPOL; pol++) {
				const struct tp_cell *dc = &cells[si][pol][K_DURABLE];
				int keep = round == r.rounds - 1 && si == NSZ - 1 &&
					   pol == POL_NONE;
				size_t chunk = RAW_CHUNK;
				uint64_t bytes = 0;

				if (!run_topic_case(&r, si, pol, K_DURABLE, round, keep) &&
				    dc->chunks) {
					chunk = (size_t)((dc->disk_bytes / dc->chunks + 4095) &
							 ~4095ull);
					bytes = dc->disk_bytes;
				}
				run_raw_case(&r, si, pol, K_URING, round, chunk, bytes);
				run_raw_case(&r, si, pol, K_WRITE, round, chunk, bytes);
				if (busd_check(&r.d)) {
					case_failed("busd", -ESRCH);
					goto stop;
				}
			}
			run_topic_case(&r, si, POL_NONE, K_VOLATILE, round, 0);
		}
	}
	busd_threads(r.d.pid, threads, sizeof(threads));
	tp_rows(&r);
	printf("  busd after the runs: %s\n", threads);
	fflush(stdout);
	lag_rows();
	fflush(stdout);
	if (r.keep_log[0])
		run_replay(&r);
	else
		printf("replay: n/a (no durable log was kept)\n");
	if (r.keep_topic[0]) {
		bus_delete(r.bus, r.keep_topic);
		rm_tree(r.keep_log);
	}
	load_mark(&l2, r.d.pid);
	{
		/* Everything busy on any CPU that was not us, our children or
		 * busd: this VM is shared, and a figure measured beside other
		 * work (or disk traffic, which this cannot see) is suspect.
		 * The kernel's writeback of our own files (kworker, jbd2,
		 * interrupts) counts as other: a few percent even when quiet. */
		double wall = (double)(l2.t - l0.t) / 1e9;
		double other = (l2.busy - l0.busy) - (l2.own - l0.own);
		double steal = l2.steal - l0.steal;

		if (other < 0)
			other = 0;
		printf("other load during the group: %.2f CPU-s of other processes, %.2f CPU-s "
		       "stolen, over %.1f s (%.1f%% of one CPU)%s\n", other, steal, wall,
		       100 * (other + steal) / wall,
		       (other + steal) / wall > NOISE_FLAG ? "  [! suspect: rerun on a quiet "
		       "machine]" : "");
		csv_row("setup", 0, "other_load_pct", 100 * (other + steal) / wall, "%");
	}
stop:
	bus_disconnect(r.bus);
	if (r.sh)
		shm_unmap(r.sh, dur_shared_len());
	rc = busd_stop(&r.d);
	if (rc)
		case_failed("stopping busd", rc);
done:
	fflush(stdout);
	*missed = misses;
	return failures;
}
