"""heapindex tune: sweep the memtable's bin shift for an address width.

    ./heapindex tune --addr-bits N [--workload W] [--shifts A..B] [--size small|full]
                     [--runs R] [--trace FILE] [--out DIR]

For each bin shift S in A..B (HEAPINDEX_BIN_SHIFT, valid 4..11) the memtable
covering N address bits (HEAPINDEX_ADDR_BITS, valid 32..57) reserves
2^(N-S) one-byte entries. This command prints that closed form for the usual
widths (checked against the seed talk: "32-bit AS requires 2^22 bytes of VAS
for bin index; covering n-bit AS requires 2^(n-10)-byte bin index"), then
runs workload W (default dwarfpy, which looks objects up) under the memtable
index once per shift and round, and reports per shift: bytes reserved, bytes
committed (table_resident_bytes), page faults, max_small_size, the longest
bin list walked, list steps and bins scanned per lookup, chunks the table
could not cover (uncovered_inserts), wall time, and lookup/insert/remove ns
when `heapindex replay` (with --trace) or `heapindex scale` is built. It ends
with a recommended shift and its reason.

Writes DIR/tune.csv (one row per run) and DIR/tune.md, and prints tune.md.
Default DIR: results/tune-<N>bits-<timestamp>.
"""

import argparse
import csv
import datetime
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

from analysis import heapindex_common as common
from bench import heapindex_bench as bench
from bench.heapindex_run import FIXED_COLUMNS, Config, Runner

ROOT = bench.ROOT

PROG = "heapindex tune"


def config_constants(path=os.path.join(ROOT, "hooks", "config.h")):
    """The valid ranges and defaults, read from the C header that defines
    them, so this script and the hooks cannot disagree."""
    found = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"#define CONFIG_(\w+) (\d+)u\b", line)
            if m:
                found[m.group(1)] = int(m.group(2))
    return found


_CONFIG = config_constants()
ADDR_BITS_MIN, ADDR_BITS_MAX = _CONFIG["ADDR_BITS_MIN"], _CONFIG["ADDR_BITS_MAX"]
SHIFT_MIN, SHIFT_MAX = _CONFIG["BIN_SHIFT_MIN"], _CONFIG["BIN_SHIFT_MAX"]
SHIFT_DEFAULT = _CONFIG["BIN_SHIFT_DEFAULT"]
ENTRY_BYTES = 1                                 # memtable/heap_index.c: one byte per bin
WIDTHS = (32, 39, 47, 48, 57)
# x86-64 Linux with 4-level paging (and 5-level unless a program asks for
# more): user space is [0, 2^47). A reservation must fit in it beside
# everything else the process has mapped.
USER_VA_BITS = 47


def reserved_bytes(addr_bits, shift, entry_bytes=ENTRY_BYTES):
    """Bytes a flat memtable reserves: one entry per 2^shift-byte bin of an
    addr_bits-bit space (memtable_reserved_bytes in memtable/memtable.h)."""
    return (1 << (addr_bits - shift)) * entry_bytes


def check_seed_statements():
    """The seed talk's two statements, as assertions; returns the lines that
    say what was checked."""
    assert reserved_bytes(32, 10) == 2 ** 22, "32-bit space, shift 10: expected 2^22 bytes"
    for n in WIDTHS:
        assert reserved_bytes(n, 10) == 2 ** (n - 10), f"{n}-bit space: expected 2^({n}-10) bytes"
    return [
        "- seed: \"32-bit AS requires 2^22 bytes of VAS for bin index\": 2^(32-10) x 1 byte = "
        f"{reserved_bytes(32, 10)} = 2^22 bytes at shift 10 (1024-byte bins, 1-byte entries): ok",
        "- seed: \"covering n-bit AS requires 2^(n-10)-byte bin index\": "
        + ", ".join(f"n={n}: 2^{n - 10}" for n in WIDTHS) + " bytes at shift 10: ok",
    ]


def pow2_text(n):
    e = n.bit_length() - 1
    if n == 1 << e:
        return f"2^{e} ({common.fmt_bytes(n)})"
    return common.fmt_bytes(n)


