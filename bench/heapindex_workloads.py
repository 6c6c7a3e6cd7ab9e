"""The workloads of ./heapindex bench (and tune): what each runs and checks.

A workload is a command per size ({out}: a per-run output file; {cache}:
the input cache), the output that every run must reproduce byte for byte
(a file or stdout), the process of the tree whose own figures count, and
what it needs: inputs, scripts of this tree, programs on PATH, an index
that answers lookups. bench/README.md describes each in a table.
"""

import os
from dataclasses import dataclass, field

PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class Workload:
    """One workload. main: the process whose own statistics line gives the
    proc_* columns and whose instructions --callgrind counts ("python"
    matches any python3.X)."""
    name: str
    about: str
    cmd: dict                     # size -> argv
    main: tuple                   # process names
    output: str = "stdout"        # "stdout" or "file" ({out})
    inputs: dict = field(default_factory=dict)     # size -> files in the cache, or absolute paths
    scripts: tuple = ()           # files of this tree it runs
    lookups: bool = False         # needs an index that answers lookups
    python: bool = False          # a CPython run: PYTHONMALLOC=malloc and friends
    programs: dict = field(default_factory=dict)   # executable on PATH -> its Debian package
    generate: dict = field(default_factory=dict)   # input -> argv writing it to stdout
    family: str = ""              # the unit of --shard (one machine); default the workload itself
    threads: int = 1              # thread count, for the report's scaling table
    pairs: bool = False           # stdout says pairs=N, its malloc+free pairs
    callgrind_skip: tuple = ()    # children valgrind need not follow
    callgrind: bool = False       # always once under callgrind, even without --callgrind

    def __post_init__(self):
        if not self.family:
            object.__setattr__(self, "family", self.name)

    def is_main_process(self, exe: str) -> bool:
        return any(exe.startswith("python") if m == "python" else exe == m for m in self.main)


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
GCC_SKIP = ("*/as", "*/collect2", "*/ld")
THREADS_BIN = "build/workloads/threads"
THREADS_OPS = {"small": "3000000", "full": "20000000"}     # per thread


def _threads_workload(name, n, lookup_every=None, callgrind=False):
    extra = ["--lookup-every", str(lookup_every)] if lookup_every else []
    about = (f"workloads/threads/threads.c on {n} thread{'s' if n > 1 else ''}: per-thread churn of "
             "4,096 live 16-128-byte chunks, every 8th operation a chunk handed to the next thread "
             f"to free ({THREADS_OPS['small']} / {THREADS_OPS['full']} operations per thread)")
    if lookup_every:
        about += f", a heapindex_lookup every {lookup_every} operations of every thread"
    cmd = {size: [THREADS_BIN, "--threads", str(n), "--ops", ops] + extra for size, ops in THREADS_OPS.items()}
    return Workload(name, about, cmd, main=("threads",), scripts=(THREADS_BIN,), family="threads",
                    threads=n, pairs=True, callgrind=callgrind)


