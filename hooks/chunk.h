/* chunk.h - where the hooks keep each chunk's metadata (size, allocation
 * site, the index's links): the placement, chosen at start-up by
 * HEAPINDEX_META=header|trailer|side (config.h), and the one way the hooks
 * and the indexes read it.  No index assumes an offset of its own.
 *
 * header (16 bytes in front of the user pointer):
 *
 *     real base                                  user pointer (what the program sees)
 *     v                                          v
 *     [ alignment slack ][ index links ][ chunk ][ size bytes the program asked for ... ]
 *                                       ^ user - 16
 *
 *   A header sits at a fixed offset from the user pointer, so a bin walk
 *   reads it directly; the exact requested size is kept.  Every chunk costs
 *   16 bytes more (plus links_bytes for indexes that keep nodes there).
 *
 * trailer (liballocs' layout, 8 bytes at the end of the usable size):
 *
 *     user pointer = the allocator's own pointer (no pad, memalign needs none)
 *     v
 *     [ usable - 8 bytes of the program ........ ][ site:48 | links:16 ]
 *                                                 ^ user + usable - 8
 *
 *   The requested size is not stored: the chunk's size is usable - 8, which
 *   malloc_usable_size and heapindex_lookup report (at least what was asked
 *   for).  Finding the trailer costs one call of the allocator's
 *   malloc_usable_size.  The hooks ask the allocator for n + 8; size classes
 *   (glibc's 16-byte steps, jemalloc's classes) already give that for free
 *   to about half of all n, since the allocator picks the smallest class
 *   holding n + 8, which for those n is the class of n itself.
 *
 * side (nothing in the chunk): the index keeps size and site in its own
 *   records (critnib), or keeps a mark per chunk and no size at all (the
 *   memtable: a bin's table byte holds its chunk starts as a mask,
 *   memtable/heap_index.c; its lookups answer the allocator's usable size,
 *   chunk_held_size below, and no site: index.h, INDEX_SIDE_TELLS; the
 *   bitmap too, when asked), or keeps nothing (noop).  The hooks hand size and site to insert through
 *   this thread's pending record (chunk_pending, below), valid during that
 *   insert only (the memtable's side fast path is given the size instead).
 *   An index with records hands them back at remove (chunk_side_removed;
 *   index.h, INDEX_SIDE_RECORDS): free counts the size asked for, as header
 *   does.  The memtable says only whether the chunk was its own; it and
 *   noop have no size to hand back: their statistics count calls and
 *   chunks but no bytes (hooks.c, the side fast path).  The hooks call no
 *   malloc_usable_size under side; the memtable does for its lookups' size
 *   and for inserts of the general path (calloc, realloc, memalign).
 *
 * Default (HEAPINDEX_META unset; config.h): side for every index that takes
 * it (noop, critnib, the bitmap, the memtable at bin shifts up to 6), header for the
 * others, and header for all when the lookup cache is on (for noop and the
 * memtable with the census too: their freed chunks' sites are in no
 * record).  Measured on this machine (issue 15;
 * glibc; `./heapindex bench --meta header,trailer,side --workloads
 * gcc,pychurn,pycompile --callgrind gcc`, small: max RSS of the tree over
 * uninstrumented, median of 3 interleaved rounds; bytes per chunk from the
 * hooks' statistics (meta_bytes_per_chunk); cc1 instructions by callgrind,
 * gcc -O0 -c of SQLite's shell.c; malloc+free pairs by `make hook-cost`):
 *
 *                     bytes added/chunk  max RSS over none         instr/  cc1 instr
 *                     cc1   pychurn    gcc    pychurn  pycompile  pair    (M)
 *     noop     header 15.6  14.4       +1.2%  +19.4%   +7.0%      200.9   3,917.6
 *              trailer 5.6   6.9       +0.9%  +13.6%   +3.8%      283.9   3,948.6
 *              side    0     0         +0.8%   +1.3%   +1.5%      282.9   3,946.9
 *     memtable header 15.7  14.5       +1.4%  +21.3%   +8.4%      295.9   3,971.1
 *              trailer 5.8   6.9       +1.2%  +15.4%   +5.1%      480.9   4,047.9
 *     critnib  header 15.6  14.4       +4.6% +118.6%  +43.6%      325.9   4,081.8
 *              trailer 5.7   6.9       +3.2% +100.1%  +40.2%      435.9   4,124.1
 *              side    0     0         +3.0%  +88.3%  +38.7%      376.9   4,095.9
 *
 * (Before issue 11's fast path was merged.  After it, `make hook-cost`:
 * header noop 184.3, memtable 273.5, critnib 320.5; trailer 281.9, 481.9,
 * 442.9; side noop 280.9, critnib 383.9 -- side now 63.4 over header for
 * critnib, the way to the placements' common path of then (malloc_meta,
 * free_meta) passing through malloc_flagged and free_flagged; cc1 on shell.c: noop header 3,911.9 M,
 * side 3,946.7 M (+0.89%); critnib header 4,080.3 M, side 4,099.1 M
 * (+0.46%).)
 *
 * gcc -O0 -c of the whole sqlite3.c (`bench --size full`, 5 rounds, cc1
 * under callgrind): noop header 19,750.6 M instructions, side 19,904.6 M
 * (+0.78%); critnib header 20,671.6 M, side 20,748.3 M (+0.37%).  Wall time
 * did not resolve: every paired interval against uninstrumented spans 1.0
 * (noop side 0.945 [0.582..1.537], critnib side 1.075 [0.944..1.224]; the
 * machine's load reached 6.5 on 2 CPUs).  Lookup hits at 10^6 live chunks
 * (`heapindex scale --max-chunks 1000000`, one run each, a loaded machine,
 * before the memtable's near lookup and header prefetch of issue 12):
 * memtable 303.7 ns under header, 431.3 under trailer (a malloc_usable_size
 * per list step); critnib 641.5 and 580.3, the same work (its lookups read
 * only its own nodes and leaves: the gap is noise).  scale runs under side
 * too since (workloads/scale/README.md, "Placements at 10^6 chunks": 7
 * runs each, alternated; the medians of those at a quiet L3), hit ns at
 * 10^6, header / trailer / side: memtable 221 / 278 / 437 (side: a
 * malloc_usable_size per answer, and no header-guess prefetch in the start
 * masks' near lookup then; with it since, 0.98-1.05x the bitmap's side
 * hits in the same runs: workloads/scale/README.md), bitmap 210 / 266 / 287, critnib
 * 580 / 584 / 617 (the same work), bytemap 114 / 126 / -; gcbase 66-88.
 *
 * Then side got a fast path of its own (hooks.c, malloc_side and
 * free_side), and noop under side stopped counting bytes.  make hook-cost,
 * header / side: noop 184.3 / 191.0 (side was 280.9), critnib 320.5 /
 * 365.3 (was 383.9; 359.3 with its side path inlined into malloc_flagged
 * and free_flagged, which then cost the trailer 16 more per pair for
 * every index with updates); noop's 6.7 are the way through
 * malloc_flagged and free_flagged, which the header's stores and pad-code
 * test that side leaves out do not quite pay for.  cc1 under callgrind with noop, header
 * / side: shell.c 3,911.7 / 3,910.4 M instructions (-0.03%), the whole
 * sqlite3.c 19,718.3 / 19,714.2 M (-0.02%): glibc does a little less with
 * chunks 16 bytes smaller, which outweighs the 6.7 per pair.  `bench
 * --workloads pychurn,pycompile,gcc --indexes none,noop --meta header,side
 * --runs 5` (small), max RSS of the tree over none, header / side: gcc
 * +1.1% / +0.7%, pychurn +19.4% / +1.0%, pycompile +7.2% / +1.1%; wall,
 * side / header paired per round: gcc 1.037 [0.861..1.250], pychurn 0.949
 * [0.743..1.211], pycompile 0.988 [0.772..1.263], none resolved (load 4
 * on 2 CPUs).  gcc -O0 -c of the whole sqlite3.c, 7 rounds (`--size
 * full`): RSS +0.6% / +0.3%; wall side / header 0.963 [0.848..1.094],
 * CPU user+sys 0.986 [0.957..1.015]: no slower, not resolved either.
 * Since (issue 11 item 1) noop's side path is inlined into malloc and
 * free, and its budgets alone count its calls and chunks (counters.h):
 * make hook-cost, header / side: noop 184.3 / 177.0, side now the cheaper
 * by 7.3 (critnib 320.4 / 364.3).
 *
 * The memtable under side (issue 15 continued): start masks, no links, no
 * bytes in the chunk (memtable/heap_index.c, "the start masks").  `bench
 * --workloads pychurn,pycompile --indexes none,noop,memtable --meta
 * header,side --runs 5` (small, load up to 3.4 on 2 CPUs), max RSS of the
 * tree over none, header / side: memtable pychurn +21.3% / +2.6%,
 * pycompile +8.5% / +2.9%; noop +19.2% / +1.1%, +6.5% / +1.4%.  Wall, side
 * over none, not resolved (pychurn 0.967 [0.770..1.215]).  make hook-cost
 * (header / side, after main's noop side path of issue 11): memtable
 * 263.4 / 297.0 instructions per pair (286.0 since malloc and free go
 * straight to side's path for an index with side bodies, hooks.c), noop
 * 184.3 / 177.0.  cc1 on
 * shell.c under callgrind (`bench --workloads gcc --meta header,side
 * --callgrind gcc`, the two-level table, before the merge): none 3,871.3
 * M, memtable header 3,947.0 M, side 3,958.3 M (+0.29%); gcc RSS +1.5% /
 * +1.0%.  Two threads of thread_churn (20M operations each, median of 9
 * or 7 interleaved rounds): memtable side 1.41x uninstrumented (make
 * hook-cost's table; bitmap 1.50x, noop 1.09x), header 1.57x against
 * side's 1.41x when the two alternate.  Lookups under side cost a
 * malloc_usable_size each (glibc: one read of its chunk header) and take
 * the bin's lock bit.
 *
 * Then (issues 11 and 15) the memtable's side updates went inline into
 * malloc and free, outside the fork bracket (hooks.c; index.h,
 * INDEX_SIDE_INLINE; memtable/start_masks.h), and for it the header's fast
 * path apart: make hook-cost header / side / trailer 271.4 / 225.0 /
 * 456.9 (were 263.4 / 286.0 / 462.9; noop 184.3 / 177.0 / 270.9, so side
 * is +48.0 over noop's).  cc1 on shell.c under callgrind (`bench
 * --workloads gcc --indexes none,memtable --meta header,side --runs 1
 * --callgrind gcc`, the flat table): none 3,871.3 M, memtable header
 * 3,949.5 M, side 3,929.6 M (-0.50%; before, on the same machine, header
 * 3,946.8 M, side 3,952.8 M, +0.15%).  The whole sqlite3.c (`--size
 * full`): none 19,521.5 M, memtable header 19,913.1 M, side 19,811.2 M
 * (-0.51%; before, header 19,898.8 M, side 19,933.7 M, +0.18%).
 *
 * The bitmap takes side through the same path (its bits tell its chunks,
 * its lookups ask the usable size under their hazard): make hook-cost
 * header / side 251.4 / 371.0 while its side path asked the usable size
 * at every insert; then its side common cases went inline as the
 * memtable's (baselines/bitmap_fast.h: one OR, one AND, the usable size
 * asked only for a new largest request, raising the lookups' reach),
 * and its header path apart: header / side / trailer 268.4 / 253.0 /
 * 433.9.  thread_churn at 2 threads, 20M ops, median of 7 interleaved
 * rounds: header 1.49x uninstrumented, side 1.34x; `bench --indexes
 * none,bitmap --meta header,side --runs 3`: pychurn RSS +20.3% / +2.0%,
 * pycompile +7.7% / +2.8%.  So side is its default too, giving up what
 * the memtable's does: lookups answer the usable size, not the request,
 * and no site.
 *
 * Why this default.  Side is the placement that brings a Python heap of
 * small objects near the uninstrumented one (noop pychurn: +1.3% against
 * +19.4% under header); under critnib it costs nothing that header kept:
 * the exact size, the site (the census runs), foreign pointers told apart
 * (by the remove), and no malloc_usable_size.  What it costs is 44.8
 * instructions per pair over header (365.3 against 320.5: the way out of
 * the header fast path through malloc_flagged and free_flagged, and size
 * and site passed through the thread's pending record instead of a
 * register), and +0.27% of cc1's instructions on shell.c (4,098.6 M
 * against 4,087.5 M; +0.46% before side's fast path), which breaks the
 * rule that gcc may not get slower than under header; its memory gain
 * (15.6 bytes per chunk, RSS -1.6 points on gcc, -30 on pychurn) is what
 * the rule is traded for, and the index's records make header's copy of
 * size and site a duplicate.  noop takes side too, since its fast path:
 * both of the targets then hold (pychurn +1.0%, at most +5%; cc1
 * no more instructions than under header), where header missed the first
 * by 14.4 points.  What noop gives up under side is the statistics' bytes
 * (live and peak bytes are left out: with no record there is no size at
 * free, and asking the allocator at malloc and free cost two
 * malloc_usable_size calls, ~30 instructions, per pair) and the telling of
 * foreign pointers (below).  The memtable takes side too, since its start
 * masks: issue 15's target for it (pychurn at most +6%) holds only there
 * (+2.6% against +21.3%).  What its default gives up: the allocation site
 * (lookups answer none, and heapindex_describe names "an unknown site"),
 * the exact requested size (lookups answer the allocator's usable size,
 * at least what was asked for) and the statistics' bytes.  It costs no
 * instructions: 225.0 per malloc+free pair against header's 285.4 (an
 * atomic OR and a compare-and-swap on the table byte, inline, where
 * header's lock exchange and store are in called bodies inside the fork
 * bracket), and cc1 on shell.c 0.50% fewer than under header, so the gcc
 * rule holds (it did not while side's bodies were called: 286.0 per pair,
 * +0.29% of cc1's instructions).  And lookup speed: each answer asks the
 * allocator its usable size under the bin's lock bit (an atomic pair),
 * where header, since its head entries (memtable/heap_index.c), answers a
 * lookup that wants no site from index memory alone, reading no heap (the
 * entry's store is 14 of header's 285.4 instructions per pair).  At 10^6
 * live chunks (`heapindex scale --max-chunks 1e7 --rounds 3`, hit ns over
 * gcbase's in the same run): the memtable 2.00x under header (143.3 ns,
 * `--index all`), 3.70x under side (304.2, `HEAPINDEX_META=side --index
 * memtable,bitmap,gcbase`); the bitmap 3.03x and 3.39x.
 * HEAPINDEX_META=header gets sites and exact sizes back; the census and
 * the lookup cache select header by themselves, as does a bin shift above
 * 6 (tune).  The cost of the hooks the header indexes run -- the seed
 * table's no-op row set against the memtable -- is now noop and the
 * memtable under HEAPINDEX_META=header (bench --meta header).
 * Trailer is nobody's default: it halves the bytes but makes lookups
 * answer the usable size and makes every index step ask the allocator
 * where the trailer is (the memtable: +185 instructions per pair, cc1
 * +1.9%).
 *
 * The indexes see a chunk as a struct chunk *, a handle that is always
 * user - 16 (so chunk_user and chunk_of_user are arithmetic in every
 * placement); only under header is there memory behind it.  Under trailer
 * and side the handle is never dereferenced: every read goes through the
 * accessors below, which dispatch on chunk_meta (one well-predicted
 * compare; the header case is inlined).
 *
 * Foreign pointers (issue 16): header checks the tagged pad code below the
 * pointer, confirmed by the index (hooks.c's foreign_pointer).  Side needs
 * no check value: the user pointer is the allocator's own, so
 * malloc_usable_size answers the allocator's figure for ours and theirs
 * alike, and an index with records says at remove whether it had the
 * chunk (CHUNK_SIZE_NONE left in chunk_pending: not ours); free then gives
 * the pointer to the allocator untouched and realloc moves its bytes into
 * a chunk of ours (hooks.c, track).  Under noop nothing tells: glibc's
 * chunks still reach glibc untouched (the statistics count them as ours),
 * and a wild pointer goes straight to glibc's free, which aborts with its
 * own message (tests/test_reliability.c).  Under critnib, a
 * chunk whose insert was dropped (no memory for a leaf: its statistics'
 * dropped_inserts) is taken for a foreign one at free: freed all the
 * same, but left in the live counts.  Trailer is not checked: it must not
 * trust the word at usable - 8 of a foreign chunk (the memtable would
 * follow its link bits), and 8 bytes leave no room for a check byte beside
 * a 48-bit site and 16 link bits, so its check would be a lookup of the
 * exact base before each remove: measured (make hook-cost with that lookup
 * in the trailer's free), +346 instructions per pair for the memtable (484.9 ->
 * 831.3, +72%), +68 for critnib.  Not cheap: not done.  (critnib could use side's
 * hand-back under trailer too, but free asks malloc_usable_size for the
 * trailer first, which a wild pointer may crash.)
 *
 * Invariants:
 *  - the user pointer is 16-byte aligned (alignof(max_align_t)) under
 *    header and trailer; under side it is the allocator's own, which
 *    jemalloc aligns to 8 only for its 8-byte class (the memtable keeps
 *    such chunks in its big tree);
 *  - size < 2^48 and site < 2^48: user-space addresses and sizes on x86-64
 *    and AArch64 fit in 48 bits, which frees 16 bits in each word;
 *  - the 16 high bits of the site word belong to the index (the memtable
 *    keeps its list links there); the hooks never touch them after
 *    chunk_init.
 */
