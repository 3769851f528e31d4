/* SPDX-License-Identifier: MIT */
/*
 * bus.h — the public API of libbus, a shared-memory event bus for the
 * processes of one Linux host.
 *
 * A topic is a shared-memory segment holding a single-producer /
 * multi-consumer ring. The producer appends events; every consumer reads
 * at its own pace; the producer never waits for consumers (unless the topic
 * was created with gating and a consumer asked for it).
 *
 * Conventions (as liburing):
 *  - every function that can fail returns 0, a count, or -errno;
 *  - slow-path failures also leave a one-line explanation in a thread-local
 *    buffer, read with bus_errmsg(); hot paths never format anything;
 *  - all structs are plain, no typedefs; handles are opaque.
 *
 * Thread safety: a struct bus_pub or struct bus_sub is used by one thread at
 * a time. Different handles may be used concurrently from any threads or
 * processes.
 *
 * See libbus(3) for each function and the errors it documents.
 */
#ifndef BUS_H
#define BUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BUS_VERSION_MAJOR 0
#define BUS_VERSION_MINOR 1
#define BUS_VERSION_PATCH 0

/* Library version as "MAJOR.MINOR.PATCH". */
const char *bus_version(void);

/* The detail of the last slow-path failure on this thread ("" if none). */
const char *bus_errmsg(void);

/* ------------------------------------------------------------------------ */
/* Topics (segments)                                                        */
/* ------------------------------------------------------------------------ */

/*
 * A topic segment is named like a POSIX shared-memory object: a NAME without
 * '/' lives in /dev/shm; a name containing '/' is used as a path (tests use
 * this to put segments on a private tmpfs). A segment is two files: NAME
 * (header and ring; consumers map it read-only) and NAME@cons (the small
 * area consumers write: cursor slots and wait requests).
 */

#define BUS_RING_MIN      4096ull          /* smallest ring, bytes */
#define BUS_RING_MAX      (1ull << 32)     /* largest ring, bytes (4 GiB) */
#define BUS_RING_DEFAULT  (1ull << 20)     /* 1 MiB */
#define BUS_CONSUMERS_DEFAULT 64u
#define BUS_CONSUMERS_MAX 4096u

/* Topic flags. */
#define BUS_TOPIC_GATING  0x1u  /* consumers may ask the producer to wait for them */
#define BUS_TOPIC_DURABLE 0x2u  /* busd keeps a log on disk (bus_create only) */

/* Durable topics: when the log is synced to disk. */
enum bus_fsync {
	BUS_FSYNC_DEFAULT  = 0,  /* BUS_FSYNC_INTERVAL */
	BUS_FSYNC_NONE     = 1,  /* page cache only: survives a busd crash, not a power cut */
	BUS_FSYNC_INTERVAL = 2,  /* every fsync_interval_ns or fsync_bytes */
	BUS_FSYNC_ALWAYS   = 3,  /* fdatasync before the flushed position moves */
};

struct bus_topic_opts {
	uint64_t ring_size;     /* bytes, power of two; 0 = BUS_RING_DEFAULT */
	uint32_t max_event;     /* largest payload; 0 = ring_size / 4; at most ring_size / 2 */
	uint32_t max_consumers; /* consumer slots; 0 = BUS_CONSUMERS_DEFAULT */
	uint32_t flags;         /* BUS_TOPIC_* */
	uint32_t mode;          /* permission bits of the files; 0 = 0600 */
	uint64_t first_seq;     /* sequence number of the first event; 0 = 1 */
	/* Durable topics (BUS_TOPIC_DURABLE, bus_create only); 0 = default. */
	uint32_t fsync;              /* enum bus_fsync */
	uint32_t reserved;
	uint64_t fsync_interval_ns;  /* BUS_FSYNC_INTERVAL: at most this long (1 s) */
	uint64_t fsync_bytes;        /* ... or this many bytes (16 MiB) between syncs */
	uint64_t linger_ns;          /* wait this long to batch a small write (1 ms) */
	uint64_t batch_bytes;        /* ... unless this much is waiting (256 KiB) */
	uint64_t segment_bytes;      /* roll log segments at this size (64 MiB) */
	uint64_t retain_bytes;       /* delete old segments above this total (0: keep all) */
	uint64_t retain_age_ns;      /* ... or older than this (0: keep all) */
};

