/* scale.c - `heapindex scale`: how each index's costs grow with the number of
 * live chunks, against the cost of random memory access on this machine.
 *
 * In-process, no LD_PRELOAD.  At each step (10^3, 10^4, ... live chunks) the
 * heap grows to that many chunks of a fixed size mix, allocated with this
 * process's malloc with the header every index expects.  Every index is then
 * measured on the very same chunks (so on the same addresses), in an order
 * that alternates from step to step:
 *   fill       insert every chunk (untimed);
 *   hits       random interior addresses of random chunks;
 *   misses     addresses in freed gaps between chunks, or just past a chunk's
 *              end (inside the allocator's own overhead);
 *   remove /   a random subset (up to 10^5 chunks) removed, then inserted
 *   insert     again, repeated until 20 ms have passed;
 *   drain      every chunk removed (untimed): the index is empty again.
 * Each lookup's address depends on the previous answer (and on the size in
 * the answer's header, which a caller reads), so lookups cannot
 * overlap in the memory system: the figure is latency, comparable with the
 * chase, a random cyclic pointer chase over a buffer as large as the heap,
 * one cache line per hop (the better of one chase before and one after the
 * indexes of the step).  Every answer is checked.
 *
 * Anchors: the critnib baseline is an index like the others; gcbase
 * (scale_gcbase.c) is Boehm GC's GC_base on a GC heap of the same sizes,
 * probed at the same (chunk, offset) pairs: what an allocator that knows its
 * own layout pays, hits only, base only.  The indexes' lookups ask for base
 * and size but no site (struct chunk_info's no_site), as heapindex_lookup
 * with a NULL site does: an index that can answer those from its own memory
 * (bytemap) then reads no header, the nearest match to GC_base's question.
 *
 * Placements (HEAPINDEX_META, hooks/chunk.h): header (the default here) puts
 * the header, and the largest index links, in front of each chunk; trailer
 * asks malloc for 8 more bytes at the end; side asks for the size alone and
 * writes nothing in the chunk, the hooks' way: size and site reach each
 * insert through the thread's pending record, set just before it, and every
 * remove says whether the index knew the chunk.  An index that does not take
 * the placement is left out, by its caps.  What a hit must answer: the base,
 * and as size what the index keeps (index.h): the size asked for under
 * header and under side with records (critnib), usable - 8 under trailer,
 * and the allocator's usable size under side without records (the memtable's
 * start masks, the bitmap: malloc_usable_size, since the chunks are this
 * process's glibc's).
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "config.h"
#include "inproc.h"
#include "kernels.h"
#include "lookup_cache.h"
#include "scale_gcbase.h"

static const char scale_usage[] =
	"usage: heapindex scale [--index NAME[,NAME...]|all] [--max-chunks N] [--lookups N]\n"
	"                       [--out FILE.csv] [--seed S] [--budget SECONDS] [--big]\n"
	"\n"
	"Fill each index with 10^3, 10^4, ... up to N live chunks of a realistic size\n"
	"mix (92%% 16-256 B, 8%% 256 B-8 KiB, 0.02%% 128 KiB-1 MiB, log-uniform) and time\n"
	"lookups that hit (random interior pointers) and miss (freed gaps, just past\n"
	"ends), inserts and removes, next to a random pointer chase over a buffer as\n"
	"large as the heap: the floor of random memory access on this machine.\n"
	"Indexes are interleaved per step.  See workloads/scale/README.md.\n"
	"\n"
	"  --index LIST      all (default: every index and the gcbase anchor) or a\n"
	"                    comma-separated list of: %s, gcbase\n"
	"                    (gcbase: Boehm GC's GC_base on a GC heap of the same\n"
	"                    sizes, same probes; it answers hits and the base only;\n"
	"                    the indexes are asked for base and size, not the site)\n"
	"  --max-chunks N    largest step, 1000 to 10000000 (default 1000000); a value\n"
	"                    that is not a power of ten is a last step of its own\n"
	"  --lookups N       hit and miss lookups per index and step (default 1000000)\n"
	"  --budget SECONDS  stop a lookup or chase measurement after this long and\n"
	"                    report the ns of what was done (default 2)\n"
	"  --rounds N        measure every index N times per step, the order of the\n"
	"                    indexes reversed every other time; medians (default 1)\n"
	"  --seed S          seed of the size mix and of the random choices (default 1)\n"
	"  --big             every chunk 32-64 KiB (log-uniform), the size an index keeps\n"
	"                    apart from its small chunks (memtable: over 16 KiB); largest\n"
	"                    step 100000 unless --max-chunks; the chase spans at most 1 GiB\n"
	"  --out FILE        write the results as CSV too\n"
	"  -h, --help        this text\n"
	"\n"
	"HEAPINDEX_LOOKUP_CACHE=N puts the shared per-thread lookup cache (N entries)\n"
	"in front of every index, as heapindex_lookup does; the table (not the CSV)\n"
	"then gives its hit rate over the hit and miss lookups.  Probes are random:\n"
	"a cache's worst case.\n"
	"\n"
	"HEAPINDEX_META=header|trailer|side places every chunk's metadata as the hooks\n"
	"do (default here: header); indexes that do not take it are left out.  A hit\n"
	"must answer the base and the index's size: under side, the allocator's usable\n"
	"size for an index without records (memtable, bitmap), the size asked for with\n"
	"records (critnib).\n"
	"\n"
	"A table goes to stdout, progress to stderr.  Memory: about 0.7 KiB per chunk\n"
	"at the largest step (heap plus chase buffer).\n";

/* --big: every chunk 32-64 KiB, all of them in the big-chunk structures of
 * memtable (over 256 bins of 64 bytes), so that many live big chunks are
 * measured too; the chase over such a heap spans at most CHASE_MAX bytes. */
