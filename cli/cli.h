/* cli.h - the `heapindex` command's subcommands and what they share. */
#ifndef HEAPINDEX_CLI_H
#define HEAPINDEX_CLI_H

#include <stddef.h>

int cmd_run(int argc, char **argv);
int cmd_record(int argc, char **argv); /* record.c */
int cmd_replay(int argc, char **argv); /* replay.c */
int cmd_scale(int argc, char **argv);  /* scale.c */
int cmd_census(int argc, char **argv); /* census.c */

/* Run command (execvp) as a child like system() does, in_child(arg) first in
 * the child if non-NULL; wait for it.  Returns its exit status (128+N if
 * signal N killed it) and fills ru and wall_seconds.  spawn.c. */
struct rusage;
int cli_spawn(const char *who, char **command, void (*in_child)(void *), void *arg,
              struct rusage *ru, double *wall_seconds);

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
