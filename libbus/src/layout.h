/* SPDX-License-Identifier: MIT */
/*
 * layout.h — the shared-memory layout of a topic segment. This is an ABI:
 * every field has a fixed offset (checked below), the magic and the layout
 * version come first, and everything read from a segment is validated before
 * it is trusted (a segment may be corrupt or hostile).
 *
 * A topic is two files (the kernel enforces protection per open file, so the
 * part consumers may write has to be a file of its own):
 *
 *   NAME        [ seg_hdr (4 KiB) | ring (cap bytes) ]
 *               producer maps it read-write, consumers read-only; the ring is
 *               mapped twice back to back so every record is contiguous.
 *   NAME@cons   [ cons_hdr (4 KiB) | cons_slot[nslots] ]
 *               read-write for consumers (cursor slots, wait requests).
 *
 * Writers per cache line (one line = one writer keeps the hot path free of
 * false sharing; 128-byte spacing also defeats the adjacent-line prefetcher):
 *
 *   seg_hdr  +0    immutable geometry, plus `state` (written once, on delete)
 *            +128  producer, every publish: head, last, bytes
 *            +256  producer, once per tail chunk: tail, tail_seq
 *            +384  producer, only when it wakes sleepers: wake_gen (futex)
 *            +512  producer, open/close and slow paths: pid, fence mode, stats
 *            +640  busd's flusher (durable topics): flushed, durable_seq, flush_gen
 *   cons_hdr +128  consumers going to sleep: wake_req
 *            +256  gating: gate_gen (consumers), gate_req (producer)
 *   cons_slot      its consumer (pos, seq, counters); 128 bytes each
 */
#ifndef BUS_LAYOUT_H
#define BUS_LAYOUT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#define SEG_MAGIC        0x5355425f43504f54ull  /* "TOPC_BUS" little endian */
#define CONS_MAGIC       0x5355425f534e4f43ull  /* "CONS_BUS" */
#define SEG_VERSION      1u
#define SEG_HDR_SIZE     4096u
#define CONS_HDR_SIZE    4096u
#define CONS_SUFFIX      "@cons"

/* seg_hdr.state */
#define SEG_STATE_LIVE    0u
#define SEG_STATE_DELETED 1u

/* seg_hdr.flush_state */
#define FLUSH_OK       0u
#define FLUSH_DEGRADED 1u   /* writes are failing (disk full, EIO): see busd's log */

/* seg_hdr.pub_fence: how the current producer orders "publish head" before
 * "look for sleepers"; a consumer going to sleep must use the matching heavy
 * side (see wait.c). */
#define FENCE_FULL  0u   /* producer issues a seq_cst fence per publish */
#define FENCE_ASYM  1u   /* producer registered for membarrier; compiler barrier only */

struct seg_hdr {
	/* +0: written at creation, then read-only (except state). */
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_size;          /* == SEG_HDR_SIZE */
	uint64_t ring_size;         /* power of two */
	uint32_t max_event;         /* largest payload */
	uint32_t max_consumers;     /* slots in NAME@cons */
	uint32_t flags;             /* BUS_TOPIC_* */
	uint32_t chunk_shift;       /* the tail advances in steps of 1 << chunk_shift */
	uint64_t first_seq;
	uint64_t created_ns;
	_Atomic uint32_t state;     /* SEG_STATE_*, set once by bus_topic_remove() */
	uint32_t creator_pid;
	uint8_t  pad0[128 - 64];

	/* +128: the producer's publish line, written on every publish. */
	_Atomic uint64_t head;      /* bytes ever committed; monotonic */
	_Atomic uint64_t last;      /* start of the newest committed record */
	uint64_t reserved1;         /* zero (a next-seq counter would be one more
				     * store per publish; the records have it) */
	_Atomic uint64_t bytes;     /* payload bytes published (statistics) */
	uint8_t  pad1[128 - 32];

	/* +256: written when the producer invalidates old records (per chunk). */
	_Atomic uint64_t tail;      /* oldest intact record; tail <= head */
	_Atomic uint64_t tail_seq;  /* its sequence number (== next seq if tail == head) */
	uint8_t  pad2[128 - 16];

	/* +384: the futex consumers sleep on; bumped only to wake them. */
	_Atomic uint32_t wake_gen;
	uint8_t  pad3[128 - 4];

	/* +512: producer identity and slow-path statistics. */
	_Atomic uint32_t pub_pid;   /* 0 when no producer is attached */
	_Atomic uint32_t pub_fence; /* FENCE_* of the attached producer */
	_Atomic uint64_t waits;     /* times the producer waited for gating consumers */
	_Atomic uint64_t wakeups;   /* FUTEX_WAKE calls made */
	_Atomic uint64_t pub_opens; /* producers that attached over the topic's life */
	_Atomic uint32_t flush_req; /* durable: the producer waits for flush_gen */
	uint8_t  pad4[128 - 36];

