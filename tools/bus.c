/* SPDX-License-Identifier: MIT */
/*
 * bus — the command-line tool: list and watch a bus, publish and tail from a
 * shell, replay and verify logs. See bus(1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

struct cli cli;

/* Every command: defined next to its code (cmd_*.c). */
static const struct command *const commands[] = {
	&def_ls, &def_info, &def_top, &def_create, &def_delete, &def_pub, &def_tail,
	&def_hz, &def_replay, &def_export, &def_log, &def_gc, &def_bench,
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void help(FILE *f)
{
	fprintf(f,
		"Usage: bus [--bus DIR] [--json] [-q] [-v] COMMAND [ARGS]\n"
		"Inspect and use a bus from a shell.\n\n"
		"Commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-9s %s\n", commands[i]->name, commands[i]->summary);
	fprintf(f,
		"  help      this help, or `bus help COMMAND`\n\n"
		"Global options:\n"
		"  --bus DIR   the bus to use (default: $BUS_ADDRESS, else the per-user bus\n"
		"              in $XDG_RUNTIME_DIR/bus); start one with `make run` or busd(8)\n"
		"  --json      machine-readable output for listings\n"
		"  -q, -v      quieter, more verbose\n"
		"  --version   the version\n\n"
		"Exit status: 0 ok, 1 error, 2 usage. `bus COMMAND --help` for details.\n");
}

static const struct command *find(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(commands[i]->name, name))
			return commands[i];
	return NULL;
}

static int run(int argc, char **argv, char **args);

int main(int argc, char **argv)
{
	char **args = calloc((size_t)argc + 1, sizeof(*args));
	int r;

	if (!args)
		return 1;
	r = run(argc, argv, args);
	free(args);
	return r;
}

static int run(int argc, char **argv, char **args)
{
	const struct command *c;
	int n = 0;

	cli.tty = isatty(1);
	cli.cmd = "bus";
	/* Global options may come anywhere before "--"; the rest is the
	 * command's. */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--")) {
			while (i < argc)
				args[n++] = argv[i++];
			break;
		}
		if (!strcmp(a, "--bus") || !strcmp(a, "-b")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "bus: --bus needs a directory\nTry 'bus --help'.\n");
				return EXIT_USAGE;
			}
			cli.bus_dir = argv[++i];
		} else if (!strncmp(a, "--bus=", 6)) {
			cli.bus_dir = a + 6;
		} else if (!strcmp(a, "--json")) {
			cli.json = 1;
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			cli.quiet = 1;
		} else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			cli.verbose = 1;
		} else if (!strcmp(a, "--version") || !strcmp(a, "-V")) {
			printf("bus %s\n", bus_version());
			return 0;
		} else if (!n && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
			help(stdout);
			return 0;
		} else {
			args[n++] = argv[i];
		}
	}
	if (!n) {
		help(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(args[0], "help")) {
		if (n == 1) {
			help(stdout);
			return 0;
		}
		if (!(c = find(args[1]))) {
			fprintf(stderr, "bus: no command '%s'\nTry 'bus help'.\n", args[1]);
			return EXIT_USAGE;
		}
		fputs(c->usage, stdout);
		return 0;
	}
	if (!(c = find(args[0]))) {
		fprintf(stderr, "bus: no command '%s'\nTry 'bus help'.\n", args[0]);
		return EXIT_USAGE;
	}
	cli.cmd = c->name;
	for (int i = 1; i < n; i++) {
		if (!strcmp(args[i], "--"))
			break;
		if (!strcmp(args[i], "--help") || !strcmp(args[i], "-h")) {
			fputs(c->usage, stdout);
			return 0;
		}
	}
	return c->run(n, args);
}
