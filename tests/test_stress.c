/* SPDX-License-Identifier: MIT */
/*
 * Description: one producer and several consumers move millions of events of
 * random sizes (1 B to 4 KiB) through every publish API (publish, claim/commit,
 * BUS_MORE batches + flush) and both read APIs (next + confirm, read). Every
 * consumer checks every event it gets: sequence number, type word, length and
 * payload checksum. With gating nothing may be lost; with sleeping consumers
 * no wakeup may be lost; without gating every lost event must be reported.
 *
 * Producer and consumers are t_spawn() roles: processes, or threads under
 * TSan (BUS_TEST_THREADS=1). A role returns 0 when every check passed, else
 * prints one line to stderr and returns non-zero; the test asserts on that.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "t_util.h"

#define MAX_EVENT   4096u
#define NCONS_MAX   4
#define WAIT_NS     2000000000ll       /* one bus_sub_wait() slice */
#define STALL_WAITS 30                 /* slices without an event: a hang */
#define BARRIER_NS  (60ull * 1000000000ull)
#define GATE_NS     (60ll * 1000000000ll)
/* A wait that lasted this long and ends with an event that had been visible
 * for this long slept through its wakeup (bus_sub_wait() looks once more at
 * its deadline, so a lost wakeup shows as a late 1, not only -ETIMEDOUT). */
#define LOST_WAKE_NS 500000000ull
/* Time this thread has spent runnable but not running (ns), from
 * /proc/thread-self/schedstat; 0 where the kernel does not say. A wait that
 * ends late because the machine was too busy to run us is not a lost
 * wakeup. */
static uint64_t run_delay_ns(void)
{
	unsigned long long on_cpu = 0, delay = 0;
	FILE *f = fopen("/proc/thread-self/schedstat", "r");

	if (!f)
		return 0;
	if (fscanf(f, "%llu %llu", &on_cpu, &delay) != 2)
		delay = 0;
	fclose(f);
	return delay;
}

/* When each event became visible, as the producer saw it: the time its
 * publish, publishv or flush returned (indexed by seq % VIS_N). Not the
 * event's timestamp: that is taken at the claim, and a producer descheduled
 * between claim and flush would look like a lost wakeup. */
#define VIS_N        4096u

struct cons_stats {
	_Atomic uint64_t received;  /* events delivered and verified */
	_Atomic uint64_t lost;      /* sum of ev.lost over -ENOBUFS */
	_Atomic uint64_t gaps;      /* -ENOBUFS returns */
	_Atomic uint64_t timeouts;  /* bus_sub_wait() slices that timed out */
	_Atomic uint64_t naps;      /* voluntary sleeps */
};

struct ctl {
	_Atomic uint32_t attached;      /* consumers holding a cursor: the start barrier */
	_Atomic uint32_t producer_done;
	_Atomic uint32_t failed;        /* a role failed: the others stop (ABORTED) */
	_Atomic uint64_t published;
	_Atomic uint64_t flushed;       /* events made visible by bus_pub_flush() */
	struct cons_stats c[NCONS_MAX];
	struct {
		_Atomic uint64_t seq1;  /* seq + 1 of the event this entry is for */
		_Atomic uint64_t ns;    /* CLOCK_REALTIME when it was surely visible */
	} vis[VIS_N];
};

enum read_api { API_NEXT, API_READ };

/* Exit code of a role that stopped because another one failed. */
#define ABORTED 2

struct role {
	const char *topic;
	struct ctl *ctl;
	uint64_t n;          /* events the producer publishes */
	uint64_t seed;
	unsigned ncons;
	unsigned idx;        /* consumer index */
	enum read_api api;
	int gating;          /* consumers gate the producer; a gap is a failure */
	int sleepy;          /* spin 0, consumers nap, the producer pauses */
	int slow;            /* volatile consumers: naps long enough to be lapped */
	pid_t parent;
};

static uint64_t real_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* Producer                                                                 */
/* ------------------------------------------------------------------------ */

/* Events [from, to) are visible now. An entry can only end up with a later
 * time than the truth (overwritten, or read between the two stores), which
 * hides a late wakeup but never invents one. */
