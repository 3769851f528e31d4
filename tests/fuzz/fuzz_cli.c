/* SPDX-License-Identifier: MIT */
/*
 * fuzz_cli.c — libFuzzer target: the value parsers of the `bus` command
 * (tools/util.c): parse_u64, parse_size, parse_duration, parse_mode,
 * parse_time, parse_from, and the output helpers that see event payloads
 * (is_utf8_text, json_str, b64).
 *
 * The input is one command-line argument (cut at its first NUL, as argv
 * would be). Each parser is held against an independent reference written
 * here from the grammar its message and cli.h document:
 *
 *   u64       [0-9]+                               no overflow
 *   size      [0-9]+ ( [KMGTkmgt] i? [Bb]? | [Bb] )?   no overflow
 *   duration  [0-9]+ (ns|us|ms|s|m|h|d)            no overflow
 *   mode      [0-7]+                               at most 0777
 *   time      YYYY-MM-DD[(T| )hh:mm[:ss[.f+]]][Z|(+|-)hh:mm], fields in
 *             range, not before 1970; a time past the last uint64
 *             nanosecond (2554) is that last one (test_cli reads
 *             time:2999-01-01T00:00:00Z as "after everything")
 *   from      earliest oldest latest newest end seq:U64 time:TIME -DURATION
 *
 * Both must accept the same strings with the same values (the strict
 * parsers of cli.h), and what was accepted must survive a round trip
 * through its own output format (fmt_time for times, a unit suffix for
 * sizes and durations, %o for modes). Local times (no zone) are read in UTC
 * here (TZ is set), so that a run does not depend on the machine.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "fuzz.h"

struct cli cli;  /* tools/bus.c's, which is not linked: util.c reads cli.cmd */

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* The parsers print why they refuse; thousands of lines a second
	 * would only slow the run. libFuzzer and the sanitizers keep the real
	 * stderr: they write to the descriptor or a FILE taken at start. */
	fuzz_report = stderr;
	devnull = fopen("/dev/null", "w");
	if (devnull)
		stderr = devnull;
	cli.cmd = "fuzz";
	setenv("TZ", "UTC", 1);
	tzset();
	return 0;
}

/* ---- the references ----------------------------------------------------- */

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* [0-9]+ at *p into *v; 0 on overflow or no digit. */
static int ref_digits(const char **p, uint64_t *v)
{
	const char *s = *p;

	*v = 0;
	if (!is_digit(*s))
		return 0;
	for (; is_digit(*s); s++) {
		uint64_t d = (uint64_t)(*s - '0');

		if (*v > (UINT64_MAX - d) / 10)
			return 0;
		*v = *v * 10 + d;
	}
	*p = s;
	return 1;
}

static int ref_u64(const char *s, uint64_t *v)
{
	return ref_digits(&s, v) && !*s;
}

static int ref_size(const char *s, uint64_t *v)
{
	uint64_t n, mul = 1;

	if (!ref_digits(&s, &n))
		return 0;
	switch (*s) {
	case 0: break;
	case 'B': case 'b': s++; break;
	case 'K': case 'k': mul = 1ull << 10; break;
	case 'M': case 'm': mul = 1ull << 20; break;
	case 'G': case 'g': mul = 1ull << 30; break;
	case 'T': case 't': mul = 1ull << 40; break;
	default: return 0;
	}
	if (mul > 1) {
		s++;
		if (*s == 'i')
			s++;
		if (*s == 'B' || *s == 'b')
			s++;
	}
	if (*s || n > UINT64_MAX / mul)
		return 0;
	*v = n * mul;
	return 1;
}

static const struct { const char *u; uint64_t ns; } units[] = {
	{ "ns", 1 }, { "us", 1000 }, { "ms", 1000000 }, { "s", 1000000000ull },
	{ "m", 60000000000ull }, { "h", 3600000000000ull }, { "d", 86400000000000ull },
};

static int ref_duration(const char *s, uint64_t *v)
{
	uint64_t n;

	if (!ref_digits(&s, &n))
		return 0;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (!strcmp(s, units[i].u))
			return n <= UINT64_MAX / units[i].ns ? (*v = n * units[i].ns, 1) : 0;
	return 0;
}

static int ref_mode(const char *s, uint32_t *v)
{
	uint64_t n = 0;

	if (!*s)
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '7')
			return 0;
		n = n * 8 + (uint64_t)(*s - '0');
		if (n > 0777)
			return 0;
	}
	*v = (uint32_t)n;
	return 1;
}

/* Exactly n digits. */
static int fixed(const char *p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (!is_digit(p[i]))
			return 0;
		*v = *v * 10 + (p[i] - '0');
	}
	return 1;
}

