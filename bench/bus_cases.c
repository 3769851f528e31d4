/* SPDX-License-Identifier: MIT */
/*
 * bus_cases.c — the bus side of every measurement: throughput (gated,
 * sleeping, non-gated, batched), one-way latency, the producer's cost with
 * nobody listening, and the consumer's own cost per event.
 *
 * Each case creates its own topic "bus-bench-<pid>-<case>" in /dev/shm from
 * the parent, forks the consumer (which opens its cursor and then raises
 * the shared ready flag) and the producer (which waits for the flag), and
 * removes the topic when both are gone, whatever happened.
 */
#include <stdio.h>
#include <stdlib.h>

#include <bus.h>

#include "bench.h"

#define TYPE_DATA 1u
#define RING_SMALL (4ull << 20)   /* 64 B and 1 KiB events */
#define RING_LARGE (16ull << 20)  /* 16 KiB events: 1024 of them */
#define MAX_EVENT  65536u
#define WAIT_NS    (100 * 1000000ll)  /* a sleeping consumer's wait slice */
#define BATCH      64u

struct lat_shm;

struct bus_arg {
	char name[96];
	size_t size;
	int kind;                 /* enum tp_kind, lat_kind or prod_kind */
	struct tp_shared *sh;     /* throughput */
	struct lat_shm *lat;      /* latency: samples and result */
	struct prod_result *prod; /* producer cost */
	uint64_t lat_warm, lat_n; /* latency: events discarded, events timed */
};

static const char *err_str(int rc)
{
	return strerror(rc < 0 ? -rc : rc);
}

/* Create a topic for one run, registered for cleanup first. */
static int topic_make(struct bus_arg *a, const char *tag, uint64_t ring, int gated)
{
	struct bus_topic_opts o = {
		.ring_size = ring,
		.max_event = MAX_EVENT,
		.flags = gated ? BUS_TOPIC_GATING : 0,
	};
	int rc;

	bench_name(a->name, sizeof(a->name), tag);
	cleanup_add_topic(a->name);
	rc = bus_topic_create(a->name, &o);
	if (rc) {
		child_fail("bus_topic_create(%s): %s (%s)", a->name, err_str(rc),
			   bus_errmsg());
		cleanup_done_topic(a->name);
	}
	return rc;
}

/* Read the topic's counters, then remove it. */
static void topic_drop(struct bus_arg *a, struct bus_topic_info *info)
{
	int rc;

	memset(info, 0, sizeof(*info));
	rc = bus_topic_stat(a->name, info, NULL, 0);
	if (rc < 0)
		child_fail("bus_topic_stat(%s): %s (%s)", a->name, err_str(rc),
			   bus_errmsg());
	rc = bus_topic_remove(a->name);
	if (rc)
		child_fail("bus_topic_remove(%s): %s (%s)", a->name, err_str(rc),
			   bus_errmsg());
	cleanup_done_topic(a->name);
}

/* Publish, retrying while a gating consumer has not made room (-EAGAIN
 * after the producer's 1 s timeout): a gated run must lose nothing. */
static int publish(struct bus_pub *pub, struct tp_shared *sh, uint32_t type,
		   const void *msg, size_t len, unsigned flags)
{
	for (;;) {
		int rc = bus_pub_publish(pub, type, msg, len, flags);

		if (rc >= 0)
			return 0;
		if (rc != -EAGAIN || !sh)
			return child_fail("bus_pub_publish: %s (%s)", err_str(rc),
					  bus_errmsg());
		sh->eagain++;
	}
}

static int open_pub(struct bus_arg *a, struct bus_pub **pub)
{
	int rc = bus_pub_open(a->name, pub);

	if (rc)
		return child_fail("bus_pub_open(%s): %s (%s)", a->name, err_str(rc),
				  bus_errmsg());
	return 0;
}

