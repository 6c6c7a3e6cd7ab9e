/* fail_inject.c - run under HEAPINDEX_FAIL_EVERY=N: every allocator entry
 * point sometimes fails.  A failure must be NULL with errno ENOMEM
 * (posix_memalign: returns ENOMEM), a failed realloc must leave the old chunk
 * live, indexed and intact, and throughout every live chunk must be found by
 * heapindex_lookup and no freed one.  Failed calls are retried, up to a
 * bound.  EXPECT_LOOKUP=0 skips the lookups (noop); EXPECT_FAILURES=1
 * requires some failures to have happened.  Exits 0 or names the failure. */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reported_size.h"

typedef int lookup_fn(const void *, void **, size_t *, const void **);
static lookup_fn *lookup;

#define SLOTS 256
#define OPS 60000
static unsigned char *live[SLOTS];
static size_t sizes[SLOTS];
static unsigned long failures, ops_done;

static void die(const char *what, const void *p, size_t size)
{
	fprintf(stderr, "fail_inject: op %lu: %s (%p, size %zu)\n", ops_done, what, p, size);
	exit(1);
}

static uint64_t rng = 0x243f6a8885a308d3u;
static uint64_t rnd(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return rng;
}

static void check_live(int i)
{
	unsigned char *p = live[i];
	size_t n = sizes[i];
	if (n && (p[0] != (unsigned char)i || p[n - 1] != (unsigned char)i))
		die("contents changed", p, n);
	if (!lookup)
		return;
	void *base;
	size_t size;
	size_t offs[3] = { 0, n / 2, n ? n - 1 : 0 };
	for (int k = 0; k < (n ? 3 : 0); k++)
		if (!lookup(p + offs[k], &base, &size, NULL) || base != p || !reported_size_ok(p, n, size))
			die("live chunk not found", p, n);
}

static void check_freed(const void *p, size_t n)
{
	void *base;
	size_t size;
	/* Another live chunk may reuse the memory: only the old chunk must be gone. */
	if (lookup && n && lookup(p, &base, &size, NULL) && base == p) {
		for (int i = 0; i < SLOTS; i++)
			if (live[i] == p)
				return;
		die("freed chunk still found", p, n);
	}
}

static void fill(int i)
{
	if (sizes[i])
		memset(live[i], i, sizes[i]);
}

static void *failed(void *p)
{
	if (!p) {
		if (errno != ENOMEM)
			die("failure without ENOMEM", NULL, (size_t)errno);
		failures++;
	}
	return p;
}

static void *allocate(size_t n)
{
	for (int attempt = 0; attempt < 1000; attempt++) {
		void *p = NULL;
		int e;
		errno = 0;
		switch (rnd() % 6) {
		case 0: p = failed(malloc(n)); break;
		case 1: p = failed(calloc(1, n));
			for (size_t k = 0; p && k < n; k++)
				if (((unsigned char *)p)[k])
					die("calloc not zero", p, n);
			break;
		case 2: p = failed(memalign(64, n)); break;
		case 3: p = failed(aligned_alloc(4096, n)); break;
		case 4:
			e = posix_memalign(&p, 32, n);
			if (e && e != ENOMEM)
				die("posix_memalign error is not ENOMEM", NULL, (size_t)e);
			if (e)
				failures++, p = NULL;
			break;
		default: p = failed(realloc(NULL, n)); break;
		}
		if (p)
			return p;
	}
	die("1000 allocations failed in a row", NULL, n);
	return NULL;
}

int main(void)
{
	const char *want = getenv("EXPECT_LOOKUP");
	if (!want || *want != '0')
		lookup = (lookup_fn *)dlsym(RTLD_DEFAULT, "heapindex_lookup");
	for (ops_done = 0; ops_done < OPS; ops_done++) {
		int i = (int)(rnd() % SLOTS);
		size_t n = rnd() % 3 == 0 ? rnd() % 70000 : rnd() % 600;
		if (!live[i]) {
			live[i] = allocate(n);
			sizes[i] = n;
			fill(i);
			check_live(i);
		} else if (rnd() % 2) {
			unsigned char *old = live[i];
			size_t old_n = sizes[i];
			check_live(i);
			if (!n)
				n = 1; /* realloc(p, 0) frees: not a failure path */
			errno = 0;
			unsigned char *p = realloc(old, n);
			if (!p) {
				failed(p);
				check_live(i); /* the old chunk is untouched and indexed */
				continue;
			}
			live[i] = p;
			sizes[i] = n;
			if (p != old)
				check_freed(old, old_n);
			fill(i);
			check_live(i);
		} else {
			unsigned char *p = live[i];
			size_t old_n = sizes[i];
			check_live(i);
			free(p);
			live[i] = NULL;
			check_freed(p, old_n);
		}
		if (ops_done % 4096 == 0)
			for (int k = 0; k < SLOTS; k++)
				if (live[k])
					check_live(k);
	}
	for (int k = 0; k < SLOTS; k++)
		if (live[k])
			check_live(k);
	const char *expect = getenv("EXPECT_FAILURES");
	if (expect && *expect == '1' && !failures)
		die("no allocation failed", NULL, 0);
	printf("fail_inject: %d ops, %lu failures survived\n", OPS, failures);
	for (int k = 0; k < SLOTS; k++)
		free(live[k]);
	return 0;
}
