/* chunk.h - the header the hooks put in front of every chunk they hand out.
 *
 * One allocation made through the hooks, addresses growing to the right:
 *
 *     real base                                  user pointer (what the program sees)
 *     v                                          v
 *     [ alignment slack ][ index links ][ chunk ][ size bytes the program asked for ... ]
 *                                       ^ user - 16
 *
 * Why a header and not liballocs' trailer: a trailer sits at the end of the
 * usable size, so each step of a bin walk had to ask the allocator
 * (malloc_usable_size) where the trailer was.  A header sits at a fixed offset
 * from the user pointer, so a walk reads it directly.  Headers were impractical
 * for liballocs because a header moves the pointer the program sees and so
 * every allocator entry point must be wrapped; the hooks wrap all of them.
 *
 * Invariants:
 *  - the user pointer is 16-byte aligned (alignof(max_align_t)), so the whole
 *    header, links included, is a multiple of 16 bytes;
 *  - size < 2^48 and site < 2^48: user-space addresses and sizes on x86-64
 *    and AArch64 fit in 48 bits, which frees 16 bits in each word;
 *  - the 16 high bits of site_links belong to the index (the memtable keeps
 *    its list links there); the hooks never touch them after chunk_init.
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

/* The pad is the distance from the real allocator chunk to the user pointer.
 * It is a multiple of 16, stored in 16-byte units while that fits in 15 bits
 * (pad < 512 KiB); larger pads only come from large alignments, where the pad
 * equals the alignment, a power of two, so its log2 is stored instead. */
#define PAD_LOG2_FLAG 0x8000u
/* Bit 14 of the pad code is no part of the pad: it marks a chunk whose
 * answer a lookup cache may hold (lookup_cache.h), so that its free, which
 * must then invalidate the caches, leaves the fast path (the fast path
 * compares the whole pad code).  Direct codes stay below it (pads under
 * 256 KiB; larger ones are alignments, stored as log2), log2 codes are
 * below 64 besides their flag. */
#define PAD_CACHED_FLAG 0x4000u
#define CHUNK_CACHED_BIT ((uint64_t)PAD_CACHED_FLAG << CHUNK_FIELD_BITS)

static inline unsigned pad_encode(size_t pad)
{
	if (pad / 16 < PAD_CACHED_FLAG)
		return (unsigned)(pad / 16);
	return PAD_LOG2_FLAG | (unsigned)__builtin_ctzll(pad);
}

static inline size_t pad_decode(unsigned code)
{
	if (code & PAD_LOG2_FLAG)
		return (size_t)1 << (code & 63);
	return (size_t)code * 16;
}

static inline struct chunk *chunk_of_user(const void *user)
{
	return (struct chunk *)((uintptr_t)user - CHUNK_HEADER_BYTES);
}

static inline uintptr_t chunk_user(const struct chunk *c)
{
	return (uintptr_t)c + CHUNK_HEADER_BYTES;
}

/* size_pad is read with relaxed atomic loads (a plain move, as before): a
 * lookup on another thread may set the cached mark in it meanwhile
 * (chunk_mark_cached), and ThreadSanitizer must not take that for a race. */
static inline size_t chunk_size(const struct chunk *c)
{
	return (size_t)(__atomic_load_n(&c->size_pad, __ATOMIC_RELAXED) & CHUNK_FIELD_MASK);
}

static inline size_t chunk_pad(const struct chunk *c)
{
	uint64_t word = __atomic_load_n(&c->size_pad, __ATOMIC_RELAXED);
	return pad_decode((unsigned)(word >> CHUNK_FIELD_BITS) & ~PAD_CACHED_FLAG);
}

/* The cached mark: set by a lookup that reads the header while the index
 * keeps the chunk from being freed (chunk_info_copy), tested by its remover
 * after the index let go of it.  Atomic: lookups on several threads may set
 * it at once.  Tested first: a chunk looked up again is marked already. */
static inline void chunk_mark_cached(const struct chunk *c)
{
	uint64_t *word = &((struct chunk *)(uintptr_t)c)->size_pad;
	if (!(__atomic_load_n(word, __ATOMIC_RELAXED) & CHUNK_CACHED_BIT))
		__atomic_fetch_or(word, CHUNK_CACHED_BIT, __ATOMIC_RELAXED);
}

static inline int chunk_may_be_cached(const struct chunk *c)
{
	return (__atomic_load_n(&c->size_pad, __ATOMIC_RELAXED) & CHUNK_CACHED_BIT) != 0;
}

static inline uintptr_t chunk_site(const struct chunk *c)
{
	return (uintptr_t)(c->site_links & CHUNK_FIELD_MASK);
}

static inline unsigned chunk_links(const struct chunk *c)
{
	return (unsigned)(c->site_links >> CHUNK_FIELD_BITS);
}

static inline void chunk_set_links(struct chunk *c, unsigned links)
{
	c->site_links = (c->site_links & CHUNK_FIELD_MASK) |
	                ((uint64_t)(links & 0xffffu) << CHUNK_FIELD_BITS);
}

static inline void chunk_init(struct chunk *c, size_t size, size_t pad,
                              uintptr_t site)
{
	c->size_pad = (uint64_t)size | ((uint64_t)pad_encode(pad) << CHUNK_FIELD_BITS);
	c->site_links = (uint64_t)site & CHUNK_FIELD_MASK;
}

/* base <= addr < base + size: a zero-size chunk contains nothing. */
static inline int chunk_contains(const struct chunk *c, uintptr_t addr)
{
	return addr - chunk_user(c) < chunk_size(c);
}

#endif /* HEAPINDEX_CHUNK_H */
