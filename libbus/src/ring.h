/* SPDX-License-Identifier: MIT */
/*
 * ring.h — the single-producer / multi-consumer ring protocol.
 *
 * Positions are 64-bit byte counts that never wrap (masked only to index).
 * Records are [rec_hdr | payload | pad to 8], contiguous because the ring is
 * mapped twice. The producer owns `head` (end of the last visible record) and
 * `tail` (start of the oldest record not yet invalidated); tail <= head, and
 * [tail, head) holds only intact, visible records.
 *
 *   PRODUCER (claim/commit/publish)         CONSUMER (next/read/confirm)
 *   -------------------------------         ----------------------------
 *   if record would overlap tail + cap:
 *     walk tail forward, whole records,
 *     by at least a chunk (1/16 ring)
 *     store tail_seq, tail       [T2]       h = load head             [C1] acquire
 *     fence                      [T3]       read record header at pos
 *   write record bytes                      fence                     [C2]
 *   store last                              t = load tail
 *   store head                   [P1]         t > pos: lapped -> resync, gap report
 *   barrier                      [P2]       ... use / copy payload ...
 *   if wake_req == wake_gen: wake            fence                     [C3]
 *                                           t = load tail: t > pos -> overwritten
 *
 *   P1 (release) pairs with C1 (acquire): a record whose end is <= head is
 *      completely written when the consumer reads it.
 *   T3 (release fence, after the tail store) pairs with C2/C3 (acquire fences,
 *      before the tail load): if any byte the consumer read came from a write
 *      after T3, its tail load sees the new tail and it discards what it read
 *      (the seqlock argument: tail is the sequence word, bumped before the
 *      bytes it guards are rewritten).
 *   T2: tail_seq is stored (release) before tail (release), so a consumer that
 *      sees tail == head can take tail_seq as the sequence number there.
 *   P2 pairs with W3 in the consumer's wait (wait path, sub.c): Dekker between
 *      "producer stores head, then loads wake_req" and "consumer stores
 *      wake_req, then loads head". P2 is a compiler barrier when the producer
 *      registered for membarrier(2) and the consumer's W3 is the IPI-based
 *      MEMBARRIER_CMD_GLOBAL_EXPEDITED; otherwise both are seq_cst fences.
 *      A full fence per publish would drain the store buffer and wait for the
 *      head line to come back from the consumer's cache; the asymmetric pair
 *      moves that cost to the consumer that is about to sleep anyway.
 *
 * The tail moves in chunks so that it changes once per 1/16 ring instead of
 * once per event: the consumer re-reads it for every event, and an unchanged
 * line stays in its cache. A consumer is lapped when the tail passes its
 * position; it then resyncs to the tail and reports exactly how many sequence
 * numbers it skipped.
 *
 * Gating (optional): the producer does not move tail past the position of a
 * gating consumer. A gating consumer publishes its position (G1, release)
 * after it is done with the bytes before it; the producer reads positions
 * with acquire (G3) before overwriting. Sleeping producer / waking consumer
 * is the same Dekker pattern as above, with the roles swapped: the consumer
 * is the light side (G2), the producer the heavy side (G4).
 */
#ifndef BUS_RING_H
#define BUS_RING_H

#include <stdint.h>

#include "atomics.h"
#include "bus.h"
#include "clock.h"
#include "seg.h"

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* The producer remembers, per chunk, where the first record starting in it
 * is, so moving the tail is a table lookup, not a walk over records (a walk
 * is a chain of dependent loads: ~8 ns a record on the hot path). 32 entries
 * cover the 17 chunks that [tail, head] can touch. */
#define CHUNK_TABLE 32u
#define PROTO_NAME_MAX_ 128

struct chunk_first {
	uint64_t pos;        /* first record starting in the chunk */
	uint64_t seq;        /* its sequence number */
};

struct bus_pub {
	/* Hot: touched by every claim/commit/publish. */
	uint8_t *ring;
	uint64_t mask;
	struct seg_hdr *hdr;
	struct cons_hdr *chdr;
	uint64_t pos;        /* end of the last committed record (visible or not) */
	uint64_t published;  /* head as last stored */
	uint64_t tail_limit; /* tail + cap: claims ending at or below need no tail work */
	uint64_t seq;        /* next sequence number */
	uint64_t bytes;
	uint64_t last;       /* start of the newest committed record */
	uint64_t batch_ts;   /* timestamp of the pending batch, 0 if none */
	uint64_t chunk_end;  /* a record starting at or after this is the first of its chunk */
	uint32_t max_event;
	uint32_t chunk_shift;
	struct rec_hdr *claim;
	uint32_t claim_len;
	int asym;            /* P2 is a compiler barrier (see above) */
	uint32_t pending;    /* committed, not yet published */
	/* Cold. */
	uint64_t cap;
	uint64_t tail;
	uint64_t tail_seq;
	int64_t timeout_ns;
	uint64_t waits;
	uint64_t wakeups;
	struct chunk_first first[CHUNK_TABLE];
	struct bus_clock clk;
	struct bus_link *link;  /* opened through busd (client.c), else NULL */
	struct seg seg;
};

