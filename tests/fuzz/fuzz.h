/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h — what the libFuzzer targets in tests/fuzz/ share: the entry point
 * libFuzzer calls, a check that holds in every build (assert() would vanish
 * under NDEBUG), and a private scratch directory for targets that need files.
 */
#ifndef BUS_FUZZ_H
#define BUS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A property the code under test must keep. A violation is a finding:
 * print what was seen and abort, which libFuzzer records as a crash with
 * the input that caused it. */
#define FUZZ_CHECK(cond, ...)                                                        \
	do {                                                                         \
		if (!(cond)) {                                                       \
			FILE *o_ = fuzz_report ? fuzz_report : stderr;        \
									             \
			fprintf(o_, "%s:%d: check failed: %s: ", __FILE__, __LINE__, \
				#cond);                                              \
			fprintf(o_, __VA_ARGS__);                                    \
			fputc('\n', o_);                                             \
			fflush(o_);                                                  \
			abort();                                                     \
		}                                                                    \
	} while (0)

/* Where FUZZ_CHECK reports; NULL = stderr (fuzz_cli.c points stderr away). */
extern FILE *fuzz_report;

/*
 * A directory of this process's own: mkdtemp under $BUS_FUZZ_TMP (the
 * scripts in mk/fuzz.mk make one per run and remove it afterwards, so not
 * even a crash leaves anything behind) or /dev/shm. Created on first use,
 * removed with its files at exit. Returns its path.
 */
const char *fuzz_scratch(void);
/* Remove every file in the scratch directory (not the directory). */
void fuzz_scratch_clear(void);
/* The lowest free descriptor number: a target compares it before and after
 * one input to catch a leaked descriptor. */
int fuzz_lowest_fd(void);

#endif
