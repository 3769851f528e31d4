/* SPDX-License-Identifier: MIT */
/* cmd_bench.c — placeholder until implemented. */
#include "cli.h"

static int cmd_bench(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return fail("not implemented yet");
}

const struct command def_bench = {
	"bench", cmd_bench, "(not implemented yet)",
	"Usage: bus bench\n"
};

