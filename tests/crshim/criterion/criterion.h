/* SPDX-License-Identifier: MIT */
/*
 * A minimal Criterion-compatible runner, used only for `make tsan`.
 *
 * Criterion cannot start under ThreadSanitizer (its inheritable arena is
 * mapped where TSan's shadow memory lives: Snaipe/Criterion issue #274), so
 * the TSan build compiles the same test sources against this header. It
 * covers what our tests use: TestSuite(.init/.fini/.timeout), Test(), the
 * cr_assert and cr_expect families, cr_log_*, cr_skip_test. Each test runs
 * in a forked child with an alarm() timeout, as Criterion does.
 */
#ifndef CRSHIM_CRITERION_H
#define CRSHIM_CRITERION_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct crs_suite_cfg {
	void (*init)(void);
	void (*fini)(void);
	double timeout;
	bool disabled;
};

void crs_register(const char *suite, const char *name, void (*fn)(void),
		  const struct crs_suite_cfg *cfg);
/* No format attribute: an assertion without a message passes "" as fmt. */
void crs_fail(int fatal, const char *file, int line, const char *expr, const char *fmt, ...);
void crs_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void crs_skip(const char *fmt, ...) __attribute__((noreturn));

#define TestSuite(s, ...) \
	static const struct crs_suite_cfg crs_suite_##s = { __VA_ARGS__ }

#define Test(s, n, ...) \
	static void crs_fn_##s##_##n(void); \
	__attribute__((constructor)) static void crs_reg_##s##_##n(void) \
	{ crs_register(#s, #n, crs_fn_##s##_##n, &crs_suite_##s); } \
	static void crs_fn_##s##_##n(void)

#define crs_check(fatal, cond, expr, ...) \
	do { if (!(cond)) crs_fail(fatal, __FILE__, __LINE__, expr, "" __VA_ARGS__); } while (0)

#define cr_assert(c, ...)          crs_check(1, (c), #c, __VA_ARGS__)
#define cr_expect(c, ...)          crs_check(0, (c), #c, __VA_ARGS__)
#define cr_assert_not(c, ...)      crs_check(1, !(c), "!(" #c ")", __VA_ARGS__)
#define cr_expect_not(c, ...)      crs_check(0, !(c), "!(" #c ")", __VA_ARGS__)
#define crs_cmp(f, a, op, b, ...)  crs_check(f, ((a) op (b)), #a " " #op " " #b, __VA_ARGS__)
#define cr_assert_eq(a, b, ...)    crs_cmp(1, a, ==, b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...)   crs_cmp(1, a, !=, b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...)    crs_cmp(1, a, <, b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...)   crs_cmp(1, a, <=, b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...)    crs_cmp(1, a, >, b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...)   crs_cmp(1, a, >=, b, __VA_ARGS__)
#define cr_expect_eq(a, b, ...)    crs_cmp(0, a, ==, b, __VA_ARGS__)
#define cr_expect_neq(a, b, ...)   crs_cmp(0, a, !=, b, __VA_ARGS__)
#define cr_expect_lt(a, b, ...)    crs_cmp(0, a, <, b, __VA_ARGS__)
#define cr_expect_leq(a, b, ...)   crs_cmp(0, a, <=, b, __VA_ARGS__)
#define cr_expect_gt(a, b, ...)    crs_cmp(0, a, >, b, __VA_ARGS__)
#define cr_expect_geq(a, b, ...)   crs_cmp(0, a, >=, b, __VA_ARGS__)
#define cr_assert_null(p, ...)     crs_check(1, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) crs_check(1, (p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) crs_check(1, strcmp((a), (b)) == 0, #a " == " #b, __VA_ARGS__)
#define cr_assert_fail(...)        crs_fail(1, __FILE__, __LINE__, "cr_assert_fail", "" __VA_ARGS__)
#define cr_fail(...)               crs_fail(0, __FILE__, __LINE__, "cr_fail", "" __VA_ARGS__)
#define cr_fatal(...)              crs_fail(1, __FILE__, __LINE__, "cr_fatal", "" __VA_ARGS__)
#define cr_log_info(...)           crs_log("info", __VA_ARGS__)
#define cr_log_warn(...)           crs_log("warn", __VA_ARGS__)
#define cr_log_error(...)          crs_log("error", __VA_ARGS__)
#define cr_skip_test(...)          crs_skip("" __VA_ARGS__)

#endif
