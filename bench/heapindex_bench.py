#!/usr/bin/python3
"""heapindex bench: run the workload x index x allocator matrix.

    ./heapindex bench [--workloads LIST] [--indexes LIST] [--allocators LIST]
                      [--size small|full] [--runs N] [--warmup N] [--out DIR]
                      [--site-modes LIST] [--until-ci PCT [--budget TIME]]
                      [--callgrind [LIST]] [--callgrind-jobs N] [--shard K/N] [--dry-run]

Every measured run is

    ./heapindex run --index I --allocator A --stats TMP -- COMMAND

(index "none" too: it preloads nothing but still appends the tree line).
The matrix is run in interleaved rounds: round r runs every configuration
once, in an order shuffled by a seeded random generator (the seed and every
round's order are kept in meta.json), so slow drift of a shared machine hits
every configuration alike instead of whichever happened to run last.

Before round 1, each workload runs --warmup times uninstrumented (at least
once): the first of these is the reference whose output (gcc's object file,
python's stdout) every measured run must reproduce, byte for byte. With
--callgrind, each configuration then runs once under valgrind's callgrind
(--callgrind-jobs at a time) for the main process's instruction count.
Then the rounds: --runs of them, or with --until-ci at least --runs and then
more until every configuration's paired wall ratio to uninstrumented has a
95% interval narrower than +-PCT (analysis/heapindex_stats.py), or the next
round would end after --budget. --shard K/N runs one machine's share of the
workloads (analysis/heapindex_merge.py merges the shards' directories).

Writes DIR/runs.csv (one row per run, rewritten after every run so an
interrupted bench keeps what it measured) and DIR/meta.json (machine,
versions, input checksums, git commit, settings). See bench/README.md for
the columns. Exit status: 0 all runs ok, 1 some run failed (the failed rows
are in runs.csv and listed by the report), 2 bad arguments, 130 interrupted.

Standard library only (and analysis/heapindex_stats.py): runs with Debian's
/usr/bin/python3.
"""

import argparse
import csv
import datetime
import glob
import concurrent.futures
import hashlib
import itertools
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Optional

from analysis import heapindex_stats as hstats
from analysis.heapindex_common import fmt_duration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROG = "heapindex bench"
PYTHON = "/usr/bin/python3"
ALLOCATORS = ("glibc", "jemalloc")
SIZES = ("small", "full")


def cache_dir():
    return os.environ.get("HEAPINDEX_CACHE") or os.path.expanduser("~/.cache/heapindex")


# --- workloads ----------------------------------------------------------------
#
# Each workload: a command per size ({out} is replaced by a per-run output
# file), what its output is (a file or stdout), which process of the tree is
# "the process that matters" (its own JSON line gives the proc_* columns),
# the input files it needs, and whether it needs an index that answers
# lookups (dwarfpy_query.py asks the preloaded library about its objects, so
# it cannot run uninstrumented or under the no-op index).

def _py(script, *args):
    return [PYTHON, os.path.join("workloads", "python", script)] + list(args)


# gs renders to the inkcov device: every page rasterised, one line of ink
# coverage per page as the output (a raster file would be hundreds of MB).
GS = ["gs", "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=inkcov", "-sOutputFile={out}"]
# Banded rendering on 2 threads; MaxBitmap=0 forces the banding that the
# rendering threads work on (without it a page this size is one bitmap).
GS_THREADS = ["-dNumRenderingThreads=2", "-dMaxBitmap=0"]
GS_SMALL_PDF = "/usr/share/doc/ghostscript/GS9_Color_Management.pdf"     # ghostscript-doc, 42 pages
GS_FULL_PDF = "gs/valgrind_manual.pdf"                                   # from valgrind, 397 pages
GS_INPUTS = {"small": [GS_SMALL_PDF], "full": [GS_FULL_PDF]}
GS_GENERATE = {GS_FULL_PDF: ["zcat", "/usr/share/doc/valgrind/valgrind_manual.pdf.gz"]}
THREADS_BIN = "build/workloads/threads"
THREADS_OPS = {"small": "3000000", "full": "20000000"}     # per thread


def _threads(n, *extra):
    return {size: [THREADS_BIN, "--threads", str(n), "--ops", ops] + list(extra)
            for size, ops in THREADS_OPS.items()}


def _threads_workload(n, lookup_every=None, callgrind=False):
    extra = ["--lookup-every", str(lookup_every)] if lookup_every else []
    about = (f"workloads/threads/threads.c on {n} thread{'s' if n > 1 else ''}: per-thread churn of "
             "4,096 live 16-128-byte chunks, every 8th operation a chunk handed to the next thread "
             f"to free ({THREADS_OPS['small']} / {THREADS_OPS['full']} operations per thread)")
    if lookup_every:
        about += f", a heapindex_lookup every {lookup_every} operations of every thread"
    return {"about": about, "cmd": _threads(n, *extra), "inputs": {}, "scripts": [THREADS_BIN],
            "output": "stdout", "main": "threads", "lookups": False, "python": False,
            "family": "threads", "threads": n, "pairs": True, "callgrind": callgrind}


