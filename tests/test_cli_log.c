/* SPDX-License-Identifier: MIT */
/*
 * Description: the `bus` command on durable topics and the bus as a whole,
 * black box (see test_cli.c for the harness, tests/t_cli.h): tail reading
 * back into the log, replay (a million events at --speed max, ranges,
 * formats, --into, the original pace, --log-dir offline), export as JSON
 * lines and CSV, log verify on a good log and a corrupted copy, log dump,
 * gc (--dry-run removes nothing; then only the dead bus's files go), top,
 * hz and bench.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "t_busd.h"
#include "t_cli.h"
#include "t_log.h"
#include "t_util.h"

TestSuite(cli_log, .init = t_init, .fini = cli_fini, .timeout = 120);

/* "1\n2\n...n\n", as seq(1) prints it (malloc'd). */
static char *seq_text(uint64_t from, uint64_t to, size_t *len)
{
	char *s = malloc((to - from + 1) * 21 + 1);
	size_t n = 0;

	cr_assert_not_null(s);
	for (uint64_t i = from; i <= to; i++)
		n += (size_t)sprintf(s + n, "%llu\n", (unsigned long long)i);
	*len = n;
	return s;
}

/* `seq from to | bus pub topic` through a shell: a real pipeline. */
static void pub_range(const struct t_busd *d, const char *topic, uint64_t from, uint64_t to)
{
	char cmd[2000];
	struct out o;

	snprintf(cmd, sizeof(cmd), "seq %llu %llu | %s --bus '%s' pub %s",
		 (unsigned long long)from, (unsigned long long)to, BUS_BIN, d->dir, topic);
	run(&o, &(struct how){ .timeout_ms = 110000 }, ARGV("/bin/sh", "-c", cmd));
	expect_exit(&o, 0);
	done(&o);
}

/* Until the topic's log holds every event before next_seq: 0, or -1 after
 * 20 s. */
static int wait_logged(const struct t_busd *d, const char *topic, uint64_t next_seq)
{
	uint64_t end = t_now_ns() + 20000000000ull;
	struct out o;

	for (;;) {
		const char *log = NULL, *v = NULL;

		run(&o, NULL, ARGV(BUS_BIN, "--bus", d->dir, "--json", "info", topic));
		if (o.status == 0 && json_valid(o.out))
			log = jget(o.out, "log");
		if (log)
			v = jget(log, "next_seq");
		if (v && strtoull(v, NULL, 10) >= next_seq) {
			done(&o);
			return 0;
		}
		done(&o);
		if (t_now_ns() > end)
			return -1;
		t_nap_us(20000);
	}
}

/* Publish 1..n (as seq prints them) into a durable topic, chunk events at
 * a time, each chunk in the log before the next: a chunk fits in the ring,
 * so the producer never waits for busd's flusher. (A producer that waits
 * more than a second for it gives up: on a loaded machine that happens;
 * these tests are about the tool, not about the flusher's pace.) */
static void pub_seq_logged(const struct t_busd *d, const char *topic, uint64_t n,
			   uint64_t chunk)
{
	for (uint64_t from = 1; from <= n; from += chunk) {
		uint64_t to = from + chunk - 1 < n ? from + chunk - 1 : n;

		pub_range(d, topic, from, to);
		cr_assert_eq(wait_logged(d, topic, to + 1), 0, "%s: the log never reached %llu",
			     topic, (unsigned long long)to);
	}
}

static void create_durable(const struct t_busd *d, const char *topic, const char *ring)
{
	struct out o;

	BUS(&o, d, "create", topic, "--durable", "--ring", ring);
	expect_exit(&o, 0);
	done(&o);
}

/* ------------------------------------------------------------------------ */
/* tail and info on a durable topic                                         */
/* ------------------------------------------------------------------------ */

Test(cli_log, durable_tail_reads_back_into_the_log)
{
	const uint64_t n = 6000;  /* a 64K ring holds 2047 of them */
	struct t_busd d;
	struct out o;
	char *want, line[256];
	const char *t, *log;
	size_t len;

	start_busd(&d);
	create_durable(&d, "t", "64K");
	pub_seq_logged(&d, "t", n, 1500);

	want = seq_text(1, n, &len);
	BUS(&o, &d, "tail", "t", "--from", "earliest", "-n", "6000");
	expect_exit(&o, 0);
	cr_assert_eq(o.out_len, len, "%zu bytes, expected %zu", o.out_len, len);
	cr_assert(!memcmp(o.out, want, len), "tail --from earliest differs from seq 1 %llu",
		  (unsigned long long)n);
	done(&o);
	free(want);
	BUS(&o, &d, "tail", "t", "--from", "seq:5", "-n", "3");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "5\n6\n7\n", "from the log");
	done(&o);
	BUS(&o, &d, "tail", "t", "-n", "2");
	cr_assert_str_eq(o.out, "5999\n6000\n");
	done(&o);

	/* ls: durable, the log's size; info: the log's range. */
	BUS(&o, &d, "ls");
	expect_exit(&o, 0);
	snprintf(line, sizeof(line), "t\tdurable\t65536\t6001\t");
	cr_assert(!strncmp(o.out, line, strlen(line)), "%s", o.out);
	cr_assert_gt(strtoull(strrchr(o.out, '\t') + 1, NULL, 10), n * 8, "disk bytes: %s", o.out);
	done(&o);
	BUS(&o, &d, "--json", "info", "t");
	expect_exit(&o, 0);
	expect_json(o.out);
	t = js_ws(o.out);
	log = jget(t, "log");
	cr_assert_eq(jnum(log, "first_seq"), 1);
	cr_assert_eq(jnum(log, "next_seq"), n + 1);
	cr_assert_geq(jnum(log, "segments"), 1);
	cr_assert_eq(jnum(log, "flushed_seq"), n + 1);
	cr_assert_leq(jnum(log, "first_ts_ns"), jnum(log, "last_ts_ns"));
	cr_assert_gt(jnum(t, "oldest_seq"), 1, "the ring alone does not hold them all");
	done(&o);
}

/* A durable topic's producer never overwrites what busd has not written
 * to the log: with a ring smaller than the input, `bus pub` must wait for
 * busd's flusher, not give up. */
Test(cli_log, pub_into_a_small_durable_ring_keeps_up_with_the_flusher)
{
	const uint64_t n = 30000;  /* 15 rings of 64K */
	struct t_busd d;
	struct out o;
	char *want;
	size_t len;

	start_busd(&d);
	create_durable(&d, "t", "64K");
	pub_range(&d, "t", 1, n);
	cr_assert_eq(wait_logged(&d, "t", n + 1), 0);
	want = seq_text(1, n, &len);
	BUS(&o, &d, "tail", "t", "--from", "earliest", "-n", "30000");
	expect_exit(&o, 0);
	cr_assert_eq(o.out_len, len);
	cr_assert(!memcmp(o.out, want, len), "tail --from earliest differs from seq 1 30000");
	done(&o);
	free(want);
	BUS(&o, &d, "--json", "info", "t");
	cr_expect_eq(jnum(jget(o.out, "log"), "write_errors"), 0, "%s", jget(o.out, "log"));
	done(&o);
}

/* ------------------------------------------------------------------------ */
/* replay                                                                   */
/* ------------------------------------------------------------------------ */

