"""Report sections on paired intervals, instruction counts and threads.

Used by heapindex_report.py (kept apart from it so each can change without
the other): the 95% intervals of per-round ratios (heapindex_stats.py), the
callgrind columns (`bench --callgrind`: phase "callgrind" rows), the
ranking that names what is "not resolved", ratios.csv, the thread scaling
table and plot, instructions per malloc+free pair, and where each workload
was measured.
"""

import csv
import os
import re
import statistics

from analysis import heapindex_stats as hstats
from analysis.heapindex_common import index_sort_key as sort_key, label, md_table

THREADS_WORKLOAD = re.compile(r"^threads-(\d+)$")


def paired(a_rows: list, b_rows: list, key: str = "wall_s") -> list:
    """Per-round ratios a/b over the rounds both have an ok value in."""
    b_by_round = {r["round"]: r.get(key) for r in b_rows}
    out = []
    for r in a_rows:
        b, a = b_by_round.get(r["round"]), r.get(key)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0 and b > 0:
            out.append(a / b)
    return out


def interval(a_rows: list, b_rows: list, key: str = "wall_s") -> dict:
    return hstats.ratio_ci(paired(a_rows, b_rows, key))


def ci_text(a_rows: list, b_rows: list, key: str = "wall_s") -> str:
    """'1.029 [1.012..1.046]', '... not resolved at N rounds', or 'n/a'."""
    if not a_rows or not b_rows:
        return "n/a"
    return hstats.ratio_text(interval(a_rows, b_rows, key))


# --- callgrind ------------------------------------------------------------------------

def callgrind_groups(rows: list, site_mode: str = "ret") -> dict:
    """{(workload, size, allocator): {index: row}} of ok callgrind rows (one
    per configuration; with several, the last)."""
    out = {}
    for r in rows:
        if r.get("phase") != "callgrind" or r.get("status") != "ok":
            continue
        if r["index"] != "none" and r.get("site_mode", "ret") != site_mode:
            continue
        if not isinstance(r.get("callgrind_ir"), (int, float)):
            continue
        out.setdefault((r["workload"], r["size"], r["allocator"]), {})[r["index"]] = r
    return out


def fmt_ir(n) -> str:
    if not isinstance(n, (int, float)):
        return "n/a"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.3f} {unit}"
    return f"{n:.0f}"


def ir_cells(cg: dict, index: str) -> tuple:
    """(instructions, over uninstrumented) cells of one index."""
    row = cg.get(index)
    if not row:
        return "n/a", "n/a"
    base = (cg.get("none") or {}).get("callgrind_ir")
    ratio = row.get("callgrind_ir_ratio")
    if not isinstance(ratio, (int, float)) and isinstance(base, (int, float)) and base:
        ratio = row["callgrind_ir"] / base
    if index == "none":
        return fmt_ir(row["callgrind_ir"]), "—"
    return fmt_ir(row["callgrind_ir"]), (hstats.pct(ratio) if isinstance(ratio, (int, float)) else "n/a")


# --- ranking -------------------------------------------------------------------------------

def ranking_lines(g: dict) -> list:
    """Under the seed table: each index's paired ratio to uninstrumented and
    to memtable; resolved ones ranked, the others named as not resolved."""
    lines = []
    for base, base_name in (("none", "uninstrumented"), ("memtable", "memtable")):
        if base not in g:
            continue
        resolved, unresolved = [], []
        for index in sorted(g, key=sort_key):
            if index in (base, "none"):
                continue
            ci = interval(g[index], g[base])
            if ci["n"] == 0:
                continue
            if ci["resolved"]:
                resolved.append((ci["estimate"], f"{label(index)} {hstats.verdict(ci)}"))
            elif ci["lo"] is None:
                unresolved.append(f"{label(index)} ({hstats.verdict(ci)})")
            else:
                span = f"{hstats.pct(ci['estimate'])} [{hstats.pct(ci['lo'])}..{hstats.pct(ci['hi'])}]"
                unresolved.append(f"{label(index)} ({hstats.verdict(ci)}, {span})")
        text = f"- **Against {base_name}** (paired per round, 95% interval): "
        parts = []
        if resolved:
            parts.append("resolved, least to most: " + "; ".join(t for _, t in sorted(resolved)))
        if unresolved:
            parts.append("not resolved, no ranking: " + "; ".join(unresolved))
        lines.append(text + (". ".join(parts) if parts else "no pairs") + ".")
    return lines


