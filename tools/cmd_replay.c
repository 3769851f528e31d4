/* SPDX-License-Identifier: MIT */
/*
 * cmd_replay.c — bus replay, bus export: a range of a durable topic's log,
 * read through busd (bus_log_attach) or straight from a log directory with
 * no busd (--log-dir).
 *
 * Ranges are half-open, [--from, --to): --from names the first event read,
 * --to the first one that is not. Both take the positions `bus tail --from`
 * takes, read as positions between events: earliest is before the oldest
 * event, latest before the newest, end after it. So `--to latest` stops
 * before the newest event and the default, `--to end`, includes it; two
 * ranges that share a bound never share an event.
 *
 * Reading a log takes no consumer slot and no lease: the topic does not
 * notice. Through busd the log is being written as we read, so we stop at
 * its end as it was when we started (the flusher's half-written chunk is
 * "not yet", not corruption); an offline directory is read to its last
 * sound byte, and a damaged chunk anywhere is an error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

struct job {
	const char *topic;        /* TOPIC, or NULL with --log-dir */
	const char *log_dir;      /* --log-dir */
	const char *label;        /* names the source in messages */
	struct bus_sub_opts from; /* --from (default earliest) */
	struct bus_sub_opts to;   /* --to (default end) */
	uint64_t count;           /* -n: at most this many events */
	double speed;             /* --speed; 0 = as fast as possible */
	const char *into;         /* --into TOPIC */
	enum fmt fmt;
	const char *verb;         /* "replayed", "exported" */
};