Test(cli_log, replay_at_max_speed_gives_a_million_events_in_order)
{
	const uint64_t n = t_scaled(1000000, 20000);
	char path[1400], num[32], *want;
	struct t_busd d;
	struct out o;
	uint64_t t0;
	size_t len;

	start_busd(&d);
	create_durable(&d, "big", "16M");
	pub_seq_logged(&d, "big", n, 500000);  /* a 16M ring holds 524287 */
	want = seq_text(1, n, &len);

	t0 = t_now_ns();
	run(&o, &(struct how){ .timeout_ms = 110000 },
	    ARGV(BUS_BIN, "--bus", d.dir, "replay", "big", "--speed", "max"));
	cr_log_info("replay --speed max of %llu events: %.2f s", (unsigned long long)n,
		    (double)(t_now_ns() - t0) / 1e9);
	expect_exit(&o, 0);
	cr_assert_eq(o.out_len, len, "%zu bytes, expected %zu (%llu events)", o.out_len, len,
		     (unsigned long long)n);
	cr_assert(!memcmp(o.out, want, len), "replay is not seq 1 %llu", (unsigned long long)n);
	cr_assert_str_eq(o.err, "", "nothing on stderr off a terminal: %s", o.err);
	done(&o);

	/* Offline: busd stopped, the log directory read directly. */
	cr_assert_eq(t_busd_stop(&d), 0);
	snprintf(path, sizeof(path), "%s/log/big", d.state);
	snprintf(num, sizeof(num), "seq:%llu", (unsigned long long)(n - 2));
	run(&o, NULL, ARGV(BUS_BIN, "replay", "--log-dir", path, "--from", num, "--speed", "max"));
	expect_exit(&o, 0);
	{
		char tail3[80];

		snprintf(tail3, sizeof(tail3), "%llu\n%llu\n%llu\n", (unsigned long long)(n - 2),
			 (unsigned long long)(n - 1), (unsigned long long)n);
		cr_assert_str_eq(o.out, tail3, "replay --log-dir %s --from %s", path, num);
	}
	done(&o);
	free(want);
}

Test(cli_log, replay_ranges_formats_and_into)
{
	struct t_busd d;
	struct out o;
	char *lines[8], *s;

	start_busd(&d);
	create_durable(&d, "t", "64K");
	pub_seq_logged(&d, "t", 100, 100);
	BUS(&o, &d, "pub", "t", "--type", "9", "typed");
	expect_exit(&o, 0);
	done(&o);
	cr_assert_eq(wait_logged(&d, "t", 102), 0);

	/* --to names the first event NOT replayed. */
	BUS(&o, &d, "replay", "t", "--from", "seq:10", "--to", "seq:13", "--speed", "max");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "10\n11\n12\n");
	done(&o);
	BUS(&o, &d, "replay", "t", "--from", "seq:50", "-n", "2", "--speed", "max");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "50\n51\n");
	done(&o);
	BUS(&o, &d, "replay", "t", "--from", "latest", "--speed", "max");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "typed\n");
	done(&o);
	BUS(&o, &d, "replay", "t", "--from", "seq:99", "--to", "latest", "--speed", "max");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "99\n100\n");
	done(&o);
	BUS(&o, &d, "replay", "t", "--from", "-1h", "-n", "1", "--speed", "max");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "1\n");
	done(&o);

	/* Formats, as tail's. */
	BUS(&o, &d, "replay", "t", "--from", "seq:100", "--format", "json", "--speed", "max");
	expect_exit(&o, 0);
	cr_assert_eq(split_lines(o.out, lines, 8), 2, "%s", o.out);
	for (int i = 0; i < 2; i++)
		expect_json(lines[i]);
	cr_assert_eq(jnum(lines[0], "seq"), 100);
	cr_assert(jstr_is(lines[0], "data", "100"), "%s", lines[0]);
	cr_assert_eq(jnum(lines[0], "type"), 0);
	cr_assert_eq(jnum(lines[1], "seq"), 101);
	cr_assert_eq(jnum(lines[1], "type"), 9);
	s = jstr(lines[1], "ts");
	cr_assert_eq(strlen(s), 30, "%s", s);
	free(s);
	done(&o);
	BUS(&o, &d, "replay", "t", "--from", "seq:7", "-n", "1", "--format", "hex", "--speed",
	    "max");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "7 37\n");
	done(&o);

	/* --into: republished, types kept, new sequence numbers. */
	BUS(&o, &d, "replay", "t", "--from", "seq:99", "--speed", "max", "--into", "copy");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "", "--into prints nothing: %s", o.out);
	done(&o);
	BUS(&o, &d, "tail", "copy", "--from", "earliest", "--format", "json");
	expect_exit(&o, 0);
	cr_assert_eq(split_lines(o.out, lines, 8), 3, "%s", o.out);
	cr_assert_eq(jnum(lines[0], "seq"), 1);
	cr_assert(jstr_is(lines[0], "data", "99"), "%s", lines[0]);
	cr_assert(jstr_is(lines[1], "data", "100"), "%s", lines[1]);
	cr_assert(jstr_is(lines[2], "data", "typed"), "%s", lines[2]);
	cr_assert_eq(jnum(lines[2], "type"), 9, "the type word is kept");
	done(&o);
	BUS(&o, &d, "--json", "info", "copy");
	cr_assert_eq(jbool(o.out, "durable"), 0, "--into creates with bus create's defaults");
	done(&o);
}

/* The index is optional (docs/LOG-FORMAT.md): without it a seek starts at
 * the segment's first chunk and skips forward. The reader once compared the
 * next chunk's first seq with the seek target instead of with the end of the
 * chunk it had just read, and called such a sound log corrupt (found by
 * tests/corrupt.c). */
Test(cli_log, replay_seeks_into_a_log_whose_index_is_gone)
{
	struct t_busd d;
	struct out o;
	char logdir[700], cmd[1600];

	start_busd(&d);
	create_durable(&d, "t", "64K");
	pub_seq_logged(&d, "t", 9, 3);  /* three chunks: 1-3, 4-6, 7-9 */
	cr_assert_eq(t_busd_stop(&d), 0);
	snprintf(logdir, sizeof(logdir), "%s/log/t", d.state);
	snprintf(cmd, sizeof(cmd), "rm -f '%s'/*.idx", logdir);
	cr_assert_eq(system(cmd), 0);

	run(&o, NULL, ARGV(BUS_BIN, "log", "verify", logdir));
	expect_exit(&o, 0);
	done(&o);
	run(&o, NULL, ARGV(BUS_BIN, "replay", "--log-dir", logdir, "--from", "seq:8", "--speed",
			   "max"));
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "8\n9\n");
	done(&o);
	run(&o, NULL, ARGV(BUS_BIN, "replay", "--log-dir", logdir, "--from", "seq:5", "--speed",
			   "max"));
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "5\n6\n7\n8\n9\n");
	done(&o);
}

Test(cli_log, replay_keeps_the_original_pace)
{
	struct t_busd d;
	struct out o;
	uint64_t t0;
	double s1, s4, smax;

	start_busd(&d);
	create_durable(&d, "t", "64K");
	BUS(&o, &d, "pub", "t", "a");
	done(&o);
	t_nap_us(400000);
	BUS(&o, &d, "pub", "t", "b");
	done(&o);
	t_nap_us(400000);
	BUS(&o, &d, "pub", "t", "c");
	done(&o);
	cr_assert_eq(wait_logged(&d, "t", 4), 0);

	t0 = t_now_ns();
	BUS(&o, &d, "replay", "t");
	s1 = (double)(t_now_ns() - t0) / 1e9;
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "a\nb\nc\n");
	done(&o);
	t0 = t_now_ns();
	BUS(&o, &d, "replay", "t", "--speed", "4");
	s4 = (double)(t_now_ns() - t0) / 1e9;
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "a\nb\nc\n");
	done(&o);
	t0 = t_now_ns();
	BUS(&o, &d, "replay", "t", "--speed", "max");
	smax = (double)(t_now_ns() - t0) / 1e9;
	expect_exit(&o, 0);
	done(&o);
	cr_log_info("replay of 0.8 s: %.3f s at 1x, %.3f s at 4x, %.3f s at max", s1, s4, smax);
	cr_assert_geq(s1, 0.75, "--speed 1 took %.3f s for 0.8 s of events", s1);
	cr_assert_lt(s1, 3.0, "--speed 1 took %.3f s for 0.8 s of events", s1);
	cr_assert_geq(s4, 0.18, "--speed 4 took %.3f s (0.2 s expected)", s4);
	cr_assert_lt(s4, s1 - 0.3, "--speed 4 (%.3f s) is not faster than 1 (%.3f s)", s4, s1);
	cr_assert_lt(smax, 0.6, "--speed max waited: %.3f s", smax);
}

