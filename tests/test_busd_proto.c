/* SPDX-License-Identifier: MIT */
/*
 * Description: busd against a hostile client. Raw SOCK_SEQPACKET sockets
 * send what libbus never would: truncated headers, bad magic, unknown
 * operations, requests before HELLO, foreign protocol versions, bodies a
 * byte short or long, oversize packets, out-of-range name lengths, non-zero
 * reserved fields, a non-zero status, random garbage, descriptors, floods
 * and more connections than --max-clients allows.
 *
 * The contract (proto.h, busd-design.md): a request that cannot be decoded
 * gets an error reply (status -errno and a message), then busd closes that
 * connection; a request that decodes but breaks a rule (a bad name, say)
 * gets -errno and the connection stays usable. After every case a
 * well-behaved client must still be served: busd is alive, and
 * bus_connect + ping + create + attach + publish + consume work.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "bus.h"
#include "proto.h"
#include "t_busd.h"
#include "t_raw.h"
#include "t_util.h"

TestSuite(busd_proto, .init = t_init, .fini = t_fini, .timeout = 60);

#define RX_MAX 1024u            /* busd refuses any larger request */
#define MAX_HANDLES 1024u       /* documented per-connection limit */

/* ------------------------------------------------------------------------ */
/* A well-behaved client                                                    */
/* ------------------------------------------------------------------------ */

/* busd is alive and serves a real client end to end. */
static void check_healthy(const struct t_busd *d)
{
	static unsigned n;
	struct bus_topic_opts o = { .ring_size = 64u << 10 };
	uint8_t out[200], in[200];
	struct bus_event ev;
	struct bus_pub *pub;
	struct bus_sub *sub;
	struct bus *b;
	char topic[64];
	int r;

	cr_assert_eq(kill(d->pid, 0), 0, "busd (pid %d) is gone", (int)d->pid);
	snprintf(topic, sizeof(topic), "health.%u", n++);
	r = bus_connect(d->dir, &b);
	cr_assert_eq(r, 0, "bus_connect = %d (%s)", r, bus_errmsg());
	cr_assert_eq(bus_ping(b), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, topic, &o), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_pub_attach(b, topic, &pub), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_attach(b, topic, NULL, &sub), 0, "%s", bus_errmsg());
	t_fill(out, sizeof(out), 11, 1);
	cr_assert_eq(bus_pub_publish(pub, 42, out, sizeof(out), 0), 0);
	cr_assert_eq(bus_sub_read(sub, in, sizeof(in), &ev), 1);
	cr_assert_eq(ev.seq, 1);
	cr_assert_eq(ev.type, 42);
	cr_assert_eq(ev.len, sizeof(out));
	cr_assert_eq(t_check(ev.data, ev.len, 11, 1), 0);
	bus_sub_close(sub);
	bus_pub_close(pub);
	cr_assert_eq(bus_delete(b, topic), 0, "%s", bus_errmsg());
	bus_disconnect(b);
	cr_assert_eq(kill(d->pid, 0), 0, "busd (pid %d) is gone", (int)d->pid);
}

/* ------------------------------------------------------------------------ */
/* Raw sockets                                                              */
/* ------------------------------------------------------------------------ */

/* recv, but a connection that busd closed with requests still unread
 * reports ECONNRESET once (at any point: the kernel checks the error before
 * the queue): skip it when the caller expects that. */
static ssize_t raw_recv_r(int fd, struct rx *r, int *resets)
{
	ssize_t n = raw_recv(fd, r);

	if (n == -ECONNRESET && resets && *resets == 0) {
		(*resets)++;
		n = raw_recv(fd, r);
	}
	return n;
}

static const char *reply_msg(const struct rx *r)
{
	return r->blen ? (const char *)r->body : "";
}

/* The next packet is a success reply to (op, id); returns its body length. */
static size_t expect_ok(int fd, struct rx *r, uint16_t op, uint32_t id, int *resets)
{
	ssize_t n = raw_recv_r(fd, r, resets);

	cr_assert_geq(n, (ssize_t)HDR, "op %u id %u: no reply (recv = %zd: %s)", op, id, n,
		      n < 0 ? strerror((int)-n) : "hangup");
	cr_assert_eq(r->h.magic, PROTO_MAGIC);
	cr_assert_eq(r->h.version, PROTO_VERSION);
	cr_assert_eq(r->h.op, op, "reply op %u, expected %u", r->h.op, op);
	cr_assert_eq(r->h.id, id, "reply id %u, expected %u", r->h.id, id);
	cr_assert_eq(r->h.status, 0, "op %u: status %d (%s)", op, r->h.status,
		     r->h.status < 0 ? reply_msg(r) : "");
	return r->blen;
}

/* The next packet is an error reply: status -err, the request's op and id
 * echoed (0 and 0 when busd could not read a header), a NUL-terminated
 * message that mentions needle, and no descriptors. */
static void expect_err2(int fd, uint16_t op, uint32_t id, int err, const char *needle,
			const char *needle2, int *resets)
{
	struct rx *r = malloc(sizeof(*r));
	ssize_t n;

	cr_assert_not_null(r);
	n = raw_recv_r(fd, r, resets);
	cr_assert_geq(n, (ssize_t)HDR, "op %u id %u: no error reply (recv = %zd: %s), "
		      "expected %d (%s)", op, id, n, n < 0 ? strerror((int)-n) : "hangup", -err,
		      needle);
	cr_assert_eq(r->h.magic, PROTO_MAGIC);
	cr_assert_eq(r->h.version, PROTO_VERSION);
	cr_assert_eq(r->h.op, op, "reply op %u, expected %u", r->h.op, op);
	cr_assert_eq(r->h.id, id, "reply id %u, expected %u", r->h.id, id);
	cr_assert_eq(r->h.status, -err, "op %u: status %d (%s), expected %d (%s)", op,
		     r->h.status, reply_msg(r), -err, strerror(err));
	cr_assert_geq(r->blen, 2, "op %u: an error reply without a message", op);
	cr_assert_lt(r->blen, PROTO_ERR_MAX + 1);
	cr_assert_eq(r->body[r->blen - 1], 0, "the message is not NUL-terminated");
	cr_assert_eq(strlen(reply_msg(r)), r->blen - 1, "the message has a NUL inside");
	cr_assert(strstr(reply_msg(r), needle), "op %u: message '%s' does not mention '%s'", op,
		  reply_msg(r), needle);
	if (needle2)
		cr_assert(strstr(reply_msg(r), needle2), "op %u: message '%s' does not mention "
			  "'%s'", op, reply_msg(r), needle2);
	cr_assert_eq(r->nfds, 0, "an error reply carried %d descriptors", r->nfds);
	free(r);
}

static void expect_err(int fd, uint16_t op, uint32_t id, int err, const char *needle,
		       int *resets)
{
	expect_err2(fd, op, id, err, needle, NULL, resets);
}

/* busd hung up: nothing more comes, recv says end of stream. */
static void expect_closed(int fd, int *resets)
{
	struct rx *r = malloc(sizeof(*r));
	ssize_t n;

	cr_assert_not_null(r);
	n = raw_recv_r(fd, r, resets);
	cr_assert_eq(n, 0, "busd did not close the connection: recv = %zd (%s; op %u status %d "
		     "'%s')", n, n < 0 ? strerror((int)-n) : "a packet", r->h.op, r->h.status,
		     n > 0 ? reply_msg(r) : "");
	free(r);
	close(fd);
}

static void raw_hello(const struct t_busd *d, int fd, uint32_t id)
{
	struct req_hello q = { 1, 1, 0, 0 };
	uint8_t buf[64];
	struct rx *r = malloc(sizeof(*r));
	const struct rep_hello *h;

	cr_assert_not_null(r);
	raw_send(fd, buf, mk(buf, OP_HELLO, id, &q, sizeof(q)));
	cr_assert_geq(expect_ok(fd, r, OP_HELLO, id, NULL), sizeof(*h));
	h = (const struct rep_hello *)r->body;
	cr_assert_eq(h->version, 1);
	cr_assert_eq(h->busd_pid, (uint32_t)d->pid);
	free(r);
}

