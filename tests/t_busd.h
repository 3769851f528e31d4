/* SPDX-License-Identifier: MIT */
/*
 * t_busd.h — a real busd for a test: a private bus directory, segment
 * directory and state directory inside t_dir(), readiness by NOTIFY_SOCKET
 * (READY=1, as systemd would see it), and the process registered so that
 * t_fini() kills it whatever happened.
 */
#ifndef T_BUSD_H
#define T_BUSD_H

#include <sys/types.h>

struct t_busd {
	pid_t pid;           /* 0 when not running */
	char dir[600];       /* bus directory (pass to bus_connect) */
	char shm[600];       /* segments: bus-ID.TOPIC */
	char state[600];     /* cursors, busd.log */
	char err[600];       /* busd's stderr, appended across restarts */
};

/* Start busd; extra arguments follow, NULL-terminated. Returns 0 once busd
 * said READY=1, else the exit status of a busd that gave up (or -1). */
int t_busd_start(struct t_busd *d, ...) __attribute__((sentinel));
/* Start again on the same directories (after t_busd_kill or t_busd_stop). */
int t_busd_restart(struct t_busd *d, ...) __attribute__((sentinel));
/* SIGTERM and wait: the exit status (0 for a clean stop). */
int t_busd_stop(struct t_busd *d);
/* SIGKILL and wait. */
void t_busd_kill(struct t_busd *d);
/* Path of busd (T_BUILD_DIR/bin/busd). */
const char *t_busd_bin(void);
/* Files in d->shm whose name starts with prefix ("" = all). */
int t_count_files(const char *dir, const char *prefix);

#endif
