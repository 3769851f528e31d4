/* SPDX-License-Identifier: MIT */
/*
 * Description: the `bus` command, black box. Every test runs the real
 * binaries — T_BUILD_DIR/bin/bus against a real busd (tests/t_busd.h) in a
 * private bus directory — and checks what a user sees: standard output
 * (exactly where it is meant for scripts; --json parsed by the small strict
 * JSON reader of tests/t_cli.h, which also runs the commands), the message
 * on standard error, and the exit status (0 ok, 1 error, 2 usage).
 *
 * This file: help and version, ls/info/create/delete, pub and tail (every
 * --from form, every format, named cursors, -f), a 100 000-line pipeline,
 * BUS_ADDRESS, and the documented errors. test_cli_log.c covers the durable
 * side: replay, export, log verify/dump, gc, top, hz and bench.
 *
 * The test process never connects to a bus itself: it only forks and execs
 * (bus, busd, sh), so that the same code runs under Criterion and, in the
 * TSan build, under tests/crshim.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus.h"
#include "t_busd.h"
#include "t_cli.h"
#include "t_util.h"

TestSuite(cli, .init = t_init, .fini = cli_fini, .timeout = 120);

/* ------------------------------------------------------------------------ */
/* help, version                                                            */
/* ------------------------------------------------------------------------ */

static const char *const all_commands[] = {
	"ls", "info", "top", "create", "delete", "pub", "tail",
	"hz", "replay", "export", "log", "gc", "bench",
};
#define NCMD (sizeof(all_commands) / sizeof(all_commands[0]))

Test(cli, version_and_help)
{
	struct out o;
	char want[64];

	RUN(&o, NULL, BUS_BIN, "--version");
	expect_exit(&o, 0);
	snprintf(want, sizeof(want), "bus %s\n", bus_version());
	cr_assert_str_eq(o.out, want);
	done(&o);

	/* `bus help` and `bus --help`: every command, on stdout, exit 0. */
	RUN(&o, NULL, BUS_BIN, "help");
	expect_exit(&o, 0);
	cr_assert(!strncmp(o.out, "Usage: bus ", 11), "%s", o.out);
	for (size_t i = 0; i < NCMD; i++) {
		char line[32];

		snprintf(line, sizeof(line), "\n  %-9s ", all_commands[i]);
		cr_assert(strstr(o.out, line), "`bus help` does not list %s:\n%s", all_commands[i],
			  o.out);
	}
	cr_assert(strstr(o.out, "Exit status: 0 ok, 1 error, 2 usage"), "%s", o.out);
	cr_assert_str_eq(o.err, "");
	char *help = strdup(o.out);
	done(&o);
	RUN(&o, NULL, BUS_BIN, "--help");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, help);
	done(&o);
	free(help);

	/* No command: the help on stderr, a usage error. */
	RUN(&o, NULL, BUS_BIN);
	expect_exit(&o, 2);
	cr_assert_str_eq(o.out, "");
	cr_assert(!strncmp(o.err, "Usage: bus ", 11), "%s", o.err);
	done(&o);

	/* `bus help CMD` = `bus CMD --help` = `bus CMD -h`: the command's usage. */
	for (size_t i = 0; i < NCMD; i++) {
		char *u;
		char pre[32];

		RUN(&o, NULL, BUS_BIN, "help", all_commands[i]);
		expect_exit(&o, 0);
		snprintf(pre, sizeof(pre), "Usage: bus %s", all_commands[i]);
		cr_assert(!strncmp(o.out, pre, strlen(pre)), "bus help %s:\n%s", all_commands[i],
			  o.out);
		u = strdup(o.out);
		done(&o);
		RUN(&o, NULL, BUS_BIN, all_commands[i], "--help");
		expect_exit(&o, 0);
		cr_assert_str_eq(o.out, u, "bus %s --help differs from bus help %s",
				 all_commands[i], all_commands[i]);
		done(&o);
		RUN(&o, NULL, BUS_BIN, all_commands[i], "x", "-h");
		expect_exit(&o, 0);
		cr_assert_str_eq(o.out, u);
		done(&o);
		free(u);
	}
}

Test(cli, every_command_is_implemented)
{
	struct out o;

	RUN(&o, NULL, BUS_BIN, "help");
	expect_exit(&o, 0);
	cr_expect(!strstr(o.out, "not implemented"), "`bus help` still lists stubs:\n%s", o.out);
	done(&o);
	for (size_t i = 0; i < NCMD; i++) {
		RUN(&o, NULL, BUS_BIN, "help", all_commands[i]);
		/* A usage worth the name: more than its first line. */
		cr_expect(strchr(o.out, '\n') && strchr(o.out, '\n')[1],
			  "bus help %s is one line: %s", all_commands[i], o.out);
		done(&o);
	}
}

/* ------------------------------------------------------------------------ */
/* create, ls, info, delete                                                 */
/* ------------------------------------------------------------------------ */

/* The ls line (tab-separated) of topic, or NULL; copied into buf. */
static const char *ls_line(const char *out, const char *topic, char *buf, size_t size)
{
	size_t n = strlen(topic);

	for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (!strncmp(p, topic, n) && p[n] == '\t') {
			const char *e = strchr(p, '\n');
			size_t len = e ? (size_t)(e - p) : strlen(p);

			snprintf(buf, size, "%.*s", (int)len, p);
			return buf;
		}
	}
	return NULL;
}

