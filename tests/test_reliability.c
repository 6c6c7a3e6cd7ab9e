/* test_reliability.c - the hooks under stress: injected allocator failures
 * (HEAPINDEX_FAIL_EVERY), the shadow check of every index (HEAPINDEX_VERIFY),
 * many threads, every way of starting a process, and lookups of wild
 * addresses under every address-space width.  Programs run as children
 * (tests/support.h), with each index preloaded. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inproc.h"
#include "index_params.h"
#include "support.h"

static void run_ok(const char *index, char *const argv[], const char *const env[],
                   const char *want_out)
{
	struct program_result r = run_program(argv, hook_library(index), env);
	cr_assert_eq(r.status, 0, "%s under %s: exit %d: %s", argv[0], index, r.status, r.err);
	if (want_out)
		cr_assert(strstr(r.out, want_out), "%s under %s: %s", argv[0], index, r.out);
	program_result_free(&r);
}

/* --- failure injection ----------------------------------------------------- */

ParameterizedTestParameters(reliability, survive_injected_failures) { return index_meta_params(1); }
ParameterizedTest(struct index_meta *param, reliability, survive_injected_failures, .timeout = 120)
{
	char *argv[] = { (char *)test_program("fail_inject"), NULL };
	const char *env[] = { expect_lookup_setting(param->name), "EXPECT_FAILURES=1",
		              "HEAPINDEX_FAIL_EVERY=7", "HEAPINDEX_VERIFY=1", param->setting, NULL };
	run_ok(param->name, argv, env, "failures survived");
}

/* Real programs that survive an allocation failing now and then: python
 * with -I -S.  Without -S, whether it survives depends on where the failures
 * land: a MemoryError while importing site is fatal to CPython ("Failed to
 * import the site module"), one in a .pth file is reported and skipped.
 * gcc, bash and sh are not included: they exit on the first failure
 * ("xmalloc: cannot allocate"), which is their behaviour, not the hooks'. */
ParameterizedTestParameters(reliability, python_survives_rare_failures) { return index_meta_params(1); }
ParameterizedTest(struct index_meta *param, reliability, python_survives_rare_failures, .timeout = 120)
{
	char *argv[] = { "/usr/bin/python3", "-I", "-S", "-c", "print(1)", NULL };
	const char *env[] = { "HEAPINDEX_FAIL_EVERY=1000", "HEAPINDEX_VERIFY=1", param->setting, NULL };
	struct program_result r = run_program(argv, hook_library(param->name), env);
	cr_assert_eq(r.status, 0, "python under %s: exit %d: %s", param->name, r.status, r.err);
	cr_assert_str_eq(r.out, "1\n", "python under %s: %s", param->name, r.out);
	program_result_free(&r);
}

/* --- verify mode ---------------------------------------------------------- */

ParameterizedTestParameters(reliability, verify_gcc_and_python) { return index_meta_params(1); }
ParameterizedTest(struct index_meta *param, reliability, verify_gcc_and_python, .timeout = 180)
{
	char src[4096], obj[64];
	snprintf(src, sizeof src, "%s/tests/progs/wild_lookup.c", repo_root());
	snprintf(obj, sizeof obj, "/tmp/heapindex-verify-%d.o", (int)getpid());
	char *gcc[] = { "gcc", "-O1", "-c", src, "-o", obj, NULL };
	const char *every_1000[] = { "HEAPINDEX_VERIFY=1000", param->setting, NULL };
	run_ok(param->name, gcc, every_1000, NULL);
	unlink(obj);
	char *py[] = { "/usr/bin/python3", "-c",
		       "d = {i: str(i) * (i % 50) for i in range(30000)}\nprint(sum(map(len, d.values())))",
		       NULL };
	const char *at_exit[] = { "HEAPINDEX_VERIFY=1", "PYTHONMALLOC=malloc", param->setting, NULL };
	run_ok(param->name, py, at_exit, "3403005");
}

