/* census_rows.c - every census is a whole snapshot of the live heap, even
 * while new allocation sites keep appearing (run with HEAPINDEX_CENSUS).
 *
 * New sites must appear faster than a census copies its table, so this
 * program makes its own: N tiny functions in an executable mapping, each
 * calling malloc (x86-64 only), so each has its own return address, its own
 * site.  The main thread calls them in order, keeping every chunk, while
 * another thread asks for censuses with SIGUSR2.  Sites appear in order and
 * no chunk is freed, so a census taken in one piece lists stub sites
 * 0..k-1 for some k and no other: a later site without an earlier one is a
 * dropped row.  Exits 0, 1 naming the first incomplete census, or 77 where
 * it cannot run (not x86-64). */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#define STUB_BYTES 32
#define STUBS 60000
#define CENSUSES 4

static unsigned char *stubs;

/* sub $8,%rsp; movabs $malloc,%rax; call *%rax; add $8,%rsp; ret: the
 * return address malloc sees is stub + 16. */
static void make_stubs(void)
{
	stubs = mmap(NULL, (size_t)STUBS * STUB_BYTES, PROT_READ | PROT_WRITE | PROT_EXEC,
	             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (stubs == MAP_FAILED) {
		perror("census_rows: mmap");
		exit(77);
	}
	uint64_t target = (uint64_t)(uintptr_t)&malloc;
	for (size_t i = 0; i < STUBS; i++) {
		unsigned char *p = stubs + i * STUB_BYTES;
		memset(p, 0xcc, STUB_BYTES);
		memcpy(p, "\x48\x83\xec\x08\x48\xb8", 6);
		memcpy(p + 6, &target, 8);
		memcpy(p + 14, "\xff\xd0\x48\x83\xc4\x08\xc3", 7);
	}
}

/* Census headers in the file so far. */
static int headers(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	int n = 0;
	while (f && fgets(line, sizeof line, f))
		n += strncmp(line, "# heapindex census", 18) == 0 && strstr(line, "reason=SIGUSR2");
	if (f)
		fclose(f);
	return n;
}

/* One SIGUSR2 at a time, the next once the last census has begun: signals
 * sent while one is pending merge into one. */
static void *ask(void *arg)
{
	const char *path = arg;
	for (int k = 0; k < CENSUSES; k++) {
		kill(getpid(), SIGUSR2);
		for (int wait = 0; wait < 2000 && headers(path) <= k; wait++)
			usleep(1000);
	}
	return NULL;
}

/* The stub a site belongs to, or -1. */
static long stub_of(uintptr_t site)
{
	uintptr_t off = site - (uintptr_t)stubs - 16;
	return off < (uintptr_t)STUBS * STUB_BYTES && off % STUB_BYTES == 0 ? (long)(off / STUB_BYTES) : -1;
}

/* Check every SIGUSR2 census in the file that is written out whole (as many
 * rows as its header's sites=N: the writer may be half-way through the
 * last one); how many there were. */
static int check(const char *path, unsigned char *seen)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	char line[4096];
	int censuses = 0, in_signal = 0;
	long present = 0, highest = -1, rows = 0, want_rows = -1;
	for (int more = 1; more;) {
		more = fgets(line, sizeof line, f) != NULL;
		if (!more || strncmp(line, "# heapindex census", 18) == 0) {
			if (in_signal && rows == want_rows) {
				censuses++;
				if (present != highest + 1) {
					fprintf(stderr, "census_rows: census %d lists %ld of the first %ld stub sites\n",
					        censuses, present, highest + 1);
					exit(1);
				}
			}
			in_signal = more && strstr(line, "reason=SIGUSR2") != NULL;
			const char *n = more ? strstr(line, " sites=") : NULL;
			want_rows = n ? atol(n + 7) : -1;
			present = 0, highest = -1, rows = 0;
			memset(seen, 0, STUBS);
			continue;
		}
		unsigned long long bytes, chunks;
		unsigned long site;
		if (line[0] == '#' || sscanf(line, "%llu\t%llu\t%lx", &bytes, &chunks, &site) != 3)
			continue;
		rows++;
		long i = stub_of(site);
		if (i >= 0 && !seen[i]) {
			seen[i] = 1;
			present++;
			if (i > highest)
				highest = i;
		}
	}
	fclose(f);
	return censuses;
}

int main(void)
{
#if !defined(__x86_64__)
	return 77;
#endif
	const char *census = getenv("HEAPINDEX_CENSUS");
	if (!census) {
		fprintf(stderr, "census_rows: run with HEAPINDEX_CENSUS set\n");
		return 2;
	}
	make_stubs();
	void **keep = calloc(STUBS, sizeof *keep);
	unsigned char *seen = malloc(STUBS);
	pthread_t t;
	pthread_create(&t, NULL, ask, (void *)census);
	for (size_t i = 0; i < STUBS; i++) {
		void *(*stub)(size_t) = (void *(*)(size_t))(void *)(stubs + i * STUB_BYTES);
		keep[i] = stub(16);
		for (volatile int spin = 0; spin < 100; spin++) /* ~50 ms in all */
			;
	}
	pthread_join(t, NULL);
	int got = 0;
	for (int wait = 0; wait < 6000 && (got = check(census, seen)) < CENSUSES; wait++)
		usleep(10000);
	if (got < CENSUSES) {
		fprintf(stderr, "census_rows: %d of %d censuses written\n", got, CENSUSES);
		return 1;
	}
	printf("census_rows: %d censuses, none incomplete\n", got);
	return 0;
}
