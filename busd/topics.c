/* SPDX-License-Identifier: MIT */
/*
 * topics.c — busd's topic table: creation, adoption after a restart,
 * deletion, producer leases, consumer slots and named cursors.
 *
 * Ownership of shared state. The producer owns its header lines; each
 * consumer owns its slot once it holds it. busd writes a slot only while
 * nobody holds it: it reserves a free slot for a consumer (owner, group,
 * commit) before handing out the descriptors, and it clears the slot of a
 * consumer that is gone. It writes pub_pid only when no producer holds the
 * lease. So busd never races a live client for a word.
 *
 * Leases: busd's table says who holds a topic's producer lease (a
 * connection, or an adopted pid it watches with a pidfd until the producer
 * reconnects). The kernel-enforced backstop is the flock that bus_pub_open()
 * already takes on the segment: busd opens a fresh file description for each
 * grant (flock locks belong to the open file description, so passing busd's
 * own descriptor would share one lock between busd and every producer).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "atomics.h"
#include "log.h"
#include "busd.h"
#include "err.h"
#include "wait.h"

/* ---- tables ------------------------------------------------------------ */

static struct topic **topics;   /* sorted by name */
static unsigned ntopics, cap_topics;

struct cursor {
	int used;
	uint32_t id;            /* stored in slots as id + 1 */
	char topic[PROTO_NAME_MAX + 1];
	char group[PROTO_NAME_MAX + 1];
	uint64_t seq;           /* resume point; 0 = never committed */
	struct topic *bound;    /* held by a consumer in this slot */
	uint32_t slot;
};
static struct cursor *cursors;
static unsigned ncursors, cap_cursors;
static int cursors_dirty;

static void topic_unref(struct topic *t);

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Has the process behind a pidfd exited? */
static int pidfd_exited(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };

	return poll(&p, 1, 0) == 1;
}

/* Watch a client whose connection is gone but whose process may still run
 * (a broken connection: it reconnects and reclaims; or a killed one still
 * exiting). 1 if it runs and is now watched, 0 if it has exited. */
static int watch_pid(pid_t pid, int *fd, uint32_t *watch)
{
	int p = pidfd_open_(pid);

	if (p < 0) {
		/* Only ESRCH says the process is gone. EMFILE, ENFILE or a
		 * seccomp filter say nothing about it: keep what it holds,
		 * unwatched (*fd stays -1); slot_reserve() and the lease
		 * checks look at the pid itself later. */
		if (errno == ESRCH || !pid_alive((uint32_t)pid))
			return 0;
		log_warn("cannot watch pid %d (%s): what it holds stays held until it is gone",
			 (int)pid, strerror(errno));
		return 1;
	}
	if (pidfd_exited(p)) {
		close(p);
		return 0;
	}
	*fd = p;
	*watch = loop_watch_pidfd(p);
	return 1;
}

static void unwatch(int *fd, uint32_t *watch)
{
	if (*fd < 0)
		return;
	loop_unwatch(*watch);
	close(*fd);
	*fd = -1;
	*watch = 0;
}

static int find_index(const char *name, int *found)
{
	unsigned lo = 0, hi = ntopics;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		int c = strcmp(topics[mid]->name, name);

		if (c == 0) {
			*found = 1;
			return (int)mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return (int)lo;
}

static struct topic *topic_find(const char *name)
{
	int found, i = find_index(name, &found);

	return found ? topics[i] : NULL;
}

static int topic_insert(struct topic *t)
{
	int found, i = find_index(t->name, &found);

	if (found)
		return -EEXIST;
	if (ntopics == cap_topics) {
		unsigned nc = cap_topics ? 2 * cap_topics : 64;
		struct topic **n = realloc(topics, nc * sizeof(*n));

		if (!n)
			return -ENOMEM;
		topics = n;
		cap_topics = nc;
	}
	memmove(&topics[i + 1], &topics[i], (ntopics - (unsigned)i) * sizeof(*topics));
	topics[i] = t;
	ntopics++;
	return 0;
}

static void topic_unlink_table(struct topic *t)
{
	int found, i = find_index(t->name, &found);

	if (!found || topics[i] != t)
		return;
	memmove(&topics[i], &topics[i + 1], (ntopics - (unsigned)i - 1) * sizeof(*topics));
	ntopics--;
}

/* The segment's file name in the shm directory: bus-ID.TOPIC */
static void seg_file(char *buf, size_t size, const char *topic, const char *suffix)
{
	snprintf(buf, size, "bus-%s.%s%s", cfg.bus_id, topic, suffix);
}

static void seg_full(char *buf, size_t size, const char *topic)
{
	snprintf(buf, size, "%s/bus-%s.%s", cfg.shm_dir, cfg.bus_id, topic);
}

/* ---- cursors ------------------------------------------------------------ */

static struct cursor *cursor_find(const char *topic, const char *group)
{
	for (unsigned i = 0; i < ncursors; i++)
		if (cursors[i].used && !strcmp(cursors[i].topic, topic) &&
		    !strcmp(cursors[i].group, group))
			return &cursors[i];
	return NULL;
}

static struct cursor *cursor_by_id(uint32_t id)
{
	for (unsigned i = 0; i < ncursors; i++)
		if (cursors[i].used && cursors[i].id == id)
			return &cursors[i];
	return NULL;
}

static struct cursor *cursor_add(uint32_t id, const char *topic, const char *group, uint64_t seq)
{
	struct cursor *c;

	if (ncursors == cap_cursors) {
		unsigned nc = cap_cursors ? 2 * cap_cursors : 64;
		struct cursor *n = realloc(cursors, nc * sizeof(*n));

		if (!n)
			return NULL;
		/* Slots point at cursors by index, never by address: fine. */
		cursors = n;
		cap_cursors = nc;
	}
	c = &cursors[ncursors++];
	memset(c, 0, sizeof(*c));
	c->used = 1;
	c->id = id;
	snprintf(c->topic, sizeof(c->topic), "%s", topic);
	snprintf(c->group, sizeof(c->group), "%s", group);
	c->seq = seq;
	cursors_dirty = 1;
	return c;
}

static uint32_t cursor_next_id(void)
{
	uint32_t max = 0;

	for (unsigned i = 0; i < ncursors; i++)
		if (cursors[i].used && cursors[i].id + 1 > max)
			max = cursors[i].id + 1;
	return max;
}

/* Take the committed position out of a slot the cursor is leaving. */
static void cursor_take_commit(struct cursor *c, const struct cons_slot *sl)
{
	/* Relaxed: the committing consumer is gone or has said goodbye
	 * (its close request or connection hangup came after its store). */
	uint64_t v = at_load_relaxed(&sl->commit);

	if (v && v != c->seq) {
		c->seq = v;
		cursors_dirty = 1;
	}
}

#define CURSOR_FILE "cursors"
#define CURSOR_MAGIC "busd-cursors 1"

static void cursors_load(void)
{
	char path[4200], line[600], topic[PROTO_NAME_MAX + 2], group[PROTO_NAME_MAX + 2];
	unsigned long long seq;
	unsigned id, n = 0, bad = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/" CURSOR_FILE, cfg.state_dir);
	f = fopen(path, "re");
	if (!f) {
		if (errno != ENOENT)
			log_warn("cannot read cursors from %s: %s", path, strerror(errno));
		return;
	}
	if (!fgets(line, sizeof(line), f) || strncmp(line, CURSOR_MAGIC, strlen(CURSOR_MAGIC))) {
		log_err("%s is not a cursor file (first line should be '%s'): ignored",
			path, CURSOR_MAGIC);
		fclose(f);
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%u %llu %129s %129s", &id, &seq, topic, group) != 4 ||
		    proto_name_check(topic, (uint32_t)strlen(topic), "topic") < 0 ||
		    proto_name_check(group, (uint32_t)strlen(group), "cursor") < 0 ||
		    cursor_by_id(id) || cursor_find(topic, group)) {
			bad++;
			continue;
		}
		if (cursor_add(id, topic, group, seq))
			n++;
	}
	fclose(f);
	cursors_dirty = 0;
	if (bad)
		log_warn("%s: %u malformed or duplicate lines ignored", path, bad);
	log_info("loaded %u named cursors from %s", n, path);
}

