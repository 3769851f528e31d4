/* SPDX-License-Identifier: MIT */
/*
 * t_util.h — helpers shared by the tests (prefix t_).
 *
 * Every test works in a private directory on /dev/shm: $BUS_TEST_SHM (set by
 * mk/run-tests.sh, which removes it after the binary exits, whatever
 * happened) or, when the binary runs alone, a mkdtemp() directory. t_init()
 * and t_fini() are meant for Criterion's .init/.fini; t_fini() removes the
 * test's directory, every segment in it, and kills processes it spawned.
 */
#ifndef T_UTIL_H
#define T_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bus.h"

void t_init(void);
void t_fini(void);

/* Path of a topic in the test's private directory (static buffer per call
 * site is not enough for several names: returns a new malloc'd string that
 * t_fini() frees). */
const char *t_topic(const char *tag);
/* The test's private directory. */
const char *t_dir(void);

/* Scale factor for long tests (BUS_TEST_SCALE, default 1; sanitizers lower it). */
double t_scale(void);
uint64_t t_scaled(uint64_t n, uint64_t min);
/* 1 when the tests should use threads instead of processes (TSan can only
 * see races between threads of one process). */
int t_use_threads(void);

/* Run fn(arg) in a child process (or a thread, see t_use_threads()).
 * t_join() returns the exit status fn returned (0 = ok). */
struct t_proc {
	pid_t pid;          /* > 0: a child process */
	unsigned long thread;
	void *priv;         /* thread mode: the argument block */
};
void t_spawn(struct t_proc *p, int (*fn)(void *), void *arg);
int t_join(struct t_proc *p);
/* Always a real process (for kill -9, SIGSTOP). Registered for t_fini(). */
pid_t t_fork(int (*fn)(void *), void *arg);
int t_wait_pid(pid_t pid);   /* exit code, or 128 + signal */
/* Register a child started some other way, for t_fini() to kill. */
void t_adopt_pid(pid_t pid);
void t_forget_pid(pid_t pid);  /* reaped elsewhere */

/* Deterministic payloads: length and bytes are functions of (seed, seq), and
 * the first 8 bytes (when len >= 8) are a checksum of the rest. */
uint32_t t_len_for(uint64_t seed, uint64_t seq, uint32_t min, uint32_t max);
void t_fill(void *buf, uint32_t len, uint64_t seed, uint64_t seq);
/* 0 when buf is exactly what t_fill() wrote for (seed, seq, len). */
int t_check(const void *buf, uint32_t len, uint64_t seed, uint64_t seq);

uint64_t t_now_ns(void);
void t_nap_us(uint64_t us);  /* nanosleep, restarted on EINTR */

/* For roles that cannot use cr_assert (children, threads): print a one-line
 * diagnosis, prefixed with the program and pid, and return 1. */
int t_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint64_t t_rand(void);      /* per-process xorshift, seeded from pid and time */

/* A shared anonymous page for parent/child handshakes. */
void *t_shared(size_t size);

#endif
