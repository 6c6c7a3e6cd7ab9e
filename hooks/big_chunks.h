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
 */
#ifndef HEAPINDEX_BIG_CHUNKS_H
#define HEAPINDEX_BIG_CHUNKS_H

#include <stddef.h>
#include <stdint.h>

#include "chunk.h"
#include "json.h"

struct big_chunks {
	struct chunk **at;
	size_t count, capacity, peak;
	uint64_t lookups, grow_failures;
};

/* 0, or -1 if the array could not grow: the chunk is then not indexed (a
 * later remove of it is a no-op), never a corrupt array. */
int big_chunks_insert(struct big_chunks *b, struct chunk *c);
void big_chunks_remove(struct big_chunks *b, struct chunk *c);
/* The chunk containing addr, or NULL. */
struct chunk *big_chunks_lookup(struct big_chunks *b, uintptr_t addr);
size_t big_chunks_bytes(const struct big_chunks *b);
/* big_live, big_peak, big_array_bytes, big_lookups, big_grow_failures. */
void big_chunks_write_stats(const struct big_chunks *b, struct json_out *out);

#endif /* HEAPINDEX_BIG_CHUNKS_H */
