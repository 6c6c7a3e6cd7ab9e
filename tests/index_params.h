/* index_params.h - every index as Criterion test parameters.
 *
 * Names are copied by value: Criterion may run a test in a freshly started
 * process, where pointers into the runner's memory would mean nothing. */
#ifndef HEAPINDEX_TEST_INDEX_PARAMS_H
#define HEAPINDEX_TEST_INDEX_PARAMS_H

#include <criterion/parameterized.h>
#include <stddef.h>

struct index_name {
	char name[32];
};

/* Every index built; with_silent 0 leaves out those that answer no lookups
 * by design (index_ops.caps: noop). */
struct criterion_test_params index_params(int with_silent);

/* Every index with every chunk metadata placement it takes (its caps,
 * hooks/index.h; hooks/chunk.h): the hook tests run under each. */
struct index_meta {
	char name[32];
	char meta[16];     /* "header", "trailer", "side" */
	char setting[48];  /* "HEAPINDEX_META=<meta>" */
};
struct criterion_test_params index_meta_params(int with_noop);

/* The index's capability bits (hooks/index.h), 0 for an unknown name. */
unsigned index_caps(const char *index);

/* 1 if the index answers lookups (INDEX_ANSWERS_LOOKUPS), 0 for one that
 * indexes nothing by design (noop). */
int index_answers_lookups(const char *index);

/* "EXPECT_LOOKUP=1" for an index that answers lookups, else "EXPECT_LOOKUP=0":
 * the setting the test programs read to decide whether to check lookups. */
const char *expect_lookup_setting(const char *index);

/* A bad setting (e.g. "HEAPINDEX_BIN_SHIFT=3") must stop a program preloaded
 * with the memtable library before it runs: exit 2, nothing on stdout, and
 * one stderr line naming the variable and containing want (the valid range),
 * or any text if want is NULL. */
void assert_setting_rejected(const char *setting, const char *want);

/* ops's statistics (index_ops.write_stats) as one JSON object in buf, of
 * size bytes: 0, or 1 if they did not fit. */
struct index_ops;
int index_stats_json(const struct index_ops *ops, char *buf, size_t size);
/* The unsigned field name of ops's statistics; the test fails if there is
 * none. */
unsigned long long index_stat(const struct index_ops *ops, const char *name);

/* The integer after "name": in a JSON text of statistics; the test fails
 * if there is none. */
long long json_stat(const char *json, const char *name);

/* A HEAPINDEX_STATS file (hooks/config.h) for the programs a test runs
 * under the hooks: pass setting in their env; read takes what the hooks
 * wrote (malloc'd, NUL-terminated, "" if nothing) and removes the file.
 * tag tells the files of one test process apart. */
struct stats_file {
	char path[64];
	char setting[96]; /* "HEAPINDEX_STATS=<path>" */
};
void stats_file_open(struct stats_file *f, const char *tag);
char *stats_file_read(struct stats_file *f);

/* "<root>/build/tests/progs/<name>" in a static buffer. */
const char *test_program(const char *name);

#endif
