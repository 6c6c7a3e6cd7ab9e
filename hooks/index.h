/* index.h - the contract between the shared hooks and one heap index.
 *
 * Every index (memtable, noop, the baselines) implements these five calls.
 * The hooks own everything the indexes have in common: the chunk metadata
 * and its placement (chunk.h: an index reads size, site and links only
 * through its accessors, and says in its caps which placements it takes),
 * statistics of calls and live chunks, configuration, threads
 * (threads.h) and fork.
 *
 * An index is a per-process singleton: its state is file-static, and init is
 * called once per process, before any other call (by the hooks, or by one
 * inproc_init; tests that need a fresh index run in a process of their own).
 *
 * Concurrency: insert, remove and lookup may run at the same time on any
 * threads; each index synchronises itself, and its file says how (one lock,
 * per-bin locks, atomic bits).  What every index must give:
 *  - a lookup answers INDEX_FOUND with a chunk that contained addr and was
 *    live at some moment during the lookup, its base, size and site copied
 *    out (struct chunk_info) while it was so: never a torn header, never a
 *    pointer into a chunk another thread may free.  A chunk inserted or
 *    removed while the lookup runs may or may not be found; any other chunk
 *    containing addr is;
 *  - with out->no_site set, site may be 0 (the lookup need answer only
 *    base and size); an index that leaves it so must not note the chunk;
 *  - under side an index without records (INDEX_SIDE_TELLS) answers site 0
 *    always and, as size, the allocator's usable size of the chunk
 *    (chunk_held_size, chunk.h), read while the index keeps it live;
 *  - a lookup never reads the header of a chunk whose remove has finished:
 *    the hooks free a chunk right after remove returns;
 *  - when index_lookup_may_wait() is false (threads.h: a signal handler
 *    interrupted this thread inside an index operation) a lookup never waits
 *    for a lock, spins on one or waits for a remover: if it cannot answer
 *    without, it answers INDEX_UNKNOWN.  index_lookup_lock does that for a
 *    spinlock;
 *  - no index lock is held when a call returns.  Fork is the hooks' affair:
 *    they let no thread be inside an index call when fork happens.
 *
 * Rules the hooks guarantee, so an index need not check them:
 *  - insert gets a chunk whose header (size, site) is set and that is not in
 *    the index; remove gets a chunk that is, and no other thread removes it;
 *    live chunks never overlap;
 *  - an index never calls malloc: memory of its own comes from mmap (see
 *    index_map_pages below), so it cannot re-enter the hooks.
 * Rules an index keeps:
 *  - lookup never faults, whatever addr is, and touches only its own memory
 *    and the headers of live chunks (under side, the allocator's own, through
 *    its malloc_usable_size of a chunk the index holds live: chunk_held_size);
 *  - links_bytes (a multiple of 16) is the space each chunk carries for the
 *    index just below its struct chunk (so such an index takes header only); the 16 index bits of chunk.h are free
 *    too (other threads' inserts and removes may write a chunk's links while
 *    it is live, under the index's own synchronisation).
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
#include "lock.h"
#include "threads.h"

/* A lookup's answer, copied out of the chunk's header. */
struct chunk_info {
	uintptr_t base; /* the user pointer */
	size_t size;    /* the size the program asked for (under side without
	                 * records: the allocator's usable size, chunk_held_size) */
	uintptr_t site; /* the allocation site (sites.h); 0 if no_site, and
	                 * always 0 under side without records */
	/* In, set by the caller before every lookup (an index may overwrite
	 * the whole struct): nonzero if it will not read site
	 * (heapindex_lookup with a NULL site, scale's timed lookups).  An
	 * index may then answer site 0 and skip what only the site needs:
	 * bytemap, whose base and size come from its own memory, then reads
	 * no header at all.  An index that skips the header this way does
	 * not note the chunk (chunk_info_noted), so the lookup cache, which
	 * fills only from noted answers, never keeps a site it did not get. */
	int no_site;
};

enum index_answer {
	INDEX_UNKNOWN = -1, /* could not look without waiting (see above) */
	INDEX_NONE = 0,     /* no live chunk contains addr */
	INDEX_FOUND = 1,    /* *out is the chunk containing addr */
};