# --- ratios.csv --------------------------------------------------------------------------------

RATIO_COLUMNS = ["workload", "size", "allocator", "index", "baseline", "rounds", "estimate", "median",
                 "lo95", "hi95", "half_width_pct", "resolved", "callgrind_ir", "callgrind_ir_ratio"]


def write_ratios_csv(groups: dict, cgs: dict, path: str) -> int:
    """One row per configuration and baseline (none, memtable): the paired
    wall ratio's n, geometric mean, median and 95% interval, and the
    configuration's callgrind instructions."""
    out = []
    for key in sorted(groups):
        g = groups[key]
        cg = cgs.get(key, {})
        for index in sorted(g):
            for base in ("none", "memtable"):
                if base == index or base not in g:
                    continue
                ci = interval(g[index], g[base])
                row = {"workload": key[0], "size": key[1], "allocator": key[2], "index": index,
                       "baseline": base, "rounds": ci["n"], "resolved": int(ci["resolved"])}
                for k, col in (("estimate", "estimate"), ("median", "median"), ("lo", "lo95"),
                               ("hi", "hi95"), ("half_width_pct", "half_width_pct")):
                    row[col] = "" if ci[k] is None else f"{ci[k]:.6f}"
                c = cg.get(index) or {}
                row["callgrind_ir"] = c.get("callgrind_ir", "")
                row["callgrind_ir_ratio"] = c.get("callgrind_ir_ratio", "")
                out.append(row)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RATIO_COLUMNS)
        w.writeheader()
        w.writerows(out)
    return len(out)


# --- threads -------------------------------------------------------------------------------------

def thread_counts(groups: dict) -> dict:
    """{(size, allocator): {threads: group}} of the threads-N workloads."""
    out = {}
    for (w, s, a), g in groups.items():
        m = THREADS_WORKLOAD.match(w)
        if m:
            out.setdefault((s, a), {})[int(m.group(1))] = g
    return out


def scaling_table(by_threads: dict) -> tuple:
    counts = sorted(by_threads)
    indexes = sorted({i for g in by_threads.values() for i in g}, key=sort_key)
    header = ["index"] + [f"{n} thread{'s' if n > 1 else ''}: wall s" for n in counts] + \
             [f"{n}: vs uninstrumented [95% CI]" for n in counts]
    rows = []
    for index in indexes:
        walls, ratios = [], []
        for n in counts:
            g = by_threads[n]
            vals = [r["wall_s"] for r in g.get(index, []) if isinstance(r.get("wall_s"), (int, float))]
            walls.append(f"{statistics.median(vals):.3f}" if vals else "n/a")
            ratios.append("—" if index == "none" else ci_text(g.get(index, []), g.get("none", [])))
        rows.append([label(index)] + walls + ratios)
    return header, rows


