"""Tests of the bench -> runs.csv -> report pipeline, and of tune's closed form.

    /usr/bin/python3 -m bench.test_pipeline      (in the source tree; or: make bench-test)

Stdlib unittest; no real workload runs (one test runs a two-line shell
command through `heapindex run` if the project is built, to check the
output comparison of the bench loop). Ends with "N passed, M failed" and a
non-zero exit status on failure.
"""

import argparse
import csv
import io
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import types
import unittest
from contextlib import redirect_stderr, redirect_stdout

try:
    from analysis import heapindex_report as report
    from analysis import heapindex_stats as hstats
    from analysis import heapindex_tune as tune
    from analysis.heapindex_common import Capabilities, CapabilityTable
    from bench import heapindex_bench as bench
    from bench import heapindex_run as run
    from bench.heapindex_run import Config, Row
    from bench.heapindex_workloads import Workload
except ModuleNotFoundError as e:     # run as a file: the packages' directory is not on sys.path
    sys.exit(f"test_pipeline: {e}: run it as a module from the source tree: "
             "/usr/bin/python3 -m bench.test_pipeline (or make bench-test)")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

PY = "/usr/bin/python3"
HEAPINDEX = os.path.join(ROOT, "heapindex")      # the command, as users run the scripts
BUILT = os.access(os.path.join(ROOT, "build", "bin", "heapindex"), os.X_OK)

# The seed talk's gcc table, as three interleaved rounds.
SEED = {"none": [1.70, 1.76, 1.72], "noop": [1.73, 1.76, 1.72],
        "vghash": [1.83, 1.82, 1.85], "memtable": [1.77, 1.78, 1.77]}


def row(workload, index, rnd, wall, status="ok", phase="measure", note="", allocator="glibc", **extra):
    r = {"workload": workload, "size": "small", "index": index, "allocator": allocator,
         "phase": phase, "round": rnd, "order": 1, "wall_s": wall, "user_s": wall * 0.9,
         "sys_s": wall * 0.05, "max_rss_kb": 80000, "minflt": 20000, "majflt": 0,
         "exit_status": 0 if status == "ok" else 139, "status": status, "note": note}
    if index != "none":
        r.update(procs=3, proc_exe="cc1" if workload == "gcc" else "python3.11", proc_wall_s=wall * 0.9,
                 proc_max_rss_kb=79000, proc_minflt=18000, proc_peak_meta_bytes=400000)
    r.update(extra)
    return r


def synthetic_rows():
    rows = [row("gcc", "none", 0, 5.0, phase="warmup")]          # warm-up: never counted
    for index, walls in SEED.items():
        for rnd, wall in enumerate(walls, 1):
            extra = {}
            if index == "memtable":
                extra = {"idx_lookups": 100, "idx_list_steps": 250, "idx_longest_list_walked": 7,
                         "idx_table_resident_bytes": 40960}
            rows.append(row("gcc", index, rnd, wall, **extra))
    # splay: round 2 crashed with an absurd time that must not reach a median.
    rows.append(row("gcc", "splay", 1, 1.80))
    rows.append(row("gcc", "splay", 2, 99.0, status="failed", note="exit status 139 (SIGSEGV)"))
    rows.append(row("gcc", "splay", 3, 1.90))
    # pychurn: memtable varies between rounds, so the median of per-round
    # ratios (1.05) differs from the ratio of medians (1.40 / 1.50).
    for rnd, (n, m, u) in enumerate([(1.0, 1.00, 1.10), (1.0, 2.00, 2.10), (1.0, 1.50, 1.40)], 1):
        rows.append(row("pychurn", "none", rnd, n))
        rows.append(row("pychurn", "memtable", rnd, m))
        rows.append(row("pychurn", "uthash", rnd, u))
    rows.append(row("pychurn", "uthash", 4, 1.2, status="failed",
                    note="output differs from the reference run's (sha256 aaaa vs bbbb)"))
    return rows


def write_results(directory, rows):
    run.write_rows(os.path.join(directory, "runs.csv"), rows)
    meta = {"started": "2026-01-01T00:00:00", "status": "done",
            "machine": {"nproc": 2, "mem_total_kb": 1 << 20, "kernel": "test", "cpu_model": "test cpu"},
            "versions": {"gcc": "gcc 12", "glibc": "2.36", "jemalloc": "5.3", "python": "Python 3.11"},
            "git": {"commit": "0" * 40, "dirty": False},
            "settings": {"workloads": ["gcc", "pychurn"], "size": "small", "runs": 3, "warmup": 1,
                         "indexes": ["none", "noop", "vghash", "memtable", "splay", "uthash"],
                         "allocators": ["glibc"], "seed": 1}}
    with open(os.path.join(directory, "meta.json"), "w") as f:
        json.dump(meta, f)


def table_row(text, start):
    """The markdown table line starting with '| start'."""
    for line in text.splitlines():
        if line.startswith("| " + start + " ") or line.startswith("| " + start + "|"):
            return [c.strip() for c in line.strip().strip("|").split("|")]
    raise AssertionError(f"no table row starting with {start!r}")


class ReportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        write_results(cls.dir, synthetic_rows())
        with redirect_stderr(io.StringIO()):
            cls.md, cls.main_text, cls.plots = report.build_report(cls.dir, make_plots=True)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_report_written(self):
        with open(os.path.join(self.dir, "report.md")) as f:
            self.assertEqual(f.read(), self.md)
        self.assertIn("gcc uninstrumented", self.main_text)

    def test_seed_table_runs_medians_overheads(self):
        r = table_row(self.md, "gcc uninstrumented")
        self.assertEqual(r[1], "1.70, 1.76, 1.72")
        self.assertEqual(r[2], "1.72")
        r = table_row(self.md, "gcc + memtable index")
        self.assertEqual(r[1], "1.77, 1.78, 1.77")
        self.assertEqual(r[2], "1.77")
        self.assertEqual(r[3], "+2.9%")                    # 1.77 / 1.72 - 1
        self.assertEqual(table_row(self.md, "gcc + vgHash index")[3], "+6.4%")   # 1.83 / 1.72
        self.assertEqual(table_row(self.md, "gcc + no-op hooks")[3], "+0.6%")    # 1.73 / 1.72

    def test_seed_columns_beside(self):
        r = table_row(self.md, "gcc + vgHash index")
        self.assertEqual(r[8], "1.83, 1.82, 1.85")
        self.assertEqual(r[9], "1.83")
        self.assertEqual(r[10], "+6.4%")

    def test_seed_table_intervals(self):
        # The seed's own numbers as three paired rounds (checked against
        # scipy.stats.t.interval on the log ratios): only vgHash is resolved.
        self.assertEqual(table_row(self.md, "gcc + vgHash index")[4], "1.062 [1.003..1.124]")
        self.assertEqual(table_row(self.md, "gcc + memtable index")[4],
                         "1.027 [0.991..1.065] not resolved at 3 rounds")
        self.assertEqual(table_row(self.md, "gcc + no-op hooks")[4],
                         "1.006 [0.981..1.031] not resolved at 3 rounds")
        self.assertEqual(table_row(self.md, "gcc + no-op hooks")[5],
                         "0.979 [0.958..1.001] not resolved at 3 rounds")
        ranking = [l for l in self.md.splitlines() if l.startswith("- **Against uninstrumented**")][0]
        self.assertIn("resolved, least to most: vgHash index +6.2% (+0.3%..+12.4%)", ranking)
        self.assertIn("not resolved, no ranking: no-op hooks (not resolved at 3 rounds", ranking)
        self.assertIn("memtable index (not resolved at 3 rounds", ranking)
        self.assertIn("not resolved at 3 rounds", self.main_text)

    def test_ratios_csv(self):
        with open(os.path.join(self.dir, "ratios.csv")) as f:
            rows = {(r["workload"], r["index"], r["baseline"]): r for r in csv.DictReader(f)}
        r = rows[("gcc", "vghash", "memtable")]
        self.assertEqual((r["rounds"], r["resolved"]), ("3", "1"))
        self.assertAlmostEqual(float(r["lo95"]), 1.005968, places=5)
        self.assertAlmostEqual(float(r["hi95"]), 1.062431, places=5)
        self.assertEqual(rows[("gcc", "memtable", "none")]["resolved"], "0")

    def test_ratio_to_memtable_pair_by_pair(self):
        # gcc vgHash / memtable per round: 1.83/1.77, 1.82/1.78, 1.85/1.77:
        # geometric mean 1.034, interval 1.006..1.062
        r = table_row(self.md, "gcc + vgHash index")
        self.assertTrue(r[5].startswith("1.034 [1.006..1.062]"), r[5])
        g = report.group(report.load_runs(os.path.join(self.dir, "runs.csv")))
        ratios = report.paired_ratios(g[("pychurn", "small", "glibc")]["uthash"],
                                      g[("pychurn", "small", "glibc")]["memtable"])
        self.assertEqual(sorted(ratios), [1, 2, 3])       # the failed round 4 is not paired
        self.assertAlmostEqual(report.median(ratios.values()), 1.05)
        _, rows = report.time_table(g[("pychurn", "small", "glibc")])
        uthash = [r for r in rows if r[0] == "uthash index"][0]
        self.assertTrue(uthash[5].startswith("1.050 "), uthash[5])   # not 1.40/1.50 = 0.933

    def test_failed_row_listed_and_excluded(self):
        failed = self.md.split("## 5. Failed runs", 1)[1]
        self.assertIn("exit status 139 (SIGSEGV)", failed)
        self.assertIn("output differs from the reference run's", failed)
        self.assertIn("2 failed runs", failed)
        r = table_row(self.md, "gcc + splay index")
        self.assertEqual(r[1], "1.80, 1.90")               # 99.0 is not listed
        self.assertEqual(r[2], "1.85")                     # median of the ok runs only
        self.assertNotIn("99.00", self.md.split("## 5. Failed runs", 1)[0])

    def test_warmup_not_counted(self):
        _, rows = report.time_table(report.group(report.load_runs(
            os.path.join(self.dir, "runs.csv")))[("gcc", "small", "glibc")])
        none = [r for r in rows if r[0] == "uninstrumented"][0]
        self.assertEqual(none[1], "3")
        self.assertTrue(none[2].startswith("1.720 (1.700..1.760)"), none[2])

    def test_plots(self):
        import importlib.util
        if importlib.util.find_spec("matplotlib") is None:
            self.skipTest("no matplotlib")
        self.assertIn("workload_gcc_small.png", self.plots)
        for name in self.plots:
            with open(os.path.join(self.dir, name), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_optional_sections_degrade(self):
        self.assertIn("Not measured: no scale.csv here", self.md)
        self.assertIn("Not measured: no replay.csv here", self.md)

    def test_overhead_arithmetic(self):
        self.assertAlmostEqual(report.overhead_pct(1.77, 1.72), 2.9069767, places=5)
        self.assertIsNone(report.overhead_pct(1.0, 0))
        self.assertEqual(report.fmt_pct(-2.25), "-2.2%")
        sf = report.seed_figures()
        self.assertEqual(report.fmt_pct(sf["memtable"]["overhead"]), "+2.9%")


class ReplayScaleTest(unittest.TestCase):
    def test_replay_and_scale_sections(self):
        with tempfile.TemporaryDirectory() as d:
            write_results(d, synthetic_rows())
            with open(os.path.join(d, "replay.csv"), "w") as f:
                f.write("index,trace,op,ns_per_op,callgrind_ir_per_op\n"
                        "memtable,gcc,lookup,20.0,80\nmemtable,gcc,lookup,22.0,80\nvghash,gcc,lookup,40.0,\n")
            with open(os.path.join(d, "scale.csv"), "w") as f:
                f.write(",".join(report.SCALE_COLUMNS) + "\n"
                        "memtable,1000,340660,10,,,,5,2\nmemtable,100000,40000000,30,,,,10,3\n")
            with redirect_stderr(io.StringIO()):
                md, _, _ = report.build_report(d, make_plots=False)
            self.assertIn("| gcc   | lookup |", md.replace("gcc  ", "gcc  "))
            self.assertIn("21.0 (80 Ir)", md)              # median of 20 and 22
            r = table_row(md.split("multiple of the pointer-chase floor", 1)[1], "memtable index")
            self.assertEqual(r[1:], ["2.00", "3.00"])

    def test_wide_formats_of_the_c_commands(self):
        """`heapindex scale --out` and `heapindex replay --csv` write wide CSVs."""
        with tempfile.TemporaryDirectory() as d:
            write_results(d, synthetic_rows())
            with open(os.path.join(d, "scale.csv"), "w") as f:
                f.write("index,live_chunks,heap_bytes,lookup_hit_ns,lookup_miss_ns,insert_ns,remove_ns,"
                        "chase_ns,hit_ratio_to_chase\n"
                        "memtable,1000,340660,20.0,21.0,4.0,3.0,4.0,5.0\n"
                        "memtable,1000000,406000000,400.0,350.0,200.0,250.0,200.0,2.0\n")
            with open(os.path.join(d, "replay.csv"), "w") as f:
                f.write("trace,index,round,records,inserts,removes,peak_live,lookups,insert_ns,remove_ns,lookup_ns\n"
                        "t,memtable,1,10,5,5,3,10,7.0,8.0,80.0\n"
                        "t,memtable,2,10,5,5,3,10,9.0,8.0,90.0\n")
            with redirect_stderr(io.StringIO()):
                md, _, _ = report.build_report(d, make_plots=False)
            ratios = md.split("multiple of the pointer-chase floor", 1)[1]
            self.assertEqual(table_row(ratios, "memtable index")[1:], ["5.00", "2.00"])
            misses = md.split("**lookup miss: ns per operation**", 1)[1]
            self.assertEqual(table_row(misses, "memtable index")[1:], ["21.0", "350.0"])
            replay = md.split("## 4. Trace replay", 1)[1]
            self.assertEqual(table_row(replay, "t")[1:], ["insert", "8.0"])   # median of 7 and 9

    def test_scale_anchors(self):
        """gcbase rows have hits only (empty fields); every index and both anchors share one plot."""
        with tempfile.TemporaryDirectory() as d:
            write_results(d, synthetic_rows())
            with open(os.path.join(d, "scale.csv"), "w") as f:
                f.write("index,live_chunks,heap_bytes,lookup_hit_ns,lookup_miss_ns,insert_ns,remove_ns,"
                        "chase_ns,hit_ratio_to_chase\n"
                        "memtable,1000,340660,20.0,21.0,4.0,3.0,4.0,5.0\n"
                        "critnib,1000,340660,36.0,30.0,11.0,25.0,4.0,9.0\n"
                        "gcbase,1000,340660,8.0,,,,4.0,2.0\n"
                        "memtable,10000000,4e9,900.0,350.0,200.0,250.0,500.0,1.8\n"
                        "critnib,10000000,4e9,1500.0,300.0,300.0,400.0,500.0,3.0\n"
                        "gcbase,10000000,4e9,60.0,,,,500.0,0.12\n")
            with redirect_stderr(io.StringIO()):
                md, _, plots = report.build_report(d, make_plots=True)
            hits = md.split("**lookup hit: ns per operation**", 1)[1]
            self.assertEqual(table_row(hits, "Boehm GC_base (base only)")[1:], ["8.0", "60.0"])
            self.assertEqual(table_row(hits, "critnib index")[1:], ["36.0", "1500.0"])
            misses = md.split("**lookup miss: ns per operation**", 1)[1].split("**insert", 1)[0]
            self.assertNotIn("GC_base", misses)
            ratios = md.split("multiple of the pointer-chase floor", 1)[1]
            self.assertEqual(table_row(ratios, "Boehm GC_base (base only)")[1:], ["2.00", "0.12"])
            self.assertIn("it answers the base only", md)
            import importlib.util
            if importlib.util.find_spec("matplotlib") is not None:
                self.assertIn("scale_overview.png", plots)
                self.assertIn("![scale overview](scale_overview.png)", md)


@unittest.skipUnless(BUILT, "build/bin/heapindex is not built")
class CapabilityProbeTest(unittest.TestCase):
    """bench learns what an index can do from its hooks' statistics."""

    def test_probe(self):
        self.assertFalse(bench.index_capabilities("noop").answers_lookups)
        self.assertFalse(bench.index_capabilities("none").answers_lookups)
        mem = bench.index_capabilities("memtable")
        self.assertTrue(mem.answers_lookups)
        self.assertFalse(mem.answers_from_index)                 # base and size from the header
        if "critnib" in bench.built_libraries():
            self.assertTrue(bench.index_capabilities("critnib").answers_from_index)
        names = bench.built_indexes()
        self.assertEqual(names[:3], ["none", "noop", "memtable"])
        self.assertEqual(bench.reference_index("dwarfpy", ["none", "noop"]), "memtable")
        self.assertEqual(bench.reference_index("pychurn", ["noop"]), "none")


class ScaleFormatTest(unittest.TestCase):
    """parse_scale reads what `heapindex scale --out` writes, and only that."""

    def check_parsed(self, path):
        with open(path) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[0].split(","), report.SCALE_COLUMNS)
        scale = report.parse_scale(path)
        self.assertNotIn("error", scale)
        first = lines[1].split(",")
        index, x = first[0], int(first[1])
        hits = dict((p[0], p[1]) for p in scale["metrics"]["lookup hit"][index])
        self.assertAlmostEqual(hits[x], float(first[3]))
        self.assertAlmostEqual(dict(scale["floor"])[x], float(first[7]))
        indexes = {l.split(",")[0] for l in lines[1:]}
        self.assertEqual(set(scale["series"]), indexes)
        return scale

    def test_committed_output(self):
        scale = self.check_parsed(SCALE_FIXTURE)
        # gcbase measures hits only: its empty fields are no figures.
        self.assertIn("gcbase", scale["metrics"]["lookup hit"])
        self.assertNotIn("gcbase", scale["metrics"]["lookup miss"])

    @unittest.skipUnless(BUILT, "build/bin/heapindex is not built")
    def test_real_scale_run(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "scale.csv")
            r = subprocess.run([HEAPINDEX, "scale", "--index", "memtable,noop", "--max-chunks", "1000",
                                "--lookups", "2000", "--budget", "0.1", "--out", path],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            scale = self.check_parsed(path)
            self.assertEqual(sorted(scale["series"]), ["memtable", "noop"])

    def test_lookup_cache_column(self):
        """A run with the lookup cache on gets its hit rate as a table; one without, none."""
        with tempfile.TemporaryDirectory() as d:
            write_results(d, synthetic_rows())
            with open(os.path.join(d, "scale.csv"), "w") as f:
                f.write(",".join(report.SCALE_COLUMNS) + "\n"
                        "memtable,1000,340660,20.0,21.0,4.0,3.0,4.0,5.0,0.25\n"
                        "memtable,1000,340660,20.0,21.0,4.0,3.0,4.0,5.0,0.75\n"
                        "bitmap,1000,340660,20.0,21.0,4.0,3.0,4.0,5.0,\n")
            with redirect_stderr(io.StringIO()):
                md, _, _ = report.build_report(d, make_plots=False)
            cache = md.split("**lookup cache:", 1)[1].split("\n\n")[1]
            self.assertEqual(table_row(cache, "memtable index")[1:], ["50.0"])   # median of 25 and 75
            self.assertNotIn("bitmap", cache)
            with open(os.path.join(d, "scale.csv"), "w") as f:
                f.write(",".join(report.SCALE_COLUMNS) + "\nmemtable,1000,340660,20.0,21.0,4.0,3.0,4.0,5.0,\n")
            with redirect_stderr(io.StringIO()):
                md, _, _ = report.build_report(d, make_plots=False)
            self.assertNotIn("**lookup cache:", md)

    def test_other_columns_refused(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "scale.csv")
            for header in ("index,live_chunks,op,ns_per_op",
                           "index,live_chunks,heap_bytes,lookup_ns,lookup_miss_ns,insert_ns,remove_ns,"
                           "chase_ns,hit_ratio_to_chase"):
                with open(path, "w") as f:
                    f.write(header + "\nmemtable,1000,1,2,3,4,5,6,7\n")
                self.assertIn("expected those of `heapindex scale --out`", report.parse_scale(path)["error"])


class TuneTest(unittest.TestCase):
    def test_closed_form(self):
        self.assertEqual(tune.reserved_bytes(32, 10), 2 ** 22)
        self.assertEqual(tune.reserved_bytes(47, 10), 2 ** 37)
        self.assertEqual(tune.reserved_bytes(47, 9), 2 ** 38)   # memtable.h's own example
        self.assertEqual(tune.reserved_bytes(57, 4), 2 ** 53)
        lines = tune.check_seed_statements()
        self.assertTrue(all(l.endswith(": ok") for l in lines))
        table = tune.closed_form_table(tune.WIDTHS, range(4, 12))
        r = table_row(table, "32")
        self.assertEqual(r[7], "2^22 (4.0 MiB)")               # shift 10
        r = table_row(table, "47")
        self.assertEqual(r[7], "2^37 (128.0 GiB)")
        r = table_row(table, "57")
        self.assertTrue(r[7].endswith("✗") and not r[8].endswith("✗"))   # 2^47 no, 2^46 fits

    def test_arguments(self):
        p = tune.make_parser()
        for n in (32, 39, 47, 48, 57):
            self.assertEqual(p.parse_args(["--addr-bits", str(n)]).addr_bits, n)
        self.assertEqual(p.parse_args(["--addr-bits", "47", "--shifts", "6..9"]).shifts, [6, 7, 8, 9])
        for bad in (["--addr-bits", "31"], ["--addr-bits", "58"], ["--addr-bits", "47", "--shifts", "3..9"],
                    ["--addr-bits", "47", "--shifts", "9..6"], [], ["--addr-bits", "47", "--workload", "x"]):
            err = io.StringIO()
            with redirect_stderr(err), self.assertRaises(SystemExit) as cm:
                p.parse_args(bad)
            self.assertEqual(cm.exception.code, 2, bad)
            self.assertEqual(len(err.getvalue().strip().splitlines()), 1, err.getvalue())

    def test_recommend(self):
        def s(shift, work, committed):
            return {"shift": shift, "ok": 1, "refused": None, "reserved": tune.reserved_bytes(47, shift),
                    "work_per_lookup": work, "idx_lookups": 1000, "idx_table_resident_bytes": committed,
                    "wall_s": 1.0}
        pick, reason = tune.recommend([s(4, 1.0, 4 << 20), s(6, 1.2, 1 << 20), s(9, 5.0, 64 << 10)], False)
        self.assertEqual(pick, 6)
        self.assertIn("within", reason)


class BenchArgsTest(unittest.TestCase):
    CASES = [
        (["--workloads", "nosuch"], "gcc, gcc-O2, pycompile"),
        (["--indexes", "nosuch"], "none"),
        (["--allocators", "tcmalloc"], "glibc, jemalloc"),
        (["--size", "huge"], "small"),
        (["--runs", "0"], ">= 1"),
        (["--warmup", "-1"], ">= 0"),
        (["--workloads", "gcc-O2", "--size", "small"], "valid sizes: full"),
        (["--bogus"], "unrecognized"),
        (["--site-modes", "ret,stack"], "valid: ret, unwind:N (N 1..32), skip, census"),
        (["--site-modes", "unwind:0"], "unwind:N must be 1..32"),
        (["--site-modes", "unwind:x"], "unwind:N must be 1..32"),
        (["--site-modes", ","], "--site-modes is empty"),
    ]

    def test_bad_flags_one_line_exit_2(self):
        for argv, expect in self.CASES:
            r = subprocess.run([HEAPINDEX, "bench"] + argv,
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 2, argv)
            lines = r.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, (argv, r.stderr))
            self.assertIn(expect, lines[0], argv)
            self.assertTrue(lines[0].startswith("heapindex bench: "), lines[0])
            self.assertEqual(r.stdout, "")

    def test_report_usage(self):
        r = subprocess.run([HEAPINDEX, "report", "/nonexistent/dir"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)

    def test_workload_groups(self):
        self.assertEqual(bench.parse_workloads("gcc,python", "small"), ["gcc", "pycompile", "pychurn", "dwarfpy"])
        self.assertEqual(bench.parse_workloads("all", "small"),
                         ["gcc", "pycompile", "pychurn", "dwarfpy", "lua", "gs", "gs-mt", "z3", "redis",
                          "threads-1", "threads-2", "threads-4", "threads-lookup"])   # gcc-O2: full only
        caps = CapabilityTable(noop=Capabilities(answers_lookups=False), memtable=Capabilities(True))
        configs, skipped = bench.configurations(["dwarfpy"], "small", ["none", "noop", "memtable"], ["glibc"],
                                                caps)
        self.assertEqual(configs, [Config("dwarfpy", "small", "memtable", "glibc")])
        self.assertEqual(len(skipped), 2)
        # Decided by what the index can do, whatever its name.
        caps = CapabilityTable(memtable=Capabilities(answers_lookups=False), noop=Capabilities(True))
        configs, _ = bench.configurations(["dwarfpy"], "small", ["noop", "memtable"], ["glibc"], caps)
        self.assertEqual(configs, [Config("dwarfpy", "small", "noop", "glibc")])

    def test_site_modes(self):
        self.assertEqual(bench.parse_site_modes("ret"), ["ret"])
        self.assertEqual(bench.parse_site_modes(" ret, unwind:08,skip,census,ret,unwind:8 "),
                         ["ret", "unwind:8", "skip", "census"])
        self.assertEqual(bench.parse_site_modes("unwind:32"), ["unwind:32"])
        for bad in ("", "unwind:33", "unwind:", "unwind", "RET", "skip:3"):
            with self.assertRaises(bench.UsageError, msg=bad):
                bench.parse_site_modes(bad)
        self.assertEqual(bench.make_parser().parse_args([]).site_modes, "ret")   # make bench: ret only
        configs = bench.with_hook_settings([Config("gcc", "small", "none", "glibc"),
                                            Config("gcc", "small", "memtable", "glibc")], ["ret", "unwind:8"])
        self.assertEqual(configs, [Config("gcc", "small", "none", "glibc", "-"),
                                   Config("gcc", "small", "memtable", "glibc", "ret"),
                                   Config("gcc", "small", "memtable", "glibc", "unwind:8")])
        self.assertEqual(run.site_env("unwind:8")["HEAPINDEX_SITE"], "unwind:8")
        self.assertEqual(run.site_env("census", "/x/c")["HEAPINDEX_CENSUS"], "/x/c")
        self.assertIn("xmalloc", run.site_env("skip")["HEAPINDEX_SITE_SKIP"])
        self.assertEqual(run.site_env("-"), {})
        # ret removes inherited settings: the row's mode is what ran.
        saved = {k: os.environ.get(k) for k in ("HEAPINDEX_SITE_SKIP", "HEAPINDEX_CENSUS")}
        os.environ["HEAPINDEX_SITE_SKIP"] = "foo"
        try:
            env = run.workload_env("gcc", run.site_env("ret"))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        self.assertEqual(env["HEAPINDEX_SITE"], "ret")
        self.assertNotIn("HEAPINDEX_SITE_SKIP", env)
        self.assertNotIn("HEAPINDEX_CENSUS", env)


class SiteCostTest(unittest.TestCase):
    """The Allocation-site capture cost section on two modes."""

    def test_overhead_pair_by_pair(self):
        # memtable ret vs unwind:8: per-round ratios 2.0, 1.05, 1.2 -> median
        # +20.0% (+5.0%..+100.0%); the ratio of medians would be +33.3%.
        rows = []
        for rnd, (n, r, u) in enumerate([(0.9, 1.0, 2.0), (0.9, 2.0, 2.1), (0.9, 1.5, 1.8)], 1):
            rows.append(row("gcc", "none", rnd, n, site_mode="-"))
            rows.append(row("gcc", "memtable", rnd, r, site_mode="ret"))
            rows.append(row("gcc", "memtable", rnd, u, site_mode="unwind:8"))
        rows.append(row("gcc", "memtable", 4, 50.0, site_mode="unwind:8", status="failed", note="x"))
        with tempfile.TemporaryDirectory() as d:
            write_results(d, rows)
            md, _, _ = report.build_report(d, make_plots=False)
        self.assertIn("## Allocation-site capture cost", md)
        section = md.split("## Allocation-site capture cost", 1)[1].split("\n## ", 1)[0]
        ret_row = table_row(section, "gcc (small)")
        self.assertEqual(ret_row[1:5], [report.label("memtable"), "ret", "3", "1.500 (1.000..2.000)"])
        unwind = [[c.strip() for c in l.strip().strip("|").split("|")] for l in section.splitlines()
                  if l.startswith("|") and "unwind:8" in l.split("|")[3]]
        self.assertEqual(len(unwind), 1)
        cells = unwind[0]
        self.assertEqual(cells[2:5], ["unwind:8", "3", "2.000 (1.800..2.100)"])
        self.assertEqual(cells[5], "+20.0% (+5.0%..+100.0%)")      # wall
        self.assertEqual(cells[7], "+20.0% (+5.0%..+100.0%)")      # CPU = 0.95 x wall
        # The other sections use the ret runs only: memtable's wall median 1.5.
        time_row = table_row(md.split("## 2.", 1)[1], "memtable")
        self.assertEqual(time_row[1], "3")
        self.assertTrue(time_row[2].startswith("1.500 "), time_row)

    def test_runs_csv_without_site_mode(self):
        rows = [row("gcc", i, rnd, w) for rnd in (1, 2) for i, w in (("none", 1.0), ("memtable", 1.2))]
        with tempfile.TemporaryDirectory() as d:
            write_results(d, rows)
            path = os.path.join(d, "runs.csv")
            with open(path, newline="") as f:
                old = [{k: v for k, v in r.items() if k != "site_mode"} for r in csv.DictReader(f)]
            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(old[0]))
                w.writeheader()
                w.writerows(old)
            loaded = report.load_runs(path)
            self.assertEqual({r["site_mode"] for r in loaded}, {"ret"})
            md, _, _ = report.build_report(d, make_plots=False)
        self.assertNotIn("Allocation-site capture cost", md)
        self.assertEqual(table_row(md.split("## 2.", 1)[1], "memtable")[1], "2")


