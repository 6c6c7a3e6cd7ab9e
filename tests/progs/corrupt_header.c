/* corrupt_header.c - overwrite the size in a live chunk's header (the hooks'
 * 16 bytes below the pointer, chunk.h) so the index answers a size the
 * program never asked for: HEAPINDEX_VERIFY must catch it at exit, name the
 * chunk and exit 3.  Prints the chunk's address. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
	char *p = malloc(100);
	/* Through a volatile pointer: gcc knows malloc's memory below p is
	 * not the program's and would warn. */
	char *volatile header = p - 16;
	uint64_t size_pad;
	memcpy(&size_pad, header, sizeof size_pad);
	size_pad = (size_pad & ~((UINT64_C(1) << 48) - 1)) | 50; /* size 100 -> 50 */
	memcpy(header, &size_pad, sizeof size_pad);
	printf("%p\n", (void *)p);
	fflush(stdout);
	return 0; /* p stays live: the check at exit sees it */
}
