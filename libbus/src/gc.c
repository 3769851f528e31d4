/* SPDX-License-Identifier: MIT */
/*
 * gc.c — the segments of dead buses (see gc.h): busd's stale sweep at start
 * and `bus gc`.
 *
 * Deciding that a file may go takes three questions, each conservative:
 *
 *  1. Is its bus dead? The anchor SHM/bus-ID names the bus directory; the
 *     bus is live while anyone holds the OFD lock on BUSDIR/busd.lock (busd
 *     does, for as long as it runs, however it exits). A lock file we cannot
 *     read means "cannot tell": keep.
 *  2. Is it ours? Only regular files owned by our effective uid; never a
 *     symlink, never another user's file (even as root: root's own only).
 *  3. Does anyone still use it? A process of a dead bus's client may still
 *     map a topic and read it. Two checks: the inodes in /proc/PID/maps of
 *     every process we may read (all of ours; all, as root), and a write
 *     lease, which the kernel refuses while any process — of any user — has
 *     the file open or mapped. The lease is held across the unlink, so no
 *     one can open the file between the check and its removal (an opener
 *     would wait for the lease; we release it right after). Its break
 *     signal is set to SIGURG, ignored by default, so a racing opener
 *     cannot kill us with SIGIO.
 *
 * The anchor goes last, once nothing else of its bus is left: it is how the
 * next sweep finds the files that are still there.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "gc.h"
#include "layout.h"
#include "proto.h"

#define ID_LEN 16
#define ANCHOR_LEN (4 + ID_LEN)  /* "bus-" + id */

static const struct {
	const char *key, *str;
} whys[] = {
	[GC_DEAD] = { "dead", "its bus has no busd" },
	[GC_LIVE] = { "live", "its bus is live (busd holds the lock)" },
	[GC_UNSURE] = { "unsure", "cannot tell whether its busd runs" },
	[GC_BAD_ANCHOR] = { "bad_anchor", "its anchor names no bus directory" },
	[GC_NOT_OURS] = { "not_ours", "another user's" },
	[GC_NOT_FILE] = { "not_file", "not a regular file" },
	[GC_MAPPED] = { "mapped", "a process maps it" },
	[GC_IN_USE] = { "in_use", "a process has it open or mapped" },
	[GC_FAILED] = { "failed", "cannot remove it" },
	[GC_PAIR] = { "pair", "the other half of its topic is kept" },
	[GC_REMAIN] = { "remain", "files of its bus remain" },
	[GC_ORPHAN] = { "orphan", "no anchor says whose bus it is" },
};

const char *gc_why_str(enum gc_why w)
{
	return (unsigned)w < sizeof(whys) / sizeof(whys[0]) ? whys[w].str : "?";
}

const char *gc_why_key(enum gc_why w)
{
	return (unsigned)w < sizeof(whys) / sizeof(whys[0]) ? whys[w].key : "?";
}

/* ---- what the directory holds -------------------------------------------- */

struct names {
	char **v;
	size_t n, cap;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void names_free(struct names *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
}

/* Every bus-* name in the directory, sorted. */
static int names_load(int dirfd, struct names *s)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	int r = 0;

	memset(s, 0, sizeof(*s));
	if (!d) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return r;
	}
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "bus-", 4))
			continue;
		if (s->n == s->cap) {
			size_t nc = s->cap ? 2 * s->cap : 64;
			char **v = realloc(s->v, nc * sizeof(*v));

			if (!v) {
				r = -ENOMEM;
				break;
			}
			s->v = v;
			s->cap = nc;
		}
		if (!(s->v[s->n] = strdup(e->d_name))) {
			r = -ENOMEM;
			break;
		}
		s->n++;
	}
	closedir(d);
	if (r < 0) {
		names_free(s);
		memset(s, 0, sizeof(*s));
		return r;
	}
	qsort(s->v, s->n, sizeof(*s->v), cmp_str);
	return 0;
}

static int is_id(const char *s)
{
	return strspn(s, "0123456789abcdef") >= ID_LEN;
}

/* "bus-ID" exactly. */
static int is_anchor(const char *name)
{
	return strlen(name) == ANCHOR_LEN && is_id(name + 4);
}

