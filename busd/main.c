/* SPDX-License-Identifier: MIT */
/*
 * busd — the bus daemon: creates topics, hands out their descriptors, grants
 * the producer lease, keeps named cursors and reclaims what dead clients
 * held. Never on the data path. See busd(8).
 *
 * main.c: options, the bus and state directories, the one-busd-per-bus lock,
 * the anchor file that ties segments to their bus, the stale-segment sweep,
 * logging and sd_notify.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "busd.h"
#include "err.h"
#include "gc.h"

struct busd_cfg cfg;

/* ---- logging ------------------------------------------------------------ */

static int log_level = L_INFO;
static int log_tty;
static int log_fd = -1;
static char log_path[4200];

static const char *level_name(int l)
{
	switch (l) {
	case L_ERR: return "error";
	case L_WARN: return "warning";
	case L_NOTICE: return "notice";
	case L_INFO: return "info";
	default: return "debug";
	}
}

void logmsg(int level, const char *fmt, ...)
{
	char msg[1024], line[1200], ts[64];
	struct timespec now;
	struct tm tm;
	va_list ap;
	int n;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* journald reads "<N>" as the priority when stderr is not a TTY. */
	if (log_tty)
		n = snprintf(line, sizeof(line), "busd: %s: %s\n", level_name(level), msg);
	else
		n = snprintf(line, sizeof(line), "<%d>%s\n", level, msg);
	if (n > 0) /* a failed write of a log line has nowhere left to go */
		(void)!write(2, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	if (log_fd < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "%s.%03ldZ busd[%d] %s: %s\n", ts,
		     now.tv_nsec / 1000000, (int)getpid(), level_name(level), msg);
	if (n > 0)
		(void)!write(log_fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

void log_reopen(void)
{
	int fd;

	if (!log_path[0])
		return;
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		int keep = log_fd;

		log_fd = -1;
		log_err("cannot open log file %s: %s", log_path, strerror(errno));
		log_fd = keep;
		return;
	}
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
}

/* ---- shared files that a client truncates -------------------------------- */

/*
 * busd maps every topic's header and consumer area read-write, and clients
 * hold writable descriptors of those files: the producer of its segment, and
 * every consumer (whoever may read the topic) of the consumer area, which it
 * must map read-write to keep its cursor there. ftruncate(2) on such a file
 * makes busd's next access past the new end fault with SIGBUS, and a daemon
 * that any reader of any topic can kill would serve nobody.
 *
 * So busd maps a private zero page over the page that vanished and carries
 * on: from then on it reads zeros there (no owner, no commit, no wake
 * request), which it handles like any other content of shared memory, and
 * its writes there go nowhere. The topic stays broken for its clients (their
 * own mappings fault; a new attach fails the size check) until its owner
 * deletes it; every other topic is served as before. Only the fault of a page
 * beyond the end of its file (BUS_ADRERR) is handled this way: any other
 * SIGBUS (a hardware memory error, say) kills busd as it always did.
 */
static size_t page_size;
static volatile sig_atomic_t sigbus_pages;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	static const char tty[] = "busd: warning: a client truncated a shared-memory file of a "
				  "topic under busd; busd reads zeros there from now on (delete "
				  "and re-create that topic)\n";
	static const char plain[] = "<4>a client truncated a shared-memory file of a topic under "
				    "busd; busd reads zeros there from now on (delete and "
				    "re-create that topic)\n";
	uintptr_t page = (uintptr_t)si->si_addr & ~(uintptr_t)(page_size - 1);
	int e = errno;

	(void)uc;
	/* A raw system call: nothing between us and the kernel that could
	 * take a lock the interrupted code holds. */
	if (si->si_code != BUS_ADRERR || !page ||
	    (long)syscall(SYS_mmap, page, page_size, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != (long)page) {
		struct sigaction dfl = { .sa_handler = SIG_DFL };

		/* Not ours to mend: returning re-runs the access, which now
		 * ends busd as SIGBUS always did. */
		sigaction(sig, &dfl, NULL);
		errno = e;
		return;
	}
	/* The first few pages are reported (a topic has a handful); only
	 * write(2) here, so the log file's line has no timestamp. */
	if (sigbus_pages++ < 8) {
		if (log_tty)
			(void)!write(2, tty, sizeof(tty) - 1);
		else
			(void)!write(2, plain, sizeof(plain) - 1);
		if (log_fd >= 0)
			(void)!write(log_fd, tty, sizeof(tty) - 1);
	}
	errno = e;
}

static void sigbus_install(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };

	page_size = (size_t)sysconf(_SC_PAGESIZE);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

/* ---- sd_notify, without libsystemd -------------------------------------- */

static void notify(const char *msg)
{
	const char *p = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n;
	int fd;

	if (!p || (*p != '/' && *p != '@') || (n = strlen(p)) >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, p, n);
	if (p[0] == '@')
		sa.sun_path[0] = 0; /* abstract namespace */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		log_warn("cannot notify %s: %s", p, strerror(errno));
	close(fd);
}

/* ---- directories -------------------------------------------------------- */

/* mkdir -p with mode for the components we create. */
static int mkdirs(const char *path, mode_t mode)
{
	char tmp[4096];
	size_t n = strlen(path);

	if (n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* The /tmp fallback is in a shared directory: it must be ours and private. */
static int check_private(const char *dir)
{
	struct stat st;

	if (lstat(dir, &st) < 0)
		return -errno;
	if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "busd: %s is not a directory (a symlink?): refusing it\n", dir);
		return -ENOTDIR;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077)) {
		fprintf(stderr, "busd: %s belongs to uid %u with mode %04o; it must be ours "
			"(uid %u) and 0700\n", dir, (unsigned)st.st_uid,
			(unsigned)(st.st_mode & 07777), (unsigned)geteuid());
		return -EPERM;
	}
	return 0;
}

static int set_dir(char *out, size_t size, const char *path, const char *what)
{
	char real[PATH_MAX];
	int r = mkdirs(path, 0700);

	if (r < 0) {
		fprintf(stderr, "busd: cannot create %s %s: %s\n", what, path, strerror(-r));
		return r;
	}
	if (!realpath(path, real)) {
		fprintf(stderr, "busd: %s %s: %s\n", what, path, strerror(errno));
		return -errno;
	}
	if (strlen(real) >= size) {
		fprintf(stderr, "busd: %s %s: path too long\n", what, real);
		return -ENAMETOOLONG;
	}
	strcpy(out, real);
	return 0;
}

/* ---- the instance lock -------------------------------------------------- */

static int lock_fd = -1;

static int take_lock(void)
{
	char path[4200], pid[32] = "";
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/" PROTO_LOCK, cfg.bus_dir);
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "busd: cannot open %s: %s\n", path, strerror(errno));
		return -errno;
	}
	/* An OFD lock: tied to this open file, released however we exit. */
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		int e = errno;

		n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = 0;
		pid[strcspn(pid, "\n")] = 0;
		if (e == EAGAIN || e == EACCES)
			fprintf(stderr, "busd: another busd (pid %s) already serves %s\n",
				pid[0] ? pid : "?", cfg.bus_dir);
		else
			fprintf(stderr, "busd: cannot lock %s: %s\n", path, strerror(e));
		close(fd);
		return -EBUSY;
	}
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		fprintf(stderr, "busd: cannot write %s: %s\n", path, strerror(errno));
	lock_fd = fd;
	return 0;
}

