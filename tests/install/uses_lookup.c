/* uses_lookup.c - a tool writer's program, built by the install test against
 * an installed heapindex with nothing but `pkg-config --cflags --libs
 * heapindex`: it declares the query weak, as mk/heapindex.pc.in says, and
 * asks it about an interior pointer of its own chunk and about a stack
 * address.  Exit 0 and one line if the answers are right; 3 if no library is
 * preloaded (heapindex_lookup is NULL); 1 if an answer is wrong. */
#include <heapindex.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#pragma weak heapindex_lookup

int main(void)
{
	if (!heapindex_lookup) {
		fputs("uses_lookup: heapindex_lookup is not there: no libheapindex-*.so preloaded\n", stderr);
		return 3;
	}
	/* calloc: gcc warns (-Wmaybe-uninitialized) when a const pointer to
	 * memory never written is passed to a function it cannot see into. */
	char *chunk = calloc(1, 100);
	void *base = NULL;
	size_t size = 0;
	int found = heapindex_lookup(chunk + 42, &base, &size, NULL);
	int on_stack = 0;
	int stack_found = heapindex_lookup(&on_stack, NULL, NULL, NULL);
	/* The size asked for, or the usable size under a placement that keeps
	 * no size (heapindex.h: the memtable's default, side). */
	if (!found || base != chunk || (size != 100 && size != malloc_usable_size(chunk)) || size < 100 ||
	    stack_found) {
		fprintf(stderr, "uses_lookup: wrong answers: found %d base %p (chunk %p) size %zu; stack found %d\n",
		        found, base, (void *)chunk, size, stack_found);
		return 1;
	}
	printf("uses_lookup: chunk+42 is in a %zu-byte chunk at its base; a stack address is in none\n", size);
	free(chunk);
	return 0;
}
