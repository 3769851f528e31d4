/* SPDX-License-Identifier: MIT */
/*
 * seg.c — topic segments on a tmpfs (normally /dev/shm).
 *
 * Creation writes both files under temporary names, reserves every page with
 * posix_fallocate (so a segment that does not fit fails now with -ENOSPC and
 * never with SIGBUS on first touch), and then renames them into place with
 * RENAME_NOREPLACE: NAME@cons first, NAME last, so anyone who can open NAME
 * finds a complete segment and its consumer area.
 *
 * Attaching validates the header before anything else is mapped: magic,
 * layout version, geometry, and that the file really is as large as the
 * header claims (a truncated file would otherwise SIGBUS on access).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "atomics.h"
#include "err.h"
#include "seg.h"
#include "wait.h"

#define SHM_DIR "/dev/shm/"

int seg_path(const char *name, char *out, size_t outlen)
{
	size_t n;
	int len;

	if (!name || !*name)
		return bus_err(EINVAL, "topic name is empty");
	n = strlen(name);
	if (n >= outlen - sizeof(SHM_DIR) - sizeof(CONS_SUFFIX) - 32)
		return bus_err(ENAMETOOLONG, "topic name is too long (%zu bytes)", n);
	if (strchr(name, '/'))
		len = snprintf(out, outlen, "%s", name);
	else
		len = snprintf(out, outlen, SHM_DIR "%s", name);
	if (len < 0 || (size_t)len >= outlen)
		return bus_err(ENAMETOOLONG, "topic path is too long");
	if (name[n - 1] == '/')
		return bus_err(EINVAL, "topic path '%s' names a directory", name);
	return 0;
}

static int is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

static uint32_t log2u64(uint64_t x)
{
	return 63u - (uint32_t)__builtin_clzll(x);
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Fill in the defaults and check every option; the message names the rule. */
static int resolve_opts(const struct bus_topic_opts *in, struct bus_topic_opts *o)
{
	memset(o, 0, sizeof(*o));
	if (in)
		*o = *in;
	if (!o->ring_size)
		o->ring_size = BUS_RING_DEFAULT;
	if (!is_pow2(o->ring_size) || o->ring_size < BUS_RING_MIN || o->ring_size > BUS_RING_MAX)
		return bus_err(EINVAL, "ring size %llu: must be a power of two from %llu to %llu bytes",
			       (unsigned long long)o->ring_size, BUS_RING_MIN, BUS_RING_MAX);
	if (!o->max_event)
		o->max_event = (uint32_t)(o->ring_size / 4);
	if (o->max_event > o->ring_size / 2)
		return bus_err(EINVAL, "max event %u: must be at most half the ring (%llu bytes)",
			       o->max_event, (unsigned long long)(o->ring_size / 2));
	if (!o->max_consumers)
		o->max_consumers = BUS_CONSUMERS_DEFAULT;
	if (o->max_consumers > BUS_CONSUMERS_MAX)
		return bus_err(EINVAL, "max consumers %u: at most %u",
			       o->max_consumers, BUS_CONSUMERS_MAX);
	if (o->flags & ~(BUS_TOPIC_GATING | BUS_TOPIC_DURABLE))
		return bus_err(EINVAL, "unknown topic flags 0x%x",
			       o->flags & ~(BUS_TOPIC_GATING | BUS_TOPIC_DURABLE));
	if (!o->mode)
		o->mode = 0600;
	if (o->mode & ~0777u)
		return bus_err(EINVAL, "mode %o: only permission bits (0777) are allowed", o->mode);
	if (!o->first_seq)
		o->first_seq = 1;
	return 0;
}

/* "1.5 MiB": sizes in messages a person reads. */
static void human(char *buf, size_t size, uint64_t n)
{
	if (n >= (1ull << 30))
		snprintf(buf, size, "%.1f GiB", (double)n / (1ull << 30));
	else if (n >= (1ull << 20))
		snprintf(buf, size, "%.1f MiB", (double)n / (1ull << 20));
	else if (n >= (1ull << 10))
		snprintf(buf, size, "%.1f KiB", (double)n / (1ull << 10));
	else
		snprintf(buf, size, "%llu bytes", (unsigned long long)n);
}