static void raw_ping(int fd, uint32_t id)
{
	struct rx *r = malloc(sizeof(*r));
	uint8_t buf[HDR];

	cr_assert_not_null(r);
	raw_send(fd, buf, mk(buf, OP_PING, id, NULL, 0));
	cr_assert_eq(expect_ok(fd, r, OP_PING, id, NULL), 0);
	free(r);
}

/* The whole malformed case: a fresh connection (after HELLO if hello), one
 * packet, the error reply, the hangup. busd read the packet, so nothing is
 * left unread and the hangup is a clean end of stream. */
static void refused(const struct t_busd *d, int hello, const void *pkt, size_t n, uint16_t op,
		    uint32_t id, int err, const char *needle)
{
	int fd = raw_open(d);

	if (hello)
		raw_hello(d, fd, 1);
	raw_send(fd, pkt, n);
	expect_err(fd, op, id, err, needle, NULL);
	expect_closed(fd, NULL);
}

/* Request body sizes, from proto.h. */
static size_t body_size(uint16_t op)
{
	switch (op) {
	case OP_HELLO: return sizeof(struct req_hello);
	case OP_PING: return 0;
	case OP_CREATE: return sizeof(struct req_create);
	case OP_DELETE: return sizeof(struct req_topic);
	case OP_OPEN_PUB: return sizeof(struct req_open);
	case OP_OPEN_SUB: return sizeof(struct req_open);
	case OP_CLOSE_PUB: return sizeof(struct req_topic);
	case OP_CLOSE_SUB: return sizeof(struct req_close_sub);
	case OP_LIST: return sizeof(struct req_list);
	case OP_STAT: return sizeof(struct req_topic);
	case OP_OPEN_LOG: return sizeof(struct req_topic);
	}
	return 0;
}

static void set_name(struct proto_name *n, const char *s, size_t len)
{
	memset(n, 0, sizeof(*n));
	n->len = (uint16_t)len;
	memcpy(n->s, s, len);
}

/* A valid body for op, naming topic "t" (and no cursor). */
static void valid_body(uint16_t op, void *b)
{
	memset(b, 0, 512);
	switch (op) {
	case OP_HELLO: {
		struct req_hello *q = b;

		q->min_version = q->max_version = 1;
		break;
	}
	case OP_CREATE:
		set_name(&((struct req_create *)b)->topic, "t", 1);
		break;
	case OP_DELETE:
	case OP_CLOSE_PUB:
	case OP_STAT:
	case OP_OPEN_LOG:
		set_name(&((struct req_topic *)b)->topic, "t", 1);
		break;
	case OP_OPEN_PUB:
	case OP_OPEN_SUB:
		set_name(&((struct req_open *)b)->topic, "t", 1);
		((struct req_open *)b)->slot = PROTO_NEW_SLOT;
		break;
	case OP_CLOSE_SUB:
		set_name(&((struct req_close_sub *)b)->topic, "t", 1);
		break;
	}
}

/* ------------------------------------------------------------------------ */
/* Framing                                                                  */
/* ------------------------------------------------------------------------ */

Test(busd_proto, truncated_header_gets_eproto_and_the_connection_is_closed)
{
	struct t_busd d;
	uint8_t buf[HDR];
	char needle[64];
	int fd;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	mk(buf, OP_PING, 77, NULL, 0);
	for (int hello = 0; hello < 2; hello++) {
		for (size_t n = 1; n < HDR; n++) {
			/* No header to echo: op 0, id 0. */
			snprintf(needle, sizeof(needle), "truncated request (%zu bytes", n);
			refused(&d, hello, buf, n, 0, 0, EPROTO, needle);
		}
		/* An empty packet reads as end of stream: busd hangs up, no reply. */
		fd = raw_open(&d);
		if (hello)
			raw_hello(&d, fd, 1);
		raw_send(fd, buf, 0);
		expect_closed(fd, NULL);
		check_healthy(&d);
	}
}


Test(busd_proto, bad_magic_gets_eproto_and_the_connection_is_closed)
{
	/* zero, one bit off, byte-swapped ("1SUB"), all ones */
	static const uint32_t magics[] = { 0, PROTO_MAGIC ^ 1u, 0x42555331u, 0xffffffffu };
	struct req_hello q = { 1, 1, 0, 0 };
	struct t_busd d;
	uint8_t buf[64];
	char needle[64];
	size_t n;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	for (int hello = 0; hello < 2; hello++) {
		for (size_t i = 0; i < sizeof(magics) / sizeof(magics[0]); i++) {
			uint16_t op = hello ? OP_PING : OP_HELLO;

			n = mk(buf, op, 5, hello ? NULL : &q, hello ? 0 : sizeof(q));
			memcpy(buf, &magics[i], 4);
			snprintf(needle, sizeof(needle), "magic 0x%08x", magics[i]);
			refused(&d, hello, buf, n, op, 5, EPROTO, needle);
		}
		check_healthy(&d);
	}
}

Test(busd_proto, unknown_op_gets_einval_and_the_connection_is_closed)
{
	static const uint16_t ops[] = { 0, OP_MAX_, OP_MAX_ + 1, 200, 65535 };
	uint8_t buf[64], body[16] = { 0 };
	struct t_busd d;
	char needle[64];

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	for (int hello = 0; hello < 2; hello++) {
		for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
			snprintf(needle, sizeof(needle), "unknown operation %u", ops[i]);
			refused(&d, hello, buf, mk(buf, ops[i], 9, NULL, 0), ops[i], 9, EINVAL,
				needle);
			refused(&d, hello, buf, mk(buf, ops[i], 10, body, sizeof(body)), ops[i], 10,
				EINVAL, needle);
		}
		check_healthy(&d);
	}
}

Test(busd_proto, any_request_before_hello_gets_eproto_and_the_connection_is_closed)
{
	uint8_t buf[600], body[512];
	struct t_busd d;
	char needle[64];

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	for (uint16_t op = OP_PING; op < OP_MAX_; op++) {
		valid_body(op, body);
		snprintf(needle, sizeof(needle), "operation %u before HELLO", op);
		refused(&d, 0, buf, mk(buf, op, 3, body, body_size(op)), op, 3, EPROTO, needle);
	}
	check_healthy(&d);
}