/* "bus: CMD LABEL: cause", returns 1. */
static int fail_on(const char *label, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int fail_on(const char *label, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bus: %s %s: ", cli.cmd, label);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

/* --speed: a positive factor (1, 2, 0.5, 10x) or max (0). */
static int parse_speed(const char *s, double *speed)
{
	char *end;
	double v;

	if (!strcmp(s, "max")) {
		*speed = 0;
		return 0;
	}
	errno = 0;
	v = (*s >= '0' && *s <= '9') || *s == '.' ? strtod(s, &end) : -1;
	if (v >= 0.001 && !errno && isfinite(v) && v <= 1e6 && end != s &&
	    (!*end || (end[0] == 'x' && !end[1]))) {
		*speed = v;
		return 0;
	}
	usage_error("--speed '%s': expected a factor from 0.001 to 1000000 such as 1, 2, "
		    "0.5 or 10x, or max (as fast as possible)", s);
	return -EINVAL;
}

static void nap_until(uint64_t mono)
{
	uint64_t now = mono_ns_();
	struct timespec ts;

	if (now >= mono)
		return;
	ts.tv_sec = (time_t)((mono - now) / 1000000000ull);
	ts.tv_nsec = (long)((mono - now) % 1000000000ull);
	nanosleep(&ts, NULL);  /* Ctrl-C cuts it short: no SA_RESTART */
}

/* ---- progress on stderr ------------------------------------------------------ */

struct progress {
	int on;
	uint64_t first, end;    /* sequence range, when its end is known */
	uint64_t drawn;         /* mono ns of the last draw */
};

static void progress_draw(struct progress *p, uint64_t done, const struct bus_event *ev,
			  int force)
{
	uint64_t now = mono_ns_();
	char ts[48];

	if (!p->on || (!force && now - p->drawn < 100000000ull))
		return;
	p->drawn = now;
	fmt_time(ts, sizeof(ts), ev->ts_ns);
	if (p->end != UINT64_MAX && p->end > p->first) {
		double f = (double)(ev->seq + 1 - p->first) / (double)(p->end - p->first);
		int w = 24, fill;

		if (f > 1)
			f = 1;
		fill = (int)(f * w);
		fprintf(stderr, "\r%s [%.*s%*s] %3.0f%%  %llu/%llu events  at %.19sZ\033[K",
			cli.cmd, fill, "########################", w - fill, "", f * 100,
			(unsigned long long)done, (unsigned long long)(p->end - p->first), ts);
	} else {
		fprintf(stderr, "\r%s %llu events  seq %llu  at %.19sZ\033[K", cli.cmd,
			(unsigned long long)done, (unsigned long long)ev->seq, ts);
	}
}

static void progress_clear(struct progress *p)
{
	if (p->on)
		fputs("\r\033[K", stderr);
}

/* ---- the reader ---------------------------------------------------------------- */

/* Open the source: the topic's log through busd, or a directory. */
static int open_log(struct job *j, struct bus *b, struct bus_log **l)
{
	struct bus_topic_info ti;
	int r;

	if (j->log_dir) {
		r = bus_log_open(j->log_dir, l);
		return r < 0 ? fail_bus(j->label, r) : 0;
	}
	r = bus_stat(b, j->topic, &ti, NULL, 0);
	if (r < 0)
		return fail_bus(j->topic, r);
	if (!(ti.flags & BUS_TOPIC_DURABLE))
		return fail_on(j->topic, "a volatile topic has no log (only a topic created with "
			       "`bus create %s --durable` keeps one; `bus tail` reads what is "
			       "in its ring)", j->topic);
	r = bus_log_attach(b, j->topic, l);
	if (r < 0)
		return fail_bus(j->topic, r);
	/* busd's flusher appends as we read: its chunk in progress is not
	 * corruption. */
	bus_log_follow(*l, 1);
	return 0;
}

/* An empty offline directory: a durable topic's log that has no segment
 * yet has its topic.conf; anything else is the wrong directory. */
static int is_log_dir(const char *dir)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/topic.conf", dir);
	return access(path, F_OK) == 0;
}

/* Position at the first event whose timestamp is >= ts. */
static int seek_time(struct bus_log *l, const struct bus_log_info *li, uint64_t ts)
{
	(void)li;
	return bus_log_seek_time(l, ts);
}

/*
 * Position the reader at --from and work out where --to stops: *end_seq
 * (exclusive) or *end_ts (the first timestamp not read). li describes the
 * log as it is now. Returns 0, or 1 after printing the error.
 */
static int position(struct job *j, struct bus_log *l, const struct bus_log_info *li,
		    uint64_t *end_seq, uint64_t *end_ts)
{
	uint64_t last = li->next_seq - 1;
	int r = 0;

	*end_seq = UINT64_MAX;
	*end_ts = UINT64_MAX;
	switch (j->to.from) {
	case BUS_FROM_OLDEST: *end_seq = li->first_seq; break;
	case BUS_FROM_NEWEST: *end_seq = last; break;
	case BUS_FROM_SEQ: *end_seq = j->to.seq; break;
	case BUS_FROM_TIME: *end_ts = j->to.ts_ns; break;
	case BUS_FROM_END:
		/* Through busd: the end as it is now, not what is flushed
		 * while we read. Offline: the last sound chunk. */
		if (!j->log_dir)
			*end_seq = li->next_seq;
		break;
	}
	switch (j->from.from) {
	case BUS_FROM_OLDEST: break;  /* where a new reader starts */
	case BUS_FROM_NEWEST: r = bus_log_seek(l, last); break;
	case BUS_FROM_END: r = bus_log_seek(l, li->next_seq); break;
	case BUS_FROM_SEQ:
		if (j->from.seq < li->first_seq)
			return fail_on(j->label, "--from seq:%llu: the log starts at seq:%llu",
				       (unsigned long long)j->from.seq,
				       (unsigned long long)li->first_seq);
		r = bus_log_seek(l, j->from.seq);
		break;
	case BUS_FROM_TIME: r = seek_time(l, li, j->from.ts_ns); break;
	}
	return r < 0 ? fail_bus(j->label, r) : 0;
}

static int emit(struct job *j, struct bus_pub *p, const struct bus_event *ev)
{
	int r;

	if (!p) {
		print_event(stdout, j->fmt, ev);
		return 0;
	}
	r = bus_pub_publish(p, ev->type, ev->data, ev->len, 0);
	if (r == -EMSGSIZE)
		return fail_on(j->into, "event %llu has %u bytes, more than this topic's largest "
			       "event (create it with a larger --max-event or --ring)",
			       (unsigned long long)ev->seq, ev->len);
	return r < 0 ? fail_bus(j->into, r) : 0;
}

static int attach_into(struct job *j, struct bus *b, struct bus_pub **p)
{
	int r = bus_pub_attach(b, j->into, p);

	if (r == -ENOENT) {
		/* Like `bus pub`: a missing topic is created with the defaults. */
		r = cli_create_default(b, j->into);
		if (r < 0 && r != -EEXIST)
			return fail_bus(j->into, r);
		if (r == 0)
			note("bus: %s: created topic %s (volatile, `bus create` defaults)\n",
			     cli.cmd, j->into);
		r = bus_pub_attach(b, j->into, p);
	}
	return r < 0 ? fail_bus(j->into, r) : 0;
}

static int run(struct job *j)
{
	struct progress pg = { 0 };
	struct bus_log_info li;
	struct bus_event ev;
	struct bus_log *l = NULL;
	struct bus_pub *p = NULL;
	struct bus *b = NULL;
	uint64_t end_seq, end_ts, done = 0, first = 0, last = 0, t0 = 0, ts0 = 0;
	int r, n, err = 0;

	if ((j->topic || j->into) && !(b = cli_connect()))
		return 1;
	if ((r = open_log(j, b, &l)))
		goto out;
	if ((r = bus_log_info(l, &li)) < 0) {
		r = fail_bus(j->label, r);
		goto out;
	}
	if (!li.segments || li.next_seq <= li.first_seq) {
		if (j->log_dir && !li.segments && !is_log_dir(j->log_dir)) {
			r = fail_on(j->label, "not a topic's log directory (no segments, no "
				    "topic.conf); busd keeps a topic's log in STATE/log/TOPIC");
			goto out;
		}
		if (j->fmt == FMT_CSV)
			printf("seq,ts,type,len,data,data_b64\n");
		if (!cli.quiet && (isatty(2) || cli.verbose))
			fprintf(stderr, "bus: %s %s: the log is empty\n", cli.cmd, j->label);
		r = 0;
		goto out;
	}
	if ((r = position(j, l, &li, &end_seq, &end_ts)))
		goto out;
	if (j->into && (r = attach_into(j, b, &p)))
		goto out;
	/* A bar on the terminal, unless the events go to that same terminal. */
	pg.on = isatty(2) && (p || !isatty(1)) && !cli.quiet;
	pg.end = end_seq != UINT64_MAX ? end_seq : end_ts == UINT64_MAX ? li.next_seq :
								    UINT64_MAX;
	if (j->fmt == FMT_CSV)
		printf("seq,ts,type,len,data,data_b64\n");
	catch_interrupts();
	while (!interrupted && done < j->count) {
		n = bus_log_next(l, &ev);
		if (n == 0)
			break;
		if (n == -ENOBUFS) {
			/* Events the log does not have (a crash lost them before
			 * a sync, or retention removed them as we read): say so
			 * and go on, as tail does for a lapped consumer. */
			note("bus: %s %s: %llu events missing from the log (%llu..%llu)\n", cli.cmd,
			     j->label, (unsigned long long)ev.lost, (unsigned long long)ev.seq,
			     (unsigned long long)(ev.seq + ev.lost - 1));
			continue;
		}
		if (n < 0) {
			err = n;
			break;
		}
		if (ev.seq >= end_seq || ev.ts_ns >= end_ts)
			break;
		if (!done) {
			first = pg.first = ev.seq;
			if (j->count != UINT64_MAX && pg.end - first > j->count)
				pg.end = first + j->count;
			t0 = mono_ns_();
			ts0 = ev.ts_ns;
		} else if (j->speed > 0 && ev.ts_ns > ts0) {
			/* At the original pace, from the first event: no drift. */
			double wait = (double)(ev.ts_ns - ts0) / j->speed;
			uint64_t at = t0 + (uint64_t)(wait < 1e18 ? wait : 1e18);

			if (!p)
				fflush(stdout);
			while (!interrupted && mono_ns_() < at) {
				uint64_t slice = mono_ns_() + 100000000ull;

				nap_until(at < slice ? at : slice);
				progress_draw(&pg, done, &ev, 0);
			}
			if (interrupted)
				break;
		}
		if ((r = emit(j, p, &ev)))
			break;
		done++;
		last = ev.seq;
		progress_draw(&pg, done, &ev, 0);
	}
	fflush(stdout);
	progress_clear(&pg);
	if (!r && ferror(stdout))
		r = fail("writing standard output: %s", strerror(errno));
	if (err)
		r = fail_bus(j->label, err);  /* names the file and offset */
	if (!cli.quiet && (interrupted || isatty(2) || cli.verbose)) {
		double s = done ? (double)(mono_ns_() - t0) / 1e9 : 0;

		if (done)
			fprintf(stderr, "bus: %s %s: %llu events %s (seq %llu..%llu) in %.2fs%s%s\n",
				cli.cmd, j->label, (unsigned long long)done, j->verb,
				(unsigned long long)first, (unsigned long long)last, s,
				interrupted ? "; interrupted" : "",
				err || r ? " before the error" : "");
		else
			fprintf(stderr, "bus: %s %s: no events %s%s\n", cli.cmd, j->label, j->verb,
				interrupted ? "; interrupted" : "");
	}
out:
	bus_pub_close(p);  /* publishes anything pending */
	bus_log_close(l);
	bus_disconnect(b);
	return r;
}

/* Options both commands share; the rest is theirs. */
enum { O_FROM = 256, O_TO, O_LOGDIR, O_SPEED, O_INTO, O_FORMAT };

static int parse_args(int argc, char **argv, struct job *j, int replay)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, O_FROM },
		{ "to", required_argument, NULL, O_TO },
		{ "log-dir", required_argument, NULL, O_LOGDIR },
		{ "speed", required_argument, NULL, O_SPEED },
		{ "into", required_argument, NULL, O_INTO },
		{ "format", required_argument, NULL, O_FORMAT },
		{ "count", required_argument, NULL, 'n' },
		{ 0 },
	};
	int c, have_format = 0;

	j->from.from = BUS_FROM_OLDEST;
	j->to.from = BUS_FROM_END;
	j->count = UINT64_MAX;
	optind = 0;
	while ((c = getopt_long(argc, argv, "n:", opts, NULL)) != -1) {
		switch (c) {
		case O_FROM:
			if (parse_from("--from", optarg, &j->from) < 0)
				return EXIT_USAGE;
			break;
		case O_TO:
			if (parse_from("--to", optarg, &j->to) < 0)
				return EXIT_USAGE;
			break;
		case O_LOGDIR:
			j->log_dir = optarg;
			break;
		case O_SPEED:
			if (!replay)
				return usage_error("--speed is for `bus replay`; export reads at "
						   "full speed");
			if (parse_speed(optarg, &j->speed) < 0)
				return EXIT_USAGE;
			break;
		case O_INTO:
			if (!replay)
				return usage_error("--into is for `bus replay`");
			j->into = optarg;
			if (check_topic(j->into) < 0)
				return EXIT_USAGE;
			break;
		case O_FORMAT:
			if (replay && parse_format("--format", optarg, &j->fmt, 0) < 0)
				return EXIT_USAGE;
			if (!replay && (!strcmp(optarg, "jsonl") || !strcmp(optarg, "json")))
				j->fmt = FMT_JSON;
			else if (!replay && !strcmp(optarg, "csv"))
				j->fmt = FMT_CSV;
			else if (!replay)
				return usage_error("--format '%s': expected jsonl or csv", optarg);
			have_format = 1;
			break;
		case 'n':
			if (parse_u64("--count", optarg, &j->count) < 0)
				return EXIT_USAGE;
			break;
		default:
			return usage_error("bad option");
		}
	}
	if (optind < argc) {
		j->topic = argv[optind++];
		if (check_topic(j->topic) < 0)
			return EXIT_USAGE;
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!j->topic && !j->log_dir)
		return usage_error("which topic? (or --log-dir DIR)");
	if (j->topic && j->log_dir)
		return usage_error("give a TOPIC (read through busd) or --log-dir DIR (read "
				   "offline), not both");
	if (j->into && have_format)
		return usage_error("--into publishes the events; --format is for standard "
				   "output: pick one");
	if (j->into && j->topic && !strcmp(j->into, j->topic))
		return usage_error("--into %s: a topic cannot be replayed into itself", j->into);
	if (cli.json && !have_format)
		j->fmt = FMT_JSON;
	if (j->from.from == BUS_FROM_SEQ && j->to.from == BUS_FROM_SEQ &&
	    j->to.seq < j->from.seq)
		return usage_error("--to seq:%llu comes before --from seq:%llu",
				   (unsigned long long)j->to.seq, (unsigned long long)j->from.seq);
	if (j->from.from == BUS_FROM_TIME && j->to.from == BUS_FROM_TIME &&
	    j->to.ts_ns < j->from.ts_ns)
		return usage_error("--to is earlier than --from");
	j->label = j->topic ? j->topic : j->log_dir;
	return 0;
}