Test(cli_log, replay_stops_cleanly_on_ctrl_c)
{
	struct t_busd d;
	struct bg g;
	struct out o;

	start_busd(&d);
	create_durable(&d, "t", "64K");
	BUS(&o, &d, "pub", "t", "first");
	done(&o);
	t_nap_us(200000);
	BUS(&o, &d, "pub", "t", "second");
	done(&o);
	cr_assert_eq(wait_logged(&d, "t", 3), 0);
	/* At 1/100 of the pace the second event is 20 s away. */
	bg_start(&g, -1, ARGV(BUS_BIN, "--bus", d.dir, "replay", "t", "--speed", "0.01"));
	cr_assert_eq(bg_wait_output(&g, "first\n", 10000), 0, "%s", g.seen);
	t_nap_us(100000);
	bg_stop(&g, SIGINT, &o);
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "first\n");
	cr_assert(strstr(o.err, "interrupted") && strstr(o.err, "1 event"),
		  "says how many were replayed: %s", o.err);
	done(&o);
}

Test(cli_log, replay_and_export_errors)
{
	static const char *const usage[][8] = {
		{ "replay" },
		{ "replay", "t", "--speed", "0" },
		{ "replay", "t", "--speed", "fast" },
		{ "replay", "t", "--speed", "-2" },
		{ "replay", "t", "--from", "bogus" },
		{ "replay", "t", "--to", "bogus" },
		{ "replay", "t", "-n", "x" },
		{ "replay", "t", "--format", "csv" },
		{ "replay", "t", "u" },
		{ "export" },
		{ "export", "t", "--format", "xml" },
		{ "export", "t", "--from", "seq:" },
	};
	struct t_busd d;
	struct out o;

	start_busd(&d);
	create_durable(&d, "t", "64K");
	BUS(&o, &d, "create", "vol");
	done(&o);
	for (size_t i = 0; i < sizeof(usage) / sizeof(usage[0]); i++) {
		const char *argv[12] = { BUS_BIN, "--bus", d.dir };
		int n = 3;

		for (int k = 0; usage[i][k]; k++)
			argv[n++] = usage[i][k];
		argv[n] = NULL;
		run(&o, NULL, argv);
		cr_expect_eq(o.status, 2, "%s: exit %d, expected 2: %s", o.cmd, o.status, o.err);
		cr_expect(!strncmp(o.err, "bus ", 4), "%s: %s", o.cmd, o.err);
		done(&o);
	}
	/* Runtime: exit 1, the topic and the cause. */
	BUS(&o, &d, "replay", "nosuch", "--speed", "max");
	expect_exit(&o, 1);
	cr_assert(!strncmp(o.err, "bus: replay nosuch: ", 20), "%s", o.err);
	done(&o);
	BUS(&o, &d, "replay", "vol");
	expect_exit(&o, 1);
	cr_assert(!strncmp(o.err, "bus: replay vol: ", 17) && strstr(o.err, "no log"), "%s",
		  o.err);
	done(&o);
	BUS(&o, &d, "export", "vol");
	expect_exit(&o, 1);
	cr_assert(strstr(o.err, "vol") && strstr(o.err, "no log"), "%s", o.err);
	done(&o);
	run(&o, NULL, ARGV(BUS_BIN, "replay", "--log-dir", "/nonexistent/log/x", "--speed", "max"));
	expect_exit(&o, 1);
	cr_assert(strstr(o.err, "/nonexistent/log/x"), "%s", o.err);
	done(&o);
	/* An empty durable topic replays nothing, successfully. */
	BUS(&o, &d, "replay", "t", "--speed", "max");
	expect_exit(&o, 0);
	cr_assert_str_eq(o.out, "");
	done(&o);
}

/* ------------------------------------------------------------------------ */
/* export                                                                   */
/* ------------------------------------------------------------------------ */

Test(cli_log, export_jsonl_and_csv)
{
	static const char quoted[] = "say \"hi\", then go";
	unsigned char bin[5] = { 0, 1, 2, 0xfe, 0xff };
	char *lines[8];
	struct t_busd d;
	struct out o;

	start_busd(&d);
	create_durable(&d, "t", "64K");
	BUS(&o, &d, "pub", "t", "--type", "3", "plain", quoted);
	expect_exit(&o, 0);
	done(&o);
	BUS_IN(&o, &d, bin, sizeof(bin), "pub", "t", "--raw");
	expect_exit(&o, 0);
	done(&o);
	cr_assert_eq(wait_logged(&d, "t", 4), 0);

	/* JSON lines: the default, and --json, and --format jsonl, alike. */
	BUS(&o, &d, "export", "t");
	expect_exit(&o, 0);
	{
		char *def = strdup(o.out);
		struct out o2;

		BUS(&o2, &d, "export", "t", "--format", "jsonl");
		cr_assert_str_eq(o2.out, def);
		done(&o2);
		BUS(&o2, &d, "--json", "export", "t");
		cr_assert_str_eq(o2.out, def);
		done(&o2);
		free(def);
	}
	cr_assert_eq(split_lines(o.out, lines, 8), 3, "%s", o.out);
	for (int i = 0; i < 3; i++) {
		expect_json(lines[i]);
		cr_assert_eq(jnum(lines[i], "seq"), (uint64_t)i + 1);
		cr_assert(jget(lines[i], "ts") && jget(lines[i], "ts_ns"), "%s", lines[i]);
	}
	cr_assert_eq(jnum(lines[0], "type"), 3);
	cr_assert(jstr_is(lines[0], "data", "plain"), "%s", lines[0]);
	cr_assert(jstr_is(lines[1], "data", quoted), "%s", lines[1]);
	cr_assert(jstr_is(lines[2], "data_b64", "AAEC/v8="), "%s", lines[2]);
	cr_assert_null(jget(lines[2], "data"));
	done(&o);

	/* CSV (RFC 4180): a header, then seq,ts,type,len,data,data_b64. */
	BUS(&o, &d, "export", "t", "--format", "csv");
	expect_exit(&o, 0);
	cr_assert_eq(split_lines(o.out, lines, 8), 4, "%s", o.out);
	cr_assert_str_eq(lines[0], "seq,ts,type,len,data,data_b64");
	cr_assert(!strncmp(lines[1], "1,", 2) && strstr(lines[1], "Z,3,5,\"plain\","),
		  "%s", lines[1]);
	cr_assert(strstr(lines[2], ",3,17,\"say \"\"hi\"\", then go\","), "%s", lines[2]);
	cr_assert(strstr(lines[3], ",0,5,,AAEC/v8="), "%s", lines[3]);
	cr_assert_eq(strlen(lines[1]) - strlen(strchr(lines[1], 'Z')), 31, "%s", lines[1]);
	done(&o);

	/* A range. */
	BUS(&o, &d, "export", "t", "--from", "seq:2", "--to", "seq:3");
	expect_exit(&o, 0);
	cr_assert_eq(count_lines(o.out), 1, "%s", o.out);
	cr_assert_eq(jnum(o.out, "seq"), 2);
	done(&o);
	BUS(&o, &d, "export", "t", "-n", "1", "--format", "csv");
	cr_assert_eq(count_lines(o.out), 2, "%s", o.out);
	done(&o);
}

/* ------------------------------------------------------------------------ */
/* gc                                                                       */
/* ------------------------------------------------------------------------ */

/* The names in dir, sorted, one a line (for before/after comparisons). */
static char *listing(const char *dir)
{
	struct dirent **e;
	char *s = calloc(1, 1);
	size_t n = 0;
	int k = scandir(dir, &e, NULL, alphasort);

	cr_assert_geq(k, 0, "%s: %s", dir, strerror(errno));
	for (int i = 0; i < k; i++) {
		if (e[i]->d_name[0] != '.') {
			s = realloc(s, n + strlen(e[i]->d_name) + 2);
			n += (size_t)sprintf(s + n, "%s\n", e[i]->d_name);
		}
		free(e[i]);
	}
	free(e);
	return s;
}

