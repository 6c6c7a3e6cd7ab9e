/* wild_lookup.c - heapindex_lookup of addresses that are no live chunk:
 * NULL, low, unmapped, kernel-half, stack, static, code, freed, misaligned
 * header bytes, around a big mapping.  Each must answer 0 and never fault.
 * A live chunk must still be found (unless EXPECT_LOOKUP=0).  Exits 0 or
 * names the address. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "reported_size.h"

typedef int lookup_fn(const void *, void **, size_t *, const void **);
static int static_object[16];

int main(void)
{
	lookup_fn *lookup = (lookup_fn *)dlsym(RTLD_DEFAULT, "heapindex_lookup");
	if (!lookup) {
		fprintf(stderr, "wild_lookup: no heapindex_lookup\n");
		return 1;
	}
	const char *want = getenv("EXPECT_LOOKUP");
	int expect_found = !want || *want != '0';
	int on_stack[4] = { 0 };
	char *live = malloc(100);
	/* The live chunk's extent as lookups report it (reported_size.h): the
	 * size asked for, or the usable size where that is what they report. */
	size_t reported = 100;
	void *live_base;
	if (expect_found && lookup(live, &live_base, &reported, NULL) &&
	    (live_base != live || !reported_size_ok(live, 100, reported))) {
		fprintf(stderr, "wild_lookup: the live chunk is reported with size %zu\n", reported);
		return 1;
	}
	char *freed = malloc(333);
	char *freed_big = malloc(1 << 20);
	free(freed);
	free(freed_big);
	void *unmapped = mmap(NULL, 1 << 16, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(unmapped, 1 << 16);
	const void *wild[] = {
		NULL, (void *)1, (void *)4095, (void *)0x10000, unmapped, (char *)unmapped + 4097,
		(void *)0xffffffff80000000u, (void *)UINTPTR_MAX, (void *)(UINTPTR_MAX - 15),
		(void *)((uintptr_t)1 << 47), (void *)(((uintptr_t)1 << 47) - 1),
		(void *)((uintptr_t)1 << 48), (void *)((uintptr_t)1 << 56), (void *)((uintptr_t)1 << 32),
		(void *)(((uintptr_t)1 << 32) - 1), (void *)((uintptr_t)1 << 39),
		on_stack, &on_stack[3], static_object, (char *)static_object + 3, (void *)main,
		freed, freed + 7, freed + 332, freed_big, freed_big + 12345,
		live - 1, live - 8, live - 16, live - 15, live + 100, live + 101, live + 1000,
	};
	for (size_t i = 0; i < sizeof wild / sizeof *wild; i++) {
		void *base = (void *)0x1;
		size_t size = 7;
		const void *site = NULL;
		int r = lookup(wild[i], &base, &size, &site);
		/* freed memory may have been reused by a live chunk (stdio, ...):
		 * only the freed chunk itself must be gone. */
		int is_freed = (const char *)wild[i] >= freed && (const char *)wild[i] < freed + 333;
		is_freed |= (const char *)wild[i] >= freed_big && (const char *)wild[i] < freed_big + (1 << 20);
		if (r && !(is_freed && base != freed && base != freed_big) && base != live) {
			fprintf(stderr, "wild_lookup: address #%zu %p found chunk %p size %zu\n", i,
			        wild[i], base, size);
			return 1;
		}
		if (r && base == live && (const char *)wild[i] - live >= 0 &&
		    (size_t)((const char *)wild[i] - live) < reported)
			continue;
		if (r && base == live) {
			fprintf(stderr, "wild_lookup: address #%zu %p outside the live chunk found it\n", i,
			        wild[i]);
			return 1;
		}
	}
	void *base;
	if (expect_found && (!lookup(live + 50, &base, NULL, NULL) || base != live)) {
		fprintf(stderr, "wild_lookup: the live chunk is not found\n");
		return 1;
	}
	printf("wild_lookup: %zu wild addresses ok\n", sizeof wild / sizeof *wild);
	free(live);
	return 0;
}
