/* SPDX-License-Identifier: MIT */
/* log.h — reading and checking a durable topic's log (format: logfmt.h). */
#ifndef BUS_LOG_H
#define BUS_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "bus.h"
#include "logfmt.h"

/* "%020llu.log" / ".idx" */
void log_name(char *buf, size_t size, uint64_t first_seq, const char *ext);
/* The segments of a log directory, sorted by first sequence number. */
int log_list(int dirfd, uint64_t **firsts, size_t *n);

void log_file_hdr_init(struct log_file_hdr *h, const char *magic, uint64_t first_seq);
int log_file_hdr_check(const struct log_file_hdr *h, const char *magic, uint64_t first_seq);

/* Fill a chunk header for records already in iov (crc over header + iov). */
void log_chunk_seal(struct log_chunk_hdr *h, uint64_t first_seq, uint32_t count,
		    uint64_t first_ts, uint64_t last_ts, const struct iovec *iov, int iovcnt);
void log_idx_seal(struct log_idx_entry *e);

/*
 * Check a chunk: header fields, CRC, and every record in it (lengths, padding,
 * consecutive sequence numbers from first_seq, count). 0 if sound, else
 * -EBADMSG with *why set to a static description.
 */
int log_chunk_check(const struct log_chunk_hdr *h, const uint8_t *recs, const char **why);
/* Header only (before its payload is read): 0 or -EBADMSG. */
int log_chunk_hdr_check(const struct log_chunk_hdr *h, const char **why);

/*
 * Scan a segment file from its start: how far it is sound. *valid_end is the
 * end of the last sound chunk (or of the file header), *next_seq the
 * sequence after its last event, *chunks the sound chunks, *last_ts the
 * last timestamp. Returns 0 when the whole file is sound, 1 when it has a
 * bad tail (at *valid_end; *why says what), -errno if it cannot be read or
 * its file header is bad.
 */
struct log_scan {
	uint64_t valid_end;
	uint64_t file_size;
	uint64_t first_seq;
	uint64_t next_seq;
	uint64_t chunks;
	uint64_t first_ts;
	uint64_t last_ts;
	const char *why;
	/* optional: called for every sound chunk (index rebuild) */
	void (*on_chunk)(void *arg, const struct log_chunk_hdr *h, uint64_t offset);
	void *arg;
};
int log_scan_segment(int fd, uint64_t first_seq, struct log_scan *sc);

/* The reader behind bus_log_* and the consumer's catch-up. */
struct bus_log {
	int dirfd;
	uint64_t *segs;
	size_t nsegs;
	size_t seg;              /* index of the open segment */
	int fd;                  /* -1: none open */
	uint64_t off;            /* offset of the next chunk */
	uint8_t *buf;            /* the current chunk's records */
	size_t cap;
	uint64_t len;            /* bytes of records in buf */
	uint64_t rec;            /* offset in buf of the next record */
	uint64_t next_seq;       /* sequence of the next event to return */
	uint64_t chunk_next;     /* first_seq + count of the chunk in buf: where the next starts */
	uint64_t limit;          /* return nothing at or above (UINT64_MAX: all) */
	int live;                /* a torn last chunk means "not yet", not corruption */
	uint64_t min_ts;         /* seek by time: skip events before it */
	int new_seg;             /* just moved to the next segment */
	int failed;              /* -errno of a corrupt chunk: reading stays stopped */
	char why[320];           /* ... and its message */
	char dir[256];           /* for messages */
};

int log_open_fd(int dirfd, const char *what, struct bus_log **out);  /* takes dirfd */
/* bus_log_seek without touching min_ts: -ERANGE when older than the log. */
int log_seek(struct bus_log *l, uint64_t seq);

#endif
