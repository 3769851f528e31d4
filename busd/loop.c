/* SPDX-License-Identifier: MIT */
/*
 * loop.c — busd's one event loop, on io_uring.
 *
 * Everything busd waits for is an io_uring operation: a multishot accept on
 * the listening socket, one receive or one send per connection, a read of a
 * signalfd, a timeout (armed only while named cursors are attached, so an
 * idle busd has no timer at all) and a poll on the pidfd of every client
 * adopted after a restart. The loop blocks in io_uring_submit_and_wait()
 * until one of them completes: idle, busd uses no CPU.
 *
 * A connection alternates between two states: a receive is pending, or a
 * send is. busd reads the next request only once the reply to the previous
 * one is on its way, so each connection has at most one operation in flight
 * and a client that floods requests only fills its own socket buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "busd.h"
#include "decode.h"
#include "err.h"
#include "vg.h"

enum kind { K_ACCEPT = 1, K_RECV, K_SEND, K_SIGNAL, K_TIMER, K_PIDFD, K_ACCEPT_PAUSE, K_IGNORE,
	     K_FL_WRITE, K_FL_SYNC, K_FL_TIMER, K_FL_FUTEX, K_FL_SYNCT };

#define RX_MAX REQ_MAX  /* larger than any request; a bigger packet is refused */

static struct io_uring ring;
static struct conn **conns;
static uint32_t nconns;           /* live connections */
static int listen_fd = -1, sig_fd = -1;
static int timer_armed, stopping, accept_armed;
static struct signalfd_siginfo sig_info;
static struct __kernel_timespec timer_ts = { .tv_sec = CURSOR_PERSIST_MS / 1000 };
static struct __kernel_timespec pause_ts = { .tv_nsec = 100 * 1000 * 1000 };

static uint64_t ud(enum kind k, uint32_t id, uint32_t gen)
{
	return (uint64_t)k << 56 | (uint64_t)(gen & 0xffffff) << 32 | id;
}

static struct io_uring_sqe *sqe_get(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

	if (!sqe) {
		io_uring_submit(&ring);
		sqe = io_uring_get_sqe(&ring);
	}
	return sqe; /* never NULL right after a submit */
}

int cred_in_group(const struct conn *c, gid_t g)
{
	for (int i = 0; i < c->ngroups; i++)
		if (c->groups[i] == g)
			return 1;
	return 0;
}

static void arm_accept(void)
{
	struct io_uring_sqe *sqe;

	if (stopping || listen_fd < 0)
		return;
	sqe = sqe_get();
	io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud(K_ACCEPT, 0, 0));
	accept_armed = 1;
}

static void arm_recv(struct conn *c)
{
	struct io_uring_sqe *sqe = sqe_get();

	VG_KERNEL_FILLS(c->rx, RX_MAX + 1);
	io_uring_prep_recv(sqe, c->fd, c->rx, RX_MAX + 1, 0);
	io_uring_sqe_set_data64(sqe, ud(K_RECV, c->id, c->gen));
	c->inflight++;
}

uint32_t loop_watch_pidfd(int pidfd)
{
	static uint32_t next;
	struct io_uring_sqe *sqe = sqe_get();
	uint32_t id = ++next ? next : ++next;

	io_uring_prep_poll_add(sqe, pidfd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud(K_PIDFD, id, 0));
	return id;
}

void loop_unwatch(uint32_t watch)
{
	struct io_uring_sqe *sqe = sqe_get();

	/* The poll completes with -ECANCELED under its own id, which is no
	 * longer registered: topics_pidfd_ready() ignores it. */
	io_uring_prep_poll_remove(sqe, ud(K_PIDFD, watch, 0));
	io_uring_sqe_set_data64(sqe, ud(K_IGNORE, 0, 0));
}

static void arm_timer(void)
{
	struct io_uring_sqe *sqe;

	if (timer_armed || !topics_need_timer())
		return;
	sqe = sqe_get();
	io_uring_prep_timeout(sqe, &timer_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, ud(K_TIMER, 0, 0));
	timer_armed = 1;
}

