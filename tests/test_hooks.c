/* test_hooks.c - every hook library preloaded into real programs: they must
 * compute exactly what they compute without it, keep the C library's
 * promises, survive threads and fork, and report per-process statistics.
 * Programs run as children (tests/support.h): never the runner itself. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index.h"
#include "index_params.h"
#include "inproc.h"
#include "support.h"

/* Run argv with and without the index (under the placement p names); both
 * must succeed with equal stdout.  env: at most 6 settings. */
static void same_output(const struct index_meta *p, char *const argv[], const char *const env[])
{
	const char *index = p->name, *with_meta[8] = { p->setting };
	for (size_t i = 0; env && env[i] && i < 6; i++)
		with_meta[i + 1] = env[i];
	struct program_result plain = run_program(argv, NULL, env);
	struct program_result hooked = run_program(argv, hook_library(index), with_meta);
	cr_assert_eq(plain.status, 0, "%s uninstrumented: %s", argv[0], plain.err);
	cr_assert_eq(hooked.status, 0, "%s under %s: %s", argv[0], index, hooked.err);
	cr_assert_eq(plain.out_len, hooked.out_len, "%s under %s: output length differs", argv[0], index);
	cr_assert(memcmp(plain.out, hooked.out, plain.out_len) == 0, "%s under %s: output differs",
	          argv[0], index);
	cr_assert_gt(plain.out_len, 0, "%s printed nothing", argv[0]);
	program_result_free(&plain);
	program_result_free(&hooked);
}

ParameterizedTestParameters(hooks, keep_the_c_library_promises) { return index_meta_params(1); }
ParameterizedTest(struct index_meta *param, hooks, keep_the_c_library_promises)
{
	const char *index = param->name;
	char *argv[] = { (char *)test_program("alloc_semantics"), NULL };
	const char *env[] = { expect_lookup_setting(index), param->setting, NULL };
	struct program_result r = run_program(argv, hook_library(index), env);
	cr_assert_eq(r.status, 0, "%s, %s: %s", index, param->meta, r.err);
	cr_assert(strstr(r.out, index_answers_lookups(index) ? "(with lookups)" : "checks passed"),
	          "%s: %s", index, r.out);
	program_result_free(&r);
}

ParameterizedTestParameters(hooks, keep_the_promises_over_jemalloc) { return index_meta_params(1); }
ParameterizedTest(struct index_meta *param, hooks, keep_the_promises_over_jemalloc)
{
	const char *index = param->name;
	const char *jemalloc = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
	if (access(jemalloc, R_OK))
		cr_skip_test("jemalloc is not installed");
	char preload[8192];
	snprintf(preload, sizeof preload, "%s:%s", hook_library(index), jemalloc);
	char *argv[] = { (char *)test_program("alloc_semantics"), NULL };
	const char *env[] = { expect_lookup_setting(index), param->setting, NULL };
	struct program_result r = run_program(argv, preload, env);
	cr_assert_eq(r.status, 0, "%s, %s over jemalloc: %s", index, param->meta, r.err);
	program_result_free(&r);
}

ParameterizedTestParameters(hooks, survive_threads_and_fork) { return index_meta_params(1); }
ParameterizedTest(struct index_meta *param, hooks, survive_threads_and_fork, .timeout = 60)
{
	const char *index = param->name;
	char *argv[] = { (char *)test_program("threads_fork"), NULL };
	const char *env[] = { expect_lookup_setting(index), param->setting, NULL };
	struct program_result r = run_program(argv, hook_library(index), env);
	cr_assert_eq(r.status, 0, "%s, %s: %s", index, param->meta, r.err);
	cr_assert(strstr(r.out, "forks ok"), "%s: %s", index, r.out);
	program_result_free(&r);
}

ParameterizedTestParameters(hooks, leave_python_output_unchanged) { return index_meta_params(1); }
ParameterizedTest(struct index_meta *param, hooks, leave_python_output_unchanged, .timeout = 120)
{
	char *argv[] = { "/usr/bin/python3", "-c",
		"import json, collections\n"
		"d = {str(i): list(range(i % 7)) for i in range(20000)}\n"
		"c = collections.Counter(json.dumps(d))\n"
		"print(len(json.dumps(d)), sorted(c.items())[:5], sum(map(len, d.values())))\n",
		NULL };
	const char *env[] = { "PYTHONMALLOC=malloc", NULL };
	same_output(param, argv, env);
}

ParameterizedTestParameters(hooks, leave_shell_pipelines_unchanged) { return index_meta_params(1); }
ParameterizedTest(struct index_meta *param, hooks, leave_shell_pipelines_unchanged)
{
	char *argv[] = { "sh", "-c",
		"for i in 3 1 2 10; do echo line $i; done | sort -r | tr '\\n' ',' ; ls / | wc -l", NULL };
	same_output(param, argv, NULL);
}