/* ---- the anchor: SHM/bus-ID names the bus its segments belong to -------- */

static int write_anchor(void)
{
	char name[64], tmp[80], body[4200];
	int fd, n;

	snprintf(name, sizeof(name), "bus-%s", cfg.bus_id);
	snprintf(tmp, sizeof(tmp), "bus-%s.anchor.tmp", cfg.bus_id);
	n = snprintf(body, sizeof(body), "%s\n%d\n", cfg.bus_dir, (int)getpid());
	unlinkat(cfg.shm_dirfd, tmp, 0);
	fd = openat(cfg.shm_dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    0644);
	if (fd < 0 || write(fd, body, (size_t)n) != n) {
		log_err("cannot write %s/%s: %s", cfg.shm_dir, tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	if (renameat(cfg.shm_dirfd, tmp, cfg.shm_dirfd, name) < 0) {
		log_err("cannot create %s/%s: %s", cfg.shm_dir, name, strerror(errno));
		unlinkat(cfg.shm_dirfd, tmp, 0);
		return -1;
	}
	return 0;
}

/* ---- the stale-segment sweep (libbus/src/gc.c) ------------------------- */

static void swept(void *arg, const struct gc_file *f)
{
	(void)arg;
	if (f->removed && f->anchor)
		log_info("removed the segments of dead bus %s (%s)", f->bus_id, f->bus_dir);
	else if (f->removed)
		log_info("removed stale segment %s/%s", cfg.shm_dir, f->name);
	else if (f->why == GC_MAPPED || f->why == GC_IN_USE || f->why == GC_FAILED)
		log_debug("kept %s/%s of dead bus %s: %s%s%s", cfg.shm_dir, f->name, f->bus_id,
			  gc_why_str(f->why), f->err ? ": " : "", f->err ? strerror(f->err) : "");
}

/*
 * Segments of dead buses: for every anchor SHM/bus-ID other than ours, owned
 * by us, whose bus has no busd (nobody holds its lock), remove the bus-ID.*
 * files that are ours and that no process uses; then the anchor once nothing
 * is left. Files of other users are never touched. Returns the number of
 * dead buses removed completely.
 */
int busd_sweep_stale(void)
{
	struct gc_opts o = { .shm_dirfd = cfg.shm_dirfd, .skip_id = cfg.bus_id, .on_file = swept };
	struct gc_stats st;

	if (gc_sweep(&o, &st) < 0)
		return 0;
	return (int)st.cleared;
}

/* ---- main --------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
"Usage: busd [OPTION]...\n"
"Serve a bus: create topics, hand out their descriptors, grant producer\n"
"leases, keep named cursors, and reclaim what dead clients held. busd runs\n"
"in the foreground and never touches the data path.\n"
"\n"
"  -b, --bus DIR          bus directory (default: $BUS_ADDRESS, else\n"
"                         $XDG_RUNTIME_DIR/bus, else /tmp/bus-UID)\n"
"  -s, --state DIR        state directory: named cursors, busd.log (default:\n"
"                         $XDG_STATE_HOME/bus or ~/.local/state/bus for the\n"
"                         per-user bus, DIR/state for any other bus)\n"
"      --shm DIR          where topic segments live (default /dev/shm)\n"
"      --socket-mode MODE permission bits of busd.sock (default 0600)\n"
"      --log-file PATH    log file besides stderr (default STATE/busd.log;\n"
"                         '-' for none); SIGHUP reopens it\n"
"      --log-level LEVEL  error, warning, notice, info (default) or debug\n"
"      --max-clients N    connections at once (default 1024)\n"
"  -h, --help             show this help and exit\n"
"  -V, --version          show the version and exit\n"
"\n"
"Clients find the bus with bus_connect(DIR) or BUS_ADDRESS=DIR.\n"
"SIGTERM or SIGINT stops busd cleanly (cursors saved, socket removed);\n"
"topics and their clients keep running and the next busd adopts them.\n"
"See busd(8).\n");
}

static int parse_level(const char *s)
{
	static const char *names[] = { "error", "warning", "notice", "info", "debug" };

	for (int i = 0; i < 5; i++)
		if (!strcmp(s, names[i]))
			return L_ERR + i;
	return -1;
}

static void ready(void)
{
	char msg[64];

	log_info("listening on %s (bus id %s, segments %s/bus-%s.*, state %s)", cfg.sock_path,
		 cfg.bus_id, cfg.shm_dir, cfg.bus_id, cfg.state_dir);
	snprintf(msg, sizeof(msg), "READY=1\nMAINPID=%d", (int)getpid());
	notify(msg);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bus", required_argument, NULL, 'b' },
		{ "state", required_argument, NULL, 's' },
		{ "shm", required_argument, NULL, 'S' },
		{ "socket-mode", required_argument, NULL, 'm' },
		{ "log-file", required_argument, NULL, 'l' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "max-clients", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	const char *bus = NULL, *state = NULL, *shm = "/dev/shm", *logfile = NULL;
	char def[4096], per_user[4096], tmp[4300];
	struct rlimit rl;
	sigset_t set;
	int c, r;
	char *end;

	cfg.socket_mode = 0600;
	cfg.max_clients = 1024;
	while ((c = getopt_long(argc, argv, "b:s:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'b': bus = optarg; break;
		case 's': state = optarg; break;
		case 'S': shm = optarg; break;
		case 'l': logfile = optarg; break;
		case 'm':
			errno = 0;
			cfg.socket_mode = (unsigned)strtoul(optarg, &end, 8);
			if (errno || *end || !*optarg || cfg.socket_mode > 0777) {
				fprintf(stderr, "busd: --socket-mode '%s': expected octal "
					"permission bits such as 0600 or 0666\n", optarg);
				return 2;
			}
			break;
		case 'L':
			if ((log_level = parse_level(optarg)) < 0) {
				fprintf(stderr, "busd: --log-level '%s': expected error, warning, "
					"notice, info or debug\n", optarg);
				return 2;
			}
			break;
		case 'c': {
			unsigned long v;

			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || !*optarg || v < 1 || v > 65536) {
				fprintf(stderr, "busd: --max-clients '%s': expected a number from 1 "
					"to 65536\n", optarg);
				return 2;
			}
			cfg.max_clients = (unsigned)v;
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("busd %s\n", bus_version());
			return 0;
		default:
			fprintf(stderr, "Try 'busd --help'.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "busd: unexpected argument '%s'\nTry 'busd --help'.\n", argv[optind]);
		return 2;
	}
	log_tty = isatty(2);

	/* Where the bus is. */
	if (addr_per_user(per_user, sizeof(per_user)) < 0 || addr_default(def, sizeof(def)) < 0) {
		fprintf(stderr, "busd: %s\n", bus_errmsg());
		return 1;
	}
	if (!bus)
		bus = def;
	if (!strcmp(bus, per_user) && !getenv("XDG_RUNTIME_DIR")) {
		if (mkdir(bus, 0700) < 0 && errno != EEXIST) {
			fprintf(stderr, "busd: cannot create %s: %s\n", bus, strerror(errno));
			return 1;
		}
		if (check_private(bus) < 0)
			return 1;
	}
	if (set_dir(cfg.bus_dir, sizeof(cfg.bus_dir), bus, "bus directory") < 0)
		return 1;
	addr_bus_id(cfg.bus_dir, cfg.bus_id);
	snprintf(cfg.sock_path, sizeof(cfg.sock_path), "%s/" PROTO_SOCKET, cfg.bus_dir);

	if (!state) {
		const char *x = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
		char real_pu[PATH_MAX];

		if (realpath(per_user, real_pu) && !strcmp(real_pu, cfg.bus_dir)) {
			if (x && *x == '/')
				snprintf(tmp, sizeof(tmp), "%s/bus", x);
			else if (home && *home == '/')
				snprintf(tmp, sizeof(tmp), "%s/.local/state/bus", home);
			else
				snprintf(tmp, sizeof(tmp), "%s/state", cfg.bus_dir);
		} else {
			snprintf(tmp, sizeof(tmp), "%s/state", cfg.bus_dir);
		}
		state = tmp;
	}
	if (set_dir(cfg.state_dir, sizeof(cfg.state_dir), state, "state directory") < 0)
		return 1;
	if (!realpath(shm, cfg.shm_dir)) {
		fprintf(stderr, "busd: segment directory %s: %s\n", shm, strerror(errno));
		return 1;
	}
	cfg.shm_dirfd = open(cfg.shm_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cfg.shm_dirfd < 0) {
		fprintf(stderr, "busd: segment directory %s: %s\n", cfg.shm_dir, strerror(errno));
		return 1;
	}

	if (take_lock() < 0) {
		close(cfg.shm_dirfd);
		return 1;
	}
	if (!logfile)
		snprintf(log_path, sizeof(log_path), "%s/busd.log", cfg.state_dir);
	else if (strcmp(logfile, "-"))
		snprintf(log_path, sizeof(log_path), "%s", logfile);
	log_reopen();

	/* Signals arrive through the loop's signalfd; a client that hangs up
	 * mid-send must not kill us, nor one that truncates a shared file. */
	signal(SIGPIPE, SIG_IGN);
	sigbus_install();
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	/* Each client holds a connection; allow as many as the hard limit. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	r = loop_init();
	if (r < 0)
		return 1;
	if (write_anchor() < 0)
		return 1;
	topics_init();
	r = loop_run(ready);
	notify("STOPPING=1");
	topics_fini();  /* the final flush may still queue (never submitted) cancels */
	loop_fini();
	/* The anchor stays while segments of this bus exist: they are kept for
	 * the next busd, and the anchor is how a sweep finds their bus. */
	if (gc_bus_files(cfg.shm_dirfd, cfg.bus_id) == 0) {
		snprintf(tmp, sizeof(tmp), "bus-%s", cfg.bus_id);
		unlinkat(cfg.shm_dirfd, tmp, 0);
	}
	log_info("stopped");
	if (log_fd >= 0)
		close(log_fd);
	close(lock_fd);
	close(cfg.shm_dirfd);
	return r < 0 ? 1 : 0;
}
