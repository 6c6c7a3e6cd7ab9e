/* hooks.h - what the interposer (hooks.c) shares with its statistics
 * (counters.c, process_stats.c), verify.c, the census and the trace
 * recorder, and the entry points other files of the hook libraries call
 * (the C++ operators, cxx.c).  Internal to the hook libraries. */
#ifndef HEAPINDEX_HOOKS_H
#define HEAPINDEX_HOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "counters.h"
#include "lock.h"
#include "threads.h"

/* The optional features: any of them set in threads_slot_flags (and so in
 * every slot's flags) sends that thread's calls down the general path. */
#define HOOKS_SITES 0x1u  /* sites other than the return address (sites.h)   */
#define HOOKS_CENSUS 0x2u /* HEAPINDEX_CENSUS                                */
#define HOOKS_VERIFY 0x4u /* HEAPINDEX_VERIFY                                */
#define HOOKS_FAIL 0x8u   /* HEAPINDEX_FAIL_EVERY                            */
#define HOOKS_SERIAL 0x10u /* the index asked for serial calls (index.h)     */
#define HOOKS_SHARED 0x20u /* hooks_fallback_slot: threads without a slot    */
#define HOOKS_ASIDE 0x40u  /* the program brought its own malloc (hooks.c)   */
#define HOOKS_TRAILER 0x80u /* the trailer placement (chunk.h): its fast path  */
#define HOOKS_SIDE 0x100u   /* the side placement (chunk.h): its fast path     */
/* With these, every index call is made under hooks_lock, together with the
 * state that must change with the index (census, verify's shadow, a shared
 * slot's live counts). */
#define HOOKS_UNDER_LOCK (HOOKS_CENSUS | HOOKS_VERIFY | HOOKS_SERIAL | HOOKS_SHARED)

/* Taken only with HOOKS_UNDER_LOCK features, by the census writer, and
 * around fork. */
extern spinlock_t hooks_lock;
extern struct heapindex_config hooks_config;
extern size_t hooks_header_bytes;      /* struct chunk + the index's links */
/* The placement's bytes per chunk: in front of the user pointer (header:
 * hooks_header_bytes, else 0), behind the program's bytes (trailer: 8),
 * and their sum, the metadata the statistics count per chunk. */
extern size_t hooks_meta_before, hooks_meta_after, hooks_meta_bytes;
/* 0 when the statistics count no bytes: side under an index without
 * records (noop; the memtable and the bitmap, which tell their chunks but
 * keep no size, index.h), which has no size to count at free (hooks.c,
 * the side fast path); calls and chunks are counted all the same. */
extern THREADS_HIDDEN int hooks_counts_bytes;
/* The same where it can be known when compiled (the files built once per
 * index): an index whose updates are not empty and that keeps sizes
 * (not INDEX_SIDE_SIZELESS) keeps records under side and so counts bytes
 * under every placement, and its looks at the counters (counters.c) test
 * nothing. */
#ifdef HEAPINDEX_INDEX
#include "index.h"
#if INDEX_UPDATES_EMPTY || INDEX_SIDE_SIZELESS
#define HOOKS_COUNTS_BYTES hooks_counts_bytes
#else
#define HOOKS_COUNTS_BYTES 1
#endif
#endif
extern const char *hooks_allocator;    /* file name of the library behind us */
extern double hooks_start_seconds;     /* CLOCK_MONOTONIC at initialisation */
/* With HOOKS_SERIAL: calls per entry point, counted under hooks_lock just
 * before the index hears of them (the trace recorder labels events so). */
extern uint64_t hooks_serial_calls[ENTRY_COUNT];

double monotonic_seconds(void);

/* --- entry points for other files of the hook libraries ----------------------
 * The general paths every entry point ends in (C++ operator new and delete
 * can call them too).  alloc_plain: size bytes for the program, recorded
 * with site and counted as a call of entry; NULL with errno ENOMEM on
 * failure.  alloc_aligned: the same, aligned to align (a power of two).
 * free_chunk: p a chunk of ours, or NULL.  Any of them may be the first
 * call into the hooks. */
void *alloc_plain(size_t size, uintptr_t site, enum hook_entry entry);
void *alloc_aligned(size_t align, size_t size, uintptr_t site, enum hook_entry entry);
void free_chunk(void *p, enum hook_entry entry);

/* --- statistics (counters.c) ------------------------------------------------ */

/* Publish s's live deltas into the process totals and raise the peaks. */
void counters_flush(struct thread_slot *s);
/* s's budget ran out: flush if its deltas are beyond FLUSH_AT (counters.h).
 * counts_bytes says how s counts (hooks_counts_bytes): a constant on the
 * caller's path where it can be, so that the look tests nothing. */
void counters_check_counting(struct thread_slot *s);
void counters_check_budgeted(struct thread_slot *s);
static inline void counters_check(struct thread_slot *s, int counts_bytes)
{
	if (counts_bytes)
		counters_check_counting(s);
	else
		counters_check_budgeted(s);
}

struct hook_totals {
	uint64_t calls[ENTRY_COUNT];
	uint64_t failed_allocs, lookups_found, lookups_missed;
	uint64_t lookup_cache_hits, lookup_cache_misses;
	int64_t live_chunks, live_bytes, live_meta_bytes;
	int64_t peak_live_chunks, peak_live_bytes, peak_meta_bytes;
	uint64_t meta_weight, meta_added; /* meta_cost.c: their ratio is bytes per chunk */
};

/* Every slot added up (exact when no other thread is running; a snapshot
 * otherwise). */
void counters_totals(struct hook_totals *t);
/* The slot of threads that could get none (out of memory for a block of
 * slots): flags HOOKS_SHARED, its index calls and live counts under
 * hooks_lock, its call counts atomic; counted in the totals. */
extern struct thread_slot hooks_fallback_slot;

/* --- what the placement costs the allocator (meta_cost.c) --------------------- */

/* Learn the allocator's usable size per request size; once, at start-up. */
void meta_cost_probe(void *(*real_malloc)(size_t), void (*real_free)(void *),
                     size_t (*real_usable)(void *));
/* A chunk of size bytes the program asked for, meta bytes of metadata,
 * sampled in k: surely (sure: every general-path chunk), or because it
 * overdrew the counter budget on the malloc fast path. */
void meta_cost_sample(struct thread_counters *k, size_t size, size_t meta, int sure);
#define META_COST_SKIP 8u
/* On a fast path's overdraft: sample one in META_COST_SKIP. */
static inline void meta_cost_overdraft(struct thread_counters *k, size_t size, size_t meta)
{
	if (!(++k->meta_overdrafts % META_COST_SKIP))
		meta_cost_sample(k, size, meta, 0);
}

/* Append this process's statistics as one JSON line to hooks_config.stats_path. */
void process_stats_write(void);

#endif /* HEAPINDEX_HOOKS_H */
