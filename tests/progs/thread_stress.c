/* thread_stress.c - 2 x nproc threads allocate, reallocate and free in random
 * mixes (malloc, calloc, realloc, memalign, posix_memalign, aligned_alloc)
 * while other threads look up live, freed and wild pointers.  Each worker
 * checks its own live chunks are found exactly; at the end, with every
 * thread joined, every chunk still live is found and none freed is.  Then a
 * race (below): lookups of chunks while other threads free them, whose
 * answers must be whole.  Run with HEAPINDEX_VERIFY=1 the hooks also check
 * at exit that the index holds exactly the live set.  Usage: thread_stress
 * [ops per worker [ops per racer]] (racer ops default to worker ops).
 * EXPECT_LOOKUP=0 skips lookups that must succeed (noop).
 * A few hundred ops is a short run for helgrind and drd (`make helgrind`). */
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if __has_include(<valgrind/helgrind.h>)
#include <valgrind/helgrind.h>

#include "reported_size.h"
#else
#define ANNOTATE_BENIGN_RACE_SIZED(addr, size, what) ((void)0)
#endif

typedef int lookup_fn(const void *, void **, size_t *, const void **);
static lookup_fn *lookup;
static int expect_found;
static volatile int stop;

#define SLOTS 128
#define MAX_WORKERS 256
struct worker {
	pthread_t thread;
	unsigned id;
	long ops;
	unsigned char *live[SLOTS];
	size_t sizes[SLOTS];
	unsigned char *freed[SLOTS]; /* last pointer freed from each slot */
	size_t freed_sizes[SLOTS];
};
static struct worker workers[MAX_WORKERS];
static int n_workers;
/* Pointers published for the lookers: live or freed by the time they look. */
static void *published[1024];
static unsigned long lookups_done;
static int static_object;

static void die(const char *what, const void *p, size_t n)
{
	fprintf(stderr, "thread_stress: %s (%p, size %zu)\n", what, p, n);
	exit(1);
}

static uint64_t step(uint64_t *x)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x;
}

