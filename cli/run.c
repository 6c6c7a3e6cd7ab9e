/* run.c - `heapindex run`: run a command with an index preloaded, then
 * report what every process of its tree cost.
 *
 * The hooks in each process append one JSON line of their own statistics at
 * exit (HEAPINDEX_STATS); this command adds the tree's totals from wait4,
 * which sees the whole tree's time but only the largest process's max RSS.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "inproc.h"
#include "json.h"

static const char run_usage[] =
	"usage: heapindex run [--index NAME] [--allocator glibc|jemalloc] [--stats FILE] [--] COMMAND [ARGS...]\n"
	"\n"
	"Run COMMAND with libheapindex-NAME.so preloaded (children inherit it), then\n"
	"print one summary per process of the tree on stderr: wall/user/sys time,\n"
	"max RSS, page faults, allocator calls and the index's own statistics.\n"
	"\n"
	"  --index NAME       the index (default memtable): %s;\n"
	"                     none preloads nothing (the uninstrumented program)\n"
	"  --allocator NAME   glibc (default) or jemalloc (preloads libjemalloc.so.2\n"
	"                     behind the hooks)\n"
	"  --stats FILE       append the statistics to FILE as JSON lines instead of\n"
	"                     printing them: one per process, then one for the tree\n"
	"  -h, --help         this text\n"
	"\n"
	"environment, read by the hooks (a bad value stops the program with exit 2):\n"
	"  HEAPINDEX_ADDR_BITS  address bits the memtable covers, %u..%u (default %u)\n"
	"  HEAPINDEX_BIN_SHIFT  log2 bytes per memtable bin, %u..%u (default %u)\n"
	"  HEAPINDEX_META       chunk metadata placement: %s (default:\n"
	"                       %s; hooks/chunk.h)\n"
	"  HEAPINDEX_LOOKUP_CACHE  entries of each thread's lookup cache, 0 (off, the\n"
	"                       default) or a power of two up to %u\n"
	"\n"
	"The exit status is the command's (128+N if a signal N killed it).\n";

static void print_run_usage(FILE *out)
{
	fprintf(out, run_usage, cli_index_names(), CONFIG_ADDR_BITS_MIN, CONFIG_ADDR_BITS_MAX,
	        config_default_addr_bits(), CONFIG_BIN_SHIFT_MIN, CONFIG_BIN_SHIFT_MAX,
	        CONFIG_BIN_SHIFT_DEFAULT, CONFIG_META_NAMES, CONFIG_META_DEFAULT_TEXT, CONFIG_LOOKUP_CACHE_MAX);
}

struct run_options {
	const char *index, *allocator, *stats_path;
	char **command;
};

static void parse_options(int argc, char **argv, struct run_options *o)
{
	static const struct option longopts[] = {
		{ "index", required_argument, NULL, 'i' },
		{ "allocator", required_argument, NULL, 'a' },
		{ "stats", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	o->index = "memtable";
	o->allocator = "glibc";
	o->stats_path = NULL;
	int opt;
	/* '+': stop at the command, so its own options stay its own. */
	while ((opt = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'i': o->index = optarg; break;
		case 'a': o->allocator = optarg; break;
		case 's': o->stats_path = optarg; break;
		case 'h': print_run_usage(stdout); exit(0);
		default: cli_usage_error("run: bad option (see heapindex run --help)");
		}
	}
	if (optind >= argc)
		cli_usage_error("run: no command given (usage: heapindex run [OPTIONS] -- COMMAND [ARGS...])");
	o->command = argv + optind;
	if (!cli_index_known(o->index))
		cli_usage_error("run: unknown index '%s': expected one of %s", o->index, cli_index_names());
	if (strcmp(o->allocator, "glibc") != 0 && strcmp(o->allocator, "jemalloc") != 0)
		cli_usage_error("run: unknown allocator '%s': expected glibc or jemalloc", o->allocator);
	if (o->stats_path && !*o->stats_path)
		cli_usage_error("run: --stats needs a file path");
}

/* Path of libjemalloc.so.2, or NULL if it is not installed. */
static const char *jemalloc_path(void)
{
	static const char *const candidates[] = {
		"/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
		"/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
		"/usr/lib64/libjemalloc.so.2",
		"/usr/lib/libjemalloc.so.2",
		"/usr/local/lib/libjemalloc.so.2",
	};
	for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++)
		if (access(candidates[i], R_OK) == 0)
			return candidates[i];
	return NULL;
}

