"""heapindex report: turn bench results directories into tables and plots.

    ./heapindex report DIR
    ./heapindex report DIR1 DIR2 ... [--out DIR]

Several directories (the shards of one bench, run on several machines) are
merged into --out first (analysis/heapindex_merge.py): each workload keeps
the machine it ran on, and a workload measured on more than one machine is
refused (exit status 2).

Reads DIR/runs.csv and DIR/meta.json (from `./heapindex bench`), and if
present DIR/scale.csv (`./heapindex scale --out`) and DIR/replay.csv (replay
results: index, trace, op, ns_per_op[, callgrind_ir_per_op]). Writes
DIR/report.md and DIR/*.png, and prints the main table: the seed talk's gcc
table, reproduced.

Statistics: only measured runs (phase "measure") whose status is ok count.
Failed runs are listed in their own section and never enter a median.
Medians over rounds; error bars and ranges are min..max over rounds.
Overheads are over the uninstrumented run (index none) with the same
allocator; "ratio to memtable" is computed pair by pair within each round
(index I's wall / memtable's wall in the same round), then the median of
those per-round ratios, so drift between rounds cancels.

Allocation-site capture modes (bench --site-modes, column site_mode; a
runs.csv without it is all "ret"): every section but "Allocation-site
capture cost" uses the ret runs only (or, without ret runs, the first mode);
that section compares each mode with ret of the same index, pair by pair
within rounds like the ratio to memtable.

Standard library plus Debian's python3-matplotlib (Agg backend); without
matplotlib the tables are still written and the plots are skipped.
"""

import csv
import datetime
import json
import os
import statistics
import sys
from dataclasses import dataclass, field

from analysis import heapindex_merge
from analysis import heapindex_paired as paired
from analysis.heapindex_common import (capabilities_of, fmt, fmt_bytes, fmt_pct, hooks_only,
                                       index_sort_key, label, md_table, median, overhead_pct,
                                       paired_ratios, read_csv_rows, summary, to_number)

PROG = "heapindex report"

# The seed talk (S. Kell, "How to make a virtual machine less virtual"):
# "Some preliminary figures (timed gcc, 3 runs)".
SEED_RUNS = {
    "none": [1.70, 1.76, 1.72],
    "noop": [1.73, 1.76, 1.72],
    "vghash": [1.83, 1.82, 1.85],
    "memtable": [1.77, 1.78, 1.77],
}
NUMERIC_SKIP = {"workload", "size", "index", "allocator", "site_mode", "meta", "proc_meta", "phase", "status",
                "note", "proc_exe", "output_sha256", "started"}


# --- reading ------------------------------------------------------------------------

def load_runs(path):
    rows = []
    with open(path, newline="") as f:
        for raw in csv.DictReader(f):
            row = {}
            for k, v in raw.items():
                if k is None:
                    continue
                row[k] = v if k in NUMERIC_SKIP else to_number(v)
            row.setdefault("phase", "measure")
            if row.get("phase") in (None, ""):
                row["phase"] = "measure"
            if row.get("site_mode") in (None, ""):
                row["site_mode"] = "ret"        # runs.csv from before --site-modes
            rows.append(row)
    return rows