/* A lookup is about to answer with chunk c, which its index keeps from being
 * freed until the lookup lets go (a bin lock, a hazard pointer): if this
 * thread's lookup cache asked for it (lookup_cache.h), note c there, so
 * that c's free invalidates the answer.  Every index that reads the header
 * calls this, through chunk_info_copy or directly. */
void lookup_cache_note_fill(struct thread_slot *s, const struct chunk *c);

static inline void chunk_info_noted(const struct chunk *c)
{
	struct thread_slot *s = thread_self();
	if (__builtin_expect(s->lookup_filling != 0, 0))
		lookup_cache_note_fill(s, c);
}

static inline int chunk_info_copy(const struct chunk *c, struct chunk_info *out)
{
	chunk_info_noted(c);
	out->base = chunk_user(c);
	chunk_read(c, &out->size, &out->site);
	return INDEX_FOUND;
}

/* chunk_info_copy for an index without records under side too: there
 * the size is the allocator's usable size (chunk_held_size) and the site
 * 0 (index.h's contract); c is held live by the caller. */
static inline int chunk_info_copy_held(const struct chunk *c, struct chunk_info *out)
{
	if (__builtin_expect(chunk_meta != META_SIDE, 1))
		return chunk_info_copy(c, out);
	out->base = chunk_user(c);
	out->size = chunk_held_size(c);
	out->site = 0;
	return INDEX_FOUND;
}

/* chunk_info_copy in a body compiled for the header placement (chunk.h's
 * _in forms) whose caller found no lookup cache fill running on this
 * thread (thread_self()->lookup_filling 0: only this thread sets it, and a
 * signal handler's lookup puts it back): no note to make, so no call on
 * its way. */
static inline int chunk_info_copy_header_unnoted(const struct chunk *c, struct chunk_info *out)
{
	out->base = chunk_user(c);
	out->size = chunk_size_in(c, META_HEADER);
	out->site = (uintptr_t)(c->site_links & CHUNK_FIELD_MASK);
	return INDEX_FOUND;
}

/* Raise *bound to at least v, atomically: the bounds an index only ever
 * raises on insert (the largest small chunk, which bounds its lookups'
 * backward scans), so that a concurrent raise to a larger value is never
 * undone. */
