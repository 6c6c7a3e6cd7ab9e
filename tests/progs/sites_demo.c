/* sites_demo.c - allocations at known functions and lines, for the site
 * tests (tests/test_sites.c).  Prints "NAME LINE" for each site, keeps every
 * chunk live to the end (the census at exit must see them) but make_temps's,
 * which it frees (the census must not), and with
 * DESCRIBE=1 prints what heapindex_describe says about an interior pointer.
 * Linked with -rdynamic so HEAPINDEX_SITE_SKIP can name xmalloc. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

static void *keep[64];
static int kept;

/* A wrapper, as in gcc or git: skip lists exist for functions like this. */
__attribute__((noinline)) void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		abort();
	return p;
}

__attribute__((noinline)) static void make_names(void)
{
	int names_line = __LINE__ + 2;
	for (int i = 0; i < 10; i++)
		keep[kept++] = malloc(1000);
	printf("make_names %d\n", names_line);
}

__attribute__((noinline)) static void make_tables(void)
{
	int tables_line = __LINE__ + 2;
	for (int i = 0; i < 3; i++)
		keep[kept++] = calloc(1, 96);
	printf("make_tables %d\n", tables_line);
}

__attribute__((noinline)) static void make_wrapped(void)
{
	int wrapped_line = __LINE__ + 2;
	for (int i = 0; i < 2; i++)
		keep[kept++] = xmalloc(5000);
	printf("make_wrapped %d\n", wrapped_line);
}

/* Chunks freed again: the census must take them off their row. */
__attribute__((noinline)) static void make_temps(void)
{
	int temps_line = __LINE__ + 3;
	void *t[5];
	for (int i = 0; i < 5; i++)
		t[i] = malloc(700);
	for (int i = 0; i < 5; i++)
		free(t[i]);
	printf("make_temps %d\n", temps_line);
}

int main(void)
{
	make_names();
	make_tables();
	make_wrapped();
	make_temps();
	const char *describe = getenv("DESCRIBE");
	if (describe && *describe == '1') {
		int (*fn)(const void *, char *, size_t) =
			(int (*)(const void *, char *, size_t))dlsym(RTLD_DEFAULT, "heapindex_describe");
		if (!fn) {
			fprintf(stderr, "sites_demo: no heapindex_describe\n");
			return 1;
		}
		char line[512];
		int found = fn((char *)keep[10] + 24, line, sizeof line);
		printf("describe %d %s\n", found, line);
		int local;
		found = fn(&local, line, sizeof line);
		printf("describe %d %s\n", found, line);
	}
	/* SIGNAL=1: ask for a census now and wait (up to 5 s) for the writer
	 * thread to append it. */
	const char *sig = getenv("SIGNAL"), *census = getenv("HEAPINDEX_CENSUS");
	if (sig && *sig == '1' && census) {
		raise(SIGUSR2);
		for (int i = 0; i < 500; i++) {
			char buf[65536] = "";
			FILE *f = fopen(census, "r");
			size_t got = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
			if (f)
				fclose(f);
			buf[got] = '\0';
			if (strstr(buf, "reason=SIGUSR2"))
				break;
			usleep(10000);
		}
	}
	return 0;
}