/*
 * Create a topic segment. The pages are reserved up front, so a segment
 * that does not fit fails here (-ENOSPC) and never with SIGBUS later.
 * opts may be NULL for all defaults. NAME gets opts->mode; NAME@cons the
 * same plus write for whoever may read (readers are consumers, and
 * consumers write their cursor).
 * Errors: -EEXIST (the topic, or a stale NAME@cons, exists), -EINVAL (bad
 * name or geometry), -ENAMETOOLONG, -ENOSPC, -EACCES, other errno from
 * open(2), posix_fallocate(3), mmap(2), renameat2(2).
 */
int bus_topic_create(const char *name, const struct bus_topic_opts *opts);

/*
 * Unlink a topic's files and mark it deleted. Attached producers get -EPIPE
 * on their next claim; attached consumers read what remains, then get
 * -EPIPE. Mappings stay valid until each handle is closed. Only a valid bus
 * segment is removed, never another file of that name.
 * Errors: -ENOENT, -EACCES/-EPERM, -ELOOP (a symlink), -EPROTO/-EINVAL (not
 * a valid bus segment), -ENAMETOOLONG.
 */
int bus_topic_remove(const char *name);

struct bus_topic_info {
	uint64_t ring_size;
	uint32_t max_event;
	uint32_t max_consumers;
	uint32_t flags;          /* BUS_TOPIC_* */
	uint32_t producer_pid;   /* 0 when no producer is attached */
	uint64_t first_seq;      /* sequence number of the topic's first event */
	uint64_t oldest_seq;     /* oldest event still in the ring (== next_seq if none) */
	uint64_t next_seq;       /* sequence number the next event will get */
	uint64_t events;         /* events published since creation */
	uint64_t bytes;          /* payload bytes published since creation */
	uint64_t producer_waits; /* times the producer waited for a gating consumer */
	uint64_t wakeups;        /* FUTEX_WAKE calls the producer made */
	uint32_t consumers;      /* attached consumers */
	uint32_t deleted;        /* 1 once bus_topic_remove() ran */
	uint64_t max_lag;        /* largest consumer lag, events */
	uint32_t mode;           /* permission bits (from busd: the topic's) */
	uint32_t uid;            /* owner */
	uint32_t gid;            /* group */
	/* Durable topics (BUS_TOPIC_DURABLE): */
	uint32_t degraded;       /* 1 while busd's log writes fail (disk full, EIO) */
	uint64_t flushed_seq;    /* events below it are in the log files */
	uint64_t durable_seq;    /* events below it are durable (fsync policy) */
	uint64_t flush_errors;   /* failed log writes */
};

struct bus_consumer_info {
	uint32_t slot;
	uint32_t pid;
	uint32_t gating;         /* 1 if the producer waits for this consumer */
	uint32_t sleeping;       /* 1 while asleep on the futex */
	uint64_t next_seq;       /* first sequence number it has not finished */
	uint64_t lag;            /* events published that it has not read */
	uint64_t events;         /* events it has read */
	uint64_t lapped;         /* times it was lapped */
	uint64_t lost;           /* events it lost to lapping */
	uint64_t commit;         /* named cursor: committed resume point (0 = none) */
	char group[129];         /* named cursor (bus_stat only); "" = anonymous */
};

/*
 * Read a topic's header and consumer slots without disturbing it (read-only).
 * Fills *info (may be NULL), and up to ncons entries of cons (may be NULL).
 * Returns the number of attached consumers (may exceed ncons). A consumer's
 * position is the one it last published: on entry to next()/read() and
 * when it goes to sleep, so the event it is handling counts as unread.
 * Errors: -ENOENT, -EACCES, -ELOOP, -EPROTO/-EINVAL (not a valid segment).
 */
