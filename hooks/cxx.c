/* cxx.c - the C++ allocation operators: all twenty that libstdc++ exports
 * on LP64 (plain, array, nothrow, sized, aligned new and delete), in C.
 *
 * Why the hooks define them: libstdc++'s operators call malloc and free, so
 * over glibc they reach the hooks anyway.  But `--allocator jemalloc`
 * preloads libjemalloc.so.2 behind the hooks, and jemalloc exports the
 * operators too: a C++ program's `new` then went straight to jemalloc,
 * unindexed and without a header, while jemalloc's `delete` tail-calls
 * free, which landed in the hooks, which read a header that was not there.
 * Preloaded first, these definitions win over jemalloc's and libstdc++'s,
 * and send every operator through the hooks' own paths (hooks.h), whatever
 * allocator is underneath.
 *
 * In C, because the hook libraries are preloaded into C programs (gcc,
 * python) and must not bring libstdc++ with them.  What only the C++
 * runtime has is looked up when first needed, with dlsym: a program that
 * calls operator new has the runtime loaded.
 *
 * C++ semantics, as libstdc++'s (libsupc++/new_op*.cc, del_op*.cc):
 *  - operator new never returns NULL: on failure it calls the new-handler
 *    (std::get_new_handler) and retries, and throws std::bad_alloc
 *    (std::__throw_bad_alloc) when there is none.  The exception passes
 *    through these C frames (compiled with -fexceptions; no lock is held);
 *  - a zero-byte request gets a one-byte chunk (a unique pointer);
 *  - the aligned forms take a power-of-two alignment (else bad_alloc) and
 *    go through memalign's path: the chunk is aligned, the header below it;
 *  - the nothrow forms return NULL instead of throwing.  A new-handler may
 *    throw, which they must catch and C cannot: when a handler is installed
 *    and the allocation fails, they call the runtime's own nothrow operator,
 *    which calls the throwing one (these) inside try and catch;
 *  - every delete frees (sizes and alignments are not needed: the header
 *    knows), NULL is a no-op.
 * Calls are counted as malloc, aligned_alloc and free (the statistics and
 * traces know those entry points); sites are the callers of the operators.
 *
 * A program may replace some of the operators itself (define them in its
 * executable), as C++ allows.  libstdc++'s derived operators (arrays,
 * sized, nothrow deletes) call the primary ones through the dynamic
 * linker, so a program replacing `operator new` and `operator delete` only
 * gets its own for arrays and sized deletes too.  These operators keep that
 * promise: if any of the twenty is defined outside this library, every
 * derived operator here calls its primary as libstdc++'s would ("forward"
 * mode); otherwise ("own" mode, the usual case) they go straight to the
 * hooks, and the site is the caller's.  Decided once, at the first call.
 */
#include "hooks.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include "sites.h"

#define CXX_EXPORT __attribute__((visibility("default")))
#define CALLER_SITE() sites_capture((uintptr_t)__builtin_return_address(0))
#define likely(x) __builtin_expect(!!(x), 1)

/* The operators, primaries first, by their mangled names. */
#define CXX_OPERATORS(X)                                                                   \
	X(NEW, "_Znwm") X(NEW_ALIGNED, "_ZnwmSt11align_val_t")                             \
	X(DELETE, "_ZdlPv") X(DELETE_ALIGNED, "_ZdlPvSt11align_val_t")                     \
	X(NEW_ARRAY, "_Znam") X(NEW_ARRAY_ALIGNED, "_ZnamSt11align_val_t")                 \
	X(NEW_NOTHROW, "_ZnwmRKSt9nothrow_t") X(NEW_ARRAY_NOTHROW, "_ZnamRKSt9nothrow_t")  \
	X(NEW_ALIGNED_NOTHROW, "_ZnwmSt11align_val_tRKSt9nothrow_t")                       \
	X(NEW_ARRAY_ALIGNED_NOTHROW, "_ZnamSt11align_val_tRKSt9nothrow_t")                 \
	X(DELETE_ARRAY, "_ZdaPv") X(DELETE_SIZED, "_ZdlPvm") X(DELETE_ARRAY_SIZED, "_ZdaPvm") \
	X(DELETE_NOTHROW, "_ZdlPvRKSt9nothrow_t") X(DELETE_ARRAY_NOTHROW, "_ZdaPvRKSt9nothrow_t") \
	X(DELETE_ARRAY_ALIGNED, "_ZdaPvSt11align_val_t")                                   \
	X(DELETE_SIZED_ALIGNED, "_ZdlPvmSt11align_val_t")                                  \
	X(DELETE_ARRAY_SIZED_ALIGNED, "_ZdaPvmSt11align_val_t")                            \
	X(DELETE_ALIGNED_NOTHROW, "_ZdlPvSt11align_val_tRKSt9nothrow_t")                   \
	X(DELETE_ARRAY_ALIGNED_NOTHROW, "_ZdaPvSt11align_val_tRKSt9nothrow_t")

