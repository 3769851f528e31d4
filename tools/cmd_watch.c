/* SPDX-License-Identifier: MIT */
/* cmd_watch.c — placeholder until implemented. */
#include "cli.h"

static int cmd_top(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return fail("not implemented yet");
}

const struct command def_top = {
	"top", cmd_top, "(not implemented yet)",
	"Usage: bus top\n"
};

static int cmd_hz(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return fail("not implemented yet");
}

const struct command def_hz = {
	"hz", cmd_hz, "(not implemented yet)",
	"Usage: bus hz\n"
};