# Each workload: "cmd" per size ({out}: a per-run output file; {cache}: the
# input cache), "output" (a file or stdout), "main" (the process whose own
# figures are the proc_* columns, and whose instructions --callgrind counts;
# a name or a tuple of names), "inputs" per size (files in the cache, or
# absolute paths), "scripts" (files of this tree it runs), "lookups" (needs
# an index that answers lookups), "python" (a CPython run: PYTHONMALLOC=malloc
# and friends). Optional: "programs" (executables that must be on PATH, and
# the Debian packages that bring them), "generate" (input -> argv whose stdout
# is that input, run before the first run when the input is missing or
# different), "family" (the unit of --shard: workloads of one family stay on
# one machine; default the workload itself), "threads" (the thread count, for
# the report's scaling table), "pairs" (stdout reports pairs=N, its
# malloc+free pairs), "callgrind_skip" (children valgrind need not follow),
# "callgrind" (always run once under callgrind, even without --callgrind).
WORKLOADS = {
    "gcc": {
        "about": "gcc -O0 -c of SQLite's shell.c (small) or sqlite3.c (full): workloads/gcc.sh",
        "cmd": {"small": ["workloads/gcc.sh", "small", "{out}"],
                "full": ["workloads/gcc.sh", "full", "{out}"]},
        "inputs": {"small": ["shell/shell.c", "shell/sqlite3.h"], "full": ["sqlite3.c"]},
        "scripts": ["workloads/gcc.sh"],
        "output": "file", "main": "cc1", "lookups": False, "python": False,
        "callgrind_skip": ["*/as", "*/collect2", "*/ld"],
    },
    "gcc-O2": {
        "about": "gcc -O2 -c sqlite3.c (full size only): workloads/gcc.sh O2",
        "cmd": {"full": ["workloads/gcc.sh", "O2", "{out}"]},
        "inputs": {"full": ["sqlite3.c"]},
        "scripts": ["workloads/gcc.sh"],
        "output": "file", "main": "cc1", "lookups": False, "python": False,
        "callgrind_skip": ["*/as", "*/collect2", "*/ld"],
    },
    "pycompile": {
        "about": "compile() the Python standard library in memory: workloads/python/stdlib_compile.py",
        "cmd": {"small": _py("stdlib_compile.py", "--modules", "250"),
                "full": _py("stdlib_compile.py")},
        "inputs": {}, "scripts": ["workloads/python/stdlib_compile.py"],
        "output": "stdout", "main": "python", "lookups": False, "python": True,
    },
    "pychurn": {
        "about": "pure-Python object churn: workloads/python/churn.py",
        "cmd": {"small": _py("churn.py", "--ops", "60000"), "full": _py("churn.py")},
        "inputs": {}, "scripts": ["workloads/python/churn.py"],
        "output": "stdout", "main": "python", "lookups": False, "python": True,
    },
    "dwarfpy": {
        "about": "churn plus a heapindex_lookup every 10 operations, each answer verified: "
                 "workloads/python/dwarfpy_query.py (indexes that answer lookups only)",
        "cmd": {"small": _py("dwarfpy_query.py", "--ops", "60000"),
                "full": _py("dwarfpy_query.py")},
        "inputs": {}, "scripts": ["workloads/python/dwarfpy_query.py", "workloads/python/churn.py"],
        "output": "stdout", "main": "python", "lookups": True, "python": True,
    },
    "lua": {
        "about": "Lua 5.4 (Debian's lua5.4) running workloads/lua/bench.lua: trees, strings, records, "
                 "closures and a JSON-like codec (scale 4 small, 20 full)",
        "cmd": {"small": ["lua5.4", "workloads/lua/bench.lua", "4"],
                "full": ["lua5.4", "workloads/lua/bench.lua", "20"]},
        "inputs": {}, "scripts": ["workloads/lua/bench.lua"], "programs": {"lua5.4": "lua5.4"},
        "output": "stdout", "main": "lua5.4", "lookups": False, "python": False,
    },
    "gs": {
        "about": "Ghostscript rendering PDFs Debian ships to the inkcov device: the GS9 colour "
                 "management guide (ghostscript-doc, 42 pages, 72 dpi) small, the Valgrind manual "
                 "(valgrind, 397 pages, 150 dpi) full",
        "cmd": {"small": GS + ["-r72", GS_SMALL_PDF], "full": GS + ["-r150", "{cache}/" + GS_FULL_PDF]},
        "inputs": GS_INPUTS, "generate": GS_GENERATE, "scripts": [],
        "programs": {"gs": "ghostscript"},
        "output": "file", "main": "gs", "lookups": False, "python": False,
    },
    "gs-mt": {
        "about": "the gs workload rendering in bands on 2 threads (-dNumRenderingThreads=2 "
                 "-dMaxBitmap=0): the real multi-threaded program",
        "cmd": {"small": GS + GS_THREADS + ["-r72", GS_SMALL_PDF],
                "full": GS + GS_THREADS + ["-r150", "{cache}/" + GS_FULL_PDF]},
        "inputs": GS_INPUTS, "generate": GS_GENERATE, "scripts": [],
        "programs": {"gs": "ghostscript"},
        "output": "file", "main": "gs", "lookups": False, "python": False, "threads": 2,
    },
    "z3": {
        "about": "the Z3 SMT solver on problems generated by workloads/z3/gen_problem.py: N-queens "
                 "queries with models, and a pigeonhole proof (small: 12 queens, 8 pigeons; full: "
                 "18 queens, 9 pigeons)",
        "cmd": {"small": ["z3", "{cache}/z3/small.smt2"], "full": ["z3", "{cache}/z3/full.smt2"]},
        "inputs": {"small": ["z3/small.smt2"], "full": ["z3/full.smt2"]},
        "generate": {"z3/small.smt2": [PYTHON, "workloads/z3/gen_problem.py", "small"],
                     "z3/full.smt2": [PYTHON, "workloads/z3/gen_problem.py", "full"]},
        "scripts": ["workloads/z3/gen_problem.py"], "programs": {"z3": "z3"},
        "output": "stdout", "main": "z3", "lookups": False, "python": False,
    },
    "redis": {
        "about": "redis-server filled by DEBUG POPULATE and driven by redis-benchmark on 127.0.0.1 "
                 "(14 tests, 20 clients, pipelines of 8; small 50,000 keys and 10,000 requests per "
                 "test, full 400,000 and 120,000), checked by DEBUG DIGEST: "
                 "workloads/redis/redis_bench.py",
        "cmd": {"small": [PYTHON, "workloads/redis/redis_bench.py", "small"],
                "full": [PYTHON, "workloads/redis/redis_bench.py", "full"]},
        "inputs": {}, "scripts": ["workloads/redis/redis_bench.py"],
        "programs": {"redis-server": "redis-server", "redis-benchmark": "redis-tools"},
        # Debian's /usr/bin/redis-server is a link to redis-check-rdb.
        "output": "stdout", "main": ("redis-server", "redis-check-rdb"), "lookups": False,
        "python": False, "callgrind_skip": ["*redis-benchmark"],
    },
    # threads-1 always runs once under callgrind per configuration (about
    # 10-30 s each at small size): its instructions per malloc+free pair are
    # the report's per-pair figure.
    "threads-1": _threads_workload(1, callgrind=True),
    "threads-2": _threads_workload(2),
    "threads-4": _threads_workload(4),
    "threads-lookup": _threads_workload(2, lookup_every=8),
}
GROUPS = {
    "python": ["pycompile", "pychurn", "dwarfpy"],
    "programs": ["lua", "gs", "z3", "redis"],
    "threads": ["threads-1", "threads-2", "threads-4"],
    "all": list(WORKLOADS),
}
DEFAULT_WORKLOADS = "gcc,python"
# Indexes that do not answer lookups: the uninstrumented run and the hooks
# with the no-op index. The lookup workload is not run under them.
NO_LOOKUP_INDEXES = ("none", "noop")

# Allocation-site capture modes (--site-modes; sites/sites.h). Each sets the
# hooks' HEAPINDEX_SITE, HEAPINDEX_SITE_SKIP and HEAPINDEX_CENSUS explicitly
# (None: removed from the environment), so an inherited setting cannot leak
# into a mode. They apply to indexes that load the hooks, not to "none",
# whose rows have site_mode "-".
SITE_MODE_FORMS = "ret, unwind:N (N 1..32), skip, census"
# skip: allocation wrappers of the workloads' main processes; all of them are
# dynamic symbols (nm -D) of cc1 (gcc 12: xmalloc, xcalloc, xrealloc) or of
# /usr/bin/python3 (3.11: PyMem_*, PyObject_*). A name absent from a
# process is simply never matched.
SITE_SKIP = ("xmalloc,xcalloc,xrealloc,PyMem_Malloc,PyMem_Calloc,PyMem_Realloc,"
             "PyObject_Malloc,PyObject_Calloc,PyObject_Realloc")
NO_SITE_MODE = "-"


def built_indexes(root=ROOT):
    """none plus every built libheapindex-NAME.so (record is a trace
    recorder, not an index), in a stable order: none, noop, memtable, rest."""
    names = []
    for lib in glob.glob(os.path.join(root, "build", "lib", "libheapindex-*.so")):
        name = os.path.basename(lib)[len("libheapindex-"):-len(".so")]
        if name != "record":
            names.append(name)
    first = [n for n in ("noop", "memtable") if n in names]
    return ["none"] + first + sorted(n for n in names if n not in first)


# --- argument handling ----------------------------------------------------------

class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr and exit 2."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: {message} (see --help)\n")
        sys.exit(2)


def split_list(text):
    return [x.strip() for x in text.split(",") if x.strip()]


def unique_choices(text, option, valid_text, expand):
    """The names of a comma-separated list, in order, each once: expand(item)
    gives an item's names or raises UsageError for an unknown one."""
    names = []
    for item in split_list(text):
        for name in expand(item):
            if name not in names:
                names.append(name)
    if not names:
        raise UsageError(f"{option} is empty: valid: {valid_text}")
    return names


def parse_workloads(text, size):
    valid = ", ".join(list(WORKLOADS) + list(GROUPS))

    def expand(item):
        if any(name not in WORKLOADS for name in GROUPS.get(item, [item])):
            raise UsageError(f"unknown workload '{item}': valid: {valid}")
        return GROUPS.get(item, [item])

    names = unique_choices(text, "--workloads", valid, expand)
    explicit = set(split_list(text))
    keep = []
    for name in names:
        if size in WORKLOADS[name]["cmd"]:
            keep.append(name)
        elif name in explicit:
            sizes = ", ".join(WORKLOADS[name]["cmd"])
            raise UsageError(f"workload '{name}' has no {size} size: valid sizes: {sizes}")
    return keep


def parse_indexes(text, available):
    if text.strip() == "all":
        return list(available)

    def expand(name):
        if name not in available:
            raise UsageError(f"unknown or unbuilt index '{name}': valid: {', '.join(available)}, all"
                             + ("" if len(available) > 1 else " (run make first)"))
        return [name]

    return unique_choices(text, "--indexes", f"{', '.join(available)}, all", expand)


def parse_allocators(text):
    def expand(name):
        if name not in ALLOCATORS:
            raise UsageError(f"unknown allocator '{name}': valid: {', '.join(ALLOCATORS)}")
        return [name]

    return unique_choices(text, "--allocators", ", ".join(ALLOCATORS), expand)