enum cxx_op {
#define OP_ENUM(id, name) OP_##id,
	CXX_OPERATORS(OP_ENUM)
#undef OP_ENUM
	OP_COUNT
};

static const char *const op_name[OP_COUNT] = {
#define OP_NAME(id, name) name,
	CXX_OPERATORS(OP_NAME)
#undef OP_NAME
};

/* --- the C++ runtime, found when first needed ---------------------------------- */

typedef void (*new_handler)(void);
typedef new_handler (*get_new_handler_fn)(void);

static new_handler current_new_handler(void)
{
	static get_new_handler_fn get_new_handler;
	get_new_handler_fn get = __atomic_load_n(&get_new_handler, __ATOMIC_ACQUIRE);
	if (!get) {
		get = (get_new_handler_fn)dlsym(RTLD_DEFAULT, "_ZSt15get_new_handlerv");
		if (!get)
			return NULL; /* no runtime: no handler */
		__atomic_store_n(&get_new_handler, get, __ATOMIC_RELEASE);
	}
	new_handler handler = get();
	return handler;
}

static __attribute__((noreturn)) void throw_bad_alloc(void)
{
	void (*thrower)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "_ZSt17__throw_bad_allocv");
	if (thrower)
		thrower();
	static const char msg[] = "heapindex: operator new: out of memory, and no C++ runtime "
	                          "to throw std::bad_alloc\n";
	if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0)
		abort();
	abort();
}

/* The runtime's own definition of operator op (not ours, not jemalloc's):
 * looked up in the object that defines std::get_new_handler. */
static void *runtime_operator(enum cxx_op op)
{
	static void *found[OP_COUNT];
	void *f = __atomic_load_n(&found[op], __ATOMIC_ACQUIRE);
	if (f)
		return f;
	void *anchor = dlsym(RTLD_DEFAULT, "_ZSt15get_new_handlerv");
	Dl_info info;
	if (!anchor || !dladdr(anchor, &info) || !info.dli_fname)
		return NULL;
	void *runtime = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
	if (!runtime)
		return NULL;
	f = dlsym(runtime, op_name[op]);
	dlclose(runtime); /* still loaded: the program links it */
	if (f)
		__atomic_store_n(&found[op], f, __ATOMIC_RELEASE);
	return f;
}

/* --- own or forward ---------------------------------------------------------------- */

enum { UNDECIDED, OWN, FORWARD };
static int mode = UNDECIDED;
static void *global_op[OP_COUNT]; /* what the dynamic linker binds each name to */

static int decide_mode(void)
{
	Dl_info self, where;
	int m = OWN;
	if (!dladdr((void *)decide_mode, &self))
		return OWN;
	for (int i = 0; i < OP_COUNT; i++) {
		void *g = dlsym(RTLD_DEFAULT, op_name[i]);
		__atomic_store_n(&global_op[i], g, __ATOMIC_RELAXED);
		if (!g || !dladdr(g, &where) || where.dli_fbase != self.dli_fbase)
			m = FORWARD;
	}
	__atomic_store_n(&mode, m, __ATOMIC_RELEASE);
	return m;
}

static inline int own(void)
{
	int m = __atomic_load_n(&mode, __ATOMIC_ACQUIRE);
	if (likely(m == OWN))
		return 1;
	return (m == UNDECIDED ? decide_mode() : m) == OWN;
}

#define PRIMARY(op) __atomic_load_n(&global_op[OP_##op], __ATOMIC_RELAXED)

/* --- the paths ---------------------------------------------------------------------- */

static inline int power_of_two(size_t align)
{
	return align && !(align & (align - 1));
}

/* align 0: a plain chunk.  NULL only if the allocation failed. */
static inline void *allocate(size_t size, size_t align, uintptr_t site)
{
	if (!size)
		size = 1;
	return align ? alloc_aligned(align, size, site, ENTRY_aligned_alloc)
	             : alloc_plain(size, site, ENTRY_malloc);
}

