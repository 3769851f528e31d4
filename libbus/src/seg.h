/* SPDX-License-Identifier: MIT */
/* seg.h — topic segments: create, attach (map), validate, remove. */
#ifndef BUS_SEG_H
#define BUS_SEG_H

#include <limits.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include "bus.h"
#include "layout.h"

/* How a segment is attached. */
enum seg_role {
	SEG_PRODUCER, /* ring and header read-write */
	SEG_CONSUMER, /* ring and header read-only, consumer area read-write */
	SEG_INSPECT,  /* everything read-only, nothing prefaulted (tools) */
	SEG_DAEMON,   /* busd: header and consumer area read-write, ring
		       * read-only, nothing prefaulted */
};

/* Geometry copied out of a validated header: never re-read from shared memory,
 * so a hostile writer cannot change it under us after validation. */
struct seg_geom {
	uint64_t ring_size;
	uint64_t first_seq;
	uint32_t max_event;
	uint32_t nslots;
	uint32_t flags;
	uint32_t chunk_shift;
};

struct seg {
	struct seg_hdr *hdr;        /* read-only mapping unless SEG_PRODUCER */
	uint8_t *ring;              /* hdr + SEG_HDR_SIZE, mapped twice */
	struct cons_hdr *chdr;
	struct cons_slot *slots;
	struct seg_geom g;
	uint64_t mask;              /* ring_size - 1 */
	void *map;                  /* the reservation: header + 2 x ring */
	size_t map_len;
	size_t cons_len;
	int fd;                     /* NAME */
	int cfd;                    /* NAME@cons */
	char path[PATH_MAX];
};

/* Resolve a topic name to the path of its main file ("x" -> /dev/shm/x). */
int seg_path(const char *name, char *out, size_t outlen);

/* Create the two files of a segment atomically (they appear complete or not
 * at all). */
int seg_create(const char *name, const struct bus_topic_opts *opts);
/* The same, files owned by uid:gid ((uid_t)-1 = the caller's). */
int seg_create_owned(const char *name, const struct bus_topic_opts *opts, uid_t uid, gid_t gid);

/* Open and map a segment; validates everything first. */
int seg_attach(const char *name, enum seg_role role, struct seg *s);

/* The same from open descriptors (NAME, NAME@cons), for instance the ones
 * busd hands over; takes ownership of both (closed on failure). The access
 * the descriptors allow must match the role. name is for messages. */
int seg_attach_fds(int fd, int cfd, const char *name, enum seg_role role, struct seg *s);

/* Unmap and close. Safe on a zeroed or half-attached struct. */
void seg_detach(struct seg *s);

/* Validate a header snapshot against the file size; fill *g. Returns 0,
 * -EPROTO (not a segment of this layout) or -EINVAL (impossible geometry). */
int seg_validate(const struct seg_hdr *h, uint64_t file_size, struct seg_geom *g);
int seg_validate_cons(const struct cons_hdr *c, uint64_t file_size, uint32_t nslots);

int seg_remove(const char *name);

/* Statistics of an attached segment (topic.c): fills *ti and up to nci
 * consumers from first_slot on; *next_slot (if not NULL) gets the slot where
 * a next page would start (0 = none). Returns the consumers filled. */
int topic_stat_seg(const struct seg *s, struct bus_topic_info *ti,
		   struct bus_consumer_info *ci, unsigned nci, uint32_t first_slot,
		   uint32_t *next_slot);

#endif
