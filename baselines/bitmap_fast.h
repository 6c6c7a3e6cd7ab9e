/* bitmap_fast.h - the common cases of the bitmap's header bodies
 * (baselines/bitmap.c), inline: the hooks' header path of the bitmap build
 * includes this (index.h, INDEX_HEADER_INLINE), and bitmap.c's own insert
 * and remove are these cases and their slow paths, so there is one copy.
 *
 * Each common case is tests of the chunk against state that is written
 * under region_lock before it is published, or only ever raised (struct
 * bitmap_hot), then one atomic read-modify-write of one bitmap word:
 *  - insert: a small chunk no bigger than any so far (max_small_size is
 *    raised by the slow path alone, so the one write is the bit), in a span
 *    whose region exists, whose word lies on a page already noted dirty:
 *    one atomic OR;
 *  - remove: a small chunk in a span with a region, whose bit the atomic
 *    AND finds set.
 * So fork may copy the process before or after the one write, never during
 * it: the child's bitmap is whole (the chunk indexed or not, as its malloc
 * or free never returned there), and the hooks call these outside the fork
 * bracket (threads.h).  A lookup from a signal handler that interrupts one
 * waits for nothing of it: they hold no lock.
 *
 * The remove's one wait, for lookups of other threads that hold c's header
 * under a hazard pointer (threads.h), comes after its write and is done
 * here, unbracketed, too: such a lookup is inside its own fork bracket
 * (fork waits for it, never it for fork), holds no lock the remover could
 * hold, waits for no remover, and ends after a bounded read of the header;
 * a signal handler's lookup on this thread that interrupts the wait needs
 * nothing of it either (its hazards are skipped: hazard_wait_readers).
 * Fork while a remover waits leaves the child c unindexed and not freed,
 * as if the free never returned there.
 *
 * Everything else -- a new span (make_region, under region_lock, maps), a
 * page of the bitmap to note (two counts fork could part), a chunk bigger
 * than any small one so far (the bound's raise), a big or uncovered chunk
 * (the big-chunk tree and its lock) -- is refused having changed nothing,
 * and the caller makes the out-of-line body's call (bitmap_index_*_header),
 * which tries the common case again and then takes the slow path; the
 * hooks make that call inside the fork bracket.
 */
#ifndef HEAPINDEX_BITMAP_FAST_H
#define HEAPINDEX_BITMAP_FAST_H

#include <stddef.h>
#include <stdint.h>

#include "chunk.h"
#include "lock.h"
#include "threads.h"

#define BITMAP_BIG_THRESHOLD ((size_t)128 << 10) /* glibc's default mmap threshold */

#define BITMAP_REGION_SHIFT 30
#define BITMAP_REGION_BYTES ((uintptr_t)1 << BITMAP_REGION_SHIFT)
#define BITMAP_BYTES_PER_BIT CHUNK_ALIGN
#define BITMAP_BYTES_PER_WORD (BITMAP_BYTES_PER_BIT * 64)             /* 1 KiB of heap */
#define BITMAP_WORDS (BITMAP_REGION_BYTES / BITMAP_BYTES_PER_WORD)   /* 2^20 words */
#define BITMAP_BYTES (BITMAP_WORDS * sizeof(uint64_t))                /* 8 MiB */
#define BITMAP_PAGE 4096u /* residency is counted in 4 KiB units */
#define BITMAP_PAGES (BITMAP_BYTES / BITMAP_PAGE)

/* The region table: at most half full, so probe runs stay short. */
#define BITMAP_SLOT_BITS 8
#define BITMAP_SLOTS (1u << BITMAP_SLOT_BITS)

/* What the updates read on every call.  Hidden: in the hook library the
 * hooks reach it directly, without the GOT. */
