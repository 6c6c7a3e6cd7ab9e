/* heap_index.c - the memtable heap index: live chunks binned by address.
 *
 * Doug Lea's malloc bins *free* chunks by size; this bins *allocated* chunks
 * by address (S. Kell, "How to make a virtual machine less virtual").  The
 * address space is cut into 2^shift-byte bins; the memtable has one byte per
 * bin; each bin's chunks form a list threaded through their own headers.
 * That is the list form, for the header and trailer placements (chunk.h).
 * Under side, where a chunk carries nothing, a bin of at most 64 bytes
 * holds at most four chunk starts, and its byte holds them as a mask with a
 * lock bit instead: "the start masks", below, after the list form.
 *
 * Invariants (checked by tests/test_memtable.c and the differential tests):
 *  - a chunk is on the list of the bin holding its user pointer, and only
 *    there ("bin-local" lists, as in liballocs 2012-2016);
 *  - slots: user pointers are 16-byte aligned, so a chunk's position in its
 *    bin is a slot number 1 .. 2^(shift-4); 0 means "none".  The table byte
 *    is the slot of the list head; the chunk's 16 index bits hold the slots
 *    of its next (low byte) and prev (high byte) neighbours.  So a list link
 *    costs no memory beyond the 16-byte header every index has;
 *  - the head is the bin's lowest chunk (the rest in no order): a lookup
 *    skips its own bin by the byte alone when the head lies above the
 *    address, and otherwise the head is its answer unless a later chunk of
 *    the list also starts at or below the address.  An insert below the
 *    head becomes the head, any other goes second; removing the head moves
 *    the lowest of the rest to the front (tests/test_memtable.c,
 *    memtable_bins);
 *  - so the chunk containing addr, if any, starts in the nearest bin at or
 *    below addr's whose byte counts (nonzero; addr's own only if its slot
 *    is at most addr's), and is that bin's head unless the bin holds more
 *    chunks.  Most lookups find that bin among the eight bins ending at
 *    addr's, one table word read unaligned (near_lookup: one load, the
 *    head's slot in the byte found, one header read); the rest scan on
 *    (small_lookup, memtable_last_nonzero_byte): of random interior hits
 *    on the scale workload's size mix, 9-11% at 10^3..10^6 live chunks,
 *    those more than 7 bins (448 bytes at the default shift) into a chunk
 *    (tests: memtable_near);
 *  - small chunks are at most big_threshold = 256 bins long, so a chunk
 *    covering addr starts at most max_small_size bytes below it: the backward
 *    walk over the table is bounded by max_small_size / binsize entries;
 *  - big chunks (and chunks above the covered address range, or whose
 *    two-level leaf could not be mapped: next slot SLOT_OVERFLOW) live in
 *    the shared big-chunk B+tree instead (big_chunks.h).
 *
 * Threads: a lock per bin, in the bin's own table byte.  Lists are
 * bin-local, so operations on different bins never touch the same list.
 * Locking a bin swaps BIN_LOCKED (0xff: no slot number is above 128) into
 * its byte and keeps the head slot the byte held; unlocking stores the new
 * head.  The lock thus costs no memory and no extra cache line (the update
 * writes that byte anyway), and the bins of two threads' heaps, which sit
 * in different table lines, never contend.  Every read or write of a bin's
 * list, and of the links of a chunk on it, holds the bin's lock:
 *  - a remove unlinks the chunk under it, before the hooks free the chunk;
 *  - a lookup walks a bin and copies base, size and site out under it.
 * So a lookup never reads a chunk that is being freed.  A lookup reads
 * table bytes without the lock first and leaves a zero byte alone (the bin
 * was empty at that moment; locking it would write, and commit, a table
 * page).  The near lookup reads one table word so, takes the nonzero byte
 * it picks as the head's slot, computes and prefetches that header (a
 * hint: it never faults and reads nothing), and then tries the bin's lock
 * once.  It reads the header only after the exchange returned: if the
 * byte still held that slot, the chunk there is the bin's listed head and
 * stays unfreed until the unlock; if it held another, that head is walked
 * instead; if the bin was busy the full lookup takes over, which waits
 * for the lock, or when it may not (a signal handler, index.h) tries it
 * and answers INDEX_UNKNOWN.  The near lookup never waits, so it needs no
 * such test.  The backward scan (memtable_last_nonzero_byte) reads bytes
 * without locks too: a bin it returns is then locked and walked, and if it
 * was emptied meanwhile the scan goes on below it.
 *
 * Why a lookup takes the lock even of a bin of one chunk: between its read
 * of the byte and its read of the header, the chunk's remove can lock,
 * unlink, unlock and return, and the hooks free the chunk, which the
 * allocator may unmap or hand out again.  Checking the byte again after
 * copying (a seqlock) would reject a torn answer but not undo a read of
 * freed memory; a hazard pointer (bitmap.c) costs a lookup four locked
 * instructions and every remove a check for hazards, where the lock is one
 * exchange on a line the lookup has just read.  Measured (issue 12, scale
 * hit ns): a near lookup that published a hazard and re-read the byte
 * instead of locking (the table line left clean; a shared count of
 * readers so that removes pay one load, as bitmap.c) took 11.5 ns at 10^3
 * chunks against the lock's 10.4, and at 10^4..10^5 no less; even without
 * the count of readers (so with no way for a remove to skip the scan of
 * every thread's hazards) it only drew level.  The write of the table
 * line is not what a lookup waits for.
 *
 * Head entries (header placement, shifts up to 7, flat table): beside the
 * byte table, a 16-bit entry per bin holds the head's slot and, when the
 * head is alone in its bin and asked for at most 4095 bytes, its size
 * ("head entries", below).  A lookup that wants no site (scale's timed
 * lookups, heapindex_lookup with a NULL site) reads the entries of its
 * near lookup's eight bins, two loads of index memory, and answers from
 * the nearest with a size: no header read, no lock, no locked instruction
 * (head_lookup).  The rest (a head of more, a size over 4095, nothing in
 * the eight bins, a site wanted, a lookup cache fill) take the paths
 * above unchanged.  Writers store the entry under the bin's lock, before
 * the unlock, so a remove has overwritten it before the hooks free the
 * chunk.  Measured (workloads/scale/README.md, "Head entries"): scale hit
 * ns memtable / bitmap 0.36-0.84 at 10^3..10^7 (before 0.89-1.09), at +14
 * instructions per malloc+free pair (make hook-cost, header: 271.4 ->
 * 285.4), one more line per update (+7-10 ns per insert or remove at 10^6
 * in scale's random order), and twice the table's bytes.
 * The trailer and side placements keep none: their answers come from
 * malloc_usable_size and the start masks.
 *
 * Lookups count their statistics with relaxed loads and stores (index.h),
 * not read-modify-writes, and a near lookup that answers with one of them
 * (counters.near).  The common lookup, header placement with no lookup
 * cache fill running, is compiled apart from the rest (lookup_general) so
 * that it makes no call but tail calls and saves three registers, not six.
 *
 * Cost of the updates (make hook-cost: callgrind, 10^6 malloc+free pairs of
 * 16-128 bytes, each chunk alone in its bin; the hooks' part is in
 * hooks/hooks.c): the header bodies' insert is 34 instructions and remove
 * 20 (were 35 and 24).  Insert: one compare of the user pointer with
 * flat_limit ("covered and flat"), one of the size with max_small_size,
 * the bin and its byte's address (4), the lock's exchange and its test,
 * the slot (3), the empty-bin test, the written-pages summary test (7,
 * only for an empty bin: link_locked), the links' store and the unlock.
 * Remove: the same two compares, address and lock, one load of both links
 * and its test (a chunk alone in its bin), the unlock, and c handed back
 * (index.h).  A two-level table (valgrind refuses the flat reservation;
 * strict overcommit) and the trailer placement take the same code in the
 * form for either layout, out of line: +4 per pair over the inline
 * two-level code before (308.5 against 304.5, HEAPINDEX_ADDR_BITS=47
 * under callgrind), where the flat table gained 10.
 *
 * max_small_size only grows, atomically, before the chunk that raised it
 * is linked.  Two-level leaves are mapped by whichever insert needs one
 * first, lock-free (memtable.c).
 */
#include "big_chunks.h"
#include "index.h"
#include "memtable.h"
#include "start_masks.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

INDEX_DECLARE(memtable)

static struct memtable table;
static size_t bin_bytes, big_threshold;
/* The fields every update reads (start_masks.h), the hooks' side path
 * too: slot_mask, max_small_size (the largest small chunk ever indexed,
 * atomic) and flat_limit, table.limit if the table is flat, else 0: the
 * updates' common paths test "covered and flat" with one compare of the
 * user pointer against it, and leave the two-level layout (never used on
 * x86-64 with the default 47 address bits, unless the kernel refuses the
 * flat reservation) and uncovered chunks to their slow paths. */
struct memtable_hot memtable_hot;

/* Big chunks (and chunks above the covered range). */
static struct big_chunks big;

