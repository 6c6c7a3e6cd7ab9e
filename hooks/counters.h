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
 * deltas -- what it added to the live chunks, bytes and metadata since its
 * last flush -- into live_totals with atomic adds, and each flush raises the
 * peaks to the new totals.  Flushing touches a line every thread writes, so
 * it must be rare: a slot looks at its deltas only when one of its two
 * budgets runs out (one per direction, in and out; every chunk event spends
 * its size plus COUNTER_EVENT_WEIGHT of its direction's: at most
 * CHECK_BUDGET / COUNTER_EVENT_WEIGHT = 32 events or 32 KiB each way between
 * looks, so the net change since a look is under 32 chunks and 32 KiB
 * either way), and flushes only if a delta exceeds FLUSH_AT (32 chunks, 32
 * KiB, 32 headers).  A thread that churns -- frees one chunk, allocates the
 * next -- keeps its deltas near zero and almost never flushes; one that
 * only allocates, or only frees (a consumer), flushes every 32 chunks.  So a
 * slot's unflushed deltas never exceed 64 chunks, 64 KiB of bytes and 64
 * headers of metadata (32 at the last look, 32 since), and with N slots
 * holding some (at most the threads alive: a thread flushes when it ends):
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
 *
 * Where the hooks count no bytes (hooks_counts_bytes 0: noop and the
 * memtable under side), every event spends just its weight, so the
 * budgets alone count the fast path's calls: that path makes one update
 * per call, the budget's, and
 * fast_mallocs and fast_frees are brought up to date at each look
 * (thread_figures).  A reader adding up another thread's slot while that
 * thread looks may then see the look's words half written, and count the
 * events since the previous look (at most 33 each way) twice or not at
 * all, for that moment; once the thread has ended, or between its looks,
 * the sum is exact, as with the counts of a fast path that keeps them.
 * The same goes for the child of a fork made while another thread looked
 * (that thread's figures, which the child keeps, may be off by as much),
 * and for a signal handler that allocates -- which POSIX does not allow
 * -- in the middle of its own thread's look: the look, resumed, writes
 * figures that may leave the handler's event out.  (The bytes, where
 * counted, have always had these two limits.)
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

#define CHECK_BUDGET ((int64_t)32 << 10)
#define COUNTER_EVENT_WEIGHT ((int64_t)1024)
#define FLUSH_AT_CHUNKS 32
#define FLUSH_AT_BYTES ((int64_t)32 << 10)

/* One thread's counts; written only by that thread.
 *
 * Chunk events come in two directions, in (a chunk joins the live heap)
 * and out, and each direction has a budget that every event spends (its
 * size plus COUNTER_EVENT_WEIGHT) and that a look refills to CHECK_BUDGET.
 * The fast path keeps no byte count of its own: its bytes since the last
 * look are what its budget spent less the events' weights, so a fast event
 * is one count and one budget update (thread_figures); where no bytes
 * are counted, the budget update alone.  A new slot's counters are as a
 * look leaves them (thread_counters_init). */
struct thread_counters {
	/* The fast path's: one count per call, which is both the call and the
	 * chunk it made live (malloc) or ended (free); where no bytes are
	 * counted, the count at the last look. */
	uint64_t fast_mallocs, fast_frees;
	int64_t budget_in, budget_out; /* look at the deltas when one falls below 0 */
	/* The general path's. */
	uint64_t calls[ENTRY_COUNT];
	uint64_t failed_allocs, lookups_found, lookups_missed;
	uint64_t lookup_cache_hits, lookup_cache_misses; /* lookup_cache.h */
	uint64_t slow_in, slow_out;  /* chunk events of the general path */
	int64_t extra_meta;          /* live pad beyond the header, general path */
	/* At the last look: the live bytes then, and the events so far. */
	int64_t looked_bytes;
	uint64_t looked_in, looked_out;
	int64_t flushed_chunks, flushed_bytes, flushed_meta; /* of the live figures, in live_totals */
	/* Sampled chunks' weights and weighted bytes added (meta_cost.c). */
	uint64_t meta_weight, meta_added;
	uint64_t meta_overdrafts;
};

/* A thread's figures as its counters give them now, derived once. */
struct thread_figures {
	uint64_t fast_in, fast_out; /* the fast path's calls, each also a chunk */
	int64_t live_chunks, live_bytes;
};

/* The fast path's calls: its counts, or where no bytes are counted
 * (!counts_bytes) those at the last look and the events each budget paid
 * for since, less the general path's (looked_in and looked_out are the
 * sums of both at the last look).  The live bytes: those at the last
 * look, plus what each budget spent since less its events' weights (none
 * where no bytes are counted: an event spends its weight alone). */
static inline struct thread_figures thread_figures(const struct thread_counters *k, int counts_bytes)
{
	struct thread_figures f;
	int64_t spent_in = CHECK_BUDGET - k->budget_in, spent_out = CHECK_BUDGET - k->budget_out;
	if (counts_bytes) {
		f.fast_in = k->fast_mallocs;
		f.fast_out = k->fast_frees;
	} else {
		f.fast_in = k->looked_in - k->slow_in + (uint64_t)spent_in / COUNTER_EVENT_WEIGHT;
		f.fast_out = k->looked_out - k->slow_out + (uint64_t)spent_out / COUNTER_EVENT_WEIGHT;
	}
	uint64_t in = f.fast_in + k->slow_in, out = f.fast_out + k->slow_out;
	f.live_chunks = (int64_t)(in - out);
	f.live_bytes = k->looked_bytes;
	if (counts_bytes)
		f.live_bytes += spent_in - COUNTER_EVENT_WEIGHT * (int64_t)(in - k->looked_in) -
		                (spent_out - COUNTER_EVENT_WEIGHT * (int64_t)(out - k->looked_out));
	return f;
}

/* A look, given the figures now (thread_figures with counts_bytes): bring
 * the fast path's counts up to date, keep the live bytes and the events so
 * far, and refill the budgets. */
static inline void thread_counters_look(struct thread_counters *k, const struct thread_figures *f,
                                        int counts_bytes)
{
	if (!counts_bytes) {
		k->fast_mallocs = f->fast_in;
		k->fast_frees = f->fast_out;
	}
	k->looked_bytes = f->live_bytes;
	k->looked_in = f->fast_in + k->slow_in;
	k->looked_out = f->fast_out + k->slow_out;
	k->budget_in = CHECK_BUDGET;
	k->budget_out = CHECK_BUDGET;
}

/* The counters of a new slot (all zero): nothing counted, the budgets as a
 * look leaves them, so that the figures derived from them are 0. */
static inline void thread_counters_init(struct thread_counters *k)
{
	k->budget_in = CHECK_BUDGET;
	k->budget_out = CHECK_BUDGET;
}

/* The published process-wide figures (atomics). */
struct live_totals {
	int64_t chunks, bytes, meta;
	int64_t peak_chunks, peak_bytes, peak_meta;
};

#endif /* HEAPINDEX_COUNTERS_H */