Test(cli, create_ls_info_delete)
{
	struct t_busd d;
	struct out o;
	const char *v, *log, *t;
	char line[512], path[1400];

	start_busd(&d);
	BUS(&o, &d, "create", "orders.created", "--ring", "64K", "--max-event", "1K",
	    "--consumers", "8", "--mode", "0640");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "", "create prints nothing: %s", o.out);
	cr_assert_str_eq(o.err, "");
	done(&o);
	BUS(&o, &d, "-v", "create", "audit", "--durable", "--ring", "1M", "--fsync", "always",
	    "--retain-size", "1G", "--retain-age", "7d", "--segment-size", "1M");
	expect_exit(&o, 0);
	cr_assert(strstr(o.err, "created audit"), "-v says what it did: %s", o.err);
	done(&o);

	/* Not a terminal: stable tab-separated columns, one topic a line. */
	BUS(&o, &d, "ls");
	expect_exit(&o, 0);
	cr_assert_eq(count_lines(o.out), 2, "%s", o.out);
	cr_assert_not_null(ls_line(o.out, "orders.created", line, sizeof(line)), "%s", o.out);
	cr_assert_str_eq(line, "orders.created\tvolatile\t65536\t1\t0.0\t0\t0\t0\t0\t0");
	cr_assert_not_null(ls_line(o.out, "audit", line, sizeof(line)), "%s", o.out);
	cr_assert(!strncmp(line, "audit\tdurable\t1048576\t1\t0.0\t0\t0\t0\t0\t", 34), "%s", line);
	cr_assert_str_eq(o.err, "");
	done(&o);

	/* --json, before or after the command. */
	BUS(&o, &d, "ls", "--json");
	expect_exit(&o, 0);
	expect_json(o.out);
	cr_assert_eq(*js_ws(o.out), '[');
	cr_assert_eq(jlen(js_ws(o.out)), 2, "%s", o.out);
	for (int i = 0; i < 2; i++) {
		const char *e = jidx(js_ws(o.out), i);
		char *name = jstr(e, "topic");
		int durable = !strcmp(name, "audit");

		cr_assert(durable || !strcmp(name, "orders.created"), "%s", name);
		cr_assert_eq(jbool(e, "durable"), durable);
		cr_assert_eq(jnum(e, "ring_size"), durable ? 1048576u : 65536u);
		cr_assert_eq(jnum(e, "next_seq"), 1);
		cr_assert_eq(jnum(e, "producer_pid"), 0);
		cr_assert_eq(jnum(e, "consumers"), 0);
		cr_assert_eq(jnum(e, "max_lag"), 0);
		cr_assert_eq(jnum(e, "flush_lag"), 0);
		cr_assert(jget(e, "rate") && jget(e, "disk_bytes"), "%s", e);
		cr_assert_eq(jbool(e, "degraded"), 0);
		free(name);
	}
	done(&o);
	BUS(&o, &d, "--json", "ls");
	expect_exit(&o, 0);
	expect_json(o.out);
	done(&o);

	/* info: a human page, and every field in --json. */
	BUS(&o, &d, "info", "orders.created");
	expect_exit(&o, 0);
	cr_assert(strstr(o.out, "topic        orders.created\n"), "%s", o.out);
	cr_assert(strstr(o.out, "kind         volatile\n"), "%s", o.out);
	cr_assert(strstr(o.out, "65536 bytes, events up to 1024 bytes, 8 consumer slots"), "%s",
		  o.out);
	cr_assert(strstr(o.out, "mode 0640"), "%s", o.out);
	cr_assert(strstr(o.out, "consumers    0\n"), "%s", o.out);
	done(&o);
	BUS(&o, &d, "info", "orders.created", "--json");
	expect_exit(&o, 0);
	expect_json(o.out);
	t = js_ws(o.out);
	v = jget(t, "topic");
	cr_assert(v && !strncmp(v, "\"orders.created\"", 16), "%s", o.out);
	cr_assert_eq(jbool(t, "durable"), 0);
	cr_assert_eq(jbool(t, "gating"), 0);
	cr_assert_eq(jnum(t, "ring_size"), 65536);
	cr_assert_eq(jnum(t, "max_event"), 1024);
	cr_assert_eq(jnum(t, "max_consumers"), 8);
	cr_assert(jstr_is(t, "mode", "0640"), "%s", o.out);
	cr_assert_eq(jnum(t, "uid"), geteuid());
	cr_assert_eq(jnum(t, "gid"), getegid());
	cr_assert_eq(jnum(t, "next_seq"), 1);
	cr_assert_eq(jbool(t, "deleted"), 0);
	cr_assert_null(jget(t, "log"), "a volatile topic has no log: %s", o.out);
	cr_assert_eq(jlen(jget(t, "consumers")), 0);
	done(&o);
	BUS(&o, &d, "--json", "info", "audit");
	expect_exit(&o, 0);
	expect_json(o.out);
	t = js_ws(o.out);
	cr_assert_eq(jbool(t, "durable"), 1);
	log = jget(t, "log");
	cr_assert(log && *log == '{', "a durable topic's info has a log: %s", o.out);
	cr_assert_eq(jbool(log, "degraded"), 0);
	cr_assert_eq(jnum(log, "write_errors"), 0);
	cr_assert(jget(log, "segments") && jget(log, "bytes") && jget(log, "first_seq") &&
		  jget(log, "next_seq") && jget(log, "flushed_seq") && jget(log, "durable_seq"),
		  "%s", o.out);
	done(&o);
	BUS(&o, &d, "info", "audit");
	expect_exit(&o, 0);
	cr_assert(strstr(o.out, "kind         durable\n"), "%s", o.out);
	cr_assert(strstr(o.out, "\nlog          "), "%s", o.out);
	done(&o);

	/* delete: gone from ls and info; a durable topic's log goes with it. */
	snprintf(path, sizeof(path), "%s/log/audit", d.state);
	cr_assert_eq(access(path, F_OK), 0, "%s", path);
	BUS(&o, &d, "delete", "audit");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "");
	done(&o);
	cr_assert_neq(access(path, F_OK), 0, "the log of a deleted topic is still there: %s", path);
	BUS(&o, &d, "delete", "orders.created");
	expect_exit(&o, 0);
	done(&o);
	BUS(&o, &d, "ls");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "");
	done(&o);
	BUS(&o, &d, "--json", "ls");
	expect_exit(&o, 0);
	expect_json(o.out);
	cr_assert_eq(jlen(js_ws(o.out)), 0, "%s", o.out);
	done(&o);
	BUS(&o, &d, "info", "audit");
	expect_exit(&o, 1);
	done(&o);
}

