/* sites.h - allocation sites: how the hooks capture them, count the live heap
 * by site (the census) and turn them into function, file and line.
 *
 * A site is the 48-bit value a chunk header keeps (chunk.h).  Two kinds:
 *  - a code address: the return address of the allocating call, or with
 *    HEAPINDEX_SITE_SKIP the first frame outside the named wrappers
 *    (HEAPINDEX_SITE=ret, the default);
 *  - an interned stack (HEAPINDEX_SITE=unwind:N): the address of its
 *    record, in a range of address space reserved for records alone
 *    (stacks.c), so equal stacks share one key and a site is a stack
 *    exactly when it lies in that range: no code address can, whatever the
 *    width of user space (a tag bit cannot say as much: bit 47 is taken by
 *    code on AArch64 with 48-bit user space).
 * sites_leaf() maps either kind to the code address a human wants first.
 *
 * Internal to the hook libraries: uses the hooks' lock for the census. */
#ifndef HEAPINDEX_SITES_H
#define HEAPINDEX_SITES_H

#include <stddef.h>
#include <stdint.h>

#include "chunk.h"
#include "config.h"

#define SITES_DEPTH_MAX 32

/* An interned stack: frames[0] is the allocating call's return address. */
struct site_stack {
	struct site_stack *next; /* hash chain */
	uint32_t hash;
	uint32_t depth;
	uintptr_t frames[];
};

/* Nonzero sends every allocation through sites_capture_slow; read (one
 * relaxed load) on every allocation.  Bits: */
#define SITES_SLOW_CAPTURE 1 /* unwind mode or a skip list (set by sites_init) */
#define SITES_SLOW_CENSUS 2  /* a census was asked for before its writer thread
                              * was started (census.c: set by the signal handler,
                              * cleared by the allocation that starts it) */
extern int sites_slow;
/* Nonzero when HEAPINDEX_CENSUS is set: the hooks then count live chunks per
 * site.  Written once by sites_init, before the hooks are READY. */
extern int sites_census_on;

/* Called by the hooks' initialise() once the configuration is read, before
 * the first indexed chunk. Calls no malloc. */
void sites_init(const struct heapindex_config *cfg);

uintptr_t sites_capture_slow(uintptr_t ret);

/* The site of an allocation whose caller returns to ret.  In `ret` mode it
 * is ret itself: one load and a predicted branch. */
static inline uintptr_t sites_capture(uintptr_t ret)
{
	if (__builtin_expect(!__atomic_load_n(&sites_slow, __ATOMIC_RELAXED), 1))
		return ret;
	return sites_capture_slow(ret);
}

/* --- interned stacks (stacks.c) -------------------------------------------- */
/* The range reserved for records: [lo, hi), empty (0, 0) unless unwind
 * mode reserved it.  Written once by sites_init, before the first chunk. */
extern uintptr_t sites_stacks_lo, sites_stacks_hi;

/* Reserve the range: 0, or -1 (then no stack can be interned). */
int sites_stacks_reserve(void);
/* Room for a record, 16-byte aligned; NULL once the range is full.  The
 * caller serialises calls (capture.c's intern lock). */
void *sites_stacks_take(size_t bytes);

static inline const struct site_stack *site_as_stack(uintptr_t site)
{
	return site - sites_stacks_lo < sites_stacks_hi - sites_stacks_lo
	               ? (const struct site_stack *)site : NULL;
}

/* The innermost code address of a site (the allocating call). */
static inline uintptr_t sites_leaf(uintptr_t site)
{
	const struct site_stack *s = site_as_stack(site);
	return s ? s->frames[0] : site;
}

/* --- census (census.c): called with hooks_lock held ------------------------ */
/* Set while the symbolizer runs in this thread: what libdwarf allocates
 * and frees then is heapindex's own memory and stays out of the census. */
extern __thread int sites_internal __attribute__((tls_model("initial-exec")));
void sites_census_count(uintptr_t site, size_t size, int delta);

static inline void sites_census_insert(const struct chunk *c)
{
	if (__builtin_expect(sites_census_on, 0))
		sites_census_count(chunk_site(c), chunk_size(c), 1);
}

static inline void sites_census_remove(const struct chunk *c)
{
	if (__builtin_expect(sites_census_on, 0))
		sites_census_count(chunk_site(c), chunk_size(c), -1);
}

/* Append the census to HEAPINDEX_CENSUS (reason: "exit", "SIGUSR2").
 * Takes hooks_lock briefly; never call it with the lock held. */
void sites_census_write(const char *reason);
/* Start the thread that writes the censuses SIGUSR2 asks for, if it is not
 * running: called by an allocation that finds SITES_SLOW_CENSUS set, before
 * any lock of the hooks is taken (it allocates). */
void sites_census_start_writer(void);

/* --- symbolization (symbolize.c) ------------------------------------------- */
struct site_symbol {
	char function[128]; /* "parse_expr", or "??" */
	char file[256];     /* "c-parser.c" (base name), or "" without debug info */
	unsigned line;      /* 0 without debug info */
	char object[128];   /* base name of the executable or library */
	int has_debug;      /* 0: function is the ELF symbol (dladdr) */
};

/* Describe the code address pc, a return address (looked up at pc - 1).
 * Returns 0 if nothing at all is known.  Allocates (libdwarf): never call
 * it on the allocation path or with hooks_lock held.  Results are cached. */
int sites_symbolize(uintptr_t pc, struct site_symbol *out);

/* "parse_expr (c-parser.c:1234)" or "xmalloc (libfoo.so, no debug info)". */
void sites_format(uintptr_t pc, char *buf, size_t len);

/* --- fork (fork.c) ------------------------------------------------------------
 * The locks sites take: the symbolizer's mutex (held while libdwarf runs,
 * which allocates), the capture gate (held while libunwind walks a stack,
 * which allocates and takes libunwind's own locks, and while a stack is
 * interned), the census writer's mutex (held around a census).  prepare
 * takes the first two so that a child gets them free and their state
 * whole; it must run before the hooks take their own lock (both are held
 * around allocations).  A census write holds nothing a child needs: the
 * child just makes its mutex and writer thread anew. */
void sites_fork_prepare(void);
void sites_fork_parent(void);
void sites_fork_child(void);

/* The pieces, one per file. */
void symbolize_fork_lock(void);
void symbolize_fork_unlock(void);
void capture_fork_lock(void);
void capture_fork_unlock(void);
void capture_fork_child(void);
void census_fork_child(void);

#endif /* HEAPINDEX_SITES_H */