#ifndef HEAPINDEX_CHUNK_H
#define HEAPINDEX_CHUNK_H

#include <stddef.h>
#include <stdint.h>

struct chunk {
	uint64_t size_pad;   /* bits 0-47: requested size; 48-63: pad code     */
	uint64_t site_links; /* bits 0-47: allocation site; 48-63: index links */
};

#define CHUNK_HEADER_BYTES ((size_t)sizeof(struct chunk))
#define CHUNK_ALIGN ((size_t)16)
#define CHUNK_FIELD_BITS 48
#define CHUNK_FIELD_MASK ((UINT64_C(1) << CHUNK_FIELD_BITS) - 1)
#define CHUNK_SIZE_MAX ((size_t)CHUNK_FIELD_MASK)

/* The pad code (bits 48-63 of size_pad) says how far below the user pointer
 * the real allocator's chunk starts, and carries a check byte:
 *
 *     bits 8-15  CHUNK_TAG, the same in every chunk the hooks make;
 *     bit  7     clear: bits 0-5 are pad / 16 (pad < 1 KiB);
 *                set:   bits 0-5 are log2(pad);
 *     bit  6     the cached mark, no part of the pad: a lookup cache may
 *                hold the chunk's answer (lookup_cache.h), so its free,
 *                which must then invalidate it, leaves the fast path (which
 *                takes only the plain code).  chunk_pad_code leaves it out.
 *
 * Pads are multiples of 16: the header alone (header_bytes, at most a few
 * dozen bytes), or for an over-aligned chunk the header rounded up to the
 * alignment; from 1 KiB up that is the alignment itself, a power of two, so
 * its log2 is enough.
 *
 * Why a check byte: free, realloc and malloc_usable_size may be handed a
 * pointer the hooks never made (a __libc_malloc pointer, one from an
 * allocator the hooks were not in front of, a bad pointer), and must then
 * leave the index alone (chunk_code_is_ours, and hooks.c's foreign_pointer).
 * Below such a pointer lie someone else's 16 bytes.  For glibc's chunks the
 * word we read is its prev_size field (a small size: top byte 0) or the
 * previous chunk's last 8 user bytes.  0xa5 in the top byte is no user-space
 * address (their top 16 bits are 0), no small integer, no negative one
 * (0xff), no ASCII text and no double of ordinary magnitude, so such words
 * never pass; an arbitrary word passes free's fast test (the whole 16-bit
 * code of a plain chunk) with probability 2^-16. */
