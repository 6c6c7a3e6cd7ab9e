"""heapindex compare: time one command under several indexes with hyperfine.

    ./heapindex compare [--indexes LIST] [--runs N] [--warmup N] [--export FILE.json] -- CMD [ARGS...]

Runs

    hyperfine -L index none,noop,memtable,... --warmup W --runs N --export-json FILE \\
        './heapindex run --index {index} --stats /dev/null -- CMD ARGS'

`--stats /dev/null` keeps heapindex run quiet (without --stats it prints a
per-process summary after every run); hyperfine discards the command's own
output. Prints hyperfine's output, then each index's mean and median and
the overhead of its median over none's, and keeps hyperfine's JSON in FILE
(default results/compare-<timestamp>.json).
"""

import argparse
import datetime
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys

from bench import heapindex_bench as bench

PROG = "heapindex compare"
ROOT = bench.ROOT


def make_parser():
    p = bench.Parser(prog=PROG, description="Time CMD under each index with hyperfine.",
                     usage="%(prog)s [--indexes LIST] [--runs N] [--warmup N] [--export FILE.json] -- CMD [ARGS...]")
    p.add_argument("--indexes", default="all", metavar="LIST",
                   help="comma-separated index names, or all (default): none and every built index")
    p.add_argument("--allocator", default="glibc", choices=bench.ALLOCATORS,
                   help="allocator under the hooks (default glibc)")
    p.add_argument("--runs", type=bench.count(2), default=10, metavar="N",
                   help="timed runs per index (default 10; hyperfine needs at least 2)")
    p.add_argument("--warmup", type=bench.count(0), default=1, metavar="N",
                   help="warm-up runs per index (default 1)")
    p.add_argument("--export", metavar="FILE.json",
                   help="hyperfine's JSON (default results/compare-<timestamp>.json)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    return p


def hyperfine_argv(indexes, allocator, runs, warmup, export, command):
    inner = [os.path.join(ROOT, "heapindex"), "run", "--index", "{index}", "--allocator", allocator,
             "--stats", "/dev/null", "--"] + command
    # shlex.quote would quote the braces; hyperfine substitutes {index} in the string.
    text = " ".join("{index}" if a == "{index}" else shlex.quote(a) for a in inner)
    return ["hyperfine", "-L", "index", ",".join(indexes), "--warmup", str(warmup), "--runs",
            str(runs), "--export-json", export, text]


def summarise(export):
    with open(export) as f:
        data = json.load(f)
    results = data.get("results", [])
    rows = []
    for r in results:
        index = (r.get("parameters") or {}).get("index", r.get("command"))
        times = r.get("times") or []
        med = r.get("median", statistics.median(times) if times else None)
        rows.append((index, r.get("mean"), r.get("stddev"), med, r.get("min"), r.get("max"),
                     [c for c in (r.get("exit_codes") or []) if c]))
    base = next((m for (i, _, _, m, _, _, _) in rows if i == "none"), None)
    lines = [f"{'index':<12} {'mean s':>9} {'± sd':>8} {'median s':>9} {'min..max s':>17} {'overhead':>9}"]
    for index, mean, sd, med, lo, hi, bad in rows:
        ov = "—" if index == "none" or not base else f"{(med / base - 1) * 100:+.1f}%"
        lines.append(f"{index:<12} {mean:9.3f} {sd or 0:8.3f} {med:9.3f} {lo:8.3f}..{hi:<8.3f} {ov:>9}"
                     + (f"  (non-zero exits: {sorted(set(bad))})" if bad else ""))
    return "\n".join(lines)


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    command = args.command
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        parser.error("no command given: ./heapindex compare [OPTIONS] -- CMD [ARGS...]")
    try:
        indexes = bench.parse_indexes(args.indexes, bench.built_indexes())
    except bench.UsageError as e:
        parser.error(str(e))
    if shutil.which("hyperfine") is None:
        print(f"{PROG}: hyperfine is not installed: apt-get install -y hyperfine", file=sys.stderr)
        return 2
    if not os.access(os.path.join(ROOT, "build", "bin", "heapindex"), os.X_OK):
        parser.error(f"{ROOT}/build/bin/heapindex is not built: run make first")
    export = args.export or os.path.join(
        ROOT, "results", f"compare-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}.json")
    os.makedirs(os.path.dirname(os.path.abspath(export)), exist_ok=True)
    argv_h = hyperfine_argv(indexes, args.allocator, args.runs, args.warmup, export, command)
    print(f"{PROG}: {' '.join(shlex.quote(a) for a in argv_h)}", file=sys.stderr, flush=True)
    try:
        r = subprocess.run(argv_h)
    except KeyboardInterrupt:
        return 130
    if r.returncode != 0:
        print(f"{PROG}: hyperfine exited {r.returncode} (a run failing makes hyperfine stop; "
              "try the command under ./heapindex run --index NAME to see why)", file=sys.stderr)
        return 1
    print()
    print(summarise(export))
    print(f"\n{PROG}: hyperfine's JSON: {export}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
