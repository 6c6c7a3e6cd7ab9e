/* bytemap.c - four bits of index per 16-byte granule of heap: an index whose
 * lookups answer base and size without reading the heap.
 *
 * Every other index here reads a chunk header in the heap on each lookup
 * (a list link, a size), so a lookup costs at least one random access to
 * heap-sized memory.  Allocators that know their own layout avoid that:
 * Boehm GC's GC_base reads a block header kept apart from the objects
 * (about 40 ns at 10^6 objects on this project's machines, against a
 * 190-320 ns floor for a random heap access).  A malloc interposer does not
 * know the allocator's layout, so this index keeps its own compact picture
 * of the heap: a nibble per 16 bytes of address space, in a memtable
 * (memtable/memtable.h, a byte per 32-byte bin, two granules; reads of
 * never-written pages commit nothing), 3.1% of the heap span the program
 * uses.  (It was a byte per granule, 6.25%: at 10^6 chunks the map spanned
 * more 4 KiB pages than the TLB holds, and a hit cost ~2x GC_base's;
 * workloads/scale/README.md.)
 *
 * The nibble of granule g (addresses 16g .. 16g+15):
 *   free (low three bits clear):  0, or 8 in a chunk's header granule
 *                                 (the one below its first) to say the
 *                                 chunk's last granule holds 9..16 bytes;
 *   covered (low bits not clear): 15 in every granule of a chunk but its
 *                                 last; in the last, holding r bytes
 *                                 (1..16), (r - 1) % 8 + 1, or 15 for 8.
 * A byte's 17 cases (free, or 1..16 bytes of a chunk) do not fit a nibble;
 * the header granule lends the bit they lack.  That needs a free granule
 * on both sides of every chunk in the map: under header the chunk's header
 * is one (user pointers are 16-byte aligned, and the 16-byte header lies
 * just below), and glibc leaves one under trailer; a chunk inserted where
 * either neighbouring granule is covered (an allocator with no gap between
 * chunks) goes to the big array below, as the map could not show where it
 * ends.  Hence, for an address a in granule g, covered:
 *   its chunk's header granule  = the nearest free granule below g;
 *   its last granule            = the one below the nearest free above g;
 *   its size                    = 16 * (last - header - 1) + r, r from the
 *                                 last nibble and bit 3 of the header's;
 * and a is in it iff a - base < size.  Both scans read 16 nibbles per
 * load; a chunk in this map is at most SMALL_MAX bytes, so a scan reads at
 * most SMALL_MAX / 256 + 1 words.  Bigger chunks (and any whose table page
 * cannot be had) live in the shared big array, as for the memtable and
 * bitmap indexes.
 *
 * Costs: insert and remove write the chunk's nibbles and its header
 * granule's, whole aligned words (one for most chunks: a word is 256 bytes
 * of heap); a lookup of a chunk whose header granule and the free granule
 * after it share the word of addr's nibble is one load of index memory
 * (besides the written-pages bits and a stripe count, which every lookup
 * shares), and one of its header if the caller wants the site (struct
 * chunk_info's no_site is 0).  At 10^6 live chunks the map is ~11 MiB for
 * scale's heap, ~2,700 pages of 4 KiB, against ~1,400 for Boehm's GC_base
 * (workloads/scale/README.md).
 *
 * Threads: the map is cut into stripes of 2^16 granules (1 MiB of heap),
 * each with a sequence count that is also its lock (64 counts, one line
 * each, a stripe's at stripe number % 64).  A writer takes the stripes its
 * chunk's nibbles lie in, its header granule and the one after included
 * (a compare-and-swap of the count from even to odd, at most two, in
 * increasing order), stores its words with release, and makes the counts
 * even again (a release store).  A lookup without the site
 * takes nothing: it reads the counts of the stripes its reads may reach (up
 * to REACH granules around addr), the map words (acquire), and the counts
 * again, and keeps its answer if they were even and unchanged; else it
 * tries again, and after OPTIMISTIC_TRIES falls back to taking the stripes
 * as a writer does (which a signal handler's lookup only tries: index.h).
 * Racing a writer, its reads may mix old and new words: every scan is
 * bounded and checks each page of the map it steps onto, so a torn read is
 * only ever retried, never a fault or a read that commits memory.  A lookup
 * that wants the site takes the stripes, so the chunk it finds cannot be
 * removed while it reads the header (the hooks free a chunk only after its
 * remove, which waits for them): the site it copies is that chunk's.
 * Base and size come from the map alone.
 */