/* Refresh cursors from the slots that hold them, and write the file
 * (atomically: a temporary file, fsync, rename) if anything changed. */
int topics_persist(int force)
{
	char path[4200], tmp[4300];
	FILE *f;
	int fd;

	for (unsigned i = 0; i < ncursors; i++) {
		struct cursor *c = &cursors[i];

		if (c->used && c->bound && !c->bound->deleted)
			cursor_take_commit(c, &c->bound->seg.slots[c->slot]);
	}
	if (!cursors_dirty && !force)
		return 0;
	snprintf(path, sizeof(path), "%s/" CURSOR_FILE, cfg.state_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		log_err("cannot write cursors to %s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	fprintf(f, CURSOR_MAGIC "\n");
	for (unsigned i = 0; i < ncursors; i++)
		if (cursors[i].used)
			fprintf(f, "%u %llu %s %s\n", cursors[i].id,
				(unsigned long long)cursors[i].seq, cursors[i].topic,
				cursors[i].group);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		int e = errno;

		log_err("cannot write cursors to %s: %s", tmp, strerror(e));
		fclose(f);
		unlink(tmp);
		return -e;
	}
	fclose(f);
	if (rename(tmp, path) < 0) {
		int e = errno;

		log_err("cannot rename %s to %s: %s", tmp, path, strerror(e));
		unlink(tmp);
		return -e;
	}
	cursors_dirty = 0;
	return 0;
}

int topics_need_timer(void)
{
	for (unsigned i = 0; i < ncursors; i++)
		if (cursors[i].used && cursors[i].bound)
			return 1;
	return 0;
}

/* ---- slots and leases --------------------------------------------------- */

/* Wake a producer that may be waiting for a gating consumer. */
static void gate_kick(struct topic *t)
{
	/* Pairs with the producer's G4 load in gate_wait(): bumping the
	 * generation makes its futex_wait return or not sleep at all. */
	at_fetch_add(&t->seg.chdr->gate_gen, 1);
	futex_wake_all(&t->seg.chdr->gate_gen);
}

/* Free slot i of t: its consumer is gone (closed, hung up, or dead). */
static void slot_release(struct topic *t, uint32_t i, int clear_owner)
{
	struct slot_owner *so = &t->slots[i];
	struct cons_slot *sl = &t->seg.slots[i];

	if (so->cursor >= 0) {
		struct cursor *c = &cursors[so->cursor];

		if (c->used) {
			cursor_take_commit(c, sl);
			c->bound = NULL;
		}
	}
	unwatch(&so->pidfd, &so->watch);
	so->conn = NULL;
	so->cursor = -1;
	if (clear_owner && !t->deleted && so->pid &&
	    at_load_relaxed(&sl->owner) == (uint32_t)so->pid) {
		uint32_t owner = (uint32_t)so->pid;
		uint32_t flags = at_load_relaxed(&sl->flags);

		/* The consumer is gone: stop gating for it, then free the slot.
		 * Release, as bus_sub_close() does. A CAS from the pid busd gave
		 * the slot to, so that we never free a slot someone else (a
		 * consumer that opened the segment directly) claimed since. */
		at_store_release(&sl->flags, 0);
		at_store_relaxed(&sl->group, 0);
		at_store_relaxed(&sl->commit, 0);
		at_cas(&sl->owner, &owner, 0);
		if (flags & SLOT_GATING)
			gate_kick(t);
	}
	so->pid = 0;
}

/* Does anyone hold the producer's kernel lock (flock) on the segment? */
static int lock_held(struct topic *t)
{
	char file[PROTO_NAME_MAX + 64];
	int fd, held = 1;

	seg_file(file, sizeof(file), t->name, "");
	fd = openat(cfg.shm_dirfd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 1;  /* cannot tell: assume held */
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		held = 0;
		flock(fd, LOCK_UN);
	}
	close(fd);
	return held;
}

static void lease_release(struct topic *t)
{
	uint32_t pid = (uint32_t)t->lease_pid;

	unwatch(&t->lease_pidfd, &t->lease_watch);
	t->lease = NULL;
	t->lease_pid = 0;
	/* The producer is gone (its connection closed): clear its pid unless a
	 * producer already came back (the flock says). */
	if (!t->deleted && pid && at_load_relaxed(&t->seg.hdr->pub_pid) == pid && !lock_held(t))
		at_store_relaxed(&t->seg.hdr->pub_pid, 0);
}

static int conn_add_handle(struct conn *c, struct topic *t, uint32_t slot)
{
	if (c->nhandles == c->cap_handles) {
		unsigned nc = c->cap_handles ? 2 * c->cap_handles : 8;
		struct handle *n = realloc(c->handles, nc * sizeof(*n));

		if (!n)
			return -ENOMEM;
		c->handles = n;
		c->cap_handles = nc;
	}
	c->handles[c->nhandles++] = (struct handle){ t, slot };
	t->refs++;
	return 0;
}

/* Find the connection's handle on a topic called name (a deleted one first:
 * it is older than a new topic of the same name). */
static int conn_find_handle(struct conn *c, const char *name, uint32_t slot)
{
	int best = -1;

	for (unsigned i = 0; i < c->nhandles; i++) {
		struct handle *h = &c->handles[i];

		if (h->slot != slot || strcmp(h->t->name, name))
			continue;
		if (h->t->deleted)
			return (int)i;
		best = (int)i;
	}
	return best;
}

void topics_drop_handle(struct conn *c, unsigned i)
{
	struct topic *t = c->handles[i].t;

	c->handles[i] = c->handles[--c->nhandles];
	topic_unref(t);
}

void topics_conn_gone(struct conn *c)
{
	while (c->nhandles) {
		struct handle *h = &c->handles[c->nhandles - 1];
		struct topic *t = h->t;

		if (h->slot == UINT32_MAX) {
			if (t->lease == c && !t->deleted &&
				   watch_pid(c->pid, &t->lease_pidfd, &t->lease_watch)) {
				/* Its connection broke but it runs: the lease stays
				 * until it reclaims it or exits. */
				t->lease = NULL;
				log_debug("producer pid %d of '%s' lost its connection; watching it",
					  (int)c->pid, t->name);
			} else if (t->lease == c) {
				log_info("producer pid %d of '%s' went away: lease released",
					 (int)c->pid, t->name);
				lease_release(t);
			}
		} else if (t->slots[h->slot].conn == c) {
			struct slot_owner *so = &t->slots[h->slot];

			if (!t->deleted && watch_pid(c->pid, &so->pidfd, &so->watch)) {
				so->conn = NULL;
				log_debug("consumer pid %d of '%s' (slot %u) lost its connection; "
					  "watching it", (int)c->pid, t->name, h->slot);
			} else {
				log_debug("consumer pid %d of '%s' (slot %u) went away", (int)c->pid,
					  t->name, h->slot);
				slot_release(t, h->slot, 1);
			}
		}
		topics_drop_handle(c, c->nhandles - 1);
	}
	if (cursors_dirty)
		topics_persist(0);
}

void topics_pidfd_ready(uint32_t watch)
{
	for (unsigned i = 0; i < ntopics; i++) {
		struct topic *t = topics[i];

		if (t->lease_pidfd >= 0 && t->lease_watch == watch) {
			log_info("adopted producer pid %d of '%s' exited: lease released",
				 (int)t->lease_pid, t->name);
			lease_release(t);
			return;
		}
		for (uint32_t s = 0; s < t->seg.g.nslots; s++) {
			if (t->slots[s].pidfd >= 0 && t->slots[s].watch == watch) {
				log_info("adopted consumer of '%s' (slot %u) exited", t->name, s);
				slot_release(t, s, 1);
				if (cursors_dirty)
					topics_persist(0);
				return;
			}
		}
	}
}

/* ---- topic objects ------------------------------------------------------ */

static void topic_free(struct topic *t)
{
	for (uint32_t s = 0; s < t->seg.g.nslots; s++)
		unwatch(&t->slots[s].pidfd, &t->slots[s].watch);
	unwatch(&t->lease_pidfd, &t->lease_watch);
	seg_detach(&t->seg);
	free(t->slots);
	free(t);
}

static void topic_unref(struct topic *t)
{
	if (--t->refs == 0)
		topic_free(t);
}

void topic_release_ref(struct topic *t)
{
	topic_unref(t);
}

/* Attach busd to a segment file (fresh, or left by a previous busd). */
static struct topic *topic_open(const char *name, int *err)
{
	char file[PROTO_NAME_MAX + 64], cfile[PROTO_NAME_MAX + 80];
	struct topic *t;
	struct stat st;
	int fd, cfd, r;

	seg_file(file, sizeof(file), name, "");
	seg_file(cfile, sizeof(cfile), name, CONS_SUFFIX);
	fd = openat(cfg.shm_dirfd, file, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		*err = bus_err(errno, "cannot open segment %s/%s: %s", cfg.shm_dir, file,
			       strerror(errno));
		return NULL;
	}
	cfd = openat(cfg.shm_dirfd, cfile, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (cfd < 0) {
		*err = bus_err(errno, "cannot open %s/%s: %s", cfg.shm_dir, cfile,
			       strerror(errno));
		close(fd);
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		*err = -errno;
		close(fd);
		close(cfd);
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		close(fd);
		close(cfd);
		*err = -ENOMEM;
		return NULL;
	}
	snprintf(t->name, sizeof(t->name), "%s", name);
	r = seg_attach_fds(fd, cfd, name, SEG_DAEMON, &t->seg);
	if (r < 0) {
		free(t);
		*err = r;
		return NULL;
	}
	t->slots = calloc(t->seg.g.nslots, sizeof(*t->slots));
	if (!t->slots) {
		seg_detach(&t->seg);
		free(t);
		*err = -ENOMEM;
		return NULL;
	}
	for (uint32_t s = 0; s < t->seg.g.nslots; s++) {
		t->slots[s].pidfd = -1;
		t->slots[s].cursor = -1;
	}
	t->uid = st.st_uid;
	t->gid = st.st_gid;
	t->mode = st.st_mode & 0777;
	t->lease_pidfd = -1;
	t->refs = 1;
	return t;
}

/* After a busd restart: who still holds what in this segment. */
static void topic_adopt_clients(struct topic *t)
{
	int fd;

	for (uint32_t s = 0; s < t->seg.g.nslots; s++) {
		struct cons_slot *sl = &t->seg.slots[s];
		uint32_t owner = at_load_relaxed(&sl->owner);
		uint32_t group = at_load_relaxed(&sl->group);
		struct cursor *c = group ? cursor_by_id(group - 1) : NULL;

		if (!owner)
			continue;
		t->slots[s].pid = (pid_t)owner;
		if (c && !strcmp(c->topic, t->name)) {
			t->slots[s].cursor = (int)(c - cursors);
			c->bound = t;
			c->slot = s;
		}
		fd = pidfd_open_((pid_t)owner);
		if (fd < 0 && errno != ESRCH && pid_alive(owner)) {
			/* Cannot watch it (out of descriptors, say), but it
			 * runs: keep its slot; slot_reserve() checks the pid. */
			log_warn("'%s': cannot watch consumer pid %u (slot %u): %s; its slot "
				 "stays held until it is gone", t->name, owner, s, strerror(errno));
			continue;
		}
		if (fd < 0) {
			log_info("'%s': consumer pid %u (slot %u) is gone: slot freed",
				 t->name, owner, s);
			slot_release(t, s, 1);
			continue;
		}
		t->slots[s].pidfd = fd;
		t->slots[s].watch = loop_watch_pidfd(fd);
	}
	{
		uint32_t pid = at_load_relaxed(&t->seg.hdr->pub_pid);

		t->lease_pid = (pid_t)pid;
		if (pid && (fd = pidfd_open_((pid_t)pid)) >= 0) {
			t->lease_pidfd = fd;
			t->lease_watch = loop_watch_pidfd(fd);
		} else if (pid && errno != ESRCH && pid_alive(pid)) {
			/* Unwatched but alive: the lease stays; its flock is
			 * what lease checks fall back on (lock_held()). */
			log_warn("'%s': cannot watch producer pid %u: %s; its lease stays "
				 "until it is gone", t->name, pid, strerror(errno));
		} else {
			lease_release(t);
		}
	}
}

/* Is name (after "bus-ID.") a topic's main file? Returns the topic part. */
static const char *our_topic_file(const char *d_name)
{
	size_t pre = 4 + 16 + 1;

	if (strncmp(d_name, "bus-", 4) || strncmp(d_name + 4, cfg.bus_id, 16) ||
	    d_name[20] != '.')
		return NULL;
	return d_name + pre;
}

static void adopt_all(void)
{
	DIR *d = opendir(cfg.shm_dir);
	struct dirent *e;
	unsigned n = 0;

	if (!d) {
		log_err("cannot list %s: %s", cfg.shm_dir, strerror(errno));
		return;
	}
	while ((e = readdir(d))) {
		const char *name = our_topic_file(e->d_name);
		struct topic *t;
		int err;

		if (!name)
			continue;
		if (strstr(name, ".tmp.")) {
			/* A creation that a crash interrupted: never renamed
			 * into place, nobody can have it open by name. */
			log_info("removing %s/%s, left by an interrupted create", cfg.shm_dir,
				 e->d_name);
			unlinkat(cfg.shm_dirfd, e->d_name, 0);
			continue;
		}
		if (strstr(name, CONS_SUFFIX))
			continue;
		if (proto_name_check(name, (uint32_t)strlen(name), "topic") < 0) {
			log_warn("ignoring %s/%s: not a valid topic name", cfg.shm_dir, e->d_name);
			continue;
		}
		t = topic_open(name, &err);
		if (!t) {
			log_warn("not adopting %s/%s: %s", cfg.shm_dir, e->d_name, bus_errmsg());
			continue;
		}
		if (at_load_relaxed(&t->seg.hdr->state) != SEG_STATE_LIVE) {
			topic_free(t);
			continue;
		}
		if (topic_insert(t) < 0) {
			topic_free(t);
			continue;
		}
		topic_adopt_clients(t);
		if (t->seg.g.flags & BUS_TOPIC_DURABLE)
			flush_open(t, 1);
		n++;
	}
	closedir(d);
	if (n)
		log_notice("adopted %u topics left by a previous busd", n);
}

/* Durable topics whose segment is gone (the host rebooted, /dev/shm was
 * emptied): a new ring starts at the log's next sequence number. */
static void recreate_durable(void)
{
	char path[4400];
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "%s/log", cfg.state_dir);
	d = opendir(path);
	if (!d)
		return;
	while ((e = readdir(d))) {
		struct topic_conf c;
		struct bus_log *l;
		struct bus_log_info li;
		struct bus_topic_opts o;
		struct topic *t;
		char seg[4500];
		int fd, err;

		if (e->d_name[0] == '.' ||
		    proto_name_check(e->d_name, (uint32_t)strlen(e->d_name), "topic") < 0 ||
		    topic_find(e->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/log/%s", cfg.state_dir, e->d_name);
		fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			log_warn("not recreating '%s': cannot open %s: %s", e->d_name, path,
				 strerror(errno));
			continue;
		}
		if (conf_read(fd, &c) < 0) {
			log_warn("%s: no readable topic.conf; not recreating '%s'", path, e->d_name);
			close(fd);
			continue;
		}
		if (log_open_fd(fd, path, &l) < 0) {
			log_warn("not recreating '%s': %s", e->d_name, bus_errmsg());
			continue;
		}
		memset(&li, 0, sizeof(li));
		if (bus_log_info(l, &li) < 0) {
			log_err("not recreating durable topic '%s': its log cannot be read: %s",
				e->d_name, bus_errmsg());
			bus_log_close(l);
			continue;
		}
		bus_log_close(l);
		memset(&o, 0, sizeof(o));
		o.ring_size = c.ring_size;
		o.max_event = c.max_event;
		o.max_consumers = c.max_consumers;
		o.flags = c.flags | BUS_TOPIC_DURABLE;
		o.mode = c.mode;
		o.first_seq = li.next_seq ? li.next_seq : 1;
		seg_full(seg, sizeof(seg), e->d_name);
		if ((geteuid() == 0 && c.uid != UINT32_MAX ?
		     seg_create_owned(seg, &o, c.uid, c.gid) : seg_create(seg, &o)) < 0) {
			log_err("cannot recreate durable topic '%s': %s", e->d_name, bus_errmsg());
			continue;
		}
		t = topic_open(e->d_name, &err);
		if (!t || topic_insert(t) < 0) {
			if (t)
				topic_free(t);
			continue;
		}
		log_notice("recreated durable topic '%s' from its log: the ring starts at event "
			   "%llu", e->d_name, (unsigned long long)o.first_seq);
		flush_open(t, 0);
	}
	closedir(d);
}

int topics_init(void)
{
	cursors_load();
	busd_sweep_stale();
	adopt_all();
	recreate_durable();
	return 0;
}

void topics_fini(void)
{
	topics_persist(0);
	for (unsigned i = 0; i < ntopics; i++) {
		flush_close(topics[i], 0);  /* writes what is left, syncs */
		topic_unref(topics[i]);
	}
	free(topics);
	free(cursors);
	topics = NULL;
	cursors = NULL;
	ntopics = ncursors = 0;
}

/* ---- requests ----------------------------------------------------------- */

int rep_err(struct reply *r, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
	r->status = -err;
	return -err;
}

/* Names arrive as (len, bytes): check them and make a C string. */
static int take_name(const struct proto_name *n, char *out, const char *what, int optional,
		     struct reply *r)
{
	int e;

	if (optional && n->len == 0) {
		out[0] = 0;
		return 0;
	}
	e = proto_name_check(n->s, n->len, what);
	if (e < 0)
		return rep_err(r, -e, "%s", bus_errmsg());
	memcpy(out, n->s, n->len);
	out[n->len] = 0;
	return 0;
}

static int may(const struct conn *c, const struct topic *t, unsigned want)
{
	unsigned bits;

	if (c->uid == 0)
		return 1;
	if (c->uid == t->uid)
		bits = t->mode >> 6;
	else if (c->gid == t->gid || cred_in_group(c, t->gid))
		bits = t->mode >> 3;
	else
		bits = t->mode;
	return (bits & want) == want;
}

static int denied(struct reply *r, const struct topic *t, const char *what)
{
	return rep_err(r, EACCES, "topic '%s': permission denied to %s (mode %04o, owner uid %u "
		       "gid %u)", t->name, what, t->mode, t->uid, t->gid);
}

static struct topic *lookup(const char *name, struct reply *r)
{
	struct topic *t = topic_find(name);

	if (!t)
		rep_err(r, ENOENT, "no topic '%s' on this bus", name);
	return t;
}

static int open_fd(const char *name, const char *suffix, int flags)
{
	char file[PROTO_NAME_MAX + 80];

	seg_file(file, sizeof(file), name, suffix);
	return openat(cfg.shm_dirfd, file, flags | O_NOFOLLOW | O_CLOEXEC);
}

/* busd ran out of descriptors: it keeps two open per topic (five for a
 * durable one) and opens two more for each producer or consumer it hands a
 * topic to. Say which limit it is and how to raise it. */
static int rep_fd_limit(struct reply *r, int e, const char *name, const char *doing)
{
	struct rlimit rl;

	if (e == ENFILE)
		return rep_err(r, ENFILE, "topic '%s': cannot %s: the system's file table is full "
			       "(ENFILE); raise fs.file-max (sysctl -w fs.file-max=N) or close "
			       "files", name, doing);
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		rl.rlim_cur = 0;
	return rep_err(r, EMFILE, "topic '%s': cannot %s: busd has all %llu file descriptors "
		       "its RLIMIT_NOFILE allows open (2 per topic, 5 per durable topic, plus "
		       "clients); raise busd's limit (ulimit -Hn N before starting it, or "
		       "LimitNOFILE=N in its systemd unit) or delete topics", name, doing,
		       (unsigned long long)rl.rlim_cur);
}

/* Fresh descriptors of a topic's two files for a client: the segment with
 * `flags` (read-write for a producer, read-only for a consumer), the
 * consumer area read-write. Fresh, because a flock belongs to the open
 * file description (see the top of this file). */
static int open_pair(const char *name, int flags, int *fd, int *cfd, struct reply *r)
{
	int e;

	*fd = open_fd(name, "", flags);
	*cfd = open_fd(name, CONS_SUFFIX, O_RDWR);
	if (*fd >= 0 && *cfd >= 0)
		return 0;
	e = errno;
	if (*fd >= 0)
		close(*fd);
	if (*cfd >= 0)
		close(*cfd);
	if (e == EMFILE || e == ENFILE)
		return rep_fd_limit(r, e, name, "open its segment for a client");
	return rep_err(r, e, "topic '%s': cannot open its segment: %s", name, strerror(e));
}

int op_create(struct conn *c, const struct req_create *q, struct reply *r)
{
	char name[PROTO_NAME_MAX + 1], path[4400];
	struct topic_conf tc;
	struct bus_topic_opts o;
	struct topic *t;
	int e;

	if (take_name(&q->topic, name, "topic", 0, r) < 0)
		return r->status;
	if (topic_find(name))
		return rep_err(r, EEXIST, "topic '%s' already exists", name);
	if (q->dur[7] || q->flags & ~(BUS_TOPIC_GATING | BUS_TOPIC_DURABLE))
		return rep_err(r, EINVAL, "topic '%s': unknown flags or settings", name);
	if (q->flags & BUS_TOPIC_DURABLE) {
		char why[200];

		memset(&tc, 0, sizeof(tc));
		tc.d.fsync = q->fsync;
		tc.d.fsync_interval_ns = q->dur[0];
		tc.d.fsync_bytes = q->dur[1];
		tc.d.linger_ns = q->dur[2];
		tc.d.batch_bytes = q->dur[3];
		tc.d.segment_bytes = q->dur[4];
		tc.d.retain_bytes = q->dur[5];
		tc.d.retain_age_ns = q->dur[6];
		if (dur_check(&tc.d, why, sizeof(why)) < 0)
			return rep_err(r, EINVAL, "topic '%s': %s", name, why);
		dur_defaults(&tc.d);
		if (flush_log_exists(name))
			return rep_err(r, EEXIST, "topic '%s': a log from an earlier topic of that "
				       "name is in %s/log/%s; remove it first", name, cfg.state_dir,
				       name);
	} else if (q->fsync || q->dur[0] || q->dur[1] || q->dur[2] || q->dur[3] || q->dur[4] ||
		   q->dur[5] || q->dur[6]) {
		return rep_err(r, EINVAL, "topic '%s': durability settings need a durable topic",
			       name);
	}
	/* busd reopens the files it creates; not being root, it needs the
	 * owner's read and write bits to. */
	if (q->mode && geteuid() != 0 && (q->mode & 0600) != 0600)
		return rep_err(r, EINVAL, "topic '%s': mode %04o lacks owner read-write, which "
			       "this busd (not root) needs to manage the topic", name, q->mode);
	memset(&o, 0, sizeof(o));
	o.ring_size = q->ring_size;
	o.max_event = q->max_event;
	o.max_consumers = q->max_consumers;
	o.flags = q->flags;
	o.mode = q->mode;
	o.first_seq = q->first_seq;
	if (o.flags & BUS_TOPIC_DURABLE) {
		/* A log chunk holds at most LOG_CHUNK_MAX bytes of records. */
		uint64_t ring = o.ring_size ? o.ring_size : BUS_RING_DEFAULT;
		uint32_t most = LOG_CHUNK_MAX - sizeof(struct rec_hdr) - REC_ALIGN;

		if (!o.max_event && ring / 4 > most)
			o.max_event = most;
		if (o.max_event > most)
			return rep_err(r, EINVAL, "topic '%s': max event %u: a durable topic's events "
				       "are at most %u bytes (a log chunk holds 4 MiB)", name,
				       o.max_event, most);
	}
	seg_full(path, sizeof(path), name);
	/* A busd running as root makes the creator the owner, as a file
	 * system would; a per-user busd owns what it creates. */
	if (geteuid() == 0)
		e = seg_create_owned(path, &o, c->uid, c->gid);
	else
		e = seg_create(path, &o);
	if (e < 0) {
		if (e == -EEXIST)
			return rep_err(r, EEXIST, "topic '%s': a segment %s exists that this busd "
				       "does not know (bus gc can remove stale segments)", name, path);
		if (e == -EMFILE || e == -ENFILE)
			return rep_fd_limit(r, -e, name, "create its segment");
		return rep_err(r, -e, "topic '%s': %s", name, bus_errmsg());
	}
	t = topic_open(name, &e);
	if (!t || topic_insert(t) < 0) {
		char cp[4500];

		snprintf(cp, sizeof(cp), "%s" CONS_SUFFIX, path);
		unlink(path);
		unlink(cp);
		if (t)
			topic_free(t);
		if (!t && (e == -EMFILE || e == -ENFILE))
			return rep_fd_limit(r, -e, name, "keep its segment open");
		return rep_err(r, t ? ENOMEM : -e, "topic '%s': cannot attach the new segment: %s",
			       name, bus_errmsg());
	}
	if (o.flags & BUS_TOPIC_DURABLE) {
		tc.ring_size = t->seg.g.ring_size;
		tc.max_event = t->seg.g.max_event;
		tc.max_consumers = t->seg.g.nslots;
		tc.flags = t->seg.g.flags;
		tc.mode = t->mode;
		tc.uid = t->uid;
		tc.gid = t->gid;
		e = flush_create(t, &tc);
		if (e < 0) {
			char cp[4500];

			snprintf(cp, sizeof(cp), "%s" CONS_SUFFIX, path);
			topic_unlink_table(t);
			unlink(path);
			unlink(cp);
			topic_unref(t);
			if (e == -EMFILE || e == -ENFILE)
				return rep_fd_limit(r, -e, name, "open its log");
			return rep_err(r, -e, "topic '%s': cannot create its log in %s/log: %s",
				       name, cfg.state_dir, strerror(-e));
		}
	}
	log_info("created topic '%s' (ring %llu, mode %04o, uid %u) for pid %d", name,
		 (unsigned long long)t->seg.g.ring_size, t->mode, t->uid, (int)c->pid);
	return 0;
}

int op_delete(struct conn *c, const struct req_topic *q, struct reply *r)
{
	char name[PROTO_NAME_MAX + 1], file[PROTO_NAME_MAX + 80];
	struct topic *t;

	if (take_name(&q->topic, name, "topic", 0, r) < 0)
		return r->status;
	if (!(t = lookup(name, r)))
		return r->status;
	if (c->uid != 0 && c->uid != t->uid)
		return rep_err(r, EACCES, "topic '%s': only its owner (uid %u) or root may delete "
			       "it", name, t->uid);
	seg_file(file, sizeof(file), name, "");
	if (unlinkat(cfg.shm_dirfd, file, 0) < 0 && errno != ENOENT)
		return rep_err(r, errno, "topic '%s': cannot remove %s/%s: %s", name,
			       cfg.shm_dir, file, strerror(errno));
	seg_file(file, sizeof(file), name, CONS_SUFFIX);
	unlinkat(cfg.shm_dirfd, file, 0);
	/* Consumers load state when they run dry; a wake gets sleepers to
	 * look (the wake_gen RMW pairs with W1 in the consumer, as in
	 * seg_remove()). A gating producer is woken too. */
	at_store_release(&t->seg.hdr->state, SEG_STATE_DELETED);
	at_fetch_add(&t->seg.hdr->wake_gen, 1);
	futex_wake_all(&t->seg.hdr->wake_gen);
	gate_kick(t);
	for (unsigned i = 0; i < ncursors; i++) {
		if (cursors[i].used && !strcmp(cursors[i].topic, name)) {
			cursors[i].used = 0;
			cursors[i].bound = NULL;
			cursors_dirty = 1;
		}
	}
	for (uint32_t s = 0; s < t->seg.g.nslots; s++)
		t->slots[s].cursor = -1;
	flush_close(t, 1);
	t->deleted = 1;
	topic_unlink_table(t);
	topic_unref(t);
	topics_persist(0);
	log_info("deleted topic '%s' (pid %d)", name, (int)c->pid);
	return 0;
}

int op_open_pub(struct conn *c, const struct req_open *q, struct reply *r)
{
	char name[PROTO_NAME_MAX + 1];
	struct topic *t;
	int fd = -1, cfd = -1;

	if (take_name(&q->topic, name, "topic", 0, r) < 0)
		return r->status;
	if (q->group.len || q->flags)
		return rep_err(r, EINVAL, "open as producer: group and flags must be empty");
	if (!(t = lookup(name, r)))
		return r->status;
	if (!may(c, t, 2))
		return denied(r, t, "produce");
	if (c->nhandles >= MAX_HANDLES)
		return rep_err(r, EMFILE, "this connection has %u producers and consumers open, "
			       "the most busd allows per connection (max_handles): open more "
			       "through another connection (bus_connect)", MAX_HANDLES);
	if (q->reclaim) {
		/* busd restarted: a producer re-registers the lease it holds. */
		if (t->lease && t->lease != c)
			return rep_err(r, EBUSY, "topic '%s' already has a producer (pid %d)", name,
				       (int)t->lease->pid);
		if (t->lease_pidfd >= 0 && t->lease_pid != c->pid)
			return rep_err(r, EBUSY, "topic '%s' already has a producer (pid %d)", name,
				       (int)t->lease_pid);
		/* Only the producer the segment names may re-bind the lease. */
		if (at_load_relaxed(&t->seg.hdr->pub_pid) != (uint32_t)c->pid)
			return rep_err(r, ESTALE, "topic '%s': pid %d holds no producer lease to "
				       "reclaim", name, (int)c->pid);
		unwatch(&t->lease_pidfd, &t->lease_watch);
	} else {
		/* A holder that hung up (its EOF still queued) is handled now;
		 * an adopted holder that exited, or no longer holds the kernel
		 * lock (it closed while busd could not hear it), is released. */
		if (t->lease && t->lease != c)
			loop_conn_gone_now(t->lease);
		if (!t->lease && t->lease_pidfd >= 0 &&
		    (pidfd_exited(t->lease_pidfd) || !lock_held(t)))
			lease_release(t);
		if (t->lease || t->lease_pidfd >= 0)
			return rep_err(r, EBUSY, "topic '%s' already has a producer (pid %d): a "
				       "topic has one producer at a time, the next may attach when "
				       "it closes or exits", name,
				       t->lease ? (int)t->lease->pid : (int)t->lease_pid);
		if (open_pair(name, O_RDWR, &fd, &cfd, r) < 0)
			return r->status;
		/* Someone who opened the segment directly (bus_pub_open) may
		 * hold the kernel lock without busd's lease. */
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			close(fd);
			close(cfd);
			return rep_err(r, EBUSY, "topic '%s' already has a producer (pid %u): a "
				       "topic has one producer at a time, the next may attach when "
				       "it closes or exits", name,
				       at_load_relaxed(&t->seg.hdr->pub_pid));
		}
		flock(fd, LOCK_UN);
	}
	if (conn_add_handle(c, t, UINT32_MAX) < 0) {
		if (fd >= 0)
			close(fd);
		if (cfd >= 0)
			close(cfd);
		return rep_err(r, ENOMEM, "out of memory");
	}
	t->lease = c;
	t->lease_pid = c->pid;
	if (fd >= 0) {
		r->fds[0] = fd;
		r->fds[1] = cfd;
		r->nfds = 2;
	}
	log_debug("pid %d %s the producer lease of '%s'", (int)c->pid,
		  q->reclaim ? "reclaimed" : "got", name);
	return 0;
}

int op_close_pub(struct conn *c, const struct req_topic *q, struct reply *r)
{
	char name[PROTO_NAME_MAX + 1];
	int i;

	if (take_name(&q->topic, name, "topic", 0, r) < 0)
		return r->status;
	i = conn_find_handle(c, name, UINT32_MAX);
	if (i < 0)
		return rep_err(r, ENOENT, "this connection is not the producer of '%s'", name);
	if (c->handles[i].t->lease == c) {
		c->handles[i].t->lease = NULL;
		c->handles[i].t->lease_pid = 0;
	}
	topics_drop_handle(c, (unsigned)i);
	return 0;
}

/* An adopted slot (watched by pidfd) that its owner has given up since:
 * it closed the consumer while busd could not hear it (after
 * bus_disconnect(), or while no busd ran). busd lets go of it. */
static int slot_abandoned(struct topic *t, uint32_t s)
{
	struct slot_owner *so = &t->slots[s];

	if (so->conn || so->pidfd < 0 ||
	    at_load_relaxed(&t->seg.slots[s].owner) == (uint32_t)so->pid)
		return 0;
	slot_release(t, s, 0);
	return 1;
}

/* A slot nobody holds: owner 0 (or a dead pid) and not reserved by busd. */
static int slot_reserve(struct topic *t, pid_t pid)
{
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t s = 0; s < t->seg.g.nslots; s++) {
			struct cons_slot *sl = &t->seg.slots[s];
			uint32_t cur = at_load_relaxed(&sl->owner);

			if (t->slots[s].conn || (t->slots[s].pidfd >= 0 && !slot_abandoned(t, s)))
				continue;
			if (cur && (pass == 0 || pid_alive(cur)))
				continue;
			if (cur && t->slots[s].pid == (pid_t)cur)
				slot_release(t, s, 0);  /* an unwatched holder died: unbind its cursor */
			/* seq_cst CAS, as slot_claim() in the library: the
			 * claim word is the slot's only shared RMW. */
			if (at_cas(&sl->owner, &cur, (uint32_t)pid))
				return (int)s;
		}
	}
	return -1;
}

