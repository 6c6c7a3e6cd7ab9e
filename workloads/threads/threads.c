/* threads.c - a multi-threaded allocation workload, after the designs of
 * mimalloc-bench's larson (per-thread churn over a set of live chunks) and
 * xmalloc-test (chunks allocated by one thread and freed by another).
 *
 *   threads [--threads N] [--ops M] [--seed S] [--lookup-every K] [--help]
 *
 * Each of N threads keeps LIVE (4,096) live chunks of 16..128 bytes and, per
 * operation, frees a random one and allocates a replacement of a random size
 * (larson).  Every HANDOFF_EVERY-th operation it also allocates a chunk of
 * 24..128 bytes for the next thread (thread t hands over to thread t+1 mod N
 * by pushing it on that thread's lock-free inbox, a list linked through the
 * chunks), and every operation it frees one chunk the previous thread handed
 * to it, if any (xmalloc-test's producer and consumer, in every thread).
 * Nothing waits: an inbox has no bound, so no thread spins for another that
 * the scheduler has not run (with more threads than CPUs, spinning would
 * time the scheduler rather than the allocator).  With --lookup-every K, every K-th operation
 * of every thread asks heapindex_lookup about an interior address of one of
 * its live chunks; the function is found with dlsym(RTLD_DEFAULT), so the
 * program also runs uninstrumented (no lookups are made then).  An answer
 * must be exactly that chunk (base and requested size) or "not found";
 * anything else stops the program with exit status 1.
 *
 * Every chunk carries a tag in its first and last eight bytes, checked when
 * it is freed (exit status 1 on a mismatch).  stdout is one line: the
 * settings, the number of malloc+free pairs, the chunks handed between
 * threads and a checksum of every tag freed.  Each thread's sequence of
 * chunks depends only on the seed and the thread's number and every chunk is
 * freed once, so the line is the same for every run, index and schedule;
 * lookup counts (which depend on the index) go to stderr.
 *
 * Bad arguments: one line on stderr, exit status 2.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIVE 4096
#define MIN_SIZE 16
#define MAX_SIZE 128
#define HANDOFF_EVERY 8
#define HANDOFF_MIN_SIZE 24 /* tag, inbox link, check word */
#define MAX_THREADS 256
#define MAX_OPS 10000000000ULL
#define MAX_LOOKUP_EVERY 1000000000ULL

typedef int lookup_fn(const void *, void **, size_t *, const void **);

/* A chunk in an inbox: its tag, then the link to the next one. */
struct handed {
	uint64_t tag;
	struct handed *next;
};

/* Written by the previous thread: a cache line of its own. */
struct inbox {
	_Alignas(64) struct handed *_Atomic head;
	unsigned char pad[64 - sizeof(struct handed *)];
};

struct worker {
	struct inbox inbox;
	pthread_t thread;
	uint64_t rng;
	uint64_t checksum;      /* sum of mix(tag) of every chunk this thread freed */
	uint64_t mallocs;
	uint64_t handed_over;
	uint64_t lookups, found, missed;
	struct handed *taken;   /* taken from the inbox, freed one per operation */
	unsigned char *live[LIVE];
	unsigned id;
};

static struct {
	unsigned threads;
	uint64_t ops;
	uint64_t seed;
	uint64_t lookup_every; /* 0: no lookups */
} opt = {1, 1000000, 1, 0};

static struct worker *workers;
static lookup_fn *lookup;
static pthread_barrier_t done_ops;

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t mix(uint64_t x)
{
	uint64_t s = x;
	return splitmix64(&s);
}

static void die(const char *what)
{
	fprintf(stderr, "threads: %s\n", what);
	exit(1);
}

/* A chunk of size 16..128: the tag (its size in the low byte) at the start,
 * mix(tag) in the last eight bytes. */
static unsigned char *new_chunk(struct worker *w, size_t min_size)
{
	size_t size = min_size + (size_t)(splitmix64(&w->rng) % (MAX_SIZE - min_size + 1));
	uint64_t tag = (splitmix64(&w->rng) & ~(uint64_t)0xff) | size;
	uint64_t last = mix(tag);
	unsigned char *p = malloc(size);
	if (!p)
		die("out of memory");
	memcpy(p, &tag, sizeof tag);
	memcpy(p + size - sizeof last, &last, sizeof last);
	w->mallocs++;
	return p;
}

