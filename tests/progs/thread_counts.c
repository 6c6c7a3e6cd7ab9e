/* thread_counts.c - a fixed number of calls of every kind, from threads
 * that free each other's chunks and from the child of a fork made while
 * they hold chunks, for checking that the hooks' statistics count calls
 * and live chunks exactly however the fast path keeps them (hooks/
 * counters.h: per-call counts, or the budgets alone under side without
 * records).  tests/test_threads.c runs it under side and header and wants
 * the same calls and live chunks in each process's statistics line.
 *
 *   1. THREADS workers each allocate CHUNKS chunks (malloc, calloc,
 *      realloc from NULL and up, memalign: every path of the hooks) and
 *      free every third; then all wait.
 *   2. The main thread forks while they wait.  The child frees a third of
 *      the chunks it inherited from each worker, allocates CHILD_CHUNKS of
 *      its own, frees half of them, and exits (its statistics line first:
 *      the parent waits for it).
 *   3. Each worker frees the chunks the next one still holds (its own
 *      count of live chunks goes negative), allocates KEEP more and leaves
 *      them live.
 *
 * Deterministic: the same calls in the same threads in every run.  Prints
 * the chunks the program leaves live in each process.  Usage: thread_counts */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 4
#define CHUNKS 3000 /* ~90 budgets' worth of events each way per worker */
#define CHILD_CHUNKS 2000
#define KEEP 70

static void *chunks[THREADS][CHUNKS];
static void *kept[THREADS][KEEP];
static pthread_barrier_t barrier;

static void *make(unsigned i, unsigned n)
{
	size_t size = 1 + (i * 2654435761u + n * 40503u) % 600;
	switch (n % 4) {
	case 0:
		return malloc(size);
	case 1:
		return calloc(1, size);
	case 2: {
		char *p = realloc(NULL, size / 2 + 1);
		return p ? realloc(p, size + 100) : NULL;
	}
	default:
		return memalign(64, size);
	}
}

static void *worker(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	for (unsigned n = 0; n < CHUNKS; n++)
		if (!(chunks[id][n] = make(id, n)))
			abort();
	for (unsigned n = 0; n < CHUNKS; n += 3) {
		free(chunks[id][n]);
		chunks[id][n] = NULL;
	}
	pthread_barrier_wait(&barrier); /* the fork */
	pthread_barrier_wait(&barrier);
	unsigned next = (id + 1) % THREADS;
	for (unsigned n = 0; n < CHUNKS; n++)
		free(chunks[next][n]); /* NULL for the freed third: a call, no chunk */
	for (unsigned n = 0; n < KEEP; n++)
		if (!(kept[id][n] = make(id + THREADS, n)))
			abort();
	return NULL;
}

static void child(void)
{
	static void *own[CHILD_CHUNKS];
	for (unsigned id = 0; id < THREADS; id++)
		for (unsigned n = 1; n < CHUNKS; n += 3) {
			free(chunks[id][n]);
			chunks[id][n] = NULL;
		}
	for (unsigned n = 0; n < CHILD_CHUNKS; n++)
		if (!(own[n] = make(2 * THREADS, n)))
			_exit(3);
	for (unsigned n = 0; n < CHILD_CHUNKS; n += 2)
		free(own[n]);
	/* Left live: a third of each worker's chunks, and half of its own. */
	printf("thread_counts child: %u chunks of its own live\n",
	       THREADS * (CHUNKS / 3) + CHILD_CHUNKS / 2);
	exit(0);
}

int main(void)
{
	pthread_t t[THREADS];
	pthread_barrier_init(&barrier, NULL, THREADS + 1);
	for (unsigned i = 0; i < THREADS; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i))
			return 2;
	pthread_barrier_wait(&barrier);
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		return 2;
	if (pid == 0)
		child();
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		return 1;
	pthread_barrier_wait(&barrier);
	for (unsigned i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	printf("thread_counts: %u chunks of its own live\n", THREADS * KEEP);
	return 0;
}
