/* SPDX-License-Identifier: MIT */
/* The runner behind tests/crshim/criterion/criterion.h (TSan builds only). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "criterion/criterion.h"

struct crs_test {
	const char *suite, *name;
	void (*fn)(void);
	const struct crs_suite_cfg *cfg;
};

static struct crs_test tests[512];
static int ntests;
static jmp_buf out;
static int failed;

void crs_register(const char *suite, const char *name, void (*fn)(void),
		  const struct crs_suite_cfg *cfg)
{
	if (ntests < (int)(sizeof(tests) / sizeof(tests[0])))
		tests[ntests++] = (struct crs_test){ suite, name, fn, cfg };
}

void crs_fail(int fatal, const char *file, int line, const char *expr, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "[----] %s:%d: Assertion Failed\n[----]   ", file, line);
	va_start(ap, fmt);
	if (*fmt)
		vfprintf(stderr, fmt, ap);
	else
		fprintf(stderr, "The expression %s is false.", expr);
	va_end(ap);
	fputc('\n', stderr);
	failed = 1;
	if (fatal)
		longjmp(out, 1);
}

void crs_log(const char *level, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "[%s] ", level);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void crs_skip(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "[SKIP] ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	longjmp(out, 2);
}

static int run_child(const struct crs_test *t)
{
	int r;

	if (t->cfg->timeout > 0)
		alarm((unsigned)t->cfg->timeout + 1);
	if (t->cfg->init)
		t->cfg->init();
	r = setjmp(out);
	if (r == 0)
		t->fn();
	if (t->cfg->fini)
		t->cfg->fini();
	fflush(NULL);
	return r == 2 ? 77 : failed;
}

int main(int argc, char **argv)
{
	const char *filter = NULL;
	int i, pass = 0, fail = 0, crash = 0, skip = 0;

	for (i = 1; i < argc; i++)
		if (!strncmp(argv[i], "--filter=", 9))
			filter = argv[i] + 9;
	for (i = 0; i < ntests; i++) {
		const struct crs_test *t = &tests[i];
		char full[256];
		pid_t pid;
		int st;

		snprintf(full, sizeof(full), "%s/%s", t->suite, t->name);
		if (t->cfg->disabled || (filter && !strstr(full, filter[0] == '*' ? filter + 1 : filter)))
			continue;
		fflush(NULL);
		pid = fork();
		if (pid == 0)
			_exit(run_child(t));
		while (waitpid(pid, &st, 0) < 0)
			;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			pass++;
		} else if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
			skip++;
			printf("[SKIP] %s::%s\n", t->suite, t->name);
		} else if (WIFEXITED(st)) {
			fail++;
			printf("[FAIL] %s::%s\n", t->suite, t->name);
		} else {
			crash++;
			printf("[FAIL] %s::%s: CRASH (signal %d%s)\n", t->suite, t->name,
			       WTERMSIG(st), WTERMSIG(st) == SIGALRM ? ", timed out" : "");
		}
	}
	printf("[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: %d\n",
	       pass + fail + crash, pass, fail + crash, crash);
	(void)skip;
	return fail + crash ? 1 : 0;
}
