/* SPDX-License-Identifier: MIT */
/*
 * decode.c — validation of one control request (see decode.h).
 *
 * The protocol has fixed bodies (proto.h), so decoding is a size check per
 * operation and a range check per field: nothing here allocates, loops over
 * input or keeps state. What it does not check is left to the handlers on
 * purpose: names are checked character by character (proto_name_check) by
 * topics.c, which knows whether a name is a topic or a cursor and says so
 * in its message.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "decode.h"

const size_t req_size[OP_MAX_] = {
	[OP_HELLO] = sizeof(struct req_hello),
	[OP_PING] = 0,
	[OP_CREATE] = sizeof(struct req_create),
	[OP_DELETE] = sizeof(struct req_topic),
	[OP_OPEN_PUB] = sizeof(struct req_open),
	[OP_OPEN_SUB] = sizeof(struct req_open),
	[OP_CLOSE_PUB] = sizeof(struct req_topic),
	[OP_CLOSE_SUB] = sizeof(struct req_close_sub),
	[OP_LIST] = sizeof(struct req_list),
	[OP_STAT] = sizeof(struct req_topic),
	[OP_OPEN_LOG] = sizeof(struct req_topic),
};

/* Structural checks beyond the size: lengths in range, padding zero. */
static int name_ok(const struct proto_name *n)
{
	return n->len <= PROTO_NAME_MAX;
}

static int well_formed(uint16_t op, const union req_body *b)
{
	switch (op) {
	case OP_HELLO:
		return !b->hello.flags && !b->hello.reserved;
	case OP_CREATE:
		return name_ok(&b->create.topic) && !b->create.pad;
	case OP_DELETE:
	case OP_CLOSE_PUB:
	case OP_OPEN_LOG:
	case OP_STAT:
		return name_ok(&b->topic.topic) && !b->topic.pad &&
		       (op == OP_STAT || !b->topic.arg);
	case OP_OPEN_PUB:
	case OP_OPEN_SUB:
		return name_ok(&b->open.topic) && name_ok(&b->open.group) && !b->open.reserved &&
		       b->open.reclaim <= 1;
	case OP_CLOSE_SUB:
		return name_ok(&b->close_sub.topic) && !b->close_sub.pad;
	case OP_LIST:
		return !b->list.reserved;
	}
	return 1;
}

static int bad(char *why, size_t whylen, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int bad(char *why, size_t whylen, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -err;
}

int req_decode(const void *msg, size_t n, int hello_done, struct req_decoded *out, char *why,
	       size_t whylen)
{
	struct proto_hdr *qh = &out->hdr;

	memset(out, 0, sizeof(*out));
	if (n < sizeof(*qh))
		return bad(why, whylen, EPROTO, "truncated request (%zu bytes, a header is %zu)", n,
			   sizeof(*qh));
	memcpy(qh, msg, sizeof(*qh));
	out->have_hdr = 1;
	if (n > REQ_MAX)
		return bad(why, whylen, EMSGSIZE, "request larger than %u bytes", REQ_MAX);
	if (qh->magic != PROTO_MAGIC)
		return bad(why, whylen, EPROTO, "not a bus control message (magic 0x%08x)",
			   qh->magic);
	if (qh->op == 0 || qh->op >= OP_MAX_)
		return bad(why, whylen, EINVAL, "unknown operation %u", qh->op);
	if (!hello_done && qh->op != OP_HELLO)
		return bad(why, whylen, EPROTO, "operation %u before HELLO", qh->op);
	if (qh->op != OP_HELLO && qh->version != PROTO_VERSION)
		return bad(why, whylen, EPROTO, "protocol version %u, this busd speaks %u",
			   qh->version, PROTO_VERSION);
	if (qh->status != 0)
		return bad(why, whylen, EPROTO, "a request must have status 0");
	out->blen = n - sizeof(*qh);
	if (out->blen != req_size[qh->op])
		return bad(why, whylen, EPROTO, "operation %u: body of %zu bytes, expected %zu",
			   qh->op, out->blen, req_size[qh->op]);
	/* blen == req_size[op] <= sizeof(out->q): the copy stays in bounds. */
	memcpy(&out->q, (const uint8_t *)msg + sizeof(*qh), out->blen);
	if (!well_formed(qh->op, &out->q))
		return bad(why, whylen, EPROTO, "operation %u: a length or a reserved field is "
			   "out of range", qh->op);
	if (qh->op == OP_HELLO && (out->q.hello.min_version > PROTO_VERSION ||
				   out->q.hello.max_version < PROTO_VERSION))
		return bad(why, whylen, EPROTO, "client speaks protocol versions %u-%u, this busd "
			   "speaks %u", out->q.hello.min_version, out->q.hello.max_version,
			   PROTO_VERSION);
	return 0;
}
