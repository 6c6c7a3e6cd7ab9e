/* census.c - `heapindex census FILE [--top N]`: print the live-heap censuses
 * a program wrote with HEAPINDEX_CENSUS=FILE (sites/census.c) as tables.
 *
 * The file is appended to by every process and every SIGUSR2, so it holds
 * snapshots, each a "# heapindex census ..." line, a column-name line and
 * one tab-separated line per site, largest first; each is printed in turn. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char census_usage[] =
	"usage: heapindex census FILE [--top N]\n"
	"\n"
	"Print the live heap by allocation site, as written by a program run with\n"
	"HEAPINDEX_CENSUS=FILE (at exit, and on SIGUSR2), one table per snapshot.\n"
	"  --top N   only the N sites holding the most bytes (default 20; 0: all)\n";

/* Split line at tabs into at most max fields; returns the count. */
static int split(char *line, char **field, int max)
{
	int n = 0;
	line[strcspn(line, "\n")] = '\0';
	while (n < max) {
		field[n++] = line;
		char *tab = strchr(line, '\t');
		if (!tab)
			break;
		*tab = '\0';
		line = tab + 1;
	}
	return n;
}

int cmd_census(int argc, char **argv)
{
	const char *path = NULL;
	long top = 20;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(census_usage, stdout);
			return 0;
		} else if (!strcmp(argv[i], "--top") && i + 1 < argc) {
			char *end;
			top = strtol(argv[++i], &end, 10);
			if (*end || end == argv[i] || top < 0)
				cli_usage_error("census: --top '%s' is invalid: expected a whole number >= 0",
				                argv[i]);
		} else if (!path && argv[i][0] != '-') {
			path = argv[i];
		} else {
			cli_usage_error("census: unexpected argument '%s' (see heapindex census --help)",
			                argv[i]);
		}
	}
	if (!path)
		cli_usage_error("census: no FILE given (see heapindex census --help)");
	FILE *f = fopen(path, "r");
	if (!f)
		cli_usage_error("census: cannot read '%s'", path);
	char line[8192];
	long shown = 0, rest = 0, snapshots = 0;
	unsigned long long rest_bytes = 0, rest_chunks = 0;
	while (fgets(line, sizeof line, f)) {
		if (!strncmp(line, "# heapindex census ", 19)) {
			if (rest)
				printf("  ... %ld more sites: %llu bytes in %llu chunks\n", rest, rest_bytes,
				       rest_chunks);
			printf("%s%s", snapshots++ ? "\n" : "", line + 2);
			printf("%14s %9s  %-32s %-28s %s\n", "live bytes", "chunks", "function", "source",
			       "object");
			shown = rest = 0;
			rest_bytes = rest_chunks = 0;
			continue;
		}
		if (line[0] == '#')
			continue;
		char *field[7];
		if (split(line, field, 7) < 6)
			continue;
		if (top && shown >= top) {
			rest++;
			rest_bytes += strtoull(field[0], NULL, 10);
			rest_chunks += strtoull(field[1], NULL, 10);
			continue;
		}
		shown++;
		printf("%14s %9s  %-32s %-28s %s\n", field[0], field[1], field[3], field[4], field[5]);
	}
	if (rest)
		printf("  ... %ld more sites: %llu bytes in %llu chunks\n", rest, rest_bytes, rest_chunks);
	fclose(f);
	if (!snapshots) {
		fprintf(stderr, "heapindex: census: '%s' holds no census\n", path);
		return 1;
	}
	return 0;
}
