/* SPDX-License-Identifier: MIT */
/*
 * cmd_watch.c — bus top, bus hz: watching a bus live.
 *
 * Both only look. top lists the topics (bus_list reads headers: no slot,
 * no lease); hz takes one anonymous consumer slot from the end of a topic,
 * which shows in `bus info` while it runs and goes when it exits.
 *
 * top owns the terminal while it runs: the alternate screen, no cursor,
 * stdin without line editing or echo (so `q` needs no Enter). Every way out
 * gives it back: q, Ctrl-C and SIGTERM end the loop and restore; Ctrl-Z
 * restores before stopping and takes it again on fg; atexit catches the
 * rest. Signals keep ISIG, so Ctrl-C still reaches us as SIGINT.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* ---- the terminal (top) ------------------------------------------------------ */

/* The alternate screen, no cursor, no line wrap (a wide row is clipped,
 * not wrapped onto the next); and back. */
#define ESC_ENTER "\033[?1049h\033[?25l\033[?7l"
#define ESC_LEAVE "\033[?7h\033[?25h\033[?1049l"

static struct termios tio_saved;
static volatile sig_atomic_t tio_raw;     /* stdin is in our mode */
static volatile sig_atomic_t screen_on;   /* we are on the alternate screen */
static volatile sig_atomic_t redraw;      /* resized, or back from Ctrl-Z */

