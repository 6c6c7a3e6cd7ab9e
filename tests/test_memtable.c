/* test_memtable.c - the generic memtable and the memtable heap index, by
 * the cases the design must get right: chunk edges, neighbours, bins, big
 * chunks, frees, and addresses that are not heap at all. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "index_params.h"
#include "inproc.h"
#include "memtable.h"
#include "start_masks.h"

/* --- the generic table ----------------------------------------------------- */

Test(memtable, reserves_two_to_the_width_minus_shift_entries)
{
	struct memtable t;
	cr_assert_eq(memtable_init(&t, 47, 9, 1, MEMTABLE_FLAT), 0);
	cr_assert_eq(t.reserved_bytes, (size_t)1 << 38);
	cr_assert_eq(memtable_reserved_bytes(32, 10, 1), (size_t)1 << 22,
	             "the seed talk: a 32-bit space needs a 2^22-byte index");
	memtable_destroy(&t);
}

/* Is the page holding p mapped (resident, or the shared zero page)?  mincore
 * reads the page tables, not the page, and a read of an untouched page maps
 * one on every kernel: the zero page where there is one, a new page where
 * there is not.  So "not mapped" proves nothing read it, on both kinds. */
static int page_mapped(const void *p)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	unsigned char vec = 0;
	cr_assert_eq(mincore((void *)((uintptr_t)p & ~(page - 1)), page, &vec), 0);
	return vec & 1;
}

static void check_reads_commit_nothing(enum memtable_layout layout)
{
#if defined(__SANITIZE_THREAD__)
	/* TSan shadows every mapping: a 2^39-byte table does not fit its
	 * address space, and mincore there says nothing about our reads. */
	if (layout == MEMTABLE_FLAT)
		cr_skip_test("the flat table under ThreadSanitizer");
#endif
	struct memtable t;
	cr_assert_eq(memtable_init(&t, 47, 9, 2, layout), 0);
	size_t page = (size_t)sysconf(_SC_PAGESIZE), bins = (size_t)1 << 38;
	cr_assert_eq(memtable_resident_bytes(&t), 0, "a new table has committed nothing");
	/* Unwritten entries read zero, scans find nothing, nothing is mapped. */
	uint64_t x = 88172645463325252u;
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t bin = (size_t)(x % bins);
		cr_assert_eq(*(const unsigned short *)memtable_entry(&t, bin), 0);
	}
	cr_assert_eq(memtable_resident_bytes(&t), 0, "reads committed %zu bytes",
	             memtable_resident_bytes(&t));
	if (memtable_is_flat(&t))
		for (size_t b = 0; b < bins; b += bins / 1024)
			cr_assert_not(page_mapped(t.entries + b * 2), "table page of bin %zu mapped", b);

	/* One written entry: its table page, and one page of each summary level. */
	uintptr_t addr = (uintptr_t)&t;
	size_t bin = memtable_bin(&t, addr);
	unsigned short *e = memtable_entry_for_write(&t, bin);
	*e = 0xbeef;
	cr_assert_eq(*(const unsigned short *)memtable_entry(&t, memtable_bin(&t, addr)), 0xbeef);
	cr_assert_eq(memtable_bin_base(&t, bin), addr & ~(uintptr_t)511);
	cr_assert(page_mapped(e));
	size_t directory = memtable_is_flat(&t) ? 0 : page;
	cr_assert_eq(memtable_resident_bytes(&t), 3 * MEMTABLE_PAGE_BYTES + directory,
	             "one written entry commits its page and two summary pages (%zu bytes)",
	             memtable_resident_bytes(&t));
	/* Its neighbour page, never written, still reads zero, unmapped. */
	size_t next_page_bin = bin + page / 2 * 2;
	cr_assert_eq(*(const unsigned short *)memtable_entry(&t, next_page_bin), 0);
	if (memtable_is_flat(&t))
		cr_assert_not(page_mapped(t.entries + next_page_bin * 2));
	cr_assert(memtable_covers(&t, addr));
	cr_assert_not(memtable_covers(&t, (uintptr_t)1 << 47));
	memtable_destroy(&t);
}

Test(memtable, reads_commit_nothing_flat) { check_reads_commit_nothing(MEMTABLE_FLAT); }
Test(memtable, reads_commit_nothing_two_level) { check_reads_commit_nothing(MEMTABLE_TWO_LEVEL); }

/* The shadow array (memtable_add_shadow): only on a flat table not yet
 * written; marking a table page written writes the shadow pages of the same
 * bins first (two for 2-byte entries), and no other; counted apart from
 * the table's bytes. */
Test(memtable, shadow_pages_are_written_with_their_table_page)
{
#if defined(__SANITIZE_THREAD__)
	cr_skip_test("a 2 TiB flat table does not fit ThreadSanitizer's address space");
#endif
	struct memtable t;
	cr_assert_eq(memtable_init(&t, 47, 6, 1, MEMTABLE_TWO_LEVEL), 0);
	cr_assert_eq(memtable_add_shadow(&t, 2), EINVAL, "a two-level table");
	memtable_destroy(&t);
	cr_assert_eq(memtable_init(&t, 47, 6, 1, MEMTABLE_FLAT), 0);
	cr_assert_eq(memtable_add_shadow(&t, 3), EINVAL, "not a power of two");
	cr_assert_eq(memtable_add_shadow(&t, 2), 0);
	cr_assert_eq(memtable_add_shadow(&t, 2), EINVAL, "a second shadow");
	size_t bin = ((size_t)5 << 30) + 4096 * 3 + 100; /* table page p: shadow pages 2p, 2p + 1 */
	size_t p = bin >> MEMTABLE_PAGE_SHIFT;
	const unsigned char *first = t.shadow + 2 * p * MEMTABLE_PAGE_BYTES;
	cr_assert_not(page_mapped(first));
	cr_assert_eq(memtable_shadow_resident_bytes(&t), 0);
	*(unsigned char *)memtable_entry_for_write(&t, bin) = 1;
	cr_assert(page_mapped(first) && page_mapped(first + MEMTABLE_PAGE_BYTES), "the shadow of a marked page");
	cr_assert_not(page_mapped(first - MEMTABLE_PAGE_BYTES), "the shadow of the table page below");
	cr_assert_not(page_mapped(first + 2 * MEMTABLE_PAGE_BYTES), "the shadow of the table page above");
	cr_assert_eq(memtable_shadow_resident_bytes(&t), 2 * MEMTABLE_PAGE_BYTES);
	cr_assert_eq(memtable_resident_bytes(&t), 3 * MEMTABLE_PAGE_BYTES, "the table's own: page and summary");
	memtable_destroy(&t);
}

