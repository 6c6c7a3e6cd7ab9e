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

/* A page of the map: 4 KiB of nibbles, 8,192 granules, 128 KiB of heap. */
#define MAP_PAGE_HEAP ((size_t)32 << 12)
/* The largest chunk the map holds (bytemap.c's SMALL_MAX): bigger ones go
 * to the shared big array. */
#define MAP_MAX ((size_t)16 << 10)

/* Sizes 1..300, each chunk ending at the last granule of a page of the map
 * whose next page no insert wrote, and again in the middle of a page: the
 * word-wise scan for the chunk's end stops at the page it may not read, and
 * at a partial or full last granule. */
Test(bytemap_site, sizes_up_to_a_page_of_the_map_never_written)
{
	size_t span = (size_t)1 << 20, map_page = MAP_PAGE_HEAP;
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

/* Every byte of the chunk at user (size bytes) is found with exactly that
 * base and size. */
static void check_found(uintptr_t user, size_t size, const char *what)
{
	size_t step = size > 600 ? 7 : 1;
	for (size_t off = 0; off < size; off += off + step >= size && off != size - 1 ? size - 1 - off : step) {
		struct chunk_info info = { .no_site = 1 };
		cr_assert_eq(d.ops->lookup(user + off, &info), INDEX_FOUND, "%s: size %zu offset %zu", what, size, off);
		cr_assert_eq(info.base, user, "%s: size %zu offset %zu: base %+ld", what, size, off,
		             (long)(info.base - user));
		cr_assert_eq(info.size, size, "%s: size %zu offset %zu: size %zu", what, size, off, info.size);
	}
}

/* And its header and the byte past its end are not. */
static void check_exact(uintptr_t user, size_t size, const char *what)
{
	check_found(user, size, what);
	struct chunk_info info = { .no_site = 1 };
	cr_assert_neq(d.ops->lookup(user + size, &info), INDEX_FOUND, "%s: size %zu: one past the end", what, size);
	cr_assert_neq(d.ops->lookup(user - 1, &info), INDEX_FOUND, "%s: size %zu: its header", what, size);
}

/* A chunk's bounds are the free granules around it, its last granule's
 * count the last nibble and the header granule's (bytemap.c).  Chunks at
 * every nibble position of a map word (16 granules, 256 bytes of heap) and
 * across a page of the map, with sizes at every edge of the encoding (last
 * granule 1, 8, 9, 15, 16 bytes; one word; two), each between two live
 * neighbours that leave only the header granules free: the chunk and both
 * neighbours are exact while it lives, and the neighbours still are after
 * its remove. */
Test(bytemap_site, chunks_across_words_and_pages_between_neighbours)
{
	static const size_t sizes[] = { 1, 8, 9, 15, 16, 17, 24, 25, 31, 32, 33, 112, 128, 200, 240,
	                                241, 255, 256, 257, 272, 1000 };
	size_t span = 4 * MAP_PAGE_HEAP;
	unsigned char *mem = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(mem, MAP_FAILED);
	uintptr_t page = ((uintptr_t)mem + 2 * MAP_PAGE_HEAP - 1) & ~(uintptr_t)(MAP_PAGE_HEAP - 1);
	const size_t left_size = 40, right_size = 24;
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t size = sizes[i];
		for (long g = -20; g <= 20; g++) {
			uintptr_t user = page + (uintptr_t)(g * 16);
			/* The left neighbour ends in the granule below user's
			 * header; the right one's header is the granule after
			 * the chunk's last. */
			uintptr_t left = user - 16 - ((left_size + 15) & ~(size_t)15), right = ((user + size + 15) & ~(uintptr_t)15) + 16;
			struct chunk *l = chunk_of_user((void *)left), *c = chunk_of_user((void *)user),
			             *r = chunk_of_user((void *)right);
			chunk_init(l, left_size, CHUNK_HEADER_BYTES, SITE);
			chunk_init(r, right_size, CHUNK_HEADER_BYTES, SITE);
			chunk_init(c, size, CHUNK_HEADER_BYTES, SITE);
			d.ops->insert(l);
			d.ops->insert(r);
			d.ops->insert(c);
			check_exact(user, size, "the chunk");
			check_exact(left, left_size, "its left neighbour");
			check_exact(right, right_size, "its right neighbour");
			d.ops->remove(c);
			struct chunk_info info = { .no_site = 1 };
			for (size_t off = 0; off < size; off += 1 + size / 5)
				cr_assert_neq(d.ops->lookup(user + off, &info), INDEX_FOUND, "size %zu at %ld: removed", size, g);
			check_exact(left, left_size, "its left neighbour, after the remove");
			check_exact(right, right_size, "its right neighbour, after the remove");
			d.ops->remove(l);
			d.ops->remove(r);
		}
	}
	munmap(mem, span);
}

/* The largest chunks the map holds, every count of their last granule, and
 * the first that it does not (the big array's), each crossing a page of the
 * map at every nibble position of its first word: the scans down to the
 * header and up to the end are at their longest (64 words and more). */
