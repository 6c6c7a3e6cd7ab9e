/* critnib.c - a 16-way, path-compressed radix tree of chunk starts whose
 * lookups take no lock: the design of critnib (Intel PMDK's
 * libpmemobj/critnib.c, 2018, now oneAPI UMF's src/critnib/critnib.c),
 * written here from its published description.
 *
 * The tree.  Keys are user pointers.  A node splits its subtree on one
 * 4-bit slice (nibble) of the key, at bits shift .. shift+3, into 16
 * children; nibbles on which every key of a subtree agrees get no node at
 * all (path compression, as in a crit-bit tree), so a node stores `path`,
 * the key bits above its nibble shared by its whole subtree.  Every node has
 * at least two children, so there are fewer nodes than leaves, and a path
 * from the root crosses at most 16 nodes, shifts strictly decreasing.
 * User pointers are 16-byte aligned: bits 0-3 never differ, no node ever
 * has shift 0.
 *
 * A lookup is critnib's find_le, then a bounds check: the leaf with the
 * greatest start <= addr, if addr is below its end.  That is the only chunk
 * that can contain addr: chunks never overlap, and a chunk's header lies
 * between it and the previous chunk's end, so no later start is <= addr.
 * The leaf keeps the chunk's start, size and site in index memory, so the
 * lookup reads no heap memory at all: only nodes and one leaf.  So the
 * chunk needs no header: under side, critnib's default placement
 * (hooks/chunk.h), the leaf is the only record, and remove hands its size
 * and site back to the hooks (index.h, INDEX_SIDE_RECORDS).
 *
 * Concurrency, as in critnib.  Writers are serialised by one lock
 * (writer_lock, critnib's one writer mutex).  Readers take no lock and
 * write nothing shared:
 *  - every store into a published node or leaf is a single atomic store, and
 *    a new node or leaf is filled before the release store that links it, so
 *    a reader sees either the old subtree or the new, both valid;
 *  - nodes and leaves come from pools of mmapped slabs and are never
 *    unmapped: a reader holding a stale pointer still reads mapped memory
 *    that was written before, never a fault and never an untouched page;
 *  - a removed node or leaf is not reused until DELETED_LIFE more removes
 *    have happened (a ring of pending deletions), and `removes` counts them:
 *    a reader that sees the count advance by DELETED_LIFE or more while it
 *    worked may have read reused memory, and starts again.  Fewer, and
 *    everything it read was as some writer left it.
 *  - a reader crossing a node being reused could see any mixture of valid
 *    values; it never loops, because it only follows children whose shift is
 *    below their parent's (16 steps at most), and the count check then sends
 *    it round again.
 * So a chunk that stays live during a lookup is always found: each writer
 * step keeps every other key reachable along its own nibbles.
 *
 * Invariants (between writer operations):
 *  - every live, indexed chunk has exactly one leaf, reached from the root by
 *    following its start's nibbles; leaf.base is that start;
 *  - a node has >= 2 non-empty children, its path has no bits at or below
 *    its nibble, and each child node has a smaller shift;
 *  - a child slot only ever holds 0, a node of the node pool, or a leaf of
 *    the leaf pool tagged with LEAF_TAG (in every state a reader can see);
 *  - an object in the pending ring or on a free list is reachable from no
 *    slot; one leaves the ring for its free list only after DELETED_LIFE
 *    further removes.
 */
#include "index.h"

#include <stdio.h>
#include <string.h>

INDEX_DECLARE(critnib)

#define NIB_BITS 4
#define FANOUT (1u << NIB_BITS)
#define KEY_BITS 64
#define MAX_DEPTH (KEY_BITS / NIB_BITS) /* nodes on any root-to-leaf path */
#define LEAF_TAG ((uintptr_t)1)
/* critnib's value.  Larger only delays reuse (memory) and makes a reader
 * that is slower than that many removes rarer still. */
#define DELETED_LIFE 16

