/* hooks.c - the LD_PRELOAD malloc interposer every index shares.
 *
 * Each allocator entry point asks the next allocator (glibc, or jemalloc when
 * it is preloaded after us) for the program's bytes plus a header (chunk.h),
 * fills the header, and tells the index under one lock.  Only the index
 * differs between libheapindex-<name>.so files: this file is compiled once per
 * index with HEAPINDEX_INDEX=<name>, so the index calls are direct.
 *
 * What the C library promises is kept: 16-byte alignment, the alignment asked
 * of memalign and friends, zeroed calloc memory, ENOMEM on calloc overflow,
 * realloc(p, 0) freeing p, and a malloc_usable_size that counts only bytes the
 * program may use (never our header).
 */
#include "hooks.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "big_chunks.h"
#include "heapindex.h"
#include "index.h"
#include "sites.h"
#include "verify.h"

#define HOOK_EXPORT __attribute__((visibility("default")))
#define CALLER_SITE() sites_capture((uintptr_t)__builtin_return_address(0))
#define unlikely(x) __builtin_expect(!!(x), 0)

spinlock_t hooks_lock;
struct hook_counters hooks_counters;
uint64_t hooks_calls_unlocked[ENTRY_COUNT];
struct heapindex_config hooks_config;
size_t hooks_header_bytes;
const char *hooks_allocator = "unknown";
double hooks_start_seconds;

/* --- the next allocator ---------------------------------------------------- */

static struct {
	void *(*malloc)(size_t);
	void (*free)(void *);
	void *(*calloc)(size_t, size_t);
	void *(*realloc)(void *, size_t);
	void *(*memalign)(size_t, size_t);
	size_t (*malloc_usable_size)(void *);
} real;

/* --- bootstrap --------------------------------------------------------------
 * dlsym, which finds the next allocator, itself calls calloc.  Until the real
 * functions are known, allocations come from this static arena: never freed,
 * zero from the start (so calloc needs no memset), recognised by address. */

#define BOOT_ARENA_BYTES ((size_t)64 * 1024)
static _Alignas(16) unsigned char boot_arena[BOOT_ARENA_BYTES];
static size_t boot_used;

static int is_boot(const void *p)
{
	return (const unsigned char *)p >= boot_arena &&
	       (const unsigned char *)p < boot_arena + BOOT_ARENA_BYTES;
}

/* Each boot chunk is preceded by 16 bytes holding its size; its start is
 * aligned to align (a power of two, at least 16: memalign and friends may
 * be called while bootstrapping too). */
static void *boot_alloc_aligned(size_t align, size_t size)
{
	if (size > BOOT_ARENA_BYTES || align > BOOT_ARENA_BYTES)
		goto exhausted;
	size_t at = __atomic_load_n(&boot_used, __ATOMIC_RELAXED), end;
	do {
		uintptr_t user = ((uintptr_t)boot_arena + at + 16 + align - 1) & ~(uintptr_t)(align - 1);
		end = user - (uintptr_t)boot_arena + ((size + 15) & ~(size_t)15);
		if (end > BOOT_ARENA_BYTES)
			goto exhausted;
	} while (!__atomic_compare_exchange_n(&boot_used, &at, end, 1, __ATOMIC_RELAXED,
	                                      __ATOMIC_RELAXED));
	unsigned char *user = boot_arena + end - ((size + 15) & ~(size_t)15);
	memcpy(user - 16, &size, sizeof size);
	return user;
exhausted:
	errno = ENOMEM;
	return NULL;
}

static void *boot_alloc(size_t size)
{
	return boot_alloc_aligned(16, size);
}

static size_t boot_size(const void *p)
{
	size_t size;
	memcpy(&size, (const unsigned char *)p - 16, sizeof size);
	return size;
}

/* HEAPINDEX_FAIL_EVERY=N (test-only): every Nth call into the real
 * allocator fails as if it had returned NULL.  Checked before the index is
 * touched, so a failed call leaves the index as it was. */
static unsigned fail_every;
static unsigned long fail_calls;

