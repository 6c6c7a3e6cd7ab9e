/* test_bitmap.c - the bitmap index's dirty-page notes, which keep its
 * lookups from reading (and committing) pages of its bitmaps that no insert
 * wrote.  An insert notes its word's page only when it finds the word zero
 * (baselines/bitmap.c, insert_in_region): these tests hold it to the
 * invariant that makes that enough, a nonzero word lies on a noted page;
 * and the common cases the hooks run outside the fork bracket
 * (baselines/bitmap_fast.h) to refusing all but one write. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <sys/mman.h>

#include "bitmap_fast.h"
#include "index_params.h"
#include "inproc.h"

static struct inproc d;

static void setup(void)
{
	struct heapindex_config cfg = { .addr_bits = config_default_addr_bits(), .bin_shift = 6 };
	char err[256];
	const struct index_ops *ops = index_by_name("bitmap");
	cr_assert_not_null(ops);
	cr_assert_eq(inproc_init(&d, ops, &cfg, err, sizeof err), 0, "%s", err);
}

static struct chunk *place(uintptr_t user, size_t size)
{
	struct chunk *c = chunk_of_user((void *)user);
	chunk_init(c, size, CHUNK_HEADER_BYTES, 0x5eed);
	d.ops->insert(c);
	return c;
}

static int found(uintptr_t addr, uintptr_t want_base, size_t want_size)
{
	void *base = NULL;
	size_t size = 0;
	int hit = inproc_lookup(&d, (const void *)addr, &base, &size, NULL);
	if (hit && ((uintptr_t)base != want_base || size != want_size))
		cr_assert_fail("lookup(%#lx) gave [%p, +%zu), want [%#lx, +%zu)", (unsigned long)addr, base,
		               size, (unsigned long)want_base, want_size);
	return hit;
}

static uint64_t noted_bytes(void)
{
	return index_stat(d.ops, "bitmap_resident_bytes");
}

/* One 4 KiB page of a bitmap (a bit per 16 bytes) covers 512 KiB of heap:
 * fresh is one such stretch, in which no other chunk of this process's
 * index lies, and warm a chunk elsewhere, so that the span's region is
 * made before the count is read. */
static _Alignas(1 << 19) unsigned char fresh[1 << 19];
static _Alignas(64) unsigned char warm[64];

TestSuite(bitmap_pages, .init = setup);

Test(bitmap_pages, first_chunk_of_a_zero_word_notes_its_page_before_it_is_found)
{
	struct chunk *w = place((uintptr_t)warm + 16, 16);
	uintptr_t b = (uintptr_t)fresh + 4096;
	uint64_t before = noted_bytes();
	cr_assert_not(found(b + 16, 0, 0));
	cr_assert_eq(noted_bytes(), before, "a lookup noted a page");
	struct chunk *a = place(b + 16, 16);
	cr_assert_eq(noted_bytes(), before + 4096, "the first insert noted %llu bytes",
	             (unsigned long long)(noted_bytes() - before));
	cr_assert(found(b + 20, b + 16, 16));
	struct chunk *c = place(b + 48, 8); /* the same word, not zero: no note asked */
	cr_assert(found(b + 50, b + 48, 8));
	cr_assert(found(b + 16, b + 16, 16));
	d.ops->remove(a);
	d.ops->remove(c);
	cr_assert_not(found(b + 50, 0, 0));
	a = place(b, 32); /* the word zero again, its page noted */
	cr_assert(found(b + 31, b, 32));
	cr_assert_eq(noted_bytes(), before + 4096);
	cr_assert_not(found(b + sizeof fresh, 0, 0));
	cr_assert_eq(noted_bytes(), before + 4096, "a lookup noted a page");
	d.ops->remove(a);
	d.ops->remove(w);
}

/* The word holding user's bit, read without committing its page: 0 if
 * the page was never written. */
static uint64_t word_at(uintptr_t user)
{
	size_t slot = bitmap_span_slot(user >> BITMAP_REGION_SHIFT);
	if (slot == BITMAP_SLOTS)
		return 0;
	size_t w = bitmap_word_of(user);
	if (!bitmap_page_written(slot, w))
		return 0;
	return __atomic_load_n(&bitmap_hot.slot_bits[slot][w], __ATOMIC_RELAXED);
}

