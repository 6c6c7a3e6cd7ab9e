/* memtable.c - reserving the table, the written-pages summary, and
 * measuring what it all costs. */
#include "memtable.h"

#include "lock.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

const unsigned char memtable_zero_entry[16];

/* An anonymous, lazily committed mapping, NULL if refused.  No transparent
 * huge pages: one written entry would commit 2 MiB of table instead of
 * 4 KiB.  The flag this sets also keeps the kernel from merging the table
 * with a neighbouring anonymous mapping (jemalloc maps beside it), so smaps
 * still shows the table alone. */
static void *reserve(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	int saved = errno; /* a refused madvise changes nothing that matters */
	madvise(p, bytes, MADV_NOHUGEPAGE);
	errno = saved;
	return p;
}

/* Leaves of 2^20 entries or more, and a directory of at most 2^20 of them
 * (8 MiB): a 47-bit space at shift 6 gets 2 MiB leaves, a 57-bit one 2 GiB. */
static unsigned leaf_bits_for(unsigned entry_bits)
{
	return entry_bits > 40 ? entry_bits - 20 : 20 < entry_bits ? 20 : entry_bits;
}

static size_t directory_bytes(const struct memtable *t)
{
	return ((size_t)1 << (t->addr_bits - t->shift - t->leaf_bits)) * sizeof *t->leaves;
}

static size_t leaf_bytes(const struct memtable *t)
{
	return ((size_t)1 << t->leaf_bits) * t->entry_size;
}

/* --- the written-pages summary ------------------------------------------------ */

/* Bytes of a bitmap with one bit per page of a region of `bytes`, whole pages. */
static size_t summary_bytes(size_t bytes)
{
	size_t bits = (bytes + MEMTABLE_PAGE_BYTES - 1) >> MEMTABLE_PAGE_SHIFT;
	return ((bits + 7) / 8 + MEMTABLE_PAGE_BYTES - 1) & ~(MEMTABLE_PAGE_BYTES - 1);
}

static int written_init(struct memtable *t, size_t table_bytes)
{
	struct memtable_written *w = &t->written;
	w->bytes[0] = summary_bytes(table_bytes);
	w->bytes[1] = summary_bytes(w->bytes[0]);
	if ((w->bytes[1] >> MEMTABLE_PAGE_SHIFT) > MEMTABLE_TOP_WORDS * 64u)
		return EINVAL;
	w->pages[0] = reserve(w->bytes[0]);
	w->pages[1] = w->pages[0] ? reserve(w->bytes[1]) : NULL;
	if (!w->pages[1]) {
		int e = errno ? errno : ENOMEM;
		if (w->pages[0])
			munmap(w->pages[0], w->bytes[0]);
		return e;
	}
	return 0;
}

/* Sets bit i; 1 if this call set it. */
static int set_bit(uint64_t *bits, size_t i)
{
	uint64_t mask = UINT64_C(1) << (i & 63);
	if (__atomic_load_n(&bits[i >> 6], __ATOMIC_RELAXED) & mask)
		return 0;
	return !(__atomic_fetch_or(&bits[i >> 6], mask, __ATOMIC_RELEASE) & mask);
}

/* Writes (commits) the shadow pages of the bins of table page `page`,
 * before its bit is set, so that a reader that sees the bit may read them.
 * Invariant: a bit of pages[0] is set only after its shadow pages were
 * written, by whichever writer set it; a writer that finds it set (and
 * skips this) finds them written.  The write is a read-modify-write that
 * adds nothing: another writer may be storing an entry there already. */
static void touch_shadow(struct memtable *t, size_t page)
{
	size_t per_page = t->shadow_entry_size >> t->entry_shift; /* shadow pages per table page */
	unsigned char *first = t->shadow + page * per_page * MEMTABLE_PAGE_BYTES;
	for (size_t i = 0; i < per_page; i++)
		(void)__atomic_fetch_or(first + i * MEMTABLE_PAGE_BYTES, (unsigned char)0, __ATOMIC_RELAXED);
}

void memtable_note_written_slow(struct memtable *t, size_t page)
{
	struct memtable_written *w = &t->written;
	size_t in_pages0 = page >> MEMTABLE_BITS_SHIFT, in_pages1 = in_pages0 >> MEMTABLE_BITS_SHIFT;
	/* Top down: whoever sees a bit set may read the page it guards. */
	if (set_bit(w->top, in_pages1))
		__atomic_fetch_add(&w->count[2], 1, __ATOMIC_RELAXED);
	if (set_bit(w->pages[1], in_pages0))
		__atomic_fetch_add(&w->count[1], 1, __ATOMIC_RELAXED);
	if (t->shadow)
		touch_shadow(t, page);
	if (set_bit(w->pages[0], page))
		__atomic_fetch_add(&w->count[0], 1, __ATOMIC_RELAXED);
}