int op_open_sub(struct conn *c, const struct req_open *q, struct reply *r)
{
	char name[PROTO_NAME_MAX + 1], group[PROTO_NAME_MAX + 1];
	struct rep_open_sub *rep = (struct rep_open_sub *)r->body;
	struct cursor *cur = NULL;
	struct topic *t;
	int fd = -1, cfd = -1, s;

	if (take_name(&q->topic, name, "topic", 0, r) < 0 ||
	    take_name(&q->group, group, "cursor", 1, r) < 0)
		return r->status;
	if (q->flags & ~BUS_SUB_GATING)
		return rep_err(r, EINVAL, "open as consumer: unknown flags 0x%x", q->flags);
	if (!(t = lookup(name, r)))
		return r->status;
	if (!may(c, t, 4))
		return denied(r, t, "consume");
	if (c->nhandles >= MAX_HANDLES)
		return rep_err(r, EMFILE, "this connection has %u producers and consumers open, "
			       "the most busd allows per connection (max_handles): open more "
			       "through another connection (bus_connect)", MAX_HANDLES);
	if (group[0]) {
		cur = cursor_find(name, group);
		if (cur && cur->bound) {
			struct conn *holder = cur->bound->slots[cur->slot].conn;

			/* A consumer restarted after a kill: its predecessor's
			 * hangup may still be queued. */
			struct slot_owner *hs = &cur->bound->slots[cur->slot];

			if (holder && holder != c && loop_conn_gone_now(holder))
				cur = cursor_find(name, group);
			if (cur && cur->bound && !hs->conn &&
			    (hs->pidfd >= 0 ? pidfd_exited(hs->pidfd) :
			     !pid_alive((uint32_t)hs->pid))) {
				slot_release(cur->bound, cur->slot, 1);
				cur = cursor_find(name, group);
			}
			if (cur && cur->bound && slot_abandoned(cur->bound, cur->slot))
				cur = cursor_find(name, group);
		}
		if (cur && cur->bound) {
			struct slot_owner *so = &cur->bound->slots[cur->slot];
			int mine = q->reclaim && cur->bound == t && cur->slot == q->slot &&
				   at_load_relaxed(&t->seg.slots[q->slot].owner) == (uint32_t)c->pid;

			if (!mine)
				return rep_err(r, EBUSY, "cursor '%s' of topic '%s' is in use (pid %u)",
					       group, name,
					       at_load_relaxed(&cur->bound->seg.slots[cur->slot].owner));
			(void)so;
		}
		if (!cur) {
			cur = cursor_add(cursor_next_id(), name, group, 0);
			if (!cur)
				return rep_err(r, ENOMEM, "out of memory");
			/* The id goes into the slot: it must be on disk
			 * before anyone can depend on it. */
			topics_persist(1);
		}
	}
	if (q->reclaim) {
		if (q->slot >= t->seg.g.nslots ||
		    at_load_relaxed(&t->seg.slots[q->slot].owner) != (uint32_t)c->pid ||
		    (t->slots[q->slot].conn && t->slots[q->slot].conn != c))
			return rep_err(r, ESTALE, "topic '%s': slot %u is not held by pid %d", name,
				       q->slot, (int)c->pid);
		s = (int)q->slot;
		unwatch(&t->slots[s].pidfd, &t->slots[s].watch);
	} else {
		if (open_pair(name, O_RDONLY, &fd, &cfd, r) < 0)
			return r->status;
		s = slot_reserve(t, c->pid);
		if (s < 0) {
			close(fd);
			close(cfd);
			return rep_err(r, EUSERS, "topic '%s': all %u consumer slots are taken "
				       "(the topic's max_consumers, fixed when it was created: "
				       "create it with more, up to %u, e.g. bus create --consumers "
				       "N; a slot frees when its consumer closes or exits)", name,
				       t->seg.g.nslots, BUS_CONSUMERS_MAX);
		}
		t->slots[s].pid = c->pid;
		/* Ours until the consumer takes over: it reads these after it
		 * receives the reply (the socket orders them). */
		at_store_relaxed(&t->seg.slots[s].group, cur ? cur->id + 1 : 0);
		at_store_relaxed(&t->seg.slots[s].commit, cur ? cur->seq : 0);
	}
	if (conn_add_handle(c, t, (uint32_t)s) < 0) {
		if (fd >= 0) {
			close(fd);
			close(cfd);
			/* Give back the slot we reserved; release, as
			 * bus_sub_close() does (we wrote group and commit). */
			at_store_release(&t->seg.slots[s].owner, 0);
		}
		return rep_err(r, ENOMEM, "out of memory");
	}
	t->slots[s].conn = c;
	t->slots[s].conn_gen = c->gen;
	t->slots[s].cursor = cur ? (int)(cur - cursors) : -1;
	if (cur) {
		cur->bound = t;
		cur->slot = (uint32_t)s;
	}
	memset(rep, 0, sizeof(*rep));
	rep->slot = (uint32_t)s;
	rep->has_commit = cur && cur->seq;
	rep->resume_seq = cur ? cur->seq : 0;
	r->len = sizeof(*rep);
	if (fd >= 0) {
		r->fds[0] = fd;
		r->fds[1] = cfd;
		r->nfds = 2;
		/* A durable topic's consumer reads the log when the ring has
		 * moved past it: its directory, read-only. */
		if (t->fl && (r->fds[2] = flush_log_fd(t)) >= 0)
			r->nfds = 3;
	}
	log_debug("pid %d consumes '%s' in slot %d%s%s", (int)c->pid, name, s,
		  cur ? " as cursor " : "", cur ? group : "");
	return 0;
}