static void mark_visible(struct ctl *ctl, uint64_t from, uint64_t to)
{
	uint64_t now = real_now_ns(), s;

	for (s = from; s < to; s++) {
		atomic_store_explicit(&ctl->vis[s % VIS_N].ns, now, memory_order_relaxed);
		/* Pairs with the acquire in visible_at(). */
		atomic_store_explicit(&ctl->vis[s % VIS_N].seq1, s + 1, memory_order_release);
	}
}

/* When the producer had made `seq` visible, or 0 when that is not known. */
static uint64_t visible_at(struct ctl *ctl, uint64_t seq)
{
	uint64_t ns;

	/* Pairs with the release in mark_visible(). */
	if (atomic_load_explicit(&ctl->vis[seq % VIS_N].seq1, memory_order_acquire) != seq + 1)
		return 0;
	ns = atomic_load_explicit(&ctl->vis[seq % VIS_N].ns, memory_order_relaxed);
	return ns;
}

/* One event with sequence number `seq`, through publish or claim/commit. */
static int produce_one(struct bus_pub *pub, const struct role *ro, uint64_t seq,
		       unsigned flags, uint8_t *scratch)
{
	uint32_t len = t_len_for(ro->seed, seq, 1, MAX_EVENT);
	void *buf;
	int r;

	if (bus_pub_next_seq(pub) != seq)
		return t_fail("producer: bus_pub_next_seq() = %llu, expected %llu",
			    (unsigned long long)bus_pub_next_seq(pub), (unsigned long long)seq);
	switch (t_rand() % 3) {
	case 0: /* copy */
		t_fill(scratch, len, ro->seed, seq);
		r = bus_pub_publish(pub, (uint32_t)seq, scratch, len, flags);
		if (r != 0)
			return t_fail("producer: bus_pub_publish(seq %llu, %u B) = %d (%s)",
				    (unsigned long long)seq, len, r, bus_errmsg());
		return 0;
	case 1: /* zero copy, exact length */
		r = bus_pub_claim(pub, len, &buf);
		break;
	default: /* zero copy, claim the maximum and commit less */
		r = bus_pub_claim(pub, MAX_EVENT, &buf);
		break;
	}
	if (r != 0)
		return t_fail("producer: bus_pub_claim(seq %llu) = %d (%s)",
			    (unsigned long long)seq, r, bus_errmsg());
	t_fill(buf, len, ro->seed, seq);
	r = bus_pub_commit(pub, (uint32_t)seq, len, flags);
	if (r != 0)
		return t_fail("producer: bus_pub_commit(seq %llu, %u B) = %d (%s)",
			    (unsigned long long)seq, len, r, bus_errmsg());
	return 0;
}

/* Up to 8 events in one bus_pub_publishv(); scratch holds 8 payloads. */
static int produce_vec(struct bus_pub *pub, const struct role *ro, uint64_t *seq,
		       uint64_t end, uint8_t *scratch)
{
	struct bus_msg m[8];
	unsigned k = 1 + (unsigned)(t_rand() % 8), i;
	int r;

	if (k > end - *seq)
		k = (unsigned)(end - *seq);
	for (i = 0; i < k; i++) {
		uint64_t sq = *seq + i;
		uint32_t len = t_len_for(ro->seed, sq, 1, MAX_EVENT);

		t_fill(scratch + (size_t)i * MAX_EVENT, len, ro->seed, sq);
		m[i] = (struct bus_msg){ scratch + (size_t)i * MAX_EVENT, len, (uint32_t)sq };
	}
	r = bus_pub_publishv(pub, m, k);
	if (r != (int)k)
		return t_fail("producer: bus_pub_publishv(seq %llu, %u events) = %d (%s)",
			    (unsigned long long)*seq, k, r, bus_errmsg());
	*seq += k;
	return 0;
}