static void arm_signal(void)
{
	struct io_uring_sqe *sqe = sqe_get();

	VG_KERNEL_FILLS(&sig_info, sizeof(sig_info));
	io_uring_prep_read(sqe, sig_fd, &sig_info, sizeof(sig_info), 0);
	io_uring_sqe_set_data64(sqe, ud(K_SIGNAL, 0, 0));
}

/* ---- the flusher's operations ------------------------------------------- */

/* Flushers by slot; the CQE's user data carries slot and generation, so a
 * completion for a flusher that is gone finds nothing. */
static struct flusher **fls;
static uint32_t *fl_gen;
static uint32_t nfls;

int loop_flusher_add(struct flusher *f)
{
	uint32_t i;

	for (i = 0; i < nfls && fls[i]; i++)
		;
	if (i == nfls) {
		uint32_t n = nfls ? 2 * nfls : 16;
		struct flusher **a = realloc(fls, n * sizeof(*a));
		uint32_t *g;

		if (!a)
			return -ENOMEM;
		fls = a;
		g = realloc(fl_gen, n * sizeof(*g));
		if (!g)
			return -ENOMEM;
		fl_gen = g;
		memset(&fls[nfls], 0, (n - nfls) * sizeof(*fls));
		memset(&fl_gen[nfls], 0, (n - nfls) * sizeof(*fl_gen));
		nfls = n;
	}
	fls[i] = f;
	fl_gen[i]++;
	f->id = i;
	return 0;
}

void loop_flusher_del(struct flusher *f)
{
	if (f->id < nfls && fls[f->id] == f)
		fls[f->id] = NULL;
}

int loop_flushers_busy(void)
{
	for (uint32_t i = 0; i < nfls; i++)
		if (fls[i] && (fls[i]->busy || fls[i]->sync_busy))
			return 1;
	return 0;
}

static uint64_t fl_ud(enum kind k, struct flusher *f)
{
	return ud(k, f->id, fl_gen[f->id]);
}

static struct flusher *fl_of(uint64_t data)
{
	uint32_t id = (uint32_t)data, gen = (uint32_t)(data >> 32) & 0xffffff;

	return id < nfls && fls[id] && (fl_gen[id] & 0xffffff) == gen ? fls[id] : NULL;
}

void loop_flush_write(struct flusher *f, struct iovec *iov, int n, uint64_t off)
{
	struct io_uring_sqe *sqe = sqe_get();

	for (int i = 0; i < n; i++)
		VG_KERNEL_READS(iov[i].iov_base, iov[i].iov_len);
	io_uring_prep_writev(sqe, f->segfd, iov, (unsigned)n, off);
	io_uring_sqe_set_data64(sqe, fl_ud(K_FL_WRITE, f));
}

