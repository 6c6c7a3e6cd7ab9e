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

/* HEAPINDEX_VALGRIND_ANNOTATE (`make helgrind` only): the lock becomes a
 * pthread mutex.  helgrind and drd know a mutex for what it is (a spinlock
 * built from atomics looks to them like races on everything it guards), and
 * valgrind, which runs one thread at a time, then blocks a waiter instead of
 * scheduling it to spin.  The default build never sees this branch. */
#ifdef HEAPINDEX_VALGRIND_ANNOTATE
#include <pthread.h>

typedef pthread_mutex_t spinlock_t; /* zero bytes are PTHREAD_MUTEX_INITIALIZER in glibc */

static inline void spin_lock(spinlock_t *l) { pthread_mutex_lock(l); }
static inline int spin_trylock(spinlock_t *l) { return pthread_mutex_trylock(l) == 0; }
static inline void spin_unlock(spinlock_t *l) { pthread_mutex_unlock(l); }

#else

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
	while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE)) {
		while (__atomic_load_n(l, __ATOMIC_RELAXED)) {
			if (++spins < 128)
				cpu_relax();
			else
				sched_yield();
		}
	}
}

/* 1 if the lock was free and is now ours, 0 if it is held (by anyone,
 * this thread included: never waits). */
static inline int spin_trylock(spinlock_t *l)
{
	return !__atomic_load_n(l, __ATOMIC_RELAXED) && !__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE);
}

static inline void spin_unlock(spinlock_t *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

#endif

#endif /* HEAPINDEX_LOCK_H */
