/* test_big_chunks.c - the big-chunk B+tree (hooks/big_chunks.c) against a
 * reference: random inserts, removes and lookups, the tree's invariants
 * checked as it grows and shrinks, several threads at once, fork while
 * other threads hold it, and the try-lock lookup a signal handler needs. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "big_chunks.h"
#include "threads.h"

/* The chunk whose copy big_chunks_lookup gave, or NULL: the tests compare
 * chunks, the lookup copies base, size and site out (index.h). */
static struct chunk *lookup_chunk(struct big_chunks *b, uintptr_t addr)
{
	struct chunk_info info = { .no_site = 0 };
	if (big_chunks_lookup(b, addr, &info) != INDEX_FOUND)
		return NULL;
	struct chunk *c = chunk_of_user((void *)info.base);
	cr_assert_eq(info.size, chunk_size(c), "a torn size");
	cr_assert_eq(info.site, chunk_site(c), "a torn site");
	return c;
}
#include "index_params.h"
#include "support.h"

/* Fake chunks: slot i has its header at arena + i * SLOT and a size of
 * 1 .. SLOT - 16 bytes, so chunks never overlap and addresses between them
 * belong to none. */
#define SLOT 64
#define SLOTS 200000

static unsigned char *arena;

static struct chunk *slot_chunk(size_t i)
{
	return (struct chunk *)(arena + i * SLOT);
}

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x;
}

static void make_arena(void)
{
	arena = aligned_alloc(SLOT, (size_t)SLOTS * SLOT);
	cr_assert(arena);
	uint64_t x = 7;
	for (size_t i = 0; i < SLOTS; i++)
		chunk_init(slot_chunk(i), 1 + next(&x) % (SLOT - 16), 16, 0x1234);
}

/* What a lookup of addr must answer, given which slots are live. */
static struct chunk *expected(const unsigned char *live, uintptr_t addr)
{
	uintptr_t at = addr - (uintptr_t)arena;
	if (addr < (uintptr_t)arena || at >= (uintptr_t)SLOTS * SLOT || !live[at / SLOT])
		return NULL;
	struct chunk *c = slot_chunk(at / SLOT);
	return chunk_contains(c, addr) ? c : NULL;
}

Test(big_chunks, random_operations_match_a_reference, .timeout = 60)
{
	make_arena();
	static struct big_chunks b;
	unsigned char *live = calloc(SLOTS, 1);
	size_t count = 0, peak_height = 0;
	uint64_t x = 42;
	/* Grow to ~150,000 live chunks, then shrink to none: every split, merge,
	 * even-out and root change happens many times on the way. */
	for (int phase = 0; phase < 2; phase++) {
		for (long op = 0; op < 600000; op++) {
			size_t i = next(&x) % SLOTS;
			int grow = phase == 0 ? next(&x) % 4 != 0 : next(&x) % 4 == 0;
			if (grow && !live[i]) {
				cr_assert_eq(big_chunks_insert(&b, slot_chunk(i)), 0);
				live[i] = 1, count++;
			} else if (!grow && live[i]) {
				big_chunks_remove(&b, slot_chunk(i));
				live[i] = 0, count--;
			} else if (!grow) {
				big_chunks_remove(&b, slot_chunk(i)); /* not in the tree: no-op */
			}
			uintptr_t addr = (uintptr_t)arena - 100 + next(&x) % ((uintptr_t)SLOTS * SLOT + 200);
			cr_assert_eq(lookup_chunk(&b, addr), expected(live, addr), "lookup of %#lx",
			             (unsigned long)addr);
			if (op % 50000 == 0)
				cr_assert_eq(big_chunks_check(&b), 0, "invariants broken at %ld", op);
			if (b.height > peak_height)
				peak_height = b.height;
		}
		cr_assert_eq(b.count, count);
		cr_assert_eq(big_chunks_check(&b), 0);
	}
	for (size_t i = 0; i < SLOTS; i++)
		if (live[i])
			big_chunks_remove(&b, slot_chunk(i));
	cr_assert_eq(b.count, 0);
	cr_assert_null(b.root);
	cr_assert_eq(big_chunks_check(&b), 0);
	/* ~150,000 chunks: 4 levels at most (31..127 per leaf, 15..63 per node). */
	cr_assert(peak_height >= 3 && peak_height <= 4, "height %zu", peak_height);
	free(live);
	free(arena);
}

/* The workload that took seconds with the sorted array: chunks inserted in
 * increasing address order and removed in the same order. */
Test(big_chunks, ascending_inserts_and_removes_stay_balanced)
{
	make_arena();
	static struct big_chunks b;
	for (size_t i = 0; i < SLOTS; i++)
		cr_assert_eq(big_chunks_insert(&b, slot_chunk(i)), 0);
	cr_assert_eq(big_chunks_check(&b), 0);
	cr_assert_leq(b.height, 4);
	for (size_t i = 0; i < SLOTS; i++) {
		big_chunks_remove(&b, slot_chunk(i));
		if (i % 20000 == 0)
			cr_assert_eq(big_chunks_check(&b), 0);
	}
	cr_assert_eq(b.count, 0);
	free(arena);
}

