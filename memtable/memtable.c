/* memtable.c - reserving the table and measuring what it costs. */
#include "memtable.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

const unsigned char memtable_zero_entry[16];

/* An anonymous, lazily committed mapping, NULL if refused.  No transparent
 * huge pages: one written entry would commit 2 MiB of table instead of
 * 4 KiB.  The flag this sets also keeps the kernel from merging the table
 * with a neighbouring anonymous mapping (jemalloc maps beside it), so smaps
 * still shows the table alone. */
static void *reserve(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, bytes, MADV_NOHUGEPAGE);
	return p;
}

/* Leaves of 2^20 entries or more, and a directory of at most 2^20 of them
 * (8 MiB): a 47-bit space at shift 6 gets 2 MiB leaves, a 57-bit one 2 GiB. */
static unsigned leaf_bits_for(unsigned entry_bits)
{
	return entry_bits > 40 ? entry_bits - 20 : 20 < entry_bits ? 20 : entry_bits;
}

static size_t directory_bytes(const struct memtable *t)
{
	return ((size_t)1 << (t->addr_bits - t->shift - t->leaf_bits)) * sizeof *t->leaves;
}

static size_t leaf_bytes(const struct memtable *t)
{
	return ((size_t)1 << t->leaf_bits) * t->entry_size;
}

int memtable_init(struct memtable *t, unsigned addr_bits, unsigned shift,
                  size_t entry_size, enum memtable_layout layout)
{
	memset(t, 0, sizeof *t);
	if (shift >= addr_bits || addr_bits > 63 || entry_size == 0 ||
	    entry_size > sizeof memtable_zero_entry)
		return EINVAL;
	t->entry_size = entry_size;
	t->addr_bits = addr_bits;
	t->shift = shift;
	t->limit = (uintptr_t)1 << addr_bits;
	if (layout != MEMTABLE_TWO_LEVEL) {
		size_t bytes = memtable_reserved_bytes(addr_bits, shift, entry_size);
		t->entries = reserve(bytes);
		if (t->entries) {
			t->reserved_bytes = bytes;
			return 0;
		}
		if (layout == MEMTABLE_FLAT)
			return errno ? errno : ENOMEM;
	}
	t->leaf_bits = leaf_bits_for(addr_bits - shift);
	t->leaves = reserve(directory_bytes(t));
	if (!t->leaves)
		return errno ? errno : ENOMEM;
	t->reserved_bytes = directory_bytes(t);
	return 0;
}

void *memtable_entry_slow_write(struct memtable *t, size_t bin)
{
	unsigned char *leaf = reserve(leaf_bytes(t));
	if (!leaf)
		return NULL;
	t->leaves[bin >> t->leaf_bits] = leaf;
	t->leaves_mapped++;
	t->reserved_bytes += leaf_bytes(t);
	return leaf + (bin & (((size_t)1 << t->leaf_bits) - 1)) * t->entry_size;
}

void memtable_destroy(struct memtable *t)
{
	if (t->entries)
		munmap(t->entries, t->reserved_bytes);
	if (t->leaves) {
		size_t n = directory_bytes(t) / sizeof *t->leaves;
		for (size_t i = 0; i < n && t->leaves_mapped; i++)
			if (t->leaves[i]) {
				munmap(t->leaves[i], leaf_bytes(t));
				t->leaves_mapped--;
			}
		munmap(t->leaves, directory_bytes(t));
	}
	memset(t, 0, sizeof *t);
}

/* Highest non-zero byte of e[lo, hi), as an index into e, or SIZE_MAX. */
static size_t last_nonzero_in(const unsigned char *e, size_t lo, size_t hi)
{
	size_t i = hi;
	while (i > lo && (i & 7)) {
		if (e[--i])
			return i;
	}
	while (i >= lo + 8) {
		uint64_t word;
		memcpy(&word, e + i - 8, 8);
		if (word) /* little-endian: the highest non-zero byte is the last entry */
			return i - 8 + (size_t)(63 - __builtin_clzll(word)) / 8;
		i -= 8;
	}
	while (i > lo) {
		if (e[--i])
			return i;
	}
	return SIZE_MAX;
}

size_t memtable_last_nonzero_byte(const struct memtable *t, size_t from, size_t lowest)
{
	if (t->entries)
		return last_nonzero_in(t->entries, lowest, from);
	/* Leaf by leaf, from the one holding from - 1 down; absent ones are zero. */
	size_t per_leaf = (size_t)1 << t->leaf_bits;
	while (from > lowest) {
		size_t leaf_start = (from - 1) & ~(per_leaf - 1);
		size_t lo = leaf_start > lowest ? leaf_start : lowest;
		const unsigned char *leaf = t->leaves[leaf_start >> t->leaf_bits];
		if (leaf) {
			size_t found = last_nonzero_in(leaf, lo - leaf_start, from - leaf_start);
			if (found != SIZE_MAX)
				return leaf_start + found;
		}
		from = lo;
	}
	return SIZE_MAX;
}

/* Resident bytes of [p, p + bytes), by mincore in bounded steps. */
static size_t resident_of(const void *p, size_t bytes)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), total = 0;
	unsigned char vec[4096];
	for (size_t off = 0; off < bytes; off += page * sizeof vec) {
		size_t len = bytes - off < page * sizeof vec ? bytes - off : page * sizeof vec;
		if (mincore((char *)p + off, len, vec))
			return total;
		for (size_t i = 0; i < (len + page - 1) / page; i++)
			total += (vec[i] & 1) * page;
	}
	return total;
}

static size_t two_level_resident_bytes(const struct memtable *t)
{
	size_t total = resident_of(t->leaves, directory_bytes(t));
	size_t n = directory_bytes(t) / sizeof *t->leaves, seen = 0;
	for (size_t i = 0; i < n && seen < t->leaves_mapped; i++)
		if (t->leaves[i]) {
			total += resident_of(t->leaves[i], leaf_bytes(t));
			seen++;
		}
	return total;
}

/* Scan smaps for the mapping that starts at the table and read its Rss line.
 * smaps is streamed through a small buffer: it can be long, and this runs in
 * exiting programs where malloc is off limits. */
size_t memtable_resident_bytes(const struct memtable *t)
{
	if (!t->entries)
		return two_level_resident_bytes(t);
	int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	char buf[4096], line[256];
	size_t line_len = 0, result = 0;
	int in_table = 0, done = 0;
	ssize_t n;
	while (!done && (n = read(fd, buf, sizeof buf)) > 0) {
		for (ssize_t i = 0; i < n && !done; i++) {
			if (buf[i] != '\n') {
				if (line_len < sizeof line - 1)
					line[line_len++] = buf[i];
				continue;
			}
			line[line_len] = '\0';
			line_len = 0;
			char *end;
			unsigned long start = strtoul(line, &end, 16);
			if (*end == '-') /* a mapping's first line: "start-end perms ..." */
				in_table = start == (unsigned long)t->entries;
			else if (in_table && strncmp(line, "Rss:", 4) == 0) {
				result = strtoul(line + 4, NULL, 10) * 1024;
				done = 1;
			}
		}
	}
	close(fd);
	return result;
}
