/* SPDX-License-Identifier: MIT */
/* cmd_gc.c — placeholder until implemented. */
#include "cli.h"

static int cmd_gc(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return fail("not implemented yet");
}

const struct command def_gc = {
	"gc", cmd_gc, "(not implemented yet)",
	"Usage: bus gc\n"
};