/* A chunk handle for user, its header left as it is: the common cases
 * compute with the address alone and are given the size. */
static struct chunk *handle(uintptr_t user)
{
	return chunk_of_user((void *)user);
}

/* The common cases change one bitmap word or nothing: every chunk the slow
 * path must see (bigger than any so far, in a span without a region, the
 * first bit of a page not yet noted, a big chunk, a bit not set) is
 * refused, and a refusal writes nothing -- no bit, no note, no region. */
Test(bitmap_pages, common_cases_refuse_all_but_one_write_to_a_noted_page)
{
	struct chunk *w = place((uintptr_t)warm + 16, 48); /* the span's region; max_small_size 48 */
	size_t max = __atomic_load_n(&bitmap_hot.max_small_size, __ATOMIC_RELAXED);
	cr_assert_eq(max, 48);
	uintptr_t b = (uintptr_t)fresh + 8192; /* a word of a page no insert wrote */
	uint64_t before = noted_bytes(), regions = index_stat(d.ops, "regions");

	cr_assert_not(bitmap_index_header_insert_fast(handle(b), 16), "the first bit of an unnoted page taken");
	cr_assert_eq(noted_bytes(), before, "a refused insert noted a page");
	cr_assert_not(bitmap_index_header_insert_fast(handle((uintptr_t)warm + 128), max + 1),
	              "a chunk larger than any so far taken");
	cr_assert_eq(word_at((uintptr_t)warm + 128), bitmap_bit_of((uintptr_t)warm + 16),
	             "a refused insert wrote the word");
	uintptr_t far = (uintptr_t)1 << 46; /* a span no chunk of this process starts in */
	cr_assert_eq(bitmap_span_slot(far >> BITMAP_REGION_SHIFT), BITMAP_SLOTS);
	cr_assert_not(bitmap_index_header_insert_fast(handle(far), 16), "a chunk of a span without a region taken");
	cr_assert_eq(index_stat(d.ops, "regions"), regions, "a refused insert made a region");
	cr_assert_eq(__atomic_load_n(&bitmap_hot.max_small_size, __ATOMIC_RELAXED), max,
	             "a refused insert raised the bound");

	/* The word nonzero: one OR, found; its bit cleared by one AND. */
	chunk_init(handle((uintptr_t)warm + 128), 16, CHUNK_HEADER_BYTES, 0x5eed);
	cr_assert(bitmap_index_header_insert_fast(handle((uintptr_t)warm + 128), 16));
	cr_assert(found((uintptr_t)warm + 130, (uintptr_t)warm + 128, 16));
	cr_assert_null(bitmap_index_header_remove_fast(handle((uintptr_t)warm + 144), 16), "a bit never set cleared");
	cr_assert_null(bitmap_index_header_remove_fast(handle(far), 16), "a chunk of a span without a region removed");
	cr_assert_null(bitmap_index_header_remove_fast(handle((uintptr_t)warm + 128), BITMAP_BIG_THRESHOLD + 1),
	               "a big chunk removed from the bitmap");
	cr_assert(found((uintptr_t)warm + 130, (uintptr_t)warm + 128, 16), "a refused remove cleared the bit");
	cr_assert_eq(bitmap_index_header_remove_fast(handle((uintptr_t)warm + 128), 16),
	             handle((uintptr_t)warm + 128));
	cr_assert_not(found((uintptr_t)warm + 130, 0, 0));

	/* A zero word on a page the slow path noted: taken without a note. */
	struct chunk *a = place(b, 32); /* the slow path: notes the page */
	cr_assert_eq(noted_bytes(), before + 4096);
	d.ops->remove(a);
	cr_assert_eq(word_at(b), 0);
	chunk_init(handle(b), 16, CHUNK_HEADER_BYTES, 0x5eed);
	cr_assert(bitmap_index_header_insert_fast(handle(b), 16), "a zero word on a noted page refused");
	cr_assert(found(b + 15, b, 16));
	cr_assert_eq(noted_bytes(), before + 4096);
	d.ops->remove(handle(b));
	d.ops->remove(w);
}

/* 1 if the bitmap page holding user's bit is resident (mincore): a read
 * or write of a page never noted would have committed it. */
