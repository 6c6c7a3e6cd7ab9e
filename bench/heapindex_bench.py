#!/usr/bin/python3
"""heapindex bench: run the workload x index x allocator matrix.

    ./heapindex bench [--workloads LIST] [--indexes LIST] [--allocators LIST]
                      [--size small|full] [--runs N] [--warmup N] [--out DIR]
                      [--site-modes LIST]

Every measured run is

    ./heapindex run --index I --allocator A --stats TMP -- COMMAND

(index "none" too: it preloads nothing but still appends the tree line).
The matrix is run in interleaved rounds: round r runs every configuration
once, in an order shuffled by a seeded random generator (the seed and every
round's order are kept in meta.json), so slow drift of a shared machine hits
every configuration alike instead of whichever happened to run last.

Before round 1, each workload runs --warmup times uninstrumented (at least
once): the first of these is the reference whose output (gcc's object file,
python's stdout) every measured run must reproduce, byte for byte.

Writes DIR/runs.csv (one row per run, rewritten after every run so an
interrupted bench keeps what it measured) and DIR/meta.json (machine,
versions, input checksums, git commit, settings). See bench/README.md for
the columns. Exit status: 0 all runs ok, 1 some run failed (the failed rows
are in runs.csv and listed by the report), 2 bad arguments, 130 interrupted.

Standard library only: runs with Debian's /usr/bin/python3.
"""

import argparse
import csv
import datetime
import glob
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import time

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