@unittest.skipUnless(BUILT, "build/bin/heapindex is not built")
class BenchLoopTest(unittest.TestCase):
    """The real bench loop on a fake workload whose output depends on the
    index: every instrumented run must be marked failed, "output differs"."""

    def test_output_mismatch_marks_failed(self):
        fake = Workload("fake", "test", {"small": ["/bin/sh", "-c", "echo ${LD_PRELOAD:+preloaded}"]},
                        main=("sh",))
        saved = dict(bench.WORKLOADS)
        bench.WORKLOADS.clear()
        bench.WORKLOADS["fake"] = fake
        try:
            with tempfile.TemporaryDirectory() as d:
                err = io.StringIO()
                with redirect_stderr(err), redirect_stdout(io.StringIO()):
                    status = bench.main(["--workloads", "fake", "--indexes", "none,noop", "--runs", "2",
                                         "--warmup", "0", "--out", d, "--seed", "3"])
                self.assertEqual(status, 1)
                with open(os.path.join(d, "runs.csv")) as f:
                    rows = list(csv.DictReader(f))
                measured = [r for r in rows if r["phase"] == "measure"]
                self.assertEqual(len(measured), 4)
                self.assertEqual([r["phase"] for r in rows if r["phase"] != "measure"], ["reference"])
                for r in measured:
                    if r["index"] == "none":
                        self.assertEqual(r["status"], "ok", r)
                    else:
                        self.assertEqual(r["status"], "failed")
                        self.assertIn("output differs", r["note"])
                    self.assertNotEqual(r["wall_s"], "")
                meta = json.load(open(os.path.join(d, "meta.json")))
                self.assertEqual(meta["settings"]["seed"], 3)
                self.assertEqual(len(meta["settings"]["rounds"]), 2)
                self.assertEqual(meta["failed_runs"], 2)
                self.assertIn("round 2/2", err.getvalue())
                self.assertIn("left ~", err.getvalue())
        finally:
            bench.WORKLOADS.clear()
            bench.WORKLOADS.update(saved)



