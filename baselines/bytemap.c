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
 *                          the first byte after the start that is not 16.
 * Both scans read eight bytes per load; a chunk in this map is at most
 * SMALL_MAX bytes, so a scan reads at most SMALL_MAX / 128 words.  Bigger
 * chunks (and any whose table page cannot be had) live in the shared big
 * array, as for the memtable and bitmap indexes.
 *
 * Costs: insert and remove write size / 16 bytes (a memset); a lookup of a
 * chunk's first granule is one load of index memory, and one of its header
 * if the caller wants the site (struct chunk_info's no_site is 0).
 *
 * Threads: the map is cut into stripes of 2^16 granules (1 MiB of heap),
 * each with a lock (64 locks, a stripe's lock at stripe number % 64).  A
 * writer locks the stripes its chunk's bytes lie in, a lookup those of the
 * bytes it may read (up to SMALL_GRANULES around addr): at most two each,
 * taken in increasing lock order.  Under them a lookup reads a consistent
 * map, and the chunk it finds cannot be removed, so the site it copies from
 * the header is that chunk's (the hooks free a chunk only after its remove,
 * which waits for the lock).  Base and size come from the map alone.
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
#define SMALL_GRANULES (SMALL_MAX >> GRANULE_SHIFT)
#define STRIPE_SHIFT 16 /* granules per stripe: 1 MiB of heap */
#define LOCKS 64

static struct memtable map;
static struct big_chunks big;

static struct {
	spinlock_t lock;
} __attribute__((aligned(64))) locks[LOCKS];

static struct {
	uint64_t lookups, words_back, small_inserts, uncovered_inserts;
} counters;

static inline size_t granule_of(uintptr_t addr) { return addr >> GRANULE_SHIFT; }

/* The locks of the stripes of granules [first, last]: one or two (a range of
 * at most a stripe), lowest first; *second is LOCKS if there is one. */
static inline unsigned stripe_locks(size_t first, size_t last, unsigned *second)
{
	unsigned a = (unsigned)((first >> STRIPE_SHIFT) % LOCKS);
	unsigned b = (unsigned)((last >> STRIPE_SHIFT) % LOCKS);
	if (a > b) { /* the stripe numbers wrapped around LOCKS */
		unsigned t = a;
		a = b, b = t;
	}
	*second = a == b ? LOCKS : b;
	return a;
}

static inline void lock_range(size_t first, size_t last)
{
	unsigned second, lo = stripe_locks(first, last, &second);
	spin_lock(&locks[lo].lock);
	if (second != LOCKS)
		spin_lock(&locks[second].lock);
}

static void unlock_range(size_t first, size_t last)
{
	unsigned second, lo = stripe_locks(first, last, &second);
	if (second != LOCKS)
		spin_unlock(&locks[second].lock);
	spin_unlock(&locks[lo].lock);
}

/* As lock_range, for a lookup: 0, or -1 if a lock is busy and the lookup
 * may not wait (index.h). */
static int lock_range_for_lookup(size_t first, size_t last)
{
	unsigned second, lo = stripe_locks(first, last, &second);
	if (!index_lookup_lock(&locks[lo].lock))
		return -1;
	if (second != LOCKS && !index_lookup_lock(&locks[second].lock)) {
		spin_unlock(&locks[lo].lock);
		return -1;
	}
	return 0;
}

/* The map bytes of granules [first, first + n), for writing, or NULL if a
 * two-level leaf cannot be had.  A chunk of at most SMALL_MAX bytes spans at
 * most 1,025 granules: within one table page, or across one page boundary
 * (pages hold 4,096 granules), and leaves are whole pages. */
static unsigned char *byte_for_write(size_t g)
{
	unsigned char *e = memtable_written_entry(&map, g);
	/* A two-level leaf spans many stripes: memtable.c maps it lock-free. */
	return __builtin_expect(e != NULL, 1) ? e : memtable_entry_for_write(&map, g);
}

static unsigned char *bytes_for_write(size_t first, size_t n)
{
	unsigned char *lo = byte_for_write(first);
	unsigned char *hi = byte_for_write(first + n - 1);
	if (!lo || !hi)
		return NULL;
	return hi - lo == (ptrdiff_t)(n - 1) ? lo : NULL;
}

/* size is c's, read once by the caller: the header's size is an atomic load
 * (chunk.h), and a second one would hide from gcc that the memsets below
 * are short (it then calls memset: +36 instructions per malloc+free). */
static int in_map(const struct chunk *c, size_t size)
{
	return size <= SMALL_MAX && memtable_covers(&map, chunk_user(c) + size);
}

int bytemap_index_init(const struct heapindex_config *cfg, char *err, size_t errlen)
{
	if (map.limit) /* a second init (tests): the map is empty again by now */
		return 0;
	LOCK_ANNOTATE_BENIGN_RACE(&counters, sizeof counters, "lookup statistics (INDEX_STAT_ADD)");
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

static inline void insert_sized(struct chunk *c, size_t size)
{
	if (size == 0)
		return; /* contains nothing, and remove writes nothing either */
	unsigned char *b = NULL;
	size_t first = granule_of(chunk_user(c)), n = (size + GRANULE - 1) >> GRANULE_SHIFT;
	if (in_map(c, size)) {
		lock_range(first, first + n - 1);
		b = bytes_for_write(first, n);
		if (b) {
			memset(b, 16, n - 1);
			b[n - 1] = (unsigned char)(size - ((n - 1) << GRANULE_SHIFT));
			b[0] |= START_BIT;
		}
		unlock_range(first, first + n - 1);
	} else if (size <= SMALL_MAX) {
		__atomic_fetch_add(&counters.uncovered_inserts, 1, __ATOMIC_RELAXED);
	}
	if (!b) {
		big_chunks_insert(&big, c); /* on failure: unindexed, never corrupt */
		return;
	}
	__atomic_fetch_add(&counters.small_inserts, 1, __ATOMIC_RELAXED);
}

static inline void remove_in_map(struct chunk *c, size_t size)
{
	if (size == 0)
		return;
	size_t first = granule_of(chunk_user(c)), n = (size + GRANULE - 1) >> GRANULE_SHIFT;
	/* In the map iff its first byte says a chunk starts there. */
	int in = 0;
	if (in_map(c, size)) {
		lock_range(first, first + n - 1);
		in = (*(const unsigned char *)memtable_entry(&map, first) & START_BIT) != 0;
		if (in)
			memset(memtable_entry_address(&map, first), 0, n);
		unlock_range(first, first + n - 1);
	}
	if (!in)
		big_chunks_remove(&big, c);
}

static inline struct chunk *remove_sized(struct chunk *c, size_t size)
{
	remove_in_map(c, size);
	return c;
}

/* insert, remove, and the header bodies the hooks' header fast path calls
 * with the size it has (index.h, INDEX_HEADER_BODIES). */
INDEX_DEFINE_SIZED_UPDATES(bytemap)

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
			INDEX_STAT_ADD(counters.words_back, words);
			return w + (size_t)(63 - __builtin_clzll(word)) / 8;
		}
		g = w;
	}
}

