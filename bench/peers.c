/* SPDX-License-Identifier: MIT */
/*
 * peers.c — what a user would pick instead of bus: a pipe, a UNIX stream
 * socket and ZeroMQ ipc:// PUSH/PULL, with the same workload as the bus
 * throughput cases (same payload, same verification, same pinning).
 *
 * Stream framing: messages have a fixed size per case, known to both ends,
 * so no length prefix is needed (a length word would cost the same 8 bytes
 * the bus record header costs; we leave it out, which only helps the
 * peers). The producer does one write() per message, as a naive producer
 * does; the consumer read()s into a 64 KiB buffer and parses every whole
 * message in it, carrying a partial one over, as a real consumer does.
 * Pipe and socket buffers keep their defaults (64 KiB pipe, ~208 KiB
 * socket): that is what a user gets.
 *
 * ZeroMQ: one zmq_send() per message, zmq_msg_recv() on the other side
 * (ZeroMQ batches internally), default high-water marks (1000 messages:
 * PUSH blocks, it never drops). Each process's ZeroMQ I/O thread inherits
 * its pinning, so it shares the CPU with the application thread, as
 * everything else in this run does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <zmq.h>

#include "bench.h"

#define RBUF (64u * 1024u)

struct peer_arg {
	struct tp_shared *sh;
	size_t size;
	int rfd, wfd;          /* stream ends */
	char endpoint[128];    /* ZeroMQ */
};

/* ------------------------------------------------------------------------ */
/* Streams: pipe and UNIX socket                                            */
/* ------------------------------------------------------------------------ */

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int stream_prod(void *varg)
{
	struct peer_arg *a = varg;
	struct tp_shared *sh = a->sh;
	uint64_t msg[MSG_MAX / 8], seq = 0;
	struct tp_clock clk;
	int rc;

	close(a->rfd);
	memcpy(msg, pattern, a->size);
	if (wait_flag(&sh->ready, 10))
		return child_fail("stream producer: consumer never got ready");
	tp_clock_start(&clk);
	do {
		for (unsigned i = 0; i < TP_CHECK; i++) {
			msg[0] = seq++;
			rc = write_all(a->wfd, msg, a->size);
			if (rc)
				return child_fail("write: %s", strerror(-rc));
		}
	} while (tp_clock_tick(&clk, sh, seq));
	sh->sent = seq;
	msg[0] = END_SEQ;
	rc = write_all(a->wfd, msg, a->size);
	if (rc)
		return child_fail("write (end): %s", strerror(-rc));
	close(a->wfd);
	return 0;
}

static int stream_cons(void *varg)
{
	struct peer_arg *a = varg;
	struct tp_shared *sh = a->sh;
	struct verify v = { 0 };
	uint64_t tailx = pattern_tail_xor(a->size);
	size_t have = 0, size = a->size;
	unsigned char *buf = aligned_alloc(64, RBUF);

	close(a->wfd);
	if (!buf)
		return child_fail("out of memory");
	atomic_store_explicit(&sh->ready, 1, memory_order_release);
	for (;;) {
		ssize_t n = read(a->rfd, buf + have, RBUF - have);
		size_t off = 0;

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return child_fail("read: %s", n ? strerror(errno) : "EOF before end marker");
		}
		have += (size_t)n;
		for (; have - off >= size; off += size) {
			const unsigned char *m = buf + off;

			if (load64(m) == END_SEQ) {
				sh->t_end_ns = now_ns();
				sh->v = v;
				free(buf);
				return 0;
			}
			verify_msg(&v, m, size, tailx);
		}
		memmove(buf, buf + off, have - off);
		have -= off;
	}
}

static int stream_tp(enum tp_kind kind, size_t size, struct tp_run *r)
{
	struct peer_arg a = { .size = size };
	int fds[2], rc;

	if (kind == TP_PIPE)
		rc = pipe(fds);
	else
		rc = socketpair(AF_UNIX, SOCK_STREAM, 0, fds);
	if (rc) {
		child_fail("%s: %s", kind == TP_PIPE ? "pipe" : "socketpair", strerror(errno));
		return -EIO;
	}
	a.rfd = fds[0];
	a.wfd = fds[1];
	a.sh = shm_map(sizeof(*a.sh));
	rc = run_pair(stream_cons, stream_prod, &a, cfg.warm_s + cfg.tp_s + 20);
	close(fds[0]);
	close(fds[1]);
	if (!rc)
		rc = tp_finish(a.sh, size, 1, r);
	shm_unmap(a.sh, sizeof(*a.sh));
	return rc;
}

/* ------------------------------------------------------------------------ */
/* ZeroMQ ipc:// PUSH/PULL                                                  */
/* ------------------------------------------------------------------------ */

