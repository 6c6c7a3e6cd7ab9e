/* big_chunks.c - see big_chunks.h.
 *
 * A B+tree of 1 KiB nodes.  Leaves hold up to 127 chunks, inner
 * nodes up to 63 (key, child) pairs, so 10^5 chunks sit three levels deep
 * and a lookup is a binary search per level: about as many steps as
 * bisecting a sorted array of the same chunks, while an insert or a remove
 * moves at most one node's worth of pointers (plus a split or a merge per
 * level) instead of half the array.
 *
 * Invariants (tests/test_big_chunks.c checks them against a reference):
 *  - a chunk's key is its user pointer, chunk_user(c), and a leaf keeps
 *    just that (the header is at a fixed offset below it): searching never
 *    reads a chunk header; chunks never overlap, so keys are distinct;
 *  - a leaf's chunks are in increasing key order; an inner node's children
 *    cover increasing key ranges and key[i] is exactly the smallest key in
 *    child[i]'s subtree (updated whenever that smallest key changes), so a
 *    search takes the last child whose key is <= the address and never
 *    backtracks;
 *  - every leaf is at depth height - 1;
 *  - every node but the root holds at least a quarter of its capacity (a
 *    node that falls below is merged with a sibling, or evened out with it
 *    when both would not fit in one node); the root is a leaf, freed when it
 *    empties, or an inner node with at least two children.  So the height is
 *    at most 1 + log_15(count / 31) + 1: 6 levels for 10^8 chunks.
 *
 * Allocation: nodes come from 64 KiB slabs mapped with index_map_pages and
 * are recycled through a free list, never unmapped.  An insert needs at most
 * height + 1 new nodes (a split per level and a new root); they are reserved
 * before the tree is touched, so running out of memory leaves it intact.
 */
#include "big_chunks.h"

#include <string.h>

#include "index.h"

#define NODE_BYTES 1024
#define LEAF_MAX 127  /* (NODE_BYTES - 8) / 8 */
#define INNER_MAX 63  /* (NODE_BYTES - 8) / 16 */
#define MAX_HEIGHT 16 /* 2 * 15^14 * 31 chunks > 2^48 bytes / 16 */
#define SLAB_NODES 64

struct big_node {
	uint32_t count, leaf;
	union {
		uintptr_t user[LEAF_MAX]; /* the chunks' user pointers: the keys */
		struct {
			uintptr_t key[INNER_MAX];
			struct big_node *child[INNER_MAX];
		} in;
		struct big_node *next_free;
	};
};

_Static_assert(sizeof(struct big_node) == NODE_BYTES, "a node is 1 KiB");

/* One step of a descent: the inner node and the child taken. */
struct step {
	struct big_node *node;
	unsigned slot;
};

/* --- locking and fork ---------------------------------------------------- */

/* Every big_chunks that has ever been locked, for the fork handlers.  A
 * big_chunks joins before its lock is first taken, under registry_lock,
 * which fork_prepare holds while it takes every lock on the list. */
static spinlock_t registry_lock;
static struct big_chunks *registry;

static void enlist(struct big_chunks *b)
{
	spin_lock(&registry_lock);
	if (!b->registered) {
		/* Read without the lock, atomically: big_chunks_empty's hint,
		 * and whether a lookup need take the lock at all. */
		LOCK_ANNOTATE_BENIGN_RACE(&b->count, sizeof b->count, "big_chunks_empty's hint");
		LOCK_ANNOTATE_BENIGN_RACE(&b->registered, sizeof b->registered, "lookup's first test");
		LOCK_ANNOTATE_BENIGN_RACE(&b->span_lo, 2 * sizeof b->span_lo, "big_chunks_may_hold");
		b->next_registered = registry;
		registry = b;
		__atomic_store_n(&b->registered, 1, __ATOMIC_RELEASE);
	}
	spin_unlock(&registry_lock);
}

static inline void lock(struct big_chunks *b)
{
	if (__builtin_expect(!__atomic_load_n(&b->registered, __ATOMIC_ACQUIRE), 0))
		enlist(b);
	spin_lock(&b->lock);
}

void big_chunks_fork_prepare(void)
{
	spin_lock(&registry_lock);
	for (struct big_chunks *b = registry; b; b = b->next_registered)
		spin_lock(&b->lock);
}

void big_chunks_fork_parent(void)
{
	for (struct big_chunks *b = registry; b; b = b->next_registered)
		spin_unlock(&b->lock);
	spin_unlock(&registry_lock);
}

void big_chunks_fork_child(void)
{
	big_chunks_fork_parent();
}

/* --- nodes --------------------------------------------------------------- */

