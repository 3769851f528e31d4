/* SPDX-License-Identifier: MIT */
/*
 * cmd_gc.c — bus gc: remove the segments of dead buses.
 *
 * The deciding is libbus's (gc.c), the same sweep busd runs when it starts:
 * only the caller's own regular files, of buses whose busd is gone, that no
 * process has open or maps. This file prints what it did and why.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gc.h"

struct gc_out {
	int dry_run;
	int n;          /* files printed */
	int failed;     /* removals that failed */
};

static const char *action(const struct gc_out *g, const struct gc_file *f)
{
	if (!f->removed)
		return "kept";
	return g->dry_run ? "would remove" : "removed";
}

/* The reason in words, with what makes it specific. */
static void detail(char *buf, size_t n, const struct gc_file *f)
{
	const char *why = gc_why_str(f->why);

	switch (f->why) {
	case GC_DEAD:
	case GC_LIVE:
		snprintf(buf, n, "%s%s%s%s", why, f->bus_dir[0] ? " (" : "", f->bus_dir,
			 f->bus_dir[0] ? ")" : "");
		break;
	case GC_NOT_OURS:
		snprintf(buf, n, "%s (uid %u)", why, f->uid);
		break;
	case GC_UNSURE:
	case GC_FAILED:
		snprintf(buf, n, "%s: %s%s%s%s", why, strerror(f->err), f->bus_dir[0] ? " (" : "",
			 f->bus_dir, f->bus_dir[0] ? ")" : "");
		break;
	default:
		snprintf(buf, n, "%s", why);
	}
}

static void on_file(void *arg, const struct gc_file *f)
{
	struct gc_out *g = arg;
	char d[4400], sz[16];

	if (f->why == GC_FAILED)
		g->failed++;
	detail(d, sizeof(d), f);
	if (cli.json) {
		printf("%s\n  {\"file\":", g->n ? "," : "");
		json_str(stdout, f->name, strlen(f->name));
		printf(",\"bus_id\":\"%s\",\"bus_dir\":", f->bus_id);
		if (f->bus_dir[0])
			json_str(stdout, f->bus_dir, strlen(f->bus_dir));
		else
			printf("null");
		printf(",\"anchor\":%s,\"bytes\":%llu,\"uid\":%u,\"action\":\"%s\","
		       "\"reason\":\"%s\",\"detail\":", f->anchor ? "true" : "false",
		       (unsigned long long)f->size, f->uid,
		       !f->removed ? "kept" : g->dry_run ? "would-remove" : "removed",
		       gc_why_key(f->why));
		json_str(stdout, d, strlen(d));
		printf("}");
	} else if (cli.tty) {
		if (!g->n)
			printf("%-12s %-40s %6s  %s\n", "ACTION", "FILE", "SIZE", "WHY");
		fmt_size(sz, sizeof(sz), f->size);
		printf("%-12s %-40s %6s  %s%s\n", action(g, f), f->name, sz, d,
		       f->anchor ? " [anchor]" : "");
	} else {
		printf("%s\t%s\t%llu\t%s\t%s\n", !f->removed ? "kept" :
		       g->dry_run ? "would-remove" : "removed", f->name,
		       (unsigned long long)f->size, gc_why_key(f->why), d);
	}
	g->n++;
}