struct bitmap_hot {
	uintptr_t slot_span[BITMAP_SLOTS]; /* span number + 1; 0: empty slot (atomic) */
	uint64_t *slot_bits[BITMAP_SLOTS]; /* that span's bitmap, set before slot_span */
	size_t max_small_size;             /* largest small chunk ever inserted (atomic) */
	/* Under side: the largest usable size of a small chunk + the usable
	 * slack (index.h, index_raise_reach), the side lookups' scan bound;
	 * raised by the slow path alone, before the bit (atomic). */
	size_t max_small_reach;
	/* Bitmap pages ever written, per slot: what the kernel has
	 * committed, counted without asking it.  A lookup reads a bitmap
	 * page only if it was written: on a kernel without a shared zero
	 * page, the first read of an untouched page commits it (1,092 page
	 * faults in 100,000 lookups near the heap before this check).  Only
	 * ever set. */
	uint64_t dirty[BITMAP_SLOTS][BITMAP_PAGES / 64];
};

extern __attribute__((visibility("hidden"))) struct bitmap_hot bitmap_hot;

/* The remove's wait for lookups holding c's header (see the top), apart
 * and returning c, so that its callers make it as a tail call. */
__attribute__((visibility("hidden"), returns_nonnull)) struct chunk *bitmap_remove_waiting(struct chunk *c);

static inline size_t bitmap_slot_hash(uintptr_t span)
{
	return (size_t)((span * UINT64_C(0x9e3779b97f4a7c15)) >> (64 - BITMAP_SLOT_BITS));
}

/* The slot of a span's region, or BITMAP_SLOTS if no chunk ever started
 * there. */
static inline __attribute__((always_inline)) size_t bitmap_span_slot(uintptr_t span)
{
	for (size_t i = bitmap_slot_hash(span);; i = (i + 1) & (BITMAP_SLOTS - 1)) {
		uintptr_t seen = __atomic_load_n(&bitmap_hot.slot_span[i], __ATOMIC_ACQUIRE);
		if (seen == span + 1)
			return i;
		if (seen == 0)
			return BITMAP_SLOTS;
	}
}

static inline __attribute__((always_inline)) uint64_t *bitmap_span_bits(uintptr_t span)
{
	size_t i = bitmap_span_slot(span);
	return i < BITMAP_SLOTS ? __atomic_load_n(&bitmap_hot.slot_bits[i], __ATOMIC_RELAXED) : NULL;
}

static inline __attribute__((always_inline)) size_t bitmap_word_of(uintptr_t addr)
{
	return (addr & (BITMAP_REGION_BYTES - 1)) / BITMAP_BYTES_PER_WORD;
}

static inline __attribute__((always_inline)) uint64_t bitmap_bit_of(uintptr_t addr)
{
	return UINT64_C(1) << ((addr / BITMAP_BYTES_PER_BIT) % 64);
}

static inline __attribute__((always_inline)) int bitmap_page_written(size_t slot, size_t word)
{
	size_t page = word * sizeof(uint64_t) / BITMAP_PAGE;
	return (int)((__atomic_load_n(&bitmap_hot.dirty[slot][page / 64], __ATOMIC_ACQUIRE) >> (page % 64)) & 1);
}

/* The bit of the chunk at user, set.  Invariant: a nonzero word lies on a
 * page noted dirty (for the insert that set its first bit found it zero and
 * noted the page first, and notes are never cleared): the caller has seen
 * the word's page noted, or the word nonzero, or noted the page itself. */
static inline __attribute__((always_inline)) void bitmap_set(uint64_t *word, uintptr_t user, struct chunk *c)
{
	(void)c; /* the annotation's only */
	/* Release: a lookup that sees the bit sees the header written before. */
	LOCK_ANNOTATE_HAPPENS_BEFORE(c);
	__atomic_fetch_or(word, bitmap_bit_of(user), __ATOMIC_RELEASE);
}

/* Clear the bit of the chunk at user in bits: 1 if it was set.  Only this
 * chunk sets or clears its own bit while it is live.  seq_cst against the
 * lookups' hazard publication (threads.h): either a lookup's re-check sees
 * the bit gone, or the remover's later load of hazard_readers sees the
 * lookup. */
static inline __attribute__((always_inline)) int bitmap_clear(uint64_t *bits, uintptr_t user)
{
	return (__atomic_fetch_and(&bits[bitmap_word_of(user)], ~bitmap_bit_of(user), __ATOMIC_SEQ_CST) &
	        bitmap_bit_of(user)) != 0;
}