THREADS = os.path.join(ROOT, "build", "workloads", "threads")


class StatsTest(unittest.TestCase):
    """The interval computation, on data with a known answer."""

    def test_t_quantiles(self):
        # Student's t, two-sided 95% (tables; scipy.stats.t.ppf(0.975, df)).
        for df, expect in ((1, 12.706205), (2, 4.302653), (4, 2.776445), (9, 2.262157), (30, 2.042272)):
            self.assertAlmostEqual(hstats.t_quantile(0.975, df), expect, places=5)
        self.assertAlmostEqual(hstats.t_quantile(0.025, 4), -2.776445, places=5)
        self.assertAlmostEqual(hstats.t_quantile(0.5, 7), 0.0, places=9)
        with self.assertRaises(ValueError):
            hstats.t_quantile(1.0, 3)

    def test_interval_known_answer(self):
        # log ratios -0.1, 0, +0.1: mean 0, sd 0.1, n 3 -> exp(+-4.302653 * 0.1 / sqrt 3)
        ci = hstats.ratio_ci([math.exp(-0.1), 1.0, math.exp(0.1)])
        half = 4.302653 * 0.1 / math.sqrt(3)
        self.assertAlmostEqual(ci["estimate"], 1.0, places=12)
        self.assertAlmostEqual(ci["lo"], math.exp(-half), places=6)
        self.assertAlmostEqual(ci["hi"], math.exp(half), places=6)
        self.assertAlmostEqual(ci["half_width_pct"], (math.exp(half) - 1) * 100, places=4)
        self.assertFalse(ci["resolved"])
        self.assertEqual(hstats.verdict(ci), "not resolved at 3 rounds")
        # Every round 3% slower: no spread, resolved, the interval a point.
        ci = hstats.ratio_ci([1.03] * 5)
        self.assertTrue(ci["resolved"])
        self.assertAlmostEqual(ci["lo"], 1.03)
        self.assertEqual(hstats.verdict(ci), "+3.0% (+3.0%..+3.0%)")
        # Faster is resolved too; one round has no interval.
        self.assertTrue(hstats.ratio_ci([0.90, 0.91, 0.92, 0.90])["resolved"])
        one = hstats.ratio_ci([1.2])
        self.assertIsNone(one["lo"])
        self.assertEqual(hstats.verdict(one), "one round: no interval")
        self.assertEqual(hstats.ratio_text(hstats.ratio_ci([])), "n/a")
        with self.assertRaises(ValueError):
            hstats.ratio_ci([1.0, 0.0])

    def test_coverage(self):
        # Simulated paired rounds with a true ratio of 1.02 and 3% noise:
        # about 95% of 3-round intervals contain 1.02 (the percentile
        # bootstrap of 3 values would cover far less).
        rng = random.Random(7)
        hits, trials = 0, 4000
        for _ in range(trials):
            ratios = [1.02 * math.exp(rng.gauss(0, 0.03)) for _ in range(3)]
            ci = hstats.ratio_ci(ratios)
            hits += ci["lo"] <= 1.02 <= ci["hi"]
        self.assertAlmostEqual(hits / trials, 0.95, delta=0.015)


