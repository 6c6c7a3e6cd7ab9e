#!/usr/bin/python3
"""Tests of the bench -> runs.csv -> report pipeline, and of tune's closed form.

    /usr/bin/python3 bench/test_pipeline.py      (or: make bench-test)

Stdlib unittest; no real workload runs (one test runs a two-line shell
command through `heapindex run` if the project is built, to check the
output comparison of the bench loop). Ends with "N passed, M failed" and a
non-zero exit status on failure.
"""

import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "analysis"))

import heapindex_bench as bench  # noqa: E402
import heapindex_report as report  # noqa: E402
import heapindex_tune as tune  # noqa: E402

PY = "/usr/bin/python3"
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
    bench.write_rows(os.path.join(directory, "runs.csv"), rows)
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
        self.assertEqual(r[5], "1.83, 1.82, 1.85")
        self.assertEqual(r[6], "1.83")
        self.assertEqual(r[7], "+6.4%")

    def test_ratio_to_memtable_pair_by_pair(self):
        # gcc vgHash / memtable per round: 1.83/1.77, 1.82/1.78, 1.85/1.77 -> median 1.83/1.77
        r = table_row(self.md, "gcc + vgHash index")
        self.assertTrue(r[4].startswith("1.034 "), r[4])
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
                f.write("index,live_chunks,op,ns_per_op\n"
                        "memtable,1000,lookup,10\nmemtable,100000,lookup,30\n"
                        "chase,1000,lookup,5\nchase,100000,lookup,10\n")
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
            r = subprocess.run([PY, os.path.join(HERE, "heapindex_bench.py")] + argv,
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 2, argv)
            lines = r.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, (argv, r.stderr))
            self.assertIn(expect, lines[0], argv)
            self.assertTrue(lines[0].startswith("heapindex bench: "), lines[0])
            self.assertEqual(r.stdout, "")

    def test_report_usage(self):
        r = subprocess.run([PY, os.path.join(ROOT, "analysis", "heapindex_report.py"), "/nonexistent/dir"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)

    def test_workload_groups(self):
        self.assertEqual(bench.parse_workloads("gcc,python", "small"), ["gcc", "pycompile", "pychurn", "dwarfpy"])
        self.assertEqual(bench.parse_workloads("all", "small"),
                         ["gcc", "pycompile", "pychurn", "dwarfpy"])       # gcc-O2 has no small size
        configs, skipped = bench.configurations(["dwarfpy"], "small", ["none", "noop", "memtable"], ["glibc"])
        self.assertEqual(configs, [("dwarfpy", "small", "memtable", "glibc")])
        self.assertEqual(len(skipped), 2)

    def test_site_modes(self):
        self.assertEqual(bench.parse_site_modes("ret"), ["ret"])
        self.assertEqual(bench.parse_site_modes(" ret, unwind:08,skip,census,ret,unwind:8 "),
                         ["ret", "unwind:8", "skip", "census"])
        self.assertEqual(bench.parse_site_modes("unwind:32"), ["unwind:32"])
        for bad in ("", "unwind:33", "unwind:", "unwind", "RET", "skip:3"):
            with self.assertRaises(bench.UsageError, msg=bad):
                bench.parse_site_modes(bad)
        self.assertEqual(bench.make_parser().parse_args([]).site_modes, "ret")   # make bench: ret only
        configs = bench.with_site_modes([("gcc", "small", "none", "glibc"), ("gcc", "small", "memtable", "glibc")],
                                        ["ret", "unwind:8"])
        self.assertEqual(configs, [("gcc", "small", "none", "glibc", "-"),
                                   ("gcc", "small", "memtable", "glibc", "ret"),
                                   ("gcc", "small", "memtable", "glibc", "unwind:8")])
        self.assertEqual(bench.site_env("unwind:8")["HEAPINDEX_SITE"], "unwind:8")
        self.assertEqual(bench.site_env("census", "/x/c")["HEAPINDEX_CENSUS"], "/x/c")
        self.assertIn("xmalloc", bench.site_env("skip")["HEAPINDEX_SITE_SKIP"])
        self.assertEqual(bench.site_env("-"), {})
        # ret removes inherited settings: the row's mode is what ran.
        saved = {k: os.environ.get(k) for k in ("HEAPINDEX_SITE_SKIP", "HEAPINDEX_CENSUS")}
        os.environ["HEAPINDEX_SITE_SKIP"] = "foo"
        try:
            env = bench.workload_env("gcc", bench.site_env("ret"))
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
        fake = {"about": "test", "cmd": {"small": ["/bin/sh", "-c", "echo ${LD_PRELOAD:+preloaded}"]},
                "inputs": {}, "scripts": [], "output": "stdout", "main": "sh",
                "lookups": False, "python": False}
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
