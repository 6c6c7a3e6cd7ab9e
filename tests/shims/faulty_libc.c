/* faulty_libc.c - a test-only library preloaded in front of a hook library
 * to reach paths no ordinary run takes:
 *
 *   SHIM_MADVISE_FAIL=1         madvise fails with EINVAL (a kernel without
 *                               transparent huge pages refuses
 *                               MADV_NOHUGEPAGE);
 *   SHIM_FAIL_MMAP_BYTES=N      an mmap of exactly N bytes with
 *                               MAP_NORESERVE fails with ENOMEM (a memtable
 *                               leaf, 2 MiB; a bitmap region, 8 MiB);
 *   SHIM_BOOT_MEMALIGN=1        the hooks' first getenv (reading their
 *                               settings, while they are still starting)
 *                               calls memalign, aligned_alloc and
 *                               posix_memalign: allocations during the
 *                               hooks' bootstrap.
 *
 * The hooks call mmap, madvise and getenv through the PLT, so preloaded
 * first, these definitions are theirs.  faulty_libc_report() says what the
 * bootstrap allocations got. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

/* getenv without calling anything that might allocate. */
static const char *lookup_env(const char *name)
{
	size_t len = strlen(name);
	for (char **e = environ; e && *e; e++)
		if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
			return *e + len + 1;
	return NULL;
}

int madvise(void *addr, size_t len, int advice)
{
	const char *fail = lookup_env("SHIM_MADVISE_FAIL");
	if (fail && *fail == '1') {
		errno = EINVAL;
		return -1;
	}
	return (int)syscall(SYS_madvise, addr, len, advice);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	const char *fail = lookup_env("SHIM_FAIL_MMAP_BYTES");
	if (fail && (flags & MAP_NORESERVE) && strtoul(fail, NULL, 10) == len) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

static char report[512] = "no bootstrap allocation made";
static int boot_done;

static void boot_allocations(void)
{
	errno = 0;
	void *a = memalign(64, 100);
	int ea = errno;
	errno = 0;
	void *b = aligned_alloc(4096, 4096);
	int eb = errno;
	void *c = NULL;
	int ec = posix_memalign(&c, 256, 10);
	snprintf(report, sizeof report,
	         "memalign(64) %s errno %d; aligned_alloc(4096) %s errno %d; posix_memalign(256) %s returned %d",
	         !a ? "NULL" : (uintptr_t)a % 64 ? "misaligned" : "aligned", ea,
	         !b ? "NULL" : (uintptr_t)b % 4096 ? "misaligned" : "aligned", eb,
	         ec ? "failed" : (uintptr_t)c % 256 ? "misaligned" : "aligned", ec);
	free(a);
	free(b);
	free(c);
}

char *getenv(const char *name)
{
	const char *boot = lookup_env("SHIM_BOOT_MEMALIGN");
	if (boot && *boot == '1' && !boot_done && strcmp(name, "HEAPINDEX_ADDR_BITS") == 0) {
		boot_done = 1;
		boot_allocations();
	}
	return (char *)lookup_env(name);
}

__attribute__((visibility("default"))) const char *faulty_libc_report(void)
{
	return report;
}
