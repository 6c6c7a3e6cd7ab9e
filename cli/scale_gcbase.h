/* scale_gcbase.h - the Boehm GC anchor of `heapindex scale` (scale_gcbase.c). */
#ifndef HEAPINDEX_SCALE_GCBASE_H
#define HEAPINDEX_SCALE_GCBASE_H

#include <stddef.h>
#include <stdint.h>

/* Start the collector with collection disabled; once per process. */
void gcbase_start(void);
/* object[i] = a new GC_MALLOC_ATOMIC(size[i]) for i in [from, to); -1 if
 * the collector runs out of memory, else 0. */
int gcbase_grow(uintptr_t *object, const uint32_t *size, uint64_t from, uint64_t to);
/* out[i] = GC_base(addr[i] + previous answer & zero): dependent lookups
 * chained on the base alone, the only thing GC_base answers. */
void scale_gcbase_batch(const uintptr_t *addr, uintptr_t *out, size_t n, uintptr_t zero);

#endif