static void put(const char *s)
{
	size_t n = strlen(s);

	while (n) {  /* write(2): async-signal-safe, unlike stdio */
		ssize_t w = write(1, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* Give the terminal back. Safe in a signal handler. */
static void term_leave(void)
{
	if (screen_on) {
		put(ESC_LEAVE);
		screen_on = 0;
	}
	if (tio_raw) {
		tcsetattr(0, TCSANOW, &tio_saved);
		tio_raw = 0;
	}
}

/* Take it: keys one at a time without echo, the alternate screen. */
static void term_enter(int keys)
{
	if (keys) {
		struct termios t = tio_saved;

		t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		t.c_cc[VMIN] = 0;
		t.c_cc[VTIME] = 0;
		if (tcsetattr(0, TCSANOW, &t) == 0)
			tio_raw = 1;
	}
	put(ESC_ENTER);
	screen_on = 1;
}

static int term_keys;  /* stdin is a terminal we read keys from */

static void on_tstp(int sig);

static void on_signal(int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;  /* no SA_RESTART: poll() returns to look at the flags */
	sigaction(sig, &sa, NULL);
}

static void on_tstp(int sig)
{
	int e = errno;
	sigset_t s;

	/* Restore, stop for real (default action), and on SIGCONT take the
	 * terminal again: the shell may have changed its modes meanwhile. */
	(void)sig;
	term_leave();
	on_signal(SIGTSTP, SIG_DFL);
	sigemptyset(&s);
	sigaddset(&s, SIGTSTP);
	sigprocmask(SIG_UNBLOCK, &s, NULL);
	raise(SIGTSTP);
	/* ... stopped here until fg ... */
	on_signal(SIGTSTP, on_tstp);
	if (term_keys)
		tcgetattr(0, &tio_saved);
	term_enter(term_keys);
	redraw = 1;
	errno = e;
}

static void on_winch(int sig)
{
	(void)sig;
	redraw = 1;
}

static void on_quit(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void term_setup(void)
{
	/* A frame goes out in one write, not line by line as a terminal's
	 * stdout would: no half-drawn frames. */
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	term_keys = isatty(0) && tcgetattr(0, &tio_saved) == 0;
	atexit(term_leave);
	catch_interrupts();  /* SIGINT, SIGTERM: end the loop, restore */
	on_signal(SIGHUP, on_quit);
	on_signal(SIGQUIT, on_quit);
	on_signal(SIGWINCH, on_winch);
	on_signal(SIGTSTP, on_tstp);
	term_enter(term_keys);
}

static int term_rows(void)
{
	struct winsize ws;

	if (ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0)
		return ws.ws_row;
	return 24;
}

/* ---- formatting ---------------------------------------------------------------- */

/* 950, 12.3K, 1.5M (events/s: thousands, not KiB). */
static void fmt_rate(char *buf, size_t n, double v)
{
	static const char u[] = " KMGT";
	int i = 0;

	while (v >= 999.5 && i < 4) {
		v /= 1000;
		i++;
	}
	if (!i)
		snprintf(buf, n, "%.0f", v);
	else
		snprintf(buf, n, v < 9.95 ? "%.1f%c" : "%.0f%c", v, u[i]);
}

/* 850ns, 12.3us, 1.00ms, 2.50s: three digits, whatever the unit. */
static void fmt_ns(char *buf, size_t n, double ns)
{
	static const struct { double div; const char *unit; } u[] = {
		{ 1, "ns" }, { 1e3, "us" }, { 1e6, "ms" }, { 1e9, "s" },
	};
	int i = 0;

	while (i < 3 && ns >= u[i + 1].div * 0.9995)
		i++;
	ns /= u[i].div;
	if (i == 0 || ns >= 99.95)
		snprintf(buf, n, "%.0f%s", ns, u[i].unit);
	else
		snprintf(buf, n, ns < 9.995 ? "%.2f%s" : "%.1f%s", ns, u[i].unit);
}

/* ---- top --------------------------------------------------------------------------- */

struct sample {
	struct bus_topic_entry *e;
	unsigned cap;
	int n;
	uint64_t t;  /* CLOCK_MONOTONIC ns */
};

static int sample_take(struct bus *b, struct sample *s)
{
	for (;;) {
		int n;

		if (!s->cap) {
			unsigned cap = s->n > 0 ? (unsigned)s->n + 64 : 256;
			struct bus_topic_entry *e = calloc(cap, sizeof(*e));

			if (!e)
				return -ENOMEM;
			free(s->e);
			s->e = e;
			s->cap = cap;
		}
		n = bus_list(b, s->e, s->cap);
		s->t = mono_ns_();
		if (n < 0)
			return n;
		s->n = n;
		if ((unsigned)n <= s->cap)
			return 0;
		s->cap = 0;  /* more topics than room: grow, sample again */
	}
}

struct row {
	const struct bus_topic_entry *e;
	double rate, bps;      /* events/s, payload bytes/s */
	uint64_t flush_lag;    /* durable: events not yet in the log */
};

struct totals {
	unsigned topics, durable, producers, consumers, degraded;
	double rate, bps;
	uint64_t max_lag, flush_lag;
};

static int row_cmp(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	if (x->rate != y->rate)
		return x->rate < y->rate ? 1 : -1;
	if (x->bps != y->bps)
		return x->bps < y->bps ? 1 : -1;
	return strcmp(x->e->name, y->e->name);
}

/* Rows of the newer sample with rates against the older one (both are
 * sorted by name: one merge walk), sorted by rate. */
static struct row *rows_make(const struct sample *a, const struct sample *b, struct totals *tot)
{
	struct row *rows = calloc((size_t)b->n + 1, sizeof(*rows));
	double dt = b->t > a->t ? (double)(b->t - a->t) / 1e9 : 0;
	int j = 0;

	memset(tot, 0, sizeof(*tot));
	if (!rows)
		return NULL;
	for (int i = 0; i < b->n; i++) {
		const struct bus_topic_info *t = &b->e[i].info;
		struct row *r = &rows[i];
		int c = 1;

		r->e = &b->e[i];
		while (j < a->n && (c = strcmp(a->e[j].name, b->e[i].name)) < 0)
			j++;
		if (j < a->n && c == 0 && dt > 0) {
			const struct bus_topic_info *o = &a->e[j].info;

			/* A topic deleted and made again starts over: no rate. */
			if (t->next_seq >= o->next_seq && t->bytes >= o->bytes) {
				r->rate = (double)(t->next_seq - o->next_seq) / dt;
				r->bps = (double)(t->bytes - o->bytes) / dt;
			}
		}
		if (t->flags & BUS_TOPIC_DURABLE) {
			r->flush_lag = t->next_seq > t->flushed_seq ? t->next_seq - t->flushed_seq : 0;
			tot->durable++;
			tot->flush_lag += r->flush_lag;
		}
		tot->topics++;
		tot->producers += !!t->producer_pid;
		tot->consumers += t->consumers;
		tot->degraded += !!t->degraded;
		tot->rate += r->rate;
		tot->bps += r->bps;
		if (t->max_lag > tot->max_lag)
			tot->max_lag = t->max_lag;
	}
	qsort(rows, (size_t)b->n, sizeof(*rows), row_cmp);
	return rows;
}

enum top_out { TOP_SCREEN, TOP_TABLE, TOP_TSV, TOP_JSON };

static void top_json(FILE *f, struct bus *b, const struct row *rows, int n,
		     const struct totals *tot, double dt)
{
	char ts[48];

	fmt_time(ts, sizeof(ts), now_ns());
	fputs("{\"bus\":", f);
	json_str(f, bus_address(b), strlen(bus_address(b)));
	fprintf(f, ",\"time\":\"%s\",\"interval_s\":%.3f,\"totals\":{\"topics\":%u,"
		"\"durable\":%u,\"producers\":%u,\"consumers\":%u,\"rate\":%.1f,"
		"\"bytes_rate\":%.1f,\"max_lag\":%llu,\"flush_lag\":%llu,\"degraded\":%u},"
		"\"topics\":[", ts, dt, tot->topics, tot->durable, tot->producers, tot->consumers,
		tot->rate, tot->bps, (unsigned long long)tot->max_lag,
		(unsigned long long)tot->flush_lag, tot->degraded);
	for (int i = 0; i < n; i++) {
		const struct bus_topic_info *t = &rows[i].e->info;

		fprintf(f, "%s{\"topic\":", i ? "," : "");
		json_str(f, rows[i].e->name, strlen(rows[i].e->name));
		fprintf(f, ",\"durable\":%s,\"rate\":%.1f,\"bytes_rate\":%.1f,\"next_seq\":%llu,"
			"\"producer_pid\":%u,\"consumers\":%u,\"max_lag\":%llu,\"flush_lag\":%llu,"
			"\"degraded\":%s}", t->flags & BUS_TOPIC_DURABLE ? "true" : "false",
			rows[i].rate, rows[i].bps, (unsigned long long)t->next_seq, t->producer_pid,
			t->consumers, (unsigned long long)t->max_lag,
			(unsigned long long)rows[i].flush_lag, t->degraded ? "true" : "false");
	}
	fputs("]}\n", f);
}

/* One frame. On the screen, every line ends by clearing the rest of it
 * and the frame ends by clearing below: redrawn in place, no flicker. */
static void top_frame(FILE *f, enum top_out out, struct bus *b, const struct sample *a,
		      const struct sample *s, uint64_t interval)
{
	const char *eol = out == TOP_SCREEN ? "\033[K\n" : "\n";
	double dt = (double)(s->t - a->t) / 1e9;
	struct totals tot;
	struct row *rows = rows_make(a, s, &tot);
	char r0[16], r1[16], when[16], iv[24];
	int n = s->n, w = 5, shown;
	time_t now = time(NULL);
	struct tm tm;

	if (!rows) {
		fprintf(stderr, "bus: top: out of memory\n");
		return;
	}
	if (out == TOP_JSON) {
		top_json(f, b, rows, n, &tot, dt);
		goto done;
	}
	if (out == TOP_TSV) {
		for (int i = 0; i < n; i++) {
			const struct bus_topic_info *t = &rows[i].e->info;

			fprintf(f, "%s\t%s\t%.1f\t%.1f\t%llu\t%u\t%u\t%llu\t%llu\n", rows[i].e->name,
				t->flags & BUS_TOPIC_DURABLE ? "durable" : "volatile", rows[i].rate,
				rows[i].bps, (unsigned long long)t->next_seq, t->producer_pid,
				t->consumers, (unsigned long long)t->max_lag,
				(unsigned long long)rows[i].flush_lag);
		}
		goto done;
	}
	localtime_r(&now, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	if (interval % 1000000000ull == 0)
		snprintf(iv, sizeof(iv), "%llus", (unsigned long long)(interval / 1000000000ull));
	else if (interval % 1000000ull == 0)
		snprintf(iv, sizeof(iv), "%llums", (unsigned long long)(interval / 1000000ull));
	else
		fmt_ns(iv, sizeof(iv), (double)interval);
	if (out == TOP_SCREEN)
		fputs("\033[H", f);
	fprintf(f, "bus top - %s - %s, every %s%s%s", bus_address(b), when, iv,
		out == TOP_SCREEN ? " (q quits)" : "", eol);
	fmt_rate(r0, sizeof(r0), tot.rate);
	fmt_size(r1, sizeof(r1), (uint64_t)tot.bps);
	fprintf(f, "%u topics (%u durable), %u producers, %u consumers: %s events/s, %sB/s, "
		"max lag %llu, flush lag %llu", tot.topics, tot.durable, tot.producers,
		tot.consumers, r0, r1, (unsigned long long)tot.max_lag,
		(unsigned long long)tot.flush_lag);
	if (tot.degraded)
		fprintf(f, ", %u DEGRADED", tot.degraded);
	fputs(eol, f);
	fputs(eol, f);
	for (int i = 0; i < n; i++) {
		int l = (int)strlen(rows[i].e->name);

		if (l > w)
			w = l;
	}
	if (w > 40)
		w = 40;
	fprintf(f, "%-*s %-3s %8s %8s %12s %8s %5s %10s %10s%s", w, "TOPIC", "DUR", "EVENTS/s",
		"BYTES/s", "NEXT_SEQ", "PRODUCER", "CONS", "MAX_LAG", "FLUSH_LAG", eol);
	shown = n;
	if (out == TOP_SCREEN && n > term_rows() - 5)
		shown = term_rows() - 6 > 0 ? term_rows() - 6 : 0;
	for (int i = 0; i < shown; i++) {
		const struct bus_topic_info *t = &rows[i].e->info;
		int durable = !!(t->flags & BUS_TOPIC_DURABLE);
		char pid[16] = "-", fl[24] = "-", bps[16];
		int l = (int)strlen(rows[i].e->name);

		fmt_rate(r0, sizeof(r0), rows[i].rate);
		fmt_size(bps, sizeof(bps), (uint64_t)rows[i].bps);
		if (t->producer_pid)
			snprintf(pid, sizeof(pid), "%u", t->producer_pid);
		if (durable)
			snprintf(fl, sizeof(fl), "%llu", (unsigned long long)rows[i].flush_lag);
		if (l > w)  /* keep the columns: the end of a long name */
			fprintf(f, "..%s", rows[i].e->name + l - w + 2);
		else
			fprintf(f, "%-*s", w, rows[i].e->name);
		fprintf(f, " %-3s %8s %8s %12llu %8s %5u %10llu %10s%s%s", durable ? "yes" : "no",
			r0, bps, (unsigned long long)t->next_seq, pid, t->consumers,
			(unsigned long long)t->max_lag, fl, t->degraded ? " DEGRADED" : "", eol);
	}
	if (shown < n)
		fprintf(f, "... %d more (a taller terminal, or `bus top --once`)%s", n - shown, eol);
	if (!n)
		fprintf(f, "(no topics; create one with `bus create NAME`)%s", eol);
	if (out == TOP_SCREEN)
		fputs("\033[J", f);
done:
	free(rows);
}

/* The screen while busd cannot be reached: the last frame is gone stale. */
static void top_down(FILE *f, struct bus *b, int err, uint64_t interval)
{
	const char *m = bus_errmsg();

	fprintf(f, "\033[Hbus top - %s (q quits)\033[K\n\033[K\n", bus_address(b));
	fprintf(f, "cannot list the topics: %s\033[K\n", *m ? m : strerror(-err));
	fprintf(f, "trying again every %.1fs\033[K\n\033[J", (double)interval / 1e9);
}

/* Wait until `until` (mono ns) for a key. 'q' (or EOF on the terminal)
 * asks to quit: returns 1; a redraw request or a signal returns 0 early. */
static int top_wait(uint64_t until)
{
	for (;;) {
		uint64_t now = mono_ns_();
		struct pollfd pfd = { .fd = 0, .events = POLLIN };
		int ms, n;

		if (interrupted || redraw || now >= until)
			return 0;
		ms = (int)((until - now + 999999) / 1000000);
		n = poll(&pfd, term_keys ? 1 : 0, ms);
		if (n < 0 && errno == EINTR)
			continue;  /* the flags above say why */
		if (n > 0) {
			char k[64];
			ssize_t got = read(0, k, sizeof(k));

			for (ssize_t i = 0; i < got; i++)
				if (k[i] == 'q' || k[i] == 'Q')
					return 1;
			if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN))
				term_keys = 0;  /* the terminal hung up: no more keys */
		}
	}
}

static int cmd_top(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "interval", required_argument, NULL, 'i' },
		{ "once", no_argument, NULL, '1' },
		{ "count", required_argument, NULL, 'n' },
		{ 0 },
	};
	struct sample a = { 0 }, s = { 0 }, nx = { 0 }, tmp;
	uint64_t interval = 1000000000ull, frames = 0, limit = 0, deadline;
	enum top_out out;
	struct bus *b;
	int c, r = 0, once = 0, have_limit = 0;

	optind = 0;
	while ((c = getopt_long(argc, argv, "i:n:", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (parse_duration("--interval", optarg, &interval) < 0)
				return EXIT_USAGE;
			if (interval < 100000000ull)
				return usage_error("--interval %s: at least 100ms", optarg);
			break;
		case '1':
			once = 1;
			break;
		case 'n':
			if (parse_u64("--count", optarg, &limit) < 0)
				return EXIT_USAGE;
			if (!limit)
				return usage_error("--count: at least 1 frame");
			have_limit = 1;
			break;
		default:
			return usage_error("bad option");
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (once && have_limit && limit != 1)
		return usage_error("--once is one frame; -n says %llu", (unsigned long long)limit);
	/* Refreshing in place needs a terminal; anywhere else (a pipe, a
	 * script) one frame and exit, so nobody waits for ever. */
	if (cli.json)
		out = TOP_JSON;
	else if (!cli.tty)
		out = TOP_TSV;
	else
		out = once ? TOP_TABLE : TOP_SCREEN;
	if (once || (out != TOP_SCREEN && !have_limit))
		limit = 1;
	if (!(b = cli_connect()))
		return 1;
	if ((r = sample_take(b, &s)) < 0) {
		r = fail_bus(NULL, r);
		goto out;
	}
	if (out == TOP_SCREEN)
		term_setup();
	else
		catch_interrupts();
	/* Rates need two samples: on the screen, a first frame soon; for a
	 * script, rates over a whole interval. */
	deadline = s.t + (out == TOP_SCREEN && interval > 250000000ull ? 250000000ull : interval);
	for (;;) {
		if (top_wait(deadline))
			break;
		if (interrupted)
			break;
		if (redraw) {
			redraw = 0;
			if (frames) {
				top_frame(stdout, out, b, &a, &s, interval);
				fflush(stdout);
			}
			continue;
		}
		if ((r = sample_take(b, &nx)) < 0) {
			if (out != TOP_SCREEN)
				break;
			/* busd restarting: say so, keep trying (libbus reconnects). */
			top_down(stdout, b, r, interval);
			fflush(stdout);
			r = 0;
			deadline = mono_ns_() + interval;
			continue;
		}
		tmp = a;
		a = s;
		s = nx;
		nx = tmp;
		if (out == TOP_TSV && frames)
			fputc('\n', stdout);  /* frames apart */
		top_frame(stdout, out, b, &a, &s, interval);
		fflush(stdout);
		if (++frames == limit)
			break;
		deadline += interval;
		if (deadline < s.t)
			deadline = s.t + interval;  /* we were stopped (Ctrl-Z): catch up */
	}
	term_leave();
	if (r < 0)
		r = fail_bus(NULL, r);
	else if (ferror(stdout))
		r = fail("writing standard output: %s", strerror(errno));
out:
	free(a.e);
	free(s.e);
	free(nx.e);
	bus_disconnect(b);
	return r;
}

const struct command def_top = {
	"top", cmd_top, "a live view of the topics, busiest first",
	  "Usage: bus top [--interval DURATION] [--once | -n N] [--json]\n"
	  "A live view of every topic, sorted by rate and redrawn every second:\n"
	  "events/s, payload bytes/s, next sequence number, producer pid, consumers,\n"
	  "the largest consumer lag and, for a durable topic, its flush lag (events not\n"
	  "yet in the log); above it the bus's totals. Press q (or Ctrl-C) to quit.\n"
	  "  -i, --interval D  how often to redraw, and the window of the rates\n"
	  "                    (default 1s, at least 100ms)\n"
	  "  --once            print one frame and exit (rates over one interval)\n"
	  "  -n, --count N     exit after N frames\n"
	  "When standard output is not a terminal, top prints one frame (or -n N of\n"
	  "them, a blank line apart) as tab-separated columns and exits:\n"
	  "  topic durable|volatile events/s bytes/s next_seq producer_pid consumers\n"
	  "  max_lag flush_lag\n"
	  "--json prints a frame as one object per line: bus, time, interval_s, totals\n"
	  "(topics, durable, producers, consumers, rate, bytes_rate, max_lag, flush_lag,\n"
	  "degraded) and topics (the same per topic), busiest first.\n"
};

/* ---- hz ---------------------------------------------------------------------------- */

/* One window's statistics. Inter-arrival times come from the events'
 * timestamps (when the producer committed them), not from when we read
 * them: what is measured is the producer, not our wake-ups. */
struct win {
	uint64_t events, lost, bytes;
	uint32_t size_min, size_max;
	uint64_t gaps;           /* inter-arrival samples */
	double gap_mean, gap_m2; /* Welford: mean and sum of squared deviations */
	uint64_t gap_min, gap_max;
};

static void win_add(struct win *w, const struct bus_event *ev, uint64_t *prev_ts)
{
	if (!w->events || ev->len < w->size_min)
		w->size_min = ev->len;
	if (!w->events || ev->len > w->size_max)
		w->size_max = ev->len;
	w->events++;
	w->bytes += ev->len;
	if (*prev_ts) {
		uint64_t g = ev->ts_ns > *prev_ts ? ev->ts_ns - *prev_ts : 0;
		double d;

		if (!w->gaps || g < w->gap_min)
			w->gap_min = g;
		if (!w->gaps || g > w->gap_max)
			w->gap_max = g;
		w->gaps++;
		d = (double)g - w->gap_mean;
		w->gap_mean += d / (double)w->gaps;
		w->gap_m2 += d * ((double)g - w->gap_mean);
	}
	*prev_ts = ev->ts_ns;
}

/* sqrt(3) without libm (the tool links libc and libbus only): Newton
 * from above, which only ever decreases. */
static double root(double x)
{
	double r = x > 1 ? x : 1;

	if (x <= 0)
		return 0;
	for (int i = 0; i < 200; i++) {
		double n = (r + x / r) / 2;

		if (n >= r)
			break;
		r = n;
	}
	return r;
}

static void win_print(const char *topic, const struct win *w, double secs)
{
	double rate = (double)(w->events + w->lost) / secs;
	double sd = w->gaps > 1 ? root(w->gap_m2 / (double)(w->gaps - 1)) : 0;
	double avg_size = w->events ? (double)w->bytes / (double)w->events : 0;

	if (cli.json) {
		printf("{\"topic\":");
		json_str(stdout, topic, strlen(topic));
		printf(",\"window_s\":%.3f,\"events\":%llu,\"lost\":%llu,\"rate\":%.2f,", secs,
		       (unsigned long long)w->events, (unsigned long long)w->lost, rate);
		if (w->gaps)
			printf("\"interval_ns\":{\"min\":%llu,\"avg\":%.0f,\"max\":%llu,"
			       "\"stddev\":%.0f},", (unsigned long long)w->gap_min, w->gap_mean,
			       (unsigned long long)w->gap_max, sd);
		else
			printf("\"interval_ns\":null,");
		if (w->events)
			printf("\"size\":{\"min\":%u,\"avg\":%.1f,\"max\":%u}}\n", w->size_min,
			       avg_size, w->size_max);
		else
			printf("\"size\":null}\n");
		return;
	}
	if (!cli.tty) {
		/* events rate min avg max stddev (ns) size min avg max lost */
		printf("%llu\t%.2f\t", (unsigned long long)w->events, rate);
		if (w->gaps)
			printf("%llu\t%.0f\t%llu\t%.0f\t", (unsigned long long)w->gap_min,
			       w->gap_mean, (unsigned long long)w->gap_max, sd);
		else
			printf("-\t-\t-\t-\t");
		if (w->events)
			printf("%u\t%.1f\t%u\t", w->size_min, avg_size, w->size_max);
		else
			printf("-\t-\t-\t");
		printf("%llu\n", (unsigned long long)w->lost);
		return;
	}
	if (!w->events && !w->lost) {
		printf("no events in %.2fs\n", secs);
		return;
	}
	if (rate < 1000) {
		printf("rate %.1f/s", rate);
	} else {
		char rt[16];

		fmt_rate(rt, sizeof(rt), rate);
		printf("rate %s/s", rt);
	}
	if (w->gaps) {
		char mn[16], av[16], mx[16], s[16];

		fmt_ns(mn, sizeof(mn), (double)w->gap_min);
		fmt_ns(av, sizeof(av), w->gap_mean);
		fmt_ns(mx, sizeof(mx), (double)w->gap_max);
		fmt_ns(s, sizeof(s), sd);
		printf("  interval min %s avg %s max %s stddev %s", mn, av, mx, s);
	}
	if (w->events)
		printf("  size min %u avg %.1f max %u", w->size_min, avg_size, w->size_max);
	printf("  (%llu events", (unsigned long long)w->events);
	if (w->lost)
		printf(", %llu lost: hz could not keep up", (unsigned long long)w->lost);
	printf(")\n");
}

static int cmd_hz(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "window", required_argument, NULL, 'w' },
		{ "count", required_argument, NULL, 'n' },
		{ 0 },
	};
	struct bus_sub_opts o = { .from = BUS_FROM_END };
	uint64_t window = 1000000000ull, windows = UINT64_MAX, done = 0, prev_ts = 0;
	uint64_t start, end;
	struct bus_sub *sub = NULL;
	struct bus_event ev;
	struct win w;
	const char *topic;
	struct bus *b;
	int c, r = 0;

	optind = 0;
	while ((c = getopt_long(argc, argv, "w:n:", opts, NULL)) != -1) {
		switch (c) {
		case 'w':
			if (parse_duration("--window", optarg, &window) < 0)
				return EXIT_USAGE;
			if (window < 10000000ull)
				return usage_error("--window %s: at least 10ms", optarg);
			break;
		case 'n':
			if (parse_u64("--count", optarg, &windows) < 0)
				return EXIT_USAGE;
			if (!windows)
				return usage_error("--count: at least 1 window");
			break;
		default:
			return usage_error("bad option");
		}
	}
	if (optind + 1 != argc)
		return optind >= argc ? usage_error("which topic?") :
					usage_error("unexpected argument '%s'", argv[optind + 1]);
	topic = argv[optind];
	if (check_topic(topic) < 0)
		return EXIT_USAGE;
	if (!(b = cli_connect()))
		return 1;
	r = bus_sub_attach(b, topic, &o, &sub);
	if (r < 0) {
		r = fail_bus(topic, r);
		goto out;
	}
	r = 0;
	catch_interrupts();
	memset(&w, 0, sizeof(w));
	start = mono_ns_();
	end = start + window;
	while (!interrupted && done < windows) {
		uint64_t now = mono_ns_();
		int n = 0;

		if (now >= end) {
			win_print(topic, &w, (double)(now - start) / 1e9);
			fflush(stdout);
			memset(&w, 0, sizeof(w));
			done++;
			start = now;
			end += window;
			if (end <= now)  /* stopped for a while: start afresh */
				end = now + window;
			continue;
		}
		/* Drain what is there, looking at the clock now and then. */
		for (int i = 0; i < 256; i++) {
			n = bus_sub_next(sub, &ev);
			if (n == 1) {
				win_add(&w, &ev, &prev_ts);
				continue;
			}
			if (n == -ENOBUFS) {
				w.lost += ev.lost;
				prev_ts = 0;  /* no interval across the gap */
				continue;
			}
			break;
		}
		if (n == 1 || n == -ENOBUFS)
			continue;
		if (n == -EPIPE) {
			note("bus: hz %s: the topic was deleted\n", topic);
			break;
		}
		if (n < 0) {
			r = fail_bus(topic, n);
			break;
		}
		n = bus_sub_wait(sub, (int64_t)(end - now));
		if (n < 0 && n != -ETIMEDOUT && n != -EINTR && n != -EPIPE) {
			r = fail_bus(topic, n);
			break;
		}
	}
	if (!r && ferror(stdout))
		r = fail("writing standard output: %s", strerror(errno));
out:
	bus_sub_close(sub);
	bus_disconnect(b);
	return r;
}

const struct command def_hz = {
	"hz", cmd_hz, "a topic's rate and event sizes, window by window",
	  "Usage: bus hz TOPIC [--window DURATION] [-n N] [--json]\n"
	  "Measure a topic's new events, like `ros2 topic hz`: every window (default\n"
	  "1s) print the rate (events/s), the time between events (min, avg, max,\n"
	  "standard deviation; from the events' timestamps, so what is measured is\n"
	  "the producer) and the event sizes in bytes (min, avg, max). hz reads from\n"
	  "the end of the topic as an anonymous consumer; events it could not keep up\n"
	  "with are counted in the rate and reported as lost.\n"
	  "  -w, --window D  the window (default 1s, at least 10ms)\n"
	  "  -n, --count N   exit after N windows (default: until Ctrl-C)\n"
	  "On a terminal one line per window; otherwise tab-separated columns:\n"
	  "  events rate interval_min_ns interval_avg_ns interval_max_ns\n"
	  "  interval_stddev_ns size_min size_avg size_max lost\n"
	  "('-' when a window has too few events). --json prints one object per\n"
	  "window: topic, window_s, events, lost, rate, interval_ns {min, avg, max,\n"
	  "stddev} or null, size {min, avg, max} or null.\n"
};