def closed_form_table(widths, shifts):
    header = ["address bits \\ shift"] + [str(s) for s in shifts]
    rows = []
    for n in widths:
        cells = [str(n)]
        for s in shifts:
            b = reserved_bytes(n, s)
            mark = " ✗" if b >= 1 << USER_VA_BITS else ""
            cells.append(pow2_text(b) + mark)
        rows.append(cells)
    return common.md_table(header, rows)


# --- arguments ------------------------------------------------------------------

def parse_shifts(text):
    m = re.fullmatch(r"\s*(\d+)\s*(?:\.\.\s*(\d+)\s*)?", text)
    if m:
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) else a
        shifts = list(range(a, b + 1))
        if a > b:
            raise argparse.ArgumentTypeError(f"'{text}': A must not exceed B in A..B")
    else:
        try:
            shifts = sorted({int(x) for x in text.split(",")})
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"'{text}' is not A..B or a comma list (valid shifts {SHIFT_MIN}..{SHIFT_MAX})")
    bad = [s for s in shifts if not SHIFT_MIN <= s <= SHIFT_MAX]
    if bad or not shifts:
        raise argparse.ArgumentTypeError(
            f"'{text}': bin shifts must be within {SHIFT_MIN}..{SHIFT_MAX} (HEAPINDEX_BIN_SHIFT)")
    return shifts


def parse_bits(text):
    try:
        n = int(text)
    except ValueError:
        n = None
    if n is None or not ADDR_BITS_MIN <= n <= ADDR_BITS_MAX:
        raise argparse.ArgumentTypeError(
            f"'{text}': expected a whole number from {ADDR_BITS_MIN} to {ADDR_BITS_MAX} (HEAPINDEX_ADDR_BITS)")
    return n


def make_parser():
    p = bench.Parser(prog=PROG, description="Sweep the memtable bin shift for an address width "
                     "and recommend one.")
    p.add_argument("--addr-bits", type=parse_bits, required=True, metavar="N",
                   help=f"address bits the memtable covers, {ADDR_BITS_MIN}..{ADDR_BITS_MAX}")
    p.add_argument("--workload", default="dwarfpy", choices=list(bench.WORKLOADS),
                   help="workload to run per shift (default dwarfpy: it performs lookups)")
    p.add_argument("--size", default="small", choices=bench.SIZES, help="workload size (default small)")
    p.add_argument("--shifts", type=parse_shifts, default=list(range(SHIFT_MIN, SHIFT_MAX + 1)),
                   metavar="A..B", help=f"bin shifts to try (default {SHIFT_MIN}..{SHIFT_MAX})")
    p.add_argument("--runs", type=bench.count(1), default=3, metavar="R",
                   help="rounds; each runs every shift once, shuffled (default 3)")
    p.add_argument("--trace", metavar="FILE",
                   help="heap trace for `heapindex replay` (ns per op); default: record the "
                   "workload's own with `heapindex record`, if built")
    p.add_argument("--out", metavar="DIR", help="results directory (default results/tune-<N>bits-<time>)")
    p.add_argument("--seed", type=bench.count(0), default=1, metavar="N", help="shuffle seed (default 1)")
    return p


# --- optional in-process timings ------------------------------------------------------

cli_has = bench.cli_has


def timing_source(args, out_dir):
    """(source, note): source is ('replay', trace path, files to delete),
    ('scale',) or None. Without --trace, the workload's own trace is
    recorded (heapindex record) when record and replay are built."""
    if cli_has("replay"):
        if args.trace:
            return ("replay", args.trace, []), f"`heapindex replay {args.trace} --index memtable`, per shift"
        if cli_has("record"):
            trace = os.path.join(out_dir, f"{args.workload}-{args.size}.trace")
            try:
                with open(os.path.join(out_dir, "record.log"), "w") as log:
                    path, files = bench.record_trace(args.workload, args.size, trace, log)
                return ("replay", path, files), (
                    f"in-process replay of this workload's recorded heap trace "
                    f"(`heapindex record`, then `heapindex replay TRACE --index memtable --rounds "
                    f"{args.runs}` with the shift in the environment; medians of rounds; "
                    f"{os.path.getsize(path) >> 20} MiB trace of {os.path.basename(path)})")
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                note = f"recording the trace failed ({e})"
        else:
            note = "heapindex replay is built but record is not, and no --trace FILE was given"
        if cli_has("scale"):
            return ("scale",), note + "; using `heapindex scale --index memtable` instead"
        return None, note
    if cli_has("scale"):
        return ("scale",), ("`heapindex scale --index memtable --max-chunks 1e6`, per shift "
                            "(ns at 10^6 live chunks of a synthetic size mix)")
    return None, ("not measured: neither `heapindex replay` nor `heapindex scale` is built; the "
                  "workload's wall time (which includes every insert, remove and lookup) stands in")