def fake_bench_workloads(names, cmd=None):
    """A context: bench.WORKLOADS replaced by fake shell workloads."""
    class Ctx:
        def __enter__(self):
            self.saved = dict(bench.WORKLOADS)
            bench.WORKLOADS.clear()
            for n in names:
                bench.WORKLOADS[n] = Workload(n, "test", {"small": cmd or ["/bin/sh", "-c", "echo ok"]},
                                              main=("sh",))
            return self

        def __exit__(self, *exc):
            bench.WORKLOADS.clear()
            bench.WORKLOADS.update(self.saved)
    return Ctx()


def quiet(fn, *args):
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()) as out:
        status = fn(*args)
    return status, err.getvalue(), out.getvalue()


class UntilCiTest(unittest.TestCase):
    def bench_with(self, rows, until_ci, budget, min_rounds=2, elapsed=0.0):
        configs = [Config("w", "small", "none", "glibc", "-"), Config("w", "small", "noop", "glibc", "ret")]
        plan = types.SimpleNamespace(min_rounds=min_rounds, until_ci=until_ci, budget=budget,
                                     configs=configs, orders=[])
        args = types.SimpleNamespace(timeout=None, warmup=1, callgrind_jobs=1)
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        b = bench.Bench(plan, args, tmp.name)
        b.rows = [Row.from_columns(r) for r in rows]
        b.started = time.time() - elapsed
        b.last_wall = {c: 1.0 for c in configs}
        return b

    @staticmethod
    def rows(ratios):
        out = []
        for rnd, ratio in enumerate(ratios, 1):
            out.append(row("w", "none", rnd, 1.0, site_mode="-"))
            out.append(row("w", "noop", rnd, ratio, site_mode="ret"))
        return out

    def test_intervals_of_interest(self):
        intervals = bench.interest_intervals(self.rows([1.01, 1.03]),
                                             [Config("w", "small", "none", "glibc", "-"),
                                              Config("w", "small", "noop", "glibc", "ret")])
        self.assertEqual(list(intervals), ["w/small noop/glibc vs none"])
        self.assertEqual(intervals["w/small noop/glibc vs none"]["n"], 2)

    def test_stops_when_narrow(self):
        b = self.bench_with(self.rows([1.02, 1.02, 1.021]), until_ci=1.0, budget=1000)
        self.assertIsNone(b.should_stop(1))                     # below --runs
        reason = b.should_stop(3)
        self.assertTrue(reason.startswith("until-ci: every interval of interest (1) is within +-1%"), reason)

    def test_continues_then_budget(self):
        noisy = self.rows([1.0, 1.2, 0.9])
        self.assertIsNone(self.bench_with(noisy, until_ci=1.0, budget=1000).should_stop(3))
        reason = self.bench_with(noisy, until_ci=1.0, budget=100, elapsed=99.5).should_stop(3)
        self.assertIn("until-ci: budget of 100 s reached after 3 rounds", reason)
        self.assertIn("1 of 1 intervals still wider than +-1%: w/small noop/glibc vs none +-", reason)

    def test_nothing_to_compare(self):
        b = self.bench_with(self.rows([1.0, 1.1]), until_ci=1.0, budget=1000)
        b.plan.configs = [Config("w", "small", "noop", "glibc", "ret")]
        self.assertIn("no interval of interest", b.should_stop(2))

    def test_failed_rounds_count_as_wide(self):
        rows = self.rows([1.02, 1.02])
        rows[-1]["status"] = "failed"                           # only one pair left
        reason = self.bench_with(rows, until_ci=50.0, budget=10, elapsed=20).should_stop(2)
        self.assertIn("(fewer than 2 paired rounds)", reason)

    @unittest.skipUnless(BUILT, "build/bin/heapindex is not built")
    def test_real_loop_budget(self):
        with fake_bench_workloads(["fake"]), tempfile.TemporaryDirectory() as d:
            status, err, _ = quiet(bench.main, ["--workloads", "fake", "--indexes", "none,noop", "--runs", "2",
                                                "--warmup", "0", "--out", d, "--seed", "1",
                                                "--until-ci", "0.0001", "--budget", "0.01"])
            self.assertEqual(status, 0, err)
            meta = json.load(open(os.path.join(d, "meta.json")))
            self.assertEqual(meta["rounds_run"], 2)
            self.assertIn("budget of 0 s reached after 2 rounds", meta["stop_reason"])
            self.assertIn("rounds ended: until-ci: budget", err)
            self.assertEqual(meta["settings"]["until_ci_pct"], 0.0001)