static int producer_run(const struct role *ro)
{
	struct ctl *ctl = ro->ctl;
	static _Thread_local uint8_t scratch[8 * MAX_EVENT];  /* produce_vec: 8 payloads */
	struct bus_pub *pub;
	uint64_t seq, end, deadline, flushed = 0;
	int r;

	r = bus_pub_open(ro->topic, &pub);
	if (r != 0)
		return t_fail("producer: bus_pub_open = %d (%s)", r, bus_errmsg());
	/* A gating consumer on an oversubscribed machine may be descheduled for
	 * a while; give up only after a long time, with a diagnosis. */
	bus_pub_set_timeout(pub, GATE_NS);
	deadline = t_now_ns() + BARRIER_NS;
	while (atomic_load(&ctl->attached) < ro->ncons) {
		if (atomic_load(&ctl->failed)) {
			bus_pub_close(pub);
			return ABORTED;
		}
		if (t_now_ns() > deadline) {
			bus_pub_close(pub);
			return t_fail("producer: only %u of %u consumers attached",
				    atomic_load(&ctl->attached), ro->ncons);
		}
		t_nap_us(100);
	}
	seq = bus_pub_next_seq(pub);
	end = seq + ro->n;
	while (seq < end) {
		unsigned how = (unsigned)(t_rand() % 9), k = 1, i;

		if (how == 8) { /* a vector: bus_pub_publishv() */
			uint64_t from = seq;

			r = produce_vec(pub, ro, &seq, end, scratch);
			if (r) {
				bus_pub_close(pub);
				return r;
			}
			mark_visible(ctl, from, seq);
			continue;
		}
		if (how >= 6) /* a batch made visible by one flush */
			k = 1 + (unsigned)(t_rand() % 16);
		if (k > end - seq)
			k = (unsigned)(end - seq);
		for (i = 0; i < k; i++, seq++) {
			r = produce_one(pub, ro, seq, how >= 6 ? BUS_MORE : 0, scratch);
			if (r) {
				bus_pub_close(pub);
				return r;
			}
			if (how < 6)
				mark_visible(ctl, seq, seq + 1);
		}
		if (how >= 6) {
			/* A claim may have published the start of the batch
			 * (to make room); the flush publishes the rest, at
			 * least the last event. */
			r = bus_pub_flush(pub);
			if (r < 1 || (unsigned)r > k) {
				bus_pub_close(pub);
				return t_fail("producer: bus_pub_flush() = %d after a batch of %u", r, k);
			}
			flushed += (uint64_t)r;
			mark_visible(ctl, seq - k, seq);
		}
		if (ro->sleepy && t_rand() % 2048 == 0)
			t_nap_us(t_rand() % 2000); /* let the consumers fall asleep */
		if (atomic_load_explicit(&ctl->failed, memory_order_relaxed)) {
			bus_pub_close(pub);
			return ABORTED;
		}
	}
	atomic_store(&ctl->published, seq - (end - ro->n));
	atomic_store(&ctl->flushed, flushed);
	atomic_store(&ctl->producer_done, 1);
	bus_pub_close(pub);
	return 0;
}

static int producer(void *arg)
{
	const struct role *ro = arg;
	int r;

	r = producer_run(ro);
	if (r)
		atomic_store(&ro->ctl->failed, 1);
	return r;
}

/* ------------------------------------------------------------------------ */
/* Consumer                                                                 */
/* ------------------------------------------------------------------------ */

/* Checks one delivered event. 0 if it is exactly what the producer wrote,
 * else 1 with the reason in why (printed only once the event is confirmed:
 * a view the producer overwrote may hold anything). */
static int verify(const struct role *ro, const struct bus_event *ev, uint64_t expected,
		  char *why, size_t whylen)
{
	uint32_t len;

	if (ev->seq != expected) {
		snprintf(why, whylen, "got seq %llu, expected %llu",
			 (unsigned long long)ev->seq, (unsigned long long)expected);
		return 1;
	}
	len = t_len_for(ro->seed, ev->seq, 1, MAX_EVENT);
	if (ev->len != len) {
		snprintf(why, whylen, "seq %llu has %u bytes, expected %u",
			 (unsigned long long)ev->seq, ev->len, len);
		return 1;
	}
	if (ev->type != (uint32_t)ev->seq) {
		snprintf(why, whylen, "seq %llu has type %u, expected %u",
			 (unsigned long long)ev->seq, ev->type, (uint32_t)ev->seq);
		return 1;
	}
	if (t_check(ev->data, ev->len, ro->seed, ev->seq)) {
		snprintf(why, whylen, "seq %llu (%u bytes): payload checksum mismatch",
			 (unsigned long long)ev->seq, ev->len);
		return 1;
	}
	return 0;
}

