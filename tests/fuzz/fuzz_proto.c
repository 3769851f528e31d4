/* SPDX-License-Identifier: MIT */
/*
 * fuzz_proto.c — libFuzzer target: busd's control-request decoder.
 *
 * The input is one packet as busd would receive it from its socket.
 * req_decode() (busd/decode.c, the function busd itself calls) must never
 * read outside the packet or crash, and what it accepts must be what the
 * handlers are entitled to assume:
 *
 *   - the header: magic, a known op, version (but for HELLO), status 0, the
 *     exact body size of the op, HELLO first on a connection;
 *   - every name length within PROTO_NAME_MAX, reserved fields zero, HELLO's
 *     range includes PROTO_VERSION;
 *   - a name that then passes proto_name_check() (what topics.c applies
 *     before it uses one) is 1..128 bytes of [A-Za-z0-9._-] without a NUL,
 *     no leading dot, no "..": safe to make a C string and a file name of.
 *
 * Each input is decoded twice, before and after HELLO, and the two results
 * must agree (HELLO being the only difference). A refusal must carry a
 * message and one of the codes busd documents.
 */
#include <errno.h>
#include <string.h>

#include "bus.h"
#include "decode.h"
#include "err.h"
#include "fuzz.h"

static int name_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.';
}

/* What the handlers do with a name (topics.c take_name()): check it, then
 * make a C string of it. Checked here independently of proto_name_check. */
static void check_name(const struct proto_name *n, int optional)
{
	char s[PROTO_NAME_MAX + 1];

	FUZZ_CHECK(n->len <= PROTO_NAME_MAX, "decoder let a %u-byte name through", n->len);
	if (optional && n->len == 0)
		return;
	if (proto_name_check(n->s, n->len, "topic") < 0) {
		FUZZ_CHECK(bus_errmsg()[0], "proto_name_check refused a name without a message");
		return;
	}
	FUZZ_CHECK(n->len >= 1, "an empty name passed proto_name_check");
	FUZZ_CHECK(n->s[0] != '.', "a name with a leading dot passed");
	for (unsigned i = 0; i < n->len; i++) {
		FUZZ_CHECK(name_char_ok((unsigned char)n->s[i]), "byte 0x%02x at %u passed",
			   (unsigned char)n->s[i], i);
		FUZZ_CHECK(!(n->s[i] == '.' && i + 1 < n->len && n->s[i + 1] == '.'),
			   "'..' at %u passed", i);
	}
	memcpy(s, n->s, n->len);
	s[n->len] = 0;
	FUZZ_CHECK(strlen(s) == n->len, "a name with a NUL inside passed (%zu of %u bytes)",
		   strlen(s), n->len);
}

static void check_accepted(const struct req_decoded *d, size_t n, int hello_done)
{
	const struct proto_hdr *h = &d->hdr;
	const union req_body *q = &d->q;

	FUZZ_CHECK(d->have_hdr, "accepted without a header");
	FUZZ_CHECK(h->magic == PROTO_MAGIC, "magic 0x%08x accepted", h->magic);
	FUZZ_CHECK(h->op >= 1 && h->op < OP_MAX_, "op %u accepted", h->op);
	FUZZ_CHECK(hello_done || h->op == OP_HELLO, "op %u accepted before HELLO", h->op);
	FUZZ_CHECK(h->op == OP_HELLO || h->version == PROTO_VERSION, "version %u accepted",
		   h->version);
	FUZZ_CHECK(h->status == 0, "status %d accepted", h->status);
	FUZZ_CHECK(n <= REQ_MAX, "%zu bytes accepted", n);
	FUZZ_CHECK(d->blen == n - sizeof(*h) && d->blen == req_size[h->op],
		   "op %u: body %zu of a %zu-byte packet", h->op, d->blen, n);
	FUZZ_CHECK(d->blen <= sizeof(*q), "body %zu larger than the union", d->blen);
	switch (h->op) {
	case OP_HELLO:
		FUZZ_CHECK(!q->hello.flags && !q->hello.reserved, "HELLO reserved fields");
		FUZZ_CHECK(q->hello.min_version <= PROTO_VERSION &&
			   q->hello.max_version >= PROTO_VERSION, "HELLO range %u-%u accepted",
			   q->hello.min_version, q->hello.max_version);
		break;
	case OP_CREATE:
		FUZZ_CHECK(!q->create.pad, "CREATE pad");
		check_name(&q->create.topic, 0);
		break;
	case OP_DELETE:
	case OP_CLOSE_PUB:
	case OP_OPEN_LOG:
	case OP_STAT:
		FUZZ_CHECK(!q->topic.pad, "op %u pad", h->op);
		FUZZ_CHECK(h->op == OP_STAT || !q->topic.arg, "op %u arg %u", h->op, q->topic.arg);
		check_name(&q->topic.topic, 0);
		break;
	case OP_OPEN_PUB:
	case OP_OPEN_SUB:
		FUZZ_CHECK(!q->open.reserved && q->open.reclaim <= 1, "OPEN reserved/reclaim");
		check_name(&q->open.topic, 0);
		check_name(&q->open.group, 1);
		break;
	case OP_CLOSE_SUB:
		FUZZ_CHECK(!q->close_sub.pad, "CLOSE_SUB pad");
		check_name(&q->close_sub.topic, 0);
		break;
	case OP_LIST:
		FUZZ_CHECK(!q->list.reserved, "LIST reserved");
		break;
	}
}

static int decode(const uint8_t *data, size_t size, int hello_done, struct req_decoded *d,
		  char *why, size_t whylen)
{
	int r;

	why[0] = 0;
	r = req_decode(data, size, hello_done, d, why, whylen);
	if (r == 0) {
		check_accepted(d, size, hello_done);
	} else {
		FUZZ_CHECK(r == -EPROTO || r == -EMSGSIZE || r == -EINVAL, "error %d", r);
		FUZZ_CHECK(why[0], "refused (%d) without a message", r);
		FUZZ_CHECK(strlen(why) < whylen, "message overran");
		FUZZ_CHECK(d->have_hdr == (size >= sizeof(struct proto_hdr)),
			   "have_hdr %d for %zu bytes", d->have_hdr, size);
	}
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* busd's message buffer is PROTO_ERR_MAX bytes; a small one here
	 * also checks that a long message is cut, not overrun. */
	char why0[PROTO_ERR_MAX], why1[40];
	struct req_decoded d0, d1;
	int r0, r1;

	r0 = decode(data, size, 0, &d0, why0, sizeof(why0));
	r1 = decode(data, size, 1, &d1, why1, sizeof(why1));
	/* After HELLO only the "before HELLO" refusal goes away. */
	if (r0 == 0) {
		FUZZ_CHECK(r1 == 0 && !memcmp(&d0, &d1, sizeof(d0)),
			   "accepted before HELLO, %d after", r1);
	} else if (r1 == 0) {
		FUZZ_CHECK(r0 == -EPROTO && strstr(why0, "before HELLO"),
			   "refused before HELLO for another reason: %s", why0);
	} else {
		FUZZ_CHECK(strstr(why0, "before HELLO") ||
			   (r0 == r1 && !strncmp(why0, why1, sizeof(why1) - 1)),
			   "before HELLO %d (%s), after %d (%s)", r0, why0, r1, why1);
	}
	return 0;
}
