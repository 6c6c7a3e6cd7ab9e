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
 * Big chunks are few and would make that bound huge: they live in a sorted
 * array, searched by bisection.
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
 * Invariants:
 *  - bit (a - span base) / 16 of a region is set iff a small chunk with user
 *    pointer a is live;
 *  - every live chunk is in exactly one of: a region's bitmap, the big array
 *    (bigger than BIG_THRESHOLD, or its region could not be had);
 *  - the big array is sorted by user pointer.
 */
#include "big_chunks.h"
#include "index.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

INDEX_DECLARE(bitmap)

#define BIG_THRESHOLD ((size_t)128 << 10) /* glibc's default mmap threshold */

#define REGION_SHIFT 30
#define REGION_BYTES ((uintptr_t)1 << REGION_SHIFT)
#define BYTES_PER_BIT CHUNK_ALIGN
#define BYTES_PER_WORD (BYTES_PER_BIT * 64)             /* 1 KiB of heap */
#define BITMAP_WORDS (REGION_BYTES / BYTES_PER_WORD)     /* 2^20 words */
#define BITMAP_BYTES (BITMAP_WORDS * sizeof(uint64_t))   /* 8 MiB */
#define BITMAP_PAGE 4096u /* residency is counted in 4 KiB units */
#define BITMAP_PAGES (BITMAP_BYTES / BITMAP_PAGE)

/* The region table: at most half full, so probe runs stay short. */
#define SLOT_BITS 8
#define SLOTS (1u << SLOT_BITS)
#define MAX_REGIONS (SLOTS / 2)

static uintptr_t slot_span[SLOTS]; /* span number + 1; 0: empty slot */
static uint64_t *slot_bits[SLOTS]; /* that span's bitmap */
static size_t regions;
/* Bitmap pages ever written, per slot: what the kernel has committed,
 * counted without asking it.  A lookup reads a bitmap page only if it was
 * written: on a kernel without a shared zero page, the first read of an
 * untouched page commits it (1,092 page faults in 100,000 lookups near the
 * heap before this check). */
static uint64_t slot_dirty_pages[SLOTS][BITMAP_PAGES / 64];
static size_t dirty_pages;

static size_t max_small_size; /* largest small chunk ever inserted */

/* Big chunks, and small ones whose region could not be had. */
static struct big_chunks big;

static struct {
	uint64_t lookups, words_scanned, longest_scan;
	uint64_t uncovered_inserts;
} stat;

/* --- regions ---------------------------------------------------------------- */

static inline size_t slot_hash(uintptr_t span)
{
	return (size_t)((span * UINT64_C(0x9e3779b97f4a7c15)) >> (64 - SLOT_BITS));
}

/* The slot of a span's region, or SLOTS if no chunk ever started there. */
static inline size_t span_slot(uintptr_t span)
{
	for (size_t i = slot_hash(span);; i = (i + 1) & (SLOTS - 1)) {
		if (slot_span[i] == span + 1)
			return i;
		if (slot_span[i] == 0)
			return SLOTS;
	}
}

