/* test_trace.c - heap traces: record, replay, bad traces; and scale.
 *
 * Everything runs as child processes of the built command
 * (build/bin/heapindex, found through $HEAPINDEX_ROOT), started with
 * posix_spawn by tests/support.c: the runner itself is never preloaded.
 * Bad traces are written by hand from trace_format.h, so each failure mode
 * is exact; the real ones come from recording alloc_semantics (every
 * allocator entry point), a shell that runs children, and Python forking.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"
#include "../workloads/trace/trace_reader.h"

/* --- a scratch directory per test -------------------------------------------------- */

static char dir[256];

static void make_dir(void)
{
	snprintf(dir, sizeof dir, "/tmp/heapindex-test-trace-XXXXXX");
	cr_assert_not_null(mkdtemp(dir), "mkdtemp failed");
}

static void remove_dir(void)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	const struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char path[600];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

TestSuite(trace, .init = make_dir, .fini = remove_dir, .timeout = 60);

static const char *in_dir(const char *name)
{
	static char paths[4][600];
	static int next;
	char *p = paths[next++ % 4];
	snprintf(p, sizeof paths[0], "%s/%s", dir, name);
	return p;
}

static const char *heapindex(void)
{
	static char path[4096];
	snprintf(path, sizeof path, "%s/build/bin/heapindex", repo_root());
	cr_assert_eq(access(path, X_OK), 0, "%s is not built: run make", path);
	return path;
}

static const char *test_program(const char *name)
{
	static char path[4096];
	snprintf(path, sizeof path, "%s/build/tests/progs/%s", repo_root(), name);
	cr_assert_eq(access(path, X_OK), 0, "%s is not built: run make", path);
	return path;
}

static size_t count_lines(const char *text)
{
	size_t n = 0;
	for (; text && *text; text++)
		n += *text == '\n';
	return n;
}

/* Run heapindex with args (NULL-terminated). */
static struct program_result run(const char *const *args, const char *const env[])
{
	char *argv[32] = { (char *)heapindex() };
	size_t n = 1;
	for (; args[n - 1]; n++) {
		cr_assert_lt(n, 31);
		argv[n] = (char *)args[n - 1];
	}
	argv[n] = NULL;
	return run_program(argv, NULL, env);
}

/* --- reading traces ------------------------------------------------------------------ */

struct loaded {
	struct trace_header h;
	struct trace_record *rec;
	size_t file_bytes;
};

static struct loaded load(const char *path)
{
	struct loaded t = { 0 };
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "no trace %s", path);
	cr_assert_eq(fread(&t.h, sizeof t.h, 1, f), 1, "%s: no header", path);
	t.rec = calloc(t.h.record_count + 1, sizeof *t.rec);
	cr_assert_not_null(t.rec);
	cr_assert_eq(fread(t.rec, sizeof *t.rec, t.h.record_count, f), t.h.record_count,
	             "%s: fewer records than the header says", path);
	struct stat st;
	cr_assert_eq(fstat(fileno(f), &st), 0);
	t.file_bytes = (size_t)st.st_size;
	fclose(f);
	return t;
}

static size_t count_op(const struct loaded *t, unsigned op)
{
	size_t n = 0;
	for (uint64_t i = 0; i < t->h.record_count; i++)
		n += trace_op(&t->rec[i]) == op;
	return n;
}

/* --- writing traces by hand ------------------------------------------------------------ */

static struct trace_header header(uint64_t records)
{
	struct trace_header h = { .version = TRACE_VERSION, .header_bytes = TRACE_HEADER_BYTES,
	                          .record_bytes = TRACE_RECORD_BYTES, .pointer_bytes = sizeof(void *),
	                          .flags = TRACE_FLAG_FINISHED, .pid = 1, .record_count = records };
	memcpy(h.magic, TRACE_MAGIC, 8);
	memcpy(h.exe, "handmade", 8);
	return h;
}

static struct trace_record record(unsigned op, uint64_t addr, uint64_t size)
{
	return (struct trace_record){ .addr = addr, .size_op = trace_pack_size_op(size, op, 4),
	                              .site = 0x401000, .tid = 1 };
}

