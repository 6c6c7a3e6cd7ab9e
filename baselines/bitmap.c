/* bitmap.c - one bit per 16 bytes of heap, set at each chunk start: the
 * design that replaced the memtable in liballocs (2022).
 *
 * A lookup finds the nearest set bit at or below the address, 64 bits (1 KiB
 * of heap) per word read, and checks that chunk's size in its header.  No
 * lists, no per-chunk links; one bit of index per 16 bytes of heap span.
 *
 * Small chunks (at most BIG_THRESHOLD bytes) are in the bitmaps.  A chunk
 * containing addr starts less than its size below addr, so the backward scan
 * stops after max_small_size bytes of heap, at most BIG_THRESHOLD / 1 KiB =
 * 128 words.  max_small_size is the largest small chunk ever inserted (as
 * memtable's): cheaper than tracking the live maximum, and bounded anyway.
 * Big chunks would make that bound huge: they live in the shared big-chunk
 * B+tree (big_chunks.h).
 *
 * Regions: the bitmap of a 1 GiB-aligned span of address space is 8 MiB,
 * reserved with MAP_NORESERVE when the first chunk lands in the span and
 * committed by the kernel page by page as bits are set; the heap of a
 * process (brk heap, glibc's 64 MiB thread heaps) touches a handful of
 * spans.  A region is found by its span number in a small open-addressing
 * table (multiplicative hash, linear probing): O(1) whatever the number of
 * regions, a few words of cache, and unlike a flat directory over the whole
 * address space it needs no reservation sized by the address width.
 * Regions are never released: heaps rarely give address space back.  The
 * table holds 128 regions (128 GiB of spans); a small chunk beyond them, or
 * whose bitmap cannot be mapped, goes to the big array (uncovered_inserts).
 *
 * Threads: bits are set and cleared with atomic OR and AND, so inserts and
 * removes take no lock; lookups take none either.  A lookup that finds a
 * bit must still read the chunk's header for its size, and that chunk may
 * be freed under it: the memory of a small glibc chunk stays mapped, but
 * the allocator writes its own links into it and hands it out again, so the
 * read could return a torn or foreign size.  Lookups therefore protect the
 * header with a hazard pointer (threads.h): they publish the address,
 * re-check the bit, and only then read; a remove clears the bit and waits
 * until no lookup holds that address before the hooks free the chunk.  A
 * remove pays one load when no lookup is running anywhere, a lookup four
 * atomic instructions.  Regions are made under region_lock and published
 * with release stores (span number last); the big-chunk tree has its own lock.
 *
 * The header bodies' common cases -- one atomic OR or AND of a word, no
 * lock -- are inline in bitmap_fast.h, which the hooks' header path
 * includes and runs outside the fork bracket (index.h, INDEX_HEADER_INLINE;
 * why that is safe is said there); what they refuse, having changed
 * nothing, comes here in the bracket (insert_slow, remove_big).  make
 * hook-cost, header / side / trailer: 282.4 / 378.0 / 429.9 -> 260.5 /
 * 377.0 / 424.9 (common cases inline and unbracketed) -> 254.4 / 371.0 /
 * 418.9 (the remove's wait returns nonnull: free saves no register) ->
 * 251.4 / 371.0 / 415.9 (the insert tests the page's note, not the word).
 *
 * Under side (no bytes in the chunk, hooks/chunk.h), the bitmap's
 * default, it keeps no size either: a bit tells its chunks at remove
 * (index.h, INDEX_SIDE_TELLS) and a lookup asks the allocator for the
 * usable size of the chunk it holds under its hazard (chunk_held_size):
 * so lookups answer the usable size, not the request, and no site -- what
 * the default gives up, as the memtable's does.  The side common cases
 * (bitmap_fast.h, inline in the hooks as the memtable's start masks) ask
 * no size: a plain malloc no bigger than the largest request so far, in a
 * noted page, is one OR.  The slow path asks the usable size and raises
 * max_small_reach (largest usable + the slack, index.h index_raise_reach),
 * which bounds the side lookups' scan as max_small_size bounds header's; a
 * chunk whose user pointer is not 16-byte aligned (jemalloc's 8-byte
 * class) goes to the big tree, its bit being another chunk's.  make
 * hook-cost, header / side / trailer: 251.4 / 371.0 / 415.9 with the
 * usable size asked at every side insert -> 268.4 / 253.0 / 433.9 (side
 * inline; the header path now apart in the hooks, as for the memtable).
 *
 * Invariants:
 *  - bit (a - span base) / 16 of a region is set iff a small chunk with user
 *    pointer a is live (while its insert or remove runs, either);
 *  - every live chunk is in exactly one of: a region's bitmap, the big array
 *    (bigger than BIG_THRESHOLD, or its region could not be had);
 */
