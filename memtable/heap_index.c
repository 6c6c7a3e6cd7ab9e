/* heap_index.c - the memtable heap index: live chunks binned by address.
 *
 * Doug Lea's malloc bins *free* chunks by size; this bins *allocated* chunks
 * by address (S. Kell, "How to make a virtual machine less virtual").  The
 * address space is cut into 2^shift-byte bins; the memtable has one byte per
 * bin; each bin's chunks form a list threaded through their own headers.
 *
 * Invariants (checked by tests/test_memtable.c against a reference):
 *  - a chunk is on the list of the bin holding its user pointer, and only
 *    there ("bin-local" lists, as in liballocs 2012-2016);
 *  - slots: user pointers are 16-byte aligned, so a chunk's position in its
 *    bin is a slot number 1 .. 2^(shift-4); 0 means "none".  The table byte
 *    is the slot of the list head; the chunk's 16 index bits hold the slots
 *    of its next (low byte) and prev (high byte) neighbours.  So a list link
 *    costs no memory beyond the 16-byte header every index has;
 *  - small chunks are at most big_threshold = 256 bins long, so a chunk
 *    covering addr starts at most max_small_size bytes below it: the backward
 *    walk over the table is bounded by max_small_size / binsize entries;
 *  - big chunks (and chunks above the covered address range, or whose
 *    two-level leaf could not be mapped: next slot SLOT_OVERFLOW) live in
 *    big_chunks' B+tree instead (hooks/big_chunks.h).
 */
#include "big_chunks.h"
#include "index.h"
#include "memtable.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

INDEX_DECLARE(memtable)

static struct memtable table;
static size_t bin_bytes, big_threshold;
static size_t max_small_size; /* largest small chunk ever indexed */

/* Big chunks (and chunks above the covered range). */
static struct big_chunks big;

static struct {
	uint64_t lookups, list_steps, bins_scanned;
	uint64_t longest_list_walked, longest_backward_scan;
	uint64_t uncovered_inserts, leaf_failures;
} stat;

#define SLOT_NONE 0u
/* In the next-slot byte of a small chunk kept in the big array because its
 * two-level leaf could not be mapped: no real slot is above 128. */
#define SLOT_OVERFLOW 0xffu

static inline unsigned slot_of(uintptr_t user)
{
	return (unsigned)((user & (bin_bytes - 1)) >> 4) + 1;
}

static inline struct chunk *chunk_at(uintptr_t bin_base, unsigned slot)
{
	return chunk_of_user((void *)(bin_base + ((uintptr_t)(slot - 1) << 4)));
}

static inline unsigned next_slot(const struct chunk *c) { return chunk_links(c) & 0xff; }
static inline unsigned prev_slot(const struct chunk *c) { return chunk_links(c) >> 8; }

static inline void set_slots(struct chunk *c, unsigned next, unsigned prev)
{
	chunk_set_links(c, next | prev << 8);
}

static inline int is_big(const struct chunk *c)
{
	return chunk_size(c) > big_threshold || !memtable_covers(&table, chunk_user(c));
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
	bin_bytes = (size_t)1 << cfg->bin_shift;
	big_threshold = bin_bytes * 256;
	return 0;
}

void memtable_index_insert(struct chunk *c)
{
	if (is_big(c)) {
		if (!memtable_covers(&table, chunk_user(c)))
			stat.uncovered_inserts++;
		big_chunks_insert(&big, c); /* on failure: unindexed, never corrupt */
		return;
	}
	uintptr_t user = chunk_user(c);
	size_t bin = memtable_bin(&table, user);
	unsigned char *head = memtable_entry_for_write(&table, bin);
	if (!head) { /* no memory for a two-level leaf */
		stat.leaf_failures++;
		set_slots(c, SLOT_OVERFLOW, SLOT_NONE);
		big_chunks_insert(&big, c);
		return;
	}
	unsigned slot = slot_of(user);
	if (*head != SLOT_NONE) {
		struct chunk *first = chunk_at(memtable_bin_base(&table, bin), *head);
		set_slots(first, next_slot(first), slot);
	}
	set_slots(c, *head, SLOT_NONE);
	*head = (unsigned char)slot;
	if (chunk_size(c) > max_small_size)
		max_small_size = chunk_size(c);
}

void memtable_index_remove(struct chunk *c)
{
	if (is_big(c) || next_slot(c) == SLOT_OVERFLOW) {
		big_chunks_remove(&big, c);
		return;
	}
	uintptr_t user = chunk_user(c);
	size_t bin = memtable_bin(&table, user);
	uintptr_t base = memtable_bin_base(&table, bin);
	unsigned next = next_slot(c), prev = prev_slot(c);
	if (prev != SLOT_NONE) {
		struct chunk *p = chunk_at(base, prev);
		set_slots(p, next, prev_slot(p));
	} else {
		/* The chunk is listed here: the entry's page was written (and its
		 * leaf exists), so no summary needs updating. */
		*memtable_entry_address(&table, bin) = (unsigned char)next;
	}
	if (next != SLOT_NONE) {
		struct chunk *n = chunk_at(base, next);
		set_slots(n, next_slot(n), prev);
	}
}