class MetaPlacementTest(unittest.TestCase):
    """bench --meta: the placement as a dimension of the matrix, and the
    report's section on it (synthetic results: the hooks' side lands apart)."""

    def test_arguments(self):
        self.assertEqual(bench.parse_metas("trailer, header,trailer"), ["trailer", "header"])
        for bad, expect in (("footer", "unknown metadata placement 'footer': valid: header, trailer, side"),
                            (",", "--meta is empty")):
            with self.assertRaises(bench.UsageError) as e:
                bench.parse_metas(bad)
            self.assertIn(expect, str(e.exception))
        self.assertIsNone(bench.make_parser().parse_args([]).meta)

    def test_matrix_and_environment(self):
        configs = bench.with_hook_settings([Config("gcc", "small", "none", "glibc"),
                                            Config("gcc", "small", "memtable", "glibc")],
                                           ["ret"], ["header", "trailer"])
        self.assertEqual([(c.index, c.site_mode, c.meta) for c in configs],
                         [("none", "-", ""), ("memtable", "ret", "header"), ("memtable", "ret", "trailer")])
        self.assertEqual(configs[2].text(), "gcc/small memtable/glibc meta=trailer")
        self.assertEqual(configs[2].env("/c")["HEAPINDEX_META"], "trailer")
        self.assertNotIn("HEAPINDEX_META", configs[0].env("/c"))
        # Without --meta the setting is not made: the hooks' default.
        plain = bench.with_hook_settings([Config("gcc", "small", "memtable", "glibc")], ["ret"])
        self.assertEqual(plain, [Config("gcc", "small", "memtable", "glibc", "ret", "")])
        self.assertNotIn("HEAPINDEX_META", plain[0].env("/c"))
        self.assertEqual(plain[0].text(), "gcc/small memtable/glibc")

    def test_refused_placements_are_skipped_with_the_reason(self):
        refusals = {("memtable", "side"): "HEAPINDEX_META=side is not supported by the memtable index"}
        skipped = []
        configs = bench.with_hook_settings([Config("gcc", "small", "noop", "glibc"),
                                            Config("gcc", "small", "memtable", "glibc")],
                                           ["ret"], ["header", "side"], skipped,
                                           refusal=lambda i, m: refusals.get((i, m)))
        self.assertEqual([(c.index, c.meta) for c in configs],
                         [("noop", "header"), ("noop", "side"), ("memtable", "header")])
        self.assertEqual(skipped, ["gcc/small memtable/glibc meta=side: "
                                   "HEAPINDEX_META=side is not supported by the memtable index"])

    def test_real_refusal_probe(self):
        """The probe asks the built hooks: vghash keeps its links in the
        chunk, so it refuses side; noop and the memtable (its start masks)
        take every placement."""
        if not os.path.exists(os.path.join(ROOT, "build", "lib", "libheapindex-vghash.so")):
            self.skipTest("hooks not built")
        self.assertIn("is not supported by the vghash index", bench.placement_refusal("vghash", "side"))
        self.assertIsNone(bench.placement_refusal("noop", "side"))
        self.assertIsNone(bench.placement_refusal("memtable", "side"))
        self.assertIsNone(bench.placement_refusal("memtable", ""))

    def test_until_ci_pairs_each_placement_with_uninstrumented(self):
        configs = bench.with_hook_settings([Config("w", "small", "none", "glibc"),
                                            Config("w", "small", "noop", "glibc")], ["ret"], ["header", "side"])
        rows = []
        for rnd, (h, s) in enumerate([(1.10, 1.01), (1.12, 1.02)], 1):
            rows.append(row("w", "none", rnd, 1.0, site_mode="-"))
            rows.append(row("w", "noop", rnd, h, site_mode="ret", meta="header"))
            rows.append(row("w", "noop", rnd, s, site_mode="ret", meta="side"))
        intervals = bench.interest_intervals(rows, configs)
        self.assertEqual(sorted(intervals), ["w/small noop/glibc meta=header vs none",
                                             "w/small noop/glibc meta=side vs none"])
        self.assertAlmostEqual(intervals["w/small noop/glibc meta=side vs none"]["estimate"],
                               math.sqrt(1.01 * 1.02), places=6)

    @unittest.skipUnless(BUILT, "build/bin/heapindex is not built")
    def test_runs_get_the_setting(self):
        with fake_bench_workloads(["fake"], ["/bin/sh", "-c", "echo ${HEAPINDEX_META:-unset}"]), \
                tempfile.TemporaryDirectory() as d:
            runner = run.Runner(d)
            with_meta = runner.run(Config("fake", "small", "noop", "glibc", meta="trailer"))
            plain = runner.run(Config("fake", "small", "noop", "glibc"))
        import hashlib
        self.assertEqual(with_meta.output_sha256, hashlib.sha256(b"trailer\n").hexdigest())
        self.assertEqual(plain.output_sha256, hashlib.sha256(b"unset\n").hexdigest())
        self.assertEqual(with_meta.columns()["meta"], "trailer")

    @unittest.skipUnless(BUILT, "build/bin/heapindex is not built")
    def test_runs_csv_without_meta_unchanged(self):
        with fake_bench_workloads(["fake"]), tempfile.TemporaryDirectory() as d:
            status, err, _ = quiet(bench.main, ["--workloads", "fake", "--indexes", "none,noop", "--runs", "1",
                                                "--warmup", "0", "--out", d, "--seed", "1"])
            self.assertEqual(status, 0, err)
            with open(os.path.join(d, "runs.csv")) as f:
                header = f.readline().strip().split(",")
            self.assertNotIn("meta", header)
            self.assertEqual(header[:len(run.FIXED_COLUMNS)], run.FIXED_COLUMNS)
            meta = json.load(open(os.path.join(d, "meta.json")))
            self.assertIsNone(meta["settings"]["meta"])
            self.assertFalse(meta["settings"]["capabilities"]["noop"]["answers_lookups"])

    @staticmethod
    def placement_rows():
        """pychurn: none, and noop and memtable under header and trailer;
        threads-1's callgrind runs with their pairs."""
        rows = []
        rss = {"none": 100_000, ("noop", "header"): 120_000, ("noop", "trailer"): 105_000,
               ("memtable", "header"): 121_000, ("memtable", "trailer"): 106_000}
        for rnd in (1, 2, 3):
            rows.append(row("pychurn", "none", rnd, 1.0, site_mode="-", max_rss_kb=rss["none"], minflt=1000))
            for index in ("noop", "memtable"):
                for meta, wall, bpc in (("header", 1.20, 16), ("trailer", 1.10 + 0.01 * rnd, 8)):
                    rows.append(row("pychurn", index, rnd, wall, site_mode="ret", meta=meta, proc_meta=meta,
                                    proc_meta_bytes_per_chunk=bpc, max_rss_kb=rss[(index, meta)],
                                    minflt=1500 if meta == "header" else 1100))
        for index, meta, ir in (("none", "", 1_000_000), ("noop", "header", 1_600_000),
                                ("noop", "trailer", 1_500_000), ("memtable", "header", 2_000_000),
                                ("memtable", "trailer", 1_900_000)):
            rows.append(row("threads-1", index, 0, 9.0, phase="callgrind", site_mode="-" if index == "none" else "ret",
                            meta=meta, callgrind_ir=ir, pairs=1000, threads=1))
        return rows

    def test_report_section(self):
        with tempfile.TemporaryDirectory() as d:
            write_results(d, self.placement_rows())
            with open(os.path.join(d, "meta.json")) as f:
                meta = json.load(f)
            meta["settings"]["meta"] = ["header", "trailer"]
            with open(os.path.join(d, "meta.json"), "w") as f:
                json.dump(meta, f)
            md, _, _ = report.build_report(d, make_plots=False)
        self.assertIn("## Chunk metadata placement", md)
        section = md.split("## Chunk metadata placement", 1)[1].split("\n## ", 1)[0]
        churn = section.split("### pychurn (small, glibc)", 1)[1].split("###", 1)[0]
        cells = [[c.strip() for c in l.strip().strip("|").split("|")] for l in churn.splitlines()
                 if l.startswith("| no-op hooks")]
        self.assertEqual([c[1] for c in cells], ["header", "trailer"])
        header, trailer = cells
        self.assertEqual(header[2:7], ["16.0", "117.2", "+20.0%", "1500", "+50.0%"])
        self.assertEqual(trailer[2:7], ["8.0", "102.5", "+5.0%", "1100", "+10.0%"])
        self.assertTrue(header[7].startswith("1.200 ["), header)           # the same ratio every round
        self.assertTrue(trailer[7].startswith("1.120 ["), trailer)          # geometric mean of 1.11, 1.12, 1.13
        threads = section.split("### threads-1 (small, glibc)", 1)[1]
        mem = [[c.strip() for c in l.strip().strip("|").split("|")] for l in threads.splitlines()
               if l.startswith("| memtable index")]
        self.assertEqual([(c[1], c[8], c[9]) for c in mem], [("header", "2000", "2.000"),
                                                             ("trailer", "1900", "1.900")])
        self.assertEqual(table_row(threads, "uninstrumented")[8], "1000")
        # The other sections use the first placement's runs only.
        self.assertIn("Every other section uses the `header` runs only", section)
        time_row = table_row(md.split("## 2.", 1)[1].split("### pychurn", 1)[1], "no-op hooks")
        self.assertEqual(time_row[1], "3")
        self.assertTrue(time_row[2].startswith("1.200 "), time_row)

    def test_default_placements_named_without_meta(self):
        """Without --meta each index runs under its own default placement
        (hooks/config.h): the report names it, from the runs' statistics."""
        with tempfile.TemporaryDirectory() as d:
            rows = [dict(r, meta="", proc_meta="side" if r["index"] == "noop" else "header")
                    for r in self.placement_rows() if r.get("meta") in (None, "", "header")]
            write_results(d, rows)
            md, _, _ = report.build_report(d, make_plots=False)
        line = next(l for l in md.splitlines() if l.startswith("Placements (HEAPINDEX_META unset"))
        self.assertIn("memtable index header", line)
        self.assertIn("no-op hooks side", line)
        self.assertNotIn("uninstrumented", line)

    def test_no_section_without_meta(self):
        with tempfile.TemporaryDirectory() as d:
            rows = [dict(r, meta="") for r in self.placement_rows() if r.get("meta") in (None, "", "header")]
            write_results(d, rows)
            md, _, _ = report.build_report(d, make_plots=False)
        self.assertNotIn("Chunk metadata placement", md)


class ShardTest(unittest.TestCase):
    def test_deterministic_disjoint_families_together(self):
        selected = bench.parse_workloads("all", "small")
        for n in (1, 2, 3, 5):
            shards = [bench.shard_workloads(selected, k, n) for k in range(1, n + 1)]
            self.assertEqual(sorted(w for s in shards for w in s), sorted(selected))
            for s in shards:
                families = {bench.family(w) for w in s}
                for other in shards:
                    if other is not s:
                        self.assertFalse(families & {bench.family(w) for w in other})
        # threads-1/2/4 and threads-lookup share a family: one machine.
        shard = [s for s in (bench.shard_workloads(selected, k, 3) for k in (1, 2, 3)) if "threads-1" in s][0]
        self.assertTrue({"threads-2", "threads-4", "threads-lookup"} <= set(shard))
        # The order of --workloads does not matter.
        self.assertEqual(set(bench.shard_workloads(["lua", "gcc", "z3"], 1, 2)),
                         set(bench.shard_workloads(["z3", "gcc", "lua"], 1, 2)))

    def test_bad_shard(self):
        for bad in ("0/2", "3/2", "1", "a/b", "1/0", "1/1001", "-1/2"):
            with self.assertRaises(argparse.ArgumentTypeError, msg=bad):
                bench.shard(bad)
        self.assertEqual(bench.shard("2/4"), (2, 4))

    @unittest.skipUnless(BUILT, "build/bin/heapindex is not built")
    def test_dry_run_and_empty_shard(self):
        status, _, out = quiet(bench.main, ["--workloads", "gcc,lua,threads", "--indexes", "none,memtable",
                                            "--shard", "2/2", "--dry-run"])
        self.assertEqual(status, 0)
        self.assertIn("shard 2/2: workloads lua (of gcc, lua, threads-1, threads-2, threads-4)", out)
        self.assertIn("  lua/small memtable/glibc", out)
        self.assertNotIn("gcc/small", out)
        # threads-1 always gets its callgrind runs (instructions per pair).
        status, _, out = quiet(bench.main, ["--workloads", "threads", "--indexes", "none,memtable", "--dry-run"])
        self.assertIn("6 configurations x 3 rounds; 2 callgrind runs", out)
        with tempfile.TemporaryDirectory() as d:
            status, err, _ = quiet(bench.main, ["--workloads", "gcc", "--shard", "2/2", "--out", d])
            self.assertEqual(status, 0)
            self.assertIn("no workload falls to this shard", err)
            self.assertEqual(open(os.path.join(d, "runs.csv")).read().count("\n"), 1)   # header only


