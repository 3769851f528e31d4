/* SPDX-License-Identifier: MIT */
/*
 * client.c — the control-plane client: a connection to busd (proto.h).
 *
 * Requests are synchronous and serialised by the connection's mutex. The
 * data path never comes here: a bus_pub or bus_sub opened through a
 * connection is the same object as one opened directly, plus a link that
 * lets the connection re-register it with a new busd.
 *
 * Reconnecting is the library's job. Each connection has a watcher thread
 * that sleeps in poll() for a hangup of the socket (POLLRDHUP: busd never
 * sends anything unasked, so there is nothing to read and the thread never
 * competes with a request for a reply). When busd goes away the watcher
 * reconnects with backoff and re-registers every producer lease and
 * consumer slot held through the connection (OPEN_* with reclaim = 1); the
 * application sees nothing. Requests made while busd is away try to
 * connect once themselves and fail with a message if they cannot.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "err.h"
#include "proto.h"
#include "ring.h"

#define REPLY_TIMEOUT_S   10        /* busd answers in microseconds */
#define LOCK_WAIT_NS      2000000000ll
#define BACKOFF_MIN_MS    10
#define BACKOFF_MAX_MS    500

struct bus_link {
	struct bus *bus;
	struct bus_link *next, *prev;
	int is_pub;
	uint32_t slot;
	char topic[PROTO_NAME_MAX + 1];
	char group[PROTO_NAME_MAX + 1];
};

struct bus {
	pthread_mutex_t lock;       /* requests, fd, links */
	int fd;                     /* -1 while busd is away */
	uint64_t gen;               /* bumps on every new connection */
	uint32_t next_id;
	uint32_t busd_pid;
	int stop_fd;                /* eventfd: tells the watcher to exit */
	pid_t pid;                  /* the process that connected (fork check) */
	pthread_t watcher;
	int have_watcher;
	struct bus_link *links;
	char dir[4096];
	char sock[4200];
	uint8_t rx[PROTO_MSG_MAX];
	uint8_t tx[1024];
};

/* ---- wire ---------------------------------------------------------------- */

static void put_name(struct proto_name *n, const char *s)
{
	size_t len = s ? strlen(s) : 0;

	memset(n, 0, sizeof(*n));
	n->len = (uint16_t)len;
	if (len)
		memcpy(n->s, s, len);
}

static void take_name(char *out, const struct proto_name *n)
{
	uint16_t len = n->len > PROTO_NAME_MAX ? PROTO_NAME_MAX : n->len;

	memcpy(out, n->s, len);
	out[len] = 0;
}

static int check_name(const char *s, const char *what)
{
	if (!s)
		return bus_err(EINVAL, "%s name is NULL", what);
	return proto_name_check(s, (uint32_t)strnlen(s, PROTO_NAME_MAX + 1), what);
}

static void drop_fd(struct bus *b)
{
	if (b->fd >= 0) {
		/* shutdown first: the watcher polls a duplicate of the socket,
		 * and only shutdown reaches every duplicate. */
		shutdown(b->fd, SHUT_RDWR);
		close(b->fd);
	}
	b->fd = -1;
}

/* One request/reply on the current socket. Returns the reply's status (0 or
 * -errno from busd, with its message), or -errno of the transport with
 * *transport set. fds[] receives up to 2 descriptors. */