/* ------------------------------------------------------------------------ */
/* pub, tail                                                                */
/* ------------------------------------------------------------------------ */

Test(cli, pub_creates_the_topic_and_tail_shows_the_last_ten)
{
	const char *msgs[16];
	char name[16][16], want[256] = "";
	struct t_busd d;
	struct out o;

	start_busd(&d);
	for (int i = 0; i < 15; i++) {
		snprintf(name[i], sizeof(name[i]), "m%d", i + 1);
		msgs[i] = name[i];
	}
	/* Missing topic: created with `bus create`'s defaults, said on stderr;
	 * nothing on stdout. */
	BUS(&o, &d, "pub", "t", msgs[0], msgs[1], msgs[2], msgs[3], msgs[4], msgs[5], msgs[6],
	    msgs[7], msgs[8], msgs[9], msgs[10], msgs[11], msgs[12], msgs[13], msgs[14]);
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "");
	cr_assert(strstr(o.err, "created topic t"), "%s", o.err);
	done(&o);
	BUS(&o, &d, "--json", "info", "t");
	expect_exit(&o, 0);
	cr_assert_eq(jnum(js_ws(o.out), "ring_size"), 16u << 20, "the default ring is 16M");
	cr_assert_eq(jbool(js_ws(o.out), "durable"), 0);
	cr_assert_eq(jnum(js_ws(o.out), "next_seq"), 16);
	cr_assert_eq(jnum(js_ws(o.out), "producer_pid"), 0, "pub released its lease");
	done(&o);

	/* Like tail(1): the last 10, then exit. */
	for (int i = 5; i < 15; i++)
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s\n", msgs[i]);
	BUS(&o, &d, "tail", "t");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, want);
	cr_assert_str_eq(o.err, "");
	done(&o);
	BUS(&o, &d, "tail", "t", "-n", "3");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "m13\nm14\nm15\n");
	done(&o);
	BUS(&o, &d, "tail", "t", "--count", "100");
	expect_exit(&o, 0);
	cr_assert_eq(count_lines(o.out), 15);
	done(&o);

	/* -v: each event's sequence number; -q: no note. */
	BUS(&o, &d, "pub", "-v", "t", "a", "b");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "16\n17\n");
	done(&o);
	BUS(&o, &d, "-q", "pub", "quiet", "x");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.err, "", "-q: %s", o.err);
	done(&o);
	/* An existing topic: no note. */
	BUS(&o, &d, "pub", "quiet", "y");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.err, "");
	done(&o);
	BUS(&o, &d, "tail", "quiet");
	cr_assert_str_eq(o.out, "x\ny\n");
	done(&o);
}

Test(cli, tail_from_every_form)
{
	struct t_busd d;
	struct out o;
	char ts[64], from[80];
	char *line;

	start_busd(&d);
	BUS(&o, &d, "create", "t", "--ring", "64K");
	expect_exit(&o, 0);
	done(&o);
	BUS(&o, &d, "pub", "t", "e1", "e2", "e3", "e4", "e5");
	expect_exit(&o, 0);
	done(&o);
	t_nap_us(20000);  /* e6.. clearly later than e5 */
	BUS(&o, &d, "pub", "t", "e6", "e7");
	expect_exit(&o, 0);
	done(&o);

	BUS(&o, &d, "tail", "t", "--from", "earliest");
	cr_assert_str_eq(o.out, "e1\ne2\ne3\ne4\ne5\ne6\ne7\n");
	done(&o);
	BUS(&o, &d, "tail", "t", "--from", "earliest", "-n", "2");
	cr_assert_str_eq(o.out, "e1\ne2\n");
	done(&o);
	BUS(&o, &d, "tail", "t", "--from", "seq:4");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "e4\ne5\ne6\ne7\n");
	done(&o);
	BUS(&o, &d, "tail", "t", "--from", "seq:2", "--count", "2");
	cr_assert_str_eq(o.out, "e2\ne3\n");
	done(&o);
	BUS(&o, &d, "tail", "t", "--from", "latest");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "e7\n");
	done(&o);
	BUS(&o, &d, "tail", "t", "--from", "end", "-e");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "");
	done(&o);
	BUS(&o, &d, "tail", "t", "--from", "-1h");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "e1\ne2\ne3\ne4\ne5\ne6\ne7\n");
	done(&o);

	/* time:ISO-8601, from the timestamp tail --format json gives e6. */
	BUS(&o, &d, "tail", "t", "--from", "seq:6", "-n", "1", "--format", "json");
	expect_exit(&o, 0);
	line = jstr(js_ws(o.out), "ts");
	cr_assert_eq(strlen(line), 30, "ts is 2026-11-26T10:00:00.123456789Z: %s", line);
	cr_assert_eq(line[29], 'Z');
	snprintf(ts, sizeof(ts), "%s", line);
	free(line);
	done(&o);
	snprintf(from, sizeof(from), "time:%s", ts);
	BUS(&o, &d, "tail", "t", "--from", from);
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "e6\ne7\n", "--from %s", from);
	done(&o);
	/* Seconds only (rounded down to e5's second or earlier): e6 and maybe more. */
	snprintf(from, sizeof(from), "time:%.19sZ", ts);
	BUS(&o, &d, "tail", "t", "--from", from);
	expect_exit(&o, 0);
	cr_assert(strstr(o.out, "e6\ne7\n"), "--from %s: %s", from, o.out);
	done(&o);
	/* A time after the last event: nothing. */
	BUS(&o, &d, "tail", "t", "--from", "time:2999-01-01T00:00:00Z");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "");
	done(&o);
	/* With a zone offset: the same instant as the UTC form. */
	BUS(&o, &d, "tail", "t", "--from", "time:2000-01-01T01:00:00+01:00", "-n", "1");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "e1\n");
	done(&o);
}

