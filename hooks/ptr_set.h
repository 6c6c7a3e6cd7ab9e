/* ptr_set.h - a set of non-zero addresses, each with an optional value:
 * open addressing, linear probing, backward-shift deletion (no tombstones,
 * so a long run of inserts and removes never slows the probes down).
 *
 * Never calls malloc: its memory is index_map_pages', so the hooks may keep
 * one inside malloc (hooks/verify.c's shadow of the live chunks, the trace
 * recorder's live chunk starts), and the trace reader its address map.  Not
 * synchronised: the owner serialises every call.
 *
 * Invariants: key[i] == 0 marks an empty slot; every key sits in the probe
 * run that starts at its home slot, with no empty slot between the two; the
 * table is at most half full (it doubles before it would be more).
 */
#ifndef HEAPINDEX_PTR_SET_H
#define HEAPINDEX_PTR_SET_H

#include <stddef.h>
#include <stdint.h>

struct ptr_set {
	uintptr_t *key;   /* 2^bits slots; 0: empty */
	uintptr_t *value; /* beside key, or NULL for a plain set */
	unsigned bits;    /* 0 until the first slots are mapped */
	unsigned first_bits;
	int with_values;
	size_t count;
};

/* An empty set that maps 2^first_bits slots (at least 16) when it first
 * needs them, with a value per key if with_values.  A zeroed struct is an
 * empty plain set too. */
void ptr_set_init(struct ptr_set *s, unsigned first_bits, int with_values);
/* Unmap its slots; the set is empty again (and may be used again). */
void ptr_set_free(struct ptr_set *s);

/* 1 if key is in the set (its value in *value if value is non-NULL), else 0. */
int ptr_set_get(const struct ptr_set *s, uintptr_t key, uintptr_t *value);
/* Add key (non-zero) with value (ignored by a plain set): 0; 1 if key was
 * already there (nothing changes); -1 if the set could not grow. */
int ptr_set_add(struct ptr_set *s, uintptr_t key, uintptr_t value);
/* Take key out (its value in *value if non-NULL): 1, or 0 if it was not there. */
int ptr_set_remove(struct ptr_set *s, uintptr_t key, uintptr_t *value);

/* Slots to walk: for (i = 0; i < ptr_set_slots(s); i++) if (s->key[i]) ... */
static inline size_t ptr_set_slots(const struct ptr_set *s)
{
	return s->bits ? (size_t)1 << s->bits : 0;
}

/* The memory its slots take. */
static inline size_t ptr_set_bytes(const struct ptr_set *s)
{
	return ptr_set_slots(s) * sizeof(uintptr_t) * (s->with_values ? 2 : 1);
}

#endif /* HEAPINDEX_PTR_SET_H */
