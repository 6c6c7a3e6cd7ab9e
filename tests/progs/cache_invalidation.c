/* cache_invalidation.c - under HEAPINDEX_LOOKUP_CACHE, a chunk this thread
 * looked up (so its answer may be cached) and another thread then freed or
 * realloc'd must not be answered as it was.
 *
 * Rounds of: the main thread allocates chunks, looks each up twice (the
 * second answer may come from its cache); a second thread frees a third of
 * them, reallocs a third (shrinking: in place in glibc; growing: usually
 * moved) and leaves the rest; after joining it, the main thread looks each
 * up again: a freed one must not come back as it was, a realloc'd one must
 * come back with its new size at its new address, the rest unchanged.
 * A stale answer is the old base, size and site: a new chunk the allocator
 * put at a freed address has another site.  Exits 0, or 1 naming the first
 * stale answer. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef int lookup_fn(const void *, void **, size_t *, const void **);

#define CHUNKS 96
#define ROUNDS 50

static lookup_fn *lookup;
static char *chunk[CHUNKS];
static size_t size[CHUNKS];
static int gone[CHUNKS];
static const void *site[CHUNKS];

static void *other_thread(void *arg)
{
	(void)arg;
	for (int i = 0; i < CHUNKS; i++) {
		switch (i % 3) {
		case 0:
			free(chunk[i]);
			gone[i] = 1;
			break;
		case 1: { /* shrink, or grow past the chunk's neighbour */
			size_t n = i % 2 ? size[i] / 2 : size[i] * 8 + 1000; /* no size a chunk had */
			char *p = realloc(chunk[i], n);
			if (!p)
				abort();
			chunk[i] = p;
			size[i] = n;
			break;
		}
		default:
			break;
		}
	}
	return NULL;
}

/* Is the answer for p (not) [base_want, +want_size) from site? */
static int answers(const char *p, size_t want_size, const char *base_want, const void *site, int want_found)
{
	void *base;
	size_t got = 0;
	const void *got_site = NULL;
	int found = lookup(p, &base, &got, &got_site) && base == base_want && got == want_size &&
	            (!site || got_site == site);
	return found == want_found;
}

int main(void)
{
	lookup = (lookup_fn *)dlsym(RTLD_DEFAULT, "heapindex_lookup");
	if (!lookup) {
		fprintf(stderr, "cache_invalidation: heapindex_lookup not found: run under the hooks\n");
		return 2;
	}
	for (int round = 0; round < ROUNDS; round++) {
		for (int i = 0; i < CHUNKS; i++) {
			size[i] = 16 + (size_t)((i * 37 + round * 11) % 200);
			chunk[i] = malloc(size[i]);
			gone[i] = 0;
			if (!chunk[i])
				return 2;
		}
		for (int i = 0; i < CHUNKS; i++) {
			void *base;
			size_t got;
			if (!lookup(chunk[i], &base, &got, &site[i]))
				site[i] = NULL;
		}
		for (int pass = 0; pass < 2; pass++)
			for (int i = 0; i < CHUNKS; i++)
				if (!answers(chunk[i] + size[i] / 2, size[i], chunk[i], site[i], 1)) {
					fprintf(stderr, "cache_invalidation: round %d: live chunk %d not found\n", round, i);
					return 1;
				}
		char *old[CHUNKS];
		size_t old_size[CHUNKS];
		for (int i = 0; i < CHUNKS; i++)
			old[i] = chunk[i], old_size[i] = size[i];
		pthread_t t;
		if (pthread_create(&t, NULL, other_thread, NULL) || pthread_join(t, NULL))
			return 2;
		for (int i = 0; i < CHUNKS; i++) {
			/* The old answer, asked at the old address: wrong now unless
			 * the chunk is unchanged (or realloc kept base and size). */
			int same = !gone[i] && chunk[i] == old[i] && size[i] == old_size[i];
			const char *probe = old[i] + (old_size[i] < size[i] || gone[i] ? old_size[i] : size[i]) / 2;
			if (!answers(probe, old_size[i], old[i], site[i], same)) {
				fprintf(stderr,
				        "cache_invalidation: round %d: chunk %d (%p, %zu bytes) %s by another thread, "
				        "yet looked up as before\n",
				        round, i, (void *)old[i], old_size[i], gone[i] ? "freed" : "realloc'd");
				return 1;
			}
			if (!gone[i] && !answers(chunk[i] + size[i] / 2, size[i], chunk[i], NULL, 1)) {
				fprintf(stderr, "cache_invalidation: round %d: realloc'd chunk %d not found\n", round, i);
				return 1;
			}
		}
		for (int i = 0; i < CHUNKS; i++)
			if (!gone[i])
				free(chunk[i]);
	}
	puts("cache_invalidation: ok");
	return 0;
}
