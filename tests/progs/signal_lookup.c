/* signal_lookup.c - heapindex_lookup from a SIGPROF handler, the way a
 * sampling profiler asks, while every thread is busy in malloc and free.
 *
 * THREADS threads allocate, reallocate and free (small chunks, aligned ones,
 * and now and then one big enough for the indexes' big-chunk arrays) while
 * a profiling timer (setitimer ITIMER_PROF, every 100 us of CPU, which the
 * kernel rounds to its tick) and a sampler thread (pthread_kill of SIGPROF
 * to each worker in turn, every 20 us, as per-thread samplers do)
 * interrupt them, often inside the hooks, holding an index lock.  The
 * handler looks up:
 *  - a byte of one of KEPT chunks allocated before the timer starts and
 *    never freed: the answer is that chunk exactly, or 0 ("not known": the
 *    interrupted thread held a lock the lookup needed);
 *  - a byte of the chunk the interrupted thread is freeing or reallocating
 *    right now: any chunk found must contain the byte, be 16-byte aligned
 *    and no bigger than the program ever asks.
 * A deadlock shows as the test's timeout.  At the end the kept chunks must
 * all be found again (no handler is running then).  EXPECT_LOOKUP=0 (noop)
 * expects nothing found.  Usage: signal_lookup [ops per thread].
 * Prints the handler's counts and "ok". */
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "reported_size.h"

typedef int lookup_fn(const void *, void **, size_t *, const void **);
static lookup_fn *lookup;
static int expect_found;

#define THREADS 4
#define KEPT 64
#define BIG (300 * 1024)
static unsigned char *kept[KEPT];
static size_t kept_size[KEPT];
static size_t kept_reported[KEPT]; /* the size lookups report (reported_size.h) */
static size_t kept_usable[KEPT];   /* and the usable size, right too when either is */
static int trailer; /* reports_usable_size() (1, or -1: either), read once in main */

static __thread uintptr_t last_chunk;   /* the chunk the thread frees now, or 0 */
static __thread size_t last_size;
static __thread uint64_t handler_rng;
static unsigned long kept_found, kept_unknown, last_found, last_none, wrong;

static uint64_t step(uint64_t *x)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x;
}

/* Async-signal-safe: the lookup, TLS, atomics. */
static void on_sigprof(int sig)
{
	(void)sig;
	if (!handler_rng)
		handler_rng = (uintptr_t)&handler_rng | 1;
	unsigned k = (unsigned)(step(&handler_rng) % KEPT);
	const unsigned char *addr = kept[k] + step(&handler_rng) % kept_size[k];
	void *base;
	size_t size;
	if (lookup(addr, &base, &size, NULL)) {
		/* malloc_usable_size is no async-signal-safe call: the handler
		 * compares with the size noted at allocation. */
		if (base != kept[k] || (size != kept_reported[k] && (trailer >= 0 || size != kept_usable[k])))
			__atomic_fetch_add(&wrong, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&kept_found, 1, __ATOMIC_RELAXED);
	} else {
		__atomic_fetch_add(&kept_unknown, 1, __ATOMIC_RELAXED);
	}
	uintptr_t last = __atomic_load_n(&last_chunk, __ATOMIC_RELAXED);
	size_t last_n = __atomic_load_n(&last_size, __ATOMIC_RELAXED);
	if (!last || !last_n)
		return;
	uintptr_t probe = last + step(&handler_rng) % last_n;
	if (lookup((const void *)probe, &base, &size, NULL)) {
		if ((uintptr_t)base % 16 || probe - (uintptr_t)base >= size || size > BIG + (trailer ? 8192 : 0))
			__atomic_fetch_add(&wrong, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&last_found, 1, __ATOMIC_RELAXED);
	} else {
		__atomic_fetch_add(&last_none, 1, __ATOMIC_RELAXED);
	}
}

static pthread_t workers[THREADS];
static int finished, done;

static void *sampler(void *arg)
{
	(void)arg;
	struct timespec pause = { 0, 20000 };
	for (unsigned i = 0; !__atomic_load_n(&done, __ATOMIC_ACQUIRE); i++) {
		pthread_kill(workers[i % THREADS], SIGPROF);
		nanosleep(&pause, NULL);
	}
	return NULL;
}

/* The thread's current chunk (last_chunk, last_size) is published while
 * the thread frees or reallocates it, so handlers look up chunks that are
 * being freed under them. */
