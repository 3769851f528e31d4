/* SPDX-License-Identifier: MIT */
/* cmd_io.c — bus pub, bus tail. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "proto.h"


/* ---- pub ------------------------------------------------------------------ */

static int parse_delim(const char *s, int *d)
{
	if (!strcmp(s, "\\0"))
		*d = 0;
	else if (!strcmp(s, "\\n"))
		*d = '\n';
	else if (!strcmp(s, "\\t"))
		*d = '\t';
	else if (strlen(s) == 1)
		*d = (unsigned char)s[0];
	else
		return usage_error("--delim '%s': expected one character, or \\0, \\t, \\n", s);
	return 0;
}

static int publish(struct bus_pub *p, const char *topic, uint32_t type, const void *data,
		   size_t len)
{
	uint64_t seq = bus_pub_next_seq(p);
	int r = bus_pub_publish(p, type, data, len, 0);

	if (r < 0)
		return fail_bus(topic, r);
	if (cli.verbose)
		printf("%llu\n", (unsigned long long)seq);
	return 0;
}

static int cmd_pub(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "type", required_argument, NULL, 't' },
		{ "delim", required_argument, NULL, 'd' },
		{ "raw", no_argument, NULL, 'r' },
		{ 0 },
	};
	const char *topic;
	struct bus_pub *p = NULL;
	struct bus *b;
	uint64_t v;
	uint32_t type = 0;
	int c, r = 0, delim = '\n', raw = 0;
	char *buf = NULL;
	size_t cap = 0;

	optind = 0;
	while ((c = getopt_long(argc, argv, "t:", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (parse_u64("--type", optarg, &v) < 0)
				return EXIT_USAGE;
			if (v > UINT32_MAX)
				return usage_error("--type %s: at most %u", optarg, UINT32_MAX);
			type = (uint32_t)v;
			break;
		case 'd':
			if (parse_delim(optarg, &delim))
				return EXIT_USAGE;
			break;
		case 'r':
			raw = 1;
			break;
		default:
			return usage_error("bad option");
		}
	}
	if (optind >= argc)
		return usage_error("which topic?");
	topic = argv[optind++];
	if (check_topic(topic) < 0)
		return EXIT_USAGE;
	if (raw && optind < argc)
		return usage_error("--raw reads standard input; drop the messages or --raw");
	if (!(b = cli_connect()))
		return 1;
	r = bus_pub_attach(b, topic, &p);
	if (r == -ENOENT) {
		r = cli_create_default(b, topic);
		if (r < 0 && r != -EEXIST) {
			r = fail_bus(topic, r);
			goto out;
		}
		if (r == 0)
			note("bus: pub: created topic %s (volatile, `bus create` defaults)\n", topic);
		r = bus_pub_attach(b, topic, &p);
	}
	if (r < 0) {
		r = fail_bus(topic, r);
		goto out;
	}
	if (optind < argc) {
		for (; optind < argc && !r; optind++)
			r = publish(p, topic, type, argv[optind], strlen(argv[optind]));
		goto out;
	}
	if (raw) {
		size_t len = 0;

		for (;;) {
			if (len == cap) {
				char *nb = realloc(buf, cap ? 2 * cap : 65536);

				if (!nb) {
					r = fail("out of memory");
					goto out;
				}
				buf = nb;
				cap = cap ? 2 * cap : 65536;
			}
			size_t n = fread(buf + len, 1, cap - len, stdin);

			len += n;
			if (n == 0)
				break;
		}
		if (ferror(stdin)) {
			r = fail("reading standard input: %s", strerror(errno));
			goto out;
		}
		r = publish(p, topic, type, buf, len);
		goto out;
	}
	/* One event per delimited record; the delimiter is not part of it. */
	for (;;) {
		ssize_t n = getdelim(&buf, &cap, delim, stdin);

		if (n < 0)
			break;
		if (n > 0 && buf[n - 1] == (char)delim)
			n--;
		r = publish(p, topic, type, buf, (size_t)n);
		if (r)
			break;
	}
	if (!r && ferror(stdin))
		r = fail("reading standard input: %s", strerror(errno));
out:
	free(buf);
	bus_pub_close(p);  /* publishes anything pending, ends the lease */
	bus_disconnect(b);
	return r;
}

/* ---- tail ----------------------------------------------------------------- */