#include "big_chunks.h"
#include "index.h"
#include "memtable.h"

#include <stdio.h>
#include <string.h>

INDEX_DECLARE(bytemap)

#define GRANULE_SHIFT 4
#define GRANULE ((uintptr_t)1 << GRANULE_SHIFT)
#define BIN_SHIFT (GRANULE_SHIFT + 1) /* a map byte: two granules' nibbles */
#define COVERED 0xfu                   /* a granule of a chunk, not its last */
#define NIBBLE_LOW_BITS UINT64_C(0x1111111111111111)
#define SMALL_MAX ((size_t)16 << 10) /* 512 bytes of map, 64 words, per chunk at most */
#define SMALL_GRANULES (SMALL_MAX >> GRANULE_SHIFT)
#define STRIPE_SHIFT 16 /* granules per stripe: 1 MiB of heap */
#define STRIPES 64      /* stripe numbers share these modulo STRIPES */
#define OPTIMISTIC_TRIES 4

static struct memtable map;
static struct big_chunks big;

/* A stripe's sequence count, which is also its lock: odd while a writer
 * of its map bytes (or a lookup that wants the site) holds it, even
 * otherwise (atomic).  A writer makes it odd with a compare-and-swap from
 * even, and even again when done; a lookup without the site reads it
 * before and after its reads of the map and keeps its answer if the count
 * was even and unchanged.  64 lines, 4 KiB, that every lookup shares. */
static struct stripe {
	unsigned seq;
} __attribute__((aligned(64))) stripes[STRIPES];

static struct {
	uint64_t lookups, words_back, small_inserts, uncovered_inserts;
	uint64_t torn_reads, locked_lookups;
} counters;

/* A word of eight map bytes, 16 nibbles.  Writers store whole aligned
 * words (relaxed under their lock would do for each other; release for
 * the readers below), lookups load them with acquire: on x86-64 both are
 * plain moves.
 * may_alias: the same bytes are also read one at a time. */
typedef uint64_t __attribute__((may_alias)) map_word;

static inline uint64_t word_load(const unsigned char *w)
{
	return __atomic_load_n((const map_word *)(const void *)w, __ATOMIC_ACQUIRE);
}

static inline void word_store(unsigned char *w, uint64_t v)
{
	__atomic_store_n((map_word *)(void *)w, v, __ATOMIC_RELEASE);
}

/* A word of the map, for its writer, who holds its stripe: no other
 * thread stores it meanwhile. */
static inline uint64_t word_load_held(const unsigned char *w)
{
	return __atomic_load_n((const map_word *)(const void *)w, __ATOMIC_RELAXED);
}

static inline size_t granule_of(uintptr_t addr) { return addr >> GRANULE_SHIFT; }

/* The stripes of granules [first, last] (a range of at most a stripe): lo
 * and hi, in lock order, equal if the range lies in one. */
struct stripe_pair {
	unsigned lo, hi;
};

/* A writer's stripes, and the odd counts it gave them. */
struct stripes_held {
	struct stripe_pair p;
	unsigned seq_lo, seq_hi;
};

static inline struct stripe_pair stripes_of(size_t first, size_t last)
{
	unsigned a = (unsigned)((first >> STRIPE_SHIFT) % STRIPES);
	unsigned b = (unsigned)((last >> STRIPE_SHIFT) % STRIPES);
	/* b < a: the stripe numbers wrapped around STRIPES */
	return a <= b ? (struct stripe_pair){ a, b } : (struct stripe_pair){ b, a };
}

/* Stripe s locked: its count, now odd; 0 if it was held.  Acquire: the
 * holder's reads and writes stay after it. */
static inline unsigned stripe_try_lock(unsigned s)
{
	unsigned v = __atomic_load_n(&stripes[s].seq, __ATOMIC_RELAXED);
	if ((v & 1) || !__atomic_compare_exchange_n(&stripes[s].seq, &v, v + 1, 0, __ATOMIC_ACQUIRE,
	                                              __ATOMIC_RELAXED))
		return 0;
	LOCK_ANNOTATE_ACQUIRED(&stripes[s].seq);
	return v + 1;
}

static inline unsigned stripe_lock(unsigned s)
{
	unsigned odd, spins = 0;
	while (__builtin_expect(!(odd = stripe_try_lock(s)), 0))
		spin_wait(&spins);
	return odd;
}