/* --- the table ------------------------------------------------------------------- */

int memtable_init(struct memtable *t, unsigned addr_bits, unsigned shift,
                  size_t entry_size, enum memtable_layout layout)
{
	memset(t, 0, sizeof *t);
	if (shift >= addr_bits || addr_bits > 63 || entry_size == 0 ||
	    entry_size > sizeof memtable_zero_entry || (entry_size & (entry_size - 1)))
		return EINVAL;
	t->entry_size = entry_size;
	t->entry_shift = (unsigned)__builtin_ctzl(entry_size);
	t->addr_bits = addr_bits;
	t->shift = shift;
	t->limit = (uintptr_t)1 << addr_bits;
	size_t table_bytes = memtable_reserved_bytes(addr_bits, shift, entry_size);
	if (layout != MEMTABLE_TWO_LEVEL) {
		t->entries = reserve(table_bytes);
		if (t->entries)
			t->reserved_bytes = table_bytes;
		else if (layout == MEMTABLE_FLAT)
			return errno ? errno : ENOMEM;
	}
	if (!t->entries) {
		t->leaf_bits = leaf_bits_for(addr_bits - shift);
		t->leaves = reserve(directory_bytes(t));
		if (!t->leaves)
			return errno ? errno : ENOMEM;
		t->reserved_bytes = directory_bytes(t);
		/* Leaves are published by compare-and-swap and read with
		 * acquire loads (memtable_entry_slow_write): tell helgrind and
		 * drd, which take atomics for plain accesses. */
		LOCK_ANNOTATE_BENIGN_RACE(t->leaves, directory_bytes(t), "two-level directory (atomic)");
	}
	int e = written_init(t, table_bytes);
	if (e) {
		memtable_destroy(t);
		return e;
	}
	return 0;
}

/* Called inside malloc: a refused mapping is the caller's to handle (the
 * heap index then keeps the chunk elsewhere), and the allocation succeeds,
 * so errno is left as it was.  Any number of threads may map the same leaf
 * at once: the first compare-and-swap into the directory publishes its
 * leaf, and the others unmap theirs and take the winner's, so writers need
 * no lock.  Readers load the directory slot with acquire: a leaf they see
 * is a whole, zero-filled mapping. */