Test(bytemap_site, largest_sizes_across_a_page)
{
	size_t span = 4 * MAP_PAGE_HEAP;
	unsigned char *mem = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(mem, MAP_FAILED);
	uintptr_t page = ((uintptr_t)mem + 2 * MAP_PAGE_HEAP - 1) & ~(uintptr_t)(MAP_PAGE_HEAP - 1);
	for (size_t size = MAP_MAX - 16; size <= MAP_MAX + 1; size++) {
		for (size_t g = 0; g < 16; g++) {
			uintptr_t user = page - MAP_MAX / 2 + 16 * g;
			struct chunk *c = chunk_of_user((void *)user);
			chunk_init(c, size, CHUNK_HEADER_BYTES, SITE);
			d.ops->insert(c);
			for (size_t off = 0; off < size; off += off + 1 == size ? 1 : off + 509 >= size ? size - 1 - off : 509) {
				struct chunk_info info = { .no_site = 1 };
				cr_assert_eq(d.ops->lookup(user + off, &info), INDEX_FOUND, "size %zu at %zu offset %zu", size,
				             g, off);
				cr_assert_eq(info.base, user, "size %zu at %zu offset %zu", size, g, off);
				cr_assert_eq(info.size, size, "size %zu at %zu offset %zu: %zu", size, g, off, info.size);
			}
			struct chunk_info info = { .no_site = 1 };
			cr_assert_neq(d.ops->lookup(user + size, &info), INDEX_FOUND, "size %zu: one past the end", size);
			d.ops->remove(c);
			cr_assert_neq(d.ops->lookup(user + size / 2, &info), INDEX_FOUND, "size %zu: removed", size);
		}
	}
	munmap(mem, span);
}

/* Two chunks with no free granule between them, as an allocator without
 * chunk headers gives under trailer: the map cannot show their boundary
 * (bytemap.c reads it from the free granules), so the second inserted goes
 * to the big array, whichever side of the first it lies on, and both stay
 * exact; after the first's remove the second is still found.  (Here the
 * second's header, 16 bytes below it, is the first's last granule: the
 * lookups without the site never read it.) */
Test(bytemap_site, chunks_without_a_gap_between_them)
{
	size_t span = 4 * MAP_PAGE_HEAP;
	unsigned char *mem = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(mem, MAP_FAILED);
	uintptr_t at = ((uintptr_t)mem + MAP_PAGE_HEAP) & ~(uintptr_t)4095;
	static const size_t sizes[] = { 16, 48, 40, 256, 250 };
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t lsize = sizes[i], rsize = sizes[(i + 2) % 5];
		for (int right_first = 0; right_first < 2; right_first++) {
			for (size_t g = 0; g < 16; g++) {
				uintptr_t left = at + 16 * g, right = left + ((lsize + 15) & ~(size_t)15);
				struct chunk *l = chunk_of_user((void *)left), *r = chunk_of_user((void *)right);
				chunk_init(l, lsize, CHUNK_HEADER_BYTES, SITE);
				chunk_init(r, rsize, CHUNK_HEADER_BYTES, SITE); /* over l's last 16 bytes */
				d.ops->insert(right_first ? r : l);
				d.ops->insert(right_first ? l : r);
				check_found(left, lsize, right_first ? "the left chunk, inserted second" : "the left chunk");
				check_found(right, rsize, right_first ? "the right chunk" : "the right chunk, inserted second");
				struct chunk_info info = { .no_site = 1 };
				d.ops->remove(right_first ? r : l);
				uintptr_t other = right_first ? left : right;
				size_t osize = right_first ? lsize : rsize;
				cr_assert_eq(d.ops->lookup(other + osize - 1, &info), INDEX_FOUND);
				cr_assert_eq(info.base, other);
				cr_assert_eq(info.size, osize);
				d.ops->remove(right_first ? l : r);
				cr_assert_neq(d.ops->lookup(other + osize - 1, &info), INDEX_FOUND);
				cr_assert_neq(d.ops->lookup(left, &info), INDEX_FOUND);
			}
		}
	}
	munmap(mem, span);
}

/* --- lookups racing the writers of their stripe ------------------------------
 * Lookups without the site read the map under the stripes' sequence counts,
 * taking no lock (bytemap.c).  Here one thread removes and re-inserts, with
 * ever-changing sizes, the chunks of every other slot of a stretch of one
 * stripe, while this thread looks up random addresses of the stretch.  The
 * even slots hold chunks that never change, next to their churning
 * neighbours (in the dense race sharing map words with them: a writer
 * rewrites whole words).  Every answer
 * must be a chunk that was live: in an even slot exactly that chunk, found
 * every time (a lookup whose reads raced a writer falls back to the locks,
 * never to "nothing"); in an odd slot nothing, or the slot's chunk with one
 * of the sizes it takes, containing the address (a read mixing the map
 * before and after a writer gives a start of one size and an end of
 * another).  Between the slots, in the headers: nothing.  One lookup in
 * eight asks for the site, which the locked path reads from the header. */
#define RACE_MS 1000

