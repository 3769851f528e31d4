/* SPDX-License-Identifier: MIT */
/* cmd_topic.c — bus ls, info, create, delete. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define CLI_RING_DEFAULT (16ull << 20)

/* Bytes of a durable topic's log, 0 if none or unreadable. */
static uint64_t log_bytes(struct bus *b, const char *topic, struct bus_log_info *li)
{
	struct bus_log *l;
	struct bus_log_info z;

	if (!li)
		li = &z;
	memset(li, 0, sizeof(*li));
	if (bus_log_attach(b, topic, &l) < 0)
		return 0;
	bus_log_info(l, li);
	bus_log_close(l);
	return li->bytes;
}

static void nap_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int cmd_ls(int argc, char **argv)
{
	struct bus_topic_entry *e0 = NULL, *e1 = NULL;
	struct bus *b;
	uint64_t t0, t1;
	int n0, n, cap = 256, r = 0;

	if (argc > 1)
		return usage_error("unexpected argument '%s'", argv[1]);
	if (!(b = cli_connect()))
		return 1;
	/* Two snapshots a quarter of a second apart give the rates. */
	for (;;) {
		free(e0);
		free(e1);
		e0 = calloc((size_t)cap, sizeof(*e0));
		e1 = calloc((size_t)cap, sizeof(*e1));
		if (!e0 || !e1) {
			r = fail("out of memory");
			goto out;
		}
		t0 = mono_ns_();
		n0 = bus_list(b, e0, (unsigned)cap);
		if (n0 < 0) {
			r = fail_bus(NULL, n0);
			goto out;
		}
		nap_ms(250);
		t1 = mono_ns_();
		n = bus_list(b, e1, (unsigned)cap);
		if (n < 0) {
			r = fail_bus(NULL, n);
			goto out;
		}
		if (n <= cap && n0 <= cap)
			break;
		cap = (n > n0 ? n : n0) + 64;
	}
	if (cli.json)
		printf("[");
	else if (cli.tty)
		printf("%-24s %-3s %6s %12s %9s %8s %5s %8s %9s %7s\n", "TOPIC", "DUR", "RING",
		       "NEXT_SEQ", "RATE/s", "PRODUCER", "CONS", "MAX_LAG", "FLUSH_LAG", "DISK");
	for (int i = 0; i < n; i++) {
		const struct bus_topic_info *t = &e1[i].info;
		double rate = 0;
		uint64_t disk = 0, flush_lag = 0;
		int durable = !!(t->flags & BUS_TOPIC_DURABLE);
		char ring[16], dsk[16];

		for (int j = 0; j < n0; j++) {
			if (!strcmp(e0[j].name, e1[i].name)) {
				rate = (double)(t->next_seq - e0[j].info.next_seq) * 1e9 /
				       (double)(t1 - t0);
				break;
			}
		}
		if (durable) {
			disk = log_bytes(b, e1[i].name, NULL);
			flush_lag = t->next_seq > t->flushed_seq ? t->next_seq - t->flushed_seq : 0;
		}
		if (cli.json) {
			printf("%s\n {\"topic\":", i ? "," : "");
			json_str(stdout, e1[i].name, strlen(e1[i].name));
			printf(",\"durable\":%s,\"ring_size\":%llu,\"next_seq\":%llu,"
			       "\"rate\":%.1f,\"producer_pid\":%u,\"consumers\":%u,\"max_lag\":%llu,"
			       "\"flush_lag\":%llu,\"disk_bytes\":%llu,\"degraded\":%s}",
			       durable ? "true" : "false", (unsigned long long)t->ring_size,
			       (unsigned long long)t->next_seq, rate, t->producer_pid, t->consumers,
			       (unsigned long long)t->max_lag, (unsigned long long)flush_lag,
			       (unsigned long long)disk, t->degraded ? "true" : "false");
		} else if (cli.tty) {
			char pid[16] = "-", lag[24] = "-";

			fmt_size(ring, sizeof(ring), t->ring_size);
			if (durable) {
				fmt_size(dsk, sizeof(dsk), disk);
				snprintf(lag, sizeof(lag), "%llu", (unsigned long long)flush_lag);
			} else {
				strcpy(dsk, "-");
			}
			if (t->producer_pid)
				snprintf(pid, sizeof(pid), "%u", t->producer_pid);
			printf("%-24s %-3s %6s %12llu %9.0f %8s %5u %8llu %9s %7s%s\n", e1[i].name,
			       durable ? "yes" : "no", ring, (unsigned long long)t->next_seq, rate, pid,
			       t->consumers, (unsigned long long)t->max_lag, lag, dsk,
			       t->degraded ? "  DEGRADED" : "");
		} else {
			printf("%s\t%s\t%llu\t%llu\t%.1f\t%u\t%u\t%llu\t%llu\t%llu\n", e1[i].name,
			       durable ? "durable" : "volatile", (unsigned long long)t->ring_size,
			       (unsigned long long)t->next_seq, rate, t->producer_pid, t->consumers,
			       (unsigned long long)t->max_lag, (unsigned long long)flush_lag,
			       (unsigned long long)disk);
		}
	}
	if (cli.json)
		printf("%s]\n", n ? "\n" : "");
	else if (cli.tty && !n && !cli.quiet)
		fprintf(stderr, "(no topics on %s; create one with `bus create NAME`)\n",
			bus_address(b));
out:
	free(e0);
	free(e1);
	bus_disconnect(b);
	return r;
}

