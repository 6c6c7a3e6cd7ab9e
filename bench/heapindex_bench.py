"""heapindex bench: run the workload x index x allocator matrix.

    ./heapindex bench [--workloads LIST] [--indexes LIST] [--allocators LIST]
                      [--size small|full] [--runs N] [--warmup N] [--out DIR]
                      [--site-modes LIST] [--meta LIST] [--until-ci PCT [--budget TIME]]
                      [--callgrind [LIST]] [--callgrind-jobs N] [--shard K/N] [--dry-run]

Every measured run is one `./heapindex run` of a configuration (a Config:
workload, size, index, allocator, site mode, metadata placement), turned
into a runs.csv row (a Row) by bench/heapindex_run.py; the workloads are
bench/heapindex_workloads.py's. The matrix is run in interleaved rounds: round r runs every configuration
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

Standard library only (and the analysis package): runs with Debian's
/usr/bin/python3, as the module bench.heapindex_bench (./heapindex bench).
"""

import argparse
import csv
import dataclasses
import datetime
import glob
import concurrent.futures
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Optional

from analysis import heapindex_stats as hstats
from analysis.heapindex_common import (CAPABILITY_COLUMNS, Capabilities, CapabilityTable, capabilities_of,
                                       fmt_duration)
from bench.heapindex_run import (META_PLACEMENTS, NO_META, NO_SITE_MODE, ROOT, SITE_SKIP, Config, Row,
                                 Runner, cache_dir, machine_name, parse_stats, prepare_inputs,
                                 sha256_file, workload_argv, workload_env, write_rows)
from bench.heapindex_workloads import GROUPS, PYTHON, WORKLOADS

PROG = "heapindex bench"
ALLOCATORS = ("glibc", "jemalloc")
SIZES = ("small", "full")


DEFAULT_WORKLOADS = "gcc,python"
SITE_MODE_FORMS = "ret, unwind:N (N 1..32), skip, census"


def built_libraries(root=ROOT) -> list:
    """Every built libheapindex-NAME.so but record's (a trace recorder,
    not an index), sorted by name."""
    names = []
    for lib in glob.glob(os.path.join(root, "build", "lib", "libheapindex-*.so")):
        name = os.path.basename(lib)[len("libheapindex-"):-len(".so")]
        if name != "record":
            names.append(name)
    return sorted(names)