/* Reader-side loads and writer-side stores of anything a reader can see. */
#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

struct cn_node {
	uintptr_t path;  /* key bits above this node's nibble (lower bits 0); on
	                  * a free list, the next free node */
	uintptr_t shift; /* this node's nibble is key bits shift .. shift + 3 */
	uintptr_t child[FANOUT]; /* 0, a node, or a leaf | LEAF_TAG */
};

/* 32 bytes, aligned: one cache line holds the whole leaf. */
struct cn_leaf {
	_Alignas(32) uintptr_t base; /* the chunk's user pointer, the key; on a
	                              * free list, the next free leaf */
	uint64_t size;               /* the size the program asked for */
	uintptr_t site;
};

_Static_assert(sizeof(struct cn_leaf) == 32, "a leaf is half a cache line");

/* --- pools: slabs from index_map_pages, carved in order, never unmapped ---------
 * index_map_pages commits a slab's pages at once (pages.c), so the slabs
 * double from 64 KiB, a small program's need, only up to 4 MiB: what is
 * committed ahead of use stays under 4 MiB per pool, and 10^7 chunks still
 * take only a few hundred mappings. */

#define SLAB_FIRST ((size_t)64 << 10)
#define SLAB_MAX ((size_t)4 << 20)

struct pool {
	size_t object_bytes;
	unsigned char *next, *end; /* the uncarved tail of the newest slab */
	size_t slab_bytes;         /* the size of the next slab */
	void *free;                /* objects back from the pending ring */
	uint64_t mapped_bytes, carved;
};

static struct pool node_pool = { .object_bytes = sizeof(struct cn_node), .slab_bytes = SLAB_FIRST };
static struct pool leaf_pool = { .object_bytes = sizeof(struct cn_leaf), .slab_bytes = SLAB_FIRST };

/* An object of the pool, reused or carved; NULL if no slab can be mapped. */
static void *pool_take(struct pool *p)
{
	void *o = p->free;
	if (o) {
		p->free = (void *)*(uintptr_t *)o;
	} else {
		if ((size_t)(p->end - p->next) < p->object_bytes) {
			unsigned char *slab = index_map_pages(p->slab_bytes);
			if (!slab)
				return NULL;
			/* Readers take no lock by design (atomic loads, a sequence
			 * count): tell helgrind and drd, which see only locks. */
			LOCK_ANNOTATE_BENIGN_RACE(slab, p->slab_bytes, "critnib nodes, read without a lock");
			p->next = slab;
			p->end = slab + p->slab_bytes;
			p->mapped_bytes += p->slab_bytes;
			if (p->slab_bytes < SLAB_MAX)
				p->slab_bytes *= 2;
		}
		o = p->next;
		p->next += p->object_bytes;
		p->carved++;
	}
	return o;
}

/* The free list is linked through the object's first word (path or base): a
 * stale reader may read it, which the removes count already covers. */
static void pool_give(struct pool *p, void *o)
{
	STORE((uintptr_t *)o, (uintptr_t)p->free);
	p->free = o;
}

/* --- the tree -------------------------------------------------------------------- */

static uintptr_t root;  /* 0, a node, or a leaf | LEAF_TAG */
static uint64_t removes; /* removes so far: the readers' sequence count */

/* Removed objects wait here DELETED_LIFE removes before going back to the
 * pools: entry removes % DELETED_LIFE holds what that remove retired. */
static struct {
	struct cn_leaf *leaf;
	struct cn_node *node;
} pending[DELETED_LIFE];

static struct {
	uint64_t dropped_inserts, lookup_retries;
} counters;

static inline int is_leaf(uintptr_t n) { return (n & LEAF_TAG) != 0; }
static inline struct cn_leaf *as_leaf(uintptr_t n) { return (struct cn_leaf *)(n & ~LEAF_TAG); }
static inline struct cn_node *as_node(uintptr_t n) { return (struct cn_node *)n; }

