/* stacks.c - where interned stacks (HEAPINDEX_SITE=unwind:N) live: one
 * range of address space reserved for them alone, so that a site is known
 * to be a stack by its address (sites.h, site_as_stack), with no tag bit.
 *
 * A tag bit needs a bit no code address uses.  Bit 47 served on x86-64,
 * whose user space ends at 2^47, but not on AArch64 with 48-bit user space
 * (the default there, config.c), where libraries map near 2^48: their
 * return addresses would have read as stacks.  An address inside memory
 * heapindex mapped for its own records is never a return address, whatever
 * the width; and a record's address is a user address below 2^48, so it
 * fits the header's 48-bit site field like a code address does.
 *
 * The range is reserved PROT_NONE (no commit charge, even with strict
 * overcommit) and made writable 1 MiB at a time as records fill it.  Full,
 * sites_stacks_take returns NULL and the capture falls back to the return
 * address.  Never malloc: this runs inside malloc. */
#include "sites.h"

#include <sys/mman.h>

uintptr_t sites_stacks_lo, sites_stacks_hi;

#define STACKS_MAX ((size_t)256 << 20)
#define STACKS_MIN ((size_t)1 << 20)
#define STACKS_STEP ((size_t)1 << 20)

static uintptr_t used, writable; /* [lo, used) taken, [lo, writable) read-write */

int sites_stacks_reserve(void)
{
	for (size_t bytes = STACKS_MAX; bytes >= STACKS_MIN; bytes /= 2) {
		void *p = mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED)
			continue;
		if ((uintptr_t)p + bytes - 1 > CHUNK_FIELD_MASK) { /* cannot be stored: give up */
			munmap(p, bytes);
			return -1;
		}
		used = writable = sites_stacks_lo = (uintptr_t)p;
		sites_stacks_hi = (uintptr_t)p + bytes;
		return 0;
	}
	return -1;
}

void *sites_stacks_take(size_t bytes)
{
	bytes = (bytes + 15) & ~(size_t)15;
	if (!sites_stacks_lo || bytes > sites_stacks_hi - used)
		return NULL;
	while (used + bytes > writable) {
		size_t step = sites_stacks_hi - writable < STACKS_STEP ? sites_stacks_hi - writable : STACKS_STEP;
		if (mprotect((void *)writable, step, PROT_READ | PROT_WRITE))
			return NULL;
		writable += step;
	}
	void *p = (void *)used;
	used += bytes;
	return p;
}