#define CHUNK_TAG 0xa5u
#define PAD_LOG2_FLAG 0x80u
#define PAD_CACHED_FLAG 0x40u
#define PAD_UNITS_LIMIT PAD_CACHED_FLAG /* pads below 1 KiB are stored in units */
#define PAD_CODE_BAD 0xffu               /* a code payload no pad has (log2 63, marked) */
#define CHUNK_CACHED_BIT ((uint64_t)PAD_CACHED_FLAG << CHUNK_FIELD_BITS)

static inline unsigned pad_encode(size_t pad)
{
	if (pad / 16 < PAD_UNITS_LIMIT)
		return CHUNK_TAG << 8 | (unsigned)(pad / 16);
	return CHUNK_TAG << 8 | PAD_LOG2_FLAG | (unsigned)__builtin_ctzll(pad);
}

static inline size_t pad_decode(unsigned code)
{
	if (code & PAD_LOG2_FLAG)
		return (size_t)1 << (code & 63);
	return (size_t)(code & 0x3fu) * 16;
}

/* Could code be one the hooks wrote, for a chunk whose user pointer is user
 * and whose header is header_bytes?  The tag, and a pad the hooks make: the
 * header alone, or for an over-aligned chunk the header rounded up to its
 * alignment (at least 32): a multiple of 32 above the header, the user
 * pointer aligned to 32, and to the whole pad when that is stored as a log2
 * (the pad is then the alignment).  One function, so every metadata
 * placement can carry the same check. */
