/* lock.h - the spinlock every lock of the hooks and the indexes is made of.
 *
 * Critical sections are a few list or table updates (tens of nanoseconds),
 * never a call into the allocator, so spinning beats a futex mutex when
 * uncontended (one atomic exchange and one store).  Under contention a
 * waiter yields after a while, so a preempted holder on a 2-core machine
 * does not burn the other core's whole time slice.
 *
 * spin_trylock never waits: lookups made from a signal handler that
 * interrupted an index operation of the same thread use it (threads.h,
 * index_lookup_lock), because waiting there could wait for ourselves.
 */
#ifndef HEAPINDEX_LOCK_H
#define HEAPINDEX_LOCK_H

#include <sched.h>

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

/* Spin politely: pause a while, then give the core away. */
static inline void spin_wait(unsigned *spins)
{
	if (++*spins < 128)
		cpu_relax();
	else
		sched_yield();
}

/* HEAPINDEX_VALGRIND_ANNOTATE (`make helgrind` only): helgrind and drd know
 * a pthread mutex for what it is, while a lock built from atomics looks to
 * them like races on everything it guards; and valgrind, which runs one
 * thread at a time, then blocks a waiter instead of scheduling it to spin.
 * So spinlock_t becomes a mutex, and the locks that cannot be one (the
 * memtable's lock bytes, the bitmap's lock-free publication) tell the tools
 * what they are with the LOCK_ANNOTATE_* requests of helgrind.h, which drd
 * understands too.  The default build never sees this branch. */
#ifdef HEAPINDEX_VALGRIND_ANNOTATE
#include <pthread.h>
#include <valgrind/helgrind.h>

typedef pthread_mutex_t spinlock_t; /* zero bytes are PTHREAD_MUTEX_INITIALIZER in glibc */

static inline void spin_lock(spinlock_t *l) { pthread_mutex_lock(l); }
static inline int spin_trylock(spinlock_t *l) { return pthread_mutex_trylock(l) == 0; }
static inline void spin_unlock(spinlock_t *l) { pthread_mutex_unlock(l); }

#define LOCK_ANNOTATE_ACQUIRED(addr) ANNOTATE_RWLOCK_ACQUIRED((addr), 1)
#define LOCK_ANNOTATE_RELEASED(addr) ANNOTATE_RWLOCK_RELEASED((addr), 1)
#define LOCK_ANNOTATE_HAPPENS_BEFORE(addr) ANNOTATE_HAPPENS_BEFORE(addr)
#define LOCK_ANNOTATE_HAPPENS_AFTER(addr) ANNOTATE_HAPPENS_AFTER(addr)
#define LOCK_ANNOTATE_BENIGN_RACE(addr, size, why) ANNOTATE_BENIGN_RACE_SIZED((addr), (size), (why))

/* Release a lock byte by writing v: an exchange, which the tools do not
 * take for a plain store racing with the loads of waiters. */
static inline void lock_byte_release(unsigned char *p, unsigned char v)
{
	ANNOTATE_RWLOCK_RELEASED(p, 1);
	(void)__atomic_exchange_n(p, v, __ATOMIC_RELEASE);
}

#else

typedef int spinlock_t;

static inline int spin_trylock(spinlock_t *l)
{
	return !__atomic_load_n(l, __ATOMIC_RELAXED) &&
	       !__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE);
}

static inline void spin_lock(spinlock_t *l)
{
	unsigned spins = 0;
	while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE)) {
		while (__atomic_load_n(l, __ATOMIC_RELAXED))
			spin_wait(&spins);
	}
}

static inline void spin_unlock(spinlock_t *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

#define LOCK_ANNOTATE_ACQUIRED(addr) ((void)(addr))
#define LOCK_ANNOTATE_RELEASED(addr) ((void)(addr))
#define LOCK_ANNOTATE_BENIGN_RACE(addr, size, why) ((void)(addr))
/* ThreadSanitizer (`make SANITIZE=thread`) sees atomics for what they are;
 * it only needs telling about an order established outside them. */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define LOCK_ANNOTATE_HAPPENS_BEFORE(addr) __tsan_release((void *)(addr))
#define LOCK_ANNOTATE_HAPPENS_AFTER(addr) __tsan_acquire((void *)(addr))
#else
#define LOCK_ANNOTATE_HAPPENS_BEFORE(addr) ((void)(addr))
#define LOCK_ANNOTATE_HAPPENS_AFTER(addr) ((void)(addr))
#endif

static inline void lock_byte_release(unsigned char *p, unsigned char v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

#endif

#endif /* HEAPINDEX_LOCK_H */
