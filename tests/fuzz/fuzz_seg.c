/* SPDX-License-Identifier: MIT */
/*
 * fuzz_seg.c — libFuzzer target: what a consumer does with a segment it
 * attaches to (libbus/src/seg.c, sub.c, ring.c, topic.c).
 *
 * A segment is shared memory that any producer of the topic can write, so
 * a consumer must survive one that is corrupt or hostile: a header that is
 * not a segment's, an impossible geometry, a file of the wrong size, a ring
 * of garbage behind a header that passes. The input is the segment image;
 * it goes into a memfd that is then reopened read-only, as busd hands it to
 * a consumer (DESIGN.md invariant 7: a write through that mapping faults, so
 * a consumer that wrote to the ring would crash here). A consumer area is
 * made to match (or, on request, not to) and the consumer attaches through
 * sub_open_fds(), the path bus_sub_attach() takes, then reads events.
 *
 * Checked: seg_validate() accepts only a possible geometry; attaching a
 * bad image fails with -errno and a message; a consumer never returns an
 * event outside its mapping, longer than max_event, or out of sequence
 * without reporting the gap (invariants 4, 5); topic_stat_seg (`bus info`)
 * survives too; nothing leaks.
 *
 * Input layout:
 *
 *   byte 0       start position: BUS_FROM_* (mod 5)
 *   byte 1       flags, below
 *   byte 2       slot busd "reserved" (mod 4; CTL_BAD_SLOT: past the end)
 *   bytes 3-10   sequence number / timestamp for the start position
 *   bytes 11-12  events to read (at most MAX_EVENTS)
 *   byte 13      more flags: resume (a named cursor's position)
 *   bytes 14-15  reserved
 *   then         the segment: struct seg_hdr, the ring at SEG_HDR_SIZE
 *
 * The file gets the size its header claims (the image zero-padded or cut),
 * so that the size check passes and the ring is reached, unless RAW_SIZE
 * asks for exactly the bytes given. Seeds: tests/fuzz/corpus/seg, images of
 * real segments after a few publishes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "err.h"
#include "fuzz.h"
#include "ring.h"
#include "seg.h"

#define RAW_SIZE     0x01u  /* file size = input size */
#define GATING       0x02u  /* open as a gating consumer */
#define USE_READ     0x04u  /* bus_sub_read instead of bus_sub_next */
#define SMALL_BUF    0x08u  /* ... into a 64-byte buffer */
#define CONS_MAGIC_X 0x10u  /* consumer area: bad magic */
#define CONS_SLOTS_X 0x20u  /* ... slot count that disagrees */
#define CONS_SIZE_X  0x40u  /* ... a page too long */
#define CTL_BAD_SLOT 0x80u  /* reserved slot past the end */
#define RESUME       0x01u  /* byte 13 */

#define CTL_LEN    16
#define MAX_EVENTS 4096
#define MAX_FILE   ((1u << 20) + SEG_HDR_SIZE)  /* padding beyond: not worth the time */

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* A memfd holding size bytes, the first len from b; returns the fd. */
static int mem_file(const char *what, const uint8_t *b, size_t len, uint64_t size)
{
	int fd = memfd_create(what, MFD_CLOEXEC);

	FUZZ_CHECK(fd >= 0, "memfd_create");
	FUZZ_CHECK(ftruncate(fd, (off_t)size) == 0, "ftruncate %llu", (unsigned long long)size);
	if (len > size)
		len = size;
	FUZZ_CHECK(!len || pwrite(fd, b, len, 0) == (ssize_t)len, "pwrite");
	return fd;
}

/* The descriptor a consumer gets from busd: read-only. */
static int reopen_ro(int fd)
{
	char p[64];
	int ro;

	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	ro = open(p, O_RDONLY | O_CLOEXEC);
	FUZZ_CHECK(ro >= 0, "reopen %s read-only", p);
	close(fd);
	return ro;
}

/* seg_validate() itself: what it accepts must be a geometry attach can map. */
static void check_validate(const struct seg_hdr *h, uint64_t size)
{
	struct seg_geom g;

	if (seg_validate(h, size, &g) < 0) {
		FUZZ_CHECK(bus_errmsg()[0], "refused without a message");
		return;
	}
	FUZZ_CHECK(g.ring_size >= BUS_RING_MIN && g.ring_size <= BUS_RING_MAX &&
		   !(g.ring_size & (g.ring_size - 1)), "ring size %llu",
		   (unsigned long long)g.ring_size);
	FUZZ_CHECK(g.max_event >= 1 && g.max_event <= g.ring_size / 2, "max_event %u",
		   g.max_event);
	FUZZ_CHECK(g.nslots >= 1 && g.nslots <= BUS_CONSUMERS_MAX, "nslots %u", g.nslots);
	FUZZ_CHECK(g.chunk_shift >= 3 && (1ull << g.chunk_shift) < g.ring_size,
		   "chunk_shift %u", g.chunk_shift);
	FUZZ_CHECK(size == SEG_HDR_SIZE + g.ring_size, "size %llu for a ring of %llu",
		   (unsigned long long)size, (unsigned long long)g.ring_size);
}