static int open_sub(struct bus_arg *a, int gated, struct bus_sub **sub)
{
	struct bus_sub_opts o = {
		.from = BUS_FROM_OLDEST,
		.flags = gated ? BUS_SUB_GATING : 0,
	};
	int rc = bus_sub_open(a->name, &o, sub);

	if (rc)
		return child_fail("bus_sub_open(%s): %s (%s)", a->name, err_str(rc),
				  bus_errmsg());
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Throughput                                                               */
/* ------------------------------------------------------------------------ */

static int tp_prod(void *varg)
{
	struct bus_arg *a = varg;
	struct tp_shared *sh = a->sh;
	uint64_t msg[MSG_MAX / 8], seq = 0;
	struct bus_pub *pub;
	struct tp_clock clk;
	int batch = a->kind == TP_BUS_BATCH;

	if (open_pub(a, &pub))
		return -1;
	memcpy(msg, pattern, a->size);
	if (wait_flag(&sh->ready, 10))
		return child_fail("bus producer: consumer never got ready");
	tp_clock_start(&clk);
	do {
		for (unsigned i = 0; i < TP_CHECK; i++) {
			msg[0] = seq++;
			if (publish(pub, sh, TYPE_DATA, msg, a->size,
				    batch ? BUS_MORE : 0))
				goto fail;
		}
		if (batch) {
			/* TP_CHECK == BATCH: one release store per 64 events */
			int rc = bus_pub_flush(pub);

			if (rc < 0) {
				child_fail("bus_pub_flush: %s", err_str(rc));
				goto fail;
			}
		}
	} while (tp_clock_tick(&clk, sh, seq));
	sh->sent = seq;
	if (publish(pub, sh, END_TYPE, msg, a->size, 0))
		goto fail;
	bus_pub_close(pub);
	return 0;
fail:
	bus_pub_close(pub);
	return -1;
}

static int tp_cons(void *varg)
{
	struct bus_arg *a = varg;
	struct tp_shared *sh = a->sh;
	int gated = a->kind != TP_BUS_FREE, sleeping = a->kind == TP_BUS_SLEEP;
	uint64_t tailx = pattern_tail_xor(a->size), bus_expect = 1;
	struct verify v = { 0 };
	struct bus_event ev;
	struct bus_sub *sub;
	int rc;

	if (open_sub(a, gated, &sub))
		return -1;
	atomic_store_explicit(&sh->ready, 1, memory_order_release);
	for (;;) {
		rc = bus_sub_next(sub, &ev);
		if (rc == 1) {
			uint64_t x, w0, w1;

			if (ev.seq != bus_expect)
				sh->bus_seq_err++;
			if (ev.type == END_TYPE) {
				sh->t_end_ns = now_ns();
				break;
			}
			if (ev.type != TYPE_DATA || ev.len != a->size) {
				child_fail("event seq %llu: type %#x len %u, expected %#x len %zu",
					   (unsigned long long)ev.seq, ev.type, ev.len,
					   TYPE_DATA, a->size);
				goto fail;
			}
			x = payload_xor(ev.data, a->size);
			w0 = load64(ev.data);
			w1 = load64((const char *)ev.data + 8);
			/* Non-gated: the producer may have overwritten the view
			 * while we read it; then the next bus_sub_next() reports
			 * the gap from ev.seq, so this event is not counted. */
			if (!gated && bus_sub_confirm(sub, &ev)) {
				sh->confirm_fail++;
				bus_expect = ev.seq;
				continue;
			}
			bus_expect = ev.seq + 1;
			verify_account(&v, w0, w1, x, a->size, tailx);
		} else if (rc == 0) {
			if (!sleeping) {
				cpu_relax();
				continue;
			}
			rc = bus_sub_wait(sub, WAIT_NS);
			if (rc == -ETIMEDOUT)
				sh->wait_timeouts++;
			else if (rc < 0 && rc != -EINTR) {
				child_fail("bus_sub_wait: %s", err_str(rc));
				goto fail;
			}
		} else if (rc == -ENOBUFS) {
			if (ev.seq != bus_expect)
				sh->bus_seq_err++;
			sh->bus_lost += ev.lost;
			bus_expect = ev.seq + ev.lost;
		} else {
			child_fail("bus_sub_next: %s (%s)", err_str(rc), bus_errmsg());
			goto fail;
		}
	}
	sh->v = v;
	bus_sub_close(sub);
	return 0;
fail:
	sh->v = v;
	bus_sub_close(sub);
	return -1;
}

int bus_tp(enum tp_kind kind, size_t size, struct tp_run *r)
{
	static const char *tags[] = {
		[TP_BUS_BUSY] = "busy", [TP_BUS_SLEEP] = "sleep",
		[TP_BUS_FREE] = "free", [TP_BUS_BATCH] = "batch",
	};
	struct bus_arg a = { .size = size, .kind = kind };
	struct bus_topic_info info;
	int gated = kind != TP_BUS_FREE, rc;
	char tag[32];

	memset(r, 0, sizeof(*r));
	snprintf(tag, sizeof(tag), "tp-%s-%zu", tags[kind], size);
	if (topic_make(&a, tag, size >= 16384 ? RING_LARGE : RING_SMALL, gated))
		return -EIO;
	a.sh = shm_map(sizeof(*a.sh));
	rc = run_pair(tp_cons, tp_prod, &a, cfg.warm_s + cfg.tp_s + 20);
	topic_drop(&a, &info);
	if (!rc)
		rc = tp_finish(a.sh, size, gated, r);
	r->wakeups = info.wakeups;
	r->producer_waits = info.producer_waits;
	if (!rc && info.events != a.sh->sent + 1) {
		child_fail("topic counted %llu events, producer published %llu",
			   (unsigned long long)info.events,
			   (unsigned long long)a.sh->sent + 1);
		rc = -EIO;
	}
	shm_unmap(a.sh, sizeof(*a.sh));
	return rc;
}

/* ------------------------------------------------------------------------ */
/* One-way latency                                                          */
/* ------------------------------------------------------------------------ */

/*
 * The producer publishes 64-byte events at cfg.lat_rate, pacing itself by
 * busy-waiting on the TSC; w[1] of each payload is the TSC read right
 * before bus_pub_publish(). The consumer reads the TSC (rdtscp) as soon as
 * bus_sub_next() returns the event: latency = its stamp - the producer's.
 * The first cfg.lat_warm_s worth of events are not sampled.
 */
struct lat_shm {
	_Atomic uint32_t ready;
	struct lat_result res;
	int64_t samples[];
};

static int lat_prod(void *varg)
{
	struct bus_arg *a = varg;
	struct lat_shm *ls = a->lat;
	uint64_t msg[8], period = ns_to_ticks(1e9 / cfg.lat_rate), next;
	uint64_t total = a->lat_warm + a->lat_n;
	struct bus_pub *pub;

	if (open_pub(a, &pub))
		return -1;
	memcpy(msg, pattern, sizeof(msg));
	if (wait_flag(&ls->ready, 10))
		return child_fail("bus latency producer: consumer never got ready");
	next = tsc() + period;
	for (uint64_t seq = 0; seq < total; seq++) {
		while (tsc() < next)
			cpu_relax();
		next += period;
		msg[0] = seq;
		msg[1] = tsc();
		if (publish(pub, NULL, TYPE_DATA, msg, sizeof(msg), 0))
			goto fail;
	}
	if (publish(pub, NULL, END_TYPE, msg, sizeof(msg), 0))
		goto fail;
	bus_pub_close(pub);
	return 0;
fail:
	bus_pub_close(pub);
	return -1;
}

static int lat_cons(void *varg)
{
	struct bus_arg *a = varg;
	struct lat_shm *ls = a->lat;
	uint64_t tailx = pattern_tail_xor(64), n = 0;
	struct verify v = { 0 };
	struct bus_event ev;
	struct bus_sub *sub;
	int busy = a->kind == LAT_BUS_BUSY, rc;

	if (open_sub(a, 0, &sub))
		return -1;
	if (a->kind == LAT_BUS_SLEEP0)
		bus_sub_set_spin(sub, 0);
	atomic_store_explicit(&ls->ready, 1, memory_order_release);
	for (;;) {
		rc = bus_sub_next(sub, &ev);
		if (rc == 1) {
			uint64_t t = tscp(), x, w0, w1;

			if (ev.type == END_TYPE)
				break;
			if (ev.len != 64) {
				child_fail("latency event of %u bytes", ev.len);
				goto fail;
			}
			x = payload_xor(ev.data, 64);
			w0 = load64(ev.data);
			w1 = load64((const char *)ev.data + 8);
			if (bus_sub_confirm(sub, &ev))
				continue;   /* reported as a gap by the next call */
			verify_account(&v, w0, w1, x, 64, tailx);
			if (w0 >= a->lat_warm && n < a->lat_n)
				ls->samples[n++] = (int64_t)(t - w1);
		} else if (rc == 0) {
			if (busy) {
				cpu_relax();
				continue;
			}
			rc = bus_sub_wait(sub, WAIT_NS);
			if (rc < 0 && rc != -ETIMEDOUT && rc != -EINTR) {
				child_fail("bus_sub_wait: %s", err_str(rc));
				goto fail;
			}
		} else if (rc == -ENOBUFS) {
			ls->res.lost += ev.lost;
		} else {
			child_fail("bus_sub_next: %s (%s)", err_str(rc), bus_errmsg());
			goto fail;
		}
	}
	bus_sub_close(sub);
	lat_stats_ticks(ls->samples, n, &ls->res.st);
	ls->res.events = v.events;
	ls->res.garbled = v.garbled;
	if (v.lost > ls->res.lost)
		ls->res.lost = v.lost;  /* a silent loss would show here */
	return 0;
fail:
	bus_sub_close(sub);
	return -1;
}

int bus_lat(enum lat_kind kind, struct lat_result *r)
{
	static const char *tags[] = {
		[LAT_BUS_BUSY] = "lat-busy", [LAT_BUS_SLEEP0] = "lat-sleep0",
		[LAT_BUS_SLEEP] = "lat-sleep",
	};
	struct bus_arg a = { .size = 64, .kind = kind };
	struct bus_topic_info info;
	struct lat_shm *ls;
	size_t len;
	int rc;

	memset(r, 0, sizeof(*r));
	a.lat_warm = (uint64_t)(cfg.lat_warm_s * cfg.lat_rate);
	a.lat_n = (uint64_t)(cfg.lat_s * cfg.lat_rate);
	if (topic_make(&a, tags[kind], RING_SMALL, 0))
		return -EIO;
	len = sizeof(*ls) + sizeof(int64_t) * a.lat_n;
	ls = shm_map(len);
	a.lat = ls;
	rc = run_pair(lat_cons, lat_prod, &a, cfg.lat_warm_s + cfg.lat_s + 20);
	topic_drop(&a, &info);
	*r = ls->res;
	r->wakeups = info.wakeups;
	if (!rc && (r->garbled || r->events != a.lat_warm + a.lat_n)) {
		child_fail("latency run: %llu of %llu events, %llu garbled, %llu lost",
			   (unsigned long long)r->events,
			   (unsigned long long)(a.lat_warm + a.lat_n),
			   (unsigned long long)r->garbled,
			   (unsigned long long)r->lost);
		rc = -EIO;
	}
	shm_unmap(ls, len);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Producer cost, nobody listening                                          */
/* ------------------------------------------------------------------------ */

static int prod_run(void *varg)
{
	struct bus_arg *a = varg;
	struct prod_result *pr = a->prod;
	uint64_t msg[8], n = 0, t0 = 0, n0 = 0, t;
	static uint64_t vmsg[BATCH][8];
	struct bus_msg vec[BATCH];
	uint64_t warm_end = now_ns() + (uint64_t)(cfg.warm_s * 1e9), end = 0;
	struct bus_pub *pub;
	int rc = 0;

	if (open_pub(a, &pub))
		return -1;
	memcpy(msg, pattern, sizeof(msg));
	for (;;) {
		/* 16 batches of 64 between clock reads: the clock costs
		 * ~20 ns, 0.02 ns per event here. */
		for (unsigned b = 0; b < 16; b++) {
			switch (a->kind) {
			case PROD_SINGLE:
			case PROD_SINGLE_BIG:
				for (unsigned i = 0; i < BATCH; i++) {
					msg[0] = n++;
					rc = bus_pub_publish(pub, TYPE_DATA, msg, 64, 0);
					if (rc < 0)
						goto fail;
				}
				break;
			case PROD_VEC:
				for (unsigned i = 0; i < BATCH; i++) {
					memcpy(vmsg[i], pattern, sizeof(vmsg[i]));
					vmsg[i][0] = n++;
					vec[i] = (struct bus_msg){ vmsg[i], 64, TYPE_DATA };
				}
				rc = bus_pub_publishv(pub, vec, BATCH);
				if (rc < 0)
					goto fail;
				break;
			case PROD_BATCH:
				for (unsigned i = 0; i < BATCH; i++) {
					msg[0] = n++;
					rc = bus_pub_publish(pub, TYPE_DATA, msg, 64, BUS_MORE);
					if (rc < 0)
						goto fail;
				}
				rc = bus_pub_flush(pub);
				if (rc < 0)
					goto fail;
				break;
			default:
				for (unsigned i = 0; i < BATCH; i++) {
					void *buf;

					rc = bus_pub_claim(pub, 64, &buf);
					if (rc < 0)
						goto fail;
					msg[0] = n++;
					memcpy(buf, msg, 64);
					rc = bus_pub_commit(pub, TYPE_DATA, 64, BUS_MORE);
					if (rc < 0)
						goto fail;
				}
				rc = bus_pub_flush(pub);
				if (rc < 0)
					goto fail;
				break;
			}
		}
		t = now_ns();
		if (!t0) {
			if (t >= warm_end) {
				t0 = t;
				n0 = n;
				end = t + (uint64_t)(cfg.prod_s * 1e9);
			}
		} else if (t >= end) {
			break;
		}
	}
	pr->events = n - n0;
	pr->ns_per_event = (double)(t - t0) / (double)(n - n0);
	bus_pub_close(pub);
	return 0;
fail:
	child_fail("producer cost: %s (%s)", err_str(rc), bus_errmsg());
	bus_pub_close(pub);
	return -1;
}

int bus_prod(enum prod_kind kind, struct prod_result *r)
{
	static const char *tags[] = {
		[PROD_SINGLE] = "prod-single", [PROD_BATCH] = "prod-batch",
		[PROD_CLAIM] = "prod-claim", [PROD_SINGLE_BIG] = "prod-single-4m",
		[PROD_VEC] = "prod-vec",
	};
	struct bus_arg a = { .size = 64, .kind = kind };
	struct bus_topic_info info;
	int rc;

	memset(r, 0, sizeof(*r));
	/* The library's default ring (1 MiB): what a producer gets unless it
	 * asks; PROD_SINGLE_BIG shows the cost on the 4 MiB ring. */
	if (topic_make(&a, tags[kind], kind == PROD_SINGLE_BIG ? RING_SMALL : 0, 0))
		return -EIO;
	a.prod = shm_map(sizeof(*a.prod));
	rc = run_pair(NULL, prod_run, &a, cfg.warm_s + cfg.prod_s + 20);
	topic_drop(&a, &info);
	*r = *a.prod;
	/* Total wake calls over the whole run (warm-up included): with nobody
	 * asleep there must be none. */
	r->wakeups = info.wakeups;
	shm_unmap(a.prod, sizeof(*a.prod));
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Consumer cost, same core                                                 */
/* ------------------------------------------------------------------------ */

#define CC_ROUND 4096u   /* events per fill: ~320 KiB of records, in L2 */

static int cons_cost_run(void *varg)
{
	struct bus_arg *a = varg;
	struct prod_result *pr = a->prod;
	uint64_t msg[8], seq = 0, ticks = 0, n = 0, tailx = pattern_tail_xor(64);
	uint64_t end = 0, warm_end = now_ns() + (uint64_t)(cfg.warm_s * 1e9);
	struct verify v = { 0 };
	struct bus_event ev;
	struct bus_pub *pub;
	struct bus_sub *sub;
	int rc = 0;

	if (open_pub(a, &pub))
		return -1;
	if (open_sub(a, 0, &sub)) {
		bus_pub_close(pub);
		return -1;
	}
	memcpy(msg, pattern, sizeof(msg));
	for (;;) {
		uint64_t t0, t1;

		for (unsigned i = 0; i < CC_ROUND; i++) {
			msg[0] = seq++;
			rc = bus_pub_publish(pub, TYPE_DATA, msg, 64, i + 1 < CC_ROUND ? BUS_MORE : 0);
			if (rc < 0)
				goto fail;
		}
		t0 = tsc();
		for (unsigned i = 0; i < CC_ROUND; i++) {
			rc = bus_sub_next(sub, &ev);
			if (rc != 1) {
				rc = rc < 0 ? rc : -EAGAIN;
				goto fail;
			}
			verify_msg(&v, ev.data, ev.len, tailx);
		}
		t1 = tscp();
		if (!end) {
			if (now_ns() >= warm_end)
				end = now_ns() + (uint64_t)(cfg.prod_s * 1e9);
			continue;
		}
		ticks += t1 - t0;
		n += CC_ROUND;
		if (now_ns() >= end)
			break;
	}
	bus_sub_close(sub);
	bus_pub_close(pub);
	if (v.lost || v.garbled)
		return child_fail("consumer cost: %llu lost, %llu garbled",
				  (unsigned long long)v.lost, (unsigned long long)v.garbled);
	pr->events = n;
	pr->ns_per_event = ticks_to_ns((int64_t)ticks) / (double)n;
	return 0;
fail:
	child_fail("consumer cost: %s (%s)", err_str(rc), bus_errmsg());
	bus_sub_close(sub);
	bus_pub_close(pub);
	return -1;
}

int bus_cons_cost(double *ns_per_event)
{
	struct bus_arg a = { .size = 64 };
	struct bus_topic_info info;
	int rc;

	*ns_per_event = 0;
	if (topic_make(&a, "cons-cost", RING_SMALL, 0))
		return -EIO;
	a.prod = shm_map(sizeof(*a.prod));
	rc = run_pair(NULL, cons_cost_run, &a, cfg.warm_s + cfg.prod_s + 20);
	topic_drop(&a, &info);
	*ns_per_event = a.prod->ns_per_event;
	shm_unmap(a.prod, sizeof(*a.prod));
	return rc;
}