static int exchange(struct bus *b, uint16_t op, const void *body, size_t len, void *rep,
		    size_t rep_size, size_t *got, int *fds, int *nfds, int *transport)
{
	struct proto_hdr *h = (struct proto_hdr *)b->tx;
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} cb;
	struct iovec iov = { b->rx, sizeof(b->rx) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.buf,
			    .msg_controllen = sizeof(cb.buf) };
	struct proto_hdr rh;
	uint32_t id = ++b->next_id;
	ssize_t n;

	*transport = 1;  /* until the send succeeds: the request never left */
	if (nfds)
		*nfds = 0;
	h->magic = PROTO_MAGIC;
	h->version = PROTO_VERSION;
	h->op = op;
	h->id = id;
	h->status = 0;
	if (len)
		memcpy(b->tx + sizeof(*h), body, len);
	if (send(b->fd, b->tx, sizeof(*h) + len, MSG_NOSIGNAL) < 0) {
		int e = errno;

		/* A busd refusing the connection may have closed it before our
		 * HELLO arrived, leaving its reason queued (see below). */
		if (op != OP_HELLO || (e != EPIPE && e != ECONNRESET) ||
		    (n = recvmsg(b->fd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT)) <= 0)
			return bus_err(e, "cannot send to busd at %s: %s", b->sock, strerror(e));
		goto got;
	}
	*transport = 2;  /* from here on busd may have acted on it */
	for (;;) {
		n = recvmsg(b->fd, &m, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return bus_err(ETIMEDOUT, "busd at %s did not answer within %d s", b->sock,
				       REPLY_TIMEOUT_S);
		if (n < 0 && errno == ECONNRESET) {
			/* The reset is reported before what the peer queued: a
			 * busd refusing the connection may have left its reason. */
			if (op == OP_HELLO &&
			    (n = recvmsg(b->fd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT)) > 0)
				break;
			/* On a UNIX socket this means the peer closed with our
			 * request unread in its queue (a killed busd's socket is
			 * released after the process, when its io_uring is torn
			 * down): it never reached busd, so it may be sent again. */
			*transport = 1;
			return bus_err(ECONNRESET, "busd at %s went away before reading the request",
				       b->sock);
		}
		if (n < 0)
			return bus_err(errno, "cannot receive from busd at %s: %s", b->sock,
				       strerror(errno));
		if (n == 0)
			return bus_err(ECONNRESET, "busd at %s closed the connection", b->sock);
		break;
	}
got:
	/* Descriptors first: whatever else is wrong, they must not leak. */
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int tmp[4];

		memcpy(tmp, CMSG_DATA(c), sizeof(int) * (size_t)(k > 4 ? 4 : k));
		for (int i = 0; i < k && i < 4; i++) {
			if (fds && nfds && *nfds < 3)
				fds[(*nfds)++] = tmp[i];
			else
				close(tmp[i]);
		}
	}
	if ((size_t)n < sizeof(rh))
		goto bad;
	memcpy(&rh, b->rx, sizeof(rh));
	/* A busd that refuses the connection (it serves --max-clients
	 * already) may say why before it closes: an error answer to the HELLO
	 * it never read, with id 0. */
	if (rh.magic == PROTO_MAGIC && op == OP_HELLO && rh.op == OP_HELLO && rh.id == 0 &&
	    rh.status < 0)
		rh.id = id;
	/* A status is 0 or -errno: anything below -4095 (INT32_MIN, whose
	 * negation overflows) is not an answer of busd's. */
	if (rh.magic != PROTO_MAGIC || rh.op != op || rh.id != id || rh.status < -4095)
		goto bad;
	*transport = 0;
	if (rh.status < 0) {
		char msg[PROTO_ERR_MAX];
		size_t ml = (size_t)n - sizeof(rh);

		if (ml >= sizeof(msg))
			ml = sizeof(msg) - 1;
		memcpy(msg, b->rx + sizeof(rh), ml);
		msg[ml] = 0;
		if (nfds)
			for (; *nfds > 0; (*nfds)--)
				close(fds[*nfds - 1]);
		return bus_err(-rh.status, "%s", msg[0] ? msg : strerror(-rh.status));
	}
	if (got)
		*got = (size_t)n - sizeof(rh);
	else if ((size_t)n - sizeof(rh) < rep_size)
		goto bad;
	if (rep)
		memcpy(rep, b->rx + sizeof(rh),
		       (size_t)n - sizeof(rh) < rep_size ? (size_t)n - sizeof(rh) : rep_size);
	return 0;
