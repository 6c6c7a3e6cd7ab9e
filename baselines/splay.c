/* splay.c - a top-down splay tree of chunks ordered by start address.
 *
 * The structure GCC's libgomp (splay-tree.c) and libmudflap used to map
 * addresses to objects: no table and no memory beyond two pointers per
 * chunk, O(log n) amortised, and a recently touched chunk is at or near the
 * root, so programs that look up the same few chunks again and again pay
 * almost nothing.  The price: every operation, lookups included, writes the
 * tree, and one unlucky lookup can walk a path as long as the tree.
 *
 * Lookups compare as libgomp does: an address inside a chunk "equals" it,
 * below its start is less, at or past its end is greater.  Chunks never
 * overlap, so in start order every chunk compares "greater", then at most
 * one "equal", then "less": a monotone order a search can follow, and a
 * single splay answers an interior pointer.  If no chunk is equal the
 * splay ends at a neighbour of addr, and no chunk contains it.  A zero-size
 * chunk is never equal (it contains nothing), so insert and remove, which
 * must find a chunk itself, compare starts alone.
 *
 * Splaying is Sleator's top-down splay: one pass down, splitting the path
 * into a left tree (< key) and a right tree (> key), rotating at each
 * zig-zig, then joining; no parent pointers, no recursion.
 *
 * Threads: every operation, a lookup too, rewrites the tree, so one lock
 * around every call, as libmudflap had (mf_lock); that lookups serialise
 * is the design's price, and a figure the harness reports.
 *
 * Invariants:
 *  - in-order traversal lists live chunks by increasing start;
 *  - every live chunk is one node, found in its links area (16 bytes).
 */
#include "index.h"

#include <stdio.h>

INDEX_DECLARE(splay)

struct splay_node {
	struct splay_node *left, *right;
};

#define LINKS_BYTES sizeof(struct splay_node)
_Static_assert(LINKS_BYTES % CHUNK_ALIGN == 0, "links must keep user pointers aligned");

static struct splay_node *root;
static size_t live_nodes;
static spinlock_t lock; /* guards the tree and the statistics */

static struct {
	uint64_t lookups, splays, splay_steps, rotations;
} counters;

static inline struct splay_node *node_of(const struct chunk *c)
{
	return chunk_index_links(c, LINKS_BYTES);
}

static inline struct chunk *chunk_of_node(const struct splay_node *n)
{
	return (struct chunk *)(n + 1);
}

/* The start is where the node is: no memory read. */
static inline uintptr_t start_of(const struct splay_node *n)
{
	return chunk_user(chunk_of_node(n));
}

/* Where key lies relative to node n: < 0 before it, 0 at it, > 0 after it. */
typedef int (*splay_order)(uintptr_t key, const struct splay_node *n);

static inline int by_start(uintptr_t start, const struct splay_node *n)
{
	uintptr_t s = start_of(n);
	return (start > s) - (start < s);
}

static inline int by_containment(uintptr_t addr, const struct splay_node *n)
{
	uintptr_t s = start_of(n);
	if (addr < s)
		return -1;
	return addr - s >= chunk_size(chunk_of_node(n)); /* 0 inside, 1 past the end */
}

/* Splay the tree t (non-empty) at key; returns the new root and sets *order
 * to where key lies relative to it.  Inlined per order function. */
static inline struct splay_node *splay(struct splay_node *t, uintptr_t key,
                                       splay_order order, int *order_at_root)
{
	/* assembly.right is the left tree, assembly.left the right tree;
	 * left_max and right_min are where the next node gets linked. */
	struct splay_node assembly = { NULL, NULL };
	struct splay_node *left_max = &assembly, *right_min = &assembly, *y;
	uint64_t steps = 0, rotations = 0;
	int d;
	for (;;) {
		steps++;
		d = order(key, t);
		if (d < 0) {
			if (!t->left)
				break;
			if (order(key, t->left) < 0) { /* zig-zig: rotate right */
				y = t->left;
				t->left = y->right;
				y->right = t;
				t = y;
				rotations++;
				if (!t->left)
					break; /* d < 0 still holds for the new t */
			}
			right_min->left = t; /* t and what is right of it: > key */
			right_min = t;
			t = t->left;
		} else if (d > 0) {
			if (!t->right)
				break;
			if (order(key, t->right) > 0) { /* zag-zag: rotate left */
				y = t->right;
				t->right = y->left;
				y->left = t;
				t = y;
				rotations++;
				if (!t->right)
					break;
			}
			left_max->right = t;
			left_max = t;
			t = t->right;
		} else {
			break;
		}
	}
	left_max->right = t->left;
	right_min->left = t->right;
	t->left = assembly.right;
	t->right = assembly.left;
	counters.splays++;
	counters.splay_steps += steps;
	counters.rotations += rotations;
	*order_at_root = d;
	return t;
}

