/* record_index.c - an "index" that records: every insert and remove the
 * shared hooks make becomes one record of a heap trace (trace_format.h).
 *
 * Built only into build/lib/libheapindex-record.so, with the same hooks.c as
 * every benchmark index, so a trace holds exactly the chunk events an index
 * sees: realloc is a remove then an insert.  `heapindex record` preloads it;
 * `heapindex replay` plays the trace back against the real indexes.
 *
 * Rules of the index contract it keeps: it asks the hooks for serial calls
 * (index_wants_serial_hooks: one trace, in one order, so every insert and
 * remove runs under the hooks' lock), never calls malloc (file names are formatted by hand, memory is mmap), and its
 * lookup answers nothing (it keeps no interval structure, only a set of
 * live chunk starts for fork children, below).
 *
 * The file is written through a MAP_SHARED window that slides along it; the
 * header (its own mapping) counts the records, bumped after each one.  So the
 * kernel has a consistent trace whenever the process stops: exit, _exit,
 * exec, even SIGKILL.  The file grows in WINDOW_BYTES steps (preallocated
 * with posix_fallocate, so a full disk is an error here, not a SIGBUS later);
 * the exit destructor trims it and `heapindex record` trims what a process
 * that never ran destructors left.
 *
 * Processes:
 *  - HEAPINDEX_TRACE=PATH names the trace.  The process whose pid is
 *    HEAPINDEX_TRACE_PID (or, without that variable, the first to create it)
 *    writes PATH; every other process of the tree writes PATH.<pid>, or
 *    PATH.<pid>.<n> if a file of that name exists (a process image that
 *    replaced an earlier one by exec).  HEAPINDEX_TRACE_CHILDREN=0 records the
 *    top process only.
 *  - A child of fork (without exec) inherits its parent's heap, so its trace
 *    would free chunks it never saw allocated.  The recorder keeps a hash set
 *    of live chunks; a fork child's trace (flag FORKED) starts with one
 *    INHERITED record per chunk live at the fork.  Lazily: the child's file
 *    is made at its first heap event, so a fork child that only execs (the
 *    usual shell pattern) leaves no file.
 *
 * Which entry point made an event is not part of the index contract; it is
 * inferred from the hooks' per-entry call counters of serial mode
 * (hooks_serial_calls), which the hooks bump just before they call the
 * index (see README.md for the
 * rare cases where the label can be wrong; the address, size, alignment and
 * site are always exact).
 */
#include "hooks.h"
#include "index.h"
#include "ptr_set.h"
#include "trace_format.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

INDEX_DECLARE(record)

#define WINDOW_BYTES ((uint64_t)4 << 20)       /* mapped and preallocated per step */
#define TAIL_WINDOW_BYTES ((uint64_t)64 << 10) /* the step after the exit destructor */
#define PATH_BYTES 4096

static struct {
	int enabled;       /* this process records                                */
	int fork_pending;  /* a fork child that has not opened its own trace yet  */
	int finished;      /* the exit destructor ran                             */
	int children;      /* record processes other than the top one            */
	int fd;
	dev_t dev;         /* the trace file's identity: a program that closes */
	ino_t ino;         /* every descriptor must not get us writing its files */
	uint32_t pid, top_pid;
	uint64_t page;
	struct trace_header *hdr;  /* the first page of the file, mapped         */
	unsigned char *win;        /* the file's bytes [win_off, win_off+win_len) */
	uint64_t win_off, win_len, win_end; /* win_end: writable up to here       */
	uint64_t file_len, pos;    /* the file's size; the next record's offset   */
	uint64_t snap[ENTRY_COUNT]; /* the hooks' call counters at the last event */
	char base[PATH_BYTES];     /* HEAPINDEX_TRACE                             */
	char path[PATH_BYTES + 48]; /* this process's file                        */
} rec = { .fd = -1 };

/* Per thread: the tid, and the offset of this thread's last record if it was
 * a remove labelled free (see label_realloc_pair).  Reset in a fork child. */
static __thread uint32_t cached_tid;
static __thread uint64_t last_free_pos;
static __thread uint64_t last_free_word;

/* --- live chunk starts (struct chunk pointers), for a fork child's INHERITED records */

static struct ptr_set live;

/* --- small helpers that never allocate ---------------------------------------- */