static inline int chunk_code_is_ours(unsigned code, uintptr_t user, size_t header_bytes)
{
	if (code >> 8 != CHUNK_TAG)
		return 0;
	size_t pad = pad_decode(code);
	if (code & PAD_LOG2_FLAG)
		return (code & 0x3fu) >= 10 && (code & 0x3fu) <= 47 && (user & (pad - 1)) == 0;
	if (pad == header_bytes)
		return 1;
	return pad > header_bytes && pad % 32 == 0 && user % 32 == 0;
}

/* The pad of a chunk of size bytes whose user pointer is aligned to align (a
 * power of two, at least CHUNK_ALIGN), header_bytes (struct chunk and the
 * index's links, a multiple of 16) below it: the smallest multiple of align
 * that holds them, so the user pointer sits pad bytes into a real chunk
 * aligned to align.  0 -- no pad is 0 -- if pad and size cannot be encoded
 * (size + pad would pass CHUNK_SIZE_MAX): the allocation must fail. */
static inline size_t chunk_pad_for(size_t header_bytes, size_t align, size_t size)
{
	size_t pad = (header_bytes + align - 1) & ~(align - 1);
	return pad > CHUNK_SIZE_MAX || size > CHUNK_SIZE_MAX - pad ? 0 : pad;
}