/* The backward scan over a wide range of never-written table: finds nothing,
 * maps nothing, and skips whole unwritten summary pages rather than walking
 * every table page (2^29 of them here would take seconds). */
Test(memtable, backward_scan_reads_only_written_pages, .timeout = 10)
{
#if defined(__SANITIZE_THREAD__)
	cr_skip_test("a 2 TiB flat table does not fit ThreadSanitizer's address space");
#endif
	struct memtable t;
	cr_assert_eq(memtable_init(&t, 47, 6, 1, MEMTABLE_FLAT), 0);
	size_t bins = (size_t)1 << 41, low = 12345, high = bins - 777;
	cr_assert_eq(memtable_last_nonzero_byte(&t, bins, 0), SIZE_MAX);
	cr_assert_eq(memtable_resident_bytes(&t), 0);
	*(unsigned char *)memtable_entry_for_write(&t, low) = 5;
	*(unsigned char *)memtable_entry_for_write(&t, high) = 6;
	cr_assert_eq(memtable_last_nonzero_byte(&t, bins, 0), high);
	cr_assert_eq(memtable_last_nonzero_byte(&t, high, 0), low);
	cr_assert_eq(memtable_last_nonzero_byte(&t, high, low + 1), SIZE_MAX);
	cr_assert_eq(memtable_last_nonzero_byte(&t, low + 1, low), low);
	cr_assert_not(page_mapped(t.entries + bins / 2));
	/* Two table pages, far apart: two pages of the first summary level, one
	 * of the second. */
	cr_assert_eq(memtable_resident_bytes(&t), 5 * MEMTABLE_PAGE_BYTES, "%zu bytes", memtable_resident_bytes(&t));
	memtable_destroy(&t);
}

Test(memtable, refuses_a_flat_table_larger_than_the_address_space)
{
	struct memtable t;
	cr_assert_neq(memtable_init(&t, 57, 4, 1, MEMTABLE_FLAT), 0, "2^53 bytes cannot be reserved");
}

/* Too big to be flat: two levels, with leaves mapped only where written. */
Test(memtable, falls_back_to_two_levels_when_flat_is_refused)
{
	struct memtable t;
	cr_assert_eq(memtable_init(&t, 57, 4, 1, MEMTABLE_AUTO), 0);
	cr_assert_not(memtable_is_flat(&t));
	cr_assert_eq(t.leaves_mapped, 0);
	uintptr_t a = (uintptr_t)&t, far = a + ((uintptr_t)1 << 40);
	size_t bin_a = memtable_bin(&t, a), bin_far = memtable_bin(&t, far);
	cr_assert_eq(*(const unsigned char *)memtable_entry(&t, bin_far), 0, "absent leaf reads zero");
	cr_assert_eq(t.leaves_mapped, 0, "reading maps nothing");
	*(unsigned char *)memtable_entry_for_write(&t, bin_a) = 7;
	*(unsigned char *)memtable_entry_for_write(&t, bin_far) = 9;
	cr_assert_eq(t.leaves_mapped, 2);
	cr_assert_eq(*(const unsigned char *)memtable_entry(&t, bin_a), 7);
	cr_assert_eq(*(const unsigned char *)memtable_entry(&t, bin_far), 9);
	/* The backward scan crosses absent leaves to find bin_a's entry. */
	cr_assert_eq(memtable_last_nonzero_byte(&t, bin_far, 0), bin_a);
	cr_assert_eq(memtable_last_nonzero_byte(&t, bin_far + 1, 0), bin_far);
	cr_assert_eq(memtable_last_nonzero_byte(&t, bin_a, 0), SIZE_MAX);
	cr_assert_eq(memtable_last_nonzero_byte(&t, bin_far, bin_a + 1), SIZE_MAX);
	cr_assert_gt(memtable_resident_bytes(&t), 0);
	memtable_destroy(&t);
}

/* Writers that need the same absent two-level leaf at once, released
 * together: one leaf is mapped and published, every writer writes into it
 * (none into a leaf that lost the race and was dropped), and the count of
 * mapped leaves is exact.  Without a lock or a compare-and-swap in
 * memtable_entry_slow_write, writes went to dropped leaves and the count
 * was off. */
#define LEAF_WRITERS 8

struct leaf_writer {
	struct memtable *t;
	pthread_barrier_t *go;
	size_t bin;
};

static void *write_into_leaf(void *arg)
{
	struct leaf_writer *w = arg;
	pthread_barrier_wait(w->go);
	unsigned char *e = memtable_entry_for_write(w->t, w->bin);
	if (e)
		__atomic_store_n(e, (unsigned char)(w->bin & 0x7f) + 1, __ATOMIC_RELAXED);
	return NULL;
}

Test(memtable, racing_writers_map_one_leaf, .timeout = 60)
{
	for (int round = 0; round < 40; round++) {
		struct memtable t;
		cr_assert_eq(memtable_init(&t, 47, 6, 1, MEMTABLE_TWO_LEVEL), 0);
		pthread_barrier_t go;
		pthread_barrier_init(&go, NULL, LEAF_WRITERS);
		pthread_t tid[LEAF_WRITERS];
		struct leaf_writer w[LEAF_WRITERS];
		size_t first = (size_t)round << t.leaf_bits; /* a leaf of its own each round */
		for (int i = 0; i < LEAF_WRITERS; i++) {
			w[i] = (struct leaf_writer){ &t, &go, first + (size_t)i * 4099 };
			cr_assert_eq(pthread_create(&tid[i], NULL, write_into_leaf, &w[i]), 0);
		}
		for (int i = 0; i < LEAF_WRITERS; i++)
			pthread_join(tid[i], NULL);
		pthread_barrier_destroy(&go);
		cr_assert_eq(t.leaves_mapped, 1, "round %d: %zu leaves mapped for one", round, t.leaves_mapped);
		for (int i = 0; i < LEAF_WRITERS; i++)
			cr_assert_eq(*(const unsigned char *)memtable_entry(&t, w[i].bin), (w[i].bin & 0x7f) + 1,
			             "round %d: writer %d's entry was lost", round, i);
		memtable_destroy(&t);
	}
}