/* LD_PRELOAD for the child: our library first (so its malloc wins), then
 * jemalloc (which our dlsym(RTLD_NEXT) then finds), then whatever was there. */
static void set_preload(const struct run_options *o)
{
	char preload[8192] = "";
	if (strcmp(o->index, "none") != 0) {
		char lib[4096];
		snprintf(lib, sizeof lib, "%s/libheapindex-%s.so", cli_lib_dir(), o->index);
		if (access(lib, R_OK))
			cli_usage_error("run: %s is missing: run make first", lib);
		snprintf(preload, sizeof preload, "%s", lib);
	}
	if (strcmp(o->allocator, "jemalloc") == 0) {
		const char *je = jemalloc_path();
		if (!je)
			cli_usage_error("run: libjemalloc.so.2 not found: apt-get install -y libjemalloc2");
		snprintf(preload + strlen(preload), sizeof preload - strlen(preload), "%s%s",
		         *preload ? ":" : "", je);
	}
	const char *old = getenv("LD_PRELOAD");
	if (old && *old)
		snprintf(preload + strlen(preload), sizeof preload - strlen(preload), "%s%s",
		         *preload ? ":" : "", old);
	if (*preload)
		setenv("LD_PRELOAD", preload, 1);
}

/* --- reading the hooks' JSON lines ---------------------------------------------- */

/* The number after "key": in a line we wrote ourselves, or -1. */
static double field(const char *line, const char *key)
{
	char pattern[128];
	snprintf(pattern, sizeof pattern, "\"%s\":", key);
	const char *at = strstr(line, pattern);
	return at ? strtod(at + strlen(pattern), NULL) : -1;
}

static void field_str(const char *line, const char *key, char *out, size_t len)
{
	char pattern[128];
	snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
	const char *at = strstr(line, pattern);
	snprintf(out, len, "?");
	if (!at)
		return;
	at += strlen(pattern);
	const char *end = strchr(at, '"');
	if (end)
		snprintf(out, len, "%.*s", (int)(end - at), at);
}

/* The text between the braces of "key":{...}, which holds no nested object. */
static void field_object(const char *line, const char *key, char *out, size_t len)
{
	char pattern[128];
	snprintf(pattern, sizeof pattern, "\"%s\":{", key);
	const char *at = strstr(line, pattern);
	out[0] = '\0';
	if (!at)
		return;
	at += strlen(pattern);
	const char *end = strchr(at, '}');
	size_t n = 0;
	for (; at < end && n + 1 < len; at++)
		if (*at != '"')
			out[n++] = *at == ',' ? ' ' : *at == ':' ? '=' : *at;
	out[n] = '\0';
}

static void print_process(const char *line)
{
	char exe[256], meta[32], calls[1024], index_stats[4096], bytes[32] = "bytes not counted";
	field_str(line, "exe", exe, sizeof exe);
	/* The hooks leave the bytes out where they count none (noop under side). */
	if (strstr(line, "\"peak_live_bytes\":"))
		snprintf(bytes, sizeof bytes, "%.0f bytes", field(line, "peak_live_bytes"));
	field_str(line, "meta", meta, sizeof meta);
	field_object(line, "calls", calls, sizeof calls);
	field_object(line, "index_stats", index_stats, sizeof index_stats);
	fprintf(stderr,
	        "  %-12s pid %-7.0f wall %7.3f s  user %7.3f s  sys %6.3f s  max RSS %8.1f MiB  faults %.0f minor %.0f major\n"
	        "  %-12s peak live %.0f chunks, %s; %s, %.1f B/chunk added, peak metadata %.0f bytes; lookups %.0f found %.0f missed\n"
	        "  %-12s calls: %s\n",
	        exe, field(line, "pid"), field(line, "wall_s"), field(line, "user_s"),
	        field(line, "sys_s"), field(line, "max_rss_kb") / 1024.0, field(line, "minflt"),
	        field(line, "majflt"), "", field(line, "peak_live_chunks"),
	        bytes, meta, field(line, "meta_bytes_per_chunk"),
	        field(line, "peak_meta_bytes"), field(line, "lookups_found"),
	        field(line, "lookups_missed"), "", calls);
	if (field(line, "lookup_cache_entries") > 0)
		fprintf(stderr, "  %-12s lookup cache: %.0f entries per thread, %.0f hits, %.0f misses (%.1f%% hits)\n",
		        "", field(line, "lookup_cache_entries"), field(line, "lookup_cache_hits"),
		        field(line, "lookup_cache_misses"), 100 * field(line, "lookup_cache_hit_rate"));
	if (index_stats[0])
		fprintf(stderr, "  %-12s index: %s\n", "", index_stats);
}