def load_meta(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


# --- statistics -----------------------------------------------------------------------

def is_measured_ok(row):
    return row.get("phase") == "measure" and row.get("status") == "ok"


def site_modes(rows):
    """The site modes of the measured runs under the hooks, ret first."""
    modes = {r.get("site_mode", "ret") for r in rows
             if r.get("phase") == "measure" and r.get("index") != "none"}
    return sorted(modes, key=lambda m: (m != "ret", not m.startswith("unwind:"),
                                        int(m[7:]) if m[7:].isdigit() else 0, m))


def group(rows, site_mode=None):
    """{(workload, size, allocator): {index: [ok measured rows sorted by round]}}
    With site_mode: only that mode's rows (and index none's, which has none)."""
    groups = {}
    for r in rows:
        if not is_measured_ok(r):
            continue
        if site_mode is not None and r["index"] != "none" and r.get("site_mode", "ret") != site_mode:
            continue
        key = (r["workload"], r["size"], r["allocator"])
        groups.setdefault(key, {}).setdefault(r["index"], []).append(r)
    for g in groups.values():
        for lst in g.values():
            lst.sort(key=lambda r: (r.get("round") or 0))
    return groups


# --- section a: the seed's table -------------------------------------------------------------

def seed_figures():
    """Medians, overheads and per-position ratios of the seed's own numbers."""
    base = statistics.median(SEED_RUNS["none"])
    out = {}
    for index, runs in SEED_RUNS.items():
        med = statistics.median(runs)
        ratios = [a / b for a, b in zip(runs, SEED_RUNS["memtable"])]
        out[index] = {"runs": runs, "median": med, "overhead": overhead_pct(med, base),
                      "ratio_memtable": statistics.median(ratios)}
    return out


def seed_table(groups, workload, size, allocator, cg=None):
    """(header, rows, data) of the seed-style table for one gcc group; cg:
    the group's callgrind rows by index (bench --callgrind)."""
    g = groups.get((workload, size, allocator), {})
    cg = cg or {}
    seed = seed_figures()
    base = summary(g.get("none", []), "wall_s")
    mem_rows = g.get("memtable", [])
    indexes = sorted(set(g) | set(SEED_RUNS), key=index_sort_key)
    header = [f"{workload} ({size}, {allocator})", "wall per run (s)", "median", "overhead",
              "vs uninstrumented: paired ratio [95% CI]", "vs memtable: paired ratio [95% CI]",
              "instructions (callgrind)", "instructions over uninstrumented",
              "seed runs", "seed median", "seed overhead", "seed ratio", "CPU overhead"]
    base_cpu = summary(cpu_rows(g.get("none", [])), "cpu_s")
    rows, data = [], {}
    for index in indexes:
        rs = g.get(index, [])
        s = summary(rs, "wall_s")
        if s is None and index not in SEED_RUNS:
            continue
        ratios = paired_ratios(rs, mem_rows) if mem_rows else {}
        ratio = median(list(ratios.values()))
        ov = overhead_pct(s["median"] if s else None, base["median"] if base else None)
        data[index] = {"runs": [r["wall_s"] for r in rs], "median": s["median"] if s else None,
                       "overhead": ov, "ratio_memtable": ratio, "ratios": ratios}
        sd = seed.get(index)
        ir, ir_ratio = paired.ir_cells(cg, index)
        rows.append([
            f"{workload} + {label(index)}" if index != "none" else f"{workload} {label(index)}",
            ", ".join(f"{r['wall_s']:.2f}" for r in rs) if rs else "(not run)",
            fmt(s["median"]) if s else "n/a",
            "—" if index == "none" and s else fmt_pct(ov),
            "—" if index == "none" else paired.ci_text(rs, g.get("none", [])),
            "—" if index == "memtable" else paired.ci_text(rs, mem_rows),
            ir, ir_ratio,
            ", ".join(f"{v:.2f}" for v in sd["runs"]) if sd else "",
            fmt(sd["median"]) if sd else "",
            ("—" if index == "none" else fmt_pct(sd["overhead"])) if sd else "",
            f"{sd['ratio_memtable']:.3f}" if sd else "",
            "—" if index == "none" else fmt_pct(overhead_pct(
                (summary(cpu_rows(rs), "cpu_s") or {}).get("median"), base_cpu and base_cpu["median"])),
        ])
    return header, rows, data


# --- section b: per workload -------------------------------------------------------------------

def per_round_overheads(rows, base_rows, key):
    ratios = paired_ratios(rows, base_rows, key)
    return [(v - 1.0) * 100.0 for v in ratios.values()]


def cpu_rows(rows):
    out = []
    for r in rows:
        if isinstance(r.get("user_s"), (int, float)) and isinstance(r.get("sys_s"), (int, float)):
            r = dict(r)
            r["cpu_s"] = r["user_s"] + r["sys_s"]
        out.append(r)
    return out


def time_table(g, cg=None):
    header = ["index", "ok runs", "wall median (min..max) s", "wall overhead",
              "per-round overhead (min..max)", "ratio to memtable (per round)", "CPU user+sys s",
              "CPU overhead", "main process wall s", "vs none: paired ratio [95% CI]",
              "instructions (callgrind)", "instr. over none"]
    cg = cg or {}
    base = cpu_rows(g.get("none", []))
    mem = g.get("memtable", [])
    bw = summary(base, "wall_s")
    bc = summary(base, "cpu_s")
    rows = []
    for index in sorted(g, key=index_sort_key):
        rs = cpu_rows(g[index])
        w = summary(rs, "wall_s")
        c = summary(rs, "cpu_s")
        pw = summary(rs, "proc_wall_s")
        pr = per_round_overheads(rs, base, "wall_s") if index != "none" else []
        mr = list(paired_ratios(rs, mem).values()) if mem else []
        rows.append([
            label(index), str(len(rs)),
            f"{fmt(w['median'], 3)} ({fmt(w['min'], 3)}..{fmt(w['max'], 3)})" if w else "n/a",
            "—" if index == "none" else fmt_pct(overhead_pct(w and w["median"], bw and bw["median"])),
            f"{fmt_pct(statistics.median(pr))} ({fmt_pct(min(pr))}..{fmt_pct(max(pr))})" if pr else "—",
            f"{statistics.median(mr):.3f} ({min(mr):.3f}..{max(mr):.3f})" if mr else "n/a",
            fmt(c["median"], 3) if c else "n/a",
            "—" if index == "none" else fmt_pct(overhead_pct(c and c["median"], bc and bc["median"])),
            fmt(pw["median"], 3) if pw else "n/a",
            "—" if index == "none" else paired.ci_text(rs, base),
            *paired.ir_cells(cg, index),
        ])
    return header, rows


def memory_table(g, caps):
    """Tree figures over uninstrumented; the main process's over the hooks
    without an index (the index that answers no lookups: only under the
    hooks does the main process have figures of its own)."""
    bare = hooks_only(sorted(g, key=index_sort_key), caps)
    # Without such a run the column is all n/a; its heading stays the one
    # the no-op index would give it.
    vs_bare = f"vs {bare or 'noop'}"
    header = ["index", "tree max RSS MiB", "vs none", "main proc max RSS MiB", vs_bare,
              "tree minor faults", "vs none", "main proc minor faults", vs_bare,
              "major faults (tree)", "peak index metadata"]
    none_rows, bare_rows = g.get("none", []), g.get(bare, [])

    def med(rs, key):
        s = summary(rs, key)
        return s["median"] if s else None

    rows = []
    for index in sorted(g, key=index_sort_key):
        rs = g[index]
        t_rss, p_rss = med(rs, "max_rss_kb"), med(rs, "proc_max_rss_kb")
        t_flt, p_flt = med(rs, "minflt"), med(rs, "proc_minflt")
        rows.append([
            label(index),
            fmt(t_rss / 1024, 1) if t_rss is not None else "n/a",
            "—" if index == "none" else fmt_pct(overhead_pct(t_rss, med(none_rows, "max_rss_kb"))),
            fmt(p_rss / 1024, 1) if p_rss is not None else "n/a",
            "—" if index in ("none", bare) else fmt_pct(overhead_pct(p_rss, med(bare_rows, "proc_max_rss_kb"))),
            f"{t_flt:.0f}" if t_flt is not None else "n/a",
            "—" if index == "none" else fmt_pct(overhead_pct(t_flt, med(none_rows, "minflt"))),
            f"{p_flt:.0f}" if p_flt is not None else "n/a",
            "—" if index in ("none", bare) else fmt_pct(overhead_pct(p_flt, med(bare_rows, "proc_minflt"))),
            fmt(med(rs, "majflt"), 0),
            fmt_bytes(med(rs, "proc_peak_meta_bytes")) if med(rs, "proc_peak_meta_bytes") is not None else "n/a",
        ])
    return header, rows


def index_stats_lines(g):
    lines = []
    for index in sorted(g, key=index_sort_key):
        rs = g[index]
        keys = sorted({k for r in rs for k, v in r.items() if k.startswith("idx_") and v is not None})
        if not keys:
            continue
        parts = []
        for k in keys:
            m = median([r.get(k) for r in rs])
            if m is None:
                continue
            text = f"{m:.0f}" if float(m).is_integer() else f"{m:.3g}"
            if k.endswith("_bytes"):
                text = fmt_bytes(m)
            parts.append(f"{k[4:]}={text}")
        lk = median([r.get("idx_lookups") for r in rs])
        steps = median([r.get("idx_list_steps") for r in rs])
        if lk and steps is not None:
            parts.append(f"list_steps_per_lookup={steps / lk:.2f}")
        lines.append(f"- **{label(index)}**: " + ", ".join(parts))
    return lines


# --- allocation-site capture cost ------------------------------------------------------------

def site_cost_table(rows, modes):
    """Per workload and index: median wall and CPU per site mode, and each
    mode's overhead over ret of the same index, median of the per-round
    ratios (min..max)."""
    by_mode = {m: group(rows, m) for m in modes}
    keys = sorted({k for g in by_mode.values() for k in g})
    several_alloc = len({k[2] for k in keys}) > 1
    header = ["workload"] + (["allocator"] if several_alloc else []) + [
        "index", "site mode", "ok runs", "wall median (min..max) s", "wall overhead vs ret (per round)",
        "CPU user+sys s", "CPU overhead vs ret (per round)"]
    out = []

    def per_round(rs, base, key):
        pr = per_round_overheads(rs, base, key)
        if not pr:
            return "n/a"
        return f"{fmt_pct(statistics.median(pr))} ({fmt_pct(min(pr))}..{fmt_pct(max(pr))})"

    for key in keys:
        indexes = sorted({i for m in modes for i in by_mode[m].get(key, {}) if i != "none"},
                         key=index_sort_key)
        for index in indexes:
            base = cpu_rows(by_mode["ret"].get(key, {}).get(index, [])) if "ret" in by_mode else []
            for m in modes:
                rs = cpu_rows(by_mode[m].get(key, {}).get(index, []))
                if not rs:
                    continue
                w = summary(rs, "wall_s")
                c = summary(rs, "cpu_s")
                out.append([f"{key[0]} ({key[1]})"] + ([key[2]] if several_alloc else []) + [
                    label(index), m, str(len(rs)),
                    f"{fmt(w['median'], 3)} ({fmt(w['min'], 3)}..{fmt(w['max'], 3)})" if w else "n/a",
                    "—" if m == "ret" else per_round(rs, base, "wall_s"),
                    fmt(c["median"], 3) if c else "n/a",
                    "—" if m == "ret" else per_round(rs, base, "cpu_s"),
                ])
    return header, out


# --- sections c and d: scale and replay ----------------------------------------------------------

# The header `heapindex scale --out` writes (cli/scale.c), one row per index
# and step; an index without a figure (gcbase: hits only) leaves it empty.
SCALE_COLUMNS = ["index", "live_chunks", "heap_bytes", "lookup_hit_ns", "lookup_miss_ns", "insert_ns",
                 "remove_ns", "chase_ns", "hit_ratio_to_chase", "lookup_cache_hit_rate"]
# Files written before the lookup cache's column was added: read alike.
SCALE_COLUMNS_BEFORE_CACHE = SCALE_COLUMNS[:-1]
SCALE_METRICS = [("lookup hit", "lookup_hit_ns"), ("lookup miss", "lookup_miss_ns"),
                 ("insert", "insert_ns"), ("remove", "remove_ns")]


def parse_scale(path):
    """{'x': 'live_chunks', 'metrics': {metric: {index: [(x, median, min,
    max)]}}, 'series': the lookup-hit metric, 'floor': [(x, chase ns)]} or
    {'error': ...}, from the CSV of `heapindex scale --out` (SCALE_COLUMNS).
    Repeated rows (several runs appended) give the min..max."""
    columns, rows = read_csv_rows(path)
    if [c.strip() for c in columns] not in (SCALE_COLUMNS, SCALE_COLUMNS_BEFORE_CACHE):
        return {"error": f"scale.csv columns {columns}: expected those of `heapindex scale --out`: "
                         + ",".join(SCALE_COLUMNS)}
    metrics, floor, cache = {}, {}, {}
    for r in rows:
        x = to_number(r["live_chunks"])
        if not isinstance(x, (int, float)):
            continue
        chase = to_number(r["chase_ns"])
        if isinstance(chase, (int, float)):
            floor.setdefault(x, set()).add(chase)
        for metric, column in SCALE_METRICS:
            y = to_number(r[column])
            if isinstance(y, (int, float)):
                metrics.setdefault(metric, {}).setdefault(r["index"], {}).setdefault(x, []).append(y)
        rate = to_number(r.get("lookup_cache_hit_rate"))
        if isinstance(rate, (int, float)):
            cache.setdefault(r["index"], {}).setdefault(x, []).append(rate)
    if "lookup hit" not in metrics:
        return {"error": "scale.csv has no lookup_hit_ns figure"}
    out = {"x": "live_chunks", "metrics": {}, "floor": sorted((x, min(v)) for x, v in floor.items())}
    for metric, by_index in metrics.items():
        out["metrics"][metric] = {
            name: sorted((x, statistics.median(v), min(v), max(v)) for x, v in pts.items())
            for name, pts in by_index.items()}
    out["series"] = out["metrics"]["lookup hit"]
    # Only when the cache was on (HEAPINDEX_LOOKUP_CACHE): {index: [(x, median rate)]}.
    out["cache_hit_rate"] = {name: sorted((x, statistics.median(v)) for x, v in pts.items())
                             for name, pts in cache.items()}
    return out


def parse_replay(path):
    columns, rows = read_csv_rows(path)
    need = {"index", "trace", "op", "ns_per_op"}
    wide = {"index", "trace", "insert_ns", "remove_ns", "lookup_ns"}
    if wide <= set(columns) and not need <= set(columns):
        # `heapindex replay --csv`: one row per index and round, ns of each op.
        rows = [{"index": r["index"], "trace": r["trace"], "op": op, "ns_per_op": r[op + "_ns"]}
                for r in rows for op in ("insert", "remove", "lookup")]
    elif not need <= set(columns):
        return {"error": f"replay.csv columns {columns}: expected index, trace, op, ns_per_op"}
    data = {}
    for r in rows:
        ns = to_number(r.get("ns_per_op"))
        ir = to_number(r.get("callgrind_ir_per_op"))
        if not isinstance(ns, (int, float)):
            continue
        d = data.setdefault((r["trace"], r["op"]), {}).setdefault(r["index"], {"ns": [], "ir": []})
        d["ns"].append(ns)
        if isinstance(ir, (int, float)):
            d["ir"].append(ir)
    return {"data": data}


# --- plots ------------------------------------------------------------------------------------------

def plotting():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except Exception as e:  # noqa: BLE001 - any failure means: no plots
        print(f"{PROG}: no plots: matplotlib unavailable ({e}); "
              "apt-get install -y python3-matplotlib", file=sys.stderr)
        return None


def bar_errors(stats):
    med = [s["median"] if s else 0 for s in stats]
    lo = [s["median"] - s["min"] if s else 0 for s in stats]
    hi = [s["max"] - s["median"] if s else 0 for s in stats]
    return med, [lo, hi]


def median_spread(values):
    """(median, median - min, max - median) of values, or zeros if there are none."""
    if not values:
        return 0, 0, 0
    m = statistics.median(values)
    return m, m - min(values), max(values) - m


def grouped_bars(ax, n_groups, series):
    """One bar per (series, group), series side by side within each group.
    series: [(label, [values of group 0, values of group 1, ...])]; each bar is
    the median of its values, with min..max error bars."""
    width = 0.8 / max(1, len(series))
    for n, (name, per_group) in enumerate(series):
        med, lo, hi = zip(*(median_spread(v) for v in per_group)) if per_group else ((), (), ())
        xs = [x + (n - (len(series) - 1) / 2) * width for x in range(n_groups)]
        ax.bar(xs, list(med), width, yerr=[list(lo), list(hi)], capsize=3, label=name)
    ax.set_xticks(range(n_groups))


def save_figure(plt, fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_workload(plt, groups, workload, size, allocators, path):
    metrics = [("wall_s", "wall time (s)", 1.0, "Wall time (tree)"),
               ("max_rss_kb", "max RSS (MiB)", 1 / 1024, "Max RSS (largest process)"),
               ("minflt", "minor page faults (thousands)", 1 / 1000, "Minor page faults (tree)")]
    indexes = sorted({i for a in allocators for i in groups.get((workload, size, a), {})},
                     key=index_sort_key)
    if not indexes:
        return False
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    width = 0.8 / max(1, len(allocators))
    for ax, (key, ylabel, scale, title) in zip(axes, metrics):
        for k, a in enumerate(allocators):
            g = groups.get((workload, size, a), {})
            stats = []
            for i in indexes:
                s = summary(g.get(i, []), key)
                stats.append({kk: (v * scale if isinstance(v, (int, float)) else v)
                              for kk, v in s.items()} if s else None)
            med, err = bar_errors(stats)
            xs = [x + (k - (len(allocators) - 1) / 2) * width for x in range(len(indexes))]
            ax.bar(xs, med, width, yerr=err, capsize=3, label=a)
        ax.set_xticks(range(len(indexes)))
        ax.set_xticklabels([label(i) for i in indexes], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("index")
        ax.set_title(title)
        ax.margins(y=0.15)
    axes[0].legend(title="allocator", fontsize=8, loc="upper left")
    fig.suptitle(f"{workload} ({size}): median over rounds, error bars min..max")
    save_figure(plt, fig, path)
    return True


def plot_overheads(plt, groups, path):
    keys = sorted(groups)
    indexes = sorted({i for k in keys for i in groups[k] if i != "none"}, key=index_sort_key)
    keys = [k for k in keys if "none" in groups[k]]
    if not keys or not indexes:
        return False
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(keys) * max(1, len(indexes)) / 3), 5))
    grouped_bars(ax, len(keys), [
        (label(index), [per_round_overheads(groups[key].get(index, []), groups[key]["none"], "wall_s")
                        for key in keys])
        for index in indexes])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticklabels([f"{w}\n{s}, {a}" for (w, s, a) in keys], fontsize=8)
    ax.set_ylabel("wall time overhead over uninstrumented (%)")
    ax.set_xlabel("workload (size, allocator)")
    ax.set_title("Wall time overhead, paired within rounds: median, error bars min..max")
    ax.legend(fontsize=8)
    save_figure(plt, fig, path)
    return True