/* Both layouts answer the scan the same way, entry for entry. */
Test(memtable, layouts_agree_on_the_backward_scan)
{
	struct memtable flat, two;
	cr_assert_eq(memtable_init(&flat, 36, 4, 1, MEMTABLE_FLAT), 0);
	cr_assert_eq(memtable_init(&two, 36, 4, 1, MEMTABLE_TWO_LEVEL), 0);
	unsigned x = 99;
	size_t bins = (size_t)1 << 32;
	for (int i = 0; i < 3000; i++) {
		x = x * 1103515245u + 12345u;
		size_t bin = ((size_t)x * 977) % bins;
		*(unsigned char *)memtable_entry_for_write(&flat, bin) = 1;
		*(unsigned char *)memtable_entry_for_write(&two, bin) = 1;
	}
	for (int i = 0; i < 3000; i++) {
		x = x * 1103515245u + 12345u;
		size_t from = ((size_t)x * 131) % bins, span = (x >> 4) % (1u << 22);
		size_t lowest = from > span ? from - span : 0;
		cr_assert_eq(memtable_last_nonzero_byte(&flat, from, lowest),
		             memtable_last_nonzero_byte(&two, from, lowest), "from %zu lowest %zu", from, lowest);
	}
	memtable_destroy(&flat);
	memtable_destroy(&two);
}

/* --- the heap index ---------------------------------------------------------- */

static struct inproc d;

static void with_bits(unsigned addr_bits, unsigned shift)
{
	struct heapindex_config cfg = { .addr_bits = addr_bits, .bin_shift = shift,
		                        .table_levels = (unsigned)MEMTABLE_AUTO };
	char err[256];
	const struct index_ops *ops = index_by_name("memtable");
	cr_assert_not_null(ops);
	cr_assert_eq(inproc_init(&d, ops, &cfg, err, sizeof err), 0, "%s", err);
}

static void with_shift(unsigned shift)
{
	with_bits(config_default_addr_bits(), shift);
}

static void setup_default(void) { with_shift(9); }

/* One lookup: with the site asked for (the chunk's header read), or
 * without (index memory alone where it can: the head entries). */
static int lookup_as(const void *addr, void *want_base, size_t want_size, int want_site)
{
	void *base = NULL;
	size_t size = 0;
	const void *site = NULL;
	int hit = inproc_lookup(&d, addr, &base, &size, want_site ? &site : NULL);
	if (hit && (base != want_base || size != want_size))
		cr_assert_fail("lookup(%p)%s gave [%p, +%zu), want [%p, +%zu)", addr, want_site ? "" : " without site",
		               base, size, want_base, want_size);
	return hit;
}

/* The statistics' tests: one lookup, reading headers as it always did. */
static int found_counted(const void *addr, void *want_base, size_t want_size)
{
	return lookup_as(addr, want_base, want_size, 1);
}

/* Both lookups, which must agree. */
static int found(const void *addr, void *want_base, size_t want_size)
{
	int hit = lookup_as(addr, want_base, want_size, 1);
	cr_assert_eq(lookup_as(addr, want_base, want_size, 0), hit, "lookup(%p): with and without site disagree",
	             addr);
	return hit;
}

TestSuite(memtable_index, .init = setup_default);

Test(memtable_index, first_and_last_byte_found_one_past_end_not)
{
	char *p = inproc_alloc(&d, 100, 16, 0x1234);
	cr_assert(found(p, p, 100));
	cr_assert(found(p + 50, p, 100));
	cr_assert(found(p + 99, p, 100));
	cr_assert_not(found(p + 100, p, 100));
	const void *site;
	cr_assert(inproc_lookup(&d, p + 7, NULL, NULL, &site));
	cr_assert_eq((uintptr_t)site, 0x1234);
}

Test(memtable_index, adjacent_chunks_are_told_apart)
{
	/* Carve neighbours out of one block so they really touch: a memalign'd
	 * chunk's header sits just before it, so chunk k+1 starts 16 bytes
	 * (its header) after chunk k ends. */
	enum { N = 64 };
	char *p[N];
	for (int i = 0; i < N; i++)
		p[i] = inproc_alloc(&d, (size_t)(i % 5) * 16 + 16, 16, (uintptr_t)i);
	for (int i = 0; i < N; i++) {
		size_t size = (size_t)(i % 5) * 16 + 16;
		cr_assert(found(p[i], p[i], size));
		cr_assert(found(p[i] + size - 1, p[i], size));
	}
}

Test(memtable_index, zero_size_chunk_contains_nothing)
{
	char *p = inproc_alloc(&d, 0, 16, 0);
	cr_assert_not_null(p);
	cr_assert_not(found(p, p, 0));
	inproc_free(&d, p);
}

Test(memtable_index, chunk_spanning_many_bins_found_from_its_far_end)
{
	size_t size = 100000; /* 195 bins of 512 bytes, still small */
	char *p = inproc_alloc(&d, size, 16, 0);
	for (size_t off = 0; off < size; off += 511)
		cr_assert(found(p + off, p, size), "offset %zu", off);
	cr_assert(found(p + size - 1, p, size));
	cr_assert_not(found(p + size, p, size));
}

Test(memtable_index, big_chunk_over_threshold_found_and_removed)
{
	size_t size = (size_t)8 << 20; /* far over the 128 KiB big threshold */
	char *small = inproc_alloc(&d, 32, 16, 0);
	char *big = inproc_alloc(&d, size, 16, 0);
	cr_assert(found(big, big, size));
	cr_assert(found(big + size / 2, big, size));
	cr_assert(found(big + size - 1, big, size));
	cr_assert_not(found(big + size, big, size));
	cr_assert(found(small + 31, small, 32));
	inproc_free(&d, big);
	cr_assert_not(found(big + size / 2, big, size));
	cr_assert(found(small, small, 32));
}

