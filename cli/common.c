/* common.c - what main and every subcommand share: the one-line error exit,
 * where the hook libraries are, and which indexes were built.  main.c only
 * dispatches; each subcommand's file includes cli.h and calls these. */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index_list.h"

/* The source tree's path from this binary to the libraries: build/bin ->
 * build/lib.  An installed binary finds its own in LIB_DIR_FILE beside it. */
#define LIB_DIR_FROM_BUILD "../lib"
#define LIB_DIR_FILE "lib-dir"

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

/* dir (a directory of a canonical path) joined with rel, its leading "../"
 * taken off dir rather than kept, so messages show /x/build/lib and not
 * /x/build/bin/../lib. */
static void join_relative(char *dir, size_t size, const char *rel)
{
	for (;;) {
		if (strncmp(rel, "../", 3) == 0 || strcmp(rel, "..") == 0) {
			char *slash = strrchr(dir, '/');
			if (slash)
				*slash = '\0';
			rel += rel[2] ? 3 : 2;
		} else if (strncmp(rel, "./", 2) == 0) {
			rel += 2;
		} else {
			break;
		}
	}
	if (strcmp(rel, ".") != 0 && *rel)
		snprintf(dir + strlen(dir), size - strlen(dir), "/%s", rel);
	if (!dir[0])
		snprintf(dir, size, "/");
}

/* The path in the file LIB_DIR_FILE in dir (one line: absolute, or relative
 * to dir), or NULL if there is no such file.  `make install` writes it, so
 * the installed binary is the build's own, copied (mk/install.mk). */
static const char *read_lib_dir_file(const char *dir, char *path, size_t size)
{
	char file[4096 + sizeof "/" LIB_DIR_FILE];
	snprintf(file, sizeof file, "%s/%s", dir, LIB_DIR_FILE);
	FILE *f = fopen(file, "r");
	if (!f)
		return NULL;
	if (!fgets(path, (int)size, f))
		path[0] = '\0';
	fclose(f);
	path[strcspn(path, "\n")] = '\0';
	if (!path[0])
		cli_usage_error("%s is empty: it should name the directory of libheapindex-*.so", file);
	return path;
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
	ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
	if (n <= 0 || (size_t)n >= sizeof dir - 1)
		cli_usage_error("cannot find my own executable in /proc/self/exe");
	dir[n] = '\0';
	*strrchr(dir, '/') = '\0'; /* the binary's directory: /proc/self/exe is absolute */
	char configured[4096];
	const char *rel = read_lib_dir_file(dir, configured, sizeof configured);
	if (rel && rel[0] == '/')
		snprintf(dir, sizeof dir, "%s", rel);
	else
		join_relative(dir, sizeof dir, rel ? rel : LIB_DIR_FROM_BUILD);
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
