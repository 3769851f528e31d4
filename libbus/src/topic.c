/* SPDX-License-Identifier: MIT */
/* topic.c — topic lifecycle and read-only inspection. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "atomics.h"
#include "err.h"
#include "ring.h"
#include "seg.h"
#include "wait.h"

BUS_EXPORT int bus_topic_create(const char *name, const struct bus_topic_opts *opts)
{
	if (opts && (opts->flags & BUS_TOPIC_DURABLE))
		return bus_err(EINVAL, "topic '%s': a durable topic needs busd to flush it: "
			       "create it with bus_create()", name);
	return seg_create(name, opts);
}

BUS_EXPORT int bus_topic_remove(const char *name)
{
	return seg_remove(name);
}

int topic_stat_seg(const struct seg *s, struct bus_topic_info *ti,
		   struct bus_consumer_info *ci, unsigned nci, uint32_t first_slot,
		   uint32_t *next_slot)
{
	const struct seg_hdr *h = s->hdr;
	uint64_t head, pos, seq, size;
	unsigned n = 0, filled = 0;
	uint32_t i, pid;

	memset(ti, 0, sizeof(*ti));
	if (next_slot)
		*next_slot = 0;
	ti->ring_size = s->g.ring_size;
	ti->max_event = s->g.max_event;
	ti->max_consumers = s->g.nslots;
	ti->flags = s->g.flags;
	ti->first_seq = s->g.first_seq;
	pid = at_load_relaxed(&h->pub_pid);
	ti->producer_pid = pid_alive(pid) ? pid : 0;
	/* Statistics: relaxed loads; a snapshot may be skewed by a few events.
	 * Sequence numbers come from the records themselves. */
	ti->bytes = at_load_relaxed(&h->bytes);
	ti->producer_waits = at_load_relaxed(&h->waits);
	ti->wakeups = at_load_relaxed(&h->wakeups);
	ti->deleted = at_load_relaxed(&h->state) != SEG_STATE_LIVE;
	if (s->g.flags & BUS_TOPIC_DURABLE) {
		ti->degraded = at_load_relaxed(&h->flush_state) == FLUSH_DEGRADED;
		ti->flushed_seq = at_load_relaxed(&h->flushed_seq);
		ti->durable_seq = at_load_relaxed(&h->durable_seq);
		ti->flush_errors = at_load_relaxed(&h->flush_errors);
	}
	ring_oldest(s, &pos, &ti->oldest_seq, &head);
	ti->next_seq = ring_newest(s, &pos, &seq, &size) ? seq + 1 : ti->oldest_seq;
	ti->events = ti->next_seq - s->g.first_seq;
	for (i = 0; i < s->g.nslots; i++) {
		const struct cons_slot *sl = &s->slots[i];
		uint32_t owner = at_load_relaxed(&sl->owner);
		uint64_t cseq, lag;

		if (!pid_alive(owner))
			continue;
		cseq = at_load_relaxed(&sl->seq);
		lag = ti->next_seq > cseq ? ti->next_seq - cseq : 0;
		if (lag > ti->max_lag)
			ti->max_lag = lag;
		n++;
		if (i < first_slot)
			continue;
		if (!ci || filled >= nci) {
			if (next_slot && !*next_slot && ci)
				*next_slot = i;
			continue;
		}
		{
			struct bus_consumer_info *c = &ci[filled++];

			memset(c, 0, sizeof(*c));
			c->slot = i;
			c->pid = owner;
			c->gating = !!(at_load_relaxed(&sl->flags) & SLOT_GATING);
			c->sleeping = at_load_relaxed(&sl->sleeping);
			c->next_seq = cseq;
			c->lag = lag;
			c->events = at_load_relaxed(&sl->events);
			c->lapped = at_load_relaxed(&sl->lapped);
			c->lost = at_load_relaxed(&sl->lost);
			c->commit = at_load_relaxed(&sl->commit);
		}
	}
	ti->consumers = n;
	return (int)filled;
}

BUS_EXPORT int bus_topic_stat(const char *name, struct bus_topic_info *ti,
			      struct bus_consumer_info *ci, unsigned nci)
{
	struct bus_topic_info z;
	struct stat st;
	struct seg s;
	int r;

	if (!ti)
		ti = &z;
	r = seg_attach(name, SEG_INSPECT, &s);
	if (r < 0)
		return r;
	topic_stat_seg(&s, ti, ci, nci, 0, NULL);
	if (fstat(s.fd, &st) == 0) {
		ti->mode = st.st_mode & 07777;
		ti->uid = st.st_uid;
		ti->gid = st.st_gid;
	}
	seg_detach(&s);
	bus_err_clear();
	return (int)ti->consumers;
}
