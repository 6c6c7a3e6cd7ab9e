/* fuzz_trace.c - libFuzzer target for the trace reader of `heapindex replay`
 * (workloads/trace/trace_reader.h).  A bad trace must be one error -- a line
 * of text and a byte offset within the input -- never a crash, a hang, a
 * read past the trace or a leak.
 *
 * The input is checked where libFuzzer holds it (ASan sees any read past its
 * end, which an mmap of a file would hide up to the page's end). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../workloads/trace/trace_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trace t = { .path = "fuzz.trace", .map = data, .map_len = size };
	struct trace_error e;
	if (trace_check_header(&t, &e) == 0 && trace_check_records(&t, &e) == 0) {
		/* Accepted: every remove has its insert before it. */
		for (uint64_t i = 0; i < t.count; i++)
			if (!trace_op_is_insert(trace_op(&t.rec[i])) &&
			    (t.partner[i] >= i || !trace_op_is_insert(trace_op(&t.rec[t.partner[i]]))))
				abort();
		if (t.inserts + t.removes != t.count || t.end_live > t.peak_live)
			abort();
	} else if (!e.msg[0] || strchr(e.msg, '\n') || (e.offset != TRACE_NO_OFFSET && e.offset > size)) {
		fprintf(stderr, "not one error line within the input: %s (byte offset %llu)\n", e.msg,
		        (unsigned long long)e.offset);
		abort();
	}
	trace_close(&t);
	return 0;
}