void loop_flush_sync(struct flusher *f)
{
	struct io_uring_sqe *sqe = sqe_get();

	io_uring_prep_fsync(sqe, f->segfd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data64(sqe, fl_ud(K_FL_SYNC, f));
}

void loop_flush_timer(struct flusher *f, uint64_t ns)
{
	struct io_uring_sqe *sqe = sqe_get();

	f->ts.tv_sec = (long long)(ns / 1000000000ull);
	f->ts.tv_nsec = (long long)(ns % 1000000000ull);
	io_uring_prep_timeout(sqe, &f->ts, 0, 0);
	io_uring_sqe_set_data64(sqe, fl_ud(K_FL_TIMER, f));
}

void loop_flush_sync_timer(struct flusher *f, uint64_t ns)
{
	struct io_uring_sqe *sqe = sqe_get();

	f->sync_ts.tv_sec = (long long)(ns / 1000000000ull);
	f->sync_ts.tv_nsec = (long long)(ns % 1000000000ull);
	io_uring_prep_timeout(sqe, &f->sync_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, fl_ud(K_FL_SYNCT, f));
}

/* FUTEX_WAIT (Linux 6.7+; liburing 2.3 has no helper, so the SQE is filled
 * as io_uring_prep_futex_wait() would: fd = FUTEX2 flags, addr = the word,
 * off = the value, addr3 = the mask), linked to a timeout that bounds it. */
#define OP_FUTEX_WAIT 51
#define FUTEX2_U32    0x02
void loop_flush_futex(struct flusher *f, _Atomic uint32_t *word, uint32_t val, int bound_s)
{
	static struct __kernel_timespec bound;
	struct io_uring_sqe *sqe = sqe_get();

	io_uring_prep_rw(OP_FUTEX_WAIT, sqe, FUTEX2_U32, (const void *)word, 0, val);
	sqe->addr3 = 0xffffffffull;
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data64(sqe, fl_ud(K_FL_FUTEX, f));
	bound.tv_sec = bound_s;
	sqe = sqe_get();
	io_uring_prep_link_timeout(sqe, &bound, 0);
	io_uring_sqe_set_data64(sqe, ud(K_IGNORE, 0, 0));
}

void loop_flush_cancel(struct flusher *f)
{
	struct io_uring_sqe *sqe;

	if (f->futex_armed) {
		sqe = sqe_get();
		io_uring_prep_cancel64(sqe, fl_ud(K_FL_FUTEX, f), 0);
		io_uring_sqe_set_data64(sqe, ud(K_IGNORE, 0, 0));
	}
	if (f->timer_armed) {
		sqe = sqe_get();
		io_uring_prep_timeout_remove(sqe, fl_ud(K_FL_TIMER, f), 0);
		io_uring_sqe_set_data64(sqe, ud(K_IGNORE, 0, 0));
	}
	if (f->sync_timer_armed) {
		sqe = sqe_get();
		io_uring_prep_timeout_remove(sqe, fl_ud(K_FL_SYNCT, f), 0);
		io_uring_sqe_set_data64(sqe, ud(K_IGNORE, 0, 0));
	}
}

/* ---- connections -------------------------------------------------------- */

/* release: the client is gone, so are its leases and slots. Not at
 * shutdown: clients outlive busd and the next one adopts them. */
static void conn_free(struct conn *c, int release)
{
	if (release)
		topics_conn_gone(c);
	else
		while (c->nhandles)
			topics_drop_handle(c, c->nhandles - 1);
	if (c->fd >= 0)
		close(c->fd);
	for (int i = 0; i < c->tx_nfds; i++)
		close(c->tx_fds[i]);
	conns[c->id] = NULL;
	nconns--;
	free(c->handles);
	free(c->groups);
	free(c->rx);
	free(c->tx);
	free(c);
}

static void conn_new(int fd)
{
	static uint32_t gen;
	struct ucred cr;
	socklen_t len = sizeof(cr);
	struct conn *c;
	uint32_t id;

	if (nconns >= cfg.max_clients) {
		log_warn("refusing a connection: %u clients connected, the limit "
			 "(--max-clients)", nconns);
		close(fd);
		return;
	}
	for (id = 0; id < cfg.max_clients && conns[id]; id++)
		;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		log_warn("refusing a connection without credentials: %s", strerror(errno));
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->rx = malloc(RX_MAX + 1)) || !(c->tx = malloc(PROTO_MSG_MAX))) {
		log_err("out of memory for a new connection");
		if (c)
			free(c->rx);
		free(c);
		close(fd);
		return;
	}
	c->fd = fd;
	c->id = id;
	c->gen = ++gen;
	c->pid = cr.pid;
	c->uid = cr.uid;
	c->gid = cr.gid;
	/* Supplementary groups, however many: ask for the size first. */
	len = 0;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, NULL, &len) < 0 && errno == ERANGE && len) {
		c->groups = malloc(len);
		if (c->groups && getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, c->groups, &len) == 0)
			c->ngroups = (int)(len / sizeof(gid_t));
	}
	conns[id] = c;
	nconns++;
	log_debug("connection from pid %d uid %u", (int)c->pid, (unsigned)c->uid);
	arm_recv(c);
}