/* Even again.  A release: a lookup that reads the new count (acquire) sees
 * every map word stored before it.  Under the valgrind tools an exchange,
 * which they do not take for a plain store racing with waiters' loads. */
static inline void stripe_unlock(unsigned s, unsigned odd)
{
#ifdef HEAPINDEX_VALGRIND_ANNOTATE
	LOCK_ANNOTATE_RELEASED(&stripes[s].seq);
	(void)__atomic_exchange_n(&stripes[s].seq, odd + 1, __ATOMIC_RELEASE);
#else
	__atomic_store_n(&stripes[s].seq, odd + 1, __ATOMIC_RELEASE);
#endif
}

/* A writer's (or a locked lookup's) stripes and the odd counts it gave
 * them, lowest first.  A lookup that loads a map word a writer stored
 * (release, after its acquire) then reads the count odd, or past it. */
static inline struct stripes_held lock_pair(struct stripe_pair p)
{
	struct stripes_held h = { p, stripe_lock(p.lo), 0 };
	if (p.hi != p.lo)
		h.seq_hi = stripe_lock(p.hi);
	return h;
}

static inline void unlock_held(struct stripes_held h)
{
	if (h.p.hi != h.p.lo)
		stripe_unlock(h.p.hi, h.seq_hi);
	stripe_unlock(h.p.lo, h.seq_lo);
}

static inline struct stripes_held write_begin(size_t first, size_t last)
{
	return lock_pair(stripes_of(first, last));
}

static inline void write_end(struct stripes_held h) { unlock_held(h); }

/* The stripes, for a lookup that wants the site: 0, or -1 if one is held
 * and the lookup may not wait (index.h: a signal handler that may have
 * interrupted their holder). */
static int lock_for_lookup(struct stripe_pair p, struct stripes_held *h)
{
	if (__builtin_expect(index_lookup_may_wait(), 1)) {
		*h = lock_pair(p);
		return 0;
	}
	*h = (struct stripes_held){ p, stripe_try_lock(p.lo), 0 };
	if (!h->seq_lo)
		return -1;
	if (p.hi != p.lo && !(h->seq_hi = stripe_try_lock(p.hi))) {
		stripe_unlock(p.lo, h->seq_lo);
		return -1;
	}
	return 0;
}

/* The map bytes of bins [first, last] (a bin: two granules, one byte), for
 * writing, contiguous, or NULL if a two-level leaf cannot be had.  A chunk
 * of at most SMALL_MAX bytes, with its header granule and the one after
 * it, spans at most 1,027 granules, 514 bins: within one table page, or
 * across one page boundary (pages hold 4,096 bins), and leaves are whole
 * pages. */
static unsigned char *bin_for_write(size_t b)
{
	unsigned char *e = memtable_written_byte(&map, b);
	/* A two-level leaf spans many stripes: memtable.c maps it lock-free. */
	return __builtin_expect(e != NULL, 1) ? e : memtable_entry_for_write(&map, b);
}

static unsigned char *bins_for_write(size_t first, size_t last)
{
	unsigned char *lo = bin_for_write(first);
	/* Most chunks' bins lie in one page of the map: contiguous, and that
	 * page is now marked written. */
	if (!lo || memtable_page_of_bin(&map, last) == memtable_page_of_bin(&map, first))
		return lo;
	unsigned char *hi = bin_for_write(last);
	if (!hi)
		return NULL;
	return hi - lo == (ptrdiff_t)(last - first) ? lo : NULL;
}

/* size is c's, read once by the caller (the header's size is an atomic
 * load, chunk.h, and the map writes below need it in a register). */
static int in_map(const struct chunk *c, size_t size)
{
	return size <= SMALL_MAX && memtable_covers(&map, chunk_user(c) + size + GRANULE);
}

int bytemap_index_init(const struct heapindex_config *cfg, char *err, size_t errlen)
{
	if (map.limit) /* a second init (tests): the map is empty again by now */
		return 0;
	LOCK_ANNOTATE_BENIGN_RACE(&counters, sizeof counters, "lookup statistics (INDEX_STAT_ADD)");
	int e = memtable_init(&map, cfg->addr_bits, BIN_SHIFT, 1, (enum memtable_layout)cfg->table_levels);
	if (e) {
		snprintf(err, errlen,
		         "heapindex: bytemap cannot reserve its map (%zu bytes for %u address bits): %s; "
		         "allow overcommit (sysctl vm.overcommit_memory=0 or 1), raise ulimit -v, "
		         "or lower HEAPINDEX_ADDR_BITS",
		         memtable_reserved_bytes(cfg->addr_bits, BIN_SHIFT, 1), cfg->addr_bits, strerror(e));
		return -1;
	}
	return 0;
}