static void read_events(struct bus_sub *s, const uint8_t *ctl, unsigned max)
{
	const struct seg *sg = &s->seg;
	const uint8_t *lo = sg->ring, *hi = sg->ring + 2 * sg->g.ring_size;
	uint64_t expect = bus_sub_next_seq(s);
	uint8_t buf[4096];
	size_t bsize = ctl[1] & SMALL_BUF ? 64 : sizeof(buf);
	volatile uint8_t sink = 0;
	unsigned errors = 0;

	for (unsigned i = 0; i < max && errors < 3; i++) {
		struct bus_event ev;
		int r = ctl[1] & USE_READ ? bus_sub_read(s, buf, bsize, &ev) : bus_sub_next(s, &ev);

		if (r == 1) {
			const uint8_t *d = ev.data;

			FUZZ_CHECK(ev.seq == expect,
				   "event %llu, %llu expected without a gap report",
				   (unsigned long long)ev.seq, (unsigned long long)expect);
			FUZZ_CHECK(ev.len <= sg->g.max_event, "a %u-byte event, max_event %u",
				   ev.len, sg->g.max_event);
			if (ctl[1] & USE_READ)
				FUZZ_CHECK(d == buf && ev.len <= bsize, "read %u bytes into %zu",
					   ev.len, bsize);
			else
				FUZZ_CHECK(d >= lo && d + ev.len <= hi,
					   "event data outside the ring");
			for (uint32_t k = 0; k < ev.len; k++)
				sink ^= d[k];
			if (!(ctl[1] & USE_READ))
				bus_sub_confirm(s, &ev);
			expect = ev.seq + 1;
			continue;
		}
		if (r == -ENOBUFS) {
			FUZZ_CHECK(ev.seq == expect && ev.lost > 0 && ev.seq + ev.lost > ev.seq,
				   "gap %llu+%llu, %llu expected", (unsigned long long)ev.seq,
				   (unsigned long long)ev.lost, (unsigned long long)expect);
			expect = ev.seq + ev.lost;
			continue;
		}
		if (r == 0 || r == -EPIPE)
			break;
		FUZZ_CHECK(r < 0 && bus_errmsg()[0], "bus_sub_next %d without a message", r);
		/* The same call again must give the same answer, not crash. */
		errors++;
	}
	(void)sink;
	bus_sub_wait(s, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t ctl[CTL_LEN] = { 0 };
	struct seg_hdr h;
	struct cons_hdr ch;
	struct bus_sub_opts o;
	struct bus_sub *s;
	const uint8_t *img;
	size_t len;
	uint64_t fsize, ring, csize;
	uint32_t nslots, slot;
	uint8_t *cons;
	int fd, cfd, fd0, r;

	memcpy(ctl, data, size < CTL_LEN ? size : CTL_LEN);
	img = data + (size < CTL_LEN ? size : CTL_LEN);
	len = size - (size_t)(img - data);
	fd0 = fuzz_lowest_fd();

	memset(&h, 0, sizeof(h));
	memcpy(&h, img, len < sizeof(h) ? len : sizeof(h));
	ring = h.ring_size;
	if (ctl[1] & RAW_SIZE || ring < BUS_RING_MIN || ring > MAX_FILE - SEG_HDR_SIZE ||
	    (ring & (ring - 1)))
		fsize = len;
	else
		fsize = SEG_HDR_SIZE + ring;
	check_validate(&h, fsize);
	check_validate(&h, len);

	/* The consumer area busd would have made for this header. */
	nslots = h.max_consumers && h.max_consumers <= BUS_CONSUMERS_MAX ? h.max_consumers : 64;
	csize = cons_file_size(nslots) + (ctl[1] & CONS_SIZE_X ? 4096 : 0);
	cons = calloc(1, csize);
	FUZZ_CHECK(cons, "out of memory");
	memset(&ch, 0, sizeof(ch));
	ch.magic = ctl[1] & CONS_MAGIC_X ? SEG_MAGIC : CONS_MAGIC;
	ch.version = SEG_VERSION;
	ch.nslots = nslots + (ctl[1] & CONS_SLOTS_X ? 1 : 0);
	memcpy(cons, &ch, sizeof(ch));
	slot = ctl[1] & CTL_BAD_SLOT ? nslots + ctl[2] : ctl[2] % 4u % nslots;
	if (slot < nslots) {  /* busd reserved it for us: owner = our pid */
		struct cons_slot *sl = (struct cons_slot *)(cons + CONS_HDR_SIZE) + slot;

		sl->owner = (uint32_t)getpid();
	}
	if (ctl[1] & CONS_SLOTS_X)
		FUZZ_CHECK(seg_validate_cons(&ch, csize, nslots) < 0, "slot count mismatch passed");

	fd = reopen_ro(mem_file("fuzz-seg", img, len, fsize));
	cfd = mem_file("fuzz-seg@cons", cons, csize, csize);
	free(cons);

	memset(&o, 0, sizeof(o));
	o.from = (enum bus_from)(ctl[0] % 5);
	o.seq = get64(ctl + 3);
	o.ts_ns = get64(ctl + 3);
	o.flags = ctl[1] & GATING ? BUS_SUB_GATING : 0;
	r = sub_open_fds("fuzz", fd, cfd, -1, slot, &o, ctl[13] & RESUME, get64(ctl + 3), &s);
	if (r == 0) {
		struct bus_topic_info ti;
		struct bus_consumer_info ci[4];
		uint32_t next;
		unsigned max = (unsigned)(ctl[11] | ctl[12] << 8) % (MAX_EVENTS + 1);

		FUZZ_CHECK(!(ctl[1] & (CONS_MAGIC_X | CONS_SLOTS_X | CONS_SIZE_X)) &&
			   slot < s->seg.g.nslots, "attached with a bad consumer area or slot");
		topic_stat_seg(&s->seg, &ti, ci, 4, 0, &next);
		read_events(s, ctl, max ? max : 64);
		topic_stat_seg(&s->seg, &ti, ci, 4, 0, &next);
		bus_sub_close(s);
	} else {
		FUZZ_CHECK(bus_errmsg()[0], "sub_open_fds %d without a message", r);
	}
	FUZZ_CHECK(fuzz_lowest_fd() == fd0, "a descriptor leaked (lowest free %d, was %d)",
		   fuzz_lowest_fd(), fd0);
	return 0;
}