/* At least need nodes on the free list, or -1. */
static int reserve_nodes(struct big_chunks *b, unsigned need)
{
	if (b->free_count >= need)
		return 0;
	struct big_node *slab = index_map_pages(SLAB_NODES * sizeof *slab);
	if (!slab)
		return -1;
	__atomic_store_n(&b->mapped_bytes, b->mapped_bytes + SLAB_NODES * sizeof *slab,
	                 __ATOMIC_RELAXED);
	b->free_count += SLAB_NODES;
	for (unsigned i = 0; i < SLAB_NODES; i++) {
		slab[i].next_free = b->free_nodes;
		b->free_nodes = &slab[i];
	}
	return 0;
}

static struct big_node *take_node(struct big_chunks *b, int leaf)
{
	struct big_node *n = b->free_nodes;
	b->free_nodes = n->next_free;
	b->free_count--;
	n->count = 0;
	n->leaf = (uint32_t)leaf;
	return n;
}

static void give_node(struct big_chunks *b, struct big_node *n)
{
	n->next_free = b->free_nodes;
	b->free_nodes = n;
	b->free_count++;
}

static inline unsigned capacity(const struct big_node *n)
{
	return n->leaf ? LEAF_MAX : INNER_MAX;
}

static inline uintptr_t leaf_key(const struct big_node *n, unsigned i)
{
	return n->user[i];
}

static inline uintptr_t node_min(const struct big_node *n)
{
	return n->leaf ? leaf_key(n, 0) : n->in.key[0];
}

/* How many of the n sorted words at a are <= key: a binary search whose
 * steps are conditional moves, not branches (a branch per step would be
 * mispredicted half the time: Khuong and Morin, "Array layouts for
 * comparison-based searching"). */
static inline unsigned count_le(const uintptr_t *a, unsigned n, uintptr_t key)
{
	if (!n)
		return 0;
	const uintptr_t *base = a;
	while (n > 1) {
		unsigned half = n / 2;
		base = base[half] <= key ? base + half : base;
		n -= half;
	}
	return (unsigned)(base - a) + (*base <= key);
}

/* How many of a node's keys are <= key. */
static inline unsigned rank(const struct big_node *n, uintptr_t key)
{
	const uintptr_t *keys = n->leaf ? n->user : n->in.key;
	/* The search's loads depend on each other: ask for all the node's key
	 * lines at once, so a cold node costs about one miss, not one per step. */
	for (unsigned off = 0; off < n->count; off += 64 / sizeof *keys)
		__builtin_prefetch(keys + off);
	return count_le(keys, n->count, key);
}

/* Entries [from, from + n) of src become entries [at, at + n) of dst, both
 * nodes of the same kind; dst's entries from at on must already be moved. */
static void copy_entries(struct big_node *dst, unsigned at, const struct big_node *src,
                         unsigned from, unsigned n)
{
	if (dst->leaf) {
		memmove(&dst->user[at], &src->user[from], n * sizeof dst->user[0]);
	} else {
		memmove(&dst->in.key[at], &src->in.key[from], n * sizeof dst->in.key[0]);
		memmove(&dst->in.child[at], &src->in.child[from], n * sizeof dst->in.child[0]);
	}
}

/* Open a gap of one entry at position at. */
static void open_gap(struct big_node *n, unsigned at)
{
	copy_entries(n, at + 1, n, at, n->count - at);
	n->count++;
}

static void erase(struct big_node *n, unsigned at)
{
	copy_entries(n, at, n, at + 1, n->count - at - 1);
	n->count--;
}

/* Move the upper entries of full node n, from half on, to a new right
 * sibling, returned. */
static struct big_node *split(struct big_chunks *b, struct big_node *n)
{
	struct big_node *r = take_node(b, (int)n->leaf);
	unsigned half = n->count / 2;
	copy_entries(r, 0, n, half, n->count - half);
	r->count = n->count - half;
	n->count = half;
	return r;
}

/* --- the tree ------------------------------------------------------------ */

/* The node at depth d of the path got key as its smallest: so did every
 * ancestor up to the first one it is not the first child of. */
static void set_min(struct step *path, int d, uintptr_t key)
{
	while (d-- > 0) {
		path[d].node->in.key[path[d].slot] = key;
		if (path[d].slot != 0)
			break;
	}
}

/* right is the new right sibling of the node at depth d of the path: enter
 * it in the parent, splitting full parents on the way up. */