/* The size of the chunk whose first granule is g.  Every granule of a
 * chunk but its last holds exactly 16 (no start bit: only the first has
 * it), and the byte after a full last granule is 0 or a start; so past g
 * the chunk ends at the first byte e that is not 16: e itself is its last
 * granule if it holds a count (1..15), else e - 1 is.  Eight bytes a load,
 * as start_at_or_below: every byte up to e is covered, so its page was
 * written; only the word at a page boundary may lie on a page never
 * written, which holds only zeros (and must not be read: it may commit). */
#define CONTINUATION_WORD UINT64_C(0x1010101010101010)
static size_t size_from(size_t g)
{
	unsigned first = *memtable_entry_address(&map, g) & COUNT_MASK;
	if (first < 16)
		return first;
	size_t w = (g + 1) & ~(size_t)7;
	/* Bytes w .. g of the first word are the chunk's start and whatever is
	 * below it: not scanned. */
	uint64_t skip = UINT64_MAX << (8 * (g + 1 - w));
	for (;; w += 8, skip = UINT64_MAX) {
		if (w > g && memtable_page_of_bin(&map, w) != memtable_page_of_bin(&map, w - 1) &&
		    !memtable_page_written(&map, memtable_page_of_bin(&map, w)))
			return (w - g) << GRANULE_SHIFT; /* e = w, a 0 */
		uint64_t word;
		memcpy(&word, memtable_entry_address(&map, w), 8);
		uint64_t other = (word ^ CONTINUATION_WORD) & skip;
		if (other) {
			unsigned at = (unsigned)__builtin_ctzll(other) / 8;
			unsigned last = (unsigned)(word >> (8 * at)) & 0xffu;
			size_t e = w + at;
			return ((e - g) << GRANULE_SHIFT) + ((last & START_BIT) ? 0 : (last & COUNT_MASK));
		}
	}
}

/* The small chunk containing addr, base and size from the map, site from
 * its header unless out->no_site (then no heap memory is read, and the
 * chunk is not noted: the lookup cache fills only with a site it got);
 * under the locks of the stripes the reads may reach. */
static int small_lookup(uintptr_t addr, struct chunk_info *out)
{
	if (!memtable_covers(&map, addr))
		return INDEX_NONE;
	size_t g = granule_of(addr);
	size_t first = g > SMALL_GRANULES ? g - SMALL_GRANULES : 0, last = g + SMALL_GRANULES + 1;
	if (lock_range_for_lookup(first, last))
		return INDEX_UNKNOWN;
	int answer = INDEX_NONE;
	unsigned b = *(const unsigned char *)memtable_entry(&map, g);
	if ((b & COUNT_MASK) > (addr & (GRANULE - 1))) {
		size_t start = start_at_or_below(g);
		out->base = (uintptr_t)start << GRANULE_SHIFT;
		out->size = size_from(start);
		out->site = 0;
		if (!out->no_site) { /* asked for: the one heap access */
			const struct chunk *c = chunk_of_user((void *)out->base);
			chunk_info_noted(c); /* under the stripe locks: c cannot be freed yet */
			out->site = chunk_site(c);
		}
		answer = INDEX_FOUND;
	}
	unlock_range(first, last);
	return answer;
}

int bytemap_index_lookup(uintptr_t addr, struct chunk_info *out)
{
	INDEX_STAT_ADD(counters.lookups, 1);
	return big_chunks_lookup_after(&big, small_lookup(addr, out), addr, out);
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

INDEX_DEFINE_OPS(bytemap, 0, INDEX_ANSWERS_LOOKUPS | INDEX_ANSWERS_FROM_INDEX | INDEX_META_HEADER | INDEX_META_TRAILER)
