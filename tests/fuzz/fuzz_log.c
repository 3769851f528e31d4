/* SPDX-License-Identifier: MIT */
/*
 * fuzz_log.c — libFuzzer target: the reader of a durable topic's log
 * (libbus/src/log.c, format docs/LOG-FORMAT.md).
 *
 * The input becomes a log directory: up to three segments, each a .log and
 * a .idx file, in a private scratch directory. Everything is then read with
 * the public API, as `bus replay` and a lapped consumer would: bus_log_info,
 * every event, a seek by sequence number and a seek by time (each followed
 * by reads), and log_scan_segment (busd's recovery, `bus log verify`) over
 * every segment. Nothing may crash, hang, leak memory or a descriptor, and
 * what is returned must keep the log's promises (DESIGN.md invariants 4, 9):
 * sequence numbers only go up by one, a jump is reported as a gap first, a
 * failure is -errno with a message.
 *
 * Input layout (all little endian):
 *
 *   byte 0      flags: FIX_LOG_CRC, FIX_IDX_CRC, FOLLOW, MISNAME
 *   bytes 1-8   sequence number for bus_log_seek
 *   bytes 9-16  timestamp for bus_log_seek_time
 *   then        files separated by SEP: seg0.log, seg0.idx, seg1.log, ...
 *
 * A segment is named after the first_seq in its own file header (bytes
 * 16-23), plus one with MISNAME. The fuzzer cannot guess CRC-32C values, so
 * FIX_*_CRC recompute them before writing: without that, everything past
 * the first CRC check would stay unexplored. The seeds (tests/fuzz/corpus/log)
 * are logs written by a real busd.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "err.h"
#include "fuzz.h"
#include "layout.h"
#include "log.h"

#define FIX_LOG_CRC 0x01u
#define FIX_IDX_CRC 0x02u
#define FOLLOW      0x04u
#define MISNAME     0x08u

#define SEP     "\xff" "BUSFUZ\n"
#define SEP_LEN 8
#define CTL_LEN 17
#define MAX_SEGS 3
#define MAX_EVENTS 20000  /* per pass: a bound, so that nothing can hang */

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* Recompute the CRCs of a segment: the file header's, then each chunk's as
 * long as the chunk lengths lead to whole chunks. */
static void fix_log(uint8_t *b, size_t len)
{
	size_t off = LOG_HDR_SIZE;

	if (len < LOG_HDR_SIZE)
		return;
	put32(b + offsetof(struct log_file_hdr, crc), 0);
	put32(b + offsetof(struct log_file_hdr, crc), crc32c(0, b, LOG_HDR_SIZE));
	while (len - off >= sizeof(struct log_chunk_hdr)) {
		uint64_t plen = get64(b + off + offsetof(struct log_chunk_hdr, len));
		uint32_t crc;

		if (plen > LOG_CHUNK_MAX || plen > len - off - sizeof(struct log_chunk_hdr))
			break;
		put32(b + off + offsetof(struct log_chunk_hdr, crc), 0);
		crc = crc32c(0, b + off, sizeof(struct log_chunk_hdr));
		crc = crc32c(crc, b + off + sizeof(struct log_chunk_hdr), plen);
		put32(b + off + offsetof(struct log_chunk_hdr, crc), crc);
		off += sizeof(struct log_chunk_hdr) + plen;
	}
}

static void fix_idx(uint8_t *b, size_t len)
{
	if (len < LOG_HDR_SIZE)
		return;
	put32(b + offsetof(struct log_file_hdr, crc), 0);
	put32(b + offsetof(struct log_file_hdr, crc), crc32c(0, b, LOG_HDR_SIZE));
	for (size_t off = LOG_HDR_SIZE; len - off >= sizeof(struct log_idx_entry);
	     off += sizeof(struct log_idx_entry))
		put32(b + off + offsetof(struct log_idx_entry, crc),
		      crc32c(0, b + off, offsetof(struct log_idx_entry, crc)));
}

static void write_file(int dfd, const char *name, const uint8_t *b, size_t len)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	FUZZ_CHECK(fd >= 0, "cannot create %s in the scratch directory", name);
	FUZZ_CHECK(len == 0 || write(fd, b, len) == (ssize_t)len, "short write of %s", name);
	close(fd);
}