/* A race's layout: slots of slot bytes, each a 16-byte header and a chunk;
 * the odd slots' chunks take sizes[(k + turn) % nsizes] in turn (the first
 * when the race starts), the even ones' stable(k) throughout. */
struct race_shape {
	size_t slot, slots;
	const size_t *sizes;
	size_t nsizes;
	size_t (*stable)(size_t k);
};

struct race {
	const struct race_shape *shape;
	unsigned char *stretch; /* slot k's user pointer: stretch + k * slot + 16 */
	int stop;
	uint64_t writes;
};

static uintptr_t race_user(const struct race *r, size_t k)
{
	return (uintptr_t)r->stretch + k * r->shape->slot + CHUNK_HEADER_BYTES;
}

static void *race_writer(void *arg)
{
	struct race *r = arg;
	const struct race_shape *sh = r->shape;
	size_t turn = 0;
	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		for (size_t k = 1; k < sh->slots; k += 2) {
			struct chunk *c = chunk_of_user((void *)race_user(r, k));
			d.ops->remove(c);
			chunk_init(c, sh->sizes[(k + turn) % sh->nsizes], CHUNK_HEADER_BYTES, SITE + k);
			d.ops->insert(c);
		}
		turn++;
		__atomic_store_n(&r->writes, r->writes + sh->slots / 2, __ATOMIC_RELAXED);
	}
	return NULL;
}

static int is_race_size(const struct race_shape *sh, size_t size)
{
	for (size_t i = 0; i < sh->nsizes; i++)
		if (size == sh->sizes[i])
			return 1;
	return 0;
}

/* Runs the race of shape sh for RACE_MS inside one 1 MiB-aligned stripe,
 * checking every answer as the comment above says. */
static void run_race(const struct race_shape *sh)
{
	size_t stripe = (size_t)1 << 20, span = sh->slots * sh->slot;
	unsigned char *mem = mmap(NULL, 2 * stripe, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(mem, MAP_FAILED);
	struct race r = { .shape = sh,
	                  .stretch = (unsigned char *)(((uintptr_t)mem + stripe - 1) & ~(uintptr_t)(stripe - 1)) };
	for (size_t k = 0; k < sh->slots; k++) {
		struct chunk *c = chunk_of_user((void *)race_user(&r, k));
		chunk_init(c, k % 2 ? sh->sizes[0] : sh->stable(k), CHUNK_HEADER_BYTES, SITE + k);
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
			size_t k = (addr - (uintptr_t)r.stretch) / sh->slot;
			uintptr_t user = race_user(&r, k);
			struct chunk_info info = { .no_site = (x >> 40) % 8 != 0 };
			int answer = d.ops->lookup(addr, &info);
			const char *wrong = NULL;
			if (addr < user)
				wrong = answer != INDEX_NONE ? "a header is found" : NULL;
			else if (k % 2 == 0 && addr - user < sh->stable(k))
				wrong = answer != INDEX_FOUND || info.base != user || info.size != sh->stable(k)
				                ? "a chunk no writer touches is not found exactly"
				                : NULL;
			else if (k % 2 == 0)
				wrong = answer != INDEX_NONE ? "found past a stable chunk's end" : NULL;
			else if (answer == INDEX_FOUND) {
				found_odd++;
				wrong = info.base != user || !is_race_size(sh, info.size) || addr - info.base >= info.size
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
	for (size_t k = 0; k < sh->slots; k++)
		d.ops->remove(chunk_of_user((void *)race_user(&r, k)));
	munmap(mem, 2 * stripe);
}

static const size_t wide_sizes[] = { 1008, 17, 500, 1, 333, 129, 992, 16, 640 };

static size_t wide_stable(size_t k) { return 100 + 7 * k; }

/* 16 slots of 1 KiB: chunks of many map words. */
Test(bytemap_site, lookups_racing_writers_of_their_stripe, .timeout = 60)
{
	static const struct race_shape wide = { 1024, 16, wide_sizes, sizeof wide_sizes / sizeof wide_sizes[0],
	                                        wide_stable };
	run_race(&wide);
}

/* Slots of 128 bytes, two to a map word (16 granules): a churning chunk
 * shares its words with its stable neighbours, its header granule is the
 * one after the left neighbour's last (nibble 8 or 0 as its size says),
 * and the granule after its own last is the right neighbour's header.
 * Sizes at the encoding's edges (a last granule of 1, 8, 9, 16 bytes; one
 * granule; a whole slot).  The stable neighbours must be exact throughout:
 * a writer that stored a nibble of theirs, or a word it did not mask, is
 * seen at once. */
static const size_t dense_sizes[] = { 112, 1, 16, 17, 24, 25, 96, 9, 64, 105 };

static size_t dense_stable(size_t k) { return 40 + 7 * (k / 2 % 11); }

Test(bytemap_site, neighbours_sharing_words_with_writers, .timeout = 60)
{
	static const struct race_shape dense = { 128, 64, dense_sizes, sizeof dense_sizes / sizeof dense_sizes[0],
	                                         dense_stable };
	run_race(&dense);
}