/* ---- replay ------------------------------------------------------------------- */

static int cmd_replay(int argc, char **argv)
{
	struct job j = { .speed = 1, .fmt = FMT_TEXT, .verb = "replayed" };
	int r = parse_args(argc, argv, &j, 1);

	return r ? r : run(&j);
}

/* ---- export ------------------------------------------------------------------- */

static int cmd_export(int argc, char **argv)
{
	struct job j = { .speed = 0, .fmt = FMT_JSON, .verb = "exported" };
	int r = parse_args(argc, argv, &j, 0);

	return r ? r : run(&j);
}

const struct command def_replay = {
	"replay", cmd_replay, "replay a durable topic's log",
	  "Usage: bus replay TOPIC [--from WHERE] [--to WHERE] [-n N] [--speed X|max]\n"
	  "                        [--into TOPIC | --format text|json|hex|raw]\n"
	  "       bus replay --log-dir DIR [same options]\n"
	  "Replay a range of a durable topic's log at its original pace (scaled by\n"
	  "--speed) or as fast as possible: to standard output, in any `bus tail`\n"
	  "format, or republished into another topic.\n"
	  "  --from WHERE  the first event: earliest (the default), latest, seq:N,\n"
	  "                time:ISO-8601 (e.g. time:2026-11-26T10:00:00Z) or\n"
	  "                -DURATION (e.g. -5m: from five minutes ago)\n"
	  "  --to WHERE    where to stop; the event it names is NOT replayed: seq:N\n"
	  "                stops after N-1, time:T and -DURATION before the first\n"
	  "                event at or after that time, latest before the newest\n"
	  "                event; end (the default) includes the newest, as the log\n"
	  "                is when the replay starts\n"
	  "  -n, --count N at most N events\n"
	  "  --speed X     1 (the default) keeps the original gaps between events,\n"
	  "                2 halves them, 0.5 doubles them; max does not wait\n"
	  "  --into TOPIC  publish the events into TOPIC (created with the defaults\n"
	  "                of `bus create` if missing), keeping each one's type word;\n"
	  "                they get new sequence numbers and timestamps\n"
	  "  --format F    text (the default), json, hex or raw, as `bus tail`\n"
	  "  --log-dir DIR read a topic's log directory (STATE/log/TOPIC) directly,\n"
	  "                with no busd: for a log copied elsewhere, or a bus that is\n"
	  "                down (--into still needs a busd)\n"
	  "A progress bar shows on a terminal (stderr) unless the events go to that\n"
	  "terminal. Ctrl-C stops cleanly and says how many events were replayed.\n"
	  "A volatile topic has no log to replay. A damaged log chunk stops the replay\n"
	  "with its file and offset, after the events before it: exit status 1.\n"
	  "Examples:\n"
	  "  bus replay orders --from -1h --speed 10\n"
	  "  bus replay orders --from seq:1000 --to seq:2000 --speed max --into orders.test\n"
};