/* A valid little trace: malloc, calloc, realloc as remove + insert, free. */
static const struct trace_record *good_records(size_t *n)
{
	static struct trace_record r[6];
	r[0] = record(TRACE_OP_MALLOC, 0x10000, 100);
	r[1] = record(TRACE_OP_CALLOC, 0x20000, 0);
	r[2] = record(TRACE_OP_REALLOC_OLD, 0x10000, 100);
	r[3] = record(TRACE_OP_REALLOC, 0x30000, 5000);
	r[4] = record(TRACE_OP_FREE, 0x20000, 0);
	r[5] = record(TRACE_OP_MALLOC, 0x10000, 24);
	*n = 6;
	return r;
}

/* Write header h, then the records, then cut the file to bytes (0: no cut). */
static const char *write_trace(const char *name, struct trace_header h,
                               const struct trace_record *r, size_t n, size_t bytes)
{
	const char *path = in_dir(name);
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(&h, sizeof h, 1, f), 1);
	if (n)
		cr_assert_eq(fwrite(r, sizeof *r, n, f), n);
	cr_assert_eq(fclose(f), 0);
	if (bytes)
		cr_assert_eq(truncate(path, (off_t)bytes), 0);
	return path;
}

/* replay of path must fail with exit 2 and exactly one line mentioning what. */
static void expect_bad_trace(const char *path, const char *what, const char *offset)
{
	const char *args[] = { "replay", path, "--index", "all", NULL };
	struct program_result r = run(args, NULL);
	cr_expect_eq(r.status, 2, "replay %s: exit %d, expected 2; stderr: %s", path, r.status, r.err);
	cr_expect_eq(count_lines(r.err), 1, "replay %s: expected one error line, got: %s", path, r.err);
	cr_expect_not_null(strstr(r.err, what), "replay %s: error does not say '%s': %s", path, what, r.err);
	cr_expect_not_null(strstr(r.err, offset), "replay %s: error does not name '%s': %s", path, offset, r.err);
	cr_expect_eq(r.out_len, 0, "replay %s printed results: %s", path, r.out);
	program_result_free(&r);
}

/* --- record and replay a real program ----------------------------------------------------- */

static void replay_all_ok(const char *path)
{
	const char *args[] = { "replay", path, "--index", "all", "--lookups", "3", "--rounds", "2", NULL };
	struct program_result r = run(args, NULL);
	cr_assert_eq(r.status, 0, "replay %s: exit %d: %s", path, r.status, r.err);
	/* A header line, the column line, then one row per index. */
	cr_expect_geq(count_lines(r.out), 4, "replay output: %s", r.out);
	cr_expect_not_null(strstr(r.out, "memtable"), "no memtable row: %s", r.out);
	const char *line = strstr(r.out, "\nmemtable");
	cr_expect(line && strstr(line, "yes"), "memtable's lookups were not checked: %s", r.out);
	program_result_free(&r);
}

Test(trace, record_and_replay_every_entry_point)
{
	const char *trace = in_dir("as.trace");
	const char *args[] = { "record", "-o", trace, "--", test_program("alloc_semantics"), NULL };
	struct program_result r = run(args, NULL);
	cr_assert_eq(r.status, 0, "record: exit %d: %s", r.status, r.err);
	cr_expect_not_null(strstr(r.err, "events"), "no summary: %s", r.err);

	struct loaded t = load(trace);
	cr_expect_eq(memcmp(t.h.magic, TRACE_MAGIC, 8), 0);
	cr_expect_eq(t.h.version, TRACE_VERSION);
	cr_expect(t.h.flags & TRACE_FLAG_FINISHED, "the destructor did not finish the trace");
	cr_expect_eq(t.file_bytes, TRACE_HEADER_BYTES + t.h.record_count * TRACE_RECORD_BYTES,
	             "the file is not trimmed to its records");
	cr_expect_str_eq(t.h.exe, "alloc_semantics");
	cr_expect_gt(t.h.record_count, 50);
	/* Entry points alloc_semantics calls, each before a successful call of
	 * another kind so the label is unambiguous (see README.md). */
	unsigned ops[] = { TRACE_OP_MALLOC, TRACE_OP_CALLOC, TRACE_OP_REALLOC, TRACE_OP_REALLOC_OLD,
	                   TRACE_OP_MEMALIGN, TRACE_OP_POSIX_MEMALIGN, TRACE_OP_ALIGNED_ALLOC,
	                   TRACE_OP_PVALLOC, TRACE_OP_FREE, TRACE_OP_REALLOC_FREE };
	for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
		cr_expect_gt(count_op(&t, ops[i]), 0, "no %s record", trace_op_name(ops[i]));
	int aligned = 0;
	for (uint64_t i = 0; i < t.h.record_count; i++) {
		cr_expect_eq(t.rec[i].tid, t.h.pid, "record %lu: tid %u in a one-thread program",
		             (unsigned long)i, t.rec[i].tid);
		aligned |= trace_align_log2(&t.rec[i]) >= 12;
	}
	cr_expect(aligned, "no page-aligned chunk recorded");
	free(t.rec);
	program_result_free(&r);

	replay_all_ok(trace);
}

