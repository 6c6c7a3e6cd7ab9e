/* probe.h - how an index keyed by exact chunk start (a hash table) answers an
 * interior pointer: by asking about every candidate start below it.
 *
 * A hash table only answers "is there a chunk starting exactly at s?".  User
 * pointers are CHUNK_ALIGN-aligned, so the chunk containing addr, if any,
 * starts at one of addr & ~15, (addr & ~15) - 16, ...; and it starts less
 * than its size below addr.  So the honest fallback probes those candidates
 * downward, nearest first, and stops at the first chunk it finds: chunks
 * never overlap, so if the nearest start below addr is a chunk that does not
 * contain addr, no lower chunk does either.  A miss far from any chunk start
 * therefore costs (largest chunk size) / 16 exact lookups: that is the
 * figure this file counts and the vghash and uthash indexes report.
 *
 * The bound is the largest *live* size, not the largest ever: one short-lived
 * multi-MiB buffer early in a run would otherwise make every later miss cost
 * hundreds of thousands of probes.  Exact live maximum needs an ordered
 * structure; instead live chunks are counted per size class of 4 classes per
 * power of two, and the bound is the top of the highest non-empty class:
 * at most 25% above the true maximum, for two counter updates per call.
 *
 * Addresses outside [lowest start ever, highest end ever) are answered at
 * once (NULL, the stack, static data, the kernel half): any implementation
 * would keep these two words, and without them a wild pointer costs a full
 * probe run.  They only widen (the cheap choice), so a gap left by freed
 * chunks still costs probes.
 */
#ifndef HEAPINDEX_PROBE_H
#define HEAPINDEX_PROBE_H

#include <stdint.h>

#include "index.h"

/* Sizes < 4 are classes 0..3; larger ones: 4 per power of two, by their two
 * bits after the leading one.  48-bit sizes need 4 * 47 classes. */
#define PROBE_SIZE_CLASSES (4 * (CHUNK_FIELD_BITS - 1))

struct probe_state {
	uint64_t live_in_class[PROBE_SIZE_CLASSES];
	unsigned top_class;      /* no live chunk is in a higher class */
	uintptr_t lowest_start;  /* no chunk ever started below this... */
	uintptr_t highest_end;   /* ...or ended above this (0: none yet) */
	uint64_t lookups, probes, max_probes, outside_bounds;
};

static inline unsigned probe_size_class(size_t size)
{
	if (size < 4)
		return (unsigned)size;
	unsigned top_bit = 63u - (unsigned)__builtin_clzll(size); /* >= 2 */
	return 4 * (top_bit - 1) + (unsigned)((size >> (top_bit - 2)) & 3);
}

/* The largest size in a class. */
static inline size_t probe_class_max(unsigned cls)
{
	if (cls < 4)
		return cls;
	unsigned top_bit = cls / 4 + 1, two_bits = cls % 4;
	return (((size_t)(4 | two_bits) + 1) << (top_bit - 2)) - 1;
}

static inline void probe_init(struct probe_state *p)
{
	*p = (struct probe_state){ .lowest_start = UINTPTR_MAX };
}

static inline void probe_note_insert(struct probe_state *p, const struct chunk *c)
{
	uintptr_t start = chunk_user(c), end = start + chunk_size(c);
	unsigned cls = probe_size_class(chunk_size(c));
	p->live_in_class[cls]++;
	if (cls > p->top_class)
		p->top_class = cls;
	if (start < p->lowest_start)
		p->lowest_start = start;
	if (end > p->highest_end)
		p->highest_end = end;
}

static inline void probe_note_remove(struct probe_state *p, const struct chunk *c)
{
	unsigned cls = probe_size_class(chunk_size(c));
	p->live_in_class[cls]--;
	while (p->top_class > 0 && p->live_in_class[p->top_class] == 0)
		p->top_class--;
}

/* Every chunk containing some address starts less than this below it. */
static inline size_t probe_live_reach(const struct probe_state *p)
{
	return probe_class_max(p->top_class);
}

/* The chunk containing addr, asking exact_start(s) -- the chunk starting at
 * exactly s, or NULL -- for each candidate s.  Inlined into each index with
 * its own exact_start, so the call is direct. */
static inline struct chunk *probe_lookup(struct probe_state *p, uintptr_t addr,
                                         struct chunk *(*exact_start)(uintptr_t))
{
	p->lookups++;
	if (addr < p->lowest_start || addr >= p->highest_end) {
		p->outside_bounds++;
		return NULL;
	}
	size_t reach = probe_live_reach(p);
	/* Candidates s satisfy addr - s < reach and s >= lowest_start. */
	uintptr_t floor = addr - p->lowest_start < reach ? p->lowest_start : addr - reach + 1;
	uintptr_t s = addr & ~(uintptr_t)(CHUNK_ALIGN - 1);
	struct chunk *c;
	uint64_t probes = 0;
	for (;;) {
		probes++;
		c = exact_start(s);
		if (c || s < floor + CHUNK_ALIGN)
			break;
		s -= CHUNK_ALIGN;
	}
	p->probes += probes;
	if (probes > p->max_probes)
		p->max_probes = probes;
	return c && chunk_contains(c, addr) ? c : NULL;
}

/* An index's lookup, for the hash tables that keep one lock (as Valgrind's
 * and mudflap's did): probe under it and copy the answer out before
 * releasing it, since the chunk may be freed right after (index.h). */
static inline int probe_lookup_locked(spinlock_t *lock, struct probe_state *p, uintptr_t addr,
                                      struct chunk *(*exact_start)(uintptr_t),
                                      struct chunk_info *out)
{
	chunk_prefetch_header_guess(addr);
	if (!index_lookup_lock(lock))
		return INDEX_UNKNOWN;
	const struct chunk *c = probe_lookup(p, addr, exact_start);
	int answer = c ? chunk_info_copy(c, out) : INDEX_NONE;
	spin_unlock(lock);
	return answer;
}

static inline void probe_write_stats(const struct probe_state *p, struct json_out *out)
{
	json_u64(out, "lookups", p->lookups);
	json_u64(out, "lookups_outside_heap_bounds", p->outside_bounds);
	json_u64(out, "probes", p->probes);
	json_f64(out, "probes_per_lookup", p->lookups ? (double)p->probes / (double)p->lookups : 0.0);
	json_u64(out, "max_probes", p->max_probes);
	json_u64(out, "live_size_bound", probe_live_reach(p));
}

#endif /* HEAPINDEX_PROBE_H */
