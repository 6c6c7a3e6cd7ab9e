/* test_critnib.c - the critnib baseline's lookups take no lock.
 *
 * baselines/critnib.c claims what critnib claims: one writer at a time (the
 * hooks' lock) and any number of readers with no lock at all, each reader
 * finding every chunk that stays live while it looks, and never faulting
 * whatever else is inserted or removed meanwhile.  The differential tests
 * check its answers one operation at a time; this checks the claim, with a
 * writer thread churning chunks around a set of chunks that stay, and
 * reader threads looking those up (exactly, interior pointers) and wild
 * addresses (anything but a crash), none of them taking a lock.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index_params.h"
#include "inproc.h"
#include "support.h"

#define STAYING 256
#define CHURN_SLOTS 2048
#define WRITER_OPS 1500000
#define READERS 2

static struct inproc critnib;
static unsigned char *staying[STAYING];
static size_t staying_size[STAYING];
static int writer_done;
static uint64_t wrong_answers, reader_lookups;

/* Sizes like a program's: mostly small, sometimes a few KiB, so the writer
 * both fills and empties bottom nodes and splits and merges upper ones. */
static size_t random_size(uint64_t *rng)
{
	uint64_t r = test_random(rng);
	return r % 16 ? 1 + r % 256 : 1 + r % 8192;
}

static unsigned char *slot[CHURN_SLOTS];

static void *writer(void *arg)
{
	(void)arg;
	uint64_t rng = 0x5eed;
	for (uint64_t op = 0; op < WRITER_OPS; op++) {
		unsigned char **s = &slot[test_random(&rng) % CHURN_SLOTS];
		if (*s) {
			inproc_free(&critnib, *s);
			*s = NULL;
		} else {
			*s = inproc_alloc(&critnib, random_size(&rng), 16, 0x1000 + op);
		}
	}
	for (size_t i = 0; i < CHURN_SLOTS; i++)
		inproc_free(&critnib, slot[i]);
	__atomic_store_n(&writer_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *reader(void *arg)
{
	uint64_t rng = (uintptr_t)arg * 7919 + 1, lookups = 0, wrong = 0;
	int local;
	const uintptr_t wild[] = { 0, 1, (uintptr_t)&local, UINTPTR_MAX, (uintptr_t)1 << 47 };
	while (!__atomic_load_n(&writer_done, __ATOMIC_ACQUIRE)) {
		for (int k = 0; k < 1024; k++) {
			size_t i = test_random(&rng) % STAYING;
			uintptr_t base = (uintptr_t)staying[i];
			uintptr_t addr = base + test_random(&rng) % staying_size[i];
			/* No lock: the writer is inserting and removing right now. */
			struct chunk_info info = { .no_site = 0 };
			int found = critnib.ops->lookup(addr, &info) == INDEX_FOUND;
			wrong += !found || info.base != base || info.size != staying_size[i];
			/* Addresses of churned chunks: whatever the answer, no fault. */
			(void)critnib.ops->lookup(base + staying_size[i] + test_random(&rng) % 4096, &info);
			(void)critnib.ops->lookup(wild[k % 5], &info);
		}
		lookups += 1024;
	}
	__atomic_fetch_add(&wrong_answers, wrong, __ATOMIC_RELAXED);
	__atomic_fetch_add(&reader_lookups, lookups, __ATOMIC_RELAXED);
	return NULL;
}

static uint64_t stat_field(const char *name)
{
	return index_stat(critnib.ops, name);
}

Test(critnib, lookups_without_lock_during_writes, .timeout = 120)
{
	const struct index_ops *ops = index_by_name("critnib");
	cr_assert_not_null(ops);
	struct heapindex_config cfg = { .addr_bits = config_default_addr_bits(),
		                        .bin_shift = CONFIG_BIN_SHIFT_DEFAULT };
	char err[256];
	cr_assert_eq(inproc_init(&critnib, ops, &cfg, err, sizeof err), 0, "%s", err);
	uint64_t rng = 42;
	/* Interleaved, so churned chunks come and go between staying ones and
	 * the writer splits and merges the very nodes on their paths. */
	for (size_t i = 0; i < STAYING; i++) {
		staying_size[i] = random_size(&rng);
		staying[i] = inproc_alloc(&critnib, staying_size[i], 16, 0x2000 + i);
		cr_assert_not_null(staying[i]);
		for (size_t j = i; j < CHURN_SLOTS; j += STAYING)
			slot[j] = inproc_alloc(&critnib, random_size(&rng), 16, 0x3000 + j);
	}

	pthread_t w, r[READERS];
	for (uintptr_t i = 0; i < READERS; i++)
		cr_assert_eq(pthread_create(&r[i], NULL, reader, (void *)i), 0);
	cr_assert_eq(pthread_create(&w, NULL, writer, NULL), 0);
	pthread_join(w, NULL);
	for (size_t i = 0; i < READERS; i++)
		pthread_join(r[i], NULL);

	cr_log_info("critnib: %llu lock-free lookups of staying chunks during %d writes, %llu retries",
	            (unsigned long long)reader_lookups, WRITER_OPS,
	            (unsigned long long)stat_field("lookup_retries"));
	cr_assert_gt(reader_lookups, 0, "the readers never ran alongside the writer");
	cr_assert_eq(wrong_answers, 0, "%llu of %llu lookups of staying chunks were wrong",
	             (unsigned long long)wrong_answers, (unsigned long long)reader_lookups);
	/* Only the staying chunks are left, each exactly once, and the writer's
	 * removes went through the pending ring. */
	cr_assert_eq(stat_field("leaves"), STAYING);
	cr_assert_geq(stat_field("removes"), WRITER_OPS / 3);
	for (size_t i = 0; i < STAYING; i++) {
		struct chunk_info info = { .no_site = 0 };
		cr_assert_eq(ops->lookup((uintptr_t)staying[i] + staying_size[i] - 1, &info), INDEX_FOUND);
		cr_assert_eq(info.base, (uintptr_t)staying[i]);
		inproc_free(&critnib, staying[i]);
	}
	cr_assert_eq(stat_field("leaves"), 0);
	cr_assert_eq(stat_field("nodes"), 0);
}
