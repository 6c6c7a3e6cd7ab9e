/* test_threads.c - the indexes and the hooks under threads.
 *
 * In-process (what `make SANITIZE=thread test` puts under ThreadSanitizer):
 * every index driven through its index_ops by several threads at once,
 * inserting, removing and looking up, including chunks other threads are
 * freeing.  Through the hook libraries: lookups racing with frees, lookups
 * from a SIGPROF handler, and the documented bound on the peak figures. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index_params.h"
#include "inproc.h"
#include "support.h"

/* --- every index from several threads, in-process ----------------------------
 * Each thread allocates chunks of the sizes below (small, past the
 * memtable's big threshold, past the bitmap's), looks its own live chunks up
 * (found exactly: no one else frees them), publishes them, and looks up
 * chunks other threads published, which they may be freeing: such an answer
 * is nothing, or a chunk of one of these sizes containing the address --
 * only these threads insert, so any other size is a torn header.  At the
 * end, every thread joined, nothing is found any more. */

#define WORKERS 4
#define OPS 4000
#define LIVE 64
#define PUBLISHED 64

static const size_t sizes[] = { 1, 24, 100, 1000, 20000, 200000 };
#define N_SIZES (sizeof sizes / sizeof *sizes)

static struct inproc shared;
static int answers; /* the index answers lookups (not noop) */
static uintptr_t published[PUBLISHED];

struct worker {
	pthread_t thread;
	unsigned id;
	unsigned failures;
	char failure[160];
};

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x;
}

static void note(struct worker *w, const char *what, uintptr_t addr, size_t size)
{
	if (!w->failures++)
		snprintf(w->failure, sizeof w->failure, "thread %u: %s (%#lx, size %zu)", w->id, what,
		         (unsigned long)addr, size);
}

/* One of the sizes allocated; under trailer, whose lookups answer the
 * usable size (chunk.h), at most one allocator step above one. */
static int usable_sizes; /* lookups answer usable sizes: trailer, side without records */

static int is_a_size(size_t size)
{
	size_t slack = usable_sizes ? 8192 : 1; /* a page: mmapped chunks */
	for (size_t i = 0; i < N_SIZES; i++)
		if (size >= sizes[i] && size < sizes[i] + slack)
			return 1;
	return 0;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	uint64_t x = 0x9e3779b97f4a7c15u * (w->id + 1);
	unsigned char *live[LIVE] = { 0 };
	size_t live_size[LIVE] = { 0 };
	for (int op = 0; op < OPS; op++) {
		unsigned i = (unsigned)(next(&x) % LIVE);
		if (live[i]) {
			void *base;
			size_t size;
			uintptr_t addr = (uintptr_t)live[i] + next(&x) % live_size[i];
			int hit = inproc_lookup(&shared, (void *)addr, &base, &size, NULL);
			if (answers && (!hit || base != live[i] || size != live_size[i]))
				note(w, "an own live chunk is not found exactly", addr, live_size[i]);
			inproc_free(&shared, live[i]);
			live[i] = NULL;
		} else {
			size_t size = sizes[next(&x) % N_SIZES];
			live[i] = inproc_alloc(&shared, size, next(&x) % 4 ? 16 : 64, w->id);
			if (!live[i]) {
				note(w, "out of memory", 0, size);
				break;
			}
			struct chunk *c = chunk_of_user(live[i]); /* its size as lookups answer it: */
			live_size[i] = usable_sizes && chunk_meta == META_SIDE ? chunk_held_size(c) : chunk_size(c);
			__atomic_store_n(&published[next(&x) % PUBLISHED], (uintptr_t)live[i] + next(&x) % size,
			                 __ATOMIC_RELAXED);
		}
		/* Someone's chunk, live or being freed or gone. */
		uintptr_t addr = __atomic_load_n(&published[next(&x) % PUBLISHED], __ATOMIC_RELAXED);
		void *base;
		size_t size;
		if (addr && inproc_lookup(&shared, (void *)addr, &base, &size, NULL) &&
		    (!is_a_size(size) || (uintptr_t)base % 16 || addr - (uintptr_t)base >= size))
			note(w, "a racing lookup answered a torn chunk", (uintptr_t)base, size);
	}
	for (int i = 0; i < LIVE; i++)
		inproc_free(&shared, live[i]);
	return NULL;
}