/* The gc line (tab-separated) for file, or "" (static). */
static const char *gc_line(const char *out, const char *file)
{
	static char buf[1024];
	const char *p = out;

	buf[0] = 0;
	while (p && *p) {
		const char *tab = strchr(p, '\t'), *nl = strchr(p, '\n');

		if (tab && (!nl || tab < nl) && !strncmp(tab + 1, file, strlen(file)) &&
		    tab[1 + strlen(file)] == '\t') {
			snprintf(buf, sizeof(buf), "%.*s", (int)(nl ? nl - p : (long)strlen(p)), p);
			return buf;
		}
		p = nl ? nl + 1 : NULL;
	}
	return buf;
}

Test(cli_log, gc_dry_run_removes_nothing_then_gc_removes_only_dead_files)
{
	struct t_busd live, dead;
	struct out o;
	struct bg g;
	char shm[600], f[800], *before, *after, dead_id[32] = "", live_id[32] = "";
	const char *j;
	int nf;

	snprintf(shm, sizeof(shm), "%s/gcshm", t_dir());
	cr_assert_eq(mkdir(shm, 0700), 0);
	/* The live bus first: a busd sweeps dead buses when it starts. */
	cr_assert_eq(t_busd_start(&live, "--shm", shm, NULL), 0);
	BUS(&o, &live, "pub", "alive", "x");
	expect_exit(&o, 0);
	done(&o);
	cr_assert_eq(t_busd_start(&dead, "--shm", shm, NULL), 0);
	BUS(&o, &dead, "pub", "gone", "x");
	expect_exit(&o, 0);
	done(&o);
	BUS(&o, &dead, "pub", "held", "x");
	expect_exit(&o, 0);
	done(&o);
	/* A reader keeps "held" mapped after its busd dies. */
	bg_start(&g, -1, ARGV(BUS_BIN, "--bus", dead.dir, "tail", "held", "-f"));
	cr_assert_eq(wait_consumers(&dead, "held", 1), 0);
	t_busd_kill(&dead);

	/* Which id is which: the anchors name their bus directory. */
	{
		struct dirent **e;
		int k = scandir(shm, &e, NULL, alphasort);

		for (int i = 0; i < k; i++) {
			const char *nm = e[i]->d_name;

			if (!strncmp(nm, "bus-", 4) && !strchr(nm, '.') && strlen(nm) == 20) {
				uint8_t *buf;
				size_t len;

				snprintf(f, sizeof(f), "%s/%.20s", shm, nm);
				cr_assert_eq(t_file_read(f, &buf, &len), 0);
				snprintf(strstr((char *)buf, dead.dir) ? dead_id : live_id, 32, "%s",
					 nm + 4);
				free(buf);
			}
			free(e[i]);
		}
		free(e);
	}
	cr_assert(dead_id[0] && live_id[0], "anchors: dead %s, live %s", dead_id, live_id);

	before = listing(shm);
	BUS(&o, &live, "gc", "--dry-run", "--shm", shm);
	expect_exit(&o, 0);
	after = listing(shm);
	cr_assert_str_eq(after, before, "gc --dry-run removed files");
	free(after);
	snprintf(f, sizeof(f), "bus-%s.gone", dead_id);
	cr_assert(!strncmp(gc_line(o.out, f), "would-remove\t", 13), "%s:\n%s", f, o.out);
	snprintf(f, sizeof(f), "bus-%s.gone@cons", dead_id);
	cr_assert(!strncmp(gc_line(o.out, f), "would-remove\t", 13), "%s:\n%s", f, o.out);
	snprintf(f, sizeof(f), "bus-%s.held", dead_id);
	cr_assert(!strncmp(gc_line(o.out, f), "kept\t", 5), "mapped: %s:\n%s", f, o.out);
	snprintf(f, sizeof(f), "bus-%s.alive", live_id);
	cr_assert(!strncmp(gc_line(o.out, f), "kept\t", 5) && strstr(gc_line(o.out, f), "\tlive\t"),
		  "live: %s:\n%s", f, o.out);
	snprintf(f, sizeof(f), "bus-%s", dead_id);
	cr_assert(!strncmp(gc_line(o.out, f), "kept\t", 5),
		  "the anchor of a bus with a file left stays: %s:\n%s", f, o.out);
	cr_assert(strstr(o.err, "would remove 2 files"), "%s", o.err);

	/* --json: one object; every file, with the action the text gave it.
	 * In a dry run "removed" counts what would be. */
	{
		char *text = strdup(o.out), spelled[2048] = "";
		size_t w = 0;

		done(&o);
		BUS(&o, &live, "--json", "gc", "-n", "--shm", shm);
		expect_exit(&o, 0);
		expect_json(o.out);
		cr_assert_eq(jbool(o.out, "dry_run"), 1);
		cr_assert_eq(jnum(o.out, "removed"), 2, "%s", o.out);
		cr_assert_eq(jnum(o.out, "failed"), 0);
		j = jget(o.out, "files");
		nf = jlen(j);
		cr_assert_eq(nf, t_count_files(shm, ""), "every file is reported: %s", o.out);
		for (int i = 0; i < nf; i++) {
			const char *e = jidx(j, i), *l;
			char *file = jstr(e, "file"), *action = jstr(e, "action");

			cr_assert(jget(e, "bus_id") && jget(e, "reason") && jget(e, "bytes"), "%s", e);
			l = gc_line(text, file);
			if ((strncmp(l, action, strlen(action)) || l[strlen(action)] != '\t') &&
			    w < sizeof(spelled) - 200)
				w += (size_t)snprintf(spelled + w, sizeof(spelled) - w,
						      "\n  %s: json \"%s\", text \"%.*s\"", file,
						      action, (int)strcspn(l, "\t"), l);
			if (strstr(file, live_id))
				cr_assert_str_eq(action, "kept");
			free(file);
			free(action);
		}
		cr_expect(!w, "gc --json and gc spell the action differently:%s", spelled);
		free(text);
	}
	done(&o);
	after = listing(shm);
	cr_assert_str_eq(after, before, "gc --json --dry-run removed files");
	free(after);
	free(before);

	/* For real: the dead bus's unmapped topic goes, all else stays. */
	BUS(&o, &live, "gc", "--shm", shm);
	expect_exit(&o, 0);
	snprintf(f, sizeof(f), "bus-%s.gone", dead_id);
	cr_assert(!strncmp(gc_line(o.out, f), "removed\t", 8), "%s:\n%s", f, o.out);
	done(&o);
	snprintf(f, sizeof(f), "%s/bus-%s.gone", shm, dead_id);
	cr_assert_neq(access(f, F_OK), 0, "%s is still there", f);
	snprintf(f, sizeof(f), "%s/bus-%s.held", shm, dead_id);
	cr_assert_eq(access(f, F_OK), 0, "a mapped segment was removed: %s", f);
	snprintf(f, sizeof(f), "%s/bus-%s.alive", shm, live_id);
	cr_assert_eq(access(f, F_OK), 0, "a live bus's segment was removed: %s", f);
	BUS(&o, &live, "tail", "alive");
	cr_assert_str_eq(o.out, "x\n", "the live bus still works");
	done(&o);

	/* The reader gone, the rest of the dead bus goes, anchor last. */
	bg_stop(&g, SIGINT, &o);
	done(&o);
	BUS(&o, &live, "-q", "gc", "--shm", shm);
	expect_exit(&o, 0);
	cr_assert_str_eq(o.err, "", "-q: no summary");
	done(&o);
	snprintf(f, sizeof(f), "bus-%s", dead_id);
	cr_assert_eq(t_count_files(shm, f), 0, "the dead bus left files after gc");
	snprintf(f, sizeof(f), "bus-%s", live_id);
	cr_assert_eq(t_count_files(shm, f), 3, "the live bus: its anchor and one topic");

	/* Usage. */
	BUS(&o, &live, "gc", "extra");
	expect_exit(&o, 2);
	done(&o);
	BUS(&o, &live, "gc", "--shm", "/nonexistent/shm");
	expect_exit(&o, 1);
	cr_assert(strstr(o.err, "/nonexistent/shm"), "%s", o.err);
	done(&o);
}

