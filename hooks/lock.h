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

static inline void spin_unlock(spinlock_t *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

#endif /* HEAPINDEX_LOCK_H */
