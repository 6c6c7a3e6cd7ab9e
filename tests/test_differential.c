/* test_differential.c - every index against one reference, on the same
 * random allocation traffic.
 *
 * The reference is the obviously right answer: a sorted array of live
 * [base, base + size) and a binary search.  Each index (but one that answers
 * no lookups by design, index_ops.caps) runs the same seeded sequences of malloc, free,
 * realloc (as free + malloc, which is what the hooks do to the index),
 * memalign of mixed sizes -- mostly small, as programs allocate, some over
 * glibc's 128 KiB mmap threshold, a few of several MiB -- interleaved with
 * lookups of first, interior, last and one-past-the-end bytes, header bytes,
 * gaps, freed chunks and addresses that are no heap at all.  The first
 * disagreement fails the test with the index, seed and operation number:
 * rerun with that seed and stop at that operation to debug.
 *
 * Chunks come from two places, in separate tests: the process's real heap
 * (inproc_alloc: aligned_alloc, so brk heap and mmapped chunks alike), and
 * an arena where the test places chunks itself, touching each other and
 * straddling 4 GiB (a 1 GiB bitmap region boundary and 2^32, a 32-bit
 * memtable's limit).  Each run starts with every awkward size alone (where
 * any bound an index keeps on chunk sizes is tightest), then 200,000 random
 * operations.  Each Criterion test runs in its own process, so every index
 * starts fresh; a test runs its seeds one after another on the same index,
 * which is emptied in between.
 *
 * With the shared lookup cache on (hooks/lookup_cache.h) every check looks
 * up twice, the second answer usually the cache's, and every chunk is looked
 * up just before and just after its free: a cached answer that outlives its
 * chunk disagrees with the reference.  A test apart has another thread free
 * and realloc chunks this thread has cached.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "index_list.h"
#include "index_params.h"
#include "inproc.h"
#include "lookup_cache.h"
#include "support.h"

#define OPS_PER_SEED 200000
static const uint64_t seeds[] = { 0x9e3779b97f4a7c15u, 42, 20221111 };
#define N_SEEDS (sizeof seeds / sizeof *seeds)

#define SMALL_MAX ((size_t)128 << 10) /* glibc's mmap threshold */
#define MAX_LIVE_BIG 6                /* bounds the test's footprint */

/* --- xorshift64* ------------------------------------------------------------ */

static uint64_t rng_state;

static uint64_t rnd(void) { return test_random(&rng_state); }

static uint64_t below(uint64_t n) { return n ? rnd() % n : 0; }
static int percent(unsigned p) { return below(100) < p; }

/* Log-uniform in [lo, hi]: as many 1-2 KiB sizes as 64-128 KiB ones. */
static size_t log_uniform(size_t lo, size_t hi)
{
	unsigned lo_bits = 64 - (unsigned)__builtin_clzll(lo), hi_bits = 64 - (unsigned)__builtin_clzll(hi);
	unsigned bits = lo_bits + (unsigned)below(hi_bits - lo_bits + 1);
	size_t v = ((size_t)1 << (bits - 1)) | (rnd() & (((size_t)1 << (bits - 1)) - 1));
	return v < lo ? lo : v > hi ? hi : v;
}

/* --- the reference ------------------------------------------------------------ */

struct live_chunk {
	uintptr_t base;
	size_t size;
	uintptr_t site;
};

static struct live_chunk *live;
static size_t live_count, live_capacity, live_big;

