/* ptr_set.c - see ptr_set.h. */
#include "ptr_set.h"

#include "index.h"

/* Fibonacci hashing of the address without its low 4 bits, which chunk
 * addresses share (16-byte alignment): the top bits of the product. */
static size_t home_slot(const struct ptr_set *s, uintptr_t key)
{
	return (size_t)(((uint64_t)(key >> 4) * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - s->bits));
}

static size_t next_slot(const struct ptr_set *s, size_t i)
{
	return (i + 1) & (ptr_set_slots(s) - 1);
}

void ptr_set_init(struct ptr_set *s, unsigned first_bits, int with_values)
{
	*s = (struct ptr_set){ .first_bits = first_bits, .with_values = with_values };
}

static void unmap_slots(uintptr_t *key, uintptr_t *value, size_t slots)
{
	index_unmap_pages(key, slots * sizeof *key);
	index_unmap_pages(value, slots * sizeof *value);
}

void ptr_set_free(struct ptr_set *s)
{
	unmap_slots(s->key, s->value, ptr_set_slots(s));
	ptr_set_init(s, s->first_bits, s->with_values);
}

/* The slot holding key, or the empty slot that ends its probe run. */
static size_t find_slot(const struct ptr_set *s, uintptr_t key)
{
	size_t i = home_slot(s, key);
	while (s->key[i] && s->key[i] != key)
		i = next_slot(s, i);
	return i;
}

/* Double the slots (or map the first ones) and put every key back. */
static int grow(struct ptr_set *s)
{
	if (s->bits >= CHUNK_FIELD_BITS)
		return -1; /* 2^48 slots: more than there are addresses */
	struct ptr_set g = *s;
	g.bits = s->bits ? s->bits + 1 : s->first_bits > 4 ? s->first_bits : 4;
	size_t slots = ptr_set_slots(&g);
	g.key = index_map_pages(slots * sizeof *g.key);
	g.value = s->with_values ? index_map_pages(slots * sizeof *g.value) : NULL;
	if (!g.key || (s->with_values && !g.value)) {
		unmap_slots(g.key, g.value, slots);
		return -1;
	}
	for (size_t i = 0; i < ptr_set_slots(s); i++) {
		if (!s->key[i])
			continue;
		size_t at = find_slot(&g, s->key[i]);
		g.key[at] = s->key[i];
		if (g.value)
			g.value[at] = s->value[i];
	}
	unmap_slots(s->key, s->value, ptr_set_slots(s));
	*s = g;
	return 0;
}

/* The slot holding key, or SIZE_MAX if it is not there; its value in *value
 * if asked for. */
static size_t slot_holding(const struct ptr_set *s, uintptr_t key, uintptr_t *value)
{
	if (!s->bits)
		return SIZE_MAX;
	size_t i = find_slot(s, key);
	if (!s->key[i])
		return SIZE_MAX;
	if (value)
		*value = s->value ? s->value[i] : 0;
	return i;
}

int ptr_set_get(const struct ptr_set *s, uintptr_t key, uintptr_t *value)
{
	return slot_holding(s, key, value) != SIZE_MAX;
}

int ptr_set_add(struct ptr_set *s, uintptr_t key, uintptr_t value)
{
	/* At most half full: probe runs stay short. */
	if ((s->count + 1) * 2 > ptr_set_slots(s) && grow(s))
		return -1;
	size_t i = find_slot(s, key);
	if (s->key[i])
		return 1;
	s->key[i] = key;
	if (s->value)
		s->value[i] = value;
	s->count++;
	return 0;
}

int ptr_set_remove(struct ptr_set *s, uintptr_t key, uintptr_t *value)
{
	size_t hole = slot_holding(s, key, value);
	if (hole == SIZE_MAX)
		return 0;
	/* Backward shift: walk the rest of the run; a key whose home is not in
	 * (hole, j] (cyclically) would be cut off from its home by the hole,
	 * so it moves into the hole, and its old slot becomes the hole. */
	size_t mask = ptr_set_slots(s) - 1;
	for (size_t j = next_slot(s, hole); s->key[j]; j = next_slot(s, j)) {
		size_t home = home_slot(s, s->key[j]);
		if (((j - home) & mask) >= ((j - hole) & mask)) {
			s->key[hole] = s->key[j];
			if (s->value)
				s->value[hole] = s->value[j];
			hole = j;
		}
	}
	s->key[hole] = 0;
	s->count--;
	return 1;
}
