/* config.h - settings read once from the environment.
 *
 * Shared by the hook libraries (read at the first allocation) and by the
 * `heapindex` command (checked before it starts a program), so a bad value
 * gets the same one-line error from both.
 */
#ifndef HEAPINDEX_CONFIG_H
#define HEAPINDEX_CONFIG_H

#include <stddef.h>

struct heapindex_config {
	unsigned addr_bits;     /* width of the address space the memtable covers */
	unsigned bin_shift;     /* log2 of the bytes one memtable bin covers      */
	unsigned table_levels;  /* memtable layout: 0 auto (flat, else two-level),
	                         * 1 flat only, 2 two-level (memtable/memtable.h) */
	const char *stats_path; /* append per-process JSON stats here, or NULL    */
	/* Test-only reliability settings (hooks only; 0: off).
	 * fail_every: every Nth call into the real allocator fails (ENOMEM).
	 * verify_every: keep a shadow of live chunks and check the index against
	 * it at exit (1) or also every K index operations (K >= 2). */
	unsigned fail_every;
	unsigned verify_every;
	/* HEAPINDEX_LOOKUP_CACHE: entries of each thread's lookup cache, 0
	 * (off) or a power of two up to CONFIG_LOOKUP_CACHE_MAX (lookup_cache.h). */
	unsigned lookup_cache;
	/* Allocation sites (sites/sites.h). */
	unsigned site_depth;     /* HEAPINDEX_SITE: 0 = ret, N = unwind:N          */
	const char *site_skip;   /* HEAPINDEX_SITE_SKIP: "xmalloc,xcalloc" or NULL */
	const char *census_path; /* HEAPINDEX_CENSUS: live heap by site, or NULL   */
	/* HEAPINDEX_META: the chunk metadata placement (enum chunk_meta,
	 * chunk.h), or -1 for the default (config_meta_default). */
	int meta;
};

/* The default placement (HEAPINDEX_META unset) depends on the index, by
 * its caps (index.h): side for every index that takes it -- one that keeps
 * records of its own (INDEX_SIDE_RECORDS: critnib), which then holds size
 * and site once, in the records, instead of twice; the memtable, whose
 * start masks tell its chunks (INDEX_SIDE_TELLS) at bin shifts up to
 * CONFIG_SIDE_BIN_SHIFT_MAX; the bitmap, whose bits tell its chunks; and
 * noop, which keeps nothing -- header for
 * the others, and for every index when the lookup cache is on (its mark
 * lives in the header) or, for an index without records, the census
 * (below).  Why: chunk.h's opening comment, with the figures.  The
 * statistics line says which placement ran ("meta"). */
#define CONFIG_META_NAMES "header, trailer or side"
#define CONFIG_META_DEFAULT_TEXT "side for an index that takes it (noop, critnib,\n" \
	"                       memtable, bitmap), header for the others"
/* The placement for an index with these caps (index.h): cfg->meta, or the
 * default; -1 with a one-line message in err if the index cannot take the
 * one asked for.  The census needs the site of a chunk being freed, which
 * side keeps only in an index's records: with HEAPINDEX_CENSUS, side is
 * refused for an index without records (noop). */
int config_meta_for(const struct heapindex_config *cfg, const char *index, unsigned caps,
                    char *err, size_t errlen);

/* Valid ranges, also printed in error messages and --help.
 * bin_shift: bins smaller than 16 bytes would hold less than one chunk start;
 * the memtable's list links are 8-bit numbers of 16-byte slots (0: none), so
 * a bin has at most 255 slots: 2^11 bytes (128 slots) is the largest. */
#define CONFIG_ADDR_BITS_MIN 32u
#define CONFIG_ADDR_BITS_MAX 57u
#define CONFIG_BIN_SHIFT_MIN 4u
#define CONFIG_BIN_SHIFT_MAX 11u
/* 64-byte bins: `heapindex tune --addr-bits 47` measured 1.06 list steps per
 * lookup at shift 6 against 5.25 at 9 (liballocs' 512-byte bins), for
 * lookups 3.7x faster and ~0.4 MiB more committed table on a Python heap. */
#define CONFIG_BIN_SHIFT_DEFAULT 6u
/* The memtable under side keeps a bin's chunk starts as a mask of its
 * 16-byte slots, and a lock bit, in the bin's table byte: at most 4 slots
 * (64-byte bins) leave room for the lock (memtable/heap_index.c). */
#define CONFIG_SIDE_BIN_SHIFT_MAX 6u
/* unwind:N keeps at most 32 frames: deeper stacks cost more to capture and
 * intern than they tell (sites/sites.h). */
#define CONFIG_SITE_DEPTH_MAX 32u
#define CONFIG_TABLE_LEVELS_MAX 2u
#define CONFIG_FAIL_EVERY_MAX 1000000u
#define CONFIG_VERIFY_MAX 1000000000u
#define CONFIG_LOOKUP_CACHE_MAX 4096u

/* This machine's user address-space width: 47 bits on x86-64 (4-level
 * paging; Linux keeps mmap below 2^47 even with 5-level paging unless asked),
 * 48 on AArch64. */
unsigned config_default_addr_bits(void);

/* Fill cfg from the environment. Returns 0, or -1 with a one-line message in
 * err naming the variable, its value and the valid range. Calls no malloc. */
int config_from_env(struct heapindex_config *cfg, char *err, size_t errlen);

#endif /* HEAPINDEX_CONFIG_H */
