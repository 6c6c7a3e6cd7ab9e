/* uthash.c - the stock uthash library (Debian's uthash-dev) keyed by user
 * pointer: what a C programmer reaches for first.
 *
 * uthash is used as shipped: Bob Jenkins' hash (HASH_JEN) of the 8 key
 * bytes, power-of-two bucket count starting at 32, doubled when a
 * bucket reaches 10 * (expand_mult + 1) entries, doubly-linked bucket chains
 * and an application-order list through every element.  Only what cannot
 * work inside malloc is replaced:
 *  - uthash_malloc/uthash_free map pages (uthash passes the size to free,
 *    which munmap needs); a table of 32 buckets thus costs a whole page;
 *  - out of memory is not fatal (HASH_NONFATAL_OOM): the element is simply
 *    not added and counted, instead of uthash calling exit().
 *
 * The element is embedded in the chunk's links area:
 *     [ UT_hash_handle hh (56 bytes) | key (8) ][ struct chunk ][ user ...
 * uthash needs the key somewhere in memory (it keeps a pointer to it and
 * memcmp's it), and the user pointer is not stored anywhere else, so the
 * 8 key bytes round the 56-byte handle up to 64 links bytes.
 *
 * Interior pointers are answered by probing candidate starts (probe.h).
 * Threads: uthash is not thread-safe; one lock around every call, lookups
 * included, as a C programmer would add.
 */
#include "index.h"
#include "probe.h"

#include <stdio.h>

INDEX_DECLARE(uthash)

static uint64_t oom_drops; /* chunks uthash could not add: unindexed */

#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(elt) (oom_drops++)
#define uthash_malloc(sz) index_map_pages(sz)
#define uthash_free(ptr, sz) index_unmap_pages((ptr), (sz))
#include <uthash.h>

struct uth_entry {
	UT_hash_handle hh;
	uintptr_t key; /* the user pointer */
};

#define LINKS_BYTES sizeof(struct uth_entry)
_Static_assert(LINKS_BYTES % CHUNK_ALIGN == 0, "links must keep user pointers aligned");

static struct uth_entry *table; /* uthash's head element; NULL when empty */
static struct probe_state probe;
static spinlock_t lock; /* guards all of the above */

static inline struct uth_entry *entry_of(const struct chunk *c)
{
	return chunk_index_links(c, LINKS_BYTES);
}

static inline struct chunk *chunk_of_entry(struct uth_entry *e)
{
	return (struct chunk *)(e + 1);
}

int uthash_index_init(const struct heapindex_config *cfg, char *err, size_t errlen)
{
	(void)cfg, (void)err, (void)errlen;
	table = NULL; /* uthash makes its table at the first add */
	probe_init(&probe);
	return 0;
}

void uthash_index_insert(struct chunk *c)
{
	spin_lock(&lock);
	struct uth_entry *e = entry_of(c);
	e->key = chunk_user(c);
	HASH_ADD(hh, table, key, sizeof e->key, e);
	if (e->hh.tbl) /* NULL: uthash ran out of memory and left it out */
		probe_note_insert(&probe, c);
	spin_unlock(&lock);
}

void uthash_index_remove(struct chunk *c)
{
	spin_lock(&lock);
	struct uth_entry *e = entry_of(c);
	if (e->hh.tbl) { /* else never added (out of memory) */
		HASH_DELETE(hh, table, e);
		probe_note_remove(&probe, c);
	}
	spin_unlock(&lock);
}

static struct chunk *exact_start(uintptr_t key)
{
	struct uth_entry *e;
	HASH_FIND(hh, table, &key, sizeof key, e);
	return e ? chunk_of_entry(e) : NULL;
}

int uthash_index_lookup(uintptr_t addr, struct chunk_info *out)
{
	return probe_lookup_locked(&lock, &probe, addr, exact_start, out);
}

void uthash_index_write_stats(struct json_out *out)
{
	spin_lock(&lock);
	const UT_hash_table *t = table ? table->hh.tbl : NULL;
	unsigned items = t ? t->num_items : 0, buckets = t ? t->num_buckets : 0;
	unsigned longest = 0, used = 0;
	for (unsigned i = 0; i < buckets; i++) {
		longest = t->buckets[i].count > longest ? t->buckets[i].count : longest;
		used += t->buckets[i].count > 0;
	}
	json_u64(out, "links_bytes", LINKS_BYTES);
	json_u64(out, "elements", items);
	json_u64(out, "buckets", buckets);
	json_u64(out, "buckets_used", used);
	json_f64(out, "load_factor", buckets ? (double)items / buckets : 0.0);
	json_u64(out, "longest_chain", longest);
	json_u64(out, "expansion_stopped", t ? t->noexpand : 0);
	json_u64(out, "oom_drops", oom_drops);
	json_u64(out, "index_bytes",
	         t ? buckets * sizeof(UT_hash_bucket) + sizeof(UT_hash_table) : 0);
	probe_write_stats(&probe, out);
	spin_unlock(&lock);
}

INDEX_DEFINE_OPS(uthash, LINKS_BYTES, INDEX_ANSWERS_LOOKUPS | INDEX_META_HEADER)
