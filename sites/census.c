/* census.c - HEAPINDEX_CENSUS=FILE: the live heap grouped by allocation site,
 * appended to FILE at exit and whenever the process gets SIGUSR2.
 *
 * The index contract has no iteration, so the census keeps its own table:
 * live chunks and bytes per site, updated by the hooks next to each index
 * insert and remove, under hooks_lock (so it needs no lock of its own).
 * Without HEAPINDEX_CENSUS the hooks skip it on one predicted branch.
 *
 * Writing is the opposite of the allocation path: it copies the table under
 * the lock, lets go, then symbolizes (libdwarf allocates) and writes.  A
 * signal handler can do none of that, so SIGUSR2 only posts a semaphore a
 * writer thread waits on (sem_post is async-signal-safe).  The thread is
 * started when the first census is asked for, not before: a thread of ours
 * in every process would make single-threaded programs multithreaded, and
 * some things only a single-threaded process may do (unshare(CLONE_NEWUSER)
 * fails with EINVAL otherwise).  A signal handler cannot start a thread
 * either, so it also raises SITES_SLOW_CENSUS, and the next allocation
 * (sites_capture_slow, outside the hooks' lock) starts it.  A program that
 * allocates nothing after SIGUSR2 gets no census before the one at exit.
 *
 * fork: the child has no writer thread (a new one starts if the child asks
 * for a census), and the writer's mutex, which only keeps two censuses from
 * interleaving in the file, is made anew: a census being written by
 * another thread when the parent forked must not hang the child's own.
 */
#include "sites.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hooks.h"

int sites_census_on;
static const char *census_path;

struct census_slot {
	uintptr_t site; /* 0: empty, and the overflow slot's key */
	uint64_t chunks, bytes;
};

/* Open addressing, never shrinks: a site once seen keeps its slot even with
 * no live chunks.  Sites beyond 3/4 of the table are counted in `overflow`
 * (reported as site 0) rather than failing an allocation. */
#define CENSUS_SLOTS ((size_t)1 << 18)
static struct census_slot *table; /* CENSUS_SLOTS, from mmap */
static size_t used;
static struct census_slot overflow;