Test(trace, children_get_their_own_files)
{
	const char *trace = in_dir("sh.trace");
	char script[4200];
	snprintf(script, sizeof script, "%s >/dev/null; %s >/dev/null", test_program("alloc_semantics"),
	         test_program("alloc_semantics"));
	const char *args[] = { "record", "-o", trace, "--", "/bin/sh", "-c", script, NULL };
	struct program_result r = run(args, NULL);
	cr_assert_eq(r.status, 0, "record: exit %d: %s", r.status, r.err);
	program_result_free(&r);

	size_t children = 0;
	DIR *d = opendir(dir);
	const struct dirent *e;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "sh.trace.", 9))
			continue;
		const char *path = in_dir(e->d_name);
		struct loaded t = load(path);
		if (strcmp(t.h.exe, "alloc_semantics") == 0) {
			children++;
			replay_all_ok(path);
		}
		free(t.rec);
	}
	closedir(d);
	cr_expect_eq(children, 2, "expected a trace from each of the 2 children, found %zu", children);

	/* --no-children: the shell's own process only, though the program it
	 * execs in that same process at the end (dash does) is recorded too. */
	const char *only = in_dir("top.trace");
	const char *args2[] = { "record", "--no-children", "-o", only, "--", "/bin/sh", "-c", script, NULL };
	r = run(args2, NULL);
	cr_assert_eq(r.status, 0, "record --no-children: exit %d: %s", r.status, r.err);
	program_result_free(&r);
	struct loaded top = load(only);
	free(top.rec);
	d = opendir(dir);
	size_t files = 0;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "top.trace", 9))
			continue;
		struct loaded t = load(in_dir(e->d_name));
		cr_expect_eq(t.h.pid, top.h.pid, "%s is from pid %u, not the top process %u", e->d_name,
		             t.h.pid, top.h.pid);
		free(t.rec);
		files++;
	}
	closedir(d);
	cr_expect_leq(files, 2, "--no-children left %zu files", files);
}

Test(trace, fork_child_starts_with_its_inherited_heap)
{
	if (access("/usr/bin/python3", X_OK))
		cr_skip_test("no /usr/bin/python3");
	const char *trace = in_dir("py.trace");
	const char *code =
		"import os\n"
		"keep = [bytearray(100 + i) for i in range(200)]\n"
		"pid = os.fork()\n"
		"if pid == 0:\n"
		"    del keep[:100]\n"
		"    more = [bytearray(50) for i in range(50)]\n"
		"    os._exit(0)\n"
		"os.waitpid(pid, 0)\n";
	const char *args[] = { "record", "-o", trace, "--", "/usr/bin/python3", "-c", code, NULL };
	const char *env[] = { "PYTHONMALLOC=malloc", NULL };
	struct program_result r = run(args, env);
	cr_assert_eq(r.status, 0, "record: exit %d: %s", r.status, r.err);
	cr_expect_not_null(strstr(r.err, "fork child"), "no fork child trace: %s", r.err);
	program_result_free(&r);

	size_t forked = 0;
	DIR *d = opendir(dir);
	const struct dirent *e;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "py.trace.", 9))
			continue;
		const char *path = in_dir(e->d_name);
		struct loaded t = load(path);
		if (t.h.flags & TRACE_FLAG_FORKED) {
			forked++;
			cr_expect_gt(count_op(&t, TRACE_OP_INHERITED), 200, "too few inherited chunks");
			cr_expect_eq(trace_op(&t.rec[0]), TRACE_OP_INHERITED);
			cr_expect(!(t.h.flags & TRACE_FLAG_FINISHED), "os._exit ran destructors?");
			/* The child frees inherited chunks: replay must know them. */
			replay_all_ok(path);
		}
		free(t.rec);
	}
	closedir(d);
	cr_expect_eq(forked, 1);
	replay_all_ok(trace);
}

