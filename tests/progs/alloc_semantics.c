/* alloc_semantics.c - what the C library promises of its allocator, checked
 * in a program the hook tests run with and without each hook library.  With
 * EXPECT_LOOKUP=1 every chunk is also looked up through heapindex_lookup.  Prints one line and exits 0, or names the first broken promise and
 * exits 1. */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reported_size.h"

static int checks;
typedef int lookup_fn(const void *, void **, size_t *, const void **);
static lookup_fn *lookup;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		checks++;                                                      \
		if (!(cond)) {                                                 \
			fprintf(stderr, "alloc_semantics: %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
			exit(1);                                               \
		}                                                              \
	} while (0)

/* The index must know p as a chunk of the size above, from any byte. */
static void check_indexed(const void *p, size_t size)
{
	if (!lookup || !size)
		return;
	const char *c = p;
	size_t offsets[] = { 0, size / 2, size - 1 }, reported = 0;
	for (int i = 0; i < 3; i++) {
		void *base = NULL;
		size_t got = 0;
		const void *site = NULL;
		CHECK(lookup(c + offsets[i], &base, &got, &site) == 1, "%p+%zu not found", p, offsets[i]);
		CHECK(base == p && reported_size_ok((void *)p, size, got), "%p+%zu gave %p/%zu, want %p/%zu",
		      p, offsets[i], base, got, p, size);
		CHECK(site != NULL || !reports_sites(), "no allocation site for %p", p);
		reported = got;
	}
	void *base;
	CHECK(lookup(c + reported, &base, NULL, NULL) == 0 || base != p, "one past the end of %p found", p);
}

static void check_not_indexed(const void *p)
{
	if (lookup)
		CHECK(lookup(p, NULL, NULL, NULL) == 0, "freed %p still found", p);
}

static void check_malloc_and_usable_size(void)
{
	for (size_t n = 0; n < 5000; n = n * 3 + 1) {
		unsigned char *p = malloc(n);
		CHECK(p != NULL, "malloc(%zu)", n);
		CHECK((uintptr_t)p % 16 == 0, "malloc(%zu) = %p not 16-aligned", n, (void *)p);
		size_t usable = malloc_usable_size(p);
		CHECK(usable >= n, "usable %zu < %zu", usable, n);
		memset(p, 0xa5, usable); /* all of it is ours to write */
		check_indexed(p, n);
		free(p);
		check_not_indexed(p);
	}
	CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL)");
}

static void check_calloc(void)
{
	unsigned char *dirty = malloc(4000);
	memset(dirty, 0xff, 4000);
	free(dirty);
	unsigned char *p = calloc(1000, 4);
	CHECK(p != NULL, "calloc(1000, 4)");
	for (int i = 0; i < 4000; i++)
		CHECK(p[i] == 0, "calloc byte %d is %d", i, p[i]);
	check_indexed(p, 4000);
	free(p);
	errno = 0;
	CHECK(calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM, "calloc overflow: errno %d", errno);
	errno = 0;
	CHECK(calloc((size_t)1 << 33, (size_t)1 << 33) == NULL && errno == ENOMEM, "calloc 2^66");
}