static void b64_encode(const unsigned char *p, size_t len, char *out)
{
	static const char t[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	for (i = 0; i + 2 < len; i += 3) {
		out[o++] = t[p[i] >> 2];
		out[o++] = t[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		out[o++] = t[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
		out[o++] = t[p[i + 2] & 63];
	}
	if (len - i == 1) {
		out[o++] = t[p[i] >> 2];
		out[o++] = t[(p[i] & 3) << 4];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		out[o++] = t[p[i] >> 2];
		out[o++] = t[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		out[o++] = t[(p[i + 1] & 15) << 2];
		out[o++] = '=';
	}
	out[o] = 0;
}

Test(cli, tail_json_text_as_string_binary_as_base64)
{
	static const char text[] = "h\xc3\xa9llo \"w\" \\ tab\there";  /* héllo */
	unsigned char bin[256];
	char b64[400], hex[600], *s, *lines[4];
	struct t_busd d;
	struct out o;
	const char *e;
	size_t n;

	start_busd(&d);
	for (int i = 0; i < 256; i++)
		bin[i] = (unsigned char)(255 - i);
	BUS(&o, &d, "pub", "t", "--type", "7", text);
	expect_exit(&o, 0);
	done(&o);
	BUS_IN(&o, &d, bin, sizeof(bin), "pub", "t", "--raw", "--type", "4294967295");
	expect_exit(&o, 0);
	done(&o);
	BUS_IN(&o, &d, "", 0, "pub", "t", "--raw");  /* an empty event */
	expect_exit(&o, 0);
	done(&o);

	BUS(&o, &d, "tail", "t", "--format", "json");
	expect_exit(&o, 0);
	cr_assert_eq(split_lines(o.out, lines, 4), 3, "%s", o.out);
	for (int i = 0; i < 3; i++) {
		expect_json(lines[i]);
		e = js_ws(lines[i]);
		cr_assert_eq(jnum(e, "seq"), (uint64_t)i + 1);
		cr_assert(jget(e, "ts") && *jget(e, "ts") == '"', "%s", lines[i]);
		cr_assert_gt(jnum(e, "ts_ns"), 1600000000ull * 1000000000ull);
	}
	e = js_ws(lines[0]);
	cr_assert_eq(jnum(e, "type"), 7);
	s = jstr_n(e, "data", &n);
	cr_assert_eq(n, strlen(text));
	cr_assert(!memcmp(s, text, n), "data %s", s);
	free(s);
	cr_assert_null(jget(e, "data_b64"));
	e = js_ws(lines[1]);
	cr_assert_eq(jnum(e, "type"), 4294967295u);
	cr_assert_null(jget(e, "data"), "binary is not a string: %s", lines[1]);
	b64_encode(bin, sizeof(bin), b64);
	cr_assert(jstr_is(e, "data_b64", b64), "%s\nexpected %s", lines[1], b64);
	e = js_ws(lines[2]);
	cr_assert(jstr_is(e, "data", ""), "an empty event is an empty string: %s", lines[2]);
	done(&o);

	/* The global --json means --format json. */
	BUS(&o, &d, "--json", "tail", "t", "--from", "seq:2", "-n", "1");
	expect_exit(&o, 0);
	expect_json(o.out);
	cr_assert(jstr_is(js_ws(o.out), "data_b64", b64), "%s", o.out);
	done(&o);

	/* hex: the sequence number, then the bytes, a space every 32. */
	BUS(&o, &d, "tail", "t", "--from", "seq:2", "-n", "1", "--format", "hex");
	expect_exit(&o, 0);
	n = (size_t)snprintf(hex, sizeof(hex), "2");
	for (int i = 0; i < 256; i++)
		n += (size_t)snprintf(hex + n, sizeof(hex) - n, i % 32 ? "%02x" : " %02x", bin[i]);
	snprintf(hex + n, sizeof(hex) - n, "\n");
	cr_assert_str_eq(o.out, hex);
	done(&o);

	/* raw: the bytes exactly, nothing added. */
	BUS(&o, &d, "tail", "t", "--from", "seq:2", "-n", "1", "--format", "raw");
	expect_exit(&o, 0);
	cr_assert_eq(o.out_len, sizeof(bin));
	cr_assert(!memcmp(o.out, bin, sizeof(bin)), "raw output differs");
	done(&o);
	BUS(&o, &d, "tail", "t", "--from", "seq:1", "-n", "1", "--format", "text");
	expect_exit(&o, 0);
	cr_assert_eq(o.out_len, strlen(text) + 1);
	cr_assert(!memcmp(o.out, text, strlen(text)) && o.out[strlen(text)] == '\n');
	done(&o);
}

Test(cli, pub_reads_lines_delimited_records_or_raw_stdin)
{
	static const char nul[] = "one\0two\0\0four";
	struct t_busd d;
	struct out o;

	start_busd(&d);
	/* Lines: the newline is not part of the event; an empty line is an
	 * empty event; a last line without a newline is an event. */
	BUS_IN(&o, &d, "a\n\nc d\nlast", 11, "pub", "lines");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "");
	done(&o);
	BUS(&o, &d, "tail", "lines", "--format", "json");
	expect_exit(&o, 0);
	cr_assert_eq(count_lines(o.out), 4, "%s", o.out);
	cr_assert(strstr(o.out, "\"seq\":2,") && strstr(o.out, "\"data\":\"\"}"), "%s", o.out);
	done(&o);
	BUS(&o, &d, "tail", "lines");
	cr_assert_str_eq(o.out, "a\n\nc d\nlast\n");
	done(&o);

	/* --delim '\0' (as from find -print0). */
	BUS_IN(&o, &d, nul, sizeof(nul) - 1, "pub", "nul", "--delim", "\\0");
	expect_exit(&o, 0);
	done(&o);
	BUS(&o, &d, "tail", "nul");
	cr_assert_str_eq(o.out, "one\ntwo\n\nfour\n");
	done(&o);
	BUS_IN(&o, &d, "x,y,z", 5, "pub", "comma", "--delim", ",");
	expect_exit(&o, 0);
	done(&o);
	BUS(&o, &d, "tail", "comma");
	cr_assert_str_eq(o.out, "x\ny\nz\n");
	done(&o);

	/* --raw: all of stdin, newlines included, one event. */
	BUS_IN(&o, &d, "a\nb\n", 4, "pub", "raw", "--raw");
	expect_exit(&o, 0);
	done(&o);
	BUS(&o, &d, "tail", "raw", "--format", "raw");
	cr_assert_eq(o.out_len, 4);
	cr_assert(!memcmp(o.out, "a\nb\n", 4));
	done(&o);
	BUS(&o, &d, "--json", "info", "raw");
	cr_assert_eq(jnum(js_ws(o.out), "next_seq"), 2, "--raw is one event");
	done(&o);
}

Test(cli, pipeline_of_100000_lines_round_trips_exactly)
{
	struct t_busd d;
	struct out o;
	char cmd[2000], *want;
	size_t n = 0;

	start_busd(&d);
	want = malloc(700000);
	cr_assert_not_null(want);
	for (int i = 1; i <= 100000; i++)
		n += (size_t)sprintf(want + n, "%d\n", i);
	snprintf(cmd, sizeof(cmd), "seq 1 100000 | %s --bus '%s' pub t", BUS_BIN, d.dir);
	RUN(&o, NULL, "/bin/sh", "-c", cmd);
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "");
	done(&o);
	BUS(&o, &d, "tail", "t", "--from", "earliest", "-n", "100000");
	expect_exit(&o, 0);
	cr_assert_eq(o.out_len, n, "%zu bytes, expected %zu", o.out_len, n);
	cr_assert(!memcmp(o.out, want, n), "the lines differ");
	cr_assert_str_eq(o.err, "");
	done(&o);
	/* And through a pipe the other way: the last 5 lines. */
	snprintf(cmd, sizeof(cmd), "%s --bus '%s' tail t --from earliest -n 100000 | tail -n 5",
		 BUS_BIN, d.dir);
	RUN(&o, NULL, "/bin/sh", "-c", cmd);
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "99996\n99997\n99998\n99999\n100000\n");
	done(&o);
	free(want);
}

Test(cli, tail_group_commits_and_resumes)
{
	struct t_busd d;
	struct out o;
	const char *c;

	start_busd(&d);
	BUS(&o, &d, "pub", "t", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10");
	expect_exit(&o, 0);
	done(&o);
	/* A new cursor starts at the oldest event. */
	BUS(&o, &d, "tail", "t", "--group", "billing", "-n", "4");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "1\n2\n3\n4\n");
	done(&o);
	BUS(&o, &d, "tail", "t", "--group", "billing", "-n", "3");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "5\n6\n7\n", "the cursor resumes after its last commit");
	done(&o);
	/* Another group has its own position. */
	BUS(&o, &d, "tail", "t", "--group", "audit", "-n", "1");
	cr_assert_str_eq(o.out, "1\n");
	done(&o);
	/* Plain tail does not move a cursor. */
	BUS(&o, &d, "tail", "t", "--from", "earliest");
	cr_assert_eq(count_lines(o.out), 10);
	done(&o);

	/* The cursor outlives busd. */
	cr_assert_eq(t_busd_stop(&d), 0);
	cr_assert_eq(t_busd_restart(&d, NULL), 0);
	BUS(&o, &d, "tail", "t", "--group", "billing");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "8\n9\n10\n", "after a busd restart");
	done(&o);
	/* At the end: nothing more, exit 0. */
	BUS(&o, &d, "tail", "t", "--group", "billing");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "");
	done(&o);
	BUS(&o, &d, "pub", "t", "11");
	done(&o);
	BUS(&o, &d, "tail", "t", "--group", "billing");
	cr_assert_str_eq(o.out, "11\n");
	done(&o);
	/* A bad group name is refused. */
	BUS(&o, &d, "tail", "t", "--group", "no/slash");
	cr_assert_neq(o.status, 0, "--group no/slash: %s", o.err);
	cr_assert(strstr(o.err, "no/slash"), "%s", o.err);
	done(&o);
	/* No consumer left behind. */
	BUS(&o, &d, "--json", "info", "t");
	c = jget(js_ws(o.out), "consumers");
	cr_assert_eq(jlen(c), 0, "%s", o.out);
	done(&o);
}

