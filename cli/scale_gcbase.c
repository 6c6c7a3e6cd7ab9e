/* scale_gcbase.c - the Boehm GC anchor of `heapindex scale`: GC_base.
 *
 * An allocator that knows its own layout answers "which object holds p?"
 * without any index of its own: Boehm GC's GC_base (bdwgc, Debian's
 * libgc-dev) finds p's heap block header through a two-level table keyed by
 * block address, reads the block's object size, and rounds p down to an
 * object boundary (bdwgc's misc.c, GC_base).  It reads the collector's
 * metadata only, never the object: the lookup any header-reading index is
 * measured against.
 *
 * What it is, and is not, next to the indexes:
 *  - it answers the base only: no requested size (a GC object is rounded up
 *    to 16-byte granules or whole blocks) and no site, so its lookups are
 *    chained on the base alone, where the indexes' are chained on the size
 *    read from the chunk header, as heapindex_lookup's callers get it;
 *  - it answers for any object slot of a block in use, allocated or free, so
 *    misses cannot be asked of it;
 *  - it has no insert or remove: allocation is the indexing.
 * Its heap has the same sizes as the indexes' chunks, allocated in the same
 * order with GC_MALLOC_ATOMIC (pointer-free, never scanned), collection
 * disabled so that nothing moves or goes, and it is probed at the same
 * (chunk, offset) pairs as the indexes.  The layout is the collector's own:
 * objects segregated by size class into 4 KiB blocks, large ones in blocks
 * of their own, no header between objects.
 */
#include "scale_gcbase.h"

#include <stdlib.h>

#include <gc/gc.h>

void gcbase_start(void)
{
	/* One marker thread: the parallel markers would only sit idle. */
	setenv("GC_MARKERS", "1", 0);
	GC_INIT();
	GC_disable();
}

int gcbase_grow(uintptr_t *object, const uint32_t *size, uint64_t from, uint64_t to)
{
	size_t bytes = 0;
	for (uint64_t i = from; i < to; i++)
		bytes += size[i];
	/* Grow the heap once, not in the collector's small steps. */
	GC_expand_hp(bytes + bytes / 8);
	for (uint64_t i = from; i < to; i++)
		if (!(object[i] = (uintptr_t)GC_MALLOC_ATOMIC(size[i])))
			return -1;
	return 0;
}

/* Never inlined, like the indexes' loop in scale.c: callgrind counts it by name. */
__attribute__((noinline)) void scale_gcbase_batch(const uintptr_t *addr, uintptr_t *out, size_t n,
                                                  uintptr_t zero)
{
	uintptr_t dep = 0;
	for (size_t i = 0; i < n; i++) {
		uintptr_t base = (uintptr_t)GC_base((void *)(addr[i] + dep));
		out[i] = base;
		dep = base & zero;
	}
}
