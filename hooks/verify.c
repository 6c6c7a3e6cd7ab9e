/* verify.c - see verify.h.  Compiled per index, like hooks.c, so the index's
 * lookup is called directly.  Never calls malloc. */
#include "verify.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hooks.h"
#include "index.h"
#include "lookup_cache.h"
#include "ptr_set.h"

unsigned verify_every;

/* The live chunks as the hooks reported them: user pointer -> size. */
static struct ptr_set shadow;
static int started;
static uint64_t operations;

static __attribute__((noreturn)) void verify_fail(const char *msg)
{
	if (write(STDERR_FILENO, msg, strlen(msg)) < 0)
		_exit(3);
	_exit(3);
}

void verify_start(unsigned every)
{
	ptr_set_init(&shadow, 14, 1);
	started = 1;
	verify_every = every;
}

static void after_operation(void)
{
	operations++;
	if (verify_every >= 2 && operations % verify_every == 0)
		verify_check("periodic check");
}

/* "heapindex: verify: operation N <does> chunk P (size S) that <is>". */
static __attribute__((noreturn)) void fail_on_chunk(const struct chunk *c, const char *does,
                                                    const char *is)
{
	char msg[256];
	snprintf(msg, sizeof msg, "heapindex: verify: operation %llu %s chunk %#lx (size %zu) that %s\n",
	         (unsigned long long)operations + 1, does, (unsigned long)chunk_user(c), chunk_size(c), is);
	verify_fail(msg);
}

/* The size c's lookups answer: its own, but for an index without records
 * under side the allocator's usable size (index.h, INDEX_SIDE_TELLS), read
 * while c is live (the hooks insert it before the program has it). */
static size_t answered_size(const struct chunk *c)
{
#if INDEX_SIDE_SIZELESS
	return chunk_held_size(c);
#else
	return chunk_size(c);
#endif
}

void verify_insert(struct chunk *c)
{
	int added = ptr_set_add(&shadow, chunk_user(c), answered_size(c));
	if (added < 0)
		verify_fail("heapindex: verify: cannot map the shadow table\n");
	if (added)
		fail_on_chunk(c, "inserts", "is already live");
	after_operation();
}

void verify_remove(struct chunk *c)
{
	if (!ptr_set_remove(&shadow, chunk_user(c), NULL))
		fail_on_chunk(c, "removes", "is not live");
	after_operation();
}

static void check_byte(const char *when, uintptr_t user, size_t size, size_t offset)
{
	struct chunk_info got = { .no_site = 0 };
	int found = INDEX_FN(lookup)(user + offset, &got) == INDEX_FOUND;
	if (found && got.base == user && got.size == size)
		return;
	char msg[384];
	snprintf(msg, sizeof msg,
	         "heapindex: verify (%s, after operation %llu): chunk %#lx of size %zu: lookup of byte %zu found %s %#lx size %zu\n",
	         when, (unsigned long long)operations, (unsigned long)user, size, offset,
	         found ? "chunk" : "nothing", found ? (unsigned long)got.base : 0UL,
	         found ? got.size : (size_t)0);
	verify_fail(msg);
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
		uintptr_t size;
		int live = ptr_set_get(&shadow, e->base, &size);
		if (live && size == e->size)
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
	if (!started)
		return;
	struct hook_totals totals;
	counters_totals(&totals);
	if ((uint64_t)totals.live_chunks != shadow.count) {
		char msg[256];
		snprintf(msg, sizeof msg,
		         "heapindex: verify (%s, after operation %llu): the hooks count %lld live chunks, the shadow %zu\n",
		         when, (unsigned long long)operations, (long long)totals.live_chunks, shadow.count);
		verify_fail(msg);
	}
	if (!(INDEX_OPS.caps & INDEX_ANSWERS_LOOKUPS))
		return; /* an index that answers nothing: only counts are checked */
	for (size_t i = 0; i < ptr_set_slots(&shadow); i++) {
		uintptr_t user = shadow.key[i];
		size_t size = shadow.value[i];
		if (!user || !size)
			continue; /* a zero-byte chunk contains no address */
		check_byte(when, user, size, 0);
		check_byte(when, user, size, size / 2);
		check_byte(when, user, size, size - 1);
	}
	check_lookup_cache(when);
}