int bus_topic_stat(const char *name, struct bus_topic_info *info,
		   struct bus_consumer_info *cons, unsigned ncons);

/* ------------------------------------------------------------------------ */
/* Producer                                                                 */
/* ------------------------------------------------------------------------ */

struct bus_pub;

/* Commit/publish flag: keep the event invisible until a later publish
 * without BUS_MORE or bus_pub_flush() makes the whole batch visible at once
 * (one release store, like MSG_MORE). */
#define BUS_MORE 0x1u

/*
 * Attach as the topic's producer. Exactly one producer may be attached: the
 * lease is a lock the kernel drops when the holder dies, so a producer that
 * is killed leaves the topic free. A new producer continues the sequence.
 * Errors: -ENOENT, -EACCES, -ELOOP, -EPROTO/-EINVAL (not a valid segment,
 * or a corrupt ring), -EBUSY (another producer holds the lease;
 * bus_errmsg() names its pid), -EPIPE (the topic is marked deleted).
 */
int bus_pub_open(const char *name, struct bus_pub **pub);

/* Publish anything pending, release the lease and unmap. NULL is a no-op. */
void bus_pub_close(struct bus_pub *pub);

/*
 * Claim space for an event of up to len payload bytes and return a pointer
 * to it in *buf (zero copy: write the payload there, then commit). A second
 * claim before commit replaces the first.
 * Errors: -EMSGSIZE (len > max_event), -EPIPE (topic deleted),
 * -EAGAIN (a gating consumer did not make room within the timeout).
 */
int bus_pub_claim(struct bus_pub *pub, size_t len, void **buf);

/*
 * Finish the claimed event with its final length (<= the claimed length) and
 * type word. It gets the next sequence number and a wall-clock timestamp and
 * becomes visible, unless flags has BUS_MORE.
 * Errors: -EINVAL (nothing claimed, len larger than claimed, unknown flags).
 */
int bus_pub_commit(struct bus_pub *pub, uint32_t type, size_t len, unsigned flags);

/* Copy data into the ring as one event: claim + memcpy + commit. */
int bus_pub_publish(struct bus_pub *pub, uint32_t type, const void *data,
		    size_t len, unsigned flags);

/* Make every event committed with BUS_MORE visible (one release store).
 * Returns the number of events made visible. */
int bus_pub_flush(struct bus_pub *pub);

struct bus_msg {
	const void *data;   /* may be NULL when len is 0 */
	uint32_t len;
	uint32_t type;
};

/*
 * Publish n events in one call, made visible together with one release store
 * (with any BUS_MORE events still pending), sharing one timestamp. Like
 * writev(2): returns the number of events published, which is less than n
 * only if a gating consumer did not make room in time (the rest were not
 * written), or -errno when none was: -EMSGSIZE (some len > max_event;
 * checked before anything is written), -EPIPE (topic deleted), -EAGAIN.
 */
int bus_pub_publishv(struct bus_pub *pub, const struct bus_msg *msgs, unsigned n);

/* Sequence number the next committed event will get. */
uint64_t bus_pub_next_seq(const struct bus_pub *pub);

/* Durable topics: wait until every event up to and including seq is durable
 * (written to the log, and synced if the topic's fsync policy syncs).
 * timeout_ns < 0 waits for ever. -ETIMEDOUT (busd down, disk full: the
 * message says which), -EINVAL if the topic is not durable or seq was not
 * published. Publishes a pending BUS_MORE batch first. */
int bus_pub_sync(struct bus_pub *pub, uint64_t seq, int64_t timeout_ns);

/* How long a claim may wait for a gating consumer, or on a durable topic
 * for the flusher to make room (default 1 s). */
void bus_pub_set_timeout(struct bus_pub *pub, int64_t timeout_ns);

/* ------------------------------------------------------------------------ */
/* Consumer                                                                 */
/* ------------------------------------------------------------------------ */

struct bus_sub;

