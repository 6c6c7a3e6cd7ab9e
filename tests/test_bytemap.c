/* test_bytemap.c - the bytemap index answers base and size from its own
 * map: a lookup that does not want the site (struct chunk_info's no_site,
 * heapindex_lookup with a NULL site) reads no chunk header, and the shared
 * lookup cache never keeps the site such a lookup did not read.
 *
 * The header is made unreadable (PROT_NONE on the page below a page-aligned
 * chunk), so a lookup that reads it faults and the test crashes. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "index_params.h"
#include "inproc.h"
#include "lookup_cache.h"

#define SITE ((uintptr_t)0x5eed)

static struct inproc d;

static void init_bytemap(unsigned lookup_cache)
{
	struct heapindex_config cfg = { .addr_bits = config_default_addr_bits(), .bin_shift = 6,
	                                .lookup_cache = lookup_cache };
	char err[256];
	const struct index_ops *ops = index_by_name("bytemap");
	cr_assert_not_null(ops);
	cr_assert_eq(inproc_init(&d, ops, &cfg, err, sizeof err), 0, "%s", err);
}

static void setup(void) { init_bytemap(0); }
static void setup_cached(void) { init_bytemap(4); }

/* A chunk of size bytes at the start of the second of three fresh pages:
 * its header is the last 16 bytes of the first. */
