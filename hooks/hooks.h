/* hooks.h - what the interposer (hooks.c) shares with the code linked into
 * the hook libraries beside it: the exit statistics (process_stats.c), the
 * C++ operators (cxx.c), the shadow-record check (verify.c), the site
 * census (sites/census.c) and the trace recorder
 * (workloads/trace/record_index.c). Internal to the hook
 * libraries. */
#ifndef HEAPINDEX_HOOKS_H
#define HEAPINDEX_HOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "lock.h"

/* The allocator entry points the hooks replace, in the order stats list them. */
#define HOOK_ENTRY_POINTS(X)                                                   \
	X(malloc) X(free) X(calloc) X(realloc) X(reallocarray) X(memalign)     \
	X(posix_memalign) X(aligned_alloc) X(valloc) X(pvalloc)                \
	X(malloc_usable_size)

enum hook_entry {
#define HOOK_ENUM(name) ENTRY_##name,
	HOOK_ENTRY_POINTS(HOOK_ENUM)
#undef HOOK_ENUM
	ENTRY_COUNT
};

/* Updated under hooks_lock. */
struct hook_counters {
	uint64_t calls[ENTRY_COUNT];
	uint64_t failed_allocs;
	uint64_t lookups_found, lookups_missed;
	uint64_t live_chunks, live_bytes, live_meta_bytes;
	uint64_t peak_live_chunks, peak_live_bytes, peak_meta_bytes;
};

extern spinlock_t hooks_lock;
extern struct hook_counters hooks_counters;
/* Relaxed atomic counts of calls that take no lock (free(NULL),
 * malloc_usable_size, rejected arguments), apart from hooks_counters: an
 * atomic add and a locked plain ++ on one word race (helgrind found it).
 * A call's count is hooks_counters.calls[e] + hooks_calls_unlocked[e]. */
extern uint64_t hooks_calls_unlocked[ENTRY_COUNT];
extern struct heapindex_config hooks_config;
extern size_t hooks_header_bytes;      /* struct chunk + the index's links */
extern const char *hooks_allocator;    /* file name of the library behind us */
extern double hooks_start_seconds;     /* CLOCK_MONOTONIC at initialisation */

double monotonic_seconds(void);

/* The C entry points' own paths, for the C++ operators (cxx.c), which
 * capture the site themselves: malloc's, memalign's (align rounded up to a
 * power of two, at least 16) and free's, each counted as a call of entry.
 * On failure NULL with errno ENOMEM (EINVAL: an impossible alignment). */
void *hooks_alloc(size_t size, uintptr_t site, enum hook_entry entry);
void *hooks_alloc_aligned(size_t align, size_t size, uintptr_t site, enum hook_entry entry);
void hooks_free(void *p, enum hook_entry entry);

/* Append this process's statistics as one JSON line to hooks_config.stats_path. */
void process_stats_write(void);

#endif /* HEAPINDEX_HOOKS_H */