enum bus_from {
	BUS_FROM_OLDEST = 0, /* the oldest event still in the ring */
	BUS_FROM_NEWEST = 1, /* the newest event (it is delivered first) */
	BUS_FROM_END    = 2, /* only events published after the open */
	BUS_FROM_SEQ    = 3, /* the event with sequence number opts.seq */
	BUS_FROM_TIME   = 4, /* the first event with a timestamp >= opts.ts_ns */
};
/* On a durable topic (BUS_TOPIC_DURABLE, opened with bus_sub_attach) the
 * consumer reaches back into the log: OLDEST is the oldest event in the log,
 * SEQ and TIME may be older than the ring, and a consumer that falls a ring
 * behind continues from the log. The switch between log and ring is
 * invisible: one stream, in order, without duplicates. Events the log does
 * not have (retention removed them, or a crash lost them before a sync) are
 * reported as a gap (-ENOBUFS with ev->lost), as for a lapped consumer. */

/* Consumer flags. */
#define BUS_SUB_GATING 0x1u  /* the producer must not overwrite what this
			      * consumer has not read (topic needs BUS_TOPIC_GATING) */

struct bus_sub_opts {
	enum bus_from from;
	uint64_t seq;       /* for BUS_FROM_SEQ */
	uint32_t flags;     /* BUS_SUB_* */
	uint64_t ts_ns;     /* for BUS_FROM_TIME (CLOCK_REALTIME ns) */
	const char *group;  /* bus_sub_attach() only: a named durable cursor
			     * (busd keeps its position); NULL = anonymous.
			     * `from` applies when the cursor is new. */
};

/*
 * Attach as a consumer: maps the ring and producer state read-only and takes
 * a cursor slot. opts may be NULL (BUS_FROM_OLDEST).
 * Errors: -ENOENT, -EACCES, -ELOOP, -EPROTO/-EINVAL (not a valid segment),
 * -ERANGE (BUS_FROM_SEQ: no longer, or not yet, in the ring), -EAGAIN
 * (BUS_FROM_SEQ: the producer kept overwriting the ring faster than the
 * search), -EUSERS (all cursor slots taken), -EINVAL (bad options, or
 * gating on a topic created without BUS_TOPIC_GATING).
 *
 * Gating protects from the open on, with one window: a claim that is
 * already making room while the open runs may still overwrite the start,
 * and the first read then reports that as a gap (-ENOBUFS).
 */
int bus_sub_open(const char *name, const struct bus_sub_opts *opts,
		 struct bus_sub **sub);

/* Release the slot and unmap. NULL is a no-op. */
void bus_sub_close(struct bus_sub *sub);

struct bus_event {
	const void *data;   /* payload (in the ring for next(), in buf for read()) */
	uint32_t len;       /* payload length */
	uint32_t type;      /* the producer's type word */
	uint64_t seq;       /* sequence number (gap-free per topic) */
	uint64_t ts_ns;     /* wall clock (CLOCK_REALTIME) when it was committed;
			     * a BUS_MORE batch shares its first commit's */
	uint64_t lost;      /* with -ENOBUFS: how many events were lost */
	uint64_t pos_;      /* private: where the event is in the ring */
};

/*
 * Zero copy: return the next event as a view into the ring. Returns 1 with
 * *ev filled, 0 if nothing new has been published, -ENOBUFS if the consumer
 * was lapped (ev->seq = first lost sequence number, ev->lost = how many; the
 * next call continues with the oldest intact event, like netlink's ENOBUFS),
 * -EPIPE once the topic is deleted and everything in it has been read,
 * -EPROTO if the segment is corrupt.
 *
 * The view stays readable, but the producer may overwrite it at any time once
 * the consumer is lapped: call bus_sub_confirm() after using the bytes.
 */
int bus_sub_next(struct bus_sub *sub, struct bus_event *ev);

/*
 * Confirm that an event returned by bus_sub_next() was not overwritten while
 * it was used. 0 if intact; -ENOBUFS if it was. For the event returned last,
 * the consumer then rewinds, so the next bus_sub_next() reports the gap
 * starting at ev->seq; an older view is only reported (rewinding past events
 * already delivered would deliver them twice).
 */