static void *churn(void *arg)
{
	long ops = *(const long *)arg;
	uint64_t x = 0x9e3779b97f4a7c15u ^ (uintptr_t)&x;
	unsigned char *live[32] = { 0 };
	size_t sizes[32] = { 0 };
	for (long op = 0; op < ops; op++) {
		unsigned i = (unsigned)(step(&x) % 32);
		__atomic_store_n(&last_chunk, 0, __ATOMIC_RELAXED);
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		__atomic_store_n(&last_size, sizes[i], __ATOMIC_RELAXED);
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		__atomic_store_n(&last_chunk, (uintptr_t)live[i], __ATOMIC_RELAXED);
		size_t n = step(&x) % 64 == 0 ? BIG : 1 + step(&x) % 2000;
		unsigned char *p;
		switch (step(&x) % 4) {
		case 0: p = realloc(live[i], n); break;
		case 1: free(live[i]); n = (n + 63) & ~(size_t)63; p = aligned_alloc(64, n); break;
		default: free(live[i]); p = malloc(n); break;
		}
		if (!p) {
			fprintf(stderr, "signal_lookup: allocation failed\n");
			exit(1);
		}
		p[0] = 1;
		live[i] = p;
		sizes[i] = n;
	}
	__atomic_store_n(&last_chunk, 0, __ATOMIC_RELAXED);
	for (int i = 0; i < 32; i++)
		free(live[i]);
	__atomic_fetch_add(&finished, 1, __ATOMIC_RELEASE);
	/* Stay alive (and interruptible) until the sampler has stopped. */
	while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE))
		sched_yield();
	return NULL;
}

int main(int argc, char **argv)
{
	long ops = argc > 1 ? atol(argv[1]) : 300000;
	trailer = reports_usable_size();
	lookup = (lookup_fn *)dlsym(RTLD_DEFAULT, "heapindex_lookup");
	if (!lookup) {
		fprintf(stderr, "signal_lookup: no heapindex_lookup (run it with a hook library)\n");
		return 1;
	}
	const char *want = getenv("EXPECT_LOOKUP");
	expect_found = !want || *want != '0';
	for (int k = 0; k < KEPT; k++) {
		kept_size[k] = k % 8 == 0 ? BIG : 24 + 40 * (size_t)k;
		kept[k] = malloc(kept_size[k]);
		if (!kept[k])
			return 1;
		memset(kept[k], k, kept_size[k]);
		kept_usable[k] = malloc_usable_size(kept[k]);
		kept_reported[k] = trailer == 1 ? kept_usable[k] : kept_size[k];
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigprof;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPROF, &sa, NULL);
	struct itimerval every = { { 0, 100 }, { 0, 100 } };
	setitimer(ITIMER_PROF, &every, NULL);

	/* The sampler stops before the workers end: pthread_kill of an ended
	 * thread would be an error. */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGPROF);
	pthread_t sampling;
	for (int i = 0; i < THREADS; i++)
		if (pthread_create(&workers[i], NULL, churn, &ops)) {
			fprintf(stderr, "signal_lookup: pthread_create failed\n");
			return 1;
		}
	pthread_sigmask(SIG_BLOCK, &block, &old); /* the sampler itself is not sampled */
	if (pthread_create(&sampling, NULL, sampler, NULL)) {
		fprintf(stderr, "signal_lookup: pthread_create failed\n");
		return 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	while (__atomic_load_n(&finished, __ATOMIC_ACQUIRE) < THREADS)
		sched_yield();
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	pthread_join(sampling, NULL);
	for (int i = 0; i < THREADS; i++)
		pthread_join(workers[i], NULL);
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_PROF, &off, NULL);

	unsigned long handled = kept_found + kept_unknown;
	if (wrong) {
		fprintf(stderr, "signal_lookup: %lu lookups in the handler answered a wrong chunk\n", wrong);
		return 1;
	}
	if (!expect_found && (kept_found || last_found)) {
		fprintf(stderr, "signal_lookup: noop found a chunk\n");
		return 1;
	}
	/* Not known is the answer only while a lock is busy: rare for the
	 * memtable and bitmap, common for one-lock indexes. */
	if (expect_found && ops >= 10000 && handled >= 100 && kept_found * 8 < handled) {
		fprintf(stderr, "signal_lookup: only %lu of %lu handler lookups of kept chunks answered\n",
		        kept_found, handled);
		return 1;
	}
	for (int k = 0; k < KEPT && expect_found; k++) {
		void *base;
		size_t size;
		if (!lookup(kept[k] + kept_size[k] - 1, &base, &size, NULL) || base != kept[k] ||
		    !reported_size_ok(kept[k], kept_size[k], size)) {
			fprintf(stderr, "signal_lookup: kept chunk %d lost\n", k);
			return 1;
		}
	}
	printf("signal_lookup: %d threads x %ld ops, %lu handler runs: kept chunks %lu found, %lu not known; "
	       "chunks being freed %lu found, %lu not found; ok\n",
	       THREADS, ops, handled, kept_found, kept_unknown, last_found, last_none);
	return 0;
}
