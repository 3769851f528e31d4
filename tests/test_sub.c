/* SPDX-License-Identifier: MIT */
/* Description: the consumer API — start positions, zero-copy next and
 * confirm, copying read, slots, deletion, statistics. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

#include "bus.h"
#include "t_util.h"

TestSuite(sub, .init = t_init, .fini = t_fini, .timeout = 60);

static const char *filled(const char *tag, uint64_t ring, int n, struct bus_pub **pp)
{
	const char *t = t_topic(tag);
	struct bus_pub *p;
	uint64_t i;

	cr_assert_eq(bus_topic_create(t, &(struct bus_topic_opts){ .ring_size = ring }), 0);
	cr_assert_eq(bus_pub_open(t, &p), 0);
	for (i = 1; i <= (uint64_t)n; i++)
		cr_assert_eq(bus_pub_publish(p, 0, &i, sizeof(i), 0), 0);
	*pp = p;
	return t;
}

static uint64_t first_seq_from(const char *t, struct bus_sub_opts o, int *rc)
{
	struct bus_sub *s;
	struct bus_event ev;
	uint64_t seq = 0;

	*rc = bus_sub_open(t, &o, &s);
	if (*rc < 0)
		return 0;
	if (bus_sub_next(s, &ev) == 1)
		seq = ev.seq;
	bus_sub_close(s);
	return seq;
}

Test(sub, start_at_oldest_newest_end_or_a_sequence_number)
{
	struct bus_pub *p;
	const char *t = filled("from", 4096, 500, &p); /* 4 KiB ring: the oldest were overwritten */
	struct bus_topic_info ti;
	struct bus_sub *s;
	struct bus_event ev;
	int rc;

	cr_assert_eq(bus_topic_stat(t, &ti, NULL, 0), 0);
	cr_assert_gt(ti.oldest_seq, 1);
	cr_assert_eq(ti.next_seq, 501);

	cr_assert_eq(first_seq_from(t, (struct bus_sub_opts){ .from = BUS_FROM_OLDEST }, &rc),
		     ti.oldest_seq);
	cr_assert_eq(first_seq_from(t, (struct bus_sub_opts){ .from = BUS_FROM_NEWEST }, &rc), 500);
	cr_assert_eq(first_seq_from(t, (struct bus_sub_opts){ .from = BUS_FROM_SEQ, .seq = 480 }, &rc),
		     480);
	cr_assert_eq(first_seq_from(t, (struct bus_sub_opts){ .from = BUS_FROM_SEQ,
							       .seq = ti.oldest_seq }, &rc),
		     ti.oldest_seq);

	/* END: nothing until the next publish, which is the first delivered. */
	cr_assert_eq(bus_sub_open(t, &(struct bus_sub_opts){ .from = BUS_FROM_END }, &s), 0);
	cr_assert_eq(bus_sub_next(s, &ev), 0);
	cr_assert_eq(bus_sub_next_seq(s), 501);
	cr_assert_eq(bus_pub_publish(p, 0, "n", 1, 0), 0);
	cr_assert_eq(bus_sub_next(s, &ev), 1);
	cr_assert_eq(ev.seq, 501);
	bus_sub_close(s);

	/* The next sequence number is a valid start: it is the next event. */
	cr_assert_eq(bus_sub_open(t, &(struct bus_sub_opts){ .from = BUS_FROM_SEQ, .seq = 502 }, &s),
		     0);
	cr_assert_eq(bus_sub_next(s, &ev), 0);
	cr_assert_eq(bus_pub_publish(p, 0, "m", 1, 0), 0);
	cr_assert_eq(bus_sub_next(s, &ev), 1);
	cr_assert_eq(ev.seq, 502);
	bus_sub_close(s);
	bus_pub_close(p);
	bus_topic_remove(t);
}

Test(sub, sequence_outside_the_ring_is_erange)
{
	struct bus_pub *p;
	const char *t = filled("range", 4096, 500, &p);
	struct bus_sub *s;

	cr_assert_eq(bus_sub_open(t, &(struct bus_sub_opts){ .from = BUS_FROM_SEQ, .seq = 1 }, &s),
		     -ERANGE);
	cr_assert(strstr(bus_errmsg(), "not in the ring"), "%s", bus_errmsg());
	cr_assert_eq(bus_sub_open(t, &(struct bus_sub_opts){ .from = BUS_FROM_SEQ, .seq = 9999 },
				  &s), -ERANGE);
	bus_pub_close(p);
	bus_topic_remove(t);
}