def csv_medians(path, index="memtable"):
    """{insert, remove, lookup: median ns} from a replay --csv / scale --out file."""
    cols, rows = common.read_csv_rows(path)
    keys = {"insert": ["insert_ns"], "remove": ["remove_ns"], "lookup": ["lookup_ns", "lookup_hit_ns"]}
    rows = [r for r in rows if r.get("index") == index]
    if "live_chunks" in cols and rows:      # scale: the largest step
        top = max(common.to_number(r["live_chunks"]) for r in rows)
        rows = [r for r in rows if common.to_number(r["live_chunks"]) == top]
    out = {}
    for op, names in keys.items():
        k = common.first_key(cols, names)
        vals = [common.to_number(r.get(k)) for r in rows] if k else []
        vals = [v for v in vals if isinstance(v, (int, float))]
        if vals:
            out[op] = statistics.median(vals)
    return out


def measure_ns(source, args, shift):
    env = dict(os.environ, HEAPINDEX_ADDR_BITS=str(args.addr_bits), HEAPINDEX_BIN_SHIFT=str(shift),
               HEAPINDEX_META="header")
    exe = os.path.join(ROOT, "heapindex")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out.csv")
            if source[0] == "replay":
                argv = [exe, "replay", source[1], "--index", "memtable", "--rounds", str(args.runs),
                        "--csv", out]
            else:
                argv = [exe, "scale", "--index", "memtable", "--max-chunks", "1e6", "--lookups", "200000",
                        "--budget", "0.5", "--out", out]
            r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
            if r.returncode != 0 or not os.path.exists(out):
                return {}, (r.stderr.strip().splitlines() or [f"{source[0]} failed"])[-1]
            return csv_medians(out), None
    except (OSError, subprocess.SubprocessError) as e:
        return {}, str(e)


# --- the sweep -------------------------------------------------------------------------

def med(rows, key):
    return common.median([r.get(key) for r in rows])


def per_lookup(rows, key):
    vals = [r[key] / r["idx_lookups"] for r in rows
            if isinstance(r.get(key), (int, float)) and r.get("idx_lookups")]
    return statistics.median(vals) if vals else None


def summarise(shift, rows, n_bits):
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"] != "ok"]
    s = {"shift": shift, "reserved": reserved_bytes(n_bits, shift), "ok": len(ok), "runs": len(rows),
         "failed_notes": sorted({r.get("note", "") for r in failed})}
    s["refused"] = next((r["note"] for r in failed if "cannot reserve the memtable" in r.get("note", "")), None)
    for key in ("wall_s", "proc_minflt", "proc_max_rss_kb", "idx_table_reserved_bytes",
                "idx_table_resident_bytes", "idx_max_small_size", "idx_longest_list_walked",
                "idx_uncovered_inserts", "idx_big_peak", "idx_longest_backward_scan",
                "idx_lookups", "proc_alloc_calls", "proc_peak_live_bytes"):
        s[key] = med(ok, key)
    s["cpu_s"] = common.median([r["user_s"] + r["sys_s"] for r in ok
                                if isinstance(r.get("user_s"), (int, float))
                                and isinstance(r.get("sys_s"), (int, float))])
    s["steps_per_lookup"] = per_lookup(ok, "idx_list_steps")
    s["scanned_per_lookup"] = per_lookup(ok, "idx_bins_scanned")
    if s["steps_per_lookup"] is not None:
        # Bins are scanned 8 table bytes at a time: weigh a scanned bin 1/8 step.
        s["work_per_lookup"] = s["steps_per_lookup"] + (s["scanned_per_lookup"] or 0) / 8
    else:
        s["work_per_lookup"] = None
    return s