Test(busd_proto, hello_without_version_1_gets_eproto_and_the_connection_is_closed)
{
	static const struct req_hello bad[] = {
		{ 2, 5, 0, 0 }, { 0, 0, 0, 0 }, { 2, 1, 0, 0 }, { 5, 2, 0, 0 },
		{ 2, 0xffffffffu, 0, 0 }, { 0xffffffffu, 0xffffffffu, 0, 0 },
	};
	static const struct req_hello good[] = {
		{ 0, 1, 0, 0 }, { 1, 1, 0, 0 }, { 1, 100, 0, 0 }, { 0, 0xffffffffu, 0, 0 },
	};
	struct rx *r = malloc(sizeof(*r));
	const struct rep_hello *h;
	struct t_busd d;
	uint8_t buf[64];
	char needle[64], anchor[32];
	int fd;

	cr_assert_not_null(r);
	h = (const struct rep_hello *)r->body;
	cr_assert_eq(t_busd_start(&d, NULL), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(needle, sizeof(needle), "versions %u-%u", bad[i].min_version,
			 bad[i].max_version);
		refused(&d, 0, buf, mk(buf, OP_HELLO, 4, &bad[i], sizeof(bad[i])), OP_HELLO, 4,
			EPROTO, needle);
		check_healthy(&d);
	}
	/* A range that contains 1 is accepted; the header's version of a HELLO
	 * is the highest the sender speaks, so 9 is fine there. */
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		fd = raw_open(&d);
		mk(buf, OP_HELLO, 6, &good[i], sizeof(good[i]));
		((struct proto_hdr *)buf)->version = (uint16_t)(i == 3 ? 9 : 1);
		raw_send(fd, buf, HDR + sizeof(good[i]));
		cr_assert_eq(expect_ok(fd, r, OP_HELLO, 6, NULL), sizeof(struct rep_hello));
		cr_assert_eq(h->version, 1);
		cr_assert_eq(h->busd_pid, (uint32_t)d.pid);
		cr_assert_eq(h->max_handles, MAX_HANDLES);
		cr_assert_eq(h->reserved, 0);
		for (int k = 0; k < 16; k++)
			cr_assert((h->bus_id[k] >= '0' && h->bus_id[k] <= '9') ||
				  (h->bus_id[k] >= 'a' && h->bus_id[k] <= 'f'),
				  "bus id '%.16s' is not 16 lowercase hex digits", h->bus_id);
		/* The id names the segments' anchor in the shm directory. */
		snprintf(anchor, sizeof(anchor), "bus-%.16s", h->bus_id);
		cr_assert_geq(t_count_files(d.shm, anchor), 1, "no %s in %s", anchor, d.shm);
		raw_ping(fd, 7);
		close(fd);
	}
	free(r);
}

Test(busd_proto, wrong_header_version_or_nonzero_status_gets_eproto)
{
	static const uint16_t versions[] = { 0, 2, 0xffff };
	static const int32_t statuses[] = { 1, -1, -EPROTO, INT32_MIN };
	struct req_hello q = { 1, 1, 0, 0 };
	struct t_busd d;
	uint8_t buf[64];
	char needle[80];

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		mk(buf, OP_PING, 8, NULL, 0);
		((struct proto_hdr *)buf)->version = versions[i];
		snprintf(needle, sizeof(needle), "protocol version %u, this busd speaks 1",
			 versions[i]);
		refused(&d, 1, buf, HDR, OP_PING, 8, EPROTO, needle);
	}
	check_healthy(&d);
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		mk(buf, OP_HELLO, 2, &q, sizeof(q));
		((struct proto_hdr *)buf)->status = statuses[i];
		refused(&d, 0, buf, HDR + sizeof(q), OP_HELLO, 2, EPROTO, "status 0");
		mk(buf, OP_PING, 3, NULL, 0);
		((struct proto_hdr *)buf)->status = statuses[i];
		refused(&d, 1, buf, HDR, OP_PING, 3, EPROTO, "status 0");
	}
	check_healthy(&d);
}

Test(busd_proto, body_a_byte_short_or_long_gets_eproto_for_every_op)
{
	uint8_t buf[700], body[600];
	struct t_busd d;
	char needle[80];

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	for (uint16_t op = OP_HELLO; op < OP_MAX_; op++) {
		size_t want = body_size(op);
		/* one short, one long, header only, twice the size */
		size_t lens[4] = { want - 1, want + 1, 0, 2 * want };

		valid_body(op, body);
		for (int i = 0; i < 4; i++) {
			if ((i == 0 && want == 0) || (i >= 2 && want <= 1))
				continue;
			snprintf(needle, sizeof(needle), "operation %u: body of %zu bytes, expected "
				 "%zu", op, lens[i], want);
			refused(&d, op != OP_HELLO, buf, mk(buf, op, 100u + op, body, lens[i]), op,
				100u + op, EPROTO, needle);
		}
		check_healthy(&d);
	}
}

Test(busd_proto, oversize_packet_gets_emsgsize_and_the_connection_is_closed)
{
	static const size_t sizes[] = { RX_MAX + 1, 4096, PROTO_MSG_MAX };
	uint8_t *big = malloc(PROTO_MSG_MAX);
	struct t_busd d;
	char needle[80];

	cr_assert_not_null(big);
	for (size_t i = 0; i < PROTO_MSG_MAX; i++)
		big[i] = (uint8_t)(i * 7);
	cr_assert_eq(t_busd_start(&d, NULL), 0);
	for (int hello = 0; hello < 2; hello++) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			mk(big, OP_PING, 21, NULL, 0);
			refused(&d, hello, big, sizes[i], OP_PING, 21, EMSGSIZE,
				"larger than 1024 bytes");
			/* The size is checked first: bad magic or all. */
			((struct proto_hdr *)big)->magic = 0xdeadbeef;
			refused(&d, hello, big, sizes[i], OP_PING, 21, EMSGSIZE,
				"larger than 1024 bytes");
		}
		check_healthy(&d);
	}
	/* Exactly 1024 bytes is a request busd reads; its body is wrong. */
	mk(big, OP_PING, 22, NULL, 0);
	snprintf(needle, sizeof(needle), "body of %u bytes, expected 0", RX_MAX - (unsigned)HDR);
	refused(&d, 1, big, RX_MAX, OP_PING, 22, EPROTO, needle);
	mk(big, OP_CREATE, 23, NULL, 0);
	snprintf(needle, sizeof(needle), "body of %u bytes, expected %zu", RX_MAX - (unsigned)HDR,
		 sizeof(struct req_create));
	refused(&d, 1, big, RX_MAX, OP_CREATE, 23, EPROTO, needle);
	check_healthy(&d);
	free(big);
}

/* Every name field of every request. */
static const struct name_field {
	uint16_t op;
	size_t off;
	const char *what;       /* how busd's message calls it */
} name_fields[] = {
	{ OP_CREATE, offsetof(struct req_create, topic), "topic" },
	{ OP_DELETE, offsetof(struct req_topic, topic), "topic" },
	{ OP_OPEN_PUB, offsetof(struct req_open, topic), "topic" },
	{ OP_OPEN_PUB, offsetof(struct req_open, group), NULL },  /* must be empty */
	{ OP_OPEN_SUB, offsetof(struct req_open, topic), "topic" },
	{ OP_OPEN_SUB, offsetof(struct req_open, group), "cursor" },
	{ OP_CLOSE_PUB, offsetof(struct req_topic, topic), "topic" },
	{ OP_CLOSE_SUB, offsetof(struct req_close_sub, topic), "topic" },
	{ OP_STAT, offsetof(struct req_topic, topic), "topic" },
	{ OP_OPEN_LOG, offsetof(struct req_topic, topic), "topic" },
};
#define N_NAME_FIELDS (sizeof(name_fields) / sizeof(name_fields[0]))

Test(busd_proto, name_length_over_128_gets_eproto_in_every_name_field)
{
	static const uint16_t lens[] = { PROTO_NAME_MAX + 1, 1000, 65535 };
	uint8_t buf[700], body[600];
	struct t_busd d;
	char needle[80];
	int fd;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	for (size_t f = 0; f < N_NAME_FIELDS; f++) {
		const struct name_field *nf = &name_fields[f];

		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			valid_body(nf->op, body);
			memset(body + nf->off + 2, 'a', PROTO_NAME_MAX);
			memcpy(body + nf->off, &lens[i], 2);
			snprintf(needle, sizeof(needle), "operation %u: a length or a reserved field "
				 "is out of range", nf->op);
			refused(&d, 1, buf, mk(buf, nf->op, 31, body, body_size(nf->op)), nf->op, 31,
				EPROTO, needle);
		}
		check_healthy(&d);
	}
	/* 128 is a length busd accepts: a STAT of a topic that does not exist. */
	fd = raw_open(&d);
	raw_hello(&d, fd, 1);
	valid_body(OP_STAT, body);
	memset(body + 2, 'a', PROTO_NAME_MAX);
	body[0] = PROTO_NAME_MAX;
	raw_send(fd, buf, mk(buf, OP_STAT, 2, body, body_size(OP_STAT)));
	expect_err(fd, OP_STAT, 2, ENOENT, "no topic 'aaaa", NULL);
	raw_ping(fd, 3);
	close(fd);
}