static inline unsigned nibble(uintptr_t key, uintptr_t shift)
{
	return (unsigned)(key >> shift) & (FANOUT - 1);
}

/* Keeps the key bits above the nibble at shift (shift 60: none; unsigned
 * arithmetic wraps 16 << 60 to 0, so the mask is then 0). */
static inline uintptr_t above_nibble(uintptr_t shift)
{
	return ~(((uintptr_t)FANOUT << shift) - 1);
}

int critnib_index_init(const struct heapindex_config *cfg, char *err, size_t errlen)
{
	(void)cfg, (void)err, (void)errlen;
	LOCK_ANNOTATE_BENIGN_RACE(&root, sizeof root, "critnib root, read without a lock");
	LOCK_ANNOTATE_BENIGN_RACE(&removes, sizeof removes, "critnib sequence count");
	LOCK_ANNOTATE_BENIGN_RACE(&counters, sizeof counters, "lookup statistics");
	return 0;
}

static spinlock_t writer_lock;

static void insert_locked(struct chunk *c);
static void remove_locked(struct chunk *c);

void critnib_index_insert(struct chunk *c)
{
	spin_lock(&writer_lock);
	insert_locked(c);
	spin_unlock(&writer_lock);
}

void critnib_index_remove(struct chunk *c)
{
	spin_lock(&writer_lock);
	remove_locked(c);
	spin_unlock(&writer_lock);
}

static void insert_locked(struct chunk *c)
{
	uintptr_t key = chunk_user(c);
	struct cn_leaf *leaf = pool_take(&leaf_pool);
	if (!leaf) {
		counters.dropped_inserts++; /* unindexed, never corrupt */
		return;
	}
	size_t size;
	uintptr_t site;
	chunk_read(c, &size, &site);
	STORE(&leaf->base, key);
	STORE(&leaf->size, (uint64_t)size);
	STORE(&leaf->site, site);
	uintptr_t tagged = (uintptr_t)leaf | LEAF_TAG;

	/* Down while key is inside the subtree: to an empty slot, a leaf, or a
	 * node whose path key leaves. */
	uintptr_t *slot = &root, n = root;
	while (n && !is_leaf(n)) {
		const struct cn_node *node = as_node(n);
		if ((key & above_nibble(node->shift)) != node->path)
			break;
		slot = as_node(n)->child + nibble(key, node->shift);
		n = *slot;
	}
	if (!n) {
		STORE(slot, tagged);
		return;
	}
	/* key and the subtree at n first differ in the nibble of diff's top bit,
	 * which is above n's own nibble and below the parent's. */
	uintptr_t other = is_leaf(n) ? as_leaf(n)->base : as_node(n)->path;
	uintptr_t diff = key ^ other;
	struct cn_node *split = diff ? pool_take(&node_pool) : NULL;
	if (!split) { /* no memory, or key already indexed (the hooks never do that) */
		pool_give(&leaf_pool, leaf); /* never published: no reader has it */
		counters.dropped_inserts++;
		return;
	}
	uintptr_t shift = (uintptr_t)(63 - __builtin_clzll(diff)) & ~(uintptr_t)(NIB_BITS - 1);
	STORE(&split->path, key & above_nibble(shift));
	STORE(&split->shift, shift);
	for (unsigned i = 0; i < FANOUT; i++)
		STORE(&split->child[i], (uintptr_t)0);
	STORE(&split->child[nibble(key, shift)], tagged);
	STORE(&split->child[nibble(other, shift)], n);
	STORE(slot, (uintptr_t)split); /* publishes the filled node */
}

/* One remove's leaf and maybe node leave the tree: count the remove, then
 * the objects retired DELETED_LIFE removes ago may be reused.  The count's
 * release store comes after the unlinking stores and before any reuse. */