Test(sub, empty_topic_starts_at_first_sequence_from_anywhere)
{
	const char *t = t_topic("empty");
	struct bus_pub *p;
	struct bus_sub *s[4];
	struct bus_event ev;
	int i;

	cr_assert_eq(bus_topic_create(t, &(struct bus_topic_opts){ .first_seq = 42 }), 0);
	cr_assert_eq(bus_sub_open(t, &(struct bus_sub_opts){ .from = BUS_FROM_OLDEST }, &s[0]), 0);
	cr_assert_eq(bus_sub_open(t, &(struct bus_sub_opts){ .from = BUS_FROM_NEWEST }, &s[1]), 0);
	cr_assert_eq(bus_sub_open(t, &(struct bus_sub_opts){ .from = BUS_FROM_END }, &s[2]), 0);
	cr_assert_eq(bus_sub_open(t, &(struct bus_sub_opts){ .from = BUS_FROM_SEQ, .seq = 42 },
				  &s[3]), 0);
	cr_assert_eq(bus_sub_open(t, &(struct bus_sub_opts){ .from = BUS_FROM_SEQ, .seq = 41 },
				  &(struct bus_sub *){ NULL }), -ERANGE);
	cr_assert_eq(bus_pub_open(t, &p), 0);
	cr_assert_eq(bus_pub_publish(p, 0, "first", 5, 0), 0);
	for (i = 0; i < 4; i++) {
		cr_assert_eq(bus_sub_next(s[i], &ev), 1, "consumer %d", i);
		cr_assert_eq(ev.seq, 42);
		bus_sub_close(s[i]);
	}
	bus_pub_close(p);
	bus_topic_remove(t);
}

Test(sub, bad_options_are_einval)
{
	const char *t = t_topic("opts");
	struct bus_sub *s;

	cr_assert_eq(bus_topic_create(t, NULL), 0);
	cr_assert_eq(bus_sub_open(t, &(struct bus_sub_opts){ .from = 9 }, &s), -EINVAL);
	cr_assert_eq(bus_sub_open(t, &(struct bus_sub_opts){ .flags = 0x100 }, &s), -EINVAL);
	cr_assert_eq(bus_sub_open(t, &(struct bus_sub_opts){ .flags = BUS_SUB_GATING }, &s), -EINVAL);
	cr_assert(strstr(bus_errmsg(), "gating"), "%s", bus_errmsg());
	cr_assert_eq(bus_sub_open(t, NULL, NULL), -EINVAL);
	bus_topic_remove(t);
}

Test(sub, read_copies_and_confirms)
{
	struct bus_pub *p;
	const char *t = filled("read", 65536, 3, &p);
	struct bus_sub *s;
	struct bus_event ev;
	uint64_t v = 0;
	char small[4];

	cr_assert_eq(bus_sub_open(t, NULL, &s), 0);
	cr_assert_eq(bus_sub_read(s, &v, sizeof(v), &ev), 1);
	cr_assert_eq(v, 1);
	cr_assert_eq(ev.data, &v);
	cr_assert_eq(ev.seq, 1);
	/* Too small: -EMSGSIZE with the size needed, and nothing consumed. */
	cr_assert_eq(bus_sub_read(s, small, sizeof(small), &ev), -EMSGSIZE);
	cr_assert_eq(ev.len, 8);
	cr_assert_eq(bus_sub_next_seq(s), 2);
	cr_assert_eq(bus_sub_read(s, &v, sizeof(v), &ev), 1);
	cr_assert_eq(v, 2);
	cr_assert_eq(bus_sub_read(s, &v, sizeof(v), &ev), 1);
	cr_assert_eq(bus_sub_read(s, &v, sizeof(v), &ev), 0);
	bus_sub_close(s);
	bus_pub_close(p);
	bus_topic_remove(t);
}

Test(sub, confirm_accepts_an_intact_view)
{
	struct bus_pub *p;
	const char *t = filled("confirm", 65536, 10, &p);
	struct bus_sub *s;
	struct bus_event ev;
	int i;

	cr_assert_eq(bus_sub_open(t, NULL, &s), 0);
	for (i = 0; i < 10; i++) {
		cr_assert_eq(bus_sub_next(s, &ev), 1);
		cr_assert_eq(*(const uint64_t *)ev.data, (uint64_t)i + 1);
		cr_assert_eq(bus_sub_confirm(s, &ev), 0);
	}
	bus_sub_close(s);
	bus_pub_close(p);
	bus_topic_remove(t);
}