Test(reliability, reject_bad_reliability_settings)
{
	static const char *const bad[][2] = {
		{ "HEAPINDEX_FAIL_EVERY=1000001", "from 0 to 1000000" },
		{ "HEAPINDEX_FAIL_EVERY=-1", "from 0 to 1000000" },
		{ "HEAPINDEX_FAIL_EVERY=often", "from 0 to 1000000" },
		{ "HEAPINDEX_VERIFY=yes", "from 0 to 1000000000" },
		{ "HEAPINDEX_VERIFY=", "from 0 to 1000000000" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_setting_rejected(bad[i][0], bad[i][1]);
}

/* --- threads and processes --------------------------------------------------- */

ParameterizedTestParameters(reliability, threads_stress_keeps_the_live_set) { return index_meta_params(1); }
ParameterizedTest(struct index_meta *param, reliability, threads_stress_keeps_the_live_set,
                  .timeout = 180)
{
	char *argv[] = { (char *)test_program("thread_stress"), "20000", NULL };
	const char *env[] = { expect_lookup_setting(param->name), "HEAPINDEX_VERIFY=1", param->setting, NULL };
	run_ok(param->name, argv, env, "live at end ok");
}

ParameterizedTestParameters(reliability, fork_spawn_system_vfork_with_threads) { return index_meta_params(1); }
ParameterizedTest(struct index_meta *param, reliability, fork_spawn_system_vfork_with_threads,
                  .timeout = 60)
{
	char *argv[] = { (char *)test_program("spawn_paths"), NULL };
	const char *env[] = { expect_lookup_setting(param->name), "HEAPINDEX_VERIFY=1", param->setting, NULL };
	run_ok(param->name, argv, env, "vfork ok");
}

/* --- pointers the hooks did not hand out (issue 16, item 4) ------------------- */

/* Each index under each placement where a pointer the hooks never made
 * reaches the allocator untouched (hooks.c, foreign_pointer and track):
 * header, told by the pad code's check, for every index; side, told by
 * the remove of an index with records (index.h, INDEX_SIDE_RECORDS), or,
 * for an index without records (noop), not told but passed on all the
 * same, being the allocator's own pointer. */
static struct criterion_test_params foreign_checked(void)
{
	static struct index_meta params[32 * 2];
	size_t n = 0;
	for (size_t i = 0; all_indexes[i] && n + 2 <= sizeof params / sizeof *params; i++) {
		static const enum chunk_meta checked[] = { META_HEADER, META_SIDE };
		unsigned caps = all_indexes[i]->caps;
		for (size_t k = 0; k < 2; k++) {
			enum chunk_meta m = checked[k];
			if (!(caps & META_CAP(m)))
				continue;
			snprintf(params[n].name, sizeof params[n].name, "%s", all_indexes[i]->name);
			snprintf(params[n].meta, sizeof params[n].meta, "%s", chunk_meta_name(m));
			snprintf(params[n].setting, sizeof params[n].setting, "HEAPINDEX_META=%s",
			         chunk_meta_name(m));
			n++;
		}
	}
	return cr_make_param_array(struct index_meta, params, n);
}

/* With the shadow check on (HEAPINDEX_VERIFY), which fails the run if the
 * index hears of a foreign chunk; but not for side without records, where
 * it would (the hooks cannot tell, above). */
ParameterizedTestParameters(reliability, glibc_pointers_reach_glibc_untouched) { return foreign_checked(); }
ParameterizedTest(struct index_meta *param, reliability, glibc_pointers_reach_glibc_untouched,
                  .timeout = 60)
{
	char *argv[] = { (char *)test_program("foreign_pointers"), "libc", NULL };
	int told = strcmp(param->meta, "side") != 0 || (index_caps(param->name) & INDEX_SIDE_RECORDS);
	const char *env[] = { expect_lookup_setting(param->name), param->setting,
		              told ? "HEAPINDEX_VERIFY=1" : "HEAPINDEX_VERIFY=0", NULL };
	run_ok(param->name, argv, env, "libc ok");
}

/* The last line glibc wrote before aborting, in s (stderr). */
static void last_line(const char *s, char *out, size_t len)
{
	size_t n = strlen(s);
	while (n && s[n - 1] == '\n')
		n--;
	size_t start = n;
	while (start && s[start - 1] != '\n')
		start--;
	snprintf(out, len, "%.*s", (int)(n - start), s + start);
}

/* noop under side too: its free hands a pointer it cannot tell straight to
 * the allocator, which then aborts with its own message (no
 * malloc_usable_size on it first, hooks.c). */
ParameterizedTestParameters(reliability, bad_pointer_gets_the_allocators_own_abort) { return foreign_checked(); }
ParameterizedTest(struct index_meta *param, reliability, bad_pointer_gets_the_allocators_own_abort,
                  .timeout = 60)
{
	char *argv[] = { (char *)test_program("foreign_pointers"), "bad", NULL };
	const char *plain_env[] = { "EXPECT_LOOKUP=0", NULL };
	struct program_result plain = run_program(argv, NULL, plain_env);
	cr_assert_eq(plain.status, 128 + SIGABRT, "uninstrumented: exit %d: %s", plain.status, plain.err);
	char want[256];
	last_line(plain.err, want, sizeof want);
	cr_assert(want[0], "glibc said nothing: %s", plain.err);
	const char *env[] = { expect_lookup_setting(param->name), param->setting, NULL };
	struct program_result r = run_program(argv, hook_library(param->name), env);
	cr_assert_eq(r.status, 128 + SIGABRT, "%s, %s: exit %d: %s", param->name, param->meta, r.status, r.err);
	cr_assert(strstr(r.err, want), "%s, %s: want glibc's own '%s', got: %s", param->name, param->meta,
	          want, r.err);
	cr_assert(strstr(r.out, "index intact"), "%s, %s: %s", param->name, param->meta, r.out);
	program_result_free(&plain);
	program_result_free(&r);
}

/* A chunk of ours whose header the program overwrote is neither freed as
 * ours (its pad is lost) nor handed to glibc as foreign: the index knows
 * it, and the hooks stop with a message naming the problem.  Under header,
 * set by name: it is the one placement with a header (critnib's default
 * is side, where those bytes are the allocator's). */
ParameterizedTestParameters(reliability, overwritten_header_stops_with_a_message) { return index_params(0); }
ParameterizedTest(struct index_name *param, reliability, overwritten_header_stops_with_a_message,
                  .timeout = 60)
{
	char *argv[] = { (char *)test_program("foreign_pointers"), "underflow", NULL };
	const char *env[] = { "HEAPINDEX_META=header", NULL };
	struct program_result r = run_program(argv, hook_library(param->name), env);
	cr_assert_eq(r.status, 128 + SIGABRT, "%s: exit %d: %s", param->name, r.status, r.err);
	char want[96];
	snprintf(want, sizeof want, "heapindex: %.*s: the header below this live chunk was overwritten",
	         (int)strcspn(r.out + strlen("freeing "), "\n"), r.out + strlen("freeing "));
	cr_assert(strstr(r.err, want), "%s: want '%s' in %s", param->name, want, r.err);
	program_result_free(&r);
}

/* The same output as without the hooks, and one line on stderr saying why. */
static void assert_runs_as_uninstrumented(const char *index, const char *program, const char *sign)
{
	char *argv[] = { (char *)test_program(program), NULL };
	struct program_result plain = run_program(argv, NULL, NULL);
	cr_assert_eq(plain.status, 0, "%s uninstrumented: exit %d: %s", program, plain.status, plain.err);
	cr_assert(strstr(plain.out, sign), "%s: %s", program, plain.out);
	struct program_result r = run_program(argv, hook_library(index), NULL);
	cr_assert_eq(r.status, 0, "%s under %s: exit %d: %s", program, index, r.status, r.err);
	cr_assert_str_eq(r.out, plain.out, "%s under %s", program, index);
	const char *said = strstr(r.err, "hooks step aside");
	cr_assert(said && !strstr(said + 1, "hooks step aside"), "%s under %s: say it once: %s", program,
	          index, r.err);
	program_result_free(&plain);
	program_result_free(&r);
}

ParameterizedTestParameters(reliability, replaced_allocator_runs_as_uninstrumented) { return index_params(1); }
ParameterizedTest(struct index_name *param, reliability, replaced_allocator_runs_as_uninstrumented,
                  .timeout = 60)
{
	assert_runs_as_uninstrumented(param->name, "replaced_malloc", "reallocarray: mine 1");
	assert_runs_as_uninstrumented(param->name, "replaced_malloc_cxx", "program's arena 1");
}

/* --- wild pointers ----------------------------------------------------------- */

struct index_bits {
	char name[32];
	unsigned bits;
	char setting[48]; /* HEAPINDEX_META=<a placement the index takes> */
};

static struct criterion_test_params every_index_and_width(void)
{
	static struct index_bits params[32 * META_COUNT * 4];
	static const unsigned widths[] = { 32, 39, 47, 48 };
	size_t n = 0;
	for (size_t i = 0; all_indexes[i] && i < 32; i++)
		for (int m = 0; m < META_COUNT; m++)
			for (size_t w = 0; w < 4 && (all_indexes[i]->caps & META_CAP(m)); w++, n++) {
				snprintf(params[n].name, sizeof params[n].name, "%s", all_indexes[i]->name);
				params[n].bits = widths[w];
				snprintf(params[n].setting, sizeof params[n].setting, "HEAPINDEX_META=%s",
				         chunk_meta_name((enum chunk_meta)m));
			}
	return cr_make_param_array(struct index_bits, params, n);
}

ParameterizedTestParameters(reliability, wild_lookups_answer_nothing) { return every_index_and_width(); }
ParameterizedTest(struct index_bits *param, reliability, wild_lookups_answer_nothing)
{
	char bits[64];
	snprintf(bits, sizeof bits, "HEAPINDEX_ADDR_BITS=%u", param->bits);
	char *argv[] = { (char *)test_program("wild_lookup"), NULL };
	const char *env[] = { expect_lookup_setting(param->name), bits, param->setting, NULL };
	run_ok(param->name, argv, env, "wild addresses ok");
}

/* 200,000 lookups of random addresses (half anywhere below 2^47, half near
 * the heap) must commit no index memory: RSS grows by less than 16 MiB and
 * the lookups take fewer than 256 page faults (wild_rss.c says why faults
 * count on kernels with a shared zero page), flat and two-level alike. */
ParameterizedTestParameters(reliability, wild_lookups_commit_no_memory) { return index_params(1); }
ParameterizedTest(struct index_name *param, reliability, wild_lookups_commit_no_memory)
{
	char *argv[] = { (char *)test_program("wild_rss"), "16", NULL };
	const char *flat[] = { NULL };
	const char *two_level[] = { "HEAPINDEX_TABLE_LEVELS=2", NULL };
	run_ok(param->name, argv, flat, "wild lookups");
	run_ok(param->name, argv, two_level, "wild lookups"); /* only the memtable reads it */
}

/* 57 bits: the flat memtable (2^57 / 2^6 bins) exceeds the 47-bit user
 * space, so the two-level table serves, and wild lookups still answer
 * nothing; asked for the flat table only, the program does not run and the
 * error says why. */
Test(reliability, memtable_57_bits_uses_two_levels)
{
	char *argv[] = { (char *)test_program("wild_lookup"), NULL };
	const char *env[] = { "EXPECT_LOOKUP=1", "HEAPINDEX_ADDR_BITS=57", NULL };
	run_ok("memtable", argv, env, "wild addresses ok");
	const char *flat_env[] = { "HEAPINDEX_ADDR_BITS=57", "HEAPINDEX_TABLE_LEVELS=1", NULL };
	struct program_result r = run_program(argv, hook_library("memtable"), flat_env);
	cr_assert_eq(r.status, 2, "exit %d: %s", r.status, r.err);
	cr_assert_str_empty(r.out);
	cr_assert(strstr(r.err, "cannot reserve the memtable"), "%s", r.err);
	cr_assert(strstr(r.err, "HEAPINDEX_ADDR_BITS"), "%s", r.err);
	program_result_free(&r);
}

/* Verify mode catches an index answering a wrong size: exit 3, one line
 * naming the chunk. */
ParameterizedTestParameters(reliability, verify_reports_a_corrupt_chunk) { return index_params(1); }
ParameterizedTest(struct index_name *param, reliability, verify_reports_a_corrupt_chunk)
{
	if (!index_answers_lookups(param->name))
		cr_skip_test("%s answers no lookup: only counts are verified", param->name);
	if (index_caps(param->name) & INDEX_ANSWERS_FROM_INDEX)
		cr_skip_test("%s answers sizes from its own memory: a corrupt header does not change them",
		             param->name);
	char *argv[] = { (char *)test_program("corrupt_header"), NULL };
	/* A header to corrupt (an index's default may be side, with none). */
	const char *env[] = { "HEAPINDEX_VERIFY=1", "HEAPINDEX_META=header", NULL };
	struct program_result r = run_program(argv, hook_library(param->name), env);
	cr_assert_eq(r.status, 3, "%s: exit %d: %s", param->name, r.status, r.err);
	char want[64];
	snprintf(want, sizeof want, "chunk %.*s of size 100", (int)strcspn(r.out, "\n"), r.out);
	cr_assert(strstr(r.err, "heapindex: verify (at exit"), "%s: %s", param->name, r.err);
	cr_assert(strstr(r.err, want), "%s: want '%s' in %s", param->name, want, r.err);
	program_result_free(&r);
}