struct seen {
	uint64_t expect;     /* the sequence number the next event must have; 0 = any */
	uint64_t min_ts;     /* after a seek by time: the first event's lower bound */
	unsigned events, gaps;
};

/* Read up to max events. Returns the last result. */
static int read_events(struct bus_log *l, struct seen *sn, unsigned max)
{
	struct bus_event ev;
	volatile uint8_t sink = 0;
	int r = 0;

	for (unsigned i = 0; i < max; i++) {
		r = bus_log_next(l, &ev);
		if (r == 1) {
			const uint8_t *p = ev.data;

			FUZZ_CHECK(!sn->expect || ev.seq == sn->expect,
				   "event %llu returned, %llu expected (no gap reported)",
				   (unsigned long long)ev.seq, (unsigned long long)sn->expect);
			FUZZ_CHECK(ev.len <= LOG_CHUNK_MAX - sizeof(struct rec_hdr),
				   "a %u-byte event from a log", ev.len);
			FUZZ_CHECK(!ev.lost, "an event that says it lost %llu",
				   (unsigned long long)ev.lost);
			FUZZ_CHECK(sn->events || ev.ts_ns >= sn->min_ts,
				   "first event after a seek to time %llu has time %llu",
				   (unsigned long long)sn->min_ts, (unsigned long long)ev.ts_ns);
			/* Every payload byte: ASan checks they are in the buffer. */
			for (uint32_t k = 0; k < ev.len; k++)
				sink ^= p[k];
			sn->expect = ev.seq + 1;
			sn->events++;
			continue;
		}
		if (r == -ENOBUFS) {  /* a gap, then reading goes on */
			FUZZ_CHECK(ev.lost > 0, "a gap of nothing");
			FUZZ_CHECK(!sn->expect || ev.seq == sn->expect,
				   "gap from %llu, %llu expected", (unsigned long long)ev.seq,
				   (unsigned long long)sn->expect);
			FUZZ_CHECK(ev.seq + ev.lost > ev.seq, "gap %llu+%llu wraps",
				   (unsigned long long)ev.seq, (unsigned long long)ev.lost);
			sn->expect = ev.seq + ev.lost;
			sn->gaps++;
			continue;
		}
		if (r < 0)
			FUZZ_CHECK(bus_errmsg()[0], "error %d without a message", r);
		else
			FUZZ_CHECK(r == 0, "bus_log_next returned %d", r);
		break;
	}
	(void)sink;
	return r;
}

static void on_chunk(void *arg, const struct log_chunk_hdr *h, uint64_t off)
{
	uint64_t *last = arg;

	FUZZ_CHECK(off >= LOG_HDR_SIZE && off >= *last, "chunk at %llu after one at %llu",
		   (unsigned long long)off, (unsigned long long)*last);
	FUZZ_CHECK(h->count && h->len <= LOG_CHUNK_MAX, "scan passed a chunk of %u events, "
		   "%llu bytes", h->count, (unsigned long long)h->len);
	*last = off + sizeof(*h) + h->len;
}

