/* index.h - the contract between the shared hooks and one heap index.
 *
 * Every index (memtable, noop, the baselines) implements these five calls.
 * The hooks own everything the indexes have in common: the chunk header
 * (chunk.h), locking, statistics of calls and live chunks, configuration.
 *
 * Rules the hooks guarantee, so an index need not check them:
 *  - every call is made with the hooks' lock held: an index needs no locking;
 *  - insert gets a chunk whose header (size, site) is set and that is not in
 *    the index; remove gets a chunk that is; chunks never overlap;
 *  - an index never calls malloc: memory of its own comes from mmap (see
 *    index_map_pages below), so it cannot re-enter the hooks.
 * Rules an index keeps:
 *  - lookup never faults, whatever addr is, and touches only its own memory
 *    and the headers of live chunks;
 *  - links_bytes (a multiple of 16) is the space each chunk carries for the
 *    index just below its struct chunk; the 16 index bits of chunk.h are free too.
 *
 * Each index is compiled once into its own libheapindex-<name>.so, where the
 * hooks call it by name (HEAPINDEX_INDEX=<name> picks the functions, so the
 * calls are direct), and into a static library where tests and trace replay
 * reach every index through its index_ops.
 */
#ifndef HEAPINDEX_INDEX_H
#define HEAPINDEX_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "chunk.h"
#include "config.h"
#include "json.h"

struct index_ops {
	const char *name;
	size_t links_bytes;
	/* Returns 0, or -1 with a one-line reason (and fix) in err. */
	int (*init)(const struct heapindex_config *cfg, char *err, size_t errlen);
	void (*insert)(struct chunk *c);
	void (*remove)(struct chunk *c);
	struct chunk *(*lookup)(uintptr_t addr); /* chunk containing addr, or NULL */
	void (*write_stats)(struct json_out *out); /* index figures as JSON fields */
};

/* The links an index keeps for chunk c sit just below it. */
static inline void *chunk_index_links(const struct chunk *c, size_t links_bytes)
{
	return (char *)c - links_bytes;
}

#define INDEX_CAT_(a, b) a##b
#define INDEX_CAT(a, b) INDEX_CAT_(a, b)

/* Declare and define an index's functions as <name>_index_<fn>. */
#define INDEX_DECLARE(name)                                                        \
	extern const struct index_ops name##_index_ops;                            \
	int name##_index_init(const struct heapindex_config *, char *, size_t);    \
	void name##_index_insert(struct chunk *);                                  \
	void name##_index_remove(struct chunk *);                                  \
	struct chunk *name##_index_lookup(uintptr_t);                              \
	void name##_index_write_stats(struct json_out *);

#define INDEX_DEFINE_OPS(name, links)                                              \
	const struct index_ops name##_index_ops = {                                \
		#name, links, name##_index_init, name##_index_insert,              \
		name##_index_remove, name##_index_lookup, name##_index_write_stats \
	};

/* Inside the hooks: the functions of the index this library is built with. */
#ifdef HEAPINDEX_INDEX
#define INDEX_FN(fn) INDEX_CAT(HEAPINDEX_INDEX, INDEX_CAT(_index_, fn))
#define INDEX_OPS INDEX_CAT(HEAPINDEX_INDEX, _index_ops)
#define INDEX_DECLARE_EXPANDED(name) INDEX_DECLARE(name)
INDEX_DECLARE_EXPANDED(HEAPINDEX_INDEX)
#endif

/* Page-granular memory for an index's own tables, straight from mmap:
 * NULL on failure. Sizes are rounded up to whole pages. */
void *index_map_pages(size_t bytes);
void index_unmap_pages(void *p, size_t bytes);

#endif /* HEAPINDEX_INDEX_H */
