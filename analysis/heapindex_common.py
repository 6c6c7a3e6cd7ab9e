"""What bench, report, tune and compare share: index names and
capabilities, reading CSV figures, medians and ratios, and formatting.

One module found by all of them as analysis.heapindex_common (the
./heapindex command puts the packages' directory on sys.path). The
confidence intervals are in analysis/heapindex_stats.py.
"""

import csv
import statistics
from dataclasses import dataclass
from typing import Optional

# --- indexes: names and what they can do -----------------------------------------------------

LABELS = {
    "none": "uninstrumented",
    "noop": "no-op hooks",
    "vghash": "vgHash index",
    "memtable": "memtable index",
    "uthash": "uthash index",
    "splay": "splay index",
    "bitmap": "bitmap index",
    "bytemap": "bytemap index",
    "critnib": "critnib index",
    "gcbase": "Boehm GC_base (base only)",
}
# critnib and gcbase, the anchors of the scale section, last among the known names.
INDEX_ORDER = ["none", "noop", "vghash", "memtable", "uthash", "splay", "bitmap", "bytemap", "critnib",
               "gcbase"]


def label(index):
    return LABELS.get(index, f"{index} index")


def index_sort_key(index):
    return (INDEX_ORDER.index(index) if index in INDEX_ORDER else len(INDEX_ORDER), index)


@dataclass(frozen=True)
class Capabilities:
    """What an index can do, as the hooks' process statistics say it
    (hooks/process_stats.c: index_answers_lookups, index_answers_from_index;
    hooks/index.h: INDEX_ANSWERS_*). Decisions go by these, never by name."""
    answers_lookups: bool
    answers_from_index: bool = False


# The uninstrumented run ("none") loads no hooks: nothing answers its lookups.
UNINSTRUMENTED = Capabilities(answers_lookups=False)
# For results written before bench recorded the capability columns: what the
# statistics say of the indexes built then. Any other index answers lookups.
RECORDED_BEFORE_COLUMNS = {"noop": Capabilities(answers_lookups=False)}
CAPABILITY_COLUMNS = ("index_answers_lookups", "index_answers_from_index")


class CapabilityTable(dict):
    """{index: Capabilities}; an index it was not told about is looked up
    in RECORDED_BEFORE_COLUMNS, or answers lookups ("none": UNINSTRUMENTED)."""

    def __missing__(self, index):
        if index == "none":
            return UNINSTRUMENTED
        return RECORDED_BEFORE_COLUMNS.get(index, Capabilities(answers_lookups=True))


def capabilities_of(rows) -> CapabilityTable:
    """The capabilities the rows' columns (runs.csv, or bench's rows) give."""
    out = CapabilityTable()
    for r in rows:
        answers = r.get("index_answers_lookups")
        if r.get("index") not in out and answers not in (None, "") and r.get("index") != "none":
            out[r["index"]] = Capabilities(bool(int(answers)),
                                           bool(int(r.get("index_answers_from_index") or 0)))
    return out


def hooks_only(indexes, caps: dict) -> Optional[str]:
    """The first of indexes that loads the hooks but answers no lookups
    (the no-op index): the baseline of what an index itself costs."""
    return next((i for i in indexes if i != "none" and not caps[i].answers_lookups), None)


# --- reading CSV figures ------------------------------------------------------------------------

def to_number(text):
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def first_key(columns, names):
    for n in names:
        if n in columns:
            return n
    return None


def read_csv_rows(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = [{k: (v if v is None else v.strip()) for k, v in r.items() if k} for r in reader]
        return list(reader.fieldnames or []), rows


# --- medians and ratios -----------------------------------------------------------------------

def median(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


def overhead_pct(value, base):
    """Percent over base; None if either is missing or base is 0."""
    if value is None or base in (None, 0):
        return None
    return (value / base - 1.0) * 100.0


def paired_ratios(a_rows, b_rows, key="wall_s"):
    """{round: a/b} for every round where both have an ok value."""
    b_by_round = {r["round"]: r.get(key) for r in b_rows}
    out = {}
    for r in a_rows:
        b = b_by_round.get(r["round"])
        a = r.get(key)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
            out[r["round"]] = a / b
    return out


def summary(rows, key):
    vals = [r.get(key) for r in rows if isinstance(r.get(key), (int, float))]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals),
            "values": vals}


# --- formatting ------------------------------------------------------------------------

def fmt(value, digits=2):
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}"


def fmt_pct(value, digits=1):
    if value is None:
        return "n/a"
    text = f"{value:+.{digits}f}%"
    return text.replace("+-", "-")


def fmt_bytes(n):
    if n is None:
        return "n/a"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(n) < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n} B"


def md_table(header, rows, align=None):
    """A markdown table padded so it also reads well in a terminal."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    align = align or ["l"] + ["r"] * (len(header) - 1)

    def line(row):
        out = []
        for i, c in enumerate(row):
            out.append(c.ljust(widths[i]) if align[i] == "l" else c.rjust(widths[i]))
        return "| " + " | ".join(out) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":" if a == "r" else ":" + "-" * (w + 1))
                         for w, a in zip(widths, align)) + "|"
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def fmt_duration(seconds):
    """4:05, or 1:02:03 from an hour."""
    seconds = int(round(max(0, seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
