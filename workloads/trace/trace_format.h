/* trace_format.h - the heap trace file: one process's allocation events.
 *
 * Written by the recording library (record_index.c, preloaded by
 * `heapindex record`), read by `heapindex replay` and the tests.  The full
 * description, with the reasons, is in workloads/trace/README.md.
 *
 * A file is a 128-byte header followed by fixed-size 32-byte records, all
 * little-endian.  The header's record_count is the truth: the recorder bumps
 * it after every record it writes, straight into a shared file mapping, so a
 * process that exits without running destructors (_exit, exec, a signal)
 * still leaves a consistent trace.  Bytes after the last counted record may
 * exist (the recorder grows the file in steps) and are zero.
 */
#ifndef HEAPINDEX_TRACE_FORMAT_H
#define HEAPINDEX_TRACE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the trace format is little-endian and heapindex writes it with native stores"
#endif

#define TRACE_MAGIC "HITRACE1" /* 8 bytes, no NUL */
#define TRACE_VERSION 1u
#define TRACE_HEADER_BYTES 128u
#define TRACE_RECORD_BYTES 32u

/* header flags */
#define TRACE_FLAG_FINISHED 1u /* the process ran its exit destructors       */
#define TRACE_FLAG_FORKED 2u   /* a fork child: starts with OP_INHERITED records */
#define TRACE_FLAG_FAILED 4u   /* the recorder hit an I/O error and stopped    */

struct trace_header {
	char magic[8];          /*   0: "HITRACE1"                                   */
	uint32_t version;       /*   8: TRACE_VERSION                                */
	uint32_t header_bytes;  /*  12: 128: the first record's offset              */
	uint32_t record_bytes;  /*  16: 32                                           */
	uint32_t pointer_bytes; /*  20: 8                                            */
	uint32_t flags;         /*  24: TRACE_FLAG_*                                 */
	uint32_t pid;           /*  28: the recorded process                        */
	uint32_t ppid;          /*  32: its parent (for a fork child: whose heap it inherited) */
	uint32_t reserved0;     /*  36: 0                                            */
	uint64_t record_count;  /*  40: records that follow the header              */
	uint64_t start_unix_ns; /*  48: CLOCK_REALTIME when recording started        */
	char exe[64];           /*  56: basename of /proc/self/exe, NUL-padded       */
	uint8_t reserved1[8];   /* 120: 0                                            */
};

/* One event.  A chunk is named by its user pointer (what malloc returned). */
struct trace_record {
	uint64_t addr;    /*  0: the chunk's user pointer                          */
	uint64_t size_op; /*  8: bits 0-47 size; 48-55 op; 56-63 log2(alignment)    */
	uint64_t site;    /* 16: bits 0-47 allocation site (return address); 48-63 0 */
	uint32_t tid;     /* 24: gettid() of the thread                             */
	uint32_t reserved;/* 28: 0                                                   */
};

_Static_assert(sizeof(struct trace_header) == TRACE_HEADER_BYTES, "trace header layout");
_Static_assert(sizeof(struct trace_record) == TRACE_RECORD_BYTES, "trace record layout");

#define TRACE_SIZE_BITS 48
#define TRACE_SIZE_MASK ((UINT64_C(1) << TRACE_SIZE_BITS) - 1)

/* Ops 1-31 put a chunk in the heap (replay: allocate and insert), ops 32-63
 * take one out (replay: remove and free).  Which entry point made the event
 * is inferred by the recorder (see README.md); size, address and alignment
 * are always exact. */
#define TRACE_OPS(X)                                                            \
	X(MALLOC, 1, "malloc")                                                  \
	X(CALLOC, 2, "calloc")                                                  \
	X(REALLOC, 3, "realloc")             /* the new chunk of a realloc */   \
	X(REALLOCARRAY, 4, "reallocarray")                                      \
	X(MEMALIGN, 5, "memalign")                                              \
	X(POSIX_MEMALIGN, 6, "posix_memalign")                                  \
	X(ALIGNED_ALLOC, 7, "aligned_alloc")                                    \
	X(VALLOC, 8, "valloc")                                                  \
	X(PVALLOC, 9, "pvalloc")                                                \
	X(INHERITED, 10, "inherited")        /* live when this fork child began */ \
	X(REINSERT, 11, "reinsert")          /* a failed realloc kept its chunk */ \
	X(FREE, 32, "free")                                                     \
	X(REALLOC_OLD, 33, "realloc-old")    /* the old chunk of a realloc */   \
	X(REALLOC_FREE, 34, "realloc-free")  /* realloc(p, 0) freed p */

enum trace_op {
#define TRACE_OP_ENUM(name, value, text) TRACE_OP_##name = value,
	TRACE_OPS(TRACE_OP_ENUM)
#undef TRACE_OP_ENUM
};

#define TRACE_OP_FIRST_REMOVE 32u

static inline int trace_op_is_insert(unsigned op) { return op >= 1 && op < TRACE_OP_FIRST_REMOVE; }

/* The name of op, or NULL if op is not one of TRACE_OPS. */
static inline const char *trace_op_name(unsigned op)
{
	switch (op) {
#define TRACE_OP_CASE(name, value, text) case value: return text;
	TRACE_OPS(TRACE_OP_CASE)
#undef TRACE_OP_CASE
	default: return NULL;
	}
}

static inline uint64_t trace_pack_size_op(uint64_t size, unsigned op, unsigned align_log2)
{
	return (size & TRACE_SIZE_MASK) | (uint64_t)(op & 0xff) << 48 |
	       (uint64_t)(align_log2 & 0xff) << 56;
}

static inline uint64_t trace_size(const struct trace_record *r) { return r->size_op & TRACE_SIZE_MASK; }
static inline unsigned trace_op(const struct trace_record *r) { return (unsigned)(r->size_op >> 48) & 0xff; }
static inline unsigned trace_align_log2(const struct trace_record *r) { return (unsigned)(r->size_op >> 56); }

#endif /* HEAPINDEX_TRACE_FORMAT_H */