def plot_scaling(plt, by_threads: dict, path: str) -> bool:
    counts = sorted(by_threads)
    indexes = sorted({i for g in by_threads.values() for i in g}, key=sort_key)
    if len(counts) < 1 or not indexes:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for index in indexes:
        walls, ratios, rx = [], [], []
        for n in counts:
            rs = by_threads[n].get(index, [])
            vals = [r["wall_s"] for r in rs if isinstance(r.get("wall_s"), (int, float))]
            walls.append(statistics.median(vals) if vals else float("nan"))
            if index != "none":
                ci = interval(rs, by_threads[n].get("none", []))
                if ci["n"]:
                    rx.append(n)
                    ratios.append(ci["estimate"])
        axes[0].plot(counts, walls, marker="o", label=label(index))
        if rx:
            axes[1].plot(rx, ratios, marker="o", label=label(index))
    axes[0].set_ylabel("wall time (s), median over rounds")
    axes[0].set_title("Wall time per index and thread count")
    axes[1].axhline(1.0, color="black", linewidth=0.8)
    axes[1].set_ylabel("paired ratio to uninstrumented (geometric mean)")
    axes[1].set_title("Ratio to uninstrumented per thread count")
    for ax in axes:
        ax.set_xlabel("threads")
        ax.set_xticks(counts)
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
    fig.suptitle("threads workload: each thread does the same work, so ideal scaling is a flat line "
                 "(up to the number of CPUs)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def per_pair_table(rows: list) -> tuple:
    """Instructions per malloc+free pair of every index on threads-1, from
    its callgrind row: the process's instructions / the pairs it reports."""
    cg_all = callgrind_groups(rows)
    out = []
    for (w, s, a), cg in sorted(cg_all.items()):
        if w != "threads-1":
            continue
        base = cg.get("none")
        base_pp = (base["callgrind_ir"] / base["pairs"]
                   if base and isinstance(base.get("pairs"), (int, float)) and base["pairs"] else None)
        for index in sorted(cg, key=sort_key):
            r = cg[index]
            pairs = r.get("pairs")
            if not isinstance(pairs, (int, float)) or not pairs:
                continue
            pp = r["callgrind_ir"] / pairs
            out.append([f"{w} ({s}, {a})", label(index), f"{pairs:.0f}", fmt_ir(r["callgrind_ir"]),
                        f"{pp:.0f}", "—" if index == "none" or base_pp is None else f"{pp - base_pp:+.0f}"])
    header = ["workload", "index", "malloc+free pairs", "instructions", "per pair", "over uninstrumented"]
    return header, out


def threads_terminal(groups: dict, rows: list) -> str:
    """The scaling and per-pair tables for the terminal, or ''."""
    parts = []
    for (s, a), by_threads in sorted(thread_counts(groups).items()):
        parts += [f"threads ({s}, {a}): wall per thread count, paired ratio to uninstrumented",
                  md_table(*scaling_table(by_threads))]
    header, trows = per_pair_table(rows)
    if trows:
        parts += ["instructions per malloc+free pair (callgrind, threads-1)", md_table(header, trows)]
    return "\n".join(parts)


def threads_section(groups: dict, rows: list, plt, out_dir: str) -> tuple:
    """(markdown lines, plot names) of the thread scaling section."""
    by = thread_counts(groups)
    md = ["## Threads: scaling and instructions per malloc+free pair", ""]
    plots = []
    if not by:
        return md + ["No threads-N runs here (`./heapindex bench --workloads threads` runs 1, 2 and 4 "
                     "threads).", ""], plots
    md += ["Each thread does the same work (`workloads/threads/threads.c`: per-thread churn plus "
           "chunks handed to the next thread), so with enough CPUs the wall time would stay flat as "
           "threads are added. Wall: median over rounds; ratio: paired per round with its 95% "
           "interval. While the hooks serialise every call on one lock, indexes cannot scale.", ""]
    for (s, a), by_threads in sorted(by.items()):
        md += [f"**{s}, {a}**", "", md_table(*scaling_table(by_threads)), ""]
        if plt:
            name = f"threads_scaling_{s}_{a}.png"
            if plot_scaling(plt, by_threads, os.path.join(out_dir, name)):
                md += [f"![threads scaling]({name})", ""]
                plots.append(name)
    header, trows = per_pair_table(rows)
    if trows:
        md += ["**Instructions per malloc+free pair** (callgrind, threads-1: the whole process's "
               "instructions over the pairs it made, so the program's own loop is included; the "
               "difference to uninstrumented is what the hooks and index add per pair):", "",
               md_table(header, trows), ""]
    else:
        md += ["Instructions per malloc+free pair: no callgrind run of threads-1 here "
               "(`./heapindex bench --workloads threads` makes one per index).", ""]
    return md, plots


# --- machines ------------------------------------------------------------------------------------------

def machines_lines(rows: list) -> list:
    """Where each workload was measured (the machine column; the source
    directory when the report merges several)."""
    seen = {}
    for r in rows:
        if r.get("phase") not in ("measure", "callgrind"):
            continue
        key = (r["workload"], r["size"])
        seen.setdefault(key, set()).add((r.get("machine") or "unknown", r.get("source") or ""))
    if not seen:
        return []
    show_source = any(src for v in seen.values() for _, src in v)
    trows = []
    for (w, s), places in sorted(seen.items()):
        for machine, src in sorted(places):
            trows.append([w, s, machine] + ([src] if show_source else []))
    header = ["workload", "size", "machine"] + (["results directory"] if show_source else [])
    return ["## Where each workload ran", "", md_table(header, trows, ["l"] * len(header)), ""]