static void four_threads(const char *name, const char *meta, unsigned lookup_cache)
{
	const struct index_ops *ops = index_by_name(name);
	cr_assert_not_null(ops);
	struct heapindex_config cfg = { .addr_bits = config_default_addr_bits(),
		                        .bin_shift = CONFIG_BIN_SHIFT_DEFAULT, .lookup_cache = lookup_cache,
		                        .meta = chunk_meta_by_name(meta) };
	char err[256];
	cr_assert_eq(inproc_init(&shared, ops, &cfg, err, sizeof err), 0, "%s", err);
	answers = index_answers_lookups(name);
	usable_sizes = chunk_meta == META_TRAILER ||
	               (chunk_meta == META_SIDE && (ops->caps & (INDEX_SIDE_TELLS | INDEX_SIDE_RECORDS)) == INDEX_SIDE_TELLS);
	struct worker w[WORKERS];
	for (unsigned i = 0; i < WORKERS; i++) {
		w[i] = (struct worker){ .id = i };
		cr_assert_eq(pthread_create(&w[i].thread, NULL, work, &w[i]), 0);
	}
	for (unsigned i = 0; i < WORKERS; i++)
		pthread_join(w[i].thread, NULL);
	for (unsigned i = 0; i < WORKERS; i++)
		cr_expect_eq(w[i].failures, 0, "%s: %u failures, first: %s", name, w[i].failures,
		             w[i].failure);
	for (int i = 0; i < PUBLISHED; i++)
		cr_expect_not(published[i] && inproc_lookup(&shared, (void *)published[i], NULL, NULL, NULL),
		              "%s: a freed chunk is still found at %#lx", name,
		              (unsigned long)published[i]);
}

ParameterizedTestParameters(threads_inproc, every_index_from_four_threads) { return index_meta_params(1); }
ParameterizedTest(struct index_meta *param, threads_inproc, every_index_from_four_threads,
                  .timeout = 240)
{
	four_threads(param->name, param->meta, 0);
}

/* The same through the shared lookup cache (hooks/lookup_cache.h): lookups
 * mark chunks and fill their thread's cache while other threads free them;
 * a stale entry shows as an own chunk answered wrongly, a torn or foreign
 * chunk, or a freed chunk found at the end. */
ParameterizedTestParameters(threads_inproc, every_index_from_four_threads_cached) { return index_params(1); }
ParameterizedTest(struct index_name *param, threads_inproc, every_index_from_four_threads_cached,
                  .timeout = 240)
{
	four_threads(param->name, "header", 8); /* the cache's mark is in the header */
}

/* --- through the hook libraries ---------------------------------------------- */

/* A hang must fail the test, not leave a spinning child behind: the
 * programs run under timeout(1). */
static struct program_result run_bounded(const char *index, const char *seconds, char *prog,
                                         char *arg, char *arg2, const char *const env[])
{
	char *argv[] = { "timeout", (char *)seconds, prog, arg, arg2, NULL };
	return run_program(argv, hook_library(index), env);
}

/* Lookups racing with frees of the same chunks (thread_stress's race),
 * without verify, which would serialise the index calls. */
ParameterizedTestParameters(threads, lookups_racing_frees_answer_whole_chunks) { return index_meta_params(1); }
ParameterizedTest(struct index_meta *param, threads, lookups_racing_frees_answer_whole_chunks,
                  .timeout = 240)
{
	const char *env[] = { expect_lookup_setting(param->name), param->setting, NULL };
	struct program_result r =
		run_bounded(param->name, "200", (char *)test_program("thread_stress"), "2000", "200000", env);
	cr_assert_eq(r.status, 0, "%s: exit %d: %s", param->name, r.status, r.err);
	cr_assert(strstr(r.out, "found whole"), "%s: %s", param->name, r.out);
	program_result_free(&r);
}

/* issue 16 item 2: a SIGPROF handler's lookup while the interrupted thread
 * is inside malloc holding an index lock.  Before, the lookup spun on the
 * hooks' lock forever (this test timed out under every index). */
ParameterizedTestParameters(threads, sigprof_lookups_never_deadlock) { return index_meta_params(1); }
ParameterizedTest(struct index_meta *param, threads, sigprof_lookups_never_deadlock, .timeout = 240)
{
	const char *env[] = { expect_lookup_setting(param->name), param->setting, NULL };
	struct program_result r =
		run_bounded(param->name, "200", (char *)test_program("signal_lookup"), "200000", NULL, env);
	cr_assert_neq(r.status, 124, "%s: deadlocked (timed out)", param->name);
	cr_assert_eq(r.status, 0, "%s: exit %d: %s", param->name, r.status, r.err);
	cr_assert(strstr(r.out, "; ok"), "%s: %s", param->name, r.out);
	program_result_free(&r);
}

/* hooks/counters.h: with N threads' slots holding unflushed counts, the
 * reported peaks are within N * 64 chunks and N * 64 KiB of the true ones.
 * threads: the program's threads besides main.  Under index's default
 * placement; bytes where it counts them. */
