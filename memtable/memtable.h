/* memtable.h - an address-keyed table: one fixed-size entry per 2^shift-byte
 * bin of an N-bit address space, like a linear page table.
 *
 * Flat layout (the memtable proper): the whole table is reserved up front as
 * one anonymous MAP_NORESERVE mapping and committed lazily by the kernel,
 * page by page, as entries are written: untouched entries read as zero, so a
 * table over a sparse address space costs memory only where that space is
 * used (S. Kell's memtable; the size rule for 1-byte entries is 2^(N - shift)
 * bytes, 2^41 for N=47, shift=6).  Finding an entry is one shift and one add.
 *
 * Two-level layout, used when the flat reservation is refused (strict
 * overcommit ignores MAP_NORESERVE; valgrind refuses mappings over ~2^35
 * bytes; 57-bit spaces need more than a 47-bit user space holds): a directory
 * of leaves, each leaf a mapping of 2^leaf_bits entries made on the first
 * write into it, as in jemalloc's rtree or mimalloc's page map.  An absent
 * leaf reads as zeros.  Finding an entry costs one more dependent load.
 *
 * This header knows nothing about heaps: the heap index (heap_index.c) is
 * one user of it.  No locking: callers serialise writes.
 */
#ifndef HEAPINDEX_MEMTABLE_H
#define HEAPINDEX_MEMTABLE_H

#include <stddef.h>
#include <stdint.h>

enum memtable_layout { MEMTABLE_AUTO, MEMTABLE_FLAT, MEMTABLE_TWO_LEVEL };

struct memtable {
	unsigned char *entries;  /* flat: entry of bin b at entries + b * entry_size */
	unsigned char **leaves;  /* two-level: leaf of bin b is leaves[b >> leaf_bits] */
	size_t entry_size;
	unsigned addr_bits, shift, leaf_bits;
	uintptr_t limit;         /* 2^addr_bits: addresses at or above it have no entry */
	size_t reserved_bytes;   /* what is reserved now: the flat table, or the directory */
	size_t leaves_mapped;
};

/* Bytes a flat table would reserve (for reports, and the seed's size rule). */
static inline size_t memtable_reserved_bytes(unsigned addr_bits, unsigned shift,
                                             size_t entry_size)
{
	return ((size_t)1 << (addr_bits - shift)) * entry_size;
}

/* Returns 0, or an errno value (ENOMEM: not even the two-level directory
 * could be mapped; EINVAL: impossible arguments).  MEMTABLE_AUTO tries flat,
 * then two-level. */
int memtable_init(struct memtable *t, unsigned addr_bits, unsigned shift,
                  size_t entry_size, enum memtable_layout layout);
void memtable_destroy(struct memtable *t);

static inline int memtable_is_flat(const struct memtable *t)
{
	return t->entries != NULL;
}

static inline int memtable_covers(const struct memtable *t, uintptr_t addr)
{
	return addr < t->limit;
}

static inline size_t memtable_bin(const struct memtable *t, uintptr_t addr)
{
	return addr >> t->shift;
}

static inline uintptr_t memtable_bin_base(const struct memtable *t, size_t bin)
{
	return (uintptr_t)bin << t->shift;
}

extern const unsigned char memtable_zero_entry[16];

/* The entry of a bin, for reading: all zero if never written.  Never NULL. */
static inline const void *memtable_entry(const struct memtable *t, size_t bin)
{
	if (__builtin_expect(t->entries != NULL, 1))
		return t->entries + bin * t->entry_size;
	const unsigned char *leaf = t->leaves[bin >> t->leaf_bits];
	if (!leaf)
		return memtable_zero_entry;
	return leaf + (bin & (((size_t)1 << t->leaf_bits) - 1)) * t->entry_size;
}

/* Maps a two-level leaf on demand. */
void *memtable_entry_slow_write(struct memtable *t, size_t bin);

/* The entry of a bin, for writing; NULL only if a two-level leaf could not
 * be mapped. */
static inline void *memtable_entry_for_write(struct memtable *t, size_t bin)
{
	if (__builtin_expect(t->entries != NULL, 1))
		return t->entries + bin * t->entry_size;
	unsigned char *leaf = t->leaves[bin >> t->leaf_bits];
	if (!leaf)
		return memtable_entry_slow_write(t, bin);
	return leaf + (bin & (((size_t)1 << t->leaf_bits) - 1)) * t->entry_size;
}

/* For 1-byte entries: the highest bin in [lowest, from) whose entry is not
 * zero, or SIZE_MAX.  Reads eight entries per load; skips absent leaves. */
size_t memtable_last_nonzero_byte(const struct memtable *t, size_t from, size_t lowest);

/* Bytes of the table the kernel has committed (resident): of the flat
 * mapping, read from /proc/self/smaps; of the two-level directory and
 * leaves, counted.  0 if smaps cannot be read. Does not allocate. */
size_t memtable_resident_bytes(const struct memtable *t);

#endif /* HEAPINDEX_MEMTABLE_H */