/* The insert's common case (see the top) for c of size bytes (its
 * requested size, as the header says): 1 if indexed, 0 with nothing
 * changed.  It tests the page's note, not the word (the slow path's
 * test): the note's line is read by every insert and lookup of the
 * span, and the OR then follows no load of its own line (make
 * hook-cost header 254.4 -> 251.4). */
static inline __attribute__((always_inline)) int bitmap_index_header_insert_fast(struct chunk *c, size_t size)
{
	uintptr_t user = chunk_user(c);
	if (__builtin_expect(size > __atomic_load_n(&bitmap_hot.max_small_size, __ATOMIC_RELAXED), 0))
		return 0;
	size_t slot = bitmap_span_slot(user >> BITMAP_REGION_SHIFT);
	if (__builtin_expect(slot == BITMAP_SLOTS, 0))
		return 0;
	size_t w = bitmap_word_of(user);
	uint64_t *word = __atomic_load_n(&bitmap_hot.slot_bits[slot], __ATOMIC_RELAXED) + w;
	if (__builtin_expect(!bitmap_page_written(slot, w), 0))
		return 0;
	bitmap_set(word, user, c);
	return 1;
}

/* The remove's common case: c if its bit was set and is now clear (and no
 * lookup holds its header any more), NULL with nothing changed (a big
 * chunk, or a small one in the big tree: its bit clear, the AND writes
 * the word as it was).  The header stays readable until the wait: the
 * hooks free c after this returns. */
static inline __attribute__((always_inline)) struct chunk *bitmap_index_header_remove_fast(struct chunk *c,
                                                                                         size_t size)
{
	uintptr_t user = chunk_user(c);
	uint64_t *bits = size <= BITMAP_BIG_THRESHOLD ? bitmap_span_bits(user >> BITMAP_REGION_SHIFT) : NULL;
	if (!bits || !bitmap_clear(bits, user))
		return NULL;
	if (hazard_readers_present())
		return bitmap_remove_waiting(c);
	return c;
}

/* The side insert's common case (index.h, INDEX_SIDE_INLINE), for a
 * plain malloc of size bytes at user: as the header's, and user 16-byte
 * aligned (jemalloc's 8-byte class shares another chunk's bit: the slow
 * path sends it to the big tree).  No usable size is asked: a plain
 * malloc no bigger than the largest request the slow path saw gets a
 * usable size within max_small_reach (index_raise_reach says why), so
 * the side lookups' scan still reaches its start.  1 if indexed, 0 with
 * nothing changed. */
static inline __attribute__((always_inline)) int bitmap_index_side_insert_fast(uintptr_t user, size_t size)
{
	if (__builtin_expect(user % CHUNK_ALIGN != 0, 0))
		return 0;
	return bitmap_index_header_insert_fast(chunk_of_user((void *)user), size);
}

/* The side remove's common case: 1 if user's bit was set and is now clear
 * (and no lookup holds it any more), 0 with nothing changed: a misaligned
 * or foreign pointer, a span without a region, a page never noted (the AND
 * would commit it: a foreign pointer's), a bit not set (the big tree's). */
static inline __attribute__((always_inline)) int bitmap_index_side_remove_fast(uintptr_t user)
{
	if (__builtin_expect(user % CHUNK_ALIGN != 0, 0))
		return 0;
	size_t slot = bitmap_span_slot(user >> BITMAP_REGION_SHIFT);
	if (__builtin_expect(slot == BITMAP_SLOTS, 0) || !bitmap_page_written(slot, bitmap_word_of(user)))
		return 0;
	uint64_t *bits = __atomic_load_n(&bitmap_hot.slot_bits[slot], __ATOMIC_RELAXED);
	if (!bitmap_clear(bits, user))
		return 0;
	if (hazard_readers_present())
		(void)bitmap_remove_waiting(chunk_of_user((void *)user));
	return 1;
}

#endif /* HEAPINDEX_BITMAP_FAST_H */
