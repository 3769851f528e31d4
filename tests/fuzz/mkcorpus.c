/* SPDX-License-Identifier: MIT */
/*
 * mkcorpus.c — writes the seed corpora of the fuzz targets (`make
 * fuzz-corpus`; the result is committed under tests/fuzz/corpus/).
 *
 * The log and segment seeds come from a real busd: it runs on a private
 * directory (tests/t_busd.c), a volatile, a gating, an empty and a durable
 * topic get events, and their segment files and the durable topic's log are
 * copied out. busd rolls log segments at 1 MiB at the least, too big for a
 * seed, so the multi-segment seeds are cut from the real log at chunk
 * boundaries: the chunks are busd's bytes, only the file headers and index
 * entries around them are written here (with libbus's own helpers). The
 * protocol seeds are the requests libbus sends, one per operation; the CLI
 * seeds the examples of the documentation.
 *
 *   mkcorpus DIR     writes DIR/{proto,log,seg,cli}/seed-*
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "layout.h"
#include "log.h"
#include "proto.h"
#include "t_busd.h"
#include "t_log.h"
#include "t_util.h"

static const char *out;
static int failed;

static void die(const char *what)
{
	fprintf(stderr, "mkcorpus: %s: %s\n", what,
		bus_errmsg()[0] ? bus_errmsg() : strerror(errno));
	failed = 1;
	t_fini();
	exit(1);
}

/* Buffers to assemble a seed in. */
struct buf {
	uint8_t *p;
	size_t n, cap;
};

static void put(struct buf *b, const void *d, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 256;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			die("out of memory");
	}
	memcpy(b->p + b->n, d, n);
	b->n += n;
}

static void seed(const char *target, const char *name, const void *d, size_t n)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", out, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/seed-%s", out, target, name);
	if (t_file_write(path, d, n) < 0)
		die(path);
}

/* ---- proto: one request per operation, as libbus builds them ------------ */

static void name(struct proto_name *n, const char *s)
{
	memset(n, 0, sizeof(*n));
	n->len = (uint16_t)strlen(s);
	memcpy(n->s, s, n->len);
}

static void req(const char *tag, uint16_t op, const void *body, size_t len)
{
	struct proto_hdr h = { PROTO_MAGIC, PROTO_VERSION, op, 7, 0 };
	struct buf b = { 0 };

	put(&b, &h, sizeof(h));
	if (len)
		put(&b, body, len);
	seed("proto", tag, b.p, b.n);
	free(b.p);
}

static void proto_seeds(void)
{
	struct req_hello hello = { 1, 1, 0, 0 };
	struct req_create cr;
	struct req_topic tp;
	struct req_open op;
	struct req_close_sub cs;
	struct req_list ls = { 0, 0 };
	struct proto_hdr bad = { 0x41424344, PROTO_VERSION, OP_PING, 1, 0 };

	req("hello", OP_HELLO, &hello, sizeof(hello));
	req("ping", OP_PING, NULL, 0);
	memset(&cr, 0, sizeof(cr));
	name(&cr.topic, "orders.eu-1");
	cr.mode = 0640;
	cr.ring_size = 1 << 16;
	cr.flags = BUS_TOPIC_DURABLE;
	cr.first_seq = 1;
	req("create", OP_CREATE, &cr, sizeof(cr));
	memset(&tp, 0, sizeof(tp));
	name(&tp.topic, "orders.eu-1");
	req("delete", OP_DELETE, &tp, sizeof(tp));
	req("close-pub", OP_CLOSE_PUB, &tp, sizeof(tp));
	req("open-log", OP_OPEN_LOG, &tp, sizeof(tp));
	tp.arg = 3;
	req("stat", OP_STAT, &tp, sizeof(tp));
	memset(&op, 0, sizeof(op));
	name(&op.topic, "orders.eu-1");
	op.slot = PROTO_NEW_SLOT;
	req("open-pub", OP_OPEN_PUB, &op, sizeof(op));
	name(&op.group, "billing");
	op.flags = BUS_SUB_GATING;
	req("open-sub", OP_OPEN_SUB, &op, sizeof(op));
	op.slot = 2;
	op.reclaim = 1;
	req("open-sub-reclaim", OP_OPEN_SUB, &op, sizeof(op));
	memset(&cs, 0, sizeof(cs));
	name(&cs.topic, "orders.eu-1");
	cs.slot = 2;
	req("close-sub", OP_CLOSE_SUB, &cs, sizeof(cs));
	req("list", OP_LIST, &ls, sizeof(ls));
	seed("proto", "bad-magic", &bad, sizeof(bad));
	seed("proto", "short", &bad, 9);
}

/* ---- cli: the documented examples ---------------------------------------- */