/* busd's recovery and `bus log verify` read a segment this way. */
static void scan(int dfd, const char *name, uint64_t first)
{
	struct log_scan sc;
	uint64_t last = 0;
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return;
	memset(&sc, 0, sizeof(sc));
	sc.on_chunk = on_chunk;
	sc.arg = &last;
	r = log_scan_segment(fd, first, &sc);
	close(fd);
	FUZZ_CHECK(r <= 1, "log_scan_segment returned %d", r);
	if (r < 0)
		return;
	FUZZ_CHECK(sc.valid_end <= sc.file_size, "valid_end %llu past the end %llu",
		   (unsigned long long)sc.valid_end, (unsigned long long)sc.file_size);
	FUZZ_CHECK(r == 1 || sc.valid_end == sc.file_size, "sound, but valid to %llu of %llu",
		   (unsigned long long)sc.valid_end, (unsigned long long)sc.file_size);
	FUZZ_CHECK(r == 0 || sc.why, "a bad tail without a reason");
	FUZZ_CHECK(!sc.chunks || last == sc.valid_end, "chunks end at %llu, valid_end %llu",
		   (unsigned long long)last, (unsigned long long)sc.valid_end);
	FUZZ_CHECK(sc.next_seq >= first, "next_seq %llu below first %llu",
		   (unsigned long long)sc.next_seq, (unsigned long long)first);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t ctl[CTL_LEN] = { 0 };
	const char *dir = fuzz_scratch();
	uint64_t firsts[MAX_SEGS];
	char names[MAX_SEGS][32];
	struct bus_log_info info;
	struct bus_log *l;
	struct seen sn;
	const uint8_t *p, *end;
	int dfd, fd0, nseg = 0, r;

	memcpy(ctl, data, size < CTL_LEN ? size : CTL_LEN);
	p = data + (size < CTL_LEN ? size : CTL_LEN);
	end = data + size;
	fd0 = fuzz_lowest_fd();
	fuzz_scratch_clear();
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	FUZZ_CHECK(dfd >= 0, "cannot open the scratch directory");

	/* Split the rest into files and write them. */
	for (int k = 0; k < 2 * MAX_SEGS && p <= end; k++) {
		const uint8_t *sep = memmem(p, (size_t)(end - p), SEP, SEP_LEN);
		size_t len = sep ? (size_t)(sep - p) : (size_t)(end - p);
		uint8_t *b = malloc(len + 1);
		char name[32];

		FUZZ_CHECK(b, "out of memory");
		memcpy(b, p, len);
		if (k % 2 == 0) {
			uint64_t first = len >= 24 ? get64(b + 16) : (uint64_t)nseg + 1;

			if (ctl[0] & MISNAME)
				first++;
			if (ctl[0] & FIX_LOG_CRC)
				fix_log(b, len);
			firsts[nseg] = first;
			log_name(names[nseg], sizeof(names[nseg]), first, ".log");
			write_file(dfd, names[nseg], b, len);
			nseg++;
		} else {
			if (ctl[0] & FIX_IDX_CRC)
				fix_idx(b, len);
			log_name(name, sizeof(name), firsts[nseg - 1], ".idx");
			write_file(dfd, name, b, len);
		}
		free(b);
		if (!sep)
			break;
		p = sep + SEP_LEN;
	}

	for (int i = 0; i < nseg; i++)
		scan(dfd, names[i], firsts[i]);

	r = bus_log_open(dir, &l);
	FUZZ_CHECK(r == 0, "bus_log_open of a directory that exists: %d (%s)", r, bus_errmsg());
	if (ctl[0] & FOLLOW)
		bus_log_follow(l, 1);
	r = bus_log_info(l, &info);
	if (r == 0 && info.segments) {
		FUZZ_CHECK(info.segments <= (uint32_t)nseg, "%u segments from %d files",
			   info.segments, nseg);
		FUZZ_CHECK(info.next_seq >= info.first_seq || info.segments > 1,
			   "next_seq %llu before first_seq %llu", (unsigned long long)info.next_seq,
			   (unsigned long long)info.first_seq);
	}

	memset(&sn, 0, sizeof(sn));
	read_events(l, &sn, MAX_EVENTS);
	/* Read on at the end: nothing new, and no crash. */
	read_events(l, &sn, 2);

	/* "Position at event seq": what comes next is seq, or a gap from it. */
	if (bus_log_seek(l, get64(ctl + 1)) == 0) {
		memset(&sn, 0, sizeof(sn));
		sn.expect = get64(ctl + 1);
		read_events(l, &sn, MAX_EVENTS);
	}
	if (bus_log_seek_time(l, get64(ctl + 9)) == 0) {
		memset(&sn, 0, sizeof(sn));
		sn.min_ts = get64(ctl + 9);
		read_events(l, &sn, MAX_EVENTS);
	}
	bus_log_close(l);
	close(dfd);
	FUZZ_CHECK(fuzz_lowest_fd() == fd0, "a descriptor leaked (lowest free %d, was %d)",
		   fuzz_lowest_fd(), fd0);
	return 0;
}