/* ------------------------------------------------------------------------ */
/* log verify, log dump                                                     */
/* ------------------------------------------------------------------------ */

/* Copy the files of directory from into a new directory to. */
static void copy_dir(const char *from, const char *to)
{
	struct dirent **e;
	int k = scandir(from, &e, NULL, alphasort);

	cr_assert_geq(k, 0, "%s: %s", from, strerror(errno));
	cr_assert_eq(mkdir(to, 0700), 0, "%s: %s", to, strerror(errno));
	for (int i = 0; i < k; i++) {
		char a[1400], b[1400];
		uint8_t *buf;
		size_t len;

		if (e[i]->d_name[0] != '.') {
			snprintf(a, sizeof(a), "%s/%s", from, e[i]->d_name);
			snprintf(b, sizeof(b), "%s/%s", to, e[i]->d_name);
			cr_assert_eq(t_file_read(a, &buf, &len), 0, "%s", a);
			cr_assert_eq(t_file_write(b, buf, len), 0, "%s", b);
			free(buf);
		}
		free(e[i]);
	}
	free(e);
}

/* The value of "KEY\tVALUE" lines (verify's summary) or NULL (static). */
static const char *kv(const char *out, const char *key)
{
	static char buf[256];
	size_t n = strlen(key);

	for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (!strncmp(p, key, n) && p[n] == '\t') {
			snprintf(buf, sizeof(buf), "%.*s", (int)strcspn(p + n + 1, "\n"), p + n + 1);
			return buf;
		}
	}
	return NULL;
}

Test(cli_log, log_verify_passes_a_good_log_and_names_the_offset_in_a_bad_copy)
{
	const uint64_t n = 40000;  /* 1.3 MB of records: two 1M segments */
	struct t_chunk ch[256];
	struct t_busd d;
	struct out o;
	char logdir[700], copy[700], seg0[64], seg[1400], want[1600], off[32];
	uint8_t *buf;
	size_t len;
	int nch, k;

	start_busd(&d);
	BUS(&o, &d, "create", "t", "--durable", "--ring", "256K", "--segment-size", "1M");
	expect_exit(&o, 0);
	done(&o);
	pub_seq_logged(&d, "t", n, 8000);  /* a 256K ring holds 8191 */
	/* Crossing segments, busd's writes never failed. */
	BUS(&o, &d, "--json", "info", "t");
	if (jnum(jget(o.out, "log"), "write_errors")) {
		uint8_t *err = NULL;
		size_t elen;
		const char *why = NULL;

		if (t_file_read(d.err, &err, &elen) == 0)
			why = strstr((char *)err, "log write failed");
		cr_expect(0, "busd's log writes failed while the log rolled segments: %.200s\n"
			       "busd: ...%.160s", jget(o.out, "log"), why ? why : "(no message)");
		free(err);
	}
	done(&o);

	/* By topic, through busd (a live log). */
	BUS(&o, &d, "log", "verify", "t");
	expect_exit(&o, 0);
	cr_assert_str_eq(kv(o.out, "result"), "ok", "%s", o.out);
	cr_assert_str_eq(kv(o.out, "events"), "40000", "%s", o.out);
	cr_assert_str_eq(kv(o.out, "first_seq"), "1", "%s", o.out);
	cr_assert_str_eq(kv(o.out, "last_seq"), "40000", "%s", o.out);
	cr_assert_str_eq(kv(o.out, "errors"), "0", "%s", o.out);
	cr_assert_geq(atoi(kv(o.out, "segments")), 2, "%s", o.out);
	done(&o);

	/* Offline, by path, with busd stopped. */
	cr_assert_eq(t_busd_stop(&d), 0);
	snprintf(logdir, sizeof(logdir), "%s/log/t", d.state);
	run(&o, NULL, ARGV(BUS_BIN, "log", "verify", logdir));
	expect_exit(&o, 0);
	cr_assert_str_eq(kv(o.out, "result"), "ok", "%s", o.out);
	cr_assert_str_eq(kv(o.out, "events"), "40000", "%s", o.out);
	done(&o);
	run(&o, NULL, ARGV(BUS_BIN, "--json", "log", "verify", logdir));
	expect_exit(&o, 0);
	expect_json(o.out);
	cr_assert_eq(jbool(o.out, "ok"), 1);
	cr_assert(jstr_is(o.out, "result", "ok"), "%s", o.out);
	cr_assert_eq(jnum(o.out, "events"), n);
	cr_assert_eq(jnum(o.out, "first_seq"), 1);
	cr_assert_eq(jnum(o.out, "last_seq"), n);
	cr_assert_eq(jnum(o.out, "error_count"), 0);
	cr_assert_eq(jlen(jget(o.out, "errors")), 0);
	cr_assert(jget(o.out, "first_bad") && !strncmp(jget(o.out, "first_bad"), "null", 4),
		  "%s", o.out);
	done(&o);

	/* dump: every chunk where an independent reading of the file finds
	 * it. */
	t_seg_name(seg0, sizeof(seg0), 1);
	snprintf(seg, sizeof(seg), "%s/%s", logdir, seg0);
	cr_assert_eq(t_file_read(seg, &buf, &len), 0, "%s", seg);
	nch = t_log_chunks(buf, len, ch, 256);
	cr_assert_gt(nch, 2, "%d chunks in %s", nch, seg);
	free(buf);
	run(&o, NULL, ARGV(BUS_BIN, "log", "dump", logdir));
	expect_exit(&o, 0);
	for (int i = 0; i < nch && i < 256; i++) {
		snprintf(want, sizeof(want), "chunk\t%s\t%llu\t%llu\t%u\t", seg0,
			 (unsigned long long)ch[i].off, (unsigned long long)ch[i].first_seq,
			 ch[i].count);
		cr_assert(strstr(o.out, want), "dump has no line %s...:\n%.2000s", want, o.out);
	}
	snprintf(want, sizeof(want), "segment\t%s\t1\t", seg0);
	cr_assert(strstr(o.out, want), "%.2000s", o.out);
	done(&o);
	run(&o, NULL, ARGV(BUS_BIN, "-v", "log", "dump", seg));
	expect_exit(&o, 0);
	cr_assert(strstr(o.out, "\nevent\t1\t0\t1\t"), "-v dumps events: %.1000s", o.out);
	done(&o);
	run(&o, NULL, ARGV(BUS_BIN, "--json", "log", "dump", logdir));
	expect_exit(&o, 0);
	{
		char *lines[1024];
		int nl = split_lines(o.out, lines, 1024), chunks = 0;

		cr_assert_gt(nl, nch);
		for (int i = 0; i < nl && i < 1024; i++) {
			expect_json(lines[i]);
			chunks += jstr_is(lines[i], "kind", "chunk");
		}
		cr_assert_geq(chunks, nch);
	}
	done(&o);

	/* A corrupted copy: one byte inside chunk k's records. */
	k = nch / 2;
	snprintf(copy, sizeof(copy), "%s/copy", t_dir());
	copy_dir(logdir, copy);
	snprintf(seg, sizeof(seg), "%s/%s", copy, seg0);
	cr_assert_eq(t_file_read(seg, &buf, &len), 0);
	buf[ch[k].off + 64 + 100] ^= 0x40;
	cr_assert_eq(t_file_write(seg, buf, len), 0);
	free(buf);
	snprintf(off, sizeof(off), "%llu", (unsigned long long)ch[k].off);
	run(&o, NULL, ARGV(BUS_BIN, "log", "verify", copy));
	expect_exit(&o, 1);
	snprintf(want, sizeof(want), "error\t%s\t%s\t", seg0, off);
	cr_assert(strstr(o.out, want), "no \"%s\" line:\n%s", want, o.out);
	cr_assert_str_eq(kv(o.out, "result"), "corrupt", "%s", o.out);
	cr_assert(strstr(o.err, seg0) && strstr(o.err, off), "stderr names %s and %s: %s", seg0,
		  off, o.err);
	done(&o);
	run(&o, NULL, ARGV(BUS_BIN, "--json", "log", "verify", copy));
	expect_exit(&o, 1);
	expect_json(o.out);
	cr_assert_eq(jbool(o.out, "ok"), 0);
	cr_assert_eq(jnum(jget(o.out, "first_bad"), "offset"), ch[k].off, "%s", o.out);
	cr_assert(jstr_is(jget(o.out, "first_bad"), "file", seg0), "%s", o.out);
	cr_assert_geq(jnum(o.out, "error_count"), 1);
	done(&o);
	/* dump shows it, and fails too. */
	run(&o, NULL, ARGV(BUS_BIN, "log", "dump", copy));
	expect_exit(&o, 1);
	snprintf(want, sizeof(want), "chunk\t%s\t%s\t", seg0, off);
	cr_assert(strstr(o.out, want) && strstr(strstr(o.out, want), "\tbad\t"),
		  "dump does not mark chunk at %s bad:\n%.3000s", off, o.out);
	done(&o);
	/* The good log is still good. */
	run(&o, NULL, ARGV(BUS_BIN, "log", "verify", logdir));
	expect_exit(&o, 0);
	done(&o);

	/* A bad file header: offset 0. */
	snprintf(copy, sizeof(copy), "%s/copy2", t_dir());
	copy_dir(logdir, copy);
	snprintf(seg, sizeof(seg), "%s/%s", copy, seg0);
	cr_assert_eq(t_file_read(seg, &buf, &len), 0);
	buf[3] ^= 0xff;
	cr_assert_eq(t_file_write(seg, buf, len), 0);
	run(&o, NULL, ARGV(BUS_BIN, "log", "verify", copy));
	expect_exit(&o, 1);
	snprintf(want, sizeof(want), "error\t%s\t0\t", seg0);
	cr_assert(strstr(o.out, want), "no \"%s\" line:\n%s", want, o.out);
	done(&o);
	/* A torn last chunk in a log at rest (not live): an error. */
	buf[3] ^= 0xff;
	cr_assert_eq(t_file_write(seg, buf, ch[nch - 1].off + 64 + 10), 0);
	free(buf);
	run(&o, NULL, ARGV(BUS_BIN, "log", "verify", seg));
	cr_assert_eq(o.status, 1, "a truncated segment verifies: %s %s", o.out, o.err);
	done(&o);

	/* Errors. */
	run(&o, NULL, ARGV(BUS_BIN, "log", "verify", "/nonexistent/log/x"));
	expect_exit(&o, 1);
	cr_assert(strstr(o.err, "/nonexistent/log/x"), "%s", o.err);
	done(&o);
	run(&o, NULL, ARGV(BUS_BIN, "log"));
	expect_exit(&o, 2);
	done(&o);
	run(&o, NULL, ARGV(BUS_BIN, "log", "frob", logdir));
	expect_exit(&o, 2);
	done(&o);
	run(&o, NULL, ARGV(BUS_BIN, "log", "verify"));
	expect_exit(&o, 2);
	done(&o);
	run(&o, NULL, ARGV(BUS_BIN, "log", "verify", logdir, "extra"));
	expect_exit(&o, 2);
	done(&o);
}

