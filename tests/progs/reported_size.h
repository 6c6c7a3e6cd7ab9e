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

/* Under side, an index without records (hooks/index.h, INDEX_SIDE_TELLS:
 * the memtable's start masks) reports the usable size and no site; the
 * tests say so in TEST_SIDE_SIZELESS=1 when they preload such an index. */
static inline int side_sizeless(void)
{
	const char *flag = getenv("TEST_SIDE_SIZELESS");
	return flag && strcmp(flag, "1") == 0;
}

/* 1 if lookups must report the usable size, 0 if the size asked, -1 if
 * either is right (HEAPINDEX_META unset: the index's default placement). */
static inline int reports_usable_size(void)
{
	const char *meta = getenv("HEAPINDEX_META");
	if (!meta)
		return -1;
	return strcmp(meta, "trailer") == 0 || (strcmp(meta, "side") == 0 && side_sizeless());
}

/* Must a lookup report the allocation site?  Not for an index without
 * records under side (its default, or asked for). */
static inline int reports_sites(void)
{
	const char *meta = getenv("HEAPINDEX_META");
	return !side_sizeless() || (meta && strcmp(meta, "side") != 0);
}

static inline int reported_size_ok(void *p, size_t asked, size_t got)
{
	int want = reports_usable_size();
	if (want == 0)
		return got == asked;
	int usable = got == malloc_usable_size(p) && got >= asked;
	return want == 1 ? usable : got == asked || usable;
}

#endif