/* --- bad traces ------------------------------------------------------------------------ */

Test(trace, handmade_trace_replays)
{
	size_t n;
	const struct trace_record *r = good_records(&n);
	replay_all_ok(write_trace("good.trace", header(n), r, n, 0));
}

Test(trace, truncated_record)
{
	size_t n;
	const struct trace_record *r = good_records(&n);
	/* Cut in the middle of record 3. */
	const char *path = write_trace("cut.trace", header(n), r, n, TRACE_HEADER_BYTES + 3 * 32 + 10);
	expect_bad_trace(path, "truncated record 3", "byte offset 224");
}

Test(trace, record_count_mismatch)
{
	size_t n;
	const struct trace_record *r = good_records(&n);
	expect_bad_trace(write_trace("short.trace", header(n + 2), r, n, 0), "record count mismatch",
	                 "byte offset 320");
	/* Record 5 starts at 288; its first non-zero byte (0x10000) is at 290. */
	expect_bad_trace(write_trace("long.trace", header(n - 1), r, n, 0), "record count mismatch",
	                 "byte offset 290");
}

Test(trace, truncated_header)
{
	expect_bad_trace(write_trace("header.trace", header(0), NULL, 0, 40), "truncated header",
	                 "byte offset 40");
}

Test(trace, bad_magic)
{
	size_t n;
	const struct trace_record *r = good_records(&n);
	struct trace_header h = header(n);
	memcpy(h.magic, "GIF89a\1\2", 8);
	expect_bad_trace(write_trace("magic.trace", h, r, n, 0), "bad magic", "byte offset 0");
}

Test(trace, bad_version)
{
	size_t n;
	const struct trace_record *r = good_records(&n);
	struct trace_header h = header(n);
	h.version = 99;
	expect_bad_trace(write_trace("version.trace", h, r, n, 0), "version 99", "byte offset 8");
}

Test(trace, free_of_unknown_address)
{
	size_t n;
	const struct trace_record *good = good_records(&n);
	struct trace_record r[8];
	memcpy(r, good, n * sizeof *r);
	r[n] = record(TRACE_OP_FREE, 0x10000, 24);  /* fine: record 5 made it */
	r[n + 1] = record(TRACE_OP_FREE, 0x20000, 0); /* already freed by record 4 */
	expect_bad_trace(write_trace("unknown.trace", header(n + 2), r, n + 2, 0),
	                 "free of unknown address 0x20000", "byte offset 352");
}

Test(trace, insert_while_live_and_size_changed)
{
	size_t n;
	const struct trace_record *good = good_records(&n);
	struct trace_record r[6];
	memcpy(r, good, n * sizeof *r);
	r[3] = record(TRACE_OP_REALLOC, 0x20000, 5000); /* record 1's chunk, still live */
	expect_bad_trace(write_trace("again.trace", header(n), r, n, 0),
	                 "0x20000 is inserted again while live (inserted by record 1)", "byte offset 224");
	r[3] = good[3];
	r[4] = record(TRACE_OP_FREE, 0x20000, 8); /* made with size 0 */
	expect_bad_trace(write_trace("resized.trace", header(n), r, n, 0), "has size 8 and alignment 2^4 here",
	                 "byte offset 264");
}

/* The reader is a library (workloads/trace/trace_reader.h): a bad trace is an
 * error returned with its offset, and the caller goes on. */