bad:
	*transport = 2;
	if (nfds)
		for (; *nfds > 0; (*nfds)--)
			close(fds[*nfds - 1]);
	return bus_err(EPROTO, "busd at %s sent a reply this libbus cannot read", b->sock);
}

/* Re-register what this connection holds with a new busd. */
static void reclaim_all(struct bus *b)
{
	for (struct bus_link *l = b->links; l; l = l->next) {
		struct req_open q;
		int transport, r;

		memset(&q, 0, sizeof(q));
		put_name(&q.topic, l->topic);
		if (!l->is_pub)
			put_name(&q.group, l->group);
		q.slot = l->is_pub ? PROTO_NEW_SLOT : l->slot;
		q.reclaim = 1;
		r = exchange(b, l->is_pub ? OP_OPEN_PUB : OP_OPEN_SUB, &q, sizeof(q), NULL, 0,
			     NULL, NULL, NULL, &transport);
		if (r < 0 && transport)
			return; /* the watcher will try again */
		/* A refused reclaim (the topic was deleted meanwhile, say) leaves
		 * the object working on its mapping; nothing more to do. */
	}
}

/* Is busd.lock held, i.e. is a busd serving this bus? (1 when unsure.) */
static int lock_held(const struct bus *b)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char path[sizeof(b->dir) + 16];
	int fd, r;

	snprintf(path, sizeof(path), "%s/" PROTO_LOCK, b->dir);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : 1;
	r = fcntl(fd, F_OFD_GETLK, &fl);
	close(fd);
	return r < 0 || fl.l_type != F_UNLCK;
}

/* Connect and say HELLO. Called with the lock held. */
static int connect_locked(struct bus *b)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { REPLY_TIMEOUT_S, 0 };
	struct req_hello q = { 1, PROTO_VERSION, 0, 0 };
	struct rep_hello rep;
	int fd, r, transport;

	if (strlen(b->sock) >= sizeof(sa.sun_path))
		return bus_err(ENAMETOOLONG, "socket path %s is too long", b->sock);
	strcpy(sa.sun_path, b->sock);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return bus_err(errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		if (e == ENOENT || e == ECONNREFUSED)
			return bus_err(e, "no busd is running for the bus %s (%s %s); start one "
				       "with 'busd --bus %s' (or 'make run' for the per-user bus)",
				       b->dir, b->sock, e == ENOENT ? "does not exist" :
				       "refuses connections", b->dir);
		return bus_err(e, "cannot connect to busd at %s: %s", b->sock, strerror(e));
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	b->fd = fd;
	r = exchange(b, OP_HELLO, &q, sizeof(q), &rep, sizeof(rep), NULL, NULL, NULL, &transport);
	if (r < 0) {
		drop_fd(b);
		if ((r == -ECONNRESET || r == -EPIPE) && !lock_held(b))
			/* A busd that just died: its io_uring holds the listening
			 * socket for a few ms more, so connect() succeeded. */
			return bus_err(ECONNREFUSED, "no busd is running for the bus %s (it has just "
				       "exited); start one with 'busd --bus %s' (or 'make run' for "
				       "the per-user bus)", b->dir, b->dir);
		if (r == -ECONNRESET || r == -EPIPE)
			return bus_err(ECONNRESET, "busd at %s closed the connection before "
				       "answering: it refuses clients beyond its limit (busd "
				       "--max-clients N, default 1024; its log says 'refusing a "
				       "connection') or was stopping", b->sock);
		return r;
	}
	b->busd_pid = rep.busd_pid;
	b->gen++;
	reclaim_all(b);
	return 0;
}

static int forked(const struct bus *b)
{
	if (getpid() == b->pid)
		return 0;
	return bus_err(ECHILD, "this bus connection belongs to pid %d; after fork(), call "
		       "bus_connect() in the child", (int)b->pid);
}

/* A request, sent again on a fresh connection if it never reached busd
 * (busd restarted since the last request). One that reached busd is not
 * repeated: busd may have acted on it before it went away. Lock held. */
