/* SPDX-License-Identifier: MIT */
/*
 * busd.h — the daemon's internal interfaces.
 *
 *   main.c    options, paths, the instance lock, logging, sd_notify
 *   loop.c    the io_uring event loop: accept, receive, send, signals,
 *             timers, pidfd polls; dispatching requests and replies
 *   decode.c  request validation: a pure function, shared with the fuzzer
 *   flush.c   durable topics: the flusher, recovery, retention
 *   vg.h      what io_uring reads and writes, told to memcheck (make valgrind)
 *   topics.c  the topic table: create, adopt, delete, leases, consumer
 *             slots, named cursors, the stale-segment sweep
 *
 * busd is single-threaded: everything below runs on the loop's thread.
 */
#ifndef BUSD_H
#define BUSD_H

#include <linux/time_types.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "bus.h"
#include "logfmt.h"
#include "proto.h"
#include "seg.h"

/* ---- logging (main.c) --------------------------------------------------- */
enum { L_ERR = 3, L_WARN = 4, L_NOTICE = 5, L_INFO = 6, L_DEBUG = 7 };
void logmsg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_err(...)    logmsg(L_ERR, __VA_ARGS__)
#define log_warn(...)   logmsg(L_WARN, __VA_ARGS__)
#define log_notice(...) logmsg(L_NOTICE, __VA_ARGS__)
#define log_info(...)   logmsg(L_INFO, __VA_ARGS__)
#define log_debug(...)  logmsg(L_DEBUG, __VA_ARGS__)
void log_reopen(void);

/* ---- configuration (main.c) --------------------------------------------- */
struct busd_cfg {
	char bus_dir[4096];     /* realpath of the bus directory */
	char state_dir[4096];
	char shm_dir[4096];     /* where segments live (no trailing slash) */
	char sock_path[4200];
	char bus_id[17];        /* 16 hex digits */
	unsigned socket_mode;
	unsigned max_clients;
	int shm_dirfd;          /* O_PATH|O_DIRECTORY of shm_dir */
};
extern struct busd_cfg cfg;

#define MAX_HANDLES 1024u       /* producers + consumers per connection */
#define CURSOR_PERSIST_MS 1000

/* ---- connections (loop.c) ----------------------------------------------- */
struct topic;

struct handle {
	struct topic *t;
	uint32_t slot;          /* consumer slot, or UINT32_MAX for the producer */
};

struct conn {
	int fd;
	uint32_t id;            /* index in the connection table */
	uint32_t gen;           /* bumps on reuse, checked in CQE user data */
	pid_t pid;
	uid_t uid;
	gid_t gid;
	gid_t *groups;          /* supplementary groups (SO_PEERGROUPS) */
	int ngroups;
	int hello;              /* HELLO done */
	int sending;            /* a send is in flight (else a receive is) */
	int inflight;           /* SQEs referencing this connection */
	unsigned nhandles;
	struct handle *handles;
	unsigned cap_handles;
	/* One request at a time: the receive buffer, then the reply. */
	uint8_t *rx;
	uint8_t *tx;
	size_t tx_len;
	int tx_fds[3];
	int tx_nfds;
	int close_after_send;
	struct msghdr msg;      /* the pending send (lives until it completes) */
	struct iovec iov;
	union {
		char buf[CMSG_SPACE(sizeof(int) * 3)];
		struct cmsghdr align;
	} cbuf_u;
};
#define cbuf cbuf_u.buf

/* Who is asking: credentials of a connection (or of busd itself). */
int cred_in_group(const struct conn *c, gid_t g);

/* ---- topics (topics.c) -------------------------------------------------- */
struct slot_owner {
	struct conn *conn;      /* bound connection, or NULL */
	uint32_t conn_gen;
	pid_t pid;              /* the pid busd gave the slot to (0: none) */
	int pidfd;              /* adopted (no connection yet): watched pid */
	uint32_t watch;         /* its watch id (loop_watch_pidfd) */
	int cursor;             /* index in the cursor table, -1 = anonymous */
};

/* ---- durable topics (flush.c) ------------------------------------------- */
struct dur_cfg {
	uint32_t fsync;             /* enum bus_fsync */
	uint64_t fsync_interval_ns;
	uint64_t fsync_bytes;
	uint64_t linger_ns;
	uint64_t batch_bytes;
	uint64_t segment_bytes;
	uint64_t retain_bytes;
	uint64_t retain_age_ns;
};

struct topic_conf {             /* STATE/log/TOPIC/topic.conf */
	uint64_t ring_size;
	uint32_t max_event, max_consumers, flags, mode;
	uint32_t uid, gid;          /* the topic's owner (UINT32_MAX: unknown) */
	struct dur_cfg d;
};