Test(busd_proto, nonzero_reserved_fields_get_eproto)
{
	static const struct reserved_field {
		uint16_t op;
		size_t off, width;
		uint32_t val;
	} fields[] = {
		{ OP_HELLO, offsetof(struct req_hello, flags), 4, 1 },
		{ OP_HELLO, offsetof(struct req_hello, reserved), 4, 0x80000000u },
		{ OP_CREATE, offsetof(struct req_create, pad), 2, 1 },
		{ OP_DELETE, offsetof(struct req_topic, pad), 2, 0xffff },
		{ OP_DELETE, offsetof(struct req_topic, arg), 4, 1 },
		{ OP_CLOSE_PUB, offsetof(struct req_topic, pad), 2, 0x100 },
		{ OP_CLOSE_PUB, offsetof(struct req_topic, arg), 4, 7 },
		{ OP_STAT, offsetof(struct req_topic, pad), 2, 1 },
		{ OP_OPEN_PUB, offsetof(struct req_open, reserved), 4, 1 },
		{ OP_OPEN_SUB, offsetof(struct req_open, reserved), 4, 0xffffffffu },
		{ OP_OPEN_PUB, offsetof(struct req_open, reclaim), 4, 2 },
		{ OP_OPEN_SUB, offsetof(struct req_open, reclaim), 4, 0xffffffffu },
		{ OP_CLOSE_SUB, offsetof(struct req_close_sub, pad), 2, 1 },
		{ OP_LIST, offsetof(struct req_list, reserved), 4, 1 },
	};
	uint8_t buf[700], body[600];
	struct rx *r = malloc(sizeof(*r));
	struct t_busd d;
	char needle[80];
	int fd;

	cr_assert_not_null(r);
	cr_assert_eq(t_busd_start(&d, NULL), 0);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const struct reserved_field *f = &fields[i];
		uint16_t v16 = (uint16_t)f->val;

		valid_body(f->op, body);
		if (f->width == 2)
			memcpy(body + f->off, &v16, 2);
		else
			memcpy(body + f->off, &f->val, 4);
		snprintf(needle, sizeof(needle), "operation %u: a length or a reserved field is out "
			 "of range", f->op);
		refused(&d, f->op != OP_HELLO, buf, mk(buf, f->op, 41, body, body_size(f->op)),
			f->op, 41, EPROTO, needle);
		check_healthy(&d);
	}
	/* STAT's arg is not reserved: it is the first slot to report. */
	fd = raw_open(&d);
	raw_hello(&d, fd, 1);
	valid_body(OP_CREATE, body);
	raw_send(fd, buf, mk(buf, OP_CREATE, 2, body, body_size(OP_CREATE)));
	expect_ok(fd, r, OP_CREATE, 2, NULL);
	valid_body(OP_STAT, body);
	((struct req_topic *)body)->arg = 5;
	raw_send(fd, buf, mk(buf, OP_STAT, 3, body, body_size(OP_STAT)));
	cr_assert_eq(expect_ok(fd, r, OP_STAT, 3, NULL), sizeof(struct rep_stat));
	cr_assert_eq(((struct rep_stat *)r->body)->count, 0);
	valid_body(OP_DELETE, body);
	raw_send(fd, buf, mk(buf, OP_DELETE, 4, body, body_size(OP_DELETE)));
	expect_ok(fd, r, OP_DELETE, 4, NULL);
	close(fd);
	free(r);
	check_healthy(&d);
}

/* ------------------------------------------------------------------------ */
/* Random garbage                                                           */
/* ------------------------------------------------------------------------ */

struct pred {
	int silent;         /* an empty packet: busd reads end of stream, no reply */
	uint16_t op;
	uint32_t id;
	int err;
	int stage;          /* which check refuses it (enum stage) */
	char needle[96];
};

/* busd's checks, in the order it makes them. */
enum stage { S_EMPTY, S_SHORT, S_BIG, S_MAGIC, S_OP, S_HELLO, S_VERSION, S_STATUS, S_SIZE,
	     S_FIELD, S_RANGE, S_N };

/* What busd must make of a body of exactly body_size(op) bytes: the
 * structural rules of proto.h (lengths <= 128, padding and reserved zero,
 * reclaim 0 or 1, arg zero except for STAT). */
static int model_well_formed(uint16_t op, const void *b)
{
	switch (op) {
	case OP_HELLO: {
		const struct req_hello *q = b;

		return !q->flags && !q->reserved;
	}
	case OP_CREATE: {
		const struct req_create *q = b;

		return q->topic.len <= PROTO_NAME_MAX && !q->pad;
	}
	case OP_DELETE:
	case OP_CLOSE_PUB:
	case OP_OPEN_LOG:
	case OP_STAT: {
		const struct req_topic *q = b;

		return q->topic.len <= PROTO_NAME_MAX && !q->pad && (op == OP_STAT || !q->arg);
	}
	case OP_OPEN_PUB:
	case OP_OPEN_SUB: {
		const struct req_open *q = b;

		return q->topic.len <= PROTO_NAME_MAX && q->group.len <= PROTO_NAME_MAX &&
		       !q->reserved && q->reclaim <= 1;
	}
	case OP_CLOSE_SUB: {
		const struct req_close_sub *q = b;

		return q->topic.len <= PROTO_NAME_MAX && !q->pad;
	}
	case OP_LIST:
		return !((const struct req_list *)b)->reserved;
	}
	return 1;
}

/* 1 when busd must refuse the packet (what it must say is in *e), 0 when
 * it decodes (the generator throws those away: their effects are not the
 * point here). The order of the checks is the documented one. */
static int predict(const uint8_t *p, size_t n, int hello, struct pred *e)
{
	union {
		struct req_create create;
		struct req_open open;
		uint8_t raw[512];
	} body;
	struct proto_hdr h;

	memset(e, 0, sizeof(*e));
	if (n == 0) {
		e->silent = 1;
		e->stage = S_EMPTY;
		return 1;
	}
	e->err = EPROTO;
	if (n < HDR) {
		snprintf(e->needle, sizeof(e->needle), "truncated request (%zu bytes", n);
		e->stage = S_SHORT;
		return 1;
	}
	memcpy(&h, p, HDR);
	e->op = h.op;
	e->id = h.id;
	if (n > RX_MAX) {
		e->err = EMSGSIZE;
		snprintf(e->needle, sizeof(e->needle), "larger than %u bytes", RX_MAX);
		e->stage = S_BIG;
		return 1;
	}
	if (h.magic != PROTO_MAGIC) {
		snprintf(e->needle, sizeof(e->needle), "magic 0x%08x", h.magic);
		e->stage = S_MAGIC;
		return 1;
	}
	if (h.op == 0 || h.op >= OP_MAX_) {
		e->err = EINVAL;
		snprintf(e->needle, sizeof(e->needle), "unknown operation %u", h.op);
		e->stage = S_OP;
		return 1;
	}
	if (!hello && h.op != OP_HELLO) {
		snprintf(e->needle, sizeof(e->needle), "operation %u before HELLO", h.op);
		e->stage = S_HELLO;
		return 1;
	}
	if (h.op != OP_HELLO && h.version != PROTO_VERSION) {
		snprintf(e->needle, sizeof(e->needle), "protocol version %u", h.version);
		e->stage = S_VERSION;
		return 1;
	}
	if (h.status != 0) {
		snprintf(e->needle, sizeof(e->needle), "status 0");
		e->stage = S_STATUS;
		return 1;
	}
	if (n - HDR != body_size(h.op)) {
		snprintf(e->needle, sizeof(e->needle), "operation %u: body of %zu bytes, expected %zu",
			 h.op, n - HDR, body_size(h.op));
		e->stage = S_SIZE;
		return 1;
	}
	memset(&body, 0, sizeof(body));
	memcpy(&body, p + HDR, n - HDR);
	if (!model_well_formed(h.op, &body)) {
		snprintf(e->needle, sizeof(e->needle), "operation %u: a length or a reserved field",
			 h.op);
		e->stage = S_FIELD;
		return 1;
	}
	if (h.op == OP_HELLO) {
		const struct req_hello *q = (const struct req_hello *)&body;

		if (q->min_version > PROTO_VERSION || q->max_version < PROTO_VERSION) {
			snprintf(e->needle, sizeof(e->needle), "versions %u-%u", q->min_version,
				 q->max_version);
			e->stage = S_RANGE;
			return 1;
		}
	}
	return 0;
}

