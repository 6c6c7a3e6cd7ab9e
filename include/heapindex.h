/* heapindex.h - the public query API of every libheapindex-<index>.so.
 *
 * A program run under `./heapindex run --index NAME` (or with the library in
 * LD_PRELOAD) can ask which live heap chunk contains an address, including an
 * interior one.  The answer comes from whichever index the preloaded library
 * was built with; the call is the same for all of them.
 *
 * Callable from any thread, at any time after the library is loaded, and from
 * Python through ctypes (ctypes.CDLL(None).heapindex_lookup).
 */
#ifndef HEAPINDEX_H
#define HEAPINDEX_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 if addr lies inside a live heap chunk (base <= addr < base+size, where
 * size is the size the caller of malloc/calloc/realloc/memalign asked for),
 * filling whichever of base, size and site are non-NULL; 0 otherwise.
 * site is the allocation site: by default the return address of the call
 * that allocated the chunk.  Never crashes, whatever addr is (NULL, freed,
 * unmapped, stack, kernel-half). A zero-byte chunk contains no address. */
int heapindex_lookup(const void *addr, void **base, size_t *size,
                     const void **site);

#ifdef __cplusplus
}
#endif

#endif /* HEAPINDEX_H */