static struct chunk *place_on_page(size_t size, unsigned char **pages)
{
	long page = sysconf(_SC_PAGESIZE);
	*pages = mmap(NULL, 3 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(*pages, MAP_FAILED);
	struct chunk *c = chunk_of_user(*pages + page);
	chunk_init(c, size, CHUNK_HEADER_BYTES, SITE);
	d.ops->insert(c);
	return c;
}

static void set_header_readable(unsigned char *pages, int readable)
{
	cr_assert_eq(mprotect(pages, (size_t)sysconf(_SC_PAGESIZE), readable ? PROT_READ | PROT_WRITE : PROT_NONE),
	             0);
}

TestSuite(bytemap_site, .init = setup);

Test(bytemap_site, lookup_without_site_reads_no_header)
{
	unsigned char *pages;
	struct chunk *c = place_on_page(100, &pages);
	uintptr_t user = chunk_user(c);
	set_header_readable(pages, 0);
	for (size_t off = 0; off < 100; off += 33) {
		void *base = NULL;
		size_t size = 0;
		cr_assert(inproc_lookup(&d, (const void *)(user + off), &base, &size, NULL), "offset %zu", off);
		cr_assert_eq((uintptr_t)base, user);
		cr_assert_eq(size, 100);
	}
	struct chunk_info info = { .no_site = 1 };
	cr_assert_eq(d.ops->lookup(user + 99, &info), INDEX_FOUND);
	cr_assert_eq(info.base, user);
	cr_assert_eq(info.size, 100);
	cr_assert_eq(info.site, 0, "a site it did not read: %#lx", (unsigned long)info.site);
	cr_assert_not(inproc_lookup(&d, (const void *)(user + 100), NULL, NULL, NULL));
	set_header_readable(pages, 1);
	const void *site = NULL;
	cr_assert(inproc_lookup(&d, (const void *)(user + 7), NULL, NULL, &site));
	cr_assert_eq((uintptr_t)site, SITE);
	d.ops->remove(c);
	munmap(pages, 3 * (size_t)sysconf(_SC_PAGESIZE));
}

TestSuite(bytemap_site_cached, .init = setup_cached);

/* A lookup without the site fills no cache entry (its answer has none), so
 * a later lookup in the same 64-byte line that wants the site misses the
 * cache and gets it from the header; once filled, both kinds hit. */
Test(bytemap_site_cached, siteless_answer_is_never_cached)
{
	unsigned char *pages;
	struct chunk *c = place_on_page(48, &pages);
	uintptr_t user = chunk_user(c);
	struct thread_slot *s = thread_slot();
	cr_assert_not_null(s);
	set_header_readable(pages, 0);
	uint64_t hits = s->counters.lookup_cache_hits, misses = s->counters.lookup_cache_misses;
	void *base = NULL;
	cr_assert(inproc_lookup(&d, (const void *)(user + 1), &base, NULL, NULL));
	cr_assert(inproc_lookup(&d, (const void *)(user + 2), &base, NULL, NULL));
	cr_assert_eq((uintptr_t)base, user);
	cr_assert_eq(s->counters.lookup_cache_hits, hits, "a site-less answer was cached");
	cr_assert_eq(s->counters.lookup_cache_misses, misses + 2);
	set_header_readable(pages, 1);
	const void *site = NULL;
	cr_assert(inproc_lookup(&d, (const void *)(user + 3), NULL, NULL, &site));
	cr_assert_eq((uintptr_t)site, SITE, "site %p", site);
	cr_assert_eq(s->counters.lookup_cache_misses, misses + 3);
	site = NULL;
	cr_assert(inproc_lookup(&d, (const void *)(user + 4), NULL, NULL, &site));
	cr_assert_eq((uintptr_t)site, SITE, "site %p from the cache", site);
	cr_assert(inproc_lookup(&d, (const void *)(user + 5), &base, NULL, NULL));
	cr_assert_eq(s->counters.lookup_cache_hits, hits + 2);
	d.ops->remove(c);
	lookup_cache_note_removed(c);
	munmap(pages, 3 * (size_t)sysconf(_SC_PAGESIZE));
}

/* Sizes 1..300, each chunk ending at the last granule of a page of the map
 * (4,096 granules: 64 KiB of heap) whose next page no insert wrote, and
 * again in the middle of a page: the word-wise scan of size_from stops at
 * the page it may not read, and at a partial or full last granule. */
Test(bytemap_site, sizes_up_to_a_page_of_the_map_never_written)
{
	size_t span = (size_t)1 << 20, map_page = (size_t)16 << 12;
	unsigned char *mem = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(mem, MAP_FAILED);
	uintptr_t boundary = ((uintptr_t)mem + span / 2) & ~(uintptr_t)(map_page - 1);
	for (size_t size = 1; size <= 300; size++) {
		uintptr_t ends[2] = { boundary, boundary - map_page / 2 };
		for (int k = 0; k < 2; k++) {
			uintptr_t user = (ends[k] - size) & ~(uintptr_t)15;
			struct chunk *c = chunk_of_user((void *)user);
			chunk_init(c, size, CHUNK_HEADER_BYTES, SITE);
			d.ops->insert(c);
			for (size_t off = 0; off < size; off += 1 + size / 7) {
				struct chunk_info info = { .no_site = 1 };
				cr_assert_eq(d.ops->lookup(user + off, &info), INDEX_FOUND, "size %zu offset %zu", size, off);
				cr_assert_eq(info.base, user, "size %zu offset %zu", size, off);
				cr_assert_eq(info.size, size, "size %zu offset %zu: %zu", size, off, info.size);
			}
			struct chunk_info info = { .no_site = 1 };
			cr_assert_neq(d.ops->lookup(user + size, &info), INDEX_FOUND, "size %zu: one past the end", size);
			d.ops->remove(c);
		}
	}
	munmap(mem, span);
}

/* --- lookups racing the writers of their stripe ------------------------------
 * Lookups without the site read the map under the stripes' sequence counts,
 * taking no lock (bytemap.c).  Here one thread removes and re-inserts, with
 * ever-changing sizes, the chunks of every other slot of a 16 KiB stretch of
 * one stripe, while this thread looks up random addresses of the stretch.
 * The even slots hold chunks that never change, sharing map words with
 * their churning neighbours (a writer rewrites whole words).  Every answer
 * must be a chunk that was live: in an even slot exactly that chunk, found
 * every time (a lookup whose reads raced a writer falls back to the locks,
 * never to "nothing"); in an odd slot nothing, or the slot's chunk with one
 * of the sizes it takes, containing the address (a read mixing the map
 * before and after a writer gives a start of one size and an end of
 * another).  Between the slots, in the headers: nothing.  One lookup in
 * eight asks for the site, which the locked path reads from the header. */
#define RACE_SLOT 1024
#define RACE_SLOTS 16
#define RACE_MS 1000

static const size_t race_sizes[] = { 1008, 17, 500, 1, 333, 129, 992, 16, 640 };
#define RACE_NSIZES (sizeof race_sizes / sizeof race_sizes[0])

struct race {
	unsigned char *stretch; /* slot k's user pointer: stretch + k * RACE_SLOT + 16 */
	int stop;
	uint64_t writes;
};

static uintptr_t race_user(const struct race *r, size_t k)
{
	return (uintptr_t)r->stretch + k * RACE_SLOT + CHUNK_HEADER_BYTES;
}

static size_t stable_size(size_t k) { return 100 + 7 * k; }

static void *race_writer(void *arg)
{
	struct race *r = arg;
	size_t turn = 0;
	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		for (size_t k = 1; k < RACE_SLOTS; k += 2) {
			struct chunk *c = chunk_of_user((void *)race_user(r, k));
			d.ops->remove(c);
			chunk_init(c, race_sizes[(k + turn) % RACE_NSIZES], CHUNK_HEADER_BYTES, SITE + k);
			d.ops->insert(c);
		}
		turn++;
		__atomic_store_n(&r->writes, r->writes + RACE_SLOTS / 2, __ATOMIC_RELAXED);
	}
	return NULL;
}