/* Number of live chunks whose base is <= addr. */
static size_t ref_count_at_or_below(uintptr_t addr)
{
	size_t lo = 0, hi = live_count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (live[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void ref_insert(struct live_chunk c)
{
	if (live_count == live_capacity) {
		live_capacity = live_capacity ? 2 * live_capacity : 1024;
		live = realloc(live, live_capacity * sizeof *live);
		cr_assert_not_null(live);
	}
	size_t at = ref_count_at_or_below(c.base);
	memmove(&live[at + 1], &live[at], (live_count - at) * sizeof *live);
	live[at] = c;
	live_count++;
	live_big += c.size > SMALL_MAX;
}

static struct live_chunk ref_remove_at(size_t at)
{
	struct live_chunk c = live[at];
	memmove(&live[at], &live[at + 1], (live_count - at - 1) * sizeof *live);
	live_count--;
	live_big -= c.size > SMALL_MAX;
	return c;
}

static const struct live_chunk *ref_lookup(uintptr_t addr)
{
	size_t n = ref_count_at_or_below(addr);
	if (n == 0)
		return NULL;
	const struct live_chunk *c = &live[n - 1];
	return addr - c->base < c->size ? c : NULL;
}

/* --- one run: an index, a seed, OPS_PER_SEED operations -------------------------- */

static struct inproc index_under_test;

/* Where chunks come from (see the models below). */
struct heap_model {
	const char *name;
	void *(*alloc)(size_t size, size_t align, uintptr_t site);
	void (*free)(void *user);
	int (*setup)(void);
};
static const struct heap_model *model;
static const char *index_name;
static uint64_t seed;
static size_t op;

/* Freed chunks, to look up after they are gone. */
#define FREED_RING 256
static struct live_chunk freed[FREED_RING];
static size_t freed_count;

static int static_datum;
static uintptr_t unmapped; /* an address mapped once and unmapped */

static int cached; /* the lookup cache is on: look up twice, around frees */

static void check_once(uintptr_t addr, const char *what)
{
	void *base = NULL;
	size_t size = 0;
	const void *site = NULL;
	int hit = inproc_lookup(&index_under_test, (const void *)addr, &base, &size, &site);
	const struct live_chunk *want = ref_lookup(addr);
	cr_assert(hit == (want != NULL) &&
	          (!hit || ((uintptr_t)base == want->base && size == want->size &&
	                    (uintptr_t)site == want->site)),
	          "index %s, %s, seed %llu, operation %zu: lookup(%#lx) (%s) gave %s [%#lx, +%zu) "
	          "site %#lx; the reference says %s [%#lx, +%zu) site %#lx",
	          index_name, model->name, (unsigned long long)seed, op, (unsigned long)addr, what,
	          hit ? "found" : "not found", (unsigned long)base, size, (unsigned long)site,
	          want ? "found" : "not found", want ? (unsigned long)want->base : 0ul,
	          want ? want->size : 0, want ? (unsigned long)want->site : 0ul);
	/* Without the site: an index may answer from its own memory then
	 * (bytemap, the memtable's head entries), and must agree. */
	void *base_only = NULL;
	size_t size_only = 0;
	int hit_only = inproc_lookup(&index_under_test, (const void *)addr, &base_only, &size_only, NULL);
	cr_assert(hit_only == hit && (!hit || (base_only == base && size_only == size)),
	          "index %s, %s, seed %llu, operation %zu: lookup(%#lx) (%s) without site gave %s [%#lx, +%zu), "
	          "with site %s [%#lx, +%zu)",
	          index_name, model->name, (unsigned long long)seed, op, (unsigned long)addr, what,
	          hit_only ? "found" : "not found", (unsigned long)base_only, size_only,
	          hit ? "found" : "not found", (unsigned long)base, size);
}

static void check(uintptr_t addr, const char *what)
{
	check_once(addr, what);
	if (cached)
		check_once(addr, what);
}

static size_t random_size(void)
{
	unsigned r = (unsigned)below(10000);
	if (r < 50)
		return 0;                               /* malloc(0): contains nothing */
	if (r < 7000)
		return 1 + below(64);                   /* most allocations are tiny */
	if (r < 9000)
		return 65 + below(1024 - 64);
	if (r < 9945 || live_big >= MAX_LIVE_BIG)
		return log_uniform(1025, SMALL_MAX);
	if (r < 9995)
		return log_uniform(SMALL_MAX + 1, (size_t)1 << 20); /* mmapped by glibc */
	return log_uniform((size_t)2 << 20, (size_t)6 << 20);  /* a few multi-MiB */
}

/* --- where chunks come from ------------------------------------------------------
 * "heap": the process's own malloc, through inproc, as the hooks would do it.
 * "arena": chunks the test places itself in a window of address space around
 * 4 GiB, so they straddle a 1 GiB boundary (the bitmap's regions), 2^32 (a
 * 32-bit memtable's limit) and every bin boundary, and often touch (the next
 * chunk's links start where the last chunk ends).  Freed arena chunks get
 * their header and links overwritten, as a real allocator's free lists do. */

static void *heap_alloc(size_t size, size_t align, uintptr_t site)
{
	return inproc_alloc(&index_under_test, size, align, site);
}

static void heap_free(void *user) { inproc_free(&index_under_test, user); }
static int heap_setup(void) { return 0; }

#define ARENA_BYTES ((uintptr_t)128 << 20)
static uintptr_t arena_boundary, arena_lo, arena_hi, arena_next;

static int arena_setup(void)
{
	/* 4 GiB, or where AddressSanitizer (SANITIZE=1), whose shadow covers
	 * 4 GiB, leaves room: 32 TiB, still a 1 GiB region boundary. */
	static const uintptr_t boundaries[] = { (uintptr_t)1 << 32, (uintptr_t)1 << 45 };
	if (arena_lo)
		return 0;
	for (size_t i = 0; i < sizeof boundaries / sizeof *boundaries; i++) {
		/* MAP_NORESERVE: only the pages of headers and links are touched. */
		void *want = (void *)(boundaries[i] - ARENA_BYTES / 2);
		void *p = mmap(want, ARENA_BYTES, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
		if (p == want) {
			arena_boundary = boundaries[i];
			arena_lo = arena_next = (uintptr_t)p;
			arena_hi = arena_lo + ARENA_BYTES;
			return 0;
		}
		if (p != MAP_FAILED)
			munmap(p, ARENA_BYTES); /* a kernel without MAP_FIXED_NOREPLACE */
	}
	return -1;
}

/* Make the next chunk of this size straddle the boundary. */
static int arena_aimed;
static void arena_aim_across(size_t size)
{
	arena_next = arena_boundary - size / 2 - index_under_test.header_bytes;
	arena_aimed = 1;
}

static uintptr_t round_up(uintptr_t v, size_t align) { return (v + align - 1) & ~(uintptr_t)(align - 1); }

/* Next fit from arena_next, wrapping once: the lowest place after it where
 * [user - header, user + size) overlaps no live chunk's [base - header, end). */
static void *arena_alloc(size_t size, size_t align, uintptr_t site)
{
	size_t header = index_under_test.header_bytes;
	uintptr_t pos = arena_next;
	if (!arena_aimed && percent(50))
		pos += CHUNK_ALIGN * below(16);
	arena_aimed = 0;
	for (int wrapped = 0;;) {
		uintptr_t user = round_up(pos + header, align);
		if (user + size > arena_hi) {
			if (wrapped++)
				return NULL;
			pos = arena_lo;
			continue;
		}
		/* Only the live chunk with the highest base whose links start below
		 * our end can overlap us: the ones below it end before it. */
		size_t n = ref_count_at_or_below(user + size + header - 1);
		if (n && live[n - 1].base + live[n - 1].size > user - header) {
			pos = round_up(live[n - 1].base + live[n - 1].size, CHUNK_ALIGN);
			continue;
		}
		arena_next = user + size;
		struct chunk *c = chunk_of_user((void *)user);
		chunk_init(c, size, header, site);
		index_under_test.ops->insert(c);
		return (void *)user;
	}
}

static void arena_free(void *user)
{
	size_t header = index_under_test.header_bytes;
	index_under_test.ops->remove(chunk_of_user(user));
	lookup_cache_note_removed(chunk_of_user(user)); /* as inproc_free */
	memset((char *)user - header, 0xdb, header);
}

static const struct heap_model heap_model = { "heap", heap_alloc, heap_free, heap_setup };
static const struct heap_model arena_model = { "arena", arena_alloc, arena_free, arena_setup };

static void do_alloc(size_t size, size_t align)
{
	void *p = model->alloc(size, align, (uintptr_t)op + 1);
	while (!p && size > SMALL_MAX) /* no gap that big left in the arena */
		p = model->alloc(size /= 2, align, (uintptr_t)op + 1);
	cr_assert_not_null(p, "index %s, %s, seed %llu, operation %zu: cannot allocate %zu bytes",
	                   index_name, model->name, (unsigned long long)seed, op, size);
	cr_assert_eq((uintptr_t)p % align, 0);
	/* The size lookups answer: under trailer the usable size (chunk.h),
	 * and under side without records the usable size and no site
	 * (index.h, INDEX_SIDE_TELLS). */
	uintptr_t site = (uintptr_t)op + 1;
	if (chunk_meta == META_TRAILER)
		size = chunk_size(chunk_of_user(p));
	if (chunk_meta == META_SIDE &&
	    (index_under_test.ops->caps & (INDEX_SIDE_TELLS | INDEX_SIDE_RECORDS)) == INDEX_SIDE_TELLS) {
		size = chunk_held_size(chunk_of_user(p));
		site = 0;
	}
	ref_insert((struct live_chunk){ (uintptr_t)p, size, site });
}

static void do_free(size_t at)
{
	if (cached && live[at].size)
		check(live[at].base, "about to be freed");
	struct live_chunk c = ref_remove_at(at);
	model->free((void *)c.base);
	freed[freed_count++ % FREED_RING] = c;
	/* Sampled: in a sparse heap a miss costs the hash indexes a long
	 * probe run, and the freed lookups below cover the rest. */
	if (cached || percent(20))
		check(c.base, "just freed");
}

/* Big chunks are freed sooner (programs drop big buffers sooner; it also
 * keeps the hash indexes' probe runs, which grow with the largest live
 * chunk, from dominating the suite's time). */
static size_t random_victim(void)
{
	size_t at = below(live_count);
	if (live_big && percent(2))
		while (live[at].size <= SMALL_MAX)
			at = (at + 1) % live_count;
	return at;
}

static uintptr_t heap_span_address(void)
{
	uintptr_t lo = live[0].base, hi = live[live_count - 1].base + live[live_count - 1].size;
	return lo + below(hi - lo + 1);
}

/* Lookups, by kind.  Addresses in the heap's span but far from any chunk
 * are the hash indexes' worst case (a probe per 16 bytes of the largest
 * live chunk, thousands of them): they are tested, but rarely, so the
 * suite stays fast. */
static void do_lookup(void)
{
	int local;
	const struct live_chunk *c = &live[below(live_count)];
	unsigned kind = (unsigned)below(1000);
	if (kind < 300)
		check(c->base + below(c->size ? c->size : 1), "interior");
	else if (kind < 420)
		check(c->base, "first byte");
	else if (kind < 540)
		check(c->base + c->size - 1, "last byte");
	else if (kind < 640)
		check(c->base + c->size, "one past the end");
	else if (kind < 680)
		check(c->base - 1 - below(CHUNK_HEADER_BYTES + index_under_test.ops->links_bytes),
		      "header or links");
	else if (kind < 740)
		check(c->base + c->size + below(64), "gap after a chunk");
	else if (kind < 860 && freed_count) {
		const struct live_chunk *f = &freed[below(freed_count < FREED_RING ? freed_count : FREED_RING)];
		check(f->base + below(f->size ? f->size : 1), "freed");
	} else if (kind < 995) {
		static const uintptr_t kernel_half = UINT64_C(0xffff800000000000);
		const uintptr_t wild[] = { 0, 1, 4095, (uintptr_t)&local, (uintptr_t)&static_datum,
		                           (uintptr_t)&check, kernel_half, UINTPTR_MAX,
		                           (uintptr_t)1 << 47, ((uintptr_t)1 << 47) - 16 };
		check(wild[below(sizeof wild / sizeof *wild)], "not heap");
	} else if (kind < 998) {
		check(unmapped, "unmapped");
	} else {
		check(heap_span_address(), "anywhere in the heap's span");
	}
}

static void write_stats_fits(void)
{
	static char buf[16384];
	cr_assert_not(index_stats_json(index_under_test.ops, buf, sizeof buf), "index %s: write_stats overflows",
	              index_name);
}

/* One chunk alone of each awkward size (every size to 1 KiB, then m * 2^k
 * + {-1, 0, 1} for m = 4..8, to 48 MiB), probed at and around its edges:
 * with a single chunk live, any bound an index keeps on chunk sizes is as
 * tight as it gets.  In the arena each straddles the 4 GiB boundary.
 * Operation numbers here count the sizes. */
static void sweep_sizes(void)
{
	size_t sizes[1100 + 20 * 5 * 3], n = 0;
	for (size_t sz = 0; sz < 1100; sz++)
		sizes[n++] = sz;
	for (unsigned k = 10; k < 24; k++)
		for (size_t m = 4; m <= 8; m++)
			for (int d = -1; d <= 1; d++)
				sizes[n++] = (m << (k - 2)) + (size_t)d;
	for (op = 0; op < n; op++) {
		if (model == &arena_model)
			arena_aim_across(sizes[op]);
		do_alloc(sizes[op], CHUNK_ALIGN);
		const struct live_chunk c = live[0];
		check(c.base - 1, "byte before a lone chunk");
		check(c.base, "first byte of a lone chunk");
		check(c.base + c.size / 2, "middle of a lone chunk");
		check(c.base + c.size - 1, "last byte of a lone chunk");
		check(c.base + c.size, "one past a lone chunk");
		do_free(0);
		check(c.base + c.size - 1, "last byte of a freed lone chunk");
	}
}

static void run(uint64_t run_seed)
{
	seed = run_seed;
	rng_state = run_seed ? run_seed : 1;
	freed_count = 0;
	void *m = mmap(NULL, 1 << 16, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(m, MAP_FAILED);
	munmap(m, 1 << 16);
	unmapped = (uintptr_t)m + 4096;
	if (run_seed == seeds[0])
		sweep_sizes();

	/* The live population drifts between targets, so indexes see growth,
	 * steady churn and mass frees. */
	size_t target = 2000;
	for (op = 0; op < OPS_PER_SEED; op++) {
		if (op % 20000 == 0)
			target = 50 + below(20000);
		unsigned r = (unsigned)below(100);
		int grow = live_count < target;
		if (live_count == 0 || r < (grow ? 30u : 20u)) {
			do_alloc(random_size(), CHUNK_ALIGN);
		} else if (r < 50) {
			do_free(random_victim());
		} else if (r < 55) { /* realloc: the index sees a free and a malloc */
			do_free(random_victim());
			do_alloc(random_size(), CHUNK_ALIGN);
		} else if (r < 57) {
			static const size_t aligns[] = { 32, 64, 128, 256, 4096, 65536 };
			size_t align = aligns[below(sizeof aligns / sizeof *aligns)];
			do_alloc(align == 65536 ? below(4096) : random_size(), align);
		} else {
			do_lookup();
		}
	}
	write_stats_fits();
	/* Everything goes; nothing must be found afterwards, and the next seed
	 * starts from an emptied index. */
	while (live_count) {
		struct live_chunk c = live[live_count - 1];
		do_free(live_count - 1);
		check(c.base + c.size / 2, "freed at the end");
	}
	write_stats_fits();
}

/* Run an index on every seed with chunks from the given models.  The index
 * is fresh (each test is its own process) and emptied between runs. */
static void run_index(const char *name, const struct heapindex_config *cfg,
                      const struct heap_model *const models[])
{
	struct heapindex_config defaults = { .addr_bits = config_default_addr_bits(),
		                             .bin_shift = CONFIG_BIN_SHIFT_DEFAULT };
	index_name = name;
	const struct index_ops *ops = index_by_name(name);
	cr_assert_not_null(ops, "no index named %s", name);
	char err[512];
	cr_assert_eq(inproc_init(&index_under_test, ops, cfg ? cfg : &defaults, err, sizeof err), 0,
	             "%s", err);
	for (; *models; models++) {
		model = *models;
		cr_assert_eq(model->setup(), 0, "cannot map the arena around 4 GiB or 32 TiB: %m");
		for (size_t i = 0; i < N_SEEDS; i++)
			run(seeds[i]);
	}
}

static const struct heap_model *const heap_only[] = { &heap_model, NULL };
static const struct heap_model *const arena_only[] = { &arena_model, NULL };
static const struct heap_model *const both_models[] = { &heap_model, &arena_model, NULL };

/* --- the lookup cache ------------------------------------------------------------- */

#define CACHE_ENTRIES 16 /* few: entries are replaced often, stale ones would show */

static const struct heapindex_config cache_config = { .addr_bits = 47, .bin_shift = CONFIG_BIN_SHIFT_DEFAULT,
	                                              .lookup_cache = CACHE_ENTRIES };

/* The whole differential run through the cache, in both chunk models. */
static void skip_if_it_answers_nothing(const char *name)
{
	const struct index_ops *ops = index_by_name(name);
	cr_assert_not_null(ops, "no index named %s", name);
	if (!(ops->caps & INDEX_ANSWERS_LOOKUPS))
		cr_skip_test("%s answers no lookups (index_ops.caps)", name);
}

static void run_cached(const char *name)
{
	skip_if_it_answers_nothing(name);
	cached = 1;
	run_index(name, &cache_config, both_models);
}

/* Chunks the other thread frees, or reallocs (a free and a malloc, as the
 * hooks tell the index), while this one waits: no assertion runs there. */
#define HANDOFF 24

struct handoff {
	size_t n;
	struct live_chunk old[HANDOFF], made[HANDOFF];
	int replace[HANDOFF];
};

static void *free_and_realloc(void *arg)
{
	struct handoff *h = arg;
	for (size_t i = 0; i < h->n; i++) {
		model->free((void *)h->old[i].base);
		if (h->replace[i]) {
			size_t size = h->old[i].size / 2 + 1 + (i % 2) * 3000;
			void *p = model->alloc(size, CHUNK_ALIGN, 0x7e57 + i);
			h->made[i] = (struct live_chunk){ (uintptr_t)p, p ? size : 0, 0x7e57 + i };
		}
	}
	return NULL;
}

/* This thread looks chunks up (twice: cached), another frees or reallocs
 * them, then this thread's lookups of their old addresses must agree with
 * the reference: nothing there, or the chunk now there.  Without the
 * invalidation on free every index that reads the header failed here. */
static void cache_across_threads(const char *name)
{
	skip_if_it_answers_nothing(name);
	index_name = name;
	const struct index_ops *ops = index_by_name(name);
	cr_assert_not_null(ops, "no index named %s", name);
	char err[512];
	cr_assert_eq(inproc_init(&index_under_test, ops, &cache_config, err, sizeof err), 0, "%s", err);
	cached = 1;
	model = &heap_model;
	seed = 7;
	rng_state = seed;
	for (op = 0; op < 20000;) {
		while (live_count < 200) {
			do_alloc(1 + below(600), CHUNK_ALIGN);
			op++;
		}
		for (size_t i = 0; i < live_count; i++)
			check(live[i].base + live[i].size / 2, "live, before the other thread");
		struct handoff h = { .n = 0 };
		while (h.n < HANDOFF) {
			h.replace[h.n] = percent(50);
			h.old[h.n++] = ref_remove_at(random_victim());
		}
		pthread_t t;
		cr_assert_eq(pthread_create(&t, NULL, free_and_realloc, &h), 0);
		cr_assert_eq(pthread_join(t, NULL), 0);
		for (size_t i = 0; i < h.n; i++)
			if (h.replace[i]) {
				cr_assert_not_null((void *)h.made[i].base, "cannot allocate %zu bytes", h.made[i].size);
				ref_insert(h.made[i]);
			}
		for (size_t i = 0; i < h.n; i++, op++) {
			const struct live_chunk *o = &h.old[i];
			check(o->base + o->size / 2, h.replace[i] ? "realloc'd by another thread"
			                                          : "freed by another thread");
			check(o->base, "first byte of a chunk another thread freed");
		}
	}
	while (live_count)
		do_free(live_count - 1);
}

/* Two tests per index in the generated list: the heap and the arena in
 * separate processes, because the hash indexes' bounds of every chunk ever
 * seen would span both, and turn every wild lookup between them into a full
 * probe run.  An index that answers no lookups by design (index_ops.caps)
 * has nothing to compare: its tests skip. */
static void run_if_it_answers(const char *name, const struct heap_model *const models[])
{
	const struct index_ops *ops = index_by_name(name);
	cr_assert_not_null(ops, "no index named %s", name);
	if (!(ops->caps & INDEX_ANSWERS_LOOKUPS))
		cr_skip_test("%s answers no lookups (index_ops.caps)", name);
	run_index(name, NULL, models);
}

#define DIFFERENTIAL_TEST(name)                                                               \
	Test(differential, name, .timeout = 120) { run_if_it_answers(#name, heap_only); }     \
	Test(differential, name##_arena, .timeout = 120) { run_if_it_answers(#name, arena_only); } \
	Test(differential, name##_cached, .timeout = 120) { run_cached(#name); }                 \
	Test(differential, name##_cache_across_threads, .timeout = 60) { cache_across_threads(#name); }

HEAPINDEX_FOR_EACH_INDEX(DIFFERENTIAL_TEST)

/* Every index in all_indexes has its tests above. */
Test(differential, every_index_is_tested)
{
	size_t listed = 0, tested = 0;
#define COUNT(name) tested++;
	HEAPINDEX_FOR_EACH_INDEX(COUNT)
	while (all_indexes[listed])
		listed++;
	cr_assert_eq(tested, listed);
}

/* Every placement other than header that an index takes (its caps), on the
 * process's heap (the arena's chunks are no allocator's, and trailer asks
 * the allocator where a chunk ends): the answers are the same. */
struct index_placement {
	char name[32];
	int meta;
};

ParameterizedTestParameters(differential, other_placements)
{
	static struct index_placement pairs[32 * META_COUNT];
	size_t n = 0;
	for (size_t i = 0; all_indexes[i] && n + META_COUNT <= sizeof pairs / sizeof *pairs; i++)
		for (int m = META_HEADER + 1; m < META_COUNT; m++)
			if ((all_indexes[i]->caps & INDEX_ANSWERS_LOOKUPS) && (all_indexes[i]->caps & META_CAP(m))) {
				snprintf(pairs[n].name, sizeof pairs[n].name, "%s", all_indexes[i]->name);
				pairs[n++].meta = m;
			}
	return cr_make_param_array(struct index_placement, pairs, n);
}

ParameterizedTest(struct index_placement *param, differential, other_placements, .timeout = 120)
{
	struct heapindex_config cfg = { .addr_bits = config_default_addr_bits(),
		                        .bin_shift = CONFIG_BIN_SHIFT_DEFAULT, .meta = param->meta };
	run_index(param->name, &cfg, heap_only);
}

/* The memtable's configurations change its structure, not its answers. */
static void memtable_with(unsigned addr_bits, unsigned bin_shift, unsigned table_levels)
{
	struct heapindex_config cfg = { .addr_bits = addr_bits, .bin_shift = bin_shift,
		                        .table_levels = table_levels };
	run_index("memtable", &cfg, both_models);
}

Test(differential, memtable_bin_shift_4, .timeout = 120) { memtable_with(47, 4, 0); }
Test(differential, memtable_bin_shift_11, .timeout = 120) { memtable_with(47, 11, 0); }
/* The two-level table (leaves mapped on first write) at the default shift,
 * and at 57 bits, where only it can be reserved. */
Test(differential, memtable_two_level, .timeout = 120) { memtable_with(47, 6, 2); }
Test(differential, memtable_addr_bits_57, .timeout = 120) { memtable_with(57, 6, 0); }
/* 32 bits cover none of the real heap (every chunk takes the big array)
 * and half of the arena, whose chunks straddle the limit. */
Test(differential, memtable_addr_bits_32, .timeout = 120) { memtable_with(32, 9, 0); }