Test(trace, reader_returns_errors_in_process)
{
	size_t n;
	const struct trace_record *good = good_records(&n);
	static unsigned char buf[TRACE_HEADER_BYTES + 8 * TRACE_RECORD_BYTES];
	struct trace_header h = header(n);
	memcpy(buf, &h, sizeof h);
	memcpy(buf + TRACE_HEADER_BYTES, good, n * sizeof *good);
	struct trace_error e;
	for (int round = 0; round < 2; round++) {
		struct trace t = { .path = "buffer", .map = buf, .map_len = TRACE_HEADER_BYTES + n * TRACE_RECORD_BYTES };
		cr_assert_eq(trace_check_header(&t, &e), 0, "%s", e.msg);
		cr_assert_eq(trace_check_records(&t, &e), 0, "%s", e.msg);
		cr_expect_eq(t.count, n);
		cr_expect_eq(t.inserts, 4);
		cr_expect_eq(t.removes, 2);
		cr_expect_eq(t.peak_live, 2);
		cr_expect_eq(t.end_live, 2);
		cr_expect_eq(t.partner[2], 0, "the realloc's old chunk is record 0's");
		cr_expect_eq(t.partner[4], 1, "the free is of record 1's chunk");
		cr_expect_eq(t.partner[5], UINT32_MAX);
		trace_close(&t);

		/* A free of a chunk already freed: record 6, at its offset. */
		struct trace_record again = record(TRACE_OP_FREE, 0x20000, 0);
		memcpy(buf + TRACE_HEADER_BYTES + n * TRACE_RECORD_BYTES, &again, sizeof again);
		h.record_count = n + 1;
		memcpy(buf, &h, sizeof h);
		t = (struct trace){ .path = "buffer", .map = buf, .map_len = TRACE_HEADER_BYTES + (n + 1) * TRACE_RECORD_BYTES };
		cr_assert_eq(trace_check_header(&t, &e), 0, "%s", e.msg);
		cr_assert_eq(trace_check_records(&t, &e), -1);
		cr_expect_eq(e.offset, TRACE_HEADER_BYTES + n * TRACE_RECORD_BYTES);
		cr_expect(strstr(e.msg, "free of unknown address 0x20000"), "%s", e.msg);
		cr_expect_null(strchr(e.msg, '\n'), "%s", e.msg);
		trace_close(&t);
		h.record_count = n;
		memcpy(buf, &h, sizeof h);
		memset(buf + TRACE_HEADER_BYTES + n * TRACE_RECORD_BYTES, 0, TRACE_RECORD_BYTES);
	}
	struct trace t;
	cr_assert_eq(trace_open(&t, "/nonexistent/heapindex.trace", &e), -1);
	cr_expect_eq(e.offset, TRACE_NO_OFFSET);
	cr_expect(strstr(e.msg, "cannot open /nonexistent/heapindex.trace"), "%s", e.msg);
}

Test(trace, garbage_record)
{
	size_t n;
	const struct trace_record *good = good_records(&n);
	struct trace_record r[6];
	memcpy(r, good, n * sizeof *r);
	r[2].size_op = trace_pack_size_op(100, 77, 4);
	expect_bad_trace(write_trace("op.trace", header(n), r, n, 0), "unknown op 77", "byte offset 206");
	r[2] = good[2];
	r[3].reserved = 0xdeadbeef;
	expect_bad_trace(write_trace("reserved.trace", header(n), r, n, 0), "reserved bits",
	                 "byte offset 240");
}