/* --- the placement ----------------------------------------------------------- */

enum chunk_meta { META_HEADER, META_TRAILER, META_SIDE, META_COUNT };
#define META_TRAILER_BYTES ((size_t)8)

/* The placement's bit in index_ops.caps (index.h): 1u << (8 + meta). */
#define META_CAP(meta) (1u << (8 + (unsigned)(meta)))

/* Set once at start-up (the hooks' initialisation, inproc_init), before any
 * chunk exists; read everywhere.  Hidden: one RIP-relative compare. */
#define CHUNK_HIDDEN __attribute__((visibility("hidden")))
extern CHUNK_HIDDEN enum chunk_meta chunk_meta;
/* The allocator's malloc_usable_size, for trailer (never the hooks' own,
 * which would call back into us). */
extern CHUNK_HIDDEN size_t (*chunk_usable_size)(void *);
/* Under side: size and site of the chunk being inserted, for the index to
 * copy during that insert; and of the chunk being removed, which an index
 * with records (index.h, INDEX_SIDE_RECORDS) hands back through it
 * (chunk_side_removed).  Per thread. */
struct chunk_pending {
	size_t size;
	uint64_t site_word;
};
extern CHUNK_HIDDEN __thread struct chunk_pending chunk_pending
	__attribute__((tls_model("initial-exec")));