static int cmd_gc(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "shm", required_argument, NULL, 's' },
		{ 0 },
	};
	struct gc_out g = { 0 };
	struct gc_opts o = { .on_file = on_file, .arg = &g };
	struct gc_stats st;
	const char *shm = "/dev/shm";
	char sz[32];
	int c, r;

	optind = 0;
	while ((c = getopt_long(argc, argv, "n", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			g.dry_run = o.dry_run = 1;
			break;
		case 's':
			shm = optarg;
			break;
		default:
			return usage_error("bad option");
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	o.shm_dirfd = open(shm, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (o.shm_dirfd < 0)
		return fail("segment directory %s: %s", shm, strerror(errno));
	if (cli.json) {
		printf("{\"shm_dir\":");
		json_str(stdout, shm, strlen(shm));
		printf(",\"dry_run\":%s,\"files\":[", g.dry_run ? "true" : "false");
	}
	r = gc_sweep(&o, &st);
	close(o.shm_dirfd);
	if (r < 0) {
		if (cli.json)
			printf("]}\n");
		return fail("segment directory %s: %s", shm, strerror(-r));
	}
	if (st.bytes < 1024)
		snprintf(sz, sizeof(sz), "%llu bytes", (unsigned long long)st.bytes);
	else
		fmt_size(sz, sizeof(sz), st.bytes);
	if (cli.json) {
		printf("%s],\"buses\":%u,\"dead\":%u,\"cleared\":%u,\"removed\":%u,\"kept\":%u,"
		       "\"bytes\":%llu,\"failed\":%d}\n", g.n ? "\n" : "", st.buses, st.dead,
		       st.cleared, st.removed, st.kept, (unsigned long long)st.bytes, g.failed);
	} else if (!st.removed && !st.kept) {
		note("bus gc: no bus files in %s\n", shm);
	} else {
		note("bus gc: %s %u file%s (%s) of %u dead bus%s in %s; kept %u file%s\n",
		     g.dry_run ? "would remove" : "removed", st.removed, st.removed == 1 ? "" : "s",
		     sz, st.dead, st.dead == 1 ? "" : "es", shm, st.kept, st.kept == 1 ? "" : "s");
	}
	fflush(stdout);
	if (g.failed)
		return fail("%d file%s could not be removed", g.failed, g.failed == 1 ? "" : "s");
	return 0;
}

const struct command def_gc = {
	"gc", cmd_gc, "remove the leftover segments of dead buses",
	  "Usage: bus gc [-n|--dry-run] [--shm DIR] [--json]\n"
	  "Remove what buses whose busd is gone for good left in the segment\n"
	  "directory (default /dev/shm): their topics' segments (bus-ID.TOPIC,\n"
	  "bus-ID.TOPIC@cons) and then the anchor bus-ID that names their bus.\n"
	  "busd does the same sweep when it starts; `bus gc` needs no busd.\n"
	  "\n"
	  "A file is removed only when all of these hold:\n"
	  "  - its bus is dead: no busd holds the lock BUSDIR/busd.lock;\n"
	  "  - it is a regular file of yours (never another user's, even as root);\n"
	  "  - no process maps it or has it open (seen in /proc/PID/maps, and\n"
	  "    by the kernel refusing a write lease, which covers every user);\n"
	  "  - the same holds for the other half of its topic (NAME, NAME@cons).\n"
	  "Files of live buses, and bus-ID.* files that no anchor claims, are kept.\n"
	  "\n"
	  "Prints each file it looked at: what happened to it, its size and why;\n"
	  "a table on a terminal, else tab-separated lines\n"
	  "  ACTION FILE BYTES REASON DETAIL\n"
	  "with ACTION removed, would-remove or kept, and REASON one of dead, live,\n"
	  "unsure, bad_anchor, not_ours, not_file, mapped, in_use, failed, pair,\n"
	  "remain, orphan. A summary goes to stderr (not with -q).\n"
	  "\n"
	  "  -n, --dry-run  decide and print, remove nothing\n"
	  "  --shm DIR      the segment directory (busd --shm; default /dev/shm)\n"
	  "  --json         one object: shm_dir, dry_run, files (file, bus_id,\n"
	  "                 bus_dir, anchor, bytes, uid, action, reason, detail;\n"
	  "                 action and reason as above) and the counts buses,\n"
	  "                 dead, cleared, removed (would be, in a dry run), kept,\n"
	  "                 bytes, failed\n"
	  "Exit status: 0, or 1 if a file could not be removed.\n"
};
