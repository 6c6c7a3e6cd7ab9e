/* fuzz_indexes.c - libFuzzer target: every index against a reference.
 *
 * The input is decoded into a sequence of operations on up to 64 chunk slots:
 * allocate (size and alignment from the input), free, and lookups of bytes
 * in and around chunks (first, interior, last, one past the end, header
 * bytes) and of arbitrary 64-bit addresses.  Each index (noop excepted: it
 * answers nothing by design) runs the whole sequence in turn, through
 * inproc.h, and every lookup must equal the reference: a linear scan of the
 * live chunks.  Each input ends with every chunk freed, so each index starts
 * the next input empty.  Built with clang -fsanitize=fuzzer,address,undefined
 * (`make fuzz`), so a lookup that reads outside its own memory or a live
 * header is an ASan report.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inproc.h"

#define SLOTS 64

struct live {
	unsigned char *user;
	size_t size;
};

static struct inproc drivers[32];
static int n_drivers;

static void setup(void)
{
	struct heapindex_config cfg;
	char err[512];
	if (config_from_env(&cfg, err, sizeof err)) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	for (int i = 0; all_indexes[i] && n_drivers < 32; i++) {
		/* HEAPINDEX_META: the indexes that take that placement. */
		if (!(all_indexes[i]->caps & INDEX_ANSWERS_LOOKUPS) ||
		    (cfg.meta >= 0 && !(all_indexes[i]->caps & META_CAP(cfg.meta))))
			continue;
		if (inproc_init(&drivers[n_drivers], all_indexes[i], &cfg, err, sizeof err)) {
			fprintf(stderr, "fuzz_indexes: %s: %s\n", all_indexes[i]->name, err);
			abort();
		}
		n_drivers++;
	}
}

struct reader {
	const uint8_t *data;
	size_t size, at;
};

static uint64_t take(struct reader *r, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned k = 0; k < bytes; k++)
		v = v << 8 | (r->at < r->size ? r->data[r->at++] : 0);
	return v;
}

static const struct live *reference(const struct live *live, uintptr_t addr)
{
	for (int i = 0; i < SLOTS; i++)
		if (live[i].user && addr - (uintptr_t)live[i].user < live[i].size)
			return &live[i];
	return NULL;
}

static void check(struct inproc *d, const struct live *live, uintptr_t addr, size_t op)
{
	void *base = NULL;
	size_t size = 0;
	int found = inproc_lookup(d, (const void *)addr, &base, &size, NULL);
	const struct live *want = reference(live, addr);
	if (found == (want != NULL) && (!want || (base == want->user && size == want->size)))
		return;
	fprintf(stderr, "fuzz_indexes: %s, op %zu: lookup %#lx found %d (%p, %zu), want %p size %zu\n",
	        d->ops->name, op, (unsigned long)addr, found, base, size,
	        want ? (void *)want->user : NULL, want ? want->size : 0);
	abort();
}

static void run(struct inproc *d, const uint8_t *data, size_t size)
{
	struct live live[SLOTS] = { { 0 } };
	struct reader r = { data, size, 0 };
	for (size_t op = 0; r.at < r.size; op++) {
		unsigned code = (unsigned)take(&r, 1);
		struct live *s = &live[(code >> 2) % SLOTS];
		switch (code & 3) {
		case 0: { /* allocate, or free if the slot is taken */
			if (s->user) {
				inproc_free(d, s->user);
				s->user = NULL;
				break;
			}
			unsigned shape = (unsigned)take(&r, 1);
			size_t n = (size_t)take(&r, 2);
			/* Up to 256 KiB: over glibc's mmap threshold, yet small
			 * enough that the hash baselines' downward probing (a miss
			 * costs largest-size / 16 probes) keeps the fuzzer fast. */
			if (shape & 0x80)
				n <<= 2;
			size_t align = (size_t)16 << ((shape >> 3) & 7); /* to 2 KiB */
			s->user = inproc_alloc(d, n, align, 0x1000 + op);
			/* Under trailer lookups answer the usable size (chunk.h), and
			 * under side an index without records does too (index.h,
			 * INDEX_SIDE_TELLS). */
			s->size = s->user && chunk_meta == META_TRAILER ? chunk_size(chunk_of_user(s->user)) : n;
			if (s->user && chunk_meta == META_SIDE &&
			    (d->ops->caps & (INDEX_SIDE_TELLS | INDEX_SIDE_RECORDS)) == INDEX_SIDE_TELLS)
				s->size = chunk_held_size(chunk_of_user(s->user));
			break;
		}
		case 1: { /* a byte in or around a chunk */
			if (!s->user)
				break;
			int64_t off = (int8_t)take(&r, 1);
			uintptr_t u = (uintptr_t)s->user;
			uintptr_t at[] = { u, u + s->size / 2, u + s->size - 1, u + s->size,
			                   u - 1, u - 16, u + (uintptr_t)off, u + s->size + (uintptr_t)off };
			for (size_t k = 0; k < sizeof at / sizeof *at; k++)
				check(d, live, at[k], op);
			break;
		}
		case 2: /* any address at all */
			check(d, live, (uintptr_t)take(&r, 8), op);
			break;
		default: /* near a chunk, by a larger distance */
			if (s->user)
				check(d, live, (uintptr_t)s->user + (uintptr_t)(int64_t)(int16_t)take(&r, 2) * 16, op);
			break;
		}
	}
	for (int i = 0; i < SLOTS; i++)
		if (live[i].user)
			check(d, live, (uintptr_t)live[i].user + live[i].size / 3, SIZE_MAX);
	for (int i = 0; i < SLOTS; i++)
		inproc_free(d, live[i].user);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!n_drivers)
		setup();
	for (int i = 0; i < n_drivers; i++)
		run(&drivers[i], data, size);
	return 0;
}
