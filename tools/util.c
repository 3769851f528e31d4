/* SPDX-License-Identifier: MIT */
/* util.c — parsing, formatting and error helpers of the `bus` command. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "proto.h"

volatile int interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

void catch_interrupts(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;  /* no SA_RESTART: blocking waits return */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* A bad flag value: the parsers print what is wrong, this says where to
 * look, as usage_error() does. */
static int bad_value(void)
{
	fprintf(stderr, "Try 'bus %s --help'.\n", cli.cmd);
	return -EINVAL;
}

int check_topic(const char *name)
{
	int r = proto_name_check(name, (uint32_t)strnlen(name, 200), "topic");

	if (r < 0) {
		fprintf(stderr, "bus %s: %s\n", cli.cmd, bus_errmsg());
		return bad_value();
	}
	return 0;
}

int fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bus: %s: ", cli.cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bus %s: ", cli.cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'bus %s --help'.\n", cli.cmd);
	return EXIT_USAGE;
}

int fail_bus(const char *topic, int err)
{
	const char *m = bus_errmsg();

	if (topic)
		fprintf(stderr, "bus: %s %s: %s\n", cli.cmd, topic, *m ? m : strerror(-err));
	else
		fprintf(stderr, "bus: %s: %s\n", cli.cmd, *m ? m : strerror(-err));
	return 1;
}

void note(const char *fmt, ...)
{
	va_list ap;

	if (cli.quiet)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

struct bus *cli_connect(void)
{
	struct bus *b;
	int r = bus_connect(cli.bus_dir, &b);

	if (r < 0) {
		if (r == -ENOENT || r == -ECONNREFUSED)
			fprintf(stderr, "bus: %s: %s\nbus: is busd running? try `make run` (or "
				"`busd --bus DIR` for another bus)\n", cli.cmd, bus_errmsg());
		else
			fail_bus(NULL, r);
		return NULL;
	}
	return b;
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t mono_ns_(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- parsing --------------------------------------------------------------- */

/* The parsers below use strtoull/strtoul, which skip leading white space and
 * take a sign ("\t-5" would be 2^64 - 5): a value must start with a digit. */
static int starts_digit(const char *s)
{
	return s && *s >= '0' && *s <= '9';
}

int parse_u64(const char *flag, const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	if (!starts_digit(s))
		goto bad;
	*out = strtoull(s, &end, 10);
	if (errno || *end)
		goto bad;
	return 0;
bad:
	fprintf(stderr, "bus %s: %s '%s': expected a non-negative integer\n", cli.cmd, flag,
		s ? s : "");
	return bad_value();
}

int parse_size(const char *flag, const char *s, uint64_t *out)
{
	unsigned long long v;
	uint64_t mul = 1;
	char *end;

	errno = 0;
	if (!starts_digit(s))
		goto bad;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		goto bad;
	if (*end) {
		switch (*end) {
		case 'K': case 'k': mul = 1ull << 10; break;
		case 'M': case 'm': mul = 1ull << 20; break;
		case 'G': case 'g': mul = 1ull << 30; break;
		case 'T': case 't': mul = 1ull << 40; break;
		case 'B': case 'b': mul = 1; break;
		default: goto bad;
		}
		end++;
		if (*end == 'i' && mul > 1)  /* KiB, MiB ... */
			end++;
		if ((*end == 'B' || *end == 'b') && mul > 1)
			end++;
		if (*end)
			goto bad;
	}
	if (v > UINT64_MAX / mul)
		goto bad;
	*out = v * mul;
	return 0;
bad:
	fprintf(stderr, "bus %s: %s '%s': expected a size such as 4096, 64K, 16M or 1G "
		"(K = 1024 bytes)\n", cli.cmd, flag, s ? s : "");
	return bad_value();
}

static int duration_quiet(const char *s, uint64_t *ns);

int parse_duration(const char *flag, const char *s, uint64_t *ns)
{
	if (duration_quiet(s, ns) == 0)
		return 0;
	fprintf(stderr, "bus %s: %s '%s': expected a duration such as 500ms, 30s, 5m, 2h or 7d "
		"(units ns, us, ms, s, m, h, d)\n", cli.cmd, flag, s ? s : "");
	return bad_value();
}

static int duration_quiet(const char *s, uint64_t *ns)
{
	static const struct { const char *u; uint64_t ns; } units[] = {
		{ "ns", 1 }, { "us", 1000 }, { "ms", 1000000 }, { "s", 1000000000ull },
		{ "m", 60000000000ull }, { "h", 3600000000000ull }, { "d", 86400000000000ull },
	};
	unsigned long long v;
	char *end;

	errno = 0;
	if (!starts_digit(s))
		goto bad;
	v = strtoull(s, &end, 10);
	if (errno || end == s || !*end)
		goto bad;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (!strcmp(end, units[i].u)) {
			if (v > UINT64_MAX / units[i].ns)
				goto bad;
			*ns = v * units[i].ns;
			return 0;
		}
	}
bad:
	return -EINVAL;
}

int parse_mode(const char *flag, const char *s, uint32_t *out)
{
	unsigned long v;
	char *end;

	errno = 0;
	if (!starts_digit(s))
		goto bad;
	v = strtoul(s, &end, 8);
	if (errno || *end || v > 0777)
		goto bad;
	*out = (uint32_t)v;
	return 0;
bad:
	fprintf(stderr, "bus %s: %s '%s': expected octal permission bits such as 0600 or 0644\n",
		cli.cmd, flag, s ? s : "");
	return bad_value();
}

/* Days from 1970-01-01 of a civil date (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + (int64_t)doe - 719468;
}

/* Exactly n digits at p (sscanf's %2d would also take " 1", "+1", "-1"). */
static int fixed_digits(const char *p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return 0;
		*v = *v * 10 + (p[i] - '0');
	}
	return 1;
}

int parse_time(const char *s, uint64_t *ns)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, tzs = 0, tzh = 0, tzm = 0;
	uint64_t frac = 0, scale = 1000000000ull;
	const char *p;
	int64_t t;

	if (!fixed_digits(s, 4, &y) || s[4] != '-' || !fixed_digits(s + 5, 2, &mo) ||
	    s[7] != '-' || !fixed_digits(s + 8, 2, &d))
		return -EINVAL;
	p = s + 10;
	if (*p == 'T' || *p == ' ') {
		if (!fixed_digits(p + 1, 2, &h) || p[3] != ':' || !fixed_digits(p + 4, 2, &mi))
			return -EINVAL;
		p += 6;
		if (*p == ':') {
			if (!fixed_digits(p + 1, 2, &sec))
				return -EINVAL;
			p += 3;
			if (*p == '.') {
				p++;
				if (*p < '0' || *p > '9')
					return -EINVAL;
				while (*p >= '0' && *p <= '9') {
					if (scale > 1) {
						scale /= 10;
						frac += (uint64_t)(*p - '0') * scale;
					}
					p++;
				}
			}
		}
	}
	if (*p == 'Z') {  /* tzs: 0 local time, else the sign of the offset */
		p++;
		tzs = 1;
	} else if (*p == '+' || *p == '-') {
		tzs = *p == '-' ? -1 : 1;
		if (!fixed_digits(p + 1, 2, &tzh) || p[3] != ':' || !fixed_digits(p + 4, 2, &tzm))
			return -EINVAL;
		p += 6;
	}
	/* Every form, the local one too: mktime() would quietly normalise
	 * month 13 or hour 26 into another date. */
	if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 ||
	    tzh > 23 || tzm > 59)
		return -EINVAL;
	if (!tzs) {
		/* No zone: local time, as date(1) would read it. */
		struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
				 .tm_hour = h, .tm_min = mi, .tm_sec = sec, .tm_isdst = -1 };
		time_t tt = mktime(&tm);

		if (tt == (time_t)-1)
			return -EINVAL;
		t = (int64_t)tt;
	} else {
		t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 +
		    sec - tzs * (tzh * 3600 + tzm * 60);
	}
	if (t < 0)
		return -EINVAL;
	/* Nanoseconds in 64 bits end in 2554: a later time is later than
	 * any event, which the last nanosecond says as well (the product
	 * wrapped around instead, to some date before it). */
	if ((uint64_t)t > (UINT64_MAX - frac) / 1000000000ull)
		*ns = UINT64_MAX;
	else
		*ns = (uint64_t)t * 1000000000ull + frac;
	return 0;
}

