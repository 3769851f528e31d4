/* SPDX-License-Identifier: MIT */
/*
 * decode.h — busd's control-request decoder: one received packet in, a
 * validated header and body out, or the reason it is malformed.
 *
 * Pure: no connection, no socket, no global state. loop.c calls it for every
 * packet and the fuzz target tests/fuzz/fuzz_proto.c calls it on arbitrary
 * bytes, so what the fuzzer checks is exactly what busd runs.
 */
#ifndef BUSD_DECODE_H
#define BUSD_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* Larger than any request body plus its header; a packet above this is
 * refused (-EMSGSIZE). busd receives up to REQ_MAX + 1 bytes so that an
 * oversized packet is seen as such rather than silently cut. */
#define REQ_MAX 1024u

/* Every request body, copied out of the packet: aligned, zero beyond what
 * the packet carried, and stable while the handler uses it. */
union req_body {
	struct req_hello hello;
	struct req_create create;
	struct req_topic topic;
	struct req_open open;
	struct req_close_sub close_sub;
	struct req_list list;
};

struct req_decoded {
	struct proto_hdr hdr;   /* valid when have_hdr */
	int have_hdr;           /* the packet held a whole header (a reply can echo it) */
	size_t blen;            /* body bytes */
	union req_body q;       /* valid on success */
};

/* Body size of each operation (index: enum proto_op); 0 for PING. */
extern const size_t req_size[OP_MAX_];

/*
 * Decode the n bytes of one packet. hello_done: the connection has completed
 * HELLO (every other operation needs it). Checks, in this order: size,
 * magic, operation, HELLO first, version, status, body size, then lengths and
 * reserved fields, and for HELLO the version range offered.
 *
 * Returns 0 with *out filled, or -EPROTO / -EMSGSIZE / -EINVAL with why set
 * to the message busd sends back before it closes the connection. On
 * failure out->have_hdr still says whether out->hdr may be echoed.
 */
int req_decode(const void *msg, size_t n, int hello_done, struct req_decoded *out, char *why,
	       size_t whylen);

#endif
