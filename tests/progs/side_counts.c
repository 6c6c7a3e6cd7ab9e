/* side_counts.c - allocations of sizes the allocator rounds up (1 to 300
 * bytes) by malloc, calloc, realloc (up, down, from NULL) and memalign, a
 * third of them still live at exit: the hooks' statistics of live chunks
 * and bytes (HEAPINDEX_STATS) must then be the same under every placement
 * that counts the size asked for (header; side with an index that keeps
 * records), tests/test_hooks.c.  Deterministic, single-threaded, and never
 * calls malloc_usable_size (tests/shims/count_usable.c counts the hooks'
 * own calls).  Usage: side_counts [N] */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 3000

int main(int argc, char **argv)
{
	static char *p[SLOTS];
	long n = argc > 1 ? atol(argv[1]) : 30000;
	unsigned x = 12345;
	long general = 0; /* calls the hooks take on their general path: not malloc */
	for (long i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		unsigned slot = (x >> 8) % SLOTS, size = 1 + (x >> 16) % 300;
		general += (x >> 4) % 5 != 0;
		switch ((x >> 4) % 5) {
		case 0:
			free(p[slot]);
			p[slot] = malloc(size);
			break;
		case 1:
			free(p[slot]);
			p[slot] = calloc(1, size);
			break;
		case 2: /* up, down or from NULL */
		case 3: {
			char *q = realloc(p[slot], size);
			if (!q)
				return 1;
			p[slot] = q;
			break;
		}
		default:
			free(p[slot]);
			p[slot] = memalign(64, size);
			break;
		}
		if (!p[slot])
			return 1;
		memset(p[slot], 0x5a, size);
	}
	for (unsigned s = 0; s < SLOTS; s++)
		if (s % 3) {
			free(p[s]);
			p[s] = NULL;
		}
	printf("side_counts: %ld calls, %ld of them calloc, realloc or memalign\n", n, general);
	return 0;
}
