/* malloc_pairs.c - what the hooks cost per malloc+free pair, for callgrind.
 *
 * N pairs (default 10^6) of malloc(size) then free, sizes cycling through
 * 16, 32, ..., 128 bytes, all in pairs(), so `valgrind --tool=callgrind
 * --toggle-collect=pairs` counts the allocator and the hooks and nothing
 * else: its instruction total / N is the cost of one pair.  Run with no
 * library preloaded for the allocator's own figure (mk/hook_cost.sh does
 * both).  Usage: malloc_pairs [N] */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) void pairs(long n);

__attribute__((noinline)) void pairs(long n)
{
	for (long i = 0; i < n; i++) {
		void *p = malloc((size_t)(16 + 16 * (i & 7)));
		/* The compiler may not drop a malloc whose pointer escapes. */
		__asm__ volatile("" : : "r"(p) : "memory");
		free(p);
	}
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	pairs(n);
	printf("malloc_pairs: %ld pairs\n", n);
	return 0;
}