Test(memtable_index, lookup_after_free_not_found)
{
	char *a = inproc_alloc(&d, 48, 16, 0);
	char *b = inproc_alloc(&d, 48, 16, 0);
	inproc_free(&d, a);
	cr_assert_not(found(a, a, 48));
	cr_assert_not(found(a + 47, a, 48));
	cr_assert(found(b + 47, b, 48));
	inproc_free(&d, b);
	cr_assert_not(found(b, b, 48));
}

static int static_datum = 42;

Test(memtable_index, non_heap_addresses_are_not_found)
{
	char *p = inproc_alloc(&d, 64, 16, 0);
	int local = 0;
	void *unmapped = mmap(NULL, 1 << 16, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	const void *wild[] = {
		NULL, (void *)1, (void *)4095, &local, &static_datum, (void *)setup_default,
		unmapped, (void *)0xffff800000000000ull, (void *)UINTPTR_MAX,
		(void *)((uintptr_t)1 << 47), (void *)(((uintptr_t)1 << 47) - 1),
	};
	for (size_t i = 0; i < sizeof wild / sizeof *wild; i++)
		cr_assert_not(inproc_lookup(&d, wild[i], NULL, NULL, NULL), "address %p", wild[i]);
	cr_assert(found(p, p, 64));
}

/* Every bin size the configuration allows keeps the same answers. */
ParameterizedTestParameters(memtable_shift, same_answers_at_every_bin_shift)
{
	static unsigned shifts[] = { 4, 5, 6, 7, 8, 9, 10, 11 };
	return cr_make_param_array(unsigned, shifts, sizeof shifts / sizeof *shifts);
}

ParameterizedTest(unsigned *shift, memtable_shift, same_answers_at_every_bin_shift)
{
	with_shift(*shift);
	enum { N = 2000 };
	static char *p[N];
	static size_t size[N];
	unsigned x = 12345;
	for (int i = 0; i < N; i++) {
		x = x * 1103515245u + 12345u;
		size[i] = (x >> 8) % 3000 + (i % 97 == 0 ? 300000 : 1);
		p[i] = inproc_alloc(&d, size[i], (i % 7 == 0) ? 64 : 16, 0);
	}
	for (int i = 0; i < N; i += 2)
		inproc_free(&d, p[i]);
	for (int i = 0; i < N; i++) {
		int live = i % 2;
		cr_assert_eq(found(p[i], p[i], size[i]), live, "shift %u chunk %d first byte", *shift, i);
		cr_assert_eq(found(p[i] + size[i] - 1, p[i], size[i]), live, "shift %u chunk %d last byte",
		             *shift, i);
	}
}

/* --- what the table byte tells a lookup ----------------------------------------
 * A bin's head is its lowest chunk, so a lookup whose own bin holds only
 * chunks above it skips that bin by its table byte, reading no header there
 * (list_steps counts the headers a lookup read).  Chunks placed by hand in
 * 64-byte bins: C = [B - 32, B + 16) reaches from the bin below into bin B,
 * A = [B + 32, B + 48) lies in B above the probe B + 8.  Before the head was
 * the lowest chunk, the lookup walked B (A) and then C's bin: two steps. */
static _Alignas(4096) unsigned char placed[4096];

static uint64_t list_steps(void)
{
	return index_stat(d.ops, "list_steps");
}

static struct chunk *place(uintptr_t user, size_t size)
{
	struct chunk *c = chunk_of_user((void *)user);
	chunk_init(c, size, CHUNK_HEADER_BYTES, 0x5eed);
	d.ops->insert(c);
	return c;
}

static void setup_shift6(void) { with_shift(6); }

Test(memtable_bins, own_bin_above_the_address_is_skipped_unread, .init = setup_shift6)
{
	uintptr_t b = (uintptr_t)placed + 1024;
	struct chunk *a = place(b + 32, 16), *c = place(b - 32, 48);
	uint64_t before = list_steps();
	cr_assert(found_counted((void *)(b + 8), (void *)(b - 32), 48));
	cr_assert_eq(list_steps() - before, 1, "headers read: %llu", (unsigned long long)(list_steps() - before));
	/* The other order of insertion, and A's bin found from inside A. */
	d.ops->remove(a);
	d.ops->remove(c);
	c = place(b - 32, 48);
	a = place(b + 32, 16);
	before = list_steps();
	cr_assert(found_counted((void *)(b + 8), (void *)(b - 32), 48));
	cr_assert_eq(list_steps() - before, 1);
	cr_assert(found_counted((void *)(b + 40), (void *)(b + 32), 16));
	d.ops->remove(a);
	d.ops->remove(c);
}

/* An insert tests the written-pages summary only when it finds its bin
 * empty (heap_index.c, link_locked): the first chunk of a table page never
 * written marks that page before it can be found, a second chunk in the
 * same bin skips the test, and a bin emptied and filled again finds its
 * page marked.  Every one of them is found by lookups, which read only
 * marked pages, and a lookup in the next page, never written, marks (and
 * reads) nothing.  At shift 6 a table page covers 256 KiB of heap: fresh is
 * one such stretch that no other chunk of this process's index lies in. */
static _Alignas(1 << 18) unsigned char fresh[1 << 18];

static uint64_t marked_bytes(void)
{
	return index_stat(d.ops, "table_resident_bytes");
}

Test(memtable_bins, first_chunk_of_an_unwritten_page_marks_it_before_it_is_found, .init = setup_shift6)
{
	/* A chunk elsewhere first, so that the summary's upper levels are
	 * marked and the insert below marks one page: fresh's. */
	struct chunk *warm = place((uintptr_t)placed + 1024, 16);
	uintptr_t b = (uintptr_t)fresh + 4096;
	uint64_t before = marked_bytes();
	cr_assert_not(found((void *)(b + 16), NULL, 0));
	cr_assert_eq(marked_bytes(), before, "a lookup marked a page");
	struct chunk *a = place(b + 16, 16);
	cr_assert_eq(marked_bytes(), before + MEMTABLE_PAGE_BYTES, "the first insert marked %llu bytes",
	             (unsigned long long)(marked_bytes() - before));
	cr_assert(found((void *)(b + 20), (void *)(b + 16), 16));
	struct chunk *c = place(b + 48, 8); /* the same bin, not empty: no summary test */
	cr_assert(found((void *)(b + 50), (void *)(b + 48), 8));
	cr_assert(found((void *)(b + 16), (void *)(b + 16), 16));
	d.ops->remove(a);
	d.ops->remove(c);
	cr_assert_not(found((void *)(b + 50), NULL, 0));
	a = place(b, 32); /* empty again, its page marked */
	cr_assert(found((void *)(b + 31), (void *)b, 32));
	cr_assert_eq(marked_bytes(), before + MEMTABLE_PAGE_BYTES);
	cr_assert_not(found((void *)(b + sizeof fresh), NULL, 0));
	cr_assert_eq(marked_bytes(), before + MEMTABLE_PAGE_BYTES, "a lookup marked a page");
	d.ops->remove(a);
	d.ops->remove(warm);
}

/* Any order of inserts and removes keeps the lowest chunk at the head:
 * four 16-byte chunks in one 128-byte bin (slots 1, 3, 5, 7), inserted in
 * several orders, one of them removed; every other one is found from its
 * first byte, which lies in its own bin: a head that were not the lowest
 * chunk would hide the chunks below it. */
static void setup_shift7(void) { with_shift(7); }

Test(memtable_bins, head_stays_the_lowest_chunk, .init = setup_shift7)
{
	uintptr_t b = (uintptr_t)placed + 2048;
	static const int orders[][4] = { { 0, 1, 2, 3 }, { 3, 2, 1, 0 }, { 2, 0, 3, 1 }, { 1, 3, 0, 2 } };
	for (size_t o = 0; o < 4; o++)
		for (int gone = 0; gone < 4; gone++) {
			struct chunk *c[4];
			for (int k = 0; k < 4; k++) {
				int i = orders[o][k];
				c[i] = place(b + 32 * (uintptr_t)i, 16);
			}
			d.ops->remove(c[gone]);
			for (int i = 0; i < 4; i++) {
				void *user = (void *)(b + 32 * (uintptr_t)i);
				if (i == gone)
					cr_assert_not(found(user, NULL, 0), "order %zu: removed chunk %d found", o, i);
				else
					cr_assert(found(user, user, 16), "order %zu, chunk %d removed: chunk %d lost", o,
					          gone, i);
			}
			for (int i = 0; i < 4; i++)
				if (i != gone)
					d.ops->remove(c[i]);
		}
}

/* --- the near lookup ------------------------------------------------------------
 * Most lookups are answered from one load of the table: the eight bins
 * ending at the address's own (heap_index.c, near_lookup).  Chunks placed
 * by hand around its edges, in 64-byte bins, in a region whose start R
 * begins a table page (2^18 heap bytes per 4 KiB page of bytes): each
 * answer must be the one the full scan gives, and list_steps shows that a
 * hit read one header.  An off-by-one in the word's bounds, the own-bin
 * rule or the found bin's slot fails here. */
#define NEAR_PAGE_SPAN ((uintptr_t)1 << 18)

static uintptr_t near_region(void)
{
	/* Address space for R - span .. R + span, nothing of it written but
	 * the chunks placed. */
	size_t len = 4 * NEAR_PAGE_SPAN;
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	cr_assert_neq(m, MAP_FAILED);
	return (((uintptr_t)m + NEAR_PAGE_SPAN) & ~(NEAR_PAGE_SPAN - 1)) + NEAR_PAGE_SPAN;
}

TestSuite(memtable_near, .init = setup_shift6);

Test(memtable_near, chunk_starting_at_the_address_its_last_byte_and_one_past)
{
	uintptr_t r = near_region(), u = r + 64 * 100 + 16; /* slot 2 of bin 100 */
	struct chunk *c = place(u, 32);
	uint64_t before = list_steps();
	cr_assert(found_counted((void *)u, (void *)u, 32));
	cr_assert(found_counted((void *)(u + 31), (void *)u, 32));
	cr_assert_eq(list_steps() - before, 2, "headers read: %llu", (unsigned long long)(list_steps() - before));
	cr_assert_not(found_counted((void *)(u + 32), NULL, 0)); /* same bin, past the end */
	cr_assert_not(found_counted((void *)(u - 1), NULL, 0));  /* same bin, below the head */
	cr_assert_not(found_counted((void *)(u - 16), NULL, 0)); /* slot 1 */
	d.ops->remove(c);
	cr_assert_not(found_counted((void *)u, NULL, 0));
}

/* addr's bin B: a chunk starting in bin B - 7 (the lowest bin of the word
 * read) and one starting in B - 8 (just below it: the full scan's) both
 * reach addr; a chunk of the word's lowest bin that ends short of addr
 * answers "none" even with a chunk further down. */
Test(memtable_near, nearest_start_seven_and_eight_bins_below)
{
	uintptr_t r = near_region(), bin = r + 64 * 200;
	for (uintptr_t below = 6; below <= 9; below++) {
		uintptr_t u = bin - 64 * below, addr = bin + 40;
		size_t size = (size_t)(addr - u) + 8;
		struct chunk *c = place(u, size);
		uint64_t before = list_steps();
		cr_assert(found_counted((void *)addr, (void *)u, size), "chunk %zu bins below", (size_t)below);
		cr_assert(found_counted((void *)(u + size - 1), (void *)u, size), "chunk %zu bins below", (size_t)below);
		cr_assert_eq(list_steps() - before, 2, "chunk %zu bins below: headers read %llu", (size_t)below,
		             (unsigned long long)(list_steps() - before));
		cr_assert_not(found_counted((void *)(u + size), NULL, 0), "chunk %zu bins below", (size_t)below);
		d.ops->remove(c);
	}
	struct chunk *far = place(bin - 64 * 12, 64 * 4), *near = place(bin - 64 * 7 + 32, 16);
	cr_assert_not(found_counted((void *)(bin + 8), NULL, 0));
	cr_assert(found_counted((void *)(bin - 64 * 12 + 100), (void *)(bin - 64 * 12), 64 * 4));
	cr_assert(found_counted((void *)(bin - 64 * 7 + 40), (void *)(bin - 64 * 7 + 32), 16));
	d.ops->remove(near);
	d.ops->remove(far);
}

/* Two chunks in the found bin: the head (lowest) and one above it that
 * starts at or below addr, which is the answer; and a chunk in addr's own
 * bin above addr, which must not hide the one below that reaches addr. */
Test(memtable_near, second_chunk_in_the_bin_above_or_below)
{
	uintptr_t r = near_region(), b = r + 64 * 300;
	struct chunk *low = place(b + 16, 16), *high = place(b + 48, 16);
	cr_assert(found((void *)(b + 50), (void *)(b + 48), 16));
	cr_assert(found((void *)(b + 24), (void *)(b + 16), 16));
	cr_assert(found((void *)(b + 31), (void *)(b + 16), 16));
	cr_assert_not(found((void *)(b + 32), NULL, 0));
	cr_assert_not(found((void *)(b + 64), NULL, 0)); /* the bin above, empty: past high's end */
	d.ops->remove(low);
	d.ops->remove(high);
	struct chunk *reach = place(b - 16, 48), *above = place(b + 48, 16);
	cr_assert(found((void *)(b + 20), (void *)(b - 16), 48));
	cr_assert_not(found((void *)(b + 40), NULL, 0));
	cr_assert(found((void *)(b + 48), (void *)(b + 48), 16));
	d.ops->remove(above);
	d.ops->remove(reach);
}

/* The statistics a near lookup counts with one counter (near[b]) and the
 * rest counted where they happen add up to what the lookups did: a hit on
 * a chunk starting b bins below the address's scanned b + 1 bins and read
 * one header, by the near path (b <= 7: near_lookups) or the full scan
 * (b = 8, 9); a bin
 * of two chunks below the address read two headers. */
Test(memtable_near, statistics_count_the_bins_and_headers_read)
{
	uintptr_t r = near_region(), bin = r + 64 * 400;
	static const char *const names[] = { "lookups", "bins_scanned", "list_steps", "near_lookups" };
	for (uintptr_t below = 0; below <= 9; below++) {
		uintptr_t u = bin - 64 * below, addr = bin + 40;
		size_t size = (size_t)(addr - u) + 8;
		struct chunk *c = place(u, size);
		uint64_t before[4], after[4];
		for (int i = 0; i < 4; i++)
			before[i] = index_stat(d.ops, names[i]);
		cr_assert(found_counted((void *)addr, (void *)u, size), "chunk %zu bins below", (size_t)below);
		for (int i = 0; i < 4; i++)
			after[i] = index_stat(d.ops, names[i]);
		cr_assert_eq(after[0] - before[0], 1, "chunk %zu bins below: lookups", (size_t)below);
		cr_assert_eq(after[1] - before[1], below + 1, "chunk %zu bins below: bins scanned %llu",
		             (size_t)below, (unsigned long long)(after[1] - before[1]));
		cr_assert_eq(after[2] - before[2], 1, "chunk %zu bins below: headers read", (size_t)below);
		cr_assert_eq(after[3] - before[3], below <= 7, "chunk %zu bins below: near lookups", (size_t)below);
		cr_assert_geq(index_stat(d.ops, "longest_backward_scan"), below + 1, "chunk %zu bins below",
		              (size_t)below);
		d.ops->remove(c);
	}
	uintptr_t b = bin + 64 * 20;
	struct chunk *low = place(b + 16, 16), *high = place(b + 48, 16);
	uint64_t before = list_steps();
	cr_assert(found_counted((void *)(b + 50), (void *)(b + 48), 16));
	cr_assert_eq(list_steps() - before, 2, "headers read: %llu", (unsigned long long)(list_steps() - before));
	cr_assert_geq(index_stat(d.ops, "longest_list_walked"), 2);
	d.ops->remove(low);
	d.ops->remove(high);
}

/* The table's own mapping, found by its size (the index's statistics):
 * NULL when it is not flat.  The kernel merges it with the written-pages
 * summary, mapped after it with the same flags and so just below it: the
 * table is the top of the first mapping at least that large. */
static unsigned char *flat_table(void)
{
	char json[4096];
	cr_assert_eq(index_stats_json(d.ops, json, sizeof json), 0, "statistics overflow");
	if (!strstr(json, "\"table_layout\":\"flat\""))
		return NULL;
	unsigned long long bytes = index_stat(d.ops, "table_reserved_bytes");
	FILE *f = fopen("/proc/self/maps", "r");
	cr_assert_not_null(f);
	unsigned long long lo, hi;
	unsigned char *table = NULL;
	char line[512];
	while (!table && fgets(line, sizeof line, f))
		if (sscanf(line, "%llx-%llx", &lo, &hi) == 2 && hi - lo >= bytes)
			table = (unsigned char *)(uintptr_t)(hi - bytes);
	fclose(f);
	return table;
}

/* Bins 0..6 of a table page: the word ending at them would reach into the
 * page below, never written here, so the full scan answers, and the page
 * below stays unmapped (a lookup commits no memory, memtable.h).  A chunk
 * starting at bin 0 is found from bins 0..8. */
Test(memtable_near, first_bins_of_a_page_read_nothing_below_it)
{
#if defined(__SANITIZE_THREAD__)
	cr_skip_test("a 2 TiB flat table does not fit ThreadSanitizer's address space");
#endif
	uintptr_t r = near_region();
	size_t size = 64 * 9;
	struct chunk *c = place(r + 16, size - 16);
	unsigned char *table = flat_table();
	if (!table)
		cr_skip_test("the table is not flat here");
	const unsigned char *below = table + (r >> 6) - 1;
	cr_assert(page_mapped(below + 1), "the table's page of R is not where it should be");
	cr_assert_not(page_mapped(below));
	for (uintptr_t a = r; a < r + size; a += 8) {
		int hit = a >= r + 16;
		cr_assert_eq(found((void *)a, hit ? (void *)(r + 16) : NULL, size - 16), hit, "addr R + %zu",
		             (size_t)(a - r));
	}
	cr_assert_not(page_mapped(below), "a lookup read the table page below R's");
	d.ops->remove(c);
}

/* --- head entries (heap_index.c) -------------------------------------------
 * Under header at shifts up to 7, a bin's 16-bit entry beside the table:
 * the head's slot (low 4 bits) and, when the head is alone and asked for at
 * most 4095 bytes, its size (the other 12), else size 0; 0 for an empty
 * bin.  A lookup without site answers from it alone. */
/* Entries need the flat table, which the default address bits' 2 TiB
 * denies ThreadSanitizer (the racing test below has a way round). */
static void need_heads(void)
{
#if defined(__SANITIZE_THREAD__)
	if (!memtable_hot.heads)
		cr_skip_test("the flat table under ThreadSanitizer");
#endif
	cr_assert_not_null(memtable_hot.heads, "no head entries");
}

static uint16_t head_entry_of(uintptr_t user)
{
	need_heads();
	return __atomic_load_n(&memtable_hot.heads[user >> 6], __ATOMIC_RELAXED);
}

static uint16_t entry(unsigned slot, size_t size)
{
	return (uint16_t)(slot | size << 4);
}

TestSuite(memtable_heads, .init = setup_shift6);

Test(memtable_heads, entry_follows_the_bins_head_and_count)
{
	uintptr_t b = near_region() + 64 * 100;
	cr_assert_eq(head_entry_of(b), 0, "a bin never written");
	struct chunk *x = place(b + 16, 40); /* alone: slot 2, size 40 */
	cr_assert_eq(head_entry_of(b), entry(2, 40));
	struct chunk *y = place(b + 48, 8); /* a second, above the head: the head of more */
	cr_assert_eq(head_entry_of(b), entry(2, 0));
	struct chunk *w = place(b, 8); /* below the head: the new head, of more */
	cr_assert_eq(head_entry_of(b), entry(1, 0));
	d.ops->remove(y); /* the last of three, not the head: two left */
	cr_assert_eq(head_entry_of(b), entry(1, 0));
	d.ops->remove(w); /* the head of two: x is left alone, its size read */
	cr_assert_eq(head_entry_of(b), entry(2, 40));
	w = place(b, 8);
	cr_assert_eq(head_entry_of(b), entry(1, 0));
	d.ops->remove(x); /* not the head, the last: the head left alone */
	cr_assert_eq(head_entry_of(b), entry(1, 8));
	cr_assert(found((void *)(b + 7), (void *)b, 8));
	cr_assert_not(found((void *)(b + 8), NULL, 0));
	d.ops->remove(w);
	cr_assert_eq(head_entry_of(b), 0, "an emptied bin");
	cr_assert_not(found((void *)(b + 7), NULL, 0));
	/* Three, the middle one removed, then the head: a head of more, then alone. */
	w = place(b, 8), x = place(b + 16, 8), y = place(b + 32, 8);
	d.ops->remove(x);
	cr_assert_eq(head_entry_of(b), entry(1, 0));
	d.ops->remove(w);
	cr_assert_eq(head_entry_of(b), entry(3, 8));
	cr_assert(found((void *)(b + 32), (void *)(b + 32), 8));
	d.ops->remove(y);
	cr_assert_eq(head_entry_of(b), 0);
}

/* Sizes above 4095 do not fit: the entry says "walk" (size 0), and the
 * lookup reads the header. */
Test(memtable_heads, sizes_over_4095_walk)
{
	uintptr_t b = near_region() + 64 * 200;
	struct chunk *x = place(b + 16, 4095);
	cr_assert_eq(head_entry_of(b), entry(2, 4095));
	cr_assert(found((void *)(b + 16 + 4094), (void *)(b + 16), 4095));
	d.ops->remove(x);
	uint64_t before = list_steps();
	x = place(b + 16, 4096);
	cr_assert_eq(head_entry_of(b), entry(2, 0));
	cr_assert(found((void *)(b + 16 + 100), (void *)(b + 16), 4096));
	cr_assert_gt(list_steps(), before, "a size over 4095 answered without its header");
	d.ops->remove(x);
	cr_assert_eq(head_entry_of(b), 0);
}

/* A lookup without site reads no heap when the entry has the size: the
 * chunk's page made inaccessible, it still answers (with the site asked
 * for, it would fault reading the header). */
Test(memtable_heads, lookup_without_site_reads_no_heap)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	unsigned char *p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(p, MAP_FAILED);
	need_heads();
	uintptr_t u = (uintptr_t)p + page + 64 * 20 + 16; /* not in a table page's first 7 bins */
	struct chunk *c = place(u, 100);
	uint64_t heads_before = index_stat(d.ops, "head_lookups");
	cr_assert_eq(mprotect(p + page, page, PROT_NONE), 0);
	void *base = NULL;
	size_t size = 0;
	for (uintptr_t a = u; a < u + 100; a += 9) {
		cr_assert(inproc_lookup(&d, (void *)a, &base, &size, NULL), "addr u + %zu", (size_t)(a - u));
		cr_assert_eq((uintptr_t)base, u);
		cr_assert_eq(size, 100);
	}
	cr_assert_not(inproc_lookup(&d, (void *)(u + 100), &base, &size, NULL));
	cr_assert_eq(mprotect(p + page, page, PROT_READ | PROT_WRITE), 0);
	cr_assert_eq(index_stat(d.ops, "head_lookups") - heads_before, 13);
	d.ops->remove(c);
	munmap(p, 2 * page);
}

