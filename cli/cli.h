/* cli.h - the `heapindex` command's subcommands and what they share. */
#ifndef HEAPINDEX_CLI_H
#define HEAPINDEX_CLI_H

#include <stddef.h>

int cmd_run(int argc, char **argv);

/* The directory holding libheapindex-*.so: ../lib next to this binary. */
const char *cli_lib_dir(void);
/* 1 if name is a built index ("none" included), else 0. */
int cli_index_known(const char *name);
/* "none, noop, memtable, ..." for messages. */
const char *cli_index_names(void);
/* Path of libjemalloc.so.2, or NULL if it is not installed. */
const char *cli_jemalloc_path(void);

/* One line on stderr, then exit 2: the error convention of every subcommand. */
__attribute__((noreturn, format(printf, 1, 2))) void cli_usage_error(const char *fmt, ...);

#endif /* HEAPINDEX_CLI_H */
