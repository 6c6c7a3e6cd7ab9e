/* main.c - `heapindex`: run programs under a heap index and measure them. */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index_list.h"

static const char usage[] =
	"usage: heapindex COMMAND [ARGS...]\n"
	"\n"
	"Heap chunk indexing: find the live heap chunk containing any address.\n"
	"\n"
	"commands:\n"
	"  run      run a program with a heap index preloaded and print its costs\n"
	"  record   run a program and write a trace of its heap events\n"
	"  replay   play a trace back against the indexes in-process and time them\n"
	"  scale    time the indexes on synthetic heaps of 10^3 to 10^7 chunks\n"
	"  census   print the live heap by allocation site (HEAPINDEX_CENSUS)\n"
	"  bench    run the workload x index x allocator benchmark matrix\n"
	"  report   turn a bench results directory into tables and plots\n"
	"\n"
	"`heapindex COMMAND --help` describes each command.\n";

__attribute__((noreturn, format(printf, 1, 2))) void cli_usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("heapindex: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

const char *cli_lib_dir(void)
{
	static char dir[4096];
	if (dir[0])
		return dir;
	const char *env = getenv("HEAPINDEX_LIB_DIR");
	if (env && *env) {
		snprintf(dir, sizeof dir, "%s", env);
		return dir;
	}
	ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 8);
	if (n <= 0)
		cli_usage_error("cannot find my own executable in /proc/self/exe");
	dir[n] = '\0';
	char *slash = strrchr(dir, '/'); /* .../build/bin/heapindex -> .../build/lib */
	*slash = '\0';
	slash = strrchr(dir, '/');
	char *tail = slash ? slash + 1 : dir;
	snprintf(tail, sizeof dir - (size_t)(tail - dir), "lib");
	return dir;
}

#define INDEX_NAME(name) #name,
static const char *const index_names[] = { "none", HEAPINDEX_FOR_EACH_INDEX(INDEX_NAME) NULL };

int cli_index_known(const char *name)
{
	for (int i = 0; index_names[i]; i++)
		if (strcmp(index_names[i], name) == 0)
			return 1;
	return 0;
}

const char *cli_index_names(void)
{
	static char list[512];
	if (!list[0])
		for (int i = 0; index_names[i]; i++)
			snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
			         i ? ", " : "", index_names[i]);
	return list;
}

const char *cli_jemalloc_path(void)
{
	static const char *const candidates[] = {
		"/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
		"/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
		"/usr/lib64/libjemalloc.so.2",
		"/usr/lib/libjemalloc.so.2",
		"/usr/local/lib/libjemalloc.so.2",
	};
	for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++)
		if (access(candidates[i], R_OK) == 0)
			return candidates[i];
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (strcmp(argv[1], "record") == 0)
		return cmd_record(argc - 1, argv + 1);
	if (strcmp(argv[1], "replay") == 0)
		return cmd_replay(argc - 1, argv + 1);
	if (strcmp(argv[1], "scale") == 0)
		return cmd_scale(argc - 1, argv + 1);
	if (strcmp(argv[1], "census") == 0)
		return cmd_census(argc - 1, argv + 1);
	cli_usage_error("unknown command '%s': expected run, record, replay, scale, census, bench or report (see heapindex --help)",
	                argv[1]);
}