/* As span_slot, making the region if need be; SLOTS if it cannot. */
static size_t span_slot_or_create(uintptr_t span)
{
	size_t i = slot_hash(span);
	for (; slot_span[i] != 0; i = (i + 1) & (SLOTS - 1))
		if (slot_span[i] == span + 1)
			return i;
	if (regions == MAX_REGIONS)
		return SLOTS;
	/* index_map_pages would commit-charge all 8 MiB; MAP_NORESERVE does not. */
	void *bits = mmap(NULL, BITMAP_BYTES, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (bits == MAP_FAILED)
		return SLOTS;
	regions++;
	slot_bits[i] = bits;
	slot_span[i] = span + 1;
	return i;
}

static inline void note_dirty_page(size_t slot, size_t word)
{
	size_t page = word * sizeof(uint64_t) / BITMAP_PAGE;
	uint64_t *mask = &slot_dirty_pages[slot][page / 64], bit = UINT64_C(1) << (page % 64);
	if (!(*mask & bit)) {
		*mask |= bit;
		dirty_pages++;
	}
}

static inline int page_written(size_t slot, size_t word)
{
	size_t page = word * sizeof(uint64_t) / BITMAP_PAGE;
	return (int)((slot_dirty_pages[slot][page / 64] >> (page % 64)) & 1);
}

/* Word w of a slot's bitmap, or 0 without reading it if its page was never
 * written. */
static inline uint64_t bitmap_word(size_t slot, size_t w)
{
	return page_written(slot, w) ? slot_bits[slot][w] : 0;
}

static inline size_t word_of(uintptr_t addr)
{
	return (addr & (REGION_BYTES - 1)) / BYTES_PER_WORD;
}

static inline uint64_t bit_of(uintptr_t addr)
{
	return UINT64_C(1) << ((addr / BYTES_PER_BIT) % 64);
}

/* --- the index ------------------------------------------------------------------- */

int bitmap_index_init(const struct heapindex_config *cfg, char *err, size_t errlen)
{
	(void)cfg, (void)err, (void)errlen;
	return 0;
}

void bitmap_index_insert(struct chunk *c)
{
	uintptr_t user = chunk_user(c);
	size_t slot = SLOTS;
	if (chunk_size(c) <= BIG_THRESHOLD) {
		slot = span_slot_or_create(user >> REGION_SHIFT);
		if (slot == SLOTS)
			stat.uncovered_inserts++;
	}
	if (slot == SLOTS) {
		big_chunks_insert(&big, c); /* on failure: unindexed, never corrupt */
		return;
	}
	size_t w = word_of(user);
	slot_bits[slot][w] |= bit_of(user);
	note_dirty_page(slot, w);
	if (chunk_size(c) > max_small_size)
		max_small_size = chunk_size(c);
}

void bitmap_index_remove(struct chunk *c)
{
	uintptr_t user = chunk_user(c);
	size_t slot = chunk_size(c) <= BIG_THRESHOLD ? span_slot(user >> REGION_SHIFT) : SLOTS;
	if (slot < SLOTS && (bitmap_word(slot, word_of(user)) & bit_of(user)))
		slot_bits[slot][word_of(user)] &= ~bit_of(user);
	else
		big_chunks_remove(&big, c); /* big, or small but uncovered when inserted */
}

/* The highest set bit's address in [low, addr] of one span's bitmap, as a
 * user pointer, or 0.  low and addr are in the same span, low <= addr; bits
 * below low may be returned too (their chunks cannot contain addr anyway). */
static uintptr_t scan_back(size_t slot, uintptr_t low, uintptr_t addr)
{
	size_t w = word_of(addr), last = word_of(low);
	unsigned top = (unsigned)((addr / BYTES_PER_BIT) % 64);
	uint64_t word = bitmap_word(slot, w) & (~UINT64_C(0) >> (63 - top)); /* bits 0..top */
	uint64_t scanned = 1;
	while (!word && w > last) {
		word = bitmap_word(slot, --w);
		scanned++;
	}
	stat.words_scanned += scanned;
	if (scanned > stat.longest_scan)
		stat.longest_scan = scanned;
	if (!word)
		return 0;
	uintptr_t span_base = addr & ~(REGION_BYTES - 1);
	unsigned bit = 63u - (unsigned)__builtin_clzll(word);
	return span_base + (w * 64 + bit) * BYTES_PER_BIT;
}

/* The nearest small chunk starting at or below addr, if it contains addr. */
static struct chunk *small_lookup(uintptr_t addr)
{
	if (!regions)
		return NULL;
	/* The lowest start a chunk containing addr can have. */
	uintptr_t low = addr >= max_small_size ? addr - max_small_size + 1 : 0;
	for (uintptr_t span = addr >> REGION_SHIFT;; span--) {
		uintptr_t span_base = span << REGION_SHIFT;
		size_t slot = span_slot(span);
		if (slot < SLOTS) {
			uintptr_t from = addr < span_base + REGION_BYTES ? addr : span_base + REGION_BYTES - 1;
			uintptr_t start = scan_back(slot, low > span_base ? low : span_base, from);
			if (start) {
				struct chunk *c = chunk_of_user((void *)start);
				return chunk_contains(c, addr) ? c : NULL;
			}
		}
		/* A chunk starting in the span below may reach addr. */
		if (low >= span_base || span == 0)
			return NULL;
	}
}

struct chunk *bitmap_index_lookup(uintptr_t addr)
{
	stat.lookups++;
	struct chunk *c = small_lookup(addr);
	/* A big chunk may start between the small predecessor and addr. */
	if (!c && big.count)
		c = big_chunks_lookup(&big, addr);
	return c;
}

void bitmap_index_write_stats(struct json_out *out)
{
	size_t resident = dirty_pages * BITMAP_PAGE, big_bytes = big_chunks_bytes(&big);
	json_u64(out, "links_bytes", 0);
	json_u64(out, "region_bytes", REGION_BYTES);
	json_u64(out, "regions", regions);
	json_u64(out, "bitmap_reserved_bytes", regions * BITMAP_BYTES);
	json_u64(out, "bitmap_resident_bytes", resident);
	json_u64(out, "big_threshold", BIG_THRESHOLD);
	big_chunks_write_stats(&big, out);
	json_u64(out, "index_bytes", resident + big_bytes);
	json_u64(out, "uncovered_inserts", stat.uncovered_inserts);
	json_u64(out, "max_small_size", max_small_size);
	json_u64(out, "lookups", stat.lookups);
	json_u64(out, "words_scanned", stat.words_scanned);
	json_f64(out, "words_per_lookup",
	         stat.lookups ? (double)stat.words_scanned / (double)stat.lookups : 0.0);
	json_u64(out, "longest_scan_words", stat.longest_scan);
}

INDEX_DEFINE_OPS(bitmap, 0)
