/* thread_churn.c - the thread benchmark: each thread keeps 4,096
 * live chunks of 16-128 bytes and replaces a random one per operation.
 *
 * Usage: thread_churn THREADS OPS_PER_THREAD.  Prints a checksum that does
 * not depend on addresses (so runs under every index can be compared) and
 * the wall seconds of the churn alone, from the first thread's start to the
 * last one's end.  mk/hook_cost.sh runs it under each index. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIVE 4096

struct worker {
	pthread_t thread;
	uint64_t seed, ops, checksum;
};

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x;
}

static void *churn(void *arg)
{
	struct worker *w = arg;
	unsigned char **live = calloc(LIVE, sizeof *live);
	size_t *sizes = calloc(LIVE, sizeof *sizes);
	if (!live || !sizes)
		abort();
	uint64_t x = w->seed, sum = 0;
	for (size_t i = 0; i < LIVE; i++) {
		sizes[i] = 16 + next(&x) % 113;
		live[i] = malloc(sizes[i]);
		if (!live[i])
			abort();
		live[i][0] = (unsigned char)i;
	}
	for (uint64_t op = 0; op < w->ops; op++) {
		size_t i = next(&x) % LIVE;
		sum += live[i][0] + sizes[i];
		free(live[i]);
		sizes[i] = 16 + next(&x) % 113;
		live[i] = malloc(sizes[i]);
		if (!live[i])
			abort();
		live[i][0] = (unsigned char)op;
	}
	for (size_t i = 0; i < LIVE; i++)
		free(live[i]);
	free(live);
	free(sizes);
	w->checksum = sum;
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3 || atoi(argv[1]) < 1 || atoi(argv[1]) > 256 || atoll(argv[2]) < 1) {
		fprintf(stderr, "usage: thread_churn THREADS(1..256) OPS_PER_THREAD\n");
		return 2;
	}
	int n = atoi(argv[1]);
	struct worker *w = calloc((size_t)n, sizeof *w);
	if (!w)
		return 1;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < n; i++) {
		w[i].seed = 0x9e3779b97f4a7c15u * (uint64_t)(i + 1);
		w[i].ops = (uint64_t)atoll(argv[2]);
		if (pthread_create(&w[i].thread, NULL, churn, &w[i]))
			return 1;
	}
	uint64_t sum = 0;
	for (int i = 0; i < n; i++) {
		pthread_join(w[i].thread, NULL);
		sum += w[i].checksum;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("thread_churn: %d threads, checksum %llu, %.3f s\n", n, (unsigned long long)sum,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
	free(w);
	return 0;
}