/* operator new: never NULL. */
static void *new_throwing(size_t size, size_t align, uintptr_t site)
{
	if (align && !power_of_two(align))
		throw_bad_alloc();
	for (;;) {
		void *p = allocate(size, align, site);
		if (likely(p))
			return p;
		new_handler handler = current_new_handler();
		if (!handler)
			throw_bad_alloc();
		handler(); /* may throw: through us, to the caller */
	}
}

/* operator new(..., nothrow_t): NULL rather than an exception.  op is the
 * nothrow operator itself, nothrow its tag argument. */
static void *new_nothrow(size_t size, size_t align, uintptr_t site, enum cxx_op op,
                         const void *nothrow)
{
	if (align && !power_of_two(align))
		return NULL;
	if (own()) {
		void *p = allocate(size, align, site);
		if (likely(p) || !current_new_handler())
			return p;
	}
	/* A new-handler to run (or forward mode): the runtime's nothrow
	 * operator calls the throwing one inside try and catch. */
	void *f = runtime_operator(op);
	if (f)
		return align ? ((void *(*)(size_t, size_t, const void *))f)(size, align, nothrow)
		             : ((void *(*)(size_t, const void *))f)(size, nothrow);
	for (;;) { /* no runtime, so no exception to catch */
		new_handler handler = current_new_handler();
		if (!handler)
			return NULL;
		handler();
		void *p = allocate(size, align, site);
		if (p)
			return p;
	}
}

/* --- new ---------------------------------------------------------------------------- */

CXX_EXPORT void *cxx_new(size_t size) __asm__("_Znwm");
CXX_EXPORT void *cxx_new(size_t size)
{
	return new_throwing(size, 0, CALLER_SITE());
}

CXX_EXPORT void *cxx_new_aligned(size_t size, size_t align) __asm__("_ZnwmSt11align_val_t");
CXX_EXPORT void *cxx_new_aligned(size_t size, size_t align)
{
	return new_throwing(size, align, CALLER_SITE());
}

CXX_EXPORT void *cxx_new_array(size_t size) __asm__("_Znam");
CXX_EXPORT void *cxx_new_array(size_t size)
{
	uintptr_t site = CALLER_SITE();
	if (likely(own()))
		return new_throwing(size, 0, site);
	return ((void *(*)(size_t))PRIMARY(NEW))(size);
}

CXX_EXPORT void *cxx_new_array_aligned(size_t size, size_t align) __asm__("_ZnamSt11align_val_t");
CXX_EXPORT void *cxx_new_array_aligned(size_t size, size_t align)
{
	uintptr_t site = CALLER_SITE();
	if (likely(own()))
		return new_throwing(size, align, site);
	return ((void *(*)(size_t, size_t))PRIMARY(NEW_ALIGNED))(size, align);
}

CXX_EXPORT void *cxx_new_nothrow(size_t size, const void *nt) __asm__("_ZnwmRKSt9nothrow_t");
CXX_EXPORT void *cxx_new_nothrow(size_t size, const void *nt)
{
	return new_nothrow(size, 0, CALLER_SITE(), OP_NEW_NOTHROW, nt);
}

CXX_EXPORT void *cxx_new_array_nothrow(size_t size, const void *nt) __asm__("_ZnamRKSt9nothrow_t");
CXX_EXPORT void *cxx_new_array_nothrow(size_t size, const void *nt)
{
	return new_nothrow(size, 0, CALLER_SITE(), OP_NEW_ARRAY_NOTHROW, nt);
}

CXX_EXPORT void *cxx_new_aligned_nothrow(size_t size, size_t align, const void *nt)
	__asm__("_ZnwmSt11align_val_tRKSt9nothrow_t");
CXX_EXPORT void *cxx_new_aligned_nothrow(size_t size, size_t align, const void *nt)
{
	return new_nothrow(size, align, CALLER_SITE(), OP_NEW_ALIGNED_NOTHROW, nt);
}

CXX_EXPORT void *cxx_new_array_aligned_nothrow(size_t size, size_t align, const void *nt)
	__asm__("_ZnamSt11align_val_tRKSt9nothrow_t");
CXX_EXPORT void *cxx_new_array_aligned_nothrow(size_t size, size_t align, const void *nt)
{
	return new_nothrow(size, align, CALLER_SITE(), OP_NEW_ARRAY_ALIGNED_NOTHROW, nt);
}

/* --- delete --------------------------------------------------------------------------
 * The primaries free; each other one frees too in own mode, and calls its
 * primary (through the dynamic linker's binding) in forward mode. */