static int big_sizes;

struct scale_options {
	const char *index, *out;
	uint64_t max_chunks, lookups, seed;
	unsigned rounds;
	double budget_s;
};

static void parse_options(int argc, char **argv, struct scale_options *o)
{
	static const struct option longopts[] = {
		{ "index", required_argument, NULL, 'i' },
		{ "max-chunks", required_argument, NULL, 'm' },
		{ "lookups", required_argument, NULL, 'k' },
		{ "out", required_argument, NULL, 'o' },
		{ "seed", required_argument, NULL, 's' },
		{ "budget", required_argument, NULL, 'b' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "big", no_argument, NULL, 'B' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct scale_options){ .index = "all", .max_chunks = 1000000, .lookups = 1000000,
	                             .seed = 1, .rounds = 1, .budget_s = 2 };
	int opt, max_given = 0;
	opterr = 0;
	char *end;
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'i': o->index = optarg; break;
		case 'm': o->max_chunks = cli_parse_count("scale", "--max-chunks", optarg, 1000, 10000000);
			max_given = 1;
			break;
		case 'k': o->lookups = cli_parse_count("scale", "--lookups", optarg, 1, 1000000000); break;
		case 'o': o->out = optarg; break;
		case 's': o->seed = cli_parse_count("scale", "--seed", optarg, 0, UINT64_MAX); break;
		case 'r': o->rounds = (unsigned)cli_parse_count("scale", "--rounds", optarg, 1, 100); break;
		case 'B': big_sizes = 1; break;
		case 'b':
			errno = 0;
			o->budget_s = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(o->budget_s >= 0.01 && o->budget_s <= 3600))
				cli_usage_error("scale: --budget '%s' is invalid: expected seconds from 0.01 to 3600",
				                optarg);
			break;
		case 'h': printf(scale_usage, cli_linked_index_names()); exit(0);
		default: cli_bad_option("scale", argv, opt);
		}
	}
	if (optind < argc)
		cli_usage_error("scale: unexpected argument '%s' (see heapindex scale --help)", argv[optind]);
	if (big_sizes && !max_given)
		o->max_chunks = 100000;
	if (o->out && !*o->out)
		cli_usage_error("scale: --out needs a file path");
}

/* --- helpers ----------------------------------------------------------------------- */

#define CHASE_MAX ((uint64_t)1 << 30)

static uint64_t chase_bytes(uint64_t heap_bytes)
{
	return big_sizes && heap_bytes > CHASE_MAX ? CHASE_MAX : heap_bytes;
}

/* The size mix: log-uniform within three classes (--big: 32-64 KiB). */
static size_t draw_size(uint64_t *rng)
{
	uint64_t r = cli_next_random(rng);
	double u = (double)(r >> 11) * 0x1.0p-53;
	unsigned cls = (unsigned)(cli_next_random(rng) % 10000);
	double lo = 16, hi = 256;
	if (big_sizes)
		lo = 32 * 1024, hi = 64 * 1024;
	else if (cls >= 9998)
		lo = 128 * 1024 + 1, hi = 1024 * 1024;
	else if (cls >= 9200)
		lo = 256, hi = 8192;
	return (size_t)(lo * exp(u * log(hi / lo)));
}

/* The chase's loop (never inlined: callgrind can count it by name); the
 * indexes' timed loops are cli/kernels.c's. */
void *scale_chase(void *p, uint64_t hops);

__attribute__((noinline)) void *scale_chase(void *p, uint64_t hops)
{
	for (uint64_t i = 0; i < hops; i++)
		p = *(void **)p;
	return p;
}

static void *volatile chase_sink;

/* --- the heap ---------------------------------------------------------------------- */

/* The allocation site of chunk i: made up, distinct for 1021 neighbours. */
static uintptr_t scale_site(uint64_t i)
{
	return 0x400000 + (uintptr_t)(i % 1021) * 16;
}

struct gap {
	uintptr_t start;
	size_t len;
};

struct heap {
	struct chunk **chunk;
	uint32_t *size;        /* chunk[i]'s size, kept apart: the lookup setup
	                        * must not read headers (that would cache them) */
	uint32_t *usable;      /* under side, chunk[i]'s malloc_usable_size (the
	                        * size an index without records answers); else
	                        * NULL */
	uint64_t count, bytes; /* live chunks; their sizes plus headers */
	size_t pad, after;     /* the placement's bytes before and after each chunk */
	struct gap *gaps;      /* memory freed after this step's allocation */
	size_t ngaps;
	uint64_t rng;
	uintptr_t *gc_object;  /* with gcbase: chunk[i]'s twin in the GC heap */
};

