/* hooks.c - the LD_PRELOAD malloc interposer every index shares.
 *
 * Each allocator entry point asks the next allocator (glibc, or jemalloc when
 * it is preloaded after us) for the program's bytes plus the metadata of the
 * placement (chunk.h: a header in front, a trailer behind, or nothing),
 * fills it in, and tells the index.  The fast path below is the header's;
 * side and trailer have their own (malloc_side and free_side, malloc_trailer
 * and free_trailer), reached through malloc_flagged and free_flagged (which
 * noop, whose default placement is side, has inlined into malloc and free;
 * the memtable, whose default is side too, has its side path inlined into
 * them instead, with the common cases of its index, and for it the
 * header's fast path is apart, malloc_header and free_header; the costs
 * are given below).  Only
 * the index differs between libheapindex-<name>.so files: this file is
 * compiled once per index with HEAPINDEX_INDEX=<name>, so the index calls
 * are direct.
 *
 * There is no process-wide lock on the way: statistics are counted per
 * thread (counters.h, in the thread's slot, threads.h), the indexes
 * synchronise themselves (index.h), and fork is made safe by bracketing
 * every index call (threads.h; an index with nothing fork could tear, noop,
 * goes without on the fast path).  hooks_lock remains for the optional
 * features that must change together with the index (census, verify) and
 * for an index that asks for serial calls (the trace recorder).
 *
 * What the C library promises is kept: 16-byte alignment, the alignment asked
 * of memalign and friends, zeroed calloc memory, ENOMEM on calloc overflow,
 * realloc(p, 0) freeing p, and a malloc_usable_size that counts only bytes the
 * program may use (never our header).  A pointer we did not hand out goes to
 * the next allocator untouched (foreign_pointer), and a program that brings
 * its own malloc has us step aside entirely (stepped_aside).
 */
#include "hooks.h"

#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "big_chunks.h"
#include "heapindex.h"
#include "index.h"
#include "lookup_cache.h"
#include "sites.h"
#include "verify.h"

#define HOOK_EXPORT __attribute__((visibility("default")))
#define RETURN_ADDRESS() ((uintptr_t)__builtin_return_address(0))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

spinlock_t hooks_lock;
struct heapindex_config hooks_config;
size_t hooks_header_bytes;
size_t hooks_meta_before, hooks_meta_after, hooks_meta_bytes;
int hooks_counts_bytes = 1;
const char *hooks_allocator = "unknown";
double hooks_start_seconds;
uint64_t hooks_serial_calls[ENTRY_COUNT];
struct thread_slot hooks_fallback_slot;
int index_wants_serial_hooks;

/* The size_pad word of a chunk made by the fast path, size bits aside: its
 * pad is hooks_header_bytes.  free's fast path takes only such chunks. */
static uint64_t plain_pad_bits;
/* plain_pad_bits less an event's weight (counters.h): free's fast path
 * subtracts it from the header word, which gives what the event spends of
 * the budget, size + weight, in one instruction. */
static uint64_t plain_spend_bits;

/* --- the next allocator ---------------------------------------------------- */

static struct {
	void *(*malloc)(size_t);
	void (*free)(void *);
	void *(*calloc)(size_t, size_t);
	void *(*realloc)(void *, size_t);
	void *(*memalign)(size_t, size_t);
	size_t (*malloc_usable_size)(void *);
} real;

/* --- a program that brings its own allocator ---------------------------------
 * A program that defines malloc, free, calloc and realloc (glibc's
 * documented minimum for replacing its allocator) wins over the preload,
 * but the entry points it left out (reallocarray, memalign, pvalloc, ...,
 * the C++ operators) would still reach us, and we would hand its chunks to
 * glibc.  So when, at initialisation, the dynamic linker's malloc or free
 * is not ours, the hooks step aside: every entry point forwards to the next
 * definition (glibc's, which calls the program's malloc where it calls
 * malloc at all), exactly what the program gets without us, and nothing is
 * indexed.  Said once on stderr.  The C++ operators (cxx.c) reach
 * alloc_plain, alloc_aligned and free_chunk, which then call the program's
 * own malloc and free, as libstdc++'s operators would. */
static int aside; /* set before READY, never changed after */
static struct {
	void *(*reallocarray)(void *, size_t, size_t);
	void *(*aligned_alloc)(size_t, size_t);
	int (*posix_memalign)(void **, size_t, size_t);
	void *(*valloc)(size_t);
	void *(*pvalloc)(size_t);
	void *(*program_malloc)(size_t); /* the dynamic linker's: the program's */
	void (*program_free)(void *);
} next;

static void step_aside_if_replaced(void);

static inline int stepped_aside(void)
{
	return unlikely(__atomic_load_n(&aside, __ATOMIC_RELAXED));
}

/* --- bootstrap --------------------------------------------------------------
 * dlsym, which finds the next allocator, itself calls calloc.  Until the real
 * functions are known, allocations come from this static arena: never freed,
 * zero from the start (so calloc needs no memset), recognised by address.
 * Each boot chunk has a chunk header whose pad code (BOOT_PAD_CODE, an
 * impossible alignment) no real chunk has, so free's fast path, which
 * checks the pad code, sends it to the general path. */

#define BOOT_ARENA_BYTES ((size_t)64 * 1024)
#define BOOT_PAD_CODE (CHUNK_TAG << 8 | PAD_CODE_BAD)
static _Alignas(16) unsigned char boot_arena[BOOT_ARENA_BYTES];
static size_t boot_used;

static int is_boot(const void *p)
{
	/* One unsigned compare: beyond the arena wraps around to a large
	 * value.  From the arena's last byte down, not from its first up, so
	 * that p is read, not copied: one instruction fewer on free's way. */
	return (uintptr_t)(boot_arena + BOOT_ARENA_BYTES - 1) - (uintptr_t)p < BOOT_ARENA_BYTES;
}

/* A boot chunk's user pointer is aligned to align (a power of two, at
 * least 16: memalign and friends may be called while bootstrapping too). */
static void *boot_alloc_aligned(size_t align, size_t size)
{
	if (size > BOOT_ARENA_BYTES || align > BOOT_ARENA_BYTES)
		goto exhausted;
	size_t at = __atomic_load_n(&boot_used, __ATOMIC_RELAXED), end;
	uintptr_t user;
	do {
		user = ((uintptr_t)boot_arena + at + CHUNK_HEADER_BYTES + align - 1) & ~(uintptr_t)(align - 1);
		end = user - (uintptr_t)boot_arena + ((size + 15) & ~(size_t)15);
		if (end > BOOT_ARENA_BYTES)
			goto exhausted;
	} while (!__atomic_compare_exchange_n(&boot_used, &at, end, 1, __ATOMIC_RELAXED,
	                                      __ATOMIC_RELAXED));
	struct chunk *c = chunk_of_user((void *)user);
	c->size_pad = (uint64_t)size | (uint64_t)BOOT_PAD_CODE << CHUNK_FIELD_BITS;
	return (void *)user;
exhausted:
	errno = ENOMEM;
	return NULL;
}

static void *boot_alloc(size_t size)
{
	return boot_alloc_aligned(CHUNK_ALIGN, size);
}

static size_t boot_size(const void *p)
{
	return chunk_size(chunk_of_user(p));
}

/* HEAPINDEX_FAIL_EVERY=N (test-only): every Nth call into the real
 * allocator fails as if it had returned NULL.  Checked before the index is
 * touched, so a failed call leaves the index as it was. */
static unsigned fail_every;
static unsigned long fail_calls;

static inline int injected_failure(const struct thread_slot *s)
{
	if (likely(!(thread_flags(s) & HOOKS_FAIL)))
		return 0;
	unsigned n = __atomic_load_n(&fail_every, __ATOMIC_RELAXED);
	return n && (__atomic_add_fetch(&fail_calls, 1, __ATOMIC_RELAXED) % n) == 0;
}

/* Under side: does this index keep records with sizes (index.h)?  Every
 * index with updates that takes side has records or at least tells its
 * chunks at remove (initialise() checks); one whose updates are empty
 * (noop) keeps nothing, and one that only tells (the memtable's start
 * masks, INDEX_SIDE_SIZELESS) keeps no size: constants, so the side fast
 * path has no test of them. */
static inline int side_records(void)
{
#if INDEX_UPDATES_EMPTY || INDEX_SIDE_SIZELESS
	return 0;
#else
	return 1;
#endif
}

/* Under side, before c's remove (chunk.h): the remove of an index with
 * updates then leaves c's size in chunk_pending (0 if it keeps none), or
 * CHUNK_SIZE_NONE if c is no chunk of ours. */
