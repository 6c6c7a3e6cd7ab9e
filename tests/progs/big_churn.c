/* big_churn.c - the two workloads of issue 16 item 5, timed from inside (no
 * process start-up in the figure), for workloads/scale/big_chunks.sh:
 *
 *   big_churn small N        N malloc(16), then N free in allocation order.
 *                            Under HEAPINDEX_ADDR_BITS below 47 every chunk
 *                            of a PIE heap lies above the memtable's range,
 *                            so all of them go to the big-chunk structure.
 *   big_churn big N R SIZE   N live chunks of SIZE bytes, then R rounds that
 *                            each free and re-allocate every one of them in
 *                            a random order (chunks over 16 KiB are "big").
 *
 * Prints "<mode> <wall seconds> <cpu seconds>" (the process's CPU time, which
 * other jobs on a shared machine move far less than the wall: the test's
 * bound is on it) and, with EXPECT_LOOKUP=1, checks that every live chunk
 * is found by heapindex_lookup at the end (exit 1 otherwise). */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reported_size.h"

typedef int lookup_fn(const void *, void **, size_t *, const void **);

static double seconds_of(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static unsigned long arg(char **argv, int i, int argc, unsigned long dflt)
{
	return i < argc ? strtoul(argv[i], NULL, 10) : dflt;
}

static int check_found(void **p, size_t n, size_t size)
{
	const char *want = getenv("EXPECT_LOOKUP");
	lookup_fn *lookup = want && *want == '1' ? (lookup_fn *)dlsym(RTLD_DEFAULT, "heapindex_lookup") : NULL;
	for (size_t i = 0; lookup && i < n; i++) {
		void *base;
		size_t got;
		if (!lookup((char *)p[i] + size / 2, &base, &got, NULL) || base != p[i] || !reported_size_ok(p[i], size, got)) {
			fprintf(stderr, "big_churn: chunk %zu at %p not found\n", i, p[i]);
			return 1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || (strcmp(argv[1], "small") && strcmp(argv[1], "big"))) {
		fprintf(stderr, "usage: big_churn small [N] | big [N] [ROUNDS] [SIZE]\n");
		return 2;
	}
	int big = strcmp(argv[1], "big") == 0;
	size_t n = arg(argv, 2, argc, big ? 50000 : 300000);
	unsigned long rounds = arg(argv, 3, argc, 4);
	size_t size = arg(argv, 4, argc, 32768);
	void **p = calloc(n, sizeof *p);
	if (!p)
		return 1;
	int bad = 0;
	double t0 = seconds_of(CLOCK_MONOTONIC), cpu0 = seconds_of(CLOCK_PROCESS_CPUTIME_ID);
	if (!big) {
		for (size_t i = 0; i < n; i++)
			if (!(p[i] = malloc(16)))
				return 1;
		bad = check_found(p, n, 16);
		for (size_t i = 0; i < n; i++)
			free(p[i]);
	} else {
		for (size_t i = 0; i < n; i++)
			if (!(p[i] = malloc(size)))
				return 1;
		uint64_t x = 88172645463325252u;
		for (unsigned long r = 0; r < rounds; r++)
			for (size_t k = 0; k < n; k++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				size_t i = (size_t)(x % n);
				free(p[i]);
				if (!(p[i] = malloc(size)))
					return 1;
			}
		bad = check_found(p, n, size);
		for (size_t i = 0; i < n; i++)
			free(p[i]);
	}
	printf("%s %.3f %.3f\n", argv[1], seconds_of(CLOCK_MONOTONIC) - t0,
	       seconds_of(CLOCK_PROCESS_CPUTIME_ID) - cpu0);
	free(p);
	return bad;
}