int parse_from(const char *flag, const char *s, struct bus_sub_opts *o)
{
	uint64_t v;

	if (!strcmp(s, "earliest") || !strcmp(s, "oldest")) {
		o->from = BUS_FROM_OLDEST;
	} else if (!strcmp(s, "latest") || !strcmp(s, "newest")) {
		o->from = BUS_FROM_NEWEST;
	} else if (!strcmp(s, "end")) {
		o->from = BUS_FROM_END;
	} else if (!strncmp(s, "seq:", 4)) {
		char *end;

		errno = 0;
		if (s[4] < '0' || s[4] > '9')
			goto bad;
		v = strtoull(s + 4, &end, 10);
		if (errno || *end)
			goto bad;
		o->from = BUS_FROM_SEQ;
		o->seq = v;
	} else if (!strncmp(s, "time:", 5)) {
		if (parse_time(s + 5, &v) < 0)
			goto bad;
		o->from = BUS_FROM_TIME;
		o->ts_ns = v;
	} else if (s[0] == '-' && s[1]) {
		if (duration_quiet(s + 1, &v) < 0)
			goto bad;
		o->from = BUS_FROM_TIME;
		o->ts_ns = now_ns() > v ? now_ns() - v : 1;
	} else {
		goto bad;
	}
	return 0;
bad:
	fprintf(stderr, "bus %s: %s '%s': expected earliest, latest, end, seq:N, "
		"time:2026-11-26T10:00:00Z (ISO 8601) or -DURATION such as -5m\n", cli.cmd, flag, s);
	return bad_value();
}