/*
 * The file system of the segment directory is full (blocks, or inodes for
 * open(O_CREAT)). Say so with its size and what is left, and how to make
 * room: /dev/shm is a tmpfs limited to half the RAM by default and to
 * 64 MiB in a container, which a handful of topics with large rings fill.
 */
static int err_shm_full(const char *path, uint64_t size, const char *what)
{
	char dir[PATH_MAX], total[32], avail[32];
	const char *slash = strrchr(path, '/');
	struct statvfs sv;
	size_t n = slash ? (size_t)(slash - path) : 0;

	snprintf(dir, sizeof(dir), "%.*s", (int)(n ? n : 1), n ? path : ".");
	if (statvfs(dir, &sv) < 0)
		memset(&sv, 0, sizeof(sv));
	if (sv.f_files && sv.f_ffree == 0)
		return bus_err(ENOSPC, "cannot create the %s in %s: its file system has no free "
			       "inodes (%llu files); delete topics, or raise the limit (tmpfs: "
			       "mount -o remount,nr_inodes=N on its mount point)", what, dir,
			       (unsigned long long)sv.f_files);
	human(total, sizeof(total), (uint64_t)sv.f_blocks * sv.f_frsize);
	human(avail, sizeof(avail), (uint64_t)sv.f_bavail * sv.f_frsize);
	if (!sv.f_blocks)
		snprintf(avail, sizeof(avail), "too little");
	return bus_err(ENOSPC, "cannot reserve %llu bytes for the %s in %s: no space left on "
		       "its file system (%s%s%s free); use a smaller ring, delete topics, or "
		       "enlarge it (for /dev/shm: mount -o remount,size=2G /dev/shm; containers "
		       "default to 64 MiB: docker run --shm-size=2g)", (unsigned long long)size,
		       what, dir, sv.f_blocks ? total : "", sv.f_blocks ? ", " : "", avail);
}

/* Create a file of exactly `size` reserved bytes; returns the fd or -errno.
 * path is a temporary name; shown is the one messages give. */
static int create_reserved(const char *path, const char *shown, uint32_t mode, uint64_t size,
			   const char *what, uid_t uid, gid_t gid)
{
	int fd, r;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0) {
		if (errno == ENOSPC)
			return err_shm_full(path, size, what);
		return bus_err(errno, "cannot create %s '%s': %s", what, shown, strerror(errno));
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0) {
		r = bus_err(errno, "chown %s '%s': %s", what, shown, strerror(errno));
		goto fail;
	}
	if (fchmod(fd, mode) < 0) { /* umask must not narrow the topic's mode */
		r = bus_err(errno, "chmod %s '%s': %s", what, shown, strerror(errno));
		goto fail;
	}
	/* Every page a client maps is reserved here: a tmpfs that fills up
	 * later cannot SIGBUS a producer or consumer on first touch. */
	r = posix_fallocate(fd, 0, (off_t)size);
	if (r == ENOSPC || r == EFBIG) {
		/* Gone first, so that the message counts what is really free. */
		close(fd);
		unlink(path);
		return err_shm_full(path, size, what);
	}
	if (r) {
		r = bus_err(r, "cannot reserve %llu bytes for %s '%s': %s",
			    (unsigned long long)size, what, shown, strerror(r));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	unlink(path);
	return r;
}

int seg_create(const char *name, const struct bus_topic_opts *in)
{
	return seg_create_owned(name, in, (uid_t)-1, (gid_t)-1);
}

