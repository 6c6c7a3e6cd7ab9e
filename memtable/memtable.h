/* memtable.h - an address-keyed table: one fixed-size entry per 2^shift-byte
 * bin of an N-bit address space, like a linear page table.
 *
 * Flat layout (the memtable proper): the whole table is reserved up front as
 * one anonymous MAP_NORESERVE mapping and committed lazily by the kernel,
 * page by page, as entries are written, so a table over a sparse address
 * space costs memory only where that space is used (S. Kell's memtable; the
 * size rule for 1-byte entries is 2^(N - shift) bytes, 2^41 for N=47,
 * shift=6).  Finding an entry is one shift and one add.
 *
 * Two-level layout, used when the flat reservation is refused (strict
 * overcommit ignores MAP_NORESERVE; valgrind refuses mappings over ~2^35
 * bytes; 57-bit spaces need more than a 47-bit user space holds): a directory
 * of leaves, each leaf a mapping of 2^leaf_bits entries made on the first
 * write into it, as in jemalloc's rtree or mimalloc's page map.  Finding an
 * entry costs one more dependent load.
 *
 * Reads never commit memory.  The seed assumed that an untouched page of a
 * lazily committed mapping reads as the kernel's shared zero page; kernels
 * without one (e.g. booted with pvm_no_zero_page=1) commit a real page on the
 * first *read*, so 100,000 lookups of wild addresses grew a process by
 * 400 MB.  So the table keeps a summary of which of its pages were ever
 * written ("written pages", below), and a read of an entry whose page was
 * never written answers zero without touching it.  The summary is itself
 * lazily committed, so it is guarded the same way, one level up: three bit
 * tests, all of them in a few cache lines that every lookup of the same
 * heap shares.  The pages are numbered as if the table were flat, so both
 * layouts use the same summary.
 *
 * This header knows nothing about heaps: the heap index (heap_index.c) is
 * one user of it.  No locking: callers serialise writes to one entry.
 * Summary bits are set with atomic ORs (writers of neighbouring entries may
 * race), and a reader that sees a bit still clear reads the entry as zero:
 * the write it missed had not happened yet, as far as it can tell.
 */
#ifndef HEAPINDEX_MEMTABLE_H
#define HEAPINDEX_MEMTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "lock.h"

enum memtable_layout { MEMTABLE_AUTO, MEMTABLE_FLAT, MEMTABLE_TWO_LEVEL };

/* Which pages were ever written, of the table and of the summary itself:
 *   pages[0]: bit p set iff table page p was written (p counts pages as if
 *             the table were flat: byte offset (bin << entry_shift) >> 12);
 *   pages[1]: bit q set iff page q of pages[0] was written;
 *   top:      bit r set iff page r of pages[1] was written.
 * pages[0] and pages[1] are MAP_NORESERVE mappings; top lives here.
 *
 * A "page" here is 4 KiB whatever the machine's page size: a constant
 * keeps the three tests to shifts and loads.  With larger pages (16 or
 * 64 KiB on some AArch64 systems) writing one 4 KiB page commits its
 * neighbours too, and reading those commits nothing more.  A page of bits
 * covers 2^15 pages below it, so top needs 2^(N - shift - 36) bits for
 * 1-byte entries: 1 for N=47, shift=6; 2^11 for the largest table (N=57,
 * shift=4). */
#define MEMTABLE_PAGE_SHIFT 12
#define MEMTABLE_PAGE_BYTES ((size_t)1 << MEMTABLE_PAGE_SHIFT)
#define MEMTABLE_BITS_SHIFT (MEMTABLE_PAGE_SHIFT + 3) /* bits in a page of bits */
#define MEMTABLE_TOP_WORDS ((size_t)32)

struct memtable_written {
	uint64_t *pages[2];
	uint64_t top[MEMTABLE_TOP_WORDS];
	size_t bytes[2];         /* reserved for pages[0], pages[1] */
	size_t count[3];         /* bits set: table pages, pages of pages[0], of pages[1] */
};

struct memtable {
	unsigned char *entries;  /* flat: entry of bin b at entries + (b << entry_shift) */
	unsigned char **leaves;  /* two-level: leaf of bin b is leaves[b >> leaf_bits] */
	size_t entry_size;       /* a power of two, 1 << entry_shift */
	unsigned addr_bits, shift, leaf_bits, entry_shift;
	uintptr_t limit;         /* 2^addr_bits: addresses at or above it have no entry */
	size_t reserved_bytes;   /* what is reserved now: the flat table, or the directory
	                          * and its leaves (atomic) */
	size_t leaves_mapped;    /* atomic: leaves are mapped by any writer, lock-free */
	struct memtable_written written;
	/* Optional, flat tables only (memtable_add_shadow): a second array
	 * with one shadow_entry_size-byte entry per bin, for a user that
	 * keeps more per bin than the entry holds.  It has no summary of its
	 * own: marking a table page written first writes the shadow pages of
	 * the same bins (memtable_note_written_slow), so a reader that finds
	 * a table page marked may read the shadow entries of its bins, and
	 * commits nothing by doing so. */
	unsigned char *shadow;
	size_t shadow_entry_size;
};