Test(cli, tail_follow_prints_new_events_until_interrupted)
{
	struct t_busd d;
	struct bg g;
	struct out o;

	start_busd(&d);
	BUS(&o, &d, "pub", "t", "old");
	done(&o);
	bg_start(&g, -1, ARGV(BUS_BIN, "--bus", d.dir, "tail", "t", "-f", "--from", "end"));
	cr_assert_eq(wait_consumers(&d, "t", 1), 0, "tail -f never attached");
	BUS(&o, &d, "pub", "t", "new1", "new2");
	expect_exit(&o, 0);
	done(&o);
	cr_assert_eq(bg_wait_output(&g, "new1\nnew2\n", 10000), 0, "tail -f printed: %s",
		     g.seen ? g.seen : "");
	BUS(&o, &d, "--json", "info", "t");
	cr_assert_eq(jlen(jget(js_ws(o.out), "consumers")), 1);
	cr_assert_eq(jnum(jidx(jget(js_ws(o.out), "consumers"), 0), "pid"), (uint64_t)g.pid);
	done(&o);
	/* Ctrl-C: a clean stop, exit 0, the slot freed. */
	bg_stop(&g, SIGINT, &o);
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "new1\nnew2\n");
	done(&o);
	cr_assert_eq(wait_consumers(&d, "t", 0), 0);

	/* A deleted topic ends a follower with a note, exit 0. */
	bg_start(&g, -1, ARGV(BUS_BIN, "--bus", d.dir, "tail", "t", "-f"));
	cr_assert_eq(wait_consumers(&d, "t", 1), 0);
	BUS(&o, &d, "delete", "t");
	expect_exit(&o, 0);
	done(&o);
	cr_assert_eq(bg_wait_exit(&g, 10000, &o), 0, "tail -f of a deleted topic goes on");
	expect_exit(&o, 0);
	cr_assert(strstr(o.err, "deleted"), "%s", o.err);
	done(&o);
}