/* Where chunk i's bytes end as a lookup may see them: its size, but under
 * side the allocator's usable size, which an index without records answers
 * and past which glibc's next chunk header lies. */
static size_t chunk_end(const struct heap *h, uint64_t i)
{
	return h->usable ? h->usable[i] : h->size[i];
}

/* Grow to n chunks.  One allocation in eight gets a neighbour that is freed
 * once the step is allocated: the gaps misses are aimed at. */
static void heap_grow(struct heap *h, uint64_t n)
{
	uint64_t first = h->count;
	void **pending = cli_xmalloc("scale", (size_t)((n - h->count) / 4 + 1) * sizeof *pending, "gaps");
	size_t npending = 0;
	free(h->gaps);
	h->gaps = cli_xmalloc("scale", (size_t)((n - h->count) / 4 + 1) * sizeof *h->gaps, "gaps");
	h->ngaps = 0;
	while (h->count < n) {
		size_t size = draw_size(&h->rng);
		unsigned char *real = malloc(h->pad + size + h->after);
		if (!real)
			cli_usage_error("scale: out of memory at %" PRIu64 " chunks", h->count);
		struct chunk *c = chunk_of_user(real + h->pad);
		chunk_init(c, size, h->pad, scale_site(h->count));
		/* The size lookups answer: under trailer usable - 8; under
		 * side the size asked for (what inserts are handed). */
		h->size[h->count] = (uint32_t)chunk_size(c);
		if (h->usable) /* at most 1 MiB and a page */
			h->usable[h->count] = (uint32_t)malloc_usable_size(real);
		h->chunk[h->count++] = c;
		h->bytes += h->pad + size + h->after;
		if (cli_next_random(&h->rng) % 8 == 0) {
			size_t gsize = draw_size(&h->rng) % 512 + 1;
			unsigned char *g = malloc(h->pad + gsize);
			if (!g)
				cli_usage_error("scale: out of memory at %" PRIu64 " chunks", h->count);
			h->gaps[h->ngaps++] = (struct gap){ (uintptr_t)g, h->pad + gsize };
			pending[npending++] = g;
		}
	}
	for (size_t i = 0; i < npending; i++)
		free(pending[i]);
	free(pending);
	if (h->gc_object && gcbase_grow(h->gc_object, h->size, first, n))
		cli_usage_error("scale: the GC heap is out of memory at %" PRIu64 " chunks", n);
}

static void heap_free(struct heap *h)
{
	for (uint64_t i = 0; i < h->count; i++)
		inproc_free_chunk(h->chunk[i]);
	free(h->gaps);
}

/* --- measurements ------------------------------------------------------------------ */

#define LOOKUP_BLOCK 16384
#define MAX_BLOCKS 65536 /* blocks per measurement: 10^9 lookups */

struct buffers {
	uintptr_t addr[LOOKUP_BLOCK];
	uintptr_t expect[LOOKUP_BLOCK], got_base[LOOKUP_BLOCK]; /* bases; 0: none */
	size_t expect_size[LOOKUP_BLOCK];                        /* of a hit */
	struct chunk_info got[LOOKUP_BLOCK];
	double rate[MAX_BLOCKS]; /* ns per op of each block */
};

/* What is measured: an index, through its ops, or the gcbase anchor. */
struct subject {
	const char *name;
	const struct index_ops *ops; /* NULL: gcbase */
};

/* Where subject s has chunk i: the chunk itself, or its twin in the GC heap. */
static uintptr_t subject_base(const struct heap *h, const struct subject *s, uint64_t i)
{
	return s->ops ? chunk_user(h->chunk[i]) : h->gc_object[i];
}

/* Under side an index without records answers the allocator's usable size
 * (index.h); every other answer's size is chunk_size's, kept in h->size. */
static int answers_usable(const struct subject *s)
{
	return s->ops && chunk_meta == META_SIDE && !(s->ops->caps & INDEX_SIDE_RECORDS);
}

/* ns per lookup: the median over blocks of LOOKUP_BLOCK lookups, up to n
 * lookups or the budget.  The random draws do not depend on the subject:
 * from the same rng state every subject gets the same (chunk, offset)
 * probes. */
