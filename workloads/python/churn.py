#!/usr/bin/python3
"""Pure-Python object churn: build, mutate and drop many small structures.

The heap pattern of an interpreter running ordinary object-heavy code: a
large, slowly changing population of live objects (dicts, lists, strings,
tuples, instances of small classes, big ints) in a fixed number of slots,
where every operation allocates new objects, replaces old ones (freeing
whole structures at once) or grows and shrinks existing containers (realloc
of their item arrays). With PYTHONMALLOC=malloc every one of those objects
is a malloc chunk.

Everything is driven by random.Random(1), so a given --ops value always does
the same operations and prints the same summary: no addresses, no timings,
no hash()-dependent iteration order (str hashes are randomised per process).

The Churn class is shared with dwarfpy_query.py, which runs the same
operations and queries the heap index about the objects they touch.
"""

import argparse
import random
import sys

DEFAULT_OPS = 300_000
DEFAULT_SLOTS = 50_000
MASK64 = (1 << 64) - 1

# Literal strings are interned constants, not heap objects of this run; they
# are only used as parts of strings built at run time.
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
         "hotel", "india", "juliet", "kilo", "lima", "mike", "november",
         "oscar", "papa", "quebec", "romeo", "sierra", "tango")


class Record:
    """An ordinary class: in CPython 3.11+ its attributes live in a managed
    dict/values block, so the instance chunk has a 32-byte pre-header."""

    def __init__(self, key, name, tags):
        self.key = key
        self.name = name
        self.tags = tags
        self.children = []
        self.weight = key * 31 % 1009


class Vec:
    """A __slots__ class: a fixed-size GC object with no instance dict."""

    __slots__ = ("x", "y", "z")

    def __init__(self, x, y, z):
        self.x = x
        self.y = y
        self.z = z


def mix(digest, value):
    """Fold an integer into a 64-bit running digest (order-sensitive)."""
    return ((digest ^ (value & MASK64)) * 0x100000001B3) & MASK64


