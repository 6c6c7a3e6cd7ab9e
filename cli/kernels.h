/* kernels.h - the timed loops of `heapindex replay` and `heapindex scale`.
 *
 * Only what runs between the two clock reads: a batch of index inserts,
 * removes or lookups, each a function of its own, never inlined, so that
 * callgrind can count exactly it (--toggle-collect=timed_lookup_batch,
 * workloads/trace/callgrind.sh).  What a batch needs is set up untimed by the
 * caller: the chunks' headers written (insert) or read (remove, see
 * warm_header), the addresses drawn (lookup).
 */
#ifndef HEAPINDEX_CLI_KERNELS_H
#define HEAPINDEX_CLI_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "index.h"

void timed_insert_batch(const struct index_ops *ops, struct chunk *const *c, size_t n);
void timed_remove_batch(const struct index_ops *ops, struct chunk *const *c, size_t n);
/* The same under side (chunk.h), where the chunk carries nothing and the
 * hooks pass size and site through this thread's pending record, written
 * just before each call: rec[i] becomes c[i]'s before its insert; before
 * each remove the record says "not told" (chunk_side_before_remove), and
 * the remove returns how many c[i] an index that tells its chunks (tells:
 * INDEX_SIDE_RECORDS or INDEX_SIDE_TELLS) did not take for its own, the
 * test the hooks' free makes (0 for one that cannot tell). */
void timed_side_insert_batch(const struct index_ops *ops, struct chunk *const *c,
                             const struct chunk_pending *rec, size_t n);
size_t timed_side_remove_batch(const struct index_ops *ops, struct chunk *const *c, size_t n, int tells);
/* n lookups, out[i].base 0 where nothing was found.  zero must be
 * runtime_zero: 0 at run time, unknown to the compiler, so that each address
 * depends on the previous answer and the lookups cannot overlap (the figure
 * is latency, like a pointer chase's).  no_site: the lookups ask for base
 * and size only (struct chunk_info, index.h), as scale's do. */
void timed_lookup_batch(const struct index_ops *ops, const uintptr_t *addr, struct chunk_info *out,
                        size_t n, uintptr_t zero, int no_site);
/* The same through self's lookup cache (lookup_cache.h), which fills only
 * from answers whose index read the site: with no_site, never for bytemap. */
void timed_cached_lookup_batch(const struct index_ops *ops, struct thread_slot *self,
                               const uintptr_t *addr, struct chunk_info *out, size_t n, uintptr_t zero,
                               int no_site);

extern volatile uintptr_t runtime_zero;

/* Read c's metadata (its header, or trailer: chunk.h) as the hooks' free
 * does just before it calls remove, so that a timed remove finds it in
 * cache as it would there.  The value goes to a volatile sink: the read
 * cannot be dropped. */
extern volatile uint64_t warm_sink;
static inline void warm_header(const struct chunk *c)
{
	warm_sink = *chunk_site_word((struct chunk *)c);
}

#endif /* HEAPINDEX_CLI_KERNELS_H */
