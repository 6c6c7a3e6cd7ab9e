/* record.c - `heapindex record`: run a command with the recording library
 * preloaded and write a heap trace of every process of its tree.
 *
 * The recording happens in libheapindex-record.so (the shared hooks with
 * workloads/trace/record_index.c as their index); this command sets it up,
 * runs the command, then tidies and summarises the files it left: FILE for
 * the command's own process, FILE.<pid> for each other process.
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../workloads/trace/trace_format.h"

static const char record_usage[] =
	"usage: heapindex record -o FILE [--no-children] [--] COMMAND [ARGS...]\n"
	"\n"
	"Run COMMAND with libheapindex-record.so preloaded and write a heap trace:\n"
	"every chunk the shared hooks put in or take out of the heap, with op, size,\n"
	"alignment, address, allocation site and thread id.  `heapindex replay FILE`\n"
	"plays it back against the indexes.  Format: workloads/trace/README.md.\n"
	"\n"
	"  -o, --output FILE  the command's own process writes FILE; every other\n"
	"                     process of its tree writes FILE.<pid> (FILE.<pid>.<n>\n"
	"                     for a later program exec'd in the same process).  Old\n"
	"                     files of those names are removed first.\n"
	"  --no-children      record the command's own process only\n"
	"  -h, --help         this text\n"
	"\n"
	"A summary of the files goes to stderr.  The exit status is the command's\n"
	"(128+N if a signal N killed it).\n";

struct record_options {
	const char *output;
	int children;
	char **command;
};

static void parse_options(int argc, char **argv, struct record_options *o)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "no-children", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	o->output = NULL;
	o->children = 1;
	int opt;
	opterr = 0;
	/* '+': stop at the command, so its own options stay its own. */
	while ((opt = getopt_long(argc, argv, "+:ho:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'o': o->output = optarg; break;
		case 'n': o->children = 0; break;
		case 'h': fputs(record_usage, stdout); exit(0);
		default: cli_bad_option("record", argv, opt);
		}
	}
	if (!o->output || !*o->output)
		cli_usage_error("record: no output file (usage: heapindex record -o FILE [--] COMMAND [ARGS...])");
	if (optind >= argc)
		cli_usage_error("record: no command given (usage: heapindex record -o FILE [--] COMMAND [ARGS...])");
	o->command = argv + optind;
}

/* --- the trace files of one recording --------------------------------------- */

struct trace_files {
	char dir[4096];
	char base[1024]; /* file name of FILE within dir */
	char **names;
	size_t count;
};