CXX_EXPORT void cxx_delete(void *p) __asm__("_ZdlPv");
CXX_EXPORT void cxx_delete(void *p)
{
	free_chunk(p, ENTRY_free);
}

CXX_EXPORT void cxx_delete_aligned(void *p, size_t align) __asm__("_ZdlPvSt11align_val_t");
CXX_EXPORT void cxx_delete_aligned(void *p, size_t align)
{
	(void)align;
	free_chunk(p, ENTRY_free);
}

#define DELETE_VIA(primary, p)                                                             \
	do {                                                                               \
		if (likely(own()))                                                         \
			free_chunk(p, ENTRY_free);                                         \
		else                                                                       \
			((void (*)(void *))PRIMARY(primary))(p);                           \
	} while (0)

#define DELETE_ALIGNED_VIA(primary, p, align)                                              \
	do {                                                                               \
		if (likely(own()))                                                         \
			free_chunk(p, ENTRY_free);                                         \
		else                                                                       \
			((void (*)(void *, size_t))PRIMARY(primary))(p, align);            \
	} while (0)

/* As libstdc++: delete[] calls delete; a sized or nothrow delete[] calls
 * delete[], whose primary is delete. */
CXX_EXPORT void cxx_delete_array(void *p) __asm__("_ZdaPv");
CXX_EXPORT void cxx_delete_array(void *p)
{
	DELETE_VIA(DELETE, p);
}

CXX_EXPORT void cxx_delete_sized(void *p, size_t size) __asm__("_ZdlPvm");
CXX_EXPORT void cxx_delete_sized(void *p, size_t size)
{
	(void)size;
	DELETE_VIA(DELETE, p);
}

CXX_EXPORT void cxx_delete_array_sized(void *p, size_t size) __asm__("_ZdaPvm");
CXX_EXPORT void cxx_delete_array_sized(void *p, size_t size)
{
	(void)size;
	DELETE_VIA(DELETE_ARRAY, p);
}

CXX_EXPORT void cxx_delete_nothrow(void *p, const void *nt) __asm__("_ZdlPvRKSt9nothrow_t");
CXX_EXPORT void cxx_delete_nothrow(void *p, const void *nt)
{
	(void)nt;
	DELETE_VIA(DELETE, p);
}

CXX_EXPORT void cxx_delete_array_nothrow(void *p, const void *nt) __asm__("_ZdaPvRKSt9nothrow_t");
CXX_EXPORT void cxx_delete_array_nothrow(void *p, const void *nt)
{
	(void)nt;
	DELETE_VIA(DELETE_ARRAY, p);
}

CXX_EXPORT void cxx_delete_array_aligned(void *p, size_t align) __asm__("_ZdaPvSt11align_val_t");
CXX_EXPORT void cxx_delete_array_aligned(void *p, size_t align)
{
	DELETE_ALIGNED_VIA(DELETE_ALIGNED, p, align);
}

CXX_EXPORT void cxx_delete_sized_aligned(void *p, size_t size, size_t align)
	__asm__("_ZdlPvmSt11align_val_t");
CXX_EXPORT void cxx_delete_sized_aligned(void *p, size_t size, size_t align)
{
	(void)size;
	DELETE_ALIGNED_VIA(DELETE_ALIGNED, p, align);
}

CXX_EXPORT void cxx_delete_array_sized_aligned(void *p, size_t size, size_t align)
	__asm__("_ZdaPvmSt11align_val_t");
CXX_EXPORT void cxx_delete_array_sized_aligned(void *p, size_t size, size_t align)
{
	(void)size;
	DELETE_ALIGNED_VIA(DELETE_ARRAY_ALIGNED, p, align);
}

CXX_EXPORT void cxx_delete_aligned_nothrow(void *p, size_t align, const void *nt)
	__asm__("_ZdlPvSt11align_val_tRKSt9nothrow_t");
CXX_EXPORT void cxx_delete_aligned_nothrow(void *p, size_t align, const void *nt)
{
	(void)nt;
	DELETE_ALIGNED_VIA(DELETE_ALIGNED, p, align);
}

CXX_EXPORT void cxx_delete_array_aligned_nothrow(void *p, size_t align, const void *nt)
	__asm__("_ZdaPvSt11align_val_tRKSt9nothrow_t");
CXX_EXPORT void cxx_delete_array_aligned_nothrow(void *p, size_t align, const void *nt)
{
	(void)nt;
	DELETE_ALIGNED_VIA(DELETE_ARRAY_ALIGNED, p, align);
}
