/* pages.c - memory for the indexes' own tables, from mmap, never malloc:
 * an index runs inside malloc, under the hooks' lock.
 *
 * Populated at once (as a calloc'd table would be): a hash index probes its
 * buckets at addresses the lookup computes, and on a kernel without a
 * shared zero page the first read of an untouched page commits it, so
 * lookups would commit the table piecemeal.  Committed up front, the table
 * costs what it costs and a lookup commits nothing. */
#include "index.h"

#include <sys/mman.h>
#include <unistd.h>

static size_t round_to_pages(size_t bytes)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	return (bytes + page - 1) & ~(page - 1);
}

void *index_map_pages(size_t bytes)
{
	void *p = mmap(NULL, round_to_pages(bytes), PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void index_unmap_pages(void *p, size_t bytes)
{
	if (p)
		munmap(p, round_to_pages(bytes));
}