static inline void side_before_remove(struct chunk *c)
{
#if INDEX_UPDATES_EMPTY
	chunk_side_before_remove(c, 0);
#else
	chunk_side_before_remove(c, 1);
#endif
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

/* fork: the child gets one thread, so no lock may be held, nor an index
 * operation half done, by another thread at the moment of fork.  In the
 * order they nest: the sites' locks (held around stack capture, which runs
 * before a call enters an index), then no thread inside an index call
 * (threads_fork_prepare waits them out), hooks_lock, and the big-chunk
 * trees' locks (taken inside index calls; free by then, taken for form). */
static void before_fork(void)
{
	sites_fork_prepare();
	threads_fork_prepare();
	spin_lock(&hooks_lock);
	big_chunks_fork_prepare();
}

static void after_fork_parent(void)
{
	big_chunks_fork_parent();
	spin_unlock(&hooks_lock);
	threads_fork_parent();
	sites_fork_parent();
}

static void after_fork_child(void)
{
	big_chunks_fork_child();
	spin_unlock(&hooks_lock);
	threads_fork_child();
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

/* Our malloc or free is not the one the program calls: step aside (above). */
/* Does the dynamic linker's name sym (the address dlsym(RTLD_DEFAULT)
 * gave) stand for a definition outside this library?  Not for the address
 * alone: a non-PIE executable that takes malloc's address (python3 does)
 * exports an undefined malloc whose value is its PLT stub, and dlsym
 * answers that; the stub leads to the first definition, ours.  dladdr1
 * names defined symbols only, so a definition is a symbol of that object
 * starting exactly at the address. */
static int defined_elsewhere(void *sym, const Dl_info *self)
{
	Dl_info where;
	const ElfW(Sym) *entry = NULL;
	if (!sym || !dladdr1(sym, &where, (void **)&entry, RTLD_DL_SYMENT))
		return 0;
	return where.dli_fbase != self->dli_fbase && where.dli_saddr == sym && entry &&
	       entry->st_shndx != SHN_UNDEF;
}

static void step_aside_if_replaced(void)
{
	void *m = dlsym(RTLD_DEFAULT, "malloc"), *f = dlsym(RTLD_DEFAULT, "free");
	Dl_info self;
	/* Names, not addresses: in this library `malloc` is bound like any
	 * other reference, so it would be the program's too. */
	if (!dladdr((void *)step_aside_if_replaced, &self))
		return;
	if (!defined_elsewhere(m, &self) && !defined_elsewhere(f, &self))
		return;
	next.program_malloc = m ? (void *(*)(size_t))m : real.malloc;
	next.program_free = f ? (void (*)(void *))f : real.free;
	/* Not next_symbol: an allocator that lacks one is emulated below. */
	next.reallocarray = (void *(*)(void *, size_t, size_t))dlsym(RTLD_NEXT, "reallocarray");
	next.aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
	next.posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
	next.valloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "valloc");
	next.pvalloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "pvalloc");
	__atomic_store_n(&aside, 1, __ATOMIC_RELAXED);
	static const char msg[] = "heapindex: the program defines its own malloc; the hooks step "
	                          "aside and index nothing\n";
	if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0)
		return;
}

/* The optional features on, as slot flags. */
static unsigned features(void)
{
	return (sites_slow ? HOOKS_SITES : 0) | (sites_census_on ? HOOKS_CENSUS : 0) |
	       (hooks_config.verify_every ? HOOKS_VERIFY : 0) |
	       (hooks_config.fail_every ? HOOKS_FAIL : 0) |
	       (index_wants_serial_hooks ? HOOKS_SERIAL : 0) | (aside ? HOOKS_ASIDE : 0) |
	       (chunk_meta == META_TRAILER ? HOOKS_TRAILER : 0) |
	       (chunk_meta == META_SIDE ? HOOKS_SIDE : 0);
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
	step_aside_if_replaced();

	char err[512];
	int meta = -1;
	if (config_from_env(&hooks_config, err, sizeof err) ||
	    (meta = config_meta_for(&hooks_config, INDEX_OPS.name, INDEX_OPS.caps, err, sizeof err)) < 0)
		fatal(err);
	/* Before the index's init: chunks are read through these (chunk.h). */
	chunk_meta = (enum chunk_meta)meta;
	chunk_usable_size = real.malloc_usable_size;
	if (INDEX_FN(init)(&hooks_config, err, sizeof err))
		fatal(err);
	sites_init(&hooks_config);
	hooks_header_bytes = CHUNK_HEADER_BYTES + INDEX_OPS.links_bytes;
#if INDEX_LINKLESS
	if (INDEX_OPS.links_bytes)
		fatal("heapindex: this index keeps links in the chunk but index.h declares it "
		      "INDEX_LINKLESS: rebuild without that declaration");
#endif
#if INDEX_UPDATES_EMPTY
	if (INDEX_OPS.caps & INDEX_SIDE_RECORDS)
		fatal("heapindex: this index keeps records but index.h declares its updates "
		      "INDEX_UPDATES_EMPTY: rebuild without that declaration");
#else
	if (chunk_meta == META_SIDE && !(INDEX_OPS.caps & (INDEX_SIDE_RECORDS | INDEX_SIDE_TELLS)))
		fatal("heapindex: this index takes HEAPINDEX_META=side but keeps no records "
		      "(index.h, INDEX_SIDE_RECORDS): expected HEAPINDEX_META=header");
#if INDEX_SIDE_SIZELESS
	const int sizeless = 1;
#else
	const int sizeless = 0;
#endif
	if (sizeless != ((INDEX_OPS.caps & (INDEX_SIDE_RECORDS | INDEX_SIDE_TELLS)) == INDEX_SIDE_TELLS))
		fatal("heapindex: index.h's INDEX_SIDE_SIZELESS and this index's caps (INDEX_SIDE_TELLS "
		      "without records) disagree: rebuild with them matching");
#endif
	hooks_counts_bytes = chunk_meta != META_SIDE || side_records();
	hooks_meta_before = chunk_meta == META_HEADER ? hooks_header_bytes : 0;
	hooks_meta_after = chunk_meta == META_TRAILER ? META_TRAILER_BYTES : 0;
	hooks_meta_bytes = hooks_meta_before + hooks_meta_after;
	/* 1,025 mallocs and frees before the program runs, for one figure of
	 * the statistics: only when they are written. */
	if (hooks_config.stats_path)
		meta_cost_probe(real.malloc, real.free, real.malloc_usable_size);
	plain_pad_bits = (uint64_t)pad_encode(hooks_header_bytes) << CHUNK_FIELD_BITS;
	plain_spend_bits = plain_pad_bits - (uint64_t)COUNTER_EVENT_WEIGHT;
	hooks_start_seconds = monotonic_seconds();
	if (hooks_config.verify_every)
		verify_start(hooks_config.verify_every);
	lookup_cache_setup(hooks_config.lookup_cache);
	/* Before any thread attaches: a slot copies its flags at attach. */
	threads_slot_flags = features();
	hooks_fallback_slot.flags = threads_slot_flags | HOOKS_SHARED;
	thread_counters_init(&hooks_fallback_slot.counters);
	threads_retire_hook = counters_flush;
	__atomic_store_n(&state, READY, __ATOMIC_RELEASE);
	/* After READY: pthread_atfork may itself allocate. */
	pthread_atfork(before_fork, after_fork_parent, after_fork_child);
	/* Armed last, so the hooks' own setup never sees an injected failure. */
	__atomic_store_n(&fail_every, hooks_config.fail_every, __ATOMIC_RELEASE);
}

