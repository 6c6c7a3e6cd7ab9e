/* meta.c - the chunk metadata placement's state (chunk.h). */
#include "chunk.h"

#include <string.h>

enum chunk_meta chunk_meta = META_HEADER;
size_t (*chunk_usable_size)(void *);
__thread struct chunk_pending chunk_pending;

static const char *const meta_names[META_COUNT] = { "header", "trailer", "side" };

const char *chunk_meta_name(enum chunk_meta meta)
{
	return (unsigned)meta < META_COUNT ? meta_names[meta] : "?";
}

int chunk_meta_by_name(const char *name)
{
	for (int m = 0; m < META_COUNT; m++)
		if (strcmp(name, meta_names[m]) == 0)
			return m;
	return -1;
}

/* --- the accessors' paths for trailer and side (chunk.h) -------------------- */

uint64_t *chunk_site_word_other(struct chunk *c)
{
	if (chunk_meta == META_TRAILER)
		return chunk_trailer(c);
	return &chunk_pending.site_word;
}

size_t chunk_size_other(const struct chunk *c)
{
	if (chunk_meta == META_TRAILER)
		return chunk_usable_size((void *)chunk_user(c)) - META_TRAILER_BYTES;
	return chunk_pending.size;
}

void chunk_read_other(const struct chunk *c, size_t *size, uintptr_t *site)
{
	if (chunk_meta == META_TRAILER) { /* one malloc_usable_size for both */
		void *user = (void *)chunk_user(c);
		*size = chunk_usable_size(user) - META_TRAILER_BYTES;
		*site = (uintptr_t)(*(const uint64_t *)((unsigned char *)user + *size) & CHUNK_FIELD_MASK);
	} else {
		*size = chunk_pending.size;
		*site = (uintptr_t)(chunk_pending.site_word & CHUNK_FIELD_MASK);
	}
}