static double time_lookups(const struct heap *h, const struct subject *s, uint64_t n,
                           double budget_s, int hits, uint64_t *rng, struct buffers *b,
                           uint64_t *done)
{
	/* noop finds nothing; gcbase answers no size */
	int verify = !hits || !s->ops || (s->ops->caps & INDEX_ANSWERS_LOOKUPS);
	int verify_size = hits && s->ops && verify, usable = answers_usable(s);
	uint64_t ns = 0, budget_ns = (uint64_t)(budget_s * 1e9);
	size_t blocks = 0;
	*done = 0;
	while (*done < n && ns < budget_ns && blocks < MAX_BLOCKS) {
		size_t m = n - *done < LOOKUP_BLOCK ? (size_t)(n - *done) : LOOKUP_BLOCK;
		for (size_t k = 0; k < m; k++) {
			uint64_t i = cli_next_random(rng) % h->count;
			uintptr_t base = subject_base(h, s, i);
			size_t size = h->size[i];
			if (hits) {
				b->addr[k] = base + cli_next_random(rng) % size;
				b->expect[k] = base;
				b->expect_size[k] = usable ? h->usable[i] : size;
			} else if (h->ngaps && cli_next_random(rng) % 2) {
				const struct gap *g = &h->gaps[cli_next_random(rng) % h->ngaps];
				b->addr[k] = g->start + cli_next_random(rng) % g->len;
				b->expect[k] = 0;
			} else {
				/* Past the end, before the next chunk's user bytes:
				 * 16 bytes of header (and glibc's size word), or
				 * under side only glibc's 8-byte size word, which
				 * follows the usable size. */
				b->addr[k] = base + chunk_end(h, i) + cli_next_random(rng) % (h->usable ? 8 : 16);
				b->expect[k] = 0;
			}
		}
		struct thread_slot *self = lookup_cache_entries ? thread_slot() : NULL;
		uint64_t start = cli_cpu_ns();
		if (s->ops && self)
			timed_cached_lookup_batch(s->ops, self, b->addr, b->got, m, runtime_zero, 1);
		else if (s->ops)
			timed_lookup_batch(s->ops, b->addr, b->got, m, runtime_zero, 1);
		else
			scale_gcbase_batch(b->addr, b->got_base, m, runtime_zero);
		uint64_t took = cli_cpu_ns() - start;
		ns += took;
		b->rate[blocks++] = (double)took / (double)m;
		for (size_t k = 0; s->ops && k < m; k++)
			b->got_base[k] = b->got[k].base;
		for (size_t k = 0; verify && k < m; k++) {
			if (b->got_base[k] != b->expect[k])
				cli_wrong("scale", "%s answered wrongly at %" PRIu64 " chunks: lookup of 0x%" PRIxPTR
				            " (%s) returned %s0x%" PRIxPTR, s->name, h->count, b->addr[k],
				            hits ? "inside a live chunk" : "outside every live chunk",
				            b->got_base[k] ? "the chunk at " : "", b->got_base[k]);
			if (verify_size && b->got[k].size != b->expect_size[k])
				cli_wrong("scale", "%s answered wrongly at %" PRIu64 " chunks: lookup of 0x%" PRIxPTR
				            " returned the chunk at 0x%" PRIxPTR " with size %zu, expected %zu (%s)",
				            s->name, h->count, b->addr[k], b->got_base[k], b->got[k].size,
				            b->expect_size[k], usable ? "the allocator's usable size" : "the chunk's size");
		}
		*done += m;
	}
	return cli_median(b->rate, blocks);
}

#define CHURN_BATCH 4096

/* Under side: does ops's remove say whether a chunk was its own (index.h)? */
static int tells_chunks(const struct index_ops *ops)
{
	return (ops->caps & (INDEX_SIDE_RECORDS | INDEX_SIDE_TELLS)) != 0;
}

/* Remove then re-insert a random subset, at least 3 times and until 20 ms
 * have passed; the medians of the per-round rates.  In batches of
 * CHURN_BATCH, each chunk's header touched untimed first, as the hooks do:
 * free reads a chunk's header just before it calls remove, malloc writes a
 * new chunk's header just before it calls insert. */
static void time_churn(const struct heap *h, const struct index_ops *ops, const uint32_t *subset,
                       size_t m, double *insert_ns, double *remove_ns, struct buffers *b)
{
	static struct chunk *batch[CHURN_BATCH];
	static struct chunk_pending rec[CHURN_BATCH]; /* under side: what each insert is handed */
	int side = chunk_meta == META_SIDE, tells = tells_chunks(ops);
	uint64_t total = 0;
	size_t rounds = 0;
	double *ins = b->rate, *rem = b->rate + MAX_BLOCKS / 2;
	do {
		uint64_t rem_ns = 0, ins_ns = 0;
		for (size_t s = 0; s < m; s += CHURN_BATCH) {
			size_t k = m - s < CHURN_BATCH ? m - s : CHURN_BATCH;
			for (size_t j = 0; j < k; j++) {
				batch[j] = h->chunk[subset[s + j]];
				if (!side) /* side's free reads nothing of the chunk */
					warm_header(batch[j]);
			}
			size_t untold = 0;
			uint64_t t0 = cli_cpu_ns();
			if (side)
				untold = timed_side_remove_batch(ops, batch, k, tells);
			else
				timed_remove_batch(ops, batch, k);
			rem_ns += cli_cpu_ns() - t0;
			if (untold)
				cli_wrong("scale", "%s did not know %zu of %zu live chunks it was asked to remove at %" PRIu64
				            " chunks (HEAPINDEX_META=side)", ops->name, untold, k, h->count);
		}
		for (size_t s = 0; s < m; s += CHURN_BATCH) {
			size_t k = m - s < CHURN_BATCH ? m - s : CHURN_BATCH;
			for (size_t j = 0; j < k; j++) {
				uint32_t i = subset[s + j];
				batch[j] = h->chunk[i];
				if (side)
					rec[j] = (struct chunk_pending){ h->size[i], scale_site(i) };
				else
					chunk_init(batch[j], h->size[i], h->pad, scale_site(i));
			}
			uint64_t t0 = cli_cpu_ns();
			if (side)
				timed_side_insert_batch(ops, batch, rec, k);
			else
				timed_insert_batch(ops, batch, k);
			ins_ns += cli_cpu_ns() - t0;
		}
		rem[rounds] = (double)rem_ns / (double)m;
		ins[rounds] = (double)ins_ns / (double)m;
		rounds++;
		total += rem_ns + ins_ns;
	} while ((total < 20000000 || rounds < 3) && rounds < 100);
	*insert_ns = cli_median(ins, rounds);
	*remove_ns = cli_median(rem, rounds);
}

