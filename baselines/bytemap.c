/* bytemap.c - one byte of index per 16-byte granule of heap: an index whose
 * lookups answer base and size without reading the heap.
 *
 * Every other index here reads a chunk header in the heap on each lookup
 * (a list link, a size), so a lookup costs at least one random access to
 * heap-sized memory.  Allocators that know their own layout avoid that:
 * Boehm GC's GC_base reads a block header kept apart from the objects
 * (about 40 ns at 10^6 objects on this project's machines, against a
 * 190-320 ns floor for a random heap access).  A malloc interposer does not
 * know the allocator's layout, so this index keeps its own compact picture
 * of the heap: one byte per 16 bytes of address space, in a memtable
 * (memtable/memtable.h, shift 4: reads of never-written pages commit
 * nothing), 6.25% of the heap span the program uses.
 *
 * The byte of granule g (addresses 16g .. 16g+15):
 *   bits 0-4  how many bytes of the granule belong to a live chunk's
 *             requested size, 0..16 (0: none);
 *   bit 7     a live chunk's user pointer is 16g (its first granule).
 * User pointers are 16-byte aligned, and every chunk has its 16-byte header
 * just below its user pointer, so between two chunks there is always at
 * least one granule with byte 0.  Hence, for an address a in granule g:
 *   a is in a chunk   iff  (byte[g] & 31) > a % 16;
 *   its base          =    the nearest granule at or below g with bit 7
 *                          (every granule in between is covered by the
 *                          same chunk, so nothing else can start there);
 *   its size          =    16 * (granules to the last covered one) + the
 *                          last granule's count, found scanning forward to
 *                          the first byte that is 0 or starts a chunk.
 * Both scans read eight bytes per load; a chunk in this map is at most
 * SMALL_MAX bytes, so a scan reads at most SMALL_MAX / 128 words.  Bigger
 * chunks (and any whose table page cannot be had) live in the shared big
 * array, as for the memtable and bitmap indexes.
 *
 * Costs: insert and remove write size / 16 bytes (a memset); a lookup of a
 * chunk's first granule is one load of index memory.
 */
#include "big_chunks.h"
#include "index.h"
#include "memtable.h"

#include <stdio.h>
#include <string.h>

INDEX_DECLARE(bytemap)

#define GRANULE_SHIFT 4
#define GRANULE ((uintptr_t)1 << GRANULE_SHIFT)
#define COUNT_MASK 0x1fu
#define START_BIT 0x80u
#define SMALL_MAX ((size_t)16 << 10) /* 1 KiB of map, 128 words, per chunk at most */

static struct memtable map;
static struct big_chunks big;

static struct {
	uint64_t lookups, words_back, small_inserts, uncovered_inserts;
} counters;

static inline size_t granule_of(uintptr_t addr) { return addr >> GRANULE_SHIFT; }

/* The map bytes of granules [first, first + n), for writing, or NULL if a
 * two-level leaf cannot be had.  A chunk of at most SMALL_MAX bytes spans at
 * most 1,025 granules: within one table page, or across one page boundary
 * (pages hold 4,096 granules), and leaves are whole pages. */
static unsigned char *bytes_for_write(size_t first, size_t n)
{
	unsigned char *lo = memtable_entry_for_write(&map, first);
	unsigned char *hi = memtable_entry_for_write(&map, first + n - 1);
	if (!lo || !hi)
		return NULL;
	return hi - lo == (ptrdiff_t)(n - 1) ? lo : NULL;
}

static int in_map(const struct chunk *c)
{
	return chunk_size(c) <= SMALL_MAX && memtable_covers(&map, chunk_user(c) + chunk_size(c));
}

int bytemap_index_init(const struct heapindex_config *cfg, char *err, size_t errlen)
{
	if (map.limit) /* a second init (tests): the map is empty again by now */
		return 0;
	int e = memtable_init(&map, cfg->addr_bits, GRANULE_SHIFT, 1,
	                      (enum memtable_layout)cfg->table_levels);
	if (e) {
		snprintf(err, errlen,
		         "heapindex: bytemap cannot reserve its map (%zu bytes for %u address bits): %s; "
		         "allow overcommit (sysctl vm.overcommit_memory=0 or 1), raise ulimit -v, "
		         "or lower HEAPINDEX_ADDR_BITS",
		         memtable_reserved_bytes(cfg->addr_bits, GRANULE_SHIFT, 1), cfg->addr_bits,
		         strerror(e));
		return -1;
	}
	return 0;
}