static void free_chunk(struct worker *w, unsigned char *p)
{
	uint64_t tag, last;
	memcpy(&tag, p, sizeof tag);
	size_t size = (size_t)(tag & 0xff);
	if (size < MIN_SIZE || size > MAX_SIZE)
		die("a chunk's tag was overwritten (its size byte is out of range)");
	memcpy(&last, p + size - sizeof last, sizeof last);
	if (last != mix(tag))
		die("a chunk's last eight bytes were overwritten");
	w->checksum += mix(tag ^ 0x5bd1e995ULL);
	free(p);
}

static void consume_one(struct worker *w)
{
	if (!w->taken && atomic_load_explicit(&w->inbox.head, memory_order_relaxed))
		w->taken = atomic_exchange_explicit(&w->inbox.head, NULL, memory_order_acquire);
	struct handed *h = w->taken;
	if (h) {
		w->taken = h->next;
		free_chunk(w, (unsigned char *)h);
	}
}

static void hand_over(struct worker *w)
{
	struct worker *next = &workers[(w->id + 1) % opt.threads];
	struct handed *h = (struct handed *)new_chunk(w, HANDOFF_MIN_SIZE);
	h->next = atomic_load_explicit(&next->inbox.head, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&next->inbox.head, &h->next, h, memory_order_release,
						      memory_order_relaxed))
		;
	w->handed_over++;
}

static void check_lookup(struct worker *w, unsigned slot, size_t offset)
{
	unsigned char *p = w->live[slot];
	uint64_t tag;
	memcpy(&tag, p, sizeof tag);
	size_t size = (size_t)(tag & 0xff);
	void *base = NULL;
	size_t found_size = 0;
	w->lookups++;
	if (!lookup(p + offset % size, &base, &found_size, NULL)) {
		w->missed++;
		return;
	}
	/* The size asked for, or the usable size, which an index without a
	 * record of sizes answers (HEAPINDEX_META=trailer; the memtable's
	 * default, side: hooks/index.h, INDEX_SIDE_TELLS). */
	if (base != p || (found_size != size && found_size != malloc_usable_size(p))) {
		fprintf(stderr, "threads: heapindex_lookup of byte %zu of a %zu-byte chunk answered "
			"a %zu-byte chunk at another base\n", offset % size, size, found_size);
		exit(1);
	}
	w->found++;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	for (unsigned i = 0; i < LIVE; i++)
		w->live[i] = new_chunk(w, MIN_SIZE);
	for (uint64_t op = 1; op <= opt.ops; op++) {
		unsigned slot = (unsigned)(splitmix64(&w->rng) % LIVE);
		free_chunk(w, w->live[slot]);
		w->live[slot] = new_chunk(w, MIN_SIZE);
		if (op % HANDOFF_EVERY == 0)
			hand_over(w);
		consume_one(w);
		if (opt.lookup_every && op % opt.lookup_every == 0) {
			/* Drawn with or without a lookup function, so the
			 * chunk sequence is the same under every index. */
			unsigned at = (unsigned)(splitmix64(&w->rng) % LIVE);
			size_t offset = (size_t)splitmix64(&w->rng);
			if (lookup)
				check_lookup(w, at, offset);
		}
	}
	/* Nothing is handed over after the barrier: free the rest. */
	int rc = pthread_barrier_wait(&done_ops);
	if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD)
		die("pthread_barrier_wait failed");
	while (w->taken || atomic_load_explicit(&w->inbox.head, memory_order_relaxed))
		consume_one(w);
	for (unsigned i = 0; i < LIVE; i++)
		free_chunk(w, w->live[i]);
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: threads [--threads N] [--ops M] [--seed S] [--lookup-every K] [--help]\n"
		"  --threads N       worker threads, 1..%d (default 1)\n"
		"  --ops M           operations per thread, 1..%llu (default 1000000)\n"
		"  --seed S          seed of every thread's chunk sequence, 0..2^64-1 (default 1)\n"
		"  --lookup-every K  heapindex_lookup every K operations of every thread, 1..%llu\n"
		"                    (default: none; skipped when no index is preloaded)\n"
		"Per operation each thread replaces one of its %d live chunks of %d..%d bytes;\n"
		"every %d operations it hands a new chunk to the next thread, which frees it.\n"
		"stdout: one line, the same for every run, index and schedule.\n",
		MAX_THREADS, (unsigned long long)MAX_OPS, (unsigned long long)MAX_LOOKUP_EVERY,
		LIVE, MIN_SIZE, MAX_SIZE, HANDOFF_EVERY);
}