def run_true_under(index, args, env=None):
    """/bin/true run by `heapindex run --index index ARGS`: the probes of an
    index's capabilities and placements (a few ms).  The finished process
    with its stderr, or None if it could not be run."""
    try:
        return subprocess.run([os.path.join(ROOT, "heapindex"), "run", "--index", index, *args, "--", "/bin/true"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=60, env=env)
    except (OSError, subprocess.SubprocessError):
        return None


_PROBED = {}


def index_capabilities(index: str) -> Capabilities:
    """What a built index can do, as its hooks' statistics say: one run of
    /bin/true under it (a few ms), remembered. Without an answer (a run
    that fails: its bench runs will say why) capabilities_of's fallback."""
    if index not in _PROBED:
        rows = [{"index": index}]
        if index != "none":
            with tempfile.TemporaryDirectory() as tmp:
                stats = os.path.join(tmp, "stats.jsonl")
                run_true_under(index, ["--stats", stats])
                rows = [dict({"index": index}, **{k: p.get(k) for k in CAPABILITY_COLUMNS})
                        for p in parse_stats(stats)[1][:1]] or rows
        _PROBED[index] = capabilities_of(rows)[index]
    return _PROBED[index]


_PLACEMENTS = {}


def placement_refusal(index: str, meta: str) -> Optional[str]:
    """Why index refuses the metadata placement meta (the hooks' own line,
    e.g. "HEAPINDEX_META=side is not supported by the memtable index: ..."),
    or None when it takes it: one run of /bin/true under it, remembered."""
    if index == "none" or meta == NO_META:
        return None
    if (index, meta) not in _PLACEMENTS:
        r = run_true_under(index, [], dict(os.environ, HEAPINDEX_META=meta))
        line = (r.stderr.strip().splitlines() or [""])[-1] if r else ""
        refused = r is not None and r.returncode != 0 and "is not supported by" in line
        _PLACEMENTS[(index, meta)] = line.split("heapindex: ", 1)[-1] if refused else None
    return _PLACEMENTS[(index, meta)]


def capabilities(indexes) -> CapabilityTable:
    return CapabilityTable({i: index_capabilities(i) for i in indexes})


def built_indexes(root=ROOT):
    """none plus every built index, in a stable order: none, the indexes
    that answer no lookups (the hooks alone), memtable, the rest."""
    names = built_libraries(root)
    caps = capabilities(names)
    first = [n for n in names if not caps[n].answers_lookups] + [n for n in names if n == "memtable"]
    return ["none"] + first + [n for n in names if n not in first]


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
        if size in WORKLOADS[name].cmd:
            keep.append(name)
        elif name in explicit:
            sizes = ", ".join(WORKLOADS[name].cmd)
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


def parse_names(text, option, valid, what):
    """The names of a comma-separated list, each one of valid."""
    def expand(name):
        if name not in valid:
            raise UsageError(f"unknown {what} '{name}': valid: {', '.join(valid)}")
        return [name]

    return unique_choices(text, option, ", ".join(valid), expand)


def parse_allocators(text):
    return parse_names(text, "--allocators", ALLOCATORS, "allocator")


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


def parse_metas(text):
    """--meta 'header,trailer,side' -> the placements, in order, each once."""
    return parse_names(text, "--meta", META_PLACEMENTS, "metadata placement")


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
    return WORKLOADS[workload].family


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
    return [w for w in workloads if WORKLOADS[w].threads == 1]


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
    p.add_argument("--meta", metavar="LIST",
                   help="chunk metadata placements, comma-separated: " + ", ".join(META_PLACEMENTS)
                   + ": each run of an index gets HEAPINDEX_META=PLACEMENT, and each placement "
                   "multiplies the configurations of every index but none (default: not set, the "
                   "hooks' own placement)")
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
        for rel in WORKLOADS[w].inputs.get(size, []):
            path = os.path.join(cache_dir(), rel)
            entry = {"path": path}
            if os.path.isfile(path):
                entry["sha256"] = sha256_file(path)
                if rel in pins:
                    entry["matches_pin"] = entry["sha256"] == pins[rel]
            else:
                entry["missing"] = True
            out[rel] = entry
        for rel in WORKLOADS[w].scripts:
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
    tolerated = WORKLOADS[workload].lookups and r.returncode == 1
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

def reference_index(workload, indexes, caps=None):
    """The index of the reference run: uninstrumented, or for the lookup
    workload (which needs an index) memtable, else the first that answers."""
    if not WORKLOADS[workload].lookups:
        return "none"
    names = ["memtable"] + list(indexes) + built_indexes()
    caps = caps or capabilities(dict.fromkeys(names))
    return next((name for name in names if name in caps and caps[name].answers_lookups), None)


def configurations(workloads, size, indexes, allocators, caps) -> tuple:
    """([Config] of every workload x index x allocator, [why one was left
    out]): a workload that makes lookups needs an index that answers them."""
    configs, skipped = [], []
    for w in workloads:
        for i in indexes:
            for a in allocators:
                if WORKLOADS[w].lookups and not caps[i].answers_lookups:
                    skipped.append(f"{w}/{size} {i}/{a}: index answers no lookups")
                    continue
                configs.append(Config(w, size, i, a))
    return configs, skipped


def with_hook_settings(configs, site_modes, metas=(NO_META,), skipped=None,
                       refusal=placement_refusal) -> list:
    """Each configuration once per site mode and metadata placement; "none",
    which loads no hooks, once (site mode "-", no placement).  A placement
    the index refuses (refusal gives its reason) is left out, with a note in
    skipped."""
    out = []
    for c in configs:
        if c.index == "none":
            out.append(dataclasses.replace(c, site_mode=NO_SITE_MODE, meta=NO_META))
            continue
        for meta in metas:
            why = refusal(c.index, meta)
            if why:
                if skipped is not None:
                    skipped.append(f"{c.workload}/{c.size} {c.index}/{c.allocator} meta={meta}: {why}")
                continue
            for m in site_modes:
                out.append(dataclasses.replace(c, site_mode=m, meta=meta))
    return out


def baseline_config(config: Config, configs: list) -> Optional[Config]:
    """The configuration an --until-ci interval compares config with: the
    uninstrumented run of its workload, size and allocator, or where there is
    none (the lookup workload) memtable with the same hook settings; None for
    the baseline itself or when neither is in configs."""
    if config.index == "none":
        return None
    none = Config(config.workload, config.size, "none", config.allocator, NO_SITE_MODE)
    if none in configs:
        return none
    mem = dataclasses.replace(config, index="memtable")
    return mem if config.index != "memtable" and mem in configs else None


def row_config(row: dict) -> Config:
    """The configuration of a runs.csv row (or Row.columns())."""
    return Config(row["workload"], row["size"], row["index"], row["allocator"],
                  row.get("site_mode") or (NO_SITE_MODE if row["index"] == "none" else "ret"),
                  row.get("meta") or NO_META)


def interest_intervals(rows: list, configs: list) -> dict:
    """{configuration text: ratio_ci of its per-round wall ratio to its
    baseline} over the measured ok rows (runs.csv's fields), for every
    configuration that has a baseline (the intervals --until-ci waits for)."""
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
        out[c.text() + " vs " + base.index] = hstats.ratio_ci(ratios)
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
            self.metas = parse_metas(args.meta) if args.meta is not None else [NO_META]
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
                          if w in callgrind or WORKLOADS[w].callgrind]
        self.replay = [w for w in replay if w in self.workloads]
        self.size = args.size
        self.caps = capabilities(self.indexes)
        configs, self.skipped = configurations(self.workloads, args.size, self.indexes, self.allocators,
                                               self.caps)
        self.configs = with_hook_settings(configs, self.site_modes, self.metas, self.skipped)
        if self.workloads and not self.configs:
            parser.error("the selection leaves no configuration to run")
        self.callgrind_configs = [c for c in self.configs if c.workload in self.callgrind]
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
        lines += [f"  {c.text()}" for c in self.configs]
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
        return sum(self.last_wall.get(c, self.ref_wall.get(c.workload, 1.0)) for c in remaining)

    def progress(self, row, what, remaining, extra_s=0.0):
        self.done += 1
        state = row.status if row.ok else "FAILED: " + row.note[:120]
        print(f"{PROG}: [{self.done:3d}/{self.total()}] {what:<10} {row.config.text()}: {row.took:6.2f} s {state}  "
              f"elapsed {fmt_duration(time.time() - self.started)}, "
              f"left ~{fmt_duration(self.estimate_left(remaining) + extra_s)}", file=sys.stderr, flush=True)

    def run_timeout(self, w, factor=30, floor=300):
        if self.args.timeout:
            return self.args.timeout
        return max(floor, int(factor * self.ref_wall.get(w, 10)))

    def check_output(self, row: Row):
        w = row.workload
        if not row.ok:
            return
        if w not in self.reference:
            row.note = "output not checked: the reference run failed"
        elif row.output_sha256 != self.reference[w]:
            row.status = "failed"
            row.note = (f"output differs from the reference run's "
                        f"(sha256 {str(row.output_sha256)[:12]} vs {str(self.reference[w])[:12]})")

    def keep(self, row: Row):
        if not row.ok:
            self.status = 1
        self.rows.append(row)
        write_rows(self.runs_path, self.rows)

    def write_meta(self, **updates):
        self.meta.update(updates)
        self.meta["settings"]["rounds"] = [[c.text() for c in order] for order in self.plan.orders]
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
                "meta": plan.metas if args.meta is not None else None,
                "capabilities": {i: dataclasses.asdict(plan.caps[i]) for i in plan.indexes},
                "runs": args.runs, "warmup": args.warmup,
                "seed": plan.seed, "timeout_s": args.timeout, "scale": args.scale,
                "scale_args": args.scale_args, "replay": args.replay,
                "callgrind": plan.callgrind, "callgrind_jobs": args.callgrind_jobs,
                "until_ci_pct": plan.until_ci, "budget_s": plan.budget,
                "shard": f"{plan.shard[0]}/{plan.shard[1]}" if plan.shard else None,
                "shard_of": plan.selected if plan.shard else None,
                "families": {w: family(w) for w in plan.workloads},
                "commands": {w: WORKLOADS[w].cmd[args.size] for w in plan.workloads},
                "about": {w: WORKLOADS[w].about for w in plan.workloads},
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

    def reference_config(self, workload: str) -> Optional[Config]:
        ri = reference_index(workload, self.plan.indexes)
        if ri is None:
            return None
        return Config(workload, self.args.size, ri, "glibc", NO_SITE_MODE if ri == "none" else "ret")

    def warmups(self):
        """Warm-up and reference runs, one workload after the other."""
        plan, args = self.plan, self.args
        pending = [c for c in plan.configs] * plan.min_rounds
        for n, w in enumerate(plan.workloads):
            config = self.reference_config(w)
            later = [self.reference_config(w2) or Config(w2, args.size, "none", plan.allocators[0])
                     for w2 in plan.workloads[n + 1:]]
            for k in range(max(1, args.warmup)):
                if config is None:
                    row = Row(w, args.size, "-", "glibc", note="no index answering lookups is built")
                else:
                    row = self.runner.run(config, timeout=args.timeout or 1800)
                row.phase, row.round, row.order = "warmup" if k < args.warmup else "reference", 0, k + 1
                if k == 0:
                    if row.ok:
                        self.reference[w] = row.output_sha256
                        self.ref_wall[w] = row.took
                    else:
                        row.note = "reference run failed: " + row.note
                self.keep(row)
                self.progress(row, row.phase, later + pending)

    def callgrind_runs(self):
        """Every callgrind configuration once, --callgrind-jobs at a time;
        then each row's instructions over its uninstrumented run's."""
        todo = list(self.plan.callgrind_configs)
        if not todo:
            return
        rounds_left = [c for c in self.plan.configs] * self.plan.min_rounds
        cg_rows = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.args.callgrind_jobs) as pool:
            futures = {pool.submit(self.runner.run, c, None, self.run_timeout(c.workload, 200, 1800), True): c
                       for c in todo}
            try:
                for fut in concurrent.futures.as_completed(futures):
                    row = fut.result()
                    todo.remove(futures[fut])
                    row.phase, row.round, row.order = "callgrind", 0, len(cg_rows) + 1
                    self.check_output(row)
                    cg_rows.append(row)
                    self.keep(row)
                    # A callgrind run takes about as long as the one just done.
                    self.progress(row, "callgrind", rounds_left, row.took * len(todo) / self.args.callgrind_jobs)
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
        intervals = interest_intervals([r.columns() for r in self.rows], plan.configs)
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
                row = self.runner.run(c, timeout=self.run_timeout(c.workload))
                row.phase, row.round, row.order = "measure", r, pos
                self.last_wall[c] = row.took
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
        failed = [r for r in self.rows if not r.ok]
        self.write_meta(status="done", finished=datetime.datetime.now().isoformat(timespec="seconds"),
                        duration_s=round(time.time() - self.started, 1), loadavg_end=loadavg(),
                        runs=len(self.rows), failed_runs=len(failed), rounds_run=len(self.plan.orders),
                        stop_reason=self.stop_reason)
        print(f"{PROG}: {len(self.rows)} runs in {fmt_duration(time.time() - self.started)}, "
              f"{len(failed)} failed; results in {self.out_dir}", file=sys.stderr)
        for r in failed:
            print(f"{PROG}: FAILED {r.config.text()} {r.phase} round {r.round}: {r.note}", file=sys.stderr)
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


def set_callgrind_ratios(rows: list) -> None:
    """callgrind_ir_ratio: a callgrind row's instructions over those of the
    uninstrumented callgrind row of the same workload, size and allocator."""
    base = {(r.workload, r.size, r.allocator): r.callgrind_ir for r in rows if r.index == "none" and r.ok}
    for r in rows:
        b = base.get((r.workload, r.size, r.allocator))
        if r.ok and b and r.callgrind_ir:
            r.callgrind_ir_ratio = round(r.callgrind_ir / b, 6)


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
