/* big_chunks.h - the few chunks too big for an index's own structure, in an
 * array sorted by user pointer.
 *
 * The memtable and the bitmap index both bound their backward scan by the
 * largest "small" chunk, so chunks above a threshold (128 KiB, glibc's mmap
 * threshold, or a few hundred bins) are kept here instead.  There are few of
 * them (each is large), so binary search and an O(n) memmove on insert cost
 * less than any tree.  Memory comes from index_map_pages, never malloc.
 *
 * Invariant: at[0 .. count) are live chunks in increasing user-pointer order.
 *
 * Threads: one lock inside guards everything; a lookup copies the chunk out
 * under it (index.h) and, when it may not wait, only tries it.
 */
#ifndef HEAPINDEX_BIG_CHUNKS_H
#define HEAPINDEX_BIG_CHUNKS_H

#include <stddef.h>
#include <stdint.h>

#include "chunk.h"
#include "index.h"
#include "json.h"

struct big_chunks {
	spinlock_t lock;
	struct chunk **at;
	size_t count, capacity, peak;
	uint64_t lookups, grow_failures;
};

/* 0, or -1 if the array could not grow: the chunk is then not indexed (a
 * later remove of it is a no-op), never a corrupt array. */
int big_chunks_insert(struct big_chunks *b, struct chunk *c);
void big_chunks_remove(struct big_chunks *b, struct chunk *c);
/* enum index_answer: the chunk containing addr, copied into *out. */
int big_chunks_lookup(struct big_chunks *b, uintptr_t addr, struct chunk_info *out);
/* No chunk at all: a lookup need not look (a racy read: a chunk inserted
 * concurrently may be missed, as index.h allows). */
static inline int big_chunks_empty(const struct big_chunks *b)
{
	return __atomic_load_n(&b->count, __ATOMIC_RELAXED) == 0;
}
size_t big_chunks_bytes(const struct big_chunks *b);
/* big_live, big_peak, big_array_bytes, big_lookups, big_grow_failures. */
void big_chunks_write_stats(struct big_chunks *b, struct json_out *out);

#endif /* HEAPINDEX_BIG_CHUNKS_H */