def parse_site_modes(text):
    """'ret,unwind:8,skip,census' -> ['ret', 'unwind:8', 'skip', 'census']."""
    modes = []
    for item in split_list(text):
        mode = item
        if item.startswith("unwind:"):
            n = item[len("unwind:"):]
            if not n.isdigit() or not 1 <= int(n) <= 32:
                raise UsageError(f"bad site mode '{item}': N of unwind:N must be 1..32; "
                                 f"valid: {SITE_MODE_FORMS}")
            mode = f"unwind:{int(n)}"
        elif item not in ("ret", "skip", "census"):
            raise UsageError(f"unknown site mode '{item}': valid: {SITE_MODE_FORMS}")
        if mode not in modes:
            modes.append(mode)
    if not modes:
        raise UsageError(f"--site-modes is empty: valid: {SITE_MODE_FORMS}")
    return modes


def site_env(mode, census_path=None):
    """The env_extra of a site mode (None values are removed from the env)."""
    if mode == NO_SITE_MODE:
        return {}
    env = {"HEAPINDEX_SITE": "ret", "HEAPINDEX_SITE_SKIP": None, "HEAPINDEX_CENSUS": None}
    if mode.startswith("unwind:"):
        env["HEAPINDEX_SITE"] = mode
    elif mode == "skip":
        env["HEAPINDEX_SITE_SKIP"] = SITE_SKIP
    elif mode == "census":
        env["HEAPINDEX_CENSUS"] = census_path
    return env


def count(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, not '{text}'")
        return value
    return parse


def percent(text: str) -> float:
    """--until-ci: a half-width in percent, 0 < PCT <= 100 ('1', '0.5', '2%')."""
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        value = None
    if value is None or not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"expected a percentage > 0 and <= 100, not '{text}'")
    return value


DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def duration(text: str) -> float:
    """--budget: seconds, or a number with s, m or h ('600', '9m', '1.5h')."""
    unit = text[-1:] if text[-1:] in ("s", "m", "h") else ""
    try:
        value = float(text[:len(text) - len(unit)]) * DURATION_UNITS[unit]
    except ValueError:
        value = None
    if value is None or not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a duration > 0 in seconds, or with s, m or h "
                                         f"(600, 9m, 1.5h), not '{text}'")
    return value


def shard(text: str) -> tuple:
    """--shard K/N: 1 <= K <= N <= 1000 -> (K, N)."""
    parts = text.split("/")
    ok = len(parts) == 2 and all(p.isdigit() for p in parts)
    k, n = (int(parts[0]), int(parts[1])) if ok else (0, 0)
    if not ok or not 1 <= k <= n <= 1000:
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N <= 1000, not '{text}'")
    return k, n


def family(workload: str) -> str:
    return WORKLOADS[workload].get("family", workload)


def shard_workloads(workloads: list, k: int, n: int) -> list:
    """The workloads of shard k of n: families (workloads that must share a
    machine) in the fixed order of WORKLOADS, family j to shard j mod n + 1.
    The same on every machine whatever order --workloads named them in."""
    families = []
    for w in WORKLOADS:
        if w in workloads and family(w) not in families:
            families.append(family(w))
    mine = {f for j, f in enumerate(families) if j % n == k - 1}
    return [w for w in workloads if family(w) in mine]


def default_callgrind(workloads: list) -> list:
    """--callgrind without a list: every selected single-threaded workload
    (under valgrind a multi-threaded one spins on one CPU and its count
    depends on valgrind's scheduler; name it to have it anyway)."""
    return [w for w in workloads if WORKLOADS[w].get("threads", 1) == 1]


def make_parser():
    p = Parser(prog=PROG, description="Run the workload x index x allocator matrix in "
               "interleaved, shuffled rounds; write DIR/runs.csv and DIR/meta.json.")
    p.add_argument("--workloads", default=DEFAULT_WORKLOADS, metavar="LIST",
                   help="comma-separated: " + ", ".join(WORKLOADS) + "; groups: "
                   + ", ".join(f"{g} ({'+'.join(m)})" for g, m in GROUPS.items())
                   + f" (default {DEFAULT_WORKLOADS})")
    p.add_argument("--indexes", default="all", metavar="LIST",
                   help="comma-separated index names, or all (default): none (uninstrumented) "
                   "and every built build/lib/libheapindex-NAME.so")
    p.add_argument("--allocators", default="glibc", metavar="LIST",
                   help="comma-separated: glibc, jemalloc (default glibc)")
    p.add_argument("--size", default="small", choices=SIZES, help="workload size (default small)")
    p.add_argument("--runs", type=count(1), default=3, metavar="N",
                   help="measured rounds (default 3)")
    p.add_argument("--warmup", type=count(0), default=1, metavar="N",
                   help="uninstrumented warm-up runs per workload before round 1; the first is "
                   "also the reference output (one is made even with 0) (default 1)")
    p.add_argument("--out", metavar="DIR", help="results directory (default results/<timestamp>)")
    p.add_argument("--seed", type=count(0), metavar="N",
                   help="seed of the round shuffles (default: from the clock; kept in meta.json)")
    p.add_argument("--scale", action="store_true",
                   help="also run ./heapindex scale --index all --out DIR/scale.csv after the rounds "
                   "(skipped with a note if that command is not built)")
    p.add_argument("--scale-args", default="", metavar="ARGS",
                   help="extra arguments for heapindex scale, e.g. '--max-chunks 1e6 --budget 0.5'")
    p.add_argument("--replay", nargs="?", const="selected", metavar="LIST",
                   help="also record the heap trace of each selected workload, or of those in LIST "
                   "(heapindex record) and replay it in-process against the indexes (heapindex "
                   "replay, --runs rounds) into DIR/replay.csv; skipped with a note if not built")
    p.add_argument("--site-modes", default="ret", metavar="LIST",
                   help="allocation-site capture modes, comma-separated: ret (return address), "
                   "unwind:N (libunwind stack of up to N frames, 1..32), skip (ret past the "
                   "allocation wrappers of cc1 and python), census (ret plus the per-site live "
                   "census); each multiplies the configurations of every index but none "
                   "(default ret)")
    p.add_argument("--timeout", type=count(1), metavar="S",
                   help="kill a run after S seconds (default max(300, 30 x its reference run))")
    p.add_argument("--until-ci", type=percent, metavar="PCT",
                   help="after --runs rounds (at least 2), keep adding rounds until every "
                   "interval of interest (each configuration's paired ratio to uninstrumented, or "
                   "to memtable where there is no uninstrumented run) is narrower than +-PCT "
                   "percent, or --budget would be exceeded; says which ended it")
    p.add_argument("--budget", type=duration, metavar="TIME",
                   help="with --until-ci: start no round that would end more than TIME after the "
                   "bench started (seconds, or with s/m/h; default 1h); warm-up and --callgrind "
                   "runs count, --replay and --scale afterwards do not")
    p.add_argument("--callgrind", nargs="?", const="selected", metavar="LIST",
                   help="before round 1, run each configuration of each selected workload (or of "
                   "those in LIST) once under valgrind --tool=callgrind and record the main "
                   "process's instructions (columns callgrind_ir, callgrind_ir_ratio); without "
                   "LIST multi-threaded workloads are left out")
    p.add_argument("--callgrind-jobs", type=count(1), default=min(2, os.cpu_count() or 1), metavar="N",
                   help="callgrind runs at once (instruction counts do not depend on load; "
                   "default min(2, CPUs))")
    p.add_argument("--shard", type=shard, metavar="K/N",
                   help="run only shard K of N: workload families dealt round-robin in a fixed "
                   "order, so every configuration of a workload runs on the same machine; merge "
                   "the results directories with ./heapindex report DIR1 DIR2 ...")
    p.add_argument("--dry-run", action="store_true",
                   help="print the workloads and configurations that would run, and exit")
    return p


# --- environment description (meta.json) ----------------------------------------