/* Lookup statistics cost a near lookup that answers one count: near[b]
 * counts those that read the head of the bin b below addr's, which is
 * b + 1 bins scanned and one header read; the figures write_stats gives
 * are summed from them and the rest, counted where it happens (the lookups
 * the near path leaves, the headers of lists longer than one, the scans
 * of lookup_further).  Five counters updated on every lookup cost 0.8 ns
 * of a 17 ns hit at 10^4 chunks (workloads/scale/README.md). */
#define NEAR_BINS 8
static struct {
	uint64_t near[NEAR_BINS];
	uint64_t further_lookups, list_steps, bins_scanned;
	uint64_t longest_list_walked, longest_backward_scan;
	uint64_t uncovered_inserts, leaf_failures;
	uint64_t head_answers; /* lookups answered from head entries (no header read) */
} counters;

#define SLOT_NONE 0u
/* In the next-slot byte of a small chunk kept in the big array because its
 * two-level leaf could not be mapped: no real slot is above 128. */
#define SLOT_OVERFLOW 0xffu
/* In a table byte: the bin is locked. */
#define BIN_LOCKED 0xffu

static inline unsigned slot_of(uintptr_t user)
{
	return ((unsigned)(user >> 4) & memtable_hot.slot_mask) + 1;
}

static inline struct chunk *chunk_at(uintptr_t bin_base, unsigned slot)
{
	return chunk_of_user((void *)(bin_base + ((uintptr_t)(slot - 1) << 4)));
}

/* The links: bytes 6 (next) and 7 (prev) of the little-endian site word,
 * i.e. its top 16 bits (chunk.h: the header's site_links or the trailer),
 * read and written a byte at a time: one move each.  Only under the bin's
 * lock (a lookup's copy of the site too), so they never race. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "links are bytes 6 and 7 of the site word");

/* meta: the placement (chunk.h), a constant in the hot paths' bodies. */
CHUNK_INLINE unsigned char *links_of(struct chunk *c, enum chunk_meta meta)
{
	return (unsigned char *)chunk_site_word_in(c, meta) + 6;
}

CHUNK_INLINE unsigned next_slot(const struct chunk *c, enum chunk_meta meta)
{
	return links_of((struct chunk *)c, meta)[0];
}

CHUNK_INLINE unsigned prev_slot(const struct chunk *c, enum chunk_meta meta)
{
	return links_of((struct chunk *)c, meta)[1];
}

/* Both links of a chunk in one 16-bit store, put together in any
 * register (a pair of byte stores that gcc merges wants a byte register
 * with a high half, %bx, which costs insert a callee-saved register). */
typedef uint16_t __attribute__((may_alias)) links_word;

CHUNK_INLINE void set_links(unsigned char *links, unsigned next, unsigned prev)
{
	*(links_word *)links = (uint16_t)(next | prev << 8);
}

/* --- bin locks ------------------------------------------------------------- */

/* One try to lock a bin by its table byte: the head slot it held, or
 * BIN_LOCKED if another thread holds it.  Insert and remove call their
 * contended forms as tail calls on BIN_LOCKED, so that the common path
 * keeps nothing in callee-saved registers. */
static inline unsigned bin_try_lock(unsigned char *e)
{
	unsigned head = __atomic_exchange_n(e, (unsigned char)BIN_LOCKED, __ATOMIC_ACQUIRE);
	if (__builtin_expect(head != BIN_LOCKED, 1))
		LOCK_ANNOTATE_ACQUIRED(e);
	return head;
}

static __attribute__((noinline)) unsigned bin_lock_contended(unsigned char *e)
{
	unsigned spins = 0;
	for (;;) {
		while (__atomic_load_n(e, __ATOMIC_RELAXED) == BIN_LOCKED)
			spin_wait(&spins);
		unsigned head = bin_try_lock(e);
		if (head != BIN_LOCKED)
			return head;
	}
}

/* Lock a bin by its table byte; returns the head slot it held. */
static inline unsigned bin_lock(unsigned char *e)
{
	unsigned head = bin_try_lock(e);
	return __builtin_expect(head == BIN_LOCKED, 0) ? bin_lock_contended(e) : head;
}

static inline void bin_unlock(unsigned char *e, unsigned head)
{
	lock_byte_release(e, (unsigned char)head);
}

/* Lock a bin for a lookup: 0 with *head set, or -1 if it is locked and the
 * lookup may not wait (index.h). */
