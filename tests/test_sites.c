/* test_sites.c - allocation sites: the census and heapindex_describe name
 * the function and line that allocated, in every capture mode, and a bad
 * HEAPINDEX_SITE stops the program with one line.  The program under test,
 * tests/progs/sites_demo.c, prints the lines of its own allocation sites, so
 * nothing here hard-codes a line number. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index_params.h"
#include "sites.h"
#include "support.h"

static const char *demo(void)
{
	static char path[4096];
	snprintf(path, sizeof path, "%s/build/tests/progs/sites_demo", repo_root());
	return path;
}

/* The line sites_demo printed for function name. */
static int line_of(const char *out, const char *name)
{
	char key[64];
	snprintf(key, sizeof key, "%s ", name);
	for (const char *p = out; (p = strstr(p, key)); p++)
		if (p == out || p[-1] == '\n')
			return atoi(p + strlen(key));
	return -1;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	cr_assert(f, "no census written to %s", path);
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Run sites_demo under index with a census; returns the census text and
 * leaves the program's output in r. */
static char *run_census_under(const char *index, struct program_result *r, const char *site,
                              const char *skip, const char *extra)
{
	static char census_path[64];
	snprintf(census_path, sizeof census_path, "/tmp/heapindex-census-XXXXXX");
	int fd = mkstemp(census_path);
	cr_assert(fd >= 0);
	close(fd);
	char census[128], site_env[64], skip_env[128];
	snprintf(census, sizeof census, "HEAPINDEX_CENSUS=%s", census_path);
	snprintf(site_env, sizeof site_env, "HEAPINDEX_SITE=%s", site);
	snprintf(skip_env, sizeof skip_env, "HEAPINDEX_SITE_SKIP=%s", skip ? skip : "");
	const char *env[] = { census, site_env, skip ? skip_env : extra, skip ? extra : NULL, NULL };
	char *argv[] = { (char *)demo(), NULL };
	*r = run_program(argv, hook_library(index), env);
	cr_assert_eq(r->status, 0, "sites_demo: %s", r->err);
	char *text = slurp(census_path);
	unlink(census_path);
	return text;
}

static char *run_census(struct program_result *r, const char *site, const char *skip,
                        const char *extra)
{
	return run_census_under("memtable", r, site, skip, extra);
}

/* The census has a row for function at file:line with these totals. */
static void expect_row(const char *census, const char *function, int line,
                       const char *totals)
{
	char want[256];
	snprintf(want, sizeof want, "\t%s\tsites_demo.c:%d\tsites_demo\t", function, line);
	const char *row = strstr(census, want);
	cr_assert(row, "no row '%s' in census:\n%s", want, census);
	if (totals) {
		const char *start = row;
		while (start > census && start[-1] != '\n')
			start--;
		cr_assert(strncmp(start, totals, strlen(totals)) == 0,
		          "row for %s: expected it to start '%s':\n%s", function, totals, census);
	}
}

Test(sites, census_names_functions_and_lines)
{
	struct program_result r;
	char *census = run_census(&r, "ret", NULL, NULL);
	expect_row(census, "make_names", line_of(r.out, "make_names"), "10000\t10\t");
	expect_row(census, "make_tables", line_of(r.out, "make_tables"), "288\t3\t");
	cr_assert(!strstr(census, "\tmake_temps\t"), "freed chunks still counted:\n%s", census);
	/* Without a skip list the wrapper is the site. */
	cr_assert(strstr(census, "\txmalloc\tsites_demo.c:"), "%s", census);
	cr_assert(strstr(census, "reason=exit"), "%s", census);
	program_result_free(&r);
}

/* Under side an index with records hands each freed chunk's site back
 * (index.h, INDEX_SIDE_RECORDS), so the census, which must take a freed
 * chunk off its site's row, runs there too, with the same rows. */
Test(sites, census_under_side_with_records)
{
	struct program_result r;
	char *census = run_census_under("critnib", &r, "ret", NULL, "HEAPINDEX_META=side");
	expect_row(census, "make_names", line_of(r.out, "make_names"), "10000\t10\t");
	expect_row(census, "make_tables", line_of(r.out, "make_tables"), "288\t3\t");
	cr_assert(!strstr(census, "\tmake_temps\t"), "freed chunks still counted:\n%s", census);
	cr_assert(strstr(census, "reason=exit"), "%s", census);
	program_result_free(&r);
}

Test(sites, skip_list_sees_through_wrappers)
{
	struct program_result r;
	char *census = run_census(&r, "ret", "xcalloc,xmalloc", NULL);
	expect_row(census, "make_wrapped", line_of(r.out, "make_wrapped"), NULL);
	cr_assert(!strstr(census, "\txmalloc\t"), "%s", census);
	program_result_free(&r);
}

Test(sites, unwind_keeps_the_callers)
{
	struct program_result r;
	char *census = run_census(&r, "unwind:8", "xmalloc", NULL);
	expect_row(census, "make_names", line_of(r.out, "make_names"), "10000\t10\t");
	expect_row(census, "make_wrapped", line_of(r.out, "make_wrapped"), NULL);
	cr_assert(strstr(census, "\tmain (sites_demo.c:"), "callers missing:\n%s", census);
	program_result_free(&r);
}

Test(sites, census_on_sigusr2)
{
	struct program_result r;
	char *census = run_census(&r, "ret", NULL, "SIGNAL=1");
	cr_assert(strstr(census, "reason=SIGUSR2"), "%s", census);
	cr_assert(strstr(census, "reason=exit"), "%s", census);
	program_result_free(&r);
}

Test(sites, describe_names_the_chunk_and_its_site)
{
	char *argv[] = { (char *)demo(), NULL };
	const char *modes[] = { "HEAPINDEX_SITE=ret", "HEAPINDEX_SITE=unwind:4" };
	for (int i = 0; i < 2; i++) {
		/* Header: the memtable's default, side, keeps no sites (index.h). */
		const char *env[] = { "DESCRIBE=1", modes[i], "HEAPINDEX_META=header", NULL };
		struct program_result r = run_program(argv, hook_library("memtable"), env);
		cr_assert_eq(r.status, 0, "%s", r.err);
		char want[256];
		snprintf(want, sizeof want,
		         " is 24 bytes into a 96-byte chunk allocated at make_tables (sites_demo.c:%d)\n",
		         line_of(r.out, "make_tables"));
		cr_assert(strstr(r.out, "describe 1 0x"), "%s", r.out);
		cr_assert(strstr(r.out, want), "%s: expected '%s' in:\n%s", modes[i], want, r.out);
		cr_assert(strstr(r.out, " is not in a live heap chunk\n"), "%s", r.out);
		program_result_free(&r);
	}
}

Test(sites, bad_settings_stop_with_one_line)
{
	const char *bad[] = { "HEAPINDEX_SITE=unwind:0", "HEAPINDEX_SITE=unwind:33",
		              "HEAPINDEX_SITE=unwind:", "HEAPINDEX_SITE=stack",
		              "HEAPINDEX_SITE=unwind:4x", "HEAPINDEX_SITE=unwind:-1",
		              "HEAPINDEX_CENSUS=", "HEAPINDEX_SITE_SKIP=" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_setting_rejected(bad[i], NULL);
}

/* A site is an interned stack exactly when it lies in the range reserved
 * for stack records, never because of a tag bit: on AArch64 with 48-bit
 * user space (the default there) libraries map near 2^48, so bit 47 is set
 * in real return addresses, which must stay code addresses. */
Test(sites, stack_keys_are_told_from_code_addresses_of_any_width)
{
	const uintptr_t code[] = {
		0x401234,                    /* a non-PIE executable */
		UINT64_C(0x7f1234567890),    /* x86-64 libraries, below 2^47 */
		UINT64_C(0xffff9a3c1234),    /* AArch64 libraries, bit 47 set */
		UINT64_C(0x800000001000),    /* just above 2^47 */
		CHUNK_FIELD_MASK,            /* the largest site a header holds */
	};
	cr_assert_eq(sites_stacks_reserve(), 0);
	for (size_t i = 0; i < sizeof code / sizeof *code; i++) {
		cr_assert_null(site_as_stack(code[i]), "code address %#lx taken for a stack",
		               (unsigned long)code[i]);
		cr_assert_eq(sites_leaf(code[i]), code[i]);
	}
	struct site_stack *s = sites_stacks_take(sizeof *s + 3 * sizeof(uintptr_t));
	cr_assert_not_null(s);
	s->depth = 3;
	s->frames[0] = code[2];
	uintptr_t key = (uintptr_t)s;
	struct chunk c;
	chunk_init(&c, 10, 16, key);
	cr_assert_eq(chunk_site(&c), key, "a stack key must fit the header's 48 bits");
	cr_assert_eq(site_as_stack(key), s);
	cr_assert_eq(sites_leaf(key), code[2]);
	struct site_stack *t = sites_stacks_take(sizeof *t + 32 * sizeof(uintptr_t));
	cr_assert(t && site_as_stack((uintptr_t)t) == t && (uintptr_t)t % 16 == 0);
}

/* --- fork, threads and the census ------------------------------------------------ */

static void run_fork_locks(const char *index, const char *mode, const char *const env[])
{
	char *argv[] = { (char *)test_program("fork_locks"), (char *)mode, NULL };
	struct program_result r = run_program(argv, hook_library(index), env);
	cr_assert_eq(r.status, 0, "fork_locks %s under %s: exit %d: %s", mode, index, r.status, r.err);
	cr_assert(strstr(r.out, "40 forks ok"), "%s", r.out);
	program_result_free(&r);
}

/* A census being written (SIGUSR2) when the process forks: the child's own
 * census at exit must not wait forever for the parent's writer. */
ParameterizedTestParameters(sites, fork_during_a_census) { return index_params(1); }
ParameterizedTest(struct index_name *param, sites, fork_during_a_census, .timeout = 120)
{
	char census[64], setting[128];
	snprintf(census, sizeof census, "/tmp/heapindex-census-fork-%d", (int)getpid());
	snprintf(setting, sizeof setting, "HEAPINDEX_CENSUS=%s", census);
	const char *env[] = { setting, NULL };
	run_fork_locks(param->name, "census", env);
	unlink(census);
}

/* heapindex_describe (the symbolizer, libdwarf) and stack capture
 * (libunwind) in other threads when the process forks. */
Test(sites, fork_during_describe_and_capture, .timeout = 120)
{
	const char *ret[] = { "HEAPINDEX_SITE=ret", NULL };
	const char *unwind[] = { "HEAPINDEX_SITE=unwind:8", NULL };
	run_fork_locks("memtable", "describe", ret);
	run_fork_locks("memtable", "describe", unwind);
}

/* HEAPINDEX_CENSUS makes no thread until a census is asked for: a
 * single-threaded program stays single-threaded, and may unshare its user
 * namespace (EINVAL in a multithreaded process). */
Test(sites, census_leaves_programs_single_threaded)
{
	const char *env[] = { "HEAPINDEX_CENSUS=/dev/null", NULL };
	char *argv[] = { (char *)test_program("fork_locks"), "threads", NULL };
	struct program_result r = run_program(argv, hook_library("memtable"), env);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "threads: 1\n");
	program_result_free(&r);

	char *unshare[] = { "unshare", "-U", "/bin/true", NULL };
	r = run_program(unshare, NULL, NULL);
	int plain = r.status;
	program_result_free(&r);
	if (plain != 0)
		cr_skip_test("unshare -U fails here even uninstrumented");
	r = run_program(unshare, hook_library("memtable"), env);
	cr_assert_eq(r.status, 0, "unshare -U under HEAPINDEX_CENSUS: %s", r.err);
	program_result_free(&r);
}

/* Every census is one snapshot, whole, while new sites keep appearing:
 * none drops a row (tests/progs/census_rows.c). */
Test(sites, census_drops_no_row_while_sites_appear, .timeout = 120)
{
	char census[64], setting[128];
	snprintf(census, sizeof census, "/tmp/heapindex-census-rows-%d", (int)getpid());
	snprintf(setting, sizeof setting, "HEAPINDEX_CENSUS=%s", census);
	const char *env[] = { setting, NULL };
	char *argv[] = { (char *)test_program("census_rows"), NULL };
	struct program_result r = run_program(argv, hook_library("memtable"), env);
	unlink(census);
	if (r.status == 77)
		cr_skip_test("census_rows runs on x86-64 only");
	cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
	program_result_free(&r);
}
