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
 * Costs: insert and remove write size / 16 bytes, whole aligned words (one
 * or two for most chunks); a lookup of a small chunk whose start and end
 * share the word of addr's byte is one load of index memory (besides the
 * written-pages bits and a stripe count, which every lookup shares), and
 * one of its header if the caller wants the site (struct chunk_info's
 * no_site is 0).  At 10^6 live chunks the map is ~22 MiB (scale's heap),
 * so that load is mostly a miss beyond L2, where Boehm's GC_base reads
 * ~5 MiB of block headers (workloads/scale/README.md).
 *
 * Threads: the map is cut into stripes of 2^16 granules (1 MiB of heap),
 * each with a sequence count that is also its lock (64 counts, one line
 * each, a stripe's at stripe number % 64).  A writer takes the stripes its
 * chunk's bytes lie in (a compare-and-swap of the count from even to odd,
 * at most two, in increasing order), stores its words with release, and
 * makes the counts even again (a release store).  A lookup without the site
 * takes nothing: it reads the counts of the stripes its reads may reach (up
 * to REACH granules around addr), the map words (acquire), and the counts
 * again, and keeps its answer if they were even and unchanged; else it
 * tries again, and after OPTIMISTIC_TRIES falls back to taking the stripes
 * as a writer does (which a signal handler's lookup only tries: index.h).
 * Racing a writer, its reads may mix old and new bytes: every scan is
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
#define COUNT_MASK 0x1fu
#define START_BIT 0x80u
#define SMALL_MAX ((size_t)16 << 10) /* 1 KiB of map, 128 words, per chunk at most */
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

/* A word of eight map bytes.  Writers store whole aligned words (relaxed
 * under their lock would do for each other; release for the readers
 * below), lookups load them with acquire: on x86-64 both are plain moves.
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
	size_t last = first + n - 1;
	/* Most chunks' bytes lie in one page of the map: contiguous, and that
	 * page is now marked written. */
	if (!lo || memtable_page_of_bin(&map, last) == memtable_page_of_bin(&map, first))
		return lo;
	unsigned char *hi = byte_for_write(last);
	if (!hi)
		return NULL;
	return hi - lo == (ptrdiff_t)(n - 1) ? lo : NULL;
}

/* size is c's, read once by the caller (the header's size is an atomic
 * load, chunk.h, and the map writes below need it in a register). */
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

#define CONTINUATION_WORD UINT64_C(0x1010101010101010)

/* Writes the bytes of a chunk of size bytes, n granules from granule first
 * (b: first's byte, the n bytes contiguous), or with size 0 clears them.
 * Whole aligned words, so that a lookup loads each word as stored: the
 * bytes of neighbouring chunks in the first and last word are kept (the
 * stripe lock keeps their writers out; a word never spans two stripes).
 * Leaves and the flat table are page-aligned, so b - first % 8 is the
 * aligned word of first.  A chunk's pattern in a word is the continuation
 * bytes (16) it covers, plus START_BIT in its first byte, less 16 - count
 * in its last (which borrows from nothing: every byte is at least 16). */
static inline void put_bytes(unsigned char *b, size_t first, size_t n, size_t size)
{
	unsigned char *w = b - (first & 7);
	size_t lo = first & 7, end = lo + n; /* the chunk's bytes: [lo, end) from w */
	uint64_t head = UINT64_MAX << (8 * lo);         /* its bytes of the first word */
	uint64_t tail = UINT64_MAX >> (8 * (-end & 7)); /* and of the last */
	uint64_t fill = size ? CONTINUATION_WORD : 0, start = size ? (uint64_t)START_BIT << (8 * lo) : 0;
	uint64_t short_by = size ? (uint64_t)((n << GRANULE_SHIFT) - size) << (8 * ((end - 1) & 7)) : 0;
	if (end <= 8) {
		uint64_t mask = head & tail;
		word_store(w, (word_load_held(w) & ~mask) | ((fill & mask) + start - short_by));
		return;
	}
	word_store(w, (word_load_held(w) & ~head) | (fill & head) | start);
	for (w += 8, end -= 8; end > 8; w += 8, end -= 8)
		word_store(w, fill);
	word_store(w, (word_load_held(w) & ~tail) | ((fill & tail) - short_by));
}

static inline void insert_sized(struct chunk *c, size_t size)
{
	if (size == 0)
		return; /* contains nothing, and remove writes nothing either */
	unsigned char *b = NULL;
	size_t first = granule_of(chunk_user(c)), n = (size + GRANULE - 1) >> GRANULE_SHIFT;
	if (in_map(c, size)) {
		struct stripes_held h = write_begin(first, first + n - 1);
		b = bytes_for_write(first, n);
		if (b)
			put_bytes(b, first, n, size);
		write_end(h);
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
		struct stripes_held h = write_begin(first, first + n - 1);
		in = (*(const unsigned char *)memtable_entry(&map, first) & START_BIT) != 0;
		if (in)
			put_bytes(memtable_entry_address(&map, first), first, n, 0);
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
 * loading whole aligned words.  In a map no writer is changing (under the
 * stripe locks, or a sequence count unchanged across the reads) every byte
 * from a chunk's start to addr is covered, so the start is at most
 * SMALL_GRANULES - 1 below and its page was written; the size scan ends
 * within SMALL_GRANULES + 1 bytes of the start.  Racing a writer, the
 * bytes read may be any mix of old and new, so each scan is bounded
 * (SCAN_WORDS) and checks every page it steps onto (written, inside the
 * table, its leaf mapped): a torn read then costs a retry, never a fault
 * nor a read that commits memory, and the sequence count rejects its
 * answer. */
#define START_BITS UINT64_C(0x8080808080808080)
#define SCAN_WORDS (SMALL_GRANULES / 8 + 2) /* either scan, the word it starts in included */
/* Every word a lookup of granule g reads lies within REACH granules of g:
 * the stripes whose counts (or locks) it takes. */
#define REACH (8 * (SCAN_WORDS + 1))

enum map_read { MAP_NONE, MAP_FOUND, MAP_TORN };

/* The aligned word of map bytes holding granule g's (g a multiple of 8 at
 * a page's start), or NULL if its page was never written (then it is all
 * zero, and reading it might commit memory) or lies past the table. */
static inline const unsigned char *word_at_page_start(size_t g)
{
	if (g >= granule_of(map.limit) || !memtable_page_written(&map, memtable_page_of_bin(&map, g)))
		return NULL;
	return memtable_entry_address(&map, g); /* NULL: a leaf this thread cannot see yet */
}

/* Base and size of the chunk whose start byte is byte `at` of word w,
 * loaded from granule wg's word: the first byte past the start that is not
 * 16 (a continuation) is the chunk's end e, its last granule if it holds a
 * count (1..15), else (0, or the next chunk's start) e - 1 is. */
static __attribute__((noinline)) int size_forward(const unsigned char *w, size_t wg, uint64_t word,
                                                  unsigned at, struct chunk_info *out)
{
	size_t start = wg + at;
	out->base = (uintptr_t)start << GRANULE_SHIFT;
	unsigned first = (unsigned)(word >> (8 * at)) & COUNT_MASK;
	if (first < 16) {
		out->size = first;
		return MAP_FOUND;
	}
	/* Bytes 0 .. at of the first word are the start and what lies below. */
	uint64_t other = (word ^ CONTINUATION_WORD) & (at == 7 ? 0 : UINT64_MAX << (8 * (at + 1)));
	for (unsigned words = 1; !other; words++) {
		if (words == SCAN_WORDS)
			return MAP_TORN;
		wg += 8;
		if (wg % MEMTABLE_PAGE_BYTES == 0) { /* onto the next page of the map */
			if (wg >= granule_of(map.limit))
				return MAP_TORN;
			if (!memtable_page_written(&map, memtable_page_of_bin(&map, wg))) {
				out->size = (wg - start) << GRANULE_SHIFT; /* e = wg, a 0 */
				return MAP_FOUND;
			}
			if (!(w = memtable_entry_address(&map, wg)))
				return MAP_TORN;
		} else {
			w += 8;
		}
		word = word_load(w);
		other = word ^ CONTINUATION_WORD;
	}
	unsigned e_at = (unsigned)__builtin_ctzll(other) / 8;
	unsigned last = (unsigned)(word >> (8 * e_at)) & 0xffu;
	size_t e = wg + e_at;
	out->size = ((e - start) << GRANULE_SHIFT) + ((last & START_BIT) ? 0 : (last & COUNT_MASK));
	return MAP_FOUND;
}

/* read_map past the word of g: the start lies in a word below (w, loaded
 * from granule wg, holds none at or below g). */
static __attribute__((noinline)) int start_below(const unsigned char *w, size_t wg,
                                                 struct chunk_info *out)
{
	uint64_t word, starts;
	unsigned back = 0;
	do {
		if (++back == SCAN_WORDS || wg == 0)
			return MAP_TORN;
		if (wg % MEMTABLE_PAGE_BYTES == 0) {
			if (!(w = word_at_page_start(wg - MEMTABLE_PAGE_BYTES)))
				return MAP_TORN;
			w += MEMTABLE_PAGE_BYTES - 8;
		} else {
			w -= 8;
		}
		wg -= 8;
		word = word_load(w);
		starts = word & START_BITS;
	} while (!starts);
	INDEX_STAT_ADD(counters.words_back, back);
	return size_forward(w, wg, word, (unsigned)(63 - __builtin_clzll(starts)) / 8, out);
}

/* The chunk containing addr, from the map alone (out's base and size).
 * Inline for the common case, a chunk whose start and end lie in the word
 * of addr's byte; the scans across words are calls. */
static inline __attribute__((always_inline)) int read_map(uintptr_t addr, struct chunk_info *out)
{
	size_t g = granule_of(addr), wg = g & ~(size_t)7;
	/* 1-byte entries: the map page of g is g's 4,096-granule page. */
	if (!memtable_page_written(&map, g >> MEMTABLE_PAGE_SHIFT))
		return MAP_NONE;
	const unsigned char *w = memtable_byte_address(&map, wg);
	if (__builtin_expect(!w, 0))
		return MAP_NONE;
	uint64_t word = word_load(w);
	unsigned at = (unsigned)(g & 7);
	if (((word >> (8 * at)) & COUNT_MASK) <= (addr & (GRANULE - 1)))
		return MAP_NONE;
	/* The nearest start at or below g: in this word, bytes 0 .. at. */
	uint64_t starts = word & START_BITS & (UINT64_MAX >> (56 - 8 * at));
	if (__builtin_expect(!starts, 0))
		return start_below(w, wg, out);
	unsigned sb = (unsigned)(63 - __builtin_clzll(starts)) / 8;
	unsigned first = (unsigned)(word >> (8 * sb)) & COUNT_MASK;
	/* Past the start, the first byte that is not 16 ends the chunk; two
	 * shifts, as sb may be 7. */
	uint64_t other = (word ^ CONTINUATION_WORD) & ((UINT64_MAX << (8 * sb)) << 8);
	out->base = (uintptr_t)(wg + sb) << GRANULE_SHIFT;
	if (first < 16) { /* one granule */
		out->size = first;
		return MAP_FOUND;
	}
	if (__builtin_expect(!other, 0))
		return size_forward(w, wg, word, sb, out);
	unsigned e_at = (unsigned)__builtin_ctzll(other) / 8;
	unsigned last = (unsigned)(word >> (8 * e_at)) & 0xffu;
	out->size = ((size_t)(e_at - sb) << GRANULE_SHIFT) + ((last & START_BIT) ? 0 : (last & COUNT_MASK));
	return MAP_FOUND;
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
