/* lookup_cache.c - see lookup_cache.h. */
#include "lookup_cache.h"

#include <string.h>

unsigned lookup_cache_entries;
uint64_t lookup_cache_epochs[1u << LOOKUP_CACHE_BUCKET_BITS];

void lookup_cache_setup(unsigned entries)
{
	__atomic_store_n(&lookup_cache_entries, entries, __ATOMIC_RELAXED);
}

/* Mapped, not malloc'd (the hooks must not call malloc); kept with the slot
 * when its thread ends, for the next thread given the slot: the entries are
 * about chunks, not threads, and the epochs say which still hold.  Refused
 * once (no memory, a mapping limit), the thread's lookups go without a
 * cache from then on: asking again would cost every lookup a system call. */
struct lookup_cache_entry *lookup_cache_map(struct thread_slot *s)
{
	if (s->lookup_cache_refused)
		return NULL;
	unsigned n = __atomic_load_n(&lookup_cache_entries, __ATOMIC_RELAXED);
	struct lookup_cache_entry *cache = index_map_pages(n * sizeof *cache);
	s->lookup_cache = cache;
	s->lookup_cache_refused = cache == NULL;
	return cache;
}

void lookup_cache_clear(struct thread_slot *s)
{
	if (s->lookup_cache)
		memset(s->lookup_cache, 0, lookup_cache_entries * sizeof *s->lookup_cache);
}

/* Inside the index's protection of c (chunk_info_noted): mark c, then read
 * its bucket's epoch; a remover bumps it only after the protection ends and
 * after seeing the mark.  The mark is tested first: a chunk looked up again
 * is marked already, and a locked OR on every fill cost scale 7 ns per
 * lookup at 10^3 chunks. */
void lookup_cache_note_fill(struct thread_slot *s, const struct chunk *c)
{
	chunk_mark_cached(c);
	s->lookup_fill_base = chunk_user(c);
	s->lookup_fill_epoch = __atomic_load_n(lookup_cache_epoch_of(chunk_user(c)), __ATOMIC_ACQUIRE);
	s->lookup_filling = LOOKUP_FILL_MARKED;
}

void lookup_cache_bump(uintptr_t base)
{
	__atomic_fetch_add(lookup_cache_epoch_of(base), 1, __ATOMIC_RELEASE);
}
