#!/usr/bin/python3
"""The "DwarfPython" use case: a program that asks the heap index about its
own objects while it runs.

It performs the same operations as churn.py and, every K operations, looks
up the object that the operation created or modified through the preloaded
heapindex library:

    int heapindex_lookup(const void *addr, void **base, size_t *size,
                         const void **site);

returns 1 if addr lies inside a live heap chunk, with base = the pointer
malloc returned, size = the size its caller asked for, site = the allocation
site. Each answer is checked against what CPython's object layout says it
must be (see verify() below). A few addresses that are certainly not heap
chunks (statically allocated objects, code) are looked up too and must not
be found.

Run it under the hooks, with the system allocator underneath CPython:

    PYTHONMALLOC=malloc ./heapindex run --index NAME -- \
        /usr/bin/python3 workloads/python/dwarfpy_query.py

stdout holds the churn summary (identical to churn.py's for the same --ops)
and one line of query counts: no addresses and no timings. The first failed
check, and with --verbose every query, is reported on stderr. Exit status:
0 all checks passed, 1 a check failed, 2 usage error or not runnable here.
"""

import argparse
import ctypes
import os
import sys

# Importing churn.py must not write a .pyc into the source tree (nor do file
# I/O that a plain churn.py run does not do).
sys.dont_write_bytecode = True
from churn import DEFAULT_OPS, Churn, positive_int  # noqa: E402

DEFAULT_EVERY = 10

# Types whose whole object lives in the one chunk that id() points into, and
# whose chunk is allocated at exactly pre-header + __sizeof__() bytes. (For
# str this holds for the ASCII strings churn builds: a non-ASCII str may
# also own a separately allocated UTF-8 copy that __sizeof__ counts.)
EXACT_SIZEOF = (str, bytes, tuple, float)
# int: the chunk may be larger than __sizeof__(): arithmetic allocates the
# worst-case number of digits, then normalises ob_size down without
# reallocating.
AT_LEAST_SIZEOF = (int,)
# Everything else churn returns (list, dict, instances of Record and Vec) is
# a fixed-size header chunk of __basicsize__ bytes after the pre-header;
# __sizeof__() would also count separately allocated item arrays, key
# tables and instance dicts.


def expected_chunk(obj):
    """Where obj must sit inside its malloc chunk, under PYTHONMALLOC=malloc.

    Returns (offset, size, exact): id(obj) must be base + offset, and the
    requested size must equal size (exact) or be at least size.

    offset is the object's pre-header: sys.getsizeof() is __sizeof__() plus
    the bytes CPython allocates in front of the object (PyGC_Head, 16 bytes,
    for GC types; from 3.11 on, plus 16 bytes of managed dict/values
    pointers for ordinary class instances, e.g. 32 for Record), so
    getsizeof - __sizeof__ measures the pre-header without hard-coding a
    layout that changes between CPython versions.
    """
    sizeof = obj.__sizeof__()
    offset = sys.getsizeof(obj) - sizeof
    t = type(obj)
    if t in EXACT_SIZEOF:
        return offset, offset + sizeof, True
    if t in AT_LEAST_SIZEOF:
        return offset, offset + sizeof, False
    return offset, offset + t.__basicsize__, True


# A found chunk without a site comes from an index that keeps no sizes
# either (the memtable's default placement, side: hooks/index.h,
# INDEX_SIDE_TELLS), whose lookups answer the allocator's usable size, at
# least the size asked for; every other index answers the site (the return
# address, or a stack key) and the size asked for.


_malloc_usable_size = None


def usable_size(base):
    """The allocator's usable size of the chunk at base (through the hooks,
    which under side answer the allocator's own figure).  The binding is
    made once: a CDLL and a function object per call cost ~10 us, which
    made every side run of this workload slower than its header run by the
    check alone (0.587 against 0.539 s for the memtable)."""
    global _malloc_usable_size
    if _malloc_usable_size is None:
        fn = ctypes.CDLL(None).malloc_usable_size
        fn.restype, fn.argtypes = ctypes.c_size_t, [ctypes.c_void_p]
        _malloc_usable_size = fn
    return _malloc_usable_size(base)


def verify(obj, found, base, size, site):
    """Check one lookup answer for a live heap object; None if it is right,
    else a one-line description of what is wrong."""
    addr = id(obj)
    name = type(obj).__name__
    if found != 1:
        return f"{name} at {addr:#x}: not found (heapindex_lookup returned {found})"
    if not base <= addr < base + size:
        return (f"{name} at {addr:#x}: outside the chunk returned "
                f"[{base:#x}, {base + size:#x})")
    offset, want, exact = expected_chunk(obj)
    if addr - base != offset:
        return (f"{name} at {addr:#x}: {addr - base} bytes into chunk {base:#x}, "
                f"expected {offset} (its pre-header)")
    if exact and not site:
        if size < want or size != usable_size(base):
            return (f"{name} at {addr:#x}: chunk size {size}, expected the usable "
                    f"size {usable_size(base)} of a chunk of {want}")
    elif exact and size != want:
        return f"{name} at {addr:#x}: chunk size {size}, expected exactly {want}"
    if not exact and size < want:
        return f"{name} at {addr:#x}: chunk size {size}, expected at least {want}"
    return None