static int cmd_tail(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'F' },
		{ "count", required_argument, NULL, 'n' },
		{ "follow", no_argument, NULL, 'f' },
		{ "group", required_argument, NULL, 'g' },
		{ "format", required_argument, NULL, 'o' },
		{ 0 },
	};
	struct bus_sub_opts o = { .from = BUS_FROM_OLDEST };
	struct bus_topic_info ti;
	struct bus_sub *s = NULL;
	struct bus_event ev;
	enum fmt fmt = FMT_TEXT;
	const char *topic;
	struct bus *b;
	uint64_t count = 0, shown = 0, end = UINT64_MAX;
	int c, r = 0, follow = 0, stop_at_end = 0, have_from = 0, have_count = 0;

	optind = 0;
	while ((c = getopt_long(argc, argv, "n:fe", opts, NULL)) != -1) {
		switch (c) {
		case 'F':
			if (parse_from("--from", optarg, &o) < 0)
				return EXIT_USAGE;
			have_from = 1;
			break;
		case 'n':
			if (parse_u64("--count", optarg, &count) < 0)
				return EXIT_USAGE;
			have_count = 1;
			break;
		case 'f':
			follow = 1;
			break;
		case 'e':
			stop_at_end = 1;
			break;
		case 'g':
			o.group = optarg;
			break;
		case 'o':
			if (parse_format("--format", optarg, &fmt, 0) < 0)
				return EXIT_USAGE;
			break;
		default:
			return usage_error("bad option");
		}
	}
	if (optind + 1 != argc)
		return optind >= argc ? usage_error("which topic?") :
					usage_error("unexpected argument '%s'", argv[optind + 1]);
	if (follow && stop_at_end)
		return usage_error("-f follows for ever, -e stops at the end: pick one");
	topic = argv[optind];
	if (check_topic(topic) < 0)
		return EXIT_USAGE;
	if (o.group && proto_name_check(o.group, (uint32_t)strnlen(o.group, 200), "cursor") < 0)
		return usage_error("--group: %s", bus_errmsg());
	if (cli.json)
		fmt = FMT_JSON;
	if (!(b = cli_connect()))
		return 1;
	r = bus_stat(b, topic, &ti, NULL, 0);
	if (r < 0) {
		r = fail_bus(topic, r);
		goto out;
	}
	r = 0;
	if (!have_from && !o.group) {
		/* Like tail(1): the last N events (10 by default). */
		uint64_t n = have_count ? count : 10, oldest = ti.oldest_seq;

		if (ti.flags & BUS_TOPIC_DURABLE) {
			oldest = ti.first_seq;  /* the log reaches further back */
			struct bus_log *l;
			struct bus_log_info li;

			if (bus_log_attach(b, topic, &l) == 0) {
				if (bus_log_info(l, &li) == 0 && li.segments)
					oldest = li.first_seq;
				bus_log_close(l);
			}
		}
		o.from = BUS_FROM_SEQ;
		o.seq = ti.next_seq > n && ti.next_seq - n > oldest ? ti.next_seq - n : oldest;
		have_count = 0;  /* -n said where to start; then everything to the end */
	}
	if (!follow)
		end = ti.next_seq;  /* -e, and the default without -f */
	r = bus_sub_attach(b, topic, &o, &s);
	if (r == -ERANGE && !have_from && !o.group) {
		/* The producer moved the ring on since we looked. */
		o.from = BUS_FROM_OLDEST;
		r = bus_sub_attach(b, topic, &o, &s);
	}
	if (r < 0) {
		r = fail_bus(topic, r);
		goto out;
	}
	r = 0;
	catch_interrupts();
	if (!have_count)
		count = UINT64_MAX;
	while (!interrupted && shown < count) {
		int n = bus_sub_next(s, &ev);

		if (n == 1) {
			if (ev.seq >= end)
				break;
			print_event(stdout, fmt, &ev);
			if (bus_sub_confirm(s, &ev) < 0) {
				/* Overwritten while printing: say so, go on. */
				note("bus: tail %s: event %llu was overwritten while it was read\n",
				     topic, (unsigned long long)ev.seq);
			}
			shown++;
			if (o.group)
				bus_sub_commit(s);
			continue;
		}
		if (n == -ENOBUFS) {
			note("bus: tail %s: %llu events lost (the producer overwrote them before "
			     "they were read)\n", topic, (unsigned long long)ev.lost);
			continue;
		}
		if (n == -EPIPE) {
			note("bus: tail %s: the topic was deleted\n", topic);
			break;
		}
		if (n < 0) {
			r = fail_bus(topic, n);
			break;
		}
		/* Nothing now. */
		if (!follow && bus_sub_next_seq(s) >= end)
			break;
		fflush(stdout);
		n = bus_sub_wait(s, 200000000ll);  /* wake up to notice Ctrl-C */
		if (n < 0 && n != -ETIMEDOUT && n != -EINTR && n != -EPIPE) {
			r = fail_bus(topic, n);
			break;
		}
	}
	fflush(stdout);
	if (ferror(stdout))
		r = fail("writing standard output: %s", strerror(errno));
out:
	bus_sub_close(s);
	bus_disconnect(b);
	return r;
}

const struct command def_pub = {
	"pub", cmd_pub, "publish events",
	  "Usage: bus pub TOPIC [MESSAGE...] [--type N] [--delim CHAR | --raw] [-v]\n"
	  "Publish each MESSAGE as an event, or else standard input: one event per\n"
	  "line (--delim sets another separator: a character, or \\0, \\t, \\n), or all\n"
	  "of it as one event (--raw). --type sets the events' type word (default 0).\n"
	  "A topic that does not exist is created with the defaults of `bus create`.\n"
	  "Prints nothing on success; -v prints each event's sequence number.\n"
};

const struct command def_tail = {
	"tail", cmd_tail, "print events",
	  "Usage: bus tail TOPIC [--from WHERE] [-n N] [-f] [-e] [--group NAME]\n"
	  "                      [--format text|json|hex|raw]\n"
	  "Print events. Without options: the last 10, then exit.\n"
	  "  --from WHERE  earliest, latest, end, seq:N, time:ISO-8601 (e.g.\n"
	  "                time:2026-11-26T10:00:00Z) or -DURATION (e.g. -5m)\n"
	  "  -n, --count N stop after N events (with no --from: the last N)\n"
	  "  -f, --follow  keep waiting for new events (Ctrl-C stops)\n"
	  "  -e            stop at the end as it is now (the default without -f)\n"
	  "  --group NAME  a named durable cursor: resume where it left off, and\n"
	  "                commit every printed event\n"
	  "  --format F    text (one event per line, the default), json (one object\n"
	  "                per line: seq, ts, type, and data as a string when it is\n"
	  "                UTF-8 text, else data_b64), hex, or raw bytes\n"
};
