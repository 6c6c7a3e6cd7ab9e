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

/* The pad code without the cached mark. */
static inline unsigned chunk_pad_code(const struct chunk *c)
{
	return (unsigned)(__atomic_load_n(&c->size_pad, __ATOMIC_RELAXED) >> CHUNK_FIELD_BITS) &
	       ~PAD_CACHED_FLAG;
}

static inline size_t chunk_pad(const struct chunk *c)
{
	return pad_decode(chunk_pad_code(c));
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
