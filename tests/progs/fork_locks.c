/* fork_locks.c - a forked child must never inherit a lock of the hooks
 * held: it would hang at its next allocation, describe or exit.
 *
 *   fork_locks census     (HEAPINDEX_CENSUS set) ask for a census with
 *                         SIGUSR2, then fork while it is being written; each
 *                         child writes its own census at exit;
 *   fork_locks describe   a thread calls heapindex_describe (the
 *                         symbolizer's lock, libdwarf) and allocates while
 *                         the main thread forks; each child describes and
 *                         allocates too (with HEAPINDEX_SITE=unwind:N,
 *                         capturing stacks: libunwind's locks);
 *   fork_locks threads    print how many threads the process has before
 *                         it makes any: the hooks must not add one.
 *
 * A child that does not exit within 10 s is killed and reported: exit 1.
 * Exits 0 after ROUNDS forks otherwise. */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 40

typedef int describe_fn(const void *, char *, size_t);
static describe_fn *describe;
static volatile int stop;

/* Distinct allocation sites, so censuses and describes have work to do. */
__attribute__((noinline)) static void *site_a(size_t n) { return malloc(n); }
__attribute__((noinline)) static void *site_b(size_t n) { return calloc(1, n); }
__attribute__((noinline)) static void *site_c(size_t n) { return realloc(NULL, n); }

static void *(*const sites[])(size_t) = { site_a, site_b, site_c };

static void churn(void **keep, int n, unsigned *x)
{
	for (int i = 0; i < n; i++) {
		*x = *x * 1103515245u + 12345u;
		unsigned k = (*x >> 8) % 64;
		free(keep[k]);
		keep[k] = sites[k % 3](16 + (*x >> 20) % 500);
	}
}

static void *describer(void *arg)
{
	(void)arg;
	void *keep[64] = { 0 };
	unsigned x = 1;
	char line[512];
	while (!stop) {
		churn(keep, 8, &x);
		for (int k = 0; k < 64; k++)
			if (keep[k])
				describe((char *)keep[k] + 3, line, sizeof line);
	}
	for (int k = 0; k < 64; k++)
		free(keep[k]);
	return NULL;
}

/* Wait up to 10 s for the child; 0 if it exited 0. */
static int reap(pid_t pid, int round)
{
	struct timespec pause = { 0, 1000000 };
	for (int ms = 0; ms < 10000; ms++) {
		int status;
		pid_t got = waitpid(pid, &status, WNOHANG);
		if (got == pid) {
			if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
				return 0;
			fprintf(stderr, "fork_locks: child %d ended with status %#x\n", round, status);
			return 1;
		}
		nanosleep(&pause, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	fprintf(stderr, "fork_locks: child %d hung (killed after 10 s)\n", round);
	return 1;
}

static int threads_now(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int n = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	if (strcmp(mode, "threads") == 0) {
		printf("threads: %d\n", threads_now());
		return 0;
	}
	int census = strcmp(mode, "census") == 0;
	if (!census && strcmp(mode, "describe") != 0) {
		fprintf(stderr, "usage: fork_locks census|describe|threads\n");
		return 2;
	}
	describe = (describe_fn *)dlsym(RTLD_DEFAULT, "heapindex_describe");
	if (!describe) {
		fprintf(stderr, "fork_locks: no heapindex_describe: run under a hook library\n");
		return 2;
	}
	pthread_t t;
	if (!census)
		pthread_create(&t, NULL, describer, NULL);
	void *keep[64] = { 0 };
	unsigned x = 7;
	int failed = 0;
	for (int round = 0; round < ROUNDS && !failed; round++) {
		if (census)
			raise(SIGUSR2);
		churn(keep, 20 + round % 7 * 10, &x); /* the census is being written meanwhile */
		pid_t pid = fork();
		if (pid == 0) {
			char line[512];
			churn(keep, 10, &x);
			describe(keep[round % 64] ? keep[round % 64] : (void *)&line, line, sizeof line);
			if (census)
				exit(0); /* the exit-time census */
			_exit(0);
		}
		failed = pid < 0 || reap(pid, round);
	}
	stop = 1;
	if (!census)
		pthread_join(t, NULL);
	for (int k = 0; k < 64; k++)
		free(keep[k]);
	if (!failed)
		printf("fork_locks %s: %d forks ok\n", mode, ROUNDS);
	return failed;
}
