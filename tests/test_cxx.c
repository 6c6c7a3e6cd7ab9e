/* test_cxx.c - C++ programs under every index, over glibc and over
 * jemalloc: the hooks own operator new and delete (hooks/cxx.c), so new'd
 * objects are indexed (found by heapindex_lookup, site at the caller), the
 * shadow check stays clean, and C++ keeps its promises (std::bad_alloc, the
 * new-handler, nothrow, replaced operators). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "index_params.h"
#include "support.h"

#define JEMALLOC "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"

struct index_allocator {
	char index[32];
	int jemalloc;
};

static struct criterion_test_params every_index_and_allocator(void)
{
	static struct index_allocator params[64];
	struct criterion_test_params indexes = index_params(1);
	const struct index_name *names = indexes.params;
	size_t n = 0;
	for (size_t i = 0; i < indexes.length && n + 2 <= 64; i++)
		for (int je = 0; je < 2; je++, n++) {
			snprintf(params[n].index, sizeof params[n].index, "%s", names[i].name);
			params[n].jemalloc = je;
		}
	return cr_make_param_array(struct index_allocator, params, n);
}

/* The hook library, then jemalloc when asked: heapindex run's order. */
static const char *preload(const struct index_allocator *p)
{
	static char buf[8400];
	if (p->jemalloc && access(JEMALLOC, R_OK))
		cr_skip_test("jemalloc is not installed");
	snprintf(buf, sizeof buf, "%s%s%s", hook_library(p->index), p->jemalloc ? ":" : "",
	         p->jemalloc ? JEMALLOC : "");
	return buf;
}

static void run_cxx(const struct index_allocator *p, const char *program, const char *want)
{
	char *argv[] = { (char *)test_program(program), NULL };
	const char *env[] = { expect_lookup_setting(p->index), "HEAPINDEX_VERIFY=1", NULL };
	struct program_result r = run_program(argv, preload(p), env);
	const char *over = p->jemalloc ? "jemalloc" : "glibc";
	cr_assert_eq(r.status, 0, "%s under %s over %s: exit %d: %s", program, p->index, over, r.status, r.err);
	cr_assert(strstr(r.out, want), "%s under %s over %s: %s", program, p->index, over, r.out);
	program_result_free(&r);
}

ParameterizedTestParameters(cxx, new_and_delete_are_indexed) { return every_index_and_allocator(); }
ParameterizedTest(struct index_allocator *param, cxx, new_and_delete_are_indexed, .timeout = 120)
{
	run_cxx(param, "cxx_alloc", index_answers_lookups(param->index) ? "(with lookups)" : "checks passed");
}

ParameterizedTestParameters(cxx, replaced_operators_serve_every_form) { return every_index_and_allocator(); }
ParameterizedTest(struct index_allocator *param, cxx, replaced_operators_serve_every_form, .timeout = 60)
{
	run_cxx(param, "cxx_replaced", "served every form");
}