int loop_conn_gone_now(struct conn *c)
{
	struct pollfd p = { c->fd, POLLRDHUP, 0 };

	/* Only while a receive is armed: a send in flight still reads c->tx. */
	if (c->sending || poll(&p, 1, 0) != 1 || !(p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
		return 0;
	/* The armed receive completes later and finds no connection under its
	 * generation: ignored. */
	log_debug("pid %d hung up (noticed early)", (int)c->pid);
	conn_free(c, 1);
	return 1;
}

/* ---- requests ----------------------------------------------------------- */

static void send_reply(struct conn *c, const struct proto_hdr *qh, struct reply *r)
{
	struct proto_hdr *h = (struct proto_hdr *)c->tx;
	struct io_uring_sqe *sqe;
	size_t len;

	h->magic = PROTO_MAGIC;
	h->version = PROTO_VERSION;
	h->op = qh ? qh->op : 0;
	h->id = qh ? qh->id : 0;
	h->status = r->status;
	if (r->status < 0) {
		size_t n = strlen(r->msg) + 1;

		memcpy(c->tx + sizeof(*h), r->msg, n);
		len = sizeof(*h) + n;
		for (int i = 0; i < r->nfds; i++)
			close(r->fds[i]);
		r->nfds = 0;
	} else {
		len = sizeof(*h) + r->len;
	}
	c->tx_len = len;
	c->tx_nfds = r->nfds;
	memcpy(c->tx_fds, r->fds, sizeof(r->fds));
	memset(&c->msg, 0, sizeof(c->msg));
	c->iov.iov_base = c->tx;
	c->iov.iov_len = len;
	c->msg.msg_iov = &c->iov;
	c->msg.msg_iovlen = 1;
	if (c->tx_nfds) {
		struct cmsghdr *cm;

		c->msg.msg_control = c->cbuf;
		c->msg.msg_controllen = sizeof(c->cbuf_u);
		cm = CMSG_FIRSTHDR(&c->msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)c->tx_nfds);
		memcpy(CMSG_DATA(cm), c->tx_fds, sizeof(int) * (size_t)c->tx_nfds);
		c->msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)c->tx_nfds);
	}
	VG_KERNEL_READS(c->tx, len);
	if (c->tx_nfds)
		VG_KERNEL_READS(c->msg.msg_control, c->msg.msg_controllen);
	sqe = sqe_get();
	io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud(K_SEND, c->id, c->gen));
	c->inflight++;
	c->sending = 1;
}

/* A request that cannot be decoded: say why, then hang up. */
static void malformed(struct conn *c, const struct proto_hdr *qh, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void malformed(struct conn *c, const struct proto_hdr *qh, int err, const char *fmt, ...)
{
	struct reply r = { 0 };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r.msg, sizeof(r.msg), fmt, ap);
	va_end(ap);
	r.status = -err;
	log_notice("pid %d: %s; closing its connection", (int)c->pid, r.msg);
	c->close_after_send = 1;
	send_reply(c, qh, &r);
}