/* ------------------------------------------------------------------------ */
/* top, hz                                                                  */
/* ------------------------------------------------------------------------ */

/* A `bus pub TOPIC` that publishes what the test writes to *fd. */
static void feeder(struct bg *g, const struct t_busd *d, const char *topic, int *fd)
{
	int p[2];

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	bg_start(g, p[0], ARGV(BUS_BIN, "--bus", d->dir, "pub", topic));
	close(p[0]);
	*fd = p[1];
	cr_assert_eq(wait_producer(d, topic, g->pid), 0, "bus pub %s never took the lease", topic);
}

/* Write a line every ms milliseconds until g exits or secs pass: 0 when g
 * exited. */
static int feed_until_exit(int fd, const char *line, unsigned ms, struct bg *g, unsigned secs,
			   struct out *o)
{
	uint64_t end = t_now_ns() + (uint64_t)secs * 1000000000ull;

	while (t_now_ns() < end) {
		if (bg_exited(g, o))
			return 0;
		cr_assert_eq(write(fd, line, strlen(line)), (ssize_t)strlen(line));
		t_nap_us(ms * 1000);
	}
	return bg_wait_exit(g, 5000, o);
}

Test(cli_log, top_once_lists_the_busiest_topic_first)
{
	struct t_busd d;
	struct bg pub, top;
	struct out o;
	char *lines[16];
	int fd, nl;
	const char *t;

	signal(SIGPIPE, SIG_IGN);
	start_busd(&d);
	BUS(&o, &d, "create", "aaa-idle");
	done(&o);
	create_durable(&d, "zzz-durable", "64K");
	feeder(&pub, &d, "mmm-busy", &fd);

	/* Not a terminal: one frame of tab-separated columns. */
	bg_start(&top, -1, ARGV(BUS_BIN, "--bus", d.dir, "top", "--once", "-i", "500ms"));
	cr_assert_eq(feed_until_exit(fd, "event\n", 5, &top, 20, &o), 0, "top --once goes on");
	expect_exit(&o, 0);
	nl = split_lines(o.out, lines, 16);
	cr_assert_eq(nl, 3, "one line a topic:\n%s", o.out);
	cr_assert(!strncmp(lines[0], "mmm-busy\tvolatile\t", 18), "busiest first: %s", lines[0]);
	cr_assert_gt(atof(lines[0] + 18), 20.0, "rate: %s", lines[0]);
	for (int i = 0; i < 3; i++) {
		int tabs = 0;

		for (const char *p = lines[i]; *p; p++)
			tabs += *p == '\t';
		cr_assert_eq(tabs, 8, "9 columns: %s", lines[i]);
	}
	/* The idle ones (in either order). */
	{
		int a = !strncmp(lines[1], "aaa", 3) ? 1 : 2;

		cr_assert_str_eq(lines[a], "aaa-idle\tvolatile\t0.0\t0.0\t1\t0\t0\t0\t0");
		cr_assert_str_eq(lines[3 - a], "zzz-durable\tdurable\t0.0\t0.0\t1\t0\t0\t0\t0");
	}
	done(&o);

	/* --json: one object a frame. */
	bg_start(&top, -1, ARGV(BUS_BIN, "--bus", d.dir, "--json", "top", "--once", "-i", "300ms"));
	cr_assert_eq(feed_until_exit(fd, "event\n", 5, &top, 20, &o), 0);
	expect_exit(&o, 0);
	cr_assert_eq(count_lines(o.out), 1, "%s", o.out);
	expect_json(o.out);
	cr_assert(jstr_is(o.out, "bus", d.dir), "%s", o.out);
	t = jget(o.out, "totals");
	cr_assert_eq(jnum(t, "topics"), 3);
	cr_assert_eq(jnum(t, "durable"), 1);
	cr_assert_eq(jnum(t, "producers"), 1);
	cr_assert_eq(jnum(t, "degraded"), 0);
	t = jget(o.out, "topics");
	cr_assert_eq(jlen(t), 3);
	cr_assert(jstr_is(jidx(t, 0), "topic", "mmm-busy"), "%s", o.out);
	cr_assert_eq(jnum(jidx(t, 0), "producer_pid"), (uint64_t)pub.pid);
	cr_assert_eq(jbool(jidx(t, 0), "durable"), 0);
	for (int i = 0; i < 3; i++)
		cr_assert(jget(jidx(t, i), "rate") && jget(jidx(t, i), "bytes_rate") &&
			  jget(jidx(t, i), "next_seq") && jget(jidx(t, i), "flush_lag"), "%s", o.out);
	done(&o);

	/* -n 2: two frames, a blank line apart. */
	BUS(&o, &d, "top", "-n", "2", "-i", "100ms");
	expect_exit(&o, 0);
	{
		char *gap = strstr(o.out, "\n\n");

		cr_assert_not_null(gap, "%s", o.out);
		char *second = gap + 2;
		size_t l = strlen(second);

		if (l >= 2 && second[l - 1] == '\n' && second[l - 2] == '\n')
			second[l - 1] = 0;  /* (a blank line after the last frame too) */
		cr_assert_eq(count_lines(second), 3, "the second frame: %s", second);
		gap[1] = 0;
		cr_assert_eq(count_lines(o.out), 3, "the first frame: %s", o.out);
	}
	done(&o);

	close(fd);
	cr_assert_eq(bg_wait_exit(&pub, 10000, &o), 0);
	expect_exit(&o, 0);
	done(&o);

	/* Usage. */
	BUS(&o, &d, "top", "--interval", "5x");
	expect_exit(&o, 2);
	cr_assert(strstr(o.err, "--interval"), "%s", o.err);
	done(&o);
	BUS(&o, &d, "top", "--interval", "10ms");
	expect_exit(&o, 2);
	done(&o);
	BUS(&o, &d, "top", "extra");
	expect_exit(&o, 2);
	done(&o);
}