class MergeTest(unittest.TestCase):
    @staticmethod
    def results(d, rows, host):
        write_results(d, rows)
        meta = json.load(open(os.path.join(d, "meta.json")))
        meta["machine"]["hostname"] = host
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump(meta, f)

    def test_synthetic_merge_renumbers_rounds(self):
        with tempfile.TemporaryDirectory() as top:
            a, b, out = (os.path.join(top, x) for x in ("a", "b", "out"))
            os.mkdir(a)
            os.mkdir(b)
            # a: gcc on host1; b: pychurn on host2 (other workloads: allowed)
            self.results(a, [r for r in synthetic_rows() if r["workload"] == "gcc"], "host1")
            self.results(b, [r for r in synthetic_rows() if r["workload"] == "pychurn"], "host2")
            status, err, out_text = quiet(report.main, [a, b, "--out", out])
            self.assertEqual(status, 0, err)
            rows = list(csv.DictReader(open(os.path.join(out, "runs.csv"))))
            self.assertEqual({(r["workload"], r["machine"]) for r in rows},
                             {("gcc", "host1"), ("pychurn", "host2")})
            self.assertEqual(sorted({int(r["round"]) for r in rows if r["workload"] == "pychurn"}), [4, 5, 6, 7])
            md = open(os.path.join(out, "report.md")).read()
            self.assertEqual(table_row(md.split("## Where each workload ran")[1], "gcc")[2], "host1")
            self.assertIn("merged from", md)
            # The seed table is the same as from a alone.
            self.assertEqual(table_row(md, "gcc + vgHash index")[4], "1.062 [1.003..1.124]")

    def test_refused_merge_writes_nothing(self):
        with tempfile.TemporaryDirectory() as top:
            a, b, out = (os.path.join(top, x) for x in ("a", "b", "out"))
            os.mkdir(a)
            os.mkdir(b)
            self.results(a, [r for r in synthetic_rows() if r["workload"] == "gcc" and r["index"] != "vghash"],
                         "host1")
            self.results(b, [r for r in synthetic_rows() if r["workload"] == "gcc" and r["index"] == "vghash"],
                         "host2")
            status, err, _ = quiet(report.main, [a, b, "--out", out])
            self.assertEqual(status, 2)
            lines = err.strip().splitlines()
            self.assertEqual(len(lines), 1, err)
            self.assertIn("refusing to merge: workload gcc (small) was measured on 2 machines: host1", lines[0])
            self.assertFalse(os.path.exists(out))

    def test_report_arguments(self):
        for argv in (["--out"], ["--bogus", "x"], []):
            status, err, _ = quiet(report.main, argv)
            self.assertEqual(status, 2, argv)
            self.assertEqual(len(err.strip().splitlines()), 1)

    @unittest.skipUnless(BUILT, "build/bin/heapindex is not built")
    def test_two_real_shards_merged_and_a_refused_one(self):
        with fake_bench_workloads(["fake1", "fake2"]), tempfile.TemporaryDirectory() as top:
            dirs = [os.path.join(top, f"s{k}") for k in (1, 2)]
            for k, d in enumerate(dirs, 1):
                status, err, _ = quiet(bench.main, ["--workloads", "fake1,fake2", "--indexes", "none,noop",
                                                    "--runs", "2", "--warmup", "0", "--seed", "5",
                                                    "--shard", f"{k}/2", "--out", d])
                self.assertEqual(status, 0, err)
            self.assertEqual({r["workload"] for r in csv.DictReader(open(os.path.join(dirs[0], "runs.csv")))},
                             {"fake1"})
            out = os.path.join(top, "merged")
            status, err, _ = quiet(report.main, dirs + ["--out", out])
            self.assertEqual(status, 0, err)
            md = open(os.path.join(out, "report.md")).read()
            where = md.split("## Where each workload ran")[1]
            self.assertEqual(table_row(where, "fake1")[3], dirs[0])
            self.assertEqual(table_row(where, "fake2")[3], dirs[1])
            # fake1 again, as if measured on another machine: refused.
            other = os.path.join(top, "other")
            status, err, _ = quiet(bench.main, ["--workloads", "fake1", "--indexes", "none,noop", "--runs", "2",
                                                "--warmup", "0", "--out", other])
            self.assertEqual(status, 0, err)
            path = os.path.join(other, "runs.csv")
            rows = list(csv.DictReader(open(path)))
            for r in rows:
                r["machine"] = "elsewhere"
            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
            status, err, _ = quiet(report.main, [dirs[0], other, "--out", os.path.join(top, "bad")])
            self.assertEqual(status, 2)
            self.assertIn("refusing to merge: workload fake1 (small)", err)
            self.assertIn("elsewhere", err)
            self.assertFalse(os.path.exists(os.path.join(top, "bad")))


GOLDEN = os.path.join(HERE, "testdata", "report-golden")
SCALE_FIXTURE = os.path.join(HERE, "testdata", "scale.csv")


def golden_results(directory):
    """The results directory the golden report was made from: the synthetic
    rows plus thread and callgrind rows, a second site mode, a replay.csv
    and a real `heapindex scale --out` (bench/testdata/scale.csv)."""
    rows = synthetic_rows()
    for idx, ir in (("none", 1_000_000_000), ("noop", 1_600_000_000), ("memtable", 2_000_000_000)):
        rows.append(row("threads-1", idx, 0, 9.0, phase="callgrind", site_mode="-" if idx == "none" else "ret",
                        callgrind_ir=ir, callgrind_ir_ratio=ir / 1e9, pairs=4_000_000, threads=1))
    for rnd in (1, 2, 3):
        for n, base in ((1, 0.30), (2, 0.32), (4, 0.60)):
            for idx, f in (("none", 1.0), ("noop", 1.5 + 0.5 * n), ("memtable", 1.6 + 0.5 * n)):
                rows.append(row(f"threads-{n}", idx, rnd, base * f * (1 + 0.001 * (rnd - 2)), threads=n))
        rows.append(row("gcc", "memtable", rnd, 1.9 + 0.1 * rnd, site_mode="unwind:8"))
    write_results(directory, rows)
    with open(SCALE_FIXTURE) as src, open(os.path.join(directory, "scale.csv"), "w") as dst:
        dst.write(src.read())
    with open(os.path.join(directory, "replay.csv"), "w") as f:
        f.write("index,trace,op,ns_per_op,round,records\n"
                "memtable,gcc/small,lookup,20.0,1,10\nmemtable,gcc/small,lookup,22.0,2,10\n"
                "memtable,gcc/small,insert,7.0,1,10\nvghash,gcc/small,lookup,40.0,1,10\n")


def sha256_of(path):
    import hashlib
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class GoldenReportTest(unittest.TestCase):
    """The report of a fixed results directory is what the report code
    before the package/dataclass restructuring wrote (issue 14): the same
    report.md and ratios.csv, and with the matplotlib that made them, the
    same PNG bytes (bench/testdata/report-golden, made by commit 32b7251)."""

    def test_same_report_and_plots(self):
        import importlib.util
        if importlib.util.find_spec("matplotlib") is None:
            # The golden report.md embeds its plots; without matplotlib the
            # report leaves them (and their headings) out.
            self.skipTest("no matplotlib (python3-matplotlib): the golden report has plots")
        with open(os.path.join(GOLDEN, "plots.sha256")) as f:
            lines = f.read().splitlines()
        version = lines[0].split()[2]
        expected = dict(reversed(l.split()) for l in lines[1:] if l.strip())
        with tempfile.TemporaryDirectory() as tmp:
            d = os.path.join(tmp, "golden")        # the report's title names the directory
            os.mkdir(d)
            golden_results(d)
            with redirect_stderr(io.StringIO()):
                _, _, plots = report.build_report(d, make_plots=True)
            for name in ("report.md", "ratios.csv"):
                with open(os.path.join(d, name)) as got, open(os.path.join(GOLDEN, name)) as want:
                    self.assertEqual(got.read(), want.read(), name)
            import matplotlib
            self.assertEqual(sorted(plots), sorted(expected))
            if matplotlib.__version__ != version:
                self.skipTest(f"matplotlib {matplotlib.__version__}, the golden PNGs are {version}'s")
            for name in plots:
                self.assertEqual(sha256_of(os.path.join(d, name)), expected[name], name)


