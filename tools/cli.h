/* SPDX-License-Identifier: MIT */
/*
 * cli.h — the `bus` command: shared pieces (parsing, output, errors).
 *
 *   bus.c        main, global options, dispatch, help
 *   util.c       sizes, durations, start positions, JSON and tables
 *   cmd_topic.c  ls, info, create, delete
 *   cmd_io.c     pub, tail
 *   cmd_watch.c  top, hz
 *   cmd_replay.c replay, export
 *   cmd_log.c    log verify, log dump
 *   cmd_gc.c     gc
 *   cmd_bench.c  bench
 *
 * Exit codes: 0 ok, 1 error, 2 usage. Errors go to stderr as
 * "bus: COMMAND TOPIC: cause".
 */
#ifndef BUS_CLI_H
#define BUS_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "bus.h"

#define EXIT_USAGE 2

struct cli {
	const char *bus_dir;     /* --bus, else NULL (BUS_ADDRESS / default) */
	int json;                /* --json */
	int quiet, verbose;      /* -q, -v */
	int tty;                 /* stdout is a terminal */
	const char *cmd;         /* the command being run, for messages */
};
extern struct cli cli;

struct command {
	const char *name;
	int (*run)(int argc, char **argv);   /* argv[0] is the command name */
	const char *summary;
	const char *usage;                   /* shown by --help */
};

/* Messages. die_usage() prints "bus CMD: msg" and "Try 'bus CMD --help'". */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));       /* returns 1 */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* returns 2 */
/* "bus: CMD TOPIC: <bus_errmsg()>", returns 1. */
int fail_bus(const char *topic, int err);
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));      /* unless -q */

/* Connect (--bus, BUS_ADDRESS, default); on failure prints why and
 * returns NULL (the caller exits 1). */
struct bus *cli_connect(void);

/* A topic name that breaks the rule: prints it, returns -EINVAL (exit 2). */
int check_topic(const char *name);

/* Strict parsers: 0 or -EINVAL after printing which flag and what is
 * accepted. */
int parse_size(const char *flag, const char *s, uint64_t *out);      /* 64K 16M 1G, bytes */
int parse_duration(const char *flag, const char *s, uint64_t *ns);   /* 500ms 30s 5m 7d */
int parse_u64(const char *flag, const char *s, uint64_t *out);
int parse_mode(const char *flag, const char *s, uint32_t *out);      /* octal */
/* --from earliest|latest|end|seq:N|time:ISO-8601|-DURATION */
int parse_from(const char *flag, const char *s, struct bus_sub_opts *o);
/* ISO-8601 (2026-11-26T10:00:00[.nnn][Z|+hh:mm]) to CLOCK_REALTIME ns. */
int parse_time(const char *s, uint64_t *ns);
uint64_t now_ns(void);
uint64_t mono_ns_(void);

/* Output helpers. */
void fmt_size(char *buf, size_t n, uint64_t bytes);       /* 1.5M */
void fmt_time(char *buf, size_t n, uint64_t ns);          /* 2026-11-26T10:00:00.123456789Z */
void json_str(FILE *f, const void *data, size_t len);     /* "..." escaped */
int is_utf8_text(const void *data, size_t len);
void b64(FILE *f, const void *data, size_t len);

/* Event output formats for tail, replay, export. */
enum fmt { FMT_TEXT, FMT_JSON, FMT_HEX, FMT_RAW, FMT_CSV };
int parse_format(const char *flag, const char *s, enum fmt *f, int allow_csv);
void print_event(FILE *f, enum fmt fmt, const struct bus_event *ev);

/* Commands: each cmd_*.c defines its def_NAME (name, run, summary, usage). */
extern const struct command def_ls, def_info, def_top, def_create, def_delete, def_pub,
	def_tail, def_hz, def_replay, def_export, def_log, def_gc, def_bench;
/* Create a topic with the defaults of `bus create` (a 16M ring). */
int cli_create_default(struct bus *b, const char *topic);

/* Ctrl-C: long commands poll this and stop cleanly. */
extern volatile int interrupted;
void catch_interrupts(void);

#endif
