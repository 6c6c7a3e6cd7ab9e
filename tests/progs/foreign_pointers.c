/* foreign_pointers.c - free, realloc and malloc_usable_size given pointers
 * the hooks did not hand out (issue 16, item 4).
 *
 *   foreign_pointers libc   chunks of glibc's own (__libc_malloc), between
 *                           chunks of the hooks, passed to free, realloc and
 *                           malloc_usable_size: each must reach glibc
 *                           untouched (its usable size, its contents), a
 *                           realloc must return a chunk the index knows, and
 *                           every chunk of the hooks must still be found
 *                           with its base and size.  Prints "libc ok".
 *   foreign_pointers bad    free of a pointer into the middle of a live
 *                           chunk, below which the program wrote what an old
 *                           header would have taken for a plain chunk with
 *                           list links: glibc must abort (SIGABRT, its own
 *                           message), and a SIGABRT handler checks first
 *                           that the index still answers for the chunk
 *                           around it and for its neighbours ("index
 *                           intact") before dying of the signal.
 *   foreign_pointers underflow  the program zeroes bytes 9 and 10 below a
 *                           live chunk of its own (a buffer underflow that
 *                           hit the hooks' pad code, not the size or the
 *                           index's links) and frees it: the index knows
 *                           the chunk, so the hooks stop with a message
 *                           saying so (SIGABRT).
 *
 * EXPECT_LOOKUP=1: the preloaded index answers lookups (the checks of what
 * it finds are skipped otherwise). */
#include <heapindex.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reported_size.h"

#pragma weak heapindex_lookup

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);

#define OURS 64
static char *ours[OURS];
static size_t ours_size[OURS];
static int expect_lookup;

static void die(const char *what)
{
	fprintf(stderr, "foreign_pointers: %s\n", what);
	exit(1);
}

/* Every chunk of ours is found, by an interior address, with its base and size. */
static int ours_intact(void)
{
	if (!expect_lookup)
		return 1;
	for (int i = 0; i < OURS; i++) {
		void *base;
		size_t size;
		if (!ours[i])
			continue;
		if (!heapindex_lookup(ours[i] + ours_size[i] / 2, &base, &size, NULL) ||
		    base != ours[i] || !reported_size_ok(ours[i], ours_size[i], size))
			return 0;
	}
	return 1;
}

/* glibc's usable size of its own in-use chunk, from its size field: what
 * malloc_usable_size answers without the hooks. */
static size_t glibc_usable(const void *p)
{
	size_t field;
	memcpy(&field, (const char *)p - sizeof field, sizeof field);
	return (field & ~(size_t)7) - sizeof field;
}

static void libc_pointers(void)
{
	char *theirs[OURS];
	for (int i = 0; i < OURS; i++) {
		ours_size[i] = 16 + (size_t)(i % 8) * 24;
		ours[i] = malloc(ours_size[i]);
		theirs[i] = __libc_malloc(24 + (size_t)(i % 5) * 40);
		if (!ours[i] || !theirs[i])
			die("out of memory");
		memset(ours[i], 'o', ours_size[i]);
		memset(theirs[i], 'a' + i % 26, 24);
	}
	for (int i = 0; i < OURS; i++) {
		size_t want = glibc_usable(theirs[i]);
		if (malloc_usable_size(theirs[i]) != want)
			die("malloc_usable_size of a glibc chunk is not glibc's");
	}
	for (int i = 0; i < OURS; i += 2) { /* half freed, half resized */
		free(theirs[i]);
		char *n = realloc(theirs[i + 1], 300);
		if (!n)
			die("realloc of a glibc chunk failed");
		for (int k = 0; k < 24; k++)
			if (n[k] != 'a' + (i + 1) % 26)
				die("realloc of a glibc chunk lost its contents");
		void *base;
		size_t size;
		if (expect_lookup && (!heapindex_lookup(n + 299, &base, &size, NULL) ||
		                      base != n || !reported_size_ok(n, 300, size)))
			die("realloc of a glibc chunk did not return a chunk of ours");
		free(n);
	}
	if (!ours_intact())
		die("a chunk of ours was lost or changed");
	for (int i = 0; i < OURS; i++) {
		for (size_t k = 0; k < ours_size[i]; k++)
			if (ours[i][k] != 'o')
				die("a chunk of ours was written");
		free(ours[i]);
	}
	/* And the other way round: glibc frees a glibc chunk the hooks saw. */
	char *last = __libc_malloc(40);
	free(last);
	printf("libc ok\n");
}

static void on_abort(int sig)
{
	static const char intact[] = "index intact\n", broken[] = "index BROKEN\n";
	if (ours_intact()) {
		if (write(STDOUT_FILENO, intact, sizeof intact - 1) < 0)
			_exit(1);
	} else if (write(STDOUT_FILENO, broken, sizeof broken - 1) < 0) {
		_exit(1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void bad_pointer(void)
{
	for (int i = 0; i < OURS; i++) {
		ours_size[i] = i == OURS / 2 ? 256 : 16 + (size_t)(i % 4) * 16;
		ours[i] = malloc(ours_size[i]);
		if (!ours[i])
			die("out of memory");
		memset(ours[i], 0, ours_size[i]);
	}
	char *big = ours[OURS / 2];
	/* A 64-byte-aligned pointer inside big, with room after it. */
	char *bad = (char *)(((uintptr_t)big + 64 + 63) & ~(uintptr_t)63);
	/* Below it, what the hooks' old header read as: size 32, pad code 1
	 * (a plain 16-byte header), list links next = slot 3, prev = none;
	 * at slot 3 of bad's 64-byte bin, a plausible header of size 40. */
	uint64_t fake[2] = { 32 | UINT64_C(1) << 48, UINT64_C(3) << 48 };
	uint64_t slot3[2] = { 40 | UINT64_C(1) << 48, 0 };
	memcpy(bad - 16, fake, sizeof fake);
	memcpy(bad + 16, slot3, sizeof slot3);
	if (!ours_intact())
		die("lookups were wrong before the bad free");
	signal(SIGABRT, on_abort);
	printf("freeing %p\n", (void *)bad);
	fflush(stdout);
	free(bad);
	printf("free of a bad pointer returned\n");
}

static void underflow(void)
{
	char *p = malloc(100);
	if (!p)
		die("out of memory");
	char *volatile below = p - 10; /* volatile: gcc knows it is not ours */
	memset(below, 0, 2);
	printf("freeing %p\n", (void *)p);
	fflush(stdout);
	free(p);
	printf("free of an overwritten chunk returned\n");
}

int main(int argc, char **argv)
{
	const char *e = getenv("EXPECT_LOOKUP");
	expect_lookup = e && *e == '1' && heapindex_lookup;
	if (argc == 2 && !strcmp(argv[1], "libc"))
		libc_pointers();
	else if (argc == 2 && !strcmp(argv[1], "bad"))
		bad_pointer();
	else if (argc == 2 && !strcmp(argv[1], "underflow"))
		underflow();
	else
		die("usage: foreign_pointers libc|bad|underflow");
	return 0;
}