/* 1 if name is base or base.<digits> or base.<digits>.<digits>. */
static int is_trace_name(const char *name, const char *base)
{
	size_t n = strlen(base);
	if (strncmp(name, base, n) != 0)
		return 0;
	const char *s = name + n;
	for (int part = 0; part < 2 && *s; part++) {
		if (*s++ != '.' || !(*s >= '0' && *s <= '9'))
			return 0;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return *s == '\0';
}

/* The suffix numbers of a trace name, for sorting: FILE first, then by pid. */
static void suffix_numbers(const char *name, size_t base_len, unsigned long long *pid,
                           unsigned long long *n)
{
	*pid = *n = 0;
	char *s = (char *)name + base_len;
	if (*s == '.')
		*pid = strtoull(s + 1, &s, 10);
	if (*s == '.')
		*n = strtoull(s + 1, NULL, 10);
}

static size_t sort_base_len;

static int compare_names(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	unsigned long long xp, xn, yp, yn;
	suffix_numbers(x, sort_base_len, &xp, &xn);
	suffix_numbers(y, sort_base_len, &yp, &yn);
	if (xp != yp)
		return xp < yp ? -1 : 1;
	return xn < yn ? -1 : xn > yn;
}

static void find_traces(struct trace_files *t)
{
	DIR *d = opendir(t->dir);
	if (!d)
		cli_usage_error("record: cannot read directory %s: %s", t->dir, strerror(errno));
	t->names = NULL;
	t->count = 0;
	size_t cap = 0;
	const struct dirent *e;
	while ((e = readdir(d))) {
		if (!is_trace_name(e->d_name, t->base))
			continue;
		if (t->count == cap) {
			cap = cap ? cap * 2 : 16;
			char **grown = realloc(t->names, cap * sizeof *grown);
			if (!grown)
				cli_usage_error("record: out of memory");
			t->names = grown;
		}
		t->names[t->count] = strdup(e->d_name);
		if (!t->names[t->count])
			cli_usage_error("record: out of memory");
		t->count++;
	}
	closedir(d);
	sort_base_len = strlen(t->base);
	if (t->count)
		qsort(t->names, t->count, sizeof *t->names, compare_names);
}

static void free_traces(struct trace_files *t)
{
	for (size_t i = 0; i < t->count; i++)
		free(t->names[i]);
	free(t->names);
	t->names = NULL;
	t->count = 0;
}

/* Split the absolute form of path into directory and file name. */
static void locate_output(const char *path, struct trace_files *t)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		cli_usage_error("record: -o %s names a directory, not a file", path);
	if (strlen(name) >= sizeof t->base - 32)
		cli_usage_error("record: -o %s: the file name is too long", path);
	snprintf(t->base, sizeof t->base, "%s", name);
	char dir[4096];
	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else if (slash == path)
		snprintf(dir, sizeof dir, "/");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	if (!realpath(dir, t->dir))
		cli_usage_error("record: -o %s: directory %s: %s", path, dir, strerror(errno));
	if (access(t->dir, W_OK | X_OK))
		cli_usage_error("record: -o %s: cannot write in %s: %s", path, t->dir, strerror(errno));
}

static void full_path(const struct trace_files *t, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s%s%s", t->dir, strcmp(t->dir, "/") ? "/" : "", name);
}

struct trace_summary {
	struct trace_header h;
	uint64_t inserts, removes, bytes;
	int valid;
};

/* Read one file's header, trim the zero tail a process that stopped without
 * its destructors left behind, and count its ops. */
static void summarise(const char *path, struct trace_summary *s)
{
	memset(s, 0, sizeof *s);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st)) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if (pread(fd, &s->h, sizeof s->h, 0) != (ssize_t)sizeof s->h ||
	    memcmp(s->h.magic, TRACE_MAGIC, 8) != 0 || s->h.record_bytes != TRACE_RECORD_BYTES ||
	    s->h.header_bytes != TRACE_HEADER_BYTES) {
		close(fd);
		return;
	}
	uint64_t end = TRACE_HEADER_BYTES + s->h.record_count * TRACE_RECORD_BYTES;
	if ((uint64_t)st.st_size > end) {
		/* The tail must be zeros the recorder preallocated: only then trim. */
		int zero = 1;
		char buf[65536];
		for (uint64_t at = end; zero && at < (uint64_t)st.st_size;) {
			ssize_t n = pread(fd, buf, sizeof buf, (off_t)at);
			if (n <= 0)
				break;
			for (ssize_t i = 0; i < n && zero; i++)
				zero = !buf[i];
			at += (uint64_t)n;
		}
		if (zero && ftruncate(fd, (off_t)end) == 0)
			st.st_size = (off_t)end;
	}
	s->bytes = (uint64_t)st.st_size;
	if ((uint64_t)st.st_size >= end && s->h.record_count) {
		void *map = mmap(NULL, end, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map != MAP_FAILED) {
			const struct trace_record *r =
				(const struct trace_record *)((const char *)map + TRACE_HEADER_BYTES);
			for (uint64_t i = 0; i < s->h.record_count; i++) {
				if (trace_op_is_insert(trace_op(&r[i])))
					s->inserts++;
				else
					s->removes++;
			}
			munmap(map, end);
		}
	}
	s->valid = 1;
	close(fd);
}