/* ns per hop of a random cyclic chase over bytes of memory, 64 B per node. */
static double time_chase(uint64_t bytes, uint64_t hops, double budget_s, uint64_t *rng,
                         double *rate)
{
	size_t nodes = (size_t)(bytes / 64) < 2 ? 2 : (size_t)(bytes / 64);
	size_t len = nodes * 64;
	unsigned char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint32_t *perm = cli_xmalloc("scale", nodes * sizeof *perm, "the chase");
	if (buf == MAP_FAILED)
		cli_usage_error("scale: cannot map %zu bytes for the chase: %s", len, strerror(errno));
	for (size_t i = 0; i < nodes; i++)
		perm[i] = (uint32_t)i;
	for (size_t i = nodes - 1; i > 0; i--) { /* Sattolo: one cycle through every node */
		size_t j = (size_t)(cli_next_random(rng) % i);
		uint32_t x = perm[i];
		perm[i] = perm[j];
		perm[j] = x;
	}
	for (size_t i = 0; i < nodes; i++)
		*(void **)(buf + (size_t)i * 64) = buf + (size_t)perm[i] * 64;
	free(perm);
	void *p = buf;
	p = scale_chase(p, nodes < 100000 ? nodes : 100000); /* warm up */
	uint64_t ns = 0, done = 0, budget_ns = (uint64_t)(budget_s * 1e9);
	size_t blocks = 0;
	while (done < hops && ns < budget_ns && blocks < MAX_BLOCKS) {
		uint64_t m = hops - done < LOOKUP_BLOCK ? hops - done : LOOKUP_BLOCK;
		uint64_t start = cli_cpu_ns();
		p = scale_chase(p, m);
		uint64_t took = cli_cpu_ns() - start;
		ns += took;
		rate[blocks++] = (double)took / (double)m;
		done += m;
	}
	chase_sink = p;
	munmap(buf, len);
	return cli_median(rate, blocks);
}

/* --- the command ------------------------------------------------------------------- */

/* Figures a subject does not have (gcbase: all but hits) are NAN. */
struct row {
	double hit_ns, miss_ns, insert_ns, remove_ns, fill_s;
	double cache_hit_rate; /* of the lookup cache, over hit and miss lookups; NAN: off */
	uint64_t hits_done, misses_done;
};

/* What a hit is asked: gcbase knows no requested size and no site, and
 * the indexes are asked for base and size only (no_site, index.h), as
 * heapindex_lookup with a NULL site asks: bytemap then reads no header. */
static const char *subject_answers(const struct subject *s)
{
	if (!s->ops)
		return "base only";
	if (!(s->ops->caps & INDEX_ANSWERS_LOOKUPS))
		return "nothing";
	return answers_usable(s) ? "base,usable size" : "base,size";
}

/* A figure in a table column of width w, "n/a" if the subject has none. */
static void print_figure(int w, int digits, double v)
{
	if (isnan(v))
		printf(" %*s", w, "n/a");
	else
		printf(" %*.*f", w, digits, v);
}

/* A CSV field: empty if the subject has no such figure. */
static void csv_figure(FILE *csv, int digits, double v)
{
	if (isnan(v))
		fputc(',', csv);
	else
		fprintf(csv, ",%.*f", digits, v);
}

