/* side_realloc.c - chunks crossing between the hooks' paths: made by one
 * (malloc's and free's fast path, or the general path of calloc, realloc
 * and memalign) and resized or freed by the other, in every order, with
 * their contents checked at each step and, when the preloaded index
 * answers lookups (EXPECT_LOOKUP=1), the index's base, size and site
 * checked too.  Under side the fast path keeps no header, so the general
 * path must take its chunks and the fast path the general path's
 * (hooks.c); tests/test_hooks.c runs it under each placement and compares
 * the statistics with header's.  Every chunk is freed before the end.
 * Prints "side_realloc ok". */
#include <heapindex.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reported_size.h"

#pragma weak heapindex_lookup

static int expect_lookup;

static void die(const char *what, size_t step)
{
	fprintf(stderr, "side_realloc: step %zu: %s\n", step, what);
	exit(1);
}

/* p, a chunk of size bytes, starts with kept bytes of fill, and the index
 * knows it with that size. */
static void check(char *p, size_t size, size_t kept, int fill, size_t step)
{
	if (!p)
		die("allocation failed", step);
	for (size_t i = 0; i < kept; i++)
		if (p[i] != (char)fill)
			die("contents lost", step);
	if (malloc_usable_size(p) < size)
		die("malloc_usable_size below the size asked for", step);
	if (!expect_lookup)
		return;
	void *base;
	size_t got;
	const void *site;
	if (!heapindex_lookup(p + size - 1, &base, &got, &site) || base != p || !reported_size_ok(p, size, got))
		die("the index does not know the chunk with its size", step);
	if (!site && reports_sites())
		die("the index lost the chunk's site", step);
}

/* A chunk of size bytes made by way (0 malloc, 1 calloc, 2 memalign 64,
 * 3 realloc of NULL), filled with fill. */
static char *make(int way, size_t size, int fill, size_t step)
{
	char *p = way == 0 ? malloc(size) : way == 1 ? calloc(1, size) : way == 2 ? memalign(64, size) : realloc(NULL, size);
	if (!p)
		die("allocation failed", step);
	if (way == 1)
		for (size_t i = 0; i < size; i++)
			if (p[i])
				die("calloc memory not zero", step);
	if (way == 2 && (uintptr_t)p % 64)
		die("memalign chunk not aligned", step);
	memset(p, fill, size);
	check(p, size, size, fill, step);
	return p;
}

int main(void)
{
	const char *e = getenv("EXPECT_LOOKUP");
	expect_lookup = e && *e == '1' && heapindex_lookup;
	static const size_t sizes[] = { 1, 24, 100, 4000, 200000 };
	size_t n = sizeof sizes / sizeof *sizes, step = 0;
	for (int way = 0; way < 4; way++) {
		for (size_t a = 0; a < n; a++) {
			for (size_t b = 0; b < n; b++) {
				step++;
				int fill = 'a' + (int)(step % 26);
				char *p = make(way, sizes[a], fill, step);
				/* Grow or shrink: the bytes both sizes hold are kept. */
				size_t kept = sizes[a] < sizes[b] ? sizes[a] : sizes[b];
				char *q = realloc(p, sizes[b]);
				check(q, sizes[b], kept, fill, step);
				memset(q, fill, sizes[b]);
				switch (step % 3) {
				case 0: /* the fast path frees it */
					free(q);
					break;
				case 1: /* the general path frees it: realloc to 0 */
					if (realloc(q, 0))
						die("realloc to 0 returned a chunk", step);
					break;
				default: /* and back through realloc once more */
					q = realloc(q, sizes[a]);
					check(q, sizes[a], kept, fill, step);
					free(q);
				}
			}
		}
	}
	printf("side_realloc ok (%zu steps)\n", step);
	return 0;
}