_TABLE = [
    Workload("gcc", "gcc -O0 -c of SQLite's shell.c (small) or sqlite3.c (full): workloads/gcc.sh",
             {"small": ["workloads/gcc.sh", "small", "{out}"], "full": ["workloads/gcc.sh", "full", "{out}"]},
             main=("cc1",), output="file", scripts=("workloads/gcc.sh",),
             inputs={"small": ["shell/shell.c", "shell/sqlite3.h"], "full": ["sqlite3.c"]},
             callgrind_skip=GCC_SKIP),
    Workload("gcc-O2", "gcc -O2 -c sqlite3.c (full size only): workloads/gcc.sh O2",
             {"full": ["workloads/gcc.sh", "O2", "{out}"]}, main=("cc1",), output="file",
             inputs={"full": ["sqlite3.c"]}, scripts=("workloads/gcc.sh",), callgrind_skip=GCC_SKIP),
    Workload("pycompile", "compile() the Python standard library in memory: workloads/python/stdlib_compile.py",
             {"small": _py("stdlib_compile.py", "--modules", "250"), "full": _py("stdlib_compile.py")},
             main=("python",), scripts=("workloads/python/stdlib_compile.py",), python=True),
    Workload("pychurn", "pure-Python object churn: workloads/python/churn.py",
             {"small": _py("churn.py", "--ops", "60000"), "full": _py("churn.py")},
             main=("python",), scripts=("workloads/python/churn.py",), python=True),
    Workload("dwarfpy", "churn plus a heapindex_lookup every 10 operations, each answer verified: "
             "workloads/python/dwarfpy_query.py (indexes that answer lookups only)",
             {"small": _py("dwarfpy_query.py", "--ops", "60000"), "full": _py("dwarfpy_query.py")},
             main=("python",), scripts=("workloads/python/dwarfpy_query.py", "workloads/python/churn.py"),
             lookups=True, python=True),
    Workload("lua", "Lua 5.4 (Debian's lua5.4) running workloads/lua/bench.lua: trees, strings, records, "
             "closures and a JSON-like codec (scale 4 small, 20 full)",
             {"small": ["lua5.4", "workloads/lua/bench.lua", "4"], "full": ["lua5.4", "workloads/lua/bench.lua", "20"]},
             main=("lua5.4",), scripts=("workloads/lua/bench.lua",), programs={"lua5.4": "lua5.4"}),
    Workload("gs", "Ghostscript rendering PDFs Debian ships to the inkcov device: the GS9 colour "
             "management guide (ghostscript-doc, 42 pages, 72 dpi) small, the Valgrind manual "
             "(valgrind, 397 pages, 150 dpi) full",
             {"small": GS + ["-r72", GS_SMALL_PDF], "full": GS + ["-r150", "{cache}/" + GS_FULL_PDF]},
             main=("gs",), output="file", inputs=GS_INPUTS, generate=GS_GENERATE, programs={"gs": "ghostscript"}),
    Workload("gs-mt", "the gs workload rendering in bands on 2 threads (-dNumRenderingThreads=2 "
             "-dMaxBitmap=0): the real multi-threaded program",
             {"small": GS + GS_THREADS + ["-r72", GS_SMALL_PDF],
              "full": GS + GS_THREADS + ["-r150", "{cache}/" + GS_FULL_PDF]},
             main=("gs",), output="file", inputs=GS_INPUTS, generate=GS_GENERATE,
             programs={"gs": "ghostscript"}, threads=2),
    Workload("z3", "the Z3 SMT solver on problems generated by workloads/z3/gen_problem.py: N-queens "
             "queries with models, and a pigeonhole proof (small: 12 queens, 8 pigeons; full: "
             "18 queens, 9 pigeons)",
             {"small": ["z3", "{cache}/z3/small.smt2"], "full": ["z3", "{cache}/z3/full.smt2"]},
             main=("z3",), inputs={"small": ["z3/small.smt2"], "full": ["z3/full.smt2"]},
             generate={"z3/small.smt2": [PYTHON, "workloads/z3/gen_problem.py", "small"],
                       "z3/full.smt2": [PYTHON, "workloads/z3/gen_problem.py", "full"]},
             scripts=("workloads/z3/gen_problem.py",), programs={"z3": "z3"}),
    Workload("redis", "redis-server filled by DEBUG POPULATE and driven by redis-benchmark on 127.0.0.1 "
             "(14 tests, 20 clients, pipelines of 8; small 50,000 keys and 10,000 requests per "
             "test, full 400,000 and 120,000), checked by DEBUG DIGEST: "
             "workloads/redis/redis_bench.py",
             {"small": [PYTHON, "workloads/redis/redis_bench.py", "small"],
              "full": [PYTHON, "workloads/redis/redis_bench.py", "full"]},
             # Debian's /usr/bin/redis-server is a link to redis-check-rdb.
             main=("redis-server", "redis-check-rdb"), scripts=("workloads/redis/redis_bench.py",),
             programs={"redis-server": "redis-server", "redis-benchmark": "redis-tools"},
             callgrind_skip=("*redis-benchmark",)),
    # threads-1 always runs once under callgrind per configuration (about
    # 10-30 s each at small size): its instructions per malloc+free pair are
    # the report's per-pair figure.
    _threads_workload("threads-1", 1, callgrind=True),
    _threads_workload("threads-2", 2),
    _threads_workload("threads-4", 4),
    _threads_workload("threads-lookup", 2, lookup_every=8),
]
# name -> Workload, in the table's order (the order of --shard's deal).
WORKLOADS = {w.name: w for w in _TABLE}
GROUPS = {
    "python": ["pycompile", "pychurn", "dwarfpy"],
    "programs": ["lua", "gs", "z3", "redis"],
    "threads": ["threads-1", "threads-2", "threads-4"],
    "all": list(WORKLOADS),
}