static int zmq_prod(void *varg)
{
	struct peer_arg *a = varg;
	struct tp_shared *sh = a->sh;
	uint64_t msg[MSG_MAX / 8], seq = 0;
	struct tp_clock clk;
	void *ctx = zmq_ctx_new(), *s;
	int rc = 0;

	if (!ctx)
		return child_fail("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
	s = zmq_socket(ctx, ZMQ_PUSH);
	/* Bounded calls: a stuck send fails with a message naming this side
	 * (well before run_pair's deadline) instead of hanging. Once, in about
	 * a hundred runs, a ZeroMQ round hung until it was killed. */
	if (s) {
		int ms = 5000;

		zmq_setsockopt(s, ZMQ_SNDTIMEO, &ms, sizeof(ms));
		zmq_setsockopt(s, ZMQ_LINGER, &ms, sizeof(ms));
	}
	if (!s || zmq_connect(s, a->endpoint)) {
		rc = child_fail("zmq PUSH connect %s: %s", a->endpoint,
				zmq_strerror(zmq_errno()));
		goto out;
	}
	memcpy(msg, pattern, a->size);
	if (wait_flag(&sh->ready, 10)) {
		rc = child_fail("zmq producer: consumer never got ready");
		goto out;
	}
	tp_clock_start(&clk);
	do {
		for (unsigned i = 0; i < TP_CHECK; i++) {
			msg[0] = seq++;
			if (zmq_send(s, msg, a->size, 0) != (int)a->size) {
				rc = child_fail("zmq_send: %s", zmq_strerror(zmq_errno()));
				goto out;
			}
		}
	} while (tp_clock_tick(&clk, sh, seq));
	sh->sent = seq;
	msg[0] = END_SEQ;
	if (zmq_send(s, msg, a->size, 0) != (int)a->size)
		rc = child_fail("zmq_send (end): %s", zmq_strerror(zmq_errno()));
out:
	/* Default linger (infinite): closing waits until the queue is sent,
	 * the consumer is there to take it. */
	if (s)
		zmq_close(s);
	zmq_ctx_term(ctx);
	return rc;
}

static int zmq_cons(void *varg)
{
	struct peer_arg *a = varg;
	struct tp_shared *sh = a->sh;
	struct verify v = { 0 };
	uint64_t tailx = pattern_tail_xor(a->size);
	void *ctx = zmq_ctx_new(), *s;
	zmq_msg_t m;
	int rc = 0;

	if (!ctx)
		return child_fail("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
	s = zmq_socket(ctx, ZMQ_PULL);
	if (s) {
		int ms = 5000;  /* see zmq_prod */

		zmq_setsockopt(s, ZMQ_RCVTIMEO, &ms, sizeof(ms));
	}
	if (!s || zmq_bind(s, a->endpoint)) {
		rc = child_fail("zmq PULL bind %s: %s", a->endpoint,
				zmq_strerror(zmq_errno()));
		goto out;
	}
	atomic_store_explicit(&sh->ready, 1, memory_order_release);
	zmq_msg_init(&m);
	for (;;) {
		const void *d;

		if (zmq_msg_recv(&m, s, 0) < 0) {
			if (zmq_errno() == EINTR)
				continue;
			rc = child_fail("zmq_msg_recv: %s", zmq_strerror(zmq_errno()));
			break;
		}
		if (zmq_msg_size(&m) != a->size) {
			rc = child_fail("zmq message of %zu bytes, expected %zu",
					zmq_msg_size(&m), a->size);
			break;
		}
		d = zmq_msg_data(&m);
		if (load64(d) == END_SEQ) {
			sh->t_end_ns = now_ns();
			break;
		}
		verify_msg(&v, d, a->size, tailx);
	}
	zmq_msg_close(&m);
	sh->v = v;
out:
	if (s) {
		int zero = 0;

		zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
		zmq_close(s);
	}
	zmq_ctx_term(ctx);
	return rc;
}

static int zmq_tp(size_t size, struct tp_run *r)
{
	struct peer_arg a = { .size = size, .rfd = -1, .wfd = -1 };
	char path[96];
	int rc;

	bench_name(path + 5, sizeof(path) - 5, "zmq.ipc");
	memcpy(path, "/tmp/", 5);
	cleanup_add_path(path);
	snprintf(a.endpoint, sizeof(a.endpoint), "ipc://%s", path);
	a.sh = shm_map(sizeof(*a.sh));
	rc = run_pair(zmq_cons, zmq_prod, &a, cfg.warm_s + cfg.tp_s + 20);
	unlink(path);
	if (!rc)
		rc = tp_finish(a.sh, size, 1, r);
	shm_unmap(a.sh, sizeof(*a.sh));
	return rc;
}

int peer_tp(enum tp_kind kind, size_t size, struct tp_run *r)
{
	memset(r, 0, sizeof(*r));
	if (kind == TP_ZMQ)
		return zmq_tp(size, r);
	return stream_tp(kind, size, r);
}