void *memtable_entry_slow_write(struct memtable *t, size_t bin)
{
	unsigned char **slot = &t->leaves[bin >> t->leaf_bits];
	unsigned char *leaf = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	if (!leaf) {
		int saved = errno;
		unsigned char *mine = reserve(leaf_bytes(t));
		if (!mine) {
			errno = saved;
			return NULL;
		}
		LOCK_ANNOTATE_HAPPENS_BEFORE(slot);
		if (__atomic_compare_exchange_n(slot, &leaf, mine, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			leaf = mine;
			__atomic_fetch_add(&t->leaves_mapped, 1, __ATOMIC_RELAXED);
			__atomic_fetch_add(&t->reserved_bytes, leaf_bytes(t), __ATOMIC_RELAXED);
		} else { /* another thread published first: leaf is its */
			munmap(mine, leaf_bytes(t));
			LOCK_ANNOTATE_HAPPENS_AFTER(slot);
		}
		errno = saved;
	}
	return leaf + ((bin & (((size_t)1 << t->leaf_bits) - 1)) << t->entry_shift);
}

static size_t shadow_bytes(const struct memtable *t)
{
	return memtable_reserved_bytes(t->addr_bits, t->shift, t->shadow_entry_size);
}

int memtable_add_shadow(struct memtable *t, size_t entry_size)
{
	if (!t->entries || t->shadow || t->written.count[0] || entry_size < t->entry_size ||
	    entry_size > MEMTABLE_PAGE_BYTES || (entry_size & (entry_size - 1)))
		return EINVAL;
	t->shadow_entry_size = entry_size;
	t->shadow = reserve(shadow_bytes(t));
	if (!t->shadow) {
		t->shadow_entry_size = 0;
		return errno ? errno : ENOMEM;
	}
	/* Its users read entries with plain loads of several at once and
	 * write them with atomics (heap_index.c, "head entries"): tell
	 * helgrind and drd, which take atomics for plain accesses. */
	LOCK_ANNOTATE_BENIGN_RACE(t->shadow, shadow_bytes(t), "shadow entries (atomic)");
	return 0;
}

void memtable_destroy(struct memtable *t)
{
	size_t table_bytes = memtable_reserved_bytes(t->addr_bits, t->shift, t->entry_size);
	if (t->entries)
		munmap(t->entries, table_bytes);
	if (t->shadow)
		munmap(t->shadow, shadow_bytes(t));
	if (t->leaves) {
		size_t n = directory_bytes(t) / sizeof *t->leaves;
		for (size_t i = 0; i < n && t->leaves_mapped; i++)
			if (t->leaves[i]) {
				munmap(t->leaves[i], leaf_bytes(t));
				t->leaves_mapped--;
			}
		munmap(t->leaves, directory_bytes(t));
	}
	for (int level = 0; level < 2; level++)
		if (t->written.pages[level])
			munmap(t->written.pages[level], t->written.bytes[level]);
	memset(t, 0, sizeof *t);
}

/* How many table pages (a power of two) one unwritten summary bit lets the
 * scan skip: 1 if the page itself is written, else the span of the highest
 * level whose bit is clear. */
static size_t unwritten_span(const struct memtable *t, size_t page)
{
	const struct memtable_written *w = &t->written;
	size_t in_pages0 = page >> MEMTABLE_BITS_SHIFT, in_pages1 = in_pages0 >> MEMTABLE_BITS_SHIFT;
	if (!memtable_bit_is_set(w->top, in_pages1))
		return (size_t)1 << (2 * MEMTABLE_BITS_SHIFT);
	if (!memtable_bit_is_set(w->pages[1], in_pages0))
		return (size_t)1 << MEMTABLE_BITS_SHIFT;
	return !memtable_bit_is_set(w->pages[0], page);
}

size_t memtable_last_nonzero_byte_slow(const struct memtable *t, size_t from, size_t lowest)
{
	/* One table page at a time, from the one holding from - 1 down; pages
	 * (and whole summary pages) never written are skipped unread.  Entries
	 * are bytes here, so a page holds MEMTABLE_PAGE_BYTES of them. */
	while (from > lowest) {
		size_t page = (from - 1) >> MEMTABLE_PAGE_SHIFT;
		size_t skip = unwritten_span(t, page);
		if (skip) {
			size_t start = (page & ~(skip - 1)) << MEMTABLE_PAGE_SHIFT;
			from = start > lowest ? start : lowest;
			continue;
		}
		size_t page_start = page << MEMTABLE_PAGE_SHIFT, lo = page_start > lowest ? page_start : lowest;
		const unsigned char *e = memtable_entry_address(t, page_start);
		if (e) {
			size_t found = memtable_last_nonzero_in(e, lo - page_start, from - page_start);
			if (found != SIZE_MAX)
				return page_start + found;
		}
		from = lo;
	}
	return SIZE_MAX;
}

/* Resident bytes of [p, p + bytes), by mincore in bounded steps (mincore
 * reads page tables, never the pages). */
static size_t resident_of(const void *p, size_t bytes)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), total = 0;
	unsigned char vec[4096];
	for (size_t off = 0; off < bytes; off += page * sizeof vec) {
		size_t len = bytes - off < page * sizeof vec ? bytes - off : page * sizeof vec;
		if (mincore((char *)p + off, len, vec))
			return total;
		for (size_t i = 0; i < (len + page - 1) / page; i++)
			total += (vec[i] & 1) * page;
	}
	return total;
}

size_t memtable_resident_bytes(const struct memtable *t)
{
	const struct memtable_written *w = &t->written;
	size_t pages = __atomic_load_n(&w->count[0], __ATOMIC_RELAXED) +
	               __atomic_load_n(&w->count[1], __ATOMIC_RELAXED) +
	               __atomic_load_n(&w->count[2], __ATOMIC_RELAXED);
	size_t total = pages * MEMTABLE_PAGE_BYTES;
	if (t->leaves) /* the directory: written only where a leaf was mapped */
		total += resident_of(t->leaves, directory_bytes(t));
	return total;
}

size_t memtable_shadow_resident_bytes(const struct memtable *t)
{
	if (!t->shadow) /* else touched with every table page marked */
		return 0;
	return __atomic_load_n(&t->written.count[0], __ATOMIC_RELAXED) * MEMTABLE_PAGE_BYTES *
	       (t->shadow_entry_size >> t->entry_shift);
}