/* gcc's object file must be byte-identical, and the driver's children
 * (cc1, as) must be indexed too: LD_PRELOAD stays in their environment. */
ParameterizedTestParameters(hooks, leave_gcc_objects_identical) { return index_meta_params(1); }
ParameterizedTest(struct index_meta *param, hooks, leave_gcc_objects_identical, .timeout = 120)
{
	const char *index = param->name;
	char src[4096], plain_obj[64], hooked_obj[64];
	snprintf(src, sizeof src, "%s/tests/progs/alloc_semantics.c", repo_root());
	snprintf(plain_obj, sizeof plain_obj, "/tmp/heapindex-test-%d-plain.o", (int)getpid());
	snprintf(hooked_obj, sizeof hooked_obj, "/tmp/heapindex-test-%d-hooked.o", (int)getpid());
	struct stats_file stats;
	stats_file_open(&stats, "gcc");
	char *plain_argv[] = { "gcc", "-O2", "-g", "-c", src, "-o", plain_obj, NULL };
	char *hooked_argv[] = { "gcc", "-O2", "-g", "-c", src, "-o", hooked_obj, NULL };
	const char *env[] = { stats.setting, param->setting, NULL };
	struct program_result a = run_program(plain_argv, NULL, NULL);
	struct program_result b = run_program(hooked_argv, hook_library(index), env);
	cr_assert_eq(a.status, 0, "gcc: %s", a.err);
	cr_assert_eq(b.status, 0, "gcc under %s: %s", index, b.err);
	char *cmp_argv[] = { "cmp", plain_obj, hooked_obj, NULL };
	struct program_result c = run_program(cmp_argv, NULL, NULL);
	cr_assert_eq(c.status, 0, "object files differ under %s: %s", index, c.out);

	char *lines = stats_file_read(&stats);
	cr_assert(strstr(lines, "\"exe\":\"cc1\""), "no statistics from cc1 under %s", index);
	/* as may be installed as x86_64-linux-gnu-as: match the name's end. */
	cr_assert(strstr(lines, "as\",\"index\""), "no statistics from as under %s", index);
	char want_index[64];
	snprintf(want_index, sizeof want_index, "\"index\":\"%s\"", index);
	cr_assert(strstr(lines, want_index), "statistics name another index: %s", lines);
	char want_meta[64];
	snprintf(want_meta, sizeof want_meta, "\"meta\":\"%s\"", param->meta);
	cr_assert(strstr(lines, want_meta), "statistics name another placement than %s: %s", param->meta, lines);
	unlink(plain_obj), unlink(hooked_obj);
	program_result_free(&a), program_result_free(&b), program_result_free(&c);
	free(lines);
}

/* The statistics line of `true` run under the library of index (with the
 * extra setting env, or NULL) must hold every key of INDEX_COMMON_STATS in
 * its index_stats, and the links_bytes the index declares (if it is linked
 * here: the trace recorder is not). */
static void check_common_stats(const char *index, const char *env_extra)
{
	struct stats_file stats;
	stats_file_open(&stats, "common");
	/* (Not sh: dash leaves with _exit, and no statistics are written.) */
	char *argv[] = { "true", NULL };
	const char *env[] = { stats.setting, env_extra, NULL };
	struct program_result r = run_program(argv, hook_library(index), env);
	cr_assert_eq(r.status, 0, "%s: %s", index, r.err);
	char *lines = stats_file_read(&stats);
	const char *own = strstr(lines, "\"index_stats\":{");
	cr_assert_not_null(own, "%s wrote no index statistics: '%s'", index, lines);
	static const char *const keys[] = { INDEX_COMMON_STATS };
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
		char key[64];
		snprintf(key, sizeof key, "\"%s\":", keys[i]);
		cr_expect_not_null(strstr(own, key), "%s does not write %s: %s", index, keys[i], own);
	}
	const struct index_ops *ops = index_by_name(index);
	if (ops) {
		char links[64];
		snprintf(links, sizeof links, "\"links_bytes\":%zu,", ops->links_bytes);
		cr_expect_not_null(strstr(own, links), "%s: links_bytes is not %zu: %s", index,
		                   ops->links_bytes, own);
	}
	program_result_free(&r);
	free(lines);
}

ParameterizedTestParameters(hooks, every_index_writes_the_common_statistics) { return index_params(1); }
ParameterizedTest(struct index_name *param, hooks, every_index_writes_the_common_statistics)
{
	check_common_stats(param->name, NULL);
}

Test(hooks, the_trace_recorder_writes_the_common_statistics)
{
	char trace[80];
	snprintf(trace, sizeof trace, "HEAPINDEX_TRACE=/tmp/heapindex-test-%d.trace", (int)getpid());
	check_common_stats("record", trace);
	unlink(strchr(trace, '=') + 1);
}