/* One line on stderr: "heapindex: record: " and the parts (NULL ends them). */
static void say(const char *const *parts)
{
	static const char prefix[] = "heapindex: record: ";
	if (write(STDERR_FILENO, prefix, sizeof prefix - 1) < 0)
		return;
	for (; *parts; parts++)
		if (write(STDERR_FILENO, *parts, strlen(*parts)) < 0)
			return;
	if (write(STDERR_FILENO, "\n", 1) < 0)
		return;
}

static char *append(char *at, const char *end, const char *s)
{
	while (*s && at < end - 1)
		*at++ = *s++;
	*at = '\0';
	return at;
}

static char *append_u64(char *at, const char *end, uint64_t v)
{
	char digits[24];
	int n = 0;
	do
		digits[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n && at < end - 1)
		*at++ = digits[--n];
	*at = '\0';
	return at;
}

static uint64_t parse_u64(const char *s, int *ok)
{
	uint64_t v = 0;
	*ok = s && *s;
	for (; *ok && *s; s++) {
		if (*s < '0' || *s > '9' || v > UINT64_MAX / 10 - 1)
			*ok = 0;
		else
			v = v * 10 + (uint64_t)(*s - '0');
	}
	return v;
}

static uint32_t tid(void)
{
	if (__builtin_expect(!cached_tid, 0))
		cached_tid = (uint32_t)gettid();
	return cached_tid;
}

/* Stop recording for good, saying why once; the header says FAILED.
 * strerror may translate (and so allocate) under our lock: use the name. */
static void record_fail(const char *what)
{
	const char *reason = strerrorname_np(errno);
	if (!reason)
		reason = "unknown errno";
	const char *parts[] = { rec.path, ": ", what, " (", reason,
		                "); the trace stops here and is marked failed", NULL };
	say(parts);
	if (rec.hdr)
		rec.hdr->flags |= TRACE_FLAG_FAILED;
	rec.enabled = 0;
}

/* --- the file ---------------------------------------------------------------- */

static int grow_file(uint64_t len)
{
	if (len <= rec.file_len)
		return 0;
	int e = posix_fallocate(rec.fd, (off_t)rec.file_len, (off_t)(len - rec.file_len));
	if (e) {
		errno = e;
		return -1;
	}
	rec.file_len = len;
	return 0;
}

static int fd_is_ours(void)
{
	struct stat st;
	return fstat(rec.fd, &st) == 0 && st.st_dev == rec.dev && st.st_ino == rec.ino;
}

/* 0 if rec.fd is still our file; else fails the recording. */
static int check_fd(void)
{
	if (fd_is_ours())
		return 0;
	errno = EBADF;
	record_fail("the program closed the trace file's descriptor");
	return -1;
}

/* Map the window holding rec.pos, growing the file if needed. */
static int slide_window(void)
{
	if (check_fd())
		return -1;
	uint64_t off = rec.pos & ~(rec.page - 1);
	uint64_t len = rec.finished ? TAIL_WINDOW_BYTES : WINDOW_BYTES;
	if (grow_file(off + len)) {
		record_fail("cannot grow the trace file");
		return -1;
	}
	if (rec.win)
		munmap(rec.win, rec.win_len);
	rec.win = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, rec.fd, (off_t)off);
	if (rec.win == MAP_FAILED) {
		rec.win = NULL;
		record_fail("cannot map the trace file");
		return -1;
	}
	rec.win_off = off;
	rec.win_len = len;
	rec.win_end = off + len < rec.file_len ? off + len : rec.file_len;
	return 0;
}

static void close_trace(void)
{
	if (rec.win)
		munmap(rec.win, rec.win_len);
	if (rec.hdr)
		munmap(rec.hdr, rec.page);
	if (rec.fd >= 0 && fd_is_ours()) /* never a descriptor the program reused */
		close(rec.fd);
	rec.win = NULL;
	rec.hdr = NULL;
	rec.fd = -1;
}

static void exe_basename(char *out, size_t len)
{
	char path[PATH_BYTES];
	ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
	memset(out, 0, len);
	if (n <= 0)
		return;
	path[n] = '\0';
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	for (size_t i = 0; i + 1 < len && name[i]; i++)
		out[i] = name[i];
}

