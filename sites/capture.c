/* capture.c - HEAPINDEX_SITE=unwind:N and HEAPINDEX_SITE_SKIP: stacks taken
 * with libunwind inside malloc, and interned so a chunk keeps one 48-bit key.
 *
 * This code runs inside malloc, so:
 *  - its memory comes from mmap, never malloc;
 *  - libunwind (and dladdr, for the skip list) may call malloc on first use:
 *    a thread-local flag sends such nested allocations to the cheap path
 *    (their return address), so capture never recurses;
 *  - the intern table has its own spinlock, never held while calling out;
 *  - a capture holds the gate, a reader-writer lock, as a reader: fork
 *    takes it as the writer (fork.c), so no thread is inside libunwind
 *    (whose caches have locks of their own) or the intern table when the
 *    child is made, and the child finds them all free.
 */
#define UNW_LOCAL_ONLY
#include "sites.h"

#include <dlfcn.h>
#include <link.h>
#include <libunwind.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "lock.h"

int sites_slow;
static unsigned depth;             /* unwind:N, or 0 in ret mode */
/* Writers first: a fork waiting for the gate must not starve behind a
 * stream of captures. */
static pthread_rwlock_t gate = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
static const char *skip_list;      /* "xmalloc,xcalloc", or NULL */

static __thread int capturing __attribute__((tls_model("initial-exec")));

/* --- the skip list ---------------------------------------------------------
 * Each listed name is resolved once, at the first capture, to the address
 * range [start, start + st_size) of its definition (dlsym, then dladdr1 for
 * the symbol's size), so testing a frame is a few compares.  Asking dladdr
 * per frame instead cost a linear scan of the object's symbols on every
 * cache miss: 12-30x slower captures on cc1's ~29,000 dynamic symbols.
 * Limits: the functions must be in a dynamic symbol table (exported from a
 * library, or from an executable linked with -rdynamic); the first
 * definition in lookup order is used; a library dlopen()ed after the first
 * capture is not searched. */
#define SKIP_RANGES_MAX 32
static struct { uintptr_t start, end; } skip_ranges[SKIP_RANGES_MAX];
static int skip_range_count = -1; /* -1: not resolved yet */

static void resolve_skip_list(void)
{
	int n = 0;
	for (const char *p = skip_list; *p && n < SKIP_RANGES_MAX;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char name[256];
		if (len && len < sizeof name) {
			memcpy(name, p, len);
			name[len] = '\0';
			void *start = dlsym(RTLD_DEFAULT, name);
			Dl_info info;
			const ElfW(Sym) *sym = NULL;
			if (start && dladdr1(start, &info, (void **)&sym, RTLD_DL_SYMENT) && sym &&
			    sym->st_size) {
				skip_ranges[n].start = (uintptr_t)start;
				skip_ranges[n].end = (uintptr_t)start + sym->st_size;
				n++;
			}
		}
		p += len + (comma != NULL);
	}
	__atomic_store_n(&skip_range_count, n, __ATOMIC_RELEASE);
}

static int skipped(uintptr_t pc)
{
	int n = __atomic_load_n(&skip_range_count, __ATOMIC_ACQUIRE);
	if (n < 0) { /* racing threads resolve the same ranges: harmless */
		resolve_skip_list();
		n = skip_range_count;
	}
	/* pc - 1: a return address may be the first byte after its function. */
	for (int i = 0; i < n; i++)
		if (pc - 1 - skip_ranges[i].start < skip_ranges[i].end - skip_ranges[i].start)
			return 1;
	return 0;
}

/* --- interning ----------------------------------------------------------------
 * Records live forever in stacks.c's reserved range; a fixed table of chains
 * finds equal stacks.  Invariant: a record is fully written before it is
 * published in its chain, and records never change, so keys stay valid for
 * the whole process and readers (census, describe) need no lock. */
#define INTERN_BUCKETS 65536

static spinlock_t intern_lock;
static struct site_stack **buckets; /* INTERN_BUCKETS chains, from mmap */

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
	s = sites_stacks_take(sizeof *s + n * sizeof *f);
	if (s) {
		s->hash = h;
		s->depth = n;
		memcpy(s->frames, f, n * sizeof *f);
		s->next = buckets[h % INTERN_BUCKETS];
		__atomic_store_n(&buckets[h % INTERN_BUCKETS], s, __ATOMIC_RELEASE);
	}
found:
	spin_unlock(&intern_lock);
	return (uintptr_t)s; /* in the reserved range: a stack (sites.h) */
}

void sites_init(const struct heapindex_config *cfg)
{
	depth = cfg->site_depth;
	skip_list = cfg->site_skip;
	if (depth) {
		void *b = mmap(NULL, INTERN_BUCKETS * sizeof *buckets, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (b == MAP_FAILED || sites_stacks_reserve()) /* keep going with return addresses */
			depth = 0;
		else
			buckets = b;
	}
	if (depth || skip_list)
		__atomic_fetch_or(&sites_slow, SITES_SLOW_CAPTURE, __ATOMIC_RELAXED);
	extern void sites_census_init(const struct heapindex_config *cfg);
	sites_census_init(cfg);
}

void capture_fork_lock(void)
{
	pthread_rwlock_wrlock(&gate);
}

void capture_fork_unlock(void)
{
	pthread_rwlock_unlock(&gate);
}

/* glibc's rwlock knows its writer by thread id, which the child's one
 * thread does not share with the parent's: the child makes the gate anew
 * (it has no other thread to hold it). */
void capture_fork_child(void)
{
	pthread_rwlock_t fresh = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
	gate = fresh;
}

/* Frames above the allocator entry point: the hooks' own frames (this
 * function, malloc, ...) are dropped by finding ret, the entry point's return
 * address, among the frames libunwind reports. */
uintptr_t sites_capture_slow(uintptr_t ret)
{
	int slow = __atomic_load_n(&sites_slow, __ATOMIC_RELAXED);
	if (slow & SITES_SLOW_CENSUS)
		sites_census_start_writer();
	if (capturing || !(slow & SITES_SLOW_CAPTURE))
		return ret;
	capturing = 1;
	pthread_rwlock_rdlock(&gate);
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
	pthread_rwlock_unlock(&gate);
	capturing = 0;
	return site;
}