def command_output(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return r.stdout.strip() if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def dpkg_version(package):
    return command_output(["dpkg-query", "-W", "-f=${Version}", package])


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def mem_total_kb():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def loadavg():
    try:
        return [float(x) for x in open("/proc/loadavg").read().split()[:3]]
    except (OSError, ValueError):
        return None


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pinned_sums():
    sums = {}
    try:
        with open(os.path.join(ROOT, "workloads", "inputs.sha256")) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    sums[parts[1]] = parts[0]
    except OSError:
        pass
    return sums


def input_checksums(workloads, size):
    pins = pinned_sums()
    out = {}
    for w in workloads:
        for rel in WORKLOADS[w]["inputs"].get(size, []):
            path = os.path.join(cache_dir(), rel)
            entry = {"path": path}
            if os.path.isfile(path):
                entry["sha256"] = sha256_file(path)
                if rel in pins:
                    entry["matches_pin"] = entry["sha256"] == pins[rel]
            else:
                entry["missing"] = True
            out[rel] = entry
        for rel in WORKLOADS[w]["scripts"]:
            path = os.path.join(ROOT, rel)
            if os.path.isfile(path):
                out[rel] = {"path": path, "sha256": sha256_file(path)}
    return out


def git_info():
    commit = command_output(["git", "-C", ROOT, "rev-parse", "HEAD"])
    status = command_output(["git", "-C", ROOT, "status", "--porcelain"])
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def machine_id() -> Optional[str]:
    """/etc/machine-id (systemd's per-installation id) if readable, else None."""
    try:
        with open("/etc/machine-id") as f:
            return f.read().strip() or None
    except OSError:
        return None


def machine_name() -> str:
    """What runs.csv's machine column holds: the host name."""
    return platform.uname().node or "unknown"


def machine_meta(workloads, size):
    uname = platform.uname()
    gcc = command_output(["gcc", "--version"])
    return {
        "machine": {
            "hostname": machine_name(), "machine_id": machine_id(), "nproc": os.cpu_count(),
            "mem_total_kb": mem_total_kb(), "kernel": uname.release, "arch": uname.machine,
            "cpu_model": cpu_model(),
        },
        "versions": {
            "gcc": gcc.splitlines()[0] if gcc else None,
            "glibc": dpkg_version("libc6"),
            "jemalloc": dpkg_version("libjemalloc2"),
            "python": command_output([PYTHON, "--version"]),
            "hyperfine": dpkg_version("hyperfine"),
        },
        "inputs": input_checksums(workloads, size),
        "git": git_info(),
    }


# --- one run ----------------------------------------------------------------------

FIXED_COLUMNS = [
    "workload", "size", "index", "allocator", "site_mode", "phase", "round", "order",
    "family", "threads", "machine",
    "wall_s", "user_s", "sys_s", "max_rss_kb", "minflt", "majflt", "exit_status",
    "status", "note",
    "procs", "proc_exe", "proc_wall_s", "proc_user_s", "proc_sys_s", "proc_max_rss_kb",
    "proc_minflt", "proc_majflt", "proc_alloc_calls", "proc_free_calls",
    "proc_peak_live_chunks", "proc_peak_live_bytes", "proc_peak_meta_bytes",
    "proc_lookups_found", "proc_lookups_missed",
    "procs_max_rss_kb_sum", "procs_minflt_sum", "procs_majflt_sum",
    "output_sha256", "started",
    "pairs", "callgrind_ir", "callgrind_ir_ratio",
]
ALLOC_CALLS = ("malloc", "calloc", "realloc", "reallocarray", "memalign", "posix_memalign",
               "aligned_alloc", "valloc", "pvalloc")


def parse_stats(path):
    """(tree line or None, [process lines]) from a --stats file."""
    tree, procs = None, []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if obj.get("kind") == "tree":
                    tree = obj
                elif obj.get("kind") == "process":
                    procs.append(obj)
    except OSError:
        pass
    return tree, procs


def is_main_process(workload, exe):
    main = WORKLOADS[workload]["main"]
    names = main if isinstance(main, tuple) else (main,)
    return any(exe.startswith("python") if m == "python" else exe == m for m in names)


def fill_from_stats(row, workload, tree, procs):
    if tree:
        for key in ("wall_s", "user_s", "sys_s", "max_rss_kb", "minflt", "majflt", "exit_status"):
            row[key] = tree.get(key)
    row["procs"] = len(procs)
    if procs:
        row["procs_max_rss_kb_sum"] = sum(p.get("max_rss_kb", 0) for p in procs)
        row["procs_minflt_sum"] = sum(p.get("minflt", 0) for p in procs)
        row["procs_majflt_sum"] = sum(p.get("majflt", 0) for p in procs)
    mains = [p for p in procs if is_main_process(workload, p.get("exe", ""))]
    if not mains:
        return
    p = max(mains, key=lambda q: q.get("wall_s", 0))
    row["proc_exe"] = p.get("exe")
    for key in ("wall_s", "user_s", "sys_s", "max_rss_kb", "minflt", "majflt", "peak_live_chunks",
                "peak_live_bytes", "peak_meta_bytes", "lookups_found", "lookups_missed"):
        row["proc_" + key] = p.get(key)
    calls = p.get("calls") or {}
    row["proc_alloc_calls"] = sum(calls.get(k, 0) for k in ALLOC_CALLS)
    row["proc_free_calls"] = calls.get("free")
    for key, value in (p.get("index_stats") or {}).items():
        if isinstance(value, (int, float)):
            row["idx_" + key] = value


def tail_text(path, lines=3, width=300):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    kept = [l.strip() for l in text.splitlines() if l.strip()][-lines:]
    return " | ".join(kept)[-width:]


def signal_name(n):
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


def workload_argv(workload, size, out_file):
    return [a.replace("{out}", out_file).replace("{cache}", cache_dir())
            for a in WORKLOADS[workload]["cmd"][size]]


def workload_env(workload, extra=None):
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    if WORKLOADS[workload]["python"]:
        env["PYTHONMALLOC"] = "malloc"      # every object a malloc chunk
        env["PYTHONHASHSEED"] = "0"         # same dict layouts run to run
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def missing_programs(workload: str) -> list:
    """'lua5.4 (Debian package lua5.4)' for each program of the workload not on PATH."""
    return [f"{exe} (Debian package {pkg})" for exe, pkg in WORKLOADS[workload].get("programs", {}).items()
            if not shutil.which(exe)]


def prepare_inputs(workloads: list, size: str) -> dict:
    """Write each generated input (WORKLOADS' "generate") into the cache when
    it is missing or differs from what its generator writes now. Returns
    notes for meta.json; a failed generator leaves the input missing, so the
    workload's runs fail with a note saying so."""
    notes = {}
    for w in workloads:
        for rel, argv in WORKLOADS[w].get("generate", {}).items():
            if rel not in WORKLOADS[w]["inputs"].get(size, []) or rel in notes:
                continue
            path = os.path.join(cache_dir(), rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp{os.getpid()}"
            try:
                with open(tmp, "wb") as out:
                    r = subprocess.run(argv, cwd=ROOT, stdout=out, stderr=subprocess.PIPE, timeout=600)
                if r.returncode != 0:
                    err = (r.stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
                    notes[rel] = f"failed: {' '.join(argv)} exited {r.returncode}: {err}"
                    continue
                if os.path.isfile(path) and sha256_file(path) == sha256_file(tmp):
                    notes[rel] = "up to date"
                else:
                    os.replace(tmp, path)
                    notes[rel] = f"written by {' '.join(argv)}"
            except (OSError, subprocess.SubprocessError) as e:
                notes[rel] = f"failed: {' '.join(argv)}: {e}"
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
    return notes


def callgrind_argv(workload: str, out_pattern: str) -> list:
    """valgrind in front of a workload's command: callgrind, following the
    children (cc1 is gcc's child) except those the workload names, never
    replacing the hooks' malloc with valgrind's own."""
    argv = ["valgrind", "--tool=callgrind", "--trace-children=yes",
            f"--callgrind-out-file={out_pattern}", "--soname-synonyms=somalloc=nouserintercepts"]
    skip = WORKLOADS[workload].get("callgrind_skip")
    if skip:
        argv.append("--trace-children-skip=" + ",".join(skip))
    return argv


def callgrind_totals(directory: str) -> list:
    """[(command name, instructions)] of every callgrind.out file in directory."""
    out = []
    for path in glob.glob(os.path.join(directory, "cg.*")):
        cmd, total = None, None
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    if line.startswith("cmd:"):
                        words = line[4:].split()
                        cmd = os.path.basename(words[0]) if words else None
                    elif line.startswith(("summary:", "totals:")) and total is None:
                        total = int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if cmd and total is not None:
            out.append((cmd, total))
    return out


PAIRS_RE = re.compile(rb"\bpairs=(\d+)\b")


def output_pairs(path: str) -> Optional[int]:
    """N from 'pairs=N' in a workload's stdout (the thread workload), or None."""
    try:
        with open(path, "rb") as f:
            m = PAIRS_RE.search(f.read(1 << 16))
    except OSError:
        return None
    return int(m.group(1)) if m else None


class Runner:
    """Runs one configuration once and turns it into a runs.csv row. Several
    runs may go at once from different threads (--callgrind-jobs)."""

    def __init__(self, out_dir, timeout=None):
        self.out_dir = out_dir
        self.tmp = os.path.join(out_dir, "tmp")
        self.logs = os.path.join(out_dir, "logs")
        os.makedirs(self.tmp, exist_ok=True)
        self.timeout = timeout
        self.cli = os.path.join(ROOT, "heapindex")
        self.serial = itertools.count(1)
        self.lock = threading.Lock()
        self.active = set()
        self.machine = machine_name()

    def missing_inputs(self, workload, size):
        w = WORKLOADS[workload]
        missing = [os.path.join(cache_dir(), rel) for rel in w["inputs"].get(size, [])
                   if not os.path.isfile(os.path.join(cache_dir(), rel))]
        missing += [os.path.join(ROOT, rel) for rel in w["scripts"]
                    if not os.path.isfile(os.path.join(ROOT, rel))]
        return missing

    def kill_all(self):
        """Kill every run in progress (on interrupt): each is its own session."""
        with self.lock:
            procs = list(self.active)
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass

    def not_runnable(self, row, workload, size):
        """Fill row as failed if an input or program is missing; True then."""
        missing = self.missing_inputs(workload, size)
        programs = missing_programs(workload)
        if missing:
            hint = "make" if any(m.startswith(os.path.join(ROOT, "build")) for m in missing) \
                else "sh workloads/fetch-inputs.sh"
            row.update(status="failed", note="missing input: " + ", ".join(missing) + f" (run: {hint})")
        elif programs:
            row.update(status="failed", note="not installed: " + ", ".join(programs)
                       + " (run: make deps)")
        return bool(missing or programs)

    def new_row(self, workload, size, index, allocator, site_mode):
        w = WORKLOADS[workload]
        return {"workload": workload, "size": size, "index": index, "allocator": allocator,
                "site_mode": site_mode or (NO_SITE_MODE if index == "none" else "ret"),
                "family": family(workload), "threads": w.get("threads", 1), "machine": self.machine,
                "started": datetime.datetime.now().isoformat(timespec="seconds")}

    def spawn_and_wait(self, argv, env, stdout_path, stderr_path, limit):
        """Run argv in its own session; returns (returncode, timed_out)."""
        with open(stdout_path, "wb") as so, open(stderr_path, "wb") as se:
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                    stdout=so, stderr=se, start_new_session=True)
            with self.lock:
                self.active.add(proc)
            try:
                proc.wait(timeout=limit)
                return proc.returncode, False
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)   # our own session: the run's whole tree
                proc.wait()
                return proc.returncode, True
            except BaseException:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
            finally:
                with self.lock:
                    self.active.discard(proc)

    def run(self, workload, size, index, allocator, env_extra=None, timeout=None, site_mode=None,
            callgrind=False):
        """Run once; returns a row dict (status ok/failed, note, output_sha256, ...).
        With site_mode (--site-modes) its environment is added to env_extra
        and it is the row's site_mode. With callgrind the command runs under
        valgrind --tool=callgrind and the row gets callgrind_ir, the main
        process's instructions."""
        with self.lock:
            serial = next(self.serial)
        mode_tag = "" if site_mode in (None, "ret", NO_SITE_MODE) else "-" + site_mode.replace(":", "")
        tag = f"{serial:05d}-{workload}-{size}-{index}-{allocator}{mode_tag}" + ("-cg" if callgrind else "")
        row = self.new_row(workload, size, index, allocator, site_mode)
        census = os.path.join(self.tmp, tag + ".census")
        if site_mode is not None:
            env_extra = dict(env_extra or {}, **site_env(site_mode, census))
        if self.not_runnable(row, workload, size):
            return row
        w = WORKLOADS[workload]
        out_file = os.path.join(self.tmp, tag + ".o")
        stats = os.path.join(self.tmp, tag + ".jsonl")
        stdout_path = os.path.join(self.tmp, tag + ".stdout")
        stderr_path = os.path.join(self.tmp, tag + ".stderr")
        cg_dir = os.path.join(self.tmp, tag + ".cg")
        for path in (out_file, stats):
            if os.path.exists(path):
                os.unlink(path)
        cmd = workload_argv(workload, size, out_file)
        if callgrind:
            os.makedirs(cg_dir, exist_ok=True)
            cmd = callgrind_argv(workload, os.path.join(cg_dir, "cg.%p")) + cmd
            # valgrind maps at most ~2^35 bytes at once: the memtable's
            # two-level table (the other indexes ignore the setting).
            env_extra = dict(env_extra or {}, HEAPINDEX_TABLE_LEVELS="2")
        argv = [self.cli, "run", "--index", index, "--allocator", allocator, "--stats", stats, "--"] + cmd
        env = workload_env(workload, env_extra)
        limit = timeout or self.timeout
        returncode, timed_out = self.spawn_and_wait(argv, env, stdout_path, stderr_path, limit)
        tree, procs = parse_stats(stats)
        fill_from_stats(row, workload, tree, procs)
        problems = []
        if timed_out:
            problems.append(f"timeout after {limit} s")
        elif tree is None:
            problems.append(f"heapindex run exited {returncode} without a tree line")
        else:
            st = tree.get("exit_status", returncode)
            if st != 0:
                problems.append(f"exit status {st}" + (f" ({signal_name(st - 128)})" if st > 128 else ""))
        out_path = out_file if w["output"] == "file" else stdout_path
        if os.path.isfile(out_path):
            row["output_sha256"] = sha256_file(out_path)
            if w.get("pairs"):
                row["pairs"] = output_pairs(out_path)
        elif not problems:
            problems.append("no output produced")
        if callgrind and not problems:
            counts = [n for cmd_name, n in callgrind_totals(cg_dir) if is_main_process(workload, cmd_name)]
            if counts:
                row["callgrind_ir"] = max(counts)
            else:
                problems.append("callgrind wrote no profile of the main process")
        self.finish(row, tag, problems, (stderr_path, stdout_path, stats))
        for path in (out_file, stats, stdout_path, stderr_path, census):
            if os.path.exists(path):
                os.unlink(path)
        shutil.rmtree(cg_dir, ignore_errors=True)
        return row

    def finish(self, row, tag, problems, logs):
        if problems:
            err = tail_text(logs[0])
            row["status"] = "failed"
            row["note"] = "; ".join(problems) + (f"; stderr: {err}" if err else "")
            os.makedirs(self.logs, exist_ok=True)
            for path, ext in zip(logs, ("stderr", "stdout", "jsonl")):
                if os.path.exists(path):
                    shutil.copy(path, os.path.join(self.logs, f"{tag}.{ext}"))
        else:
            row["status"] = "ok"
            row["note"] = ""


def write_rows(path, rows):
    idx_cols = sorted({k for r in rows for k in r if k.startswith("idx_")})
    columns = FIXED_COLUMNS + idx_cols
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    os.replace(tmp, path)


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


# --- in-process measurements of the C command (optional) -----------------------------

def cli_has(command):
    """True if build/bin/heapindex knows COMMAND (its --help exits 0)."""
    exe = os.path.join(ROOT, "build", "bin", "heapindex")
    try:
        r = subprocess.run([exe, command, "--help"], capture_output=True, timeout=30)
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def run_scale(out_dir, extra_args=""):
    """./heapindex scale --index all --out DIR/scale.csv [EXTRA]; returns a note."""
    if not cli_has("scale"):
        return "skipped: `heapindex scale` is not built"
    path = os.path.join(out_dir, "scale.csv")
    argv = [os.path.join(ROOT, "heapindex"), "scale", "--index", "all", "--out", path] + extra_args.split()
    print(f"{PROG}: {' '.join(argv[1:])}", file=sys.stderr, flush=True)
    t0 = time.time()
    try:
        r = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=3600)
    except subprocess.TimeoutExpired:
        return "failed: timed out after 3600 s"
    if r.returncode != 0 or not os.path.exists(path):
        err = (r.stderr.strip().splitlines() or [""])[-1]
        return f"failed: exit {r.returncode}: {err}"
    return f"ok in {time.time() - t0:.0f} s: {path}"