/* Create this process's trace file and its header.  0, or -1 with errno. */
static int open_trace(uint32_t flags, uint32_t ppid)
{
	const char *end = rec.path + sizeof rec.path;
	int is_top = !rec.top_pid || rec.pid == rec.top_pid;
	for (unsigned attempt = 0; attempt < 1000; attempt++) {
		char *at = append(rec.path, end, rec.base);
		if (!is_top || attempt) {
			at = append(at, end, ".");
			at = append_u64(at, end, rec.pid);
			if (attempt > (unsigned)is_top) {
				at = append(at, end, ".");
				append_u64(at, end, attempt - (unsigned)is_top);
			}
		}
		rec.fd = open(rec.path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (rec.fd >= 0 || errno != EEXIST)
			break;
	}
	if (rec.fd < 0)
		return -1;
	/* Out of the way of the program's own descriptors (lowest free first). */
	int high = fcntl(rec.fd, F_DUPFD_CLOEXEC, 700);
	if (high >= 0) {
		close(rec.fd);
		rec.fd = high;
	}
	struct stat st;
	if (fstat(rec.fd, &st))
		return -1;
	rec.dev = st.st_dev;
	rec.ino = st.st_ino;
	rec.file_len = 0;
	rec.pos = TRACE_HEADER_BYTES;
	rec.win = NULL;
	if (grow_file(rec.page))
		return -1;
	rec.hdr = mmap(NULL, rec.page, PROT_READ | PROT_WRITE, MAP_SHARED, rec.fd, 0);
	if (rec.hdr == MAP_FAILED) {
		rec.hdr = NULL;
		return -1;
	}
	struct trace_header *h = rec.hdr;
	memcpy(h->magic, TRACE_MAGIC, sizeof h->magic);
	h->version = TRACE_VERSION;
	h->header_bytes = TRACE_HEADER_BYTES;
	h->record_bytes = TRACE_RECORD_BYTES;
	h->pointer_bytes = sizeof(void *);
	h->flags = flags;
	h->pid = rec.pid;
	h->ppid = ppid;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	h->start_unix_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	exe_basename(h->exe, sizeof h->exe);
	h->record_count = 0;
	return slide_window();
}

/* --- records ------------------------------------------------------------------ */

static void emit(uintptr_t addr, uint64_t size_op, uintptr_t site)
{
	if (rec.pos + TRACE_RECORD_BYTES > rec.win_end && slide_window())
		return;
	struct trace_record *r = (struct trace_record *)(rec.win + (rec.pos - rec.win_off));
	r->addr = addr;
	r->size_op = size_op;
	r->site = site & TRACE_SIZE_MASK;
	r->tid = tid();
	r->reserved = 0;
	rec.pos += TRACE_RECORD_BYTES;
	rec.hdr->record_count++; /* after the record: a stop in between loses only it */
}

/* The alignment the hooks gave the chunk: the pad is the header for a plain
 * allocation, the alignment itself for a larger one (hooks.c alloc_aligned). */
static unsigned align_log2_of(const struct chunk *c)
{
	size_t pad = chunk_pad(c);
	if (pad <= CHUNK_ALIGN)
		return 4;
	return (unsigned)__builtin_ctzll(pad);
}

static void emit_chunk(const struct chunk *c, unsigned op)
{
	emit(chunk_user(c), trace_pack_size_op(chunk_size(c), op, align_log2_of(c)), chunk_site(c));
}

/* The fork child's first event: leave the parent's file, start our own with
 * the heap we inherited. */
static void start_fork_child(void)
{
	/* (Not rec.pid: a child that forks before its own first event would
	 * name its grandparent.) */
	uint32_t parent = (uint32_t)getppid();
	close_trace();
	rec.fork_pending = 0;
	rec.finished = 0;
	rec.pid = (uint32_t)getpid();
	if (!rec.children) {
		rec.enabled = 0;
		return;
	}
	if (open_trace(TRACE_FLAG_FORKED, parent)) {
		record_fail("cannot create the fork child's trace");
		return;
	}
	for (size_t i = 0; i < ptr_set_slots(&live) && rec.enabled; i++)
		if (live.key[i])
			emit_chunk((const struct chunk *)live.key[i], TRACE_OP_INHERITED);
}

/* How far the hooks' call counter of e moved since the last event. */
static uint64_t moved(enum hook_entry e, const uint64_t *now)
{
	return now[e] - rec.snap[e];
}

static void read_counters(uint64_t *now)
{
	for (int e = 0; e < ENTRY_COUNT; e++)
		now[e] = __atomic_load_n(&hooks_serial_calls[e], __ATOMIC_RELAXED);
}

static unsigned insert_op(const uint64_t *now)
{
	static const struct { enum hook_entry entry; unsigned op; } order[] = {
		{ ENTRY_malloc, TRACE_OP_MALLOC },
		{ ENTRY_calloc, TRACE_OP_CALLOC },
		{ ENTRY_memalign, TRACE_OP_MEMALIGN },
		{ ENTRY_posix_memalign, TRACE_OP_POSIX_MEMALIGN },
		{ ENTRY_aligned_alloc, TRACE_OP_ALIGNED_ALLOC },
		{ ENTRY_valloc, TRACE_OP_VALLOC },
		{ ENTRY_pvalloc, TRACE_OP_PVALLOC },
		{ ENTRY_reallocarray, TRACE_OP_REALLOCARRAY },
		{ ENTRY_realloc, TRACE_OP_REALLOC },
	};
	for (size_t i = 0; i < sizeof order / sizeof *order; i++)
		if (moved(order[i].entry, now))
			return order[i].op;
	/* No entry point counted: realloc failed and put the old chunk back. */
	return TRACE_OP_REINSERT;
}

static unsigned remove_op(const uint64_t *now)
{
	if (moved(ENTRY_realloc, now) || moved(ENTRY_reallocarray, now))
		return TRACE_OP_REALLOC_FREE; /* realloc(p, 0) */
	if (moved(ENTRY_free, now))
		return TRACE_OP_FREE;
	/* Only realloc removes a chunk without counting a call first. */
	return TRACE_OP_REALLOC_OLD;
}

/* free(NULL) counts a call without the lock, so a realloc's remove that
 * follows one looks like a free.  The insert half of a realloc comes from the
 * same thread with no event of that thread in between: relabel the remove. */
static void label_realloc_pair(void)
{
	uint64_t pos = last_free_pos;
	uint64_t word = (last_free_word & ~(UINT64_C(0xff) << 48)) |
	                (uint64_t)TRACE_OP_REALLOC_OLD << 48;
	uint64_t at = pos + offsetof(struct trace_record, size_op);
	if (pos >= rec.win_off && pos + TRACE_RECORD_BYTES <= rec.win_end)
		memcpy(rec.win + (at - rec.win_off), &word, sizeof word);
	else if (!check_fd() && pwrite(rec.fd, &word, sizeof word, (off_t)at) != (ssize_t)sizeof word)
		record_fail("cannot relabel a realloc record");
}

/* --- the index contract ---------------------------------------------------------- */

/* In a fork child (one thread, running this before fork returns): the
 * parent's file is not ours; open our own at our first event. */
static void record_after_fork_child(void)
{
	cached_tid = 0;
	last_free_pos = 0;
	if (rec.enabled || rec.fork_pending)
		rec.fork_pending = 1;
}

int record_index_init(const struct heapindex_config *cfg, char *err, size_t errlen)
{
	(void)cfg;
	index_wants_serial_hooks = 1;
	ptr_set_init(&live, 12, 0);
	const char *base = getenv("HEAPINDEX_TRACE");
	if (!base || !*base) {
		snprintf(err, errlen, "heapindex: record: HEAPINDEX_TRACE is not set: "
		         "run the program with heapindex record -o FILE -- COMMAND");
		return -1;
	}
	if (strlen(base) >= sizeof rec.base) {
		snprintf(err, errlen, "heapindex: record: HEAPINDEX_TRACE is longer than %zu bytes",
		         sizeof rec.base - 1);
		return -1;
	}
	memcpy(rec.base, base, strlen(base) + 1);
	int ok = 1;
	const char *top = getenv("HEAPINDEX_TRACE_PID");
	rec.top_pid = top ? (uint32_t)parse_u64(top, &ok) : 0;
	if (!ok || (top && !rec.top_pid)) {
		snprintf(err, errlen, "heapindex: record: HEAPINDEX_TRACE_PID='%s' is not a process id", top);
		return -1;
	}
	const char *children = getenv("HEAPINDEX_TRACE_CHILDREN");
	if (children && strcmp(children, "0") != 0 && strcmp(children, "1") != 0) {
		snprintf(err, errlen, "heapindex: record: HEAPINDEX_TRACE_CHILDREN='%s' is invalid: expected 0 or 1",
		         children);
		return -1;
	}
	rec.children = !children || strcmp(children, "0") != 0;
	rec.page = (uint64_t)sysconf(_SC_PAGESIZE);
	rec.pid = (uint32_t)getpid();
	/* Before the hooks register theirs: our child handler runs first, and
	 * it only sets flags. */
	pthread_atfork(NULL, NULL, record_after_fork_child);
	if (rec.top_pid && rec.pid != rec.top_pid && !rec.children)
		return 0;
	if (open_trace(0, (uint32_t)getppid())) {
		snprintf(err, errlen, "heapindex: record: cannot create the trace %s: %s", rec.path,
		         strerror(errno));
		close_trace();
		return -1;
	}
	rec.enabled = 1;
	return 0;
}

/* What every event starts with: a fork child's first event opens its own
 * trace; then, unless recording is off, the entry point behind the event is
 * told from the hooks' counters and the counters are remembered for the next
 * one.  Returns 0 if the event is not recorded. */
static int begin_event(unsigned (*classify)(const uint64_t *now), unsigned *op)
{
	if (__builtin_expect(rec.fork_pending, 0))
		start_fork_child();
	if (!rec.enabled)
		return 0;
	uint64_t now[ENTRY_COUNT];
	read_counters(now);
	*op = classify(now);
	memcpy(rec.snap, now, sizeof now);
	return 1;
}

void record_index_insert(struct chunk *c)
{
	unsigned op;
	if (!begin_event(insert_op, &op))
		return;
	if ((op == TRACE_OP_REALLOC || op == TRACE_OP_REALLOCARRAY) && last_free_pos)
		label_realloc_pair();
	last_free_pos = 0;
	if (ptr_set_add(&live, (uintptr_t)c, 0) < 0) {
		record_fail("cannot grow the set of live chunks");
		return;
	}
	emit_chunk(c, op);
}

void record_index_remove(struct chunk *c)
{
	unsigned op;
	if (!begin_event(remove_op, &op))
		return;
	ptr_set_remove(&live, (uintptr_t)c, NULL);
	uint64_t pos = rec.pos;
	emit_chunk(c, op);
	if (op == TRACE_OP_FREE && rec.pos == pos + TRACE_RECORD_BYTES) {
		last_free_pos = pos;
		last_free_word = trace_pack_size_op(chunk_size(c), op, align_log2_of(c));
	} else {
		last_free_pos = 0;
	}
}

/* Recording keeps no interval structure: nothing is ever found. */
int record_index_lookup(uintptr_t addr, struct chunk_info *out)
{
	(void)addr, (void)out;
	return INDEX_NONE;
}

void record_index_write_stats(struct json_out *out)
{
	json_u64(out, "links_bytes", 0);
	json_u64(out, "index_bytes", ptr_set_bytes(&live)); /* the trace is not index memory */
	json_str(out, "trace", rec.path);
	json_u64(out, "trace_records", rec.hdr ? rec.hdr->record_count : 0);
	json_u64(out, "trace_live_set_slots", ptr_set_slots(&live));
}

/* At exit: mark the trace finished and trim the preallocated tail.  Events
 * after this (frees in later destructors) are still recorded. */
__attribute__((destructor)) static void record_finish(void)
{
	spin_lock(&hooks_lock);
	if (rec.enabled && !rec.fork_pending && rec.hdr) {
		rec.hdr->flags |= TRACE_FLAG_FINISHED;
		rec.finished = 1;
		/* (If the program closed our descriptor, leave the tail to
		 * heapindex record: the mappings still hold every record.) */
		if (fd_is_ours() && ftruncate(rec.fd, (off_t)rec.pos) == 0) {
			rec.file_len = rec.pos;
			if (rec.win_end > rec.file_len)
				rec.win_end = rec.file_len;
		}
	}
	spin_unlock(&hooks_lock);
}

INDEX_DEFINE_OPS(record, 0, 0)
