/* spawn_paths.c - every way a threaded program starts another process, while
 * threads keep the hooks' lock busy: fork (child allocates and looks up),
 * posix_spawn, system() and vfork + exec.  A child must never inherit the
 * lock held (it would hang: the test times out).  EXPECT_LOOKUP=1 checks
 * lookups of live chunks.  Exits 0 or names the failure. */
#include <dlfcn.h>
#include <pthread.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
typedef int lookup_fn(const void *, void **, size_t *, const void **);
static lookup_fn *lookup;
static volatile int stop;

static void *churn(void *arg)
{
	unsigned x = (unsigned)(uintptr_t)arg * 2654435761u + 1;
	void *live[32] = { 0 };
	while (!stop) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		unsigned i = x % 32;
		if (live[i]) {
			if (lookup)
				lookup(live[i], NULL, NULL, NULL);
			free(live[i]);
			live[i] = NULL;
		} else {
			live[i] = (x & 1) ? malloc(x % 3000 + 1) : realloc(NULL, x % 100 + 1);
		}
	}
	for (int i = 0; i < 32; i++)
		free(live[i]);
	return NULL;
}

static int wait_ok(pid_t pid, const char *what)
{
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "spawn_paths: %s failed\n", what);
		return 0;
	}
	return 1;
}

static int forked_child(void)
{
	char *p = malloc(777);
	if (lookup) {
		void *base;
		if (!lookup(p + 700, &base, NULL, NULL) || base != p)
			return 1;
	}
	free(p);
	return 0;
}

int main(void)
{
	const char *want = getenv("EXPECT_LOOKUP");
	if (want && *want == '1')
		lookup = (lookup_fn *)dlsym(RTLD_DEFAULT, "heapindex_lookup");
	enum { THREADS = 4, ROUNDS = 12 };
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1));
	int forks = 0, spawns = 0, systems = 0, vforks = 0;
	for (int round = 0; round < ROUNDS; round++) {
		pid_t pid = fork();
		if (pid == 0)
			_exit(forked_child());
		if (!wait_ok(pid, "fork"))
			return 1;
		forks++;

		char *argv[] = { "sh", "-c", "x=$(echo a b c); test \"$x\" = 'a b c'", NULL };
		if (posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) ||
		    !wait_ok(pid, "posix_spawn"))
			return 1;
		spawns++;

		if (system("exit 0") != 0) {
			fprintf(stderr, "spawn_paths: system failed\n");
			return 1;
		}
		systems++;

		pid = vfork();
		if (pid == 0) {
			execve("/bin/true", (char *[]){ "true", NULL }, environ);
			_exit(127);
		}
		if (!wait_ok(pid, "vfork"))
			return 1;
		vforks++;
	}
	stop = 1;
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	printf("spawn_paths: %d threads; %d fork, %d posix_spawn, %d system, %d vfork ok\n",
	       THREADS, forks, spawns, systems, vforks);
	return 0;
}