static int call_locked(struct bus *b, uint16_t op, const void *body, size_t len, void *rep,
		       size_t rep_size, size_t *got, int *fds, int *nfds)
{
	int r = 0, transport = 1;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (b->fd < 0) {
			r = connect_locked(b);
			if (r < 0)
				return r;
		}
		r = exchange(b, op, body, len, rep, rep_size, got, fds, nfds, &transport);
		if (!transport)
			return r;
		drop_fd(b);
		if (transport == 2)
			return bus_err(ECONNRESET, "busd at %s went away while handling the "
				       "request; it may or may not have been carried out", b->sock);
	}
	return r;
}

static int call(struct bus *b, uint16_t op, const void *body, size_t len, void *rep,
		size_t rep_size, size_t *got, int *fds, int *nfds)
{
	int r;

	if ((r = forked(b)) < 0)
		return r;
	pthread_mutex_lock(&b->lock);
	r = call_locked(b, op, body, len, rep, rep_size, got, fds, nfds);
	pthread_mutex_unlock(&b->lock);
	return r;
}

/* ---- the watcher ------------------------------------------------------- */

static void *watcher(void *arg)
{
	struct bus *b = arg;
	int backoff = BACKOFF_MIN_MS;

	for (;;) {
		struct pollfd p[2] = { { -1, POLLRDHUP, 0 }, { b->stop_fd, POLLIN, 0 } };
		uint64_t gen;
		int wfd = -1;

		pthread_mutex_lock(&b->lock);
		if (b->fd < 0) {
			if (connect_locked(b) == 0)
				backoff = BACKOFF_MIN_MS;
		}
		if (b->fd >= 0)
			wfd = fcntl(b->fd, F_DUPFD_CLOEXEC, 0);
		gen = b->gen;
		pthread_mutex_unlock(&b->lock);

		p[0].fd = wfd;
		if (poll(p, 2, wfd >= 0 ? -1 : backoff) < 0 && errno != EINTR) {
			if (wfd >= 0)
				close(wfd);
			continue;
		}
		if (wfd >= 0)
			close(wfd);
		if (p[1].revents)
			return NULL;
		if (wfd < 0) {
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
			continue;
		}
		if (p[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
			/* busd went away: forget the socket, unless a request
			 * already replaced it. */
			pthread_mutex_lock(&b->lock);
			if (b->gen == gen && b->fd >= 0)
				drop_fd(b);
			pthread_mutex_unlock(&b->lock);
			backoff = BACKOFF_MIN_MS;
		}
	}
}

/* ---- public ------------------------------------------------------------- */

BUS_EXPORT int bus_default_address(char *buf, size_t size)
{
	if (!buf || !size)
		return bus_err(EINVAL, "bus_default_address: no buffer");
	return addr_default(buf, size);
}

BUS_EXPORT int bus_connect(const char *address, struct bus **out)
{
	struct bus *b;
	sigset_t all, old;
	int r;

	if (!out)
		return bus_err(EINVAL, "bus_connect: no result pointer");
	*out = NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return bus_err(ENOMEM, "out of memory");
	b->fd = -1;
	b->stop_fd = -1;
	if (address && *address) {
		if (strlen(address) >= sizeof(b->dir)) {
			free(b);
			return bus_err(ENAMETOOLONG, "bus address is too long");
		}
		strcpy(b->dir, address);
	} else if ((r = addr_default(b->dir, sizeof(b->dir))) < 0) {
		free(b);
		return r;
	}
	/* Reconnects happen later, from another thread: a relative address
	 * must not depend on the working directory then. */
	if (b->dir[0] != '/') {
		char cwd[4096], abs[sizeof(b->dir)];

		if (!getcwd(cwd, sizeof(cwd)) ||
		    snprintf(abs, sizeof(abs), "%s/%s", cwd, b->dir) >= (int)sizeof(abs)) {
			r = bus_err(ENAMETOOLONG, "bus address %s: cannot make it absolute", b->dir);
			free(b);
			return r;
		}
		strcpy(b->dir, abs);
	}
	b->pid = getpid();
	snprintf(b->sock, sizeof(b->sock), "%s/" PROTO_SOCKET, b->dir);
	pthread_mutex_init(&b->lock, NULL);
	pthread_mutex_lock(&b->lock);
	r = connect_locked(b);
	pthread_mutex_unlock(&b->lock);
	if (r < 0)
		goto fail;
	b->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (b->stop_fd < 0) {
		r = bus_err(errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	/* The watcher takes no signals: they belong to the application. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&b->watcher, NULL, watcher, b);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		r = bus_err(r, "cannot start the reconnect thread: %s", strerror(r));
		goto fail;
	}
	b->have_watcher = 1;
	*out = b;
	bus_err_clear();
	return 0;
fail:
	drop_fd(b);
	if (b->stop_fd >= 0)
		close(b->stop_fd);
	pthread_mutex_destroy(&b->lock);
	free(b);
	return r;
}

BUS_EXPORT void bus_disconnect(struct bus *b)
{
	uint64_t one = 1;

	if (!b)
		return;
	if (getpid() != b->pid) {
		/* A child's copy: the socket, the eventfd and the watcher are
		 * the parent's. Close our descriptors (no shutdown: that would
		 * cut the parent's connection) and forget the rest. */
		for (struct bus_link *l = b->links; l; l = l->next)
			l->bus = NULL;
		if (b->fd >= 0)
			close(b->fd);
		close(b->stop_fd);
		free(b);
		return;
	}
	if (b->have_watcher) {
		if (write(b->stop_fd, &one, sizeof(one)) != sizeof(one))
			abort(); /* an eventfd write of 1 cannot fail */
		pthread_join(b->watcher, NULL);
	}
	pthread_mutex_lock(&b->lock);
	drop_fd(b);
	/* Objects still open keep working on their mappings; they no longer
	 * belong to a connection. */
	for (struct bus_link *l = b->links, *n; l; l = n) {
		n = l->next;
		l->bus = NULL;
		l->next = l->prev = NULL;
	}
	b->links = NULL;
	pthread_mutex_unlock(&b->lock);
	close(b->stop_fd);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

BUS_EXPORT const char *bus_address(const struct bus *b)
{
	return b->dir;
}

BUS_EXPORT int bus_ping(struct bus *b)
{
	int r = call(b, OP_PING, NULL, 0, NULL, 0, NULL, NULL, NULL);

	if (r == 0)
		bus_err_clear();
	return r;
}

BUS_EXPORT int bus_create(struct bus *b, const char *topic, const struct bus_topic_opts *o)
{
	struct req_create q;
	int r;

	if ((r = check_name(topic, "topic")) < 0)
		return r;
	memset(&q, 0, sizeof(q));
	put_name(&q.topic, topic);
	if (o) {
		q.mode = o->mode;
		q.ring_size = o->ring_size;
		q.max_event = o->max_event;
		q.max_consumers = o->max_consumers;
		q.flags = o->flags;
		q.first_seq = o->first_seq;
		q.fsync = o->fsync;
		q.dur[0] = o->fsync_interval_ns;
		q.dur[1] = o->fsync_bytes;
		q.dur[2] = o->linger_ns;
		q.dur[3] = o->batch_bytes;
		q.dur[4] = o->segment_bytes;
		q.dur[5] = o->retain_bytes;
		q.dur[6] = o->retain_age_ns;
	}
	r = call(b, OP_CREATE, &q, sizeof(q), NULL, 0, NULL, NULL, NULL);
	if (r == 0)
		bus_err_clear();
	return r;
}

BUS_EXPORT int bus_delete(struct bus *b, const char *topic)
{
	struct req_topic q;
	int r;

	if ((r = check_name(topic, "topic")) < 0)
		return r;
	memset(&q, 0, sizeof(q));
	put_name(&q.topic, topic);
	r = call(b, OP_DELETE, &q, sizeof(q), NULL, 0, NULL, NULL, NULL);
	if (r == 0)
		bus_err_clear();
	return r;
}

static struct bus_link *link_new(struct bus *b, const char *topic, const char *group, int is_pub)
{
	struct bus_link *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->bus = b;
	l->is_pub = is_pub;
	snprintf(l->topic, sizeof(l->topic), "%s", topic);
	snprintf(l->group, sizeof(l->group), "%s", group ? group : "");
	return l;
}

/* Lock held. */
static void link_add(struct bus *b, struct bus_link *l)
{
	l->next = b->links;
	if (b->links)
		b->links->prev = l;
	b->links = l;
}

int client_release(struct bus_link *l)
{
	struct bus *b = l->bus;
	int done = 0;

	if (b && getpid() != b->pid)
		b = NULL;  /* a forked child: the connection is the parent's */
	if (b) {
		pthread_mutex_lock(&b->lock);
		if (l->prev)
			l->prev->next = l->next;
		else
			b->links = l->next;
		if (l->next)
			l->next->prev = l->prev;
		if (b->fd >= 0) {
			/* No retry on a new connection: a new busd adopted the
			 * slot or lease and frees it when our pid exits... or
			 * the watcher reclaimed it, and then this close is
			 * owed. Try once; the hangup path covers the rest. */
			int transport, rr;

			if (l->is_pub) {
				struct req_topic q;

				memset(&q, 0, sizeof(q));
				put_name(&q.topic, l->topic);
				rr = exchange(b, OP_CLOSE_PUB, &q, sizeof(q), NULL, 0, NULL, NULL,
					      NULL, &transport);
			} else {
				struct req_close_sub q;

				memset(&q, 0, sizeof(q));
				put_name(&q.topic, l->topic);
				q.slot = l->slot;
				rr = exchange(b, OP_CLOSE_SUB, &q, sizeof(q), NULL, 0, NULL, NULL,
					      NULL, &transport);
			}
			/* Only a success means busd freed the slot; an error
			 * reply (it did not know the slot) leaves it to us. */
			if (transport)
				drop_fd(b);
			else
				done = rr == 0;
		}
		pthread_mutex_unlock(&b->lock);
	}
	free(l);
	return done;
}

BUS_EXPORT int bus_pub_attach(struct bus *b, const char *topic, struct bus_pub **out)
{
	struct req_open q;
	struct bus_link *l;
	int fds[3], nfds = 0, r;

	if (!out)
		return bus_err(EINVAL, "bus_pub_attach: no result pointer");
	*out = NULL;
	if ((r = check_name(topic, "topic")) < 0)
		return r;
	memset(&q, 0, sizeof(q));
	put_name(&q.topic, topic);
	q.slot = PROTO_NEW_SLOT;
	if ((r = forked(b)) < 0)
		return r;
	if (!(l = link_new(b, topic, NULL, 1)))
		return bus_err(ENOMEM, "out of memory");
	pthread_mutex_lock(&b->lock);
	r = call_locked(b, OP_OPEN_PUB, &q, sizeof(q), NULL, 0, NULL, fds, &nfds);
	if (r == 0 && nfds != 2) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		r = bus_err(EPROTO, "busd granted '%s' without its descriptors", topic);
	}
	if (r == 0)
		link_add(b, l); /* before the lock is dropped: a reconnect reclaims it */
	pthread_mutex_unlock(&b->lock);
	if (r < 0) {
		free(l);
		return r;
	}
	r = pub_open_fds(topic, fds[0], fds[1], LOCK_WAIT_NS, out);
	if (r < 0) {
		char why[256];

		snprintf(why, sizeof(why), "%s", bus_errmsg());
		client_release(l);
		return bus_err(-r, "%s", why);
	}
	(*out)->link = l;
	bus_err_clear();
	return 0;
}

BUS_EXPORT int bus_sub_attach(struct bus *b, const char *topic, const struct bus_sub_opts *opts,
			      struct bus_sub **out)
{
	struct bus_sub_opts o = { .from = BUS_FROM_OLDEST };
	struct rep_open_sub rep;
	struct req_open q;
	struct bus_link *l;
	int fds[3], nfds = 0, r;

	if (!out)
		return bus_err(EINVAL, "bus_sub_attach: no result pointer");
	*out = NULL;
	if (opts)
		o = *opts;
	if ((unsigned)o.from > BUS_FROM_TIME)
		return bus_err(EINVAL, "bus_sub_attach: unknown start position %d", (int)o.from);
	if (o.flags & ~BUS_SUB_GATING)
		return bus_err(EINVAL, "bus_sub_attach: unknown flags 0x%x", o.flags);
	if ((r = check_name(topic, "topic")) < 0)
		return r;
	if (o.group && (r = check_name(o.group, "cursor")) < 0)
		return r;
	memset(&q, 0, sizeof(q));
	put_name(&q.topic, topic);
	put_name(&q.group, o.group);
	q.flags = o.flags;
	q.slot = PROTO_NEW_SLOT;
	if ((r = forked(b)) < 0)
		return r;
	if (!(l = link_new(b, topic, o.group, 0)))
		return bus_err(ENOMEM, "out of memory");
	pthread_mutex_lock(&b->lock);
	r = call_locked(b, OP_OPEN_SUB, &q, sizeof(q), &rep, sizeof(rep), NULL, fds, &nfds);
	if (r == 0 && nfds != 2 && nfds != 3) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		r = bus_err(EPROTO, "busd opened '%s' without its descriptors", topic);
	}
	if (r == 0) {
		l->slot = rep.slot;
		link_add(b, l);
	}
	pthread_mutex_unlock(&b->lock);
	if (r < 0) {
		free(l);
		return r;
	}
	r = sub_open_fds(topic, fds[0], fds[1], nfds == 3 ? fds[2] : -1, rep.slot, &o,
			 o.group && rep.has_commit, rep.resume_seq, out);
	if (r < 0) {
		char why[256];

		snprintf(why, sizeof(why), "%s", bus_errmsg());
		client_release(l); /* busd frees the slot it reserved */
		return bus_err(-r, "%s", why);
	}
	(*out)->link = l;
	(*out)->commit_ok = o.group != NULL;
	bus_err_clear();
	return 0;
}

static void from_wire(struct bus_topic_info *ti, const struct proto_topic *p)
{
	memset(ti, 0, sizeof(*ti));
	ti->ring_size = p->ring_size;
	ti->max_event = p->max_event;
	ti->max_consumers = p->max_consumers;
	ti->flags = p->flags;
	ti->producer_pid = p->producer_pid;
	ti->first_seq = p->first_seq;
	ti->oldest_seq = p->oldest_seq;
	ti->next_seq = p->next_seq;
	ti->events = p->next_seq - p->first_seq;
	ti->bytes = p->bytes;
	ti->producer_waits = p->producer_waits;
	ti->wakeups = p->wakeups;
	ti->consumers = p->consumers;
	ti->deleted = p->deleted;
	ti->max_lag = p->max_lag;
	ti->mode = p->mode;
	ti->uid = p->uid;
	ti->gid = p->gid;
	ti->degraded = p->degraded;
	ti->flushed_seq = p->flushed_seq;
	ti->durable_seq = p->durable_seq;
	ti->flush_errors = p->flush_errors;
}

BUS_EXPORT int bus_stat(struct bus *b, const char *topic, struct bus_topic_info *info,
			struct bus_consumer_info *cons, unsigned ncons)
{
	struct req_topic q;
	unsigned filled = 0;
	uint32_t consumers = 0;
	int r;

	if ((r = check_name(topic, "topic")) < 0)
		return r;
	if ((r = forked(b)) < 0)
		return r;
	memset(&q, 0, sizeof(q));
	put_name(&q.topic, topic);
	pthread_mutex_lock(&b->lock);
	for (;;) {
		const struct rep_stat *rep = (const struct rep_stat *)(b->rx + sizeof(struct proto_hdr));
		const struct proto_consumer *pc = (const struct proto_consumer *)(rep + 1);
		size_t got = 0;

		r = call_locked(b, OP_STAT, &q, sizeof(q), NULL, 0, &got, NULL, NULL);
		if (r < 0)
			break;
		if (got < sizeof(*rep) || rep->count > (got - sizeof(*rep)) / sizeof(*pc)) {
			r = bus_err(EPROTO, "busd sent a short STAT reply");
			break;
		}
		if (q.arg == 0) {
			if (info)
				from_wire(info, &rep->t);
			consumers = rep->t.consumers;
		}
		for (uint32_t i = 0; i < rep->count && cons && filled < ncons; i++) {
			struct bus_consumer_info *c = &cons[filled++];

			memset(c, 0, sizeof(*c));
			c->slot = pc[i].slot;
			c->pid = pc[i].pid;
			c->gating = pc[i].flags & 1;
			c->sleeping = !!(pc[i].flags & 2);
			c->next_seq = pc[i].next_seq;
			c->lag = pc[i].lag;
			c->events = pc[i].events;
			c->lapped = pc[i].lapped;
			c->lost = pc[i].lost;
			c->commit = pc[i].commit;
			take_name(c->group, &pc[i].group);
		}
		if (!rep->next_slot || !cons || filled >= ncons)
			break;
		q.arg = rep->next_slot;
	}
	pthread_mutex_unlock(&b->lock);
	if (r < 0)
		return r;
	bus_err_clear();
	return (int)consumers;
}

BUS_EXPORT int bus_list(struct bus *b, struct bus_topic_entry *out, unsigned n)
{
	struct req_list q = { 0, 0 };
	unsigned filled = 0, total = 0;
	int r;

	if ((r = forked(b)) < 0)
		return r;
	pthread_mutex_lock(&b->lock);
	for (;;) {
		const struct rep_list *rep = (const struct rep_list *)(b->rx + sizeof(struct proto_hdr));
		const struct proto_topic *e = (const struct proto_topic *)(rep + 1);
		size_t got = 0;

		r = call_locked(b, OP_LIST, &q, sizeof(q), NULL, 0, &got, NULL, NULL);
		if (r < 0)
			break;
		if (got < sizeof(*rep) || rep->count > (got - sizeof(*rep)) / sizeof(*e)) {
			r = bus_err(EPROTO, "busd sent a short LIST reply");
			break;
		}
		total = rep->total;
		for (uint32_t i = 0; i < rep->count && out && filled < n; i++) {
			take_name(out[filled].name, &e[i].topic);
			from_wire(&out[filled].info, &e[i]);
			filled++;
		}
		if (!rep->next || !out || filled >= n)
			break;
		q.start = rep->next;
	}
	pthread_mutex_unlock(&b->lock);
	if (r < 0)
		return r;
	bus_err_clear();
	return (int)total;
}

BUS_EXPORT int bus_log_attach(struct bus *b, const char *topic, struct bus_log **out)
{
	struct req_topic q;
	int fds[3], nfds = 0, r;

	if (!out)
		return bus_err(EINVAL, "bus_log_attach: no result pointer");
	*out = NULL;
	if ((r = check_name(topic, "topic")) < 0)
		return r;
	memset(&q, 0, sizeof(q));
	put_name(&q.topic, topic);
	r = call(b, OP_OPEN_LOG, &q, sizeof(q), NULL, 0, NULL, fds, &nfds);
	if (r < 0)
		return r;
	if (nfds != 1) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return bus_err(EPROTO, "busd opened the log of '%s' without its descriptor", topic);
	}
	r = log_open_fd(fds[0], topic, out);
	if (r == 0)
		bus_err_clear();
	return r;
}
