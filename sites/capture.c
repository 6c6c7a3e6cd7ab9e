/* capture.c - HEAPINDEX_SITE=unwind:N and HEAPINDEX_SITE_SKIP: stacks taken
 * with libunwind inside malloc, and interned so a chunk keeps one 48-bit key.
 *
 * This code runs inside malloc, so:
 *  - its memory comes from mmap, never malloc;
 *  - libunwind (and dladdr, for the skip list) may call malloc on first use:
 *    a thread-local flag sends such nested allocations to the cheap path
 *    (their return address), so capture never recurses;
 *  - the intern table has its own spinlock, never held while calling out,
 *    and taken around fork so a child never inherits it held.
 */
#define UNW_LOCAL_ONLY
#include "sites.h"

#include <dlfcn.h>
#include <libunwind.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "lock.h"

int sites_slow;
static unsigned depth;             /* unwind:N, or 0 in ret mode */
static const char *skip_list;      /* "xmalloc,xcalloc", or NULL */

static __thread int capturing __attribute__((tls_model("initial-exec")));

/* --- the skip list ---------------------------------------------------------
 * Whether a frame lies in a skipped function is decided once per code address
 * with dladdr (so skipped functions must be in a dynamic symbol table: exported
 * from a library, or from an executable linked with -rdynamic) and remembered
 * in a direct-mapped cache; a collision just asks dladdr again. */
#define SKIP_CACHE_SLOTS 4096
static uintptr_t skip_cache[SKIP_CACHE_SLOTS]; /* pc | 1 if skipped; 0 empty */

static int name_listed(const char *name)
{
	size_t n = strlen(name);
	for (const char *p = skip_list; *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len == n && memcmp(p, name, n) == 0)
			return 1;
		p += len + (comma != NULL);
	}
	return 0;
}

static int skipped(uintptr_t pc)
{
	size_t slot = (pc >> 2) % SKIP_CACHE_SLOTS;
	uintptr_t cached = __atomic_load_n(&skip_cache[slot], __ATOMIC_RELAXED);
	if ((cached & ~(uintptr_t)1) == pc)
		return (int)(cached & 1);
	Dl_info info;
	/* pc - 1: a return address may be the first byte after its function. */
	int skip = dladdr((void *)(pc - 1), &info) && info.dli_sname && name_listed(info.dli_sname);
	__atomic_store_n(&skip_cache[slot], pc | (uintptr_t)skip, __ATOMIC_RELAXED);
	return skip;
}

/* --- interning ----------------------------------------------------------------
 * Records live forever in an arena of mmap'd blocks; a fixed table of chains
 * finds equal stacks.  Invariant: a record is fully written before it is
 * published in its chain, and records never change, so keys stay valid for
 * the whole process and readers (census, describe) need no lock. */
#define INTERN_BUCKETS 65536
#define ARENA_BLOCK ((size_t)1 << 20)

static spinlock_t intern_lock;
static struct site_stack **buckets; /* INTERN_BUCKETS chains, from mmap */
static unsigned char *arena, *arena_end;

static void *arena_take(size_t bytes)
{
	bytes = (bytes + 15) & ~(size_t)15;
	if ((size_t)(arena_end - arena) < bytes) {
		void *block = mmap(NULL, ARENA_BLOCK, PROT_READ | PROT_WRITE,
		                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (block == MAP_FAILED)
			return NULL;
		arena = block;
		arena_end = arena + ARENA_BLOCK;
	}
	void *p = arena;
	arena += bytes;
	return p;
}

static uint32_t hash_frames(const uintptr_t *f, unsigned n)
{
	uint64_t h = 0x9e3779b97f4a7c15u ^ n;
	for (unsigned i = 0; i < n; i++)
		h = (h ^ f[i]) * 0xff51afd7ed558ccdu;
	return (uint32_t)(h ^ (h >> 32));
}

/* The key of the stack f[0..n), or 0 if out of memory. */
static uintptr_t intern(const uintptr_t *f, unsigned n)
{
	uint32_t h = hash_frames(f, n);
	struct site_stack *s;
	spin_lock(&intern_lock);
	for (s = buckets[h % INTERN_BUCKETS]; s; s = s->next)
		if (s->hash == h && s->depth == n && !memcmp(s->frames, f, n * sizeof *f))
			goto found;
	s = arena_take(sizeof *s + n * sizeof *f);
	if (s) {
		s->hash = h;
		s->depth = n;
		memcpy(s->frames, f, n * sizeof *f);
		s->next = buckets[h % INTERN_BUCKETS];
		__atomic_store_n(&buckets[h % INTERN_BUCKETS], s, __ATOMIC_RELEASE);
	}
found:
	spin_unlock(&intern_lock);
	/* Arena addresses are user-space addresses: below 2^47 (sites.h). */
	return s && (uintptr_t)s < SITE_STACK_TAG ? (uintptr_t)s | SITE_STACK_TAG : 0;
}

static void before_fork(void) { spin_lock(&intern_lock); }
static void after_fork(void) { spin_unlock(&intern_lock); }

void sites_init(const struct heapindex_config *cfg)
{
	depth = cfg->site_depth;
	skip_list = cfg->site_skip;
	if (depth) {
		void *b = mmap(NULL, INTERN_BUCKETS * sizeof *buckets, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (b == MAP_FAILED) /* keep going with return addresses */
			depth = 0;
		else
			buckets = b;
	}
	sites_slow = depth || skip_list;
	extern void sites_census_init(const struct heapindex_config *cfg);
	sites_census_init(cfg);
}

/* Registered from a constructor, not sites_init: pthread_atfork may allocate,
 * and sites_init runs inside the first malloc. */
__attribute__((constructor)) static void sites_constructor(void)
{
	pthread_atfork(before_fork, after_fork, after_fork);
}

/* Frames above the allocator entry point: the hooks' own frames (this
 * function, malloc, ...) are dropped by finding ret, the entry point's return
 * address, among the frames libunwind reports. */
uintptr_t sites_capture_slow(uintptr_t ret)
{
	if (capturing)
		return ret;
	capturing = 1;
	void *raw[SITES_DEPTH_MAX + 32];
	int n = unw_backtrace(raw, (int)(sizeof raw / sizeof *raw));
	int at = 0;
	while (at < n && (uintptr_t)raw[at] != ret)
		at++;
	uintptr_t site = ret;
	if (at < n) {
		if (skip_list)
			while (at + 1 < n && skipped((uintptr_t)raw[at]))
				at++;
		if (!depth) {
			site = (uintptr_t)raw[at];
		} else {
			unsigned k = (unsigned)(n - at) < depth ? (unsigned)(n - at) : depth;
			uintptr_t key = intern((const uintptr_t *)(raw + at), k);
			site = key ? key : (uintptr_t)raw[at];
		}
	}
	capturing = 0;
	return site;
}