static int is_race_size(size_t size)
{
	for (size_t i = 0; i < RACE_NSIZES; i++)
		if (size == race_sizes[i])
			return 1;
	return 0;
}

Test(bytemap_site, lookups_racing_writers_of_their_stripe, .timeout = 60)
{
	/* 16 KiB inside one 1 MiB-aligned stripe. */
	size_t stripe = (size_t)1 << 20, span = RACE_SLOTS * RACE_SLOT;
	unsigned char *mem = mmap(NULL, 2 * stripe, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(mem, MAP_FAILED);
	struct race r = { .stretch = (unsigned char *)(((uintptr_t)mem + stripe - 1) & ~(uintptr_t)(stripe - 1)) };
	for (size_t k = 0; k < RACE_SLOTS; k++) {
		struct chunk *c = chunk_of_user((void *)race_user(&r, k));
		chunk_init(c, k % 2 ? race_sizes[0] : stable_size(k), CHUNK_HEADER_BYTES, SITE + k);
		d.ops->insert(c);
	}
	pthread_t writer;
	cr_assert_eq(pthread_create(&writer, NULL, race_writer, &r), 0);
	uint64_t x = 0x2545f4914f6cdd1du, lookups = 0, found_odd = 0, failures = 0;
	char first[200] = "";
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		for (int i = 0; i < 1024; i++, lookups++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			uintptr_t addr = (uintptr_t)r.stretch + x % span;
			size_t k = (addr - (uintptr_t)r.stretch) / RACE_SLOT;
			uintptr_t user = race_user(&r, k);
			struct chunk_info info = { .no_site = (x >> 40) % 8 != 0 };
			int answer = d.ops->lookup(addr, &info);
			const char *wrong = NULL;
			if (addr < user)
				wrong = answer != INDEX_NONE ? "a header is found" : NULL;
			else if (k % 2 == 0 && addr - user < stable_size(k))
				wrong = answer != INDEX_FOUND || info.base != user || info.size != stable_size(k)
				                ? "a chunk no writer touches is not found exactly"
				                : NULL;
			else if (k % 2 == 0)
				wrong = answer != INDEX_NONE ? "found past a stable chunk's end" : NULL;
			else if (answer == INDEX_FOUND) {
				found_odd++;
				wrong = info.base != user || !is_race_size(info.size) || addr - info.base >= info.size
				                ? "a torn chunk"
				                : NULL;
			} else if (answer != INDEX_NONE)
				wrong = "not known, with no reason to give up";
			if (!wrong && answer == INDEX_FOUND && !info.no_site && info.site != SITE + k)
				wrong = "a wrong site";
			if (wrong && !failures++)
				snprintf(first, sizeof first, "%s: lookup of slot %zu + %zu answered %d, base %+ld, size %zu",
				         wrong, k, (size_t)(addr - user), answer,
				         answer == INDEX_FOUND ? (long)(info.base - user) : 0L,
				         answer == INDEX_FOUND ? info.size : 0);
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < RACE_MS);
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
	pthread_join(writer, NULL);
	cr_assert_eq(failures, 0, "%" PRIu64 " wrong of %" PRIu64 " lookups; first: %s", failures, lookups, first);
	cr_assert_gt(r.writes, 1000, "the writer made only %" PRIu64 " updates", r.writes);
	cr_assert_gt(found_odd, 1000, "only %" PRIu64 " lookups found a churning chunk", found_odd);
	for (size_t k = 0; k < RACE_SLOTS; k++)
		d.ops->remove(chunk_of_user((void *)race_user(&r, k)));
	munmap(mem, 2 * stripe);
}
