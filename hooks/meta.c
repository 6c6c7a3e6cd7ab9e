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
