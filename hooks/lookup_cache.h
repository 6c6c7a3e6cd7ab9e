/* lookup_cache.h - one per-thread cache of lookup answers, in front of every
 * index (heapindex_lookup in the hooks, inproc_lookup in-process).
 *
 * Programs that ask about a pointer tend to ask about it again (a
 * debugger's or a language runtime's repeated type queries): mudflap kept a
 * 1024-entry direct-mapped cache, DHAT a 3-entry MRU list, liballocs 8
 * entries.  HEAPINDEX_LOOKUP_CACHE=N (a power of two, at most
 * CONFIG_LOOKUP_CACHE_MAX; 0, the default, is off) gives each thread N
 * entries, direct-mapped by the address's 64-byte line.  An entry is the
 * answer copied out (struct chunk_info), never a pointer into the chunk, so
 * the cache knows nothing of where an index keeps its metadata.
 *
 * Invalidation, by any thread, at the cost of nothing on the malloc/free
 * fast path but one load and test after free's index remove:
 *  - a lookup that will fill an entry asks (lookup_filling) that the index
 *    note the chunk it answers with (chunk_info_noted, index.h), which the
 *    index does while it keeps the chunk from being freed (a bin lock, a
 *    hazard pointer): lookup_cache_note_fill marks the chunk (a bit of the
 *    header's pad code, chunk.h) and reads the epoch of the chunk's bucket
 *    (a process-wide array of epochs, by hash of the chunk's base);
 *  - a marked chunk's pad code is not the plain one, so its free leaves the
 *    fast path; the general path, and the fast path for a chunk marked
 *    since its pad code was read, test the mark after the index remove and
 *    then bump its bucket's epoch (lookup_cache_note_removed);
 *  - an entry is valid only while its chunk's bucket has the epoch read
 *    when the entry was filled.
 * The race of a fill against a free of the same chunk: the fill's mark and
 * epoch read E happen inside the index's protection.  The remover's index
 * remove waits for that protection to end, or ends before it begins.
 * Before: the lookup cannot find the chunk, and nothing is filled.  After:
 * the remove returns after the mark was set and E read (the index's lock or
 * hazard pointer orders them), so the remover's test sees the mark and
 * bumps the bucket past E before the memory is freed; a later check of the
 * entry (by a lookup after the free, which is what "later" means to the
 * program) sees the new epoch and misses.  A check that reads the epoch
 * before the bump is concurrent with the free and may answer the chunk, as
 * the index itself may (index.h: live at some moment during the lookup).
 * So the chunk's base, not the lookup's address, picks the bucket: only
 * the frees of cached chunks that share it invalidate an entry.  A chunk
 * marked but not cached only costs its free the general path.
 *
 * A signal handler's lookup that interrupts this thread's cached lookup
 * bypasses the cache (lookup_filling is not 0), so entries are never seen
 * half written.  Indexes that never read the header (critnib) never note a
 * chunk, and the cache then never fills: every lookup goes to the index.
 */
#ifndef HEAPINDEX_LOOKUP_CACHE_H
#define HEAPINDEX_LOOKUP_CACHE_H

#include <stdint.h>

#include "index.h"

#define LOOKUP_CACHE_LINE_SHIFT 6
#define LOOKUP_CACHE_BUCKET_BITS 12 /* 4,096 epochs, 32 KiB */

/* lookup_filling: 0 no cached lookup running; FILLING: asks the index to
 * note its chunk; MARKED: it did (lookup_fill_epoch is then set). */
#define LOOKUP_FILLING 1u
#define LOOKUP_FILL_MARKED 2u

struct lookup_cache_entry {
	uintptr_t base;
	size_t size; /* 0: empty */
	uintptr_t site;
	uint64_t epoch; /* of base's bucket when filled */
};

/* Entries per thread (0: off), set once by lookup_cache_setup. */
extern unsigned lookup_cache_entries;
/* Bumped when a marked chunk of the bucket leaves the index. */
extern uint64_t lookup_cache_epochs[1u << LOOKUP_CACHE_BUCKET_BITS];

/* Before any lookup: entries is 0 or a power of two (config.c checks). */
void lookup_cache_setup(unsigned entries);
/* s's entries, mapped now if need be; NULL if they cannot be. */
struct lookup_cache_entry *lookup_cache_map(struct thread_slot *s);
/* Empty s's cache (scale, between indexes that share the same chunks). */
void lookup_cache_clear(struct thread_slot *s);
void lookup_cache_bump(uintptr_t base);

static inline uint64_t *lookup_cache_epoch_of(uintptr_t base)
{
	return &lookup_cache_epochs[(base >> 4) * UINT64_C(0x9e3779b97f4a7c15) >> (64 - LOOKUP_CACHE_BUCKET_BITS)];
}

/* Is e, filled by this thread, still the answer for its chunk? */
static inline int lookup_cache_entry_valid(const struct lookup_cache_entry *e)
{
	return e->size && e->epoch == __atomic_load_n(lookup_cache_epoch_of(e->base), __ATOMIC_ACQUIRE);
}

/* After an index remove of c, before c is freed (the hooks' and inproc's
 * free and realloc). */
static inline void lookup_cache_note_removed(const struct chunk *c)
{
	if (__builtin_expect(chunk_may_be_cached(c), 0))
		lookup_cache_bump(chunk_user(c));
}

/* Its test for a chunk known to have a header (the hooks' header fast
 * path): no test of the placement.  The caller bumps (lookup_cache_bump)
 * when it says 1, out of line, so that its own path keeps nothing across
 * a call. */
static inline int lookup_cache_marked_header(const struct chunk *c)
{
	return __builtin_expect((__atomic_load_n(&c->size_pad, __ATOMIC_RELAXED) & CHUNK_CACHED_BIT) != 0, 0);
}

/* The answer for addr: from s's cache, or from lookup (the index), filling
 * the cache.  s is attached (threads.h); hit and miss counts go to its
 * counters. */
static inline int lookup_cached(struct thread_slot *s, uintptr_t addr,
                                int (*lookup)(uintptr_t, struct chunk_info *), struct chunk_info *out)
{
	unsigned n = __atomic_load_n(&lookup_cache_entries, __ATOMIC_RELAXED);
	struct lookup_cache_entry *cache = s->lookup_cache;
	if (!n || s->lookup_filling || (!cache && !(cache = lookup_cache_map(s))))
		return lookup(addr, out);
	/* From here to the end a signal handler's lookup bypasses the cache. */
	s->lookup_filling = LOOKUP_FILLING;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	struct lookup_cache_entry *e = &cache[(addr >> LOOKUP_CACHE_LINE_SHIFT) & (n - 1)];
	if (addr - e->base < e->size && lookup_cache_entry_valid(e)) {
		out->base = e->base, out->size = e->size, out->site = e->site;
		s->counters.lookup_cache_hits++;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		s->lookup_filling = 0;
		return INDEX_FOUND;
	}
	s->counters.lookup_cache_misses++;
	int answer = lookup(addr, out);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	/* Only a noted answer fills: its index read the header under its
	 * protection, site included (a no_site lookup that skipped the header
	 * notes nothing, index.h), so no entry holds a site it did not get. */
	if (answer == INDEX_FOUND && s->lookup_filling == LOOKUP_FILL_MARKED && out->base == s->lookup_fill_base)
		*e = (struct lookup_cache_entry){ .base = out->base, .size = out->size, .site = out->site,
		                                   .epoch = s->lookup_fill_epoch };
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	s->lookup_filling = 0;
	return answer;
}

#endif /* HEAPINDEX_LOOKUP_CACHE_H */
