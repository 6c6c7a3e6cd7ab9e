/* errno_kept.c - a successful allocation leaves errno as it was, even when
 * the index had to fall back (a leaf or region it could not map, madvise
 * refused: tests/shims/faulty_libc.c arranges those), in the main thread
 * and in a new one (a new glibc arena: new index pages).  With the shim
 * preloaded it also prints what allocations made during the hooks'
 * bootstrap got.  With EXPECT_LOOKUP=1 the chunks must be found.
 * Exits 0, or names the first failure. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reported_size.h"

typedef int lookup_fn(const void *, void **, size_t *, const void **);
static lookup_fn *lookup;

#define SENTINEL EDOM

static const char *failure;
static char failure_buf[256];

static void expect(int ok, const char *what, int err)
{
	if (!ok && !failure) {
		snprintf(failure_buf, sizeof failure_buf, "%s: errno %d, want %d", what, err, SENTINEL);
		failure = failure_buf;
	}
}

static void check_found(const void *p, size_t size, const char *what)
{
	void *base;
	size_t got;
	if (lookup && (!lookup((const char *)p + size / 2, &base, &got, NULL) || base != p || !reported_size_ok((void *)p, size, got)) &&
	    !failure) {
		snprintf(failure_buf, sizeof failure_buf, "%s: %p not found", what, p);
		failure = failure_buf;
	}
}

static void *allocate(void *arg)
{
	(void)arg;
	for (int round = 0; round < 64; round++) {
		size_t size = 16 + (size_t)round * 24;
		errno = SENTINEL;
		void *p = malloc(size);
		expect(p && errno == SENTINEL, "malloc", errno);
		check_found(p, size, "malloc");
		errno = SENTINEL;
		void *q = calloc(1, size);
		expect(q && errno == SENTINEL, "calloc", errno);
		errno = SENTINEL;
		void *r = aligned_alloc(64, size);
		expect(r && errno == SENTINEL, "aligned_alloc", errno);
		errno = SENTINEL;
		p = realloc(p, size * 2);
		expect(p && errno == SENTINEL, "realloc", errno);
		check_found(p, size * 2, "realloc");
		errno = SENTINEL;
		free(p);
		free(q);
		free(r);
		expect(errno == SENTINEL, "free", errno);
	}
	return NULL;
}

int main(void)
{
	const char *want = getenv("EXPECT_LOOKUP");
	if (want && *want == '1')
		lookup = (lookup_fn *)dlsym(RTLD_DEFAULT, "heapindex_lookup");
	const char *(*report)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "faulty_libc_report");
	if (report)
		printf("bootstrap: %s\n", report());
	allocate(NULL);
	for (int i = 0; i < 4; i++) {
		pthread_t t;
		pthread_create(&t, NULL, allocate, NULL);
		pthread_join(t, NULL);
	}
	if (failure) {
		fprintf(stderr, "errno_kept: %s\n", failure);
		return 1;
	}
	printf("errno_kept: ok\n");
	return 0;
}
