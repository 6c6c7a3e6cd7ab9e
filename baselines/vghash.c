/* vghash.c - Valgrind's VgHashTable (coregrind/m_hashtable.c), keyed by user
 * pointer: the seed talk's "vgHash" row.
 *
 * Memcheck finds a heap block's metadata this way: separate chaining, the
 * chain of key k is k % n_chains with no mixing (heap addresses are already
 * spread), n_chains a prime from a fixed list, doubled when there are more
 * elements than chains, never shrunk, new nodes pushed at the chain head.
 * All of that is kept.  Differences from Valgrind, and why:
 *  - the node lives in the chunk's links area instead of a separately
 *    allocated MC_Chunk, so insert allocates nothing;
 *  - interior pointers are answered by probing candidate starts (probe.h):
 *    Valgrind only ever looks up exact block starts.
 * Threads: one lock around every call, lookups included, as Valgrind runs
 * its tools under one big lock.  How that scales is a result the harness
 * reports.
 * key % n_chains stays a division: a switch over the primes as constants
 * (a multiply each) measured 6% slower per probe on this project's AMD
 * EPYC machines, whose dividers are fast.
 *
 * The missing mixing helps probing: candidates 16 bytes apart fall on
 * chains 16 apart, so a probe run reads the chain table in order (and the
 * hardware prefetches it) where a mixing hash (uthash) reads a random
 * bucket per candidate.
 *
 * Invariants:
 *  - every live chunk's node is on chain node->key % n_chains, exactly once;
 *  - node->key == chunk_user(chunk of node) (kept explicitly, as Valgrind's
 *    VgHashNode does, though it is also the node address + 32);
 *  - n_elements <= n_chains after every insert, unless the prime list or the
 *    memory for a bigger table ran out.
 */
#include "index.h"
#include "probe.h"

#include <stdio.h>

INDEX_DECLARE(vghash)

/* Valgrind's VgHashNode, in the 16 links bytes below the struct chunk. */
struct vg_node {
	struct vg_node *next;
	uintptr_t key;
};

#define LINKS_BYTES sizeof(struct vg_node)
_Static_assert(LINKS_BYTES % CHUNK_ALIGN == 0, "links must keep user pointers aligned");

/* m_hashtable.c's primes, each about twice the one before. */
static const size_t primes[] = {
	769, 1543, 3079, 6151, 12289, 24593, 49157, 98317, 196613, 393241,
	786433, 1572869, 3145739, 6291469, 12582917, 25165843, 50331653,
	100663319, 201326611, 402653189,
};
#define N_PRIMES (sizeof primes / sizeof *primes)

static struct vg_node **chains; /* n_chains heads, from index_map_pages */
static unsigned prime_index; /* n_chains == primes[prime_index] */
static size_t n_chains, n_elements;
static struct probe_state probe;
static spinlock_t lock; /* guards all of the above */

static struct {
	uint64_t resizes, resize_failures, chain_steps;
} counters;

static inline size_t chain_of(uintptr_t key)
{
	return key % n_chains;
}

static inline struct vg_node *node_of(const struct chunk *c)
{
	return chunk_index_links(c, LINKS_BYTES);
}

static inline struct chunk *chunk_of_node(struct vg_node *n)
{
	return (struct chunk *)(n + 1);
}

/* Valgrind's resize(): the next prime, every node re-pushed onto its new
 * chain.  On failure (no larger prime, no memory) the table stays as it is:
 * chains get longer, answers stay right. */
static void grow(void)
{
	if (prime_index + 1 >= N_PRIMES)
		return;
	size_t new_n = primes[prime_index + 1];
	struct vg_node **grown = index_map_pages(new_n * sizeof(struct vg_node *));
	if (!grown) {
		counters.resize_failures++;
		return;
	}
	struct vg_node **old = chains;
	size_t old_n = n_chains;
	chains = grown;
	n_chains = new_n;
	prime_index++;
	for (size_t i = 0; i < old_n; i++) {
		for (struct vg_node *n = old[i], *next; n; n = next) {
			next = n->next;
			size_t at = chain_of(n->key);
			n->next = chains[at];
			chains[at] = n;
		}
	}
	index_unmap_pages(old, old_n * sizeof(struct vg_node *));
	counters.resizes++;
}

int vghash_index_init(const struct heapindex_config *cfg, char *err, size_t errlen)
{
	(void)cfg;
	n_chains = primes[0];
	chains = index_map_pages(n_chains * sizeof(struct vg_node *));
	if (!chains) {
		snprintf(err, errlen, "heapindex: vghash cannot map its %zu-byte chain table",
		         n_chains * sizeof(struct vg_node *));
		return -1;
	}
	probe_init(&probe);
	return 0;
}

void vghash_index_insert(struct chunk *c)
{
	spin_lock(&lock);
	struct vg_node *n = node_of(c);
	n->key = chunk_user(c);
	size_t at = chain_of(n->key);
	n->next = chains[at];
	chains[at] = n;
	if (++n_elements > n_chains)
		grow();
	probe_note_insert(&probe, c);
	spin_unlock(&lock);
}

void vghash_index_remove(struct chunk *c)
{
	spin_lock(&lock);
	struct vg_node *target = node_of(c);
	for (struct vg_node **link = &chains[chain_of(target->key)]; *link; link = &(*link)->next) {
		if (*link == target) {
			*link = target->next;
			n_elements--;
			probe_note_remove(&probe, c);
			break;
		}
	}
	spin_unlock(&lock);
}

/* Valgrind's HT_lookup. */
static struct chunk *exact_start(uintptr_t key)
{
	uint64_t steps = 0;
	for (struct vg_node *n = chains[chain_of(key)]; n; n = n->next) {
		steps++;
		if (n->key == key) {
			counters.chain_steps += steps;
			return chunk_of_node(n);
		}
	}
	counters.chain_steps += steps;
	return NULL;
}

int vghash_index_lookup(uintptr_t addr, struct chunk_info *out)
{
	return probe_lookup_locked(&lock, &probe, addr, exact_start, out);
}

void vghash_index_write_stats(struct json_out *out)
{
	spin_lock(&lock);
	size_t longest = 0, used = 0;
	for (size_t i = 0; i < n_chains; i++) {
		size_t len = 0;
		for (struct vg_node *n = chains[i]; n; n = n->next)
			len++;
		longest = len > longest ? len : longest;
		used += len > 0;
	}
	json_u64(out, "links_bytes", LINKS_BYTES);
	json_u64(out, "elements", n_elements);
	json_u64(out, "chains", n_chains);
	json_u64(out, "chains_used", used);
	json_f64(out, "load_factor", (double)n_elements / (double)n_chains);
	json_u64(out, "longest_chain", longest);
	json_u64(out, "resizes", counters.resizes);
	json_u64(out, "resize_failures", counters.resize_failures);
	json_u64(out, "index_bytes", n_chains * sizeof(struct vg_node *));
	probe_write_stats(&probe, out);
	json_u64(out, "chain_steps", counters.chain_steps);
	spin_unlock(&lock);
}

INDEX_DEFINE_OPS(vghash, LINKS_BYTES, INDEX_ANSWERS_LOOKUPS | INDEX_META_HEADER)