/* Nibbles i..j (0 <= i <= j < 16) of a word. */
static inline uint64_t nibble_span(unsigned i, unsigned j)
{
	return (UINT64_MAX << (4 * i)) & (UINT64_MAX >> (60 - 4 * j));
}

/* Bit 4i set iff nibble i is free (its low three bits clear: 0 or 8). */
static inline uint64_t free_nibbles(uint64_t w)
{
	return ~(w | w >> 1 | w >> 2) & NIBBLE_LOW_BITS;
}

static inline unsigned nibble_at(uint64_t w, unsigned i) { return (unsigned)(w >> (4 * i)) & 0xfu; }

/* The header and last nibbles of a chunk of size bytes (1..SMALL_MAX):
 * the last granule holds r = (size - 1) % 16 + 1 bytes, 1..16; r - 1 is
 * 8 * hi + lo; the header granule says hi (8 or 0: free either way), the
 * last granule lo + 1 (1..7), or 15 for lo = 7. */
static inline unsigned header_nibble(size_t size) { return (unsigned)((size - 1) & 8); }

static inline unsigned last_nibble(size_t size)
{
	unsigned lo = (unsigned)((size - 1) & 7);
	return lo == 7 ? COVERED : lo + 1;
}

/* The bytes a chunk covers in its last granule, from the two nibbles. */
static inline size_t last_bytes(unsigned header, unsigned last)
{
	return (header & 8) + (last & 7) + (last >> 3);
}

/* Granule g's nibble, for a writer holding its stripe (or a remover whose
 * chunk's page was written); a page never written reads as free. */
static inline unsigned nibble_held(size_t g)
{
	const unsigned char *b = memtable_entry(&map, g >> 1);
	return (*b >> (4 * (g & 1))) & 0xfu;
}

/* Writes the nibbles of granules [hg, last] (a chunk's header granule and
 * its granules; w: the map word of hg, the words up to last's contiguous),
 * or with clear zeroes them.  Whole aligned words, so that a lookup loads
 * each word as stored: the nibbles of neighbouring chunks in the first and
 * last word are kept (the stripe lock keeps their writers out; a word never
 * spans two stripes).  Leaves and the flat table are page-aligned.
 *
 * An insert (not clear) writes nothing and returns 0 unless the header
 * granule and the one after last are free: with another chunk's granule on
 * either side (an allocator that leaves no gap between chunks, under
 * trailer) the boundary could not be read back.  Both are checked in the
 * words loaded for the stores, but for last + 1 in the next word
 * (nibble_held, which checks that word's page). */
static inline int put_nibbles(unsigned char *w, size_t hg, size_t last, unsigned header, unsigned tail,
                              int clear)
{
	unsigned lo = (unsigned)(hg & 15), end = lo + (unsigned)(last - hg); /* [lo, end] from w */
	unsigned char *lw = w + (size_t)8 * (end / 16);
	unsigned le = end & 15; /* last's nibble in lw */
	uint64_t first_old = word_load_held(w), last_old = word_load_held(lw);
	if (!clear && ((nibble_at(first_old, lo) & 7) ||
	               (le < 15 ? nibble_at(last_old, le + 1) & 7 : nibble_held(last + 1) & 7)))
		return 0;
	uint64_t fill = clear ? 0 : UINT64_MAX;
	uint64_t first_fill = clear ? 0 : (UINT64_MAX & ~((uint64_t)0xf << (4 * lo))) | (uint64_t)header << (4 * lo);
	uint64_t last_fill = clear ? 0 : (UINT64_MAX & ~((uint64_t)0xf << (4 * le))) | (uint64_t)tail << (4 * le);
	if (lw == w) {
		uint64_t mask = nibble_span(lo, le);
		word_store(w, (first_old & ~mask) | (first_fill & last_fill & mask));
		return 1;
	}
	uint64_t head = nibble_span(lo, 15), tail_mask = nibble_span(0, le);
	word_store(w, (first_old & ~head) | (first_fill & head));
	for (w += 8; w != lw; w += 8)
		word_store(w, fill);
	word_store(lw, (last_old & ~tail_mask) | (last_fill & tail_mask));
	return 1;
}

