/* replay.c - `heapindex replay`: play a heap trace back against indexes,
 * in-process (no LD_PRELOAD), and time what each index does.
 *
 * First the whole trace is checked (header, every record, every free matched
 * to a live chunk), so a bad trace fails with one line before anything is
 * timed, and each remove learns which insert made its chunk: the timed
 * replay then needs no address map, only arrays indexed by record number.
 *
 * Then, per index, records are played in batches of B (default 16384):
 *   A (untimed)  memory for the batch's new chunks, headers filled; the
 *                headers of the chunks the batch frees read (hooks.c's
 *                free reads a chunk's header just before it removes it);
 *   B (timed)    index insert of each new chunk, in trace order;
 *   C (timed)    index remove of each chunk the batch frees, in trace order;
 *   D (timed)    K lookups per record of random interior addresses of random
 *                live chunks, each address depending on the previous answer
 *                and on the size read from its header, as a caller would
 *                (so the figure is latency, like a pointer chase);
 *   E (untimed)  answers checked; the freed chunks' memory released.
 * Frees wait for the batch's end, so no memory is reused inside a batch and
 * doing all its inserts before all its removes gives every index a valid
 * sequence (a chunk is inserted before it is removed, and live chunks never
 * overlap).  ns/op = time of the timed loops / ops: the index's own work,
 * without malloc, header writes or the harness's bookkeeping, on the
 * thread's CPU clock (see cpu_ns).
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "inproc.h"
#include "json.h"
#include "../workloads/trace/trace_format.h"

static const char replay_usage[] =
	"usage: heapindex replay FILE [--index NAME[,NAME...]|all] [--lookups K] [--seed S]\n"
	"                        [--rounds N] [--batch B] [--csv OUT.csv]\n"
	"\n"
	"Play the heap trace FILE (from heapindex record) back in-process against\n"
	"indexes and print ns per insert, remove and lookup.  Only the index's own\n"
	"work is timed; see workloads/trace/README.md for the method and for\n"
	"counting instructions with callgrind.\n"
	"\n"
	"  --index LIST   memtable (default), a comma-separated list, or all: %s\n"
	"  --lookups K    after each batch, K lookups per record of a random interior\n"
	"                 address of a random live chunk, each answer checked\n"
	"                 (default 1; 0 for none)\n"
	"  --seed S       seed of those random choices (default 1): a replay is\n"
	"                 deterministic\n"
	"  --rounds N     replay N times per index, alternating the order of the\n"
	"                 indexes; the table shows medians (default 1)\n"
	"  --batch B      records per timed batch (default 16384)\n"
	"  --csv FILE     also write one CSV row per index and round\n"
	"  --stats        after the table, each index's own statistics (one JSON\n"
	"                 object per index, cumulative over its rounds)\n"
	"  -h, --help     this text\n"
	"\n"
	"A bad or truncated trace is one error line naming the problem and its byte\n"
	"offset, exit 2; a wrong lookup answer is exit 1.\n";

struct replay_options {
	const char *path, *index, *csv;
	int stats;
	uint64_t lookups, seed;
	unsigned rounds;
	size_t batch;
};

static void parse_options(int argc, char **argv, struct replay_options *o)
{
	static const struct option longopts[] = {
		{ "index", required_argument, NULL, 'i' },
		{ "lookups", required_argument, NULL, 'k' },
		{ "seed", required_argument, NULL, 's' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "batch", required_argument, NULL, 'b' },
		{ "csv", required_argument, NULL, 'c' },
		{ "stats", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct replay_options){ .index = "memtable", .lookups = 1, .seed = 1, .rounds = 1,
	                              .batch = 16384 };
	int opt;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'i': o->index = optarg; break;
		case 'k': o->lookups = cli_parse_count("replay", "--lookups", optarg, 0, 1000); break;
		case 's': o->seed = cli_parse_count("replay", "--seed", optarg, 0, UINT64_MAX); break;
		case 'r': o->rounds = (unsigned)cli_parse_count("replay", "--rounds", optarg, 1, 1000); break;
		case 'b': o->batch = cli_parse_count("replay", "--batch", optarg, 1, 1 << 20); break;
		case 'c': o->csv = optarg; break;
		case 'S': o->stats = 1; break;
		case 'h': printf(replay_usage, cli_linked_index_names()); exit(0);
		default: cli_bad_option("replay", argv, opt);
		}
	}
	if (optind >= argc)
		cli_usage_error("replay: no trace file given (usage: heapindex replay FILE [--index NAME])");
	if (argc - optind > 1)
		cli_usage_error("replay: one trace file at a time, got '%s' and '%s' (see heapindex replay --help)",
		                argv[optind], argv[optind + 1]);
	o->path = argv[optind];
	if (o->csv && !*o->csv)
		cli_usage_error("replay: --csv needs a file path");
}

/* --- the trace, checked ------------------------------------------------------------ */