void sites_census_init(const struct heapindex_config *cfg)
{
	if (!cfg->census_path)
		return;
	void *t = mmap(NULL, CENSUS_SLOTS * sizeof *table, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (t == MAP_FAILED)
		return;
	table = t;
	census_path = cfg->census_path;
	sites_census_on = 1;
}

static struct census_slot *slot_of(uintptr_t site)
{
	size_t i = (size_t)((site * 0x9e3779b97f4a7c15u) >> 40) & (CENSUS_SLOTS - 1);
	for (;; i = (i + 1) & (CENSUS_SLOTS - 1)) {
		if (table[i].site == site)
			return &table[i];
		if (!table[i].site) {
			if (used >= CENSUS_SLOTS / 4 * 3 || !site)
				return &overflow;
			used++;
			table[i].site = site;
			return &table[i];
		}
	}
}

__thread int sites_internal __attribute__((tls_model("initial-exec")));

void sites_census_count(uintptr_t site, size_t size, int delta)
{
	if (sites_internal)
		return;
	struct census_slot *s = slot_of(site);
	s->chunks += (uint64_t)(int64_t)delta;
	s->bytes += delta > 0 ? size : -(uint64_t)size;
}

static int by_bytes(const void *a, const void *b)
{
	const struct census_slot *x = a, *y = b;
	if (x->bytes != y->bytes)
		return x->bytes < y->bytes ? 1 : -1;
	return x->chunks < y->chunks ? 1 : x->chunks > y->chunks ? -1 : 0;
}

/* The rest of an interned stack, "f (a.c:3) < g (b.c:9)", outermost last. */
static void write_callers(FILE *f, uintptr_t site)
{
	const struct site_stack *s = site_as_stack(site);
	for (uint32_t i = 1; s && i < s->depth; i++) {
		char where[512];
		sites_format(s->frames[i], where, sizeof where);
		fprintf(f, "%s%s", i > 1 ? " < " : "", where);
	}
}

static pthread_mutex_t writing = PTHREAD_MUTEX_INITIALIZER;

void sites_census_write(const char *reason)
{
	if (!sites_census_on)
		return;
	pthread_mutex_lock(&writing);
	/* Room for every row there can be (used stays below 3/4 of the slots;
	 * one more for overflow), reserved but committed only as rows are
	 * copied.  Sized before the lock, so sites that appear meanwhile are
	 * not dropped; mmap, so the hooks see no allocation of ours in the
	 * census they are taking. */
	size_t cap = CENSUS_SLOTS / 4 * 3 + 1, n = 0;
	size_t bytes = cap * sizeof(struct census_slot);
	struct census_slot *copy = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
	                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (copy == MAP_FAILED) {
		pthread_mutex_unlock(&writing);
		return;
	}
	uint64_t total_chunks = 0, total_bytes = 0;
	spin_lock(&hooks_lock);
	for (size_t i = 0; i < CENSUS_SLOTS; i++)
		if (table[i].site && table[i].chunks)
			copy[n++] = table[i];
	if (overflow.chunks)
		copy[n++] = overflow;
	spin_unlock(&hooks_lock);
	qsort(copy, n, sizeof *copy, by_bytes);
	for (size_t i = 0; i < n; i++) {
		total_chunks += copy[i].chunks;
		total_bytes += copy[i].bytes;
	}

	int fd = open(census_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "a");
	if (f) {
		fprintf(f, "# heapindex census pid=%ld reason=%s sites=%zu live_chunks=%llu live_bytes=%llu\n",
		        (long)getpid(), reason, n, (unsigned long long)total_chunks,
		        (unsigned long long)total_bytes);
		fprintf(f, "# bytes\tchunks\tsite\tfunction\tsource\tobject\tcallers\n");
		for (size_t i = 0; i < n; i++) {
			uintptr_t leaf = sites_leaf(copy[i].site);
			struct site_symbol sym;
			if (!copy[i].site || !sites_symbolize(leaf, &sym)) {
				snprintf(sym.function, sizeof sym.function, "%s", copy[i].site ? "??" : "(other sites)");
				sym.file[0] = sym.object[0] = '\0';
				sym.has_debug = 0;
			}
			char source[300];
			if (sym.has_debug)
				snprintf(source, sizeof source, "%s:%u", sym.file, sym.line);
			else
				snprintf(source, sizeof source, "(no debug info)");
			fprintf(f, "%llu\t%llu\t%#lx\t%s\t%s\t%s\t",
			        (unsigned long long)copy[i].bytes, (unsigned long long)copy[i].chunks,
			        (unsigned long)copy[i].site, sym.function, source, sym.object);
			write_callers(f, copy[i].site);
			fputc('\n', f);
		}
		fclose(f);
	} else if (fd >= 0) {
		close(fd);
	}
	munmap(copy, bytes);
	pthread_mutex_unlock(&writing);
}

/* --- SIGUSR2 --------------------------------------------------------------- */
static sem_t requests;
static int writer_started;

static void on_sigusr2(int sig)
{
	(void)sig;
	int saved = errno;
	sem_post(&requests);
	if (!__atomic_load_n(&writer_started, __ATOMIC_RELAXED))
		__atomic_fetch_or(&sites_slow, SITES_SLOW_CENSUS, __ATOMIC_RELAXED);
	errno = saved;
}

static void *writer(void *arg)
{
	(void)arg;
	for (;;) {
		while (sem_wait(&requests) && errno == EINTR)
			;
		sites_census_write("SIGUSR2");
	}
	return NULL;
}

/* The allocation that finds SITES_SLOW_CENSUS clears it first, so the
 * allocations pthread_create makes do not come back here. */
void sites_census_start_writer(void)
{
	__atomic_fetch_and(&sites_slow, ~SITES_SLOW_CENSUS, __ATOMIC_RELAXED);
	int expected = 0;
	if (!__atomic_compare_exchange_n(&writer_started, &expected, 1, 0, __ATOMIC_ACQ_REL,
	                                 __ATOMIC_RELAXED))
		return;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old); /* the writer takes no signals */
	pthread_t t;
	int started = pthread_create(&t, NULL, writer, NULL) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (started)
		pthread_detach(t);
	else /* the census asked for comes at exit; the next SIGUSR2 tries again */
		__atomic_store_n(&writer_started, 0, __ATOMIC_RELEASE);
}

void census_fork_child(void)
{
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
	writing = fresh;
	__atomic_store_n(&writer_started, 0, __ATOMIC_RELAXED);
	int pending = 0;
	if (sites_census_on && !sem_getvalue(&requests, &pending) && pending > 0)
		__atomic_fetch_or(&sites_slow, SITES_SLOW_CENSUS, __ATOMIC_RELAXED);
}

/* The handler is installed from a constructor: sites_init runs inside the
 * first malloc.  Installing it makes no thread. */
__attribute__((constructor)) static void census_constructor(void)
{
	const char *path = getenv("HEAPINDEX_CENSUS");
	if (!path || !*path)
		return;
	sem_init(&requests, 0, 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigusr2;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, NULL);
}