/* Bytes a flat table would reserve (for reports, and the seed's size rule). */
static inline size_t memtable_reserved_bytes(unsigned addr_bits, unsigned shift,
                                             size_t entry_size)
{
	return ((size_t)1 << (addr_bits - shift)) * entry_size;
}

/* Returns 0, or an errno value (ENOMEM: not even the two-level directory,
 * or the written-pages summary, could be mapped; EINVAL: impossible
 * arguments).  MEMTABLE_AUTO tries flat,
 * then two-level. */
int memtable_init(struct memtable *t, unsigned addr_bits, unsigned shift,
                  size_t entry_size, enum memtable_layout layout);
void memtable_destroy(struct memtable *t);

/* Reserves the shadow array (above) of a flat table on which nothing was
 * written yet: 0, or an errno value (EINVAL: a two-level table, a table
 * already written, an entry size not a power of two or larger than a page;
 * ENOMEM: refused).  Its reservation is entry_size / t->entry_size times
 * the table's, and it commits that many times the table's written pages. */
int memtable_add_shadow(struct memtable *t, size_t entry_size);

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

static inline int memtable_bit_is_set(const uint64_t *bits, size_t i)
{
	return (int)((__atomic_load_n(&bits[i >> 6], __ATOMIC_RELAXED) >> (i & 63)) & 1);
}

/* The page of the (flat-numbered) table holding bin's entry. */
static inline size_t memtable_page_of_bin(const struct memtable *t, size_t bin)
{
	return (bin << t->entry_shift) >> MEMTABLE_PAGE_SHIFT;
}

/* Was table page p ever written?  Reads only summary pages that were. */
static inline int memtable_page_written(const struct memtable *t, size_t page)
{
	const struct memtable_written *w = &t->written;
	size_t in_pages0 = page >> MEMTABLE_BITS_SHIFT, in_pages1 = in_pages0 >> MEMTABLE_BITS_SHIFT;
	return memtable_bit_is_set(w->top, in_pages1) &&
	       memtable_bit_is_set(w->pages[1], in_pages0) &&
	       memtable_bit_is_set(w->pages[0], page);
}

/* Marks page written (and the summary pages its bit is on); idempotent. */
void memtable_note_written_slow(struct memtable *t, size_t page);

/* The slow path sets top, then pages[1], then pages[0]: a set bit in
 * pages[0] means the bits above it are set too, so one test suffices. */
static inline void memtable_note_written(struct memtable *t, size_t page)
{
	if (__builtin_expect(!memtable_bit_is_set(t->written.pages[0], page), 0))
		memtable_note_written_slow(t, page);
}

/* Where bin's entry is stored, or NULL if its two-level leaf is absent.
 * Only for reading a written page, or writing. */
static inline unsigned char *memtable_entry_address(const struct memtable *t, size_t bin)
{
	if (__builtin_expect(t->entries != NULL, 1))
		return t->entries + (bin << t->entry_shift);
	unsigned char *const *slot = &t->leaves[bin >> t->leaf_bits];
	unsigned char *leaf = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	if (!leaf)
		return NULL;
	LOCK_ANNOTATE_HAPPENS_AFTER(slot); /* published by memtable_entry_slow_write */
	return leaf + ((bin & (((size_t)1 << t->leaf_bits) - 1)) << t->entry_shift);
}

/* The entry of bin for writing if its page is already marked written, else
 * NULL (take memtable_entry_for_write then).  One bit test, not three: a
 * set bit in pages[0] means the levels above it are set too.  It may read a
 * summary page never written, so it is for writers, which are about to
 * write it anyway, and for removers, whose entry's page was written. */
static inline unsigned char *memtable_written_entry(const struct memtable *t, size_t bin)
{
	if (!memtable_bit_is_set(t->written.pages[0], memtable_page_of_bin(t, bin)))
		return NULL;
	return memtable_entry_address(t, bin);
}

/* memtable_entry_address and memtable_written_entry for a table of 1-byte
 * entries (entry_shift 0, the heap index's): the same answers, without
 * loading and applying the shift on the insert and remove paths. */
