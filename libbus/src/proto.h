/* SPDX-License-Identifier: MIT */
/*
 * proto.h — the control protocol between libbus and busd (version 1).
 *
 * Transport: a UNIX SOCK_SEQPACKET socket, BUSDIR/busd.sock. One message is
 * one packet: a 16-byte header, then a fixed body per operation. Integers are
 * in host byte order (both ends are on one host). Names travel as a length
 * and up to 128 bytes, not NUL-terminated; the receiver validates the length
 * and the characters before it uses them.
 *
 *   client                               busd
 *   HELLO {min,max version}   ───────▶   checks the range
 *                             ◀───────   HELLO {version, busd pid, bus id}
 *   OP {body}                 ───────▶   validates every field
 *                             ◀───────   OP reply, status 0, body (+ fds)
 *                                  or    status -errno, body = message text
 *
 * Requests are strictly one at a time per connection: busd reads the next
 * request only after the reply to the previous one has been sent, so a client
 * that floods requests fills its own socket buffer and nobody else's. A
 * request that cannot be decoded (bad magic, version, size, field) gets an
 * error reply and its connection is closed. busd never sends anything a
 * client did not ask for, so a client can watch its connection for a hangup
 * (POLLRDHUP) without reading it.
 *
 * Replies to OPEN_PUB and OPEN_SUB carry two descriptors (SCM_RIGHTS): the
 * segment (NAME) and the consumer area (NAME@cons). A producer gets both
 * read-write; a consumer gets the segment read-only and the consumer area
 * read-write (DESIGN.md invariant 7).
 */
#ifndef BUS_PROTO_H
#define BUS_PROTO_H

#include <stdint.h>

#define PROTO_MAGIC     0x31535542u  /* "BUS1" */
#define PROTO_VERSION   1u
#define PROTO_NAME_MAX  128u         /* topic and cursor names, bytes */
#define PROTO_MSG_MAX   65536u       /* largest packet either side sends */
#define PROTO_ERR_MAX   512u         /* error text in a reply, NUL included */
#define PROTO_SOCKET    "busd.sock"  /* in the bus directory */
#define PROTO_LOCK      "busd.lock"  /* ditto: held (OFD write lock) by busd */

enum proto_op {
	OP_HELLO     = 1,
	OP_PING      = 2,
	OP_CREATE    = 3,
	OP_DELETE    = 4,
	OP_OPEN_PUB  = 5,  /* reply: 2 descriptors */
	OP_OPEN_SUB  = 6,  /* reply: 2 descriptors */
	OP_CLOSE_PUB = 7,
	OP_CLOSE_SUB = 8,
	OP_LIST      = 9,
	OP_STAT      = 10,
	OP_OPEN_LOG  = 11, /* reply: 1 descriptor, the durable topic's log directory */
	OP_MAX_      = 12,
};

struct proto_hdr {
	uint32_t magic;     /* PROTO_MAGIC */
	uint16_t version;   /* PROTO_VERSION (HELLO: the highest the sender speaks) */
	uint16_t op;        /* enum proto_op; a reply repeats its request's */
	uint32_t id;        /* chosen by the client, echoed in the reply */
	int32_t status;     /* requests: 0; replies: 0 or -errno */
};

struct proto_name {
	uint16_t len;       /* 1..PROTO_NAME_MAX (0 where a name is optional) */
	char s[PROTO_NAME_MAX];
};

struct req_hello {
	uint32_t min_version;
	uint32_t max_version;
	uint32_t flags;     /* zero */
	uint32_t reserved;  /* zero */
};

struct rep_hello {
	uint32_t version;   /* the version this connection speaks */
	uint32_t busd_pid;
	uint32_t max_handles; /* open producers + consumers per connection */
	uint32_t reserved;
	char bus_id[16];    /* hex; segment files are named bus-ID.TOPIC */
};

/* DELETE, STAT (first_slot), CLOSE_PUB, OPEN_LOG. */
struct req_topic {
	struct proto_name topic;
	uint16_t pad;
	uint32_t arg;       /* STAT: first consumer slot to report; else zero */
};