int parse_format(const char *flag, const char *s, enum fmt *f, int allow_csv)
{
	if (!strcmp(s, "text"))
		*f = FMT_TEXT;
	else if (!strcmp(s, "json") || !strcmp(s, "jsonl"))
		*f = FMT_JSON;
	else if (!strcmp(s, "hex"))
		*f = FMT_HEX;
	else if (!strcmp(s, "raw"))
		*f = FMT_RAW;
	else if (allow_csv && !strcmp(s, "csv"))
		*f = FMT_CSV;
	else {
		fprintf(stderr, "bus %s: %s '%s': expected text, json, hex or raw%s\n", cli.cmd,
			flag, s, allow_csv ? " (or csv)" : "");
		return bad_value();
	}
	return 0;
}

/* ---- output ----------------------------------------------------------------- */

void fmt_size(char *buf, size_t n, uint64_t v)
{
	static const char u[] = "BKMGTP";
	double d = (double)v;
	int i = 0;

	while (d >= 1024 && i < 5) {
		d /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, n, "%llu", (unsigned long long)v);
	else
		snprintf(buf, n, d < 10 ? "%.1f%c" : "%.0f%c", d, u[i]);
}

void fmt_time(char *buf, size_t n, uint64_t ns)
{
	time_t t = (time_t)(ns / 1000000000ull);
	struct tm tm;
	char s[32];

	gmtime_r(&t, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, n, "%s.%09lluZ", s, (unsigned long long)(ns % 1000000000ull));
}

int is_utf8_text(const void *data, size_t len)
{
	const unsigned char *p = data, *e = p + len;

	while (p < e) {
		unsigned c = *p, k;

		if (c < 0x80) {
			if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
				return 0;
			p++;
			continue;
		}
		if ((c & 0xe0) == 0xc0 && c >= 0xc2)
			k = 1;
		else if ((c & 0xf0) == 0xe0)
			k = 2;
		else if ((c & 0xf8) == 0xf0 && c <= 0xf4)
			k = 3;
		else
			return 0;
		if ((size_t)(e - p) <= k)
			return 0;
		for (unsigned i = 1; i <= k; i++)
			if ((p[i] & 0xc0) != 0x80)
				return 0;
		/* Overlong forms, UTF-16 surrogates and code points above
		 * U+10FFFF are not UTF-8 (RFC 3629): JSON readers refuse them. */
		if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) ||
		    (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
			return 0;
		p += k + 1;
	}
	return 1;
}

void json_str(FILE *f, const void *data, size_t len)
{
	const unsigned char *p = data;

	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		unsigned c = p[i];

		switch (c) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (c < 0x20)
				fprintf(f, "\\u%04x", c);
			else
				fputc((int)c, f);
		}
	}
	fputc('"', f);
}

void b64(FILE *f, const void *data, size_t len)
{
	static const char t[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = data;
	size_t i;

	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		fputc(t[v >> 18], f);
		fputc(t[(v >> 12) & 63], f);
		fputc(t[(v >> 6) & 63], f);
		fputc(t[v & 63], f);
	}
	if (i < len) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);

		fputc(t[v >> 18], f);
		fputc(t[(v >> 12) & 63], f);
		fputc(i + 1 < len ? t[(v >> 6) & 63] : '=', f);
		fputc('=', f);
	}
}

void print_event(FILE *f, enum fmt fmt, const struct bus_event *ev)
{
	char ts[48];

	switch (fmt) {
	case FMT_RAW:
		fwrite(ev->data, 1, ev->len, f);
		break;
	case FMT_TEXT:
		fwrite(ev->data, 1, ev->len, f);
		if (!ev->len || ((const char *)ev->data)[ev->len - 1] != '\n')
			fputc('\n', f);
		break;
	case FMT_HEX: {
		const unsigned char *p = ev->data;

		fprintf(f, "%llu", (unsigned long long)ev->seq);
		for (uint32_t i = 0; i < ev->len; i++)
			fprintf(f, i % 32 ? "%02x" : " %02x", p[i]);
		fputc('\n', f);
		break;
	}
	case FMT_JSON:
		fmt_time(ts, sizeof(ts), ev->ts_ns);
		fprintf(f, "{\"seq\":%llu,\"ts\":\"%s\",\"ts_ns\":%llu,\"type\":%u,",
			(unsigned long long)ev->seq, ts, (unsigned long long)ev->ts_ns, ev->type);
		if (is_utf8_text(ev->data, ev->len)) {
			fputs("\"data\":", f);
			json_str(f, ev->data, ev->len);
		} else {
			fputs("\"data_b64\":\"", f);
			b64(f, ev->data, ev->len);
			fputc('"', f);
		}
		fputs("}\n", f);
		break;
	case FMT_CSV:
		fmt_time(ts, sizeof(ts), ev->ts_ns);
		fprintf(f, "%llu,%s,%u,%u,", (unsigned long long)ev->seq, ts, ev->type, ev->len);
		if (is_utf8_text(ev->data, ev->len)) {
			const char *p = ev->data;

			fputc('"', f);
			for (uint32_t i = 0; i < ev->len; i++) {
				if (p[i] == '"')
					fputc('"', f);
				fputc(p[i], f);
			}
			fputs("\",\n", f);
		} else {
			fputs(",", f);
			b64(f, ev->data, ev->len);
			fputc('\n', f);
		}
		break;
	}
}