/* chunk_pending.size before a remove under side that an index with records
 * answers: no chunk's size (> CHUNK_SIZE_MAX), so still there after the
 * remove it says the index had no record of the chunk. */
#define CHUNK_SIZE_NONE SIZE_MAX

const char *chunk_meta_name(enum chunk_meta meta);
/* The placement named name, or -1. */
int chunk_meta_by_name(const char *name);

static inline struct chunk *chunk_of_user(const void *user)
{
	return (struct chunk *)((uintptr_t)user - CHUNK_HEADER_BYTES);
}

static inline uintptr_t chunk_user(const struct chunk *c)
{
	return (uintptr_t)c + CHUNK_HEADER_BYTES;
}

#define chunk_likely_header() __builtin_expect(chunk_meta == META_HEADER, 1)
#define CHUNK_INLINE static inline __attribute__((always_inline))

/* Every accessor comes in two forms: chunk_X(c), for the process's
 * placement, and chunk_X_in(c, meta), for a placement the caller already
 * knows.  An index's hot path can test the placement once and call a body
 * written with the _in forms with a constant meta (see the memtable's
 * insert): the header body then compiles to exactly the header's loads and
 * stores, with no test and no call on its way. */

/* Under trailer: the trailer word, at the end of the usable size. */
static inline uint64_t *chunk_trailer(const struct chunk *c)
{
	void *user = (void *)chunk_user(c);
	return (uint64_t *)((unsigned char *)user + chunk_usable_size(user) - META_TRAILER_BYTES);
}

/* The placements other than header, out of line (meta.c): inlined, their
 * calls made every accessor's caller big enough that gcc stopped inlining
 * the indexes' own helpers into their header paths. */