Test(cli, bus_address_selects_the_bus)
{
	struct t_busd d1, d2;
	struct out o;

	start_busd(&d1);
	start_busd(&d2);
	BUS(&o, &d1, "create", "on-one");
	expect_exit(&o, 0);
	done(&o);
	BUS(&o, &d2, "create", "on-two");
	expect_exit(&o, 0);
	done(&o);
	run(&o, &(struct how){ .bus_address = d1.dir }, ARGV(BUS_BIN, "ls"));
	expect_exit(&o, 0);
	cr_assert(!strncmp(o.out, "on-one\t", 7) && count_lines(o.out) == 1, "%s", o.out);
	done(&o);
	/* --bus wins over BUS_ADDRESS, and --bus=DIR works too. */
	run(&o, &(struct how){ .bus_address = d1.dir }, ARGV(BUS_BIN, "--bus", d2.dir, "ls"));
	expect_exit(&o, 0);
	cr_assert(!strncmp(o.out, "on-two\t", 7), "%s", o.out);
	done(&o);
	{
		char opt[700];

		snprintf(opt, sizeof(opt), "--bus=%s", d2.dir);
		run(&o, NULL, ARGV(BUS_BIN, "ls", opt));
		expect_exit(&o, 0);
		cr_assert(!strncmp(o.out, "on-two\t", 7), "%s", o.out);
		done(&o);
	}
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

struct usage_case {
	const char *argv[10];
	const char *says;   /* in the message */
};

/* Usage errors: caught before anything is done; exit 2, nothing on stdout,
 * "bus CMD: ..." on stderr naming the flag or argument. */
static const struct usage_case usage_cases[] = {
	{ { "frob" }, "no command 'frob'" },
	{ { "help", "frob" }, "no command 'frob'" },
	{ { "ls", "extra" }, "unexpected argument 'extra'" },
	{ { "create" }, "which topic?" },
	{ { "create", "x", "--ring", "3K" }, "--ring" },
	{ { "create", "x", "--ring", "12Q" }, "--ring '12Q'" },
	{ { "create", "x", "--ring", "-64K" }, "--ring '-64K'" },
	{ { "create", "x", "--ring", "8G" }, "--ring" },
	{ { "create", "x", "--max-event", "1X" }, "--max-event '1X'" },
	{ { "create", "x", "--ring", "64K", "--max-event", "64K" }, "--max-event" },
	{ { "create", "x", "--consumers", "0" }, "--consumers" },
	{ { "create", "x", "--durable", "--retain-age", "5x" }, "--retain-age '5x'" },
	{ { "create", "x", "--durable", "--retain-age", "10" }, "--retain-age '10'" },
	{ { "create", "x", "--durable", "--retain-size", "lots" }, "--retain-size 'lots'" },
	{ { "create", "x", "--durable", "--fsync", "sometimes" }, "--fsync 'sometimes'" },
	{ { "create", "x", "--retain-size", "1G" }, "--durable" },
	{ { "create", "x", "--mode", "999" }, "--mode '999'" },
	{ { "create", "x", "--bogus" }, "bogus" },
	{ { "create", "x", "y" }, "unexpected argument 'y'" },
	{ { "info" }, "which topic?" },
	{ { "info", "a", "b" }, "unexpected argument 'b'" },
	{ { "delete" }, "which topic?" },
	{ { "pub" }, "which topic?" },
	{ { "pub", "t", "--raw", "msg" }, "--raw" },
	{ { "pub", "t", "--delim", "ab" }, "--delim 'ab'" },
	{ { "pub", "t", "--type", "5000000000" }, "--type" },
	{ { "pub", "t", "--type", "seven" }, "--type 'seven'" },
	{ { "tail" }, "which topic?" },
	{ { "tail", "t", "--from", "bogus" }, "--from 'bogus'" },
	{ { "tail", "t", "--from", "seq:x" }, "--from 'seq:x'" },
	{ { "tail", "t", "--from", "time:yesterday" }, "--from 'time:yesterday'" },
	{ { "tail", "t", "--from", "time:2026-13-01T00:00:00Z" }, "--from" },
	{ { "tail", "t", "--from", "-5parsecs" }, "--from '-5parsecs'" },
	{ { "tail", "t", "-n", "-1" }, "--count" },
	{ { "tail", "t", "-n", "many" }, "--count 'many'" },
	{ { "tail", "t", "--format", "xml" }, "--format 'xml'" },
	{ { "tail", "t", "-f", "-e" }, "pick one" },
	{ { "tail", "t", "--bogus" }, "bogus" },
	{ { "tail", "t", "u" }, "unexpected argument 'u'" },
};

Test(cli, usage_errors_exit_2_and_name_the_culprit)
{
	struct t_busd d;
	struct out o;

	/* A busd is there, so that a usage error cannot hide behind "no busd". */
	start_busd(&d);
	for (size_t i = 0; i < sizeof(usage_cases) / sizeof(usage_cases[0]); i++) {
		const struct usage_case *c = &usage_cases[i];
		const char *argv[16] = { BUS_BIN, "--bus", d.dir };
		int n = 3;

		for (int k = 0; c->argv[k]; k++)
			argv[n++] = c->argv[k];
		argv[n] = NULL;
		run(&o, NULL, argv);
		cr_expect_eq(o.status, 2, "%s: exit %d, expected 2 (usage); stderr: %s", o.cmd,
			     o.status, o.err);
		cr_expect(!o.out[0], "%s: stdout: %s", o.cmd, o.out);
		cr_expect(strstr(o.err, c->says), "%s: the message does not say \"%s\": %s",
			  o.cmd, c->says, o.err);
		cr_expect(!strncmp(o.err, "bus", 3) || strstr(o.err, "\nbus "),
			  "%s: the message does not start with bus: %s", o.cmd, o.err);
		done(&o);
	}
	/* Nothing was created by any of them. */
	BUS(&o, &d, "ls");
	cr_assert_str_eq(o.out, "");
	done(&o);
	/* A global option without its value. */
	RUN(&o, NULL, BUS_BIN, "ls", "--bus");
	expect_exit(&o, 2);
	done(&o);
}

/* The convention: "bus CMD: what" then "Try 'bus CMD --help'." */
Test(cli, usage_errors_point_at_help)
{
	char wrong[8192] = "";
	struct t_busd d;
	struct out o;
	size_t w = 0;

	start_busd(&d);
	for (size_t i = 0; i < sizeof(usage_cases) / sizeof(usage_cases[0]); i++) {
		const struct usage_case *c = &usage_cases[i];
		const char *argv[16] = { BUS_BIN, "--bus", d.dir };
		char want[64];
		int n = 3;

		for (int k = 0; c->argv[k]; k++)
			argv[n++] = c->argv[k];
		argv[n] = NULL;
		run(&o, NULL, argv);
		if (!strcmp(c->argv[0], "frob") || !strcmp(c->argv[0], "help"))
			snprintf(want, sizeof(want), "Try 'bus help'.\n");
		else
			snprintf(want, sizeof(want), "Try 'bus %s --help'.\n", c->argv[0]);
		if ((o.err_len < strlen(want) || strcmp(o.err + o.err_len - strlen(want), want)) &&
		    w < sizeof(wrong) - 200)
			w += (size_t)snprintf(wrong + w, sizeof(wrong) - w, "\n  %s:\n    %.*s",
					      strstr(o.cmd, d.dir) + strlen(d.dir) + 1,
					      (int)strcspn(o.err, "\n"), o.err);
		done(&o);
	}
	cr_expect(!w, "usage errors without \"Try 'bus CMD --help'.\":%s", wrong);
}

Test(cli, bad_topic_names_are_usage_errors)
{
	static const char *const bad[][2] = {
		{ "a/b", "'/'" }, { ".hidden", "dot" }, { "a..b", "'..'" }, { "sp ace", "' '" },
		{ "", "empty" }, { "x*", "'*'" }, { NULL, "128" },
	};
	static const char *const cmds[] = { "create", "pub", "tail", "info", "delete" };
	char big[140], wrong[4096] = "";
	struct t_busd d;
	struct out o;
	size_t w = 0;

	start_busd(&d);
	memset(big, 'n', 129);
	big[129] = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *name = bad[i][0] ? bad[i][0] : big;

		for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++) {
			run(&o, NULL, ARGV(BUS_BIN, "--bus", d.dir, cmds[k], name,
					   !strcmp(cmds[k], "pub") ? "msg" : NULL));
			/* The message says what is wrong with the name. */
			cr_expect(strstr(o.err, bad[i][1]), "bus %s '%.20s': %s", cmds[k], name,
				  o.err);
			if (o.status != 2 && w < sizeof(wrong) - 100)
				w += (size_t)snprintf(wrong + w, sizeof(wrong) - w,
						      "\n  bus %s '%.12s': exit %d", cmds[k], name,
						      o.status);
			done(&o);
		}
	}
	cr_expect(!w, "a bad topic name is a usage error (exit 2), but:%s", wrong);
	BUS(&o, &d, "ls");
	cr_assert_str_eq(o.out, "");
	done(&o);
}