void bytemap_index_insert(struct chunk *c)
{
	size_t size = chunk_size(c);
	if (size == 0)
		return; /* contains nothing, and remove writes nothing either */
	unsigned char *b = NULL;
	size_t first = granule_of(chunk_user(c)), n = (size + GRANULE - 1) >> GRANULE_SHIFT;
	if (in_map(c))
		b = bytes_for_write(first, n);
	else if (chunk_size(c) <= SMALL_MAX)
		counters.uncovered_inserts++;
	if (!b) {
		big_chunks_insert(&big, c); /* on failure: unindexed, never corrupt */
		return;
	}
	memset(b, 16, n - 1);
	b[n - 1] = (unsigned char)(size - ((n - 1) << GRANULE_SHIFT));
	b[0] |= START_BIT;
	counters.small_inserts++;
}

void bytemap_index_remove(struct chunk *c)
{
	size_t size = chunk_size(c);
	if (size == 0)
		return;
	size_t first = granule_of(chunk_user(c)), n = (size + GRANULE - 1) >> GRANULE_SHIFT;
	/* In the map iff its first byte says a chunk starts there. */
	const unsigned char *start = memtable_entry(&map, first);
	if (in_map(c) && (*start & START_BIT))
		memset(memtable_entry_address(&map, first), 0, n);
	else
		big_chunks_remove(&big, c);
}

/* Granule of the nearest start at or below g, whose byte is covered: every
 * byte from there to g is non-zero, so the page of each was written. */
static size_t start_at_or_below(size_t g)
{
	const unsigned char *b = memtable_entry_address(&map, g);
	if (*b & START_BIT)
		return g;
	for (size_t words = 1;; words++) {
		/* The aligned word holding g - 1 and below: all covered bytes. */
		size_t w = (g - 1) & ~(size_t)7;
		uint64_t word;
		memcpy(&word, memtable_entry_address(&map, w), 8);
		word &= UINT64_C(0x8080808080808080);
		if (g - w < 8)
			word &= (UINT64_C(1) << (8 * (g - w))) - 1; /* bytes w .. g-1 */
		if (word) {
			counters.words_back += words;
			return w + (size_t)(63 - __builtin_clzll(word)) / 8;
		}
		g = w;
	}
}

/* The size of the chunk whose first granule is g: granule by granule to
 * its last, the first whose count is under 16 or whose successor is not a
 * continuation (0: the next header's granule; or a start byte).  The byte
 * after a chunk may be on a page never written: memtable_entry reads that
 * as 0 without touching it. */
static size_t size_from(size_t g)
{
	for (size_t n = 0;; n++) {
		unsigned count = *(const unsigned char *)memtable_entry(&map, g + n) & COUNT_MASK;
		unsigned next = *(const unsigned char *)memtable_entry(&map, g + n + 1);
		if (count < 16 || next == 0 || (next & START_BIT))
			return n * GRANULE + count;
	}
}

/* Base and size of the small chunk containing addr, reading only the map. */
static int small_find(uintptr_t addr, uintptr_t *base, size_t *size)
{
	if (!memtable_covers(&map, addr))
		return 0;
	size_t g = granule_of(addr);
	unsigned b = *(const unsigned char *)memtable_entry(&map, g);
	if ((b & COUNT_MASK) <= (addr & (GRANULE - 1)))
		return 0;
	size_t start = start_at_or_below(g);
	*base = (uintptr_t)start << GRANULE_SHIFT;
	if (size)
		*size = size_from(start);
	return 1;
}

struct chunk *bytemap_index_lookup(uintptr_t addr)
{
	counters.lookups++;
	uintptr_t base;
	if (small_find(addr, &base, NULL))
		return chunk_of_user((void *)base);
	return big.count ? big_chunks_lookup(&big, addr) : NULL;
}

void bytemap_index_write_stats(struct json_out *out)
{
	size_t table = memtable_resident_bytes(&map), big_bytes = big_chunks_bytes(&big);
	json_u64(out, "links_bytes", 0);
	json_u64(out, "map_reserved_bytes", map.reserved_bytes);
	json_u64(out, "map_resident_bytes", table);
	json_u64(out, "big_threshold", SMALL_MAX);
	big_chunks_write_stats(&big, out);
	json_u64(out, "index_bytes", table + big_bytes);
	json_u64(out, "small_inserts", counters.small_inserts);
	json_u64(out, "uncovered_inserts", counters.uncovered_inserts);
	json_u64(out, "lookups", counters.lookups);
	json_u64(out, "words_back", counters.words_back);
}

INDEX_DEFINE_OPS(bytemap, 0)