CHUNK_HIDDEN uint64_t *chunk_site_word_other(struct chunk *c);
CHUNK_HIDDEN size_t chunk_size_other(const struct chunk *c);
CHUNK_HIDDEN void chunk_read_other(const struct chunk *c, size_t *size, uintptr_t *site);

/* The word whose low 48 bits are the site and high 16 the index's links. */
CHUNK_INLINE uint64_t *chunk_site_word_in(struct chunk *c, enum chunk_meta meta)
{
	if (meta == META_HEADER)
		return &c->site_links;
	if (meta == META_TRAILER) /* a constant: a body compiled for trailer */
		return chunk_trailer(c);
	return chunk_site_word_other(c);
}

CHUNK_INLINE size_t chunk_size_in(const struct chunk *c, enum chunk_meta meta)
{
	/* size_pad with relaxed atomic loads (a plain move): a lookup on
	 * another thread may set the cached mark in it meanwhile
	 * (chunk_mark_cached), and ThreadSanitizer must not take that for a
	 * race. */
	if (meta == META_HEADER)
		return (size_t)(__atomic_load_n(&c->size_pad, __ATOMIC_RELAXED) & CHUNK_FIELD_MASK);
	if (meta == META_TRAILER)
		return chunk_usable_size((void *)chunk_user(c)) - META_TRAILER_BYTES;
	return chunk_size_other(c);
}

static inline uint64_t *chunk_site_word(struct chunk *c)
{
	return chunk_likely_header() ? &c->site_links : chunk_site_word_other(c);
}

static inline size_t chunk_size(const struct chunk *c)
{
	return chunk_likely_header() ? chunk_size_in(c, META_HEADER) : chunk_size_other(c);
}

/* Size and site with one test of the placement.  Side's two loads inline
 * (an index with records reads them once per insert: the out-of-line call
 * cost 19 instructions per malloc+free pair, make hook-cost); trailer's
 * call of malloc_usable_size stays out of line. */
static inline void chunk_read(const struct chunk *c, size_t *size, uintptr_t *site)
{
	if (chunk_likely_header()) {
		*size = (size_t)(__atomic_load_n(&c->size_pad, __ATOMIC_RELAXED) & CHUNK_FIELD_MASK);
		*site = (uintptr_t)(c->site_links & CHUNK_FIELD_MASK);
	} else if (chunk_meta == META_SIDE) {
		*size = chunk_pending.size;
		*site = (uintptr_t)chunk_pending.site_word; /* masked by chunk_init */
	} else {
		chunk_read_other(c, size, site);
	}
}

/* The pad code without the cached mark (header placement only: under the
 * others there is no header to read). */
static inline unsigned chunk_pad_code(const struct chunk *c)
{
	return (unsigned)(__atomic_load_n(&c->size_pad, __ATOMIC_RELAXED) >> CHUNK_FIELD_BITS) &
	       ~PAD_CACHED_FLAG;
}

/* Bytes from the allocator's chunk to the user pointer: only header has any. */
static inline size_t chunk_pad(const struct chunk *c)
{
	if (chunk_likely_header())
		return pad_decode(chunk_pad_code(c));
	return 0;
}

/* The cached mark: set by a lookup that reads the header while the index
 * keeps the chunk from being freed (chunk_info_copy), tested by its remover
 * after the index let go of it.  Atomic: lookups on several threads may set
 * it at once.  Tested first: a chunk looked up again is marked already. */
static inline void chunk_mark_cached(const struct chunk *c)
{
	if (!chunk_likely_header())
		return; /* no header to mark: the lookup cache is header's (config.c) */
	uint64_t *word = &((struct chunk *)(uintptr_t)c)->size_pad;
	if (!(__atomic_load_n(word, __ATOMIC_RELAXED) & CHUNK_CACHED_BIT))
		__atomic_fetch_or(word, CHUNK_CACHED_BIT, __ATOMIC_RELAXED);
}

static inline int chunk_may_be_cached(const struct chunk *c)
{
	if (!chunk_likely_header())
		return 0;
	return (__atomic_load_n(&c->size_pad, __ATOMIC_RELAXED) & CHUNK_CACHED_BIT) != 0;
}

static inline uintptr_t chunk_site(const struct chunk *c)
{
	return (uintptr_t)(*chunk_site_word((struct chunk *)c) & CHUNK_FIELD_MASK);
}

static inline unsigned chunk_links(const struct chunk *c)
{
	return (unsigned)(*chunk_site_word((struct chunk *)c) >> CHUNK_FIELD_BITS);
}