Test(cli_log, top_on_a_terminal_redraws_until_q)
{
	struct winsize ws = { .ws_row = 30, .ws_col = 120 };
	struct t_busd d;
	struct out o;
	char *buf, *sn;
	size_t n = 0, cap = 1 << 20;
	uint64_t end;
	int m, st, quit_sent = 0;
	pid_t pid;

	start_busd(&d);
	BUS(&o, &d, "create", "on-screen");
	done(&o);
	m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	cr_assert_geq(m, 0);
	cr_assert(grantpt(m) == 0 && unlockpt(m) == 0);
	sn = ptsname(m);
	cr_assert_not_null(sn);
	ioctl(m, TIOCSWINSZ, &ws);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int s;

		setsid();
		s = open(sn, O_RDWR);
		if (s < 0)
			_exit(126);
		ioctl(s, TIOCSCTTY, 0);
		child_exec(&(struct how){ .in_fd = 0 }, s, s, s,
			   ARGV(BUS_BIN, "--bus", d.dir, "top", "-i", "100ms"));
	}
	t_adopt_pid(pid);
	buf = malloc(cap);
	end = t_now_ns() + 20000000000ull;
	for (;;) {
		struct pollfd pfd = { .fd = m, .events = POLLIN };
		pid_t w;

		if (poll(&pfd, 1, 50) > 0) {
			ssize_t r = read(m, buf + n, cap - n - 1);

			if (r > 0)
				n += (size_t)r;
			buf[n] = 0;
		}
		/* Two redraws (cursor home) with the topic on screen: press q. */
		if (!quit_sent && strstr(buf, "on-screen") && strstr(buf, "\033[H") &&
		    strstr(strstr(buf, "\033[H") + 3, "\033[H")) {
			cr_assert_eq(write(m, "q", 1), 1);
			quit_sent = 1;
		}
		w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			break;
		if (t_now_ns() > end || n + 1 >= cap) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			t_forget_pid(pid);
			cr_assert_fail("top on a terminal did not quit on q (sent: %d); it printed "
				       "%zu bytes", quit_sent, n);
		}
	}
	t_forget_pid(pid);
	close(m);
	cr_assert(quit_sent, "top exited before it drew two frames: %.500s", buf);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "top exit status %#x", st);
	/* It restored the screen (leaves the alternate screen, shows the cursor). */
	cr_assert(strstr(buf, "\033[?1049l"), "the alternate screen was not left");
	free(buf);
}

Test(cli_log, hz_measures_rate_interval_and_size)
{
	struct t_busd d;
	struct bg pub, hz;
	struct out o;
	char *lines[16], *col[10];
	int fd, nl, events = 0;
	const char *v;

	signal(SIGPIPE, SIG_IGN);
	start_busd(&d);
	feeder(&pub, &d, "t", &fd);

	/* Tab-separated: events rate min avg max stddev (ns) size min avg max lost. */
	bg_start(&hz, -1, ARGV(BUS_BIN, "--bus", d.dir, "hz", "t", "-w", "300ms", "-n", "3"));
	cr_assert_eq(wait_consumers(&d, "t", 1), 0, "hz never attached");
	cr_assert_eq(feed_until_exit(fd, "12345\n", 10, &hz, 20, &o), 0, "hz -n 3 goes on");
	expect_exit(&o, 0);
	nl = split_lines(o.out, lines, 16);
	cr_assert_eq(nl, 3, "a line a window:\n%s", o.out);
	for (int i = 0; i < nl; i++) {
		char *p = lines[i];
		int c = 0;

		for (; c < 10 && p; c++) {
			col[c] = p;
			p = strchr(p, '\t');
			if (p)
				*p++ = 0;
		}
		cr_assert_eq(c, 10, "10 columns in line %d", i);
		events += atoi(col[0]);
		if (atoi(col[0]) >= 2) {
			cr_assert_str_eq(col[6], "5", "size min");
			cr_assert_str_eq(col[8], "5", "size max");
			cr_assert_gt(atof(col[1]), 10.0, "rate %s", col[1]);
			/* a line every 10 ms: intervals of at least ~10 ms */
			cr_assert_gt(strtoull(col[3], NULL, 10), 5000000ull, "avg interval %s", col[3]);
		}
		cr_assert_str_eq(col[9], "0", "lost");
	}
	cr_assert_gt(events, 20, "%d events in 0.9 s of a line every 10 ms", events);
	done(&o);

	/* --json: one object a window. */
	bg_start(&hz, -1, ARGV(BUS_BIN, "--bus", d.dir, "--json", "hz", "t", "-w", "300ms", "-n",
			       "1"));
	cr_assert_eq(wait_consumers(&d, "t", 1), 0);
	cr_assert_eq(feed_until_exit(fd, "12345\n", 10, &hz, 20, &o), 0);
	expect_exit(&o, 0);
	expect_json(o.out);
	cr_assert(jstr_is(o.out, "topic", "t"), "%s", o.out);
	cr_assert_gt(jnum(o.out, "events"), 5, "%s", o.out);
	cr_assert_eq(jnum(o.out, "lost"), 0);
	v = jget(o.out, "size");
	cr_assert_eq(jnum(v, "min"), 5, "%s", o.out);
	cr_assert_eq(jnum(v, "max"), 5, "%s", o.out);
	v = jget(o.out, "interval_ns");
	cr_assert(jget(v, "min") && jget(v, "avg") && jget(v, "max") && jget(v, "stddev"), "%s",
		  o.out);
	done(&o);

	/* A quiet window: no events, '-' for what cannot be measured. */
	BUS(&o, &d, "hz", "t", "-w", "100ms", "-n", "1");
	expect_exit(&o, 0);
	cr_assert(!strncmp(o.out, "0\t", 2) && strstr(o.out, "\t-\t"), "%s", o.out);
	done(&o);
	BUS(&o, &d, "--json", "hz", "t", "-w", "100ms", "-n", "1");
	expect_exit(&o, 0);
	expect_json(o.out);
	cr_assert_eq(jnum(o.out, "events"), 0);
	cr_assert(!strncmp(jget(o.out, "interval_ns"), "null", 4), "%s", o.out);
	done(&o);

	close(fd);
	cr_assert_eq(bg_wait_exit(&pub, 10000, &o), 0);
	done(&o);

	/* Errors. */
	BUS(&o, &d, "hz");
	expect_exit(&o, 2);
	done(&o);
	BUS(&o, &d, "hz", "t", "--window", "5ms");
	expect_exit(&o, 2);
	cr_assert(strstr(o.err, "--window"), "%s", o.err);
	done(&o);
	BUS(&o, &d, "hz", "t", "-w", "1parsec");
	expect_exit(&o, 2);
	done(&o);
	BUS(&o, &d, "hz", "nosuch", "-n", "1");
	expect_exit(&o, 1);
	cr_assert(!strncmp(o.err, "bus: hz nosuch: ", 16), "%s", o.err);
	done(&o);
}

