/* noop.c - an index that indexes nothing: the seed talk's "no-op hooks" row.
 *
 * The library built with it runs exactly the hooks every other index runs
 * (same header, same statistics, same fork brackets), so its cost over the
 * uninstrumented program is the cost of the hooks alone.  Lookups always
 * answer "not found".  Nothing to synchronise: it keeps no state. */
#include "index.h"

INDEX_DECLARE(noop)

int noop_index_init(const struct heapindex_config *cfg, char *err, size_t errlen)
{
	(void)cfg, (void)err, (void)errlen;
	return 0;
}

void noop_index_insert(struct chunk *c) { (void)c; }
void noop_index_remove(struct chunk *c) { (void)c; }
int noop_index_lookup(uintptr_t addr, struct chunk_info *out) { (void)addr, (void)out; return INDEX_NONE; }
void noop_index_write_stats(struct json_out *out)
{
	json_u64(out, "links_bytes", 0);
	json_u64(out, "index_bytes", 0);
}

INDEX_DEFINE_OPS(noop, 0, 0)