static int consumer_loop(const struct role *ro, struct bus_sub *sub, uint64_t first)
{
	struct cons_stats *st = &ro->ctl->c[ro->idx];
	static _Thread_local uint8_t buf[MAX_EVENT];
	uint64_t expected = first, end = first + ro->n;
	uint64_t received = 0, lost = 0, gaps = 0, timeouts = 0, naps = 0, w0, vis, rd0;
	uint64_t slept_until = 0;   /* realtime at the end of the last long wait, 0 if none */
	uint64_t queued = 0;        /* of that wait, how long we were runnable, not running */
	int idle = 0, want_gap = 0, r;
	struct bus_event ev;

	while (expected < end) {
		if (ro->api == API_READ)
			r = bus_sub_read(sub, buf, sizeof(buf), &ev);
		else
			r = bus_sub_next(sub, &ev);

		if (r == 1) {
			char why[160];
			int bad = verify(ro, &ev, expected, why, sizeof(why));

			if (want_gap)
				return t_fail("consumer %u: bus_sub_confirm() said seq %llu was "
					    "overwritten, then bus_sub_next() returned it",
					    ro->idx, (unsigned long long)ev.seq);
			if (ro->api == API_NEXT) {
				int c = bus_sub_confirm(sub, &ev);

				if (c == -ENOBUFS && !ro->gating) {
					/* Overwritten while we checked it: whatever we
					 * saw does not count; the gap comes next. */
					want_gap = 1;
					continue;
				}
				if (c != 0)
					return t_fail("consumer %u: bus_sub_confirm(seq %llu) = %d%s",
						    ro->idx, (unsigned long long)ev.seq, c,
						    ro->gating ? " on a gating consumer" : "");
			}
			if (bad)
				return t_fail("consumer %u: %s", ro->idx, why);
			vis = slept_until ? visible_at(ro->ctl, ev.seq) : 0;
			if (vis && vis + LOST_WAKE_NS + queued < slept_until)
				return t_fail("consumer %u: lost wakeup: seq %llu was visible %llu ms "
					    "before bus_sub_wait() returned (%llu ms of it waiting "
					    "for a CPU)", ro->idx, (unsigned long long)ev.seq,
					    (unsigned long long)((slept_until - vis) / 1000000),
					    (unsigned long long)(queued / 1000000));
			slept_until = 0;
			idle = 0;
			expected++;
			received++;
			if (ro->sleepy && t_rand() % 4096 == 0) {
				t_nap_us(t_rand() % 2000);
				naps++;
			}
			if (ro->slow && t_rand() % 1024 == 0) {
				t_nap_us(1000 + t_rand() % 4000);
				naps++;
			}
		} else if (r == 0) {
			if (want_gap)
				return t_fail("consumer %u: bus_sub_confirm() rewound to seq %llu, "
					    "then bus_sub_next() found nothing", ro->idx,
					    (unsigned long long)expected);
			if (atomic_load(&ro->ctl->failed))
				return ABORTED;
			rd0 = run_delay_ns();
			w0 = t_now_ns();
			r = bus_sub_wait(sub, WAIT_NS);
			if (t_now_ns() - w0 >= LOST_WAKE_NS) {
				slept_until = real_now_ns();
				queued = run_delay_ns() - rd0;
			}
			if (r == -ETIMEDOUT) {
				timeouts++;
				if (++idle >= STALL_WAITS)
					return t_fail("consumer %u: no event for %d s, waiting for seq "
						    "%llu of %llu..%llu", ro->idx, STALL_WAITS,
						    (unsigned long long)expected,
						    (unsigned long long)first,
						    (unsigned long long)(end - 1));
			} else if (r != 1 && r != -EINTR) {
				return t_fail("consumer %u: bus_sub_wait() = %d", ro->idx, r);
			}
		} else if (r == -ENOBUFS && !ro->gating) {
			if (ev.seq != expected || ev.lost == 0 || ev.lost > end - expected)
				return t_fail("consumer %u: gap of %llu from seq %llu, expected it "
					    "to start at %llu (before %llu)", ro->idx,
					    (unsigned long long)ev.lost, (unsigned long long)ev.seq,
					    (unsigned long long)expected, (unsigned long long)end);
			want_gap = 0;
			idle = 0;
			expected += ev.lost;
			lost += ev.lost;
			gaps++;
		} else {
			return t_fail("consumer %u: %s at seq %llu returned %d (%s)%s", ro->idx,
				    ro->api == API_READ ? "bus_sub_read" : "bus_sub_next",
				    (unsigned long long)expected, r, bus_errmsg(),
				    r == -ENOBUFS ? ": a gating consumer was lapped" : "");
		}
	}
	atomic_store(&st->received, received);
	atomic_store(&st->lost, lost);
	atomic_store(&st->gaps, gaps);
	atomic_store(&st->timeouts, timeouts);
	atomic_store(&st->naps, naps);

	/* Nothing beyond the last event: wait for the producer to be done,
	 * then the ring must be empty for us. */
	for (idle = 0; !atomic_load(&ro->ctl->producer_done); idle++) {
		if (atomic_load(&ro->ctl->failed))
			return ABORTED;
		if (idle > 60000)
			return t_fail("consumer %u: producer not done 60 s after the last event",
				    ro->idx);
		t_nap_us(1000);
	}
	r = bus_sub_next(sub, &ev);
	if (r != 0)
		return t_fail("consumer %u: bus_sub_next() after the last event = %d (seq %llu)",
			    ro->idx, r, (unsigned long long)ev.seq);
	return 0;
}

