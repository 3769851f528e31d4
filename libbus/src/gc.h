/* SPDX-License-Identifier: MIT */
/*
 * gc.h — removing the segments of dead buses: busd's sweep when it starts,
 * and `bus gc`.
 *
 * A bus's files in the segment directory are SHM/bus-ID.* (its topics, their
 * @cons areas) and the anchor SHM/bus-ID, which holds the bus directory and
 * busd's pid. A bus is dead when nobody holds the lock in its directory
 * (BUSDIR/busd.lock). Of a dead bus, a file is removed only when it is a
 * regular file owned by the caller's effective uid that no process has open
 * or mapped, and only with the other half of its topic (NAME and NAME@cons
 * go together); the anchor goes last, once nothing else of its bus is left.
 * Nothing of a live bus, of another user, or without an anchor is touched.
 */
#ifndef BUS_GC_H
#define BUS_GC_H

#include <stdint.h>

/* Why a file was removed (GC_DEAD) or kept (everything else). */
enum gc_why {
	GC_DEAD = 0,     /* removed: its bus has no busd */
	GC_LIVE,         /* its busd runs (holds BUSDIR/busd.lock) */
	GC_UNSURE,       /* cannot tell whether its busd runs (the lock file
			  * cannot be read: err) */
	GC_BAD_ANCHOR,   /* the anchor does not name a bus directory */
	GC_NOT_OURS,     /* owned by another user */
	GC_NOT_FILE,     /* not a regular file */
	GC_MAPPED,       /* a process maps it (/proc/PID/maps) */
	GC_IN_USE,       /* a process has it open or mapped (the kernel refused
			  * a write lease: this sees other users' processes too) */
	GC_FAILED,       /* unlink failed: err */
	GC_PAIR,         /* the other half of its topic (NAME, NAME@cons) stays */
	GC_REMAIN,       /* (anchor) files of its bus are left */
	GC_ORPHAN,       /* no anchor names its bus: whose it is is unknown */
};

/* One file looked at, as the sweep reports it. */
struct gc_file {
	const char *name;      /* in the segment directory */
	const char *bus_id;    /* 16 hex digits */
	const char *bus_dir;   /* the anchor's bus directory; "" if unknown */
	int busd_pid;          /* the anchor's busd pid; 0 if unknown */
	int anchor;            /* 1: the anchor SHM/bus-ID itself */
	uint64_t size;         /* bytes (st_size) */
	uint32_t uid;          /* owner */
	int removed;           /* 1: removed (dry run: would be) */
	enum gc_why why;
	int err;               /* errno behind GC_UNSURE and GC_FAILED */
};

struct gc_opts {
	int shm_dirfd;         /* the segment directory (O_PATH is enough) */
	const char *skip_id;   /* a bus to leave out entirely (busd's own), or NULL */
	int dry_run;           /* decide and report, remove nothing */
	/* Called for every file of every bus found, in name order, the
	 * anchor after its bus's files; may be NULL. */
	void (*on_file)(void *arg, const struct gc_file *f);
	void *arg;
};

struct gc_stats {
	unsigned buses;        /* anchors found */
	unsigned dead;         /* of them, buses without a busd */
	unsigned cleared;      /* dead buses removed completely (anchor too) */
	unsigned removed;      /* files removed (dry run: would be) */
	unsigned kept;         /* files kept */
	uint64_t bytes;        /* bytes of the files removed */
};

/* Sweep the segment directory. 0, or -errno if it cannot be listed (stats
 * then stay zero). With dry_run nothing is removed; the report says what
 * would be. */
int gc_sweep(const struct gc_opts *o, struct gc_stats *st);

/* How many files of bus `id` (SHM/bus-ID.*) the segment directory holds. */
int gc_bus_files(int shm_dirfd, const char *id);

/* Is the busd of the bus in `dir` running? 1 yes, 0 no, -errno cannot tell. */
int gc_bus_alive(const char *dir);

/* A short phrase for a reason ("a process maps it"), and a stable key for
 * JSON ("mapped"). */
const char *gc_why_str(enum gc_why w);
const char *gc_why_key(enum gc_why w);

#endif
