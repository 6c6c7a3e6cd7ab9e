/* test_ptr_set.c - hooks/ptr_set.h against a model that is obviously right.
 *
 * The model is an array over a small universe of keys, each present or not
 * with its value.  Seeded random adds, removes and gets run on both, every
 * answer compared; then the whole set is walked and must hold exactly the
 * model's keys.  The universe is small next to the operation count, so keys
 * come and go many times, and many keys share a home slot (they differ only
 * in their low 4 bits, which the hash drops), so probe runs are long and
 * wrap around the table's end: the cases backward-shift deletion must get
 * right. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "ptr_set.h"
#include "support.h"

#define UNIVERSE 3000

struct model {
	uintptr_t key[UNIVERSE];
	uintptr_t value[UNIVERSE];
	int present[UNIVERSE];
	size_t count;
};

static uint64_t rng;

static uint64_t rnd(void) { return test_random(&rng); }

/* Keys in groups of 8 that share their address but for the low 4 bits; the
 * groups spread over a few MiB, as heap chunks are. */
static void make_keys(struct model *m)
{
	for (size_t i = 0; i < UNIVERSE; i += 8) {
		uintptr_t base = 0x7f0000000000u + (rnd() % (1u << 22)) * 16;
		for (size_t k = 0; k < 8 && i + k < UNIVERSE; k++)
			m->key[i + k] = base + (k ? k : 16 * (rnd() % 64 + 1));
	}
	/* Distinct keys: a repeated one would be the same model entry twice. */
	for (size_t i = 0; i < UNIVERSE; i++)
		for (size_t j = 0; j < i; j++)
			if (m->key[j] == m->key[i]) {
				m->key[i] = 0x100000u + i * 16;
				break;
			}
}

static void check_walk(const struct ptr_set *s, const struct model *m, int with_values)
{
	cr_assert_eq(s->count, m->count);
	size_t seen = 0;
	for (size_t i = 0; i < ptr_set_slots(s); i++) {
		if (!s->key[i])
			continue;
		seen++;
		size_t at = 0;
		while (at < UNIVERSE && m->key[at] != s->key[i])
			at++;
		cr_assert(at < UNIVERSE && m->present[at], "the set holds 0x%lx, the model does not",
		          (unsigned long)s->key[i]);
		if (with_values)
			cr_assert_eq(s->value[i], m->value[at]);
	}
	cr_assert_eq(seen, m->count);
	cr_assert_leq(2 * s->count, ptr_set_slots(s), "more than half full");
}

static void run(uint64_t seed, unsigned first_bits, int with_values)
{
	static struct model m;
	m = (struct model){ 0 };
	rng = seed;
	make_keys(&m);
	struct ptr_set s;
	ptr_set_init(&s, first_bits, with_values);
	for (unsigned op = 0; op < 200000; op++) {
		size_t k = rnd() % UNIVERSE;
		uintptr_t key = m.key[k], got = 0;
		unsigned what = (unsigned)(rnd() % 8);
		/* Phases that favour adds, then removes, so the set grows and
		 * empties several times over. */
		int adding = (op / 20000) % 2 == 0;
		if (what < (adding ? 4u : 2u)) {
			uintptr_t value = rnd();
			int r = ptr_set_add(&s, key, value);
			cr_assert_eq(r, m.present[k], "op %u: add of 0x%lx returned %d", op, (unsigned long)key, r);
			if (!m.present[k]) {
				m.present[k] = 1;
				m.value[k] = value;
				m.count++;
			}
		} else if (what < 6) {
			int r = ptr_set_remove(&s, key, &got);
			cr_assert_eq(r, m.present[k], "op %u: remove of 0x%lx returned %d", op, (unsigned long)key, r);
			if (r && with_values)
				cr_assert_eq(got, m.value[k], "op %u: remove gave the wrong value", op);
			if (r) {
				m.present[k] = 0;
				m.count--;
			}
		} else {
			int r = ptr_set_get(&s, key, &got);
			cr_assert_eq(r, m.present[k], "op %u: get of 0x%lx returned %d", op, (unsigned long)key, r);
			if (r && with_values)
				cr_assert_eq(got, m.value[k], "op %u: get gave the wrong value", op);
		}
		cr_assert_eq(s.count, m.count, "op %u", op);
		if (op % 5000 == 0)
			check_walk(&s, &m, with_values);
	}
	check_walk(&s, &m, with_values);
	ptr_set_free(&s);
	cr_assert_eq(s.count, 0);
	cr_assert_eq(ptr_set_get(&s, m.key[0], NULL), 0);
}

Test(ptr_set, matches_a_model_with_values) { run(1, 4, 1); run(0x9e3779b97f4a7c15u, 10, 1); }
Test(ptr_set, matches_a_model_as_a_plain_set) { run(7, 4, 0); run(20221111, 12, 0); }

/* A zeroed struct is an empty plain set. */
Test(ptr_set, a_zeroed_set_works)
{
	struct ptr_set s = { 0 };
	cr_assert_eq(ptr_set_get(&s, 0x1000, NULL), 0);
	cr_assert_eq(ptr_set_remove(&s, 0x1000, NULL), 0);
	for (uintptr_t a = 16; a <= 16 * 100; a += 16)
		cr_assert_eq(ptr_set_add(&s, a, 0), 0);
	cr_assert_eq(ptr_set_add(&s, 48, 0), 1);
	cr_assert_eq(s.count, 100);
	for (uintptr_t a = 16; a <= 16 * 100; a += 32)
		cr_assert_eq(ptr_set_remove(&s, a, NULL), 1);
	for (uintptr_t a = 16; a <= 16 * 100; a += 16)
		cr_assert_eq(ptr_set_get(&s, a, NULL), (a / 16) % 2 == 0);
	ptr_set_free(&s);
}