class CallgrindThreadsReportTest(unittest.TestCase):
    """Callgrind columns, the thread scaling table and per-pair figures."""

    def test_sections(self):
        rows = []
        for idx, ir in (("none", 1_000_000_000), ("noop", 1_600_000_000), ("memtable", 2_000_000_000)):
            rows.append(row("threads-1", idx, 0, 9.0, phase="callgrind", site_mode="-" if idx == "none" else "ret",
                            callgrind_ir=ir, callgrind_ir_ratio=ir / 1e9, pairs=4_000_000, threads=1))
            rows.append(row("gcc", idx, 0, 9.0, phase="callgrind", site_mode="-" if idx == "none" else "ret",
                            callgrind_ir=ir * 10, callgrind_ir_ratio=ir / 1e9))
        for rnd in (1, 2, 3):
            for n, base in ((1, 0.30), (2, 0.32), (4, 0.60)):
                for idx, f in (("none", 1.0), ("noop", 1.5 + 0.5 * n), ("memtable", 1.6 + 0.5 * n)):
                    rows.append(row(f"threads-{n}", idx, rnd, base * f * (1 + 0.001 * (rnd - 2)), threads=n))
            for idx, w in (("none", 1.0), ("noop", 1.01), ("memtable", 1.05)):
                rows.append(row("gcc", idx, rnd, w))
        with tempfile.TemporaryDirectory() as d:
            write_results(d, rows)
            md, main_text, _ = report.build_report(d, make_plots=False)
        seed = table_row(md, "gcc + memtable index")
        self.assertEqual(seed[6:8], ["20.000 G", "+100.0%"])
        self.assertEqual(table_row(md, "gcc uninstrumented")[6:8], ["10.000 G", "—"])
        self.assertIn("20.000 G", main_text)
        section = md.split("## Threads: scaling")[1]
        scaling = table_row(section, "no-op hooks")
        self.assertEqual(scaling[1:4], ["0.600", "0.800", "2.100"])       # 0.3 x 2.0, 0.32 x 2.5, 0.6 x 3.5
        self.assertTrue(scaling[5].startswith("2.500 ["), scaling)
        per_pair = section.split("Instructions per malloc+free pair")[1]
        self.assertEqual(table_row(per_pair, "threads-1 (small, glibc)")[1:], [
            "uninstrumented", "4000000", "1.000 G", "250", "—"])
        noop = [[c.strip() for c in l.strip().strip("|").split("|")] for l in per_pair.splitlines()
                if "no-op hooks" in l][0]
        self.assertEqual(noop[4:], ["400", "+150"])
        self.assertIn("threads-1", md.split("## Where each workload ran")[1])
        self.assertIn("instructions per malloc+free pair (callgrind, threads-1)", main_text)
        self.assertIn("threads (small, glibc): wall per thread count", main_text)


class WorkloadsTest(unittest.TestCase):
    def test_registry(self):
        for name, w in bench.WORKLOADS.items():
            for rel in w.scripts:
                if not rel.startswith("build/"):
                    self.assertTrue(os.path.isfile(os.path.join(ROOT, rel)), (name, rel))
            self.assertEqual(w.name, name)
            for rel in w.generate:
                self.assertTrue(any(rel in v for v in w.inputs.values()), (name, rel))
        self.assertEqual(bench.parse_workloads("threads", "small"), ["threads-1", "threads-2", "threads-4"])
        self.assertEqual(bench.parse_workloads("programs", "full"), ["lua", "gs", "z3", "redis"])
        self.assertEqual(bench.default_callgrind(["gcc", "threads-1", "threads-2", "gs-mt"]), ["gcc", "threads-1"])
        self.assertTrue(run.is_main_process("redis", "redis-check-rdb"))
        self.assertTrue(run.is_main_process("pychurn", "python3.11"))
        self.assertFalse(run.is_main_process("redis", "redis-benchmark"))

    def test_generators_are_deterministic_and_check_arguments(self):
        gen = os.path.join(ROOT, "workloads", "z3", "gen_problem.py")
        outs = [subprocess.run([PY, gen, "small"], capture_output=True, text=True, timeout=60).stdout
                for _ in range(2)]
        self.assertEqual(outs[0], outs[1])
        self.assertIn("(check-sat)", outs[0])
        for script, bad in ((gen, ["huge"]), (os.path.join(ROOT, "workloads", "redis", "redis_bench.py"), ["x"])):
            r = subprocess.run([PY, script] + bad, capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 2)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1)

    def test_callgrind_totals(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "cg.1"), "w") as f:
                f.write("version: 1\ncreator: callgrind\npid: 1\ncmd:  gcc -O0 -c x.c\nevents: Ir\n"
                        "summary: 1000\ntotals: 1000\n")
            with open(os.path.join(d, "cg.2"), "w") as f:
                f.write("pid: 2\ncmd:  /usr/lib/gcc/x86_64-linux-gnu/12/cc1 -quiet x.c\nevents: Ir\n"
                        "summary: 19526608648\n")
            self.assertEqual(sorted(run.callgrind_totals(d)), [("cc1", 19526608648), ("gcc", 1000)])
        argv = run.callgrind_argv("gcc", "/t/cg.%p")
        self.assertIn("--soname-synonyms=somalloc=nouserintercepts", argv)
        self.assertIn("--trace-children=yes", argv)
        self.assertIn("--trace-children-skip=*/as,*/collect2,*/ld", argv)


@unittest.skipUnless(os.access(THREADS, os.X_OK), "build/workloads/threads is not built")
class ThreadsProgramTest(unittest.TestCase):
    def run_threads(self, *args, preload=None):
        argv = [THREADS] + list(args)
        if preload:
            argv = [os.path.join(ROOT, "heapindex"), "run", "--index", preload, "--stats", "/dev/null", "--"] + argv
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)

    def test_bad_flags(self):
        for bad, expect in ((["--threads", "0"], "valid 1..256"), (["--threads", "300"], "valid 1..256"),
                            (["--ops", "-5"], "valid 1..10000000000"), (["--ops"], "--ops needs a value"),
                            (["--seed", "x"], "bad value 'x' for --seed"), (["--lookup-every", "0"], "1..1000000000"),
                            (["--frobnicate"], "unknown option '--frobnicate'"), (["extra"], "unknown option")):
            r = self.run_threads(*bad)
            self.assertEqual(r.returncode, 2, bad)
            lines = r.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, (bad, r.stderr))
            self.assertIn(expect, lines[0])
            self.assertTrue(lines[0].startswith("threads: "))
            self.assertEqual(r.stdout, "")
        r = self.run_threads("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--lookup-every K", r.stdout)

    def test_output_same_under_every_index_and_schedule(self):
        args = ("--threads", "3", "--ops", "20000", "--seed", "9", "--lookup-every", "7")
        first = self.run_threads(*args)
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertRegex(first.stdout, r"^threads: threads=3 ops=20000 seed=9 lookup_every=7 "
                         r"pairs=\d+ handed_over=7500 checksum=[0-9a-f]{16}\n$")
        pairs = 3 * (4096 + 20000 + 20000 // 8)
        self.assertIn(f"pairs={pairs} ", first.stdout)
        self.assertIn("no heapindex_lookup", first.stderr)
        for index in ("noop", "memtable"):
            r = self.run_threads(*args, preload=index)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, first.stdout, index)
        self.assertIn("found, 0 not found", r.stderr)           # memtable answers every lookup
        other = self.run_threads("--threads", "3", "--ops", "20000", "--seed", "10")
        self.assertNotEqual(other.stdout.split("checksum=")[1], first.stdout.split("checksum=")[1])


class Result(unittest.TextTestResult):
    pass


def main():
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    runner = unittest.TextTestRunner(verbosity=2, resultclass=Result)
    result = runner.run(suite)
    failed = len(result.failures) + len(result.errors)
    passed = result.testsRun - failed - len(result.skipped)
    print(f"{passed} passed, {failed} failed" + (f", {len(result.skipped)} skipped" if result.skipped else ""))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
