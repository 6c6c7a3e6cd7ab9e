/* counters.c - publishing per-thread counts and adding them up; see
 * counters.h for how exact the figures are. */
#include "hooks.h"

static struct live_totals live_total;

static void raise_peak(int64_t *peak, int64_t value)
{
	int64_t seen = __atomic_load_n(peak, __ATOMIC_RELAXED);
	while (value > seen &&
	       !__atomic_compare_exchange_n(peak, &seen, value, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
	}
}

/* The live metadata of a thread with live_chunks chunks live. */
static inline int64_t live_meta(const struct thread_counters *k, int64_t live_chunks)
{
	return live_chunks * (int64_t)hooks_meta_bytes + k->extra_meta;
}

/* Publish s's live figures, f, just looked at, into live_total, and raise
 * the peaks to the new totals. */
static void publish(struct thread_slot *s, const struct thread_figures *f)
{
	struct thread_counters *k = &s->counters;
	int64_t meta = live_meta(k, f->live_chunks);
	int64_t d_chunks = f->live_chunks - k->flushed_chunks, d_bytes = f->live_bytes - k->flushed_bytes;
	int64_t d_meta = meta - k->flushed_meta;
	k->flushed_chunks = f->live_chunks;
	k->flushed_bytes = f->live_bytes;
	k->flushed_meta = meta;
	raise_peak(&live_total.peak_chunks,
	           __atomic_add_fetch(&live_total.chunks, d_chunks, __ATOMIC_RELAXED));
	raise_peak(&live_total.peak_bytes,
	           __atomic_add_fetch(&live_total.bytes, d_bytes, __ATOMIC_RELAXED));
	raise_peak(&live_total.peak_meta,
	           __atomic_add_fetch(&live_total.meta, d_meta, __ATOMIC_RELAXED));
}

static int beyond(int64_t delta, int64_t limit)
{
	return delta > limit || delta < -limit;
}

/* A look at s's counters, which publishes its live figures if always or
 * if they moved beyond FLUSH_AT since last published.  counts_bytes is a
 * constant in each copy, so that none tests it. */
static inline __attribute__((always_inline)) void look_as(struct thread_slot *s, int always,
                                                         int counts_bytes)
{
	struct thread_counters *k = &s->counters;
	struct thread_figures f = thread_figures(k, counts_bytes);
	thread_counters_look(k, &f, counts_bytes);
	if (always || beyond(f.live_chunks - k->flushed_chunks, FLUSH_AT_CHUNKS) ||
	    beyond(f.live_bytes - k->flushed_bytes, FLUSH_AT_BYTES) ||
	    beyond(live_meta(k, f.live_chunks) - k->flushed_meta, FLUSH_AT_CHUNKS * (int64_t)hooks_meta_bytes))
		publish(s, &f);
}

/* Also the threads' retire hook: a thread that ends leaves nothing held back. */
void counters_flush(struct thread_slot *s)
{
	if (HOOKS_COUNTS_BYTES)
		look_as(s, 1, 1);
	else
		look_as(s, 1, 0);
}

void counters_check_counting(struct thread_slot *s)
{
	look_as(s, 0, 1);
}

void counters_check_budgeted(struct thread_slot *s)
{
	look_as(s, 0, 0);
}

/* Other threads' counters are read while they may be changing: each word
 * is read whole (aligned 64-bit loads), so a figure is at worst a moment
 * old.  With HOOKS_UNDER_LOCK features the caller holds hooks_lock and
 * the live figures are exact. */
static void add_slot(struct hook_totals *t, const struct thread_slot *s)
{
	const struct thread_counters *src = &s->counters;
	/* A copy, word by word, then the figures derived from it. */
	struct thread_counters k = { 0 };
	const uint64_t *from = (const uint64_t *)src;
	uint64_t *to = (uint64_t *)&k;
	_Static_assert(sizeof k % sizeof *to == 0, "thread_counters is made of 64-bit words");
	for (size_t i = 0; i < sizeof k / sizeof *to; i++)
		to[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
	for (int e = 0; e < ENTRY_COUNT; e++)
		t->calls[e] += k.calls[e];
	struct thread_figures f = thread_figures(&k, HOOKS_COUNTS_BYTES);
	t->calls[ENTRY_malloc] += f.fast_in;
	t->calls[ENTRY_free] += f.fast_out;
	t->failed_allocs += k.failed_allocs;
	t->lookups_found += k.lookups_found;
	t->lookups_missed += k.lookups_missed;
	t->lookup_cache_hits += k.lookup_cache_hits;
	t->lookup_cache_misses += k.lookup_cache_misses;
	int64_t chunks = f.live_chunks;
	t->live_chunks += chunks;
	t->live_bytes += f.live_bytes;
	t->meta_weight += k.meta_weight;
	t->meta_added += k.meta_added;
	t->live_meta_bytes += chunks * (int64_t)hooks_meta_bytes + k.extra_meta;
}

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

void counters_totals(struct hook_totals *t)
{
	*t = (struct hook_totals){ 0 };
	for (const struct thread_slot *s = threads_first(); s; s = threads_next(s))
		if (thread_slot_ever_used(s))
			add_slot(t, s);
	add_slot(t, &hooks_fallback_slot);
	/* The published peaks lag the truth by the bound of counters.h; the
	 * exact live figures just added are a lower bound too. */
	t->peak_live_chunks = max64(__atomic_load_n(&live_total.peak_chunks, __ATOMIC_RELAXED), t->live_chunks);
	t->peak_live_bytes = max64(__atomic_load_n(&live_total.peak_bytes, __ATOMIC_RELAXED), t->live_bytes);
	t->peak_meta_bytes = max64(__atomic_load_n(&live_total.peak_meta, __ATOMIC_RELAXED), t->live_meta_bytes);
}