struct flusher {
	struct topic *t;
	struct topic_conf conf;
	uint32_t id;                /* in CQE user data */
	int dirfd;                  /* STATE/log/TOPIC */
	int segfd, idxfd;           /* the active segment and its index */
	uint64_t seg_first, seg_size, idx_size;
	uint64_t pos, seq;          /* flushed: ring position and sequence */
	/* the write in flight */
	int busy;
	struct log_chunk_hdr ch;
	struct iovec iov[2], wiov[2];
	uint64_t w_end, w_seq, w_total, w_done, w_off;
	/* syncing */
	int sync_busy;
	uint64_t sync_seq, sync_pos, unsynced, last_sync;
	/* sleeping */
	int futex_armed, timer_armed, sync_timer_armed;
	int announced;              /* the armed futex wait asked for wakes (W2) */
	int old_segfd;              /* rolled-away segment, a sync still on it */
	struct __kernel_timespec ts, sync_ts;
	uint64_t pending_since;     /* unflushed bytes seen first (linger) */
	int degraded, broken;
	int closing;                /* deleted: free when the op in flight ends */
	int need_sync;              /* a sync failed: rewrite since ok_* and retry */
	/* What the disk is known to hold: the active segment up to ok_size
	 * (its index up to ok_idx), i.e. the ring up to ok_pos / ok_seq, as of
	 * the last sync that succeeded. A sync in flight covers sync_size /
	 * sync_idx of segment sync_seg. */
	uint64_t ok_size, ok_idx, ok_pos, ok_seq;
	uint64_t sync_size, sync_idx, sync_seg;
	int lost;                   /* an I/O error lost logged events: durable_seq stays */
	int force_roll;             /* start a new segment before the next chunk */
	int ok_known;               /* ok_pos/ok_seq are known (not after a failed sync at open) */
	int lingering;              /* waiting for more bytes or the linger's end */
	int final;                  /* shutdown: synchronous writes only */
	uint64_t retry_at;
	uint64_t last_retain;       /* monotonic ns of the last retention pass */
};

struct topic {
	char name[PROTO_NAME_MAX + 1];
	struct flusher *fl;         /* durable topics */
	struct seg seg;         /* SEG_DAEMON: header + consumer area */
	uint32_t uid, gid, mode;
	int refs;               /* table + handles */
	int deleted;
	struct conn *lease;     /* producer's connection, or NULL */
	uint32_t lease_gen;
	int lease_pidfd;        /* adopted producer, watched until it reconnects */
	uint32_t lease_watch;
	pid_t lease_pid;
	struct slot_owner *slots;  /* [seg.g.nslots] */
};

/* A reply under construction: status, message or body. */
struct reply {
	int status;
	char msg[PROTO_ERR_MAX];
	uint8_t *body;          /* points into the connection's tx buffer */
	size_t len;             /* body bytes written */
	int fds[3];
	int nfds;
};
int rep_err(struct reply *r, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

int topics_init(void);       /* sweep stale buses, adopt ours, load cursors */
void topics_fini(void);      /* persist cursors, unmap */
int topics_persist(int force);  /* write the cursor file if anything changed */
int topics_need_timer(void);    /* 1 while named consumers are attached */
void topics_conn_gone(struct conn *c);
void topics_drop_handle(struct conn *c, unsigned i);  /* forget, release nothing */
void topics_pidfd_ready(uint32_t watch);

int op_create(struct conn *c, const struct req_create *q, struct reply *r);
int op_delete(struct conn *c, const struct req_topic *q, struct reply *r);
int op_open_pub(struct conn *c, const struct req_open *q, struct reply *r);
int op_open_sub(struct conn *c, const struct req_open *q, struct reply *r);
int op_close_pub(struct conn *c, const struct req_topic *q, struct reply *r);
int op_close_sub(struct conn *c, const struct req_close_sub *q, struct reply *r);
int op_list(struct conn *c, const struct req_list *q, struct reply *r, size_t room);
int op_stat(struct conn *c, const struct req_topic *q, struct reply *r, size_t room);
int op_open_log(struct conn *c, const struct req_topic *q, struct reply *r);

/* loop.c: watch a pidfd (POLLIN when the process exits); the id comes back
 * in topics_pidfd_ready(). Ids are never reused, fd numbers are: matching by
 * fd would let an old poll complete for a new pidfd with the same number. */
uint32_t loop_watch_pidfd(int pidfd);
void loop_unwatch(uint32_t watch);   /* cancel a poll still armed */
/* The connection has hung up (its EOF may still be queued): handle that
 * now. For a holder the next request would otherwise find still there. */
int loop_conn_gone_now(struct conn *c);

void dur_defaults(struct dur_cfg *d);
int dur_check(const struct dur_cfg *d, char *why, size_t size);
int conf_read(int dirfd, struct topic_conf *c);
/* Create the log of a new durable topic / open (and recover) an existing
 * one, reconciling it with the segment: flush.c. */
int flush_create(struct topic *t, const struct topic_conf *c);
int flush_open(struct topic *t, int adopted);
void flush_close(struct topic *t, int remove_log);
int flush_recover_all(void);   /* durable topics whose segment is gone */
void flush_kick(struct flusher *f);
void flush_write_done(struct flusher *f, int res);
void flush_sync_done(struct flusher *f, int res);
void flush_timer_done(struct flusher *f);
void flush_futex_done(struct flusher *f, int res);
void flush_sync_timer_done(struct flusher *f);
int flush_log_fd(struct topic *t);   /* a read-only descriptor of its log dir */
int flush_log_exists(const char *name);
int loop_flushers_busy(void);          /* a write or sync in flight */
void topic_release_ref(struct topic *t);

/* loop.c: the flusher's operations (user data carries f->id). */
void loop_flush_write(struct flusher *f, struct iovec *iov, int n, uint64_t off);
void loop_flush_sync(struct flusher *f);
void loop_flush_timer(struct flusher *f, uint64_t ns);
void loop_flush_sync_timer(struct flusher *f, uint64_t ns);
void loop_flush_futex(struct flusher *f, _Atomic uint32_t *word, uint32_t val, int bound_s);
void loop_flush_cancel(struct flusher *f);
int loop_flusher_add(struct flusher *f);
void loop_flusher_del(struct flusher *f);

int loop_init(void);
int loop_run(void (*ready)(void));   /* until SIGTERM/SIGINT */
void loop_fini(void);

/* main.c helpers shared with topics.c */
int busd_sweep_stale(void);

#endif