Test(trace, bad_options_are_one_line)
{
	const char *cases[][6] = {
		{ "replay", NULL },
		{ "replay", "x.trace", "--lookups", "lots", NULL },
		{ "replay", "x.trace", "--index", "nosuch", NULL },
		{ "replay", "x.trace", "--bogus", NULL },
		{ "record", "--", "true", NULL },
		{ "record", "-o", NULL },
		{ "scale", "--max-chunks", "5", NULL },
		{ "scale", "--index", "nosuch", NULL },
		{ "scale", "--frobnicate", NULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct program_result r = run(cases[i], NULL);
		cr_expect_eq(r.status, 2, "heapindex %s %s: exit %d", cases[i][0], cases[i][1] ? cases[i][1] : "",
		             r.status);
		cr_expect_eq(count_lines(r.err), 1, "heapindex %s %s: %s", cases[i][0],
		             cases[i][1] ? cases[i][1] : "", r.err);
		program_result_free(&r);
	}
}

/* --- scale ------------------------------------------------------------------------------ */

Test(trace, scale_writes_csv)
{
	const char *csv = in_dir("scale.csv");
	const char *args[] = { "scale", "--max-chunks", "1000", "--lookups", "2000", "--budget", "0.05",
		               "--out", csv, NULL };
	struct program_result r = run(args, NULL);
	cr_assert_eq(r.status, 0, "scale: exit %d: %s", r.status, r.err);
	cr_expect_not_null(strstr(r.out, "memtable"), "no table: %s", r.out);
	FILE *f = fopen(csv, "r");
	cr_assert_not_null(f);
	char line[512];
	cr_assert_not_null(fgets(line, sizeof line, f));
	/* The cache's hit rate is the last column, empty with the cache off. */
	cr_expect_str_eq(line, "index,live_chunks,heap_bytes,lookup_hit_ns,lookup_miss_ns,insert_ns,"
	                       "remove_ns,chase_ns,hit_ratio_to_chase,lookup_cache_hit_rate\n");
	size_t rows = 0;
	while (fgets(line, sizeof line, f)) {
		rows++;
		cr_expect_not_null(strstr(line, ",1000,"), "row without 1000 chunks: %s", line);
		size_t len = strlen(line);
		cr_expect(len >= 2 && strcmp(line + len - 2, ",\n") == 0, "a cache hit rate with the cache off: %s", line);
	}
	cr_expect_null(strstr(r.out, "lookup cache"), "a cache hit rate with the cache off: %s", r.out);
	fclose(f);
	cr_expect_geq(rows, 2, "expected a row per index");
	program_result_free(&r);
}

/* With HEAPINDEX_LOOKUP_CACHE the lookups go through the shared cache: the
 * table gives its hit rate (the CSV keeps the columns the report reads),
 * which for an index that reads headers is above 0 on 1,000 chunks (the
 * probes are seeded, so the figure repeats), and 0 for critnib, which
 * never fills the cache. */
static double table_cache_rate(const char *out, const char *index)
{
	char start[32];
	snprintf(start, sizeof start, "\n%s ", index);
	const char *row = strstr(out, start);
	cr_assert_not_null(row, "no %s row: %s", index, out);
	const char *at = strstr(row, "(lookup cache: ");
	cr_assert(at && at < strchr(row + 1, '\n'), "no hit rate in %s's row: %s", index, out);
	return strtod(at + strlen("(lookup cache: "), NULL);
}

Test(trace, scale_reports_the_lookup_cache)
{
	const char *args[] = { "scale", "--index", "memtable,critnib", "--max-chunks", "1000", "--lookups",
		               "20000", "--budget", "0.5", NULL };
	const char *env[] = { "HEAPINDEX_LOOKUP_CACHE=1024", NULL };
	struct program_result r = run(args, env);
	cr_assert_eq(r.status, 0, "scale: exit %d: %s", r.status, r.err);
	double memtable = table_cache_rate(r.out, "memtable"), critnib = table_cache_rate(r.out, "critnib");
	cr_expect(memtable > 0 && memtable < 100, "memtable's cache answered %g%%: %s", memtable, r.out);
	cr_expect(critnib == 0, "critnib's cache answered %g%%: %s", critnib, r.out);
	program_result_free(&r);
}

/* The anchors: gcbase (Boehm GC_base) answers hits, and the base only, so its
 * miss, insert and remove fields are empty; critnib is an index like any. */
Test(trace, scale_anchors)
{
	const char *csv = in_dir("anchors.csv");
	const char *args[] = { "scale", "--index", "gcbase,critnib", "--max-chunks", "1000", "--lookups",
		               "2000", "--budget", "0.05", "--out", csv, NULL };
	struct program_result r = run(args, NULL);
	cr_assert_eq(r.status, 0, "scale: exit %d: %s", r.status, r.err);
	cr_expect_not_null(strstr(r.out, "base only"), "the table does not say what gcbase answers: %s",
	                   r.out);
	FILE *f = fopen(csv, "r");
	cr_assert_not_null(f);
	char line[512], name[32];
	double hit, chase, ratio;
	int seen_gcbase = 0, seen_critnib = 0;
	cr_assert_not_null(fgets(line, sizeof line, f));
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "gcbase,", 7) == 0) {
			cr_expect_eq(sscanf(line, "gcbase,1000,%*u,%lf,,,,%lf,%lf", &hit, &chase, &ratio), 3,
			             "gcbase row: %s", line);
			cr_expect_gt(hit, 0);
			seen_gcbase++;
		} else {
			cr_expect_eq(sscanf(line, "%31[^,],1000,%*u,%lf,%*f,%*f,%*f,%lf,%lf", name, &hit, &chase,
			                    &ratio), 4, "index row: %s", line);
			cr_expect_str_eq(name, "critnib");
			seen_critnib++;
		}
	}
	fclose(f);
	cr_expect_eq(seen_gcbase, 1);
	cr_expect_eq(seen_critnib, 1);
	program_result_free(&r);
}

