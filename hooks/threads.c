/* threads.c - the slot registry, fork quiescence and hazard pointers; see
 * threads.h.  Never calls malloc: slots come from mmap. */
#include "threads.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lock.h"

struct thread_slot thread_unattached = { .flags = THREAD_UNATTACHED };
__thread struct thread_slot *thread_self_ptr __attribute__((tls_model("initial-exec"))) =
	&thread_unattached;
unsigned threads_slot_flags;
void (*threads_retire_hook)(struct thread_slot *s);

enum { SLOT_FREE, SLOT_USED, SLOT_RETIRED };

#define SLOTS_PER_BLOCK 64

/* Guards claiming slots and the list's growth; readers walk the list
 * without it (it only grows, published with release stores).  Held by
 * fork from prepare to parent/child. */
static spinlock_t registry_lock;
static struct thread_slot *registry;

/* Set while this thread holds registry_lock (attaching, or forking): a
 * signal handler then must neither attach nor wait for the fork. */
static __thread int holds_registry __attribute__((tls_model("initial-exec")));
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t slot_key;
static int key_made;

unsigned hazard_readers; /* threads.h */

struct thread_slot *threads_first(void)
{
	return __atomic_load_n(&registry, __ATOMIC_ACQUIRE);
}

/* Slot states change with exchanges: helgrind and drd would take a plain
 * store, read by a claim without a common lock, for a race. */
static void set_state(struct thread_slot *s, int state)
{
	(void)__atomic_exchange_n(&s->state, state, __ATOMIC_ACQ_REL);
}

static int current_tid(void)
{
	return (int)syscall(SYS_gettid);
}

/* The kernel's word that a thread of this process has ended. */
static int thread_gone(int tid)
{
	return syscall(SYS_tgkill, (int)getpid(), tid, 0) != 0 && errno == ESRCH;
}

/* The thread's key destructor: it is ending.  Its slot stays its own (it
 * may still free memory in later destructors) until thread_gone says so. */
static void slot_retire(void *p)
{
	struct thread_slot *s = p;
	if (threads_retire_hook)
		threads_retire_hook(s);
	set_state(s, SLOT_RETIRED);
}

static void make_key(void)
{
	key_made = pthread_key_create(&slot_key, slot_retire) == 0;
}

/* Under registry_lock: a free slot, a retired one whose thread is gone, or
 * one of a new block. */
static struct thread_slot *claim(void)
{
	for (struct thread_slot *s = registry; s; s = s->next)
		if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == SLOT_FREE)
			return s;
	for (struct thread_slot *s = registry; s; s = s->next)
		if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == SLOT_RETIRED && thread_gone(s->tid))
			return s;
	struct thread_slot *block = mmap(NULL, SLOTS_PER_BLOCK * sizeof *block, PROT_READ | PROT_WRITE,
	                                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (block == MAP_FAILED)
		return NULL;
	for (int i = 0; i < SLOTS_PER_BLOCK; i++) /* summed while their threads count */
		LOCK_ANNOTATE_BENIGN_RACE(&block[i].counters, sizeof block[i].counters, "per-thread counters");
	for (int i = 0; i < SLOTS_PER_BLOCK - 1; i++)
		block[i].next = &block[i + 1];
	block[SLOTS_PER_BLOCK - 1].next = registry;
	__atomic_store_n(&registry, block, __ATOMIC_RELEASE);
	return block;
}

struct thread_slot *thread_attach(void)
{
	struct thread_slot *s = thread_self();
	if (s != &thread_unattached)
		return s;
	if (holds_registry)
		return NULL; /* a signal handler interrupted our own attach or fork */
	int saved_errno = errno;
	holds_registry = 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	spin_lock(&registry_lock);
	s = claim();
	if (s) {
		/* A slot no thread ever had (tid 0, as mmap made it) gets its
		 * counters as a look leaves them; a retired one's were flushed at
		 * its thread's end, and one fork freed keeps them as they stand:
		 * its counts are those of every thread that had it. */
		if (s->tid == 0)
			thread_counters_init(&s->counters);
		__atomic_store_n(&s->tid, current_tid(), __ATOMIC_RELEASE); /* after the counters */
		s->flags = threads_slot_flags;
		s->depth = 0;
		s->hazards_used = 0;
		set_state(s, SLOT_USED);
	}
	spin_unlock(&registry_lock);
	if (s) {
		thread_self_ptr = s;
		/* After the pointer is set: pthread_setspecific may allocate. */
		pthread_once(&key_once, make_key);
		if (key_made)
			pthread_setspecific(slot_key, s);
	}
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	holds_registry = 0;
	errno = saved_errno;
	return s;
}

/* thread_enter saw THREAD_FORKING.  A nested operation (a signal handler
 * that interrupted an index operation of this thread) goes on: fork is
 * waiting for the outer one to end, which needs this one to end.  So does
 * a signal handler on the forking thread itself. */