static uint64_t g_state;

static uint64_t grand(void)
{
	g_state ^= g_state << 13;
	g_state ^= g_state >> 7;
	g_state ^= g_state << 17;
	return g_state;
}

static void grand_bytes(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)grand();
}

/* A packet busd must refuse: pure noise, or a valid request damaged in one
 * to three places (header fields, lengths, names, padding, its size). */
static size_t garbage(uint8_t *p, int hello, struct pred *e)
{
	uint8_t body[600];

	for (;;) {
		unsigned kind = (unsigned)(grand() % 100);
		size_t n;

		if (kind < 8) {
			n = grand() % HDR;
			grand_bytes(p, n);
		} else if (kind < 25) {
			n = grand() % 1200;
			grand_bytes(p, n);
		} else if (kind < 28) {
			n = RX_MAX + 1 + grand() % (PROTO_MSG_MAX - RX_MAX);
			grand_bytes(p, n);
			if (grand() % 2)
				mk(p, (uint16_t)(grand() % OP_MAX_), (uint32_t)grand(), NULL, 0);
		} else {
			uint16_t op = (uint16_t)(1 + grand() % (OP_MAX_ - 1));
			unsigned muts = 1 + (unsigned)(grand() % 3);

			valid_body(op, body);
			n = mk(p, op, (uint32_t)grand(), body, body_size(op));
			for (unsigned m = 0; m < muts; m++) {
				struct proto_hdr *h = (struct proto_hdr *)p;
				size_t bl = n > HDR ? n - HDR : 0;

				switch (grand() % 9) {
				case 0:
					if (n)
						p[grand() % n] ^= (uint8_t)(1 + grand() % 255);
					break;
				case 1:
					h->op = (uint16_t)(grand() % 2 ? grand() % 16 : grand());
					break;
				case 2:
					h->version = (uint16_t)(grand() % 4);
					break;
				case 3:
					h->status = (int32_t)(grand() | 1);
					break;
				case 4: {
					size_t nn = n + (size_t)(grand() % 5) - 2;

					if (nn > n)
						grand_bytes(p + n, nn - n);
					n = nn;
					break;
				}
				case 5:
					if (bl >= 2) {
						size_t off = (grand() % (bl / 2)) * 2;
						uint16_t v = (uint16_t)(grand() % 2 ? 100 + grand() % 60
										   : grand());

						memcpy(p + HDR + off, &v, 2);
					}
					break;
				case 6:
					if (bl >= 4) {
						size_t off = (grand() % (bl / 4)) * 4;
						uint32_t v = (uint32_t)grand();

						memcpy(p + HDR + off, &v, 4);
					}
					break;
				case 7:
					n = grand() % (n + 1);
					break;
				case 8:
					/* A HELLO's version range, small numbers. */
					if (h->op == OP_HELLO && bl >= 8) {
						uint32_t v[2] = { (uint32_t)(grand() % 4),
								  (uint32_t)(grand() % 4) };

						memcpy(p + HDR, v, sizeof(v));
					}
					break;
				}
			}
		}
		if (predict(p, n, hello, e))
			return n;
	}
}

Test(busd_proto, random_garbage_gets_exact_refusals_and_never_hurts_busd, .timeout = 60)
{
	enum { PAR = 4 };
	struct sess {
		int fd, hello, ping, extra;
		struct pred e;
	} s[PAR];
	uint64_t total = t_scaled(4000, 1000), sent = 0, sessions = 0, stages[S_N] = { 0 };
	uint8_t *buf = malloc(PROTO_MSG_MAX + 16), body[600];
	struct rx *r = malloc(sizeof(*r));
	struct req_hello q = { 1, 1, 0, 0 };
	struct t_busd d;
	struct bus *b;
	unsigned nevers = 0;

	cr_assert(buf && r);
	g_state = 0x9e3779b97f4a7c15ull; /* fixed: every run sends the same bytes */
	cr_assert_eq(t_busd_start(&d, NULL), 0);
	while (sent < total) {
		for (int i = 0; i < PAR; i++) {
			struct sess *x = &s[i];
			size_t n;

			x->fd = raw_open(&d);
			x->hello = (int)(grand() % 2);
			x->ping = x->hello && grand() % 2;
			if (x->hello)
				raw_send(x->fd, buf, mk(buf, OP_HELLO, 1, &q, sizeof(q)));
			if (x->ping)
				raw_send(x->fd, buf, mk(buf, OP_PING, 2, NULL, 0));
			n = garbage(buf, x->hello, &x->e);
			raw_send(x->fd, buf, n);
			sent++;
			/* More behind it that busd must never read, valid requests
			 * included: a topic "never.N" must not appear. */
			x->extra = (int)(grand() % 4);
			for (int k = 0; k < x->extra; k++) {
				struct pred dummy;

				switch (grand() % 3) {
				case 0:
					n = garbage(buf, 1, &dummy);
					break;
				case 1:
					valid_body(OP_CREATE, body);
					n = (size_t)snprintf((char *)body + 2, 100, "never.%u", nevers++);
					memcpy(body, &(uint16_t){ (uint16_t)n }, 2);
					n = mk(buf, OP_CREATE, 99, body, body_size(OP_CREATE));
					break;
				default:
					n = mk(buf, OP_PING, 98, NULL, 0);
				}
				/* busd may have hung up already: then this fails. */
				(void)send(x->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
				sent++;
			}
		}
		for (int i = 0; i < PAR; i++) {
			struct sess *x = &s[i];
			int resets = 0;

			if (x->hello)
				expect_ok(x->fd, r, OP_HELLO, 1, &resets);
			if (x->ping)
				expect_ok(x->fd, r, OP_PING, 2, &resets);
			stages[x->e.stage]++;
			if (!x->e.silent)
				expect_err(x->fd, x->e.op, x->e.id, x->e.err, x->e.needle, &resets);
			expect_closed(x->fd, x->extra ? &resets : NULL);
		}
		sessions++;
		if (sessions % 64 == 0)
			cr_assert_eq(kill(d.pid, 0), 0, "busd died after %llu garbage packets",
				     (unsigned long long)sent);
	}
	check_healthy(&d);
	/* None of the requests queued behind a refused one ran. */
	cr_assert_eq(bus_connect(d.dir, &b), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_list(b, NULL, 0), 0, "a request behind a refused one was executed");
	bus_disconnect(b);
	/* Every check was reached. */
	for (int i = 0; i < S_N; i++)
		cr_assert_gt(stages[i], 0, "no garbage packet was refused by check %d", i);
	cr_log_info("%llu packets over %llu connections; refused as empty %llu, short %llu, "
		    "big %llu, magic %llu, op %llu, before hello %llu, version %llu, status %llu, "
		    "size %llu, field %llu, hello range %llu", (unsigned long long)sent,
		    (unsigned long long)sessions * PAR, (unsigned long long)stages[0],
		    (unsigned long long)stages[1], (unsigned long long)stages[2],
		    (unsigned long long)stages[3], (unsigned long long)stages[4],
		    (unsigned long long)stages[5], (unsigned long long)stages[6],
		    (unsigned long long)stages[7], (unsigned long long)stages[8],
		    (unsigned long long)stages[9], (unsigned long long)stages[10]);
	free(buf);
	free(r);
}

/* ------------------------------------------------------------------------ */
/* Descriptors, floods, connection limits                                   */
/* ------------------------------------------------------------------------ */

static int count_fds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	cr_assert_not_null(dir, "%s: %s", path, strerror(errno));
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

static void send_fds(int fd, const void *buf, size_t n, const int *fds, int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 253)];
		struct cmsghdr align;
	} cb;
	struct iovec iov = { (void *)buf, n };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.buf,
			    .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	ssize_t r;

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	r = sendmsg(fd, &m, MSG_NOSIGNAL);
	cr_assert_eq(r, (ssize_t)n, "sendmsg with %d descriptors = %zd (%s)", nfds, r,
		     strerror(errno));
}