	/* +640: the flusher (busd), durable topics only. */
	_Atomic uint64_t flushed;     /* the log holds everything before this */
	_Atomic uint64_t flushed_seq; /* sequence number of the record at flushed */
	_Atomic uint64_t durable_seq; /* events below it are durable (fsync policy) */
	_Atomic uint32_t flush_gen;   /* futex: bumped when the above move for a waiter */
	_Atomic uint32_t flush_state; /* FLUSH_* */
	_Atomic uint64_t flush_errors;/* failed writes (statistics) */
	uint8_t  pad5[128 - 40];
};

static_assert(offsetof(struct seg_hdr, head) == 128, "seg_hdr layout");
static_assert(offsetof(struct seg_hdr, tail) == 256, "seg_hdr layout");
static_assert(offsetof(struct seg_hdr, wake_gen) == 384, "seg_hdr layout");
static_assert(offsetof(struct seg_hdr, pub_pid) == 512, "seg_hdr layout");
static_assert(offsetof(struct seg_hdr, flushed) == 640, "seg_hdr layout");
static_assert(sizeof(struct seg_hdr) == 768, "seg_hdr layout");
static_assert(sizeof(struct seg_hdr) <= SEG_HDR_SIZE, "seg_hdr fits its page");

struct cons_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t nslots;
	uint8_t  pad0[128 - 16];

	/* +128: highest wake generation a consumer is about to sleep on; raised
	 * by consumers (CAS max), read by the producer on every publish. */
	_Atomic uint32_t wake_req;
	uint8_t  pad1[128 - 4];

	/* +256: gating. The producer sleeps on gate_gen when a gating consumer
	 * has not made room; it sets gate_req = gate_gen first, and a consumer
	 * that sees them equal bumps gate_gen and wakes it. */
	_Atomic uint32_t gate_gen;
	_Atomic uint32_t gate_req;
	uint8_t  pad2[128 - 8];
};

static_assert(offsetof(struct cons_hdr, wake_req) == 128, "cons_hdr layout");
static_assert(offsetof(struct cons_hdr, gate_gen) == 256, "cons_hdr layout");
static_assert(sizeof(struct cons_hdr) <= CONS_HDR_SIZE, "cons_hdr fits its page");

/* cons_slot.flags */
#define SLOT_GATING 0x1u  /* the producer waits for this consumer */
#define SLOT_ASYM   0x2u  /* its G2 is a compiler barrier: wake it with membarrier */

/*
 * One consumer's cursor. `owner` is the claim word: 0 = free, else the pid of
 * the process holding the slot (taken with a CAS; a slot whose owner is dead
 * is reclaimed by the next claimant). Everything else has one writer: the
 * owner. Readers (the producer for gating, tools for lag) only load.
 */
struct cons_slot {
	_Atomic uint32_t owner;
	_Atomic uint32_t flags;      /* SLOT_* */
	_Atomic uint64_t pos;        /* byte position of the next record to read */
	_Atomic uint64_t seq;        /* its sequence number */
	_Atomic uint64_t events;     /* events read */
	_Atomic uint64_t lapped;     /* times lapped */
	_Atomic uint64_t lost;       /* events lost to lapping */
	_Atomic uint32_t sleeping;   /* 1 while in futex_wait */
	uint32_t pad0;
	/* Named cursors (busd): the owner stores the sequence number it will
	 * resume from after a restart (bus_sub_commit); busd reads it when the
	 * owner goes and persists it. group is busd's id of the cursor + 1 (0 =
	 * anonymous), written by busd before it hands the slot out. */
	_Atomic uint64_t commit;
	_Atomic uint32_t group;
	uint8_t  pad[128 - 68];
};

static_assert(sizeof(struct cons_slot) == 128, "cons_slot layout");
static_assert(offsetof(struct cons_slot, commit) == 56, "cons_slot layout");

/*
 * A record in the ring: this header, then len payload bytes, padded to
 * REC_ALIGN. Positions are 64-bit byte offsets that never wrap; they are
 * masked only to index the ring.
 */
struct rec_hdr {
	uint32_t len;
	uint32_t type;
	uint64_t seq;
	uint64_t ts_ns;
};

#define REC_ALIGN 8u
static_assert(sizeof(struct rec_hdr) == 24, "rec_hdr layout");

static inline uint64_t rec_size(uint64_t len)
{
	return (sizeof(struct rec_hdr) + len + REC_ALIGN - 1) & ~(uint64_t)(REC_ALIGN - 1);
}

static inline uint64_t seg_file_size(uint64_t ring_size)
{
	return SEG_HDR_SIZE + ring_size;
}

static inline uint64_t cons_file_size(uint32_t nslots)
{
	uint64_t sz = CONS_HDR_SIZE + (uint64_t)nslots * sizeof(struct cons_slot);

	return (sz + 4095) & ~(uint64_t)4095;
}

#endif
