/* lookup_cache.c - see lookup_cache.h. */
#include "lookup_cache.h"

unsigned lookup_cache_entries;
uint64_t lookup_cache_epoch = 1;

void lookup_cache_setup(unsigned entries)
{
	__atomic_store_n(&lookup_cache_entries, entries, __ATOMIC_RELAXED);
}

/* Mapped, not malloc'd (the hooks must not call malloc); kept with the slot
 * when its thread ends, for the next thread given the slot: the entries are
 * about chunks, not threads, and the epoch says which still hold. */
struct lookup_cache_entry *lookup_cache_map(struct thread_slot *s)
{
	unsigned n = __atomic_load_n(&lookup_cache_entries, __ATOMIC_RELAXED);
	struct lookup_cache_entry *cache = index_map_pages(n * sizeof *cache);
	s->lookup_cache = cache;
	return cache;
}

void lookup_cache_bump(void)
{
	__atomic_fetch_add(&lookup_cache_epoch, 1, __ATOMIC_RELEASE);
}
