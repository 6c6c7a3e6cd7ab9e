/* cli.h - the `heapindex` command's subcommands and what they share. */
#ifndef HEAPINDEX_CLI_H
#define HEAPINDEX_CLI_H

#include <stddef.h>
#include <stdint.h>

/* The subcommands, one file each; main.c's table dispatches to them. */
int cmd_run(int argc, char **argv);    /* run.c */
int cmd_record(int argc, char **argv); /* record.c */
int cmd_replay(int argc, char **argv); /* replay.c */
int cmd_scale(int argc, char **argv);  /* scale.c */
int cmd_census(int argc, char **argv); /* census.c */

/* --- common.c: what main and every subcommand use ---------------------------- */

/* One line on stderr, then exit 2: the error convention of every subcommand. */
__attribute__((noreturn, format(printf, 1, 2))) void cli_usage_error(const char *fmt, ...);
/* The directory holding libheapindex-*.so: HEAPINDEX_LIB_DIR if set; else
 * the path in the file lib-dir beside this binary (installed); else ../lib
 * from it (the source tree's build/bin -> build/lib). */
const char *cli_lib_dir(void);
/* 1 if name is a built index ("none" included), else 0. */
int cli_index_known(const char *name);
/* "none, noop, memtable, ..." for messages. */
const char *cli_index_names(void);

/* --- spawn.c ------------------------------------------------------------------ */

/* Run command (execvp) as a child like system() does, in_child(arg) first in
 * the child if non-NULL; wait for it.  Returns its exit status (128+N if
 * signal N killed it) and fills ru and wall_seconds. */
struct rusage;
int cli_spawn(const char *who, char **command, void (*in_child)(void *), void *arg,
              struct rusage *ru, double *wall_seconds);

/* --- measure.c ---------------------------------------------------------------- */

/* Option errors and counts (record, replay, scale), and what the commands
 * that drive indexes in-process share (replay, scale).  cmd names the
 * command in error lines; every error is one line and exit 2. */
struct index_ops;
__attribute__((noreturn)) void cli_bad_option(const char *cmd, char **argv, int opt);
/* A whole number in [min, max]; 1e6 and 10^6 are accepted too. */
uint64_t cli_parse_count(const char *cmd, const char *option, const char *text, uint64_t min,
                         uint64_t max);
/* "all" or a comma-separated list of linked indexes, into out (max entries). */
size_t cli_select_indexes(const char *cmd, const char *list, const struct index_ops **out,
                          size_t max);
const char *cli_linked_index_names(void); /* "memtable, bitmap, ..." */
uint64_t cli_now_ns(void);                /* CLOCK_MONOTONIC */
uint64_t cli_cpu_ns(void);                /* this thread's CPU time */
uint64_t cli_next_random(uint64_t *state);
void *cli_xmalloc(const char *cmd, size_t n, const char *what);
/* An index answered wrongly: one line on stderr, exit 1. */
__attribute__((noreturn, format(printf, 2, 3))) void cli_wrong(const char *cmd, const char *fmt, ...);
double cli_median(double *v, size_t n);   /* sorts v */

#endif /* HEAPINDEX_CLI_H */