/* 1 with *ns (a local time is read with mktime, as date(1) does). */
static int ref_time(const char *s, uint64_t *ns)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, tzh = 0, tzm = 0, sign = 0, zoned = 1;
	uint64_t frac = 0, scale = 1000000000ull;
	struct tm tm;
	time_t t;

	if (!fixed(s, 4, &y) || s[4] != '-' || !fixed(s + 5, 2, &mo) || s[7] != '-' ||
	    !fixed(s + 8, 2, &d))
		return 0;
	s += 10;
	if (*s == 'T' || *s == ' ') {
		if (!fixed(s + 1, 2, &h) || s[3] != ':' || !fixed(s + 4, 2, &mi))
			return 0;
		s += 6;
		if (*s == ':') {
			if (!fixed(s + 1, 2, &sec))
				return 0;
			s += 3;
			if (*s == '.') {
				if (!is_digit(*++s))
					return 0;
				for (; is_digit(*s); s++)
					if (scale > 1) {
						scale /= 10;
						frac += (uint64_t)(*s - '0') * scale;
					}
			}
		}
	}
	if (*s == 'Z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s == '-' ? -1 : 1;
		if (!fixed(s + 1, 2, &tzh) || s[3] != ':' || !fixed(s + 4, 2, &tzm))
			return 0;
		s += 6;
	} else {
		zoned = 0;
	}
	if (*s || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 ||
	    tzh > 23 || tzm > 59)
		return 0;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	tm.tm_isdst = -1;
	t = zoned ? timegm(&tm) : mktime(&tm);
	if (t == (time_t)-1)
		return 0;
	t -= sign * (tzh * 3600 + tzm * 60);
	if (t < 0)
		return 0;
	if ((uint64_t)t > (UINT64_MAX - frac) / 1000000000ull)
		*ns = UINT64_MAX;
	else
		*ns = (uint64_t)t * 1000000000ull + frac;
	return 1;
}

/* ---- the checks --------------------------------------------------------- */

/* The input as C would spell it, for messages (it may hold \r or bytes
 * above 0x7f that a terminal would not show). */
static const char *esc(const char *s)
{
	static char b[4 * 256 + 1];
	size_t n = 0;

	for (; *s && n + 5 < sizeof(b); s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x20 && c < 0x7f && c != '\\')
			b[n++] = (char)c;
		else
			n += (size_t)snprintf(b + n, sizeof(b) - n, "\\x%02x", c);
	}
	b[n] = 0;
	return b;
}

static void check_u64(const char *s)
{
	uint64_t v = 0, w = 0;
	int ok = parse_u64("--count", s, &v) == 0, ref = ref_u64(s, &w);

	FUZZ_CHECK(ok == ref, "parse_u64('%s') %s, the grammar says %s", esc(s),
		   ok ? "accepts" : "refuses", ref ? "accept" : "refuse");
	FUZZ_CHECK(!ok || v == w, "parse_u64('%s') = %llu, not %llu", esc(s),
		   (unsigned long long)v, (unsigned long long)w);
}

static void check_size(const char *s)
{
	static const char suffix[] = "BKMGT";
	uint64_t v = 0, w = 0, back = 0;
	int ok = parse_size("--ring", s, &v) == 0, ref = ref_size(s, &w), u = 0;
	char out[40];

	FUZZ_CHECK(ok == ref, "parse_size('%s') %s, the grammar says %s", esc(s),
		   ok ? "accepts" : "refuses", ref ? "accept" : "refuse");
	if (!ok)
		return;
	FUZZ_CHECK(v == w, "parse_size('%s') = %llu, not %llu", esc(s), (unsigned long long)v,
		   (unsigned long long)w);
	/* Round trip in the largest unit that divides it. */
	while (u < 4 && v && !(v % (1ull << (10 * (u + 1)))))
		u++;
	snprintf(out, sizeof(out), "%llu%c", (unsigned long long)(v >> (10 * u)), suffix[u]);
	FUZZ_CHECK(parse_size("--ring", out, &back) == 0 && back == v,
		   "'%s' -> %llu -> '%s' -> %llu", esc(s), (unsigned long long)v, out,
		   (unsigned long long)back);
}

static void check_duration(const char *s)
{
	uint64_t v = 0, w = 0, back = 0;
	int ok = parse_duration("--interval", s, &v) == 0, ref = ref_duration(s, &w);
	size_t u = 0;
	char out[40];

	FUZZ_CHECK(ok == ref, "parse_duration('%s') %s, the grammar says %s", esc(s),
		   ok ? "accepts" : "refuses", ref ? "accept" : "refuse");
	if (!ok)
		return;
	FUZZ_CHECK(v == w, "parse_duration('%s') = %llu, not %llu", esc(s), (unsigned long long)v,
		   (unsigned long long)w);
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (!(v % units[i].ns) && units[i].ns > units[u].ns)
			u = i;
	snprintf(out, sizeof(out), "%llu%s", (unsigned long long)(v / units[u].ns), units[u].u);
	FUZZ_CHECK(parse_duration("--interval", out, &back) == 0 && back == v,
		   "'%s' -> %llu -> '%s' -> %llu", esc(s), (unsigned long long)v, out,
		   (unsigned long long)back);
}

