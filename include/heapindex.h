/* heapindex.h - the public query API of every libheapindex-<index>.so.
 *
 * A program run under `./heapindex run --index NAME` (or with the library in
 * LD_PRELOAD) can ask which live heap chunk contains an address, including an
 * interior one.  The answer comes from whichever index the preloaded library
 * was built with; the call is the same for all of them.
 *
 * Callable from any thread, at any time after the library is loaded, and from
 * Python through ctypes (ctypes.CDLL(None).heapindex_lookup).
 *
 * Threads: a lookup runs alongside other threads' malloc and free.  If the
 * chunk containing addr is allocated or freed while the lookup runs, the
 * answer is that chunk, whole (its base, size and site as they were), or 0;
 * any other chunk containing addr is found.  Never a torn or stale size.
 *
 * Signal handlers (a SIGPROF sampler, a SIGSEGV handler): heapindex_lookup
 * never deadlocks and allocates nothing.  When the handler interrupted this
 * very thread inside an index operation of the hooks (in malloc or free,
 * perhaps holding a lock of the index), the lookup takes a lock only if it
 * is free and otherwise answers 0, which then means "not known" rather than
 * "not a heap address".  The memtable locks only the bins it walks and the
 * bitmap none, so that is rare; vghash, uthash and splay have one lock, and
 * answer "not known" whenever the handler lands inside it.  Interrupting any
 * other code, a handler's lookup waits for locks other threads hold, briefly,
 * as every lookup does.  A thread's first call into the library (usually its
 * first malloc) sets up its per-thread slot with mmap and
 * pthread_setspecific; a lookup that is a thread's first call does that
 * itself, and one that interrupts it answers 0.
 */
#ifndef HEAPINDEX_H
#define HEAPINDEX_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 if addr lies inside a live heap chunk (base <= addr < base+size, where
 * size is the size the caller of malloc/calloc/realloc/memalign asked for;
 * under HEAPINDEX_META=trailer, which keeps no size, it is the chunk's
 * malloc_usable_size instead: the allocator's usable bytes minus the 8-byte
 * trailer, at least what was asked for and all the program may use; and
 * under the memtable's default placement, side, which keeps neither size
 * nor site, it is the chunk's malloc_usable_size and site is NULL:
 * HEAPINDEX_META=header gets both back), filling whichever of base, size
 * and site are non-NULL; 0 otherwise.
 * site is the allocation site: by default the return address of the call
 * that allocated the chunk; with HEAPINDEX_SITE=unwind:N it is a key for an
 * interned stack instead (the address of a record in memory heapindex
 * reserved for them: never a code address, see sites/sites.h), which
 * heapindex_describe resolves.  A NULL site may be cheaper: an index that
 * keeps base and size in its own memory (bytemap) then reads no heap
 * memory at all.  Never crashes,
 * whatever addr is (NULL, freed, unmapped, stack, kernel-half). A zero-byte chunk contains no address. */
int heapindex_lookup(const void *addr, void **base, size_t *size,
                     const void **site);

/* One line about addr in buf (at most len bytes, NUL-terminated):
 * "0x... is 24 bytes into a 96-byte chunk allocated at parse_expr (c-parser.c:1234)"
 * and 1, or "0x... is not in a live heap chunk" and 0.  The site is named
 * from DWARF (function, file, line) or, without debug info, the ELF symbol
 * ("xmalloc (libfoo.so, no debug info)").  It may allocate: do not call it
 * from a signal handler or an allocator. */
int heapindex_describe(const void *addr, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* HEAPINDEX_H */