int seg_create_owned(const char *name, const struct bus_topic_opts *in, uid_t uid, gid_t gid)
{
	static _Atomic unsigned counter;
	char path[PATH_MAX], cpath[PATH_MAX + 8], tmp[PATH_MAX + 64], ctmp[PATH_MAX + 64];
	struct bus_topic_opts o;
	struct seg_hdr *h = NULL;
	struct cons_hdr *c = NULL;
	uint64_t csize, rnd;
	unsigned id;
	int fd = -1, cfd = -1, r;

	r = seg_path(name, path, sizeof(path));
	if (r < 0)
		return r;
	r = resolve_opts(in, &o);
	if (r < 0)
		return r;
	csize = cons_file_size(o.max_consumers);
	id = at_fetch_add(&counter, 1);  /* unique temporary names across threads */
	/* And unpredictable: anyone who may write the segment directory could
	 * plant NAME.tmp.PID.N and make the creation fail (O_EXCL keeps it
	 * from being followed, not from being in the way). */
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
		rnd = mono_ns() * 0x9e3779b97f4a7c15ull;
	snprintf(cpath, sizeof(cpath), "%s" CONS_SUFFIX, path);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d.%u.%016llx", path, (int)getpid(), id,
		 (unsigned long long)rnd);
	snprintf(ctmp, sizeof(ctmp), "%s" CONS_SUFFIX ".tmp.%d.%u.%016llx", path, (int)getpid(),
		 id, (unsigned long long)rnd);

	/* Reading a topic is consuming it, and a consumer writes its cursor:
	 * whoever may read NAME may also write NAME@cons (0640 -> 0660). Only
	 * writers of NAME can produce. */
	cfd = create_reserved(ctmp, cpath, o.mode | ((o.mode & 0444) >> 1), csize,
			      "consumer area", uid, gid);
	if (cfd < 0)
		return cfd;
	fd = create_reserved(tmp, path, o.mode, seg_file_size(o.ring_size), "topic segment",
			     uid, gid);
	if (fd < 0) {
		r = fd;
		goto fail;
	}

	c = mmap(NULL, CONS_HDR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
	h = mmap(NULL, SEG_HDR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (c == MAP_FAILED || h == MAP_FAILED) {
		r = bus_err(errno, "cannot map new segment '%s': %s", path, strerror(errno));
		goto fail;
	}
	c->magic = CONS_MAGIC;
	c->version = SEG_VERSION;
	c->nslots = o.max_consumers;

	h->magic = SEG_MAGIC;
	h->version = SEG_VERSION;
	h->hdr_size = SEG_HDR_SIZE;
	h->ring_size = o.ring_size;
	h->max_event = o.max_event;
	h->max_consumers = o.max_consumers;
	h->flags = o.flags;
	/* The tail moves in 1/16-ring steps so that consumers, who re-read it
	 * for every event, find it in their cache almost always. */
	h->chunk_shift = log2u64(o.ring_size) - 4;
	h->first_seq = o.first_seq;
	h->created_ns = realtime_ns();
	h->creator_pid = (uint32_t)getpid();
	at_store_relaxed(&h->tail_seq, o.first_seq);
	/* wake_req (0) must differ from wake_gen until a consumer asks for a
	 * wake, or the first publish would make a FUTEX_WAKE for nobody. */
	at_store_relaxed(&h->wake_gen, 1);
	/* The files are private until the renames below; the renames order
	 * these stores before anyone else can open them. */

	if (renameat2(AT_FDCWD, ctmp, AT_FDCWD, cpath, RENAME_NOREPLACE) < 0) {
		int e = errno;

		if (e == EEXIST && faccessat(AT_FDCWD, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			r = bus_err(EEXIST, "cannot create topic '%s': it already exists", name);
		else if (e == EEXIST)
			r = bus_err(EEXIST, "cannot create topic '%s': a stale consumer area "
				    "'%s' is in the way (remove it)", name, cpath);
		else
			r = bus_err(e, "cannot create topic '%s': %s", name, strerror(e));
		goto fail;
	}
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
		r = bus_err(errno, "cannot create topic '%s': %s", name,
			    errno == EEXIST ? "it already exists" : strerror(errno));
		unlink(cpath);
		goto fail;
	}
	munmap(c, CONS_HDR_SIZE);
	munmap(h, SEG_HDR_SIZE);
	close(fd);
	close(cfd);
	bus_err_clear();
	return 0;
fail:
	if (c && c != MAP_FAILED)
		munmap(c, CONS_HDR_SIZE);
	if (h && h != MAP_FAILED)
		munmap(h, SEG_HDR_SIZE);
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	close(cfd);
	unlink(ctmp);
	return r;
}

int seg_validate(const struct seg_hdr *h, uint64_t file_size, struct seg_geom *g)
{
	struct seg_geom v;
	uint64_t magic = h->magic;
	uint32_t version = h->version, hdr_size = h->hdr_size;

	if (file_size < SEG_HDR_SIZE)
		return bus_err(EPROTO, "segment truncated: %llu bytes, a header alone is %u",
			       (unsigned long long)file_size, SEG_HDR_SIZE);
	if (magic != SEG_MAGIC)
		return bus_err(EPROTO, "not a bus topic segment (bad magic 0x%016llx)",
			       (unsigned long long)magic);
	if (version != SEG_VERSION)
		return bus_err(EPROTO, "segment layout version %u, this libbus reads version %u",
			       version, SEG_VERSION);
	if (hdr_size != SEG_HDR_SIZE)
		return bus_err(EPROTO, "segment header size %u, expected %u", hdr_size, SEG_HDR_SIZE);
	/* Read each field once: the copy is what we check and what we use. */
	v.ring_size = h->ring_size;
	v.max_event = h->max_event;
	v.nslots = h->max_consumers;
	v.flags = h->flags;
	v.chunk_shift = h->chunk_shift;
	v.first_seq = h->first_seq;
	if (!is_pow2(v.ring_size) || v.ring_size < BUS_RING_MIN || v.ring_size > BUS_RING_MAX)
		return bus_err(EINVAL, "impossible geometry: ring size %llu",
			       (unsigned long long)v.ring_size);
	if (!v.max_event || v.max_event > v.ring_size / 2)
		return bus_err(EINVAL, "impossible geometry: max event %u for a %llu-byte ring",
			       v.max_event, (unsigned long long)v.ring_size);
	if (!v.nslots || v.nslots > BUS_CONSUMERS_MAX)
		return bus_err(EINVAL, "impossible geometry: %u consumer slots", v.nslots);
	if (v.chunk_shift < 3 || v.chunk_shift >= log2u64(v.ring_size))
		return bus_err(EINVAL, "impossible geometry: chunk shift %u", v.chunk_shift);
	if (v.flags & ~(BUS_TOPIC_GATING | BUS_TOPIC_DURABLE))
		return bus_err(EINVAL, "unknown topic flags 0x%x", v.flags);
	if (file_size != seg_file_size(v.ring_size))
		return bus_err(EPROTO, "segment truncated or padded: %llu bytes, expected %llu",
			       (unsigned long long)file_size,
			       (unsigned long long)seg_file_size(v.ring_size));
	*g = v;
	return 0;
}

int seg_validate_cons(const struct cons_hdr *c, uint64_t file_size, uint32_t nslots)
{
	if (file_size < CONS_HDR_SIZE)
		return bus_err(EPROTO, "consumer area truncated: %llu bytes",
			       (unsigned long long)file_size);
	if (c->magic != CONS_MAGIC)
		return bus_err(EPROTO, "not a bus consumer area (bad magic)");
	if (c->version != SEG_VERSION)
		return bus_err(EPROTO, "consumer area layout version %u, expected %u",
			       c->version, SEG_VERSION);
	if (c->nslots != nslots)
		return bus_err(EPROTO, "consumer area has %u slots, the segment says %u",
			       c->nslots, nslots);
	if (file_size != cons_file_size(nslots))
		return bus_err(EPROTO, "consumer area truncated: %llu bytes, expected %llu",
			       (unsigned long long)file_size,
			       (unsigned long long)cons_file_size(nslots));
	return 0;
}

/* Prefix the detail of a failed check (seg_validate*) with the topic name. */
static int err_topic(int r, const char *name)
{
	char why[200];

	snprintf(why, sizeof(why), "%s", bus_errmsg());
	return bus_err(-r, "topic '%s': %s", name, why);
}

static int open_file(const char *path, int flags, const char *name, const char *what)
{
	int fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		int e = errno;

		if (e == ENOENT)
			return bus_err(e, "no topic '%s' (%s not found)", name, path);
		if (e == ELOOP)
			return bus_err(e, "%s of topic '%s' is a symlink: refused", what, name);
		return bus_err(e, "cannot open %s of topic '%s': %s", what, name, strerror(e));
	}
	return fd;
}

static int file_size(int fd, uint64_t *size, const char *name)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return bus_err(errno, "stat topic '%s': %s", name, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return bus_err(EPROTO, "topic '%s' is not a regular file", name);
	*size = (uint64_t)st.st_size;
	return 0;
}

#ifdef __SANITIZE_THREAD__
/*
 * ThreadSanitizer tracks memory by virtual address. Each handle maps the
 * segment on its own, so a producer and a consumer in one process would touch
 * the same ring through two addresses and TSan would see no race and no
 * happens-before at all. TSan builds therefore share one read-write mapping
 * per segment per process (consumers open the files read-write, which only
 * works for processes allowed to; the read-only enforcement is tested in the
 * other builds). Never compiled into a normal build.
 */
#include <pthread.h>

static struct tsan_alias {
	dev_t dev;
	ino_t ino;
	int refs;
	void *map;
	size_t map_len;
	struct cons_hdr *chdr;
	size_t cons_len;
} aliases[64];
/* Held across a whole attach, so that two threads attaching the same segment
 * at once cannot both miss the registry and map it twice. */
/* Recursive: a failed attach detaches (and releases its alias) under it. */
static pthread_mutex_t alias_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

/* Reuse the process's mapping of this segment if there is one. */
static int alias_find(struct seg *s)
{
	struct stat st;
	int i, found = 0;

	if (fstat(s->fd, &st) < 0)
		return 0;
	for (i = 0; i < 64; i++) {
		if (aliases[i].refs && aliases[i].dev == st.st_dev && aliases[i].ino == st.st_ino) {
			aliases[i].refs++;
			s->map = aliases[i].map;
			s->map_len = aliases[i].map_len;
			s->chdr = aliases[i].chdr;
			s->cons_len = aliases[i].cons_len;
			found = 1;
			break;
		}
	}
	return found;
}

static void alias_add(struct seg *s)
{
	struct stat st;
	int i;

	if (fstat(s->fd, &st) < 0)
		return;
	for (i = 0; i < 64; i++) {
		if (!aliases[i].refs) {
			aliases[i] = (struct tsan_alias){ st.st_dev, st.st_ino, 1, s->map,
							  s->map_len, s->chdr, s->cons_len };
			break;
		}
	}
}

/* 1 if the mapping is shared and still used by another handle. */
static int alias_release(struct seg *s)
{
	int i, shared = 0;

	pthread_mutex_lock(&alias_lock);
	for (i = 0; i < 64; i++) {
		if (aliases[i].refs && aliases[i].map == s->map) {
			shared = --aliases[i].refs > 0;
			break;
		}
	}
	pthread_mutex_unlock(&alias_lock);
	return shared;
}
#endif

static int attach_fds_locked(int fd, int cfd, const char *name, enum seg_role role,
			     struct seg *s);

/* Open NAME and NAME@cons with the access the role needs. */
static int open_pair(const char *name, enum seg_role role, int *fd, int *cfd, char *path,
		     size_t pathlen)
{
	char cpath[PATH_MAX + 8];
	int r;

	r = seg_path(name, path, pathlen);
	if (r < 0)
		return r;
	snprintf(cpath, sizeof(cpath), "%s" CONS_SUFFIX, path);
	*fd = open_file(path, role == SEG_PRODUCER ? O_RDWR : O_RDONLY, name, "segment");
	if (*fd < 0)
		return *fd;
	*cfd = open_file(cpath, role == SEG_INSPECT ? O_RDONLY : O_RDWR, name, "consumer area");
	if (*cfd < 0) {
		struct seg_geom g;
		struct seg_hdr *probe;
		uint64_t size;

		/* A file that is not a segment at all says so, rather than
		 * that its consumer area is missing. */
		r = *cfd;
		if (file_size(*fd, &size, name) == 0 && size >= SEG_HDR_SIZE) {
			probe = mmap(NULL, SEG_HDR_SIZE, PROT_READ, MAP_SHARED, *fd, 0);
			if (probe != MAP_FAILED) {
				int v = seg_validate(probe, size, &g);

				munmap(probe, SEG_HDR_SIZE);
				if (v < 0)
					r = err_topic(v, name);
			}
		} else if (file_size(*fd, &size, name) == 0) {
			r = bus_err(EPROTO, "topic '%s': segment truncated (%llu bytes)", name,
				    (unsigned long long)size);
		}
		close(*fd);
		return r;
	}
	return 0;
}

int seg_attach(const char *name, enum seg_role role, struct seg *s)
{
	char path[PATH_MAX];
	int fd, cfd, r;

#ifdef __SANITIZE_THREAD__
	if (role == SEG_CONSUMER)
		role = SEG_PRODUCER; /* open read-write, see alias_find() */
#endif
	memset(s, 0, sizeof(*s));
	s->fd = s->cfd = -1;
	r = open_pair(name, role, &fd, &cfd, path, sizeof(path));
	if (r < 0)
		return r;
	r = seg_attach_fds(fd, cfd, name, role, s);
	if (r == 0)
		snprintf(s->path, sizeof(s->path), "%s", path);
	return r;
}

int seg_attach_fds(int fd, int cfd, const char *name, enum seg_role role, struct seg *s)
{
#ifdef __SANITIZE_THREAD__
	int r;

	/* See alias_find(): TSan builds share one read-write mapping, so a
	 * consumer handed read-only descriptors (by busd) reopens them. */
	if (role == SEG_CONSUMER) {
		char p[64];
		int rw;

		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		rw = open(p, O_RDWR | O_CLOEXEC);
		if (rw >= 0) {
			close(fd);
			fd = rw;
		}
		role = SEG_PRODUCER;
	}
	pthread_mutex_lock(&alias_lock);
	r = attach_fds_locked(fd, cfd, name, role, s);
	pthread_mutex_unlock(&alias_lock);
	return r;
#else
	return attach_fds_locked(fd, cfd, name, role, s);
#endif
}

/* Takes ownership of fd and cfd (closed on failure, by seg_detach later). */
static int attach_fds_locked(int fd, int cfd, const char *name, enum seg_role role,
			     struct seg *s)
{
	struct seg_hdr *probe;
	uint64_t size, csize;
	uint8_t *base;
	int prot = role == SEG_PRODUCER || role == SEG_DAEMON ? PROT_READ | PROT_WRITE : PROT_READ;
	int cprot = role == SEG_INSPECT ? PROT_READ : PROT_READ | PROT_WRITE;
	/* Only the producer prefaults: it writes the whole ring over and over.
	 * A consumer touches only what it reads, and attaching fast matters
	 * more to it than a first-read page fault (measured: 174 of 229 us of
	 * a 1 MiB ring's attach went to prefaulting it; docs/PERFORMANCE.md). */
	int populate = role == SEG_PRODUCER ? MAP_POPULATE : 0;
	int rprot, r;

	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->cfd = cfd;
	r = file_size(s->fd, &size, name);
	if (r < 0)
		goto fail;
	if (size < SEG_HDR_SIZE) {
		r = bus_err(EPROTO, "topic '%s': segment truncated (%llu bytes)", name,
			    (unsigned long long)size);
		goto fail;
	}
	/* Validate the header from a private probe mapping before mapping the
	 * rest: a bad ring size must not get as far as mmap. */
	probe = mmap(NULL, SEG_HDR_SIZE, PROT_READ, MAP_SHARED, s->fd, 0);
	if (probe == MAP_FAILED) {
		r = bus_err(errno, "cannot map topic '%s': %s", name, strerror(errno));
		goto fail;
	}
	r = seg_validate(probe, size, &s->g);
	munmap(probe, SEG_HDR_SIZE);
	if (r < 0) {
		r = err_topic(r, name);
		goto fail;
	}
	s->mask = s->g.ring_size - 1;

	r = file_size(s->cfd, &csize, name);
	if (r < 0)
		goto fail;
	if (csize < CONS_HDR_SIZE || csize != cons_file_size(s->g.nslots)) {
		r = bus_err(EPROTO, "topic '%s': consumer area truncated (%llu bytes, expected %llu)",
			    name, (unsigned long long)csize,
			    (unsigned long long)cons_file_size(s->g.nslots));
		goto fail;
	}
	s->cons_len = csize;
#ifdef __SANITIZE_THREAD__
	if (role != SEG_DAEMON && alias_find(s)) {
		s->slots = (struct cons_slot *)((uint8_t *)s->chdr + CONS_HDR_SIZE);
		s->hdr = s->map;
		s->ring = (uint8_t *)s->map + SEG_HDR_SIZE;
		return 0;
	}
#endif
	s->chdr = mmap(NULL, csize, cprot, MAP_SHARED | populate, s->cfd, 0);
	if (s->chdr == MAP_FAILED) {
		s->chdr = NULL;
		r = bus_err(errno, "cannot map consumer area of '%s': %s", name, strerror(errno));
		goto fail;
	}
	r = seg_validate_cons(s->chdr, csize, s->g.nslots);
	if (r < 0) {
		r = err_topic(r, name);
		goto fail;
	}
	s->slots = (struct cons_slot *)((uint8_t *)s->chdr + CONS_HDR_SIZE);

	/* Reserve header + two ring lengths, then map the ring twice back to
	 * back over the reservation: a record that runs off the end of the first
	 * copy continues, byte for byte, in the second. */
	s->map_len = SEG_HDR_SIZE + 2 * s->g.ring_size;
	s->map = mmap(NULL, s->map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (s->map == MAP_FAILED) {
		s->map = NULL;
		r = bus_err(errno, "cannot reserve %zu bytes of address space for '%s': %s",
			    s->map_len, name, strerror(errno));
		goto fail;
	}
	base = s->map;
	/* busd: the header read-write (state, pub_pid), the ring read-only. */
	rprot = role == SEG_DAEMON ? PROT_READ : prot;
	if (mmap(base, SEG_HDR_SIZE, prot, MAP_SHARED | MAP_FIXED | populate, s->fd, 0) ==
		    MAP_FAILED ||
	    mmap(base + SEG_HDR_SIZE, s->g.ring_size, rprot, MAP_SHARED | MAP_FIXED | populate,
		 s->fd, SEG_HDR_SIZE) == MAP_FAILED ||
	    mmap(base + SEG_HDR_SIZE + s->g.ring_size, s->g.ring_size, rprot,
		 MAP_SHARED | MAP_FIXED | populate, s->fd, SEG_HDR_SIZE) == MAP_FAILED) {
		r = bus_err(errno, "cannot map the ring of '%s': %s", name, strerror(errno));
		goto fail;
	}
	s->hdr = (struct seg_hdr *)base;
	s->ring = base + SEG_HDR_SIZE;
#ifdef __SANITIZE_THREAD__
	if (role != SEG_INSPECT && role != SEG_DAEMON)
		alias_add(s);
#endif
	return 0;
fail:
	seg_detach(s);
	return r;
}

void seg_detach(struct seg *s)
{
#ifdef __SANITIZE_THREAD__
	if (s->map && alias_release(s)) {
		s->map = NULL;
		s->chdr = NULL;
	}
#endif
	if (s->map)
		munmap(s->map, s->map_len);
	if (s->chdr)
		munmap(s->chdr, s->cons_len);
	if (s->fd >= 0)
		close(s->fd);
	if (s->cfd >= 0)
		close(s->cfd);
	s->map = NULL;
	s->chdr = NULL;
	s->hdr = NULL;
	s->fd = s->cfd = -1;
}

int seg_remove(const char *name)
{
	char cpath[PATH_MAX + 8];
	struct stat a, b;
	struct seg_hdr *h;
	struct seg s;
	int fd, r;

	/* Validate first (read-only, nothing prefaulted): only a valid bus
	 * segment is unlinked, never some other file that has the name. */
	r = seg_attach(name, SEG_INSPECT, &s);
	if (r < 0)
		return r;
	/* Marking it deleted takes write permission, as producing does. */
	fd = open(s.path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = bus_err(errno, "cannot remove topic '%s': %s", name, strerror(errno));
		goto out;
	}
	if (fstat(fd, &a) < 0 || fstat(s.fd, &b) < 0 || a.st_dev != b.st_dev ||
	    a.st_ino != b.st_ino) {
		r = bus_err(EAGAIN, "topic '%s' was replaced while being removed", name);
		goto out;
	}
	h = mmap(NULL, SEG_HDR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (h == MAP_FAILED) {
		r = bus_err(errno, "cannot map topic '%s': %s", name, strerror(errno));
		goto out;
	}
	/* Unlink first: if we may not, nothing changes. */
	snprintf(cpath, sizeof(cpath), "%s" CONS_SUFFIX, s.path);
	if (unlink(s.path) < 0) {
		r = bus_err(errno, "cannot remove topic '%s': %s", name, strerror(errno));
		munmap(h, SEG_HDR_SIZE);
		goto out;
	}
	unlink(cpath);
	/* Consumers load state (relaxed) when they run dry; the futex wake
	 * below gets sleepers to look. The release orders nothing else: state is
	 * a flag, not a publication. The RMW on wake_gen: the producer bumps it
	 * too (pub_wake). */
	at_store_release(&h->state, SEG_STATE_DELETED);
	at_fetch_add(&h->wake_gen, 1);
	futex_wake_all(&h->wake_gen);
	munmap(h, SEG_HDR_SIZE);
	bus_err_clear();
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	seg_detach(&s);
	return r;
}
