/* trace_reader.c - see trace_reader.h. */
#include "trace_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ptr_set.h"

static __attribute__((format(printf, 3, 4))) int fail(struct trace_error *e, uint64_t offset,
                                                      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	e->offset = offset;
	return -1;
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

int trace_open(struct trace *t, const char *path, struct trace_error *e)
{
	*t = (struct trace){ .path = path };
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(e, TRACE_NO_OFFSET, "cannot open %s: %s", path, strerror(errno));
	struct stat st;
	int bad = 0;
	if (fstat(fd, &st)) {
		bad = fail(e, TRACE_NO_OFFSET, "cannot stat %s: %s", path, strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		bad = fail(e, TRACE_NO_OFFSET, "%s is not a regular file", path);
	} else {
		t->map_len = (size_t)st.st_size;
		/* (A file shorter than a header is not mapped: the header check
		 * rejects it by its length.) */
		void *map = t->map_len < TRACE_HEADER_BYTES ? NULL
		            : mmap(NULL, t->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED)
			bad = fail(e, TRACE_NO_OFFSET, "cannot map %s: %s", path, strerror(errno));
		else
			t->map = map, t->mapped = map != NULL;
	}
	close(fd);
	if (bad || trace_check_header(t, e)) {
		trace_close(t);
		return -1;
	}
	return 0;
}

int trace_check_header(struct trace *t, struct trace_error *e)
{
	/* (No map: trace_open maps no file shorter than a header.) */
	if (t->map_len < TRACE_HEADER_BYTES || !t->map)
		return fail(e, t->map_len, "truncated header: the file has %zu bytes, a trace header has %u",
		            t->map_len, TRACE_HEADER_BYTES);
	memcpy(&t->h, t->map, sizeof t->h);
	const struct trace_header *h = &t->h;
	if (memcmp(h->magic, TRACE_MAGIC, 8) != 0) {
		char text[9];
		magic_text(h->magic, text);
		return fail(e, 0, "bad magic \"%s\": not a heapindex trace (expected \"%s\")", text,
		            TRACE_MAGIC);
	}
	if (h->version != TRACE_VERSION)
		return fail(e, offsetof(struct trace_header, version),
		            "unsupported trace version %u: this heapindex reads version %u", h->version,
		            TRACE_VERSION);
	if (h->header_bytes != TRACE_HEADER_BYTES)
		return fail(e, offsetof(struct trace_header, header_bytes),
		            "bad header size %u: version %u headers are %u bytes", h->header_bytes,
		            TRACE_VERSION, TRACE_HEADER_BYTES);
	if (h->record_bytes != TRACE_RECORD_BYTES)
		return fail(e, offsetof(struct trace_header, record_bytes),
		            "bad record size %u: version %u records are %u bytes", h->record_bytes,
		            TRACE_VERSION, TRACE_RECORD_BYTES);
	if (h->pointer_bytes != sizeof(void *))
		return fail(e, offsetof(struct trace_header, pointer_bytes),
		            "recorded with %u-byte pointers, this machine has %zu", h->pointer_bytes,
		            sizeof(void *));
	uint32_t known = TRACE_FLAG_FINISHED | TRACE_FLAG_FORKED | TRACE_FLAG_FAILED;
	if (h->flags & ~known)
		return fail(e, offsetof(struct trace_header, flags), "unknown header flags 0x%x",
		            h->flags & ~known);

	uint64_t data = t->map_len - TRACE_HEADER_BYTES;
	uint64_t have = data / TRACE_RECORD_BYTES;
	t->count = h->record_count;
	if (t->count > have) {
		if (data % TRACE_RECORD_BYTES)
			return fail(e, record_offset(have),
			            "truncated record %" PRIu64 ": the file ends %" PRIu64
			            " bytes into it (the header says %" PRIu64 " records)",
			            have, data % TRACE_RECORD_BYTES, t->count);
		return fail(e, t->map_len,
		            "record count mismatch: the header says %" PRIu64
		            " records but the file ends after %" PRIu64, t->count, have);
	}
	/* After the counted records the recorder leaves only zeros. */
	for (uint64_t at = record_offset(t->count); at < t->map_len; at++)
		if (t->map[at])
			return fail(e, at,
			            "record count mismatch: the header says %" PRIu64
			            " records but data follows them", t->count);
	if (t->count >= UINT32_MAX)
		return fail(e, offsetof(struct trace_header, record_count),
		            "%" PRIu64 " records: replay handles fewer than 2^32", t->count);
	t->rec = (const struct trace_record *)(t->map + TRACE_HEADER_BYTES);
	return 0;
}

/* Record i is good, given the chunks live before it (recorded address ->
 * record number of its insert); it joins or leaves them. */
static int check_record(struct trace *t, uint64_t i, struct ptr_set *live, struct trace_error *e)
{
	const struct trace_record *r = &t->rec[i];
	uint64_t off = record_offset(i);
	unsigned op = trace_op(r);
	const char *name = trace_op_name(op);
	if (!name)
		return fail(e, off + 14, "record %" PRIu64 ": unknown op %u", i, op);
	if (!r->addr)
		return fail(e, off, "record %" PRIu64 " (%s): address 0", i, name);
	if (r->site >> TRACE_SIZE_BITS || r->reserved)
		return fail(e, off + 16, "record %" PRIu64 " (%s): reserved bits are set", i, name);
	unsigned align = trace_align_log2(r);
	if (align < 4 || align > 40)
		return fail(e, off + 15,
		            "record %" PRIu64 " (%s): bad alignment 2^%u (expected 2^4..2^40)", i, name,
		            align);
	uintptr_t ins_id;
	int known = ptr_set_get(live, (uintptr_t)r->addr, &ins_id);
	if (trace_op_is_insert(op)) {
		if (known)
			return fail(e, off,
			            "record %" PRIu64 " (%s): the chunk at 0x%" PRIx64
			            " is inserted again while live (inserted by record %u)",
			            i, name, r->addr, (unsigned)ins_id);
		if (ptr_set_add(live, (uintptr_t)r->addr, (uintptr_t)i) < 0)
			return fail(e, TRACE_NO_OFFSET, "out of memory for the address map");
		t->partner[i] = UINT32_MAX;
		t->inserts++;
		if (live->count > t->peak_live)
			t->peak_live = live->count;
		return 0;
	}
	if (!known)
		return fail(e, off,
		            "record %" PRIu64 " (%s): free of unknown address 0x%" PRIx64
		            ": no live chunk starts there", i, name, r->addr);
	const struct trace_record *ins = &t->rec[ins_id];
	if (trace_size(ins) != trace_size(r) || trace_align_log2(ins) != align)
		return fail(e, off + 8,
		            "record %" PRIu64 " (%s): the chunk at 0x%" PRIx64 " has size %" PRIu64
		            " and alignment 2^%u here but %" PRIu64 " and 2^%u at its insert (record %u)",
		            i, name, r->addr, trace_size(r), align, trace_size(ins),
		            trace_align_log2(ins), (unsigned)ins_id);
	t->partner[i] = (uint32_t)ins_id;
	ptr_set_remove(live, (uintptr_t)r->addr, NULL);
	t->removes++;
	return 0;
}

int trace_check_records(struct trace *t, struct trace_error *e)
{
	t->partner = malloc((t->count ? t->count : 1) * sizeof *t->partner);
	if (!t->partner)
		return fail(e, TRACE_NO_OFFSET, "out of memory for %" PRIu64 " records", t->count);
	struct ptr_set live;
	ptr_set_init(&live, 16, 1);
	int bad = 0;
	for (uint64_t i = 0; i < t->count && !bad; i++)
		bad = check_record(t, i, &live, e);
	t->end_live = live.count;
	ptr_set_free(&live);
	return bad;
}

void trace_close(struct trace *t)
{
	free(t->partner);
	t->partner = NULL;
	if (t->mapped)
		munmap((void *)t->map, t->map_len);
	t->mapped = 0;
}
