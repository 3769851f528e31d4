/* SPDX-License-Identifier: MIT */
/* cmd_log.c — placeholder until implemented. */
#include "cli.h"

static int cmd_log(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return fail("not implemented yet");
}

const struct command def_log = {
	"log", cmd_log, "(not implemented yet)",
	"Usage: bus log\n"
};

