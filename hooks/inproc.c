/* inproc.c - see inproc.h. */
#include "inproc.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "index_list.h"
#include "lookup_cache.h"

#define DECLARE_OPS(name) extern const struct index_ops name##_index_ops;
HEAPINDEX_FOR_EACH_INDEX(DECLARE_OPS)
#define OPS_ADDRESS(name) &name##_index_ops,
const struct index_ops *const all_indexes[] = { HEAPINDEX_FOR_EACH_INDEX(OPS_ADDRESS) NULL };

const struct index_ops *index_by_name(const char *name)
{
	for (int i = 0; all_indexes[i]; i++)
		if (strcmp(all_indexes[i]->name, name) == 0)
			return all_indexes[i];
	return NULL;
}

int inproc_init(struct inproc *d, const struct index_ops *ops,
                const struct heapindex_config *cfg, char *err, size_t errlen)
{
	d->ops = ops;
	d->header_bytes = CHUNK_HEADER_BYTES + ops->links_bytes;
	/* One placement per process: HEAPINDEX_META if set, else header (the
	 * hooks' default depends on the index; in-process drivers compare
	 * indexes under one placement). */
	struct heapindex_config c = *cfg;
	if (c.meta < 0)
		c.meta = META_HEADER;
	int meta = config_meta_for(&c, ops->name, ops->caps, err, errlen);
	if (meta < 0)
		return -1;
	chunk_meta = (enum chunk_meta)meta;
	chunk_usable_size = malloc_usable_size;
	lookup_cache_setup(cfg->lookup_cache);
	return ops->init(cfg, err, errlen);
}

struct chunk *inproc_new_chunk(const struct inproc *d, size_t size, size_t align, uintptr_t site)
{
	if (align < CHUNK_ALIGN)
		align = CHUNK_ALIGN;
	/* As the hooks do (hooks.c): a header in front, or a trailer behind. */
	size_t pad = 0, meta = chunk_meta == META_TRAILER ? META_TRAILER_BYTES : 0;
	if (chunk_meta == META_HEADER && !(pad = meta = chunk_pad_for(d->header_bytes, align, size)))
		return NULL;
	if (size > CHUNK_SIZE_MAX - meta)
		return NULL;
	/* aligned_alloc wants a multiple of align (size + meta < 2^48: no overflow). */
	void *real = aligned_alloc(align, (size + meta + align - 1) & ~(align - 1));
	if (!real)
		return NULL;
	struct chunk *c = chunk_of_user((unsigned char *)real + pad);
	chunk_init(c, size, pad, site);
	/* real is reachable again as user - pad: inproc_free_chunk frees it. */
	// cppcheck-suppress memleak
	return c;
}

void inproc_free_chunk(struct chunk *c)
{
	free((unsigned char *)chunk_user(c) - chunk_pad(c));
}

void *inproc_alloc(struct inproc *d, size_t size, size_t align, uintptr_t site)
{
	struct chunk *c = inproc_new_chunk(d, size, align, site);
	if (!c)
		return NULL;
	d->ops->insert(c);
	return (void *)chunk_user(c);
}

void inproc_free(struct inproc *d, void *user)
{
	if (!user)
		return;
	struct chunk *c = chunk_of_user(user);
	if (chunk_meta == META_SIDE)
		chunk_side_before_remove(c, (d->ops->caps & (INDEX_SIDE_RECORDS | INDEX_SIDE_TELLS)) != 0);
	d->ops->remove(c);
	lookup_cache_note_removed(c);
	inproc_free_chunk(c);
}

int inproc_lookup(struct inproc *d, const void *addr, void **base, size_t *size,
                  const void **site)
{
	struct chunk_info info = { .no_site = site == NULL };
	/* The cache lives in the thread's slot: attach one only to use it. */
	struct thread_slot *s = lookup_cache_entries ? thread_slot() : NULL;
	int answer = s ? lookup_cached(s, (uintptr_t)addr, d->ops->lookup, &info)
	               : d->ops->lookup((uintptr_t)addr, &info);
	if (answer != INDEX_FOUND)
		return 0;
	if (base)
		*base = (void *)info.base;
	if (size)
		*size = info.size;
	if (site)
		*site = (const void *)info.site;
	return 1;
}
