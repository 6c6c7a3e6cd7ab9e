/* test_run.c - `heapindex run --stats FILE`: every line it appends is valid
 * JSON, whatever the command is called. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

/* A command whose path holds '"' and '\' (a program may be called
 * anything): the tree line must escape it, and say it back exactly. */
Test(run, stats_lines_are_json_whatever_the_command_is_called, .timeout = 60)
{
	char dir[] = "/tmp/heapindex-run-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char cmd[256], stats[256], heapindex[4200];
	snprintf(cmd, sizeof cmd, "%s/say \"hi\" \\ there", dir);
	snprintf(stats, sizeof stats, "%s/stats.jsonl", dir);
	snprintf(heapindex, sizeof heapindex, "%s/build/bin/heapindex", repo_root());
	cr_assert_eq(symlink("/bin/true", cmd), 0);

	char *argv[] = { heapindex, "run", "--stats", stats, "--", cmd, NULL };
	struct program_result r = run_program(argv, NULL, NULL);
	cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
	program_result_free(&r);

	/* Python's json module is the judge; it prints the tree's command. */
	char *check[] = { "python3", "-c",
		"import json, sys\n"
		"rows = [json.loads(line) for line in open(sys.argv[1])]\n"
		"print([row['command'] for row in rows if row['kind'] == 'tree'][0])\n",
		stats, NULL };
	r = run_program(check, NULL, NULL);
	cr_assert_eq(r.status, 0, "invalid JSON in %s: %s", stats, r.err);
	char want[300];
	snprintf(want, sizeof want, "%s\n", cmd);
	cr_assert_str_eq(r.out, want);
	program_result_free(&r);
	unlink(stats);
	unlink(cmd);
	rmdir(dir);
}