int op_close_sub(struct conn *c, const struct req_close_sub *q, struct reply *r)
{
	char name[PROTO_NAME_MAX + 1];
	struct topic *t;
	int i;

	if (take_name(&q->topic, name, "topic", 0, r) < 0)
		return r->status;
	i = conn_find_handle(c, name, q->slot);
	if (i < 0)
		return rep_err(r, ENOENT, "this connection holds no slot %u of '%s'", q->slot, name);
	t = c->handles[i].t;
	/* busd frees the slot (the consumer leaves it to us, see
	 * bus_sub_close), after taking the committed position from it. */
	if (t->slots[q->slot].conn == c)
		slot_release(t, q->slot, 1);
	topics_drop_handle(c, (unsigned)i);
	if (cursors_dirty)
		topics_persist(0);
	return 0;
}

static void fill_topic(struct proto_topic *p, struct topic *t)
{
	struct bus_topic_info ti;
	size_t n = strlen(t->name);

	topic_stat_seg(&t->seg, &ti, NULL, 0, 0, NULL);
	memset(p, 0, sizeof(*p));
	p->topic.len = (uint16_t)n;
	memcpy(p->topic.s, t->name, n);
	p->mode = t->mode;
	p->uid = t->uid;
	p->gid = t->gid;
	p->max_event = ti.max_event;
	p->max_consumers = ti.max_consumers;
	p->flags = ti.flags;
	p->producer_pid = ti.producer_pid;
	p->consumers = ti.consumers;
	p->deleted = ti.deleted;
	p->ring_size = ti.ring_size;
	p->first_seq = ti.first_seq;
	p->oldest_seq = ti.oldest_seq;
	p->next_seq = ti.next_seq;
	p->bytes = ti.bytes;
	p->producer_waits = ti.producer_waits;
	p->wakeups = ti.wakeups;
	p->max_lag = ti.max_lag;
	p->degraded = ti.degraded;
	p->flushed_seq = ti.flushed_seq;
	p->durable_seq = ti.durable_seq;
	p->flush_errors = ti.flush_errors;
}

