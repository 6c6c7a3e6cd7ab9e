/* test_memtable_masks.c - the memtable under the side placement: a bin's
 * table byte as a mask of its chunk starts and a lock bit
 * (memtable/heap_index.c, "the start masks").
 *
 * Chunks are placed by hand in a static region, so that four of them can
 * start in one 64-byte bin (the allocator never puts two starts 16 bytes
 * apart), and the allocator's malloc_usable_size, which the lookup asks
 * for a chunk's size under side (chunk.h, chunk_held_size), is replaced
 * by one that answers from this file's table of placed sizes. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "index_params.h"
#include "inproc.h"
#include "start_masks.h"
#include "support.h"

static struct inproc d;

/* 64 KiB, aligned so that bins of 64 bytes start at its 64-byte steps. */
static _Alignas(65536) unsigned char region[65536];
static size_t placed_size[sizeof region / 16];
/* Called by the lookup, with the bin locked, before it answers: a test's
 * look at what happens meanwhile. */
static void (*while_locked)(uintptr_t user);

static size_t placed_usable(void *user)
{
	uintptr_t u = (uintptr_t)user;
	cr_assert(u - (uintptr_t)region < sizeof region, "usable size asked of %p, no placed chunk", user);
	cr_assert(placed_size[(u - (uintptr_t)region) / 16], "usable size asked of %p, not live", user);
	if (while_locked)
		while_locked(u);
	return placed_size[(u - (uintptr_t)region) / 16];
}

static void setup_side(void)
{
	struct heapindex_config cfg = { .addr_bits = config_default_addr_bits(), .bin_shift = 6,
		                        .table_levels = 0, .meta = META_SIDE };
	char err[256];
	const struct index_ops *ops = index_by_name("memtable");
	cr_assert_not_null(ops);
	cr_assert_eq(inproc_init(&d, ops, &cfg, err, sizeof err), 0, "%s", err);
	cr_assert_eq(chunk_meta, META_SIDE);
	chunk_usable_size = placed_usable;
}

/* A chunk of size bytes at region + offset (a multiple of 16). */
static struct chunk *place(size_t offset, size_t size)
{
	void *user = region + offset;
	struct chunk *c = chunk_of_user(user);
	placed_size[offset / 16] = size;
	chunk_init(c, size, 0, 0x5eed);
	d.ops->insert(c);
	return c;
}

/* Remove c as the hooks do under side: 1 if the index had it (it handed
 * back size 0), 0 if it said the pointer was not its own. */
static int unplace(struct chunk *c)
{
	chunk_side_before_remove(c, 1);
	d.ops->remove(c);
	int had = chunk_pending.size != CHUNK_SIZE_NONE;
	if (had) {
		cr_assert_eq(chunk_pending.size, 0, "an index without records handed back a size");
		placed_size[(chunk_user(c) - (uintptr_t)region) / 16] = 0;
	}
	return had;
}

/* The answer for offset: the offset of the base found, or -1. */
static long answer_at(size_t offset, size_t *size)
{
	void *base;
	const void *site = (const void *)1;
	if (!inproc_lookup(&d, region + offset, &base, size, &site))
		return -1;
	cr_assert_null(site, "a site under side without records");
	return (long)((unsigned char *)base - region);
}

static void expect_chunk(size_t start, size_t size)
{
	size_t got_size;
	long got = answer_at(start, &got_size);
	cr_assert_eq(got, (long)start, "first byte of the chunk at %zu: found %ld", start, got);
	cr_assert_eq(got_size, size, "the chunk at %zu: size %zu, not %zu", start, got_size, size);
	got = answer_at(start + size - 1, &got_size);
	cr_assert_eq(got, (long)start, "last byte of the chunk at %zu: found %ld", start, got);
}

TestSuite(memtable_masks, .init = setup_side);

/* Four chunks start in one bin (slots 0..3); the middle two go, and the
 * lookups of their bytes must find nothing (the slot-0 chunk, the nearest
 * start below, ends before them), while the outer two stay found. */