static void cli_seeds(void)
{
	static const char *const s[] = {
		"4096", "64K", "16M", "1G", "2TiB", "512b", "18446744073709551615",
		"500ms", "30s", "5m", "2h", "7d", "250us", "1ns", "0600", "0644", "0777",
		"2026-11-26T10:00:00Z", "2026-11-26T10:00:00.123456789Z",
		"2026-11-26T10:00:00+02:00", "2026-11-26 10:00", "2026-11-26",
		"earliest", "oldest", "latest", "newest", "end", "seq:42",
		"time:2026-11-26T10:00:00Z", "-5m", "h\xc3\xa9llo, w\xc3\xb6rld\n",
	};
	char tag[16];

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		snprintf(tag, sizeof(tag), "%02zu", i);
		seed("cli", tag, s[i], strlen(s[i]));
	}
}

/* ---- a real busd --------------------------------------------------------- */

static void publish(struct bus_pub *p, uint64_t n, uint32_t max_len, int gap_us)
{
	uint8_t data[600];

	for (uint64_t i = 0; i < n; i++) {
		uint32_t len = t_len_for(7, i, 0, max_len);

		t_fill(data, len, 7, i);
		if (bus_pub_publish(p, (uint32_t)(i % 5), data, len, 0) < 0)
			die("bus_pub_publish");
		if (gap_us)
			t_nap_us((uint64_t)gap_us);  /* separate chunks in the log */
	}
}

static void topic(struct bus *b, const char *t, uint64_t ring, uint32_t flags, uint64_t n,
		  uint32_t max_len, int gap_us)
{
	struct bus_topic_opts o;
	struct bus_pub *p;

	memset(&o, 0, sizeof(o));
	o.ring_size = ring;
	o.flags = flags;
	o.max_consumers = 4;
	if (bus_create(b, t, &o) < 0)
		die(t);
	if (!n)
		return;
	if (bus_pub_attach(b, t, &p) < 0)
		die("bus_pub_attach");
	publish(p, n, max_len, gap_us);
	/* Durable: wait until busd has written it all, so the log is complete. */
	if ((flags & BUS_TOPIC_DURABLE) &&
	    bus_pub_sync(p, bus_pub_next_seq(p) - 1, 5000000000ll) < 0)
		die("bus_pub_sync");
	bus_pub_close(p);
}

/* The segment file of topic t in busd's shm directory. */
static int seg_file(const struct t_busd *d, const char *t, uint8_t **img, size_t *len)
{
	DIR *dir = opendir(d->shm);
	struct dirent *e;
	char path[1400], suffix[200];
	int r = -ENOENT;

	snprintf(suffix, sizeof(suffix), ".%s", t);
	while (dir && (e = readdir(dir))) {
		size_t n = strlen(e->d_name), k = strlen(suffix);

		if (n > k && !strcmp(e->d_name + n - k, suffix)) {
			snprintf(path, sizeof(path), "%s/%s", d->shm, e->d_name);
			r = t_file_read(path, img, len);
			break;
		}
	}
	if (dir)
		closedir(dir);
	return r;
}

/* Segment seeds: [16 control bytes | image] (fuzz_seg.c). */
static void seg_seed(const char *tag, const uint8_t *img, size_t len, uint8_t from,
		     uint8_t flags, uint64_t arg, uint16_t max)
{
	uint8_t ctl[16] = { from, flags, 0 };
	struct buf b = { 0 };

	memcpy(ctl + 3, &arg, 8);
	memcpy(ctl + 11, &max, 2);
	put(&b, ctl, sizeof(ctl));
	put(&b, img, len);
	seed("seg", tag, b.p, b.n);
	free(b.p);
}

#define SEP "\xff" "BUSFUZ\n"

/* Log seeds: [flags | seek seq | seek time | files separated by SEP]. */
static void log_seed(const char *tag, uint8_t flags, uint64_t seq, uint64_t ts,
		     const struct buf *files, int nfiles)
{
	struct buf b = { 0 };

	put(&b, &flags, 1);
	put(&b, &seq, 8);
	put(&b, &ts, 8);
	for (int i = 0; i < nfiles; i++) {
		if (i)
			put(&b, SEP, 8);
		put(&b, files[i].p, files[i].n);
	}
	seed("log", tag, b.p, b.n);
	free(b.p);
}

/* A segment of chunks [from, to) of the real log, with its index. */
static void cut(const uint8_t *log, const struct t_chunk *c, int from, int to, struct buf *seg,
		struct buf *idx)
{
	struct log_file_hdr h;

	log_file_hdr_init(&h, LOG_FILE_MAGIC, c[from].first_seq);
	put(seg, &h, sizeof(h));
	log_file_hdr_init(&h, LOG_IDX_MAGIC, c[from].first_seq);
	put(idx, &h, sizeof(h));
	for (int i = from; i < to; i++) {
		const struct log_chunk_hdr *ch = (const void *)(log + c[i].off);
		struct log_idx_entry e = { c[i].first_seq, ch->first_ts, seg->n, c[i].count, 0 };

		log_idx_seal(&e);
		put(idx, &e, sizeof(e));
		put(seg, log + c[i].off, c[i].end - c[i].off);
	}
}

