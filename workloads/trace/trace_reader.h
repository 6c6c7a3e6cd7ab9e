/* trace_reader.h - open a heap trace (trace_format.h) and check all of it.
 *
 * A reader of the format, apart from any command: `heapindex replay` uses it,
 * and tests/fuzz/fuzz_trace.c feeds it arbitrary bytes.  A bad trace is an
 * error returned -- one line of text and the byte offset it is about --
 * never an exit, so the caller decides what to print.
 *
 * After trace_check_records the trace is known good: every record has a
 * known op, a non-zero address and an alignment of 2^4..2^40, every remove
 * names a chunk live at that point with the size and alignment of its
 * insert, and partner[] links each remove to that insert.  Replay then needs
 * no address map, only arrays indexed by record number.
 */
#ifndef HEAPINDEX_TRACE_READER_H
#define HEAPINDEX_TRACE_READER_H

#include <stddef.h>
#include <stdint.h>

#include "trace_format.h"

struct trace {
	const char *path;
	const unsigned char *map; /* the whole file (or the caller's buffer) */
	size_t map_len;
	int mapped;               /* trace_open mapped map: trace_close unmaps it */
	struct trace_header h;    /* a copy of the header */
	const struct trace_record *rec;
	uint64_t count;           /* records */
	uint32_t *partner;        /* per remove: the record number of its insert;
	                           * per insert: UINT32_MAX */
	uint64_t inserts, removes, peak_live, end_live;
};

/* No byte offset: the file could not be read at all (open, map, memory). */
#define TRACE_NO_OFFSET UINT64_MAX

struct trace_error {
	uint64_t offset; /* of the bad bytes in the file, or TRACE_NO_OFFSET */
	char msg[1024];  /* one line, no newline, without the path when offset is set */
};

/* Open and map path and check its header: 0, or -1 with *e filled (t is
 * then closed).  t need not be initialised. */
int trace_open(struct trace *t, const char *path, struct trace_error *e);
/* Check the header of the map_len bytes at t->map (set by the caller, for a
 * buffer; trace_open does it for a file) against their length; sets h, count
 * and rec.  0, or -1 with *e filled. */
int trace_check_header(struct trace *t, struct trace_error *e);
/* Check every record (after trace_check_header) and link removes to their
 * inserts: 0, or -1 with *e filled.  Sets partner and the counts. */
int trace_check_records(struct trace *t, struct trace_error *e);
/* Free what the reader holds (partner; the map if trace_open made it). */
void trace_close(struct trace *t);

#endif /* HEAPINDEX_TRACE_READER_H */
