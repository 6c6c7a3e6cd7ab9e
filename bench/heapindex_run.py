"""One run of the bench matrix: a configuration, run once under
`./heapindex run`, becomes a runs.csv row.

    ./heapindex run --index I --allocator A --stats TMP -- COMMAND

(index "none" too: it preloads nothing but still appends the tree line).
Several runs may go at once from different threads (--callgrind-jobs).
"""

import csv
import datetime
import glob
import hashlib
import itertools
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Optional

from bench.heapindex_workloads import WORKLOADS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cache_dir():
    return os.environ.get("HEAPINDEX_CACHE") or os.path.expanduser("~/.cache/heapindex")


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


# Metadata placements (--meta; HEAPINDEX_META of the hooks, hooks/chunk.h).
# "" is no setting: the hooks' default placement, as before --meta existed.
META_PLACEMENTS = ("header", "trailer", "side")
NO_META = ""


@dataclass(frozen=True)
class Config:
    """One cell of the matrix. site_mode: NO_SITE_MODE for "none", which
    loads no hooks; meta: a --meta placement, or NO_META."""
    workload: str
    size: str
    index: str
    allocator: str
    site_mode: str = "ret"
    meta: str = NO_META

    def text(self) -> str:
        """'gcc/small memtable/glibc', with ' site=MODE' and ' meta=P' when set."""
        return (f"{self.workload}/{self.size} {self.index}/{self.allocator}"
                + ("" if self.site_mode in ("", "ret", NO_SITE_MODE) else f" site={self.site_mode}")
                + (f" meta={self.meta}" if self.meta else ""))

    def tag(self) -> str:
        """The part of a run's file names that tells its configuration apart."""
        mode = "" if self.site_mode in ("ret", NO_SITE_MODE) else "-" + self.site_mode.replace(":", "")
        return (f"{self.workload}-{self.size}-{self.index}-{self.allocator}{mode}"
                + (f"-{self.meta}" if self.meta else ""))

    def env(self, census_path: str) -> dict:
        """The hooks' settings of this configuration (None: removed from the
        environment, so an inherited setting cannot leak in)."""
        env = site_env(self.site_mode, census_path)
        if self.meta and self.index != "none":
            env["HEAPINDEX_META"] = self.meta
        return env


@dataclass
class Row:
    """One run, as runs.csv holds it: the configuration, where it stands in
    the bench (phase, round, order), the verdict (status, note), and the
    figures of the statistics file (tree and main process, idx_* of the
    index). took: how long bench waited for it (progress and estimates; no
    column)."""
    workload: str
    size: str
    index: str
    allocator: str
    site_mode: str = ""
    meta: str = NO_META
    phase: str = ""
    round: int = 0
    order: int = 0
    family: str = ""
    threads: int = 1
    machine: str = ""
    status: str = "failed"
    note: str = ""
    started: str = ""
    output_sha256: Optional[str] = None
    pairs: Optional[int] = None
    callgrind_ir: Optional[int] = None
    callgrind_ir_ratio: Optional[float] = None
    figures: dict = field(default_factory=dict)
    took: float = 0.0

    @classmethod
    def of(cls, config: Config, machine: str) -> "Row":
        w = WORKLOADS[config.workload]
        return cls(config.workload, config.size, config.index, config.allocator, config.site_mode,
                   config.meta, family=w.family, threads=w.threads, machine=machine,
                   started=datetime.datetime.now().isoformat(timespec="seconds"))

    @classmethod
    def from_columns(cls, columns: dict) -> "Row":
        """A row from runs.csv's fields (the inverse of columns())."""
        names = {f.name for f in fields(cls)} - {"figures", "took"}
        return cls(**{k: v for k, v in columns.items() if k in names},
                   figures={k: v for k, v in columns.items() if k not in names})

    @property
    def config(self) -> Config:
        return Config(self.workload, self.size, self.index, self.allocator, self.site_mode, self.meta)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def columns(self) -> dict:
        """The runs.csv fields of this row."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("figures", "took")}
        out.update(self.figures)
        return out


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def machine_name() -> str:
    """What runs.csv's machine column holds: the host name."""
    return platform.uname().node or "unknown"


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
    "index_answers_lookups", "index_answers_from_index",
]
# Written only when some row has them: the --meta placement of the
# configuration, and the main process's placement and metadata bytes per
# chunk (the hooks' statistics, where they write them).
OPTIONAL_COLUMNS = ["meta", "proc_meta", "proc_meta_bytes_per_chunk"]
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
    return WORKLOADS[workload].is_main_process(exe)