def plot_scale(plt, scale, path):
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    panels = [("lookup hit", "lookup miss", "Lookups: hits (solid), misses (dotted)"),
              ("insert", "remove", "Updates: insert (solid), remove (dotted)")]
    colors = {}
    for ax, (solid, dotted, title) in zip(axes, panels):
        for metric, style in ((solid, "-"), (dotted, ":")):
            series = scale["metrics"].get(metric, {})
            for name, pts in sorted(series.items(), key=lambda kv: index_sort_key(kv[0])):
                xs = [p[0] for p in pts]
                ys = [p[1] for p in pts]
                err = [[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]]
                kw = {"color": colors[name]} if name in colors else {}
                line = ax.errorbar(xs, ys, yerr=err, marker="o", markersize=3, capsize=2, linestyle=style,
                                   label=f"{label(name)} ({metric})" if style == "-" or name not in colors
                                   else None, **kw)
                colors.setdefault(name, line.lines[0].get_color())
        if scale["floor"] and solid == "lookup hit":
            ax.plot([p[0] for p in scale["floor"]], [p[1] for p in scale["floor"]], "k--", linewidth=2,
                    label="pointer-chase floor")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"live chunks ({scale['x']}, log scale)")
        ax.set_ylabel("time per operation (ns, log scale)")
        ax.set_title(title)
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("heapindex scale: cost vs live chunks (in-process; error bars min..max over repeated rows)")
    save_figure(plt, fig, path)


