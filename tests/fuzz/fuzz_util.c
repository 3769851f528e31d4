/* SPDX-License-Identifier: MIT */
/* fuzz_util.c — the scratch directory and descriptor check of fuzz.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

FILE *fuzz_report;

static char scratch[512];

void fuzz_scratch_clear(void)
{
	DIR *d;
	struct dirent *e;

	if (!scratch[0] || !(d = opendir(scratch)))
		return;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
}

static void scratch_remove(void)
{
	fuzz_scratch_clear();
	if (scratch[0])
		rmdir(scratch);
	scratch[0] = 0;
}

const char *fuzz_scratch(void)
{
	const char *parent = getenv("BUS_FUZZ_TMP");

	if (scratch[0])
		return scratch;
	if (!parent || !*parent)
		parent = "/dev/shm";
	snprintf(scratch, sizeof(scratch), "%s/bus-fuzz.XXXXXX", parent);
	if (!mkdtemp(scratch)) {
		/* Nothing can be tested without it: stop, and say why. */
		fprintf(stderr, "fuzz: cannot create a scratch directory in %s: %s\n", parent,
			strerror(errno));
		exit(1);
	}
	atexit(scratch_remove);
	return scratch;
}

int fuzz_lowest_fd(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);  /* the lowest free number */

	if (fd >= 0)
		close(fd);
	return fd;
}