static void bad_usage(const char *msg)
{
	fprintf(stderr, "threads: %s (see --help)\n", msg);
	exit(2);
}

static uint64_t parse_count(const char *flag, const char *text, uint64_t min, uint64_t max,
			    const char *range)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (text[0] < '0' || text[0] > '9' || *end || errno || v < min || v > max) {
		char msg[256];
		snprintf(msg, sizeof msg, "bad value '%.64s' for %s: valid %s", text, flag, range);
		bad_usage(msg);
	}
	return v;
}

static void parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
			usage(stdout);
			exit(0);
		}
		const char *eq = strchr(arg, '=');
		size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
		const char *value = eq ? eq + 1 : NULL;
		static const char *const flags[] = {"--threads", "--ops", "--seed", "--lookup-every"};
		int which = -1;
		for (int f = 0; f < 4; f++)
			if (strlen(flags[f]) == name_len && !strncmp(arg, flags[f], name_len))
				which = f;
		char msg[256];
		if (which < 0) {
			snprintf(msg, sizeof msg, "unknown option '%.64s': valid: --threads N, --ops M, "
				 "--seed S, --lookup-every K, --help", arg);
			bad_usage(msg);
		}
		if (!value) {
			if (i + 1 >= argc) {
				snprintf(msg, sizeof msg, "%s needs a value", flags[which]);
				bad_usage(msg);
			}
			value = argv[++i];
		}
		switch (which) {
		case 0:
			opt.threads = (unsigned)parse_count(flags[which], value, 1, MAX_THREADS, "1..256");
			break;
		case 1:
			opt.ops = parse_count(flags[which], value, 1, MAX_OPS, "1..10000000000");
			break;
		case 2:
			opt.seed = parse_count(flags[which], value, 0, UINT64_MAX, "0..18446744073709551615");
			break;
		default:
			opt.lookup_every = parse_count(flags[which], value, 1, MAX_LOOKUP_EVERY,
						       "1..1000000000");
			break;
		}
	}
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	if (opt.lookup_every)
		lookup = (lookup_fn *)dlsym(RTLD_DEFAULT, "heapindex_lookup");
	workers = calloc(opt.threads, sizeof *workers);
	if (!workers)
		die("out of memory");
	if (pthread_barrier_init(&done_ops, NULL, opt.threads))
		die("pthread_barrier_init failed");
	for (unsigned t = 0; t < opt.threads; t++) {
		workers[t].id = t;
		workers[t].rng = opt.seed ^ (0x632be59bd9b4e019ULL * (t + 1));
	}
	for (unsigned t = 0; t < opt.threads; t++)
		if ((errno = pthread_create(&workers[t].thread, NULL, work, &workers[t]))) {
			perror("threads: pthread_create");
			return 1;
		}
	uint64_t checksum = 0, pairs = 0, handed = 0, lookups = 0, found = 0, missed = 0;
	for (unsigned t = 0; t < opt.threads; t++) {
		pthread_join(workers[t].thread, NULL);
		checksum += workers[t].checksum;
		pairs += workers[t].mallocs;
		handed += workers[t].handed_over;
		lookups += workers[t].lookups;
		found += workers[t].found;
		missed += workers[t].missed;
	}
	pthread_barrier_destroy(&done_ops);
	printf("threads: threads=%u ops=%" PRIu64 " seed=%" PRIu64 " lookup_every=%" PRIu64
	       " pairs=%" PRIu64 " handed_over=%" PRIu64 " checksum=%016" PRIx64 "\n",
	       opt.threads, opt.ops, opt.seed, opt.lookup_every, pairs, handed, checksum);
	if (opt.lookup_every)
		fprintf(stderr, "threads: %s: %" PRIu64 " lookups, %" PRIu64 " found, %" PRIu64 " not found\n",
			lookup ? "heapindex_lookup" : "no heapindex_lookup in the process (none made)",
			lookups, found, missed);
	free(workers);
	return 0;
}