static inline int injected_failure(void)
{
	unsigned n = __atomic_load_n(&fail_every, __ATOMIC_RELAXED);
	if (__builtin_expect(n == 0, 1))
		return 0;
	return (__atomic_add_fetch(&fail_calls, 1, __ATOMIC_RELAXED) % n) == 0;
}

/* --- initialisation ---------------------------------------------------------- */

enum { UNINITIALISED, INITIALISING, READY };
static int state = UNINITIALISED;

static __attribute__((noreturn)) void fatal(const char *message)
{
	size_t len = strlen(message);
	if (write(STDERR_FILENO, message, len) < 0 || write(STDERR_FILENO, "\n", 1) < 0)
		_exit(2);
	_exit(2);
}

static void *next_symbol(const char *name)
{
	void *sym = dlsym(RTLD_NEXT, name);
	if (!sym) {
		char msg[128] = "heapindex: the next allocator has no ";
		strncat(msg, name, sizeof msg - strlen(msg) - 1);
		fatal(msg);
	}
	return sym;
}

double monotonic_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* fork: the child gets one thread, so a lock held by another thread of the
 * parent would stay held forever; take every lock around fork instead, in
 * the order they nest: the sites' (held around code that allocates), ours,
 * the big-chunk trees' (taken by the index under ours). */
static void before_fork(void)
{
	sites_fork_prepare();
	spin_lock(&hooks_lock);
	big_chunks_fork_prepare();
}

static void after_fork_parent(void)
{
	big_chunks_fork_parent();
	spin_unlock(&hooks_lock);
	sites_fork_parent();
}

static void after_fork_child(void)
{
	big_chunks_fork_child();
	spin_unlock(&hooks_lock);
	sites_fork_child();
}

static void allocator_name(void)
{
	Dl_info info;
	if (dladdr((void *)real.malloc, &info) && info.dli_fname) {
		const char *slash = strrchr(info.dli_fname, '/');
		hooks_allocator = slash ? slash + 1 : info.dli_fname;
	}
}

/* Runs once, at the first allocation or the constructor, whichever is first.
 * One thread wins; others arriving meanwhile are served from the arena. */
static void initialise(void)
{
	int expected = UNINITIALISED;
	if (!__atomic_compare_exchange_n(&state, &expected, INITIALISING, 0,
	                                 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return;
	real.malloc = next_symbol("malloc");
	real.free = next_symbol("free");
	real.calloc = next_symbol("calloc");
	real.realloc = next_symbol("realloc");
	real.memalign = next_symbol("memalign");
	real.malloc_usable_size = next_symbol("malloc_usable_size");
	allocator_name();

	char err[512];
	if (config_from_env(&hooks_config, err, sizeof err) ||
	    INDEX_FN(init)(&hooks_config, err, sizeof err))
		fatal(err);
	sites_init(&hooks_config);
	hooks_header_bytes = CHUNK_HEADER_BYTES + INDEX_OPS.links_bytes;
	hooks_start_seconds = monotonic_seconds();
	if (hooks_config.verify_every)
		verify_start(hooks_config.verify_every);
	__atomic_store_n(&state, READY, __ATOMIC_RELEASE);
	/* After READY: pthread_atfork may itself allocate. */
	pthread_atfork(before_fork, after_fork_parent, after_fork_child);
	/* Armed last, so the hooks' own setup never sees an injected failure. */
	__atomic_store_n(&fail_every, hooks_config.fail_every, __ATOMIC_RELEASE);
}

/* True once the real allocator can be used; false while bootstrapping. */
static inline int ready(void)
{
	if (__builtin_expect(__atomic_load_n(&state, __ATOMIC_ACQUIRE) == READY, 1))
		return 1;
	initialise();
	return __atomic_load_n(&state, __ATOMIC_ACQUIRE) == READY;
}

__attribute__((constructor)) static void hooks_constructor(void)
{
	ready();
}

__attribute__((destructor)) static void hooks_destructor(void)
{
	if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) != READY)
		return;
	if (hooks_config.verify_every) {
		spin_lock(&hooks_lock);
		verify_check("at exit");
		spin_unlock(&hooks_lock);
	}
	if (hooks_config.stats_path)
		process_stats_write();
	sites_census_write("exit");
}