static void retire(struct cn_leaf *leaf, struct cn_node *node)
{
	uint64_t now = removes + 1;
	STORE(&removes, now);
	unsigned at = (unsigned)(now % DELETED_LIFE);
	if (pending[at].leaf)
		pool_give(&leaf_pool, pending[at].leaf);
	if (pending[at].node)
		pool_give(&node_pool, pending[at].node);
	pending[at].leaf = leaf;
	pending[at].node = node;
}

static void remove_locked(struct chunk *c)
{
	uintptr_t key = chunk_user(c);
	uintptr_t *slot = &root, *parent_slot = NULL, n = root;
	struct cn_node *parent = NULL;
	while (n && !is_leaf(n)) {
		parent_slot = slot;
		parent = as_node(n);
		slot = parent->child + nibble(key, parent->shift);
		n = *slot;
	}
	if (!n || as_leaf(n)->base != key)
		return; /* not indexed (its insert was dropped), or not ours */
	/* Under side the leaf is all that is known of the chunk (index.h). */
	chunk_side_removed((size_t)as_leaf(n)->size, as_leaf(n)->site);
	STORE(slot, (uintptr_t)0);
	/* A node left with one child gives way to it, so every node keeps two. */
	struct cn_node *gone = NULL;
	if (parent) {
		uintptr_t only = 0;
		unsigned children = 0;
		for (unsigned i = 0; i < FANOUT; i++)
			if (parent->child[i]) {
				children++;
				only = parent->child[i];
			}
		if (children <= 1) {
			STORE(parent_slot, only);
			gone = parent;
		}
	}
	retire(as_leaf(n), gone);
}

/* --- lookups: no lock, no shared writes ---------------------------------------- */

/* The greatest leaf of the subtree at n (0, a leaf or a node), whose parent
 * splits at parent_shift; NULL if what is read is inconsistent (only memory
 * being reused: the caller's count check retries). */
static const struct cn_leaf *max_leaf(uintptr_t n, uintptr_t parent_shift)
{
	while (n && !is_leaf(n)) {
		const struct cn_node *node = as_node(n);
		uintptr_t shift = LOAD(&node->shift);
		if (shift >= parent_shift)
			return NULL;
		parent_shift = shift;
		uintptr_t child = 0;
		for (unsigned i = FANOUT; i-- > 0 && !child;)
			child = LOAD(&node->child[i]);
		n = child;
	}
	return n ? as_leaf(n) : NULL;
}

struct descent {
	const struct cn_node *node;
	uintptr_t shift;
	unsigned nib; /* the child taken */
};

/* After the descent found nothing <= addr below its last step: the greatest
 * leaf of the nearest non-empty slot left of the path.  Every key there is
 * below addr (same bits above, smaller nibble). */
static const struct cn_leaf *left_of_path(const struct descent *d, unsigned depth)
{
	while (depth--)
		for (unsigned i = d[depth].nib; i-- > 0;) {
			uintptr_t child = LOAD(&d[depth].node->child[i]);
			if (child)
				return max_leaf(child, d[depth].shift);
		}
	return NULL;
}

/* critnib's find_le: the leaf with the greatest key <= addr, or NULL. */
static const struct cn_leaf *find_le(uintptr_t addr)
{
	struct descent d[MAX_DEPTH];
	unsigned depth = 0;
	uintptr_t n = LOAD(&root), parent_shift = KEY_BITS;
	while (n && !is_leaf(n)) {
		const struct cn_node *node = as_node(n);
		uintptr_t shift = LOAD(&node->shift), path = LOAD(&node->path);
		if (shift >= parent_shift)
			return NULL; /* being reused: shifts only decrease downwards */
		uintptr_t high = addr & above_nibble(shift);
		if (high != path) /* the whole subtree is below addr, or above it */
			return path < high ? max_leaf(n, parent_shift) : left_of_path(d, depth);
		unsigned nib = nibble(addr, shift);
		d[depth++] = (struct descent){ node, shift, nib };
		parent_shift = shift;
		n = LOAD(&node->child[nib]);
	}
	if (n && LOAD(&as_leaf(n)->base) <= addr)
		return as_leaf(n);
	return left_of_path(d, depth);
}