static int bin_lock_for_lookup(unsigned char *e, unsigned *head)
{
	if (__builtin_expect(index_lookup_may_wait(), 1)) {
		*head = bin_lock(e);
		return 0;
	}
	unsigned char seen = __atomic_load_n(e, __ATOMIC_RELAXED);
	while (seen != BIN_LOCKED) {
		if (__atomic_compare_exchange_n(e, &seen, (unsigned char)BIN_LOCKED, 0,
		                                __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
			LOCK_ANNOTATE_ACQUIRED(e);
			*head = seen;
			return 0;
		}
	}
	return -1;
}

/* The table byte of bin, for an insert or a remove: NULL if its page was
 * never written (or its leaf is not mapped), one summary bit tested. */
static inline unsigned char *written_entry_of(size_t bin)
{
	return memtable_written_byte(&table, bin);
}

/* The table byte of bin for writing, marking its page written and mapping
 * its two-level leaf if need be; NULL if that leaf cannot be mapped. */
static unsigned char *entry_for_write(size_t bin)
{
	unsigned char *e = written_entry_of(bin);
	return __builtin_expect(e != NULL, 1) ? e : memtable_entry_for_write(&table, bin);
}

/* size is c's, read once by the caller (an atomic load, chunk.h: gcc does
 * not merge two of them). */
static inline int is_big(const struct chunk *c, size_t size)
{
	return size > big_threshold || !memtable_covers(&table, chunk_user(c));
}

/* --- head entries ----------------------------------------------------------
 * Under the header placement, beside the table (its shadow array,
 * memtable.h), one 16-bit entry per bin says what a lookup that wants no
 * site needs of the bin's head, so that it reads no heap: the head's slot
 * in the low 4 bits and, when the head is alone in its bin and asked for
 * at most HEAD_SIZE_MAX bytes, that requested size in the other 12; else
 * size 0, "walk the list".  Entry 0: the bin is empty.  Slots must fit in
 * 4 bits, so only shifts up to 7 keep entries (8 slots); other shifts, the
 * two-level table, and the trailer and side placements (their answers
 * come from elsewhere: the trailer's size from malloc_usable_size, side's
 * from the start masks) keep none (memtable_hot.heads NULL).
 *
 * Invariant: at every moment a bin's lock is free, its entry is
 * head_entry(its head, its size if alone else 0), or 0 if it is empty.
 * Writers keep it so under the bin's lock, storing the entry before the
 * unlock: whenever the head or the count of chunks (one, more) changes
 * (link_locked, unlink_locked, lowest_to_front).  A remove stores before it
 * returns, and the hooks free the chunk only after, so an entry read with
 * a (relaxed) atomic load that names a chunk and its size names a chunk
 * that was live, alone and of that size at the moment of the load: a
 * lookup answering from it is linearizable at that load, and the pair
 * (slot, size), one 16-bit store, is never torn.  The entries of eight
 * bins are read as two 8-byte loads (memtable_load_entries): each entry is one
 * 2-aligned 16-bit piece of a load, never split across two accesses
 * (x86-64: a load within a line is one access, one split across lines is
 * two, and a 2-aligned entry never straddles a line); entries of different
 * bins may come from slightly different moments, as the table's bytes do
 * in memtable_scan_near. */
#define HEAD_SIZE_MAX 4095u
#define HEAD_SLOT_BITS 4u
#define HEAD_SHIFT_MAX 7u /* 8 slots: the largest shift whose slots fit in 4 bits */
_Static_assert(((1u << (HEAD_SHIFT_MAX - 4)) < (1u << HEAD_SLOT_BITS)), "slots 1..2^(shift-4) in 4 bits");

static inline uint16_t head_entry(unsigned slot, size_t size)
{
	return (uint16_t)(slot | (size <= HEAD_SIZE_MAX ? (unsigned)size << HEAD_SLOT_BITS : 0u));
}

/* Under the bin's lock, before its unlock.  meta: the placement, a
 * constant in the hot bodies, where the trailer's test no entries. */
CHUNK_INLINE void head_entry_store(enum chunk_meta meta, size_t bin, uint16_t entry)
{
	uint16_t *heads = memtable_hot.heads;
	if (meta == META_HEADER && __builtin_expect(heads != NULL, 1))
		__atomic_store_n(&heads[bin], entry, __ATOMIC_RELAXED);
}

/* head_entry_store of listed chunk h, the head: alone (its size read from
 * its header, only if entries are kept) or not. */
CHUNK_INLINE void head_entry_store_head(enum chunk_meta meta, size_t bin, unsigned slot,
                                        const struct chunk *h, int alone)
{
	if (meta == META_HEADER && __builtin_expect(memtable_hot.heads != NULL, 1))
		head_entry_store(meta, bin, head_entry(slot, alone ? chunk_size_in(h, META_HEADER) : 0));
}

/* --- the index ------------------------------------------------------------ */

int memtable_index_init(const struct heapindex_config *cfg, char *err, size_t errlen)
{
	int e = memtable_init(&table, cfg->addr_bits, cfg->bin_shift, 1,
	                      (enum memtable_layout)cfg->table_levels);
	if (e) {
		snprintf(err, errlen,
		         "heapindex: cannot reserve the memtable (%zu bytes for %u address bits, bin shift %u): %s; "
		         "allow overcommit (sysctl vm.overcommit_memory=0 or 1), raise ulimit -v, "
		         "let it use its two-level table (HEAPINDEX_TABLE_LEVELS=0 or 2), "
		         "or lower HEAPINDEX_ADDR_BITS / raise HEAPINDEX_BIN_SHIFT",
		         memtable_reserved_bytes(cfg->addr_bits, cfg->bin_shift, 1),
		         cfg->addr_bits, cfg->bin_shift, strerror(e));
		return -1;
	}
	if (chunk_meta == META_SIDE && cfg->bin_shift > CONFIG_SIDE_BIN_SHIFT_MAX) {
		/* config_meta_for refuses it first; inproc users set the placement themselves */
		snprintf(err, errlen, "heapindex: the memtable takes HEAPINDEX_META=side only with "
		         "HEAPINDEX_BIN_SHIFT from %u to %u, not %u", CONFIG_BIN_SHIFT_MIN,
		         CONFIG_SIDE_BIN_SHIFT_MAX, cfg->bin_shift);
		memtable_destroy(&table);
		return -1;
	}
	memtable_hot.flat_limit = memtable_is_flat(&table) ? table.limit : 0;
	bin_bytes = (size_t)1 << cfg->bin_shift;
	memtable_hot.slot_mask = (unsigned)(bin_bytes >> 4) - 1;
	memtable_hot.rotated_limit = memtable_hot.flat_limit >> 4;
	memtable_hot.entries = table.entries;
	memtable_hot.written = table.written.pages[0];
	memtable_hot.rotated_shift = cfg->bin_shift - 4;
	/* Head entries: a refused reservation only leaves them off. */
	memtable_hot.heads = NULL;
	if (chunk_meta == META_HEADER && cfg->bin_shift <= HEAD_SHIFT_MAX && memtable_is_flat(&table) &&
	    !memtable_add_shadow(&table, sizeof *memtable_hot.heads))
		memtable_hot.heads = (uint16_t *)(void *)table.shadow;
	big_threshold = bin_bytes * 256;
	LOCK_ANNOTATE_BENIGN_RACE(&counters, sizeof counters, "lookup statistics (INDEX_STAT_ADD)");
	return 0;
}

/* Link small chunk c, whose user pointer lies in bin, into the bin's list;
 * e is the bin's byte, locked, which held head.  The head stays the lowest
 * chunk of the bin (see the invariants): c goes in front if it is lower,
 * else just after the head.  Either way only c, the head and at most the
 * head's successor are written.  Most bins hold one chunk at most, so an
 * empty bin is tested first, and costs the store of c's links (both bytes
 * at once: a chunk re-inserted after a failed realloc has old ones).
 *
 * The written-pages summary (memtable.h) is tested only for an empty bin:
 * invariant, a table byte that is neither 0 nor BIN_LOCKED lies on a page
 * marked written, because the insert that made it nonzero found it 0 and
 * tested (or marked) the page first, and marks are never cleared.  Until
 * the unlock makes c's slot visible the page, which the lock's exchange
 * may just have committed, reads as empty to lookups, which read only
 * marked pages.  Returns 1, or 0 when c would be the first chunk of a page
 * never marked: then the bin is unlocked unchanged (still 0), and the
 * caller marks the page (link_marking) and links again. */
CHUNK_INLINE int link_locked(struct chunk *c, size_t size, size_t bin, unsigned char *e, unsigned head,
                             enum chunk_meta meta)
{
	unsigned slot = slot_of(chunk_user(c));
	unsigned char *links = links_of(c, meta);
	if (head == SLOT_NONE) {
		if (__builtin_expect(!memtable_bit_is_set(table.written.pages[0], bin >> MEMTABLE_PAGE_SHIFT), 0)) {
			bin_unlock(e, SLOT_NONE);
			return 0;
		}
		set_links(links, SLOT_NONE, SLOT_NONE);
		head_entry_store(meta, bin, head_entry(slot, size)); /* alone */
		bin_unlock(e, slot);
		return 1;
	}
	uintptr_t base = memtable_bin_base(&table, bin);
	struct chunk *h = chunk_at(base, head);
	if (slot < head) {
		links_of(h, meta)[1] = (unsigned char)slot;
		set_links(links, head, SLOT_NONE);
		head_entry_store(meta, bin, head_entry(slot, 0)); /* a new head, of more */
		bin_unlock(e, slot);
		return 1;
	}
	unsigned next = next_slot(h, meta);
	if (next != SLOT_NONE)
		links_of(chunk_at(base, next), meta)[1] = (unsigned char)slot;
	set_links(links, next, head);
	links_of(h, meta)[0] = (unsigned char)slot;
	head_entry_store(meta, bin, head_entry(head, 0)); /* the head, no longer alone */
	bin_unlock(e, head);
	return 1;
}

static void link_chunk(struct chunk *c, size_t bin, unsigned char *e);

/* link_locked found c's page never marked: mark it, and link again. */
static __attribute__((noinline)) void link_marking(struct chunk *c, size_t bin, unsigned char *e)
{
	memtable_note_written_slow(&table, bin >> MEMTABLE_PAGE_SHIFT);
	link_chunk(c, bin, e);
}

/* Link c into bin, whose byte is e: the general path's (any placement),
 * waiting for the bin's lock. */
static void link_chunk(struct chunk *c, size_t bin, unsigned char *e)
{
	if (!link_locked(c, chunk_size(c), bin, e, bin_lock(e), chunk_meta))
		link_marking(c, bin, e);
}

/* Insert's uncommon cases: big or uncovered chunks, a two-level table, a
 * chunk bigger than any small one so far. */
static __attribute__((noinline)) void insert_slow(struct chunk *c)
{
	enum chunk_meta meta = chunk_meta;
	if (is_big(c, chunk_size(c))) {
		if (!memtable_covers(&table, chunk_user(c)))
			__atomic_fetch_add(&counters.uncovered_inserts, 1, __ATOMIC_RELAXED);
		big_chunks_insert(&big, c); /* on failure: unindexed, never corrupt */
		return;
	}
	size_t bin = memtable_bin(&table, chunk_user(c));
	unsigned char *e = entry_for_write(bin);
	if (!e) { /* no memory for a two-level leaf */
		__atomic_fetch_add(&counters.leaf_failures, 1, __ATOMIC_RELAXED);
		links_of(c, meta)[0] = SLOT_OVERFLOW;
		big_chunks_insert(&big, c);
		return;
	}
	/* Before c can be found: a lookup reaching back for c reads it first. */
	index_raise_bound(&memtable_hot.max_small_size, chunk_size(c));
	link_chunk(c, bin, e);
}

/* The common insert, tried once: a chunk no bigger than any small one so
 * far (max_small_size <= big_threshold, so this one test also keeps big
 * chunks out), whose bin's lock is free, in a flat table (flat 1: the user
 * pointer below flat_limit, one compare for "covered and flat") or a
 * two-level one (flat 0: covered, and its leaf mapped).  1 if linked; 0
 * with nothing changed (the lock tried and found busy, or a page to mark),
 * when insert_slow must do it. */
CHUNK_INLINE int insert_fast(struct chunk *c, size_t size, enum chunk_meta meta, int flat)
{
	uintptr_t user = chunk_user(c);
	if (__builtin_expect(flat ? user >= memtable_hot.flat_limit : !memtable_covers(&table, user), 0) ||
	    __builtin_expect(size > __atomic_load_n(&memtable_hot.max_small_size, __ATOMIC_RELAXED), 0))
		return 0;
	size_t bin = memtable_bin(&table, user);
	unsigned char *e = flat ? table.entries + bin : memtable_byte_address(&table, bin);
	if (!flat && !e)
		return 0;
	unsigned head = bin_try_lock(e);
	if (__builtin_expect(head == BIN_LOCKED, 0)) /* it exchanged 0xff for 0xff */
		return 0;
	return link_locked(c, size, bin, e, head, meta);
}

/* Every header insert that the flat table's insert_fast leaves: the
 * form for either layout (a two-level table's common case), then
 * insert_slow (apart from the trailer's, which would make it save
 * registers). */
static __attribute__((noinline)) void insert_other(struct chunk *c, size_t size)
{
	if (!insert_fast(c, size, META_HEADER, 0))
		insert_slow(c);
}

/* One test of the placement, then a body compiled for it (chunk.h); the
 * trailer's, which calls malloc_usable_size, apart, so the header's saves
 * no register, and in the form for either layout. */
static __attribute__((noinline)) void insert_trailer(struct chunk *c)
{
	size_t size = chunk_size_in(c, META_TRAILER);
	if (!insert_fast(c, size, META_TRAILER, 0))
		insert_slow(c);
}

static void mask_insert(struct chunk *c);
int memtable_index_remove_side(struct chunk *c);

/* Under side (the start masks, below) this is the hooks' fast path's call;
 * under header theirs is memtable_index_insert_header. */
void memtable_index_insert(struct chunk *c)
{
	if (chunk_meta == META_SIDE)
		return mask_insert(c);
	if (__builtin_expect(!chunk_likely_header(), 0))
		return insert_trailer(c);
	size_t size = chunk_size_in(c, META_HEADER);
	if (!insert_fast(c, size, META_HEADER, 1))
		insert_other(c, size);
}

/* The head was removed: move the lowest chunk of the rest (first, ...) to
 * the front, so the head is the bin's lowest chunk again, and unlock the
 * bin's byte e with it.  The rest lies in the same bin, a few cache lines.
 * Apart, so that remove's common path keeps nothing across a call. */
static __attribute__((noinline)) void lowest_to_front(unsigned char *e, uintptr_t base, unsigned first)
{
	enum chunk_meta meta = chunk_meta;
	unsigned low = first, left = 1;
	for (unsigned s = next_slot(chunk_at(base, first), meta); s != SLOT_NONE;
	     s = next_slot(chunk_at(base, s), meta), left++)
		if (s < low)
			low = s;
	struct chunk *l = chunk_at(base, low);
	/* The new head: alone (its size from its header) or of more. */
	head_entry_store_head(meta, memtable_bin(&table, base), low, l, left == 1);
	if (low != first) { /* unlink it (it has a predecessor), relink it before first */
		unsigned next = next_slot(l, meta), prev = prev_slot(l, meta);
		links_of(chunk_at(base, prev), meta)[0] = (unsigned char)next;
		if (next != SLOT_NONE)
			links_of(chunk_at(base, next), meta)[1] = (unsigned char)prev;
		links_of(l, meta)[0] = (unsigned char)first;
		links_of(chunk_at(base, first), meta)[1] = (unsigned char)low;
	}
	links_of(l, meta)[1] = SLOT_NONE;
	bin_unlock(e, low);
}

/* Unlink listed chunk c from bin, whose byte e is locked and held head,
 * and unlock it; or, when c is the head of more, return the slot of its
 * successor with the bin still locked: the caller then calls
 * lowest_to_front (so that a caller with work after it can make that call
 * out of line).  Otherwise SLOT_NONE, or SLOT_OVERFLOW (the bin unlocked)
 * for a chunk the caller must take out of the big tree instead.  The last chunk of its list (next
 * none), and most often the only one, is tested first.  A chunk of a flat
 * table (flat 1) is never one kept in the big tree because its two-level
 * leaf could not be mapped (next SLOT_OVERFLOW): only other tables test
 * that mark, and only on the way to a list with more. */
CHUNK_INLINE unsigned unlink_locked(struct chunk *c, size_t bin, unsigned char *e, unsigned head,
                                    enum chunk_meta meta, int flat)
{
	/* Both links in one load: a chunk alone in its bin, the most common,
	 * is one test. */
	unsigned links = *(const links_word *)links_of(c, meta);
	if (links == 0) { /* next and prev none: c was alone, the head */
		head_entry_store(meta, bin, 0);
		bin_unlock(e, SLOT_NONE);
		return SLOT_NONE;
	}
	unsigned next = links & 0xffu, prev = links >> 8;
	if (next == SLOT_NONE) {
		struct chunk *p = chunk_at(memtable_bin_base(&table, bin), prev);
		links_of(p, meta)[0] = SLOT_NONE;
		if (prev == head) /* the head is left alone: its size from its header */
			head_entry_store_head(meta, bin, head, p, 1);
		bin_unlock(e, head);
		return SLOT_NONE;
	}
	if (!flat && __builtin_expect(next == SLOT_OVERFLOW, 0)) { /* not listed: its leaf came later */
		bin_unlock(e, head);
		return SLOT_OVERFLOW; /* the caller takes it out of the big tree */
	}
	if (prev == SLOT_NONE)
		return next;
	uintptr_t base = memtable_bin_base(&table, bin);
	links_of(chunk_at(base, prev), meta)[0] = (unsigned char)next;
	links_of(chunk_at(base, next), meta)[1] = (unsigned char)prev;
	bin_unlock(e, head);
	return SLOT_NONE;
}

/* Every remove that remove_fast leaves: big, uncovered and two-level
 * chunks, and a bin another thread holds.  No written-pages test: the
 * insert of a listed chunk wrote its bin's byte.  A small chunk kept in
 * the big tree because its two-level leaf could not be mapped finds the
 * leaf absent (NULL), or mapped since, and then says so itself
 * (SLOT_OVERFLOW, under the bin's lock); only there does the lock write a
 * page that may not be marked written, which costs a page no lookup
 * reads. */
static __attribute__((noinline)) void remove_general(struct chunk *c)
{
	if (is_big(c, chunk_size(c))) {
		(void)big_chunks_remove(&big, c);
		return;
	}
	size_t bin = memtable_bin(&table, chunk_user(c));
	unsigned char *e = memtable_byte_address(&table, bin);
	if (!e) { /* small, but its leaf could not be mapped */
		(void)big_chunks_remove(&big, c);
		return;
	}
	unsigned first = unlink_locked(c, bin, e, bin_lock(e), chunk_meta, 0);
	if (first == SLOT_OVERFLOW)
		big_chunks_remove(&big, c);
	else if (first != SLOT_NONE)
		lowest_to_front(e, memtable_bin_base(&table, bin), first);
}

/* The common remove, tried once: a small chunk whose bin's lock is free,
 * of a flat table (flat 1: one compare, as in insert_fast) or a two-level
 * one (flat 0).  Returns 0 if it did nothing (remove_general must), else 1,
 * or 2 with the bin still locked when c was the head of more: then *e,
 * *base and *first are lowest_to_front's arguments; or 3 (two-level only)
 * when c was kept in the big tree instead (SLOT_OVERFLOW). */
CHUNK_INLINE int remove_fast(struct chunk *c, size_t size, enum chunk_meta meta, int flat, unsigned char **e,
                             uintptr_t *base, unsigned *first)
{
	uintptr_t user = chunk_user(c);
	if (__builtin_expect(flat ? user >= memtable_hot.flat_limit : !memtable_covers(&table, user), 0) ||
	    __builtin_expect(size > big_threshold, 0))
		return 0;
	size_t bin = memtable_bin(&table, user);
	*e = flat ? table.entries + bin : memtable_byte_address(&table, bin);
	if (!flat && !*e) /* small, but its leaf could not be mapped */
		return 0;
	unsigned head = bin_try_lock(*e);
	if (__builtin_expect(head == BIN_LOCKED, 0))
		return 0;
	*first = unlink_locked(c, bin, *e, head, meta, flat);
	if (__builtin_expect(*first == SLOT_NONE, 1))
		return 1;
	if (!flat && __builtin_expect(*first == SLOT_OVERFLOW, 0))
		return 3;
	*base = memtable_bin_base(&table, bin);
	return 2;
}

static __attribute__((noinline)) struct chunk *lowest_to_front_of(struct chunk *c, unsigned char *e,
                                                                  uintptr_t base, unsigned first)
{
	lowest_to_front(e, base, first);
	return c;
}

static __attribute__((noinline)) struct chunk *remove_general_of(struct chunk *c)
{
	remove_general(c);
	return c;
}

static __attribute__((noinline)) struct chunk *remove_big_of(struct chunk *c)
{
	big_chunks_remove(&big, c);
	return c;
}

static __attribute__((noinline)) struct chunk *remove_other(struct chunk *c, size_t size);

/* remove_fast, then what it leaves, as tail calls returning c (as the
 * header body does, index.h), so that it saves no register.  What the
 * flat table's leaves goes to remove_other (a header chunk: flat is only
 * ever 1 for the header fast path), what the other form's leaves to
 * remove_general. */
CHUNK_INLINE struct chunk *remove_in(struct chunk *c, size_t size, enum chunk_meta meta, int flat)
{
	unsigned char *e;
	uintptr_t base;
	unsigned first;
	int done = remove_fast(c, size, meta, flat, &e, &base, &first);
	if (__builtin_expect(done == 2, 0))
		return lowest_to_front_of(c, e, base, first);
	if (__builtin_expect(!done, 0))
		return flat ? remove_other(c, size) : remove_general_of(c);
	if (!flat && __builtin_expect(done == 3, 0))
		return remove_big_of(c);
	return c;
}

/* Every header remove that the flat table's remove_fast leaves: the form
 * for either layout (a two-level table's common case), then
 * remove_general. */
static __attribute__((noinline)) struct chunk *remove_other(struct chunk *c, size_t size)
{
	return remove_in(c, size, META_HEADER, 0);
}

/* The flat table's remove of a header chunk. */
CHUNK_INLINE struct chunk *remove_header_flat(struct chunk *c, size_t size)
{
	return remove_in(c, size, META_HEADER, 1);
}

/* The trailer's, apart (insert_trailer), in the form for either layout. */
static __attribute__((noinline)) void remove_trailer(struct chunk *c)
{
	(void)remove_in(c, chunk_size_in(c, META_TRAILER), META_TRAILER, 0);
}

void memtable_index_remove(struct chunk *c)
{
	if (chunk_meta == META_SIDE) {
		if (memtable_index_remove_side(c))
			chunk_side_told(); /* else CHUNK_SIZE_NONE stays: not ours */
		return;
	}
	if (__builtin_expect(!chunk_likely_header(), 0))
		return remove_trailer(c);
	(void)remove_header_flat(c, chunk_size_in(c, META_HEADER));
}

/* The hooks' header fast path runs under the header placement alone, so it
 * calls these with the size it has, and skips the test above and the
 * header's load (index.h, INDEX_HEADER_BODIES).  Whatever needs a call
 * goes out of line as a tail call, so that the common path saves no
 * register. */
void memtable_index_insert_header(struct chunk *c, size_t size);
struct chunk *memtable_index_remove_header(struct chunk *c, size_t size);

void memtable_index_insert_header(struct chunk *c, size_t size)
{
	if (__builtin_expect(!insert_fast(c, size, META_HEADER, 1), 0))
		insert_other(c, size);
}

struct chunk *memtable_index_remove_header(struct chunk *c, size_t size)
{
	return remove_header_flat(c, size);
}

/* No chunk of the bin starts at or below addr (the bin is empty, or all its
 * chunks lie above addr): look further down. */
#define BIN_BELOW (INDEX_FOUND + 1)

/* The answer of a bin locked by the caller (e held head, not SLOT_NONE;
 * h is chunk_at(base, head), computed by the caller, which may have had it
 * before the lock): the chunk of its list with the highest user pointer
 * <= addr, copied out if it contains addr (INDEX_FOUND), INDEX_NONE if it
 * does not (then no chunk further down can reach addr either), or
 * BIN_BELOW if every chunk lies above addr (the head changed since the
 * caller read the byte).  Unlocks the bin. */
CHUNK_INLINE int bin_walk_locked(unsigned char *e, uintptr_t base, unsigned head, const struct chunk *h,
                                 uintptr_t addr, struct chunk_info *out, int header_unnoted)
{
	/* The head is the bin's lowest chunk: the answer unless a later chunk
	 * starts at or below addr too.  Most bins hold one chunk, and a
	 * predicted branch lets the head's header be read before the list's
	 * next link is (a select measured 5% slower at 10^3 chunks). */
	const struct chunk *best = h;
	uint64_t steps = 1;
	enum chunk_meta meta = header_unnoted ? META_HEADER : chunk_meta;
	for (unsigned s = next_slot(best, meta); __builtin_expect(s != SLOT_NONE, 0); steps++) {
		const struct chunk *c = chunk_at(base, s);
		if (chunk_user(c) <= addr && chunk_user(c) > chunk_user(best))
			best = c;
		s = next_slot(c, meta);
	}
	if (__builtin_expect(steps > 1, 0)) { /* the head's read the caller counts */
		INDEX_STAT_ADD(counters.list_steps, steps - 1);
		INDEX_STAT_MAX(counters.longest_list_walked, steps);
	}
	int answer;
	if (chunk_user(best) > addr)
		answer = BIN_BELOW; /* all above addr: the head changed */
	else if (header_unnoted)
		answer = addr - chunk_user(best) < chunk_size_in(best, META_HEADER)
		                 ? chunk_info_copy_header_unnoted(best, out)
		                 : INDEX_NONE;
	else
		answer = chunk_contains(best, addr) ? chunk_info_copy(best, out) : INDEX_NONE;
	bin_unlock(e, head);
	return answer;
}

/* Bin's answer for addr: bin_walk_locked's, or BIN_BELOW if the bin is
 * empty, or INDEX_UNKNOWN.  The backward scan found bin's byte nonzero, so
 * its page of the table was written: its address needs no summary test. */
static int bin_answer(size_t bin, uintptr_t addr, struct chunk_info *out)
{
	unsigned char *e = memtable_entry_address(&table, bin);
	if (!e || !__atomic_load_n(e, __ATOMIC_RELAXED))
		return BIN_BELOW; /* emptied since the scan: never lock an empty bin */
	unsigned head;
	if (bin_lock_for_lookup(e, &head))
		return INDEX_UNKNOWN;
	if (head == SLOT_NONE) {
		bin_unlock(e, head);
		return BIN_BELOW;
	}
	uintptr_t base = memtable_bin_base(&table, bin);
	INDEX_STAT_ADD(counters.list_steps, 1);
	return bin_walk_locked(e, base, head, chunk_at(base, head), addr, out, 0);
}

/* The nearest nonzero bins at or below addr's, walked until one answers.
 * One scan covers addr's own bin and the bins below it: most lookups test
 * the written-pages summary once and read one word of the table.  addr may
 * lie above the covered range while a small chunk starting just below the
 * limit reaches it: the scan then starts at the last bin.  A small chunk
 * covering addr starts above addr - max_small, which bounds the scan. */
static int small_lookup(uintptr_t addr, size_t max_small, struct chunk_info *out)
{
	/* addr's own bin counts only if its head, its lowest chunk, starts at
	 * or below addr (or it is locked, BIN_LOCKED: then the walk waits and
	 * sees): the
	 * byte tells, so a bin whose chunks all lie above addr costs no header
	 * read.  Its byte, read once unlocked, was the lowest slot then, and a
	 * chunk live throughout the lookup was on the list then. */
	unsigned own_max = memtable_covers(&table, addr) ? slot_of(addr) : UINT8_MAX;
	size_t top = memtable_bin(&table, memtable_covers(&table, addr) ? addr : table.limit - 1);
	size_t lowest = memtable_bin(&table, addr > max_small ? addr - max_small : 0);
	size_t found = memtable_last_nonzero_byte_upto(&table, top, own_max, lowest);
	for (;;) {
		uint64_t scanned = top + 1 - (found == SIZE_MAX ? lowest : found);
		INDEX_STAT_ADD(counters.bins_scanned, scanned);
		INDEX_STAT_MAX(counters.longest_backward_scan, scanned);
		if (found == SIZE_MAX)
			return INDEX_NONE;
		int answer = bin_answer(found, addr, out);
		if (answer != BIN_BELOW) /* below: emptied meanwhile, or own bin changed */
			return answer;
		top = found - 1;
		found = memtable_last_nonzero_byte(&table, found, lowest);
	}
}

/* The near lookup: no chunk of the eight bins ending at addr's (the one
 * table word memtable_scan_near reads) starts at or below addr, or the
 * fast path could not take them: small_lookup decides. */
#define LOOK_FURTHER (INDEX_FOUND + 2)

/* The eight bins ending at bin, which the near lookups read in one word
 * (of the table, or of the head entries), lie on one table page, and that
 * page was written: reading them commits nothing (bins 0..6 of a page
 * would reach into the page below). */
static inline int near_bins_readable(size_t bin)
{
	return __builtin_expect((bin & (MEMTABLE_PAGE_BYTES - 1)) >= 7, 1) &&
	       memtable_page_written(&table, bin >> MEMTABLE_PAGE_SHIFT);
}

/* The common case of a lookup, on the bins of one table word: addr's bin
 * and the seven below it (512 bytes of heap at the default shift).  Most
 * hits find their chunk there: its start is the highest nonzero byte of
 * the word (addr's own byte counted only if its head starts at or below
 * addr, as in small_lookup), and that byte, the head's slot, gives the
 * head's address straight away: the header is prefetched before the bin's
 * lock is taken and read after it without waiting for the exchange's
 * result, which only confirms the slot (a different head is walked as
 * usual).  The lock is tried, never waited for, so this path is safe in a
 * signal handler without asking (index_lookup_may_wait); a busy bin, a
 * word with no candidate, a page of the table never written, a word that
 * would cross into the page below (bins 0..6 of a page) or the head
 * gone from below addr meanwhile all go to small_lookup: LOOK_FURTHER.
 * No lowest-bin bound is needed: a chunk found more than max_small_size
 * below addr simply does not contain it, and then none further down does. */
CHUNK_INLINE int near_lookup(uintptr_t addr, struct chunk_info *out, int header_unnoted)
{
	chunk_prefetch_header_guess(addr); /* before the table is read */
	size_t bin = memtable_bin(&table, addr);
	if (!near_bins_readable(bin))
		return LOOK_FURTHER;
	unsigned char *e = memtable_byte_address(&table, bin);
	if (__builtin_expect(!e, 0))
		return LOOK_FURTHER;
	uint64_t word = memtable_scan_near(e, slot_of(addr));
	if (__builtin_expect(!word, 0))
		return LOOK_FURTHER;
	unsigned top_bit = (unsigned)(63 - __builtin_clzll(word)) & ~7u;
	unsigned seen = (unsigned)(word >> top_bit); /* the bytes above it are zero */
	if (__builtin_expect(seen == BIN_LOCKED, 0))
		return LOOK_FURTHER;
	size_t below = 7 - top_bit / 8; /* the found bin is addr's bin - below */
	e -= below;
	uintptr_t base = memtable_bin_base(&table, bin - below);
	const struct chunk *h = chunk_at(base, seen);
	__builtin_prefetch(h); /* a hint, not a read: h may be freed before the lock */
	unsigned head = bin_try_lock(e);
	if (__builtin_expect(head == BIN_LOCKED, 0))
		return LOOK_FURTHER;
	if (__builtin_expect(head != seen, 0)) { /* changed since the load: the head the lock saw */
		if (head == SLOT_NONE) {
			bin_unlock(e, head);
			return LOOK_FURTHER;
		}
		h = chunk_at(base, head);
	}
	int answer = bin_walk_locked(e, base, head, h, addr, out, header_unnoted);
	if (__builtin_expect(answer == BIN_BELOW, 0)) { /* counted apart: near[] counts answers */
		INDEX_STAT_ADD(counters.bins_scanned, below + 1);
		INDEX_STAT_MAX(counters.longest_backward_scan, below + 1);
		INDEX_STAT_ADD(counters.list_steps, 1);
		return LOOK_FURTHER;
	}
	INDEX_STAT_ADD(counters.near[below], 1);
	return answer;
}

/* Everything the near lookup leaves: apart, so that the common path saves
 * no registers for it. */
static __attribute__((noinline)) int lookup_further(uintptr_t addr, struct chunk_info *out)
{
	INDEX_STAT_ADD(counters.further_lookups, 1);
	size_t max_small = __atomic_load_n(&memtable_hot.max_small_size, __ATOMIC_RELAXED);
	int answer = INDEX_NONE;
	if (memtable_covers(&table, addr) || memtable_covers(&table, addr - max_small))
		answer = small_lookup(addr, max_small, out);
	return big_chunks_lookup_after(&big, answer, addr, out);
}

/* head_lookup found no entry in its eight bins: the scan below them. */
#define HEAD_SCAN (INDEX_FOUND + 3)

/* The lookup from head entries (header placement, no site wanted,
 * memtable_hot.heads set): the entries of addr's bin and the seven below
 * it, the near lookup's bins, in two loads of index memory; the highest
 * nonzero one (addr's own only if its slot is at most addr's, as in
 * near_lookup) is the nearest bin holding a chunk that starts at or below
 * addr.  If that head is alone with its size in the entry, the answer is
 * that chunk if it contains addr, else none (no chunk further down reaches
 * past a live one): no header read, no lock, no locked instruction.  What
 * it leaves: a head of more or of a big size (LOOK_FURTHER: near_lookup,
 * which walks the list), no entry in the eight bins (HEAD_SCAN: the scan
 * below them, lookup_further), and, like near_lookup, a page never written
 * or bins 0..6 of a page, whose eight bins would reach into the page below
 * (LOOK_FURTHER). */
static inline int head_lookup(const uint16_t *heads, uintptr_t addr, struct chunk_info *out)
{
	size_t bin = memtable_bin(&table, addr);
	if (!near_bins_readable(bin))
		return LOOK_FURTHER;
	uint64_t high = memtable_load_entries(heads + bin - 3, 2), low = memtable_load_entries(heads + bin - 7, 2);
	/* addr's own entry counts only if its head starts at or below addr */
	unsigned own_slot = (unsigned)(high >> 48) & ((1u << HEAD_SLOT_BITS) - 1);
	high &= own_slot > slot_of(addr) ? ~UINT64_C(0) >> 16 : ~UINT64_C(0);
	uint64_t in_high = (uint64_t)0 - (high != 0); /* a select, as memtable_scan_step */
	uint64_t word = (high & in_high) | (low & ~in_high);
	if (__builtin_expect(!word, 0))
		return HEAD_SCAN;
	unsigned top_bit = (unsigned)(63 - __builtin_clzll(word)) & ~15u;
	unsigned entry = (unsigned)(word >> top_bit) & 0xffffu;
	size_t size = entry >> HEAD_SLOT_BITS;
	if (__builtin_expect(!size, 0))
		return LOOK_FURTHER;
	size_t below = 3 - top_bit / 16 + (size_t)(4 & ~in_high); /* the found bin is addr's - below */
	uintptr_t base = memtable_bin_base(&table, bin - below) +
	                 ((uintptr_t)((entry & ((1u << HEAD_SLOT_BITS) - 1)) - 1) << 4);
	INDEX_STAT_ADD(counters.head_answers, 1);
	if (addr - base >= size)
		return INDEX_NONE;
	out->base = base;
	out->size = size;
	out->site = 0; /* not noted: no_site (index.h) */
	return INDEX_FOUND;
}

/* Every lookup the common one below does not take: another placement
 * than header, or a lookup cache fill running on this thread (which the
 * answer must note, index.h), or addr not covered.  Side goes to
 * mask_lookup straight from there, not through this function: its frame,
 * set up for the list form before any test, was 19 of a side lookup's
 * instructions. */
static int mask_lookup(uintptr_t addr, struct chunk_info *out);

static __attribute__((noinline)) int lookup_general(uintptr_t addr, struct chunk_info *out)
{
	if (memtable_covers(&table, addr)) {
		int answer = near_lookup(addr, out, 0);
		if (answer != LOOK_FURTHER)
			return big_chunks_lookup_after(&big, answer, addr, out);
	}
	return lookup_further(addr, out);
}

/* The common lookup: the near lookup compiled for the header placement,
 * with no lookup cache fill to note, and no call but tail calls, so that
 * gcc pushes three registers, and only past the table's summary tests: the
 * same body with a call of malloc_usable_size (trailer) and one of
 * lookup_cache_note_fill on its rare paths pushed six and made a frame on
 * every lookup (callgrind: 167 instructions per hit before, 140 after). */
int memtable_index_lookup(uintptr_t addr, struct chunk_info *out)
{
	if (__builtin_expect(!chunk_likely_header() || thread_self()->lookup_filling != 0 ||
	                     !memtable_covers(&table, addr), 0))
		return chunk_meta == META_SIDE ? mask_lookup(addr, out) : lookup_general(addr, out);
	const uint16_t *heads = memtable_hot.heads;
	if (heads && out->no_site) {
		int answer = head_lookup(heads, addr, out);
		if (__builtin_expect(answer == INDEX_FOUND, 1))
			return answer;
		if (answer == INDEX_NONE)
			return big_chunks_lookup_after(&big, answer, addr, out);
		if (answer == HEAD_SCAN)
			return lookup_further(addr, out);
	}
	int answer = near_lookup(addr, out, 1);
	if (__builtin_expect(answer != LOOK_FURTHER, 1))
		return big_chunks_lookup_after(&big, answer, addr, out);
	return lookup_further(addr, out);
}

/* --- the start masks: the side placement -------------------------------------
 * Under side the chunk carries nothing (hooks/chunk.h), so there is no room
 * for list links, nor a header to read a size from.  But at a shift of at
 * most 6 a bin has at most 4 slots (user pointers are 16-byte aligned), so
 * its list degenerates to a set of at most 4 starts: the bin's table byte
 * holds them as a mask, bit i set iff a live chunk's user pointer is the
 * bin's base + 16 i (MASK_STARTS), and one lock bit (MASK_LOCK).  No
 * links, no bytes in the chunk: the table is the whole index of small
 * chunks.  Big and uncovered chunks, and chunks whose two-level leaf could
 * not be mapped, go to the big-chunk tree as in the list form; so do
 * chunks whose user pointer is not 16-byte aligned, which under side is
 * the allocator's own: jemalloc aligns its 8-byte class to 8 only, and two
 * such chunks would share a slot.
 *
 *  - insert: one atomic OR of the start bit, never waiting: a lookup in
 *    progress is not harmed by a new chunk appearing.  The written-pages
 *    summary is marked before the bit is set, as in the list form, so a
 *    lookup reads only pages that were written;
 *  - remove: a compare-and-swap clearing the bit, waiting while the lock
 *    bit is set, so that a lookup holding the bin never sees its chunk
 *    freed under it.  A bit already clear (and no entry in the big tree)
 *    means the pointer was never a chunk of ours: remove leaves
 *    CHUNK_SIZE_NONE, and the hooks forward it untouched (index.h,
 *    INDEX_SIDE_TELLS);
 *  - lookup: the nearest start bit at or below addr, in addr's own bin
 *    (slots up to addr's) and the bins below: most lookups find it among
 *    the eight bins of one table word (the list form's near lookup; the
 *    highest set bit of the word's start bits is bin and slot at once),
 *    the rest scan on, bounded by max_small_size.  Then the bin's lock
 *    (an atomic OR of the lock bit: the old byte says whether it was free,
 *    and which starts are live now), the nearest start taken from that
 *    byte, its size asked of the allocator (chunk_held_size: the real
 *    malloc_usable_size, on a chunk the lock keeps live), the containment
 *    test, and the unlock, an atomic AND so that inserts' ORs meanwhile
 *    survive.  A live chunk that starts at or below addr and does not
 *    contain it means no chunk further down does either (their usable
 *    bytes end before its start).  No site: the answer is base, the
 *    usable size, and site 0 (index.h).
 *
 * The lookups' backward scan is bounded by max_small_reach (below): under
 * side the size a lookup answers is the usable size, which may pass the
 * requested one by the allocator's slack.
 *
 * The lookup pays a malloc_usable_size (glibc 2.36: 13 instructions, one
 * read of the allocator's chunk header); the list form reads the header it
 * keeps itself.  Like the list form and the bitmap, it prefetches the
 * likely header line before reading the table (chunk_prefetch_header_guess:
 * glibc's size word lies 8 bytes below the start), so that the two misses
 * of a hit overlap when the chunk is small: without it 1.19-1.43x the
 * bitmap's hit ns at 10^3..10^7 under side, with it 0.98-1.05x
 * (workloads/scale/README.md, "The start masks against the bitmap").
 * Callgrind, side, 10^3 chunks, per lookup (hits and misses): 183.0, the
 * bitmap 218.9; it was 225.1 with the near path's answer a call and
 * six registers saved for the scan, and side passing through
 * lookup_general's frame.
 *
 * Cost of the updates (make hook-cost, side: 225.0 instructions per
 * malloc+free pair, +48.0 over noop's 177.0; header 271.4; callgrind on
 * malloc_pairs): the common cases of insert and remove (start_masks.h)
 * are inline in the hooks' side path, outside its fork bracket (index.h,
 * INDEX_SIDE_INLINE), 24.6 instructions for insert (the size compare, one
 * compare of the pointer rotated right by 4 for covered, flat and aligned,
 * the bin, the summary's bit test, the start bit and the locked OR) and
 * 28 for remove (the same tests but the size, the byte's load, the
 * compare-and-swap); the bodies below, memtable_index_insert_side and
 * _remove_side, are those cases and the slow paths, called in the bracket
 * when a common case refuses.  Were called bodies, inside the bracket: 28
 * + 37 and the hooks' side path 79, 286.0 per pair.  Kept though a chunk
 * of ours always lies on a marked page: remove's written-pages test (8
 * instructions), so that a foreign pointer's remove never reads, and so
 * commits, a table page. */
#define WORD_STARTS UINT64_C(0x0f0f0f0f0f0f0f0f)

_Static_assert(CONFIG_SIDE_BIN_SHIFT_MAX - 4 <= 2, "4 start bits at most: the slots of a 64-byte bin");

static inline unsigned start_bit(uintptr_t user)
{
	return 1u << ((unsigned)(user >> 4) & memtable_hot.slot_mask);
}

/* The start bits of addr's own bin that count for it: slots up to addr's. */
static inline unsigned starts_upto(uintptr_t addr)
{
	return (start_bit(addr) << 1) - 1;
}

/* Clear bit of e, waiting while a lookup holds the bin: 1, or 0 if bit was
 * clear (not a chunk of this bin).  Acquire: the free that follows comes
 * after the unlock of any lookup that held the bin. */
static __attribute__((noinline)) int mask_clear_waiting(unsigned char *e, unsigned bit)
{
	unsigned spins = 0;
	unsigned char seen = __atomic_load_n(e, __ATOMIC_RELAXED);
	while (seen & bit) {
		if (seen & MASK_LOCK) {
			spin_wait(&spins);
			seen = __atomic_load_n(e, __ATOMIC_RELAXED);
		} else if (__atomic_compare_exchange_n(e, &seen, (unsigned char)(seen & ~bit), 1,
		                                       __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
			LOCK_ANNOTATE_HAPPENS_AFTER(e);
			return 1;
		}
	}
	return 0;
}

CHUNK_INLINE int mask_clear(unsigned char *e, unsigned bit)
{
	return mask_try_clear(e, bit) || mask_clear_waiting(e, bit);
}

/* How far above its start a byte of a small chunk may lie under side: the
 * largest usable size of a small chunk (asked of the allocator whenever a
 * chunk sets a new largest requested size, and for every chunk of the
 * hooks' general path: memalign, calloc, realloc, whose usable size may
 * exceed what its size class gives) plus INDEX_USABLE_SLACK.  The
 * lookups' scan is bounded by it, as the list form's by max_small_size. */
static size_t max_small_reach; /* why the slack suffices: index.h, index_raise_reach */

/* Every insert but the common one: a page of the table not yet marked
 * written, a two-level table, a chunk larger than any small one so far,
 * and every chunk of the hooks' general path (plain 0); big, uncovered
 * and misaligned chunks, and those whose usable size is big, go to the
 * big tree. */
static __attribute__((noinline)) void mask_insert_slow(struct chunk *c, size_t size)
{
	uintptr_t user = chunk_user(c);
	size_t usable;
	if (is_big(c, size) || user % CHUNK_ALIGN || (usable = chunk_held_size(c)) > big_threshold) {
		if (!memtable_covers(&table, user))
			__atomic_fetch_add(&counters.uncovered_inserts, 1, __ATOMIC_RELAXED);
		big_chunks_insert(&big, c); /* on failure: unindexed, never corrupt */
		return;
	}
	size_t bin = memtable_bin(&table, user);
	unsigned char *e = entry_for_write(bin); /* marks the page written */
	if (!e) { /* no memory for a two-level leaf */
		__atomic_fetch_add(&counters.leaf_failures, 1, __ATOMIC_RELAXED);
		big_chunks_insert(&big, c);
		return;
	}
	/* Before c can be found: a lookup reaching back for c reads them first. */
	index_raise_reach(&max_small_reach, usable);
	index_raise_bound(&memtable_hot.max_small_size, size);
	mask_set(e, start_bit(user));
}

/* The insert of a plain malloc of size bytes under side (index.h,
 * INDEX_SIDE_BODIES): the common case (start_masks.h: one compare with
 * max_small_size, one for "covered, flat and aligned", one bit test of the
 * written-pages summary, and the OR), else the slow path.  The hooks call
 * it, in the fork bracket, when their inline copy of the common case
 * failed (INDEX_SIDE_INLINE). */
void memtable_index_insert_side(struct chunk *c, size_t size);
void memtable_index_insert_side(struct chunk *c, size_t size)
{
	if (__builtin_expect(!memtable_index_side_insert_fast(chunk_user(c), size), 0))
		mask_insert_slow(c, size);
}

/* Every other insert under side (the hooks' general path, in-process
 * drivers): its usable size is asked, whatever the allocation was. */
static void mask_insert(struct chunk *c)
{
	mask_insert_slow(c, chunk_pending.size); /* under side, during insert (chunk.h) */
}

/* Every remove the common case leaves: a two-level table, a page never
 * marked (a foreign pointer), a bit not set (big, foreign), a bin a lookup
 * holds (mask_clear waits for it) or whose byte changed meanwhile: 1 if c
 * was a chunk of the index, else 0. */
static __attribute__((noinline)) int mask_remove_slow(struct chunk *c)
{
	uintptr_t user = chunk_user(c);
	size_t bin = memtable_bin(&table, user);
	unsigned char *e;
	return (memtable_covers(&table, user) && !(user % CHUNK_ALIGN) &&
	        memtable_page_written(&table, bin >> MEMTABLE_PAGE_SHIFT) &&
	        (e = memtable_byte_address(&table, bin)) && mask_clear(e, start_bit(user))) ||
	       big_chunks_remove(&big, c);
}

/* The remove under side: the hooks' side fast path calls it directly
 * (INDEX_SIDE_BODIES), memtable_index_remove for the rest.  1 if c was a
 * chunk of the index, 0 if not (index.h).  One bit test of the
 * written-pages summary: a chunk of ours lies on a marked page.  A foreign
 * pointer far from the heap may read (and so commit) a page of the
 * summary never written, at most one page of 4 KiB per 8 GiB of address
 * space it lands in; removes are not lookups. */
int memtable_index_remove_side(struct chunk *c);
int memtable_index_remove_side(struct chunk *c)
{
	return __builtin_expect(memtable_index_side_remove_fast(chunk_user(c)), 1) || mask_remove_slow(c);
}

/* The lock of a bin found held, for a lookup that may wait: waits for
 * the holder and takes the lock bit, *old the byte as the taking OR saw
 * it; 0 if this lookup may not wait (a signal handler that may have
 * interrupted the holder), having taken nothing.  Out of line: a held bin
 * is rare, and the near lookup never waits. */
static __attribute__((noinline)) int mask_lock_waiting(unsigned char *e, unsigned *old)
{
	unsigned spins = 0;
	do {
		if (!index_lookup_may_wait())
			return 0;
		while (__atomic_load_n(e, __ATOMIC_RELAXED) & MASK_LOCK)
			spin_wait(&spins);
	} while ((*old = __atomic_fetch_or(e, (unsigned char)MASK_LOCK, __ATOMIC_ACQUIRE)) & MASK_LOCK);
	return 1;
}

/* The answer of bin, whose byte is e, for addr, counting the starts in
 * counted only: its highest live start's chunk if it contains addr
 * (INDEX_FOUND), INDEX_NONE if it does not, BIN_BELOW if no counted start
 * is live; INDEX_UNKNOWN, or LOOK_FURTHER when near, if the bin is locked
 * and this lookup may not wait (the near lookup never waits).  Inline, so
 * that the near lookup, its common caller, has no call and no frame of
 * its own to pay for besides malloc_usable_size's. */
static inline __attribute__((always_inline)) int mask_bin_answer(unsigned char *e, size_t bin, uintptr_t addr,
                                                                 unsigned counted, int near,
                                                                 struct chunk_info *out)
{
	unsigned old = __atomic_fetch_or(e, (unsigned char)MASK_LOCK, __ATOMIC_ACQUIRE);
	if (__builtin_expect(old & MASK_LOCK, 0) && (near || !mask_lock_waiting(e, &old)))
		return near ? LOOK_FURTHER : INDEX_UNKNOWN;
	LOCK_ANNOTATE_HAPPENS_AFTER(e);
	unsigned starts = old & counted, answer = BIN_BELOW;
	if (starts) {
		uintptr_t start = memtable_bin_base(&table, bin) + ((uintptr_t)(31 - __builtin_clz(starts)) << 4);
		const struct chunk *c = chunk_of_user((void *)start);
		size_t size = chunk_held_size(c); /* live: its remove waits for the unlock */
		answer = INDEX_NONE;
		if (addr - start < size) {
			out->base = start;
			out->size = size;
			out->site = 0;
			answer = INDEX_FOUND;
		}
	}
	LOCK_ANNOTATE_HAPPENS_BEFORE(e); /* the lookup's reads, before the remove's free */
	__atomic_fetch_and(e, (unsigned char)~MASK_LOCK, __ATOMIC_RELEASE);
	return (int)answer;
}

/* The scan below addr's near word, bounded by max_small (max_small_reach):
 * addr's own bin
 * first (if covered), then the nearest nonzero bytes below, until one
 * answers (a byte may be nonzero with no start: a lookup's lock bit). */
static int mask_small_lookup(uintptr_t addr, size_t max_small, struct chunk_info *out)
{
	size_t lowest = memtable_bin(&table, addr > max_small ? addr - max_small : 0), top;
	if (memtable_covers(&table, addr)) {
		top = memtable_bin(&table, addr);
		const unsigned char *own = memtable_entry(&table, top); /* never commits */
		if (__atomic_load_n(own, __ATOMIC_RELAXED) & starts_upto(addr)) {
			int answer = mask_bin_answer(memtable_byte_address(&table, top), top, addr,
			                             starts_upto(addr), 0, out);
			if (answer != BIN_BELOW)
				return answer;
		}
	} else {
		top = memtable_bin(&table, table.limit - 1) + 1;
	}
	size_t found = memtable_last_nonzero_byte(&table, top, lowest);
	INDEX_STAT_ADD(counters.bins_scanned, top + 1 - (found == SIZE_MAX ? lowest : found));
	while (found != SIZE_MAX) {
		INDEX_STAT_ADD(counters.list_steps, 1);
		int answer = mask_bin_answer(memtable_byte_address(&table, found), found, addr, MASK_STARTS, 0, out);
		if (answer != BIN_BELOW)
			return answer;
		size_t next = memtable_last_nonzero_byte(&table, found, lowest);
		INDEX_STAT_ADD(counters.bins_scanned, found - (next == SIZE_MAX ? lowest : next));
		found = next;
	}
	return INDEX_NONE;
}

/* The near lookup of the start masks: the eight bins ending at addr's in
 * one table word, as near_lookup for the lists; LOOK_FURTHER for what it
 * leaves (no start there, a page edge or a page never written, a busy
 * bin, a start gone meanwhile). */
static int mask_near_lookup(uintptr_t addr, struct chunk_info *out)
{
	chunk_prefetch_header_guess(addr); /* before the table is read: the allocator's size word */
	size_t bin = memtable_bin(&table, addr);
	if (!memtable_covers(&table, addr) || !near_bins_readable(bin))
		return LOOK_FURTHER;
	unsigned char *e = memtable_byte_address(&table, bin);
	if (!e)
		return LOOK_FURTHER;
	uint64_t word = memtable_load_word(e - 7) & WORD_STARTS;
	word &= ~((uint64_t)(MASK_STARTS & ~starts_upto(addr)) << 56); /* own bin: slots up to addr's */
	if (!word)
		return LOOK_FURTHER;
	unsigned below = 7 - (unsigned)(63 - __builtin_clzll(word)) / 8;
	int answer = mask_bin_answer(e - below, bin - below, addr, below ? MASK_STARTS : starts_upto(addr), 1,
	                             out);
	if (answer == BIN_BELOW)
		return LOOK_FURTHER;
	if (answer != LOOK_FURTHER)
		INDEX_STAT_ADD(counters.near[below], 1);
	return answer;
}

/* What the near lookup leaves: the scan, bounded by max_small_reach.  Out
 * of line, so that the near path keeps no registers for it. */
static __attribute__((noinline)) int mask_lookup_further(uintptr_t addr, struct chunk_info *out)
{
	INDEX_STAT_ADD(counters.further_lookups, 1);
	size_t reach = __atomic_load_n(&max_small_reach, __ATOMIC_RELAXED);
	if (memtable_covers(&table, addr) || memtable_covers(&table, addr - reach))
		return mask_small_lookup(addr, reach, out);
	return INDEX_NONE;
}

static __attribute__((noinline)) int mask_lookup(uintptr_t addr, struct chunk_info *out)
{
	int answer = mask_near_lookup(addr, out);
	if (__builtin_expect(answer == LOOK_FURTHER, 0))
		answer = mask_lookup_further(addr, out);
	return big_chunks_lookup_after(&big, answer, addr, out);
}

void memtable_index_write_stats(struct json_out *out)
{
	size_t resident = memtable_resident_bytes(&table);
	json_u64(out, "links_bytes", 0); /* the bin lists use the header's index bits */
	json_u64(out, "index_bytes", resident + memtable_shadow_resident_bytes(&table) + big_chunks_bytes(&big));
	json_u64(out, "addr_bits", table.addr_bits);
	json_u64(out, "bin_shift", table.shift);
	json_str(out, "table_layout", memtable_is_flat(&table) ? "flat" : "two-level");
	json_u64(out, "table_reserved_bytes", table.reserved_bytes);
	json_u64(out, "table_leaves_mapped", table.leaves_mapped);
	json_u64(out, "leaf_failures", counters.leaf_failures);
	json_u64(out, "table_resident_bytes", resident);
	json_u64(out, "head_entries_resident_bytes", memtable_shadow_resident_bytes(&table));
	json_u64(out, "big_threshold", big_threshold);
	big_chunks_write_stats(&big, out);
	json_u64(out, "uncovered_inserts", counters.uncovered_inserts);
	json_u64(out, "max_small_size", __atomic_load_n(&memtable_hot.max_small_size, __ATOMIC_RELAXED));
	/* The near lookups' part of each figure, from their counts. */
	uint64_t near = 0, near_bins = 0, near_longest = 0;
	for (unsigned b = 0; b < NEAR_BINS; b++) {
		uint64_t n = __atomic_load_n(&counters.near[b], __ATOMIC_RELAXED);
		near += n;
		near_bins += n * (b + 1);
		if (n)
			near_longest = b + 1;
	}
	uint64_t steps = near + counters.list_steps;
	uint64_t longest_list = counters.longest_list_walked;
	if (steps && longest_list < 1)
		longest_list = 1; /* only lists longer than one count themselves */
	json_u64(out, "lookups", near + counters.further_lookups + counters.head_answers);
	json_u64(out, "head_lookups", counters.head_answers); /* answered from head entries */
	json_u64(out, "near_lookups", near); /* answered from one table word */
	json_u64(out, "list_steps", steps);
	json_u64(out, "longest_list_walked", longest_list);
	json_u64(out, "bins_scanned", near_bins + counters.bins_scanned);
	json_u64(out, "longest_backward_scan",
	         near_longest > counters.longest_backward_scan ? near_longest : counters.longest_backward_scan);
}

INDEX_DEFINE_OPS(memtable, 0, INDEX_ANSWERS_LOOKUPS | INDEX_META_HEADER | INDEX_META_TRAILER |
                                  INDEX_META_SIDE | INDEX_SIDE_TELLS | INDEX_SIDE_SMALL_BINS)
