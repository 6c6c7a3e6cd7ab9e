/* threads.h - one slot per thread: what the hooks and the indexes need to
 * know about a thread, reached through one initial-exec TLS pointer.
 *
 * A slot holds the thread's statistics (counters.h), how deep it is inside
 * index operations (for fork and for signal handlers, below) and the
 * hazard pointers of lock-free lookups (bitmap).  Slots live in a registry
 * of mmap'd blocks that is never unmapped, so another thread may always read
 * a slot: the statistics writer adds them up, fork waits on them, a remover
 * scans their hazards.  A thread gets a slot at its first hook call
 * (thread_attach); when it ends (a pthread key destructor) the slot is
 * marked retired, and it is given to a new thread once the kernel says the
 * old one is gone, with its counts kept: a slot's counts are those of every
 * thread that ever had it, and sums over slots stay exact.  (Should the
 * process have no pthread key left for us, slots are never retired: one
 * 320-byte slot per thread ever made, still counted.)
 *
 * Until it has a slot a thread's pointer is &thread_unattached, whose flags
 * are never zero: the hook fast path tests one word, the slot's flags, for
 * "not attached yet", "not initialised yet" and "an optional feature is on"
 * (threads_slot_flags, copied into each slot by thread_attach).
 *
 * Fork.  The child of fork has only the forking thread; an index lock held,
 * or an update half done, by another thread at the moment of fork would stay
 * so forever in the child.  Per-bin locks cannot all be taken around fork,
 * so the hooks make sure no other thread is inside an index operation at
 * all: every index call is bracketed by thread_enter / thread_leave (but
 * on the fast path of an index that declares it needs none, and around
 * the memtable's side common cases, one atomic write each: index.h,
 * INDEX_UNBRACKETED and INDEX_SIDE_INLINE), which
 * count `depth` in the slot and test THREAD_FORKING in its flags; the fork
 * prepare handler sets that flag in every slot, makes every depth visible with one
 * process-wide barrier (membarrier, the asymmetric Dekker of RCU and
 * folly's hazard pointers: the bracket itself costs two plain increments and
 * a load), and waits until every other slot's depth is 0.  A thread that
 * arrives meanwhile steps back out and waits for the fork to finish.  Calls
 * into the real allocator are outside the brackets, so fork never waits on
 * an allocator whose own prepare handler holds its locks.
 *
 * Signal handlers.  depth > 1 inside an index lookup means a signal handler
 * interrupted this thread inside another index operation, which may hold a
 * lock the lookup needs: index_lookup_may_wait() is then false, and the
 * lookup uses try-locks and answers "not known" instead of waiting for
 * itself.
 */
#ifndef HEAPINDEX_THREADS_H
#define HEAPINDEX_THREADS_H

#include <stddef.h>
#include <stdint.h>

#include "counters.h"

/* Hazard pointers per slot: a lookup, and one signal handler's lookup
 * nested in it, and one more. */
#define THREAD_HAZARDS 3

struct thread_slot {
	/* Owner-written, read by others (relaxed atomic loads). */
	unsigned flags;  /* nonzero: this thread's hook calls take the slow path */
	unsigned depth;  /* index operations (thread_enter) this thread is inside */
	struct thread_counters counters;
	unsigned hazards_used;
	uintptr_t hazard[THREAD_HAZARDS]; /* addresses a lookup reads, or 0 */
	/* The lookup cache (lookup_cache.h): its entries, mapped at the
	 * thread's first cached lookup; the state of the lookup filling it. */
	struct lookup_cache_entry *lookup_cache;
	unsigned lookup_cache_refused; /* its memory was refused once: not asked again */
	unsigned lookup_filling;
	uintptr_t lookup_fill_base;  /* the chunk the running fill noted */
	uint64_t lookup_fill_epoch;  /* and its bucket's epoch then */
	/* The registry's (under its lock). */
	struct thread_slot *next;
	int state;
	int tid;
} __attribute__((aligned(64)));

/* Not exported from the hook libraries, so the fast path reaches these
 * directly, without the GOT. */
#define THREADS_HIDDEN __attribute__((visibility("hidden")))

/* Flags of a slot the registry owns (the hooks own the low bits). */
#define THREAD_UNATTACHED 0x80000000u /* the pseudo-slot: attach first      */
#define THREAD_FORKING 0x40000000u    /* a fork waits for index calls to drain */

/* The pseudo-slot of threads without one: flags THREAD_UNATTACHED. */
extern THREADS_HIDDEN struct thread_slot thread_unattached;

extern THREADS_HIDDEN __thread struct thread_slot *thread_self_ptr
	__attribute__((tls_model("initial-exec")));