static int bitmap_word_resident(uintptr_t user)
{
	size_t slot = bitmap_span_slot(user >> BITMAP_REGION_SHIFT);
	cr_assert_neq(slot, BITMAP_SLOTS);
	uintptr_t at = (uintptr_t)(bitmap_hot.slot_bits[slot] + bitmap_word_of(user));
	unsigned char vec = 0;
	cr_assert_eq(mincore((void *)(at & ~(uintptr_t)(BITMAP_PAGE - 1)), BITMAP_PAGE, &vec), 0);
	return vec & 1;
}

/* The side common cases (bitmap_fast.h, INDEX_SIDE_INLINE) change one
 * bitmap word or nothing, as the header's: a misaligned pointer (another
 * chunk's bit), a request bigger than any so far, a span without a region,
 * the first bit of an unnoted page are refused by the insert; a misaligned
 * or foreign pointer, a bit never set, a page never noted by the remove;
 * and no refusal writes a bit, a note, a region or a bound. */
Test(bitmap_pages, side_common_cases_refuse_all_but_one_write_to_a_noted_page)
{
	struct chunk *w = place((uintptr_t)warm + 16, 48); /* the span's region; max_small_size 48 */
	size_t max = __atomic_load_n(&bitmap_hot.max_small_size, __ATOMIC_RELAXED);
	cr_assert_eq(max, 48);
	uintptr_t b = (uintptr_t)fresh + 16384; /* a word of a page no insert wrote */
	uintptr_t far = (uintptr_t)1 << 46;     /* a span no chunk of this process starts in */
	uint64_t before = noted_bytes(), regions = index_stat(d.ops, "regions");
	size_t reach = __atomic_load_n(&bitmap_hot.max_small_reach, __ATOMIC_RELAXED);
	uint64_t warm_word = word_at((uintptr_t)warm + 128);
	cr_assert_eq(warm_word, bitmap_bit_of((uintptr_t)warm + 16));

	cr_assert_not(bitmap_word_resident(b), "the fresh page resident before any insert");
	cr_assert_not(bitmap_index_side_insert_fast(b, 16), "the first bit of an unnoted page taken");
	cr_assert_eq(noted_bytes(), before, "a refused insert noted a page");
	cr_assert_not(bitmap_index_side_insert_fast((uintptr_t)warm + 136, 16), "a misaligned pointer taken");
	cr_assert_not(bitmap_index_side_insert_fast((uintptr_t)warm + 128, max + 1),
	              "a request larger than any so far taken");
	cr_assert_not(bitmap_index_side_insert_fast(far, 16), "a chunk of a span without a region taken");
	cr_assert_eq(word_at((uintptr_t)warm + 128), warm_word, "a refused insert wrote the word");
	cr_assert_eq(index_stat(d.ops, "regions"), regions, "a refused insert made a region");
	cr_assert_eq(__atomic_load_n(&bitmap_hot.max_small_size, __ATOMIC_RELAXED), max,
	             "a refused insert raised the bound");
	cr_assert_eq(__atomic_load_n(&bitmap_hot.max_small_reach, __ATOMIC_RELAXED), reach,
	             "a refused insert raised the reach");

	/* The word nonzero, its page noted: one OR; its bit cleared by one AND. */
	cr_assert(bitmap_index_side_insert_fast((uintptr_t)warm + 128, 16));
	cr_assert_eq(word_at((uintptr_t)warm + 128), warm_word | bitmap_bit_of((uintptr_t)warm + 128));
	cr_assert_not(bitmap_index_side_remove_fast((uintptr_t)warm + 144), "a bit never set cleared");
	cr_assert_not(bitmap_index_side_remove_fast((uintptr_t)warm + 136), "a misaligned pointer removed");
	cr_assert_not(bitmap_index_side_remove_fast(far), "a chunk of a span without a region removed");
	cr_assert_not(bitmap_index_side_remove_fast(b), "a pointer on a page never noted removed");
	cr_assert_eq(noted_bytes(), before, "a refused remove noted a page");
	cr_assert_not(bitmap_word_resident(b), "a refused remove touched (committed) a page never noted");
	cr_assert_eq(word_at((uintptr_t)warm + 128), warm_word | bitmap_bit_of((uintptr_t)warm + 128),
	             "a refused remove changed the word");
	cr_assert(bitmap_index_side_remove_fast((uintptr_t)warm + 128));
	cr_assert_eq(word_at((uintptr_t)warm + 128), warm_word);
	d.ops->remove(w);
}
