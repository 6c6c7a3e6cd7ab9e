/* verify.c - see verify.h.  Compiled per index, like hooks.c, so the index's
 * lookup is called directly.  Never calls malloc. */
#include "verify.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hooks.h"
#include "index.h"
#include "lookup_cache.h"

unsigned verify_every;

struct shadow_entry {
	uintptr_t user; /* 0: empty */
	size_t size;
};

static struct shadow_entry *table;
static size_t capacity; /* a power of two */
static size_t count;
static uint64_t operations;

static __attribute__((noreturn)) void verify_fail(const char *msg)
{
	if (write(STDERR_FILENO, msg, strlen(msg)) < 0)
		_exit(3);
	_exit(3);
}

static struct shadow_entry *map_table(size_t n)
{
	void *p = mmap(NULL, n * sizeof(struct shadow_entry), PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		verify_fail("heapindex: verify: cannot map the shadow table\n");
	return p;
}

static inline size_t slot_of(uintptr_t user)
{
	uint64_t h = (uint64_t)user * UINT64_C(0x9e3779b97f4a7c15);
	return (size_t)(h >> 20) & (capacity - 1);
}

static void put(uintptr_t user, size_t size)
{
	size_t i = slot_of(user);
	while (table[i].user)
		i = (i + 1) & (capacity - 1);
	table[i].user = user;
	table[i].size = size;
}

static void grow(void)
{
	struct shadow_entry *old = table;
	size_t old_capacity = capacity;
	capacity *= 2;
	table = map_table(capacity);
	for (size_t i = 0; i < old_capacity; i++)
		if (old[i].user)
			put(old[i].user, old[i].size);
	munmap(old, old_capacity * sizeof *old);
}

void verify_start(unsigned every)
{
	capacity = (size_t)1 << 14;
	table = map_table(capacity);
	verify_every = every;
}

static void after_operation(void)
{
	operations++;
	if (verify_every >= 2 && operations % verify_every == 0)
		verify_check("periodic check");
}

void verify_insert(struct chunk *c)
{
	if (2 * (count + 1) > capacity)
		grow();
	uintptr_t user = chunk_user(c);
	size_t i = slot_of(user);
	for (; table[i].user; i = (i + 1) & (capacity - 1)) {
		if (table[i].user == user) {
			char msg[256];
			snprintf(msg, sizeof msg,
			         "heapindex: verify: operation %llu inserts chunk %#lx (size %zu) that is already live\n",
			         (unsigned long long)operations + 1, (unsigned long)user, chunk_size(c));
			verify_fail(msg);
		}
	}
	table[i].user = user;
	table[i].size = chunk_size(c);
	count++;
	after_operation();
}

void verify_remove(struct chunk *c)
{
	uintptr_t user = chunk_user(c);
	size_t i = slot_of(user);
	while (table[i].user != user) {
		if (!table[i].user) {
			char msg[256];
			snprintf(msg, sizeof msg,
			         "heapindex: verify: operation %llu removes chunk %#lx (size %zu) that is not live\n",
			         (unsigned long long)operations + 1, (unsigned long)user, chunk_size(c));
			verify_fail(msg);
		}
		i = (i + 1) & (capacity - 1);
	}
	/* Backward-shift deletion: no tombstones. */
	size_t hole = i;
	for (size_t j = (hole + 1) & (capacity - 1); table[j].user; j = (j + 1) & (capacity - 1)) {
		size_t home = slot_of(table[j].user);
		/* Move j into the hole unless its home lies in (hole, j]. */
		if (((j - home) & (capacity - 1)) >= ((j - hole) & (capacity - 1))) {
			table[hole] = table[j];
			hole = j;
		}
	}
	table[hole].user = 0;
	table[hole].size = 0;
	count--;
	after_operation();
}

static void check_byte(const char *when, const struct shadow_entry *e, size_t offset)
{
	struct chunk_info got;
	int found = INDEX_FN(lookup)(e->user + offset, &got) == INDEX_FOUND;
	if (found && got.base == e->user && got.size == e->size)
		return;
	char msg[384];
	snprintf(msg, sizeof msg,
	         "heapindex: verify (%s, after operation %llu): chunk %#lx of size %zu: lookup of byte %zu found %s %#lx size %zu\n",
	         when, (unsigned long long)operations, (unsigned long)e->user, e->size, offset,
	         found ? "chunk" : "nothing", found ? (unsigned long)got.base : 0UL,
	         found ? got.size : (size_t)0);
	verify_fail(msg);
}

static const struct shadow_entry *shadow_find(uintptr_t user)
{
	for (size_t i = slot_of(user); table[i].user; i = (i + 1) & (capacity - 1))
		if (table[i].user == user)
			return &table[i];
	return NULL;
}

/* Every entry of this thread's lookup cache that is valid now must be the
 * answer for a live chunk: an entry that outlived its chunk's free or
 * realloc, by this thread or any other, fails here.  Other threads' caches
 * are theirs to read (their owners write them without atomics). */
static void check_lookup_cache(const char *when)
{
	struct thread_slot *s = thread_self();
	if (s == &thread_unattached || !s->lookup_cache)
		return;
	unsigned n = __atomic_load_n(&lookup_cache_entries, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < n; i++) {
		const struct lookup_cache_entry *e = &s->lookup_cache[i];
		if (!lookup_cache_entry_valid(e))
			continue;
		const struct shadow_entry *live = shadow_find(e->base);
		if (live && live->size == e->size)
			continue;
		char msg[320];
		snprintf(msg, sizeof msg,
		         "heapindex: verify (%s, after operation %llu): the lookup cache still answers chunk %#lx of "
		         "size %zu, which is %s\n",
		         when, (unsigned long long)operations, (unsigned long)e->base, e->size,
		         live ? "live with another size" : "not live");
		verify_fail(msg);
	}
}

void verify_check(const char *when)
{
	if (!table)
		return;
	struct hook_totals totals;
	counters_totals(&totals);
	if ((uint64_t)totals.live_chunks != count) {
		char msg[256];
		snprintf(msg, sizeof msg,
		         "heapindex: verify (%s, after operation %llu): the hooks count %lld live chunks, the shadow %zu\n",
		         when, (unsigned long long)operations, (long long)totals.live_chunks, count);
		verify_fail(msg);
	}
	if (!(INDEX_OPS.caps & INDEX_ANSWERS_LOOKUPS))
		return; /* an index that answers nothing: only counts are checked */
	for (size_t i = 0; i < capacity; i++) {
		const struct shadow_entry *e = &table[i];
		if (!e->user || !e->size)
			continue; /* a zero-byte chunk contains no address */
		check_byte(when, e, 0);
		check_byte(when, e, e->size / 2);
		check_byte(when, e, e->size - 1);
	}
	check_lookup_cache(when);
}
