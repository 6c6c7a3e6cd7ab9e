/* malloc_exhaust.c - small mallocs until the allocator has no memory left
 * (run it under `ulimit -v`), then FAILS more that fail, then every chunk
 * freed.  The hooks' fast path counts a malloc before it calls the real
 * one and takes the count back when that fails (hooks.c): the statistics
 * must then show exactly the failures, and no live chunk left over from
 * them.  Prints "malloc_exhaust: N chunks, F failed" with write(2), so
 * stdio keeps no chunk of its own.  Usage: malloc_exhaust [FAILS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct node {
	struct node *next;
};

int main(int argc, char **argv)
{
	long fails = argc > 1 ? atol(argv[1]) : 100, chunks = 0, failed = 0;
	struct node *list = NULL;
	/* 16 to 128 bytes: every failure below the budget's look (counters.h)
	 * takes the fast path's own undo. */
	for (long i = 0; failed < fails; i++) {
		struct node *n = malloc((size_t)(16 + 16 * (i & 7)));
		if (!n) {
			failed++;
			continue;
		}
		n->next = list;
		list = n;
		chunks++;
	}
	while (list) {
		struct node *next = list->next;
		free(list);
		list = next;
	}
	char line[96];
	int len = snprintf(line, sizeof line, "malloc_exhaust: %ld chunks, %ld failed\n", chunks, failed);
	return write(STDOUT_FILENO, line, (size_t)len) == len ? 0 : 1;
}