static void handle_request(struct conn *c, size_t n)
{
	struct req_decoded d;
	struct reply r = { 0 };
	size_t room = PROTO_MSG_MAX - sizeof(struct proto_hdr);
	int e;

	e = req_decode(c->rx, n, c->hello, &d, r.msg, sizeof(r.msg));
	if (e < 0) {
		malformed(c, d.have_hdr ? &d.hdr : NULL, -e, "%s", r.msg);
		return;
	}
	r.body = c->tx + sizeof(struct proto_hdr);
	switch (d.hdr.op) {
	case OP_HELLO: {
		struct rep_hello *h = (struct rep_hello *)r.body;

		memset(h, 0, sizeof(*h));
		h->version = PROTO_VERSION;
		h->busd_pid = (uint32_t)getpid();
		h->max_handles = MAX_HANDLES;
		memcpy(h->bus_id, cfg.bus_id, 16);
		r.len = sizeof(*h);
		c->hello = 1;
		break;
	}
	case OP_PING:
		break;
	case OP_CREATE:
		op_create(c, &d.q.create, &r);
		break;
	case OP_DELETE:
		op_delete(c, &d.q.topic, &r);
		break;
	case OP_OPEN_PUB:
		op_open_pub(c, &d.q.open, &r);
		break;
	case OP_OPEN_SUB:
		op_open_sub(c, &d.q.open, &r);
		break;
	case OP_CLOSE_PUB:
		op_close_pub(c, &d.q.topic, &r);
		break;
	case OP_CLOSE_SUB:
		op_close_sub(c, &d.q.close_sub, &r);
		break;
	case OP_LIST:
		op_list(c, &d.q.list, &r, room);
		break;
	case OP_STAT:
		op_stat(c, &d.q.topic, &r, room);
		break;
	case OP_OPEN_LOG:
		op_open_log(c, &d.q.topic, &r);
		break;
	}
	if (r.status < 0)
		log_debug("pid %d: op %u: %s", (int)c->pid, d.hdr.op, r.msg);
	send_reply(c, &d.hdr, &r);
}

/* ---- the loop ----------------------------------------------------------- */

static struct conn *conn_of(uint64_t data)
{
	uint32_t id = (uint32_t)data, gen = (uint32_t)(data >> 32) & 0xffffff;
	struct conn *c = id < cfg.max_clients ? conns[id] : NULL;

	return c && (c->gen & 0xffffff) == gen ? c : NULL;
}