class Churn:
    """The workload state. step(i) performs operation i and returns the heap
    object it created or modified (None for pure deletions)."""

    def __init__(self, seed=1, slots=DEFAULT_SLOTS):
        self.rng = random.Random(seed)
        self.pool = [None] * slots
        self.digest = 0
        self.created = 0
        # Operation table: (cumulative probability, method). Fixed order,
        # so the choice made for a given random number never changes.
        table = [
            (0.16, self.op_dict),
            (0.12, self.op_list),
            (0.12, self.op_record),
            (0.07, self.op_vec),
            (0.10, self.op_str),
            (0.06, self.op_tuple),
            (0.04, self.op_bytes),
            (0.04, self.op_bigint),
            (0.05, self.op_tree),
            (0.19, self.op_mutate),
            (0.05, self.op_drop),
        ]
        total = 0.0
        self.table = []
        for weight, op in table:
            total += weight
            self.table.append((total, op))
        assert abs(total - 1.0) < 1e-9, total

    # -- helpers ----------------------------------------------------------

    def text(self, i, parts):
        """A new heap string: joining >= 2 parts always builds a new object
        (a single part would be returned as is, and may be interned)."""
        rng = self.rng
        words = [WORDS[rng.randrange(len(WORDS))] for _ in range(parts)]
        words.append(str(i))
        return "-".join(words)

    def put(self, obj):
        """Store obj in a random slot, dropping whatever was there."""
        self.pool[self.rng.randrange(len(self.pool))] = obj
        self.created += 1
        return obj

    # -- operations -------------------------------------------------------

    def op_dict(self, i):
        rng = self.rng
        d = {
            "id": i,
            "name": self.text(i, 2),
            "tags": [self.text(i, 1) for _ in range(rng.randrange(4))],
            "score": rng.getrandbits(40),
        }
        for k in range(rng.randrange(8)):
            d["extra%d" % k] = k * i
        self.digest = mix(self.digest, len(d) + len(d["name"]))
        return self.put(d)

    def op_list(self, i):
        rng = self.rng
        # 62-bit values: above the small-int cache, so each is a heap int.
        lst = [rng.getrandbits(62) for _ in range(rng.randrange(2, 48))]
        self.digest = mix(self.digest, lst[0] + len(lst))
        return self.put(lst)

    def op_record(self, i):
        rng = self.rng
        tags = [self.text(i, 1) for _ in range(rng.randrange(1, 4))]
        rec = Record(i, self.text(i, 3), tags)
        self.digest = mix(self.digest, rec.weight + len(rec.name))
        return self.put(rec)

    def op_vec(self, i):
        rng = self.rng
        v = Vec(rng.random(), rng.random(), float(i))
        self.digest = mix(self.digest, int(v.x * 1e6))
        return self.put(v)

    def op_str(self, i):
        s = self.text(i, 2 + self.rng.randrange(30))
        self.digest = mix(self.digest, len(s))
        return self.put(s)

    def op_tuple(self, i):
        rng = self.rng
        t = tuple(rng.getrandbits(62) for _ in range(rng.randrange(1, 12)))
        t = (i, self.text(i, 1)) + t
        self.digest = mix(self.digest, len(t))
        return self.put(t)

    def op_bytes(self, i):
        # >= 2 bytes: empty and one-byte bytes objects are static singletons.
        b = self.rng.randbytes(2 + self.rng.randrange(600))
        self.digest = mix(self.digest, len(b) + b[0])
        return self.put(b)

    def op_bigint(self, i):
        rng = self.rng
        # Multi-digit arithmetic: the result is allocated for the worst case
        # and may end up using fewer digits than were allocated.
        n = rng.getrandbits(200 + rng.randrange(800)) * rng.getrandbits(90) + i
        self.digest = mix(self.digest, n)
        return self.put(n)

    def op_tree(self, i):
        rng = self.rng
        root = Record(i, self.text(i, 2), [])
        for c in range(rng.randrange(1, 6)):
            child = Record(i + c, self.text(c, 1), [self.text(i, 1)])
            for g in range(rng.randrange(4)):
                child.children.append(Vec(float(g), float(c), float(i)))
            root.children.append(child)
        self.digest = mix(self.digest, len(root.children))
        return self.put(root)

    def op_mutate(self, i):
        rng = self.rng
        j = rng.randrange(len(self.pool))
        obj = self.pool[j]
        if isinstance(obj, list):
            # Grow or shrink: the list's item array is realloc'ed.
            if rng.random() < 0.6 or len(obj) < 2:
                obj.extend(rng.getrandbits(62) for _ in range(rng.randrange(1, 16)))
            else:
                del obj[len(obj) // 2:]
            self.digest = mix(self.digest, len(obj))
        elif isinstance(obj, dict):
            if rng.random() < 0.7:
                obj["m%d" % i] = self.text(i, 1)
            elif len(obj) > 4:
                obj.pop(next(reversed(obj)))
            self.digest = mix(self.digest, len(obj))
        elif isinstance(obj, Record):
            obj.children.append(self.text(i, 1))
            obj.weight += 1
            self.digest = mix(self.digest, obj.weight)
        elif obj is None:
            self.digest = mix(self.digest, j)
            return None
        else:
            # Immutable values are replaced by a fresh string.
            obj = self.pool[j] = self.text(i, 2)
            self.created += 1
            self.digest = mix(self.digest, len(obj))
        return obj

    def op_drop(self, i):
        rng = self.rng
        # Free a run of neighbouring slots at once: whole structures die
        # together, as when a large object graph goes out of scope.
        start = rng.randrange(len(self.pool))
        for j in range(start, min(start + rng.randrange(1, 16), len(self.pool))):
            self.pool[j] = None
        self.digest = mix(self.digest, start)
        return None

    # -- driver -------------------------------------------------------------

    def step(self, i):
        r = self.rng.random()
        for threshold, op in self.table:
            if r < threshold:
                return op(i)
        return self.table[-1][1](i)

    def summary(self, ops):
        """Deterministic one-line description of the final state."""
        live = 0
        elements = 0
        for obj in self.pool:
            if obj is None:
                continue
            live += 1
            if isinstance(obj, (list, dict, tuple, str, bytes)):
                elements += len(obj)
            elif isinstance(obj, Record):
                elements += len(obj.children) + len(obj.tags)
        return (f"churn: ops={ops} created={self.created} live={live} "
                f"elements={elements} digest={self.digest:016x}")


def positive_int(text):
    """argparse type: an integer > 0."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def main():
    parser = argparse.ArgumentParser(
        description="Pure-Python object churn (dicts, lists, strings, small "
                    "classes) driven by random.Random(1); prints a "
                    "deterministic summary.")
    parser.add_argument(
        "--ops", type=positive_int, default=DEFAULT_OPS, metavar="N",
        help=f"number of operations (default: {DEFAULT_OPS})")
    args = parser.parse_args()

    churn = Churn()
    step = churn.step
    for i in range(args.ops):
        step(i)
    print(churn.summary(args.ops))
    return 0


if __name__ == "__main__":
    sys.exit(main())
