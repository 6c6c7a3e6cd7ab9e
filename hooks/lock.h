/* lock.h - the hooks' one lock: a test-and-test-and-set spinlock.
 *
 * Critical sections are a few list or table updates (tens of nanoseconds),
 * never a call into the allocator, so spinning beats a futex mutex when
 * uncontended (one atomic exchange and one store).  Under contention a
 * waiter yields after a while, so a preempted holder on a 2-core machine
 * does not burn the other core's whole time slice. */
#ifndef HEAPINDEX_LOCK_H
#define HEAPINDEX_LOCK_H

#include <sched.h>

/* HEAPINDEX_VALGRIND_ANNOTATE (`make helgrind` only): tell helgrind and drd
 * that the spinlock is a lock, else they report a race on everything it
 * guards.  helgrind.h's ANNOTATE_RWLOCK_* requests are understood by both
 * tools; a lock they have not seen created is created at its first
 * acquire.  Without the flag the macros below expand to nothing. */
#ifdef HEAPINDEX_VALGRIND_ANNOTATE
#include <valgrind/helgrind.h>
/* The lock word itself is read and written by atomics the tools do not
 * understand: not a race. */
#define SPIN_ANNOTATE_WORD(l) ANNOTATE_BENIGN_RACE_SIZED(l, sizeof *(l), "spinlock word")
#define SPIN_ANNOTATE_ACQUIRED(l) ANNOTATE_RWLOCK_ACQUIRED(l, 1)
#define SPIN_ANNOTATE_RELEASED(l) ANNOTATE_RWLOCK_RELEASED(l, 1)
#else
#define SPIN_ANNOTATE_WORD(l) ((void)0)
#define SPIN_ANNOTATE_ACQUIRED(l) ((void)0)
#define SPIN_ANNOTATE_RELEASED(l) ((void)0)
#endif

typedef int spinlock_t;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

static inline void spin_lock(spinlock_t *l)
{
	unsigned spins = 0;
	SPIN_ANNOTATE_WORD(l);
	while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE)) {
		while (__atomic_load_n(l, __ATOMIC_RELAXED)) {
			if (++spins < 128)
				cpu_relax();
			else
				sched_yield();
		}
	}
	SPIN_ANNOTATE_ACQUIRED(l);
}

static inline void spin_unlock(spinlock_t *l)
{
	SPIN_ANNOTATE_RELEASED(l);
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

#endif /* HEAPINDEX_LOCK_H */