Test(memtable_masks, four_starts_in_one_bin_and_the_middle_ones_removed)
{
	size_t b = 4096; /* a bin's base: a multiple of 64 */
	struct chunk *c[4];
	for (int i = 0; i < 4; i++)
		c[i] = place(b + 16 * (size_t)i, 16);
	for (int i = 0; i < 4; i++)
		expect_chunk(b + 16 * (size_t)i, 16);
	cr_assert(unplace(c[1]));
	cr_assert(unplace(c[2]));
	cr_assert_eq(answer_at(b + 16, NULL), -1, "a removed chunk's first byte found");
	cr_assert_eq(answer_at(b + 47, NULL), -1, "a removed chunk's last byte found");
	expect_chunk(b, 16);
	expect_chunk(b + 48, 16);
	cr_assert(unplace(c[0]));
	cr_assert(unplace(c[3]));
	cr_assert_eq(answer_at(b, NULL), -1);
	cr_assert_eq(answer_at(b + 63, NULL), -1);
}

/* A chunk reaching over several bins is found from each of them, with the
 * bins' own starts above the address skipped: the nearest start at or
 * below the address is in the bin below (the own bin's slots above the
 * address count for nothing), across the near word's eight bins and past
 * it. */
Test(memtable_masks, nearest_start_below_skips_the_own_bins_higher_slots)
{
	size_t b = 8192;
	place(b + 16, 700); /* bins b .. b + 704 */
	struct chunk *above = place(b + 16 + 704 + 32, 16); /* slot 2 of the bin after it */
	for (size_t off = 16; off < 716; off += 16)
		cr_assert_eq(answer_at(b + off, NULL), (long)(b + 16), "offset %zu", off);
	cr_assert_eq(answer_at(b + 716, NULL), -1, "one past the end");
	cr_assert_eq(answer_at(b + 16 + 704 + 16, NULL), -1, "below the chunk above, in its bin");
	expect_chunk(b + 16 + 704 + 32, 16);
	cr_assert(unplace(above));
}

/* The own bin's starts above the address hide nothing below: A reaches
 * from bin 0 into bin 1 past slot 1, B starts at slot 2 of bin 1; a byte
 * of A in bin 1 below B is A's (a lookup that counted B's start would
 * answer nothing, B lying above the address). */
Test(memtable_masks, own_bins_start_above_the_address_hides_nothing_below)
{
	size_t b = 10240;
	place(b, 88);
	place(b + 96, 16);
	for (size_t off = 64; off < 88; off += 8)
		cr_assert_eq(answer_at(b + off, NULL), (long)b, "offset %zu of A", off);
	cr_assert_eq(answer_at(b + 88, NULL), -1, "one past A");
	expect_chunk(b + 96, 16);
}

/* A pointer whose start bit is not set is no chunk of the index's: remove
 * says so (CHUNK_SIZE_NONE left) and leaves the bin's other chunks; a
 * second remove of a removed chunk is refused the same way. */
Test(memtable_masks, foreign_pointer_refused_at_remove_and_neighbours_kept)
{
	size_t b = 12288;
	struct chunk *a = place(b, 16), *z = place(b + 48, 16);
	struct chunk *foreign = chunk_of_user(region + b + 16);
	cr_assert_not(unplace(foreign), "a pointer never inserted was taken for a chunk");
	expect_chunk(b, 16);
	expect_chunk(b + 48, 16);
	cr_assert(unplace(a));
	cr_assert_not(unplace(a), "a chunk removed twice");
	expect_chunk(b + 48, 16);
	cr_assert(unplace(z));
}

/* The interior of a freed chunk answers nothing, even with a live chunk
 * further down whose bytes end before it. */
Test(memtable_masks, freed_chunks_interior_answers_nothing)
{
	size_t b = 16384;
	place(b, 32);
	struct chunk *gone = place(b + 64 * 3 + 16, 300);
	expect_chunk(b + 64 * 3 + 16, 300);
	cr_assert(unplace(gone));
	for (size_t off = 0; off < 300; off += 16)
		cr_assert_eq(answer_at(b + 64 * 3 + 16 + off, NULL), -1, "offset %zu of a freed chunk", off);
	expect_chunk(b, 32);
}

/* --- the lock bit ------------------------------------------------------------- */

static struct chunk *held;
static int remove_done;
static int nested_answer;

