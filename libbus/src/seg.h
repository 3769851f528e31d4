/* SPDX-License-Identifier: MIT */
/* seg.h — topic segments: create, attach (map), validate, remove. */
#ifndef BUS_SEG_H
#define BUS_SEG_H

#include <limits.h>
#include <stdint.h>
#include <stddef.h>

#include "bus.h"
#include "layout.h"

/* How a segment is attached. */
enum seg_role {
	SEG_PRODUCER, /* ring and header read-write */
	SEG_CONSUMER, /* ring and header read-only, consumer area read-write */
	SEG_INSPECT,  /* everything read-only, nothing prefaulted (tools) */
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

/* Open and map a segment; validates everything first. */
int seg_attach(const char *name, enum seg_role role, struct seg *s);

/* Unmap and close. Safe on a zeroed or half-attached struct. */
void seg_detach(struct seg *s);

/* Validate a header snapshot against the file size; fill *g. Returns 0,
 * -EPROTO (not a segment of this layout) or -EINVAL (impossible geometry). */
int seg_validate(const struct seg_hdr *h, uint64_t file_size, struct seg_geom *g);
int seg_validate_cons(const struct cons_hdr *c, uint64_t file_size, uint32_t nslots);

int seg_remove(const char *name);

#endif