static void check_realloc(void)
{
	char *p = realloc(NULL, 10);
	CHECK(p != NULL, "realloc(NULL, 10)");
	memcpy(p, "abcdefghi", 10);
	check_indexed(p, 10);
	p = realloc(p, 100000); /* grow, likely moving */
	CHECK(p && strcmp(p, "abcdefghi") == 0, "grow kept contents");
	check_indexed(p, 100000);
	p = realloc(p, 5); /* shrink */
	CHECK(p && memcmp(p, "abcde", 5) == 0, "shrink kept prefix");
	check_indexed(p, 5);
	char *big = realloc(p, (size_t)4 << 20);
	CHECK(big && memcmp(big, "abcde", 5) == 0, "grow to 4 MiB");
	check_indexed(big, (size_t)4 << 20);
	errno = 0;
	CHECK(realloc(big, SIZE_MAX - 4096) == NULL && errno == ENOMEM, "huge realloc fails");
	check_indexed(big, (size_t)4 << 20); /* the old chunk is untouched */
	CHECK(realloc(big, 0) == NULL, "realloc(p, 0) frees and returns NULL (glibc)");
	check_not_indexed(big);
	errno = 0;
	CHECK(reallocarray(NULL, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM, "reallocarray overflow");
	int *a = reallocarray(NULL, 10, sizeof(int));
	CHECK(a != NULL, "reallocarray(NULL, 10, 4)");
	check_indexed(a, 40);
	free(a);
}

static void check_aligned(void)
{
	long page = sysconf(_SC_PAGESIZE);
	for (size_t align = sizeof(void *); align <= 65536; align *= 2) {
		void *p = NULL;
		CHECK(posix_memalign(&p, align, 100) == 0, "posix_memalign %zu", align);
		CHECK((uintptr_t)p % align == 0, "posix_memalign %zu gave %p", align, p);
		CHECK(malloc_usable_size(p) >= 100, "usable of aligned");
		memset(p, 1, malloc_usable_size(p));
		check_indexed(p, 100);
		free(p);
		p = aligned_alloc(align, align * 2);
		CHECK(p && (uintptr_t)p % align == 0, "aligned_alloc %zu gave %p", align, p);
		check_indexed(p, align * 2);
		free(p);
		p = memalign(align, 33);
		CHECK(p && (uintptr_t)p % align == 0, "memalign %zu gave %p", align, p);
		check_indexed(p, 33);
		p = realloc(p, 5000);
		CHECK(p != NULL, "realloc of memalign'd");
		check_indexed(p, 5000);
		free(p);
	}
	void *p = (void *)1;
	CHECK(posix_memalign(&p, 24, 10) == EINVAL && p == (void *)1, "posix_memalign(24) is EINVAL");
	CHECK(posix_memalign(&p, 4, 10) == EINVAL, "posix_memalign(4) is EINVAL");
	p = valloc(10);
	CHECK(p && (uintptr_t)p % (uintptr_t)page == 0, "valloc page-aligned");
	check_indexed(p, 10);
	free(p);
	p = pvalloc(10);
	CHECK(p && (uintptr_t)p % (uintptr_t)page == 0, "pvalloc page-aligned");
	CHECK(malloc_usable_size(p) >= (size_t)page, "pvalloc rounds up to a page");
	free(p);
}

/* realloc owes an over-aligned chunk no alignment: the chunk it returns
 * must not carry the alignment's slack along (a 2 MiB alignment would cost
 * 2 MiB per chunk for as long as it lives).  What glibc counts in use
 * (heap and mmapped) after the realloc shows what the realloc kept.  (Over
 * another allocator mallinfo2 counts nothing: the check is moot.) */
static size_t bytes_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

static void check_realloc_of_over_aligned(void)
{
	size_t align = (size_t)2 << 20;
	size_t before = bytes_in_use();
	char *p = aligned_alloc(align, 100);
	CHECK(p && (uintptr_t)p % align == 0, "aligned_alloc(2 MiB, 100) gave %p", (void *)p);
	memset(p, 7, 100);
	char *q = realloc(p, 200);
	CHECK(q != NULL, "realloc of a 2 MiB-aligned chunk");
	for (int i = 0; i < 100; i++)
		CHECK(q[i] == 7, "realloc kept byte %d", i);
	check_indexed(q, 200);
	size_t kept = bytes_in_use() - before;
	CHECK(kept < align / 2, "a 200-byte chunk still holds %zu bytes after realloc", kept);
	free(q);
	check_not_indexed(q);
}

static void check_wild_lookups(void)
{
	if (!lookup)
		return;
	int local;
	const void *wild[] = { NULL, (void *)1, &local, &checks, (void *)check_wild_lookups,
	                       (void *)0xffff800000000000ull, (void *)UINTPTR_MAX };
	for (size_t i = 0; i < sizeof wild / sizeof *wild; i++)
		CHECK(lookup(wild[i], NULL, NULL, NULL) == 0, "wild %p found", wild[i]);
}

int main(void)
{
	/* EXPECT_LOOKUP=1: an index is preloaded and must answer every lookup
	 * (the noop index is preloaded but answers none, so it is not asked). */
	const char *want = getenv("EXPECT_LOOKUP");
	if (want && *want == '1') {
		lookup = (lookup_fn *)dlsym(RTLD_DEFAULT, "heapindex_lookup");
		if (!lookup) {
			fprintf(stderr, "alloc_semantics: heapindex_lookup not found\n");
			return 1;
		}
	}
	check_malloc_and_usable_size();
	check_calloc();
	check_realloc();
	check_aligned();
	check_realloc_of_over_aligned();
	check_wild_lookups();
	printf("alloc_semantics: %d checks passed%s\n", checks, lookup ? " (with lookups)" : "");
	return 0;
}