static void *remove_held(void *arg)
{
	(void)arg;
	cr_assert(unplace(held));
	__atomic_store_n(&remove_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* While a lookup holds the bin: a remove of its chunk must wait for the
 * unlock (else the chunk could be freed under the lookup), and a nested
 * lookup that may not wait (a signal handler's, threads.h: depth > 1)
 * must answer "not known" rather than wait for its own thread. */
static void during_lookup(uintptr_t user)
{
	while_locked = NULL;
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, remove_held, NULL), 0);
	struct timespec pause = { 0, 50 * 1000 * 1000 };
	nanosleep(&pause, NULL);
	cr_assert_not(__atomic_load_n(&remove_done, __ATOMIC_ACQUIRE),
	              "a remove finished while a lookup held the bin");
	struct thread_slot *s = thread_slot();
	cr_assert_not_null(s);
	thread_enter(s);
	thread_enter(s);
	struct chunk_info info = { .no_site = 1 };
	nested_answer = d.ops->lookup(user + 1, &info);
	thread_leave(s);
	thread_leave(s);
	pthread_detach(t);
}

Test(memtable_masks, a_held_bin_makes_removes_wait_and_nested_lookups_unknown, .timeout = 20)
{
	size_t b = 20480;
	held = place(b + 32, 48);
	while_locked = during_lookup;
	size_t size;
	cr_assert_eq(answer_at(b + 40, &size), (long)(b + 32));
	cr_assert_eq(size, 48);
	cr_assert_eq(nested_answer, INDEX_UNKNOWN, "a lookup that may not wait answered %d", nested_answer);
	for (int i = 0; i < 1000 && !__atomic_load_n(&remove_done, __ATOMIC_ACQUIRE); i++) {
		struct timespec pause = { 0, 1000 * 1000 };
		nanosleep(&pause, NULL);
	}
	cr_assert(__atomic_load_n(&remove_done, __ATOMIC_ACQUIRE), "the remove never finished after the unlock");
	cr_assert_eq(answer_at(b + 40, NULL), -1);
}

/* A lookup that may wait (not nested) and finds its bin held waits for the
 * unlock, out of the near path (mask_lock_waiting), then answers: neither
 * before the holder is done nor "not known". */
static size_t waiter_offset;
static long waiter_answer = -2;
static int waiter_done;
static pthread_t waiter;

static void *lookup_held(void *arg)
{
	(void)arg;
	long got = answer_at(waiter_offset, NULL);
	__atomic_store_n(&waiter_answer, got, __ATOMIC_RELAXED);
	__atomic_store_n(&waiter_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void lookup_during_lookup(uintptr_t user)
{
	(void)user;
	while_locked = NULL;
	cr_assert_eq(pthread_create(&waiter, NULL, lookup_held, NULL), 0);
	struct timespec pause = { 0, 50 * 1000 * 1000 };
	nanosleep(&pause, NULL);
	cr_assert_not(__atomic_load_n(&waiter_done, __ATOMIC_ACQUIRE),
	              "a lookup answered while another held its bin");
}

Test(memtable_masks, a_lookup_of_a_held_bin_waits_for_the_unlock_then_answers, .timeout = 20)
{
	size_t b = 32768;
	place(b + 16, 40);
	waiter_offset = b + 16 + 30;
	while_locked = lookup_during_lookup;
	cr_assert_eq(answer_at(b + 16 + 8, NULL), (long)(b + 16));
	cr_assert_eq(pthread_join(waiter, NULL), 0);
	cr_assert_eq(__atomic_load_n(&waiter_answer, __ATOMIC_RELAXED), (long)(b + 16),
	             "the waiting lookup answered %ld", waiter_answer);
}

/* An insert into a bin that a lookup holds is not lost: the unlock keeps
 * the start bits set meanwhile. */
static void insert_during_lookup(uintptr_t user)
{
	(void)user;
	while_locked = NULL;
	place(24576 + 48, 16);
}

Test(memtable_masks, insert_into_a_held_bin_survives_the_unlock)
{
	size_t b = 24576;
	place(b, 16);
	while_locked = insert_during_lookup;
	expect_chunk(b, 16);
	expect_chunk(b + 48, 16);
	expect_chunk(b, 16);
}

/* --- the common cases the hooks run outside the fork bracket ---------------------- */

static uintptr_t remove_tried_at;
static int remove_while_held;

static void remove_during_lookup(uintptr_t user)
{
	(void)user;
	while_locked = NULL;
	remove_while_held = memtable_index_side_remove_fast(remove_tried_at);
}

static unsigned char table_byte(uintptr_t user)
{
	return __atomic_load_n(memtable_hot.entries + (user >> 6), __ATOMIC_RELAXED);
}

/* start_masks.h: the inline insert takes an aligned pointer of the flat
 * table on a page already marked, no bigger than any small chunk so far,
 * and the inline remove clears a start bit no lookup holds; everything
 * else they refuse with the table byte unchanged, for the bodies' slow
 * paths in the fork bracket: a misaligned pointer (one compare of the
 * pointer rotated right by 4 rejects it with the uncovered ones), one
 * past the table, a larger size, a start not set, a bin a lookup holds,
 * NULL. */
Test(memtable_masks, common_cases_refuse_all_but_one_write_to_a_marked_page, .timeout = 20)
{
	if (!memtable_hot.rotated_limit)
		cr_skip_test("the table is two-level: the common cases refuse every pointer");
	size_t b = 28672;
	place(b, 48); /* marks the page, and max_small_size is 48 */
	size_t max = __atomic_load_n(&memtable_hot.max_small_size, __ATOMIC_RELAXED);
	cr_assert_eq(max, 48);
	uintptr_t at = (uintptr_t)(region + b + 64); /* slot 0 of the next bin */
	cr_assert_eq(table_byte(at), 0);
	for (uintptr_t off = 1; off < 16; off++)
		cr_assert_not(memtable_index_side_insert_fast(at + off, 16), "misaligned by %zu taken",
		              (size_t)off);
	cr_assert_not(memtable_index_side_insert_fast(at, max + 1), "a chunk larger than any so far taken");
	cr_assert_not(memtable_index_side_insert_fast(memtable_hot.rotated_limit << 4, 16),
	              "a pointer past the table taken");
	cr_assert_eq(table_byte(at), 0, "a refused insert wrote the table");

	placed_size[(b + 64) / 16] = 16;
	cr_assert(memtable_index_side_insert_fast(at, 16));
	cr_assert_eq(table_byte(at), 1);
	expect_chunk(b + 64, 16);
	expect_chunk(b, 48);

	cr_assert_not(memtable_index_side_remove_fast(at + 16), "a start never set cleared");
	cr_assert_not(memtable_index_side_remove_fast(at + 8), "a misaligned pointer removed");
	cr_assert_not(memtable_index_side_remove_fast(0), "NULL removed");
	remove_tried_at = at;
	while_locked = remove_during_lookup;
	expect_chunk(b + 64, 16);
	cr_assert_not(remove_while_held, "the start cleared while a lookup held its bin");
	cr_assert_eq(table_byte(at), 1, "a refused remove changed the byte");
	cr_assert(memtable_index_side_remove_fast(at));
	placed_size[(b + 64) / 16] = 0;
	cr_assert_eq(table_byte(at), 0);
	cr_assert_eq(answer_at(b + 64, NULL), -1);
	expect_chunk(b, 48);
}

/* Only bins of at most 64 bytes have room for four starts and the lock. */
Test(memtable_masks_config, side_refused_with_bins_over_64_bytes)
{
	struct heapindex_config cfg = { .addr_bits = config_default_addr_bits(), .bin_shift = 7,
		                        .meta = META_SIDE };
	char err[256] = "";
	const struct index_ops *ops = index_by_name("memtable");
	cr_assert_lt(config_meta_for(&cfg, ops->name, ops->caps, err, sizeof err), 0);
	cr_assert(strstr(err, "HEAPINDEX_BIN_SHIFT") && strstr(err, "6"), "%s", err);
	cfg.meta = -1;
	cr_assert_eq(config_meta_for(&cfg, ops->name, ops->caps, err, sizeof err), META_HEADER,
	             "the default with 128-byte bins is not header");
	cfg.bin_shift = 6;
	cr_assert_eq(config_meta_for(&cfg, ops->name, ops->caps, err, sizeof err), META_SIDE);
}

/* The hooks stop a program asking for side with 128-byte bins: exit 2,
 * nothing run, one line naming the shift and its valid range. */
Test(memtable_masks_config, hooks_refuse_side_with_bins_over_64_bytes)
{
	char *argv[] = { "sh", "-c", "echo ran", NULL };
	const char *env[] = { "HEAPINDEX_META=side", "HEAPINDEX_BIN_SHIFT=7", NULL };
	struct program_result r = run_program(argv, hook_library("memtable"), env);
	cr_assert_eq(r.status, 2, "exit %d: %s", r.status, r.err);
	cr_assert_str_empty(r.out);
	cr_assert(strstr(r.err, "HEAPINDEX_BIN_SHIFT") && strstr(r.err, "from 4 to 6") && strstr(r.err, "not 7"),
	          "%s", r.err);
	cr_assert_eq(strchr(r.err, '\n'), r.err + r.err_len - 1, "not one line: %s", r.err);
	program_result_free(&r);
}