static void remove_old_traces(struct trace_files *t)
{
	find_traces(t);
	for (size_t i = 0; i < t->count; i++) {
		char path[8192];
		full_path(t, t->names[i], path, sizeof path);
		if (unlink(path) && errno != ENOENT)
			cli_usage_error("record: cannot remove the old trace %s: %s", path, strerror(errno));
	}
	free_traces(t);
}

static void set_top_pid(void *arg)
{
	(void)arg;
	char pid[32];
	snprintf(pid, sizeof pid, "%ld", (long)getpid());
	setenv("HEAPINDEX_TRACE_PID", pid, 1);
}

int cmd_record(int argc, char **argv)
{
	struct record_options o;
	parse_options(argc, argv, &o);

	char lib[4096];
	snprintf(lib, sizeof lib, "%s/libheapindex-record.so", cli_lib_dir());
	if (access(lib, R_OK))
		cli_usage_error("record: %s is missing: run make first", lib);

	static struct trace_files t;
	locate_output(o.output, &t);
	char top[8192];
	full_path(&t, t.base, top, sizeof top);
	remove_old_traces(&t);

	setenv("HEAPINDEX_TRACE", top, 1);
	setenv("HEAPINDEX_TRACE_CHILDREN", o.children ? "1" : "0", 1);
	unsetenv("HEAPINDEX_TRACE_PID"); /* set in the child, to its pid */
	char preload[8192];
	const char *old = getenv("LD_PRELOAD");
	snprintf(preload, sizeof preload, "%s%s%s", lib, old && *old ? ":" : "", old && *old ? old : "");
	setenv("LD_PRELOAD", preload, 1);

	struct rusage ru;
	double wall;
	int status = cli_spawn("record", o.command, set_top_pid, NULL, &ru, &wall);

	find_traces(&t);
	uint64_t events = 0, bytes = 0;
	struct trace_summary *sums = calloc(t.count ? t.count : 1, sizeof *sums);
	if (!sums)
		cli_usage_error("record: out of memory");
	for (size_t i = 0; i < t.count; i++) {
		char path[8192];
		full_path(&t, t.names[i], path, sizeof path);
		summarise(path, &sums[i]);
		events += sums[i].h.record_count;
		bytes += sums[i].bytes;
	}
	fprintf(stderr, "heapindex: record: %s exited %d after %.3f s; %zu trace file%s, %llu events, %llu bytes\n",
	        o.command[0], status, wall, t.count, t.count == 1 ? "" : "s",
	        (unsigned long long)events, (unsigned long long)bytes);
	if (!t.count || strcmp(t.names[0], t.base) != 0)
		fprintf(stderr, "  (no trace from %s itself: a static binary, or it never allocated)\n", o.command[0]);
	for (size_t i = 0; i < t.count; i++) {
		const struct trace_summary *s = &sums[i];
		char path[8192];
		full_path(&t, t.names[i], path, sizeof path);
		if (!s->valid) {
			fprintf(stderr, "  %s: not a readable trace\n", path);
			continue;
		}
		char exe[sizeof s->h.exe + 1];
		memcpy(exe, s->h.exe, sizeof s->h.exe);
		exe[sizeof s->h.exe] = '\0';
		fprintf(stderr, "  %s  %s pid %u: %llu events (%llu inserts, %llu removes), %llu bytes%s%s%s\n",
		        path, exe[0] ? exe : "?", s->h.pid, (unsigned long long)s->h.record_count,
		        (unsigned long long)s->inserts, (unsigned long long)s->removes,
		        (unsigned long long)s->bytes,
		        s->h.flags & TRACE_FLAG_FORKED ? ", fork child (starts with its inherited heap)" : "",
		        s->h.flags & TRACE_FLAG_FINISHED ? "" : ", exited without destructors",
		        s->h.flags & TRACE_FLAG_FAILED ? ", INCOMPLETE: the recorder failed" : "");
	}
	free(sums);
	free_traces(&t);
	return status;
}