static void print_step(FILE *csv, const struct heap *h, const struct subject *chosen,
                       size_t nsub, const struct row *rows, double chase_ns)
{
	printf("\n%" PRIu64 " live chunks, %.1f MiB of heap; chase %.1f ns/hop\n", h->count,
	       (double)h->bytes / 1048576.0, chase_ns);
	printf("%-10s %10s %10s %10s %10s %10s %8s  %s\n", "index", "hit_ns", "miss_ns", "insert_ns",
	       "remove_ns", "hit/chase", "fill_s", "answers");
	for (size_t k = 0; k < nsub; k++) {
		const struct row *r = &rows[k];
		printf("%-10s", chosen[k].name);
		print_figure(10, 1, r->hit_ns);
		print_figure(10, 1, r->miss_ns);
		print_figure(10, 1, r->insert_ns);
		print_figure(10, 1, r->remove_ns);
		print_figure(10, 2, r->hit_ns / chase_ns);
		print_figure(8, 2, r->fill_s);
		printf("  %s", subject_answers(&chosen[k]));
		if (!isnan(r->cache_hit_rate))
			printf("  (lookup cache: %.1f%% hits)", 100 * r->cache_hit_rate);
		int misses = !isnan(r->miss_ns);
		if (!r->hits_done || (misses && r->hits_done != r->misses_done))
			printf("  (budget: %" PRIu64 " hits, %" PRIu64 " misses)", r->hits_done, r->misses_done);
		printf("\n");
		if (csv) {
			fprintf(csv, "%s,%" PRIu64 ",%" PRIu64, chosen[k].name, h->count, h->bytes);
			csv_figure(csv, 3, r->hit_ns);
			csv_figure(csv, 3, r->miss_ns);
			csv_figure(csv, 3, r->insert_ns);
			csv_figure(csv, 3, r->remove_ns);
			csv_figure(csv, 3, chase_ns);
			csv_figure(csv, 4, r->hit_ns / chase_ns);
			csv_figure(csv, 4, r->cache_hit_rate); /* empty: the cache is off */
			fputc('\n', csv);
		}
	}
	fflush(stdout);
	if (csv)
		fflush(csv);
}

/* The gcbase anchor at one step: hits only, on the GC heap built with it. */
static void measure_gcbase(const struct heap *h, const struct subject *s,
                           const struct scale_options *o, uint64_t n, struct buffers *b,
                           struct row *r)
{
	*r = (struct row){ .miss_ns = NAN, .insert_ns = NAN, .remove_ns = NAN, .fill_s = NAN,
		           .cache_hit_rate = NAN };
	uint64_t lrng = o->seed + n; /* the indexes' probes */
	r->hit_ns = time_lookups(h, s, o->lookups, o->budget_s, 1, &lrng, b, &r->hits_done);
}

/* Under side, after the remove of chunk i by an index that tells its
 * chunks: what it handed back (chunk.h, chunk_side_removed): with records
 * the size and site chunk i was inserted with, without them size 0; never
 * CHUNK_SIZE_NONE, "not mine". */
static void check_side_removed(const struct heap *h, const struct index_ops *ops, uint64_t i)
{
	int records = (ops->caps & INDEX_SIDE_RECORDS) != 0;
	size_t size = chunk_pending.size, want = records ? h->size[i] : 0;
	uintptr_t site = (uintptr_t)chunk_pending.site_word;
	if (size == CHUNK_SIZE_NONE)
		cli_wrong("scale", "%s did not know the live chunk at 0x%" PRIxPTR " when asked to remove it at %" PRIu64
		            " chunks (HEAPINDEX_META=side)", ops->name, chunk_user(h->chunk[i]), h->count);
	if (size != want || (records && site != scale_site(i)))
		cli_wrong("scale", "%s handed back size %zu, site 0x%" PRIxPTR " at the remove of the chunk at 0x%" PRIxPTR
		            " (HEAPINDEX_META=side): expected size %zu%s", ops->name, size, site,
		            chunk_user(h->chunk[i]), want, records ? " and its site" : "");
}

/* One index at one step: fill, hits, misses, churn, drain. */
static void measure(const struct heap *h, const struct subject *s, const struct scale_options *o,
                    uint64_t n, const uint32_t *subset, size_t m, struct buffers *b, struct row *r)
{
	const struct index_ops *ops = s->ops;
	if (!ops) {
		measure_gcbase(h, s, o, n, b, r);
		return;
	}
	int side = chunk_meta == META_SIDE, tells = tells_chunks(ops);
	for (uint64_t i = 0; !side && i < n; i++) /* fresh headers: index bits cleared */
		chunk_init(h->chunk[i], chunk_size(h->chunk[i]), h->pad, scale_site(i));
	uint64_t f0 = cli_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		if (side) /* the pending record, read during this insert only */
			chunk_init(h->chunk[i], h->size[i], 0, scale_site(i));
		ops->insert(h->chunk[i]);
	}
	r->fill_s = (double)(cli_now_ns() - f0) * 1e-9;
	uint64_t lrng = o->seed + n; /* the same lookups for every index and round */
	/* The chunks are the same for every index: what the cache holds from
	 * the one before must not answer for this one. */
	struct thread_slot *self = lookup_cache_entries ? thread_slot() : NULL;
	uint64_t cache_hits = 0, cache_misses = 0;
	if (self) {
		lookup_cache_clear(self);
		cache_hits = self->counters.lookup_cache_hits;
		cache_misses = self->counters.lookup_cache_misses;
	}
	r->hit_ns = time_lookups(h, s, o->lookups, o->budget_s, 1, &lrng, b, &r->hits_done);
	r->miss_ns = time_lookups(h, s, o->lookups, o->budget_s, 0, &lrng, b, &r->misses_done);
	r->cache_hit_rate = NAN;
	if (self) {
		cache_hits = self->counters.lookup_cache_hits - cache_hits;
		cache_misses = self->counters.lookup_cache_misses - cache_misses;
		r->cache_hit_rate = cache_hits + cache_misses ? (double)cache_hits / (double)(cache_hits + cache_misses)
		                                              : 0.0;
	}
	time_churn(h, ops, subset, m, &r->insert_ns, &r->remove_ns, b);
	for (uint64_t i = 0; i < n; i++) {
		if (side)
			chunk_side_before_remove(h->chunk[i], tells);
		ops->remove(h->chunk[i]);
		lookup_cache_note_removed(h->chunk[i]);
		if (side && tells)
			check_side_removed(h, ops, i);
	}
}

