/* SPDX-License-Identifier: MIT */
/*
 * logfmt.h — the on-disk log of a durable topic, format version 1.
 * docs/LOG-FORMAT.md is the specification; this header is its C form.
 *
 * A topic's log is a directory:
 *
 *   topic.conf                      the topic's settings (text, key=value)
 *   00000000000000000001.log        segments, named by their first sequence
 *   00000000000000000001.idx        ... and a sparse index for each
 *   00000000000000250001.log
 *   00000000000000250001.idx
 *
 * A segment is a file header and then chunks. A chunk is a header and the
 * records of consecutive events exactly as they were in the ring (struct
 * rec_hdr, payload, padding to 8 bytes), so that the flusher writes straight
 * from the shared mapping. Every chunk carries a CRC-32C over its header
 * (with the crc field zero) and its records. All integers little endian.
 */
#ifndef BUS_LOGFMT_H
#define BUS_LOGFMT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#define LOG_VERSION        1u
#define LOG_FILE_MAGIC     "BUSLOG1\n"   /* 8 bytes, no NUL */
#define LOG_IDX_MAGIC      "BUSIDX1\n"
#define LOG_CHUNK_MAGIC    0x4b4e4843u   /* "CHNK" */
#define LOG_HDR_SIZE       64u
#define LOG_CHUNK_MAX      (4u << 20)    /* largest chunk payload */
#define LOG_NAME_DIGITS    20            /* %020llu */
#define LOG_CONF           "topic.conf"

struct log_file_hdr {                    /* at offset 0 of .log and .idx */
	char magic[8];                   /* LOG_FILE_MAGIC or LOG_IDX_MAGIC */
	uint32_t version;                /* LOG_VERSION */
	uint32_t hdr_size;               /* LOG_HDR_SIZE */
	uint64_t first_seq;              /* == the number in the file name */
	uint64_t created_ns;             /* CLOCK_REALTIME */
	uint32_t flags;                  /* zero */
	uint32_t crc;                    /* CRC-32C of these 64 bytes, crc = 0 */
	uint8_t reserved[24];            /* zero */
};
static_assert(sizeof(struct log_file_hdr) == LOG_HDR_SIZE, "log_file_hdr");

struct log_chunk_hdr {
	uint32_t magic;                  /* LOG_CHUNK_MAGIC */
	uint16_t version;                /* LOG_VERSION */
	uint16_t hdr_size;               /* LOG_HDR_SIZE */
	uint32_t count;                  /* events (records) in the chunk, >= 1 */
	uint32_t flags;                  /* zero */
	uint64_t first_seq;              /* sequence number of the first */
	uint64_t first_ts;               /* its timestamp */
	uint64_t last_ts;                /* the last one's */
	uint64_t len;                    /* bytes of records that follow; a
					  * multiple of 8, <= LOG_CHUNK_MAX */
	uint32_t crc;                    /* CRC-32C of header (crc = 0) + records */
	uint32_t reserved0;              /* zero */
	uint64_t reserved1;              /* zero */
};
static_assert(sizeof(struct log_chunk_hdr) == LOG_HDR_SIZE, "log_chunk_hdr");

/* One index entry per chunk: where it starts and what it holds. The index
 * is a hint: a reader checks the chunk it points at, and busd rebuilds an
 * index that does not match its segment. */
struct log_idx_entry {
	uint64_t first_seq;
	uint64_t first_ts;
	uint64_t offset;                 /* of the chunk header in the .log */
	uint32_t count;
	uint32_t crc;                    /* CRC-32C of the 28 bytes before */
};
static_assert(sizeof(struct log_idx_entry) == 32, "log_idx_entry");

/* The structs above are read and written as they lie in memory: the
 * format is little endian, and so must the host be. */
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the log format is little endian");
static_assert(offsetof(struct log_chunk_hdr, first_seq) == 16, "log_chunk_hdr");
static_assert(offsetof(struct log_chunk_hdr, len) == 40, "log_chunk_hdr");
static_assert(offsetof(struct log_chunk_hdr, crc) == 48, "log_chunk_hdr");
static_assert(offsetof(struct log_file_hdr, crc) == 36, "log_file_hdr");

#endif