int critnib_index_lookup(uintptr_t addr, struct chunk_info *out)
{
	for (;;) {
		uint64_t before = LOAD(&removes);
		const struct cn_leaf *leaf = find_le(addr);
		uintptr_t base = leaf ? LOAD(&leaf->base) : 0;
		uint64_t size = leaf ? LOAD(&leaf->size) : 0;
		uintptr_t site = leaf ? LOAD(&leaf->site) : 0;
		/* Acquire loads above: this load cannot move before them. */
		if (LOAD(&removes) - before < DELETED_LIFE) {
			if (!leaf || addr - base >= size)
				return INDEX_NONE;
			*out = (struct chunk_info){ .base = base, .size = (size_t)size, .site = site };
			return INDEX_FOUND;
		}
		__atomic_fetch_add(&counters.lookup_retries, 1, __ATOMIC_RELAXED);
	}
}

/* --- statistics ------------------------------------------------------------------ */

struct tree_shape {
	uint64_t nodes, leaves, height, depth_sum;
};

/* Counts, height (nodes on the longest root-to-leaf path) and the sum of
 * leaf depths, by a walk with an explicit stack: at most 15 pending
 * siblings per level, at most MAX_DEPTH levels. */
static struct tree_shape measure_tree(void)
{
	struct tree_shape s = { 0 };
	struct {
		uintptr_t n;
		uint64_t depth;
	} stack[MAX_DEPTH * FANOUT + 1];
	size_t top = 0;
	if (root)
		stack[top++] = (__typeof__(stack[0])){ root, 0 };
	while (top) {
		uintptr_t n = stack[--top].n;
		uint64_t depth = stack[top].depth;
		if (is_leaf(n)) {
			s.leaves++;
			s.depth_sum += depth;
			s.height = depth > s.height ? depth : s.height;
			continue;
		}
		s.nodes++;
		for (unsigned i = 0; i < FANOUT; i++)
			if (as_node(n)->child[i] && top < sizeof stack / sizeof *stack)
				stack[top++] = (__typeof__(stack[0])){ as_node(n)->child[i], depth + 1 };
	}
	return s;
}

void critnib_index_write_stats(struct json_out *out)
{
	struct tree_shape s = measure_tree();
	uint64_t mapped = node_pool.mapped_bytes + leaf_pool.mapped_bytes;
	uint64_t carved = node_pool.carved * sizeof(struct cn_node) +
	                  leaf_pool.carved * sizeof(struct cn_leaf);
	json_u64(out, "links_bytes", 0);
	json_u64(out, "leaves", s.leaves);
	json_u64(out, "nodes", s.nodes);
	json_u64(out, "tree_height", s.height);
	json_f64(out, "mean_leaf_depth", s.leaves ? (double)s.depth_sum / (double)s.leaves : 0.0);
	json_u64(out, "node_bytes", sizeof(struct cn_node));
	json_u64(out, "leaf_bytes", sizeof(struct cn_leaf));
	/* Slabs are committed whole when mapped: all of them is the cost. */
	json_u64(out, "index_bytes", mapped);
	json_u64(out, "carved_bytes", carved); /* of which ever handed out */
	json_u64(out, "removes", removes);
	json_u64(out, "deleted_life", DELETED_LIFE);
	json_u64(out, "dropped_inserts", counters.dropped_inserts);
	json_u64(out, "lookup_retries", __atomic_load_n(&counters.lookup_retries, __ATOMIC_RELAXED));
}

INDEX_DEFINE_OPS(critnib, 0, INDEX_ANSWERS_LOOKUPS | INDEX_ANSWERS_FROM_INDEX | INDEX_SIDE_RECORDS |
                                 INDEX_META_HEADER | INDEX_META_TRAILER | INDEX_META_SIDE)
