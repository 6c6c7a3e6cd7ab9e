/* memtable.c - reserving the table and measuring what it costs. */
#include "memtable.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int memtable_init(struct memtable *t, unsigned addr_bits, unsigned shift,
                  size_t entry_size)
{
	if (shift >= addr_bits || addr_bits > 63 || entry_size == 0)
		return EINVAL;
	size_t bytes = memtable_reserved_bytes(addr_bits, shift, entry_size);
	/* MAP_NORESERVE: the kernel counts none of this against overcommit
	 * until a page is written; reads of untouched pages map the zero page. */
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return errno ? errno : ENOMEM;
	/* No transparent huge pages: one written entry would commit 2 MiB of
	 * table instead of 4 KiB.  The flag this sets also keeps the kernel from
	 * merging the table with a neighbouring anonymous mapping (jemalloc
	 * maps beside it), so smaps still shows the table alone. */
	madvise(p, bytes, MADV_NOHUGEPAGE);
	t->entries = p;
	t->entry_size = entry_size;
	t->addr_bits = addr_bits;
	t->shift = shift;
	t->limit = addr_bits >= 64 ? UINTPTR_MAX : (uintptr_t)1 << addr_bits;
	t->reserved_bytes = bytes;
	return 0;
}

void memtable_destroy(struct memtable *t)
{
	if (t->entries)
		munmap(t->entries, t->reserved_bytes);
	memset(t, 0, sizeof *t);
}

/* Scan smaps for the mapping that starts at the table and read its Rss line.
 * smaps is streamed through a small buffer: it can be long, and this runs in
 * exiting programs where malloc is off limits. */
size_t memtable_resident_bytes(const struct memtable *t)
{
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