Test(busd_proto, descriptors_sent_to_busd_are_not_kept)
{
	struct req_hello q = { 1, 1, 0, 0 };
	uint64_t iters = t_scaled(2000, 200), deadline;
	struct rx *r = malloc(sizeof(*r));
	int p[2], sp[2], mine[4], fds[253], a, base, now;
	struct pollfd pf;
	struct t_busd d;
	uint8_t buf[64];
	char c;

	cr_assert_not_null(r);
	cr_assert_eq(t_busd_start(&d, NULL), 0);
	a = raw_open(&d);
	raw_hello(&d, a, 1);
	base = count_fds(d.pid);
	cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	mine[0] = p[1];
	mine[1] = sp[1];
	mine[2] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	mine[3] = memfd_create("busd-proto", MFD_CLOEXEC);
	cr_assert(mine[2] >= 0 && mine[3] >= 0);
	for (int i = 0; i < 253; i++)
		fds[i] = mine[i % 4];
	for (uint64_t i = 0; i < iters; i++) {
		int k = i % 97 == 0 ? 253 : 1 + (int)(i % 16);
		uint32_t id = (uint32_t)(2 + i);

		if (i % 10 == 0) {
			send_fds(a, buf, mk(buf, OP_HELLO, id, &q, sizeof(q)), fds, k);
			expect_ok(a, r, OP_HELLO, id, NULL);
		} else {
			send_fds(a, buf, mk(buf, OP_PING, id, NULL, 0), fds, k);
			expect_ok(a, r, OP_PING, id, NULL);
		}
		cr_assert_eq(r->nfds, 0, "busd sent descriptors back");
		if (i % 100 == 0 || i % 100 == 50) {
			/* The same with requests busd refuses (and hangs up on). */
			int x = raw_open(&d);

			mk(buf, OP_PING, 5, NULL, 0);
			if (i % 100 == 0)
				((struct proto_hdr *)buf)->magic = 0;
			send_fds(x, buf, HDR, fds, k);
			expect_err(x, OP_PING, 5, EPROTO, i % 100 ? "before HELLO" : "magic", NULL);
			expect_closed(x, NULL);
		}
	}
	for (int i = 0; i < 4; i++)
		close(mine[i]);
	/* Every copy busd received is closed: the pipe and the socket pair see
	 * their last writer go. */
	pf = (struct pollfd){ p[0], POLLIN, 0 };
	cr_assert_eq(poll(&pf, 1, 2000), 1, "busd still holds the write end of a pipe it was sent");
	cr_assert_eq(read(p[0], &c, 1), 0, "busd still holds the write end of a pipe it was sent");
	pf = (struct pollfd){ sp[0], POLLIN, 0 };
	cr_assert_eq(poll(&pf, 1, 2000), 1, "busd still holds a socket it was sent");
	cr_assert_eq(recv(sp[0], &c, 1, MSG_DONTWAIT), 0, "busd still holds a socket it was sent");
	close(p[0]);
	close(sp[0]);
	/* busd's descriptor table is what it was (refused connections are
	 * released asynchronously: give it a moment). */
	deadline = t_now_ns() + 2000000000ull;
	while ((now = count_fds(d.pid)) != base && t_now_ns() < deadline)
		t_nap_us(10000);
	cr_assert_eq(now, base, "busd had %d descriptors, now %d", base, now);
	raw_ping(a, 1);
	close(a);
	free(r);
	/* A whole client life (create, attach both ways: busd passes two
	 * descriptors each time; delete) leaves nothing open in busd either. */
	check_healthy(&d);
	check_healthy(&d);
	deadline = t_now_ns() + 2000000000ull;
	while ((now = count_fds(d.pid)) != base - 1 && t_now_ns() < deadline)
		t_nap_us(10000);
	cr_assert_eq(now, base - 1, "busd had %d descriptors with one connection, now %d with "
		     "none", base, now);
}

Test(busd_proto, a_flooding_client_blocks_itself_and_others_are_served)
{
	const uint32_t flood = 100000;
	uint64_t t0, worst = 0, deadline;
	struct rx *r = malloc(sizeof(*r));
	uint32_t sent = 0;
	int fl, blocked = 0, gone = 0, fl_flags;
	struct t_busd d;
	struct bus *b;
	uint8_t buf[HDR];

	cr_assert_not_null(r);
	cr_assert_eq(t_busd_start(&d, NULL), 0);
	fl = raw_open(&d);
	raw_hello(&d, fl, 1);
	fl_flags = fcntl(fl, F_GETFL);
	cr_assert_eq(fcntl(fl, F_SETFL, fl_flags | O_NONBLOCK), 0);
	/* Requests as fast as the socket takes them; never read a reply. */
	while (sent < flood) {
		ssize_t n = send(fl, buf, mk(buf, OP_PING, 2 + sent, NULL, 0), MSG_NOSIGNAL);

		if (n == (ssize_t)HDR) {
			sent++;
			continue;
		}
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pf = { fl, POLLOUT, 0 };

			if (poll(&pf, 1, 300) == 0) {
				blocked = 1;
				break;
			}
			continue;
		}
		cr_assert(n < 0 && (errno == EPIPE || errno == ECONNRESET),
			  "flood send %u = %zd (%s)", sent, n, strerror(errno));
		gone = 1;
		break;
	}
	cr_assert(blocked || gone, "busd took all %u requests without anyone reading a reply",
		  flood);
	cr_assert_lt(sent, flood);
	/* Others are served, each request promptly, while the flood waits. */
	cr_assert_eq(bus_connect(d.dir, &b), 0, "%s", bus_errmsg());
	for (int i = 0; i < 50; i++) {
		t0 = t_now_ns();
		cr_assert_eq(bus_ping(b), 0, "%s", bus_errmsg());
		if (t_now_ns() - t0 > worst)
			worst = t_now_ns() - t0;
	}
	cr_assert_lt(worst, 1000000000ull, "a ping took %llu ms during the flood",
		     (unsigned long long)(worst / 1000000));
	t0 = t_now_ns();
	check_healthy(&d);
	cr_assert_lt(t_now_ns() - t0, 2000000000ull, "a client took %llu ms during the flood",
		     (unsigned long long)((t_now_ns() - t0) / 1000000));
	bus_disconnect(b);
	cr_assert_eq(fcntl(fl, F_SETFL, fl_flags), 0);
	if (blocked) {
		/* Nothing was lost: one reply per request, in order; then the
		 * connection is as good as new. */
		for (uint32_t i = 0; i < sent; i++)
			expect_ok(fl, r, OP_PING, 2 + i, NULL);
		raw_ping(fl, 1);
		close(fl);
	} else {
		/* Disconnected: the replies before the hangup are in order. */
		uint32_t got = 0;
		ssize_t n;

		deadline = t_now_ns() + 5000000000ull;
		while ((n = raw_recv(fl, r)) > 0 && t_now_ns() < deadline) {
			cr_assert_eq(r->h.id, 2 + got);
			cr_assert_eq(r->h.status, 0);
			got++;
		}
		cr_assert_leq(got, sent);
		close(fl);
	}
	cr_log_info("the flooder %s after %u requests; worst ping %llu us",
		    blocked ? "blocked" : "was disconnected", sent,
		    (unsigned long long)(worst / 1000));
	free(r);
	check_healthy(&d);
}

