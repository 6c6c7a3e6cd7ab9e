/* kernels.c - see kernels.h. */
#include "kernels.h"

#include "lookup_cache.h"

volatile uintptr_t runtime_zero;
volatile uint64_t warm_sink;

__attribute__((noinline)) void timed_insert_batch(const struct index_ops *ops, struct chunk *const *c,
                                                  size_t n)
{
	for (size_t i = 0; i < n; i++)
		ops->insert(c[i]);
}

__attribute__((noinline)) void timed_remove_batch(const struct index_ops *ops, struct chunk *const *c,
                                                  size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ops->remove(c[i]);
		lookup_cache_note_removed(c[i]); /* as the hooks' free */
	}
}

__attribute__((noinline)) void timed_side_insert_batch(const struct index_ops *ops, struct chunk *const *c,
                                                       const struct chunk_pending *rec, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		chunk_pending = rec[i]; /* readable during this insert only */
		ops->insert(c[i]);
	}
}

__attribute__((noinline)) size_t timed_side_remove_batch(const struct index_ops *ops, struct chunk *const *c,
                                                         size_t n, int tells)
{
	size_t untold = 0;
	for (size_t i = 0; i < n; i++) {
		chunk_side_before_remove(c[i], tells);
		ops->remove(c[i]);
		untold += tells && chunk_pending.size == CHUNK_SIZE_NONE;
	}
	return untold;
}

__attribute__((noinline)) void timed_lookup_batch(const struct index_ops *ops, const uintptr_t *addr,
                                                  struct chunk_info *out, size_t n, uintptr_t zero,
                                                  int no_site)
{
	uintptr_t dep = 0;
	for (size_t i = 0; i < n; i++) {
		out[i].no_site = no_site; /* an input: an index may overwrite it */
		int found = ops->lookup(addr[i] + dep, &out[i]) == INDEX_FOUND;
		if (!found)
			out[i].base = 0;
		/* Chain through the answer's size, which the index copied out
		 * (of the header, or of its own memory): a header miss an index
		 * guards with a well-predicted branch would otherwise overlap
		 * the next lookups and not be counted. */
		dep = (found ? (uintptr_t)out[i].size : 0) & zero;
	}
}

/* The same, through the shared lookup cache (HEAPINDEX_LOOKUP_CACHE). */
__attribute__((noinline)) void timed_cached_lookup_batch(const struct index_ops *ops, struct thread_slot *self,
                                                         const uintptr_t *addr, struct chunk_info *out,
                                                         size_t n, uintptr_t zero, int no_site)
{
	uintptr_t dep = 0;
	for (size_t i = 0; i < n; i++) {
		out[i].no_site = no_site;
		int found = lookup_cached(self, addr[i] + dep, ops->lookup, &out[i]) == INDEX_FOUND;
		if (!found)
			out[i].base = 0;
		dep = (found ? (uintptr_t)out[i].size : 0) & zero;
	}
}