/* --- accounting (under hooks_lock) ------------------------------------------ */

static inline void account_insert(size_t size, size_t pad)
{
	struct hook_counters *k = &hooks_counters;
	k->live_chunks++;
	k->live_bytes += size;
	k->live_meta_bytes += pad;
	if (k->live_chunks > k->peak_live_chunks)
		k->peak_live_chunks = k->live_chunks;
	if (k->live_bytes > k->peak_live_bytes)
		k->peak_live_bytes = k->live_bytes;
	if (k->live_meta_bytes > k->peak_meta_bytes)
		k->peak_meta_bytes = k->live_meta_bytes;
}

static inline void account_remove(size_t size, size_t pad)
{
	hooks_counters.live_chunks--;
	hooks_counters.live_bytes -= size;
	hooks_counters.live_meta_bytes -= pad;
}

/* Under hooks_lock: a chunk joins, or leaves, everything that follows the
 * live heap (the index, the census of sites, the counters, verify's shadow). */
static inline void track_insert(struct chunk *c, size_t size, size_t pad)
{
	/* An index may map memory for its table and, refused, fall back (a
	 * two-level leaf, a bitmap region) or ignore a failed madvise: the
	 * allocation succeeds all the same, so errno must not change. */
	int *err = &errno, saved = *err;
	INDEX_FN(insert)(c);
	sites_census_insert(c);
	account_insert(size, pad);
	verify_note_insert(c);
	*err = saved;
}

static inline void track_remove(struct chunk *c, size_t size, size_t pad)
{
	INDEX_FN(remove)(c);
	sites_census_remove(c);
	account_remove(size, pad);
	verify_note_remove(c);
}

static inline void count_call(enum hook_entry entry)
{
	__atomic_fetch_add(&hooks_calls_unlocked[entry], 1, __ATOMIC_RELAXED);
}

static void *fail(enum hook_entry entry)
{
	spin_lock(&hooks_lock);
	hooks_counters.calls[entry]++;
	hooks_counters.failed_allocs++;
	spin_unlock(&hooks_lock);
	errno = ENOMEM;
	return NULL;
}

/* --- the common paths ---------------------------------------------------------- */

/* real_chunk is a chunk of the next allocator, pad bytes of it before the user data. */
static void *index_new_chunk(void *real_chunk, size_t pad, size_t size,
                             uintptr_t site, enum hook_entry entry)
{
	unsigned char *user = (unsigned char *)real_chunk + pad;
	struct chunk *c = chunk_of_user(user);
	chunk_init(c, size, pad, site);
	spin_lock(&hooks_lock);
	hooks_counters.calls[entry]++;
	track_insert(c, size, pad);
	spin_unlock(&hooks_lock);
	return user;
}

static void *alloc_plain(size_t size, uintptr_t site, enum hook_entry entry)
{
	size_t pad = hooks_header_bytes;
	if (unlikely(size > CHUNK_SIZE_MAX - pad))
		return fail(entry);
	void *r = injected_failure() ? NULL : real.malloc(size + pad);
	if (unlikely(!r))
		return fail(entry);
	return index_new_chunk(r, pad, size, site, entry);
}

/* align: a power of two. */
static void *alloc_aligned(size_t align, size_t size, uintptr_t site,
                           enum hook_entry entry)
{
	if (align <= CHUNK_ALIGN)
		return alloc_plain(size, site, entry);
	/* The user pointer must be aligned and have the header below it. */
	size_t pad = (hooks_header_bytes + align - 1) & ~(align - 1);
	if (unlikely(pad > CHUNK_SIZE_MAX || size > CHUNK_SIZE_MAX - pad))
		return fail(entry);
	void *r = injected_failure() ? NULL : real.memalign(align, size + pad);
	if (unlikely(!r))
		return fail(entry);
	return index_new_chunk(r, pad, size, site, entry);
}

static void free_chunk(void *p, enum hook_entry entry)
{
	struct chunk *c = chunk_of_user(p);
	size_t pad = chunk_pad(c);
	spin_lock(&hooks_lock);
	hooks_counters.calls[entry]++;
	track_remove(c, chunk_size(c), pad);
	spin_unlock(&hooks_lock);
	real.free((unsigned char *)p - pad);
}

