/* test_workloads.c - the Python workloads on a small size: their output does
 * not change under any index, and dwarfpy_query's answers, checked against
 * what CPython knows of its own objects, are right under every index that
 * answers lookups. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>

#include "index_params.h"
#include "inproc.h"
#include "support.h"

static const char *script(const char *name)
{
	static char path[4096];
	snprintf(path, sizeof path, "%s/workloads/python/%s", repo_root(), name);
	return path;
}

ParameterizedTestParameters(workloads, dwarfpy_query_answers_verify) { return index_params(0); }
ParameterizedTest(struct index_name *param, workloads, dwarfpy_query_answers_verify, .timeout = 120)
{
	char *argv[] = { "/usr/bin/python3", (char *)script("dwarfpy_query.py"), "--ops", "20000",
	                 "--every", "5", NULL };
	const char *env[] = { "PYTHONMALLOC=malloc", NULL };
	struct program_result r = run_program(argv, hook_library(param->name), env);
	cr_assert_eq(r.status, 0, "dwarfpy_query under %s: %s%s", param->name, r.out, r.err);
	program_result_free(&r);
}

/* Under an index that answers nothing (noop, by its capabilities) the
 * verification must notice. */
Test(workloads, dwarfpy_query_fails_when_the_index_does_not_answer, .timeout = 120)
{
	const char *silent = NULL;
	for (size_t i = 0; all_indexes[i] && !silent; i++)
		if (!(all_indexes[i]->caps & INDEX_ANSWERS_LOOKUPS))
			silent = all_indexes[i]->name;
	cr_assert_not_null(silent, "no index that answers no lookups is built");
	char *argv[] = { "/usr/bin/python3", (char *)script("dwarfpy_query.py"), "--ops", "2000", NULL };
	const char *env[] = { "PYTHONMALLOC=malloc", NULL };
	struct program_result r = run_program(argv, hook_library(silent), env);
	cr_assert_eq(r.status, 1, "exit %d: %s%s", r.status, r.out, r.err);
	program_result_free(&r);
}

Test(workloads, python_workload_output_unchanged_by_the_memtable, .timeout = 120)
{
	char *argv[] = { "/usr/bin/python3", (char *)script("churn.py"), "--ops", "20000", NULL };
	const char *env[] = { "PYTHONMALLOC=malloc", NULL };
	struct program_result plain = run_program(argv, NULL, env);
	struct program_result hooked = run_program(argv, hook_library("memtable"), env);
	cr_assert_eq(plain.status, 0, "%s", plain.err);
	cr_assert_eq(hooked.status, 0, "%s", hooked.err);
	cr_assert_str_eq(plain.out, hooked.out);
	program_result_free(&plain);
	program_result_free(&hooked);
}
