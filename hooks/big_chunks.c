/* big_chunks.c - see big_chunks.h. */
#include "big_chunks.h"

#include <string.h>

#include "index.h"

/* How many chunks have a user pointer <= addr. */
static size_t count_at_or_below(const struct big_chunks *b, uintptr_t addr)
{
	size_t lo = 0, hi = b->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (chunk_user(b->at[mid]) <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int grow(struct big_chunks *b)
{
	size_t capacity = b->capacity ? 2 * b->capacity : 4096 / sizeof *b->at;
	struct chunk **grown = index_map_pages(capacity * sizeof *grown);
	if (!grown) {
		b->grow_failures++;
		return -1;
	}
	if (b->count)
		memcpy(grown, b->at, b->count * sizeof *b->at);
	index_unmap_pages(b->at, b->capacity * sizeof *b->at);
	b->at = grown;
	b->capacity = capacity;
	return 0;
}

int big_chunks_insert(struct big_chunks *b, struct chunk *c)
{
	spin_lock(&b->lock);
	if (b->count == b->capacity && grow(b)) {
		spin_unlock(&b->lock);
		return -1;
	}
	size_t at = count_at_or_below(b, chunk_user(c));
	memmove(b->at + at + 1, b->at + at, (b->count - at) * sizeof *b->at);
	b->at[at] = c;
	/* Atomic: big_chunks_empty reads it without the lock. */
	__atomic_fetch_add(&b->count, 1, __ATOMIC_RELAXED);
	if (b->count > b->peak)
		b->peak = b->count;
	spin_unlock(&b->lock);
	return 0;
}

void big_chunks_remove(struct big_chunks *b, struct chunk *c)
{
	spin_lock(&b->lock);
	size_t below = count_at_or_below(b, chunk_user(c));
	if (below > 0 && b->at[below - 1] == c) { /* else never inserted: its array could not grow */
		memmove(b->at + below - 1, b->at + below, (b->count - below) * sizeof *b->at);
		__atomic_fetch_sub(&b->count, 1, __ATOMIC_RELAXED);
	}
	spin_unlock(&b->lock);
}

int big_chunks_lookup(struct big_chunks *b, uintptr_t addr, struct chunk_info *out)
{
	if (!index_lookup_lock(&b->lock))
		return INDEX_UNKNOWN;
	b->lookups++;
	size_t below = count_at_or_below(b, addr);
	int answer = INDEX_NONE;
	if (below > 0 && chunk_contains(b->at[below - 1], addr))
		answer = chunk_info_copy(b->at[below - 1], out);
	spin_unlock(&b->lock);
	return answer;
}

size_t big_chunks_bytes(const struct big_chunks *b)
{
	return b->capacity * sizeof *b->at;
}

void big_chunks_write_stats(struct big_chunks *b, struct json_out *out)
{
	spin_lock(&b->lock);
	json_u64(out, "big_live", b->count);
	json_u64(out, "big_peak", b->peak);
	json_u64(out, "big_array_bytes", big_chunks_bytes(b));
	json_u64(out, "big_lookups", b->lookups);
	json_u64(out, "big_grow_failures", b->grow_failures);
	spin_unlock(&b->lock);
}