def fill_from_stats(row: "Row", tree, procs):
    """The figures of a statistics file: the tree line's, every process's
    sums, and the main process's own (with what its index can do)."""
    figures = row.figures
    if tree:
        for key in ("wall_s", "user_s", "sys_s", "max_rss_kb", "minflt", "majflt", "exit_status"):
            figures[key] = tree.get(key)
    figures["procs"] = len(procs)
    if procs:
        figures["procs_max_rss_kb_sum"] = sum(p.get("max_rss_kb", 0) for p in procs)
        figures["procs_minflt_sum"] = sum(p.get("minflt", 0) for p in procs)
        figures["procs_majflt_sum"] = sum(p.get("majflt", 0) for p in procs)
    mains = [p for p in procs if is_main_process(row.workload, p.get("exe", ""))]
    if not mains:
        return
    p = max(mains, key=lambda q: q.get("wall_s", 0))
    figures["proc_exe"] = p.get("exe")
    for key in ("wall_s", "user_s", "sys_s", "max_rss_kb", "minflt", "majflt", "peak_live_chunks",
                "peak_live_bytes", "peak_meta_bytes", "lookups_found", "lookups_missed"):
        figures["proc_" + key] = p.get(key)
    for key in ("meta", "meta_bytes_per_chunk"):
        if key in p:
            figures["proc_" + key] = p[key]
    for key in ("index_answers_lookups", "index_answers_from_index"):
        figures[key] = p.get(key)
    calls = p.get("calls") or {}
    figures["proc_alloc_calls"] = sum(calls.get(k, 0) for k in ALLOC_CALLS)
    figures["proc_free_calls"] = calls.get("free")
    for key, value in (p.get("index_stats") or {}).items():
        if isinstance(value, (int, float)):
            figures["idx_" + key] = value


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
            for a in WORKLOADS[workload].cmd[size]]


def workload_env(workload, extra=None):
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    if WORKLOADS[workload].python:
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
    return [f"{exe} (Debian package {pkg})" for exe, pkg in WORKLOADS[workload].programs.items()
            if not shutil.which(exe)]