/* Flags a slot gets when attached; the hooks set them before any attach. */
extern THREADS_HIDDEN unsigned threads_slot_flags;
/* Called on a slot when its thread ends (the hooks flush its counters). */
extern THREADS_HIDDEN void (*threads_retire_hook)(struct thread_slot *s);

static inline struct thread_slot *thread_self(void)
{
	return thread_self_ptr;
}

/* This thread's slot, attaching one if need be; NULL if none can be had
 * (out of memory, or called from a signal handler that interrupted this
 * thread's own attach). Preserves errno. */
struct thread_slot *thread_attach(void);

static inline struct thread_slot *thread_slot(void)
{
	struct thread_slot *s = thread_self();
	return s != &thread_unattached ? s : thread_attach();
}

void thread_wait_fork(struct thread_slot *s);

/* A slot's flags, as its thread reads them.  Fork sets and clears
 * THREAD_FORKING with atomic read-modify-writes; the owner's read is a plain
 * one, which the compiler folds into the test (`cmpl $0, (%rbx)`): on the
 * machines we run on an aligned word is read whole, and the signal fences
 * around it keep the compiler from moving or caching it. */
static inline unsigned thread_flags(const struct thread_slot *s)
{
	return s->flags;
}

/* The brackets of an index operation made by the hooks (s attached).
 * thread_enter_begin is the first half, for a caller that makes the call
 * of thread_wait_fork itself, out of line: 1 if it must. */
static inline int thread_enter_begin(struct thread_slot *s)
{
	s->depth++;
	/* Program order is enough: fork's membarrier orders it with the load
	 * below, and a signal handler runs on this thread. */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	return __builtin_expect((thread_flags(s) & THREAD_FORKING) != 0, 0);
}

static inline void thread_enter(struct thread_slot *s)
{
	if (thread_enter_begin(s))
		thread_wait_fork(s);
}

static inline void thread_leave(struct thread_slot *s)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	s->depth--;
}

/* Inside an index lookup: may it wait for a lock?  Not when the lookup is
 * nested in another index operation of this thread (a signal handler). */
static inline int index_lookup_may_wait(void)
{
	return __atomic_load_n(&thread_self()->depth, __ATOMIC_RELAXED) <= 1;
}

/* --- hazard pointers (lock-free lookups that read chunk headers) ------------
 * A lookup protects the header at addr: hazard_protect(s, addr) returns a
 * hazard index, or -1 if none is free (nested too deep: answer "not known").
 * After it, the lookup must re-check that the chunk is still indexed; if so,
 * the header stays readable until hazard_release.  A remover, after taking
 * the chunk out of its index and before the chunk is freed, waits:
 *
 *	if (hazard_readers_present())
 *		hazard_wait_readers(addr);
 *
 * (bitmap.c makes the call apart, as a tail call).  All seq_cst: either the
 * remover sees the hazard, or the lookup's re-check sees the chunk gone. */
int hazard_protect(struct thread_slot *s, uintptr_t addr);
void hazard_release(struct thread_slot *s, int h);
void hazard_wait_readers(uintptr_t addr);

/* Lookups between hazard_protect and hazard_release, process-wide: while
 * it is 0 a remover need not scan the slots, and makes no call. */
extern THREADS_HIDDEN unsigned hazard_readers;

/* 1 if a remover must call hazard_wait_readers: some lookup is between
 * hazard_protect and hazard_release. */
static inline int hazard_readers_present(void)
{
	return __builtin_expect(__atomic_load_n(&hazard_readers, __ATOMIC_SEQ_CST) != 0, 0);
}

/* --- the registry --------------------------------------------------------- */

/* Every slot ever made (attached, retired or free), for summing counters. */
struct thread_slot *threads_first(void);

/* Has a thread ever had s?  A slot none had is as mmap made it, all zero,
 * its counters not yet made (thread_counters_init, at its first attach):
 * it has counted nothing. */
static inline int thread_slot_ever_used(const struct thread_slot *s)
{
	return __atomic_load_n(&s->tid, __ATOMIC_ACQUIRE) != 0;
}

static inline struct thread_slot *threads_next(const struct thread_slot *s)
{
	return __atomic_load_n(&s->next, __ATOMIC_ACQUIRE);
}

/* Fork (the hooks' pthread_atfork handlers): prepare returns with no other
 * thread inside an index operation and none able to enter one or attach
 * until parent (in the parent) or child (in the child) runs.  In the child
 * every other thread's slot becomes free. */
void threads_fork_prepare(void);
void threads_fork_parent(void);
void threads_fork_child(void);

#endif /* HEAPINDEX_THREADS_H */