def recommend(summaries, has_ns):
    """(shift or None, reason). Among shifts that ran, from the exact counts
    first: the largest shift (smallest table) whose lookup work (list steps
    + bins scanned / 8, per lookup) is within max(0.5, 25%) of the least.
    Timings on a shared machine are noisy, so they only decide when the
    workload makes no lookups (then: the fastest lookup in ns within 5%
    committing least memory, else the largest shift within 2% of the best
    wall time); otherwise they are quoted beside the choice."""
    ok = [s for s in summaries if s["ok"]]
    if not ok:
        return None, "no shift ran successfully"

    def committed(s):
        return s["idx_table_resident_bytes"] or 0

    timed = [s for s in ok if s.get("ns_lookup") is not None] if has_ns else []

    def ns_note(pick):
        if not timed or pick.get("ns_lookup") is None:
            return ""
        fastest = min(timed, key=lambda s: s["ns_lookup"])
        return (f"; measured in-process lookup {pick['ns_lookup']:.1f} ns (fastest: "
                f"{fastest['ns_lookup']:.1f} ns at shift {fastest['shift']}; timings here are noisy, "
                f"the step counts exact)")

    works = [s for s in ok if s["work_per_lookup"] is not None and s["idx_lookups"]]
    if works:
        best = min(s["work_per_lookup"] for s in works)
        limit = best + max(0.5, 0.25 * best)
        near = [s for s in works if s["work_per_lookup"] <= limit]
        pick = max(near, key=lambda s: s["shift"])
        if len(works) == 1:
            refused = [s["shift"] for s in summaries if s["refused"]]
            return pick["shift"], ("the only shift that ran"
                                   + (f" (the tables of shifts {', '.join(map(str, refused))} cannot be "
                                      "reserved)" if refused else "")
                                   + f": reserves {pow2_text(pick['reserved'])}, commits "
                                   f"{common.fmt_bytes(committed(pick))}, "
                                   f"{pick['work_per_lookup']:.2f} list steps per lookup" + ns_note(pick))
        smaller = [s for s in works if s["shift"] < pick["shift"]
                   and s["work_per_lookup"] < pick["work_per_lookup"]]
        extra = ""
        if smaller:
            low = min(smaller, key=lambda s: (s["work_per_lookup"], -s["shift"]))
            extra = (f"; shift {low['shift']} would cut the work to "
                     f"{low['work_per_lookup']:.2f} but commit {common.fmt_bytes(committed(low))} "
                     f"instead of {common.fmt_bytes(committed(pick))}")
        larger = [s for s in works if s["shift"] > pick["shift"]]
        if larger:
            nxt = min(larger, key=lambda s: s["shift"])
            extra += (f"; shift {nxt['shift']} would commit {common.fmt_bytes(committed(nxt))} but "
                      f"walk {nxt['work_per_lookup']:.2f}")
        return pick["shift"], (f"the largest shift (smallest table: reserves {pow2_text(pick['reserved'])}, "
                               f"commits {common.fmt_bytes(committed(pick))}) whose lookup work, "
                               f"{pick['work_per_lookup']:.2f} list steps per lookup (bins scanned count 1/8), "
                               f"is within max(0.5, 25%) of the least ({best:.2f}){extra}" + ns_note(pick))
    if len(timed) == len(ok):
        best = min(s["ns_lookup"] for s in ok)
        near = [s for s in ok if s["ns_lookup"] <= best * 1.05]
        pick = min(near, key=lambda s: (committed(s), -s["shift"]))
        return pick["shift"], (f"the workload makes no lookups; in-process lookup {pick['ns_lookup']:.1f} ns, "
                               f"within 5% of the fastest ({best:.1f} ns), and of those it commits the "
                               f"least table memory ({common.fmt_bytes(committed(pick))})")
    best = min(s["wall_s"] for s in ok if s["wall_s"] is not None)
    near = [s for s in ok if s["wall_s"] is not None and s["wall_s"] <= best * 1.02]
    pick = max(near, key=lambda s: s["shift"])
    return pick["shift"], (f"the workload makes no lookups, so only insert/remove cost and memory "
                           f"matter: the largest shift whose wall time ({pick['wall_s']:.3f} s) is within "
                           f"2% of the best ({best:.3f} s)")