#include "big_chunks.h"
#include "bitmap_fast.h"
#include "index.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

INDEX_DECLARE(bitmap)

#define MAX_REGIONS (BITMAP_SLOTS / 2)

/* The regions, the largest small chunk and the dirty-page notes
 * (bitmap_fast.h). */
struct bitmap_hot bitmap_hot;
static size_t regions;         /* atomic */
static spinlock_t region_lock; /* serialises making regions */
static size_t dirty_pages;     /* bits set in bitmap_hot.dirty (atomic) */

/* Big chunks, and small ones whose region could not be had. */
static struct big_chunks big;

static struct {
	uint64_t lookups, words_scanned, longest_scan;
	uint64_t uncovered_inserts;
} counters;

/* --- regions ---------------------------------------------------------------- */

/* The region of a span, made under region_lock; BITMAP_SLOTS if it cannot be.
 * Out of line: once per span, and inlined it made every insert save five
 * registers. */
static __attribute__((noinline)) size_t make_region(uintptr_t span)
{
	uintptr_t *slot_span = bitmap_hot.slot_span;
	spin_lock(&region_lock);
	size_t i = bitmap_slot_hash(span);
	for (; slot_span[i] != 0; i = (i + 1) & (BITMAP_SLOTS - 1))
		if (slot_span[i] == span + 1)
			goto out; /* another thread made it meanwhile */
	if (regions == MAX_REGIONS) {
		i = BITMAP_SLOTS;
		goto out;
	}
	/* index_map_pages would commit-charge all 8 MiB; MAP_NORESERVE does not. */
	int saved = errno; /* inside malloc: a refusal must not show in errno */
	void *bits = mmap(NULL, BITMAP_BYTES, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	errno = saved;
	if (bits == MAP_FAILED) {
		i = BITMAP_SLOTS;
		goto out;
	}
	/* Exchanges, not stores: helgrind and drd take a plain store read
	 * without the lock for a race; lookups need no lock here. */
	__atomic_fetch_add(&regions, 1, __ATOMIC_RELAXED);
	(void)__atomic_exchange_n(&bitmap_hot.slot_bits[i], (uint64_t *)bits, __ATOMIC_RELAXED);
	(void)__atomic_exchange_n(&slot_span[i], span + 1, __ATOMIC_RELEASE);
out:
	spin_unlock(&region_lock);
	return i;
}

/* Two writes (the note, then the count): never in the hooks' unbracketed
 * common case, where fork could part them. */
static inline void note_dirty_page(size_t slot, size_t word)
{
	size_t page = word * sizeof(uint64_t) / BITMAP_PAGE;
	uint64_t *mask = &bitmap_hot.dirty[slot][page / 64], bit = UINT64_C(1) << (page % 64);
	if (!(__atomic_load_n(mask, __ATOMIC_RELAXED) & bit) &&
	    !(__atomic_fetch_or(mask, bit, __ATOMIC_RELAXED) & bit))
		__atomic_fetch_add(&dirty_pages, 1, __ATOMIC_RELAXED);
}

/* Word w of a slot's bitmap, or 0 without reading it if its page was never
 * written. */
static inline uint64_t bitmap_word(size_t slot, const uint64_t *bits, size_t w)
{
	return bitmap_page_written(slot, w) ? __atomic_load_n(&bits[w], __ATOMIC_ACQUIRE) : 0;
}

/* --- the index ------------------------------------------------------------------- */

int bitmap_index_init(const struct heapindex_config *cfg, char *err, size_t errlen)
{
	(void)cfg, (void)err, (void)errlen;
	LOCK_ANNOTATE_BENIGN_RACE(&counters, sizeof counters, "lookup statistics (INDEX_STAT_ADD)");
	return 0;
}

/* Small chunk c joins the bitmap of region slot: the slow path's way,
 * which raises the bound and notes the page as needed. */
static inline void insert_in_region(struct chunk *c, size_t size, size_t slot)
{
	uintptr_t user = chunk_user(c);
	index_raise_bound(&bitmap_hot.max_small_size, size);
	size_t w = bitmap_word_of(user);
	uint64_t *bits = __atomic_load_n(&bitmap_hot.slot_bits[slot], __ATOMIC_RELAXED);
	/* Before the bit: lookups read only dirty pages, and only a zero
	 * word asks (bitmap_set's invariant). */
	if (!__atomic_load_n(&bits[w], __ATOMIC_RELAXED))
		note_dirty_page(slot, w);
	bitmap_set(&bits[w], user, c);
}

/* The first small chunk of a span (once per span), or a span without a
 * region to be had. */
static __attribute__((noinline)) void insert_new_span(struct chunk *c, size_t size)
{
	size_t slot = make_region(chunk_user(c) >> BITMAP_REGION_SHIFT);
	if (slot == BITMAP_SLOTS) {
		__atomic_fetch_add(&counters.uncovered_inserts, 1, __ATOMIC_RELAXED);
		big_chunks_insert(&big, c); /* on failure: unindexed, never corrupt */
		return;
	}
	insert_in_region(c, size, slot);
}

/* What the insert's common case refused (bitmap_fast.h): apart, so that
 * insert's common path keeps nothing in callee-saved registers. */
static __attribute__((noinline)) void insert_slow(struct chunk *c, size_t size)
{
	if (size > BITMAP_BIG_THRESHOLD) {
		big_chunks_insert(&big, c); /* on failure: unindexed, never corrupt */
		return;
	}
	size_t slot = bitmap_span_slot(chunk_user(c) >> BITMAP_REGION_SHIFT);
	if (slot == BITMAP_SLOTS)
		return insert_new_span(c, size);
	insert_in_region(c, size, slot);
}

/* size: c's, read once by the caller (one atomic load, chunk.h). */
static inline void insert_sized(struct chunk *c, size_t size)
{
	if (__builtin_expect(!bitmap_index_header_insert_fast(c, size), 0))
		insert_slow(c, size);
}

/* remove_sized's calls, apart and returning c, so that it makes them as
 * tail calls and keeps nothing across them. */
static __attribute__((noinline)) struct chunk *remove_big(struct chunk *c)
{
	big_chunks_remove(&big, c); /* big, or small but uncovered when inserted */
	return c;
}

/* Lookups reading c's header finish before the hooks free it (threads.h;
 * bitmap_fast.h says why this wait needs no fork bracket). */
struct chunk *bitmap_remove_waiting(struct chunk *c)
{
	hazard_wait_readers(chunk_user(c));
	return c;
}

/* The common case refuses just the chunks not in a bitmap, having changed
 * nothing: those are the big tree's. */
static inline struct chunk *remove_sized(struct chunk *c, size_t size)
{
	struct chunk *done = bitmap_index_header_remove_fast(c, size);
	return __builtin_expect(done != NULL, 1) ? done : remove_big(c);
}

/* Under side (see the top), every insert the common case refuses, and
 * every chunk of the hooks' general path (memalign, calloc, realloc: their
 * usable size may pass what their request's class gives): the usable size
 * is asked, raises the side lookups' reach before the bit is set, and
 * decides small or big with the request; misaligned chunks are big. */
static __attribute__((noinline)) void insert_side_slow(struct chunk *c, size_t size)
{
	size_t usable;
	if (size > BITMAP_BIG_THRESHOLD || chunk_user(c) % CHUNK_ALIGN ||
	    (usable = chunk_held_size(c)) > BITMAP_BIG_THRESHOLD) {
		big_chunks_insert(&big, c); /* on failure: unindexed, never corrupt */
		return;
	}
	index_raise_reach(&bitmap_hot.max_small_reach, usable);
	size_t slot = bitmap_span_slot(chunk_user(c) >> BITMAP_REGION_SHIFT);
	if (slot == BITMAP_SLOTS)
		return insert_new_span(c, size);
	insert_in_region(c, size, slot);
}

/* The insert of a plain malloc of size bytes under side (index.h,
 * INDEX_SIDE_BODIES): the common case (bitmap_fast.h), else the slow path.
 * The hooks call it, in the fork bracket, when their inline copy of the
 * common case refused (INDEX_SIDE_INLINE). */
void bitmap_index_insert_side(struct chunk *c, size_t size);
void bitmap_index_insert_side(struct chunk *c, size_t size)
{
	if (__builtin_expect(!bitmap_index_side_insert_fast(chunk_user(c), size), 0))
		insert_side_slow(c, size);
}

/* The remove under side: 1 if c was the index's (its bit, or the big
 * tree), 0 if not (index.h).  What the common case refuses is a bit not
 * set (the big tree's, or a foreign pointer's) or a page never noted (a
 * foreign pointer's). */
int bitmap_index_remove_side(struct chunk *c);
int bitmap_index_remove_side(struct chunk *c)
{
	return __builtin_expect(bitmap_index_side_remove_fast(chunk_user(c)), 1) || big_chunks_remove(&big, c);
}

/* insert and remove (under side apart, above), and the header bodies the
 * hooks' header fast path calls with the size it has (index.h,
 * INDEX_HEADER_BODIES). */
void bitmap_index_insert_header(struct chunk *c, size_t size);
struct chunk *bitmap_index_remove_header(struct chunk *c, size_t size);

void bitmap_index_insert(struct chunk *c)
{
	if (chunk_meta == META_SIDE)
		return insert_side_slow(c, chunk_size(c));
	insert_sized(c, chunk_size(c));
}

void bitmap_index_remove(struct chunk *c)
{
	if (chunk_meta == META_SIDE) {
		if (bitmap_index_remove_side(c))
			chunk_side_told(); /* else CHUNK_SIZE_NONE stays: not ours */
		return;
	}
	(void)remove_sized(c, chunk_size(c));
}

void bitmap_index_insert_header(struct chunk *c, size_t size) { insert_sized(c, size); }
struct chunk *bitmap_index_remove_header(struct chunk *c, size_t size) { return remove_sized(c, size); }

/* The highest set bit's address in [low, addr] of one span's bitmap, as a
 * user pointer, or 0.  low and addr are in the same span, low <= addr; bits
 * below low may be returned too (their chunks cannot contain addr anyway). */
static uintptr_t scan_back(size_t slot, const uint64_t *bits, uintptr_t low, uintptr_t addr)
{
	size_t w = bitmap_word_of(addr), last = bitmap_word_of(low);
	unsigned top = (unsigned)((addr / BITMAP_BYTES_PER_BIT) % 64);
	uint64_t word = bitmap_word(slot, bits, w) & (~UINT64_C(0) >> (63 - top)); /* bits 0..top */
	uint64_t scanned = 1;
	while (!word && w > last) {
		word = bitmap_word(slot, bits, --w);
		scanned++;
	}
	INDEX_STAT_ADD(counters.words_scanned, scanned);
	INDEX_STAT_MAX(counters.longest_scan, scanned);
	if (!word)
		return 0;
	uintptr_t span_base = addr & ~(BITMAP_REGION_BYTES - 1);
	unsigned bit = 63u - (unsigned)__builtin_clzll(word);
	return span_base + (w * 64 + bit) * BITMAP_BYTES_PER_BIT;
}

/* The chunk starting at start (its bit was set in bits) is the nearest below
 * addr: protect its header, check it is still indexed, copy it out.  If it
 * was removed meanwhile, no chunk live throughout the lookup contains addr
 * (it would overlap the removed one), so the answer is none. */
static int read_chunk(const uint64_t *bits, uintptr_t start, uintptr_t addr, struct chunk_info *out)
{
	struct thread_slot *self = thread_slot();
	int h = self ? hazard_protect(self, start) : -1;
	if (h < 0)
		return INDEX_UNKNOWN; /* nested too deep in signal handlers */
	int answer = INDEX_NONE;
	if (__atomic_load_n(&bits[bitmap_word_of(start)], __ATOMIC_SEQ_CST) & bitmap_bit_of(start)) {
		const struct chunk *c = chunk_of_user((void *)start);
		LOCK_ANNOTATE_HAPPENS_AFTER(c);
		if (addr - start < chunk_held_size(c)) /* under side: the allocator's, held by the hazard */
			answer = chunk_info_copy_held(c, out);
	}
	hazard_release(self, h);
	return answer;
}

/* The nearest small chunk starting at or below addr, if it contains addr. */
static int small_lookup(uintptr_t addr, struct chunk_info *out)
{
	if (!__atomic_load_n(&regions, __ATOMIC_RELAXED))
		return INDEX_NONE;
	/* The lowest start a chunk containing addr can have. */
	/* Under side the sizes a lookup answers are usable sizes: the reach. */
	size_t max_small = __atomic_load_n(chunk_meta == META_SIDE ? &bitmap_hot.max_small_reach
	                                                           : &bitmap_hot.max_small_size,
	                                   __ATOMIC_RELAXED);
	uintptr_t low = addr >= max_small ? addr - max_small + 1 : 0;
	for (uintptr_t span = addr >> BITMAP_REGION_SHIFT;; span--) {
		uintptr_t span_base = span << BITMAP_REGION_SHIFT;
		size_t slot = bitmap_span_slot(span);
		if (slot < BITMAP_SLOTS) {
			const uint64_t *bits = __atomic_load_n(&bitmap_hot.slot_bits[slot], __ATOMIC_RELAXED);
			uintptr_t from = addr < span_base + BITMAP_REGION_BYTES ? addr : span_base + BITMAP_REGION_BYTES - 1;
			uintptr_t start = scan_back(slot, bits, low > span_base ? low : span_base, from);
			if (start)
				return read_chunk(bits, start, addr, out);
		}
		/* A chunk starting in the span below may reach addr. */
		if (low >= span_base || span == 0)
			return INDEX_NONE;
	}
}

int bitmap_index_lookup(uintptr_t addr, struct chunk_info *out)
{
	chunk_prefetch_header_guess(addr); /* before the bitmap is read */
	INDEX_STAT_ADD(counters.lookups, 1);
	return big_chunks_lookup_after(&big, small_lookup(addr, out), addr, out);
}

void bitmap_index_write_stats(struct json_out *out)
{
	size_t resident = __atomic_load_n(&dirty_pages, __ATOMIC_RELAXED) * BITMAP_PAGE;
	size_t big_bytes = big_chunks_bytes(&big);
	json_u64(out, "links_bytes", 0);
	json_u64(out, "region_bytes", BITMAP_REGION_BYTES);
	size_t n_regions = __atomic_load_n(&regions, __ATOMIC_RELAXED);
	json_u64(out, "regions", n_regions);
	json_u64(out, "bitmap_reserved_bytes", n_regions * BITMAP_BYTES);
	json_u64(out, "bitmap_resident_bytes", resident);
	json_u64(out, "big_threshold", BITMAP_BIG_THRESHOLD);
	big_chunks_write_stats(&big, out);
	json_u64(out, "index_bytes", resident + big_bytes);
	json_u64(out, "uncovered_inserts", counters.uncovered_inserts);
	json_u64(out, "max_small_size", __atomic_load_n(&bitmap_hot.max_small_size, __ATOMIC_RELAXED));
	json_u64(out, "max_small_reach", __atomic_load_n(&bitmap_hot.max_small_reach, __ATOMIC_RELAXED));
	json_u64(out, "lookups", counters.lookups);
	json_u64(out, "words_scanned", counters.words_scanned);
	json_f64(out, "words_per_lookup",
	         counters.lookups ? (double)counters.words_scanned / (double)counters.lookups : 0.0);
	json_u64(out, "longest_scan_words", counters.longest_scan);
}

INDEX_DEFINE_OPS(bitmap, 0, INDEX_ANSWERS_LOOKUPS | INDEX_META_HEADER | INDEX_META_TRAILER | INDEX_META_SIDE |
                                INDEX_SIDE_TELLS)