static void busd_seeds(void)
{
	static struct t_chunk c[512];
	struct t_busd d;
	struct bus *b;
	uint8_t *img, *log, *idx;
	size_t len, loglen, idxlen;
	char path[1400];
	struct buf f[6];
	int n, r;

	if ((r = t_busd_start(&d, NULL)) != 0) {
		fprintf(stderr, "mkcorpus: busd did not start (%d); see %s\n", r, d.err);
		die("t_busd_start");
	}
	if (bus_connect(d.dir, &b) < 0)
		die("bus_connect");
	topic(b, "fz-vol", 4096, 0, 200, 100, 0);          /* wrapped: the tail moved */
	topic(b, "fz-gate", 4096, BUS_TOPIC_GATING, 12, 64, 0);
	topic(b, "fz-empty", 4096, 0, 0, 0, 0);
	topic(b, "fz-dur", 8192, BUS_TOPIC_DURABLE, 40, 300, 3000);  /* a chunk each */

	if (seg_file(&d, "fz-vol", &img, &len) < 0)
		die("segment fz-vol");
	seg_seed("vol-oldest", img, len, BUS_FROM_OLDEST, 0, 0, 300);
	seg_seed("vol-newest", img, len, BUS_FROM_NEWEST, 0, 0, 10);
	seg_seed("vol-seq", img, len, BUS_FROM_SEQ, 0x04, 190, 20);         /* bus_sub_read */
	seg_seed("vol-time", img, len, BUS_FROM_TIME, 0x0c, 1, 300);        /* small buffer */
	seg_seed("vol-raw", img, len - 100, BUS_FROM_END, 0x01, 0, 5);      /* cut short */
	free(img);
	if (seg_file(&d, "fz-gate", &img, &len) < 0)
		die("segment fz-gate");
	seg_seed("gate", img, len, BUS_FROM_OLDEST, 0x02, 0, 20);
	free(img);
	if (seg_file(&d, "fz-empty", &img, &len) < 0)
		die("segment fz-empty");
	seg_seed("empty", img, len, BUS_FROM_SEQ, 0, 1, 5);
	free(img);
	if (seg_file(&d, "fz-dur", &img, &len) < 0)
		die("segment fz-dur");
	seg_seed("dur", img, len, BUS_FROM_OLDEST, 0, 0, 60);
	free(img);

	bus_disconnect(b);
	if (t_busd_stop(&d) != 0)
		die("busd did not stop cleanly");

	snprintf(path, sizeof(path), "%s/log/fz-dur/00000000000000000001.log", d.state);
	if (t_file_read(path, &log, &loglen) < 0)
		die(path);
	snprintf(path, sizeof(path), "%s/log/fz-dur/00000000000000000001.idx", d.state);
	if (t_file_read(path, &idx, &idxlen) < 0)
		die(path);
	n = t_log_chunks(log, loglen, c, 512);
	if (n < 6 || n > 512) {
		fprintf(stderr, "mkcorpus: the log has %d chunks; 6 or more expected\n", n);
		die("log");
	}
	{
		const struct log_chunk_hdr *mid = (const void *)(log + c[n / 2].off);
		uint64_t mid_seq = c[n / 2].first_seq + 1, mid_ts = mid->first_ts + 1;

		/* busd's own files */
		f[0] = (struct buf){ log, loglen, loglen };
		f[1] = (struct buf){ idx, idxlen, idxlen };
		log_seed("real", 0x03, mid_seq, mid_ts, f, 2);
		log_seed("real-follow", 0x07, mid_seq, mid_ts, f, 2);
		log_seed("real-noidx", 0x01, mid_seq, mid_ts, f, 1);
		f[0].n = c[n - 1].off + 40;  /* torn: the last chunk cut */
		log_seed("torn", 0x03, mid_seq, mid_ts, f, 2);
		log_seed("torn-follow", 0x07, mid_seq, mid_ts, f, 2);

		/* cut in three segments at chunk boundaries; then with a chunk
		 * missing between the first two (a gap) */
		memset(f, 0, sizeof(f));
		cut(log, c, 0, n / 3, &f[0], &f[1]);
		cut(log, c, n / 3, 2 * n / 3, &f[2], &f[3]);
		cut(log, c, 2 * n / 3, n, &f[4], &f[5]);
		log_seed("3seg", 0x03, mid_seq, mid_ts, f, 6);
		for (int i = 0; i < 6; i++)
			free(f[i].p);
		memset(f, 0, sizeof(f));
		cut(log, c, 0, n / 3, &f[0], &f[1]);
		cut(log, c, n / 3 + 1, n, &f[2], &f[3]);
		log_seed("gap", 0x03, c[n / 3].first_seq, mid_ts, f, 4);
		for (int i = 0; i < 4; i++)
			free(f[i].p);
	}
	free(log);
	free(idx);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: mkcorpus DIR\n");
		return 2;
	}
	out = argv[1];
	mkdir(out, 0755);
	t_init();
	proto_seeds();
	cli_seeds();
	busd_seeds();
	t_fini();
	return failed;
}