static int consumer(void *arg)
{
	const struct role *ro = arg;
	struct bus_sub_opts o = {
		.from = BUS_FROM_OLDEST,
		.flags = ro->gating ? BUS_SUB_GATING : 0,
	};
	struct bus_sub *sub;
	uint64_t first;
	int r;

	r = bus_sub_open(ro->topic, &o, &sub);
	if (r != 0)
		return t_fail("consumer %u: bus_sub_open = %d (%s)", ro->idx, r, bus_errmsg());
	first = bus_sub_next_seq(sub);
	if (first != 1) {
		bus_sub_close(sub);
		return t_fail("consumer %u: attached before the first event at seq %llu, not 1",
			    ro->idx, (unsigned long long)first);
	}
	if (ro->sleepy)
		bus_sub_set_spin(sub, 0); /* straight to the futex */
	atomic_fetch_add(&ro->ctl->attached, 1);
	r = consumer_loop(ro, sub, first);
	if (r)
		atomic_store(&ro->ctl->failed, 1);
	bus_sub_close(sub);
	return r;
}

/* ------------------------------------------------------------------------ */
/* Runs                                                                     */
/* ------------------------------------------------------------------------ */

struct run {
	uint64_t ring;
	uint64_t n;
	unsigned ncons;
	int gating, sleepy, slow;
};

/* Create the topic, start the consumers, then the producer; join all. */
static struct ctl *run_roles(const char *topic, const struct run *rn, struct role *roles)
{
	struct bus_topic_opts o = {
		.ring_size = rn->ring,
		.max_event = MAX_EVENT,
		.flags = rn->gating ? BUS_TOPIC_GATING : 0,
	};
	struct ctl *ctl = t_shared(sizeof(*ctl));
	struct t_proc procs[NCONS_MAX + 1];
	int rc[NCONS_MAX + 1], worst = 0;
	uint64_t seed = t_rand();
	unsigned i;

	cr_assert_eq(bus_topic_create(topic, &o), 0, "bus_topic_create: %s", bus_errmsg());
	for (i = 0; i <= rn->ncons; i++) {
		roles[i] = (struct role){
			.topic = topic, .ctl = ctl, .n = rn->n, .seed = seed,
			.ncons = rn->ncons, .idx = i,
			/* Half the consumers zero copy, half copy. */
			.api = i % 2 ? API_READ : API_NEXT,
			.gating = rn->gating, .sleepy = rn->sleepy, .slow = rn->slow,
			.parent = getpid(),
		};
	}
	/* Consumers first; the producer waits until all hold a cursor. */
	for (i = 0; i < rn->ncons; i++)
		t_spawn(&procs[i], consumer, &roles[i]);
	t_spawn(&procs[rn->ncons], producer, &roles[rn->ncons]);
	/* All of them, then the verdict: the role that failed, not one that
	 * stopped because of it (ABORTED). */
	for (i = 0; i <= rn->ncons; i++) {
		rc[i] = t_join(&procs[i]);
		if (rc[i] && (worst == 0 || rc[worst - 1] == ABORTED))
			worst = (int)i + 1;
	}
	if (worst) {
		i = (unsigned)worst - 1;
		cr_assert_fail("%s %u exited with %d (its diagnosis is on stderr)",
			       i < rn->ncons ? "consumer" : "producer", i, rc[i]);
	}
	cr_assert_eq(atomic_load(&ctl->published), rn->n);
	return ctl;
}

