/* spawn.c - run a command as a child the way system() does, and wait for it:
 * shared by `heapindex run` and `heapindex record`. */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int cli_spawn(const char *who, char **command, void (*in_child)(void *), void *arg,
              struct rusage *ru, double *wall_seconds)
{
	/* Like system(): the command, not us, takes the terminal's signals. */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	double start = now_seconds();
	pid_t pid = fork();
	if (pid < 0)
		cli_usage_error("%s: fork failed: %s", who, strerror(errno));
	if (pid == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGQUIT, SIG_DFL);
		if (in_child)
			in_child(arg);
		execvp(command[0], command);
		fprintf(stderr, "heapindex: %s: cannot execute %s: %s\n", who, command[0], strerror(errno));
		_exit(127);
	}
	int wstatus;
	while (wait4(pid, &wstatus, 0, ru) < 0)
		if (errno != EINTR)
			cli_usage_error("%s: wait4 failed: %s", who, strerror(errno));
	*wall_seconds = now_seconds() - start;
	signal(SIGINT, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
	return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
}