static void add_sibling(struct big_chunks *b, struct step *path, int d, struct big_node *right)
{
	for (; d > 0; d--) {
		struct big_node *p = path[d - 1].node;
		unsigned at = path[d - 1].slot + 1;
		struct big_node *split_off = p->count == INNER_MAX ? split(b, p) : NULL;
		struct big_node *into = p;
		if (split_off && at > p->count) {
			into = split_off;
			at -= p->count;
		}
		open_gap(into, at);
		into->in.key[at] = node_min(right);
		into->in.child[at] = right;
		if (!split_off)
			return;
		right = split_off;
	}
	struct big_node *root = take_node(b, 0); /* the root split: one level more */
	root->count = 2;
	root->in.key[0] = node_min(b->root);
	root->in.child[0] = b->root;
	root->in.key[1] = node_min(right);
	root->in.child[1] = right;
	b->root = root;
	b->height++;
}

/* Descend towards key, recording the inner nodes in path; the leaf.  With
 * exact, a key below a node's first one stops the descent (NULL). */
static struct big_node *descend(const struct big_chunks *b, uintptr_t key, struct step *path,
                                int *depth, int exact)
{
	struct big_node *n = b->root;
	*depth = 0;
	for (unsigned level = b->height; level > 1; level--) {
		unsigned r = rank(n, key);
		if (!r && exact)
			return NULL;
		path[*depth] = (struct step){ n, r ? r - 1 : 0 };
		n = n->in.child[path[(*depth)++].slot];
	}
	return n;
}

/* Needs height + 1 nodes reserved. */
static void tree_insert(struct big_chunks *b, struct chunk *c)
{
	uintptr_t key = chunk_user(c);
	if (!b->root) {
		b->root = take_node(b, 1);
		b->height = 1;
	}
	struct step path[MAX_HEIGHT];
	int depth;
	struct big_node *leaf = descend(b, key, path, &depth, 0);
	unsigned at = rank(leaf, key);
	if (at == 0)
		set_min(path, depth, key);
	struct big_node *right = leaf->count == LEAF_MAX ? split(b, leaf) : NULL;
	struct big_node *into = leaf;
	if (right && at > leaf->count) {
		into = right;
		at -= leaf->count;
	}
	open_gap(into, at);
	into->user[at] = key;
	if (right)
		add_sibling(b, path, depth, right);
}

/* The node at depth d of the path lost an entry.  Below a quarter full, it
 * is merged into or evened out with a neighbour; a parent that loses a
 * child is checked in turn; a root left with one child gives way to it.
 * Merging appends the right node's (larger) keys to the left one and
 * evening out moves the boundary between them, so the left node's smallest
 * key never changes and the right one's is the parent's only key to fix. */
static void rebalance(struct big_chunks *b, struct step *path, int d, struct big_node *n)
{
	while (d > 0 && n->count < capacity(n) / 4) {
		struct big_node *p = path[d - 1].node;
		unsigned ls = path[d - 1].slot ? path[d - 1].slot - 1 : 0;
		struct big_node *l = p->in.child[ls], *r = p->in.child[ls + 1];
		unsigned total = l->count + r->count;
		if (total <= capacity(l)) {
			copy_entries(l, l->count, r, 0, r->count);
			l->count = total;
			give_node(b, r);
			erase(p, ls + 1);
			n = p;
			d--;
			continue;
		}
		unsigned want = total / 2;
		if (l->count < want) { /* r's first entries move to l's end */
			unsigned k = want - l->count;
			copy_entries(l, l->count, r, 0, k);
			copy_entries(r, 0, r, k, r->count - k);
			l->count += k;
			r->count -= k;
		} else { /* l's last entries move to r's start */
			unsigned k = l->count - want;
			copy_entries(r, k, r, 0, r->count);
			copy_entries(r, 0, l, want, k);
			l->count -= k;
			r->count += k;
		}
		p->in.key[ls + 1] = node_min(r);
		return;
	}
	if (d == 0 && !n->leaf && n->count == 1) {
		b->root = n->in.child[0];
		b->height--;
		give_node(b, n);
	}
}

/* 1 if c was in the tree (and is no more), else 0. */
static int tree_remove(struct big_chunks *b, struct chunk *c)
{
	uintptr_t key = chunk_user(c);
	if (!b->root)
		return 0;
	struct step path[MAX_HEIGHT];
	int depth;
	struct big_node *leaf = descend(b, key, path, &depth, 1);
	unsigned r = leaf ? rank(leaf, key) : 0;
	if (!r || leaf->user[r - 1] != key)
		return 0; /* never inserted (no node could be had for it), or not ours */
	erase(leaf, r - 1);
	__atomic_store_n(&b->count, b->count - 1, __ATOMIC_RELAXED);
	if (depth == 0) {
		if (!leaf->count) {
			give_node(b, leaf);
			b->root = NULL;
			b->height = 0;
		}
		return 1;
	}
	/* A non-root leaf keeps a quarter of its capacity minus this one. */
	if (r - 1 == 0)
		set_min(path, depth, leaf_key(leaf, 0));
	rebalance(b, path, depth, leaf);
	return 1;
}