/* True once the real allocator can be used; false while bootstrapping. */
static inline int ready(void)
{
	if (likely(__atomic_load_n(&state, __ATOMIC_ACQUIRE) == READY))
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

/* --- counting (in the calling thread's slot, counters.h) ---------------------- */

/* Plain increments: only s's thread writes s, unless it is the shared
 * fallback slot. */
static inline void count(struct thread_slot *s, uint64_t *counter)
{
	if (unlikely(thread_flags(s) & HOOKS_SHARED))
		__atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
	else
		++*counter;
}

static inline void count_call(struct thread_slot *s, enum hook_entry entry)
{
	count(s, &s->counters.calls[entry]);
	if (unlikely(thread_flags(s) & HOOKS_SERIAL))
		__atomic_fetch_add(&hooks_serial_calls[entry], 1, __ATOMIC_RELAXED);
}

static void *fail(struct thread_slot *s, enum hook_entry entry)
{
	int locked = (thread_flags(s) & HOOKS_SERIAL) != 0; /* the recorder reads the count */
	if (locked)
		spin_lock(&hooks_lock);
	count_call(s, entry);
	count(s, &s->counters.failed_allocs);
	if (locked)
		spin_unlock(&hooks_lock);
	errno = ENOMEM;
	return NULL;
}

/* A chunk of size bytes, pad bytes in front of it, joins (dir 1) or leaves
 * (dir -1) the live heap by a call of this thread. */
static inline void count_chunk(struct thread_slot *s, int dir, size_t size, size_t pad)
{
	struct thread_counters *k = &s->counters;
	size_t meta = pad + hooks_meta_after;
	int64_t spend = (int64_t)size + COUNTER_EVENT_WEIGHT, left;
	if (dir > 0) {
		k->slow_in++;
		left = k->budget_in -= spend;
		meta_cost_sample(k, size, meta, 1);
	} else {
		k->slow_out++;
		left = k->budget_out -= spend;
	}
	if (unlikely(meta != hooks_meta_bytes)) {
		/* Flush at once: the meta bound counts meta_bytes per event. */
		k->extra_meta += dir * ((int64_t)meta - (int64_t)hooks_meta_bytes);
		counters_flush(s);
	} else if (unlikely(left < 0)) {
		counters_check(s, HOOKS_COUNTS_BYTES);
	}
}

/* The slot for a call on the general path: this thread's, attached now if
 * need be, or the fallback slot (flag HOOKS_SERIAL: used under hooks_lock). */
static inline struct thread_slot *call_slot(void)
{
	struct thread_slot *s = thread_slot();
	return likely(s != NULL) ? s : &hooks_fallback_slot;
}

/* --- the fast path ------------------------------------------------------------
 * malloc and free of a thread that has its slot, with no optional feature on,
 * of a chunk whose pad is just the header: what nearly every call is.
 *
 * malloc: one test of the slot's flags word (not attached, not initialised,
 * an optional feature, a fork under way, the hooks stepped aside: out of
 * line, malloc_flagged), the size check (size + header must not carry), the
 * thread's own counters -- one count that is both the call and the live
 * chunk, and the in-budget, spent by size + weight, whose overdraft every
 * ~30 chunks or 32 KiB has the thread look whether its live figures moved
 * enough to publish them for the peaks (counters.h) -- counted *before* the
 * real malloc, so that nothing but size lives across that call, and taken
 * back if it fails (malloc_failed; an overdraft takes the general order,
 * malloc_overdraft, so a look never publishes a chunk that failed), then
 * the real malloc of size + header, the header (two stores: size with the
 * pad code, a constant for an index without links, index.h; the return
 * address as site, whose top 16 bits, the index's, are 0 in user space),
 * and the index's insert, given the size, inside the fork bracket (two
 * plain increments and one test of the slot).  An index whose updates are
 * empty (noop) gets no call at all, and needs no bracket.  No lock, no
 * atomic instruction, no store to memory another thread writes.
 *
 * free: the NULL and flags tests, one 16-bit compare of the pad code with
 * the plain chunk's (aligned, boot and foreign chunks, and chunks a lookup
 * cache may hold, go to the general path, chunk.h), the counters (count,
 * and the out-budget less the header word less plain_spend_bits, which is
 * size + weight in one subtraction), the index's remove in the bracket
 * (a header body gives c back, index.h, so that only the slot is kept
 * across the call; a fork under way takes release_forking, apart), one
 * more load and test of the header (a lookup may have marked the chunk
 * since: 3 instructions, lookup_cache.h, and a marked chunk's bump is
 * apart too, free_marked; none for an index that answers no lookups), and
 * a tail call of the real free.
 *
 * Cost (make hook-cost, callgrind, x86-64 gcc 12): a malloc+free pair of
 * glibc alone is 141 instructions.  Under noop's default placement, side
 * (chunk.h), 177.0: +36.0 (was +50.0, reached through malloc_flagged and
 * free_flagged, with a count per call besides the budget).  noop's side
 * malloc is 18 instructions of ours: the slot's TLS load 2, size kept in a
 * callee-saved register for the header path's sake 4 (push, two moves,
 * pop), the flags word's load and test 3, the compare with side's flags 2,
 * the return address, which gcc loads early for the other flagged ways 1,
 * the budget 2, the real malloc's call and NULL test 3, the return 1.  Its
 * free is 16: the slot 2, the NULL test 2, the flags 3 and side's compare
 * 2, the boot arena's test 4 (from the arena's end down: one unsigned
 * compare, p not copied), the budget 2, the tail call of the real free 1.
 * The looks at the counters (one per 32 chunks each way) add 2 per pair.
 *
 * Under header, noop is 184.3: +43.3.  noop's malloc is 25 instructions
 * of ours: the slot's TLS load 2, keeping size in a callee-saved register
 * 3, the flags test 3, the size check 2, the counters 4, the real malloc's
 * argument, call and NULL test 4, the header 6 (return address, user
 * pointer, code, size, two stores), the return 1.  noop's free is 16: the slot 2, the NULL and flags tests 5,
 * the code test 2, the counters 5, the real pointer and the tail call 2.
 * The looks at the counters (one per ~30 chunks each way) add under 2 per
 * pair.  An index that is called (memtable 263.4, +79.1 over noop, was
 * 273.5, +89.2; now 271.4, since its header path went apart for side's
 * sake, below, and malloc and free reach it by a tail call): malloc 37
 * (three callee-saved registers, since size, the
 * chunk and the slot live across calls, 6; the bracket 4; the call with
 * its two arguments 3; the returned pointer 1), free 29 (one saved
 * register, the slot, 2; the bracket 4; the call and c's return 3; the
 * cached mark's test 3), and the memtable's insert and remove themselves
 * 34 + 20 (memtable/heap_index.c).  Tried and dropped (no fewer
 * instructions, gcc 12): the size check as the carry of size + weight or
 * size + header (gcc copies size first), insert returning the user pointer
 * with the slot read again after the real malloc (gcc then keeps size and
 * the slot in two registers, which with the stack's alignment costs what
 * three did), the bracket's end inside the index (its extra argument cost
 * the index register moves), and the index inlined into malloc and free
 * (its rare calls then make both save four registers); for noop's side
 * path, trailer's and the general path's calls apart, behind one function,
 * so that only that way would load the return address (gcc still loads it
 * before side's compare).  Not possible without giving up a promise: a
 * tail call of the real malloc (a refused malloc must be taken back out
 * of the counts, and the fast path counts before the call), and side's
 * compare ahead of header's test (noop's header path would pay it, +2 per
 * pair).  What is left of noop's 36 is the tests a malloc replacement
 * must make (flags, NULL, boot chunks), the budget that counts calls and
 * chunks exactly per thread and bounds the peaks, and the register
 * malloc's shared frame keeps; gcc tests the flags word with a load and a
 * test, where a compare with memory would save one instruction in each of
 * malloc and free (the same micro-operations).
 *
 * The memtable under side, its default (issue 11: at most +50 over noop):
 * 225.0 per pair, +48.0 over noop's side (was 286.0, +109.0).  Its side
 * path is noop's with the index's common cases inline (index.h,
 * INDEX_SIDE_INLINE; memtable/start_masks.h) and outside the fork
 * bracket, which they do not need: one atomic OR or compare-and-swap of a
 * table byte, no lock, nothing half done.  A case they refuse (a page of
 * the table to mark, a bigger chunk than any so far, a big or foreign
 * one, a held bin) goes to the index's body in the bracket
 * (side_insert_bracketed, free_side_bracketed), which tries the common
 * case again and then its slow path.  malloc is 41.6 instructions of ours:
 * the hooks' 17 (as noop's, but size kept on the stack) and the insert's
 * 24.6 (size against max_small_size 2; the pointer rotated right by 4 and
 * one compare for covered, flat and aligned 4; the bin 3; the
 * written-pages bit 8; the start bit 5; the locked OR 2); free is 40: the
 * hooks' 12 (noop's less the boot arena's test: a boot chunk, never
 * indexed, fails the remove and takes free_flagged's way) and the
 * remove's 28 (the same tests but the size, the byte's load and the two
 * bytes of the compare-and-swap 6, which expects the bit set and the lock
 * bit clear, so needs no test of its own, and its test 2).  Steps (make
 * hook-cost, side / header / trailer): the common cases inline and
 * unbracketed 286.0 -> 239.0 (263.4 / 464.9), the compare-and-swap
 * without its test 235.0, the boot test after the remove 231.0, the header
 * path apart (so that malloc saves one register, not three, and free
 * none) 225.0 / 271.4 / 456.9.  noop and critnib, whose side path is not
 * inline, are compiled as before; the bitmap's is inline too (below).
 *
 * The bitmap under header, its default until its side path went inline
 * (issue 11: thread_churn at most 1.5x none at 2 threads): 251.4 per pair, +67.1 over noop's header (was
 * 282.4, +98.1).  Its header path is the memtable's with the index's
 * common cases inline (index.h, INDEX_HEADER_INLINE; baselines/
 * bitmap_fast.h) and outside the fork bracket: one atomic OR of a bitmap
 * word, one atomic AND and the load of hazard_readers; what they refuse
 * (a new span, a page to note, a new largest chunk, a big one) goes to
 * the body in the bracket (header_insert_bracketed,
 * header_release_bracketed), which tries the common case again first.
 * Steps (make hook-cost, header / side / trailer): inline and
 * unbracketed 282.4 -> 260.5 (377.0 / 424.9, from 378.0 / 429.9); the
 * remove's wait for lookups, its one call, declared to return c nonnull,
 * so that free keeps nothing across it and saves no register: 254.4
 * (371.0 / 418.9); the insert's test of the word's page note alone, not
 * of the word first, so that the OR follows no load of its line: 251.4
 * (371.0 / 415.9).  Tried and dropped: the region table's span and
 * bitmap side by side in one array (262.4: the 16-byte stride costs a
 * shift on every probe).  The wall clock moved less than the count:
 * thread_churn (mk/hook_cost.sh, ROUNDS=7, three runs) 1.46 / 1.46 / 1.46
 * at 1 thread and 1.53 / 1.48 / 1.47 at 2 (was 1.49-1.52): what is left
 * over noop's header (1.11) looks like the two locked read-modify-writes
 * (perf's cpu-clock samples in the bitmap build's free: 46% just after
 * the lock btr; in malloc 22% just after the lock or), not instructions.
 *
 * The bitmap under side, its default now: its side common cases inline
 * as the memtable's (index.h, INDEX_SIDE_INLINE; bitmap_fast.h), no
 * usable size asked at insert: 371.0 -> 253.0 per pair, +76.0 over noop's
 * side; its header path apart as the memtable's, header 251.4 -> 268.4,
 * trailer 415.9 -> 433.9.  thread_churn (20M ops, median of 7 interleaved
 * rounds, none / bitmap header / bitmap side at 2 threads): 0.381 / 0.569
 * / 0.510 s, 1.49x and 1.34x; mk/hook_cost.sh's table under the
 * defaults: 1.36x at 1 thread, 1.37x at 2.
 */

/* The counters of a fast-path malloc (counted bytes joining the heap; size
 * and meta for the placement's cost samples) and free: one count that is
 * both the call and the live chunk, and the budget whose overdraft has the
 * thread look at its figures (counters.h).  counts_bytes is 0 where the
 * budget counts the calls, side without records (counters.h): a constant
 * on each path. */
static inline __attribute__((always_inline)) void count_fast_malloc(struct thread_slot *s, size_t counted,
                                                                     size_t size, size_t meta,
                                                                     int counts_bytes)
{
	struct thread_counters *k = &s->counters;
	if (counts_bytes)
		k->fast_mallocs++;
	if (unlikely((k->budget_in -= (int64_t)counted + COUNTER_EVENT_WEIGHT) < 0)) {
		meta_cost_overdraft(k, size, meta);
		counters_check(s, counts_bytes);
	}
}

static inline __attribute__((always_inline)) void count_fast_free(struct thread_slot *s, size_t size)
{
	struct thread_counters *k = &s->counters;
	k->fast_frees++; /* trailer's: bytes are counted */
	if (unlikely((k->budget_out -= (int64_t)size + COUNTER_EVENT_WEIGHT) < 0))
		counters_check(s, 1);
}

static __attribute__((noinline)) void *malloc_slow(size_t size, uintptr_t ret);
static __attribute__((noinline)) void free_slow(void *p);
static void *malloc_trailer(struct thread_slot *s, size_t size, uintptr_t site);
static void free_trailer(struct thread_slot *s, void *p);
static int is_boot(const void *p);

/* The fork bracket of a fast-path index call (threads.h), compiled out for
 * an index that does not need it (index.h). */
#if INDEX_UNBRACKETED
#define FAST_ENTER(s) ((void)(s))
#define FAST_ENTER_BEGIN(s) ((void)(s), 0)
#define FAST_LEAVE(s) ((void)(s))
#else
#define FAST_ENTER(s) thread_enter(s)
#define FAST_ENTER_BEGIN(s) thread_enter_begin(s) /* 1: call thread_wait_fork */
#define FAST_LEAVE(s) thread_leave(s)
#endif

/* The header's size, and the size_pad bits of a plain chunk, on the fast
 * path: constants for an index that keeps no links in the chunk (index.h),
 * whose ops initialise() checks. */
#if INDEX_LINKLESS
#define FAST_HEADER_BYTES CHUNK_HEADER_BYTES
#define FAST_PLAIN_BITS ((uint64_t)pad_encode(CHUNK_HEADER_BYTES) << CHUNK_FIELD_BITS)
#else
#define FAST_HEADER_BYTES hooks_header_bytes
#define FAST_PLAIN_BITS plain_pad_bits
#endif

#if INDEX_HEADER_INLINE
/* The index's inline common case of a header insert (index.h,
 * INDEX_HEADER_INLINE) said no: its whole body, in the fork bracket.  The
 * slot is read again here, so that malloc keeps nothing but c across the
 * common case. */
static __attribute__((noinline)) void *header_insert_bracketed(struct chunk *c, size_t size)
{
	struct thread_slot *s = thread_self();
	thread_enter(s);
	INDEX_HEADER_INSERT(c, size);
	thread_leave(s);
	return c + 1;
}
#endif

/* The rest of a fast-path malloc once the real malloc gave r: the header,
 * then the index in the fork bracket (no call at all for an index whose
 * updates are empty; outside it, inline, the common case of an index that
 * declares it needs none, index.h). */
static inline __attribute__((always_inline)) void *fast_chunk(struct thread_slot *s, unsigned char *r,
                                                             size_t size, uintptr_t site)
{
	struct chunk *c = (struct chunk *)(r + FAST_HEADER_BYTES) - 1;
	c->size_pad = (uint64_t)size | FAST_PLAIN_BITS;
	c->site_links = site; /* its top 16 bits, the index's, are 0 in user space */
#if INDEX_UPDATES_EMPTY
	(void)s;
#elif INDEX_HEADER_INLINE
	(void)s;
	if (unlikely(!INDEX_HEADER_INSERT_FAST(c, size)))
		return header_insert_bracketed(c, size);
#else
	/* Keep c, not r nor size, across the index call: one register. */
	__asm__("" : "+r"(c));
	FAST_ENTER(s);
	INDEX_HEADER_INSERT(c, size); /* header only here: no placement test (index.h) */
	FAST_LEAVE(s);
#endif
	return c + 1;
}

/* A fast-path free once the index let go of c: the lookup cache's mark
 * (none for an index that never notes a chunk, index.h), and the real
 * free.  A marked chunk's way is apart, as a tail call, so that free keeps
 * nothing across a call of its own. */
#if !INDEX_NEVER_CACHED
static __attribute__((noinline)) void free_marked(struct chunk *c)
{
	lookup_cache_bump(chunk_user(c));
	real.free((unsigned char *)chunk_user(c) - FAST_HEADER_BYTES);
}
#endif

static inline __attribute__((always_inline)) void fast_released(struct chunk *c)
{
#if !INDEX_NEVER_CACHED
	/* A lookup may have marked c since its pad code was read. */
	if (lookup_cache_marked_header(c))
		return free_marked(c);
#endif
	real.free((unsigned char *)chunk_user(c) - FAST_HEADER_BYTES);
}

#if INDEX_HEADER_INLINE
/* The index's inline common case of a header remove (index.h,
 * INDEX_HEADER_INLINE) said no, having changed nothing: its whole body, in
 * the fork bracket, then the rest of free. */
static __attribute__((noinline)) void header_release_bracketed(struct thread_slot *s, struct chunk *c,
                                                               size_t size)
{
	thread_enter(s);
	c = INDEX_HEADER_REMOVE(c, size);
	thread_leave(s);
	fast_released(c);
}
#elif !INDEX_UPDATES_EMPTY
/* A fork is under way: wait in the bracket's way, apart, so that free
 * makes no call before the index's and keeps nothing but its slot across
 * that one. */
static __attribute__((noinline)) void release_forking(struct thread_slot *s, struct chunk *c, size_t size)
{
	thread_wait_fork(s);
	c = INDEX_HEADER_REMOVE(c, size);
	FAST_LEAVE(s);
	fast_released(c);
}
#endif

/* The rest of a fast-path free once counted: the index in the fork bracket
 * (none for empty updates), then fast_released.  The header body returns
 * c (index.h), which is then not kept across its call. */
static inline __attribute__((always_inline)) void fast_release(struct thread_slot *s, struct chunk *c,
                                                               size_t size)
{
#if INDEX_UPDATES_EMPTY
	(void)s, (void)size;
#elif INDEX_HEADER_INLINE
	/* Outside the fork bracket (index.h): one atomic AND. */
	struct chunk *done = INDEX_HEADER_REMOVE_FAST(c, size);
	if (unlikely(!done))
		return header_release_bracketed(s, c, size);
	c = done;
#else
	if (unlikely(FAST_ENTER_BEGIN(s)))
		return release_forking(s, c, size);
#if !INDEX_HEADER_BODIES
	/* Keep c, not p too, across the index call, whose remove does not
	 * give c back: one register. */
	__asm__("" : "+r"(c));
#endif
	c = INDEX_HEADER_REMOVE(c, size);
	FAST_LEAVE(s);
#endif
	fast_released(c);
}

/* malloc's in-budget ran out (every ~30 chunks or 32 KiB, and at every
 * chunk over 31 KiB): undo the fast path's count, then count as the
 * general path does, after the real malloc, so that the look, which may
 * publish the live figures for the peaks (counters.h), never publishes a
 * chunk whose malloc failed. */
/* Take back the count malloc's fast path made before the real malloc. */
static inline void uncount_fast_malloc(struct thread_slot *s, size_t size, int counts_bytes)
{
	if (counts_bytes)
		s->counters.fast_mallocs--;
	s->counters.budget_in += (int64_t)size + COUNTER_EVENT_WEIGHT;
}

static __attribute__((noinline)) void *malloc_overdraft(struct thread_slot *s, size_t size, uintptr_t site)
{
	uncount_fast_malloc(s, size, 1);
	unsigned char *r = real.malloc(size + FAST_HEADER_BYTES); /* malloc tested the carry */
	if (unlikely(!r))
		return fail(s, ENTRY_malloc);
	count_fast_malloc(s, size, size, FAST_HEADER_BYTES, 1);
	return fast_chunk(s, r, size, site);
}

/* The real malloc failed after the fast path counted the chunk. */
static __attribute__((noinline)) void *malloc_failed(size_t size, int counts_bytes)
{
	struct thread_slot *s = thread_self();
	uncount_fast_malloc(s, size, counts_bytes);
	return fail(s, ENTRY_malloc);
}

/* free's out-budget ran out: the look, then the rest of free. */
static __attribute__((noinline)) void free_overdraft(void *p, struct thread_slot *s)
{
	counters_check(s, 1);
	struct chunk *c = chunk_of_user(p);
	fast_release(s, c, c->size_pad - plain_pad_bits);
}

/* --- the side fast path ---------------------------------------------------------
 * Under side the chunk carries nothing (chunk.h): the user pointer is the
 * allocator's own.  malloc is the header's fast path without the header:
 * the count (before the real malloc, taken back if that fails, as there),
 * the real malloc of size itself, and, for an index that keeps records,
 * its insert, which copies size and site from this thread's pending
 * record.  free: the index's remove, which hands the record's size back
 * or says the pointer was never ours (it then goes to the allocator
 * untouched, counted as a call only), the count, and the real free.
 *
 * An index whose updates are empty (noop, index.h) keeps no records and so
 * has no size to count at free: under side the hooks count its calls and
 * chunks but no bytes (hooks_counts_bytes; its statistics leave the live
 * bytes out), and its malloc and free are one budget update each -- every
 * event spends just its weight, so the budget alone counts the calls and
 * chunks, counters.h -- and the real call, nothing else; no index call, no
 * fork bracket, no frame of their own (malloc keeps size in a register
 * across the real malloc only because the header path shares its frame).
 * Counting the allocator's usable size instead took a
 * malloc_usable_size at malloc and another at free (97 instructions per
 * pair over header, with the way here through malloc_meta); and a wild
 * pointer now reaches glibc's free, with its own check, not glibc's
 * malloc_usable_size, which has none.
 *
 * No size check: nothing is added to size, and a size beyond
 * CHUNK_SIZE_MAX (2^48), which a record could not hold, is refused by the
 * allocator first (user space is 2^47 bytes). */

/* The bytes a side chunk of size bytes counts: the size asked for, which
 * an index with records hands back at free; none without records. */
static inline __attribute__((always_inline)) size_t side_counted(size_t size)
{
	return side_records() ? size : 0;
}

#if INDEX_SIDE_INLINE
/* The index's inline common case of a side insert (index.h,
 * INDEX_SIDE_INLINE) said no: its whole body, in the fork bracket.  The
 * slot is read again here, so that malloc keeps only size across the real
 * malloc. */
static __attribute__((noinline)) void *side_insert_bracketed(void *r, size_t size)
{
	struct thread_slot *s = thread_self();
	thread_enter(s);
	INDEX_SIDE_INSERT(chunk_of_user(r), size);
	thread_leave(s);
	return r;
}
#endif

/* The rest of a side malloc once the real malloc gave r: the index's
 * insert in the fork bracket (none for empty updates; outside it, inline,
 * the common case of an index that declares it needs none). */
static inline __attribute__((always_inline)) void *side_chunk(struct thread_slot *s, void *r, size_t size,
                                                             uintptr_t site)
{
#if INDEX_UPDATES_EMPTY
	(void)s, (void)size, (void)site;
#elif INDEX_SIDE_INLINE
	(void)s, (void)site;
	if (unlikely(!INDEX_SIDE_INSERT_FAST((uintptr_t)r, size)))
		return side_insert_bracketed(r, size);
#else
	chunk_pending.size = size;
	chunk_pending.site_word = (uint64_t)site; /* top 16 bits 0 in user space, as in a header */
	FAST_ENTER(s);
	INDEX_SIDE_INSERT(chunk_of_user(r), size);
	FAST_LEAVE(s);
#endif
	return r;
}

/* A side malloc whose in-budget ran out: the general order, as
 * malloc_overdraft for header. */
static __attribute__((noinline)) void *malloc_side_overdraft(struct thread_slot *s, size_t size, uintptr_t site)
{
	size_t counted = side_counted(size);
	uncount_fast_malloc(s, counted, side_records());
	void *r = real.malloc(size);
	if (unlikely(!r))
		return fail(s, ENTRY_malloc);
	count_fast_malloc(s, counted, size, 0, side_records());
	return side_chunk(s, r, size, site);
}

/* malloc_side and free_side: inlined into malloc_flagged and free_flagged
 * for an index with empty updates, which need no frame; apart for the
 * others, whose frame (the registers kept across the index call) would
 * otherwise be set up for the trailer's and the general path's calls too
 * (+16 instructions per pair under trailer, make hook-cost). */
#if INDEX_UPDATES_EMPTY || INDEX_SIDE_INLINE
#define SIDE_PATH static inline __attribute__((always_inline))
#else
#define SIDE_PATH static __attribute__((noinline))
#endif

SIDE_PATH void *malloc_side(struct thread_slot *s, size_t size, uintptr_t site)
{
	struct thread_counters *k = &s->counters;
	size_t counted = side_counted(size);
	if (side_records()) /* without records the budget counts the call */
		k->fast_mallocs++;
	if (unlikely((k->budget_in -= (int64_t)counted + COUNTER_EVENT_WEIGHT) < 0))
		return malloc_side_overdraft(s, size, site);
	void *r = real.malloc(size);
	if (unlikely(!r))
		return malloc_failed(counted, side_records());
	return side_chunk(s, r, size, site);
}

#if !INDEX_UPDATES_EMPTY
/* p, freed under side, was never in the index: the allocator's own
 * pointer (or a bad one, which the allocator then judges). */
static __attribute__((noinline)) void free_side_foreign(struct thread_slot *s, void *p)
{
	count_call(s, ENTRY_free);
	real.free(p);
}
#endif

/* A side free whose out-budget ran out: the look, then the real free. */
static __attribute__((noinline)) void free_side_overdraft(void *p, struct thread_slot *s)
{
	counters_check(s, side_records());
	real.free(p);
}

/* The end of a side free once the index let go of p (size: what it
 * handed back, 0 without records): the count, and the real free. */
static inline __attribute__((always_inline)) void free_side_counted(struct thread_slot *s, void *p,
                                                                   size_t size)
{
	struct thread_counters *k = &s->counters;
	if (side_records()) /* as in malloc_side */
		k->fast_frees++;
	if (unlikely((k->budget_out -= (int64_t)size + COUNTER_EVENT_WEIGHT) < 0))
		return free_side_overdraft(p, s); /* a tail call, as the real free's */
	real.free(p);
}

#if INDEX_SIDE_INLINE
/* The index's inline common case of a side remove said no: its whole
 * body, in the fork bracket, then the rest of free. */
static __attribute__((noinline)) void free_side_bracketed(struct thread_slot *s, void *p)
{
	thread_enter(s);
	int ours = INDEX_FN(remove_side)(chunk_of_user(p));
	thread_leave(s);
	if (unlikely(!ours))
		return free_side_foreign(s, p);
	free_side_counted(s, p, 0);
}
#endif

SIDE_PATH void free_side(struct thread_slot *s, void *p)
{
	size_t size = 0;
#if INDEX_SIDE_INLINE
	/* Outside the fork bracket (index.h): one atomic compare-and-swap. */
	if (unlikely(!INDEX_SIDE_REMOVE_FAST((uintptr_t)p)))
		return free_side_bracketed(s, p);
#elif !INDEX_UPDATES_EMPTY
	side_before_remove(chunk_of_user(p));
	__asm__("" : "+r"(p));
	FAST_ENTER(s);
	INDEX_FN(remove)(chunk_of_user(p));
	FAST_LEAVE(s);
	if (unlikely((size = chunk_pending.size) == CHUNK_SIZE_NONE))
		return free_side_foreign(s, p);
#endif
	free_side_counted(s, p, size);
}

/* Calls with a flag set in the slot (threads.h): a placement's fast path
 * (side's first: the default of the indexes that take it) or the general
 * path.  Apart, so that malloc and free test the flags word and keep
 * nothing of it; but for an index whose updates are empty (noop), whose
 * side path keeps nothing either: inlined there, so that noop's default
 * path makes no call of its own (-12 instructions per pair, make
 * hook-cost). */
#if INDEX_UPDATES_EMPTY
#define FLAGGED_PATH static inline __attribute__((always_inline))
#else
#define FLAGGED_PATH static __attribute__((noinline))
#endif

FLAGGED_PATH void *malloc_flagged(struct thread_slot *s, size_t size, uintptr_t ret)
{
	unsigned flags = thread_flags(s);
	if (likely(flags == HOOKS_SIDE))
		return malloc_side(s, size, ret);
	if (flags == HOOKS_TRAILER)
		return malloc_trailer(s, size, ret);
	return malloc_slow(size, ret);
}

/* Does side's path take this free?  NULL and boot chunks take the general
 * path in every placement. */
static inline int side_takes_free(const struct thread_slot *s, const void *p)
{
	return likely(thread_flags(s) == HOOKS_SIDE) && likely(p != NULL) && likely(!is_boot(p));
}

FLAGGED_PATH void free_flagged(void *p, struct thread_slot *s)
{
	unsigned flags = thread_flags(s);
	if (side_takes_free(s, p))
		return free_side(s, p);
	if (flags == HOOKS_TRAILER && p && !is_boot(p))
		return free_trailer(s, p);
	return free_slow(p);
}

/* The pad code of a header, bytes 6 and 7 of size_pad, read alone: free
 * compares it with one instruction and adds the whole word to its budget. */
typedef uint16_t __attribute__((may_alias)) chunk_code_word;
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the pad code is bytes 6 and 7 of size_pad");

/* The header's fast paths: inlined into malloc and free, but apart, as
 * tail calls, for an index whose side path is inline (index.h,
 * INDEX_SIDE_INLINE), so that malloc and free under side, its default
 * placement, keep no more registers than that path needs: one across the
 * real malloc, none in free (make hook-cost memtable side 231.0 -> 225.0;
 * header 263.4 -> 271.4, trailer 464.9 -> 456.9).  Their arguments in the
 * order malloc's and free's own arrive: no moves before the jump. */
#if INDEX_SIDE_INLINE
#define HEADER_PATH static __attribute__((noinline))
#define HEADER_SITE(ret) (ret)
#else
/* Inlined, malloc_header reads malloc's return address itself, when it
 * needs it: after the real malloc, so that it lives in no register across
 * that call (noop's header path: -4 per pair). */
#define HEADER_PATH static inline __attribute__((always_inline))
#define HEADER_SITE(ret) ((void)(ret), RETURN_ADDRESS())
#endif

HEADER_PATH void *malloc_header(size_t size, struct thread_slot *s, uintptr_t ret)
{
	/* Sizes that wrap fail; a size between CHUNK_SIZE_MAX (2^48) and
	 * that would not fit the header, but no allocator grants it (user
	 * space is 2^47 bytes): the real malloc fails first. */
	if (unlikely(size > SIZE_MAX - FAST_HEADER_BYTES))
		return fail(s, ENTRY_malloc);
	/* Counted before the real malloc, so that an index with nothing to
	 * update keeps only size across that call; undone if it fails. */
	struct thread_counters *k = &s->counters;
	k->fast_mallocs++;
	if (unlikely((k->budget_in -= (int64_t)size + COUNTER_EVENT_WEIGHT) < 0))
		return malloc_overdraft(s, size, HEADER_SITE(ret));
	unsigned char *r = real.malloc(size + FAST_HEADER_BYTES);
	if (unlikely(!r))
		return malloc_failed(size, 1);
	return fast_chunk(s, r, size, HEADER_SITE(ret));
}

HOOK_EXPORT void *malloc(size_t size)
{
	struct thread_slot *s = thread_self();
	if (unlikely(thread_flags(s))) {
#if INDEX_SIDE_BODIES
		/* The default placement of an index with side bodies (the
		 * memtable): straight to side's path, not through
		 * malloc_flagged's second call. */
		if (likely(thread_flags(s) == HOOKS_SIDE))
			return malloc_side(s, size, RETURN_ADDRESS());
#endif
		return malloc_flagged(s, size, RETURN_ADDRESS());
	}
	return malloc_header(size, s, RETURN_ADDRESS());
}

HEADER_PATH void free_header(void *p, struct thread_slot *s)
{
	struct chunk *c = chunk_of_user(p);
	/* Only a plain chunk's exact code: an aligned, boot or foreign chunk,
	 * or one a lookup cache may hold (chunk.h), has another. */
	if (unlikely(((const chunk_code_word *)&c->size_pad)[3] != (FAST_PLAIN_BITS >> CHUNK_FIELD_BITS)))
		return free_slow(p);
	/* The header word less the code and the weight is what the chunk
	 * spends, its size + the weight: one subtraction from memory. */
	int64_t spend = (int64_t)(c->size_pad - plain_spend_bits);
	size_t size = (size_t)(spend - COUNTER_EVENT_WEIGHT);
	struct thread_counters *k = &s->counters;
	k->fast_frees++;
	if (unlikely((k->budget_out -= spend) < 0))
		return free_overdraft(p, s);
#if INDEX_UPDATES_EMPTY
	/* p, not c, to the end: gcc would compute c early and move it. */
	__asm__("" : "+r"(p));
	c = chunk_of_user(p);
#endif
	fast_release(s, c, size);
}

HOOK_EXPORT void free(void *p)
{
	struct thread_slot *s = thread_self();
	if (unlikely(!p) || unlikely(thread_flags(s))) {
#if INDEX_SIDE_INLINE
		/* The index's common case first, with no test of the boot arena:
		 * a boot chunk is never indexed, so its remove fails and it
		 * takes free_flagged's way, as does every other failure. */
		if (likely(thread_flags(s) == HOOKS_SIDE) && likely(p != NULL) &&
		    likely(INDEX_SIDE_REMOVE_FAST((uintptr_t)p)))
			return free_side_counted(s, p, 0);
#endif
		return free_flagged(p, s);
	}
	return free_header(p, s);
}

/* --- the general path ------------------------------------------------------------ */

/* c joins, or leaves, everything that follows the live heap: the index, the
 * thread's counters (a call of entry, unless ENTRY_COUNT), and with the
 * features that need it (under hooks_lock) the census of sites and
 * verify's shadow.  Inside the fork bracket; the shared slot needs none, as
 * fork takes hooks_lock after the brackets drained (and the bracket comes
 * before the lock, never after: a thread must not wait for fork holding
 * the lock fork takes).  Under the lock the call is counted just before the
 * index hears of the chunk, which the trace recorder relies on.
 *
 * Under side a leaving chunk's size is what its remove left in
 * chunk_pending (side_before_remove: 0 for an index without records,
 * which counts no bytes), not the size passed; and when an
 * index with records had none of it (CHUNK_SIZE_NONE), p was never ours:
 * only the call is counted, and track returns 0.  Otherwise 1. */
static int track(struct thread_slot *s, struct chunk *c, int dir, size_t size, size_t pad,
                 enum hook_entry entry)
{
	int shared = (thread_flags(s) & HOOKS_SHARED) != 0, locked = (thread_flags(s) & HOOKS_UNDER_LOCK) != 0;
	/* An index may map memory for its table and, refused, fall back (a
	 * two-level leaf, a bitmap region) or ignore a failed madvise: the
	 * allocation succeeds all the same, so errno must not change. */
	int *err = &errno, saved = *err;
	if (likely(!shared))
		thread_enter(s);
	if (unlikely(locked))
		spin_lock(&hooks_lock);
	if (entry != ENTRY_COUNT)
		count_call(s, entry);
	int ours = 1;
	if (dir > 0) {
		INDEX_FN(insert)(c);
	} else {
		INDEX_FN(remove)(c);
		if (chunk_meta == META_SIDE)
			ours = (size = chunk_pending.size) != CHUNK_SIZE_NONE;
		lookup_cache_note_removed(c); /* free, realloc: before the real allocator has c */
	}
	if (likely(ours))
		count_chunk(s, dir, size, pad);
	if (unlikely(locked)) {
		if (dir > 0) {
			sites_census_insert(c);
			verify_note_insert(c);
		} else if (ours) {
			sites_census_remove(c);
			verify_note_remove(c);
		}
		spin_unlock(&hooks_lock);
	}
	if (likely(!shared))
		thread_leave(s);
	*err = saved;
	return ours;
}

/* The size the statistics count for a new chunk c of size bytes, as free
 * can learn it again: the size asked for (header: in the header; side with
 * records: from the record remove hands back), but under trailer the bytes
 * before the trailer, and under side without records (noop) none (the side
 * fast path, above). */
static inline size_t counted_size(struct chunk *c, size_t size)
{
	if (chunk_likely_header())
		return size;
	if (chunk_meta == META_SIDE)
		return side_counted(size);
	return chunk_size(c);
}

/* real_chunk is a chunk of the next allocator, pad bytes of it before the
 * user data (and hooks_meta_after bytes of room after them). */
static void *index_new_chunk(struct thread_slot *s, void *real_chunk, size_t pad, size_t size,
                             uintptr_t site, enum hook_entry entry)
{
	unsigned char *user = (unsigned char *)real_chunk + pad;
	struct chunk *c = chunk_of_user(user);
	chunk_init(c, size, pad, site);
	track(s, c, 1, counted_size(c, size), pad, entry);
	return user;
}

/* *total = size bytes for the program and the placement's: 0 if that
 * is beyond what a chunk can be. */
static inline int with_meta(size_t size, size_t pad, size_t *total)
{
	size_t meta = pad + hooks_meta_after;
	if (unlikely(meta > CHUNK_SIZE_MAX || size > CHUNK_SIZE_MAX - meta))
		return 0;
	*total = size + meta;
	return 1;
}

void *alloc_plain(size_t size, uintptr_t site, enum hook_entry entry)
{
	if (unlikely(!ready()))
		return boot_alloc(size);
	if (stepped_aside())
		return next.program_malloc(size);
	struct thread_slot *s = call_slot();
	size_t pad = hooks_meta_before, total;
	if (unlikely(!with_meta(size, pad, &total)))
		return fail(s, entry);
	void *r = injected_failure(s) ? NULL : real.malloc(total);
	if (unlikely(!r))
		return fail(s, entry);
	return index_new_chunk(s, r, pad, size, site, entry);
}

void *alloc_aligned(size_t align, size_t size, uintptr_t site, enum hook_entry entry)
{
	if (align <= CHUNK_ALIGN)
		return alloc_plain(size, site, entry);
	if (unlikely(!ready()))
		return boot_alloc_aligned(align, size);
	if (stepped_aside())
		return next.aligned_alloc ? next.aligned_alloc(align, (size + align - 1) & ~(align - 1))
		                          : real.memalign(align, size);
	struct thread_slot *s = call_slot();
	/* The user pointer must be aligned and have the header, if any, below
	 * it; without one it is the allocator's own pointer. */
	size_t pad = chunk_meta == META_HEADER ? chunk_pad_for(hooks_header_bytes, align, size) : 0, total;
	if (unlikely((chunk_meta == META_HEADER && !pad) || !with_meta(size, pad, &total)))
		return fail(s, entry);
	void *r = injected_failure(s) ? NULL : real.memalign(align, total);
	if (unlikely(!r))
		return fail(s, entry);
	return index_new_chunk(s, r, pad, size, site, entry);
}

static int lookup_bracketed(struct thread_slot *s, const void *addr, struct chunk_info *info);

/* Is p a pointer the hooks did not hand out?  The pad code's check
 * (chunk.h) decides for the plain code (free's fast path trusts it too).
 * Any other code, plausible (an aligned chunk) or not, is put to the index
 * when it answers lookups, which costs a lookup on the rare frees that come
 * here: a plausible code whose chunk the index does not know is foreign,
 * and an implausible one whose chunk it knows means the program wrote over
 * the header below p (a buffer underflow): nothing can free that chunk
 * safely, so we stop, as glibc does when it finds its own metadata
 * corrupt.  Without an answer (noop, a lookup that could not tell, or a
 * zero-size chunk, which no lookup finds), the code decides. */
static int foreign_pointer(const void *p)
{
	/* Trailer puts no check value below the pointer: not checked (chunk.h
	 * says what it would cost).  Side needs no check here: p is the
	 * allocator's own pointer whether ours or not, so malloc_usable_size
	 * answers the allocator's figure either way, and free and realloc
	 * learn from the index's remove whether p was ours (track). */
	if (!chunk_likely_header())
		return 0;
	const struct chunk *c = chunk_of_user(p);
	unsigned code = chunk_pad_code(c);
	int plausible = chunk_code_is_ours(code, (uintptr_t)p, hooks_header_bytes);
	/* A zero-size chunk contains no address, so no lookup finds it. */
	if (likely(plausible && (code == (unsigned)(plain_pad_bits >> CHUNK_FIELD_BITS) ||
	                         chunk_size(c) == 0)))
		return 0;
	struct thread_slot *s;
	struct chunk_info info = { .no_site = 0 };
	int answer = INDEX_UNKNOWN;
	if ((INDEX_OPS.caps & INDEX_ANSWERS_LOOKUPS) && (s = thread_slot()))
		answer = lookup_bracketed(s, p, &info);
	if (answer == INDEX_UNKNOWN)
		return !plausible;
	int known = answer == INDEX_FOUND && info.base == (uintptr_t)p;
	if (plausible || !known)
		return !known;
	char msg[160];
	int n = snprintf(msg, sizeof msg, "heapindex: %p: the header below this live chunk was "
	                 "overwritten (a write before its start); cannot free or resize it\n", p);
	if (n > 0 && write(STDERR_FILENO, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1) < 0)
		abort();
	abort();
}

void free_chunk(void *p, enum hook_entry entry)
{
	if (unlikely(!ready()))
		return; /* the program frees a boot chunk (or NULL) this early */
	if (stepped_aside()) {
		next.program_free(p);
		return;
	}
	struct thread_slot *s = call_slot();
	if (!p || unlikely(is_boot(p))) {
		count_call(s, entry);
		return;
	}
	if (unlikely(foreign_pointer(p))) {
		/* Not ours: what the program would get without the hooks. */
		count_call(s, entry);
		real.free(p);
		return;
	}
	struct chunk *c = chunk_of_user(p);
	size_t pad = chunk_pad(c), size = 0;
	if (chunk_meta == META_SIDE)
		side_before_remove(c); /* track learns the size from remove */
	else
		size = chunk_size(c);
	/* Under side p is the allocator's own pointer, ours or not (track
	 * says which, for the counts): it gets p either way. */
	track(s, c, -1, size, pad, entry);
	real.free((unsigned char *)p - pad);
}

/* --- the fast path of trailer ------------------------------------------------------
 * malloc and free of a thread whose only flag is HOOKS_TRAILER: the header
 * fast path's steps (the same counters), with the trailer for metadata.
 * The size counted is the bytes before the trailer, which free learns
 * again from the allocator (one malloc_usable_size each way). */

static __attribute__((noinline)) void *malloc_trailer(struct thread_slot *s, size_t size, uintptr_t site)
{
	if (unlikely(size > CHUNK_SIZE_MAX - META_TRAILER_BYTES))
		return fail(s, ENTRY_malloc);
	unsigned char *r = real.malloc(size + META_TRAILER_BYTES);
	if (unlikely(!r))
		return fail(s, ENTRY_malloc);
	/* The site is this malloc's return address, whose top 16 bits (the
	 * index's) are 0 in user space: no mask, as on the header's path. */
	size_t counted = real.malloc_usable_size(r) - META_TRAILER_BYTES;
	*(uint64_t *)(r + counted) = (uint64_t)site;
	count_fast_malloc(s, counted, size, META_TRAILER_BYTES, 1);
	FAST_ENTER(s);
	INDEX_FN(insert)(chunk_of_user(r));
	FAST_LEAVE(s);
	return r;
}

static __attribute__((noinline)) void free_trailer(struct thread_slot *s, void *p)
{
	struct chunk *c = chunk_of_user(p);
	size_t size = chunk_size(c);
	FAST_ENTER(s);
	INDEX_FN(remove)(c);
	FAST_LEAVE(s);
	count_fast_free(s, size);
	real.free(p);
}

static __attribute__((noinline)) void *malloc_slow(size_t size, uintptr_t ret)
{
	if (ready() && stepped_aside())
		return real.malloc(size);
	return alloc_plain(size, sites_capture(ret), ENTRY_malloc);
}

static __attribute__((noinline)) void free_slow(void *p)
{
	if (ready() && stepped_aside())
		return real.free(p);
	free_chunk(p, ENTRY_free);
}

static void *realloc_foreign(void *p, size_t size, uintptr_t site, enum hook_entry entry);

/* p is a live chunk of ours, size > 0 (under side: perhaps not, which the
 * index's remove tells, index.h).  The chunk leaves the index before the
 * real realloc (which may move or overwrite it) and comes back after; if the
 * real realloc fails the old chunk is re-indexed unchanged. */
static void *realloc_chunk(struct thread_slot *s, void *p, size_t size, uintptr_t site,
                           enum hook_entry entry)
{
	struct chunk *c = chunk_of_user(p);
	size_t pad = chunk_pad(c), old_size = chunk_meta == META_SIDE ? 0 : chunk_size(c);
	if (unlikely(pad != hooks_meta_before)) {
		/* Over-aligned: realloc owes it no alignment, so it becomes a
		 * plain chunk rather than carry its pad (as large as the
		 * alignment: 2 MiB for 2 MiB) and copy it on every realloc. */
		void *n = alloc_plain(size, site, entry);
		if (n) {
			memcpy(n, p, old_size < size ? old_size : size);
			track(s, c, -1, old_size, pad, ENTRY_COUNT);
			real.free((unsigned char *)p - pad);
		}
		return n;
	}
	size_t total;
	if (unlikely(!with_meta(size, pad, &total)) || injected_failure(s))
		return fail(s, entry);
	uintptr_t old_site = 0;
	if (chunk_meta == META_SIDE) {
		side_before_remove(c);
		if (!track(s, c, -1, 0, pad, ENTRY_COUNT))
			return realloc_foreign(p, size, site, entry); /* the index never had it */
		old_size = chunk_pending.size; /* the record's (noop: usable) */
		old_site = (uintptr_t)chunk_pending.site_word;
	} else {
		track(s, c, -1, old_size, pad, ENTRY_COUNT);
	}
	void *r = real.realloc((unsigned char *)p - pad, total);
	if (unlikely(!r)) {
		/* The old chunk is intact; under side its record went with the
		 * remove and comes back as it was (noop: with no site). */
		if (chunk_meta == META_SIDE)
			chunk_init(c, old_size, 0, old_site);
		track(s, c, 1, old_size, pad, ENTRY_COUNT);
		return fail(s, entry);
	}
	return index_new_chunk(s, r, pad, size, site, entry);
}

/* p is not ours (foreign_pointer): the next allocator resizes it (and
 * aborts, as it would without us, if p is not its own either), and the
 * program gets a chunk of ours with those bytes. */
static void *realloc_foreign(void *p, size_t size, uintptr_t site, enum hook_entry entry)
{
	void *n = alloc_plain(size, site, entry);
	if (!n)
		return NULL; /* p untouched, as realloc promises */
	void *r = real.realloc(p, size);
	if (!r) {
		int saved = errno;
		free_chunk(n, ENTRY_COUNT);
		errno = saved;
		return NULL;
	}
	memcpy(n, r, size);
	real.free(r);
	return n;
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
	if (unlikely(foreign_pointer(p)))
		return realloc_foreign(p, size, site, entry);
	return realloc_chunk(call_slot(), p, size, site, entry);
}

/* A call rejected before the allocator is asked: counted, errno set. */
static void *reject(enum hook_entry entry, int error)
{
	if (ready())
		count_call(call_slot(), entry);
	errno = error;
	return NULL;
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
	if (!a)
		return reject(entry, EINVAL);
	return alloc_aligned(a, size, site, entry);
}

static size_t page_size(void)
{
	static size_t page;
	if (!page)
		page = (size_t)sysconf(_SC_PAGESIZE);
	return page;
}

/* --- the other entry points ------------------------------------------------------- */

/* Stepped aside over an allocator that lacks these (glibc has them all). */
static void *realloc_aside(void *p, size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return real.realloc(p, total);
}

static int posix_memalign_aside(void **out, size_t align, size_t size)
{
	if (align % sizeof(void *) || (align & (align - 1)) || !align)
		return EINVAL;
	void *p = real.memalign(align, size);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

/* The entry points' first test: forward when the program brought its own
 * malloc (once initialised; the boot arena serves the earliest calls). */
#define FORWARD_IF_ASIDE(call)                        \
	do {                                          \
		if (ready() && stepped_aside())       \
			return call;                  \
	} while (0)

HOOK_EXPORT void *calloc(size_t n, size_t size)
{
	FORWARD_IF_ASIDE(real.calloc(n, size));
	size_t total;
	if (__builtin_mul_overflow(n, size, &total))
		return reject(ENTRY_calloc, ENOMEM);
	if (unlikely(!ready()))
		return boot_alloc(total);
	struct thread_slot *s = call_slot();
	size_t pad = hooks_meta_before, with;
	if (unlikely(!with_meta(total, pad, &with)))
		return fail(s, ENTRY_calloc);
	/* The real calloc zeroes our metadata too; we overwrite it. */
	void *r = injected_failure(s) ? NULL : real.calloc(1, with);
	if (unlikely(!r))
		return fail(s, ENTRY_calloc);
	return index_new_chunk(s, r, pad, total, sites_capture(RETURN_ADDRESS()), ENTRY_calloc);
}

HOOK_EXPORT void *realloc(void *p, size_t size)
{
	FORWARD_IF_ASIDE(real.realloc(p, size));
	return realloc_any(p, size, sites_capture(RETURN_ADDRESS()), ENTRY_realloc);
}

HOOK_EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
	FORWARD_IF_ASIDE(next.reallocarray ? next.reallocarray(p, n, size) : realloc_aside(p, n, size));
	size_t total;
	if (__builtin_mul_overflow(n, size, &total))
		return reject(ENTRY_reallocarray, ENOMEM);
	return realloc_any(p, total, sites_capture(RETURN_ADDRESS()), ENTRY_reallocarray);
}

HOOK_EXPORT void *memalign(size_t align, size_t size)
{
	FORWARD_IF_ASIDE(real.memalign(align, size));
	return memalign_any(align, size, sites_capture(RETURN_ADDRESS()), ENTRY_memalign);
}

HOOK_EXPORT void *aligned_alloc(size_t align, size_t size)
{
	FORWARD_IF_ASIDE(next.aligned_alloc ? next.aligned_alloc(align, size) : real.memalign(align, size));
	return memalign_any(align, size, sites_capture(RETURN_ADDRESS()), ENTRY_aligned_alloc);
}

HOOK_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
	FORWARD_IF_ASIDE(next.posix_memalign ? next.posix_memalign(out, align, size)
	                                     : posix_memalign_aside(out, align, size));
	/* POSIX: a power of two multiple of sizeof(void *); errno untouched. */
	int saved = errno;
	if (align % sizeof(void *) || (align & (align - 1)) || !align) {
		reject(ENTRY_posix_memalign, EINVAL);
		errno = saved;
		return EINVAL;
	}
	void *p = memalign_any(align, size, sites_capture(RETURN_ADDRESS()), ENTRY_posix_memalign);
	errno = saved;
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

HOOK_EXPORT void *valloc(size_t size)
{
	FORWARD_IF_ASIDE(next.valloc ? next.valloc(size) : real.memalign(page_size(), size));
	return memalign_any(page_size(), size, sites_capture(RETURN_ADDRESS()), ENTRY_valloc);
}

HOOK_EXPORT void *pvalloc(size_t size)
{
	size_t page = page_size();
	size_t rounded = size ? (size + page - 1) & ~(page - 1) : page;
	FORWARD_IF_ASIDE(next.pvalloc ? next.pvalloc(size) : rounded < size ? NULL : real.memalign(page, rounded));
	if (rounded < size) /* wrapped around */
		return reject(ENTRY_pvalloc, ENOMEM);
	return memalign_any(page, rounded, sites_capture(RETURN_ADDRESS()), ENTRY_pvalloc);
}

HOOK_EXPORT size_t malloc_usable_size(void *p)
{
	if (p && is_boot(p))
		return boot_size(p);
	if (!ready())
		return 0;
	if (stepped_aside())
		return real.malloc_usable_size(p);
	count_call(call_slot(), ENTRY_malloc_usable_size);
	if (!p)
		return 0;
	if (unlikely(foreign_pointer(p)))
		return real.malloc_usable_size(p);
	/* Only the program's bytes: not the header, nor the trailer. */
	size_t pad = chunk_pad(chunk_of_user(p));
	return real.malloc_usable_size((unsigned char *)p - pad) - pad - hooks_meta_after;
}

/* --- the query API ----------------------------------------------------------------- */

/* Signal safety: the index call is bracketed like any other, so a lookup
 * made by a signal handler that interrupted this thread inside an index
 * operation sees depth > 1 and never waits (index.h); it answers 0 when the
 * index could not tell without waiting. */
static int lookup_bracketed(struct thread_slot *s, const void *addr, struct chunk_info *info)
{
	thread_enter(s);
	int answer = INDEX_FN(lookup)((uintptr_t)addr, info);
	thread_leave(s);
	return answer;
}

HOOK_EXPORT int heapindex_lookup(const void *addr, void **base, size_t *size,
                                 const void **site)
{
	if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) != READY)
		return 0;
	struct thread_slot *s = thread_slot();
	if (!s)
		return 0; /* a signal handler interrupted this thread's attach */
	struct chunk_info info = { .no_site = site == NULL };
	thread_enter(s);
	int answer = lookup_cached(s, (uintptr_t)addr, INDEX_FN(lookup), &info);
	thread_leave(s);
	if (answer != INDEX_FOUND) {
		s->counters.lookups_missed++;
		return 0;
	}
	s->counters.lookups_found++;
	if (base)
		*base = (void *)info.base;
	if (size)
		*size = info.size;
	if (site)
		*site = (const void *)info.site;
	return 1;
}