void thread_wait_fork(struct thread_slot *s)
{
	if (s->depth > 1 || holds_registry)
		return;
	while (__atomic_load_n(&s->flags, __ATOMIC_ACQUIRE) & THREAD_FORKING) {
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		s->depth--;
		unsigned spins = 0;
		while (__atomic_load_n(&s->flags, __ATOMIC_ACQUIRE) & THREAD_FORKING)
			spin_wait(&spins);
		s->depth++;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
	}
}

/* --- fork ------------------------------------------------------------------------ */

/* A full memory barrier on every thread of the process.  membarrier's
 * private expedited command interrupts the CPUs running our threads; where
 * it is missing (kernels before 4.14, some sandboxes, valgrind) changing a
 * page's protection does the same through the TLB shootdown it forces. */
static void barrier_all_threads(void)
{
	static int registered; /* 0 not tried, 1 yes, -1 refused */
	if (!registered)
		registered = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 ? 1 : -1;
	if (registered > 0 && syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
		return;
	static void *page;
	static int fence; /* a locked read-modify-write is a full fence (and TSan has no fences) */
	long page_size = sysconf(_SC_PAGESIZE);
	if (!page) {
		page = mmap(NULL, (size_t)page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (page == MAP_FAILED)
			page = NULL;
	}
	__atomic_fetch_add(&fence, 1, __ATOMIC_SEQ_CST);
	if (page) {
		*(volatile char *)page = 1; /* present, so the protection change must flush it */
		mprotect(page, (size_t)page_size, PROT_READ);
		mprotect(page, (size_t)page_size, PROT_READ | PROT_WRITE);
	}
	__atomic_fetch_add(&fence, 1, __ATOMIC_SEQ_CST);
}

static void set_forking(int on)
{
	for (struct thread_slot *s = registry; s; s = s->next) {
		if (on)
			__atomic_fetch_or(&s->flags, THREAD_FORKING, __ATOMIC_RELAXED);
		else
			__atomic_fetch_and(&s->flags, ~THREAD_FORKING, __ATOMIC_RELEASE);
	}
}

void threads_fork_prepare(void)
{
	int saved_errno = errno;
	holds_registry = 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	spin_lock(&registry_lock); /* no slot is attached until parent or child */
	struct thread_slot *self = thread_self();
	int others = 0;
	for (struct thread_slot *s = registry; s; s = s->next)
		others |= s != self && __atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != SLOT_FREE;
	if (others) {
		set_forking(1);
		barrier_all_threads();
		for (struct thread_slot *s = registry; s; s = s->next) {
			unsigned spins = 0;
			while (s != self && __atomic_load_n(&s->depth, __ATOMIC_ACQUIRE))
				spin_wait(&spins);
		}
	}
	errno = saved_errno;
}

void threads_fork_parent(void)
{
	set_forking(0);
	spin_unlock(&registry_lock);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	holds_registry = 0;
}

void threads_fork_child(void)
{
	struct thread_slot *self = thread_self();
	for (struct thread_slot *s = registry; s; s = s->next)
		if (s != self)
			set_state(s, SLOT_FREE);
	if (self != &thread_unattached)
		self->tid = current_tid();
	set_forking(0);
	spin_unlock(&registry_lock);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	holds_registry = 0;
}

/* --- hazard pointers --------------------------------------------------------------- */

int hazard_protect(struct thread_slot *s, uintptr_t addr)
{
	unsigned h = s->hazards_used;
	if (h >= THREAD_HAZARDS)
		return -1;
	s->hazards_used = h + 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_fetch_add(&hazard_readers, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->hazard[h], addr, __ATOMIC_SEQ_CST);
	return (int)h;
}

void hazard_release(struct thread_slot *s, int h)
{
	LOCK_ANNOTATE_HAPPENS_BEFORE(&s->hazard[h]);
	/* seq_cst: an exchange, which helgrind and drd do not mistake for a
	 * plain store racing with the removers' loads. */
	__atomic_store_n(&s->hazard[h], 0, __ATOMIC_SEQ_CST);
	__atomic_fetch_sub(&hazard_readers, 1, __ATOMIC_SEQ_CST);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	s->hazards_used = (unsigned)h;
}

void hazard_wait_readers(uintptr_t addr)
{
	/* Our own hazards belong to a lookup this free interrupted (a signal
	 * handler that frees): waiting for them would never end. */
	struct thread_slot *self = thread_self();
	for (struct thread_slot *s = threads_first(); s; s = threads_next(s)) {
		if (s == self)
			continue;
		for (int h = 0; h < THREAD_HAZARDS; h++) {
			unsigned spins = 0;
			while (__atomic_load_n(&s->hazard[h], __ATOMIC_SEQ_CST) == addr)
				spin_wait(&spins);
			LOCK_ANNOTATE_HAPPENS_AFTER(&s->hazard[h]);
		}
	}
}