struct req_create {
	struct proto_name topic;
	uint16_t pad;
	uint32_t mode;          /* permission bits; 0 = 0600 */
	uint64_t ring_size;     /* as struct bus_topic_opts */
	uint32_t max_event;
	uint32_t max_consumers;
	uint32_t flags;         /* BUS_TOPIC_* */
	uint32_t fsync;         /* enum bus_fsync (durable topics) */
	uint64_t first_seq;
	uint64_t dur[8];        /* durable topics, 0 = default: fsync interval
				 * ns, fsync bytes, linger ns, batch bytes,
				 * segment bytes, retain bytes, retain age ns;
				 * dur[7] zero */
};

#define PROTO_NEW_SLOT 0xffffffffu

struct req_open {
	struct proto_name topic;
	struct proto_name group;  /* OPEN_SUB: named cursor (len 0 = anonymous) */
	uint32_t flags;           /* OPEN_SUB: BUS_SUB_GATING */
	uint32_t slot;            /* PROTO_NEW_SLOT, or the slot (OPEN_SUB) or
				   * anything (OPEN_PUB) a reconnecting client
				   * already holds: busd rebinds it (RECLAIM) */
	uint32_t reclaim;         /* 1 = rebind after busd restarted */
	uint32_t reserved;
};

struct rep_open_sub {
	uint32_t slot;            /* the consumer slot busd reserved */
	uint32_t has_commit;      /* 1: the named cursor has a committed position */
	uint64_t resume_seq;      /* ... the sequence number to resume from */
};

struct req_close_sub {
	struct proto_name topic;
	uint16_t pad;
	uint32_t slot;
};

struct req_list {
	uint32_t start;           /* index to start from (0, then rep.next) */
	uint32_t reserved;
};

/* One topic as listed; also the head of a STAT reply. */
struct proto_topic {
	struct proto_name topic;
	uint16_t pad;
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint32_t max_event;
	uint32_t max_consumers;
	uint32_t flags;
	uint32_t producer_pid;
	uint32_t consumers;
	uint32_t deleted;
	uint64_t ring_size;
	uint64_t first_seq;
	uint64_t oldest_seq;
	uint64_t next_seq;
	uint64_t bytes;
	uint64_t producer_waits;
	uint64_t wakeups;
	uint64_t max_lag;
	uint32_t degraded;        /* durable: log writes failing */
	uint32_t reserved;
	uint64_t flushed_seq;
	uint64_t durable_seq;
	uint64_t flush_errors;
};

#define PROTO_LIST_MAX ((PROTO_MSG_MAX - 64) / sizeof(struct proto_topic))

struct rep_list {
	uint32_t count;           /* entries in this reply */
	uint32_t next;            /* start of the next page; 0 = this was the last */
	uint32_t total;           /* topics on the bus */
	uint32_t reserved;
	/* struct proto_topic entries[count] follow */
};

struct proto_consumer {
	struct proto_name group;  /* len 0: anonymous */
	uint16_t pad;
	uint32_t slot;
	uint32_t pid;
	uint32_t flags;           /* 1 gating, 2 sleeping */
	uint32_t reserved;
	uint64_t next_seq;
	uint64_t lag;
	uint64_t events;
	uint64_t lapped;
	uint64_t lost;
	uint64_t commit;          /* named: committed resume position (0 = none) */
};

#define PROTO_STAT_MAX ((PROTO_MSG_MAX - 64 - sizeof(struct proto_topic)) / \
			sizeof(struct proto_consumer))

struct rep_stat {
	struct proto_topic t;
	uint32_t count;           /* consumers in this reply */
	uint32_t next_slot;       /* first slot of the next page; 0 = last page */
	/* struct proto_consumer consumers[count] follow */
};

/* Topic and cursor names: 1-128 bytes of [A-Za-z0-9._-], no leading dot, no
 * "..". Returns 0 or -EINVAL with a message naming the rule (what says
 * "topic" or "cursor"). Shared by busd and libbus. */
int proto_name_check(const char *s, uint32_t len, const char *what);

#endif