/* A connection busd accepted and closed without reading anything. */
static void expect_refused(int fd)
{
	struct pollfd pf = { fd, POLLRDHUP, 0 };
	char c;

	cr_assert_eq(poll(&pf, 1, 2000), 1, "busd did not close a connection over the limit");
	cr_assert(pf.revents & (POLLRDHUP | POLLHUP), "revents 0x%x", pf.revents);
	cr_assert_eq(recv(fd, &c, 1, 0), 0, "recv after the hangup: %s", strerror(errno));
	close(fd);
}

/* Send HELLO: 1 if busd answers it, 0 if it had closed the connection. */
static int try_hello(const struct t_busd *d, int fd)
{
	struct req_hello q = { 1, 1, 0, 0 };
	struct rx *r = malloc(sizeof(*r));
	uint8_t buf[64];
	ssize_t n;

	cr_assert_not_null(r);
	if (send(fd, buf, mk(buf, OP_HELLO, 1, &q, sizeof(q)), MSG_NOSIGNAL) < 0) {
		cr_assert(errno == EPIPE || errno == ECONNRESET, "send: %s", strerror(errno));
		free(r);
		return 0;
	}
	n = raw_recv(fd, r);
	if (n == 0 || n == -ECONNRESET) {
		free(r);
		return 0;
	}
	cr_assert_geq(n, (ssize_t)HDR, "recv: %s", strerror((int)-n));
	cr_assert_eq(r->h.status, 0);
	cr_assert_eq(((struct rep_hello *)r->body)->busd_pid, (uint32_t)d->pid);
	free(r);
	return 1;
}

Test(busd_proto, max_clients_refuses_connections_over_the_limit)
{
	enum { MAX = 16, FREED = 4 };
	int fds[MAX], r;
	uint64_t deadline;
	struct t_busd d;
	struct bus *b;

	cr_assert_eq(t_busd_start(&d, "--max-clients", "16", NULL), 0);
	for (int i = 0; i < MAX; i++) {
		fds[i] = raw_open(&d);
		raw_hello(&d, fds[i], 1);
	}
	/* One more: the kernel completes the connect, busd closes it. */
	expect_refused(raw_open(&d));
	r = bus_connect(d.dir, &b);
	/* Refused before or after libbus sent its HELLO: a race. */
	cr_assert(r == -EPIPE || r == -ECONNRESET, "bus_connect over the limit = %d (%s)", r,
		  bus_errmsg());
	cr_assert(strstr(bus_errmsg(), "busd"), "%s", bus_errmsg());
	cr_assert_eq(kill(d.pid, 0), 0);
	/* Close some: exactly that many new ones fit (busd sees the hangups
	 * asynchronously, so each may need a few tries). */
	for (int i = 0; i < FREED; i++)
		close(fds[i]);
	for (int i = 0; i < FREED; i++) {
		deadline = t_now_ns() + 2000000000ull;
		for (;;) {
			fds[i] = raw_open(&d);
			if (try_hello(&d, fds[i]))
				break;
			close(fds[i]);
			cr_assert_lt(t_now_ns(), deadline, "connection %d refused 2 s after %d "
				     "were closed", i, FREED);
			t_nap_us(5000);
		}
	}
	expect_refused(raw_open(&d));
	for (int i = 0; i < MAX; i++)
		raw_ping(fds[i], 2);
	for (int i = 0; i < MAX; i++)
		close(fds[i]);
	deadline = t_now_ns() + 2000000000ull;
	while ((r = bus_connect(d.dir, &b)) != 0) {
		cr_assert_lt(t_now_ns(), deadline, "bus_connect = %d (%s) 2 s after every "
			     "connection closed", r, bus_errmsg());
		t_nap_us(5000);
	}
	bus_disconnect(b);
	check_healthy(&d);
}

/* ------------------------------------------------------------------------ */
/* Semantic errors: refused, the connection stays                           */
/* ------------------------------------------------------------------------ */

static const struct bad_name {
	const char *s;
	size_t len;
	const char *rule;
} bad_names[] = {
	{ "a/b", 3, "contains '/'" },
	{ "../x", 4, "starts with a dot" },
	{ "..", 2, "starts with a dot" },
	{ ".hidden", 7, "starts with a dot" },
	{ "a..b", 4, "contains '..'" },
	{ "x..", 3, "contains '..'" },
	{ "x y", 3, "contains ' '" },
	{ "a*b", 3, "contains '*'" },
	{ "a\\b", 3, "contains '\\'" },
	{ "a\0b", 3, "byte 0x00 at offset 1" },
	{ "a\n", 2, "byte 0x0a at offset 1" },
	{ "\xc3\xa9t\xc3\xa9", 5, "byte 0xc3 at offset 0" },
	{ "", 0, "name is empty" },
};

/* Send op with body; the reply is -err mentioning needle; PING still works. */
static void semantic(int fd, uint32_t *id, uint16_t op, const void *body, int err,
		     const char *needle, const char *needle2)
{
	uint8_t buf[700];

	raw_send(fd, buf, mk(buf, op, ++*id, body, body_size(op)));
	expect_err2(fd, op, *id, err, needle, needle2, NULL);
	raw_ping(fd, ++*id);
}

static void ok_req(int fd, uint32_t *id, uint16_t op, const void *body, struct rx *r)
{
	uint8_t buf[700];

	raw_send(fd, buf, mk(buf, op, ++*id, body, body_size(op)));
	expect_ok(fd, r, op, *id, NULL);
}

