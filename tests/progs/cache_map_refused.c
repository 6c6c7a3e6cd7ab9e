/* cache_map_refused.c - when the memory for a thread's lookup cache cannot
 * be had, lookups go on without the cache, and the hooks ask for that
 * memory once, not on every lookup (a system call each).
 *
 * The program defines mmap, which the hooks' library calls through the
 * dynamic linker and so reaches this definition first; after `refuse` is
 * set it fails every mapping of exactly the cache's size and counts the
 * attempts.  Then 1,000 lookups of a live chunk must all answer it, with
 * at most one attempt.  Exits 0, or 1 naming what went wrong.  Run under
 * HEAPINDEX_LOOKUP_CACHE=16 (16 entries of 32 bytes: one page). */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef int lookup_fn(const void *, void **, size_t *, const void **);

static volatile int refuse;
static volatile unsigned refused;

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (refuse && len <= 4096 && fd == -1) {
		refused++;
		errno = ENOMEM;
		return MAP_FAILED;
	}
	long r = syscall(SYS_mmap, addr, len, prot, flags, fd, off);
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return MAP_FAILED;
	}
	return (void *)r;
}

int main(void)
{
	lookup_fn *lookup = (lookup_fn *)dlsym(RTLD_DEFAULT, "heapindex_lookup");
	if (!lookup) {
		fprintf(stderr, "cache_map_refused: not run under the hooks\n");
		return 1;
	}
	char *p = malloc(100);
	refuse = 1;
	for (int i = 0; i < 1000; i++) {
		void *base;
		size_t size;
		if (lookup(p + i % 100, &base, &size, NULL) != 1 || base != p || size != 100) {
			fprintf(stderr, "cache_map_refused: lookup %d of %p answered wrongly\n", i, (void *)p);
			return 1;
		}
	}
	refuse = 0;
	if (refused > 1) {
		fprintf(stderr, "cache_map_refused: the cache's memory was asked for %u times\n", refused);
		return 1;
	}
	free(p);
	return 0;
}
