/* fuzz_trace.c - libFuzzer target for the trace reader of `heapindex replay`
 * (cli/replay.c: check_header, check_records).  A bad trace must give one
 * error line (exit 2 in the command), never a crash, a hang or a read past
 * the trace.
 *
 * replay.c is included whole so its static reader is reachable, and the
 * input is checked where libFuzzer holds it (ASan sees any read past its
 * end, which an mmap of a file would hide up to the page's end).
 * cli_usage_error, the command's one-line error exit (cli/common.c, not
 * linked), is replaced here by a longjmp back to the target.  The reader's
 * own allocations (its address map, the partner array) are tracked by the
 * macros below, so what an error leaves behind is freed after it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *held[16];

static void *hold(void *p)
{
	for (size_t i = 0; p && i < sizeof held / sizeof *held; i++)
		if (!held[i]) {
			held[i] = p;
			return p;
		}
	if (p)
		abort(); /* the reader holds more than a few blocks at once */
	return p;
}

static void release(void *p)
{
	for (size_t i = 0; p && i < sizeof held / sizeof *held; i++)
		if (held[i] == p)
			held[i] = NULL;
	free(p);
}

/* In replay.c only: the system headers are already in. */
#define malloc(n) hold(malloc(n))
#define calloc(n, s) hold(calloc(n, s))
#define free(p) release(p)
#include "../../cli/replay.c"
#undef malloc
#undef calloc
#undef free

static jmp_buf on_error;
static char error_line[4096];

void cli_usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(error_line, sizeof error_line, fmt, ap);
	va_end(ap);
	longjmp(on_error, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* load_header rejects shorter files before it maps them. */
	if (size < TRACE_HEADER_BYTES)
		return 0;
	static struct trace t;
	t = (struct trace){ .path = "fuzz.trace", .map = data, .map_len = size };
	if (!setjmp(on_error)) {
		check_header(&t);
		check_records(&t);
		/* Accepted: every remove has its insert before it. */
		for (uint64_t i = 0; i < t.count; i++)
			if (!trace_op_is_insert(trace_op(&t.rec[i])) &&
			    (t.partner[i] >= i || !trace_op_is_insert(trace_op(&t.rec[t.partner[i]]))))
				abort();
		if (t.inserts + t.removes != t.count || t.end_live > t.peak_live)
			abort();
	} else if (strchr(error_line, '\n') || !strstr(error_line, "replay: ")) {
		fprintf(stderr, "not one error line: %s\n", error_line);
		abort();
	}
	for (size_t i = 0; i < sizeof held / sizeof *held; i++)
		free(held[i]), held[i] = NULL;
	return 0;
}