# --- scale: every index and both anchors on one plot --------------------------------------------

SCALE_ANCHORS = ("gcbase", "critnib")


def scale_overview(plt, scale, out_dir, caps):
    """Lookup-hit ns of every index and both anchors (gcbase: Boehm GC_base;
    critnib: the lock-free radix tree baseline) against live chunks on one
    log-log plot, 10^3..10^7, with the pointer-chase floor. Returns the
    markdown lines and the names of the plots written (none without plt)."""
    hits = scale["metrics"].get("lookup hit", {})
    present = [a for a in SCALE_ANCHORS if a in hits]
    lines = ["**Every index and the anchors on one plot** (lookup hits, ns per lookup, log-log; "
             "dashed: the pointer-chase floor).", ""]
    if "gcbase" in hits:
        lines.append("gcbase is Boehm GC's `GC_base` on a GC heap of the same sizes, probed at the same "
                     "(chunk, offset) pairs: it answers the base only (no size, no site), so its "
                     "lookups are chained on that base alone, while every index's are chained on the "
                     "size read from the chunk header, as heapindex_lookup's callers get it; it has no "
                     "misses, inserts or removes.")
        lines.append("")
    if "critnib" in hits:
        lines += ["critnib is an index like the others (lock-free reads; base, size and site kept "
                  "in its leaves).", ""]
    if not present:
        lines += ["(scale.csv has neither anchor: `./heapindex scale --index all` measures both.)", ""]
    if not plt or not hits:
        return lines, []
    fig, ax = plt.subplots(figsize=(10, 6.5))
    for name, pts in sorted(hits.items(), key=lambda kv: index_sort_key(kv[0])):
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        err = [[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]]
        if name in SCALE_ANCHORS:  # colours of their own, outside the cycle the indexes share
            kw = {"marker": "s" if name == "gcbase" else "D", "markersize": 6, "linewidth": 2.5,
                  "color": "navy" if name == "gcbase" else "darkgoldenrod"}
            text = f"{label(name)} [anchor]"
        elif not caps[name].answers_lookups:
            kw = {"marker": ".", "linewidth": 1, "color": "0.6"}
            text = f"{label(name)}: harness cost, answers nothing"
        else:
            kw = {"marker": "o", "markersize": 4, "linewidth": 1.5}
            text = label(name)
        ax.errorbar(xs, ys, yerr=err, capsize=2, label=text, **kw)
    if scale["floor"]:
        ax.plot([p[0] for p in scale["floor"]], [p[1] for p in scale["floor"]], "k--", linewidth=2,
                label="pointer-chase floor (one dependent random load)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(10 ** 2.8, 10 ** 7.2)
    ax.set_xticks([10 ** k for k in range(3, 8)])
    ax.set_xlabel("live chunks (log scale)")
    ax.set_ylabel("ns per lookup hit (log scale)")
    ax.set_title("heapindex scale: lookup hits vs live chunks, every index and the anchors")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    name = "scale_overview.png"
    save_figure(plt, fig, os.path.join(out_dir, name))
    return lines + [f"![scale overview]({name})", ""], [name]


def plot_replay(plt, replay, path):
    data = replay["data"]
    keys = sorted(data)
    indexes = sorted({i for k in keys for i in data[k]}, key=index_sort_key)
    fig, ax = plt.subplots(figsize=(max(8, len(keys) * 1.5), 5))
    grouped_bars(ax, len(keys), [
        (label(index), [data[k].get(index, {}).get("ns", []) for k in keys]) for index in indexes])
    ax.set_xticklabels([f"{t}\n{op}" for t, op in keys], fontsize=8)
    ax.set_ylabel("time per operation (ns)")
    ax.set_xlabel("trace, operation")
    ax.set_title("Trace replay: ns per operation (median, error bars min..max)")
    ax.legend(fontsize=8)
    save_figure(plt, fig, path)


# --- the report -------------------------------------------------------------------------------------

def load_warning(meta):
    """A warning when the machine was busier than its CPUs during the bench."""
    n = (meta.get("machine") or {}).get("nproc")
    loads = [x for x in (meta.get("loadavg_start"), meta.get("loadavg_end")) if x]
    if not n or not loads:
        return None
    worst = max(l[0] for l in loads)
    if worst <= n:
        return None
    return (f"Warning: load average up to {worst:.1f} on {n} CPUs while this ran: other work "
            f"competed for the CPUs, so wall times are inflated and noisy; prefer the CPU columns "
            f"and the per-round ratios.")


def meta_lines(meta):
    if not meta:
        return ["(no meta.json)"]
    m = meta.get("machine", {})
    v = meta.get("versions", {})
    s = meta.get("settings", {})
    g = meta.get("git", {})
    lines = [
        f"- machine: {m.get('cpu_model')}, {m.get('nproc')} CPUs, "
        f"{(m.get('mem_total_kb') or 0) / 1048576:.1f} GiB, kernel {m.get('kernel')}",
        f"- versions: {v.get('gcc')}; glibc {v.get('glibc')}; jemalloc {v.get('jemalloc')}; {v.get('python')}",
        f"- git: {g.get('commit')}{' (dirty tree)' if g.get('dirty') else ''}",
        f"- settings: workloads {', '.join(s.get('workloads', []))}; size {s.get('size')}; "
        f"indexes {', '.join(s.get('indexes', []))}; allocators {', '.join(s.get('allocators', []))}; "
        f"{s.get('runs')} rounds, {s.get('warmup')} warm-up; shuffle seed {s.get('seed')}",
        f"- started {meta.get('started')}, finished {meta.get('finished', '?')} "
        f"({meta.get('duration_s', '?')} s, status {meta.get('status', '?')}); "
        f"load average at start {meta.get('loadavg_start')}, at end {meta.get('loadavg_end')}",
    ]
    for w, cmd in (s.get("commands") or {}).items():
        lines.append(f"- {w}: `{' '.join(cmd)}`")
    inputs = meta.get("inputs") or {}
    for rel, e in inputs.items():
        if "sha256" in e:
            pin = "" if "matches_pin" not in e else (" (matches pin)" if e["matches_pin"] else " (DOES NOT match pin)")
            lines.append(f"- input {rel}: sha256 {e['sha256'][:16]}…{pin}")
        elif e.get("missing"):
            lines.append(f"- input {rel}: MISSING")
    if s.get("skipped"):
        lines.append(f"- not run (by design): {'; '.join(s['skipped'])}")
    if meta.get("stop_reason"):
        lines.append(f"- rounds ended: {meta['stop_reason']}")
    if s.get("shard"):
        lines.append(f"- shard {s['shard']} of workloads {', '.join(s.get('shard_of') or [])}")
    for src in meta.get("merged_from") or []:
        lines.append(f"- merged from {src.get('dir')}: machine {src.get('machine')}, workloads "
                     f"{', '.join(src.get('workloads') or [])}"
                     + (f", shard {src['shard']}" if src.get("shard") else "")
                     + f", status {src.get('status')}, git {str(src.get('git'))[:12]}"
                     + (f"; rounds ended: {src['stop_reason']}" if src.get("stop_reason") else ""))
    return lines


# Columns of the seed table printed on the terminal (report.md has them all).
MAIN_COLUMNS = (0, 2, 3, 4, 5, 6, 7, 10)


def compact_table(header, rows):
    return md_table([header[i] for i in MAIN_COLUMNS], [[r[i] for i in MAIN_COLUMNS] for r in rows])


@dataclass
class Results:
    """What every section of a report reads: the results directory's rows
    and meta.json, grouped, and where plots go (plt None: no plots)."""
    out_dir: str
    all_rows: list              # every row of runs.csv
    rows: list                  # without those of other placements than primary_meta
    primary_meta: str           # the --meta placement the other sections use ("" without --meta)
    meta: dict
    modes: list                 # site modes, ret first
    primary: str                # the site mode every section but the site cost uses
    groups: dict                # group(rows, primary)
    caps: dict                  # capabilities_of(rows)
    cgs: dict                   # callgrind rows by group
    allocators: list
    plt: object = None
    plots: list = field(default_factory=list)

    @classmethod
    def load(cls, out_dir, make_plots=True) -> "Results":
        all_rows = load_runs(os.path.join(out_dir, "runs.csv"))
        meta = load_meta(os.path.join(out_dir, "meta.json"))
        primary_meta = next(iter(meta_placements(all_rows, meta)), "")
        rows = [r for r in all_rows if (r.get("meta") or "") in ("", primary_meta)]
        modes = site_modes(rows)
        primary = "ret" if "ret" in modes or not modes else modes[0]
        groups = group(rows, primary)
        return cls(out_dir, all_rows, rows, primary_meta, meta, modes, primary, groups,
                   capabilities_of(rows), paired.callgrind_groups(rows, primary),
                   sorted({a for (_, _, a) in groups}, key=lambda a: (a != "glibc", a)),
                   plotting() if make_plots else None)

    def path(self, name):
        return os.path.join(self.out_dir, name)

    def plotted(self, name, alt) -> list:
        """Count a plot just written; its markdown."""
        self.plots.append(name)
        return [f"![{alt}]({name})", ""]

    def optional_csv(self, name, parse, not_measured) -> tuple:
        """(markdown, parsed or None) of scale.csv or replay.csv: a note when
        it is missing or unreadable."""
        if not os.path.exists(self.path(name)):
            return [not_measured, ""], None
        data = parse(self.path(name))
        if "error" in data:
            return [f"Could not read {name}: {data['error']}", ""], None
        return [], data

    @property
    def failed(self):
        return [r for r in self.all_rows if r.get("status") != "ok"]


# --- chunk metadata placement (bench --meta) ---------------------------------------------------------

def meta_placements(rows, meta) -> list:
    """The placements of a bench --meta, in its order (meta.json), else as
    the rows name them; [] without --meta."""
    seen = sorted({r.get("meta") for r in rows if r.get("meta")})
    listed = (meta.get("settings") or {}).get("meta") or []
    return [m for m in listed if m in seen] + [m for m in seen if m not in listed]


def by_placement(rows, site_mode) -> dict:
    """{(workload, size, allocator): {(index, placement): [ok rows]}} of
    one phase's rows in one site mode (none's in any: it has none)."""
    out = {}
    for r in rows:
        if r.get("status") != "ok" or (r["index"] != "none" and r.get("site_mode", "ret") != site_mode):
            continue
        key = (r["workload"], r["size"], r["allocator"])
        out.setdefault(key, {}).setdefault((r["index"], r.get("meta") or ""), []).append(r)
    for g in out.values():
        for lst in g.values():
            lst.sort(key=lambda r: (r.get("round") or 0))
    return out


def instruction_cells(cg_rows, base_rows) -> list:
    """Instructions per malloc+free pair (workloads that report pairs) and
    over uninstrumented, from the configuration's callgrind run."""
    r = cg_rows[-1] if cg_rows else None
    if not r or not isinstance(r.get("callgrind_ir"), (int, float)):
        return ["n/a", "n/a"]
    pairs = r.get("pairs")
    per_pair = f"{r['callgrind_ir'] / pairs:.0f}" if isinstance(pairs, (int, float)) and pairs else "n/a"
    base = base_rows[-1].get("callgrind_ir") if base_rows else None
    ratio = f"{r['callgrind_ir'] / base:.3f}" if isinstance(base, (int, float)) and base else "n/a"
    return [per_pair, ratio]


def placement_cells(rs, none_rows, cg_rows, cg_none) -> list:
    """One index and placement: metadata bytes per chunk, RSS and faults
    over uninstrumented, the paired wall ratio, instructions."""
    def med(rows, key):
        s = summary(rows, key)
        return s["median"] if s else None
    rss, faults, bpc = med(rs, "max_rss_kb"), med(rs, "minflt"), med(rs, "proc_meta_bytes_per_chunk")
    return [fmt(bpc, 1),
            fmt(rss / 1024, 1) if rss is not None else "n/a",
            fmt_pct(overhead_pct(rss, med(none_rows, "max_rss_kb"))),
            f"{faults:.0f}" if faults is not None else "n/a",
            fmt_pct(overhead_pct(faults, med(none_rows, "minflt"))),
            paired.ci_text(rs, none_rows)] + instruction_cells(cg_rows, cg_none)


META_HEADER = ["index", "placement", "meta bytes per chunk", "tree max RSS MiB", "RSS vs none",
               "tree minor faults", "faults vs none", "wall vs none: paired ratio [95% CI]",
               "instructions per malloc+free pair", "instructions over none"]


def meta_table(g: dict, cg: dict, placements: list) -> list:
    """The rows of one workload's placement table."""
    none_rows, cg_none = g.get(("none", ""), []), cg.get(("none", ""), [])
    trows = []
    if none_rows or cg_none:
        s = summary(none_rows, "max_rss_kb")
        trows.append([label("none"), "—", "—", fmt(s["median"] / 1024, 1) if s else "n/a", "—",
                      fmt((summary(none_rows, "minflt") or {}).get("median"), 0), "—", "—"]
                     + instruction_cells(cg_none, [])[:1] + ["—"])
    for index in sorted({i for i, _ in list(g) + list(cg) if i != "none"}, key=index_sort_key):
        for p in placements:
            if (index, p) in g or (index, p) in cg:
                trows.append([label(index), p] + placement_cells(g.get((index, p), []), none_rows,
                                                                 cg.get((index, p), []), cg_none))
    return trows


def meta_section(res) -> list:
    """Per workload, index and placement (bench --meta): what each chunk
    metadata placement costs in memory, faults, time and instructions."""
    placements = meta_placements(res.all_rows, res.meta)
    if not placements:
        return []
    measured = by_placement([r for r in res.all_rows if r.get("phase") == "measure"], res.primary)
    cgs = by_placement([r for r in res.all_rows if r.get("phase") == "callgrind"], res.primary)
    md = ["## Chunk metadata placement", "",
          "`./heapindex bench --meta " + ",".join(placements) + "`: each index ran with "
          "HEAPINDEX_META set to each placement (hooks/chunk.h). Meta bytes per chunk: what the "
          "hooks add to a chunk under it (their statistics, main process). RSS and faults: medians "
          "of the tree over uninstrumented; wall: this configuration's wall / uninstrumented's in "
          "the same round, geometric mean with its 95% interval (as in section 1); instructions: "
          "its callgrind run (`bench --callgrind`; threads-1 always), per malloc+free pair where "
          "the workload reports its pairs. Every other section uses the "
          f"`{res.primary_meta}` runs only.", ""]
    for key in sorted(set(measured) | set(cgs)):
        md += [f"### {key[0]} ({key[1]}, {key[2]})", "",
               md_table(META_HEADER, meta_table(measured.get(key, {}), cgs.get(key, {}), placements)), ""]
    return md


def heading_section(res: Results) -> list:
    """The title, meta.json's description, and the count of runs."""
    rows = res.all_rows
    md = [f"# heapindex benchmark report: {os.path.basename(os.path.abspath(res.out_dir))}", ""]
    md += meta_lines(res.meta) + [""]
    measured = [r for r in rows if r.get("phase") == "measure"]
    cg_runs = [r for r in rows if r.get("phase") == "callgrind"]
    md.append(f"{len(measured)} measured runs, {len([r for r in measured if r.get('status') == 'ok'])} ok, "
              f"{len([r for r in measured if r.get('status') != 'ok'])} failed; "
              f"{len(rows) - len(measured) - len(cg_runs)} warm-up/reference runs"
              + (f"; {len(cg_runs)} callgrind runs" if cg_runs else "") + ". "
              "Failed runs are listed at the end and excluded from every statistic.")
    return md + [""]


SEED_SECTION_INTRO = (
    "Wall time of the whole gcc tree (`heapindex run` tree line). Overhead: median over "
    "the uninstrumented median, same allocator. Paired ratios: this index's wall / the "
    "baseline's wall in the same round, geometric mean over rounds with its 95% interval "
    "(a t interval on the log ratios: analysis/heapindex_stats.py); where the interval "
    "contains 1.0 the difference is \"not resolved\" at that many rounds and is not "
    "ranked. Instructions: the main process (cc1) once under callgrind "
    "(`bench --callgrind`; the memtable on its two-level table there), the repeatable "
    "measure on a shared machine. Seed columns: the talk's \"timed gcc, 3 runs\" and "
    "figures computed from them (its ratio pairs runs by position; its runs were "
    "probably not interleaved).")


def seed_section(res: Results) -> tuple:
    """Section 1: the seed's gcc table per gcc group. Returns (markdown
    lines, the terminal's main table or None without gcc runs)."""
    groups = res.groups
    md = ["## 1. The seed's gcc table, reproduced", "", SEED_SECTION_INTRO, ""]
    main_text = None
    gcc_keys = [k for k in sorted(groups, key=lambda k: (k[0] != "gcc", k[0], k[1], k[2] != "glibc", k[2]))
                if k[0].startswith("gcc")]
    for key in gcc_keys:
        header, trows, _ = seed_table(groups, *key, cg=res.cgs.get(key))
        ranking = paired.ranking_lines(groups[key])
        md += [f"### {key[0]}, {key[1]}, {key[2]}", "", md_table(header, trows), ""] + ranking + [""]
        if main_text is None:
            rounds = max((len(v) for v in groups[key].values()), default=0)
            main_text = (f"{key[0]} ({key[1]}, {key[2]}), {rounds} rounds: wall time, paired 95% intervals, "
                         f"callgrind instructions, the seed's overhead beside\n"
                         + compact_table(header, trows) + "\n" + "\n".join(ranking))
    if not gcc_keys:
        md += ["(no gcc runs in this directory)", ""]
    sf = seed_figures()
    md += ["CPU overhead: the same with user+sys CPU seconds of the tree instead of wall time; on a "
           "busy machine it is the steadier of the two.", ""]
    warn = load_warning(res.meta)
    if warn:
        md += [f"**{warn}**", ""]
    md += ["Seed overheads from its medians "
           f"({sf['none']['median']:.2f} / {sf['noop']['median']:.2f} / "
           f"{sf['vghash']['median']:.2f} / {sf['memtable']['median']:.2f}): "
           f"no-op {fmt_pct(sf['noop']['overhead'])}, vgHash {fmt_pct(sf['vghash']['overhead'])}, "
           f"memtable {fmt_pct(sf['memtable']['overhead'])}.", ""]
    return md, main_text


WORKLOADS_SECTION_INTRO = (
    "Overheads of time and tree figures are over `none` (uninstrumented) with the same "
    "allocator. The main process (cc1 for gcc, python3 for python) has its own figures only "
    "under an index (the hooks write them), so its overheads are over `noop` (the hooks "
    "without an index): they show what the index itself costs. Tree max RSS is the largest "
    "single process (wait4), which is the main process in these workloads.")


def workload_tables(res: Results, key: tuple, g: dict) -> list:
    """One workload's time, memory and index statistics under one allocator
    (key: workload, size, allocator)."""
    w, _, a = key
    md = [f"**{a}: time**", "", md_table(*time_table(g, res.cgs.get(key))), ""]
    if "none" not in g:
        md += ["(no uninstrumented run of this workload" + (
            ": it needs an index that answers lookups" if w == "dwarfpy" else "")
            + "; compare indexes by their ratio to memtable)", ""]
    md += [f"**{a}: memory and page faults**", "", md_table(*memory_table(g, res.caps)), ""]
    lines = index_stats_lines(g)
    if lines:
        md += [f"**{a}: index statistics of the main process (medians)**", ""] + lines + [""]
    return md


def workloads_section(res: Results) -> list:
    """Section 2: per workload, time, memory and page faults (and plots)."""
    md = ["## 2. Per workload: time, memory, page faults", "", WORKLOADS_SECTION_INTRO, ""]
    for (w, s) in sorted({(k[0], k[1]) for k in res.groups}):
        md += [f"### {w} ({s})", ""]
        about = (res.meta.get("settings", {}).get("about") or {}).get(w)
        if about:
            md += [about, ""]
        for a in res.allocators:
            g = res.groups.get((w, s, a))
            if g:
                md += workload_tables(res, (w, s, a), g)
        name = f"workload_{w}_{s}.png"
        if res.plt and plot_workload(res.plt, res.groups, w, s, res.allocators, res.path(name)):
            md += res.plotted(name, f"{w} {s}")
    if res.plt and plot_overheads(res.plt, res.groups, res.path("overhead_wall.png")):
        md += ["### Wall time overhead, all workloads", ""] + res.plotted("overhead_wall.png", "overhead")
    return md


def site_cost_section(res: Results) -> list:
    """Each site mode against ret, when the bench ran more than one."""
    if len(res.modes) <= 1:
        return []
    skip = res.meta.get("settings", {}).get("site_skip") or "see meta.json"
    return ["## Allocation-site capture cost", "",
            "The hooks' allocation-site capture modes (`./heapindex bench --site-modes`): `ret` the "
            "return address (default), `unwind:N` a libunwind stack of up to N frames, interned, "
            f"`skip` the first frame outside the allocation wrappers (HEAPINDEX_SITE_SKIP: {skip}"
            "), `census` ret plus the per-site live census written at exit. Overhead: this "
            "mode's wall (CPU user+sys) / the same index's `ret` run in the same round, median "
            "over rounds (min..max). Every other section uses the "
            f"`{res.primary}` runs only.", "",
            md_table(*site_cost_table(res.rows, res.modes)), ""]


def threads_and_machines(res: Results) -> list:
    """The thread scaling section, ratios.csv and where each workload ran
    (heapindex_paired.py)."""
    md, names = paired.threads_section(res.groups, res.rows, res.plt, res.out_dir)
    res.plots += names
    n = paired.write_ratios_csv(res.groups, res.cgs, res.path("ratios.csv"))
    md += [f"Every paired ratio with its 95% interval ({n} rows: each configuration against "
           "uninstrumented and against memtable) is in `ratios.csv`.", ""]
    return md + paired.machines_lines(res.rows)


SCALE_SECTION_INTRO = (
    "In-process (no LD_PRELOAD), every index on the same chunks at each step; each "
    "lookup's address depends on the previous answer, so these are latencies, "
    "comparable with the pointer chase (one dependent random load per hop over a "
    "buffer as large as the heap).")


def scale_tables(scale: dict) -> list:
    """ns per operation by index and live chunks, and lookup hits over the floor."""
    floor = dict(scale["floor"])
    xs = sorted({p[0] for m in scale["metrics"].values() for pts in m.values() for p in pts})
    xhead = [f"index \\ {scale['x']}"] + [f"{x:.0f}" if float(x).is_integer() else f"{x:g}" for x in xs]
    md = []
    for metric in ("lookup hit", "lookup miss", "insert", "remove"):
        series = scale["metrics"].get(metric)
        if not series:
            continue
        trows = []
        for name, pts in sorted(series.items(), key=lambda kv: index_sort_key(kv[0])):
            by = {p[0]: p[1] for p in pts}
            trows.append([label(name)] + [fmt(by.get(x), 1) for x in xs])
        if metric == "lookup hit" and floor:
            trows.append(["pointer-chase floor"] + [fmt(floor.get(x), 1) for x in xs])
        md += [f"**{metric}: ns per operation** (columns: live chunks)", "", md_table(xhead, trows), ""]
    cache = scale.get("cache_hit_rate")
    if cache:
        crows = [[label(name)] + [fmt(100 * dict(pts)[x], 1) if x in dict(pts) else "n/a" for x in xs]
                 for name, pts in sorted(cache.items(), key=lambda kv: index_sort_key(kv[0]))]
        md += ["**lookup cache: % of hit lookups answered by the cache** (HEAPINDEX_LOOKUP_CACHE on; "
               "the ns above include it)", "", md_table(xhead, crows), ""]
    if not floor:
        return md + ["(scale.csv has no pointer-chase floor: ratios not computed)", ""]
    rrows = []
    for name, pts in sorted(scale["series"].items(), key=lambda kv: index_sort_key(kv[0])):
        by = {p[0]: p[1] for p in pts}
        rrows.append([label(name)] + [fmt(by[x] / floor[x], 2) if x in by and floor.get(x) else "n/a"
                                      for x in xs])
    return md + ["**Lookup (hit) cost as a multiple of the pointer-chase floor** at the same heap "
                 "size (1.00 = one random dependent load):", "", md_table(xhead, rrows), ""]


def scale_section(res: Results) -> list:
    """Section 3: lookup cost against live chunks, from scale.csv."""
    note = (res.meta.get("extras") or {}).get("scale")
    md, scale = res.optional_csv("scale.csv", parse_scale, (
        "Not measured: no scale.csv here (`./heapindex scale --index all --out DIR/scale.csv`, "
        "if that command is built; `./heapindex bench --scale` runs it)."
        + (f" This bench's attempt: {note}." if note else "")))
    md = ["## 3. Lookup cost vs live chunks (scale.csv)", ""] + md
    if scale is None:
        return md
    md += [SCALE_SECTION_INTRO, ""] + scale_tables(scale)
    overview, overview_plots = scale_overview(res.plt, scale, res.out_dir, res.caps)
    md += overview
    res.plots += overview_plots
    if res.plt:
        plot_scale(res.plt, scale, res.path("scale_lookup.png"))
        md += res.plotted("scale_lookup.png", "scale")
    return md


def replay_section(res: Results) -> list:
    """Section 4: ns per operation of each trace replayed in-process."""
    md, replay = res.optional_csv("replay.csv", parse_replay, "Not measured: no replay.csv here "
                                  "(`./heapindex replay TRACE --index NAME`, if built).")
    md = ["## 4. Trace replay (replay.csv)", ""] + md
    if replay is None:
        return md
    data = replay["data"]
    indexes = sorted({i for k in data for i in data[k]}, key=index_sort_key)
    has_ir = any(d["ir"] for k in data for d in data[k].values())
    trows = []
    for k in sorted(data):
        cells = [k[0], k[1]]
        for i in indexes:
            d = data[k].get(i)
            text = "n/a" if not d else fmt(statistics.median(d["ns"]), 1)
            if d and has_ir and d["ir"]:
                text += f" ({statistics.median(d['ir']):.0f} Ir)"
            cells.append(text)
        trows.append(cells)
    md += ["ns per operation (median)" + (", callgrind instructions per operation in brackets"
                                          if has_ir else "") + ":", "",
           md_table(["trace", "op"] + [label(i) for i in indexes], trows, ["l", "l"] + ["r"] * len(indexes)), ""]
    if res.plt and data:
        plot_replay(res.plt, replay, res.path("replay_ns.png"))
        md += res.plotted("replay_ns.png", "replay")
    return md


def failed_section(res: Results) -> list:
    """Section 5: every failed run and why."""
    md = ["## 5. Failed runs", ""]
    failed = res.failed
    if not failed:
        return md + ["None.", ""]
    frows = [[r.get("workload"), r.get("size"),
              str(r.get("index")) + ("" if r.get("site_mode") in (None, "ret", "-")
                                     else f" (site={r.get('site_mode')})"),
              r.get("allocator"), r.get("phase"),
              r.get("round"), "" if r.get("exit_status") is None else r.get("exit_status"),
              (r.get("note") or "").replace("|", "/")] for r in failed]
    return md + [f"{len(failed)} failed runs (not in any median):", "",
                 md_table(["workload", "size", "index", "allocator", "phase", "round", "exit", "why"],
                          frows, ["l"] * 5 + ["r", "r", "l"]), ""]


def terminal_text(res: Results, main_text) -> str:
    """What the report prints: the seed table, the thread tables, warnings."""
    threads_text = paired.threads_terminal(res.groups, res.rows)
    if main_text is None:
        main_text = threads_text or "(no gcc runs: see report.md for the other workloads)"
    elif threads_text:
        main_text += "\n\n" + threads_text
    warn = load_warning(res.meta)
    if warn:
        main_text += "\n" + warn
    if res.failed:
        main_text += f"\n{len(res.failed)} failed runs: see the report's Failed runs section."
    return main_text


def build_report(out_dir, make_plots=True):
    """Write report.md (and plots); return (markdown text, main table text, plots)."""
    res = Results.load(out_dir, make_plots)
    seed_md, main_text = seed_section(res)
    md = (heading_section(res) + seed_md + workloads_section(res) + site_cost_section(res)
          + meta_section(res) + threads_and_machines(res) + scale_section(res) + replay_section(res)
          + failed_section(res) + ["Column meanings: bench/README.md and analysis/README.md."])
    text = "\n".join(md) + "\n"
    with open(res.path("report.md"), "w") as f:
        f.write(text)
    return text, terminal_text(res, main_text), res.plots


def results_root():
    """Where results/ goes: the source tree this script is in, or (installed)
    the current directory."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return root if os.path.isfile(os.path.join(root, "bench", "heapindex_bench.py")) else os.getcwd()


USAGE = ("usage: ./heapindex report DIR [DIR...] [--out DIR] (./heapindex bench results directories; "
         "several are merged into --out, default results/merged-<timestamp> in the source tree, "
         "or in the current directory when installed)")


def parse_args(argv):
    """(dirs, out) or an error line."""
    dirs, out = [], None
    it = iter(argv)
    for arg in it:
        if arg == "--out" or arg.startswith("--out="):
            out = arg[len("--out="):] if "=" in arg else next(it, None)
            if not out:
                return None, None, "--out needs a directory"
        elif arg.startswith("-"):
            return None, None, f"unknown option '{arg}'"
        else:
            dirs.append(arg)
    if not dirs:
        return None, None, "no results directory given"
    return dirs, out, None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    dirs, out, err = parse_args(argv)
    if err:
        print(f"{PROG}: {err}; {USAGE}", file=sys.stderr)
        return 2
    for d in dirs:
        if not os.path.isfile(os.path.join(d, "runs.csv")):
            print(f"{PROG}: {d}/runs.csv not found: give a ./heapindex bench results directory",
                  file=sys.stderr)
            return 2
    out_dir = dirs[0]
    if len(dirs) > 1 or out:
        out_dir = out or os.path.join(results_root(), "results",
                                      "merged-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
        try:
            notes = heapindex_merge.merge(dirs, out_dir)
        except heapindex_merge.MergeError as e:
            print(f"{PROG}: {e}", file=sys.stderr)
            return 2
        print(f"{PROG}: " + (f"merged {len(dirs)} results directories" if len(dirs) > 1 else f"copied {dirs[0]}")
              + f" into {out_dir}"
              + (f" ({'; '.join(notes)})" if notes else ""))
    _, main_text, plots = build_report(out_dir)
    print(main_text)
    print(f"\n{PROG}: wrote {os.path.join(out_dir, 'report.md')}"
          + (f" and {len(plots)} plots ({', '.join(plots)})" if plots else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