static inline void index_raise_bound(size_t *bound, size_t v)
{
	size_t seen = __atomic_load_n(bound, __ATOMIC_RELAXED);
	while (v > seen && !__atomic_compare_exchange_n(bound, &seen, v, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
	}
}

/* Under side an index that asks the allocator a chunk's usable size only
 * on its slow path (a new largest request, a general-path chunk) bounds
 * its lookups' backward scan by a reach: the largest usable size asked +
 * INDEX_USABLE_SLACK.  A plain malloc of at most the largest request seen
 * gets a usable size within that: size classes grow with the request
 * (jemalloc: no more), and glibc hands out a free chunk whole when what it
 * would split off is below its minimum chunk (32 bytes), so its usable
 * size exceeds its class by less than 32.  Raise the reach before the
 * chunk can be found: a lookup reaching back for it reads the reach
 * first.  The memtable's start masks and the bitmap's side bits. */
#define INDEX_USABLE_SLACK 32u

static inline void index_raise_reach(size_t *reach, size_t usable)
{
	index_raise_bound(reach, usable + INDEX_USABLE_SLACK);
}

/* Statistics an index counts in lookups, which run on any thread without a
 * lock: relaxed loads and stores, no atomic read-modify-write on the lookup
 * path.  Concurrent lookups may lose a count (figures are approximate while
 * lookups run in parallel); a count is never torn. */
#define INDEX_STAT_ADD(var, n) \
	__atomic_store_n(&(var), __atomic_load_n(&(var), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define INDEX_STAT_MAX(var, v)                                               \
	do {                                                                 \
		if ((v) > __atomic_load_n(&(var), __ATOMIC_RELAXED))         \
			__atomic_store_n(&(var), (v), __ATOMIC_RELAXED);     \
	} while (0)

/* Take l for a lookup: 1, or 0 if it is busy and the lookup may not wait
 * (index_lookup_may_wait): answer INDEX_UNKNOWN then. */
static inline int index_lookup_lock(spinlock_t *l)
{
	if (__builtin_expect(index_lookup_may_wait(), 1)) {
		spin_lock(l);
		return 1;
	}
	return spin_trylock(l);
}

/* What an index can do (index_ops.caps), so callers decide by capability,
 * not by name:
 *  INDEX_ANSWERS_LOOKUPS     lookup finds live chunks (noop and the trace
 *                            recorder index nothing);
 *  INDEX_ANSWERS_FROM_INDEX  base and size come from the index's own memory,
 *                            not the chunk header (bytemap, critnib): a
 *                            corrupt header does not change its answers. */
#define INDEX_ANSWERS_LOOKUPS 1u
#define INDEX_ANSWERS_FROM_INDEX 2u
/*  INDEX_SIDE_RECORDS        under side, a record per chunk keeps its size
 *                            and site, and remove hands them back
 *                            (chunk_side_removed, chunk.h) or, having no
 *                            record of the chunk, leaves chunk_pending.size
 *                            CHUNK_SIZE_NONE: the hooks then count the size
 *                            asked for at free as at malloc, with no call of
 *                            the allocator's malloc_usable_size, and forward
 *                            a pointer the index does not know to the next
 *                            allocator untouched (hooks.c).  Every index
 *                            with updates that takes side has records and
 *                            must say so (the hooks check at start-up);
 *                            noop, whose updates are empty, keeps none
 *                            (its statistics count no bytes under side,
 *                            and it cannot tell a pointer it never saw). */
#define INDEX_SIDE_RECORDS 4u
/*  INDEX_SIDE_TELLS          under side, no records but a mark per chunk:
 *                            remove tells a chunk of its own from a foreign
 *                            pointer (chunk_side_removed(0, 0) for its own,
 *                            CHUNK_SIZE_NONE left for the rest, as above)
 *                            but hands back no size, and a lookup answers
 *                            the allocator's usable size and no site
 *                            (chunk_held_size, chunk.h).  The hooks then
 *                            count no bytes, as for noop, but forward
 *                            foreign pointers as for an index with records.
 *                            Such an index also declares
 *                            INDEX_SIDE_SIZELESS_<name> below (the hooks'
 *                            side path is compiled for it; initialise()
 *                            checks the two agree).  The memtable's start
 *                            masks (memtable/heap_index.c). */
#define INDEX_SIDE_TELLS 8u
/*  INDEX_SIDE_SMALL_BINS     takes side only with HEAPINDEX_BIN_SHIFT at
 *                            most CONFIG_SIDE_BIN_SHIFT_MAX (config.h): a
 *                            bin's start mask and lock bit fill one table
 *                            byte (the memtable).  config_meta_for refuses
 *                            side for a larger shift, and the default then
 *                            falls back to header. */
#define INDEX_SIDE_SMALL_BINS 16u
/* The metadata placements (chunk.h) the index works with; the hooks refuse
 * any other at start-up.  An index that keeps links_bytes in the chunk
 * needs header; one that threads the 16 link bits or reads size and site
 * from the chunk can take trailer; side needs records of its own that keep
 * size and site (copied from chunk_size/chunk_site during insert, the only
 * time they are readable under side, and handed back by remove:
 * INDEX_SIDE_RECORDS), or at least a mark that tells its chunks at remove
 * (INDEX_SIDE_TELLS: its lookups then answer no site). */
#define INDEX_META_HEADER META_CAP(META_HEADER)
#define INDEX_META_TRAILER META_CAP(META_TRAILER)
#define INDEX_META_SIDE META_CAP(META_SIDE)

struct index_ops {
	const char *name;
	size_t links_bytes;
	unsigned caps;
	/* Returns 0, or -1 with a one-line reason (and fix) in err. */
	int (*init)(const struct heapindex_config *cfg, char *err, size_t errlen);
	void (*insert)(struct chunk *c);
	void (*remove)(struct chunk *c);
	/* enum index_answer; fills *out when INDEX_FOUND. */
	int (*lookup)(uintptr_t addr, struct chunk_info *out);
	/* The index's figures as JSON fields: at least INDEX_COMMON_STATS. */
	void (*write_stats)(struct json_out *out);
};

/* The statistics every index writes, so that indexes can be compared by
 * them (tests/test_hooks.c checks each index's line):
 *  "index_bytes"  memory the index holds of its own -- tables, trees, pages
 *                 it has touched of what it reserved -- beside the chunks;
 *  "links_bytes"  the links it keeps in each chunk (index_ops.links_bytes).
 * Every other field is the index's own. */
#define INDEX_COMMON_STATS "index_bytes", "links_bytes"

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
	int name##_index_lookup(uintptr_t, struct chunk_info *);                   \
	void name##_index_write_stats(struct json_out *);

#define INDEX_DEFINE_OPS(name, links, caps)                                        \
	const struct index_ops name##_index_ops = {                                \
		#name, links, caps, name##_index_init, name##_index_insert,        \
		name##_index_remove, name##_index_lookup, name##_index_write_stats \
	};

/* An index whose insert and remove take no lock and leave nothing half
 * done that fork could tear, nor that a lookup from a signal handler could
 * wait for, declares INDEX_UNBRACKETED_<name> here (1): the hooks, compiled
 * once per index, then leave the fork bracket (threads.h) out of their fast
 * paths for it, which saves a quarter of what the hooks cost.  noop keeps
 * no state.  (Every other index has a lock or a multi-step update; the
 * memtable's and the bitmap's common cases leave the bracket all the same:
 * INDEX_SIDE_INLINE and INDEX_HEADER_INLINE below.) */
#define INDEX_UNBRACKETED_noop 1

/* An index whose side bodies (INDEX_SIDE_BODIES below), or header bodies
 * (INDEX_HEADER_BODIES below), have common cases that take no lock and
 * leave nothing half done -- a single atomic read-modify-write of the
 * index's memory after tests of state written before it is published or
 * only ever raised -- declares INDEX_SIDE_INLINE_<name> (1), or
 * INDEX_HEADER_INLINE_<name> (1), and names, as INDEX_INLINE_HEADER_<name>,
 * a header of its own that defines them as static inline functions:
 *	int <name>_index_side_insert_fast(uintptr_t user, size_t size);
 *	int <name>_index_side_remove_fast(uintptr_t user);
 * each 1 if done, or 0 having changed nothing; or
 *	int <name>_index_header_insert_fast(struct chunk *c, size_t size);
 *	struct chunk *<name>_index_header_remove_fast(struct chunk *c, size_t size);
 * insert as side's, remove c if done, NULL having changed nothing (c
 * returned, as remove_header's, so that the hooks' free need not keep it
 * across a call the remove makes).  The hooks' build for that index
 * includes the header and calls them outside the fork bracket
 * (threads.h), and on a refusal calls the body (insert_side, remove_side,
 * insert_header, remove_header) inside it: so everything that locks, maps,
 * marks or waits on what fork or this thread could hold -- whatever fork
 * could tear, or a signal handler's lookup wait for -- runs bracketed, as
 * every index call did before.  What the index must guarantee: fork taken
 * just before or after the one write leaves a whole index in the child
 * (the chunk is then indexed, or not, as its malloc or free never
 * returned there), and a lookup that interrupts a common case on its own
 * thread (a signal handler) never waits for it.  A remove may, after its
 * write, wait for lookups of other threads that hold the chunk's header
 * (threads.h's hazard pointers): they are in fork brackets of their own,
 * which fork waits for, and wait for nothing of the remover's.  The
 * memtable's start masks (memtable/start_masks.h), the bitmap's bits
 * (baselines/bitmap_fast.h).  The index's own bodies are the same
 * functions and their slow paths, so the logic is in one place. */
#define INDEX_SIDE_INLINE_memtable 1
#define INDEX_INLINE_HEADER_memtable "start_masks.h"
#define INDEX_HEADER_INLINE_bitmap 1
#define INDEX_SIDE_INLINE_bitmap 1
#define INDEX_INLINE_HEADER_bitmap "bitmap_fast.h"

/* An index whose insert and remove test the placement (chunk.h) on every
 * call may also export <name>_index_insert_header(c, size) and
 * _remove_header(c, size), bodies for the header placement alone that are
 * given c's size (the requested size, as chunk_size(c) says), and declare
 * INDEX_HEADER_BODIES_<name> here (1): the hooks' header fast path, which
 * runs only under that placement and has the size in a register, calls
 * them and so pays neither the test nor the load and mask of the size.
 * remove_header returns c, so that the hooks' free keeps only its slot
 * across the call (one saved register, not two and a stack adjustment). */
#define INDEX_HEADER_BODIES_memtable 1
#define INDEX_HEADER_BODIES_bitmap 1
#define INDEX_HEADER_BODIES_bytemap 1

/* An index with inline side common cases (INDEX_SIDE_INLINE_<name>,
 * above) has bodies for the side placement's fast path behind them
 * (INDEX_SIDE_BODIES) and exports <name>_index_insert_side(c,
 * size) and _remove_side(c): the hooks' side fast path, which runs only
 * under side and only for a plain malloc of size bytes (its user pointer
 * the allocator's own), calls them with no test of the placement and no
 * size passed through chunk_pending; remove_side returns 1 if c was the
 * index's chunk, 0 if not (a foreign pointer), and touches no
 * chunk_pending.  Only for an index without records (INDEX_SIDE_TELLS):
 * otherwise what they do is what insert and remove do under side. */

/* An index whose updates need only the chunk and its size, written as
 * static insert_sized(c, size) and remove_sized(c, size), which returns c
 * (so that its own calls can be tail calls, as the header body's), gets
 * its four entry points from this: insert and remove read the size
 * through the placement's accessor, the header bodies are given it. */
#define INDEX_DEFINE_SIZED_UPDATES(name)                                            \
	void name##_index_insert_header(struct chunk *c, size_t size);              \
	struct chunk *name##_index_remove_header(struct chunk *c, size_t size);     \
	void name##_index_insert(struct chunk *c) { insert_sized(c, chunk_size(c)); } \
	void name##_index_remove(struct chunk *c) { (void)remove_sized(c, chunk_size(c)); } \
	void name##_index_insert_header(struct chunk *c, size_t size) { insert_sized(c, size); } \
	struct chunk *name##_index_remove_header(struct chunk *c, size_t size) { return remove_sized(c, size); }

/* An index whose insert and remove do nothing at all (noop: it keeps no
 * state) declares INDEX_UPDATES_EMPTY_<name> (1): the hooks' header fast
 * path then makes no call into it, and keeps nothing across one. */
#define INDEX_UPDATES_EMPTY_noop 1

/* An index whose links_bytes is 0 (it keeps nothing of its own in the
 * chunk) declares INDEX_LINKLESS_<name> (1): the hooks' fast path then
 * knows the header's size, CHUNK_HEADER_BYTES, when compiled, and needs no
 * load of it (hooks.c checks at start-up that the ops agree). */
#define INDEX_LINKLESS_noop 1
#define INDEX_LINKLESS_memtable 1
#define INDEX_LINKLESS_bitmap 1
#define INDEX_LINKLESS_bytemap 1
#define INDEX_LINKLESS_critnib 1
#define INDEX_LINKLESS_record 1

/* An index that never notes a chunk for the lookup cache (lookup_cache.h:
 * it answers no lookups) declares INDEX_NEVER_CACHED_<name> (1): its
 * chunks are never marked, so free's fast path skips the mark's test. */
#define INDEX_NEVER_CACHED_noop 1

/* An index that under side tells its chunks at remove but keeps no size
 * (INDEX_SIDE_TELLS above) declares INDEX_SIDE_SIZELESS_<name> (1): the
 * hooks' side path then counts no bytes for it, with no test. */
#define INDEX_SIDE_SIZELESS_memtable 1
#define INDEX_SIDE_SIZELESS_bitmap 1

/* Inside the hooks: the functions of the index this library is built with. */
#ifdef HEAPINDEX_INDEX
#define INDEX_FN(fn) INDEX_CAT(HEAPINDEX_INDEX, INDEX_CAT(_index_, fn))
#define INDEX_OPS INDEX_CAT(HEAPINDEX_INDEX, _index_ops)
#define INDEX_DECLARE_EXPANDED(name) INDEX_DECLARE(name)
INDEX_DECLARE_EXPANDED(HEAPINDEX_INDEX)
#define INDEX_NEVER_CACHED INDEX_CAT(INDEX_NEVER_CACHED_, HEAPINDEX_INDEX)
#define INDEX_HEADER_BODIES INDEX_CAT(INDEX_HEADER_BODIES_, HEAPINDEX_INDEX)
#define INDEX_UPDATES_EMPTY INDEX_CAT(INDEX_UPDATES_EMPTY_, HEAPINDEX_INDEX)
#define INDEX_LINKLESS INDEX_CAT(INDEX_LINKLESS_, HEAPINDEX_INDEX)
#define INDEX_SIDE_SIZELESS INDEX_CAT(INDEX_SIDE_SIZELESS_, HEAPINDEX_INDEX)
#if INDEX_HEADER_BODIES
void INDEX_FN(insert_header)(struct chunk *, size_t);
struct chunk *INDEX_FN(remove_header)(struct chunk *, size_t);
#define INDEX_HEADER_INSERT(c, size) INDEX_FN(insert_header)(c, size)
/* c, after the header body or the remove removed it. */
#define INDEX_HEADER_REMOVE(c, size) INDEX_FN(remove_header)(c, size)
#else
#define INDEX_HEADER_INSERT(c, size) ((void)(size), INDEX_FN(insert)(c))
#define INDEX_HEADER_REMOVE(c, size) ((void)(size), INDEX_FN(remove)(c), (c))
#endif
#define INDEX_SIDE_INLINE INDEX_CAT(INDEX_SIDE_INLINE_, HEAPINDEX_INDEX)
#define INDEX_HEADER_INLINE INDEX_CAT(INDEX_HEADER_INLINE_, HEAPINDEX_INDEX)
#if INDEX_SIDE_INLINE || INDEX_HEADER_INLINE
#include INDEX_CAT(INDEX_INLINE_HEADER_, HEAPINDEX_INDEX)
#endif
#if INDEX_HEADER_INLINE
#define INDEX_HEADER_INSERT_FAST(c, size) INDEX_FN(header_insert_fast)(c, size)
#define INDEX_HEADER_REMOVE_FAST(c, size) INDEX_FN(header_remove_fast)(c, size)
#endif
#if INDEX_SIDE_INLINE
#define INDEX_SIDE_INSERT_FAST(user, size) INDEX_FN(side_insert_fast)(user, size)
#define INDEX_SIDE_REMOVE_FAST(user) INDEX_FN(side_remove_fast)(user)
#endif
/* Side bodies come with the inline common cases: the hooks' side path
 * runs the common case inline and the body, bracketed, for the rest
 * (hooks.c); no path calls the bodies alone. */
#define INDEX_SIDE_BODIES INDEX_SIDE_INLINE
#if INDEX_SIDE_BODIES
void INDEX_FN(insert_side)(struct chunk *, size_t);
int INDEX_FN(remove_side)(struct chunk *);
#define INDEX_SIDE_INSERT(c, size) INDEX_FN(insert_side)(c, size)
#else
#define INDEX_SIDE_INSERT(c, size) ((void)(size), INDEX_FN(insert)(c))
#endif
/* 1 if this index declared INDEX_UNBRACKETED_<name>, else 0 (in #if). */
#define INDEX_UNBRACKETED INDEX_CAT(INDEX_UNBRACKETED_, HEAPINDEX_INDEX)
#endif

/* An index that cannot synchronise itself (the trace recorder, which writes
 * one trace in one order) sets this in its init: the hooks then make every
 * insert and remove under hooks_lock.  Defined by the hooks. */
extern int index_wants_serial_hooks;

/* Page-granular memory for an index's own tables, straight from mmap:
 * NULL on failure. Sizes are rounded up to whole pages. */
void *index_map_pages(size_t bytes);
void index_unmap_pages(void *p, size_t bytes);

#endif /* HEAPINDEX_INDEX_H */