int bus_sub_confirm(struct bus_sub *sub, const struct bus_event *ev);

/*
 * Copy the next event's payload into buf and confirm it before returning.
 * Same returns as bus_sub_next(); ev->data points into buf. If size is too
 * small: -EMSGSIZE, ev->len = the size needed (ev->data then points into the
 * ring), and the event is not consumed.
 */
int bus_sub_read(struct bus_sub *sub, void *buf, size_t size, struct bus_event *ev);

/*
 * Wait until bus_sub_next() has something to say (an event, a gap report,
 * the deletion of the topic): spin briefly (never past the timeout), then
 * sleep on the topic's futex. Returns 1 when there is something, -ETIMEDOUT
 * when timeout_ns passed (negative: no deadline; the sleep is still taken
 * a second at a time), -EINTR if a signal interrupted the sleep.
 */
int bus_sub_wait(struct bus_sub *sub, int64_t timeout_ns);

/*
 * Wait on several consumers (any topics) at once with futex_waitv(2).
 * Returns the index of a consumer with something to read, -ETIMEDOUT,
 * -EINTR, -EINVAL (subs NULL, n == 0 or n > 128), -ENOSYS (kernel < 5.16,
 * reported when it would have to sleep), other errors of futex_waitv(2).
 */
int bus_wait_any(struct bus_sub *const *subs, unsigned n, int64_t timeout_ns);

/* How long bus_sub_wait() spins before it sleeps (default 10 us; 0 = sleep at once). */
void bus_sub_set_spin(struct bus_sub *sub, int64_t spin_ns);

/* Sequence number of the next event this consumer will read. */
uint64_t bus_sub_next_seq(const struct bus_sub *sub);


/* ------------------------------------------------------------------------ */
/* Connecting to a bus (busd)                                               */
/* ------------------------------------------------------------------------ */
/*
 * A bus is a directory served by one busd: BUSDIR/busd.sock. busd creates
 * the topics' segments, hands out descriptors, grants the producer lease,
 * keeps named cursors and reclaims what dead clients held. It is never on
 * the data path: the objects below are the same bus_pub and bus_sub as above,
 * and a busd restart does not stop them. The library keeps the control
 * connection alive itself: when busd goes away a background thread of the
 * connection reconnects (with backoff) and re-registers every producer and
 * consumer opened through it; the application does nothing.
 *
 * Topic and cursor names: 1-128 bytes of [A-Za-z0-9._-], dots for hierarchy
 * ("orders.created"), no leading dot, no "..".
 */
#define BUS_NAME_MAX 128

struct bus;

/*
 * Connect to the bus at `address`: a bus directory. NULL means $BUS_ADDRESS,
 * else the per-user bus ($XDG_RUNTIME_DIR/bus, or /tmp/bus-UID when that is
 * unset). -ENOENT/-ECONNREFUSED when no busd serves it, -EPROTO when busd
 * speaks another protocol version.
 */
int bus_connect(const char *address, struct bus **bus);
/* Close the connection. Producers and consumers still open through it keep
 * working on shared memory; busd keeps their lease and slots until they are
 * closed or the process exits. A connection belongs to the process that
 * made it: after fork(), the child gets -ECHILD from it and must connect
 * itself (bus_disconnect() in the child only frees the copy). NULL is a
 * no-op. */
void bus_disconnect(struct bus *bus);
/* The bus directory this connection serves. */
const char *bus_address(const struct bus *bus);
/* The bus directory `address` resolves to (see bus_connect), into buf. */
int bus_default_address(char *buf, size_t size);

/* Create a topic (-EEXIST if it exists, -EINVAL naming the rule a name or
 * option breaks). opts as for bus_topic_create(), mode default 0600. A busd
 * running as root (a system bus) makes the caller's uid and gid the owner;
 * a per-user busd owns what it creates (only its user can connect). */
int bus_create(struct bus *bus, const char *topic, const struct bus_topic_opts *opts);
/* Delete a topic (owner or root). Producers get -EPIPE on their next
 * publish; consumers read what remains, then get -EPIPE. */
