#!/usr/bin/python3
"""Compile the Python standard library's sources to code objects, in memory.

A heap workload with the allocation pattern of a compiler front end: for each
module the parser builds a large AST (many small short-lived nodes in an
arena), the compiler turns it into code objects, constants and name tuples,
and all of it is dropped before the next module. Nothing is written to disk:
compile() is called directly, no .pyc is produced.

Modules are every .py file under sysconfig's "stdlib" directory, in sorted
order of their relative paths, skipping test suites and third-party package
directories (they are not the standard library and their contents vary from
machine to machine).

stdout is one summary line that depends only on the sources and the Python
version (no addresses, no timings), so a run under the heap index hooks can
be diffed byte for byte against a plain run.
"""

import argparse
import os
import sys
import sysconfig
import types
import zlib

# Directories never descended into. Test suites are skipped because they are
# not library code and some hold files that are deliberately invalid Python;
# site-/dist-packages hold whatever happens to be installed.
SKIP_DIRS = frozenset({
    "__pycache__", "test", "tests", "idle_test",
    "site-packages", "dist-packages",
})


def stdlib_files(root):
    """Sorted list of .py paths under root, relative to root."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        # Pruning in place stops os.walk from descending.
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        rel = os.path.relpath(dirpath, root)
        for name in filenames:
            if name.endswith(".py"):
                found.append(os.path.normpath(os.path.join(rel, name)))
    found.sort()
    return found


def walk_code(code):
    """Yield code and every code object nested in its constants."""
    stack = [code]
    while stack:
        co = stack.pop()
        yield co
        stack.extend(c for c in co.co_consts if isinstance(c, types.CodeType))


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def main():
    parser = argparse.ArgumentParser(
        description="Compile every standard library module to code objects "
                    "in memory and print a deterministic summary.")
    parser.add_argument(
        "--modules", type=positive_int, metavar="N",
        help="compile only the first N modules in sorted order (default: all)")
    args = parser.parse_args()

    root = sysconfig.get_paths()["stdlib"]
    files = stdlib_files(root)
    if args.modules is not None:
        files = files[:args.modules]
    if not files:
        print(f"stdlib_compile: no .py files found under {root}", file=sys.stderr)
        return 1

    source_bytes = 0
    code_objects = 0
    bytecode_bytes = 0
    syntax_errors = 0
    digest = 0
    for rel in files:
        # Read bytes: compile() honours the file's coding declaration itself.
        with open(os.path.join(root, rel), "rb") as f:
            source = f.read()
        source_bytes += len(source)
        try:
            # dont_inherit: this script's own compiler flags must not leak in;
            # optimize=0: same bytecode whether or not python runs with -O.
            code = compile(source, rel, "exec", dont_inherit=True, optimize=0)
        except (SyntaxError, ValueError):
            # Counted, not fatal: the count is part of the summary and is as
            # deterministic as everything else.
            syntax_errors += 1
            continue
        for co in walk_code(code):
            code_objects += 1
            bytecode_bytes += len(co.co_code)
            # The raw bytecode is fixed by source and Python version; its
            # CRC catches any difference, not only length changes.
            digest = zlib.crc32(co.co_code, digest)
        del code

    print(f"stdlib_compile: modules={len(files)} source_bytes={source_bytes} "
          f"code_objects={code_objects} bytecode_bytes={bytecode_bytes} "
          f"syntax_errors={syntax_errors} crc32={digest:08x}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