def record_trace(workload, size, trace_path, log):
    """Record the workload's heap trace; returns the path of the biggest
    trace file of its tree (cc1's for gcc) or raises RuntimeError."""
    out_file = trace_path + ".out"
    argv = [os.path.join(ROOT, "heapindex"), "record", "-o", trace_path, "--"] + \
        workload_argv(workload, size, out_file)
    r = subprocess.run(argv, cwd=ROOT, env=workload_env(workload), stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, timeout=3600)
    if os.path.exists(out_file):
        os.unlink(out_file)
    log.write(r.stderr)
    files = [f for f in glob.glob(glob.escape(trace_path) + "*") if not f.endswith(".out")]
    # Under the recorder no index answers lookups, so the lookup workload
    # fails its own checks (exit 1): its trace is still complete.
    tolerated = WORKLOADS[workload]["lookups"] and r.returncode == 1
    if (r.returncode != 0 and not tolerated) or not files:
        raise RuntimeError(f"record exited {r.returncode}: "
                           + ((r.stderr.strip().splitlines() or [""])[-1]))
    return max(files, key=os.path.getsize), files


def run_replay(out_dir, workloads, size, indexes, rounds):
    """Record each workload's trace, replay it in-process against the
    indexes, write DIR/replay.csv (index, trace, op, ns_per_op); returns a
    note. Traces are deleted afterwards (they can be large)."""
    if not (cli_has("record") and cli_has("replay")):
        return "skipped: `heapindex record` / `heapindex replay` are not built"
    chosen = [i for i in indexes if i != "none"]
    if not chosen:
        return "skipped: no index selected"
    tdir = os.path.join(out_dir, "traces")
    os.makedirs(tdir, exist_ok=True)
    out_rows, notes = [], []
    with open(os.path.join(out_dir, "replay.log"), "w") as log:
        # dwarfpy's heap is pychurn's: replaying both would measure the same trace twice.
        for w in [w for w in workloads if not (w == "dwarfpy" and "pychurn" in workloads)]:
            t0 = time.time()
            trace = os.path.join(tdir, f"{w}-{size}.trace")
            try:
                path, files = record_trace(w, size, trace, log)
                csv_path = trace + ".csv"
                argv = [os.path.join(ROOT, "heapindex"), "replay", path, "--index", ",".join(chosen),
                        "--rounds", str(rounds), "--csv", csv_path]
                print(f"{PROG}: replay {w}/{size}: {' '.join(argv[1:])}", file=sys.stderr, flush=True)
                r = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, timeout=3600)
                log.write(r.stdout + r.stderr)
                if r.returncode != 0:
                    raise RuntimeError(f"replay exited {r.returncode}: "
                                       + ((r.stderr.strip().splitlines() or [""])[-1]))
                with open(csv_path, newline="") as f:
                    for row in csv.DictReader(f):
                        for op in ("insert", "remove", "lookup"):
                            out_rows.append({"index": row["index"], "trace": f"{w}/{size}", "op": op,
                                             "ns_per_op": row[op + "_ns"], "round": row.get("round"),
                                             "records": row.get("records")})
                notes.append(f"{w}/{size}: ok in {time.time() - t0:.0f} s "
                             f"({os.path.basename(path)}, {os.path.getsize(path) >> 20} MiB)")
            except (RuntimeError, OSError, subprocess.SubprocessError, KeyError) as e:
                notes.append(f"{w}/{size}: failed: {e}")
            finally:
                for f in glob.glob(glob.escape(trace) + "*"):
                    os.unlink(f)
    shutil.rmtree(tdir, ignore_errors=True)
    if out_rows:
        with open(os.path.join(out_dir, "replay.csv"), "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=["index", "trace", "op", "ns_per_op", "round", "records"])
            wr.writeheader()
            wr.writerows(out_rows)
    return "; ".join(notes)


# --- the matrix -------------------------------------------------------------------

def reference_index(workload, indexes):
    """The index of the reference run: uninstrumented, or for the lookup
    workload (which needs an index) memtable, else the first that answers."""
    if not WORKLOADS[workload]["lookups"]:
        return "none"
    for name in ["memtable"] + list(indexes) + built_indexes():
        if name not in NO_LOOKUP_INDEXES:
            return name
    return None


def configurations(workloads, size, indexes, allocators):
    configs, skipped = [], []
    for w in workloads:
        for i in indexes:
            for a in allocators:
                if WORKLOADS[w]["lookups"] and i in NO_LOOKUP_INDEXES:
                    skipped.append(f"{w}/{size} {i}/{a}: index answers no lookups")
                    continue
                configs.append((w, size, i, a))
    return configs, skipped


def with_site_modes(configs, site_modes):
    """(w, s, i, a) -> (w, s, i, a, mode) for every mode; "none" once, mode "-"."""
    out = []
    for (w, s, i, a) in configs:
        for m in ([NO_SITE_MODE] if i == "none" else site_modes):
            out.append((w, s, i, a, m))
    return out


def config_text(config):
    w, s, i, a, m = config
    return f"{w}/{s} {i}/{a}" + ("" if m in ("ret", NO_SITE_MODE) else f" site={m}")


def baseline_config(config: tuple, configs: list) -> Optional[tuple]:
    """The configuration an --until-ci interval compares config with: the
    uninstrumented run of its workload, size and allocator, or where there is
    none (the lookup workload) memtable with the same site mode; None for
    the baseline itself or when neither is in configs."""
    w, s, i, a, m = config
    if i == "none":
        return None
    none = (w, s, "none", a, NO_SITE_MODE)
    if none in configs:
        return none
    mem = (w, s, "memtable", a, m)
    return mem if i != "memtable" and mem in configs else None


def row_config(row: dict) -> tuple:
    return (row["workload"], row["size"], row["index"], row["allocator"],
            row.get("site_mode") or (NO_SITE_MODE if row["index"] == "none" else "ret"))


def interest_intervals(rows: list, configs: list) -> dict:
    """{configuration text: ratio_ci of its per-round wall ratio to its
    baseline} over the measured ok rows, for every configuration that has a
    baseline (the intervals --until-ci waits for)."""
    walls = {}
    for r in rows:
        ok = r.get("phase") == "measure" and r.get("status") == "ok"
        if ok and isinstance(r.get("wall_s"), (int, float)):
            walls.setdefault(row_config(r), {})[r["round"]] = r["wall_s"]
    out = {}
    for c in configs:
        base = baseline_config(c, configs)
        if base is None:
            continue
        mine, theirs = walls.get(c, {}), walls.get(base, {})
        ratios = [mine[k] / theirs[k] for k in mine if k in theirs and mine[k] > 0 and theirs[k] > 0]
        out[config_text(c) + " vs " + base[2]] = hstats.ratio_ci(ratios)
    return out


def widest(intervals: dict, limit: int = 3) -> str:
    """'gcc/full vghash/glibc vs none +-2.3%, ...': the widest intervals."""
    def width(item):
        hw = item[1]["half_width_pct"]
        return math.inf if hw is None else hw
    items = sorted(intervals.items(), key=width, reverse=True)[:limit]
    return ", ".join(f"{k} " + ("(fewer than 2 paired rounds)" if v["half_width_pct"] is None
                                 else f"+-{v['half_width_pct']:.1f}%") for k, v in items)


class Plan:
    """What a bench will run, validated from the arguments."""

    def __init__(self, args, parser):
        available = built_indexes()
        try:
            selected = parse_workloads(args.workloads, args.size)
            self.indexes = parse_indexes(args.indexes, available)
            self.allocators = parse_allocators(args.allocators)
            self.site_modes = parse_site_modes(args.site_modes)
            callgrind = self.optional_list(args.callgrind, selected, args.size, "--callgrind",
                                           default_callgrind)
            replay = self.optional_list(args.replay, selected, args.size, "--replay", list)
        except UsageError as e:
            parser.error(str(e))
        if not os.access(os.path.join(ROOT, "build", "bin", "heapindex"), os.X_OK):
            parser.error(f"{ROOT}/build/bin/heapindex is not built: run make first")
        if not selected:
            parser.error(f"no selected workload has a {args.size} size")
        if args.budget is not None and args.until_ci is None:
            parser.error("--budget needs --until-ci")
        if args.until_ci is not None and args.runs < 2:
            parser.error("--until-ci needs --runs of at least 2 (an interval needs two rounds)")
        self.selected = selected
        self.shard = args.shard
        self.workloads = shard_workloads(selected, *args.shard) if args.shard else selected
        self.callgrind = [w for w in self.workloads
                          if w in callgrind or WORKLOADS[w].get("callgrind")]
        self.replay = [w for w in replay if w in self.workloads]
        self.size = args.size
        configs, self.skipped = configurations(self.workloads, args.size, self.indexes, self.allocators)
        self.configs = with_site_modes(configs, self.site_modes)
        if self.workloads and not self.configs:
            parser.error("the selection leaves no configuration to run")
        self.callgrind_configs = [c for c in self.configs if c[0] in self.callgrind]
        self.min_rounds = args.runs
        self.until_ci = args.until_ci
        self.budget = args.budget if args.budget is not None else (3600.0 if args.until_ci else None)
        self.seed = args.seed if args.seed is not None else int(time.time() * 1000) % 1_000_000_007
        self.rng = random.Random(self.seed)
        self.orders = []

    @staticmethod
    def optional_list(value, selected, size, option, default):
        if not value:
            return []
        if value == "selected":
            return default(selected)
        try:
            return parse_workloads(value, size)
        except UsageError as e:
            raise UsageError(f"{option}: {e}") from None

    def next_order(self):
        """The next round's shuffled order (the same sequence for a seed,
        however many rounds --until-ci ends up running)."""
        order = list(self.configs)
        self.rng.shuffle(order)
        self.orders.append(order)
        return order

    def shard_text(self):
        if not self.shard:
            return ""
        return f"shard {self.shard[0]}/{self.shard[1]}: "

    def describe(self):
        """Lines printed by --dry-run."""
        lines = [f"{PROG}: {self.shard_text()}workloads {', '.join(self.workloads) or '(none)'}"
                 + (f" (of {', '.join(self.selected)})" if self.shard else "")]
        lines.append(f"{PROG}: {len(self.configs)} configurations x "
                     + (f"at least {self.min_rounds} rounds, until every interval is within "
                        f"+-{self.until_ci:g}% or {self.budget:.0f} s"
                        if self.until_ci else f"{self.min_rounds} rounds")
                     + (f"; {len(self.callgrind_configs)} callgrind runs" if self.callgrind_configs else ""))
        lines += [f"  {config_text(c)}" for c in self.configs]
        lines += [f"  skipped: {x}" for x in self.skipped]
        return lines


class Bench:
    """One bench: warm-ups and references, callgrind runs, the rounds, extras."""

    def __init__(self, plan, args, out_dir):
        self.plan, self.args, self.out_dir = plan, args, out_dir
        self.runner = Runner(out_dir, args.timeout)
        self.rows = []
        self.reference = {}          # workload -> output sha256 of the reference run
        self.ref_wall = {}           # workload -> wall of the reference run
        self.last_wall = {}          # configuration -> its last run's duration (for the estimate)
        self.done = 0
        self.status = 0
        self.started = time.time()
        self.meta_path = os.path.join(out_dir, "meta.json")
        self.runs_path = os.path.join(out_dir, "runs.csv")
        self.stop_reason = None
        self.meta = {}

    # --- bookkeeping ---------------------------------------------------------------------

    def total(self):
        rounds = max(self.plan.min_rounds, len(self.plan.orders))
        return (rounds * len(self.plan.configs) + len(self.plan.workloads) * max(1, self.args.warmup)
                + len(self.plan.callgrind_configs))

    def estimate_left(self, remaining):
        return sum(self.last_wall.get(c, self.ref_wall.get(c[0], 1.0)) for c in remaining)

    def progress(self, row, what, remaining, extra_s=0.0):
        self.done += 1
        took = row.get("_took", 0.0)
        state = row["status"] if row["status"] == "ok" else "FAILED: " + row.get("note", "")[:120]
        print(f"{PROG}: [{self.done:3d}/{self.total()}] {what:<10} {row['workload']}/{row['size']} "
              f"{row['index']}/{row['allocator']}{site_text(row)}: {took:6.2f} s {state}  "
              f"elapsed {fmt_duration(time.time() - self.started)}, "
              f"left ~{fmt_duration(self.estimate_left(remaining) + extra_s)}", file=sys.stderr, flush=True)

    def timed_run(self, config, timeout=None, callgrind=False):
        w, s, i, a, m = config
        t0 = time.time()
        row = self.runner.run(w, s, i, a, timeout=timeout, site_mode=m, callgrind=callgrind)
        row["_took"] = time.time() - t0
        return row

    def run_timeout(self, w, factor=30, floor=300):
        if self.args.timeout:
            return self.args.timeout
        return max(floor, int(factor * self.ref_wall.get(w, 10)))

    def check_output(self, row):
        w = row["workload"]
        if row["status"] != "ok":
            return
        if w not in self.reference:
            row["note"] = "output not checked: the reference run failed"
        elif row.get("output_sha256") != self.reference[w]:
            row["status"] = "failed"
            row["note"] = (f"output differs from the reference run's "
                           f"(sha256 {str(row.get('output_sha256'))[:12]} vs {str(self.reference[w])[:12]})")

    def keep(self, row):
        if row["status"] != "ok":
            self.status = 1
        self.rows.append(row)
        write_rows(self.runs_path, self.rows)

    def write_meta(self, **updates):
        self.meta.update(updates)
        self.meta["settings"]["rounds"] = [[config_text(c) for c in order] for order in self.plan.orders]
        write_json(self.meta_path, self.meta)

    # --- phases ----------------------------------------------------------------------------

    def start_meta(self, argv):
        plan, args = self.plan, self.args
        self.meta = {
            "tool": "heapindex bench",
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "settings": {
                "argv": sys.argv[1:] if argv is None else list(argv),
                "workloads": plan.workloads, "size": args.size, "indexes": plan.indexes,
                "allocators": plan.allocators, "site_modes": plan.site_modes, "site_skip": SITE_SKIP,
                "runs": args.runs, "warmup": args.warmup,
                "seed": plan.seed, "timeout_s": args.timeout, "scale": args.scale,
                "scale_args": args.scale_args, "replay": args.replay,
                "callgrind": plan.callgrind, "callgrind_jobs": args.callgrind_jobs,
                "until_ci_pct": plan.until_ci, "budget_s": plan.budget,
                "shard": f"{plan.shard[0]}/{plan.shard[1]}" if plan.shard else None,
                "shard_of": plan.selected if plan.shard else None,
                "families": {w: family(w) for w in plan.workloads},
                "commands": {w: WORKLOADS[w]["cmd"][args.size] for w in plan.workloads},
                "about": {w: WORKLOADS[w]["about"] for w in plan.workloads},
                "env": {k: v for k, v in os.environ.items() if k.startswith("HEAPINDEX_")},
                "python_env": {"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0"},
                "skipped": plan.skipped,
                "rounds": [],
            },
            "loadavg_start": loadavg(),
            "status": "running",
        }
        self.meta["generated_inputs"] = prepare_inputs(plan.workloads, args.size)
        self.meta.update(machine_meta(plan.workloads, args.size))
        self.write_meta()
        for x in plan.skipped:
            print(f"{PROG}: skipped {x}", file=sys.stderr)
        for rel, note in self.meta["generated_inputs"].items():
            if note.startswith("failed"):
                print(f"{PROG}: input {rel}: {note}", file=sys.stderr)

    def warmups(self):
        """Warm-up and reference runs, one workload after the other."""
        plan, args = self.plan, self.args
        pending = [c for c in plan.configs] * plan.min_rounds
        for n, w in enumerate(plan.workloads):
            ri = reference_index(w, plan.indexes)
            for k in range(max(1, args.warmup)):
                remaining = [(w2, args.size, reference_index(w2, plan.indexes) or "none",
                              plan.allocators[0], "ret") for w2 in plan.workloads[n + 1:]] + pending
                if ri is None:
                    row = {"workload": w, "size": args.size, "index": "-", "allocator": "glibc",
                           "status": "failed", "note": "no index answering lookups is built", "_took": 0}
                else:
                    mode = NO_SITE_MODE if ri == "none" else "ret"
                    row = self.timed_run((w, args.size, ri, "glibc", mode), timeout=args.timeout or 1800)
                row.update(phase="warmup" if k < args.warmup else "reference", round=0, order=k + 1)
                if k == 0:
                    if row["status"] == "ok":
                        self.reference[w] = row.get("output_sha256")
                        self.ref_wall[w] = row.get("_took", 1.0)
                    else:
                        row["note"] = "reference run failed: " + row.get("note", "")
                self.keep(row)
                self.progress(row, "warmup" if k < args.warmup else "reference", remaining)

    def callgrind_runs(self):
        """Every callgrind configuration once, --callgrind-jobs at a time;
        then each row's instructions over its uninstrumented run's."""
        todo = list(self.plan.callgrind_configs)
        if not todo:
            return
        rounds_left = [c for c in self.plan.configs] * self.plan.min_rounds
        cg_rows = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.args.callgrind_jobs) as pool:
            futures = {pool.submit(self.timed_run, c, self.run_timeout(c[0], 200, 1800), True): c
                       for c in todo}
            try:
                for fut in concurrent.futures.as_completed(futures):
                    row = fut.result()
                    todo.remove(futures[fut])
                    row.update(phase="callgrind", round=0, order=len(cg_rows) + 1)
                    self.check_output(row)
                    cg_rows.append(row)
                    self.keep(row)
                    # A callgrind run takes about as long as the one just done.
                    self.progress(row, "callgrind", rounds_left,
                                  row["_took"] * len(todo) / self.args.callgrind_jobs)
            except BaseException:
                for f in futures:
                    f.cancel()
                self.runner.kill_all()
                raise
        set_callgrind_ratios(cg_rows)
        write_rows(self.runs_path, self.rows)

    def should_stop(self, rounds_done: int) -> Optional[str]:
        """None to run another round, else why the rounds end."""
        plan = self.plan
        if rounds_done < plan.min_rounds:
            return None
        if not plan.until_ci:
            return f"{rounds_done} round{'' if rounds_done == 1 else 's'} (--runs)"
        intervals = interest_intervals(self.rows, plan.configs)
        if not intervals:
            return (f"until-ci: no interval of interest (no uninstrumented or memtable configuration "
                    f"to compare with) after {rounds_done} rounds")
        wide = {k: v for k, v in intervals.items()
                if v["half_width_pct"] is None or v["half_width_pct"] >= plan.until_ci}
        if not wide:
            return (f"until-ci: every interval of interest ({len(intervals)}) is within "
                    f"+-{plan.until_ci:g}% after {rounds_done} rounds")
        next_round = self.estimate_left(plan.configs)
        elapsed = time.time() - self.started
        if elapsed + next_round > plan.budget or rounds_done >= MAX_ROUNDS:
            return (f"until-ci: budget of {plan.budget:.0f} s reached after {rounds_done} rounds "
                    f"({elapsed:.0f} s elapsed, the next round would take ~{next_round:.0f} s); "
                    f"{len(wide)} of {len(intervals)} intervals still wider than +-{plan.until_ci:g}%: "
                    f"{widest(wide)}")
        return None

    def rounds(self):
        r = 0
        while True:
            self.stop_reason = self.should_stop(r)
            if self.stop_reason:
                break
            r += 1
            order = self.plan.orders[r - 1] if r <= len(self.plan.orders) else self.plan.next_order()
            self.write_meta()
            for pos, c in enumerate(order, 1):
                row = self.timed_run(c, timeout=self.run_timeout(c[0]))
                row.update(phase="measure", round=r, order=pos)
                self.last_wall[c] = row["_took"]
                self.check_output(row)
                self.keep(row)
                remaining = order[pos:] + [x for _ in range(max(0, self.plan.min_rounds - r))
                                           for x in self.plan.configs]
                self.progress(row, f"round {r}/{max(r, self.plan.min_rounds)}", remaining)
        print(f"{PROG}: rounds ended: {self.stop_reason}", file=sys.stderr)

    def extras(self):
        args, plan = self.args, self.plan
        extras = {}
        try:
            if args.replay:
                extras["replay"] = (run_replay(self.out_dir, plan.replay, args.size, plan.indexes, args.runs)
                                    if plan.replay else "skipped: no workload of this shard selected")
                print(f"{PROG}: replay: {extras['replay']}", file=sys.stderr)
            if args.scale:
                extras["scale"] = (run_scale(self.out_dir, args.scale_args)
                                   if not plan.shard or plan.shard[0] == 1 else "skipped: run by shard 1")
                print(f"{PROG}: scale: {extras['scale']}", file=sys.stderr)
        except KeyboardInterrupt:
            extras["interrupted"] = True
            print(f"\n{PROG}: extras interrupted", file=sys.stderr)
        if extras:
            self.meta["extras"] = extras

    def finish(self):
        failed = [r for r in self.rows if r["status"] != "ok"]
        self.write_meta(status="done", finished=datetime.datetime.now().isoformat(timespec="seconds"),
                        duration_s=round(time.time() - self.started, 1), loadavg_end=loadavg(),
                        runs=len(self.rows), failed_runs=len(failed), rounds_run=len(self.plan.orders),
                        stop_reason=self.stop_reason)
        print(f"{PROG}: {len(self.rows)} runs in {fmt_duration(time.time() - self.started)}, "
              f"{len(failed)} failed; results in {self.out_dir}", file=sys.stderr)
        for r in failed:
            print(f"{PROG}: FAILED {r['workload']}/{r['size']} {r['index']}/{r['allocator']}{site_text(r)} "
                  f"{r.get('phase')} round {r.get('round')}: {r.get('note')}", file=sys.stderr)
        shown = os.path.relpath(self.out_dir)
        print(f"{PROG}: next: ./heapindex report {self.out_dir if shown.startswith('..') else shown}",
              file=sys.stderr)

    def interrupted(self):
        self.runner.kill_all()
        self.write_meta(status="interrupted", finished=datetime.datetime.now().isoformat(timespec="seconds"),
                        duration_s=round(time.time() - self.started, 1), loadavg_end=loadavg())
        print(f"\n{PROG}: interrupted; {len(self.rows)} runs kept in {self.runs_path}", file=sys.stderr)
        return 130

    def run(self, argv):
        self.start_meta(argv)
        if not self.plan.until_ci:
            for _ in range(self.plan.min_rounds):
                self.plan.next_order()
        try:
            self.warmups()
            self.callgrind_runs()
            self.rounds()
        except KeyboardInterrupt:
            return self.interrupted()
        finally:
            shutil.rmtree(self.runner.tmp, ignore_errors=True)
        self.extras()
        self.finish()
        return self.status


