/* start_masks.h - the common cases of the memtable's side bodies (the
 * start masks, heap_index.c), inline: the hooks' side path of the memtable
 * build includes this (index.h, INDEX_SIDE_INLINE), and heap_index.c's own
 * side bodies are these cases and their slow paths, so there is one copy.
 *
 * Each common case is tests of the user pointer against state that is
 * written at init or only ever raised (struct memtable_hot), then one
 * atomic read-modify-write of one table byte: insert an OR of the start
 * bit, remove a compare-and-swap clearing it (which fails, changing
 * nothing, while a lookup holds the bin's lock bit).  So it takes no lock,
 * waits for nothing and leaves nothing half done:
 *  - fork may copy the process before or after the one write, never
 *    during it, so the child's table is whole without a fork bracket
 *    (threads.h): the hooks call these outside it;
 *  - a lookup from a signal handler that interrupts one never waits for
 *    it: neither holds the lock bit (a remove waits for a lookup's bit in
 *    its slow path, never the other way round).
 * Everything else -- a page of the table to mark written, a two-level
 * table, a chunk bigger than any small one so far, a big or uncovered
 * chunk (the big-chunk tree and its lock), a misaligned one, a held bin to
 * wait for -- answers 0 having changed nothing, and the caller makes the
 * out-of-line body's call (memtable_index_insert_side, _remove_side), which
 * tries the common case again and then takes the slow path; the hooks make
 * that call inside the fork bracket.
 */
#ifndef HEAPINDEX_START_MASKS_H
#define HEAPINDEX_START_MASKS_H

#include <stddef.h>
#include <stdint.h>

#include "lock.h"
#include "memtable.h"

#define MASK_STARTS 0x0fu /* bits 0..3: slots 0..3 (fewer at shifts 4 and 5) */
#define MASK_LOCK 0x80u

/* What the memtable's updates read on every call, together in one line:
 * set by memtable_index_init before any update, never changed after but
 * for max_small_size, which only grows (index_raise_bound).  Hidden: in
 * the hook library the hooks reach it directly, without the GOT. */
struct memtable_hot {
	/* table.limit >> 4 if the table is flat, else 0: a user pointer
	 * rotated right by 4 (mask_rotated) is below it iff the pointer is
	 * covered, the table flat, and the pointer 16-byte aligned (its low
	 * bits rotate to the top, above any limit): three tests, one compare. */
	uintptr_t rotated_limit;
	size_t max_small_size;   /* the largest small chunk ever indexed (atomic) */
	unsigned char *entries;  /* the flat table's bytes (NULL if two-level) */
	const uint64_t *written; /* the written-pages summary's table bits (memtable.h) */
	unsigned rotated_shift;  /* the bin shift - 4: the bin of a rotated aligned pointer */
	unsigned slot_mask;      /* slots in a bin - 1: (bin bytes >> 4) - 1 */
	uintptr_t flat_limit;    /* table.limit if flat, else 0 (the list form's test) */
	uint16_t *heads;         /* the list form's head entries, or NULL (heap_index.c) */
};

extern __attribute__((visibility("hidden"))) struct memtable_hot memtable_hot;

static inline __attribute__((always_inline)) uintptr_t mask_rotated(uintptr_t user)
{
	return user >> 4 | user << 60; /* one ror */
}

/* The common case's tests of user, rotated: covered, flat, aligned, and its
 * bin on a table page already marked written (so its byte can be read and
 * written without marking).  Sets *bin. */
static inline __attribute__((always_inline)) int mask_fast_bin(uintptr_t rot, size_t *bin)
{
	const struct memtable_hot *h = &memtable_hot;
	if (__builtin_expect(rot >= h->rotated_limit, 0))
		return 0;
	*bin = rot >> h->rotated_shift;
	return __builtin_expect(memtable_bit_is_set(h->written, *bin >> MEMTABLE_PAGE_SHIFT), 1);
}

/* The start bit of a rotated aligned user pointer in its bin's byte. */
static inline __attribute__((always_inline)) unsigned mask_start_bit(uintptr_t rot)
{
	return 1u << ((unsigned)rot & memtable_hot.slot_mask);
}

static inline __attribute__((always_inline)) void mask_set(unsigned char *e, unsigned bit)
{
	LOCK_ANNOTATE_HAPPENS_BEFORE(e); /* the allocator's writes, before a lookup reads them */
	__atomic_fetch_or(e, (unsigned char)bit, __ATOMIC_RELEASE);
}

/* One try: 1 if bit was set, the bin not held, and the compare-and-swap
 * cleared it; 0 with nothing changed otherwise (a held bin, a race, a
 * clear bit).  No test before the compare-and-swap: it expects the byte
 * as read but with bit set and the lock bit clear, so it fails in just
 * those cases.  Acquire: the free that follows comes after the unlock of
 * any lookup that held the bin. */
static inline __attribute__((always_inline)) int mask_try_clear(unsigned char *e, unsigned bit)
{
	unsigned char expect = (unsigned char)((__atomic_load_n(e, __ATOMIC_RELAXED) | bit) & ~MASK_LOCK);
	if (__builtin_expect(__atomic_compare_exchange_n(e, &expect, (unsigned char)(expect ^ bit), 0,
	                                                 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED), 1)) {
		LOCK_ANNOTATE_HAPPENS_AFTER(e);
		return 1;
	}
	return 0;
}

/* The insert's common case, for a plain malloc of size bytes at user: a
 * chunk no bigger than any small one so far (max_small_size is at most the
 * big threshold, so big chunks fail this too) in the common bin.  1 if
 * indexed; 0 with nothing changed. */
static inline __attribute__((always_inline)) int memtable_index_side_insert_fast(uintptr_t user, size_t size)
{
	uintptr_t rot = mask_rotated(user);
	size_t bin;
	if (__builtin_expect(size > __atomic_load_n(&memtable_hot.max_small_size, __ATOMIC_RELAXED), 0) ||
	    !mask_fast_bin(rot, &bin))
		return 0;
	mask_set(memtable_hot.entries + bin, mask_start_bit(rot));
	return 1;
}

/* The remove's common case: 1 if user's start bit was set in the common
 * bin and is now clear; 0 with nothing changed (the slow path then tells
 * a foreign pointer, a big chunk, a held bin). */
static inline __attribute__((always_inline)) int memtable_index_side_remove_fast(uintptr_t user)
{
	uintptr_t rot = mask_rotated(user);
	size_t bin;
	return mask_fast_bin(rot, &bin) && mask_try_clear(memtable_hot.entries + bin, mask_start_bit(rot));
}

#endif /* HEAPINDEX_START_MASKS_H */