static int cmd_info(int argc, char **argv)
{
	struct bus_consumer_info *ci;
	struct bus_topic_info t;
	struct bus_log_info li;
	const char *name;
	struct bus *b;
	char ts0[48], ts1[48];
	int n, r = 0, durable;

	if (argc != 2)
		return argc < 2 ? usage_error("which topic?") :
				  usage_error("unexpected argument '%s'", argv[2]);
	name = argv[1];
	if (check_topic(name) < 0)
		return EXIT_USAGE;
	if (!(b = cli_connect()))
		return 1;
	ci = calloc(4096, sizeof(*ci));
	if (!ci) {
		bus_disconnect(b);
		return fail("out of memory");
	}
	n = bus_stat(b, name, &t, ci, 4096);
	if (n < 0) {
		r = fail_bus(name, n);
		goto out;
	}
	if (n > 4096)
		n = 4096;
	durable = !!(t.flags & BUS_TOPIC_DURABLE);
	memset(&li, 0, sizeof(li));
	if (durable)
		log_bytes(b, name, &li);
	if (cli.json) {
		printf("{\"topic\":");
		json_str(stdout, name, strlen(name));
		printf(",\"durable\":%s,\"gating\":%s,\"ring_size\":%llu,\"max_event\":%u,"
		       "\"max_consumers\":%u,\"mode\":\"%04o\",\"uid\":%u,\"gid\":%u,"
		       "\"first_seq\":%llu,\"oldest_seq\":%llu,\"next_seq\":%llu,\"bytes\":%llu,"
		       "\"producer_pid\":%u,\"producer_waits\":%llu,\"wakeups\":%llu,"
		       "\"max_lag\":%llu,\"deleted\":%s",
		       durable ? "true" : "false", t.flags & BUS_TOPIC_GATING ? "true" : "false",
		       (unsigned long long)t.ring_size, t.max_event, t.max_consumers, t.mode, t.uid,
		       t.gid, (unsigned long long)t.first_seq, (unsigned long long)t.oldest_seq,
		       (unsigned long long)t.next_seq, (unsigned long long)t.bytes, t.producer_pid,
		       (unsigned long long)t.producer_waits, (unsigned long long)t.wakeups,
		       (unsigned long long)t.max_lag, t.deleted ? "true" : "false");
		if (durable)
			printf(",\"log\":{\"flushed_seq\":%llu,\"durable_seq\":%llu,\"degraded\":%s,"
			       "\"write_errors\":%llu,\"segments\":%u,\"bytes\":%llu,"
			       "\"first_seq\":%llu,\"next_seq\":%llu,\"first_ts_ns\":%llu,"
			       "\"last_ts_ns\":%llu}",
			       (unsigned long long)t.flushed_seq, (unsigned long long)t.durable_seq,
			       t.degraded ? "true" : "false", (unsigned long long)t.flush_errors,
			       li.segments, (unsigned long long)li.bytes,
			       (unsigned long long)li.first_seq, (unsigned long long)li.next_seq,
			       (unsigned long long)li.first_ts, (unsigned long long)li.last_ts);
		printf(",\"consumers\":[");
		for (int i = 0; i < n; i++) {
			printf("%s{\"slot\":%u,\"pid\":%u,\"group\":", i ? "," : "", ci[i].slot,
			       ci[i].pid);
			if (ci[i].group[0])
				json_str(stdout, ci[i].group, strlen(ci[i].group));
			else
				printf("null");
			printf(",\"next_seq\":%llu,\"lag\":%llu,\"events\":%llu,\"lapped\":%llu,"
			       "\"lost\":%llu,\"commit\":%llu,\"gating\":%s,\"sleeping\":%s}",
			       (unsigned long long)ci[i].next_seq, (unsigned long long)ci[i].lag,
			       (unsigned long long)ci[i].events, (unsigned long long)ci[i].lapped,
			       (unsigned long long)ci[i].lost, (unsigned long long)ci[i].commit,
			       ci[i].gating ? "true" : "false", ci[i].sleeping ? "true" : "false");
		}
		printf("]}\n");
		goto out;
	}
	printf("topic        %s%s\n", name, t.deleted ? " (deleted)" : "");
	printf("kind         %s%s\n", durable ? "durable" : "volatile",
	       t.flags & BUS_TOPIC_GATING ? ", gating" : "");
	printf("ring         %llu bytes, events up to %u bytes, %u consumer slots\n",
	       (unsigned long long)t.ring_size, t.max_event, t.max_consumers);
	printf("owner        uid %u, gid %u, mode %04o\n", t.uid, t.gid, t.mode);
	printf("events       %llu..%llu in the ring, next %llu (%llu published, %llu bytes)\n",
	       (unsigned long long)t.oldest_seq,
	       (unsigned long long)(t.next_seq ? t.next_seq - 1 : 0),
	       (unsigned long long)t.next_seq, (unsigned long long)t.events,
	       (unsigned long long)t.bytes);
	if (t.producer_pid)
		printf("producer     pid %u (waited %llu times, %llu wakeups)\n", t.producer_pid,
		       (unsigned long long)t.producer_waits, (unsigned long long)t.wakeups);
	else
		printf("producer     none\n");
	if (durable) {
		fmt_time(ts0, sizeof(ts0), li.first_ts);
		fmt_time(ts1, sizeof(ts1), li.last_ts);
		printf("log          %u segments, %llu bytes, events %llu..%llu\n", li.segments,
		       (unsigned long long)li.bytes, (unsigned long long)li.first_seq,
		       (unsigned long long)(li.next_seq ? li.next_seq - 1 : 0));
		if (li.next_seq > li.first_seq)
			printf("             from %s to %s\n", ts0, ts1);
		printf("flushed      up to %llu, durable up to %llu%s%s\n",
		       (unsigned long long)(t.flushed_seq ? t.flushed_seq - 1 : 0),
		       (unsigned long long)(t.durable_seq ? t.durable_seq - 1 : 0),
		       t.degraded ? "; DEGRADED: log writes are failing (see busd's log)" : "",
		       "");
		if (t.flush_errors)
			printf("             %llu failed log writes so far\n",
			       (unsigned long long)t.flush_errors);
	}
	printf("consumers    %d\n", n);
	if (n)
		printf("  %-5s %-8s %-16s %12s %10s %10s %8s %10s\n", "SLOT", "PID", "CURSOR",
		       "NEXT_SEQ", "LAG", "READ", "LAPPED", "LOST");
	for (int i = 0; i < n; i++)
		printf("  %-5u %-8u %-16s %12llu %10llu %10llu %8llu %10llu%s%s\n", ci[i].slot,
		       ci[i].pid, ci[i].group[0] ? ci[i].group : "-",
		       (unsigned long long)ci[i].next_seq, (unsigned long long)ci[i].lag,
		       (unsigned long long)ci[i].events, (unsigned long long)ci[i].lapped,
		       (unsigned long long)ci[i].lost, ci[i].gating ? " gating" : "",
		       ci[i].sleeping ? " asleep" : "");
out:
	free(ci);
	bus_disconnect(b);
	return r;
}

