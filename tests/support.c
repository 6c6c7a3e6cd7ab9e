/* support.c - see support.h. */
#include "support.h"
#include "index_params.h"
#include "index.h"

#include <errno.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

const char *repo_root(void)
{
	const char *root = getenv("HEAPINDEX_ROOT");
	return root && *root ? root : ".";
}

const char *hook_library(const char *index)
{
	static char path[4096];
	if (strcmp(index, "none") == 0)
		return NULL;
	snprintf(path, sizeof path, "%s/build/lib/libheapindex-%s.so", repo_root(), index);
	return path;
}

/* Does the library preloaded (the last libheapindex-<name>.so in preload)
 * belong to an index without records that takes side (INDEX_SIDE_TELLS,
 * hooks/index.h)?  Its lookups under side answer the usable size and no
 * site: the programs learn so from TEST_SIDE_SIZELESS=1
 * (tests/progs/reported_size.h). */
static int preload_side_sizeless(const char *preload)
{
	const char *lib = preload, *at;
	while (lib && (at = strstr(lib, "libheapindex-")) != NULL)
		lib = at + strlen("libheapindex-");
	if (!lib || lib == preload)
		return 0;
	char name[32];
	size_t len = strcspn(lib, ".");
	if (len >= sizeof name)
		return 0;
	memcpy(name, lib, len);
	name[len] = '\0';
	return (index_caps(name) & (INDEX_SIDE_TELLS | INDEX_SIDE_RECORDS)) == INDEX_SIDE_TELLS;
}

/* The child's environment: ours, minus LD_PRELOAD, plus the settings. */
static char **child_environment(const char *preload, const char *const env[])
{
	size_t n = 0, extra = 0;
	while (environ[n])
		n++;
	while (env && env[extra])
		extra++;
	char **out = calloc(n + extra + 3, sizeof *out);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0)
			out[k++] = environ[i];
	for (size_t i = 0; i < extra; i++)
		out[k++] = (char *)env[i];
	if (preload_side_sizeless(preload))
		out[k++] = (char *)"TEST_SIDE_SIZELESS=1";
	if (preload) {
		static char setting[4200];
		snprintf(setting, sizeof setting, "LD_PRELOAD=%s", preload);
		out[k++] = setting;
	}
	return out;
}

static void append(char **buf, size_t *len, const char *data, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = '\0';
}

struct program_result run_program(char *const argv[], const char *preload,
                                  const char *const env[])
{
	struct program_result r = { .status = -1 };
	int out_pipe[2], err_pipe[2];
	if (pipe(out_pipe) || pipe(err_pipe))
		return r;
	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
	posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
	posix_spawn_file_actions_addclose(&actions, out_pipe[0]);
	posix_spawn_file_actions_addclose(&actions, err_pipe[0]);
	char **envp = child_environment(preload, env);
	pid_t pid;
	int e = posix_spawnp(&pid, argv[0], &actions, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&actions);
	free(envp);
	close(out_pipe[1]);
	close(err_pipe[1]);
	append(&r.out, &r.out_len, "", 0);
	append(&r.err, &r.err_len, "", 0);
	if (e) {
		close(out_pipe[0]);
		close(err_pipe[0]);
		r.status = 127;
		return r;
	}
	/* Drain both pipes together so neither can fill and block the child. */
	struct pollfd fds[2] = { { out_pipe[0], POLLIN, 0 }, { err_pipe[0], POLLIN, 0 } };
	int open_fds = 2;
	char buf[65536];
	while (open_fds) {
		if (poll(fds, 2, -1) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++) {
			if (fds[i].fd < 0 || !fds[i].revents)
				continue;
			ssize_t got = read(fds[i].fd, buf, sizeof buf);
			if (got > 0) {
				if (i == 0)
					append(&r.out, &r.out_len, buf, (size_t)got);
				else
					append(&r.err, &r.err_len, buf, (size_t)got);
			} else {
				close(fds[i].fd);
				fds[i].fd = -1;
				open_fds--;
			}
		}
	}
	int wstatus;
	while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	r.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
	return r;
}

void program_result_free(struct program_result *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

uint64_t test_random(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * UINT64_C(2685821657736338717);
}