/* "bus-ID.*": a file of bus ID. */
static int is_bus_file(const char *name)
{
	return strlen(name) > ANCHOR_LEN + 1 && is_id(name + 4) && name[ANCHOR_LEN] == '.';
}

int gc_bus_files(int shm_dirfd, const char *id)
{
	struct names s;
	char prefix[32];
	size_t pl;
	int n = 0;

	if (names_load(shm_dirfd, &s) < 0)
		return 0;
	pl = (size_t)snprintf(prefix, sizeof(prefix), "bus-%s.", id);
	for (size_t i = 0; i < s.n; i++)
		n += !strncmp(s.v[i], prefix, pl);
	names_free(&s);
	return n;
}

/* ---- is the bus alive? is the file in use? -------------------------------- */

int gc_bus_alive(const char *dir)
{
	char path[4400];
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd, r;

	snprintf(path, sizeof(path), "%s/" PROTO_LOCK, dir);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	r = fcntl(fd, F_OFD_GETLK, &fl);
	if (r < 0)
		r = -errno;
	close(fd);
	if (r < 0)
		return r;
	return fl.l_type != F_UNLCK;
}

struct inodes {
	ino_t *v;
	size_t n, cap;
};

static int ino_cmp(const void *a, const void *b)
{
	ino_t x = *(const ino_t *)a, y = *(const ino_t *)b;

	return x < y ? -1 : x > y;
}

/* Inodes on device `dev` that some process maps: from /proc/PID/maps of
 * every process we may read (all of ours; all, as root). */
static void mapped_inodes(dev_t dev, struct inodes *s)
{
	DIR *d = opendir("/proc");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[300], line[512];
		FILE *f;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/maps", e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			unsigned maj, min;
			unsigned long ino;

			if (sscanf(line, "%*s %*s %*s %x:%x %lu", &maj, &min, &ino) != 3 || !ino ||
			    makedev(maj, min) != dev)
				continue;
			if (s->n == s->cap) {
				size_t nc = s->cap ? 2 * s->cap : 256;
				ino_t *v = realloc(s->v, nc * sizeof(*v));

				if (!v)
					break;
				s->v = v;
				s->cap = nc;
			}
			s->v[s->n++] = (ino_t)ino;
		}
		fclose(f);
	}
	closedir(d);
	qsort(s->v, s->n, sizeof(*s->v), ino_cmp);
}

/*
 * Take a write lease on the file: the kernel grants it only when no other
 * open file description (a descriptor, or a mapping) refers to it. Returns
 * the descriptor holding the lease, -EAGAIN if the file is in use, or
 * another -errno when no lease can be had (leases disabled, a file system
 * without them): then only the maps check speaks.
 */
static int lease_take(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), e;

	if (fd < 0)
		return -errno;
	/* A racing opener breaks the lease with a signal: SIGURG, whose
	 * default is to be ignored, not SIGIO, whose default kills. */
	if (fcntl(fd, F_SETSIG, SIGURG) < 0 || fcntl(fd, F_SETLEASE, F_WRLCK) < 0) {
		e = errno;
		close(fd);
		return e == EAGAIN || e == EBUSY ? -EAGAIN : -e;
	}
	return fd;
}

static void lease_drop(int fd)
{
	if (fd < 0)
		return;
	fcntl(fd, F_SETLEASE, F_UNLCK);
	close(fd);
}

/* ---- the sweep ------------------------------------------------------------ */

struct sweep {
	const struct gc_opts *o;
	struct gc_stats *st;
	struct inodes in_use;
	int have_maps;
	dev_t dev;
};

static void report(struct sweep *s, struct gc_file *f)
{
	if (f->removed) {
		s->st->removed++;
		s->st->bytes += f->size;
	} else {
		s->st->kept++;
	}
	if (s->o->on_file)
		s->o->on_file(s->o->arg, f);
}