Test(cli, runtime_errors_exit_1_and_name_the_topic)
{
	struct t_busd d;
	struct bg g;
	struct out o;
	int fds[2];

	start_busd(&d);
	/* Unknown topic, for every command that takes one. */
	BUS(&o, &d, "tail", "nosuch");
	expect_exit(&o, 1);
	cr_assert(!strncmp(o.err, "bus: tail nosuch: ", 18), "%s", o.err);
	cr_assert(strstr(o.err, "no topic 'nosuch'"), "%s", o.err);
	cr_assert_str_eq(o.out, "");
	done(&o);
	BUS(&o, &d, "info", "nosuch");
	expect_exit(&o, 1);
	cr_assert(!strncmp(o.err, "bus: info nosuch: ", 18), "%s", o.err);
	done(&o);
	BUS(&o, &d, "delete", "nosuch");
	expect_exit(&o, 1);
	cr_assert(!strncmp(o.err, "bus: delete nosuch: ", 20), "%s", o.err);
	done(&o);
	BUS(&o, &d, "tail", "nosuch", "--group", "g");
	expect_exit(&o, 1);
	done(&o);

	/* Exists already. */
	BUS(&o, &d, "create", "t");
	expect_exit(&o, 0);
	done(&o);
	BUS(&o, &d, "create", "t");
	expect_exit(&o, 1);
	cr_assert(!strncmp(o.err, "bus: create t: ", 15) && strstr(o.err, "already exists"),
		  "%s", o.err);
	done(&o);

	/* A second producer while `bus pub t` holds the lease (reading stdin). */
	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	bg_start(&g, fds[0], ARGV(BUS_BIN, "--bus", d.dir, "pub", "t"));
	close(fds[0]);
	cr_assert_eq(wait_producer(&d, "t", g.pid), 0, "bus pub never took the lease");
	BUS(&o, &d, "pub", "t", "x");
	expect_exit(&o, 1);
	cr_assert(!strncmp(o.err, "bus: pub t: ", 12), "%s", o.err);
	cr_assert(strstr(o.err, "producer"), "%s", o.err);
	done(&o);
	cr_assert_eq(write(fds[1], "from-the-first\n", 15), 15);
	close(fds[1]);
	cr_assert_eq(bg_wait_exit(&g, 10000, &o), 0);
	expect_exit(&o, 0);
	done(&o);
	BUS(&o, &d, "tail", "t");
	cr_assert_str_eq(o.out, "from-the-first\n");
	done(&o);

	/* A bad offset: a sequence number the topic does not have. */
	BUS(&o, &d, "tail", "t", "--from", "seq:999");
	expect_exit(&o, 1);
	cr_assert(!strncmp(o.err, "bus: tail t: ", 13) && strstr(o.err, "999"), "%s", o.err);
	done(&o);
}