/* The heap_bytes of the first CSV row of path, and the names of its rows
 * in order, comma-separated, into names. */
static unsigned long long scale_csv_rows(const char *path, char *names, size_t len)
{
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "no %s", path);
	char line[512], name[32];
	unsigned long long bytes = 0, b;
	*names = 0;
	cr_assert_not_null(fgets(line, sizeof line, f));
	while (fgets(line, sizeof line, f)) {
		cr_assert_eq(sscanf(line, "%31[^,],1000,%llu,", name, &b), 2, "row: %s", line);
		cr_expect(!bytes || b == bytes, "rows of one step with different heaps: %s", line);
		bytes = b;
		snprintf(names + strlen(names), len - strlen(names), "%s%s", *names ? "," : "", name);
	}
	fclose(f);
	return bytes;
}

/* HEAPINDEX_META=side: the indexes that take it are measured, on chunks
 * that carry nothing (the heap is 16 bytes a chunk smaller than header's,
 * from the same seed), bytemap left out with a line; every answer is
 * checked, the size of the memtable's against malloc_usable_size, which
 * the table says. */
Test(trace, scale_under_side)
{
	const char *side_csv = in_dir("side.csv"), *header_csv = in_dir("header.csv");
	const char *args[] = { "scale", "--index", "memtable,bytemap,bitmap,critnib,gcbase", "--max-chunks", "1000",
		               "--lookups", "2000", "--budget", "0.05", "--out", side_csv, NULL };
	const char *side_env[] = { "HEAPINDEX_META=side", NULL }, *header_env[] = { "HEAPINDEX_META=header", NULL };
	struct program_result r = run(args, side_env);
	cr_assert_eq(r.status, 0, "scale under side: exit %d: %s", r.status, r.err);
	cr_expect_not_null(strstr(r.err, "bytemap left out: it does not take HEAPINDEX_META=side"), "%s", r.err);
	cr_expect_null(strstr(r.err, "memtable left out"), "%s", r.err);
	const char *row = strstr(r.out, "\nmemtable ");
	cr_assert_not_null(row, "no memtable row: %s", r.out);
	cr_expect(strstr(row, "base,usable size") && strstr(row, "base,usable size") < strchr(row + 1, '\n'),
	          "the memtable's row does not say it answers the usable size: %s", r.out);
	row = strstr(r.out, "\ncritnib ");
	cr_assert_not_null(row, "no critnib row: %s", r.out);
	cr_expect(strstr(row, "base,size") && strstr(row, "base,size") < strchr(row + 1, '\n'),
	          "critnib's row does not say it answers the size: %s", r.out);
	program_result_free(&r);
	char names[256];
	unsigned long long side_bytes = scale_csv_rows(side_csv, names, sizeof names);
	cr_expect_str_eq(names, "memtable,bitmap,critnib,gcbase");

	args[10] = header_csv;
	r = run(args, header_env);
	cr_assert_eq(r.status, 0, "scale under header: exit %d: %s", r.status, r.err);
	program_result_free(&r);
	unsigned long long header_bytes = scale_csv_rows(header_csv, names, sizeof names);
	cr_expect_str_eq(names, "memtable,bytemap,bitmap,critnib,gcbase");
	cr_expect_eq(header_bytes - side_bytes, 1000ull * 16, "heap bytes: header %llu, side %llu", header_bytes,
	             side_bytes);
}

/* A placement no index given takes: one line naming those that do. */
Test(trace, scale_placement_without_takers)
{
	const char *args[] = { "scale", "--index", "bytemap,vghash", "--max-chunks", "1000", NULL };
	const char *env[] = { "HEAPINDEX_META=side", NULL };
	struct program_result r = run(args, env);
	cr_expect_eq(r.status, 2, "exit %d: %s", r.status, r.err);
	cr_expect_eq(count_lines(r.err), 1, "%s", r.err);
	cr_expect_not_null(strstr(r.err, "no index given takes HEAPINDEX_META=side: expected some of memtable"),
	                   "%s", r.err);
	program_result_free(&r);
}