def sweep(args, out_dir) -> list:
    """Every shift once per round, in a shuffled order per round; the rows
    (runs.csv fields plus shift, addr_bits and round). KeyboardInterrupt
    passes through."""
    runner = Runner(out_dir)
    # The list form's bins are what the shift tunes: header, since the
    # memtable's default, side (start masks), takes shifts up to 6 only
    # (hooks/chunk.h) and would make the sweep compare two forms.
    env_base = {"HEAPINDEX_ADDR_BITS": str(args.addr_bits), "HEAPINDEX_META": "header"}
    rows = []
    rng = random.Random(args.seed)
    total = args.runs * len(args.shifts)
    try:
        for r in range(1, args.runs + 1):
            order = list(args.shifts)
            rng.shuffle(order)
            for shift in order:
                if r > 1 and any(x["shift"] == shift and "cannot reserve" in (x.get("note") or "")
                                 for x in rows):
                    continue    # refused once: it will be refused again
                row = runner.run(Config(args.workload, args.size, "memtable", "glibc"),
                                 env_extra=dict(env_base, HEAPINDEX_BIN_SHIFT=str(shift)), timeout=1800).columns()
                row.update(shift=shift, addr_bits=args.addr_bits, round=r)
                rows.append(row)
                state = "ok" if row["status"] == "ok" else "FAILED: " + row.get("note", "")[:100]
                print(f"{PROG}: [{len(rows)}/{total}] round {r} shift {shift}: "
                      f"{common.fmt(row.get('wall_s'), 3)} s {state}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(runner.tmp, ignore_errors=True)
    return rows


def time_shifts(args, out_dir, summaries) -> tuple:
    """Lookup/insert/remove ns of every shift that ran (into its summary);
    returns (source, its description, errors). KeyboardInterrupt passes
    through; a recorded trace is deleted in any case."""
    ns_errors = []
    source, source_note = timing_source(args, out_dir)
    try:
        for s in summaries:
            if source and s["ok"]:
                print(f"{PROG}: timing shift {s['shift']} ({source[0]})", file=sys.stderr, flush=True)
                ns, err = measure_ns(source, args, s["shift"])
                s["ns_lookup"], s["ns_insert"], s["ns_remove"] = ns.get("lookup"), ns.get("insert"), ns.get("remove")
                if err:
                    ns_errors.append(f"shift {s['shift']}: {err}")
    finally:
        if source and source[0] == "replay":
            for f in source[2]:
                if os.path.exists(f):
                    os.unlink(f)
    return source, source_note, ns_errors


def write_tune_csv(path, rows):
    cols = ["addr_bits", "shift", "round"] + FIXED_COLUMNS
    idx_cols = sorted({k for r in rows for k in r if k.startswith("idx_")})
    with open(path, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=cols + idx_cols, extrasaction="ignore")
        wr.writeheader()
        for r in rows:
            wr.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols + idx_cols})


SWEEP_HEADER = ["shift", "bin bytes", "reserved", "committed (table)", "main proc minor faults",
                "max RSS MiB", "max_small_size", "longest list walked", "list steps/lookup",
                "bins scanned/lookup", "uncovered inserts", "wall s", "CPU s"]