struct bus_sub {
	const uint8_t *ring;
	uint64_t mask;
	const struct seg_hdr *hdr;
	struct cons_hdr *chdr;
	struct cons_slot *slot;
	uint64_t pos;        /* next record to read */
	uint64_t seq;        /* its sequence number */
	uint64_t head;       /* head as last loaded */
	uint64_t events;
	uint64_t lapped;
	uint64_t lost;
	uint32_t max_event;
	int gating;
	int asym;            /* G2 may be a compiler barrier */
	int64_t spin_ns;
	int commit_ok;          /* a named cursor: bus_sub_commit() allowed */
	int logfd;              /* durable topic: its log directory, else -1 */
	struct bus_log *log;    /* reading from the log instead of the ring */
	int log_time;           /* the log was positioned by time */
	uint64_t from_ts;       /* BUS_FROM_TIME */
	uint64_t pending_lost;  /* a gap to report before the next event */
	char name[PROTO_NAME_MAX_ + 1];
	struct bus_link *link;  /* opened through busd (client.c), else NULL */
	struct seg seg;
};

/*
 * How often bus_sub_wait() looks at the producer's line while it spins. Each
 * look takes the line away from the producer, whose next head store then
 * waits for it to come back (a cross-core round trip: ~0.5 us on the KVM
 * guests we measured). TSC ticks, not ns: 256 ticks is 50-250 ns at 1-5 GHz,
 * cheap to read and needs no calibration. (bus_sub_next() itself always
 * looks: "0" must mean nothing new was published.)
 */
#define POLL_TICKS 256u

static inline void poll_pause(void)
{
#if defined(__x86_64__)
	uint64_t until = __builtin_ia32_rdtsc() + POLL_TICKS;

	do
		at_cpu_relax();
	while (__builtin_ia32_rdtsc() < until);
#else
	at_cpu_relax();
#endif
}

/* Walk helpers shared by producer recovery and consumer seeks. */
static inline const struct rec_hdr *ring_rec(const uint8_t *ring, uint64_t mask, uint64_t pos)
{
	return (const struct rec_hdr *)(ring + (pos & mask));
}

/* Records start at multiples of REC_ALIGN. A position loaded from the
 * header (tail, last) that is not one is corruption, and a record header
 * read there would be a misaligned access: check before reading. */
static inline int rec_pos_ok(uint64_t pos)
{
	return !(pos & (REC_ALIGN - 1));
}

/* The oldest intact record (position, sequence number) and the head seen
 * with it. Always succeeds (an empty ring: tail == head, tail_seq). */
void ring_oldest(const struct seg *s, uint64_t *pos, uint64_t *seq, uint64_t *head);
/* Walk whole records from *q (sequence number *seq) while the record there
 * is not the one numbered `stop` and does not reach `end`. Returns 1 with
 * *q, *seq, *len describing the record it stopped at, 0 at a header that
 * cannot be right (length out of bounds, sequence out of order). The reads
 * are not confirmed: the caller fences (C2) and checks the tail, which tells
 * a race with the producer from corruption. */
int ring_walk(const struct seg *s, uint64_t *q, uint64_t *seq, uint64_t end,
	      uint64_t stop, uint32_t *len);
/* The newest visible record (position, sequence number, record size), or 0
 * if none was ever published or none is intact. */
int ring_newest(const struct seg *s, uint64_t *pos, uint64_t *seq, uint64_t *size);

/* Opening from descriptors handed over by busd (client.c). pub_open_fds
 * waits up to lock_wait_ns for the flock (a producer that just died may
 * still be exiting). sub_open_fds uses the slot busd reserved; with
 * has_resume it starts at resume (a named cursor), reporting as a gap what
 * the ring no longer holds. Both take ownership of fd and cfd. */
struct bus_link;
int pub_open_fds(const char *name, int fd, int cfd, int64_t lock_wait_ns, struct bus_pub **out);
int sub_open_fds(const char *name, int fd, int cfd, int logfd, uint32_t slot,
		 const struct bus_sub_opts *o, int has_resume, uint64_t resume, struct bus_sub **out);
/* client.c: tell busd a producer or consumer opened through it is closing;
 * frees the link. 1 if busd took it (and freed the slot), 0 if busd could
 * not be told (disconnected, busd away, a forked child). */
int client_release(struct bus_link *link);

/* Wake consumers sleeping on the topic (producer side, slow path). */
void pub_wake(struct bus_pub *p);

#endif