const struct command def_export = {
	"export", cmd_export, "write a durable topic's log as data (jsonl, csv)",
	  "Usage: bus export TOPIC [--format jsonl|csv] [--from WHERE] [--to WHERE] [-n N]\n"
	  "       bus export --log-dir DIR [same options]\n"
	  "Write a range of a durable topic's log to standard output as data, as fast\n"
	  "as it reads.\n"
	  "  --format jsonl one JSON object per line, as `bus tail --format json`:\n"
	  "                 {\"seq\":N,\"ts\":\"ISO-8601\",\"ts_ns\":N,\"type\":N,\"data\":\"...\"},\n"
	  "                 with data_b64 (base64) instead of data when the payload is\n"
	  "                 not UTF-8 text (the default; --json says the same)\n"
	  "  --format csv   RFC 4180, a header line then one row per event:\n"
	  "                 seq,ts,type,len,data,data_b64 (data is the quoted text,\n"
	  "                 or empty and data_b64 set for binary payloads)\n"
	  "  --from, --to   the range, half-open, as for `bus replay`: --from the first\n"
	  "                 event (earliest by default), --to the first one NOT written\n"
	  "                 (end by default: everything)\n"
	  "  -n, --count N  at most N events\n"
	  "  --log-dir DIR  read a topic's log directory directly, with no busd\n"
	  "A progress bar shows on a terminal (stderr); Ctrl-C stops cleanly. A\n"
	  "damaged chunk is reported with its file and offset: exit status 1.\n"
	  "Example:\n"
	  "  bus export orders --format csv --from -1d > orders.csv\n"
};
