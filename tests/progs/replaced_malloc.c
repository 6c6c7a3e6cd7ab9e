/* replaced_malloc.c - a program that brings its own allocator by defining
 * glibc's documented minimum set (malloc, free, calloc, realloc), and then
 * calls entry points it left out: reallocarray (glibc's calls the
 * program's realloc), and memalign, aligned_alloc, posix_memalign, valloc,
 * pvalloc and malloc_usable_size (glibc's own chunks).  Under the hooks it
 * must run exactly as without them (issue 16, item 4): the same output,
 * exit 0.  Its chunks carry a header of its own with a magic word, so a
 * pointer that is not its own is noticed. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BYTES ((size_t)8 << 20)
#define MAGIC UINT64_C(0x6d79616c6c6f6321)

static _Alignas(16) unsigned char arena[ARENA_BYTES];
static size_t used;
static unsigned long mallocs, frees, reallocs, foreign_frees;

struct header {
	uint64_t magic, size;
};

static int mine(const void *p)
{
	return (const unsigned char *)p > arena && (const unsigned char *)p < arena + ARENA_BYTES &&
	       ((const struct header *)p)[-1].magic == MAGIC;
}

void *malloc(size_t n)
{
	size_t need = sizeof(struct header) + ((n + 15) & ~(size_t)15);
	if (n > ARENA_BYTES || used + need > ARENA_BYTES)
		return NULL;
	struct header *h = (struct header *)(arena + used);
	used += need;
	h->magic = MAGIC;
	h->size = n;
	mallocs++;
	return h + 1;
}

void free(void *p)
{
	if (!p)
		return;
	if (!mine(p)) {
		foreign_frees++; /* glibc's memalign and friends: left alone */
		return;
	}
	frees++;
}

void *calloc(size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	void *p = malloc(n * size);
	if (p)
		memset(p, 0, n * size);
	return p;
}

void *realloc(void *p, size_t n)
{
	reallocs++;
	if (p && !mine(p)) {
		fputs("replaced_malloc: realloc of a pointer that is not mine\n", stderr);
		exit(3);
	}
	void *q = malloc(n);
	if (q && p) {
		size_t old = ((struct header *)p)[-1].size;
		memcpy(q, p, old < n ? old : n);
		free(p);
	}
	return q;
}

int main(void)
{
	unsigned sum = 0;
	int *a = malloc(10 * sizeof *a); /* the program's: reallocarray must take it */
	for (int i = 0; i < 10; i++)
		a[i] = i * i;
	a = reallocarray(a, 1000, sizeof *a);
	for (int i = 10; i < 1000; i++)
		a[i] = i;
	for (int i = 0; i < 1000; i++)
		sum = sum * 31 + (unsigned)a[i];
	printf("reallocarray: mine %d, sum %u\n", mine(a), sum);
	free(a);

	void *aligned[5];
	aligned[0] = memalign(64, 100);
	aligned[1] = aligned_alloc(256, 512);
	if (posix_memalign(&aligned[2], 128, 300))
		aligned[2] = NULL;
	aligned[3] = valloc(100);
	aligned[4] = pvalloc(100);
	static const size_t want_align[5] = { 64, 256, 128, 4096, 4096 };
	for (int i = 0; i < 5; i++) {
		int ok = aligned[i] && (uintptr_t)aligned[i] % want_align[i] == 0 && !mine(aligned[i]);
		printf("aligned %d: %s, usable %s\n", i, ok ? "glibc's, aligned" : "WRONG",
		       malloc_usable_size(aligned[i]) >= 100 ? "enough" : "SHORT");
		free(aligned[i]);
	}
	char *s = strdup("strdup goes through the program's malloc");
	printf("%s: mine %d\n", s, mine(s));
	free(s);
	printf("calls: malloc %lu, free %lu, realloc %lu, foreign frees %lu\n", mallocs, frees,
	       reallocs, foreign_frees);
	return 0;
}
