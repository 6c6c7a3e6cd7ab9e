/* support.h - running programs from tests.
 *
 * Hook tests run real programs with a hook library preloaded.  The test
 * runner itself must never be preloaded, and forking a copy of it can hang
 * Criterion, so programs are started with posix_spawn and waited for. */
#ifndef HEAPINDEX_TEST_SUPPORT_H
#define HEAPINDEX_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

struct program_result {
	int status;      /* exit status, or 128 + signal */
	char *out;       /* everything written to stdout, NUL-terminated (malloc'd) */
	size_t out_len;
	char *err;       /* and to stderr */
	size_t err_len;
};

/* The repository root: $HEAPINDEX_ROOT, or the current directory. */
const char *repo_root(void);
/* "<root>/build/lib/libheapindex-<index>.so" in a static buffer, or NULL for "none". */
const char *hook_library(const char *index);

/* Run argv[0] (searched in PATH) with LD_PRELOAD=preload (NULL: none) and
 * the extra "NAME=value" settings in env (NULL-terminated, may be NULL). */
struct program_result run_program(char *const argv[], const char *preload,
                                  const char *const env[]);
void program_result_free(struct program_result *r);

/* xorshift64*: the tests' seeded random numbers (state must not be 0). */
uint64_t test_random(uint64_t *state);

#endif
