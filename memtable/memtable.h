/* memtable.h - an address-keyed table: one fixed-size entry per 2^shift-byte
 * bin of an N-bit address space, like a linear page table.
 *
 * The whole table is reserved up front as one anonymous MAP_NORESERVE mapping
 * and committed lazily by the kernel, page by page, as entries are written:
 * untouched entries read as zero, so a table over a sparse address space
 * costs memory only where that space is used (S. Kell's memtable; the size
 * rule for 1-byte entries is 2^(N - shift) bytes, 2^38 for N=47, shift=9).
 *
 * Finding an address's entry is one shift and one add: no search, no locks.
 * This header knows nothing about heaps: the heap index (heap_index.c) is
 * one user of it.
 */
#ifndef HEAPINDEX_MEMTABLE_H
#define HEAPINDEX_MEMTABLE_H

#include <stddef.h>
#include <stdint.h>

struct memtable {
	unsigned char *entries; /* entry for address a: entries + (a >> shift) * entry_size */
	size_t entry_size;
	unsigned addr_bits, shift;
	uintptr_t limit;        /* 2^addr_bits: addresses at or above it have no entry */
	size_t reserved_bytes;  /* 2^(addr_bits - shift) * entry_size */
};

/* Bytes the table would reserve, without reserving it (for reports). */
static inline size_t memtable_reserved_bytes(unsigned addr_bits, unsigned shift,
                                             size_t entry_size)
{
	return ((size_t)1 << (addr_bits - shift)) * entry_size;
}

/* Reserve the table. Returns 0, or an errno value (ENOMEM when the kernel
 * refuses the reservation, e.g. under vm.overcommit_memory=2 or a ulimit -v). */
int memtable_init(struct memtable *t, unsigned addr_bits, unsigned shift,
                  size_t entry_size);
void memtable_destroy(struct memtable *t);

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

/* The entry of a covered address (check memtable_covers first). */
static inline void *memtable_entry(const struct memtable *t, size_t bin)
{
	return t->entries + bin * t->entry_size;
}

/* Bytes of the table the kernel has actually committed (resident), read
 * from /proc/self/smaps; 0 if that cannot be read. Does not allocate. */
size_t memtable_resident_bytes(const struct memtable *t);

#endif /* HEAPINDEX_MEMTABLE_H */