static void check_peak(const char *index, const char *mode, long long own_chunks, long long own_bytes,
                       int threads, int own_is_exact)
{
	struct stats_file stats;
	stats_file_open(&stats, "peak");
	/* Header: the memtable's default, side, counts no bytes (hooks.c). */
	const char *env[] = { stats.setting, "HEAPINDEX_META=header", NULL };
	struct program_result r =
		run_bounded(index, "100", (char *)test_program("peak_bound"), (char *)mode, NULL, env);
	cr_assert_eq(r.status, 0, "%s: peak_bound %s: exit %d: %s", index, mode, r.status, r.err);
	char *lines = stats_file_read(&stats);
	/* What else the process has live: the C library's own chunks (stdio,
	 * a few per thread while it runs). */
	long long end_chunks = json_stat(lines, "live_chunks");
	long long slack_chunks = 4 * (threads + 1), slack_bytes = 16 << 10;
	long long bound_chunks = 64LL * (threads + 1), bound_bytes = (64LL << 10) * (threads + 1);
	long long peak = json_stat(lines, "peak_live_chunks");
	cr_expect_leq(peak, own_chunks + end_chunks + slack_chunks + bound_chunks, "%s: %s: peak %lld chunks",
	              index, mode, peak);
	if (own_is_exact)
		cr_expect_geq(peak, own_chunks - bound_chunks, "%s: %s: peak %lld chunks", index, mode, peak);
	if (strstr(lines, "\"peak_live_bytes\":")) {
		long long end_bytes = json_stat(lines, "live_bytes"), peak_bytes = json_stat(lines, "peak_live_bytes");
		cr_expect_leq(peak_bytes, own_bytes + end_bytes + slack_bytes + bound_bytes,
		              "%s: %s: peak %lld bytes", index, mode, peak_bytes);
		if (own_is_exact)
			cr_expect_geq(peak_bytes, own_bytes - bound_bytes, "%s: %s: peak %lld bytes", index, mode,
			              peak_bytes);
	} else {
		cr_expect(strstr(lines, "\"meta\":\"side\"") && !(index_caps(index) & INDEX_SIDE_RECORDS),
		          "%s: no peak_live_bytes: %s", index, lines);
	}
	program_result_free(&r);
	free(lines);
}

/* A malloc the real allocator refuses is counted as a failure and nothing
 * else: the fast path counts the chunk before the real malloc and takes the
 * count back (hooks.c), so after every chunk is freed none is live, and
 * the peak never counted the refused ones. */
ParameterizedTestParameters(threads, refused_mallocs_leave_no_live_count) { return index_params(1); }
ParameterizedTest(struct index_name *param, threads, refused_mallocs_leave_no_live_count, .timeout = 120)
{
	char cmd[4200];
	struct stats_file stats;
	stats_file_open(&stats, "exhaust");
	/* 400 MB of address space: the memtable takes its two-level table. */
	snprintf(cmd, sizeof cmd, "ulimit -v 400000; exec %s 1000", test_program("malloc_exhaust"));
	char *argv[] = { "sh", "-c", cmd, NULL };
	const char *env[] = { stats.setting, NULL };
	struct program_result r = run_program(argv, hook_library(param->name), env);
	cr_assert_eq(r.status, 0, "%s: exit %d: %s", param->name, r.status, r.err);
	long long chunks = 0, failed = 0;
	cr_assert_eq(sscanf(r.out, "malloc_exhaust: %lld chunks, %lld failed", &chunks, &failed), 2, "%s", r.out);
	cr_assert_eq(failed, 1000, "%s", r.out);
	char *lines = stats_file_read(&stats);
	/* The program's line (sh exec'd it, and wrote none of its own). */
	const char *own = strstr(lines, "\"exe\":\"malloc_exhaust\"");
	cr_assert_not_null(own, "%s: no statistics of malloc_exhaust: %s", param->name, lines);
	const char *line = own;
	while (line > lines && line[-1] != '\n')
		line--;
	cr_expect_eq(json_stat(line, "failed_allocs"), failed, "%s: %s", param->name, line);
	cr_expect_eq(json_stat(line, "live_chunks"), 0, "%s: %s", param->name, line);
	/* Bytes where counted: not under side without records (noop's default). */
	if (strstr(line, "\"live_bytes\":"))
		cr_expect_eq(json_stat(line, "live_bytes"), 0, "%s: %s", param->name, line);
	else
		cr_expect(strstr(line, "\"meta\":\"side\"") && !(index_caps(param->name) & INDEX_SIDE_RECORDS),
		          "%s: no live_bytes: %s", param->name, line);
	/* One thread: within 64 chunks of the true peak (counters.h). */
	cr_expect_geq(json_stat(line, "peak_live_chunks"), chunks - 64, "%s: %s", param->name, line);
	cr_expect_leq(json_stat(line, "peak_live_chunks"), chunks + 64, "%s: %s", param->name, line);
	program_result_free(&r);
	free(lines);
}

/* The memtable counts every call (header); noop under its default, side,
 * counts calls and chunks by its budgets alone (hooks/counters.h). */
Test(threads, peaks_are_within_the_documented_bound, .timeout = 120)
{
	static const char *const indexes[] = { "memtable", "noop" };
	for (size_t i = 0; i < sizeof indexes / sizeof *indexes; i++) {
		/* 4 threads hold 5000 chunks of 100 bytes each at once. */
		check_peak(indexes[i], "cross", 20000, 2000000, 4, 1);
		/* Never more than 257 chunks of 64 bytes live, though the
		 * producer alone made 200000 live: a per-thread peak would
		 * say so. */
		check_peak(indexes[i], "pipe", 257, 257 * 64, 2, 0);
	}
}
