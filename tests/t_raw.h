/* SPDX-License-Identifier: MIT */
/*
 * t_raw.h — talking to busd below libbus, for the protocol tests: a raw
 * SOCK_SEQPACKET connection, a request built byte by byte, one reply read
 * with any descriptors that came with it closed and counted. Header-only
 * and static (Criterion suites only: it asserts).
 */
#ifndef T_RAW_H
#define T_RAW_H

#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto.h"
#include "t_busd.h"

#define HDR sizeof(struct proto_hdr)

struct rx {
	struct proto_hdr h;
	uint8_t body[PROTO_MSG_MAX];
	size_t blen;
	int nfds;               /* descriptors that came with it (closed) */
};

/* A SOCK_SEQPACKET connection to busd.sock: the descriptor or -errno. */
static inline int raw_connect(const char *bus_dir, int type)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { 5, 0 };
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0), e;
	char path[700];

	if (fd < 0)
		return -errno;
	snprintf(path, sizeof(path), "%s/" PROTO_SOCKET, bus_dir);
	if (strlen(path) >= sizeof(sa.sun_path)) {
		close(fd);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		e = errno;
		close(fd);
		return -e;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static inline int raw_open(const struct t_busd *d)
{
	int fd = raw_connect(d->dir, SOCK_SEQPACKET);

	cr_assert_geq(fd, 0, "connect to %s: %s", d->dir, strerror(-fd));
	return fd;
}

/* A request: header (magic, version 1, status 0) and body. */
static inline size_t mk(void *buf, uint16_t op, uint32_t id, const void *body, size_t blen)
{
	struct proto_hdr h = { PROTO_MAGIC, PROTO_VERSION, op, id, 0 };

	memcpy(buf, &h, HDR);
	if (blen)
		memcpy((uint8_t *)buf + HDR, body, blen);
	return HDR + blen;
}

/* send(): 0 or -errno (children cannot assert). */
static inline int raw_send_r(int fd, const void *buf, size_t n)
{
	ssize_t r = send(fd, buf, n, MSG_NOSIGNAL);

	if (r == (ssize_t)n)
		return 0;
	return r < 0 ? -errno : -EMSGSIZE;
}

static inline void raw_send(int fd, const void *buf, size_t n)
{
	int r = raw_send_r(fd, buf, n);

	cr_assert_eq(r, 0, "send of %zu bytes: %s", n, strerror(-r));
}

/* One packet: its length (0 = hangup), or -errno. Descriptors are closed and
 * counted. */
static inline ssize_t raw_recv(int fd, struct rx *r)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} cb;
	struct iovec iov[2] = { { &r->h, HDR }, { r->body, sizeof(r->body) } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = 2, .msg_control = cb.buf,
			    .msg_controllen = sizeof(cb.buf) };
	ssize_t n;

	memset(&r->h, 0, HDR);
	r->blen = 0;
	r->nfds = 0;
	do
		n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int)), fds[8];

			memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)k);
			for (int i = 0; i < k; i++)
				close(fds[i]);
			r->nfds += k;
		}
	}
	if ((size_t)n > HDR)
		r->blen = (size_t)n - HDR;
	return n;
}

#endif