def prepare_inputs(workloads: list, size: str) -> dict:
    """Write each generated input (WORKLOADS' "generate") into the cache when
    it is missing or differs from what its generator writes now. Returns
    notes for meta.json; a failed generator leaves the input missing, so the
    workload's runs fail with a note saying so."""
    notes = {}
    for w in workloads:
        for rel, argv in WORKLOADS[w].generate.items():
            if rel not in WORKLOADS[w].inputs.get(size, []) or rel in notes:
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
    skip = WORKLOADS[workload].callgrind_skip
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
        missing = [os.path.join(cache_dir(), rel) for rel in w.inputs.get(size, [])
                   if not os.path.isfile(os.path.join(cache_dir(), rel))]
        missing += [os.path.join(ROOT, rel) for rel in w.scripts
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

    def not_runnable(self, row: Row) -> bool:
        """Fill row as failed if an input or program is missing; True then."""
        missing = self.missing_inputs(row.workload, row.size)
        programs = missing_programs(row.workload)
        if missing:
            hint = "make" if any(m.startswith(os.path.join(ROOT, "build")) for m in missing) \
                else "sh workloads/fetch-inputs.sh"
            row.status, row.note = "failed", "missing input: " + ", ".join(missing) + f" (run: {hint})"
        elif programs:
            row.status, row.note = "failed", "not installed: " + ", ".join(programs) + " (run: make deps)"
        return bool(missing or programs)

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

    def run(self, config: Config, env_extra=None, timeout=None, callgrind=False) -> Row:
        """Run config once; returns its row (status ok/failed, note, figures,
        output_sha256, took). env_extra: more settings (None values removed).
        With callgrind the command runs under valgrind --tool=callgrind and
        the row gets callgrind_ir, the main process's instructions."""
        t0 = time.time()
        with self.lock:
            serial = next(self.serial)
        tag = f"{serial:05d}-{config.tag()}" + ("-cg" if callgrind else "")
        row = Row.of(config, self.machine)
        files = RunFiles(self.tmp, tag)
        env_extra = dict(env_extra or {}, **config.env(files.census))
        if self.not_runnable(row):
            return row
        cmd = workload_argv(config.workload, config.size, files.out)
        if callgrind:
            os.makedirs(files.cg_dir, exist_ok=True)
            cmd = callgrind_argv(config.workload, os.path.join(files.cg_dir, "cg.%p")) + cmd
            # valgrind maps at most ~2^35 bytes at once, so the flat table of
            # the timed runs (2^41 bytes at 47 address bits) is refused there.
            # Its client lives below 2^37, so a flat table over 40 bits (2^34
            # bytes at the default shift) covers it and runs the timed runs'
            # code; flat only, so a refusal fails the run instead of counting
            # the two-level code (the other indexes ignore both settings).
            env_extra["HEAPINDEX_ADDR_BITS"] = "40"
            env_extra["HEAPINDEX_TABLE_LEVELS"] = "1"
        argv = [self.cli, "run", "--index", config.index, "--allocator", config.allocator,
                "--stats", files.stats, "--"] + cmd
        limit = timeout or self.timeout
        returncode, timed_out = self.spawn_and_wait(argv, workload_env(config.workload, env_extra),
                                                    files.stdout, files.stderr, limit)
        tree, procs = parse_stats(files.stats)
        fill_from_stats(row, tree, procs)
        problems = run_problems(tree, returncode, timed_out, limit)
        problems += self.check_output(row, files, callgrind, problems)
        self.finish(row, tag, problems, (files.stderr, files.stdout, files.stats))
        files.remove()
        row.took = time.time() - t0
        return row

    @staticmethod
    def check_output(row: Row, files: "RunFiles", callgrind: bool, problems: list) -> list:
        """Record the output's checksum (and pairs=N, and callgrind's count
        of the main process); returns the problems found."""
        w = WORKLOADS[row.workload]
        found = []
        out_path = files.out if w.output == "file" else files.stdout
        if os.path.isfile(out_path):
            row.output_sha256 = sha256_file(out_path)
            if w.pairs:
                row.pairs = output_pairs(out_path)
        elif not problems:
            found.append("no output produced")
        if callgrind and not problems and not found:
            counts = [n for name, n in callgrind_totals(files.cg_dir) if w.is_main_process(name)]
            if counts:
                row.callgrind_ir = max(counts)
            else:
                found.append("callgrind wrote no profile of the main process")
        return found

    def finish(self, row: Row, tag, problems, logs):
        if problems:
            err = tail_text(logs[0])
            row.status = "failed"
            row.note = "; ".join(problems) + (f"; stderr: {err}" if err else "")
            os.makedirs(self.logs, exist_ok=True)
            for path, ext in zip(logs, ("stderr", "stdout", "jsonl")):
                if os.path.exists(path):
                    shutil.copy(path, os.path.join(self.logs, f"{tag}.{ext}"))
        else:
            row.status = "ok"
            row.note = ""


class RunFiles:
    """The temporary files of one run, all named by its tag."""

    def __init__(self, tmp: str, tag: str):
        base = os.path.join(tmp, tag)
        self.out, self.stats, self.census = base + ".o", base + ".jsonl", base + ".census"
        self.stdout, self.stderr, self.cg_dir = base + ".stdout", base + ".stderr", base + ".cg"
        for path in (self.out, self.stats):
            if os.path.exists(path):
                os.unlink(path)

    def remove(self):
        for path in (self.out, self.stats, self.stdout, self.stderr, self.census):
            if os.path.exists(path):
                os.unlink(path)
        shutil.rmtree(self.cg_dir, ignore_errors=True)


def run_problems(tree, returncode, timed_out, limit) -> list:
    """What went wrong with a run, from its tree line and exit."""
    if timed_out:
        return [f"timeout after {limit} s"]
    if tree is None:
        return [f"heapindex run exited {returncode} without a tree line"]
    st = tree.get("exit_status", returncode)
    if st != 0:
        return [f"exit status {st}" + (f" ({signal_name(st - 128)})" if st > 128 else "")]
    return []


def write_rows(path, rows):
    """Write runs.csv from rows (Row, or dicts of its columns), atomically."""
    rows = [r.columns() if isinstance(r, Row) else r for r in rows]
    optional = [k for k in OPTIONAL_COLUMNS if any(r.get(k) not in (None, "") for r in rows)]
    idx_cols = sorted({k for r in rows for k in r if k.startswith("idx_")})
    columns = FIXED_COLUMNS + optional + idx_cols
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    os.replace(tmp, path)