/* p is a live chunk of ours, size > 0.  The chunk leaves the index before the
 * real realloc (which may move or overwrite it) and comes back after; if the
 * real realloc fails the old chunk is re-indexed unchanged. */
static void *realloc_chunk(void *p, size_t size, uintptr_t site, enum hook_entry entry)
{
	struct chunk *c = chunk_of_user(p);
	size_t pad = chunk_pad(c), old_size = chunk_size(c);
	if (unlikely(pad != hooks_header_bytes)) {
		/* Over-aligned: realloc owes it no alignment, so it becomes a
		 * plain chunk rather than carry its pad (as large as the
		 * alignment: 2 MiB for 2 MiB) and copy it on every realloc. */
		void *n = alloc_plain(size, site, entry);
		if (n) {
			memcpy(n, p, old_size < size ? old_size : size);
			spin_lock(&hooks_lock);
			track_remove(c, old_size, pad);
			spin_unlock(&hooks_lock);
			real.free((unsigned char *)p - pad);
		}
		return n;
	}
	if (unlikely(size > CHUNK_SIZE_MAX - pad) || injected_failure())
		return fail(entry);
	spin_lock(&hooks_lock);
	track_remove(c, old_size, pad);
	spin_unlock(&hooks_lock);

	void *r = real.realloc((unsigned char *)p - pad, size + pad);
	if (unlikely(!r)) {
		spin_lock(&hooks_lock);
		track_insert(c, old_size, pad);
		spin_unlock(&hooks_lock);
		return fail(entry);
	}
	return index_new_chunk(r, pad, size, site, entry);
}

static void *realloc_any(void *p, size_t size, uintptr_t site, enum hook_entry entry)
{
	if (unlikely(!ready())) {
		void *n = boot_alloc(size);
		if (n && p)
			memcpy(n, p, boot_size(p) < size ? boot_size(p) : size);
		return n;
	}
	if (!p)
		return alloc_plain(size, site, entry);
	if (unlikely(is_boot(p))) {
		void *n = alloc_plain(size, site, entry);
		if (n)
			memcpy(n, p, boot_size(p) < size ? boot_size(p) : size);
		return n;
	}
	if (size == 0) { /* glibc: realloc(p, 0) frees p and returns NULL */
		free_chunk(p, entry);
		return NULL;
	}
	return realloc_chunk(p, size, site, entry);
}

/* glibc's memalign and aligned_alloc: an alignment that is not a power of two
 * is rounded up to one; an impossible one is EINVAL. */
static size_t glibc_alignment(size_t align)
{
	if (align > SIZE_MAX / 2 + 1)
		return 0;
	size_t a = CHUNK_ALIGN;
	while (a < align)
		a <<= 1;
	return a;
}

static void *memalign_any(size_t align, size_t size, uintptr_t site, enum hook_entry entry)
{
	size_t a = glibc_alignment(align);
	if (!a) {
		count_call(entry);
		errno = EINVAL;
		return NULL;
	}
	if (unlikely(!ready()))
		return boot_alloc_aligned(a, size);
	return alloc_aligned(a, size, site, entry);
}

static size_t page_size(void)
{
	static size_t page;
	if (!page)
		page = (size_t)sysconf(_SC_PAGESIZE);
	return page;
}

/* --- the entry points ----------------------------------------------------------- */

HOOK_EXPORT void *malloc(size_t size)
{
	if (unlikely(!ready()))
		return boot_alloc(size);
	return alloc_plain(size, CALLER_SITE(), ENTRY_malloc);
}

static inline void free_any(void *p, enum hook_entry entry)
{
	if (!p) {
		count_call(entry);
		return;
	}
	if (unlikely(is_boot(p)))
		return;
	free_chunk(p, entry);
}

HOOK_EXPORT void free(void *p)
{
	free_any(p, ENTRY_free);
}