/* The settings survive a program that rewrites its environment in place
 * (redis and nginx set their process title that way): statistics still go
 * to the HEAPINDEX_STATS file named at start.  Before the hooks copied their
 * settings, nothing was written. */
Test(hooks, settings_survive_a_rewritten_environment)
{
	struct stats_file stats;
	stats_file_open(&stats, "env");
	char *argv[] = { (char *)test_program("clobber_env"), NULL };
	const char *env[] = { stats.setting, NULL };
	struct program_result r = run_program(argv, hook_library("memtable"), env);
	cr_assert_eq(r.status, 0, "clobber_env: %s", r.err);
	char *lines = stats_file_read(&stats);
	cr_assert(strstr(lines, "\"exe\":\"clobber_env\""), "no statistics written: '%s'", lines);
	program_result_free(&r);
	free(lines);
}

/* The lookup cache (hooks/lookup_cache.h) under every index: chunks one
 * thread looked up, twice, and another thread then freed or realloc'd are
 * never answered as they were (tests/progs/cache_invalidation.c), and
 * HEAPINDEX_VERIFY finds no cache entry of the checking thread that
 * outlived its chunk.  The cache must really answer (hits in the
 * statistics) for an index that reads the header; one that answers from
 * its own memory may never mark a chunk, and then never fills it.  Without
 * the invalidation on free both runs failed under every index but critnib. */
ParameterizedTestParameters(hooks, lookup_cache_forgets_chunks_freed_by_other_threads) { return index_params(0); }
ParameterizedTest(struct index_name *param, hooks, lookup_cache_forgets_chunks_freed_by_other_threads,
                  .timeout = 120)
{
	const char *index = param->name;
	struct stats_file stats;
	stats_file_open(&stats, "cache");
	char *argv[] = { (char *)test_program("cache_invalidation"), NULL };
	const char *env[] = { "HEAPINDEX_LOOKUP_CACHE=16", stats.setting, NULL };
	struct program_result r = run_program(argv, hook_library(index), env);
	cr_assert_eq(r.status, 0, "%s: exit %d: %s", index, r.status, r.err);
	const char *verify_env[] = { "HEAPINDEX_LOOKUP_CACHE=16", "HEAPINDEX_VERIFY=7", NULL };
	struct program_result v = run_program(argv, hook_library(index), verify_env);
	cr_assert_eq(v.status, 0, "%s under HEAPINDEX_VERIFY: exit %d: %s", index, v.status, v.err);

	char *lines = stats_file_read(&stats);
	long long n = json_stat(lines, "lookup_cache_hits");
	if (!(index_caps(index) & INDEX_ANSWERS_FROM_INDEX))
		cr_assert_gt(n, 0, "%s: the cache never answered", index);
	program_result_free(&r), program_result_free(&v);
	free(lines);
}

/* A thread whose lookup cache cannot be mapped looks up without it, and
 * does not ask for the mapping again on every lookup.  Before the fix the
 * program saw 1,000 refused mappings under every index. */
ParameterizedTestParameters(hooks, lookup_cache_refused_memory_is_asked_for_once) { return index_params(0); }
ParameterizedTest(struct index_name *param, hooks, lookup_cache_refused_memory_is_asked_for_once)
{
	const char *index = param->name;
	if (!(index_caps(index) & INDEX_ANSWERS_LOOKUPS))
		cr_skip_test("%s answers no lookups", index);
	char *argv[] = { (char *)test_program("cache_map_refused"), NULL };
	const char *env[] = { "HEAPINDEX_LOOKUP_CACHE=16", NULL };
	struct program_result r = run_program(argv, hook_library(index), env);
	cr_assert_eq(r.status, 0, "%s: exit %d: %s", index, r.status, r.err);
	program_result_free(&r);
}

/* A bad setting stops the program before it runs, with one line naming the
 * variable, the value and the valid range. */