/* Field by field medians of n rounds; the fewest lookups any round did. */
static void median_row(const struct row *rounds, unsigned n, struct row *out, double *scratch)
{
	static const size_t fields[] = { offsetof(struct row, hit_ns), offsetof(struct row, miss_ns),
		                         offsetof(struct row, insert_ns), offsetof(struct row, remove_ns),
		                         offsetof(struct row, fill_s), offsetof(struct row, cache_hit_rate) };
	*out = rounds[0];
	for (size_t f = 0; f < sizeof fields / sizeof *fields; f++) {
		for (unsigned i = 0; i < n; i++)
			memcpy(&scratch[i], (const char *)&rounds[i] + fields[f], sizeof(double));
		double v = cli_median(scratch, n);
		memcpy((char *)out + fields[f], &v, sizeof v);
	}
	for (unsigned i = 1; i < n; i++) {
		if (rounds[i].hits_done < out->hits_done)
			out->hits_done = rounds[i].hits_done;
		if (rounds[i].misses_done < out->misses_done)
			out->misses_done = rounds[i].misses_done;
	}
}

#define MAX_SUBJECTS 64

/* --index: "all" is every linked index and gcbase, else the names given. */
static size_t select_subjects(const char *list, struct subject *out)
{
	static const struct subject gcbase = { "gcbase", NULL };
	size_t n = 0;
	if (strcmp(list, "all") == 0) {
		for (size_t i = 0; all_indexes[i] && n < MAX_SUBJECTS - 1; i++)
			out[n++] = (struct subject){ all_indexes[i]->name, all_indexes[i] };
		out[n++] = gcbase;
		return n;
	}
	char copy[1024];
	if (strlen(list) >= sizeof copy)
		cli_usage_error("scale: --index list is too long");
	snprintf(copy, sizeof copy, "%s", list);
	char *save = NULL;
	for (char *name = strtok_r(copy, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		const struct index_ops *ops = index_by_name(name);
		if (!ops && strcmp(name, gcbase.name) != 0)
			cli_usage_error("scale: unknown index '%s': expected all or some of %s, gcbase", name,
			                cli_linked_index_names());
		if (n == MAX_SUBJECTS)
			cli_usage_error("scale: too many indexes in --index");
		out[n++] = ops ? (struct subject){ ops->name, ops } : gcbase;
	}
	if (!n)
		cli_usage_error("scale: --index needs a name");
	return n;
}

/* The subjects that take placement meta (gcbase, with a heap of its own,
 * takes any), moved to the front: their count.  The others are left out
 * with a line each; if none is left, that is the one error line. */
static int takes_placement(const struct subject *s, enum chunk_meta meta)
{
	return !s->ops || (s->ops->caps & META_CAP(meta));
}

static size_t keep_placement_takers(struct subject *chosen, size_t nsub, enum chunk_meta meta)
{
	size_t kept = 0;
	for (size_t k = 0; k < nsub; k++)
		kept += takes_placement(&chosen[k], meta);
	if (!kept) {
		char takers[512] = "";
		for (size_t i = 0; all_indexes[i]; i++)
			if (all_indexes[i]->caps & META_CAP(meta))
				snprintf(takers + strlen(takers), sizeof takers - strlen(takers), "%s, ",
				         all_indexes[i]->name);
		cli_usage_error("scale: no index given takes HEAPINDEX_META=%s: expected some of %sgcbase",
		                chunk_meta_name(meta), takers);
	}
	kept = 0;
	for (size_t k = 0; k < nsub; k++) {
		if (!takes_placement(&chosen[k], meta)) {
			fprintf(stderr, "heapindex: scale: %s left out: it does not take HEAPINDEX_META=%s\n",
			        chosen[k].ops->name, chunk_meta_name(meta));
			continue;
		}
		chosen[kept++] = chosen[k];
	}
	return kept;
}

int cmd_scale(int argc, char **argv)
{
	struct scale_options o;
	parse_options(argc, argv, &o);
	struct subject chosen[MAX_SUBJECTS];
	size_t nsub = select_subjects(o.index, chosen);
	int with_gcbase = 0;

	struct heapindex_config cfg;
	char err[512];
	if (config_from_env(&cfg, err, sizeof err)) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	/* HEAPINDEX_META: the placement of every chunk (hooks/chunk.h); an index
	 * that cannot take it is left out, by its caps. */
	if (cfg.meta >= 0)
		nsub = keep_placement_takers(chosen, nsub, (enum chunk_meta)cfg.meta);
	FILE *csv = NULL;
	if (o.out) {
		csv = fopen(o.out, "w");
		if (!csv)
			cli_usage_error("scale: cannot write %s: %s", o.out, strerror(errno));
		fprintf(csv, "index,live_chunks,heap_bytes,lookup_hit_ns,lookup_miss_ns,insert_ns,"
		             "remove_ns,chase_ns,hit_ratio_to_chase,lookup_cache_hit_rate\n");
	}
	struct inproc d[MAX_SUBJECTS];
	size_t links = 0;
	for (size_t k = 0; k < nsub; k++) {
		const struct index_ops *ops = chosen[k].ops;
		if (!ops) {
			with_gcbase = 1;
			continue;
		}
		if (inproc_init(&d[k], ops, &cfg, err, sizeof err)) {
			fprintf(stderr, "heapindex: scale: index %s: %s\n", ops->name, err);
			exit(2);
		}
		if (ops->links_bytes > links)
			links = ops->links_bytes;
	}
	if (with_gcbase)
		gcbase_start();

	/* One heap for all indexes: room below each chunk for the largest links. */
	struct heap h = { .pad = chunk_meta == META_HEADER ? CHUNK_HEADER_BYTES + ((links + 15) & ~(size_t)15) : 0,
	                  .after = chunk_meta == META_TRAILER ? META_TRAILER_BYTES : 0,
	                  .rng = o.seed };
	h.chunk = cli_xmalloc("scale", o.max_chunks * sizeof(void *), "the chunk table"); /* pointers */
	h.size = cli_xmalloc("scale", o.max_chunks * sizeof *h.size, "the size table");
	if (chunk_meta == META_SIDE)
		h.usable = cli_xmalloc("scale", o.max_chunks * sizeof *h.usable, "the usable size table");
	if (with_gcbase)
		h.gc_object = cli_xmalloc("scale", o.max_chunks * sizeof *h.gc_object, "the GC objects");
	uint32_t *subset = cli_xmalloc("scale", o.max_chunks * sizeof *subset, "the churn subset");
	struct buffers *b = cli_xmalloc("scale", sizeof *b, "lookup buffers");
	struct row rows[MAX_SUBJECTS];
	struct row *all = cli_xmalloc("scale", nsub * o.rounds * sizeof *all, "results");
	double *chases = cli_xmalloc("scale", (o.rounds + 1) * sizeof *chases, "chases");
	uint64_t rng = o.seed ^ UINT64_C(0x5ca1e);
	uint64_t steps[16] = { 0 };
	size_t nsteps = 0;
	for (uint64_t n = 1000; n <= o.max_chunks; n *= 10)
		steps[nsteps++] = n;
	if (!nsteps || steps[nsteps - 1] != o.max_chunks)
		steps[nsteps++] = o.max_chunks;
	for (size_t step = 0; step < nsteps; step++) {
		uint64_t n = steps[step];
		uint64_t t0 = cli_now_ns();
		heap_grow(&h, n);
		fprintf(stderr, "scale: %" PRIu64 " chunks: %.1f MiB allocated in %.2f s\n", n,
		        (double)h.bytes / 1048576.0, (double)(cli_now_ns() - t0) * 1e-9);
		/* The churn subset: the first m of a random permutation. */
		size_t m = n < 100000 ? (size_t)n : 100000;
		for (uint64_t i = 0; i < n; i++)
			subset[i] = (uint32_t)i;
		for (size_t i = 0; i < m; i++) {
			size_t j = i + (size_t)(cli_next_random(&rng) % (n - i));
			uint32_t x = subset[i];
			subset[i] = subset[j];
			subset[j] = x;
		}
		chases[0] = time_chase(chase_bytes(h.bytes), o.lookups, o.budget_s, &rng, b->rate);
		for (unsigned round = 0; round < o.rounds; round++) {
			for (size_t slot = 0; slot < nsub; slot++) {
				/* Alternate the order from round to round and step to step. */
				size_t k = (step + round) % 2 ? nsub - 1 - slot : slot;
				struct row *r = &all[k * o.rounds + round];
				measure(&h, &chosen[k], &o, n, subset, m, b, r);
				if (chosen[k].ops)
					fprintf(stderr, "scale: %" PRIu64 " chunks: %-10s hit %.1f ns, miss %.1f ns, insert %.1f ns, remove %.1f ns\n",
					        n, chosen[k].name, r->hit_ns, r->miss_ns, r->insert_ns, r->remove_ns);
				else
					fprintf(stderr, "scale: %" PRIu64 " chunks: %-10s hit %.1f ns (base only)\n",
					        n, chosen[k].name, r->hit_ns);
			}
			chases[round + 1] = time_chase(chase_bytes(h.bytes), o.lookups, o.budget_s, &rng, b->rate);
		}
		double chase_ns = cli_median(chases, o.rounds + 1);
		for (size_t k = 0; k < nsub; k++)
			median_row(&all[k * o.rounds], o.rounds, &rows[k], b->rate);
		print_step(csv, &h, chosen, nsub, rows, chase_ns);
	}
	if (csv && fclose(csv))
		cli_usage_error("scale: cannot write %s: %s", o.out, strerror(errno));
	heap_free(&h);
	free(h.chunk);
	free(h.size);
	free(h.usable);
	free(h.gc_object); /* the GC heap itself goes with the process */
	free(subset);
	free(b);
	free(all);
	free(chases);
	return 0;
}