/* Fill size and owner of a file; 0, or -1 if it is gone. */
static int look(int dirfd, struct gc_file *f, struct stat *st)
{
	if (fstatat(dirfd, f->name, st, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	f->size = (uint64_t)st->st_size;
	f->uid = (uint32_t)st->st_uid;
	return 0;
}

/* A file of a dead bus: may it go? Sets f->why when it may not. */
static void judge(struct sweep *s, struct gc_file *f, const struct stat *st)
{
	int lfd;

	if (!S_ISREG(st->st_mode)) {
		f->why = GC_NOT_FILE;
		return;
	}
	if (st->st_uid != geteuid()) {
		f->why = GC_NOT_OURS;
		return;
	}
	if (!s->have_maps) {
		mapped_inodes(s->dev, &s->in_use);
		s->have_maps = 1;
	}
	if (bsearch(&st->st_ino, s->in_use.v, s->in_use.n, sizeof(ino_t), ino_cmp)) {
		f->why = GC_MAPPED;
		return;
	}
	lfd = lease_take(s->o->shm_dirfd, f->name);
	if (lfd == -EAGAIN)
		f->why = GC_IN_USE;
	lease_drop(lfd);
}

/* Remove a file judged free. The lease is taken again and held across the
 * unlink: whoever opened it since the judging keeps it. */
static void remove_file(struct sweep *s, struct gc_file *f)
{
	const struct gc_opts *o = s->o;
	int lfd = lease_take(o->shm_dirfd, f->name);

	if (lfd == -EAGAIN) {
		f->why = GC_IN_USE;
	} else if (o->dry_run || unlinkat(o->shm_dirfd, f->name, 0) == 0) {
		f->removed = 1;
	} else {
		f->why = GC_FAILED;
		f->err = errno;
	}
	lease_drop(lfd);
}

/* The other half of a topic: NAME <-> NAME@cons, among names[0..n). */
static size_t partner(char **names, size_t n, size_t i)
{
	size_t len = strlen(names[i]), sl = sizeof(CONS_SUFFIX) - 1;
	int cons = len > sl && !strcmp(names[i] + len - sl, CONS_SUFFIX);

	for (size_t j = 0; j < n; j++) {
		size_t lj = strlen(names[j]);

		if (j == i)
			continue;
		if (cons ? lj == len - sl && !strncmp(names[j], names[i], lj)
			 : lj == len + sl && !strncmp(names[j], names[i], len) &&
				   !strcmp(names[j] + len, CONS_SUFFIX))
			return j;
	}
	return n;
}

/* Read an anchor: the bus directory and busd's pid. 0, or -1 when it is not
 * a readable regular file of ours (f->why says why). */
static int read_anchor(int dirfd, struct gc_file *f, char *dir, size_t size)
{
	struct stat st;
	ssize_t n;
	char *nl;
	int fd;

	dir[0] = 0;
	fd = openat(dirfd, f->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		f->why = errno == ELOOP ? GC_NOT_FILE : GC_UNSURE;
		f->err = errno;
		if (fd >= 0)
			close(fd);
		return -1;
	}
	f->size = (uint64_t)st.st_size;
	f->uid = (uint32_t)st.st_uid;
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		f->why = S_ISREG(st.st_mode) ? GC_NOT_OURS : GC_NOT_FILE;
		close(fd);
		return -1;
	}
	n = read(fd, dir, size - 1);
	close(fd);
	dir[n > 0 ? n : 0] = 0;
	if ((nl = strchr(dir, '\n'))) {
		*nl = 0;
		f->busd_pid = atoi(nl + 1);
	}
	if (dir[0] != '/') {
		f->why = GC_BAD_ANCHOR;
		dir[0] = 0;
		return -1;
	}
	return 0;
}

/* One bus: its anchor, and its files names[0..nfiles). */
static void sweep_bus(struct sweep *s, char **names, size_t nfiles, const char *anchor)
{
	const struct gc_opts *o = s->o;
	struct gc_file af = { .name = anchor, .anchor = 1 }, tmpl, *fs;
	char id[ID_LEN + 1], dir[4096];
	int alive, left = 0;
	struct stat st;

	memcpy(id, anchor + 4, ID_LEN);
	id[ID_LEN] = 0;
	af.bus_id = id;
	af.bus_dir = dir;
	s->st->buses++;
	alive = read_anchor(o->shm_dirfd, &af, dir, sizeof(dir)) < 0 ? -2 : gc_bus_alive(dir);
	if (alive == 1) {
		af.why = GC_LIVE;
	} else if (alive < 0 && alive != -2) {
		af.why = GC_UNSURE;
		af.err = -alive;
	}
	tmpl = af;
	tmpl.anchor = 0;
	tmpl.size = 0;
	tmpl.uid = 0;
	if (alive) {
		/* Live, or not ours to judge: everything of it stays. */
		for (size_t i = 0; i < nfiles; i++) {
			struct gc_file f = tmpl;

			f.name = names[i];
			if (look(o->shm_dirfd, &f, &st) == 0)
				report(s, &f);
		}
		report(s, &af);
		return;
	}
	s->st->dead++;
	/* Judge every file first: a topic is a pair (NAME, NAME@cons), and
	 * when one half must stay, so does the other. */
	fs = calloc(nfiles + 1, sizeof(*fs));
	if (!fs) {
		nfiles = 0;
		left = 1;
	}
	for (size_t i = 0; i < nfiles; i++) {
		fs[i] = tmpl;
		fs[i].name = names[i];
		if (look(o->shm_dirfd, &fs[i], &st) < 0)
			fs[i].name = NULL;  /* gone meanwhile */
		else
			judge(s, &fs[i], &st);
	}
	for (size_t i = 0; i < nfiles; i++) {
		size_t p = partner(names, nfiles, i);

		if (fs[i].name && fs[i].why == GC_DEAD && p < nfiles && fs[p].name &&
		    fs[p].why != GC_DEAD && fs[p].why != GC_PAIR)
			fs[i].why = GC_PAIR;
	}
	for (size_t i = 0; i < nfiles; i++) {
		if (!fs[i].name)
			continue;
		if (fs[i].why == GC_DEAD)
			remove_file(s, &fs[i]);
		left += !fs[i].removed;
		report(s, &fs[i]);
	}
	free(fs);
	if (left) {
		af.why = GC_REMAIN;
	} else if (o->dry_run || unlinkat(o->shm_dirfd, anchor, 0) == 0) {
		af.removed = 1;
		s->st->cleared++;
	} else {
		af.why = GC_FAILED;
		af.err = errno;
	}
	report(s, &af);
}

int gc_sweep(const struct gc_opts *o, struct gc_stats *st)
{
	struct sweep s = { .o = o, .st = st };
	struct names n;
	struct stat dst;
	char **files = NULL, *seen = NULL;
	int r;

	memset(st, 0, sizeof(*st));
	if (fstat(o->shm_dirfd, &dst) < 0)
		return -errno;
	s.dev = dst.st_dev;
	r = names_load(o->shm_dirfd, &n);
	if (r < 0)
		return r;
	files = calloc(n.n + 1, sizeof(*files));
	seen = calloc(n.n + 1, 1);
	if (!files || !seen) {
		r = -ENOMEM;
		goto out;
	}
	/* Each anchor with the files of its bus (names are sorted, so they are
	 * reported in order), then the files no anchor claims. */
	for (size_t i = 0; i < n.n; i++) {
		size_t nf = 0;

		if (!is_anchor(n.v[i]))
			continue;
		for (size_t j = 0; j < n.n; j++) {
			if (is_bus_file(n.v[j]) && !strncmp(n.v[j], n.v[i], ANCHOR_LEN)) {
				files[nf++] = n.v[j];
				seen[j] = 1;
			}
		}
		seen[i] = 1;
		if (!o->skip_id || strcmp(n.v[i] + 4, o->skip_id))
			sweep_bus(&s, files, nf, n.v[i]);
	}
	for (size_t i = 0; i < n.n; i++) {
		struct gc_file f = { .name = n.v[i], .bus_dir = "", .why = GC_ORPHAN };
		char id[ID_LEN + 1];
		struct stat fst;

		if (seen[i] || !is_bus_file(n.v[i]))
			continue;
		memcpy(id, n.v[i] + 4, ID_LEN);
		id[ID_LEN] = 0;
		f.bus_id = id;
		if ((!o->skip_id || strcmp(id, o->skip_id)) && look(o->shm_dirfd, &f, &fst) == 0)
			report(&s, &f);
	}
out:
	free(files);
	free(seen);
	names_free(&n);
	free(s.in_use.v);
	return r;
}
