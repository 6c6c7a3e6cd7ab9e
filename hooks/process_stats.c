/* process_stats.c - one JSON line per process, appended at exit.
 *
 * `heapindex run` collects these lines from every process of the tree it runs
 * (gcc, cc1, as, ...) and prints or keeps them.  Written with one write() to
 * an O_APPEND file so lines of concurrent processes never interleave, and
 * without malloc: the program is exiting and stdio may be gone.
 */
#include "hooks.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "index.h"
#include "lookup_cache.h"

/* Read "Key:   123 kB" from /proc/self/status (the process's own peak RSS,
 * VmHWM: unlike ru_maxrss it does not inherit a vfork parent's peak). */
static uint64_t status_kb(const char *key)
{
	char buf[4096];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	size_t key_len = strlen(key);
	for (char *line = buf; line && *line; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		if (strncmp(line, key, key_len) == 0 && line[key_len] == ':')
			return strtoull(line + key_len + 1, NULL, 10);
	}
	return 0;
}

static void exe_name(char *out, size_t len)
{
	char path[512];
	ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
	if (n <= 0) {
		strncpy(out, "?", len);
		return;
	}
	path[n] = '\0';
	const char *slash = strrchr(path, '/');
	strncpy(out, slash ? slash + 1 : path, len - 1);
	out[len - 1] = '\0';
}

static double seconds(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

void process_stats_write(void)
{
	static const char *const entry_names[ENTRY_COUNT] = {
#define HOOK_NAME(name) #name,
		HOOK_ENTRY_POINTS(HOOK_NAME)
#undef HOOK_NAME
	};
	static char buf[16384]; /* static: exit-time stacks can be small */
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	char exe[256];
	exe_name(exe, sizeof exe);

	struct json_out j;
	json_init(&j, buf, sizeof buf - 1);
	/* hooks_lock: with the census or verify on, the live figures are exact. */
	spin_lock(&hooks_lock);
	struct hook_totals k;
	counters_totals(&k);
	json_open(&j, NULL);
	json_str(&j, "kind", "process");
	json_u64(&j, "pid", (uint64_t)getpid());
	json_u64(&j, "ppid", (uint64_t)getppid());
	json_str(&j, "exe", exe);
	json_str(&j, "index", INDEX_OPS.name);
	/* What it can do (hooks/index.h): readers decide by these, not by name. */
	json_u64(&j, "index_answers_lookups", (INDEX_OPS.caps & INDEX_ANSWERS_LOOKUPS) != 0);
	json_u64(&j, "index_answers_from_index", (INDEX_OPS.caps & INDEX_ANSWERS_FROM_INDEX) != 0);
	json_str(&j, "allocator", hooks_allocator);
	json_f64(&j, "wall_s", monotonic_seconds() - hooks_start_seconds);
	json_f64(&j, "user_s", seconds(ru.ru_utime));
	json_f64(&j, "sys_s", seconds(ru.ru_stime));
	json_u64(&j, "max_rss_kb", status_kb("VmHWM"));
	json_u64(&j, "minflt", (uint64_t)ru.ru_minflt);
	json_u64(&j, "majflt", (uint64_t)ru.ru_majflt);
	json_open(&j, "calls");
	for (int e = 0; e < ENTRY_COUNT; e++)
		json_u64(&j, entry_names[e], k.calls[e]);
	json_close(&j);
	json_u64(&j, "failed_allocs", k.failed_allocs);
	json_u64(&j, "lookups_found", k.lookups_found);
	json_u64(&j, "lookups_missed", k.lookups_missed);
	json_u64(&j, "lookup_cache_entries", lookup_cache_entries);
	json_u64(&j, "lookup_cache_hits", k.lookup_cache_hits);
	json_u64(&j, "lookup_cache_misses", k.lookup_cache_misses);
	json_f64(&j, "lookup_cache_hit_rate",
	         k.lookup_cache_hits + k.lookup_cache_misses
	                 ? (double)k.lookup_cache_hits / (double)(k.lookup_cache_hits + k.lookup_cache_misses)
	                 : 0.0);
	/* Bytes only where counted (hooks_counts_bytes): a 0 would read as a
	 * figure. */
	json_u64(&j, "live_chunks", (uint64_t)k.live_chunks);
	if (hooks_counts_bytes)
		json_u64(&j, "live_bytes", (uint64_t)k.live_bytes);
	json_u64(&j, "peak_live_chunks", (uint64_t)k.peak_live_chunks);
	if (hooks_counts_bytes)
		json_u64(&j, "peak_live_bytes", (uint64_t)k.peak_live_bytes);
	json_u64(&j, "header_bytes", hooks_header_bytes);
	json_str(&j, "meta", chunk_meta_name(chunk_meta));
	json_f64(&j, "meta_bytes_per_chunk", k.meta_weight ? (double)k.meta_added / (double)k.meta_weight : 0.0);
	json_u64(&j, "peak_meta_bytes", (uint64_t)k.peak_meta_bytes);
	json_open(&j, "index_stats");
	INDEX_FN(write_stats)(&j);
	json_close(&j);
	json_close(&j);
	spin_unlock(&hooks_lock);
	if (j.overflow)
		return; /* never half a line */
	buf[j.len++] = '\n';

	int fd = open(hooks_config.stats_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, buf, j.len) < 0) { /* nothing more to do at exit */
	}
	close(fd);
}
