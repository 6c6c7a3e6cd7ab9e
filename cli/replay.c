/* replay.c - `heapindex replay`: play a heap trace back against indexes,
 * in-process (no LD_PRELOAD), and time what each index does.
 *
 * First the whole trace is checked (workloads/trace/trace_reader.h: header,
 * every record, every free matched to a live chunk), so a bad trace fails
 * with one line before anything is timed, and each remove learns which
 * insert made its chunk: the timed replay then needs no address map, only
 * arrays indexed by record number.  The timed loops are cli/kernels.c's.
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
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "inproc.h"
#include "json.h"
#include "kernels.h"
#include "../workloads/trace/trace_reader.h"

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

/* A chunk as inproc_alloc makes it, minus the index insert (timed apart). */
static struct chunk *new_chunk(const struct inproc *d, const struct trace_record *r, uint64_t i)
{
	size_t align = (size_t)1 << trace_align_log2(r), size = trace_size(r);
	struct chunk *c = inproc_new_chunk(d, size, align, (uintptr_t)r->site);
	if (!c)
		cli_wrong("replay", "out of memory replaying record %" PRIu64
		          ": a chunk of %zu bytes aligned to %zu", i, size, align);
	return c;
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
		timed_lookup_batch(d->ops, p->look_addr, p->look_got, m, runtime_zero, 0);
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
			cli_wrong("replay", "index %s answered wrongly: lookup of 0x%" PRIxPTR
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
	uint64_t rng = p->o->seed, ins_ns = 0, rem_ns = 0, look_ns = 0;
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
				warm_header(c);
				p->batch_rem[nr++] = c;
			}
		}
		uint64_t t0 = cli_cpu_ns();
		timed_insert_batch(ops, p->batch_ins, ni);
		uint64_t t1 = cli_cpu_ns();
		timed_remove_batch(ops, p->batch_rem, nr);
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
			inproc_free_chunk(p->batch_rem[k]);
	}
	/* Leave the index empty for the next run (untimed). */
	for (uint64_t k = 0; k < p->live_count; k++) {
		struct chunk *c = chunk_of_user(p->user[p->live_ids[k]]);
		ops->remove(c);
		inproc_free_chunk(c);
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

	struct trace t;
	struct trace_error e = { 0 };
	if (trace_open(&t, o.path, &e) || trace_check_records(&t, &e)) {
		if (e.offset == TRACE_NO_OFFSET)
			cli_usage_error("replay: %s", e.msg);
		cli_usage_error("replay: %s: %s (byte offset %" PRIu64 ")", t.path, e.msg, e.offset);
	}

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
	trace_close(&t);
	return 0;
}
