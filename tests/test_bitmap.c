/* test_bitmap.c - the bitmap index's dirty-page notes, which keep its
 * lookups from reading (and committing) pages of its bitmaps that no insert
 * wrote.  An insert notes its word's page only when it finds the word zero
 * (baselines/bitmap.c, insert_in_region): these tests hold it to the
 * invariant that makes that enough, a nonzero word lies on a noted page. */
#include <criterion/criterion.h>
#include <stdint.h>

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