MAX_ROUNDS = 1000


def site_text(row: dict) -> str:
    m = row.get("site_mode")
    return "" if m in (None, "ret", NO_SITE_MODE) else f" site={m}"


def set_callgrind_ratios(rows: list) -> None:
    """callgrind_ir_ratio: a callgrind row's instructions over those of the
    uninstrumented callgrind row of the same workload, size and allocator."""
    base = {(r["workload"], r["size"], r["allocator"]): r.get("callgrind_ir")
            for r in rows if r["index"] == "none" and r["status"] == "ok"}
    for r in rows:
        b = base.get((r["workload"], r["size"], r["allocator"]))
        if r["status"] == "ok" and b and r.get("callgrind_ir"):
            r["callgrind_ir_ratio"] = round(r["callgrind_ir"] / b, 6)


def empty_shard(plan, args, out_dir, argv):
    """A shard with no workload: say so, leave an empty results directory."""
    print(f"{PROG}: {plan.shard_text()}no workload falls to this shard "
          f"({len({family(w) for w in plan.selected})} workload families selected); nothing to run",
          file=sys.stderr)
    write_rows(os.path.join(out_dir, "runs.csv"), [])
    meta = {"tool": "heapindex bench", "status": "done", "runs": 0, "failed_runs": 0,
            "settings": {"argv": sys.argv[1:] if argv is None else list(argv), "workloads": [],
                         "shard": f"{plan.shard[0]}/{plan.shard[1]}", "shard_of": plan.selected,
                         "size": args.size}}
    meta.update(machine_meta([], args.size))
    write_json(os.path.join(out_dir, "meta.json"), meta)
    return 0


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    plan = Plan(args, parser)
    if args.dry_run:
        print("\n".join(plan.describe()))
        return 0
    out_dir = args.out or os.path.join(ROOT, "results", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out_dir, exist_ok=True)
    out_dir = os.path.abspath(out_dir)
    if not plan.workloads:
        return empty_shard(plan, args, out_dir, argv)
    return Bench(plan, args, out_dir).run(argv)


if __name__ == "__main__":
    sys.exit(main())
