/* SPDX-License-Identifier: MIT */
/* topic.c — topic lifecycle and read-only inspection. */
#include <errno.h>
#include <string.h>

#include "atomics.h"
#include "err.h"
#include "ring.h"
#include "seg.h"
#include "wait.h"

BUS_EXPORT int bus_topic_create(const char *name, const struct bus_topic_opts *opts)
{
	return seg_create(name, opts);
}

BUS_EXPORT int bus_topic_remove(const char *name)
{
	return seg_remove(name);
}

BUS_EXPORT int bus_topic_stat(const char *name, struct bus_topic_info *ti,
			      struct bus_consumer_info *ci, unsigned nci)
{
	struct bus_topic_info z;
	struct seg s;
	const struct seg_hdr *h;
	uint64_t head, pos, seq, size;
	unsigned n = 0;
	uint32_t i, pid;
	int r;

	if (!ti)
		ti = &z;
	r = seg_attach(name, SEG_INSPECT, &s);
	if (r < 0)
		return r;
	h = s.hdr;
	memset(ti, 0, sizeof(*ti));
	ti->ring_size = s.g.ring_size;
	ti->max_event = s.g.max_event;
	ti->max_consumers = s.g.nslots;
	ti->flags = s.g.flags;
	ti->first_seq = s.g.first_seq;
	pid = at_load_relaxed(&h->pub_pid);
	ti->producer_pid = pid_alive(pid) ? pid : 0;
	/* Statistics: relaxed loads; a snapshot may be skewed by a few events.
	 * Sequence numbers come from the records themselves. */
	ti->bytes = at_load_relaxed(&h->bytes);
	ti->producer_waits = at_load_relaxed(&h->waits);
	ti->wakeups = at_load_relaxed(&h->wakeups);
	ti->deleted = at_load_relaxed(&h->state) != SEG_STATE_LIVE;
	ring_oldest(&s, &pos, &ti->oldest_seq, &head);
	ti->next_seq = ring_newest(&s, &pos, &seq, &size) ? seq + 1 : ti->oldest_seq;
	ti->events = ti->next_seq - s.g.first_seq;
	for (i = 0; i < s.g.nslots; i++) {
		const struct cons_slot *sl = &s.slots[i];
		uint32_t owner = at_load_relaxed(&sl->owner);
		uint64_t cseq, lag;

		if (!pid_alive(owner))
			continue;
		cseq = at_load_relaxed(&sl->seq);
		lag = ti->next_seq > cseq ? ti->next_seq - cseq : 0;
		if (lag > ti->max_lag)
			ti->max_lag = lag;
		if (ci && n < nci) {
			struct bus_consumer_info *c = &ci[n];

			c->slot = i;
			c->pid = owner;
			c->gating = !!(at_load_relaxed(&sl->flags) & SLOT_GATING);
			c->sleeping = at_load_relaxed(&sl->sleeping);
			c->next_seq = cseq;
			c->lag = lag;
			c->events = at_load_relaxed(&sl->events);
			c->lapped = at_load_relaxed(&sl->lapped);
			c->lost = at_load_relaxed(&sl->lost);
		}
		n++;
	}
	ti->consumers = n;
	seg_detach(&s);
	bus_err_clear();
	return (int)n;
}