static int print_processes(const char *path)
{
	FILE *f = fopen(path, "r");
	int count = 0;
	if (!f)
		return 0;
	char line[16384];
	while (fgets(line, sizeof line, f))
		if (strstr(line, "\"kind\":\"process\"")) {
			print_process(line);
			count++;
		}
	fclose(f);
	return count;
}

static double tv_seconds(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

/* The tree's line: through the JSON writer, which escapes the command's
 * name (a path may hold '"' or '\\'). */
static void append_tree_line(const char *path, const struct run_options *o, int status,
                             double wall, const struct rusage *ru)
{
	char buf[16384];
	struct json_out j;
	json_init(&j, buf, sizeof buf);
	json_open(&j, NULL);
	json_str(&j, "kind", "tree");
	json_str(&j, "command", o->command[0]);
	json_str(&j, "index", o->index);
	json_str(&j, "allocator", o->allocator);
	json_u64(&j, "exit_status", (uint64_t)status);
	json_f64(&j, "wall_s", wall);
	json_f64(&j, "user_s", tv_seconds(ru->ru_utime));
	json_f64(&j, "sys_s", tv_seconds(ru->ru_stime));
	json_u64(&j, "max_rss_kb", (uint64_t)ru->ru_maxrss);
	json_u64(&j, "minflt", (uint64_t)ru->ru_minflt);
	json_u64(&j, "majflt", (uint64_t)ru->ru_majflt);
	json_close(&j);
	if (j.overflow)
		cli_usage_error("run: the command's name is too long for the --stats line");
	FILE *f = fopen(path, "a");
	if (!f)
		cli_usage_error("run: cannot append to %s: %s", path, strerror(errno));
	fprintf(f, "%s\n", buf);
	fclose(f);
}

int cmd_run(int argc, char **argv)
{
	struct run_options o;
	parse_options(argc, argv, &o);

	/* Check the hooks' settings here too, so a typo fails before anything runs. */
	struct heapindex_config cfg;
	char err[512];
	const struct index_ops *ops = strcmp(o.index, "none") ? index_by_name(o.index) : NULL;
	if (config_from_env(&cfg, err, sizeof err) ||
	    (ops && config_meta_for(&cfg, ops->name, ops->caps, err, sizeof err) < 0)) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}

	char temp_path[] = "/tmp/heapindex-stats-XXXXXX";
	const char *stats_path = o.stats_path;
	if (!stats_path) {
		int fd = mkstemp(temp_path);
		if (fd < 0)
			cli_usage_error("run: cannot create a temporary stats file: %s", strerror(errno));
		close(fd);
		stats_path = temp_path;
	}
	if (strcmp(o.index, "none") != 0)
		setenv("HEAPINDEX_STATS", stats_path, 1);
	set_preload(&o);

	struct rusage ru;
	double wall;
	int status = cli_spawn("run", o.command, NULL, NULL, &ru, &wall);

	if (o.stats_path) {
		append_tree_line(o.stats_path, &o, status, wall, &ru);
		return status;
	}
	fprintf(stderr, "heapindex: %s under index %s, allocator %s\n", o.command[0], o.index, o.allocator);
	int processes = print_processes(stats_path);
	unlink(temp_path);
	if (!processes && strcmp(o.index, "none") != 0)
		fprintf(stderr, "  (no process wrote statistics: a static binary, or all exited via _exit/exec)\n");
	fprintf(stderr,
	        "  %-12s exit %d  wall %7.3f s  user %7.3f s  sys %6.3f s  max RSS %8.1f MiB (largest process)  faults %ld minor %ld major\n",
	        "tree", status, wall, tv_seconds(ru.ru_utime), tv_seconds(ru.ru_stime),
	        ru.ru_maxrss / 1024.0, ru.ru_minflt, ru.ru_majflt);
	return status;
}