Test(busd_proto, bad_names_get_einval_and_the_connection_stays_usable)
{
	struct bus_sub_opts so = { .group = "../x" };
	struct rx *r = malloc(sizeof(*r));
	uint8_t body[600];
	char path[800], what[32];
	struct t_busd d;
	struct bus *b;
	struct bus_sub *sub;
	uint32_t id = 1;
	int fd, files;

	cr_assert_not_null(r);
	cr_assert_eq(t_busd_start(&d, NULL), 0);
	files = t_count_files(d.shm, "");
	fd = raw_open(&d);
	raw_hello(&d, fd, 1);
	for (size_t f = 0; f < N_NAME_FIELDS; f++) {
		const struct name_field *nf = &name_fields[f];

		if (!nf->what)
			continue;
		snprintf(what, sizeof(what), "%s name", nf->what);
		for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
			const struct bad_name *bn = &bad_names[i];

			if (bn->len == 0 && !strcmp(nf->what, "cursor"))
				continue; /* no cursor name = an anonymous consumer */
			valid_body(nf->op, body);
			set_name((struct proto_name *)(body + nf->off), bn->s, bn->len);
			semantic(fd, &id, nf->op, body, EINVAL, what, bn->rule);
		}
	}
	/* Nothing was created, anywhere. */
	cr_assert_eq(t_count_files(d.shm, ""), files);
	snprintf(path, sizeof(path), "%s/x", t_dir());
	cr_assert_neq(access(path, F_OK), 0, "%s exists", path);
	snprintf(path, sizeof(path), "%s/x", d.dir);
	cr_assert_neq(access(path, F_OK), 0, "%s exists", path);

	/* Other requests that decode but are refused. */
	valid_body(OP_STAT, body);
	set_name(&((struct req_topic *)body)->topic, "nothere", 7);
	semantic(fd, &id, OP_STAT, body, ENOENT, "no topic 'nothere'", NULL);
	valid_body(OP_CREATE, body);
	((struct req_create *)body)->fsync = 1;  /* durability settings, not durable */
	semantic(fd, &id, OP_CREATE, body, EINVAL, "need a durable topic", NULL);
	valid_body(OP_CREATE, body);
	((struct req_create *)body)->dur[7] = 1;
	semantic(fd, &id, OP_CREATE, body, EINVAL, "unknown flags or settings", NULL);
	valid_body(OP_CREATE, body);
	((struct req_create *)body)->flags = BUS_TOPIC_DURABLE;
	((struct req_create *)body)->fsync = 9;
	semantic(fd, &id, OP_CREATE, body, EINVAL, "fsync policy 9", NULL);
	valid_body(OP_OPEN_LOG, body);
	semantic(fd, &id, OP_OPEN_LOG, body, ENOENT, "no topic 't'", NULL);
	valid_body(OP_CREATE, body);
	((struct req_create *)body)->ring_size = 1000; /* not a power of two */
	semantic(fd, &id, OP_CREATE, body, EINVAL, "topic 't'", NULL);
	cr_assert_eq(t_count_files(d.shm, ""), files);
	valid_body(OP_CREATE, body);
	ok_req(fd, &id, OP_CREATE, body, r);
	semantic(fd, &id, OP_CREATE, body, EEXIST, "already exists", NULL);
	valid_body(OP_OPEN_PUB, body);
	set_name(&((struct req_open *)body)->group, "g", 1);
	semantic(fd, &id, OP_OPEN_PUB, body, EINVAL, "group and flags must be empty", NULL);
	valid_body(OP_OPEN_PUB, body);
	((struct req_open *)body)->flags = 1;
	semantic(fd, &id, OP_OPEN_PUB, body, EINVAL, "group and flags must be empty", NULL);
	valid_body(OP_OPEN_SUB, body);
	((struct req_open *)body)->flags = 2;
	semantic(fd, &id, OP_OPEN_SUB, body, EINVAL, "unknown flags 0x2", NULL);
	valid_body(OP_OPEN_SUB, body);
	((struct req_open *)body)->reclaim = 1;
	((struct req_open *)body)->slot = 5;
	semantic(fd, &id, OP_OPEN_SUB, body, ESTALE, "slot 5 is not held", NULL);
	((struct req_open *)body)->slot = 0xfffffff0u;
	semantic(fd, &id, OP_OPEN_SUB, body, ESTALE, "is not held", NULL);
	valid_body(OP_CLOSE_SUB, body);
	((struct req_close_sub *)body)->slot = 3;
	semantic(fd, &id, OP_CLOSE_SUB, body, ENOENT, "holds no slot 3", NULL);
	valid_body(OP_CLOSE_PUB, body);
	semantic(fd, &id, OP_CLOSE_PUB, body, ENOENT, "not the producer", NULL);
	/* The lease: granted with two descriptors, refused to a second open. */
	valid_body(OP_OPEN_PUB, body);
	ok_req(fd, &id, OP_OPEN_PUB, body, r);
	cr_assert_eq(r->nfds, 2, "OPEN_PUB carried %d descriptors", r->nfds);
	snprintf(path, sizeof(path), "already has a producer (pid %d)", (int)getpid());
	semantic(fd, &id, OP_OPEN_PUB, body, EBUSY, path, NULL);
	valid_body(OP_CLOSE_PUB, body);
	ok_req(fd, &id, OP_CLOSE_PUB, body, r);
	valid_body(OP_DELETE, body);
	ok_req(fd, &id, OP_DELETE, body, r);
	semantic(fd, &id, OP_DELETE, body, ENOENT, "no topic 't'", NULL);
	close(fd);

	/* libbus checks names itself before it asks. */
	cr_assert_eq(bus_connect(d.dir, &b), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, "a/b", NULL), -EINVAL);
	cr_assert(strstr(bus_errmsg(), "contains '/'"), "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, "../x", NULL), -EINVAL);
	cr_assert(strstr(bus_errmsg(), "starts with a dot"), "%s", bus_errmsg());
	cr_assert_eq(bus_create(b, "ok", NULL), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_sub_attach(b, "ok", &so, &sub), -EINVAL);
	cr_assert(strstr(bus_errmsg(), "cursor name"), "%s", bus_errmsg());
	cr_assert_eq(bus_delete(b, "ok"), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_ping(b), 0, "%s", bus_errmsg());
	bus_disconnect(b);
	free(r);
	check_healthy(&d);
}

Test(busd_proto, connect_without_busd_says_no_busd_is_running)
{
	char dir[700];
	struct t_busd d;
	struct bus *b = (struct bus *)&dir;
	uint64_t deadline;
	int r, resets = 0;

	/* An empty directory: no socket. */
	snprintf(dir, sizeof(dir), "%s/nobus", t_dir());
	cr_assert_eq(mkdir(dir, 0700), 0);
	cr_assert_eq(bus_connect(dir, &b), -ENOENT);
	cr_assert_null(b);
	cr_assert(strstr(bus_errmsg(), "busd"), "%s", bus_errmsg());
	cr_assert(strstr(bus_errmsg(), dir), "%s", bus_errmsg());
	/* No directory at all. */
	snprintf(dir, sizeof(dir), "%s/nonexistent", t_dir());
	cr_assert_eq(bus_connect(dir, &b), -ENOENT);
	cr_assert(strstr(bus_errmsg(), "busd"), "%s", bus_errmsg());
	/* A busd killed with SIGKILL leaves its socket file: refused. For a
	 * few milliseconds after the kill (the process is reaped already)
	 * the kernel still completes connects: the dead busd's io_uring holds
	 * the listening socket until its deferred teardown, and then resets
	 * them. Within a second it must be a plain refusal. */
	cr_assert_eq(t_busd_start(&d, NULL), 0);
	t_busd_kill(&d);
	deadline = t_now_ns() + 1000000000ull;
	while ((r = bus_connect(d.dir, &b)) == -ECONNRESET && t_now_ns() < deadline)
		resets++;
	cr_assert_eq(r, -ECONNREFUSED, "bus_connect = %d (%s)", r, bus_errmsg());
	cr_assert(strstr(bus_errmsg(), "busd"), "%s", bus_errmsg());
	if (resets)
		cr_log_info("bus_connect got ECONNRESET %d times right after busd was killed",
			    resets);
	/* A busd stopped cleanly removes it. */
	cr_assert_eq(t_busd_restart(&d, NULL), 0);
	check_healthy(&d);
	cr_assert_eq(t_busd_stop(&d), 0);
	cr_assert_eq(bus_connect(d.dir, &b), -ENOENT);
	cr_assert(strstr(bus_errmsg(), "busd"), "%s", bus_errmsg());
}

/* Right after a kill -9 (busd reaped, nothing restarted it) no busd serves
 * the bus, and bus_connect says exactly that. For a few milliseconds the
 * kernel still completes connects on the dead busd's socket (its io_uring
 * holds the listening socket until the ring's deferred teardown) and then
 * resets them; busd.lock, which the kernel releases when the process dies,
 * already tells that nobody serves the bus. */
Test(busd_proto, connect_right_after_busd_was_killed_says_no_busd_is_running)
{
	struct t_busd d;
	struct bus *b;
	int r;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	for (int i = 0; i < 3; i++) {
		if (i)
			cr_assert_eq(t_busd_restart(&d, NULL), 0);
		t_busd_kill(&d);
		r = bus_connect(d.dir, &b);
		cr_assert_eq(r, -ECONNREFUSED, "kill %d: bus_connect = %d (%s)", i + 1, r,
			     bus_errmsg());
		cr_assert(strstr(bus_errmsg(), "no busd is running"), "%s", bus_errmsg());
	}
}