Test(sub, every_consumer_reads_independently_with_its_own_slot)
{
	struct bus_pub *p;
	const char *t = t_topic("many");
	struct bus_sub *s[BUS_CONSUMERS_DEFAULT + 1];
	struct bus_consumer_info ci[BUS_CONSUMERS_DEFAULT];
	struct bus_topic_info ti;
	struct bus_event ev;
	uint64_t i;
	int k;

	cr_assert_eq(bus_topic_create(t, NULL), 0);
	for (k = 0; k < (int)BUS_CONSUMERS_DEFAULT; k++)
		cr_assert_eq(bus_sub_open(t, NULL, &s[k]), 0, "consumer %d: %s", k, bus_errmsg());
	cr_assert_eq(bus_sub_open(t, NULL, &s[k]), -EUSERS);
	cr_assert(strstr(bus_errmsg(), "64"), "%s", bus_errmsg());
	cr_assert_eq(bus_pub_open(t, &p), 0);
	for (i = 1; i <= 100; i++)
		cr_assert_eq(bus_pub_publish(p, 0, &i, sizeof(i), 0), 0);
	/* Consumer k reads k events: each has its own position. */
	for (k = 0; k < (int)BUS_CONSUMERS_DEFAULT; k++) {
		for (i = 1; i <= (uint64_t)k; i++) {
			cr_assert_eq(bus_sub_next(s[k], &ev), 1);
			cr_assert_eq(ev.seq, i);
		}
		bus_sub_wait(s[k], 0); /* publishes its exact position */
	}
	cr_assert_eq(bus_topic_stat(t, &ti, ci, BUS_CONSUMERS_DEFAULT), (int)BUS_CONSUMERS_DEFAULT);
	cr_assert_eq(ti.max_lag, 100);
	for (k = 0; k < (int)BUS_CONSUMERS_DEFAULT; k++)
		cr_assert_eq(ci[k].lag + ci[k].events, 100, "slot %u", ci[k].slot);
	/* A closed slot is reused. */
	bus_sub_close(s[10]);
	cr_assert_eq(bus_sub_open(t, NULL, &s[10]), 0);
	for (k = 0; k < (int)BUS_CONSUMERS_DEFAULT; k++)
		bus_sub_close(s[k]);
	cr_assert_eq(bus_topic_stat(t, &ti, NULL, 0), 0);
	bus_pub_close(p);
	bus_topic_remove(t);
}

Test(sub, more_slots_on_request)
{
	const char *t = t_topic("slots");
	enum { N = 200 };
	static struct bus_sub *s[N];
	int k;

	cr_assert_eq(bus_topic_create(t, &(struct bus_topic_opts){ .max_consumers = N }), 0);
	for (k = 0; k < N; k++)
		cr_assert_eq(bus_sub_open(t, NULL, &s[k]), 0, "consumer %d", k);
	cr_assert_eq(bus_sub_open(t, NULL, &(struct bus_sub *){ NULL }), -EUSERS);
	for (k = 0; k < N; k++)
		bus_sub_close(s[k]);
	bus_topic_remove(t);
}

/* A consumer killed without closing leaves its slot to the next one. */
static const char *dead_topic;

static int take_slot_and_die(void *arg)
{
	struct bus_sub *s;

	(void)arg;
	if (bus_sub_open(dead_topic, NULL, &s) < 0)
		return 1;
	raise(SIGKILL);
	return 2;
}

Test(sub, slot_of_a_dead_consumer_is_reclaimed)
{
	struct bus_sub *s;
	struct bus_topic_info ti;

	dead_topic = t_topic("dead");
	cr_assert_eq(bus_topic_create(dead_topic, &(struct bus_topic_opts){ .max_consumers = 1 }), 0);
	cr_assert_eq(t_wait_pid(t_fork(take_slot_and_die, NULL)), 128 + SIGKILL);
	cr_assert_eq(bus_topic_stat(dead_topic, &ti, NULL, 0), 0, "a dead consumer is not counted");
	cr_assert_eq(bus_sub_open(dead_topic, NULL, &s), 0, "%s", bus_errmsg());
	bus_sub_close(s);
	bus_topic_remove(dead_topic);
}

