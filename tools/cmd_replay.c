/* SPDX-License-Identifier: MIT */
/* cmd_replay.c — placeholder until implemented. */
#include "cli.h"

static int cmd_replay(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return fail("not implemented yet");
}

const struct command def_replay = {
	"replay", cmd_replay, "(not implemented yet)",
	"Usage: bus replay\n"
};

static int cmd_export(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return fail("not implemented yet");
}

const struct command def_export = {
	"export", cmd_export, "(not implemented yet)",
	"Usage: bus export\n"
};