static inline void chunk_set_links(struct chunk *c, unsigned links)
{
	uint64_t *w = chunk_site_word(c);
	*w = (*w & CHUNK_FIELD_MASK) | ((uint64_t)(links & 0xffffu) << CHUNK_FIELD_BITS);
}

/* The metadata of a new chunk: pad (header only) and size; the site with
 * the index bits 0.  Under trailer the usable size must already hold the
 * trailer; under side it becomes this thread's pending record. */
static inline void chunk_init(struct chunk *c, size_t size, size_t pad,
                              uintptr_t site)
{
	uint64_t word = (uint64_t)site & CHUNK_FIELD_MASK;
	if (chunk_likely_header()) {
		c->size_pad = (uint64_t)size | ((uint64_t)pad_encode(pad) << CHUNK_FIELD_BITS);
		c->site_links = word;
	} else if (chunk_meta == META_TRAILER) {
		*chunk_trailer(c) = word;
	} else {
		chunk_pending.size = size;
		chunk_pending.site_word = word;
	}
}

/* Under side, before the remove of the chunk at c: what remove (and after
 * it verify) reads.  An index that tells its chunks (tells 1: records, or
 * the memtable's start masks; index.h) answers with its record's size and
 * site, or 0 and 0 without records (chunk_side_removed), or leaves
 * CHUNK_SIZE_NONE: then c is no chunk of ours.  One that cannot tell
 * (noop) keeps nothing: size and site 0.  The statistics count no bytes
 * for the chunks of an index without records (hooks.c, the side fast
 * path). */
static inline void chunk_side_before_remove(struct chunk *c, int tells)
{
	if (tells) {
		chunk_pending.size = CHUNK_SIZE_NONE; /* the site is read only if replaced */
	} else {
		chunk_init(c, 0, 0, 0);
	}
}

/* An index with records, in its remove of a chunk it knows: the record's
 * size and site, for the hooks under side (nothing to do under the others,
 * where the chunk still holds them). */
static inline void chunk_side_removed(size_t size, uintptr_t site)
{
	if (chunk_meta == META_SIDE) {
		chunk_pending.size = size;
		chunk_pending.site_word = (uint64_t)site; /* < 2^48: as chunk_read gave it */
	}
}

/* An index that tells its chunks but keeps no records (index.h,
 * INDEX_SIDE_TELLS), in its remove of a chunk it had, under side: size 0
 * (no bytes counted); the site is left as it was, since it keeps none. */
static inline void chunk_side_told(void)
{
	chunk_pending.size = 0;
}

/* A lookup's guess at where the header of the chunk containing addr lies,
 * fetched before the index is consulted: most chunks are small, so it is
 * usually in the line of addr's own header-sized step below, or the line
 * below that (a chunk of up to ~80 bytes).  The header's cache miss then
 * overlaps the index's own instead of following it: at 10^5..10^6 live
 * chunks a third of a hit's time (workloads/scale/README.md).  Every index
 * whose lookup reads the header calls it first, so that the comparison
 * between them is of the indexes, not of who prefetches.  A prefetch is a
 * hint, not a read: it never faults or commits memory, whatever addr is,
 * and a chunk freed meanwhile is not read by it. */
static inline void chunk_prefetch_header_guess(uintptr_t addr)
{
	__builtin_prefetch((const void *)(addr - CHUNK_HEADER_BYTES));
	__builtin_prefetch((const void *)(addr - CHUNK_HEADER_BYTES - 64));
}

/* The size a lookup answers for c, which its index keeps from being freed
 * meanwhile (a bin lock, a tree lock, a hazard): the chunk's size, but
 * under side, where an index without records has none, the allocator's
 * usable size of it (its own malloc_usable_size, chunk_usable_size: the
 * user pointer is the allocator's under side).  At least what was asked
 * for; the bytes past that are the allocator's slack, which no other
 * chunk overlaps. */
static inline size_t chunk_held_size(const struct chunk *c)
{
	if (__builtin_expect(chunk_meta == META_SIDE, 0))
		return chunk_usable_size((void *)chunk_user(c));
	return chunk_size(c);
}

/* base <= addr < base + size: a zero-size chunk contains nothing. */
static inline int chunk_contains(const struct chunk *c, uintptr_t addr)
{
	return addr - chunk_user(c) < chunk_size(c);
}

#endif /* HEAPINDEX_CHUNK_H */