/* --- threads ----------------------------------------------------------------- */

static struct big_chunks shared;
static int stop; /* atomic: the churn thread reads it */

/* Each worker owns the slots i with i % 4 == id: it inserts and removes
 * them and checks that lookups of its own slots are exact meanwhile. */
static void *worker(void *arg)
{
	size_t id = (size_t)(uintptr_t)arg;
	unsigned char *mine = calloc(SLOTS, 1);
	uint64_t x = id + 1;
	for (int op = 0; op < 200000; op++) {
		size_t i = (next(&x) % (SLOTS / 4)) * 4 + id;
		if (mine[i])
			big_chunks_remove(&shared, slot_chunk(i));
		else if (big_chunks_insert(&shared, slot_chunk(i)))
			return (void *)1;
		mine[i] ^= 1;
		size_t j = (next(&x) % (SLOTS / 4)) * 4 + id;
		uintptr_t addr = chunk_user(slot_chunk(j)) + next(&x) % chunk_size(slot_chunk(j));
		if (lookup_chunk(&shared, addr) != (mine[j] ? slot_chunk(j) : NULL))
			return (void *)1;
	}
	for (size_t i = 0; i < SLOTS; i++)
		if (mine[i])
			big_chunks_remove(&shared, slot_chunk(i));
	free(mine);
	return NULL;
}

Test(big_chunks, concurrent_threads_keep_it_exact, .timeout = 60)
{
	make_arena();
	pthread_t t[4];
	for (size_t i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i);
	for (size_t i = 0; i < 4; i++) {
		void *bad;
		pthread_join(t[i], &bad);
		cr_assert_null(bad, "worker %zu saw a wrong answer", i);
	}
	cr_assert_eq(shared.count, 0);
	cr_assert_eq(big_chunks_check(&shared), 0);
	free(arena);
}

static void *churn(void *arg)
{
	(void)arg;
	uint64_t x = 99;
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		size_t i = next(&x) % (SLOTS / 2) * 2; /* even slots: the child uses odd ones */
		big_chunks_insert(&shared, slot_chunk(i));
		big_chunks_remove(&shared, slot_chunk(i));
	}
	return NULL;
}

/* A child forked while another thread is inside the tree must find it
 * unlocked and consistent (the hooks call these handlers around fork). */
