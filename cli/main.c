/* main.c - `heapindex`: run programs under a heap index and measure them.
 *
 * One table names every command.  This binary runs the ones written in C;
 * the Python ones (bench, compare, report, tune) are run by the `heapindex`
 * shell script that calls this binary for everything else (the root
 * ./heapindex, or the installed one), so they appear in --help but this
 * binary only points to the script. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv); /* NULL: a Python script */
	const char *summary;
} commands[] = {
	{ "run", cmd_run, "run a program with a heap index preloaded and print its costs" },
	{ "record", cmd_record, "run a program and write a trace of its heap events" },
	{ "replay", cmd_replay, "play a trace back against the indexes in-process and time them" },
	{ "scale", cmd_scale, "time the indexes on synthetic heaps of 10^3 to 10^7 chunks" },
	{ "census", cmd_census, "print the live heap by allocation site (HEAPINDEX_CENSUS)" },
	{ "bench", NULL, "run the workload x index x allocator benchmark matrix" },
	{ "compare", NULL, "time one command under every index with hyperfine" },
	{ "report", NULL, "turn a bench results directory into tables and plots" },
	{ "tune", NULL, "sweep the memtable's bin shift and recommend one" },
};
#define COMMAND_COUNT (sizeof commands / sizeof *commands)

static void print_usage(FILE *out)
{
	fputs("usage: heapindex COMMAND [ARGS...]\n"
	      "\n"
	      "Heap chunk indexing: find the live heap chunk containing any address.\n"
	      "\n"
	      "commands:\n",
	      out);
	for (size_t i = 0; i < COMMAND_COUNT; i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fputs("\n`heapindex COMMAND --help` describes each command.\n", out);
}

/* "run, record, ..., compare, report or tune" for the error line. */
static const char *command_names(void)
{
	static char list[256];
	for (size_t i = 0; i < COMMAND_COUNT; i++)
		snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
		         i == 0 ? "" : i + 1 < COMMAND_COUNT ? ", " : " or ", commands[i].name);
	return list;
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		print_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < COMMAND_COUNT; i++) {
		if (strcmp(argv[1], commands[i].name) != 0)
			continue;
		if (!commands[i].run)
			cli_usage_error("%s is a Python script: run it through the heapindex script "
			                "(./heapindex %s in the source tree), not this binary",
			                commands[i].name, commands[i].name);
		return commands[i].run(argc - 1, argv + 1);
	}
	cli_usage_error("unknown command '%s': expected %s (see heapindex --help)", argv[1],
	                command_names());
}
