#!/usr/bin/python3
"""tracedump.py - print a heapindex trace (workloads/trace/README.md) as text.

    tracedump.py FILE            header, op counts, size histogram
    tracedump.py FILE --records  also one line per record

A second reader of the format, independent of the C one in
workloads/trace/trace_reader.c: it checks only the header; `heapindex
replay` checks everything.
"""
import collections
import struct
import sys

HEADER = struct.Struct("<8sIIIIIIIIQQ64s8s")
RECORD = struct.Struct("<QQQII")
OPS = {1: "malloc", 2: "calloc", 3: "realloc", 4: "reallocarray", 5: "memalign",
       6: "posix_memalign", 7: "aligned_alloc", 8: "valloc", 9: "pvalloc",
       10: "inherited", 11: "reinsert", 32: "free", 33: "realloc-old", 34: "realloc-free"}
FLAGS = {1: "finished", 2: "forked", 4: "failed"}


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    path, show = argv[1], "--records" in argv[2:]
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < HEADER.size:
        print(f"tracedump: {path}: {len(data)} bytes, shorter than a header", file=sys.stderr)
        return 2
    (magic, version, header_bytes, record_bytes, pointer_bytes, flags, pid, ppid, _,
     count, start_ns, exe, _) = HEADER.unpack_from(data)
    if magic != b"HITRACE1" or version != 1 or record_bytes != RECORD.size:
        print(f"tracedump: {path}: not a version 1 heapindex trace", file=sys.stderr)
        return 2
    if len(data) < header_bytes + count * record_bytes:
        print(f"tracedump: {path}: truncated: {count} records announced", file=sys.stderr)
        return 2
    names = [name for bit, name in FLAGS.items() if flags & bit]
    print(f"{path}: {exe.rstrip(bytes(1)).decode(errors='replace')} pid {pid} ppid {ppid}, "
          f"{count} records, flags {','.join(names) or '-'}")
    ops = collections.Counter()
    sizes = collections.Counter()
    threads = set()
    for i in range(count):
        addr, size_op, site, tid, _ = RECORD.unpack_from(data, header_bytes + i * record_bytes)
        size, op, align = size_op & ((1 << 48) - 1), (size_op >> 48) & 0xFF, size_op >> 56
        ops[OPS.get(op, f"op{op}")] += 1
        threads.add(tid)
        if op < 32:
            sizes[size.bit_length()] += 1
        if show:
            print(f"{i:9} {OPS.get(op, op):14} 0x{addr:012x} {size:10} align 2^{align:<2} "
                  f"site 0x{site:012x} tid {tid}")
    print("ops:", ", ".join(f"{name} {n}" for name, n in ops.most_common()))
    print(f"threads: {len(threads)}")
    print("insert sizes (bytes < 2^k: count):",
          ", ".join(f"2^{k}: {n}" for k, n in sorted(sizes.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
