/* big_chunks.h - chunks too big for an index's own structure, in a B+tree
 * keyed by user pointer.
 *
 * The memtable and the bitmap index both bound their backward scan by the
 * largest "small" chunk, so chunks above a threshold (128 KiB, glibc's mmap
 * threshold, or a few hundred bins) are kept here instead, and so is every
 * chunk an index cannot cover: above the memtable's HEAPINDEX_ADDR_BITS (at
 * 32 bits, every chunk of a PIE heap), or whose table page could not be
 * mapped.  So "few" cannot be assumed: insert, remove and lookup are
 * O(log n) (a sorted array's O(n) memmove made 3*10^5 malloc+free take 5 s).
 *
 * Memory comes from index_map_pages (mmap), never malloc: this runs inside
 * malloc.  Each big_chunks has its own lock, so it is safe to call from
 * several threads at once whatever lock its caller holds (or none); the
 * hooks' fork handlers call big_chunks_fork_* so that a child never inherits
 * one held.  Lock order: a caller's own lock, then this one, never the
 * reverse (nothing here calls out).
 *
 * A zero-filled struct big_chunks is an empty, usable one (static storage).
 */
#ifndef HEAPINDEX_BIG_CHUNKS_H
#define HEAPINDEX_BIG_CHUNKS_H

#include <stddef.h>
#include <stdint.h>

#include "chunk.h"
#include "index.h"
#include "json.h"
#include "lock.h"

struct big_node;

struct big_chunks {
	spinlock_t lock;
	int registered;              /* on the fork handlers' list (big_chunks.c) */
	struct big_chunks *next_registered;
	struct big_node *root;       /* NULL when empty */
	unsigned height;             /* levels: 0 empty, 1 the root is a leaf */
	struct big_node *free_nodes; /* nodes mapped and not in the tree */
	unsigned free_count;
	size_t count;                /* live chunks; may be read without the lock
	                              * as a hint ("anything here at all?") */
	uintptr_t span_lo, span_hi;  /* every chunk ever inserted lies in
	                              * [span_lo, span_hi); span_hi 0: none yet.
	                              * Only widens, under the lock; read
	                              * without it (big_chunks_lookup_after) */
	size_t peak;
	size_t mapped_bytes;
	uint64_t lookups, grow_failures;
};

/* 0, or -1 if no memory could be mapped for a node: the chunk is then not
 * indexed (a later remove of it is a no-op), never a corrupt tree. */
int big_chunks_insert(struct big_chunks *b, struct chunk *c);
/* 1 if c was in b, 0 (a no-op) if not: under side the memtable learns
 * so whether a pointer it has no start bit for is a chunk of its own. */
int big_chunks_remove(struct big_chunks *b, struct chunk *c);
/* enum index_answer: the chunk containing addr, copied into *out under b's
 * lock (chunk_info_copy_held: under side, the usable size and no site).  A lookup that may not wait (index_lookup_may_wait: a signal
 * handler that may have interrupted this very thread inside insert or
 * remove, which holds the lock) only tries the lock, and answers
 * INDEX_UNKNOWN if it is held. */
int big_chunks_lookup(struct big_chunks *b, uintptr_t addr, struct chunk_info *out);

/* No chunk at all: a lookup need not look (a racy read: a chunk inserted
 * concurrently may be missed, as index.h allows). */
static inline int big_chunks_empty(const struct big_chunks *b)
{
	return __atomic_load_n(&b->count, __ATOMIC_RELAXED) == 0;
}

/* Could a chunk of b contain addr?  0 if addr lies outside every chunk
 * ever inserted: a racy read, safe because the span only widens, so a
 * chunk live throughout the caller's lookup lies inside what both loads
 * see.  Big chunks come from mmap, away from the heap's small chunks, so
 * this lets most lookups that miss skip b's lock and tree. */
static inline int big_chunks_may_hold(const struct big_chunks *b, uintptr_t addr)
{
	uintptr_t lo = __atomic_load_n(&b->span_lo, __ATOMIC_RELAXED);
	return addr - lo < __atomic_load_n(&b->span_hi, __ATOMIC_RELAXED) - lo;
}

/* The answer of an index that keeps its big (and uncovered) chunks in b,
 * given small, its own answer among the rest: a big chunk may start
 * between the small predecessor and addr, so INDEX_NONE asks b (when it
 * holds anything that may contain addr); INDEX_FOUND and INDEX_UNKNOWN
 * stand.  A hit loads nothing of b. */
static inline int big_chunks_lookup_after(struct big_chunks *b, int small, uintptr_t addr,
                                          struct chunk_info *out)
{
	if (small != INDEX_NONE || big_chunks_empty(b) || !big_chunks_may_hold(b, addr))
		return small;
	return big_chunks_lookup(b, addr, out);
}

/* Bytes mapped for nodes. */
size_t big_chunks_bytes(const struct big_chunks *b);
/* big_live, big_peak, big_tree_bytes, big_tree_height, big_lookups,
 * big_grow_failures.  Takes b's lock. */
void big_chunks_write_stats(struct big_chunks *b, struct json_out *out);

/* For tests: 0 if every invariant of the tree holds (big_chunks.c), else -1. */
int big_chunks_check(struct big_chunks *b);

/* fork: prepare takes the lock of every big_chunks ever used, the other two
 * release them (in the parent, and in the child, whose only thread is the
 * one that took them).  Call prepare after any lock that is held around
 * calls into big_chunks. */
void big_chunks_fork_prepare(void);
void big_chunks_fork_parent(void);
void big_chunks_fork_child(void);

#endif /* HEAPINDEX_BIG_CHUNKS_H */
