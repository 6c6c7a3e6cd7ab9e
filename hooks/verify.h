/* verify.h - HEAPINDEX_VERIFY: check the index against a shadow of live chunks.
 *
 * Test-only.  With HEAPINDEX_VERIFY=1 the hooks record every chunk they
 * insert into the index in a shadow table of their own (open addressing,
 * hooks/ptr_set.h, keyed by user pointer, holding the size), and at exit
 * check that the index finds the first, middle and last byte of every shadow
 * chunk with the right base and size, and that the hooks' live-chunk count
 * equals the shadow's.  HEAPINDEX_VERIFY=K (K >= 2) checks every K index
 * operations too (each check is a full scan: K small is slow).
 *
 * On the first inconsistency it writes one line to stderr naming the chunk,
 * its size and the operation number, and the process exits with status 3
 * (_exit: no abort, no core; 3 distinguishes it from config errors, 2).
 * For an index that answers no lookup by design (index_ops.caps) only the
 * counts are checked.
 * With HEAPINDEX_LOOKUP_CACHE on, each check also looks at the checking
 * thread's lookup cache: every entry still valid must answer a live chunk.
 *
 * All calls are made with hooks_lock held.
 */
#ifndef HEAPINDEX_VERIFY_H
#define HEAPINDEX_VERIFY_H

#include "chunk.h"

extern unsigned verify_every; /* 0: off */

void verify_start(unsigned every);
void verify_insert(struct chunk *c);
void verify_remove(struct chunk *c);
/* Full check now; "when" names the moment in the message. */
void verify_check(const char *when);

static inline void verify_note_insert(struct chunk *c)
{
	if (__builtin_expect(verify_every != 0, 0))
		verify_insert(c);
}

static inline void verify_note_remove(struct chunk *c)
{
	if (__builtin_expect(verify_every != 0, 0))
		verify_remove(c);
}

#endif /* HEAPINDEX_VERIFY_H */