/* The chunk of the list starting at slot head of bin with the highest user
 * pointer <= addr, or NULL. */
static struct chunk *bin_predecessor(size_t bin, unsigned head, uintptr_t addr)
{
	uintptr_t base = memtable_bin_base(&table, bin);
	struct chunk *best = NULL;
	uint64_t steps = 0;
	for (unsigned s = head; s != SLOT_NONE;) {
		struct chunk *c = chunk_at(base, s);
		uintptr_t user = chunk_user(c);
		if (user <= addr && (!best || user > chunk_user(best)))
			best = c;
		s = next_slot(c);
		steps++;
	}
	stat.list_steps += steps;
	if (steps > stat.longest_list_walked)
		stat.longest_list_walked = steps;
	return best;
}

static void note_scan(uint64_t scanned)
{
	stat.bins_scanned += scanned;
	if (scanned > stat.longest_backward_scan)
		stat.longest_backward_scan = scanned;
}

/* The nearest listed bin in [lowest, bin) -- in bin's own table page first,
 * which the caller has found written (entries: that page), then below it,
 * where memtable.c skips pages never written -- or SIZE_MAX. */
static size_t nonempty_bin_below(size_t bin, size_t lowest, const unsigned char *entries,
                                 size_t first)
{
	size_t found = SIZE_MAX;
	if (entries) {
		size_t lo = first > lowest ? first : lowest;
		size_t in_page = memtable_last_nonzero_in(entries, lo - first, bin - first);
		if (in_page != SIZE_MAX || lo == lowest) {
			found = in_page == SIZE_MAX ? SIZE_MAX : first + in_page;
			note_scan(bin - (found == SIZE_MAX ? lowest : found));
			return found;
		}
	}
	if (first > lowest) /* bins first .. bin - 1 are empty, or unwritten */
		found = memtable_last_nonzero_byte(&table, first, lowest);
	note_scan(bin - (found == SIZE_MAX ? lowest : found));
	return found;
}

/* addr may lie above the covered range while a small chunk starting just
 * below the limit reaches it: the walk then starts at the last bin.  The
 * summary of written table pages is tested once, for addr's own page; a
 * chunk covering addr is usually listed in addr's bin or a few below it,
 * in the same page. */
static struct chunk *small_lookup(uintptr_t addr)
{
	size_t bin = memtable_bin(&table, memtable_covers(&table, addr) ? addr : table.limit - 1);
	size_t page = memtable_page_of_bin(&table, bin);
	size_t first = memtable_first_bin_of_page(&table, page);
	const unsigned char *entries = memtable_page_entries(&table, page);
	struct chunk *c = NULL;
	if (entries && entries[bin - first] != SLOT_NONE)
		c = bin_predecessor(bin, entries[bin - first], addr);
	if (!c && max_small_size) {
		/* A small chunk covering addr starts above addr - max_small_size. */
		uintptr_t reach = addr > max_small_size ? addr - max_small_size : 0;
		size_t lowest = memtable_bin(&table, reach);
		size_t found = nonempty_bin_below(bin, lowest, entries, first);
		if (found != SIZE_MAX)
			c = bin_predecessor(found, *memtable_entry_address(&table, found), addr);
	}
	return c && chunk_contains(c, addr) ? c : NULL;
}

struct chunk *memtable_index_lookup(uintptr_t addr)
{
	stat.lookups++;
	struct chunk *c = NULL;
	if (memtable_covers(&table, addr) || memtable_covers(&table, addr - max_small_size))
		c = small_lookup(addr);
	/* A big chunk may start between the small predecessor and addr. */
	if (!c && big.count)
		c = big_chunks_lookup(&big, addr);
	return c;
}

void memtable_index_write_stats(struct json_out *out)
{
	json_u64(out, "addr_bits", table.addr_bits);
	json_u64(out, "bin_shift", table.shift);
	json_str(out, "table_layout", memtable_is_flat(&table) ? "flat" : "two-level");
	json_u64(out, "table_reserved_bytes", table.reserved_bytes);
	json_u64(out, "table_leaves_mapped", table.leaves_mapped);
	json_u64(out, "leaf_failures", stat.leaf_failures);
	json_u64(out, "table_resident_bytes", memtable_resident_bytes(&table));
	json_u64(out, "big_threshold", big_threshold);
	big_chunks_write_stats(&big, out);
	json_u64(out, "uncovered_inserts", stat.uncovered_inserts);
	json_u64(out, "max_small_size", max_small_size);
	json_u64(out, "lookups", stat.lookups);
	json_u64(out, "list_steps", stat.list_steps);
	json_u64(out, "longest_list_walked", stat.longest_list_walked);
	json_u64(out, "bins_scanned", stat.bins_scanned);
	json_u64(out, "longest_backward_scan", stat.longest_backward_scan);
}

INDEX_DEFINE_OPS(memtable, 0)
