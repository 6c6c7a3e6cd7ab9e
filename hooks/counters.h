/* counters.h - the hooks' statistics, kept per thread without a lock.
 *
 * Each thread counts its own calls, failures, lookups and the chunks and
 * bytes it made live (a thread that frees chunks others allocated counts
 * negative): plain increments in its own slot (threads.h), no atomic
 * instruction, no shared cache line.  process_stats.c adds the slots up
 * when it writes them: call counts and live figures are then exact (slots
 * are never unmapped, so the counts of threads that ended are kept).
 *
 * Peaks need a process-wide running total, which per-thread counts do not
 * give for free.  Each slot therefore publishes ("flushes") its live
 * deltas into live_total with atomic adds now and then, and each flush
 * raises the peaks to the new totals.  A slot flushes when its `budget` runs
 * out: every chunk event spends its size plus COUNTER_EVENT_WEIGHT of it, so
 * a slot holds back at most FLUSH_BUDGET / COUNTER_EVENT_WEIGHT = 64 chunk
 * events and less than FLUSH_BUDGET = 64 KiB of bytes (a bigger chunk
 * flushes at once).  Hence, with N slots holding unflushed deltas (at most
 * the threads alive; a thread flushes when it ends):
 *
 *     |reported peak - true peak| < N * 64 chunks, N * 64 KiB bytes and
 *                                   N * 64 * header_bytes of metadata,
 *
 * because the published total is never further than that from the true
 * live figure, at the moment of the true peak or at any flush.  The live
 * figures written at exit are exact (every slot's delta is added), and the
 * peaks written are at least those.  tests/progs/peak_bound.c checks the
 * bound with threads whose true peak is known.
 *
 * Metadata (header + links + alignment pad) is header_bytes per chunk on
 * the fast paths; only the pad beyond that (aligned chunks) is counted
 * apart, as extra_meta, on the slow paths, which flush at once.
 */
#ifndef HEAPINDEX_COUNTERS_H
#define HEAPINDEX_COUNTERS_H

#include <stdint.h>

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

#define FLUSH_BUDGET ((int64_t)64 << 10)
#define COUNTER_EVENT_WEIGHT ((int64_t)1024)

/* One thread's counts; written only by that thread. */
struct thread_counters {
	/* The fast path's: one count per call, which is both the call and the
	 * chunk it made live (malloc) or ended (free). */
	uint64_t fast_mallocs, fast_frees;
	int64_t bytes;       /* live bytes by this thread's calls, both paths */
	int64_t budget;      /* flush when it falls below 0 */
	/* The general path's. */
	uint64_t calls[ENTRY_COUNT];
	uint64_t failed_allocs, lookups_found, lookups_missed;
	int64_t chunks, extra_meta; /* live, by this thread's general calls */
	int64_t flushed_chunks, flushed_bytes, flushed_meta; /* of the live figures, in live_totals */
};

/* The live chunks of a thread's calls, both paths. */
static inline int64_t thread_live_chunks(const struct thread_counters *k)
{
	return k->chunks + (int64_t)(k->fast_mallocs - k->fast_frees);
}

/* The published process-wide figures (atomics). */
struct live_totals {
	int64_t chunks, bytes, meta;
	int64_t peak_chunks, peak_bytes, peak_meta;
};

#endif /* HEAPINDEX_COUNTERS_H */
