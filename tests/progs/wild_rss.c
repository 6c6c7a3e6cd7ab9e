/* wild_rss.c - 100,000 heapindex_lookup calls on random addresses below
 * 2^47 that are no heap chunk (a conservative scanner's or a debugger's
 * question), and 100,000 more within 512 MiB of the heap (where the indexes
 * keep their tables), then print how much the process's resident set grew and how
 * many page faults the lookups took.
 *
 * On a kernel without a shared zero page, a read of a never-written page of
 * an index's lazily committed table commits a real page: the memtable once
 * grew by 400 MB that way.  A kernel with a zero page maps that instead and
 * the resident set does not grow, but the read still faults, so the fault
 * count tells on both kinds of kernel.  Exits 1 if the growth reaches the
 * limit (argv[1] in MiB, default 16) or the lookups took 256 page faults or
 * more (nothing a lookup reads should ever fault). */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

typedef int lookup_fn(const void *, void **, size_t *, const void **);

/* VmRSS in KiB, from /proc/self/status, read without malloc. */
static long rss_kib(void)
{
	static char buf[8192];
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *line = strstr(buf, "VmRSS:");
	return line ? strtol(line + 6, NULL, 10) : -1;
}

int main(int argc, char **argv)
{
	long limit_mib = argc > 1 ? strtol(argv[1], NULL, 10) : 16;
	lookup_fn *lookup = (lookup_fn *)dlsym(RTLD_DEFAULT, "heapindex_lookup");
	if (!lookup) {
		fprintf(stderr, "wild_rss: no heapindex_lookup (run it with a hook library preloaded)\n");
		return 2;
	}
	/* A live heap, so the indexes have tables to read around. */
	enum { LIVE = 1000 };
	static void *live[LIVE];
	for (int i = 0; i < LIVE; i++)
		live[i] = malloc((size_t)(i % 200) * 8 + 16);
	void *probe = malloc(64);
	lookup(probe, NULL, NULL, NULL); /* first-use costs (TLS, tables) before measuring */

	struct rusage usage;
	getrusage(RUSAGE_SELF, &usage);
	long faults_before = usage.ru_minflt + usage.ru_majflt;
	long before = rss_kib();
	uint64_t x = 0x9e3779b97f4a7c15u;
	int found = 0;
	uintptr_t heap = (uintptr_t)live[LIVE / 2], near = (uintptr_t)1 << 29;
	for (int i = 0; i < 200000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
		uintptr_t addr = i < 100000 ? (uintptr_t)(x & ((UINT64_C(1) << 47) - 1))
		                            : heap - near + (uintptr_t)(x % (2 * near));
		found += lookup((const void *)(addr & ~(uintptr_t)7), NULL, NULL, NULL);
	}
	long after = rss_kib();
	getrusage(RUSAGE_SELF, &usage);
	long faults = usage.ru_minflt + usage.ru_majflt - faults_before;
	for (int i = 0; i < LIVE; i++)
		free(live[i]);
	free(probe);
	if (before < 0 || after < 0) {
		fprintf(stderr, "wild_rss: cannot read VmRSS from /proc/self/status\n");
		return 2;
	}
	long grew = after - before;
	printf("wild_rss: 200000 wild lookups (%d found) grew RSS by %ld KiB (%ld -> %ld KiB), "
	       "%ld page faults\n", found, grew, before, after, faults);
	if (grew >= limit_mib * 1024 || faults >= 256) {
		fprintf(stderr, "wild_rss: lookups committed memory: RSS +%ld KiB (limit %ld MiB), "
		        "%ld page faults (limit 255)\n", grew, limit_mib, faults);
		return 1;
	}
	return 0;
}