Test(cli, no_busd_running_says_how_to_start_one)
{
	static const char *const cmds[][4] = {
		{ "ls" }, { "info", "t" }, { "create", "t" }, { "delete", "t" },
		{ "pub", "t", "x" }, { "tail", "t" },
	};
	struct t_busd d;
	struct out o;
	char nobus[700];

	snprintf(nobus, sizeof(nobus), "%s/no-bus-here", t_dir());
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		run(&o, NULL, ARGV(BUS_BIN, "--bus", nobus, cmds[i][0], cmds[i][1], cmds[i][2]));
		cr_expect_eq(o.status, 1, "%s: exit %d", o.cmd, o.status);
		cr_expect(strstr(o.err, "is busd running? try `make run`"), "%s: %s", o.cmd,
			  o.err);
		cr_expect(strstr(o.err, nobus), "%s: the bus is not named: %s", o.cmd, o.err);
		done(&o);
	}
	/* The same through BUS_ADDRESS. */
	run(&o, &(struct how){ .bus_address = nobus }, ARGV(BUS_BIN, "ls"));
	expect_exit(&o, 1);
	cr_assert(strstr(o.err, "is busd running? try `make run`"), "%s", o.err);
	done(&o);

	/* A bus whose busd stopped cleanly, and one whose busd was killed (its
	 * socket left behind: connection refused). */
	start_busd(&d);
	cr_assert_eq(t_busd_stop(&d), 0);
	BUS(&o, &d, "ls");
	expect_exit(&o, 1);
	cr_assert(strstr(o.err, "is busd running? try `make run`"), "stopped: %s", o.err);
	done(&o);
	cr_assert_eq(t_busd_restart(&d, NULL), 0);
	t_busd_kill(&d);
	BUS(&o, &d, "tail", "t");
	expect_exit(&o, 1);
	cr_assert(strstr(o.err, "is busd running? try `make run`"), "killed: %s", o.err);
	done(&o);
}

#define NOBODY 65534u

Test(cli, permission_denied_names_the_topic)
{
	static const char *const cmds[][4] = {
		{ "tail", "private" }, { "info", "private" }, { "delete", "private" },
		{ "pub", "private", "x" }, { "pub", "readable", "x" }, { "delete", "readable" },
	};
	struct t_busd d;
	struct out o;

	if (geteuid() != 0)
		cr_skip_test("needs root to run bus as another user (CI runs as root)");
	cr_assert_eq(t_busd_start(&d, "--socket-mode", "0666", NULL), 0);
	make_traversable(d.dir);
	BUS(&o, &d, "create", "private");
	expect_exit(&o, 0);
	done(&o);
	BUS(&o, &d, "create", "readable", "--mode", "0644");
	expect_exit(&o, 0);
	done(&o);
	BUS(&o, &d, "pub", "readable", "hello");
	expect_exit(&o, 0);
	done(&o);

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *topic = cmds[i][1];
		char pre[64];

		run(&o, &(struct how){ .uid = NOBODY },
		    ARGV(BUS_BIN, "--bus", d.dir, cmds[i][0], cmds[i][1], cmds[i][2]));
		cr_expect_eq(o.status, 1, "as nobody, %s: exit %d: %s", o.cmd, o.status, o.err);
		snprintf(pre, sizeof(pre), "bus: %s %s: ", cmds[i][0], topic);
		cr_expect(!strncmp(o.err, pre, strlen(pre)), "as nobody, %s: %s", o.cmd, o.err);
		/* (busd words a delete by another user "only its owner ... may delete it") */
		cr_expect(strstr(o.err, "permission denied") ||
			  (!strcmp(cmds[i][0], "delete") && strstr(o.err, "only its owner")),
			  "as nobody, %s: %s", o.cmd, o.err);
		done(&o);
	}
	/* What nobody may do: read a 0644 topic, see only it. */
#ifndef __SANITIZE_THREAD__  /* TSan maps consumers read-write (see test_busd.c) */
	run(&o, &(struct how){ .uid = NOBODY }, ARGV(BUS_BIN, "--bus", d.dir, "tail", "readable"));
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "hello\n");
	done(&o);
#endif
	run(&o, &(struct how){ .uid = NOBODY }, ARGV(BUS_BIN, "--bus", d.dir, "ls"));
	expect_exit(&o, 0);
	cr_assert(!strncmp(o.out, "readable\t", 9) && count_lines(o.out) == 1, "%s", o.out);
	done(&o);
	/* And the topics are intact. */
	BUS(&o, &d, "tail", "readable");
	cr_assert_str_eq(o.out, "hello\n");
	done(&o);
	BUS(&o, &d, "info", "private");
	expect_exit(&o, 0);
	done(&o);
}