static inline unsigned char *memtable_byte_address(const struct memtable *t, size_t bin)
{
	if (__builtin_expect(t->entries != NULL, 1))
		return t->entries + bin;
	return memtable_entry_address(t, bin);
}

static inline unsigned char *memtable_written_byte(const struct memtable *t, size_t bin)
{
	if (!memtable_bit_is_set(t->written.pages[0], bin >> MEMTABLE_PAGE_SHIFT))
		return NULL;
	return memtable_byte_address(t, bin);
}

/* The entry of a bin, for reading: all zero if never written.  Never NULL,
 * and never touches a page of the table that was not written. */
static inline const void *memtable_entry(const struct memtable *t, size_t bin)
{
	if (!memtable_page_written(t, memtable_page_of_bin(t, bin)))
		return memtable_zero_entry;
	const unsigned char *e = memtable_entry_address(t, bin);
	return e ? e : memtable_zero_entry;
}

/* Maps a two-level leaf on demand; safe from any number of threads. */
void *memtable_entry_slow_write(struct memtable *t, size_t bin);

/* The entry of a bin, for writing; NULL only if a two-level leaf could not
 * be mapped.  Marks its page written first, so a reader that finds the mark
 * reads a page that is (about to be) committed anyway. */
static inline void *memtable_entry_for_write(struct memtable *t, size_t bin)
{
	unsigned char *e = memtable_entry_address(t, bin);
	if (__builtin_expect(!e, 0) && !(e = memtable_entry_slow_write(t, bin)))
		return NULL;
	memtable_note_written(t, memtable_page_of_bin(t, bin));
	return e;
}

/* Eight bytes of entries from e as one little-endian word (e need not be
 * aligned; entries of entry_bytes, 1 or 2, each read whole: a 2-aligned
 * 2-byte entry never straddles a line).  A plain load, racy by design:
 * other threads write single entries with atomics, and a stale entry only
 * sends the caller to a bin that is then empty.  Under ThreadSanitizer the
 * entries are relaxed atomic loads instead, so that it sees no race at
 * all: a suppression by function name needs both stacks of a race, and it
 * cannot always restore the reader's. */
static inline uint64_t memtable_load_entries(const void *e, unsigned entry_bytes)
{
	uint64_t word = 0;
#if defined(__SANITIZE_THREAD__)
	for (unsigned i = 0; i < 8 / entry_bytes; i++)
		word |= (entry_bytes == 2 ? (uint64_t)__atomic_load_n((const uint16_t *)e + i, __ATOMIC_RELAXED)
		                          : (uint64_t)__atomic_load_n((const unsigned char *)e + i, __ATOMIC_RELAXED))
		        << (8 * entry_bytes * i);
#else
	(void)entry_bytes;
	__builtin_memcpy(&word, e, 8);
#endif
	return word;
}

/* Eight 1-byte entries from e (the table's own). */
static inline uint64_t memtable_load_word(const unsigned char *e)
{
	return memtable_load_entries(e, 1);
}

/* One step of the backward scan over 1-byte entries e, from i down: the
 * highest index in [lo, i) whose byte is not zero among the two aligned
 * words below i, or SIZE_MAX; *next is where the next step starts.  Byte
 * i - 1 counts only if it is at most top_max or all ones (a caller that
 * marks locked entries so must look at them), judged from the word loaded,
 * not loaded apart: a lookup's chain of dependent loads stays one long.
 * Bytes of a word outside [lo, i) are read but masked, so the caller must
 * own the whole words (a written page of the table is made of whole
 * words).  The loads are memtable_load_word's.  The choice between the
 * two words is a select, not a
 * branch: a lookup's bin is as often in the word below addr's as in its
 * own. */
static inline size_t memtable_scan_step(const unsigned char *e, size_t lo, size_t i, unsigned top_max,
                                        size_t *next)
{
	size_t w = (i - 1) & ~(size_t)7, v = w > lo ? w - 8 : w; /* v: the word below, if in range */
	uint64_t high = memtable_load_word(e + w), low = memtable_load_word(e + v);
	unsigned top_bit = 8 * (unsigned)(i - 1 - w);
	uint64_t top = (high >> top_bit) & 0xff;
	high &= ~UINT64_C(0) >> (56 - top_bit); /* bytes w .. i-1 (little-endian: low bytes first) */
	high &= ~(((uint64_t)0 - (top > top_max && top != 0xff)) & (UINT64_C(0xff) << top_bit));
	low &= v != w ? ~UINT64_C(0) : 0;
	if (__builtin_expect(lo > v, 0)) { /* bytes below lo: masked (lo - v < 8, lo - w < 8) */
		low &= ~UINT64_C(0) << (8 * (lo - v));
		if (lo > w)
			high &= ~UINT64_C(0) << (8 * (lo - w));
	}
	uint64_t in_high = (uint64_t)0 - (high != 0); /* all ones or zero: gcc makes ?: a branch */
	uint64_t word = (high & in_high) | (low & ~in_high);
	*next = v;
	if (__builtin_expect(!word, 0))
		return SIZE_MAX;
	return v + (size_t)((w - v) & in_high) + (size_t)(63 - __builtin_clzll(word)) / 8;
}