Test(hooks, reject_bad_settings_before_the_program_runs)
{
	static const char *const bad[][2] = {
		{ "HEAPINDEX_BIN_SHIFT=3", "from 4 to 11" },
		{ "HEAPINDEX_BIN_SHIFT=12", "from 4 to 11" },
		{ "HEAPINDEX_BIN_SHIFT=nine", "from 4 to 11" },
		{ "HEAPINDEX_ADDR_BITS=64", "from 32 to 57" },
		{ "HEAPINDEX_ADDR_BITS=", "from 32 to 57" },
		{ "HEAPINDEX_STATS=", "file path" },
		{ "HEAPINDEX_TABLE_LEVELS=3", "from 0 to 2" },
		{ "HEAPINDEX_META=footer", "header, trailer or side" },
		{ "HEAPINDEX_META=", "header, trailer or side" },
		{ "HEAPINDEX_LOOKUP_CACHE=8192", "from 0 to 4096" },
		{ "HEAPINDEX_LOOKUP_CACHE=-1", "from 0 to 4096" },
		{ "HEAPINDEX_LOOKUP_CACHE=12", "power of two" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_setting_rejected(bad[i][0], bad[i][1]);
}

/* Under a 1 GB ulimit -v the flat memtable (2 TiB of address space) cannot
 * be reserved: the index falls back to its two-level table and every promise
 * and lookup still holds. */
Test(hooks, memtable_falls_back_to_two_levels_under_ulimit)
{
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "ulimit -v 1000000; exec %s", test_program("alloc_semantics"));
	char *argv[] = { "sh", "-c", cmd, NULL };
	const char *env[] = { "EXPECT_LOOKUP=1", NULL };
	struct program_result r = run_program(argv, hook_library("memtable"), env);
	cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
	cr_assert(strstr(r.out, "(with lookups)"), "%s", r.out);
	program_result_free(&r);
}

/* Asked for the flat table only, a memtable that cannot be reserved says so
 * and how to fix it, before the program runs. */
Test(hooks, unreservable_flat_memtable_explains_the_fix)
{
	char *argv[] = { "sh", "-c", "ulimit -v 1000000; exec sh -c 'echo ran'", NULL };
	const char *env[] = { "HEAPINDEX_TABLE_LEVELS=1", NULL };
	struct program_result r = run_program(argv, hook_library("memtable"), env);
	cr_assert_eq(r.status, 2, "exit %d: %s", r.status, r.err);
	cr_assert_str_empty(r.out);
	cr_assert(strstr(r.err, "cannot reserve the memtable"), "%s", r.err);
	cr_assert(strstr(r.err, "overcommit"), "%s", r.err);
	cr_assert(strstr(r.err, "HEAPINDEX_TABLE_LEVELS"), "%s", r.err);
	program_result_free(&r);
}

/* --- errno and bootstrap (tests/shims/faulty_libc.c) ---------------------------- */

static const char *shim_then(const char *index)
{
	static char preload[8400];
	snprintf(preload, sizeof preload, "%s/build/tests/shims/libfaulty_libc.so:%s", repo_root(),
	         hook_library(index));
	return preload;
}

/* A malloc that succeeds leaves errno alone, even when the index could not
 * map a table page and fell back to its big-chunk structure, or madvise
 * failed on a kernel without transparent huge pages. */
Test(hooks, errno_kept_when_the_index_falls_back)
{
	static const char *const cases[][3] = {
		{ "memtable", "SHIM_MADVISE_FAIL=1", "HEAPINDEX_TABLE_LEVELS=2" },
		{ "memtable", "SHIM_FAIL_MMAP_BYTES=2097152", "HEAPINDEX_TABLE_LEVELS=2" }, /* a leaf */
		{ "bitmap", "SHIM_FAIL_MMAP_BYTES=8388608", "HEAPINDEX_TABLE_LEVELS=0" },   /* a region */
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char *argv[] = { (char *)test_program("errno_kept"), NULL };
		const char *env[] = { "EXPECT_LOOKUP=1", cases[i][1], cases[i][2], NULL };
		struct program_result r = run_program(argv, shim_then(cases[i][0]), env);
		cr_assert_eq(r.status, 0, "%s with %s: %s", cases[i][0], cases[i][1], r.err);
		cr_assert(strstr(r.out, "errno_kept: ok"), "%s", r.out);
		program_result_free(&r);
	}
}

/* memalign, aligned_alloc and posix_memalign called while the hooks are
 * still starting (here: from the getenv that reads their settings) get
 * aligned memory, as malloc does then, not a NULL without errno. */
ParameterizedTestParameters(hooks, aligned_allocation_during_bootstrap) { return index_meta_params(1); }
ParameterizedTest(struct index_meta *param, hooks, aligned_allocation_during_bootstrap)
{
	char *argv[] = { (char *)test_program("errno_kept"), NULL };
	const char *env[] = { "SHIM_BOOT_MEMALIGN=1", expect_lookup_setting(param->name), param->setting, NULL };
	struct program_result r = run_program(argv, shim_then(param->name), env);
	cr_assert_eq(r.status, 0, "%s, %s: %s", param->name, param->meta, r.err);
	cr_assert(strstr(r.out, "bootstrap: memalign(64) aligned errno 0; aligned_alloc(4096) aligned "
	                        "errno 0; posix_memalign(256) aligned returned 0\n"),
	          "%s: %s", param->name, r.out);
	program_result_free(&r);
}

/* --- metadata placements (hooks/chunk.h) ------------------------------------------ */

/* A placement the index cannot take (by its caps) stops the program before
 * it runs: exit 2, one stderr line naming the setting and what it takes. */
ParameterizedTestParameters(hooks, refuse_placements_the_index_cannot_take) { return index_params(1); }
ParameterizedTest(struct index_name *param, hooks, refuse_placements_the_index_cannot_take)
{
	unsigned caps = index_caps(param->name);
	for (int m = 0; m < META_COUNT; m++) {
		if (caps & META_CAP(m))
			continue;
		char setting[48];
		snprintf(setting, sizeof setting, "HEAPINDEX_META=%s", chunk_meta_name((enum chunk_meta)m));
		char *argv[] = { "sh", "-c", "echo ran", NULL };
		const char *env[] = { setting, NULL };
		struct program_result r = run_program(argv, hook_library(param->name), env);
		cr_assert_eq(r.status, 2, "%s with %s: exit %d", param->name, setting, r.status);
		cr_assert_str_empty(r.out, "%s with %s: the program ran", param->name, setting);
		cr_assert(strstr(r.err, setting) && strstr(r.err, "not supported"), "%s: %s", param->name, r.err);
		cr_assert(strstr(r.err, "header"), "%s: does not say what it takes: %s", param->name, r.err);
		cr_assert_eq(strchr(r.err, '\n'), r.err + r.err_len - 1, "not one line: %s", r.err);
		program_result_free(&r);
	}
}

/* The statistics say which placement ran and what it added per chunk,
 * counting glibc's rounding (chunks of 16 + 8k usable bytes, 16-byte
 * steps): malloc_pairs asks for multiples of 16, where a 16-byte header
 * (plus the index's links) moves every chunk up by as much, and a trailer's
 * 8 bytes fit in the 8 the size class leaves over: it adds nothing. */
ParameterizedTestParameters(hooks, statistics_give_the_bytes_each_placement_adds) { return index_meta_params(1); }
ParameterizedTest(struct index_meta *param, hooks, statistics_give_the_bytes_each_placement_adds)
{
	struct stats_file stats;
	stats_file_open(&stats, "meta");
	char *argv[] = { (char *)test_program("malloc_pairs"), "200000", NULL };
	const char *env[] = { stats.setting, param->setting, NULL };
	struct program_result r = run_program(argv, hook_library(param->name), env);
	cr_assert_eq(r.status, 0, "%s, %s: %s", param->name, param->meta, r.err);
	char *lines = stats_file_read(&stats);
	char want[64];
	snprintf(want, sizeof want, "\"meta\":\"%s\"", param->meta);
	cr_assert(strstr(lines, want), "%s: %s", want, lines);
	const char *field = strstr(lines, "\"meta_bytes_per_chunk\":");
	cr_assert(field, "no meta_bytes_per_chunk: %s", lines);
	double added = strtod(field + strlen("\"meta_bytes_per_chunk\":"), NULL);
	const struct index_ops *ops = index_by_name(param->name);
	double expect = strcmp(param->meta, "header") == 0 ? 16.0 + (double)ops->links_bytes : 0.0;
	cr_assert(added > expect - 0.01 && added < expect + 0.01, "%s, %s: %g bytes per chunk, want %g",
	          param->name, param->meta, added, expect);
	program_result_free(&r);
	free(lines);
}

/* --- side with records (index.h, INDEX_SIDE_RECORDS) --------------------------------- */

/* Every index that answers lookups under side keeps a record of each chunk
 * or at least a mark that tells its chunks at remove (the memtable's start
 * masks), and says so: without either, the hooks could not tell a pointer
 * they never made (hooks.c). */
Test(hooks, side_indexes_that_answer_lookups_tell_their_chunks)
{
	for (size_t i = 0; all_indexes[i]; i++) {
		unsigned caps = all_indexes[i]->caps;
		if ((caps & INDEX_META_SIDE) && (caps & INDEX_ANSWERS_LOOKUPS))
			cr_expect(caps & (INDEX_SIDE_RECORDS | INDEX_SIDE_TELLS), "%s takes side without records",
			          all_indexes[i]->name);
	}
}

/* The indexes that take side. */
static struct criterion_test_params side_indexes(void)
{
	static struct index_name names[32];
	size_t n = 0;
	for (size_t i = 0; all_indexes[i] && n < sizeof names / sizeof *names; i++)
		if (all_indexes[i]->caps & INDEX_META_SIDE)
			snprintf(names[n++].name, sizeof names[0].name, "%s", all_indexes[i]->name);
	return cr_make_param_array(struct index_name, names, n);
}

/* side_counts under the placement meta: its live chunks and bytes at exit
 * (bytes -1 when the statistics count none). */
static void side_counts_live(const char *index, const char *meta, long long *chunks, long long *bytes)
{
	char meta_env[48];
	struct stats_file stats;
	stats_file_open(&stats, meta);
	snprintf(meta_env, sizeof meta_env, "HEAPINDEX_META=%s", meta);
	char *argv[] = { (char *)test_program("side_counts"), NULL };
	const char *env[] = { stats.setting, meta_env, NULL };
	struct program_result r = run_program(argv, hook_library(index), env);
	cr_assert_eq(r.status, 0, "side_counts under %s, %s: %s", index, meta, r.err);
	char *lines = stats_file_read(&stats);
	*chunks = json_stat(lines, "live_chunks");
	*bytes = strstr(lines, "\"live_bytes\":") ? json_stat(lines, "live_bytes") : -1;
	program_result_free(&r);
	free(lines);
}

/* Under side an index with records hands each chunk's size back at free,
 * so the statistics count the size asked for, exactly as header does:
 * the same live chunks and bytes at exit, for malloc, calloc, realloc and
 * memalign chunks of sizes glibc rounds up.  Under noop, which keeps no
 * records, they count the same chunks and no bytes: the statistics leave
 * live_bytes out rather than write a 0 that reads as a figure (hooks.c,
 * the side fast path). */
ParameterizedTestParameters(hooks, side_counts_exact_chunks_and_bytes_if_recorded) { return side_indexes(); }
ParameterizedTest(struct index_name *param, hooks, side_counts_exact_chunks_and_bytes_if_recorded)
{
	unsigned caps = index_caps(param->name);
	long long header_chunks, header_bytes, side_chunks, side_bytes;
	side_counts_live(param->name, "header", &header_chunks, &header_bytes);
	side_counts_live(param->name, "side", &side_chunks, &side_bytes);
	cr_assert_gt(header_chunks, 1000, "%s: %lld chunks live at exit", param->name, header_chunks);
	cr_assert_gt(header_bytes, 0, "%s: %lld bytes live at exit under header", param->name, header_bytes);
	cr_assert_eq(side_chunks, header_chunks, "%s: live chunks %lld under side, %lld under header",
	             param->name, side_chunks, header_chunks);
	if (caps & INDEX_SIDE_RECORDS)
		cr_assert_eq(side_bytes, header_bytes, "%s: live bytes %lld under side, %lld under header",
		             param->name, side_bytes, header_bytes);
	else
		cr_assert_eq(side_bytes, -1, "%s: live bytes %lld under side without records, want none",
		             param->name, side_bytes);
}

/* How many times the hooks called the allocator's malloc_usable_size while
 * index ran side_counts under meta (tests/shims/count_usable.c). */
static unsigned long usable_size_calls(const char *index, const char *meta, long *n, long *general)
{
	static char preload[8400];
	snprintf(preload, sizeof preload, "%s:%s/build/tests/shims/libcount_usable.so", hook_library(index),
	         repo_root());
	char meta_env[48];
	snprintf(meta_env, sizeof meta_env, "HEAPINDEX_META=%s", meta);
	char *argv[] = { (char *)test_program("side_counts"), NULL };
	const char *env[] = { meta_env, NULL };
	struct program_result r = run_program(argv, preload, env);
	cr_assert_eq(r.status, 0, "side_counts under %s, %s: %s", index, meta, r.err);
	const char *at = strstr(r.err, "count_usable: ");
	cr_assert_not_null(at, "the shim did not report: %s", r.err);
	unsigned long calls = strtoul(at + strlen("count_usable: "), NULL, 10);
	cr_assert_eq(sscanf(r.out, "side_counts: %ld calls, %ld of them", n, general), 2, "%s", r.out);
	program_result_free(&r);
	return calls;
}

/* Side asks the allocator nothing for the statistics: no malloc_usable_size
 * per malloc or free (30,000 calls of side_counts), with records (the
 * record's size) or without (noop: no bytes counted); nor does header. */
ParameterizedTestParameters(hooks, side_calls_no_malloc_usable_size) { return side_indexes(); }
ParameterizedTest(struct index_name *param, hooks, side_calls_no_malloc_usable_size)
{
	long n, general;
	unsigned long calls = usable_size_calls(param->name, "side", &n, &general);
	/* An index without records asks the allocator for the usable size its
	 * lookups answer: at most once per chunk made (side_counts' n calls).
	 * The memtable's side bodies (index.h, INDEX_SIDE_BODIES) ask only for
	 * a malloc larger than any so far (at most 64 here), so it asks at
	 * most once per call of the general path (calloc, realloc, memalign,
	 * whose usable size may pass its size class's: side_counts counts
	 * them).  Never for a free, nor for the statistics. */
	unsigned long own = 0;
	if ((index_caps(param->name) & (INDEX_SIDE_TELLS | INDEX_SIDE_RECORDS)) == INDEX_SIDE_TELLS)
		own = (unsigned long)(strcmp(param->name, "memtable") == 0 ? general : n) + 64;
	cr_assert_leq(calls, own, "%s under side: %lu malloc_usable_size calls", param->name, calls);
	unsigned long header = usable_size_calls(param->name, "header", &n, &general);
	cr_assert_eq(header, 0, "%s under header: %lu malloc_usable_size calls", param->name, header);
	/* The shim counts: trailer asks at every malloc and free. */
	if (index_caps(param->name) & INDEX_META_TRAILER) {
		unsigned long trailer = usable_size_calls(param->name, "trailer", &n, &general);
		cr_assert_geq(trailer, 30000, "%s under trailer: %lu malloc_usable_size calls", param->name,
		              trailer);
	}
}

/* The statistics line of program (argv) under index and the placement
 * meta, with env's settings too; the program must print sign.  The
 * caller frees *line. */
static void stats_of_run(const char *index, const char *meta, char *const argv[], const char *extra,
                         const char *sign, char **line)
{
	char meta_env[48];
	struct stats_file stats;
	stats_file_open(&stats, meta);
	snprintf(meta_env, sizeof meta_env, "HEAPINDEX_META=%s", meta);
	const char *env[] = { stats.setting, meta_env, expect_lookup_setting(index), extra, NULL };
	struct program_result r = run_program(argv, hook_library(index), env);
	cr_assert_eq(r.status, 0, "%s under %s, %s: exit %d: %s", argv[0], index, meta, r.status, r.err);
	cr_assert(strstr(r.out, sign), "%s under %s, %s: %s", argv[0], index, meta, r.out);
	*line = stats_file_read(&stats);
	program_result_free(&r);
}

/* The "calls" object of a statistics line, into out. */
static void calls_of(const char *line, char *out, size_t len)
{
	const char *at = strstr(line, "\"calls\":{");
	cr_assert_not_null(at, "no calls in %s", line);
	size_t n = strcspn(at, "}");
	snprintf(out, len, "%.*s", (int)n, at);
}

/* Side against header on one program: the same calls of every entry
 * point, the same live chunks at exit, and for an index with records the
 * same live bytes, in every process's statistics line (the program's
 * children first, if it waits for them).  What side's fast path counts
 * (a count per call that is also the chunk; or, without records, only the
 * budget, hooks/counters.h) must add up as header's does.  Returns side's
 * lines (free them). */
static char *expect_side_counts_as_header(const char *index, char *const argv[], const char *extra,
                                          const char *sign)
{
	char *header, *side, header_calls[1024], side_calls[1024];
	stats_of_run(index, "header", argv, extra, sign, &header);
	stats_of_run(index, "side", argv, extra, sign, &side);
	const char *h = header, *v = side;
	int lines = 0;
	/* An index without records: the program checks the lookups' usable
	 * sizes under side with malloc_usable_size calls of its own
	 * (reported_size.h), which are left out of the comparison. */
	int sizeless = (index_caps(index) & (INDEX_SIDE_TELLS | INDEX_SIDE_RECORDS)) == INDEX_SIDE_TELLS;
	for (; *h && *v; h = strchr(h, '\n') + 1, v = strchr(v, '\n') + 1, lines++) {
		calls_of(h, header_calls, sizeof header_calls);
		calls_of(v, side_calls, sizeof side_calls);
		char *at;
		if (sizeless && (at = strstr(side_calls, ",\"malloc_usable_size\"")) != NULL)
			*at = '\0';
		if (sizeless && (at = strstr(header_calls, ",\"malloc_usable_size\"")) != NULL)
			*at = '\0';
		cr_expect_str_eq(side_calls, header_calls, "%s: calls under side and header (line %d)", index,
		                 lines + 1);
		cr_expect_eq(json_stat(v, "live_chunks"), json_stat(h, "live_chunks"),
		             "%s: live chunks under side and header (line %d):\n%s%s", index, lines + 1, side,
		             header);
		if (index_caps(index) & INDEX_SIDE_RECORDS)
			cr_expect_eq(json_stat(v, "live_bytes"), json_stat(h, "live_bytes"),
			             "%s: live bytes under side and header (line %d):\n%s%s", index, lines + 1,
			             side, header);
	}
	cr_assert(lines > 0 && !*h && !*v, "%s: statistics lines under side and header:\n%s%s", index, side,
	          header);
	free(header);
	return side;
}

/* Chunks made by the fast path and resized or freed by the general path,
 * and the other way round (tests/progs/side_realloc.c): under side each
 * keeps its contents, its index entry (base, size, site) and its count. */
ParameterizedTestParameters(hooks, side_realloc_between_paths) { return side_indexes(); }
ParameterizedTest(struct index_name *param, hooks, side_realloc_between_paths, .timeout = 60)
{
	char *argv[] = { (char *)test_program("side_realloc"), NULL };
	free(expect_side_counts_as_header(param->name, argv, NULL, "side_realloc ok"));
}

/* The mix of side_counts, counted call by call. */
ParameterizedTestParameters(hooks, side_counts_every_call_as_header) { return side_indexes(); }
ParameterizedTest(struct index_name *param, hooks, side_counts_every_call_as_header, .timeout = 60)
{
	char *argv[] = { (char *)test_program("side_counts"), NULL };
	free(expect_side_counts_as_header(param->name, argv, NULL, "side_counts"));
}

/* The same from threads that free each other's chunks and from the child
 * of a fork made while they hold some (tests/progs/thread_counts.c): the
 * child's statistics line, then the parent's.  Each also within the C
 * library's few chunks of what the program says it left live. */
ParameterizedTestParameters(hooks, side_counts_threads_and_fork_as_header) { return side_indexes(); }
ParameterizedTest(struct index_name *param, hooks, side_counts_threads_and_fork_as_header, .timeout = 60)
{
	char *argv[] = { (char *)test_program("thread_counts"), NULL };
	char *side = expect_side_counts_as_header(param->name, argv, NULL, "thread_counts:");
	const char *parent = strchr(side, '\n') + 1;
	long long child_live = json_stat(side, "live_chunks"), parent_live = json_stat(parent, "live_chunks");
	cr_expect(child_live >= 5000 && child_live <= 5000 + 16, "%s: child: %lld live chunks, own 5000",
	          param->name, child_live);
	cr_expect(parent_live >= 280 && parent_live <= 280 + 16, "%s: parent: %lld live chunks, own 280",
	          param->name, parent_live);
	free(side);
}

/* glibc's own chunks given to free and realloc under side (foreign_pointers
 * libc): an index with records tells them apart at its remove, so they
 * are counted as calls, never as chunks of ours leaving, as under header.
 * (noop cannot tell: under side its counts take them for its own.) */
static struct criterion_test_params side_record_indexes(void)
{
	static struct index_name names[32];
	size_t n = 0;
	for (size_t i = 0; all_indexes[i] && n < sizeof names / sizeof *names; i++)
		if ((all_indexes[i]->caps & INDEX_META_SIDE) && (all_indexes[i]->caps & INDEX_SIDE_RECORDS))
			snprintf(names[n++].name, sizeof names[0].name, "%s", all_indexes[i]->name);
	return cr_make_param_array(struct index_name, names, n);
}

ParameterizedTestParameters(hooks, side_counts_foreign_pointers_as_header) { return side_record_indexes(); }
ParameterizedTest(struct index_name *param, hooks, side_counts_foreign_pointers_as_header, .timeout = 60)
{
	char *argv[] = { (char *)test_program("foreign_pointers"), "libc", NULL };
	free(expect_side_counts_as_header(param->name, argv, NULL, "libc ok"));
}

/* The placement the statistics name for index under env (no HEAPINDEX_META). */
static void expect_default_meta(const char *index, const char *setting, const char *want)
{
	struct stats_file stats;
	stats_file_open(&stats, "default");
	char *argv[] = { "/bin/true", NULL };
	const char *env[] = { stats.setting, setting, NULL };
	struct program_result r = run_program(argv, hook_library(index), env);
	cr_assert_eq(r.status, 0, "%s: %s", index, r.err);
	char *lines = stats_file_read(&stats);
	char quoted[48];
	snprintf(quoted, sizeof quoted, "\"meta\":\"%s\"", want);
	cr_assert(strstr(lines, quoted), "%s with %s: want %s: %s", index, setting ? setting : "nothing",
	          quoted, lines);
	program_result_free(&r);
	free(lines);
}

/* HEAPINDEX_META unset: side for every index that takes it (noop,
 * critnib, memtable, bitmap; hooks/config.h), header for the others; header with
 * the lookup cache, whose mark lives in the header; with the census, side
 * still for an index with records, whose freed sites they hand back,
 * header for one without (noop, memtable); and for an index whose side
 * needs small bins (the memtable's start masks), header with bins over 64
 * bytes. */
ParameterizedTestParameters(hooks, default_placement_by_index) { return index_params(1); }
ParameterizedTest(struct index_name *param, hooks, default_placement_by_index)
{
	unsigned caps = index_caps(param->name);
	int side = (caps & INDEX_META_SIDE) != 0,
	    records = (caps & INDEX_SIDE_RECORDS) != 0;
	expect_default_meta(param->name, NULL, side ? "side" : "header");
	expect_default_meta(param->name, "HEAPINDEX_LOOKUP_CACHE=16", "header");
	char census[96];
	snprintf(census, sizeof census, "HEAPINDEX_CENSUS=/tmp/heapindex-test-%d-census", (int)getpid());
	expect_default_meta(param->name, census, side && records ? "side" : "header");
	unlink(census + strlen("HEAPINDEX_CENSUS="));
	expect_default_meta(param->name, "HEAPINDEX_BIN_SHIFT=7",
	                    side && !(caps & INDEX_SIDE_SMALL_BINS) ? "side" : "header");
}
