/* reported_size.h - the size heapindex_lookup should report for a chunk of
 * `asked` bytes at p, for the test programs: the size asked for, except
 * under HEAPINDEX_META=trailer, which keeps no size and reports the usable
 * size, all the program may use (hooks/chunk.h).  With HEAPINDEX_META unset
 * (the index's default placement) either is right. */
#ifndef HEAPINDEX_TEST_REPORTED_SIZE_H
#define HEAPINDEX_TEST_REPORTED_SIZE_H

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

/* Under trailer a lookup's size is the usable size, not the size asked. */
static inline int meta_is_trailer(void)
{
	const char *meta = getenv("HEAPINDEX_META");
	return meta && strcmp(meta, "trailer") == 0;
}

static inline int reported_size_ok(void *p, size_t asked, size_t got)
{
	const char *meta = getenv("HEAPINDEX_META");
	if (meta && strcmp(meta, "trailer") != 0)
		return got == asked;
	int usable = got == malloc_usable_size(p) && got >= asked;
	return meta ? usable : got == asked || usable;
}

#endif