TestSuite(stress, .init = t_init, .fini = t_fini, .timeout = 300);

Test(stress, one_producer_four_gating_consumers_see_every_event_in_order)
{
	struct run rn = {
		.ring = 1ull << 20, .n = t_scaled(10000000, 20000), .ncons = 4, .gating = 1,
	};
	struct role roles[NCONS_MAX + 1];
	const char *topic = t_topic("gated");
	struct ctl *ctl = run_roles(topic, &rn, roles);
	struct bus_topic_info info;
	unsigned i;

	for (i = 0; i < rn.ncons; i++) {
		cr_expect_eq(atomic_load(&ctl->c[i].received), rn.n, "consumer %u", i);
		cr_expect_eq(atomic_load(&ctl->c[i].gaps), 0, "consumer %u", i);
	}
	cr_assert_eq(bus_topic_stat(topic, &info, NULL, 0), 0);
	cr_assert_eq(info.next_seq, 1 + rn.n);
	cr_assert_eq(info.events, rn.n);
	cr_log_info("gated: %llu events x %u consumers, producer waited %llu times, "
		    "%llu batch events flushed", (unsigned long long)rn.n, rn.ncons,
		    (unsigned long long)info.producer_waits,
		    (unsigned long long)atomic_load(&ctl->flushed));
}

Test(stress, sleeping_consumers_and_pausing_producer_lose_no_wakeup)
{
	struct run rn = {
		.ring = 1ull << 20, .n = t_scaled(2000000, 20000), .ncons = 4, .gating = 1,
		.sleepy = 1,
	};
	struct role roles[NCONS_MAX + 1];
	const char *topic = t_topic("sleepy");
	struct ctl *ctl = run_roles(topic, &rn, roles);
	struct bus_topic_info info;
	uint64_t naps = 0, timeouts = 0;
	unsigned i;

	for (i = 0; i < rn.ncons; i++) {
		cr_expect_eq(atomic_load(&ctl->c[i].received), rn.n, "consumer %u", i);
		naps += atomic_load(&ctl->c[i].naps);
		timeouts += atomic_load(&ctl->c[i].timeouts);
	}
	cr_assert_eq(bus_topic_stat(topic, &info, NULL, 0), 0);
	cr_assert_gt(info.wakeups, 0, "the producer never woke a sleeping consumer");
	cr_log_info("sleepy: %llu events, %llu wakeups, %llu producer waits, "
		    "%llu consumer naps, %llu wait timeouts", (unsigned long long)rn.n,
		    (unsigned long long)info.wakeups, (unsigned long long)info.producer_waits,
		    (unsigned long long)naps, (unsigned long long)timeouts);
}

Test(stress, lapped_volatile_consumers_account_for_every_event)
{
#ifdef __SANITIZE_THREAD__
	cr_skip_test("a consumer is lapped on purpose here: its seqlock reads race with the "
		     "producer by design (docs/ARCHITECTURE.md) and TSan reports that; the "
		     "plain and ASan builds run this test");
#endif
	struct run rn = {
		.ring = 256ull << 10, .n = t_scaled(3000000, 20000), .ncons = 2, .slow = 1,
	};
	struct role roles[NCONS_MAX + 1];
	const char *topic = t_topic("volatile");
	struct ctl *ctl = run_roles(topic, &rn, roles);
	uint64_t gaps = 0;
	unsigned i;

	for (i = 0; i < rn.ncons; i++) {
		uint64_t got = atomic_load(&ctl->c[i].received), lost = atomic_load(&ctl->c[i].lost);

		cr_expect_eq(got + lost, rn.n, "consumer %u: %llu received + %llu lost != %llu",
			     i, (unsigned long long)got, (unsigned long long)lost,
			     (unsigned long long)rn.n);
		gaps += atomic_load(&ctl->c[i].gaps);
		cr_log_info("volatile consumer %u: %llu received, %llu lost in %llu gaps", i,
			    (unsigned long long)got, (unsigned long long)lost,
			    (unsigned long long)atomic_load(&ctl->c[i].gaps));
	}
	cr_assert_gt(gaps, 0, "no consumer was lapped: the run tested no gap accounting");
}