WORKLOADS = {
    "gcc": {
        "about": "gcc -O0 -c of SQLite's shell.c (small) or sqlite3.c (full): workloads/gcc.sh",
        "cmd": {"small": ["workloads/gcc.sh", "small", "{out}"],
                "full": ["workloads/gcc.sh", "full", "{out}"]},
        "inputs": {"small": ["shell/shell.c", "shell/sqlite3.h"], "full": ["sqlite3.c"]},
        "scripts": ["workloads/gcc.sh"],
        "output": "file", "main": "cc1", "lookups": False, "python": False,
    },
    "gcc-O2": {
        "about": "gcc -O2 -c sqlite3.c (full size only): workloads/gcc.sh O2",
        "cmd": {"full": ["workloads/gcc.sh", "O2", "{out}"]},
        "inputs": {"full": ["sqlite3.c"]},
        "scripts": ["workloads/gcc.sh"],
        "output": "file", "main": "cc1", "lookups": False, "python": False,
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
}
GROUPS = {
    "python": ["pycompile", "pychurn", "dwarfpy"],
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


def machine_meta(workloads, size):
    uname = platform.uname()
    gcc = command_output(["gcc", "--version"])
    return {
        "machine": {
            "hostname": uname.node, "nproc": os.cpu_count(), "mem_total_kb": mem_total_kb(),
            "kernel": uname.release, "arch": uname.machine, "cpu_model": cpu_model(),
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
    "wall_s", "user_s", "sys_s", "max_rss_kb", "minflt", "majflt", "exit_status",
    "status", "note",
    "procs", "proc_exe", "proc_wall_s", "proc_user_s", "proc_sys_s", "proc_max_rss_kb",
    "proc_minflt", "proc_majflt", "proc_alloc_calls", "proc_free_calls",
    "proc_peak_live_chunks", "proc_peak_live_bytes", "proc_peak_meta_bytes",
    "proc_lookups_found", "proc_lookups_missed",
    "procs_max_rss_kb_sum", "procs_minflt_sum", "procs_majflt_sum",
    "output_sha256", "started",
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
    if main == "python":
        return exe.startswith("python")
    return exe == main


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
    return [a.replace("{out}", out_file) for a in WORKLOADS[workload]["cmd"][size]]


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


class Runner:
    """Runs one configuration once and turns it into a runs.csv row."""

    def __init__(self, out_dir, timeout=None):
        self.out_dir = out_dir
        self.tmp = os.path.join(out_dir, "tmp")
        self.logs = os.path.join(out_dir, "logs")
        os.makedirs(self.tmp, exist_ok=True)
        self.timeout = timeout
        self.cli = os.path.join(ROOT, "heapindex")
        self.serial = 0

    def missing_inputs(self, workload, size):
        w = WORKLOADS[workload]
        missing = [os.path.join(cache_dir(), rel) for rel in w["inputs"].get(size, [])
                   if not os.path.isfile(os.path.join(cache_dir(), rel))]
        missing += [os.path.join(ROOT, rel) for rel in w["scripts"]
                    if not os.path.isfile(os.path.join(ROOT, rel))]
        return missing

    def run(self, workload, size, index, allocator, env_extra=None, timeout=None, site_mode=None):
        """Run once; returns a row dict (status ok/failed, note, output_sha256, ...).
        With site_mode (--site-modes) its environment is added to env_extra
        and it is the row's site_mode."""
        self.serial += 1
        mode_tag = "" if site_mode in (None, "ret", NO_SITE_MODE) else "-" + site_mode.replace(":", "")
        tag = f"{self.serial:05d}-{workload}-{size}-{index}-{allocator}{mode_tag}"
        row = {"workload": workload, "size": size, "index": index, "allocator": allocator,
               "site_mode": site_mode or (NO_SITE_MODE if index == "none" else "ret"),
               "started": datetime.datetime.now().isoformat(timespec="seconds")}
        census = os.path.join(self.tmp, tag + ".census")
        if site_mode is not None:
            env_extra = dict(env_extra or {}, **site_env(site_mode, census))
        missing = self.missing_inputs(workload, size)
        if missing:
            row.update(status="failed", note="missing input: " + ", ".join(missing)
                       + " (run: sh workloads/fetch-inputs.sh)")
            return row
        w = WORKLOADS[workload]
        out_file = os.path.join(self.tmp, tag + ".o")
        stats = os.path.join(self.tmp, tag + ".jsonl")
        stdout_path = os.path.join(self.tmp, tag + ".stdout")
        stderr_path = os.path.join(self.tmp, tag + ".stderr")
        for path in (out_file, stats):
            if os.path.exists(path):
                os.unlink(path)
        cmd = workload_argv(workload, size, out_file)
        argv = [self.cli, "run", "--index", index, "--allocator", allocator, "--stats", stats, "--"] + cmd
        env = workload_env(workload, env_extra)
        limit = timeout or self.timeout
        timed_out = False
        with open(stdout_path, "wb") as so, open(stderr_path, "wb") as se:
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                    stdout=so, stderr=se, start_new_session=True)
            try:
                proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)   # our own session: the run's whole tree
                proc.wait()
            except BaseException:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
        tree, procs = parse_stats(stats)
        fill_from_stats(row, workload, tree, procs)
        problems = []
        if timed_out:
            problems.append(f"timeout after {limit} s")
        elif tree is None:
            problems.append(f"heapindex run exited {proc.returncode} without a tree line")
        else:
            st = tree.get("exit_status", proc.returncode)
            if st != 0:
                problems.append(f"exit status {st}" + (f" ({signal_name(st - 128)})" if st > 128 else ""))
        out_path = out_file if w["output"] == "file" else stdout_path
        if os.path.isfile(out_path):
            row["output_sha256"] = sha256_file(out_path)
        elif not problems:
            problems.append("no output produced")
        if problems:
            err = tail_text(stderr_path)
            row["status"] = "failed"
            row["note"] = "; ".join(problems) + (f"; stderr: {err}" if err else "")
            os.makedirs(self.logs, exist_ok=True)
            for path, ext in ((stderr_path, "stderr"), (stdout_path, "stdout"), (stats, "jsonl")):
                if os.path.exists(path):
                    shutil.copy(path, os.path.join(self.logs, f"{tag}.{ext}"))
        else:
            row["status"] = "ok"
            row["note"] = ""
        for path in (out_file, stats, stdout_path, stderr_path, census):
            if os.path.exists(path):
                os.unlink(path)
        return row


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


def fmt_duration(seconds):
    seconds = int(round(max(0, seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


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


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    available = built_indexes()
    try:
        workloads = parse_workloads(args.workloads, args.size)
        indexes = parse_indexes(args.indexes, available)
        allocators = parse_allocators(args.allocators)
        site_modes = parse_site_modes(args.site_modes)
    except UsageError as e:
        parser.error(str(e))
    if not os.access(os.path.join(ROOT, "build", "bin", "heapindex"), os.X_OK):
        parser.error(f"{ROOT}/build/bin/heapindex is not built: run make first")
    if not workloads:
        parser.error(f"no selected workload has a {args.size} size")
    replay_workloads = []
    if args.replay:
        try:
            replay_workloads = (workloads if args.replay == "selected"
                                else parse_workloads(args.replay, args.size))
        except UsageError as e:
            parser.error("--replay: " + str(e))
    seed = args.seed if args.seed is not None else int(time.time() * 1000) % 1_000_000_007
    out_dir = args.out or os.path.join(ROOT, "results",
                                       datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out_dir, exist_ok=True)
    out_dir = os.path.abspath(out_dir)

    configs, skipped = configurations(workloads, args.size, indexes, allocators)
    configs = with_site_modes(configs, site_modes)
    if not configs:
        parser.error("the selection leaves no configuration to run")
    rng = random.Random(seed)
    orders = []
    for _ in range(args.runs):
        order = list(configs)
        rng.shuffle(order)
        orders.append(order)

    started = time.time()
    meta = {
        "tool": "heapindex bench",
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "settings": {
            "argv": sys.argv[1:] if argv is None else list(argv),
            "workloads": workloads, "size": args.size, "indexes": indexes,
            "allocators": allocators, "site_modes": site_modes, "site_skip": SITE_SKIP,
            "runs": args.runs, "warmup": args.warmup,
            "seed": seed, "timeout_s": args.timeout, "scale": args.scale,
            "scale_args": args.scale_args, "replay": args.replay,
            "commands": {w: WORKLOADS[w]["cmd"][args.size] for w in workloads},
            "about": {w: WORKLOADS[w]["about"] for w in workloads},
            "env": {k: v for k, v in os.environ.items() if k.startswith("HEAPINDEX_")},
            "python_env": {"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0"},
            "skipped": skipped,
            "rounds": [[config_text(c) for c in order] for order in orders],
        },
        "loadavg_start": loadavg(),
    }
    meta.update(machine_meta(workloads, args.size))
    meta_path = os.path.join(out_dir, "meta.json")
    runs_path = os.path.join(out_dir, "runs.csv")
    meta["status"] = "running"
    write_json(meta_path, meta)

    runner = Runner(out_dir, args.timeout)
    rows = []
    reference = {}          # workload -> output sha256 of the reference run
    ref_wall = {}           # workload -> wall of the reference run
    last_wall = {}          # configuration -> its last run's duration (for the estimate)
    total = args.runs * len(configs) + len(workloads) * max(1, args.warmup)
    done = 0
    status = 0
    for s in skipped:
        print(f"{PROG}: skipped {s}", file=sys.stderr)

    def estimate_left(remaining):
        left = 0.0
        for c in remaining:
            left += last_wall.get(c, ref_wall.get(c[0], 1.0))
        return left

    def progress(row, what, remaining):
        nonlocal done
        done += 1
        took = row.get("_took", 0.0)
        state = row["status"] if row["status"] == "ok" else "FAILED: " + row.get("note", "")[:120]
        print(f"{PROG}: [{done:3d}/{total}] {what:<10} {row['workload']}/{row['size']} "
              f"{row['index']}/{row['allocator']}{site_text(row)}: {took:6.2f} s {state}  "
              f"elapsed {fmt_duration(time.time() - started)}, left ~{fmt_duration(estimate_left(remaining))}",
              file=sys.stderr, flush=True)

    def site_text(row):
        m = row.get("site_mode")
        return "" if m in (None, "ret", NO_SITE_MODE) else f" site={m}"

    def timed_run(w, s, i, a, timeout=None, site_mode=None):
        t0 = time.time()
        row = runner.run(w, s, i, a, timeout=timeout, site_mode=site_mode)
        row["_took"] = time.time() - t0
        return row

    def run_timeout(w):
        if args.timeout:
            return args.timeout
        return max(300, int(30 * ref_wall.get(w, 10)))

    try:
        # Warm-up and reference runs, one workload after the other.
        pending_measured = [c for order in orders for c in order]
        for w in workloads:
            ri = reference_index(w, indexes)
            for k in range(max(1, args.warmup)):
                remaining = [(w2, args.size, reference_index(w2, indexes) or "none", allocators[0], "ret")
                             for w2 in workloads[workloads.index(w) + 1:]] + pending_measured
                if ri is None:
                    row = {"workload": w, "size": args.size, "index": "-", "allocator": "glibc",
                           "status": "failed", "note": "no index answering lookups is built", "_took": 0}
                else:
                    row = timed_run(w, args.size, ri, "glibc", timeout=args.timeout or 1800,
                                    site_mode=NO_SITE_MODE if ri == "none" else "ret")
                row.update(phase="warmup" if k < args.warmup else "reference", round=0, order=k + 1)
                if k == 0:
                    if row["status"] == "ok":
                        reference[w] = row.get("output_sha256")
                        ref_wall[w] = row.get("_took", 1.0)
                    else:
                        row["note"] = "reference run failed: " + row.get("note", "")
                rows.append(row)
                write_rows(runs_path, rows)
                progress(row, "warmup" if k < args.warmup else "reference", remaining)
                if row["status"] != "ok":
                    status = 1
        # The measured rounds.
        for r, order in enumerate(orders, 1):
            for pos, (w, s, i, a, m) in enumerate(order, 1):
                pending_measured.pop(0)
                row = timed_run(w, s, i, a, timeout=run_timeout(w), site_mode=m)
                row.update(phase="measure", round=r, order=pos)
                last_wall[(w, s, i, a, m)] = row["_took"]
                if row["status"] == "ok":
                    if w not in reference:
                        row["note"] = "output not checked: the reference run failed"
                    elif row.get("output_sha256") != reference[w]:
                        row["status"] = "failed"
                        row["note"] = (f"output differs from the reference run's "
                                       f"(sha256 {str(row.get('output_sha256'))[:12]} vs {str(reference[w])[:12]})")
                if row["status"] != "ok":
                    status = 1
                rows.append(row)
                write_rows(runs_path, rows)
                progress(row, f"round {r}/{args.runs}", pending_measured)
    except KeyboardInterrupt:
        meta.update(status="interrupted", finished=datetime.datetime.now().isoformat(timespec="seconds"),
                    duration_s=round(time.time() - started, 1), loadavg_end=loadavg())
        write_json(meta_path, meta)
        print(f"\n{PROG}: interrupted; {len(rows)} runs kept in {runs_path}", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(runner.tmp, ignore_errors=True)

    extras = {}
    try:
        if args.replay:
            extras["replay"] = run_replay(out_dir, replay_workloads, args.size, indexes, args.runs)
            print(f"{PROG}: replay: {extras['replay']}", file=sys.stderr)
        if args.scale:
            extras["scale"] = run_scale(out_dir, args.scale_args)
            print(f"{PROG}: scale: {extras['scale']}", file=sys.stderr)
    except KeyboardInterrupt:
        extras["interrupted"] = True
        print(f"\n{PROG}: extras interrupted", file=sys.stderr)
    if extras:
        meta["extras"] = extras
    failed = [r for r in rows if r["status"] != "ok"]
    meta.update(status="done", finished=datetime.datetime.now().isoformat(timespec="seconds"),
                duration_s=round(time.time() - started, 1), loadavg_end=loadavg(),
                runs=len(rows), failed_runs=len(failed))
    write_json(meta_path, meta)
    print(f"{PROG}: {len(rows)} runs in {fmt_duration(time.time() - started)}, {len(failed)} failed; "
          f"results in {out_dir}", file=sys.stderr)
    for r in failed:
        print(f"{PROG}: FAILED {r['workload']}/{r['size']} {r['index']}/{r['allocator']}{site_text(r)} "
              f"round {r.get('round')}: {r.get('note')}", file=sys.stderr)
    shown = os.path.relpath(out_dir)
    print(f"{PROG}: next: ./heapindex report {out_dir if shown.startswith('..') else shown}",
          file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