/* Shift 8: 16 slots do not fit in 4 bits, so no entries; lookups as before. */
static void setup_shift8(void) { with_shift(8); }

Test(memtable_heads, none_where_slots_do_not_fit, .init = setup_shift8)
{
	cr_assert_null(memtable_hot.heads);
	uintptr_t b = near_region() + 256 * 30;
	struct chunk *x = place(b + 240, 24);
	cr_assert(found((void *)(b + 263), (void *)(b + 240), 24));
	cr_assert_eq(index_stat(d.ops, "head_lookups"), 0);
	d.ops->remove(x);
}

Test(memtable_heads, kept_at_shift_7, .init = setup_shift7)
{
	need_heads();
	uintptr_t b = near_region() + 128 * 30;
	struct chunk *x = place(b + 112, 24); /* slot 8, the highest */
	cr_assert_eq(__atomic_load_n(&memtable_hot.heads[(b + 112) >> 7], __ATOMIC_RELAXED), entry(8, 24));
	cr_assert(found((void *)(b + 135), (void *)(b + 112), 24));
	d.ops->remove(x);
}

/* Lookups racing with inserts and removes of the chunks of one bin, which
 * pass through the states (slots of 16 bytes, bin B):
 *   empty -> A [B, +60) -> empty -> B1 [B, +8) and C [B + 32, +20) -> B1
 *   alone -> empty.
 * The writer makes its state count odd while it changes the bin and even
 * with the new state after; a lookup that saw the same even count before
 * and after must give exactly that state's answer, any other one an
 * answer of some state: never a torn pair (base of one, size of another),
 * never a chunk gone. */