struct trace {
	const char *path;
	const unsigned char *map;
	size_t map_len;
	struct trace_header h;
	const struct trace_record *rec;
	uint64_t count;
	uint32_t *partner; /* for a remove: the record number of its chunk's insert */
	uint64_t inserts, removes, peak_live, end_live;
};

static __attribute__((noreturn, format(printf, 3, 4))) void
trace_error(const struct trace *t, uint64_t offset, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	cli_usage_error("replay: %s: %s (byte offset %" PRIu64 ")", t->path, msg, offset);
}

static uint64_t record_offset(uint64_t i)
{
	return TRACE_HEADER_BYTES + i * TRACE_RECORD_BYTES;
}

/* Printable form of 8 magic bytes. */
static void magic_text(const char *magic, char *out)
{
	for (int i = 0; i < 8; i++)
		out[i] = magic[i] >= 0x20 && magic[i] < 0x7f ? magic[i] : '?';
	out[8] = '\0';
}

static void check_header(struct trace *t);

static void load_header(struct trace *t)
{
	int fd = open(t->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		cli_usage_error("replay: cannot open %s: %s", t->path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st))
		cli_usage_error("replay: cannot stat %s: %s", t->path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		cli_usage_error("replay: %s is not a regular file", t->path);
	t->map_len = (size_t)st.st_size;
	if (t->map_len < TRACE_HEADER_BYTES)
		trace_error(t, t->map_len, "truncated header: the file has %zu bytes, a trace header has %u",
		            t->map_len, TRACE_HEADER_BYTES);
	t->map = mmap(NULL, t->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (t->map == MAP_FAILED)
		cli_usage_error("replay: cannot map %s: %s", t->path, strerror(errno));
	close(fd);
	check_header(t);
}

/* The header of the trace at t->map (t->map_len bytes, at least a header's),
 * checked against the file's length; t->count and t->rec set.  Apart from
 * load_header so that tests/fuzz/fuzz_trace.c can check a buffer. */
static void check_header(struct trace *t)
{
	memcpy(&t->h, t->map, sizeof t->h);
	const struct trace_header *h = &t->h;
	if (memcmp(h->magic, TRACE_MAGIC, 8) != 0) {
		char text[9];
		magic_text(h->magic, text);
		trace_error(t, 0, "bad magic \"%s\": not a heapindex trace (expected \"%s\")", text, TRACE_MAGIC);
	}
	if (h->version != TRACE_VERSION)
		trace_error(t, offsetof(struct trace_header, version),
		            "unsupported trace version %u: this heapindex reads version %u", h->version,
		            TRACE_VERSION);
	if (h->header_bytes != TRACE_HEADER_BYTES)
		trace_error(t, offsetof(struct trace_header, header_bytes),
		            "bad header size %u: version %u headers are %u bytes", h->header_bytes,
		            TRACE_VERSION, TRACE_HEADER_BYTES);
	if (h->record_bytes != TRACE_RECORD_BYTES)
		trace_error(t, offsetof(struct trace_header, record_bytes),
		            "bad record size %u: version %u records are %u bytes", h->record_bytes,
		            TRACE_VERSION, TRACE_RECORD_BYTES);
	if (h->pointer_bytes != sizeof(void *))
		trace_error(t, offsetof(struct trace_header, pointer_bytes),
		            "recorded with %u-byte pointers, this machine has %zu", h->pointer_bytes,
		            sizeof(void *));
	uint32_t known = TRACE_FLAG_FINISHED | TRACE_FLAG_FORKED | TRACE_FLAG_FAILED;
	if (h->flags & ~known)
		trace_error(t, offsetof(struct trace_header, flags), "unknown header flags 0x%x", h->flags & ~known);

	uint64_t data = t->map_len - TRACE_HEADER_BYTES;
	uint64_t have = data / TRACE_RECORD_BYTES;
	t->count = h->record_count;
	if (t->count > have) {
		if (data % TRACE_RECORD_BYTES)
			trace_error(t, record_offset(have),
			            "truncated record %" PRIu64 ": the file ends %" PRIu64
			            " bytes into it (the header says %" PRIu64 " records)",
			            have, data % TRACE_RECORD_BYTES, t->count);
		trace_error(t, t->map_len,
		            "record count mismatch: the header says %" PRIu64
		            " records but the file ends after %" PRIu64, t->count, have);
	}
	/* After the counted records the recorder leaves only zeros. */
	for (uint64_t at = record_offset(t->count); at < t->map_len; at++)
		if (t->map[at])
			trace_error(t, at,
			            "record count mismatch: the header says %" PRIu64
			            " records but data follows them", t->count);
	if (t->count >= UINT32_MAX)
		trace_error(t, offsetof(struct trace_header, record_count),
		            "%" PRIu64 " records: replay handles fewer than 2^32", t->count);
	t->rec = (const struct trace_record *)(t->map + TRACE_HEADER_BYTES);
}

/* Recorded address -> record number of its insert, while live.  Open
 * addressing, linear probing, backward-shift delete; harness memory. */
struct addr_map {
	uint64_t *key; /* 0: empty (no chunk starts at 0) */
	uint32_t *val;
	unsigned bits;
	size_t count;
};

static size_t map_home(const struct addr_map *m, uint64_t key)
{
	return (size_t)(((key >> 4) * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - m->bits));
}

static void map_grow(struct addr_map *m)
{
	struct addr_map g = { .bits = m->bits ? m->bits + 1 : 16, .count = m->count };
	size_t cap = (size_t)1 << g.bits, old_cap = m->bits ? (size_t)1 << m->bits : 0;
	g.key = calloc(cap, sizeof *g.key);
	g.val = malloc(cap * sizeof *g.val);
	if (!g.key || !g.val)
		cli_usage_error("replay: out of memory for the address map");
	for (size_t i = 0; i < old_cap; i++) {
		if (!m->key[i])
			continue;
		size_t at = map_home(&g, m->key[i]);
		while (g.key[at])
			at = (at + 1) & (cap - 1);
		g.key[at] = m->key[i];
		g.val[at] = m->val[i];
	}
	free(m->key);
	free(m->val);
	*m = g;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t map_find(const struct addr_map *m, uint64_t key)
{
	size_t mask = ((size_t)1 << m->bits) - 1, at = map_home(m, key);
	while (m->key[at] && m->key[at] != key)
		at = (at + 1) & mask;
	return at;
}

static void map_delete(struct addr_map *m, size_t i)
{
	size_t mask = ((size_t)1 << m->bits) - 1;
	for (size_t j = (i + 1) & mask; m->key[j]; j = (j + 1) & mask) {
		size_t home = map_home(m, m->key[j]);
		int stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (!stays) {
			m->key[i] = m->key[j];
			m->val[i] = m->val[j];
			i = j;
		}
	}
	m->key[i] = 0;
	m->count--;
}

static void check_records(struct trace *t)
{
	struct addr_map m = { 0 };
	map_grow(&m);
	t->partner = malloc((t->count ? t->count : 1) * sizeof *t->partner);
	if (!t->partner)
		cli_usage_error("replay: out of memory for %" PRIu64 " records", t->count);
	uint64_t live = 0;
	for (uint64_t i = 0; i < t->count; i++) {
		const struct trace_record *r = &t->rec[i];
		uint64_t off = record_offset(i);
		unsigned op = trace_op(r);
		const char *name = trace_op_name(op);
		if (!name)
			trace_error(t, off + 14, "record %" PRIu64 ": unknown op %u", i, op);
		if (!r->addr)
			trace_error(t, off, "record %" PRIu64 " (%s): address 0", i, name);
		if (r->site >> TRACE_SIZE_BITS || r->reserved)
			trace_error(t, off + 16, "record %" PRIu64 " (%s): reserved bits are set", i, name);
		unsigned align = trace_align_log2(r);
		if (align < 4 || align > 40)
			trace_error(t, off + 15, "record %" PRIu64 " (%s): bad alignment 2^%u (expected 2^4..2^40)",
			            i, name, align);
		if ((m.count + 1) * 2 > (size_t)1 << m.bits)
			map_grow(&m);
		size_t at = map_find(&m, r->addr);
		if (trace_op_is_insert(op)) {
			if (m.key[at])
				trace_error(t, off, "record %" PRIu64 " (%s): the chunk at 0x%" PRIx64
				            " is inserted again while live (inserted by record %u)",
				            i, name, r->addr, m.val[at]);
			m.key[at] = r->addr;
			m.val[at] = (uint32_t)i;
			m.count++;
			t->partner[i] = UINT32_MAX;
			t->inserts++;
			if (++live > t->peak_live)
				t->peak_live = live;
			continue;
		}
		if (!m.key[at])
			trace_error(t, off, "record %" PRIu64 " (%s): free of unknown address 0x%" PRIx64
			            ": no live chunk starts there", i, name, r->addr);
		const struct trace_record *ins = &t->rec[m.val[at]];
		if (trace_size(ins) != trace_size(r) || trace_align_log2(ins) != align)
			trace_error(t, off + 8, "record %" PRIu64 " (%s): the chunk at 0x%" PRIx64
			            " has size %" PRIu64 " and alignment 2^%u here but %" PRIu64
			            " and 2^%u at its insert (record %u)", i, name, r->addr, trace_size(r),
			            align, trace_size(ins), trace_align_log2(ins), m.val[at]);
		t->partner[i] = m.val[at];
		map_delete(&m, at);
		t->removes++;
		live--;
	}
	t->end_live = live;
	free(m.key);
	free(m.val);
}

/* --- replaying ------------------------------------------------------------------- */

struct run_result {
	double insert_ns, remove_ns, lookup_ns; /* per op */
	uint64_t lookups, hits, seconds_ns;
};

struct replay {
	const struct trace *t;
	const struct replay_options *o;
	void **user;          /* per insert record: its replayed chunk's user pointer */
	uint32_t *live_ids;   /* insert record numbers of the live chunks */
	uint32_t *live_pos;   /* per insert record: its place in live_ids */
	uint64_t live_count;
	struct chunk **batch_ins, **batch_rem;
	uintptr_t *look_addr;
	struct chunk **look_expect;
	struct chunk_info *look_got; /* base 0: nothing found */
	uint64_t *look_rec;
};

#define LOOKUP_CHUNK 65536

/* The timed loops: separate, never inlined, so callgrind can count each
 * (--toggle-collect=replay_lookup_batch, see README.md). */
void replay_insert_batch(const struct index_ops *ops, struct chunk *const *c, size_t n);
void replay_remove_batch(const struct index_ops *ops, struct chunk *const *c, size_t n);
void replay_lookup_batch(const struct index_ops *ops, const uintptr_t *addr, struct chunk_info *out,
                         size_t n, uintptr_t zero);

__attribute__((noinline)) void replay_insert_batch(const struct index_ops *ops,
                                                   struct chunk *const *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ops->insert(c[i]);
}

__attribute__((noinline)) void replay_remove_batch(const struct index_ops *ops,
                                                   struct chunk *const *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ops->remove(c[i]);
}

/* zero is 0 at run time but unknown to the compiler: each address depends on
 * the previous answer, so lookups cannot overlap. */
__attribute__((noinline)) void replay_lookup_batch(const struct index_ops *ops,
                                                   const uintptr_t *addr, struct chunk_info *out,
                                                   size_t n, uintptr_t zero)
{
	uintptr_t dep = 0;
	for (size_t i = 0; i < n; i++) {
		int found = ops->lookup(addr[i] + dep, &out[i]) == INDEX_FOUND;
		if (!found)
			out[i].base = 0;
		/* Chain through the answer's size, which the index copied out
		 * of the header: a header miss an index guards with a
		 * well-predicted branch would otherwise overlap the next
		 * lookups and not be counted. */
		dep = (found ? (uintptr_t)out[i].size : 0) & zero;
	}
}

static volatile uintptr_t runtime_zero;
static volatile uint64_t warm_sink;

static __attribute__((noreturn, format(printf, 1, 2))) void replay_wrong(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("heapindex: replay: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* What inproc_alloc does, minus the index insert (timed separately). */
static struct chunk *new_chunk(const struct inproc *d, const struct trace_record *r, uint64_t i)
{
	size_t align = (size_t)1 << trace_align_log2(r), size = trace_size(r);
	struct chunk *c = inproc_new_chunk(d, size, align, (uintptr_t)r->site);
	if (!c)
		replay_wrong("out of memory replaying record %" PRIu64 ": a chunk of %zu bytes aligned to %zu",
		             i, size, align);
	return c;
}

static void free_chunk(struct chunk *c)
{
	inproc_free_chunk(c);
}

static void live_add(struct replay *p, uint32_t id)
{
	p->live_pos[id] = (uint32_t)p->live_count;
	p->live_ids[p->live_count++] = id;
}

static void live_del(struct replay *p, uint32_t id)
{
	uint32_t at = p->live_pos[id], last = p->live_ids[--p->live_count];
	p->live_ids[at] = last;
	p->live_pos[last] = at;
}

/* n lookups of random live chunks, timed, then checked. */
static void lookups(struct replay *p, const struct inproc *d, uint64_t n, uint64_t *rng,
                    struct run_result *res, uint64_t *ns, int verify)
{
	while (n && p->live_count) {
		size_t m = n < LOOKUP_CHUNK ? (size_t)n : LOOKUP_CHUNK;
		for (size_t k = 0; k < m; k++) {
			uint32_t id = p->live_ids[cli_next_random(rng) % p->live_count];
			/* The size from the trace, not the header: reading the
			 * header here would bring it into cache for the timed loop. */
			struct chunk *c = chunk_of_user(p->user[id]);
			size_t size = trace_size(&p->t->rec[id]);
			p->look_rec[k] = id;
			/* A zero-byte chunk contains nothing: its address must miss. */
			p->look_addr[k] = chunk_user(c) + (size ? cli_next_random(rng) % size : 0);
			p->look_expect[k] = size ? c : NULL;
		}
		uint64_t start = cli_cpu_ns();
		replay_lookup_batch(d->ops, p->look_addr, p->look_got, m, runtime_zero);
		*ns += cli_cpu_ns() - start;
		for (size_t k = 0; k < m; k++) {
			const struct chunk *want = p->look_expect[k];
			const struct chunk_info *got = &p->look_got[k];
			if (want ? got->base == chunk_user(want) && got->size == chunk_size(want) : !got->base) {
				res->hits += want != NULL;
				continue;
			}
			if (!verify)
				continue;
			replay_wrong("index %s answered wrongly: lookup of 0x%" PRIxPTR
			             " (in the chunk of record %" PRIu64 " at 0x%" PRIxPTR ", %zu bytes) returned %s0x%" PRIxPTR
			             " (%zu bytes)", d->ops->name, p->look_addr[k], p->look_rec[k],
			             want ? chunk_user(want) : 0, want ? chunk_size(want) : 0,
			             got->base ? "the chunk at " : "", got->base, got->base ? got->size : 0);
		}
		res->lookups += m;
		n -= m;
	}
}

static void replay_run(struct replay *p, const struct inproc *d, struct run_result *res)
{
	const struct trace *t = p->t;
	const struct index_ops *ops = d->ops;
	/* noop finds nothing by design: its answers are not checked. */
	int verify = (ops->caps & INDEX_ANSWERS_LOOKUPS) != 0;
	uint64_t rng = p->o->seed, ins_ns = 0, rem_ns = 0, look_ns = 0, warm = 0;
	uint64_t start = cli_now_ns();
	memset(res, 0, sizeof *res);
	p->live_count = 0;
	for (uint64_t s = 0; s < t->count; s += p->o->batch) {
		uint64_t e = s + p->o->batch < t->count ? s + p->o->batch : t->count;
		size_t ni = 0, nr = 0;
		for (uint64_t i = s; i < e; i++) {
			if (t->partner[i] == UINT32_MAX) {
				struct chunk *c = new_chunk(d, &t->rec[i], i);
				p->user[i] = (void *)chunk_user(c);
				p->batch_ins[ni++] = c;
			} else {
				/* As hooks.c's free reads the header (chunk_pad) just
				 * before it calls remove, so the header is in cache;
				 * inserts find theirs there too, just written. */
				struct chunk *c = chunk_of_user(p->user[t->partner[i]]);
				warm += *chunk_site_word(c);
				p->batch_rem[nr++] = c;
			}
		}
		uint64_t t0 = cli_cpu_ns();
		replay_insert_batch(ops, p->batch_ins, ni);
		uint64_t t1 = cli_cpu_ns();
		replay_remove_batch(ops, p->batch_rem, nr);
		uint64_t t2 = cli_cpu_ns();
		ins_ns += t1 - t0;
		rem_ns += t2 - t1;
		for (uint64_t i = s; i < e; i++) {
			if (t->partner[i] == UINT32_MAX)
				live_add(p, (uint32_t)i);
			else
				live_del(p, t->partner[i]);
		}
		if (p->o->lookups)
			lookups(p, d, p->o->lookups * (e - s), &rng, res, &look_ns, verify);
		for (size_t k = 0; k < nr; k++)
			free_chunk(p->batch_rem[k]);
	}
	warm_sink = warm;
	/* Leave the index empty for the next run (untimed). */
	for (uint64_t k = 0; k < p->live_count; k++) {
		struct chunk *c = chunk_of_user(p->user[p->live_ids[k]]);
		ops->remove(c);
		free_chunk(c);
	}
	p->live_count = 0;
	res->seconds_ns = cli_now_ns() - start;
	res->insert_ns = t->inserts ? (double)ins_ns / (double)t->inserts : 0;
	res->remove_ns = t->removes ? (double)rem_ns / (double)t->removes : 0;
	res->lookup_ns = res->lookups ? (double)look_ns / (double)res->lookups : 0;
}

/* --- the command ----------------------------------------------------------------- */

int cmd_replay(int argc, char **argv)
{
	struct replay_options o;
	parse_options(argc, argv, &o);
	const struct index_ops *chosen[64];
	size_t nidx = cli_select_indexes("replay", o.index, chosen, 64);

	struct heapindex_config cfg;
	char err[512];
	if (config_from_env(&cfg, err, sizeof err)) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	/* Inserts are timed in batches, after the chunks are made: side's
	 * pending record holds one chunk (hooks/chunk.h). */
	if (cfg.meta == META_SIDE)
		cli_usage_error("replay: HEAPINDEX_META=side is not replayed: expected header or trailer");

	struct trace t = { .path = o.path };
	load_header(&t);
	check_records(&t);

	FILE *csv = NULL;
	if (o.csv) {
		csv = fopen(o.csv, "w");
		if (!csv)
			cli_usage_error("replay: cannot write %s: %s", o.csv, strerror(errno));
		fprintf(csv, "trace,index,round,records,inserts,removes,peak_live,lookups,"
		             "insert_ns,remove_ns,lookup_ns\n");
	}

	struct inproc d[64];
	for (size_t k = 0; k < nidx; k++)
		if (inproc_init(&d[k], chosen[k], &cfg, err, sizeof err)) {
			fprintf(stderr, "heapindex: replay: index %s: %s\n", chosen[k]->name, err);
			exit(2);
		}

	struct replay p = { .t = &t, .o = &o };
	size_t records = t.count ? (size_t)t.count : 1;
	p.user = cli_xmalloc("replay", records * sizeof *p.user, "chunk pointers");
	p.live_pos = cli_xmalloc("replay", records * sizeof *p.live_pos, "live chunk positions");
	p.live_ids = cli_xmalloc("replay", (t.peak_live ? t.peak_live : 1) * sizeof *p.live_ids, "live chunks");
	/* (sizeof(void *): the elements are pointers to chunks.) */
	p.batch_ins = cli_xmalloc("replay", o.batch * sizeof(void *), "a batch");
	p.batch_rem = cli_xmalloc("replay", o.batch * sizeof(void *), "a batch");
	p.look_addr = cli_xmalloc("replay", LOOKUP_CHUNK * sizeof *p.look_addr, "lookups");
	p.look_expect = cli_xmalloc("replay", LOOKUP_CHUNK * sizeof(void *), "lookups");
	p.look_got = cli_xmalloc("replay", LOOKUP_CHUNK * sizeof *p.look_got, "lookups");
	p.look_rec = cli_xmalloc("replay", LOOKUP_CHUNK * sizeof *p.look_rec, "lookups");

	struct run_result *results = cli_xmalloc("replay", nidx * o.rounds * sizeof *results, "results");
	for (unsigned r = 0; r < o.rounds; r++) {
		for (size_t n = 0; n < nidx; n++) {
			size_t k = r % 2 ? nidx - 1 - n : n; /* alternate the order per round */
			struct run_result *res = &results[k * o.rounds + r];
			replay_run(&p, &d[k], res);
			if (t.count >= 1000000)
				fprintf(stderr, "heapindex: replay: round %u/%u %-10s %.2f s\n", r + 1, o.rounds,
				        chosen[k]->name, (double)res->seconds_ns * 1e-9);
			if (csv)
				fprintf(csv, "%s,%s,%u,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
				             ",%.3f,%.3f,%.3f\n", t.path, chosen[k]->name, r + 1, t.count,
				        t.inserts, t.removes, t.peak_live, res->lookups, res->insert_ns,
				        res->remove_ns, res->lookup_ns);
		}
	}
	if (csv && fclose(csv))
		cli_usage_error("replay: cannot write %s: %s", o.csv, strerror(errno));

	char exe[sizeof t.h.exe + 1];
	memcpy(exe, t.h.exe, sizeof t.h.exe);
	exe[sizeof t.h.exe] = '\0';
	printf("trace %s: %s pid %u%s%s; %" PRIu64 " records: %" PRIu64 " inserts, %" PRIu64
	       " removes; peak %" PRIu64 " live chunks, %" PRIu64 " live at the end\n",
	       t.path, exe[0] ? exe : "?", t.h.pid,
	       t.h.flags & TRACE_FLAG_FORKED ? " (fork child)" : "",
	       t.h.flags & TRACE_FLAG_FAILED ? " (incomplete: the recorder failed)" : "", t.count,
	       t.inserts, t.removes, t.peak_live, t.end_live);
	printf("%-10s %10s %10s %10s %12s %8s%s\n", "index", "insert_ns", "remove_ns", "lookup_ns",
	       "lookups", "checked", o.rounds > 1 ? "  (medians of rounds)" : "");
	double *v = cli_xmalloc("replay", o.rounds * sizeof *v, "medians");
	for (size_t k = 0; k < nidx; k++) {
		double med[3];
		for (int f = 0; f < 3; f++) {
			for (unsigned r = 0; r < o.rounds; r++) {
				const struct run_result *res = &results[k * o.rounds + r];
				v[r] = f == 0 ? res->insert_ns : f == 1 ? res->remove_ns : res->lookup_ns;
			}
			med[f] = cli_median(v, o.rounds);
		}
		printf("%-10s %10.1f %10.1f %10.1f %12" PRIu64 " %8s\n", chosen[k]->name, med[0], med[1],
		       med[2], results[k * o.rounds].lookups,
		       !o.lookups ? "-" : (chosen[k]->caps & INDEX_ANSWERS_LOOKUPS) ? "yes" : "no");
	}
	for (size_t k = 0; o.stats && k < nidx; k++) {
		static char buf[16384];
		struct json_out j;
		json_init(&j, buf, sizeof buf);
		json_open(&j, NULL);
		json_str(&j, "index", chosen[k]->name);
		chosen[k]->write_stats(&j);
		json_close(&j);
		printf("%.*s\n", (int)j.len, buf);
	}
	free(v);
	free(results);
	free(p.user);
	free(p.live_pos);
	free(p.live_ids);
	free(p.batch_ins);
	free(p.batch_rem);
	free(p.look_addr);
	free(p.look_expect);
	free(p.look_got);
	free(p.look_rec);
	free(t.partner);
	munmap((void *)t.map, t.map_len);
	return 0;
}
