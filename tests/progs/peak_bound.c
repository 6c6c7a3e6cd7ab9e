/* peak_bound.c - heap shapes whose true peak is known, for checking how
 * exact the hooks' per-thread peak figures are (hooks/counters.h).
 *
 *   peak_bound cross   THREADS threads each allocate PER_THREAD chunks of
 *                      CHUNK bytes, wait for each other (all are live at
 *                      once: the program's own peak), then each frees the
 *                      chunks of the next thread (so every thread's own
 *                      count ends negative or positive, never its share).
 *   peak_bound pipe    a producer allocates PIPE_CHUNKS chunks into a ring
 *                      of RING places that a consumer frees: never more
 *                      than RING + 1 are live, while the producer alone
 *                      made PIPE_CHUNKS of them live (a sum of per-thread
 *                      peaks would report that).
 *
 * Prints the program's own peak (chunks and bytes); the test runs it with
 * HEAPINDEX_STATS and compares the reported peaks with it. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define PER_THREAD 5000
#define CHUNK 100
#define PIPE_CHUNKS 200000
#define RING 256
#define PIPE_CHUNK 64

static void *chunks[THREADS][PER_THREAD];
static pthread_barrier_t barrier;

static void *cross(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	for (int i = 0; i < PER_THREAD; i++)
		if (!(chunks[id][i] = malloc(CHUNK)))
			abort();
	pthread_barrier_wait(&barrier);
	pthread_barrier_wait(&barrier); /* every chunk of every thread is live between the two */
	for (int i = 0; i < PER_THREAD; i++)
		free(chunks[(id + 1) % THREADS][i]);
	return NULL;
}

static void *ring[RING];
static unsigned long produced, consumed; /* ring positions */

static void *produce(void *arg)
{
	(void)arg;
	for (unsigned long n = 0; n < PIPE_CHUNKS; n++) {
		while (n - __atomic_load_n(&consumed, __ATOMIC_ACQUIRE) >= RING)
			;
		void *p = malloc(PIPE_CHUNK);
		if (!p)
			abort();
		ring[n % RING] = p;
		__atomic_store_n(&produced, n + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void *consume(void *arg)
{
	(void)arg;
	for (unsigned long n = 0; n < PIPE_CHUNKS; n++) {
		while (__atomic_load_n(&produced, __ATOMIC_ACQUIRE) == n)
			;
		free(ring[n % RING]);
		__atomic_store_n(&consumed, n + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	pthread_t t[THREADS];
	if (strcmp(mode, "cross") == 0) {
		pthread_barrier_init(&barrier, NULL, THREADS);
		for (unsigned i = 0; i < THREADS; i++)
			pthread_create(&t[i], NULL, cross, (void *)(uintptr_t)i);
		for (int i = 0; i < THREADS; i++)
			pthread_join(t[i], NULL);
		printf("peak_bound: cross: own peak %d chunks, %d bytes, %d threads\n",
		       THREADS * PER_THREAD, THREADS * PER_THREAD * CHUNK, THREADS);
		return 0;
	}
	if (strcmp(mode, "pipe") == 0) {
		pthread_create(&t[0], NULL, produce, NULL);
		pthread_create(&t[1], NULL, consume, NULL);
		pthread_join(t[0], NULL);
		pthread_join(t[1], NULL);
		printf("peak_bound: pipe: own peak at most %d chunks, %d bytes, 2 threads\n", RING + 1,
		       (RING + 1) * PIPE_CHUNK);
		return 0;
	}
	fprintf(stderr, "usage: peak_bound cross|pipe\n");
	return 2;
}