/* The near scan, a lookup's common case in one load: the eight 1-byte
 * entries ending at the one at e (e - 7 .. e) as a little-endian word, e's
 * own byte (the top one) cleared unless it is at most top_max or all ones
 * (memtable_scan_step's rule).  The highest nonzero byte of the result is
 * the nearest counted entry at or below e's.  The caller makes sure all
 * eight lie in one written page (e's offset in its page is at least 7);
 * the load is memtable_load_word's. */
static inline uint64_t memtable_scan_near(const unsigned char *e, unsigned top_max)
{
	uint64_t word = memtable_load_word(e - 7);
	uint64_t top = word >> 56;
	return word & ~(((uint64_t)0 - (top > top_max && top != 0xff)) << 56);
}

/* For 1-byte entries: the highest index in [lo, hi) of e whose byte is not
 * zero, or SIZE_MAX.  Eight entries per load (memtable_scan_step). */
static inline size_t memtable_last_nonzero_in(const unsigned char *e, size_t lo, size_t hi)
{
	for (size_t i = hi; i > lo;) {
		size_t found = memtable_scan_step(e, lo, i, UINT8_MAX, &i);
		if (found != SIZE_MAX)
			return found;
	}
	return SIZE_MAX;
}

/* memtable_last_nonzero_byte beyond the page holding from - 1. */
size_t memtable_last_nonzero_byte_slow(const struct memtable *t, size_t from, size_t lowest);

/* For 1-byte entries: the highest bin in [lowest, top] whose entry is not
 * zero, counting top's own entry only if it is at most top_max or all ones
 * (a caller that marks locked entries so must look at them); SIZE_MAX if
 * there is none (lowest <= top).  Reads eight entries per load; skips pages
 * never written (and absent leaves) without touching them, whole summary
 * pages of them at a time.  Inline for the common case of a lookup, a bin
 * found in the page of top: the written-pages summary is then tested once
 * for the whole scan, not once per bin. */
static inline size_t memtable_last_nonzero_byte_upto(const struct memtable *t, size_t top,
                                                     unsigned top_max, size_t lowest)
{
	size_t page = top >> MEMTABLE_PAGE_SHIFT, page_start = page << MEMTABLE_PAGE_SHIFT;
	size_t from = top + 1;
	const unsigned char *e;
	if (memtable_page_written(t, page) && (e = memtable_entry_address(t, page_start)) != NULL) {
		size_t lo = (page_start > lowest ? page_start : lowest) - page_start, next;
		size_t found = memtable_scan_step(e, lo, top + 1 - page_start, top_max, &next);
		if (__builtin_expect(found != SIZE_MAX, 1))
			return page_start + found;
		found = next > lo ? memtable_last_nonzero_in(e, lo, next) : SIZE_MAX;
		if (found != SIZE_MAX)
			return page_start + found;
		from = lo + page_start;
	}
	return memtable_last_nonzero_byte_slow(t, from, lowest);
}

/* For 1-byte entries: the highest bin in [lowest, from) whose entry is not
 * zero, or SIZE_MAX. */
static inline size_t memtable_last_nonzero_byte(const struct memtable *t, size_t from, size_t lowest)
{
	return from > lowest ? memtable_last_nonzero_byte_upto(t, from - 1, UINT8_MAX, lowest) : SIZE_MAX;
}

/* Bytes the table has committed: the pages of entries, of the summary and
 * of the two-level directory that were ever written.  Counted, not asked of
 * the kernel: since no read touches an unwritten page, a page is resident
 * iff it was written, with or without a shared zero page (and the table is
 * never backed by huge pages).  Does not allocate. */
size_t memtable_resident_bytes(const struct memtable *t);

/* Bytes the shadow array has committed (0 without one): its pages of the
 * bins of every table page marked written, counted likewise; not part of
 * memtable_resident_bytes. */
size_t memtable_shadow_resident_bytes(const struct memtable *t);

#endif /* HEAPINDEX_MEMTABLE_H */