def sweep_cells(s, timed, width) -> list:
    """One shift's row of the sweep table."""
    first = [str(s["shift"]), str(1 << s["shift"]), pow2_text(s["reserved"])]
    if s["refused"]:
        return first + ["refused: cannot reserve"] + ["—"] * (width - 4)
    if not s["ok"]:
        return first + ["failed"] + ["—"] * (width - 4)
    lk = s["idx_lookups"]
    cells = first + [common.fmt_bytes(s["idx_table_resident_bytes"]), common.fmt(s["proc_minflt"], 0),
                     common.fmt(s["proc_max_rss_kb"] / 1024 if s["proc_max_rss_kb"] else None, 1),
                     common.fmt(s["idx_max_small_size"], 0), common.fmt(s["idx_longest_list_walked"], 0),
                     common.fmt(s["steps_per_lookup"], 2) if lk else "no lookups",
                     common.fmt(s["scanned_per_lookup"], 2) if lk else "no lookups",
                     common.fmt(s["idx_uncovered_inserts"], 0), common.fmt(s["wall_s"], 3),
                     common.fmt(s["cpu_s"], 3)]
    if timed:
        cells += [common.fmt(s.get("ns_lookup"), 1), common.fmt(s.get("ns_insert"), 1),
                  common.fmt(s.get("ns_remove"), 1)]
    return cells


def sweep_lines(n, summaries, timing) -> list:
    """The sweep section: the table per shift and what its columns mean."""
    source, source_note, ns_errors = timing
    header = SWEEP_HEADER + (["lookup ns", "insert ns", "remove ns"] if source else [])
    md = [f"## Sweep at {n} bits", "",
          common.md_table(header, [sweep_cells(s, bool(source), len(header)) for s in summaries]), "",
          "Committed: the table's committed bytes at exit: the pages of the reservation the "
          "workload wrote, plus the pages of its written-pages summary (counted by the table; no "
          "lookup reads a page that was never written, so this holds with or without the "
          "kernel's shared zero page). List steps per lookup: chunks visited on bin lists per "
          "lookup; bins scanned: empty table entries passed going back to the bin of the chunk "
          "that covers an interior pointer (read 8 at a time).", "",
          f"Lookup/insert/remove ns: {source_note}."]
    if source and n < USER_VA_BITS:
        md.append(f"At {n} bits these in-process figures time the overflow (big) array: the "
                  f"measuring command is a PIE binary whose own heap lies above 2^{n}, so none of "
                  "its chunks is covered by the table; the recommendation below ignores them.")
    if ns_errors:
        md.append("Timing errors: " + "; ".join(ns_errors))
    return md + [""]


def closed_form_lines(args, n) -> list:
    widths = sorted(set(WIDTHS) | {n})
    return ["## Closed form: bytes reserved by a flat memtable, 2^(N - shift) x 1-byte entry", "",
            closed_form_table(widths, list(range(SHIFT_MIN, SHIFT_MAX + 1))), "",
            f"✗: at least 2^{USER_VA_BITS} bytes, the whole x86-64 user address space: such a flat "
            "table cannot be reserved, so the memtable uses its two-level table instead (a directory "
            "of leaves mapped on their first write: one more dependent load per lookup; "
            "memtable/memtable.h). Reserving is only address space (MAP_NORESERVE): memory is "
            "committed page by page where entries are written.", ""] + check_seed_statements() + [""]