static struct chunk *tree_lookup(const struct big_chunks *b, uintptr_t addr)
{
	if (!b->root)
		return NULL;
	struct step path[MAX_HEIGHT];
	int depth;
	const struct big_node *leaf = descend(b, addr, path, &depth, 1);
	unsigned r = leaf ? rank(leaf, addr) : 0;
	if (!r)
		return NULL;
	struct chunk *c = chunk_of_user((const void *)leaf->user[r - 1]);
	return addr - chunk_user(c) < chunk_held_size(c) ? c : NULL; /* under the lock: live */
}

/* Chunks under n, or -1 if an invariant of the header comment is broken;
 * *lo and *hi get the smallest and largest key. */
static long check_node(const struct big_node *n, unsigned level, int root, uintptr_t *lo,
                       uintptr_t *hi)
{
	if ((level == 1) != (n->leaf != 0) || n->count > capacity(n) || !n->count ||
	    (!root && n->count < capacity(n) / 4) || (root && !n->leaf && n->count < 2))
		return -1;
	if (n->leaf) {
		for (unsigned i = 1; i < n->count; i++)
			if (leaf_key(n, i - 1) >= leaf_key(n, i))
				return -1;
		*lo = leaf_key(n, 0);
		*hi = leaf_key(n, n->count - 1);
		return n->count;
	}
	long total = 0;
	for (unsigned i = 0; i < n->count; i++) {
		uintptr_t clo, chi;
		long k = check_node(n->in.child[i], level - 1, 0, &clo, &chi);
		if (k < 0 || clo != n->in.key[i] || (i && clo <= *hi))
			return -1;
		if (!i)
			*lo = clo;
		*hi = chi;
		total += k;
	}
	return total;
}

int big_chunks_check(struct big_chunks *b)
{
	lock(b);
	uintptr_t lo, hi;
	int ok = b->root ? check_node(b->root, b->height, 1, &lo, &hi) == (long)b->count
	                 : b->height == 0 && b->count == 0;
	spin_unlock(&b->lock);
	return ok ? 0 : -1;
}

/* --- the interface ------------------------------------------------------- */

int big_chunks_insert(struct big_chunks *b, struct chunk *c)
{
	lock(b);
	int ok = reserve_nodes(b, b->height + 1) == 0;
	if (ok) {
		/* Widened before c can be found, never narrowed (big_chunks.h). */
		uintptr_t user = chunk_user(c), end = user + chunk_held_size(c);
		if (!b->span_hi || user < b->span_lo)
			__atomic_store_n(&b->span_lo, user, __ATOMIC_RELAXED);
		if (end > b->span_hi)
			__atomic_store_n(&b->span_hi, end, __ATOMIC_RELAXED);
		tree_insert(b, c);
		__atomic_store_n(&b->count, b->count + 1, __ATOMIC_RELAXED);
		if (b->count > b->peak)
			b->peak = b->count;
	} else {
		b->grow_failures++;
	}
	spin_unlock(&b->lock);
	return ok ? 0 : -1;
}

int big_chunks_remove(struct big_chunks *b, struct chunk *c)
{
	lock(b);
	int had = tree_remove(b, c);
	spin_unlock(&b->lock);
	return had;
}

int big_chunks_lookup(struct big_chunks *b, uintptr_t addr, struct chunk_info *out)
{
	/* Never locked yet: empty.  (enlist takes a lock this thread may hold.) */
	if (!__atomic_load_n(&b->registered, __ATOMIC_ACQUIRE))
		return INDEX_NONE;
	if (!index_lookup_lock(&b->lock))
		return INDEX_UNKNOWN;
	b->lookups++;
	const struct chunk *c = tree_lookup(b, addr);
	/* Copied under the lock: the hooks free a chunk only after its remove,
	 * which takes this lock. */
	int answer = c ? chunk_info_copy_held(c, out) : INDEX_NONE;
	spin_unlock(&b->lock);
	return answer;
}

size_t big_chunks_bytes(const struct big_chunks *b)
{
	return __atomic_load_n(&b->mapped_bytes, __ATOMIC_RELAXED);
}

void big_chunks_write_stats(struct big_chunks *b, struct json_out *out)
{
	lock(b);
	json_u64(out, "big_live", b->count);
	json_u64(out, "big_peak", b->peak);
	json_u64(out, "big_tree_bytes", b->mapped_bytes);
	json_u64(out, "big_tree_height", b->height);
	json_u64(out, "big_lookups", b->lookups);
	json_u64(out, "big_grow_failures", b->grow_failures);
	spin_unlock(&b->lock);
}