static int cmd_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ring", required_argument, NULL, 'r' },
		{ "max-event", required_argument, NULL, 'e' },
		{ "consumers", required_argument, NULL, 'c' },
		{ "durable", no_argument, NULL, 'd' },
		{ "fsync", required_argument, NULL, 'f' },
		{ "retain-size", required_argument, NULL, 's' },
		{ "retain-age", required_argument, NULL, 'a' },
		{ "segment-size", required_argument, NULL, 'g' },
		{ "mode", required_argument, NULL, 'm' },
		{ "gating", no_argument, NULL, 'G' },
		{ 0 },
	};
	struct bus_topic_opts o = { .ring_size = CLI_RING_DEFAULT };
	uint64_t v;
	struct bus *b;
	int c, r, durable_opt = 0;

	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			if (parse_size("--ring", optarg, &o.ring_size) < 0)
				return EXIT_USAGE;
			break;
		case 'e':
			if (parse_size("--max-event", optarg, &v) < 0)
				return EXIT_USAGE;
			if (v > UINT32_MAX)
				return usage_error("--max-event %s: at most 4G", optarg);
			o.max_event = (uint32_t)v;
			break;
		case 'c':
			if (parse_u64("--consumers", optarg, &v) < 0)
				return EXIT_USAGE;
			if (!v || v > BUS_CONSUMERS_MAX)
				return usage_error("--consumers %s: from 1 to %u", optarg,
						   BUS_CONSUMERS_MAX);
			o.max_consumers = (uint32_t)v;
			break;
		case 'd':
			o.flags |= BUS_TOPIC_DURABLE;
			break;
		case 'f':
			durable_opt = 1;
			if (!strcmp(optarg, "none"))
				o.fsync = BUS_FSYNC_NONE;
			else if (!strcmp(optarg, "interval"))
				o.fsync = BUS_FSYNC_INTERVAL;
			else if (!strcmp(optarg, "always"))
				o.fsync = BUS_FSYNC_ALWAYS;
			else
				return usage_error("--fsync '%s': expected none, interval or always",
						   optarg);
			break;
		case 's':
			durable_opt = 1;
			if (parse_size("--retain-size", optarg, &o.retain_bytes) < 0)
				return EXIT_USAGE;
			break;
		case 'a':
			durable_opt = 1;
			if (parse_duration("--retain-age", optarg, &o.retain_age_ns) < 0)
				return EXIT_USAGE;
			break;
		case 'g':
			durable_opt = 1;
			if (parse_size("--segment-size", optarg, &o.segment_bytes) < 0)
				return EXIT_USAGE;
			break;
		case 'm':
			if (parse_mode("--mode", optarg, &o.mode) < 0)
				return EXIT_USAGE;
			break;
		case 'G':
			o.flags |= BUS_TOPIC_GATING;
			break;
		default:
			return usage_error("bad option");
		}
	}
	if (optind + 1 != argc)
		return optind >= argc ? usage_error("which topic?") :
					usage_error("unexpected argument '%s'", argv[optind + 1]);
	if (o.ring_size < BUS_RING_MIN || o.ring_size > BUS_RING_MAX ||
	    (o.ring_size & (o.ring_size - 1)))
		return usage_error("--ring: %llu bytes is not a power of two from 4K to 4G",
				   (unsigned long long)o.ring_size);
	if (o.max_event > o.ring_size / 2)
		return usage_error("--max-event: at most half the ring (%llu bytes)",
				   (unsigned long long)(o.ring_size / 2));
	if (check_topic(argv[optind]) < 0)
		return EXIT_USAGE;
	if (durable_opt && !(o.flags & BUS_TOPIC_DURABLE))
		return usage_error("--fsync, --retain-size, --retain-age and --segment-size "
				   "need --durable");
	if (!(b = cli_connect()))
		return 1;
	r = bus_create(b, argv[optind], &o);
	if (r < 0)
		r = fail_bus(argv[optind], r);
	else if (cli.verbose)
		note("created %s\n", argv[optind]);
	bus_disconnect(b);
	return r;
}