def notes_lines(args, n, summaries) -> list:
    """What the reader should know about this width: refusals, two-level
    tables, chunks the table cannot cover."""
    notes = []
    refused = [s for s in summaries if s["refused"]]
    if refused:
        shifts_txt = ", ".join(str(s["shift"]) for s in refused)
        example = refused[0]["refused"].split("stderr: ", 1)[-1]
        notes.append(f"- **Cannot reserve at shift {shifts_txt}**: {n} bits need "
                     + ", ".join(f"2^{n - s['shift']} bytes at shift {s['shift']}" for s in refused)
                     + f", against a 2^{USER_VA_BITS}-byte user address space. The hooks refused: "
                     f"\"{example[:300]}\". The memtable refuses only when told to use its flat table "
                     "(HEAPINDEX_TABLE_LEVELS=1); by default it falls back to its two-level table.")
    elif any(reserved_bytes(n, s) >= 1 << USER_VA_BITS for s in args.shifts):
        two = [str(s) for s in args.shifts if reserved_bytes(n, s) >= 1 << USER_VA_BITS]
        notes.append(f"- **Two-level table at shift {', '.join(two)}**: a flat table of {n} bits does not "
                     f"fit in the 2^{USER_VA_BITS}-byte user address space there, so the memtable ran on "
                     "its two-level table (leaves mapped on first write; one more load per lookup).")
    if n < USER_VA_BITS:
        unc = [s for s in summaries if s["ok"] and s["idx_uncovered_inserts"]]
        total_unc = max((s["idx_uncovered_inserts"] or 0) for s in summaries if s["ok"]) if any(
            s["ok"] for s in summaries) else 0
        calls = next((s["proc_alloc_calls"] for s in summaries if s["ok"] and s["proc_alloc_calls"]), None)
        notes.append(f"- **{n} bits cover only addresses below 2^{n}** ({common.fmt_bytes(1 << n)}): a chunk "
                     f"above goes to the overflow (big, sorted-array) index, counted as uncovered_inserts: "
                     f"{common.fmt(total_unc, 0)} here"
                     + (f", of {calls:.0f} allocation calls" if calls else "")
                     + (". This workload's heap is mostly below that (a non-PIE python keeps its brk heap "
                        "low), so few chunks overflow; a PIE program's heap (0x55...) and every mmap'd "
                        "chunk (0x7f...) would all overflow." if unc or total_unc == 0 else "."))
    if n == USER_VA_BITS:
        notes.append(f"- {n} bits are this machine's whole user address space (x86-64): every chunk is "
                     "covered by the table (uncovered_inserts stays 0).")
    if n > USER_VA_BITS:
        notes.append(f"- {n} bits cover more than this machine's 2^{USER_VA_BITS}-byte user space: the "
                     "extra table entries are never touched (nothing is mapped there unless a program "
                     "asks for high addresses), so they cost address space only.")
    return ["## Notes", ""] + (notes or ["- none"]) + [""]


def recommendation_lines(n, pick, reason) -> list:
    if pick is None:
        return ["## Recommendation", "", f"No recommendation: {reason}.", ""]
    return ["## Recommendation", "", f"**HEAPINDEX_BIN_SHIFT={pick}** for {n} address bits "
            f"(default {SHIFT_DEFAULT}): {reason}.", ""]


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    w = bench.WORKLOADS[args.workload]
    if args.size not in w.cmd:
        parser.error(f"workload '{args.workload}' has no {args.size} size: valid sizes: {', '.join(w.cmd)}")
    if "memtable" not in bench.built_indexes():
        parser.error(f"{ROOT}/build/lib/libheapindex-memtable.so is not built: run make first")
    n = args.addr_bits
    out_dir = os.path.abspath(args.out or os.path.join(
        ROOT, "results", f"tune-{n}bits-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}"))
    os.makedirs(out_dir, exist_ok=True)
    try:
        rows = sweep(args, out_dir)
        summaries = [summarise(s, [r for r in rows if r["shift"] == s], n) for s in args.shifts]
        timing = time_shifts(args, out_dir, summaries)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    # Below 47 bits the in-process measurement's own heap (a PIE binary's,
    # above 2^32) is not covered: it would time the overflow array only.
    has_ns = (bool(timing[0]) and n >= USER_VA_BITS
              and any(s.get("ns_lookup") is not None for s in summaries))
    pick, reason = recommend(summaries, has_ns)
    write_tune_csv(os.path.join(out_dir, "tune.csv"), rows)
    md = [f"# Memtable bin shift sweep: {n}-bit address space", "",
          f"Workload: {args.workload} ({args.size}): `{' '.join(w.cmd[args.size])}`, under "
          f"`HEAPINDEX_ADDR_BITS={n} HEAPINDEX_BIN_SHIFT=S ./heapindex run --index memtable`, glibc, "
          f"{args.runs} rounds (shifts shuffled per round, seed {args.seed}); medians over rounds.", ""]
    md += (closed_form_lines(args, n) + sweep_lines(n, summaries, timing) + notes_lines(args, n, summaries)
           + recommendation_lines(n, pick, reason))
    text = "\n".join(md) + "\n"
    with open(os.path.join(out_dir, "tune.md"), "w") as f:
        f.write(text)
    print(text)
    print(f"{PROG}: wrote {out_dir}/tune.md and tune.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
