/* threads_fork.c - threads allocating and looking up while the main thread
 * forks: a child must never inherit the hooks' lock held (it would hang at
 * its first malloc), and each child's index must still answer.  With
 * EXPECT_LOOKUP=1 lookups of live chunks must succeed. Exits 0 or names the
 * failure; a deadlock shows as a test timeout. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reported_size.h"

typedef int lookup_fn(const void *, void **, size_t *, const void **);
static lookup_fn *lookup;
static volatile int stop;

static void *churn(void *arg)
{
	unsigned x = (unsigned)(uintptr_t)arg * 2654435761u + 1;
	void *live[64] = { 0 };
	size_t sizes[64] = { 0 };
	while (!stop) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		unsigned i = x % 64;
		if (live[i]) {
			if (lookup) {
				void *base;
				size_t size;
				if (!lookup((char *)live[i] + sizes[i] / 2, &base, &size, NULL) ||
				    base != live[i] || !reported_size_ok(live[i], sizes[i], size)) {
					fprintf(stderr, "threads_fork: lost chunk %p\n", live[i]);
					exit(1);
				}
			}
			free(live[i]);
			live[i] = NULL;
		} else {
			sizes[i] = x % 2000 + 1;
			live[i] = (x & 1) ? malloc(sizes[i]) : aligned_alloc(64, sizes[i]);
		}
	}
	for (int i = 0; i < 64; i++)
		free(live[i]);
	return NULL;
}

static int child(int round)
{
	char *p = malloc(1000 + (size_t)round);
	if (lookup) {
		void *base;
		if (!lookup(p + 10, &base, NULL, NULL) || base != p) {
			fprintf(stderr, "threads_fork: child's chunk not found\n");
			return 1;
		}
	}
	free(p);
	if (round % 4 == 0) { /* and exec a program that allocates too */
		execl("/bin/sh", "sh", "-c", "exit 0", (char *)NULL);
		return 1;
	}
	return 0;
}

int main(void)
{
	const char *want = getenv("EXPECT_LOOKUP");
	if (want && *want == '1')
		lookup = (lookup_fn *)dlsym(RTLD_DEFAULT, "heapindex_lookup");
	enum { THREADS = 4, FORKS = 40 };
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1));
	for (int round = 0; round < FORKS; round++) {
		pid_t pid = fork();
		if (pid == 0)
			_exit(child(round));
		int status;
		waitpid(pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			fprintf(stderr, "threads_fork: child %d failed\n", round);
			return 1;
		}
		usleep(1000);
	}
	stop = 1;
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	printf("threads_fork: %d threads, %d forks ok\n", THREADS, FORKS);
	return 0;
}
