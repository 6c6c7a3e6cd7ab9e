/* inproc.h - drive an index in-process, without LD_PRELOAD.
 *
 * Tests, trace replay and the scale workload link every index statically
 * (libheapindex-indexes.a) and need what the hooks do for a chunk: real
 * memory with the header in front, inserted into the index, removed before
 * it is freed.  This is that, for one index chosen at run time, with no
 * interposition: the memory comes from the process's own malloc, which is not
 * hooked here.  The indexes synchronise themselves (index.h), so several
 * threads may share one struct inproc; there are no fork brackets.
 */
#ifndef HEAPINDEX_INPROC_H
#define HEAPINDEX_INPROC_H

#include <stddef.h>
#include <stdint.h>

#include "index.h"

/* Every index linked into this program, by name; NULL if unknown. */
const struct index_ops *index_by_name(const char *name);
/* NULL-terminated list of every index's ops, in build order. */
extern const struct index_ops *const all_indexes[];

struct inproc {
	const struct index_ops *ops;
	size_t header_bytes; /* struct chunk + the index's links */
};

/* Returns 0, or -1 with the index's reason in err. */
int inproc_init(struct inproc *d, const struct index_ops *ops,
                const struct heapindex_config *cfg, char *err, size_t errlen);
/* A chunk of size bytes aligned to align (a power of two), indexed; NULL if
 * the memory cannot be had. */
void *inproc_alloc(struct inproc *d, size_t size, size_t align, uintptr_t site);
void inproc_free(struct inproc *d, void *user);
/* inproc_alloc and inproc_free without the index: the chunk's memory and
 * header only (trace replay times the index calls apart).  NULL if the
 * memory cannot be had. */
struct chunk *inproc_new_chunk(const struct inproc *d, size_t size, size_t align, uintptr_t site);
void inproc_free_chunk(struct chunk *c);
/* The chunk containing addr, as heapindex_lookup answers it. */
int inproc_lookup(struct inproc *d, const void *addr, void **base, size_t *size,
                  const void **site);

#endif /* HEAPINDEX_INPROC_H */