static void on_cqe(struct io_uring_cqe *cqe)
{
	uint64_t data = io_uring_cqe_get_data64(cqe);
	enum kind k = (enum kind)(data >> 56);
	struct conn *c;
	int res = cqe->res;

	switch (k) {
	case K_ACCEPT:
		if (res >= 0) {
			conn_new(res);
		} else if (res != -ECANCELED && !stopping) {
			log_warn("accept: %s", strerror(-res));
			if (res == -EMFILE || res == -ENFILE) {
				/* Out of descriptors: back off instead of spinning. */
				struct io_uring_sqe *sqe = sqe_get();

				io_uring_prep_timeout(sqe, &pause_ts, 0, 0);
				io_uring_sqe_set_data64(sqe, ud(K_ACCEPT_PAUSE, 0, 0));
				accept_armed = 0;
				break;
			}
		}
		if (!(cqe->flags & IORING_CQE_F_MORE)) {
			accept_armed = 0;
			arm_accept();
		}
		break;
	case K_ACCEPT_PAUSE:
		if (!accept_armed)
			arm_accept();
		break;
	case K_RECV:
		if (!(c = conn_of(data)))
			break;
		c->inflight--;
		if (res <= 0) {
			log_debug("pid %d disconnected%s%s", (int)c->pid, res < 0 ? ": " : "",
				  res < 0 ? strerror(-res) : "");
			conn_free(c, 1); /* hangup: its leases and slots go with it */
			break;
		}
		VG_KERNEL_WROTE(c->rx, (size_t)res);
		handle_request(c, (size_t)res);
		break;
	case K_SEND:
		if (!(c = conn_of(data)))
			break;
		c->inflight--;
		c->sending = 0;
		for (int i = 0; i < c->tx_nfds; i++)
			close(c->tx_fds[i]);
		c->tx_nfds = 0;
		if (res < 0 || c->close_after_send) {
			if (res < 0)
				log_debug("pid %d: send failed: %s", (int)c->pid, strerror(-res));
			conn_free(c, 1);
			break;
		}
		arm_recv(c);
		break;
	case K_SIGNAL:
		if (res > 0)
			VG_KERNEL_WROTE(&sig_info, (size_t)res);
		if (res == (int)sizeof(sig_info)) {
			if (sig_info.ssi_signo == SIGHUP) {
				log_info("SIGHUP: reopening the log file");
				log_reopen();
			} else {
				log_notice("%s: shutting down",
					   sig_info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
				stopping = 1;
				break;
			}
		}
		arm_signal();
		break;
	case K_TIMER:
		timer_armed = 0;
		topics_persist(0);
		break;
	case K_PIDFD:
		topics_pidfd_ready((uint32_t)data);
		break;
	case K_IGNORE:
		break;
	case K_FL_WRITE:
	case K_FL_SYNC:
	case K_FL_TIMER:
	case K_FL_SYNCT:
	case K_FL_FUTEX: {
		struct flusher *f = fl_of(data);

		if (!f)
			break;
		if (k == K_FL_WRITE)
			flush_write_done(f, res);
		else if (k == K_FL_SYNC)
			flush_sync_done(f, res);
		else if (k == K_FL_TIMER)
			flush_timer_done(f);
		else if (k == K_FL_SYNCT)
			flush_sync_timer_done(f);
		else
			flush_futex_done(f, res);
		break;
	}
	}
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_err("socket path %s is too long for a UNIX socket (%zu bytes max)", path,
			sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* We hold the instance lock: a socket file here is a dead busd's. */
	unlink(path);
	/* Bind under a umask that gives the socket its mode atomically (no
	 * window in which it is more open than asked). */
	old = umask(~cfg.socket_mode & 0777);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		umask(old);
		log_err("cannot bind %s: %s", path, strerror(e));
		close(fd);
		return -e;
	}
	umask(old);
	if (chmod(path, cfg.socket_mode) < 0 || listen(fd, 128) < 0) {
		int e = errno;

		log_err("cannot listen on %s: %s", path, strerror(e));
		close(fd);
		unlink(path);
		return -e;
	}
	return fd;
}

int loop_init(void)
{
	int r = io_uring_queue_init(256, &ring, 0);

	if (r < 0) {
		log_err("io_uring_queue_init: %s%s", strerror(-r),
			r == -EPERM ? " (is io_uring disabled? /proc/sys/kernel/io_uring_disabled)"
				    : "");
		return r;
	}
	conns = calloc(cfg.max_clients, sizeof(*conns));
	return conns ? 0 : -ENOMEM;
}

int loop_run(void (*ready)(void))
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sig_fd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sig_fd < 0) {
		log_err("signalfd: %s", strerror(errno));
		return -errno;
	}
	listen_fd = listen_on(cfg.sock_path);
	if (listen_fd < 0)
		return listen_fd;
	arm_signal();
	arm_accept();
	ready();
	while (!stopping) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		int r;

		arm_timer();
		r = io_uring_submit_and_wait(&ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			log_err("io_uring_submit_and_wait: %s", strerror(-r));
			break;
		}
		io_uring_for_each_cqe(&ring, head, cqe) {
			on_cqe(cqe);
			n++;
		}
		io_uring_cq_advance(&ring, n);
	}
	close(listen_fd);
	listen_fd = -1;
	unlink(cfg.sock_path);
	/* Let the log writes in flight finish: the final flush continues
	 * synchronously from where they end. */
	while (loop_flushers_busy()) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;

		int r = io_uring_submit_and_wait(&ring, 1);  /* -errno, not errno */

		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
			break;
		io_uring_for_each_cqe(&ring, head, cqe) {
			on_cqe(cqe);
			n++;
		}
		io_uring_cq_advance(&ring, n);
	}
	return 0;
}

void loop_fini(void)
{
	for (uint32_t i = 0; conns && i < cfg.max_clients; i++)
		if (conns[i])
			conn_free(conns[i], 0);
	free(conns);
	conns = NULL;
	/* Every flusher is gone (topics_fini): only the tables are left. */
	free(fls);
	free(fl_gen);
	fls = NULL;
	fl_gen = NULL;
	nfls = 0;
	if (sig_fd >= 0)
		close(sig_fd);
	io_uring_queue_exit(&ring);
}