def static_addresses(lookup_fn):
    """Addresses that are certainly not inside a heap chunk: singletons and
    built-in types are static data of the interpreter binary, and the lookup
    function itself is code."""
    return [
        ("None", id(None)),
        ("True", id(True)),
        ("False", id(False)),
        ("Ellipsis", id(Ellipsis)),
        ("NotImplemented", id(NotImplemented)),
        ("type int", id(int)),
        ("type dict", id(dict)),
        ("heapindex_lookup code", ctypes.cast(lookup_fn, ctypes.c_void_p).value),
    ]


class Index:
    """ctypes binding of heapindex_lookup, with reusable out-parameters so a
    query allocates as little as possible."""

    def __init__(self, fn):
        fn.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                       ctypes.POINTER(ctypes.c_size_t),
                       ctypes.POINTER(ctypes.c_void_p)]
        fn.restype = ctypes.c_int
        self.fn = fn
        self.base = ctypes.c_void_p()
        self.size = ctypes.c_size_t()
        self.site = ctypes.c_void_p()
        self.out = (ctypes.byref(self.base), ctypes.byref(self.size),
                    ctypes.byref(self.site))

    def lookup(self, addr):
        """(found, base, size, site); out-parameters are reset first so that
        a stale answer from the previous query cannot pass for a new one."""
        self.base.value = None
        self.size.value = 0
        self.site.value = None
        found = self.fn(addr, *self.out)
        return found, self.base.value or 0, self.size.value, self.site.value or 0


def find_lookup():
    """heapindex_lookup from the process's global symbol scope (where
    LD_PRELOAD puts the hook library), or None."""
    try:
        return ctypes.CDLL(None).heapindex_lookup
    except AttributeError:
        return None


def fail(message):
    print(f"dwarfpy_query: {message}", file=sys.stderr)
    return 2


def main():
    parser = argparse.ArgumentParser(
        description="Run the churn workload and, every K operations, look up "
                    "the touched object in the preloaded heap index "
                    "(heapindex_lookup) and verify the answer.")
    parser.add_argument(
        "--ops", type=positive_int, default=DEFAULT_OPS, metavar="N",
        help=f"number of churn operations (default: {DEFAULT_OPS})")
    parser.add_argument(
        "--every", type=positive_int, default=DEFAULT_EVERY, metavar="K",
        help=f"query the heap index every K operations (default: {DEFAULT_EVERY})")
    parser.add_argument(
        "--verbose", action="store_true",
        help="report every query, with addresses, on stderr")
    args = parser.parse_args()

    fn = find_lookup()
    if fn is None:
        return fail("heapindex_lookup not found: run under ./heapindex run --index <name>")
    # With pymalloc (the default), objects of up to 512 bytes live in arenas
    # that pymalloc carves up itself: they are not malloc chunks, and the
    # index rightly knows nothing about them. Debug allocators add guard
    # bytes around each block, which moves objects inside their chunks.
    if os.environ.get("PYTHONMALLOC") != "malloc" or sys.flags.dev_mode:
        return fail("needs PYTHONMALLOC=malloc (and no -X dev): pymalloc's "
                    "small objects are not malloc chunks")
    index = Index(fn)

    queries = hits = verified = 0
    negatives = false_positives = 0
    first_failure = None

    def report(kind, what, addr, answer, problem):
        if args.verbose:
            found, base, size, site = answer
            print(f"dwarfpy_query: {kind} {what} addr={addr:#x} found={found} "
                  f"base={base:#x} size={size} site={site:#x} "
                  f"{'FAIL: ' + problem if problem else 'ok'}", file=sys.stderr)

    def query_statics():
        nonlocal negatives, false_positives, first_failure
        for what, addr in static_addresses(fn):
            answer = index.lookup(addr)
            negatives += 1
            problem = None
            if answer[0] != 0:
                false_positives += 1
                problem = (f"{what} at {addr:#x} is static, but was found in "
                           f"chunk {answer[1]:#x} of size {answer[2]}")
                first_failure = first_failure or problem
            report("static", what, addr, answer, problem)

    query_statics()

    churn = Churn()
    step = churn.step
    every = args.every
    due = False
    for i in range(args.ops):
        obj = step(i)
        if i % every == every - 1:
            due = True
        # Deletion steps touch no object: the query waits for the next step
        # that does, so which objects are queried is fully deterministic.
        if due and obj is not None:
            due = False
            answer = index.lookup(id(obj))
            found, base, size, site = answer
            queries += 1
            hits += found == 1
            problem = verify(obj, found, base, size, site)
            if problem is None:
                verified += 1
            else:
                first_failure = first_failure or problem
            report("object", type(obj).__name__, id(obj), answer, problem)

    # Again with the heap fully populated: a static address must still not
    # fall into any chunk.
    query_statics()

    print(churn.summary(args.ops))
    print(f"dwarfpy_query: every={every} queries={queries} hits={hits} "
          f"verified={verified} failures={queries - verified} "
          f"static_queries={negatives} false_positives={false_positives}")
    if first_failure is not None:
        print(f"dwarfpy_query: FAILED: {first_failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
