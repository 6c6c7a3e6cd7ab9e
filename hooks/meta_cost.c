/* meta_cost.c - what the metadata placement costs in allocator memory:
 * the mean bytes per chunk by which the allocator's chunks grow because the
 * hooks ask for more than the program (process statistics,
 * "meta_bytes_per_chunk").
 *
 * Counting the allocator's rounding, not just the bytes asked for: a
 * trailer's 8 bytes cost nothing where the size class of n already has room
 * for n + 8, and 16 where it has not.  At start-up, when statistics will
 * be written (HEAPINDEX_STATS), the allocator's usable size for every
 * request up to META_PROBE_MAX bytes is probed (one malloc and free each,
 * before the program runs); a chunk of n bytes with m bytes
 * of metadata then costs usable(n + m) - usable(n).  Beyond the probed
 * sizes it is counted as m, the bytes asked for beyond the program's.
 *
 * Which chunks: every chunk made on the general path (p = 1), and on the
 * malloc fast path the chunk whose event overdraws the thread's counter
 * budget (counters.h): an event spending w = size + COUNTER_EVENT_WEIGHT of
 * a budget of CHECK_BUDGET is that one with probability about
 * p = min(1, w / CHECK_BUDGET), so each sample is weighted 1 / p (the
 * Horvitz-Thompson estimate of the mean), at no cost to the fast path's
 * common case; only one overdraft in META_COST_SKIP is sampled (p is that
 * much smaller), so the sampling costs the fast path under half an
 * instruction per malloc+free pair.  Weights are kept in sixteenths, as
 * integers. */
#include "hooks.h"

#define META_PROBE_MAX 1024u
static uint32_t probed_usable[META_PROBE_MAX + 1];
static int probed;

void meta_cost_probe(void *(*real_malloc)(size_t), void (*real_free)(void *),
                     size_t (*real_usable)(void *))
{
	for (size_t n = 0; n <= META_PROBE_MAX; n++) {
		void *p = real_malloc(n);
		if (!p)
			return; /* no figures beyond the bytes asked for */
		probed_usable[n] = (uint32_t)real_usable(p);
		real_free(p);
	}
	probed = 1;
}

static size_t added_bytes(size_t size, size_t meta)
{
	if (!probed || size > META_PROBE_MAX - meta || meta > META_PROBE_MAX)
		return meta;
	return probed_usable[size + meta] - probed_usable[size];
}

void meta_cost_sample(struct thread_counters *k, size_t size, size_t meta, int sure)
{
	/* 1 / p in sixteenths, in integers: this runs on the fast path's
	 * overdraft branch. */
	const uint64_t skipped = (uint64_t)16 * META_COST_SKIP; /* 1 / p for p = 1 / SKIP */
	uint64_t w = (uint64_t)size + (uint64_t)COUNTER_EVENT_WEIGHT;
	uint64_t inverse_p = sure ? 16
	                     : w >= (uint64_t)CHECK_BUDGET ? skipped
	                     : skipped * (uint64_t)CHECK_BUDGET / w;
	k->meta_weight += inverse_p;
	k->meta_added += inverse_p * added_bytes(size, meta);
}