static void check_mode(const char *s)
{
	uint32_t v = 0, w = 0, back = 0;
	int ok = parse_mode("--mode", s, &v) == 0, ref = ref_mode(s, &w);
	char out[16];

	FUZZ_CHECK(ok == ref, "parse_mode('%s') %s, the grammar says %s", esc(s),
		   ok ? "accepts" : "refuses", ref ? "accept" : "refuse");
	if (!ok)
		return;
	FUZZ_CHECK(v == w && v <= 0777, "parse_mode('%s') = %o, not %o", esc(s), v, w);
	snprintf(out, sizeof(out), "0%o", v);
	FUZZ_CHECK(parse_mode("--mode", out, &back) == 0 && back == v, "mode round trip %s", out);
}

static void check_time(const char *s)
{
	uint64_t v = 0, w = 0, back = 0;
	int ok = parse_time(s, &v) == 0, ref = ref_time(s, &w);
	char out[64];

	FUZZ_CHECK(ok == ref, "parse_time('%s') %s, the grammar says %s", esc(s),
		   ok ? "accepts" : "refuses", ref ? "accept" : "refuse");
	if (!ok)
		return;
	FUZZ_CHECK(v == w, "parse_time('%s') = %llu, not %llu", esc(s), (unsigned long long)v,
		   (unsigned long long)w);
	fmt_time(out, sizeof(out), v);
	FUZZ_CHECK(parse_time(out, &back) == 0 && back == v, "'%s' -> %llu -> '%s' -> %llu",
		   esc(s), (unsigned long long)v, out, (unsigned long long)back);
}

static void check_from(const char *s)
{
	struct bus_sub_opts o;
	uint64_t w = 0;
	int ok, ref;

	memset(&o, 0, sizeof(o));
	ok = parse_from("--from", s, &o) == 0;
	if (!strcmp(s, "earliest") || !strcmp(s, "oldest"))
		ref = 1, w = BUS_FROM_OLDEST;
	else if (!strcmp(s, "latest") || !strcmp(s, "newest"))
		ref = 1, w = BUS_FROM_NEWEST;
	else if (!strcmp(s, "end"))
		ref = 1, w = BUS_FROM_END;
	else if (!strncmp(s, "seq:", 4))
		ref = ref_u64(s + 4, &w);
	else if (!strncmp(s, "time:", 5))
		ref = ref_time(s + 5, &w);
	else if (s[0] == '-')
		ref = ref_duration(s + 1, &w);
	else
		ref = 0;
	FUZZ_CHECK(ok == ref, "parse_from('%s') %s, the grammar says %s", esc(s),
		   ok ? "accepts" : "refuses", ref ? "accept" : "refuse");
	if (!ok)
		return;
	if (!strncmp(s, "seq:", 4))
		FUZZ_CHECK(o.from == BUS_FROM_SEQ && o.seq == w, "'%s': seq %llu", esc(s),
			   (unsigned long long)o.seq);
	else if (!strncmp(s, "time:", 5))
		FUZZ_CHECK(o.from == BUS_FROM_TIME && o.ts_ns == w, "'%s': ts %llu", esc(s),
			   (unsigned long long)o.ts_ns);
	else if (s[0] == '-')
		FUZZ_CHECK(o.from == BUS_FROM_TIME && o.ts_ns >= 1, "'%s': from %d", esc(s),
			   (int)o.from);
	else
		FUZZ_CHECK((uint64_t)o.from == w, "'%s': from %d", esc(s), (int)o.from);
}

/* RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF;
 * and, being text, no C0 control but tab, newline and carriage return. */
static int ref_utf8_text(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint32_t c = p[i], min;
		unsigned k;

		if (c < 0x80) {
			if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
				return 0;
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			k = 1, c &= 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			k = 2, c &= 0x0f, min = 0x800;
		else if ((c & 0xf8) == 0xf0)
			k = 3, c &= 0x07, min = 0x10000;
		else
			return 0;
		if (n - i <= k)
			return 0;
		for (unsigned j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return 0;
			c = c << 6 | (p[i + j] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return 0;
		i += k + 1;
	}
	return 1;
}

/* Event payloads as `bus tail --json` shows them: text as a JSON string
 * (which must then be UTF-8), anything else as base64. */
static void check_output(const uint8_t *data, size_t size)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	FUZZ_CHECK(f, "open_memstream");
	if (is_utf8_text(data, size)) {
		FUZZ_CHECK(ref_utf8_text(data, size), "is_utf8_text passed %zu bytes that are not "
			   "UTF-8 text", size);
		json_str(f, data, size);
		fflush(f);
		FUZZ_CHECK(len >= 2 + size && buf[0] == '"' && buf[len - 1] == '"',
			   "json_str of %zu bytes gave %zu", size, len);
		for (size_t i = 0; i < len; i++)
			FUZZ_CHECK((unsigned char)buf[i] >= 0x20, "raw control byte 0x%02x in JSON",
				   (unsigned char)buf[i]);
	} else {
		b64(f, data, size);
		fflush(f);
		FUZZ_CHECK(len == (size + 2) / 3 * 4, "b64 of %zu bytes gave %zu", size, len);
	}
	fclose(f);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	FUZZ_CHECK(s, "out of memory");
	memcpy(s, data, size);
	s[size] = 0;
	check_u64(s);
	check_size(s);
	check_duration(s);
	check_mode(s);
	check_time(s);
	check_from(s);
	check_output(data, size);
	free(s);
	return 0;
}