HOOK_EXPORT void *calloc(size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		count_call(ENTRY_calloc);
		errno = ENOMEM;
		return NULL;
	}
	if (unlikely(!ready()))
		return boot_alloc(total);
	size_t pad = hooks_header_bytes;
	if (unlikely(total > CHUNK_SIZE_MAX - pad))
		return fail(ENTRY_calloc);
	/* The real calloc zeroes our header too; we overwrite it. */
	void *r = injected_failure() ? NULL : real.calloc(1, total + pad);
	if (unlikely(!r))
		return fail(ENTRY_calloc);
	return index_new_chunk(r, pad, total, CALLER_SITE(), ENTRY_calloc);
}

HOOK_EXPORT void *realloc(void *p, size_t size)
{
	return realloc_any(p, size, CALLER_SITE(), ENTRY_realloc);
}

HOOK_EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		count_call(ENTRY_reallocarray);
		errno = ENOMEM;
		return NULL;
	}
	return realloc_any(p, total, CALLER_SITE(), ENTRY_reallocarray);
}

HOOK_EXPORT void *memalign(size_t align, size_t size)
{
	return memalign_any(align, size, CALLER_SITE(), ENTRY_memalign);
}

HOOK_EXPORT void *aligned_alloc(size_t align, size_t size)
{
	return memalign_any(align, size, CALLER_SITE(), ENTRY_aligned_alloc);
}

HOOK_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
	/* POSIX: a power of two multiple of sizeof(void *); errno untouched. */
	if (align % sizeof(void *) || (align & (align - 1)) || !align) {
		count_call(ENTRY_posix_memalign);
		return EINVAL;
	}
	int saved = errno;
	void *p = memalign_any(align, size, CALLER_SITE(), ENTRY_posix_memalign);
	errno = saved;
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

HOOK_EXPORT void *valloc(size_t size)
{
	return memalign_any(page_size(), size, CALLER_SITE(), ENTRY_valloc);
}

HOOK_EXPORT void *pvalloc(size_t size)
{
	size_t page = page_size();
	size_t rounded = size ? (size + page - 1) & ~(page - 1) : page;
	if (rounded < size) { /* wrapped around */
		count_call(ENTRY_pvalloc);
		errno = ENOMEM;
		return NULL;
	}
	return memalign_any(page, rounded, CALLER_SITE(), ENTRY_pvalloc);
}

HOOK_EXPORT size_t malloc_usable_size(void *p)
{
	count_call(ENTRY_malloc_usable_size);
	if (!p)
		return 0;
	if (is_boot(p))
		return boot_size(p);
	size_t pad = chunk_pad(chunk_of_user(p));
	return real.malloc_usable_size((unsigned char *)p - pad) - pad;
}

/* --- for the C++ operators (cxx.c) ------------------------------------------------- */

void *hooks_alloc(size_t size, uintptr_t site, enum hook_entry entry)
{
	if (unlikely(!ready()))
		return boot_alloc(size);
	return alloc_plain(size, site, entry);
}

void *hooks_alloc_aligned(size_t align, size_t size, uintptr_t site, enum hook_entry entry)
{
	return memalign_any(align, size, site, entry);
}

void hooks_free(void *p, enum hook_entry entry)
{
	free_any(p, entry);
}

/* --- the query API ----------------------------------------------------------------- */

HOOK_EXPORT int heapindex_lookup(const void *addr, void **base, size_t *size,
                                 const void **site)
{
	if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) != READY)
		return 0;
	uintptr_t found_base = 0, found_site = 0;
	size_t found_size = 0;
	spin_lock(&hooks_lock);
	struct chunk *c = INDEX_FN(lookup)((uintptr_t)addr);
	if (c) {
		/* Copy under the lock: the chunk may be freed right after. */
		found_base = chunk_user(c);
		found_size = chunk_size(c);
		found_site = chunk_site(c);
		hooks_counters.lookups_found++;
	} else {
		hooks_counters.lookups_missed++;
	}
	spin_unlock(&hooks_lock);
	if (!c)
		return 0;
	if (base)
		*base = (void *)found_base;
	if (size)
		*size = found_size;
	if (site)
		*site = (const void *)found_site;
	return 1;
}