int op_list(struct conn *c, const struct req_list *q, struct reply *r, size_t room)
{
	struct rep_list *rep = (struct rep_list *)r->body;
	struct proto_topic *e = (struct proto_topic *)(rep + 1);
	unsigned max = (unsigned)((room - sizeof(*rep)) / sizeof(*e)), n = 0, total = 0, i;

	memset(rep, 0, sizeof(*rep));
	if (max > PROTO_LIST_MAX)
		max = PROTO_LIST_MAX;
	for (i = 0; i < ntopics; i++) {
		if (!may(c, topics[i], 4))
			continue;
		if (total++ < q->start)
			continue;
		if (n < max)
			fill_topic(&e[n++], topics[i]);
		else if (!rep->next)
			rep->next = total - 1;
	}
	rep->count = n;
	rep->total = total;
	r->len = sizeof(*rep) + n * sizeof(*e);
	return 0;
}

int op_stat(struct conn *c, const struct req_topic *q, struct reply *r, size_t room)
{
	char name[PROTO_NAME_MAX + 1];
	struct rep_stat *rep = (struct rep_stat *)r->body;
	struct proto_consumer *pc = (struct proto_consumer *)(rep + 1);
	struct bus_consumer_info ci[64];
	struct bus_topic_info ti;
	unsigned max = (unsigned)((room - sizeof(*rep)) / sizeof(*pc)), n;
	uint32_t next;
	struct topic *t;

	if (take_name(&q->topic, name, "topic", 0, r) < 0)
		return r->status;
	if (!(t = lookup(name, r)))
		return r->status;
	if (!may(c, t, 4))
		return denied(r, t, "read");
	if (max > 64)
		max = 64;
	memset(rep, 0, sizeof(*rep));
	fill_topic(&rep->t, t);
	n = (unsigned)topic_stat_seg(&t->seg, &ti, ci, max, q->arg, &next);
	for (unsigned i = 0; i < n; i++) {
		struct proto_consumer *p = &pc[i];
		int cu = t->slots[ci[i].slot].cursor;

		memset(p, 0, sizeof(*p));
		if (cu >= 0 && cursors[cu].used) {
			size_t len = strlen(cursors[cu].group);

			p->group.len = (uint16_t)len;
			memcpy(p->group.s, cursors[cu].group, len);
		}
		p->slot = ci[i].slot;
		p->pid = ci[i].pid;
		p->flags = (ci[i].gating ? 1u : 0u) | (ci[i].sleeping ? 2u : 0u);
		p->next_seq = ci[i].next_seq;
		p->lag = ci[i].lag;
		p->events = ci[i].events;
		p->lapped = ci[i].lapped;
		p->lost = ci[i].lost;
		p->commit = ci[i].commit;
	}
	rep->count = n;
	rep->next_slot = next;
	r->len = sizeof(*rep) + n * sizeof(*pc);
	return 0;
}

int op_open_log(struct conn *c, const struct req_topic *q, struct reply *r)
{
	char name[PROTO_NAME_MAX + 1];
	struct topic *t;
	int fd;

	if (take_name(&q->topic, name, "topic", 0, r) < 0)
		return r->status;
	if (!(t = lookup(name, r)))
		return r->status;
	if (!may(c, t, 4))
		return denied(r, t, "read");
	if (!(t->seg.g.flags & BUS_TOPIC_DURABLE))
		return rep_err(r, EINVAL, "topic '%s' is not durable: it has no log", name);
	if (!t->fl)
		return rep_err(r, EIO, "topic '%s': its log could not be opened (see busd's log)",
			       name);
	fd = flush_log_fd(t);
	if (fd < 0)
		return rep_err(r, errno, "topic '%s': cannot open its log directory: %s", name,
			       strerror(errno));
	r->fds[0] = fd;
	r->nfds = 1;
	return 0;
}