enum bin_state { EMPTY, ONLY_A, B_AND_C, ONLY_B };
static uint64_t race_count; /* state << 1 | changing, plus 4 per change */
static uint64_t race_checked; /* the last count a lookup saw steady throughout */
static int race_done, race_wait;
static uintptr_t race_bin;

/* When race_wait: wait until a lookup saw the new state steady, or gave
 * it a few thousand chances, so that every state is checked exactly, the
 * briefest too. */
static void race_set(uint64_t *count, enum bin_state to)
{
	*count = (*count & ~(uint64_t)7) + 8 + ((uint64_t)to << 1);
	__atomic_store_n(&race_count, *count, __ATOMIC_RELEASE);
	for (int spins = 0; race_wait && spins < 5000 && __atomic_load_n(&race_checked, __ATOMIC_ACQUIRE) != *count;
	     spins++)
		sched_yield();
}

static void race_begin(uint64_t *count)
{
	__atomic_store_n(&race_count, *count | 1, __ATOMIC_RELEASE);
}

static void *race_writer(void *arg)
{
	(void)arg;
	uintptr_t b = race_bin;
	uint64_t count = 0;
	race_set(&count, EMPTY);
	for (int i = 0; i < 20000; i++) {
		race_wait = i & 1; /* every other round free running: lookups across changes */
		race_begin(&count);
		struct chunk *a = place(b, 60);
		race_set(&count, ONLY_A);
		race_begin(&count);
		d.ops->remove(a);
		race_set(&count, EMPTY);
		race_begin(&count);
		struct chunk *b1 = place(b, 8), *c = place(b + 32, 20);
		race_set(&count, B_AND_C);
		race_begin(&count);
		d.ops->remove(c);
		race_set(&count, ONLY_B);
		race_begin(&count);
		d.ops->remove(b1);
		race_set(&count, EMPTY);
	}
	__atomic_store_n(&race_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* The answer for offset off in state s: the chunk's offset and size, or -1. */
static long race_expect(enum bin_state s, size_t off, size_t *size)
{
	if (s == ONLY_A && off < 60)
		return *size = 60, 0;
	if ((s == B_AND_C || s == ONLY_B) && off < 8)
		return *size = 8, 0;
	if (s == B_AND_C && off >= 32 && off < 52)
		return *size = 20, 32;
	return -1;
}

/* 37 address bits: a flat table of 2 GiB and entries of 4, which
 * ThreadSanitizer's shadow can map (it cannot the default 47 bits' 2 TiB:
 * the two-level table it gets keeps no entries), and a region of our own
 * below 2^37 for the bin, so that `make SANITIZE=thread test` sees the
 * entries' loads and stores race. */
#define RACE_BITS 37
static void setup_race(void) { with_bits(RACE_BITS, 6); }

Test(memtable_heads, lookups_racing_a_bins_changes_answer_a_whole_live_chunk, .init = setup_race,
     .timeout = 120)
{
	size_t len = 1 << 20;
	void *hint = (void *)((uintptr_t)1 << (RACE_BITS - 1));
	void *m = mmap(hint, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (m == MAP_FAILED)
		cr_skip_test("no memory at %p for a region below 2^%d", hint, RACE_BITS);
	cr_assert_not_null(memtable_hot.heads, "no head entries with %d address bits", RACE_BITS);
	race_bin = (uintptr_t)m + 64 * 400;
	pthread_t w;
	cr_assert_eq(pthread_create(&w, NULL, race_writer, NULL), 0);
	static const size_t offs[] = { 4, 36, 50, 70 };
	unsigned strict = 0, long_runs = 0;
	for (uint64_t n = 0; !__atomic_load_n(&race_done, __ATOMIC_ACQUIRE); n++) {
		size_t off = offs[n % 4];
		uint64_t before = __atomic_load_n(&race_count, __ATOMIC_ACQUIRE);
		void *base = NULL;
		size_t size = 0;
		const void *site = NULL;
		int hit = inproc_lookup(&d, (void *)(race_bin + off), &base, &size, n & 4 ? &site : NULL);
		uint64_t after = __atomic_load_n(&race_count, __ATOMIC_ACQUIRE);
		long got = hit ? (long)((uintptr_t)base - race_bin) : -1;
		if (before == after && !(before & 1)) {
			size_t want_size = 0;
			long want = race_expect((enum bin_state)((before >> 1) & 3), off, &want_size);
			strict++;
			__atomic_store_n(&race_checked, before, __ATOMIC_RELEASE);
			cr_assert_eq(got, want, "offset %zu, state %u: found %ld, want %ld", off,
			             (unsigned)((before >> 1) & 3), got, want);
			if (hit)
				cr_assert_eq(size, want_size, "offset %zu: size %zu, want %zu", off, size, want_size);
		} else if (hit) {
			long_runs++;
			size_t s_size = 0;
			int fits = 0;
			for (unsigned s = EMPTY; s <= ONLY_B; s++)
				fits |= race_expect((enum bin_state)s, off, &s_size) == got && s_size == size;
			cr_assert(fits, "offset %zu: a torn answer, offset %ld size %zu", off, got, size);
		}
	}
	pthread_join(w, NULL);
	munmap(m, len);
	cr_assert_gt(strict, 1000, "too few lookups between changes: %u", strict);
	cr_log_info("%u lookups in a steady state, %u hits across a change", strict, long_runs);
}
