/* SPDX-License-Identifier: MIT */
/*
 * t_log.h — helpers for the durable-topic tests (prefix t_): whole files in
 * and out, counting a message in busd's stderr, and an independent reading
 * of a log segment's chunk headers (the layout of logfmt.h, decoded here by
 * byte offset so that a test does not trust the code it checks).
 */
#ifndef T_LOG_H
#define T_LOG_H

#include <stddef.h>
#include <stdint.h>

/* The whole file in a malloc'd buffer (NUL-terminated, not counted in
 * *len). 0 or -errno. */
int t_file_read(const char *path, uint8_t **buf, size_t *len);
/* Create or replace path with exactly these bytes. 0 or -errno. */
int t_file_write(const char *path, const void *buf, size_t len);
/* How many times needle occurs in the file (0 if it cannot be read). */
int t_file_count(const char *path, const char *needle);
/* Wait up to timeout_ms for needle to occur at least n times in the file;
 * returns the count seen last. */
int t_file_wait_count(const char *path, const char *needle, int n, int timeout_ms);

/* CRC-32C (Castagnoli, reflected, as logfmt.h specifies), bit by bit. */
uint32_t t_crc32c(uint32_t crc, const void *buf, size_t len);

/* Bytes a record of a payload of len bytes takes in the ring and the log. */
uint64_t t_rec_size(uint32_t len);

/* One chunk of a segment file, from its header. */
struct t_chunk {
	uint64_t off;        /* of the chunk header in the file */
	uint64_t end;        /* one past its last record */
	uint64_t first_seq;
	uint32_t count;
};
/* Walk the chunk headers of a segment held in buf (file header first).
 * Fills up to max entries; returns how many chunks there are, or -1 if a
 * header is not a plausible chunk (the segment must be intact). */
int t_log_chunks(const uint8_t *buf, size_t len, struct t_chunk *out, int max);

/* Name of the segment file starting at first_seq ("%020llu.log"). */
void t_seg_name(char *buf, size_t size, uint64_t first_seq);

#endif
