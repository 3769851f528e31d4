/* SPDX-License-Identifier: MIT */
/*
 * t_busd.c — a real busd for a test (see t_busd.h).
 *
 * BUS_TEST_BUSD_WRAP (opt-in, for `make valgrind`): a command line that busd
 * is run under, words split on blanks (no quoting), looked up in PATH, e.g.
 * "valgrind --tool=memcheck --log-file=/tmp/vg/busd.%p.log". A wrapped busd
 * gets 60 s instead of 10 to say READY=1, and it is not killed by t_fini():
 * it gets SIGTERM (PR_SET_PDEATHSIG) when the test process exits, so every
 * busd ends through its normal shutdown and the tool checks it at exit (a
 * SIGKILL would end valgrind before its leak and descriptor check). That
 * happens after t_fini() removed the test directory; whoever sets the
 * variable waits for the tool's reports (mk/valgrind.mk does). t_busd_kill()
 * still sends SIGKILL, as the tests that kill busd -9 require. Unset, all of
 * this is as before.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t_busd.h"
#include "t_util.h"

#ifndef T_BUILD_DIR
#define T_BUILD_DIR "build"
#endif

const char *t_busd_bin(void)
{
	return T_BUILD_DIR "/bin/busd";
}

int t_count_files(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && !strncmp(e->d_name, prefix, strlen(prefix)))
			n++;
	closedir(d);
	return n;
}

#define WRAP_MAX 32   /* words in BUS_TEST_BUSD_WRAP */

/* Split BUS_TEST_BUSD_WRAP into argv (at most WRAP_MAX words, kept in buf):
 * the number of words, 0 when unset or blank. Done before fork(): the child
 * of a process with threads should only exec. */
static int wrap_words(const char **argv, char *buf, size_t size)
{
	const char *w = getenv("BUS_TEST_BUSD_WRAP");
	char *p, *save = NULL;
	int n = 0;

	if (!w || strlen(w) >= size)
		return 0;
	memcpy(buf, w, strlen(w) + 1);
	for (p = strtok_r(buf, " \t\n", &save); p && n < WRAP_MAX;
	     p = strtok_r(NULL, " \t\n", &save))
		argv[n++] = p;
	return n;
}

static int launch(struct t_busd *d, va_list ap)
{
	static unsigned seq;
	static char wrap[4096];
	const char *argv[64 + WRAP_MAX];
	char notify[700], buf[256];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const int nwrap = wrap_words(argv, wrap, sizeof(wrap)), wrapped = nwrap > 0;
	int argc = nwrap, ns, status;
	struct timeval tv = { wrapped ? 60 : 10, 0 };
	const char *a;
	pid_t pid;

	snprintf(notify, sizeof(notify), "%s/notify.%d.%u", t_dir(), (int)getpid(), seq++);
	unlink(notify);
	ns = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (strlen(notify) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "t_busd: %s is too long for a socket\n", notify);
		return -1;
	}
	memcpy(sa.sun_path, notify, strlen(notify) + 1);
	if (ns < 0 || bind(ns, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("t_busd: notify socket");
		return -1;
	}
	setsockopt(ns, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	argv[argc++] = t_busd_bin();
	argv[argc++] = "--bus";
	argv[argc++] = d->dir;
	argv[argc++] = "--shm";
	argv[argc++] = d->shm;
	argv[argc++] = "--state";
	argv[argc++] = d->state;
	argv[argc++] = "--log-level";
	argv[argc++] = "debug";
	while ((a = va_arg(ap, const char *)) && argc < 62 + nwrap)
		argv[argc++] = a;
	argv[argc] = NULL;
	pid = fork();
	if (pid == 0) {
		int fd = open(d->err, O_WRONLY | O_CREAT | O_APPEND, 0600);

		prctl(PR_SET_PDEATHSIG, wrapped ? SIGTERM : SIGKILL);
		if (fd >= 0)
			dup2(fd, 2);
		setenv("NOTIFY_SOCKET", notify, 1);
		if (wrapped) {
			/* Only what busd itself opens may be open at its exit. */
			if (fd > 2)
				close(fd);
			execvp(argv[0], (char *const *)argv);
		} else {
			execv(argv[0], (char *const *)argv);
		}
		_exit(127);
	}
	if (!wrapped)
		t_adopt_pid(pid);
	for (;;) {
		ssize_t n = recv(ns, buf, sizeof(buf) - 1, 0);

		if (n > 0) {
			buf[n] = 0;
			if (strstr(buf, "READY=1"))
				break;
			continue;
		}
		/* Timed out or busd died before it was ready. */
		close(ns);
		unlink(notify);
		if (waitpid(pid, &status, WNOHANG) == pid) {
			t_forget_pid(pid);
			d->pid = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		}
		fprintf(stderr, "t_busd: busd %d not ready after %d s\n", (int)pid, (int)tv.tv_sec);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		t_forget_pid(pid);
		d->pid = 0;
		return -1;
	}
	close(ns);
	unlink(notify);
	d->pid = pid;
	return 0;
}

int t_busd_start(struct t_busd *d, ...)
{
	static unsigned n;
	va_list ap;
	int r;

	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "%s/bus%u", t_dir(), n);
	snprintf(d->shm, sizeof(d->shm), "%s/shm%u", t_dir(), n);
	snprintf(d->state, sizeof(d->state), "%s/state%u", t_dir(), n);
	snprintf(d->err, sizeof(d->err), "%s/busd%u.err", t_dir(), n);
	n++;
	mkdir(d->shm, 0700);
	va_start(ap, d);
	r = launch(d, ap);
	va_end(ap);
	return r;
}

int t_busd_restart(struct t_busd *d, ...)
{
	va_list ap;
	int r;

	va_start(ap, d);
	r = launch(d, ap);
	va_end(ap);
	return r;
}

int t_busd_stop(struct t_busd *d)
{
	int status;

	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	if (waitpid(d->pid, &status, 0) != d->pid)
		return -1;
	t_forget_pid(d->pid);
	d->pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void t_busd_kill(struct t_busd *d)
{
	if (d->pid <= 0)
		return;
	kill(d->pid, SIGKILL);
	waitpid(d->pid, NULL, 0);
	t_forget_pid(d->pid);
	d->pid = 0;
}