/* ------------------------------------------------------------------------ */
/* bench                                                                    */
/* ------------------------------------------------------------------------ */

/* Split a tab-separated line in place: the number of fields. */
static int fields(char *line, char **f, int max)
{
	int n = 0;

	while (line && n < max) {
		f[n++] = line;
		line = strchr(line, '\t');
		if (line)
			*line++ = 0;
	}
	return n;
}

Test(cli_log, bench_measures_throughput_and_latency_and_cleans_up)
{
	struct t_busd d;
	struct out o;
	char *lines[8], *f[16], shm[700], nobus[700];
	const char *tp, *lat;
	int nl;

#ifdef __SANITIZE_THREAD__
	cr_skip_test("bench's producer laps its consumer on purpose: the consumer's reads race "
		     "with the producer by design (docs/ARCHITECTURE.md, test_lapping.c) and TSan "
		     "reports that; the plain and ASan builds run this test");
#endif

	start_busd(&d);
	/* Tab-separated: a throughput line per size, then the latency line.
	 * A second per run: the latency run's paced producer must get enough
	 * of a busy machine (a CI dry run with 200 ms once got no sample past
	 * the warm-up). */
	BUS(&o, &d, "bench", "-d", "1s", "-s", "64,1024", "--rate", "2000");
	expect_exit(&o, 0);
	nl = split_lines(o.out, lines, 8);
	cr_assert_eq(nl, 3, "%d lines", nl);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(fields(lines[i], f, 16), 7, "throughput line %d", i);
		cr_assert_str_eq(f[0], "throughput");
		cr_assert_str_eq(f[1], i ? "1024" : "64");
		cr_assert_gt(atof(f[2]), 1000.0, "published events/s: %s", f[2]);
		cr_assert_gt(atof(f[4]), 0.0, "received events/s: %s", f[4]);
	}
	cr_assert_eq(fields(lines[2], f, 16), 11, "the latency line");
	cr_assert_str_eq(f[0], "latency");
	cr_assert_str_eq(f[1], "64");
	cr_assert_str_eq(f[2], "2000");
	cr_assert_gt(strtoull(f[4], NULL, 10), 0, "samples");
	for (int i = 5; i < 9; i++)  /* min <= p50 <= p99 <= p99.9 <= max */
		cr_assert_leq(strtoull(f[i], NULL, 10), strtoull(f[i + 1], NULL, 10),
			      "latency column %d > column %d", i, i + 1);
	done(&o);
	BUS(&o, &d, "ls");
	cr_assert_str_eq(o.out, "", "bench left its topic: %s", o.out);
	done(&o);

	/* --json: one object. */
	BUS(&o, &d, "--json", "bench", "-d", "100ms", "-s", "256", "--no-latency");
	expect_exit(&o, 0);
	expect_json(o.out);
	cr_assert(jstr_is(o.out, "bus", d.dir), "%s", o.out);
	cr_assert_eq(jbool(o.out, "standalone"), 0);
	cr_assert_eq(jnum(o.out, "ring"), 16u << 20);
	cr_assert_eq(jnum(o.out, "duration_ns"), 100000000);
	tp = jget(o.out, "throughput");
	cr_assert_eq(jlen(tp), 1, "%s", o.out);
	cr_assert_eq(jnum(jidx(tp, 0), "size"), 256);
	cr_assert_gt(jnum(jidx(tp, 0), "published"), 0);
	cr_assert_geq(jnum(jidx(tp, 0), "published"), jnum(jidx(tp, 0), "received"));
	lat = jget(o.out, "latency");
	cr_assert(lat && !strncmp(lat, "null", 4), "--no-latency: %s", o.out);
	done(&o);

	/* --standalone: no busd at all; the private segment goes away. */
	snprintf(shm, sizeof(shm), "%s/benchshm", t_dir());
	cr_assert_eq(mkdir(shm, 0700), 0);
	run(&o, NULL, ARGV(BUS_BIN, "--bus", "/nonexistent/bus", "bench", "--standalone",
			   "--shm", shm, "-d", "100ms", "--no-latency"));
	expect_exit(&o, 0);
	cr_assert(!strncmp(o.out, "throughput\t64\t", 14), "%s", o.out);
	done(&o);
	cr_assert_eq(t_count_files(shm, ""), 0, "bench --standalone left files in %s", shm);

	/* Errors. */
	{
		static const char *const usage[][8] = {
			{ "bench", "--size", "3X" },
			{ "bench", "--duration", "5" },
			{ "bench", "--duration", "5ms" },
			{ "bench", "--rate", "0" },
			{ "bench", "--shm", "/tmp" },
			{ "bench", "--ring", "64K", "--size", "32K" },
			{ "bench", "--ring", "3K" },
			{ "bench", "extra" },
		};

		for (size_t i = 0; i < sizeof(usage) / sizeof(usage[0]); i++) {
			const char *argv[12] = { BUS_BIN, "--bus", d.dir };
			int n = 3;

			for (int k = 0; usage[i][k]; k++)
				argv[n++] = usage[i][k];
			argv[n] = NULL;
			run(&o, NULL, argv);
			cr_expect_eq(o.status, 2, "%s: exit %d: %s", o.cmd, o.status, o.err);
			cr_expect_eq(o.out_len, 0, "%s: %s", o.cmd, o.out);
			done(&o);
		}
	}
	snprintf(nobus, sizeof(nobus), "%s/no-bus", t_dir());
	run(&o, NULL, ARGV(BUS_BIN, "--bus", nobus, "bench", "-d", "100ms"));
	expect_exit(&o, 1);
	cr_assert(strstr(o.err, "is busd running? try `make run`"), "%s", o.err);
	done(&o);
}

Test(cli_log, bench_stops_cleanly_on_ctrl_c)
{
	struct t_busd d;
	struct out o;
	struct bg g;

#ifdef __SANITIZE_THREAD__
	cr_skip_test("bench's producer laps its consumer on purpose: the consumer's reads race "
		     "with the producer by design (docs/ARCHITECTURE.md, test_lapping.c) and TSan "
		     "reports that; the plain and ASan builds run this test");
#endif

	start_busd(&d);
	/* Ctrl-C: stops, says so (exit 1: no complete result), deletes its
	 * topic; the JSON so far is still a whole document. */
	bg_start(&g, -1, ARGV(BUS_BIN, "--bus", d.dir, "--json", "bench", "-d", "30s"));
	/* Into its first run: its topic has a producer and a consumer. */
	{
		uint64_t end = t_now_ns() + 10000000000ull;
		int running = 0;

		while (!running && t_now_ns() < end) {
			BUS(&o, &d, "--json", "ls");
			if (o.status == 0 && json_valid(o.out) && jidx(o.out, 0)) {
				const char *e = jidx(o.out, 0);

				running = jnum(e, "producer_pid") == (uint64_t)g.pid &&
					  jnum(e, "consumers") == 1;
			}
			done(&o);
			t_nap_us(20000);
		}
		cr_assert(running, "bench never started its first run");
	}
	t_nap_us(300000);
	kill(g.pid, SIGINT);
	cr_assert_eq(bg_wait_exit(&g, 3000, &o), 0, "bench -d 30s still runs 3 s after Ctrl-C");
	cr_assert_eq(o.status, 1, "bench after Ctrl-C: exit %d: %s", o.status, o.err);
	cr_assert(strstr(o.err, "interrupted"), "%s", o.err);
	expect_json(o.out);
	done(&o);
	BUS(&o, &d, "ls");
	cr_assert_str_eq(o.out, "", "an interrupted bench left its topic: %s", o.out);
	done(&o);
}
