/* index_params.c - see index_params.h. */
#include "index_params.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inproc.h"
#include "json.h"
#include "support.h"

struct criterion_test_params index_params(int with_silent)
{
	static struct index_name names[32];
	size_t n = 0;
	for (size_t i = 0; all_indexes[i] && n < sizeof names / sizeof *names; i++)
		if (with_silent || index_answers_lookups(all_indexes[i]->name))
			snprintf(names[n++].name, sizeof names[0].name, "%s", all_indexes[i]->name);
	return cr_make_param_array(struct index_name, names, n);
}

struct criterion_test_params index_meta_params(int with_noop)
{
	static struct index_meta pairs[32 * META_COUNT];
	size_t n = 0;
	for (size_t i = 0; all_indexes[i]; i++) {
		if (!with_noop && !index_answers_lookups(all_indexes[i]->name))
			continue;
		for (int m = 0; m < META_COUNT && n < sizeof pairs / sizeof *pairs; m++) {
			if (!(all_indexes[i]->caps & META_CAP(m)))
				continue;
			struct index_meta *p = &pairs[n++];
			snprintf(p->name, sizeof p->name, "%s", all_indexes[i]->name);
			snprintf(p->meta, sizeof p->meta, "%s", chunk_meta_name((enum chunk_meta)m));
			snprintf(p->setting, sizeof p->setting, "HEAPINDEX_META=%s",
			         chunk_meta_name((enum chunk_meta)m));
		}
	}
	return cr_make_param_array(struct index_meta, pairs, n);
}

unsigned index_caps(const char *index)
{
	const struct index_ops *ops = index_by_name(index);
	return ops ? ops->caps : 0;
}

int index_answers_lookups(const char *index)
{
	return (index_caps(index) & INDEX_ANSWERS_LOOKUPS) != 0;
}

const char *expect_lookup_setting(const char *index)
{
	return index_answers_lookups(index) ? "EXPECT_LOOKUP=1" : "EXPECT_LOOKUP=0";
}

const char *test_program(const char *name)
{
	static char path[4096];
	snprintf(path, sizeof path, "%s/build/tests/progs/%s", repo_root(), name);
	return path;
}

void assert_setting_rejected(const char *setting, const char *want)
{
	char *argv[] = { "sh", "-c", "echo ran", NULL };
	const char *env[] = { setting, NULL };
	struct program_result r = run_program(argv, hook_library("memtable"), env);
	cr_assert_eq(r.status, 2, "%s: exit %d", setting, r.status);
	cr_assert_str_empty(r.out, "%s: the program ran", setting);
	if (want)
		cr_assert(strstr(r.err, want), "%s: %s", setting, r.err);
	char name[64];
	snprintf(name, sizeof name, "%.*s", (int)(strchr(setting, '=') - setting), setting);
	cr_assert(strstr(r.err, name), "error does not name %s: %s", name, r.err);
	cr_assert_eq(strchr(r.err, '\n'), r.err + r.err_len - 1, "not one line: %s", r.err);
	program_result_free(&r);
}

int index_stats_json(const struct index_ops *ops, char *buf, size_t size)
{
	struct json_out j;
	json_init(&j, buf, size);
	json_open(&j, NULL);
	ops->write_stats(&j);
	json_close(&j);
	return j.overflow != 0;
}

unsigned long long index_stat(const struct index_ops *ops, const char *name)
{
	static char buf[16384];
	cr_assert_not(index_stats_json(ops, buf, sizeof buf), "%s: statistics overflow", ops->name);
	return (unsigned long long)json_stat(buf, name);
}

long long json_stat(const char *json, const char *name)
{
	char key[64];
	snprintf(key, sizeof key, "\"%s\":", name);
	const char *at = strstr(json, key);
	cr_assert_not_null(at, "no %s in %s", name, json);
	return strtoll(at + strlen(key), NULL, 10);
}

void stats_file_open(struct stats_file *f, const char *tag)
{
	snprintf(f->path, sizeof f->path, "/tmp/heapindex-test-%d-%s.jsonl", (int)getpid(), tag);
	snprintf(f->setting, sizeof f->setting, "HEAPINDEX_STATS=%s", f->path);
	unlink(f->path); /* the hooks append: no lines of an earlier run */
}

char *stats_file_read(struct stats_file *f)
{
	FILE *in = fopen(f->path, "r");
	char *text = NULL;
	size_t len = 0;
	if (in) {
		FILE *out = open_memstream(&text, &len);
		cr_assert_not_null(out);
		char buf[4096];
		size_t n;
		while ((n = fread(buf, 1, sizeof buf, in)) > 0)
			fwrite(buf, 1, n, out);
		fclose(out);
		fclose(in);
	} else {
		text = strdup("");
	}
	unlink(f->path);
	return text;
}