Test(big_chunks, fork_while_another_thread_holds_it, .timeout = 60)
{
	make_arena();
	pthread_atfork(big_chunks_fork_prepare, big_chunks_fork_parent, big_chunks_fork_child);
	big_chunks_insert(&shared, slot_chunk(1));
	pthread_t t;
	pthread_create(&t, NULL, churn, NULL);
	for (int round = 0; round < 200; round++) {
		pid_t pid = fork();
		if (pid == 0) {
			alarm(10); /* a child stuck on an inherited lock dies instead */
			int ok = big_chunks_insert(&shared, slot_chunk(3)) == 0 &&
			         lookup_chunk(&shared, chunk_user(slot_chunk(3))) == slot_chunk(3) &&
			         big_chunks_check(&shared) == 0;
			_exit(ok ? 0 : 1);
		}
		int status;
		waitpid(pid, &status, 0);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d: status %#x", round, status);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	free(arena);
}

/* A lookup that must not wait answers "unknown" while the lock is held,
 * even by the calling thread (a signal handler on the thread inside insert:
 * an index operation nested in another, threads.h). */
Test(big_chunks, lookup_that_may_not_wait_answers_unknown)
{
	make_arena();
	static struct big_chunks b;
	struct chunk *c = slot_chunk(10);
	struct chunk_info info = { .no_site = 0 };
	struct thread_slot *s = thread_attach();
	cr_assert_not_null(s);
	thread_enter(s);
	thread_enter(s); /* as a handler's lookup inside an insert */
	cr_assert_not(index_lookup_may_wait());
	cr_assert_eq(big_chunks_lookup(&b, chunk_user(c), &info), INDEX_NONE); /* never used: empty */
	big_chunks_insert(&b, c);
	cr_assert_eq(big_chunks_lookup(&b, chunk_user(c), &info), INDEX_FOUND);
	cr_assert_eq(info.base, chunk_user(c));
	spin_lock(&b.lock);
	cr_assert_eq(big_chunks_lookup(&b, chunk_user(c), &info), INDEX_UNKNOWN);
	spin_unlock(&b.lock);
	cr_assert_eq(big_chunks_lookup(&b, chunk_user(c) + 1000, &info), INDEX_NONE);
	thread_leave(s);
	thread_leave(s);
	free(arena);
}

/* --- under the hooks ------------------------------------------------------------ */

/* At HEAPINDEX_ADDR_BITS=32 every chunk of a PIE heap is above the
 * memtable's range and goes to the big chunks: 3*10^5 malloc(16) then free
 * took 4.7 s with the sorted array (O(n) per insert and remove), 0.1 s with
 * the tree.  Under every index, so none has such a cliff; lookups checked.
 * The bound is on CPU time: the wall time passed it (1.12 s) in a run on
 * a machine loaded 11 deep on its 2 cores. */
ParameterizedTestParameters(big_chunks, many_uncovered_chunks_are_fast) { return index_params(1); }
ParameterizedTest(struct index_name *param, big_chunks, many_uncovered_chunks_are_fast, .timeout = 60)
{
	char *argv[] = { (char *)test_program("big_churn"), "small", "300000", NULL };
	const char *env[] = { expect_lookup_setting(param->name), "HEAPINDEX_ADDR_BITS=32", NULL };
	struct program_result r = run_program(argv, hook_library(param->name), env);
	cr_assert_eq(r.status, 0, "%s: exit %d: %s", param->name, r.status, r.err);
	double wall = -1, cpu = -1;
	cr_assert_eq(sscanf(r.out, "small %lf %lf", &wall, &cpu), 2, "%s: %s", param->name, r.out);
	cr_assert_lt(cpu, 1.0, "%s: 3*10^5 malloc+free took %.2f s of CPU at 32 address bits", param->name,
	             cpu);
	program_result_free(&r);
}

/* Big chunks replaced in rounds, every index checked against the shadow. */
ParameterizedTestParameters(big_chunks, replaced_big_chunks_verify) { return index_params(1); }
ParameterizedTest(struct index_name *param, big_chunks, replaced_big_chunks_verify, .timeout = 60)
{
	char *argv[] = { (char *)test_program("big_churn"), "big", "3000", "3", "40000", NULL };
	const char *env[] = { expect_lookup_setting(param->name), "HEAPINDEX_VERIFY=1000", NULL };
	struct program_result r = run_program(argv, hook_library(param->name), env);
	cr_assert_eq(r.status, 0, "%s: exit %d: %s", param->name, r.status, r.err);
	program_result_free(&r);
}

/* big_chunks_lookup_after skips b when addr lies outside every chunk ever
 * inserted (the span), without its lock (b->lookups counts the lookups
 * that took it), and answers exactly as the tree does everywhere: at the
 * span's first byte, its last, one past each end; after the chunks at
 * both ends are removed (the span does not narrow); and for a hit of the
 * caller's own, which never reads b. */
Test(big_chunks, lookups_outside_the_span_skip_the_tree)
{
	make_arena();
	static struct big_chunks b;
	struct chunk_info info = { .no_site = 0 };
	cr_assert_eq(big_chunks_lookup_after(&b, INDEX_NONE, (uintptr_t)arena + 16, &info), INDEX_NONE);
	size_t first = 1000, last = 1010;
	for (size_t i = first; i <= last; i += 2)
		cr_assert_eq(big_chunks_insert(&b, slot_chunk(i)), 0);
	uintptr_t lo = chunk_user(slot_chunk(first)), hi = chunk_user(slot_chunk(last)) + chunk_size(slot_chunk(last));
	for (int gone = 0; gone < 2; gone++) {
		const uintptr_t probes[] = { lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, (uintptr_t)arena + 16,
			                     chunk_user(slot_chunk(first + 1)), chunk_user(slot_chunk(first + 2)) + 1,
			                     (uintptr_t)arena + (uintptr_t)SLOTS * SLOT - 8 };
		for (size_t k = 0; k < sizeof probes / sizeof *probes; k++) {
			uintptr_t addr = probes[k];
			uint64_t before = b.lookups;
			int answer = big_chunks_lookup_after(&b, INDEX_NONE, addr, &info);
			struct chunk *want = NULL;
			for (size_t i = first + 2 * (size_t)gone; i <= last - 2 * (size_t)gone; i += 2)
				if (chunk_contains(slot_chunk(i), addr))
					want = slot_chunk(i);
			cr_assert_eq(answer, want ? INDEX_FOUND : INDEX_NONE, "probe %zu (%#lx)", k, (unsigned long)addr);
			if (want)
				cr_assert_eq(info.base, chunk_user(want), "probe %zu", k);
			int inside = addr >= lo && addr < hi;
			cr_assert_eq(b.lookups - before, (uint64_t)inside, "probe %zu (%#lx): tree taken %d times",
			             k, (unsigned long)addr, (int)(b.lookups - before));
			before = b.lookups;
			cr_assert_eq(big_chunks_lookup_after(&b, INDEX_FOUND, addr, &info), INDEX_FOUND);
			cr_assert_eq(b.lookups, before, "a hit read the tree");
		}
		big_chunks_remove(&b, slot_chunk(first + 2 * (size_t)gone));
		big_chunks_remove(&b, slot_chunk(last - 2 * (size_t)gone));
	}
	for (size_t i = first + 4; i <= last - 4; i += 2)
		big_chunks_remove(&b, slot_chunk(i));
	cr_assert_eq(b.count, 0);
	free(arena);
}