int bus_delete(struct bus *bus, const char *topic);

/* Open a topic as its producer: -EBUSY naming the holder's pid if it has
 * one, -EACCES without write permission. bus_pub_close() ends the lease. */
int bus_pub_attach(struct bus *bus, const char *topic, struct bus_pub **pub);
/* Open a topic as a consumer (read permission). With opts->group, a named
 * cursor: it resumes after its last bus_sub_commit() (-EBUSY while another
 * consumer holds it). A cursor that the ring has moved past reports the
 * events it missed as a gap (-ENOBUFS) first. */
int bus_sub_attach(struct bus *bus, const char *topic, const struct bus_sub_opts *opts,
		   struct bus_sub **sub);
/* Named cursor: commit everything before bus_sub_next_seq() as processed
 * (a store to shared memory; busd persists it). At-least-once: after a
 * crash the consumer resumes after its last commit. -EINVAL if anonymous. */
int bus_sub_commit(struct bus_sub *sub);

/* Topic and consumer statistics, as bus_topic_stat(), with owner and mode
 * and each consumer's cursor name. Returns the number of consumers. */
int bus_stat(struct bus *bus, const char *topic, struct bus_topic_info *info,
	     struct bus_consumer_info *cons, unsigned ncons);

struct bus_topic_entry {
	char name[BUS_NAME_MAX + 1];
	struct bus_topic_info info;
};
/* The topics on the bus, sorted by name: fills up to n entries and returns
 * how many there are (which may be more than n). */
int bus_list(struct bus *bus, struct bus_topic_entry *entries, unsigned n);
/* A round trip to busd (0, or -errno if it cannot be reached). */
int bus_ping(struct bus *bus);


/* ------------------------------------------------------------------------ */
/* Reading a durable topic's log                                            */
/* ------------------------------------------------------------------------ */
/*
 * A durable topic's log is a directory of segment files (format:
 * docs/LOG-FORMAT.md), readable with no busd running. Every chunk's CRC is
 * checked before any of its events is returned; a corrupt chunk makes
 * bus_log_next() fail with -EBADMSG, naming the file and offset, and the
 * reader stops there. A consumer that wants events from the log and then
 * the live ones opens the topic with bus_sub_attach() at a sequence or a
 * time: the switch from log to ring is transparent.
 */
struct bus_log;

struct bus_log_info {
	uint64_t first_seq;   /* oldest event in the log */
	uint64_t next_seq;    /* one past the newest */
	uint64_t first_ts;    /* timestamps of the oldest and newest */
	uint64_t last_ts;
	uint64_t bytes;       /* segment files, bytes */
	uint32_t segments;
	uint32_t reserved;
};

/* Open the log in `dir` (a topic's log directory); starts at its oldest event. */
int bus_log_open(const char *dir, struct bus_log **log);
/* Open a topic's log through busd (read permission). */
int bus_log_attach(struct bus *bus, const char *topic, struct bus_log **log);
void bus_log_close(struct bus_log *log);
/* Position at event seq (-ERANGE if retention removed it or the log is
 * empty); a sequence past the end waits there: next() returns 0 until it
 * is written. */
int bus_log_seek(struct bus_log *log, uint64_t seq);
/* Position at the first event whose timestamp is >= ts_ns. */
int bus_log_seek_time(struct bus_log *log, uint64_t ts_ns);
/* The next event: 1 (ev->data valid until the next call), 0 at the end
 * (for now, if following), -ENOBUFS for events the log does not have
 * (ev->seq, ev->lost; reading goes on after them), -EBADMSG on a corrupt
 * chunk (repeated until a seek: reading stops there), -errno. */
int bus_log_next(struct bus_log *log, struct bus_event *ev);
/* follow = 1: the log is being written (a live topic): a short last chunk
 * is "not yet", not corruption, and new segments are picked up. */
void bus_log_follow(struct bus_log *log, int follow);
int bus_log_info(struct bus_log *log, struct bus_log_info *info);

#ifdef __cplusplus
}
#endif

#endif /* BUS_H */