static inline void insert_sized(struct chunk *c, size_t size)
{
	if (size == 0)
		return; /* contains nothing, and remove writes nothing either */
	unsigned char *w = NULL;
	size_t first = granule_of(chunk_user(c)), last = first + ((size - 1) >> GRANULE_SHIFT);
	if (in_map(c, size)) {
		/* The stripes of the header granule to the one after the chunk,
		 * which put_nibbles checks are free. */
		struct stripes_held h = write_begin(first - 1, last + 1);
		w = bins_for_write((first - 1) >> 1, last >> 1);
		if (w && !put_nibbles(w - (((first - 1) >> 1) & 7), first - 1, last, header_nibble(size),
		                      last_nibble(size), 0))
			w = NULL;
		write_end(h);
	} else if (size <= SMALL_MAX) {
		__atomic_fetch_add(&counters.uncovered_inserts, 1, __ATOMIC_RELAXED);
	}
	if (!w) {
		big_chunks_insert(&big, c); /* on failure: unindexed, never corrupt */
		return;
	}
	__atomic_fetch_add(&counters.small_inserts, 1, __ATOMIC_RELAXED);
}

static inline void remove_in_map(struct chunk *c, size_t size)
{
	if (size == 0)
		return;
	size_t first = granule_of(chunk_user(c)), last = first + ((size - 1) >> GRANULE_SHIFT);
	/* In the map iff its first granule is covered: no other live chunk
	 * covers it, and an insert that went to the big array wrote nothing. */
	int in = 0;
	if (in_map(c, size)) {
		struct stripes_held h = write_begin(first - 1, last + 1);
		in = (nibble_held(first) & 7) != 0;
		if (in)
			(void)put_nibbles(memtable_entry_address(&map, (first - 1) >> 1) - (((first - 1) >> 1) & 7),
			                  first - 1, last, 0, 0, 1);
		write_end(h);
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

/* --- lookups ------------------------------------------------------------------
 * Reading the map: read_map finds the chunk around addr from the map alone,
 * loading whole aligned words of 16 nibbles.  In a map no writer is
 * changing (under the stripe locks, or a sequence count unchanged across
 * the reads) the header granule (free) is at most SMALL_GRANULES below
 * addr's and its page was written; the free granule after the chunk at
 * most SMALL_GRANULES above.  Racing a writer, the nibbles read may be any
 * mix of old and new, so each scan is bounded (SCAN_WORDS) and checks every
 * page it steps onto (written, inside the table, its leaf mapped): a torn
 * read then costs a retry, never a fault nor a read that commits memory,
 * and the sequence count rejects its answer. */
#define SCAN_WORDS (SMALL_GRANULES / 16 + 2) /* either scan, the word it starts in included */
/* Every word a lookup of granule g reads lies within REACH granules of g:
 * the stripes whose counts (or locks) it takes. */
#define REACH (16 * (SCAN_WORDS + 1))
#define PAGE_GRANULES (2 * MEMTABLE_PAGE_BYTES) /* granules per page of the map */

enum map_read { MAP_NONE, MAP_FOUND, MAP_TORN };

/* The map word of granules [wg, wg + 16) (wg a multiple of 16), or NULL if
 * its page was never written (then it is all zero, and reading it might
 * commit memory), lies past the table, or its leaf is not visible yet. */
static inline const unsigned char *word_of(size_t wg)
{
	if (wg >= granule_of(map.limit) || !memtable_page_written(&map, memtable_page_of_bin(&map, wg >> 1)))
		return NULL;
	return memtable_byte_address(&map, wg >> 1);
}

/* The answer from the chunk's header granule hg (free, holding header) and
 * its last granule (covered, holding tail), if it contains addr. */
static inline int answer(uintptr_t addr, size_t hg, unsigned header, size_t last, unsigned tail,
                         struct chunk_info *out)
{
	out->base = (uintptr_t)(hg + 1) << GRANULE_SHIFT;
	out->size = ((last - hg - 1) << GRANULE_SHIFT) + last_bytes(header, tail);
	return addr - out->base < out->size ? MAP_FOUND : MAP_NONE;
}

/* read_map when the chunk's header granule or the free granule after it
 * lies outside addr's word (word, loaded from w, granules [wg, wg + 16)):
 * scans a word at a time, down for the header, up for the end. */
static __attribute__((noinline)) int read_across(uintptr_t addr, const unsigned char *w, size_t wg,
                                                 uint64_t word, struct chunk_info *out)
{
	unsigned at = (unsigned)(granule_of(addr) & 15);
	uint64_t frees = free_nibbles(word);
	/* Down: the nearest free granule below addr's. */
	const unsigned char *dw = w;
	size_t dg = wg;
	uint64_t dword = word, below = frees & ~(UINT64_MAX << (4 * at));
	for (unsigned back = 0; !below;) {
		if (++back == SCAN_WORDS || dg == 0)
			return MAP_TORN;
		if (dg % PAGE_GRANULES == 0) {
			if (!(dw = word_of(dg - PAGE_GRANULES)))
				return MAP_TORN;
			dw += MEMTABLE_PAGE_BYTES - 8;
		} else {
			dw -= 8;
		}
		dg -= 16;
		dword = word_load(dw);
		below = free_nibbles(dword);
		INDEX_STAT_ADD(counters.words_back, 1);
	}
	unsigned p = (unsigned)(63 - __builtin_clzll(below)) / 4;
	size_t hg = dg + p;
	unsigned header = nibble_at(dword, p);
	/* Up: the nearest free granule above addr's, e; the chunk's last
	 * granule is e - 1, in the word before e's if e is a word's first. */
	uint64_t prev = word, above = frees & ((UINT64_MAX << (4 * at)) << 4);
	size_t ug = wg;
	for (unsigned words = 1; !above; words++) {
		if (words == SCAN_WORDS)
			return MAP_TORN;
		ug += 16;
		prev = word;
		if (ug % PAGE_GRANULES == 0) { /* onto the next page of the map */
			if (ug >= granule_of(map.limit))
				return MAP_TORN;
			if (!memtable_page_written(&map, memtable_page_of_bin(&map, ug >> 1))) {
				word = 0; /* never written: all free */
				above = NIBBLE_LOW_BITS;
				break;
			}
			if (!(w = memtable_byte_address(&map, ug >> 1)))
				return MAP_TORN;
		} else {
			w += 8;
		}
		word = word_load(w);
		above = free_nibbles(word);
	}
	unsigned q = (unsigned)__builtin_ctzll(above) / 4;
	unsigned tail = q ? nibble_at(word, q - 1) : nibble_at(prev, 15);
	return answer(addr, hg, header, ug + q - 1, tail, out);
}

/* The chunk containing addr, from the map alone (out's base and size).
 * Inline for the common case, a chunk whose header granule and the free
 * granule after it lie in the word of addr's granule (256 bytes of heap);
 * the scans across words are a call. */
static inline __attribute__((always_inline)) int read_map(uintptr_t addr, struct chunk_info *out)
{
	size_t g = granule_of(addr), wg = g & ~(size_t)15;
	/* 4 KiB of map, 8,192 granules, per page. */
	if (!memtable_page_written(&map, g >> (MEMTABLE_PAGE_SHIFT + 1)))
		return MAP_NONE;
	const unsigned char *w = memtable_byte_address(&map, wg >> 1);
	if (__builtin_expect(!w, 0))
		return MAP_NONE;
	uint64_t word = word_load(w);
	unsigned at = (unsigned)(g & 15);
	if (!(nibble_at(word, at) & 7))
		return MAP_NONE;
	uint64_t frees = free_nibbles(word);
	uint64_t below = frees & ~(UINT64_MAX << (4 * at));
	uint64_t above = frees & ((UINT64_MAX << (4 * at)) << 4); /* two shifts: at may be 15 */
	if (__builtin_expect(!below || !above, 0))
		return read_across(addr, w, wg, word, out);
	unsigned p = (unsigned)(63 - __builtin_clzll(below)) / 4, q = (unsigned)__builtin_ctzll(above) / 4;
	return answer(addr, wg + p, nibble_at(word, p), wg + q - 1, nibble_at(word, q - 1), out);
}

/* Under HEAPINDEX_VALGRIND_ANNOTATE (helgrind, drd: lock.h) every lookup
 * takes the locks: the tools take the atomics of the optimistic reads for
 * plain racing accesses, and the map is too large to mark as benign.
 * ThreadSanitizer, which knows atomics, checks the optimistic path. */
#ifdef HEAPINDEX_VALGRIND_ANNOTATE
#define OPTIMISTIC 0
#else
#define OPTIMISTIC 1
#endif

/* Under the sequence counts of the stripes a lookup of addr may read: a
 * reader never writes anything shared, so lookups do not contend with each
 * other, and it waits for nothing (a signal handler's lookup too): a count
 * odd or changed, OPTIMISTIC_TRIES times, sends it to the locks.  The
 * answer stands iff both counts were even and unchanged across the reads:
 * the acquire loads of the map words order the second reading of a count
 * after them, and a writer's first word store (release) after its odd
 * count. */
static inline int read_under_counts(uintptr_t addr, struct stripe_pair p, struct chunk_info *out)
{
	const unsigned *a = &stripes[p.lo].seq, *b = &stripes[p.hi].seq;
	unsigned sa = __atomic_load_n(a, __ATOMIC_ACQUIRE), sb = __atomic_load_n(b, __ATOMIC_ACQUIRE);
	if ((sa | sb) & 1)
		return MAP_TORN;
	int r = read_map(addr, out);
	if (r != MAP_TORN && __atomic_load_n(a, __ATOMIC_RELAXED) == sa && __atomic_load_n(b, __ATOMIC_RELAXED) == sb)
		return r;
	return MAP_TORN;
}

/* The tries after a first that raced a writer. */
static __attribute__((noinline)) int optimistic_retry(uintptr_t addr, struct stripe_pair p,
                                                      struct chunk_info *out)
{
	for (unsigned tries = 1; tries < OPTIMISTIC_TRIES; tries++) {
		INDEX_STAT_ADD(counters.torn_reads, 1);
		cpu_relax();
		int r = read_under_counts(addr, p, out);
		if (r != MAP_TORN)
			return r;
	}
	INDEX_STAT_ADD(counters.torn_reads, 1);
	return MAP_TORN;
}

static inline int optimistic_lookup(uintptr_t addr, struct stripe_pair p, struct chunk_info *out)
{
	int r = read_under_counts(addr, p, out);
	return __builtin_expect(r != MAP_TORN, 1) ? r : optimistic_retry(addr, p, out);
}

/* Under the stripe locks, where the map is consistent: what a lookup that
 * wants the site does, for the header read must not race the chunk's free
 * (the hooks free a chunk only after its remove, which waits for the
 * lock), and what an optimistic one falls back to. */
static __attribute__((noinline)) int locked_lookup(uintptr_t addr, struct stripe_pair p,
                                                   struct chunk_info *out)
{
	INDEX_STAT_ADD(counters.locked_lookups, 1);
	struct stripes_held h;
	if (lock_for_lookup(p, &h))
		return INDEX_UNKNOWN;
	int answer = INDEX_NONE;
	switch (read_map(addr, out)) {
	case MAP_FOUND:
		out->site = 0;
		if (!out->no_site) { /* asked for: the one heap access */
			const struct chunk *c = chunk_of_user((void *)out->base);
			chunk_info_noted(c); /* under the stripe locks: c cannot be freed yet */
			out->site = chunk_site(c);
		}
		answer = INDEX_FOUND;
		break;
	case MAP_TORN: /* impossible in a consistent map; never a wrong answer */
		answer = INDEX_UNKNOWN;
		break;
	default:
		break;
	}
	unlock_held(h);
	return answer;
}

/* The small chunk containing addr: base and size from the map, site from
 * its header unless out->no_site (then no heap memory is read, and the
 * chunk is not noted: the lookup cache fills only with a site it got). */
static int small_lookup(uintptr_t addr, struct chunk_info *out)
{
	if (!memtable_covers(&map, addr))
		return INDEX_NONE;
	size_t g = granule_of(addr);
	struct stripe_pair p = stripes_of(g > REACH ? g - REACH : 0, g + REACH);
	if (OPTIMISTIC && out->no_site) {
		int r = optimistic_lookup(addr, p, out);
		if (r != MAP_TORN) {
			out->site = 0;
			return r == MAP_FOUND ? INDEX_FOUND : INDEX_NONE;
		}
	}
	return locked_lookup(addr, p, out);
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
	json_u64(out, "torn_reads", counters.torn_reads);
	json_u64(out, "locked_lookups", counters.locked_lookups);
}

INDEX_DEFINE_OPS(bytemap, 0, INDEX_ANSWERS_LOOKUPS | INDEX_ANSWERS_FROM_INDEX | INDEX_META_HEADER | INDEX_META_TRAILER)
