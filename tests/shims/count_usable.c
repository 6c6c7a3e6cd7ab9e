/* count_usable.c - a test-only library preloaded *behind* a hook library
 * (LD_PRELOAD=hooks.so:libcount_usable.so), so that the hooks' next
 * malloc_usable_size (dlsym RTLD_NEXT) is this one: it counts the calls
 * the hooks make of the allocator's malloc_usable_size and says at exit,
 * on stderr, "count_usable: N calls".  The program under test must not call
 * malloc_usable_size itself (the hooks would pass those on too). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static unsigned long calls;

size_t malloc_usable_size(void *p)
{
	static size_t (*next)(void *);
	if (!next)
		next = (size_t (*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
	__atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
	return next(p);
}

/* write, not stdio: the hooks' own destructor may run after this one. */
__attribute__((destructor)) static void report(void)
{
	char line[64];
	int n = snprintf(line, sizeof line, "count_usable: %lu calls\n",
	                 __atomic_load_n(&calls, __ATOMIC_RELAXED));
	if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}