static int cmd_delete(int argc, char **argv)
{
	struct bus *b;
	int r;

	if (argc != 2)
		return argc < 2 ? usage_error("which topic?") :
				  usage_error("unexpected argument '%s'", argv[2]);
	if (check_topic(argv[1]) < 0)
		return EXIT_USAGE;
	if (!(b = cli_connect()))
		return 1;
	r = bus_delete(b, argv[1]);
	if (r < 0)
		r = fail_bus(argv[1], r);
	bus_disconnect(b);
	return r;
}

int cli_create_default(struct bus *b, const char *topic)
{
	struct bus_topic_opts o = { .ring_size = CLI_RING_DEFAULT };

	return bus_create(b, topic, &o);
}

const struct command def_ls = {
	"ls", cmd_ls, "list the topics on the bus",
	  "Usage: bus ls [--json]\n"
	  "List the topics on the bus: name, durable or not, ring size, next sequence\n"
	  "number, rate (events/s over a short sample), producer pid, consumers, the\n"
	  "largest consumer lag, the flush lag (events not yet in the log) and the log's\n"
	  "size on disk. A table on a terminal; tab-separated columns otherwise.\n"
};

const struct command def_info = {
	"info", cmd_info, "everything about one topic",
	  "Usage: bus info TOPIC [--json]\n"
	  "Show one topic: geometry, owner and mode, sequence numbers, producer,\n"
	  "every consumer (cursor name, pid, position, lag, lapped, lost) and, for a\n"
	  "durable topic, its log (segments, first and last event and time).\n"
};

const struct command def_create = {
	"create", cmd_create, "create a topic",
	  "Usage: bus create TOPIC [--ring SIZE] [--max-event SIZE] [--consumers N]\n"
	  "                        [--durable] [--fsync none|interval|always]\n"
	  "                        [--retain-size SIZE] [--retain-age DURATION]\n"
	  "                        [--segment-size SIZE] [--mode OCTAL] [--gating]\n"
	  "Create a topic. The ring defaults to 16M (a power of two, 4K to 4G); the\n"
	  "largest event to a quarter of it. --durable keeps a log on disk (busd's\n"
	  "state directory) that consumers fall back to and `bus replay` reads;\n"
	  "--fsync says when it is synced (interval: every second, the default).\n"
	  "Sizes: 4096, 64K, 16M, 1G. Durations: 500ms, 30s, 5m, 2h, 7d.\n"
};

const struct command def_delete = {
	"delete", cmd_delete, "delete a topic (and its log)",
	  "Usage: bus delete TOPIC\n"
	  "Delete a topic. Its producer gets an error on the next publish; its\n"
	  "consumers read what is left, then see the end. A durable topic's log goes\n"
	  "with it.\n"
};