static void check_found(const unsigned char *p, size_t n)
{
	if (!lookup || !expect_found || !n)
		return;
	void *base;
	size_t size;
	if (!lookup(p + (step(&(uint64_t){ (uintptr_t)p | 1 }) % n), &base, &size, NULL) ||
	    base != p || !reported_size_ok((void *)p, n, size))
		die("a live chunk is not found", p, n);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	uint64_t x = 0x9e3779b97f4a7c15u * (w->id + 1);
	for (long op = 0; op < w->ops; op++) {
		unsigned i = (unsigned)(step(&x) % SLOTS);
		size_t n = step(&x) % 8 == 0 ? step(&x) % 200000 : step(&x) % 512;
		unsigned char *p = w->live[i];
		if (p) {
			check_found(p, w->sizes[i]);
			if (w->sizes[i] && p[0] != (unsigned char)i)
				die("contents changed", p, w->sizes[i]);
		}
		unsigned kind = (unsigned)(step(&x) % 8);
		if (p && kind < 3) {
			free(p);
			w->freed[i] = p, w->freed_sizes[i] = w->sizes[i];
			w->live[i] = NULL;
			continue;
		}
		if (p && kind < 5) {
			unsigned char *q = realloc(p, n + 1);
			if (!q)
				die("realloc failed", p, n + 1);
			if (q != p)
				w->freed[i] = p, w->freed_sizes[i] = w->sizes[i];
			w->live[i] = q, w->sizes[i] = n + 1;
			q[0] = (unsigned char)i;
			check_found(q, n + 1);
			__atomic_store_n(&published[step(&x) % 1024], q, __ATOMIC_RELAXED);
			continue;
		}
		if (p) {
			free(p);
			w->freed[i] = p, w->freed_sizes[i] = w->sizes[i];
		}
		void *q = NULL;
		switch (kind % 4) {
		case 0: q = malloc(n); break;
		case 1: q = calloc(1, n); break;
		case 2: q = memalign(64 << (step(&x) % 4), n); break;
		default:
			if (posix_memalign(&q, 32, n))
				q = NULL;
			break;
		}
		if (!q)
			die("allocation failed", NULL, n);
		w->live[i] = q, w->sizes[i] = n;
		if (n)
			((unsigned char *)q)[0] = (unsigned char)i;
		check_found(q, n);
		__atomic_store_n(&published[step(&x) % 1024], q, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* Lookups of anything: answers are not checked (the chunk may be freed
 * meanwhile), only that they never fault and never hang. */
static void *look(void *arg)
{
	uint64_t x = (uintptr_t)arg * 0x2545f4914f6cdd1du + 1;
	int on_stack;
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		void *p = __atomic_load_n(&published[step(&x) % 1024], __ATOMIC_RELAXED);
		const void *wild[] = { p, (char *)p + step(&x) % 300, (char *)p - 16, (char *)p - 1,
		                       NULL, (void *)1, (void *)0xffffffff80000000u,
		                       (void *)(uintptr_t)step(&x), &on_stack, &static_object,
		                       (char *)p + 3 };
		for (size_t k = 0; k < sizeof wild / sizeof *wild; k++) {
			void *base;
			size_t size;
			const void *site;
			lookup(wild[k], &base, &size, &site);
		}
		__atomic_fetch_add(&lookups_done, sizeof wild / sizeof *wild, __ATOMIC_RELAXED);
		/* Let the workers at a one-lock index in: the spinlocks are not
		 * fair, and lookups that probe a long way would starve them. */
		sched_yield();
	}
	return NULL;
}

/* --- the race: lookups of chunks while their owners free them ---------------
 * Racer threads allocate chunks of RACE_SMALL or RACE_BIG bytes only, and
 * free them again, publishing each; looker threads look up addresses inside
 * the published chunks, which are being freed under them.  RACE_BIG chunks
 * are mapped by glibc with mmap and unmapped by free (the threshold is fixed
 * below), so a lookup that read the header of a freed big chunk would fault.
 * While the race runs nothing else allocates (every thread is made before it
 * starts), so a live chunk containing an address inside a racer's chunk is
 * a racer's chunk: a lookup must answer nothing, or a chunk of exactly
 * RACE_SMALL or RACE_BIG bytes, 16-byte aligned, containing the address.
 * A torn or stale header would show as any other size. */
static int trailer; /* reports_usable_size() != 0 (usable sizes may be reported), read once in main */
#define RACE_SMALL 200
#define RACE_BIG 300000
#define RACERS 3
#define RACE_LOOKERS 2
#define RACE_SLOTS 16

/* A chunk, | 1 if it is big, | 2 if it was freed already; 0: none. */
static uintptr_t race_slot[RACE_SLOTS];
static int race_go, race_stop, race_lookers_ready;
static unsigned long race_found, race_none;

struct racer {
	pthread_t thread;
	unsigned id;
	long ops;
};

/* Racer id owns slots id, id + RACERS, ... */
static void *racer(void *arg)
{
	const struct racer *r = arg;
	uint64_t x = 0x51ed2701u * (r->id + 1);
	while (!__atomic_load_n(&race_go, __ATOMIC_ACQUIRE))
		sched_yield();
	for (long op = 0; op < r->ops; op++) {
		unsigned slot = (unsigned)(step(&x) % (RACE_SLOTS / RACERS)) * RACERS + r->id;
		int big = step(&x) % 8 == 0;
		unsigned char *p = malloc(big ? RACE_BIG : RACE_SMALL);
		if (!p)
			die("race: allocation failed", NULL, 0);
		p[0] = 1;
		/* Publish the new chunk, then free the one it replaces: lookers
		 * may be looking it up right now. */
		uintptr_t old = __atomic_exchange_n(&race_slot[slot], (uintptr_t)p | (uintptr_t)big,
		                                    __ATOMIC_ACQ_REL);
		if (!(old & 2))
			free((void *)(old & ~(uintptr_t)3));
		/* Half the time free it at once, leaving it published. */
		if (step(&x) % 2) {
			free(p);
			__atomic_store_n(&race_slot[slot], (uintptr_t)p | (uintptr_t)big | 2, __ATOMIC_RELEASE);
		}
	}
	return NULL;
}

static void *race_look(void *arg)
{
	uint64_t x = 0x2545f4914f6cdd1du * ((uintptr_t)arg + 7);
	unsigned long found = 0, none = 0;
	__atomic_fetch_add(&race_lookers_ready, 1, __ATOMIC_RELEASE);
	for (unsigned n = 1; !__atomic_load_n(&race_stop, __ATOMIC_ACQUIRE); n++) {
		if (n % 256 == 0)
			sched_yield(); /* as in look(), less often: the race wants lookups */
		uintptr_t v = __atomic_load_n(&race_slot[step(&x) % RACE_SLOTS], __ATOMIC_ACQUIRE);
		if (!v)
			continue;
		uintptr_t p = v & ~(uintptr_t)3;
		uintptr_t addr = p + step(&x) % ((v & 1) ? RACE_BIG : RACE_SMALL);
		void *base;
		size_t size;
		if (!lookup((void *)addr, &base, &size, NULL)) {
			none++;
			continue;
		}
		found++;
		/* Under trailer (and side without records) the size is the usable size: at most one
		 * allocator step (16 bytes, or a page for big chunks) more. */
		int small = size >= RACE_SMALL && size < RACE_SMALL + (trailer ? 32 : 1);
		int big = size >= RACE_BIG && size < RACE_BIG + (trailer ? 8192 : 1);
		if ((!small && !big) || (uintptr_t)base % 16 || addr - (uintptr_t)base >= size)
			die("race: a lookup answered a torn chunk", base, size);
	}
	__atomic_fetch_add(&race_found, found, __ATOMIC_RELAXED);
	__atomic_fetch_add(&race_none, none, __ATOMIC_RELAXED);
	return NULL;
}

static void race(long ops)
{
	/* A fixed mmap threshold: glibc would otherwise raise it past RACE_BIG
	 * after the first big free, and big chunks would stay mapped. */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	ANNOTATE_BENIGN_RACE_SIZED(race_slot, sizeof race_slot, "published chunks");
	ANNOTATE_BENIGN_RACE_SIZED(&race_go, sizeof race_go, "start flag");
	ANNOTATE_BENIGN_RACE_SIZED(&race_lookers_ready, sizeof race_lookers_ready, "lookers started");
	ANNOTATE_BENIGN_RACE_SIZED(&race_stop, sizeof race_stop, "stop flag");
	static struct racer racers[RACERS];
	pthread_t lookers[RACE_LOOKERS];
	for (unsigned i = 0; i < RACERS; i++) {
		racers[i] = (struct racer){ .id = i, .ops = ops };
		if (pthread_create(&racers[i].thread, NULL, racer, &racers[i]))
			die("pthread_create failed", NULL, 0);
	}
	for (int i = 0; i < RACE_LOOKERS; i++)
		if (pthread_create(&lookers[i], NULL, race_look, (void *)(uintptr_t)i))
			die("pthread_create failed", NULL, 0);
	/* The racers start once every looker runs: on a loaded machine the
	 * racers' ops could otherwise all be done before a looker was first
	 * scheduled (once, 2 lookups in all: "no lookup found a live chunk"). */
	while (__atomic_load_n(&race_lookers_ready, __ATOMIC_ACQUIRE) < RACE_LOOKERS)
		sched_yield();
	__atomic_store_n(&race_go, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < RACERS; i++)
		pthread_join(racers[i].thread, NULL);
	__atomic_store_n(&race_stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < RACE_LOOKERS; i++)
		pthread_join(lookers[i], NULL);
	for (int i = 0; i < RACE_SLOTS; i++)
		if (!(race_slot[i] & 2))
			free((void *)(race_slot[i] & ~(uintptr_t)3));
	if (!expect_found && race_found)
		die("race: noop found a chunk", NULL, race_found);
	/* Lookers that never caught a chunk alive would test nothing. */
	if (expect_found && ops >= 1000 && !race_found)
		die("race: no lookup found a live chunk", NULL, race_none);
	printf("thread_stress: race of %d racers x %ld ops and %d lookers: %lu found whole, %lu not found\n",
	       RACERS, ops, RACE_LOOKERS, race_found, race_none);
}

int main(int argc, char **argv)
{
	long ops = argc > 1 ? atol(argv[1]) : 20000;
	long race_ops = argc > 2 ? atol(argv[2]) : ops;
	trailer = reports_usable_size() != 0;
	/* Shared through relaxed atomics, which helgrind and drd do not know:
	 * no race.  (Nothing when not under valgrind.) */
	ANNOTATE_BENIGN_RACE_SIZED(published, sizeof published, "published pointers");
	ANNOTATE_BENIGN_RACE_SIZED(&stop, sizeof stop, "stop flag");
	ANNOTATE_BENIGN_RACE_SIZED(&lookups_done, sizeof lookups_done, "lookup count");
	lookup = (lookup_fn *)dlsym(RTLD_DEFAULT, "heapindex_lookup");
	const char *want = getenv("EXPECT_LOOKUP");
	expect_found = !want || *want != '0';
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	n_workers = (int)(cpus > 0 ? 2 * cpus : 4);
	if (n_workers > MAX_WORKERS)
		n_workers = MAX_WORKERS;
	int n_lookers = lookup ? 2 : 0;
	pthread_t lookers[2];
	for (int i = 0; i < n_lookers; i++)
		pthread_create(&lookers[i], NULL, look, (void *)(uintptr_t)(i + 1));
	for (int i = 0; i < n_workers; i++) {
		workers[i].id = (unsigned)i;
		workers[i].ops = ops;
		if (pthread_create(&workers[i].thread, NULL, work, &workers[i]))
			die("pthread_create failed", NULL, 0);
	}
	for (int i = 0; i < n_workers; i++)
		pthread_join(workers[i].thread, NULL);
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < n_lookers; i++)
		pthread_join(lookers[i], NULL);

	/* Quiet now: the index must hold exactly what is live. */
	long live = 0;
	for (int i = 0; i < n_workers; i++)
		for (int s = 0; s < SLOTS; s++)
			if (workers[i].live[s]) {
				live++;
				check_found(workers[i].live[s], workers[i].sizes[s]);
			}
	for (int i = 0; i < n_workers && lookup && expect_found; i++)
		for (int s = 0; s < SLOTS; s++) {
			unsigned char *p = workers[i].freed[s];
			void *base;
			size_t size;
			if (!p || !workers[i].freed_sizes[s] || !lookup(p, &base, &size, NULL) || base != p)
				continue;
			/* Found at its own base: only allowed if it is live again. */
			int again = 0;
			for (int j = 0; j < n_workers && !again; j++)
				for (int t = 0; t < SLOTS; t++)
					again |= workers[j].live[t] == p;
			if (!again && size == workers[i].freed_sizes[s])
				die("a freed chunk is still found", p, size);
		}
	printf("thread_stress: %d threads x %ld ops, %d lookup threads (%lu lookups), %ld live at end ok\n",
	       n_workers, ops, n_lookers, lookups_done, live);
	if (lookup)
		race(race_ops);
	return 0;
}