int splay_index_init(const struct heapindex_config *cfg, char *err, size_t errlen)
{
	(void)cfg, (void)err, (void)errlen;
	root = NULL;
	return 0;
}

static void insert_locked(struct chunk *c)
{
	struct splay_node *n = node_of(c);
	live_nodes++;
	if (!root) {
		n->left = n->right = NULL;
		root = n;
		return;
	}
	int d;
	struct splay_node *r = splay(root, chunk_user(c), by_start, &d);
	/* r is the neighbour of the new start: split the tree around it. */
	if (d < 0) {
		n->left = r->left;
		n->right = r;
		r->left = NULL;
	} else { /* d > 0: two live chunks never share a start */
		n->right = r->right;
		n->left = r;
		r->right = NULL;
	}
	root = n;
}

void splay_index_insert(struct chunk *c)
{
	spin_lock(&lock);
	insert_locked(c);
	spin_unlock(&lock);
}

static void remove_locked(struct chunk *c)
{
	int d;
	root = splay(root, chunk_user(c), by_start, &d);
	if (d != 0)
		return; /* not in the tree: the hooks never do this */
	struct splay_node *n = root;
	if (!n->left) {
		root = n->right;
	} else {
		/* The largest node left of n becomes the root; its right is empty. */
		root = splay(n->left, UINTPTR_MAX, by_start, &d);
		root->right = n->right;
	}
	live_nodes--;
}

void splay_index_remove(struct chunk *c)
{
	spin_lock(&lock);
	remove_locked(c);
	spin_unlock(&lock);
}

int splay_index_lookup(uintptr_t addr, struct chunk_info *out)
{
	chunk_prefetch_header_guess(addr);
	if (!index_lookup_lock(&lock))
		return INDEX_UNKNOWN;
	counters.lookups++;
	int answer = INDEX_NONE, d;
	if (root) {
		root = splay(root, addr, by_containment, &d);
		if (d == 0)
			answer = chunk_info_copy(chunk_of_node(root), out);
	}
	spin_unlock(&lock);
	return answer;
}

/* Height (nodes on the longest root-to-leaf path) and total node depth, by
 * a depth-first walk with an explicit stack: a splay tree can be a path as
 * long as the chunk count, too deep to recurse on. */
struct depth_frame {
	const struct splay_node *node;
	size_t depth;
};

static int measure_tree(size_t *height, uint64_t *depth_sum)
{
	*height = 0;
	*depth_sum = 0;
	if (!root)
		return 0;
	/* Each node is pushed once, so live_nodes frames always suffice. */
	size_t cap = live_nodes, bytes = cap * sizeof(struct depth_frame), top = 0;
	struct depth_frame *stack = index_map_pages(bytes);
	if (!stack)
		return -1;
	stack[top++] = (struct depth_frame){ root, 1 };
	while (top) {
		struct depth_frame f = stack[--top];
		*depth_sum += f.depth;
		if (f.depth > *height)
			*height = f.depth;
		if (f.node->left && top < cap)
			stack[top++] = (struct depth_frame){ f.node->left, f.depth + 1 };
		if (f.node->right && top < cap)
			stack[top++] = (struct depth_frame){ f.node->right, f.depth + 1 };
	}
	index_unmap_pages(stack, bytes);
	return 0;
}

void splay_index_write_stats(struct json_out *out)
{
	spin_lock(&lock);
	size_t height;
	uint64_t depth_sum;
	int measured = measure_tree(&height, &depth_sum) == 0;
	json_u64(out, "links_bytes", LINKS_BYTES);
	json_u64(out, "nodes", live_nodes);
	if (measured) {
		json_u64(out, "tree_height", height);
		json_f64(out, "mean_node_depth",
		         live_nodes ? (double)depth_sum / (double)live_nodes : 0.0);
	}
	json_u64(out, "index_bytes", 0); /* two pointers per chunk, in its links */
	json_u64(out, "lookups", counters.lookups);
	json_u64(out, "splays", counters.splays);
	json_u64(out, "splay_steps", counters.splay_steps);
	json_f64(out, "steps_per_splay",
	         counters.splays ? (double)counters.splay_steps / (double)counters.splays : 0.0);
	json_u64(out, "rotations", counters.rotations);
	spin_unlock(&lock);
}

INDEX_DEFINE_OPS(splay, LINKS_BYTES, INDEX_ANSWERS_LOOKUPS | INDEX_META_HEADER)