Test(sub, deleted_topic_drains_then_reports_epipe)
{
	struct bus_pub *p;
	const char *t = filled("drain", 65536, 5, &p);
	struct bus_sub *s;
	struct bus_event ev;
	int i;

	cr_assert_eq(bus_sub_open(t, NULL, &s), 0);
	cr_assert_eq(bus_sub_next(s, &ev), 1);
	cr_assert_eq(bus_topic_remove(t), 0);
	for (i = 2; i <= 5; i++) {
		cr_assert_eq(bus_sub_next(s, &ev), 1);
		cr_assert_eq(ev.seq, (uint64_t)i);
	}
	cr_assert_eq(bus_sub_next(s, &ev), -EPIPE);
	cr_assert_eq(bus_sub_next(s, &ev), -EPIPE);
	cr_assert_eq(bus_sub_wait(s, 1000000000), 1, "wait returns at once on a deleted topic");
	bus_sub_close(s);
	bus_pub_close(p);
}

Test(sub, confirm_of_an_older_view_reports_without_delivering_twice)
{
	const char *t = t_topic("older");
	struct bus_pub *p;
	struct bus_sub *s;
	struct bus_event a, b, ev;
	uint64_t i, first_after;

	cr_assert_eq(bus_topic_create(t, &(struct bus_topic_opts){ .ring_size = 4096 }), 0);
	cr_assert_eq(bus_pub_open(t, &p), 0);
	cr_assert_eq(bus_sub_open(t, NULL, &s), 0);
	for (i = 1; i <= 3; i++)
		cr_assert_eq(bus_pub_publish(p, 0, &i, sizeof(i), 0), 0);
	cr_assert_eq(bus_sub_next(s, &a), 1);
	cr_assert_eq(bus_sub_next(s, &b), 1);
	for (i = 4; i <= 400; i++)  /* overwrite both views */
		cr_assert_eq(bus_pub_publish(p, 0, &i, sizeof(i), 0), 0);
	/* The older view: reported, no rewind (b was delivered after it). */
	cr_assert_eq(bus_sub_confirm(s, &a), -ENOBUFS);
	cr_assert_eq(bus_sub_next_seq(s), 3);
	/* The latest view: reported, and the consumer rewinds to it. */
	cr_assert_eq(bus_sub_confirm(s, &b), -ENOBUFS);
	cr_assert_eq(bus_sub_next_seq(s), 2);
	cr_assert_eq(bus_sub_next(s, &ev), -ENOBUFS);
	cr_assert_eq(ev.seq, 2, "the gap starts at the torn view");
	first_after = ev.seq + ev.lost;
	cr_assert_eq(bus_sub_next(s, &ev), 1);
	cr_assert_eq(ev.seq, first_after);
	bus_sub_close(s);
	bus_pub_close(p);
	bus_topic_remove(t);
}

/* A half-ring event invalidates everything before it, `last` included: a
 * NEWEST or END start must then fall back to the (empty) oldest position. */
Test(sub, newest_when_the_newest_record_was_invalidated_starts_at_the_next)
{
	const char *t = t_topic("bignewest");
	struct bus_pub *p;
	struct bus_sub *newest, *end;
	struct bus_event ev;
	static char big[4096];
	void *buf;

	cr_assert_eq(bus_topic_create(t, &(struct bus_topic_opts){ .ring_size = 8192,
								   .max_event = 4096 }), 0);
	cr_assert_eq(bus_pub_open(t, &p), 0);
	cr_assert_eq(bus_pub_publish(p, 0, big, sizeof(big), 0), 0);  /* seq 1 */
	cr_assert_eq(bus_pub_publish(p, 0, big, sizeof(big), 0), 0);  /* seq 2 */
	cr_assert_eq(bus_pub_claim(p, sizeof(big), &buf), 0);          /* gives up seq 2 */
	cr_assert_eq(bus_sub_open(t, &(struct bus_sub_opts){ .from = BUS_FROM_NEWEST }, &newest), 0);
	cr_assert_eq(bus_sub_open(t, &(struct bus_sub_opts){ .from = BUS_FROM_END }, &end), 0);
	cr_assert_eq(bus_sub_next_seq(newest), 3);
	cr_assert_eq(bus_sub_next_seq(end), 3);
	cr_assert_eq(bus_sub_next(newest, &ev), 0);
	memset(buf, 'z', sizeof(big));
	cr_assert_eq(bus_pub_commit(p, 7, sizeof(big), 0), 0);
	cr_assert_eq(bus_sub_next(newest, &ev), 1);
	cr_assert_eq(ev.seq, 3);
	cr_assert_eq(ev.type, 7);
	cr_assert_eq(bus_sub_next(end, &ev), 1);
	cr_assert_eq(ev.seq, 3);
	bus_sub_close(newest);
	bus_sub_close(end);
	bus_pub_close(p);
	bus_topic_remove(t);
}
