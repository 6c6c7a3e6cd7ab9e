"""Merge several `./heapindex bench` results directories into one.

    ./heapindex report DIR1 DIR2 ... [--out DIR]

Typically the shards of one bench run on several machines (`bench --shard
K/N`). Every row keeps the machine it was measured on (runs.csv's machine
column, or the source's meta.json for older files) and gains a source
column (the directory). Rounds are renumbered so that rounds of different
directories never pair: a paired ratio always compares two runs of one
round of one bench on one machine.

Refused (one line, exit status 2, nothing written): a workload family of one
size measured on more than one machine. Its configurations would be compared
across machines, which pairing within rounds cannot correct; run each
workload's configurations on one machine (`bench --shard` does).

scale.csv comes from the first directory that has one (the others' are
noted); replay.csv rows are concatenated.
"""

import csv
import json
import os
import shutil


class MergeError(Exception):
    pass


def read_source(directory: str) -> tuple:
    """(rows as dicts of strings, columns, meta) of one results directory."""
    path = os.path.join(directory, "runs.csv")
    if not os.path.isfile(path):
        raise MergeError(f"{directory}/runs.csv not found: give ./heapindex bench results directories")
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = [{k: v for k, v in r.items() if k is not None} for r in reader]
            columns = list(reader.fieldnames or [])
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        raise MergeError(f"{path}: unreadable: {e}") from None
    try:
        with open(os.path.join(directory, "meta.json")) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        meta = {}
    return rows, columns, meta


def machine_of(meta: dict) -> tuple:
    m = meta.get("machine") or {}
    return m.get("hostname") or "unknown", m.get("machine_id")


def check_machines(sources: list) -> None:
    """Raise MergeError if one workload family and size has rows from more
    than one machine (host name and, where known, machine id)."""
    where = {}
    for directory, rows, _, meta in sources:
        host, mid = machine_of(meta)
        for r in rows:
            if r.get("phase") not in ("measure", "callgrind", "warmup", "reference"):
                continue
            key = (r.get("family") or r.get("workload"), r.get("size"))
            ident = (r.get("machine") or host, mid)
            where.setdefault(key, {}).setdefault(ident, directory)
    for (fam, size), machines in sorted(where.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
        if len(machines) > 1:
            listed = ", ".join(f"{host} ({d})" for (host, _), d in machines.items())
            same_host = len({host for host, _ in machines}) == 1
            raise MergeError(
                f"refusing to merge: workload {fam} ({size}) was measured on "
                f"{len(machines)} machines: {listed}"
                + (" (same host name, different /etc/machine-id)" if same_host else "")
                + "; its configurations must be paired on one machine (bench --shard keeps them together)")


def renumbered(sources: list) -> list:
    """All rows, each with a source column and rounds offset per directory."""
    out, offset = [], 0
    for directory, rows, _, meta in sources:
        host, _ = machine_of(meta)
        top = 0
        for r in rows:
            r = dict(r)
            r["source"] = directory
            r.setdefault("machine", "")
            if not r["machine"]:
                r["machine"] = host
            try:
                rnd = int(r.get("round") or 0)
            except ValueError:
                rnd = 0
            if rnd > 0:
                r["round"] = str(rnd + offset)
                top = max(top, rnd)
            out.append(r)
        offset += top
    return out


def merged_meta(sources: list) -> dict:
    metas = [(d, m) for d, _, _, m in sources]
    first = next((m for _, m in metas if m), {})
    settings = {"workloads": [], "indexes": [], "allocators": [], "commands": {}, "about": {},
                "skipped": [], "families": {}}
    sizes, runs, warmups = [], [], []
    for _, m in metas:
        s = m.get("settings") or {}
        for k in ("workloads", "indexes", "allocators", "skipped"):
            settings[k] += [x for x in s.get(k) or [] if x not in settings[k]]
        for k in ("commands", "about", "families"):
            settings[k].update(s.get(k) or {})
        sizes += [s["size"]] if s.get("size") and s["size"] not in sizes else []
        runs.append(s.get("runs"))
        warmups.append(s.get("warmup"))
    settings["size"] = ", ".join(sizes)
    settings["runs"] = max((r for r in runs if isinstance(r, int)), default=None)
    settings["warmup"] = max((w for w in warmups if isinstance(w, int)), default=None)
    settings["seed"] = "per source"
    hosts = []
    for _, m in metas:
        host, _ = machine_of(m)
        if host not in hosts:
            hosts.append(host)
    machine = dict(first.get("machine") or {})
    machine["hostname"] = ", ".join(hosts)
    loads = [m.get(k) for _, m in metas for k in ("loadavg_start", "loadavg_end") if m.get(k)]
    started = [m.get("started") for _, m in metas if m.get("started")]
    finished = [m.get("finished") for _, m in metas if m.get("finished")]
    return {
        "tool": "heapindex report (merged)",
        "machine": machine, "versions": first.get("versions", {}), "git": first.get("git", {}),
        "settings": settings,
        "started": min(started) if started else None, "finished": max(finished) if finished else None,
        "duration_s": round(sum(m.get("duration_s") or 0 for _, m in metas), 1),
        "status": "done" if all(m.get("status") == "done" for _, m in metas) else "partial",
        "loadavg_start": max(loads, key=lambda x: x[0]) if loads else None,
        "merged_from": [{"dir": d, "machine": machine_of(m)[0], "machine_id": machine_of(m)[1],
                         "workloads": (m.get("settings") or {}).get("workloads"),
                         "shard": (m.get("settings") or {}).get("shard"),
                         "status": m.get("status"), "started": m.get("started"),
                         "duration_s": m.get("duration_s"), "stop_reason": m.get("stop_reason"),
                         "git": (m.get("git") or {}).get("commit")} for d, m in metas],
    }


def write_rows(path: str, rows: list, columns: list) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in columns})
    os.replace(tmp, path)


def merge_extras(sources: list, out_dir: str) -> list:
    notes = []
    scales = [d for d, _, _, _ in sources if os.path.isfile(os.path.join(d, "scale.csv"))]
    if scales:
        shutil.copy(os.path.join(scales[0], "scale.csv"), os.path.join(out_dir, "scale.csv"))
        notes.append(f"scale.csv from {scales[0]}" + (f" (not used: {', '.join(scales[1:])})"
                                                       if len(scales) > 1 else ""))
    replay_rows, replay_cols = [], []
    for d, _, _, _ in sources:
        path = os.path.join(d, "replay.csv")
        if os.path.isfile(path):
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                replay_rows += list(reader)
                replay_cols += [c for c in reader.fieldnames or [] if c not in replay_cols]
    if replay_rows:
        write_rows(os.path.join(out_dir, "replay.csv"), replay_rows, replay_cols)
        notes.append(f"replay.csv: {len(replay_rows)} rows")
    return notes


def merge(dirs: list, out_dir: str) -> list:
    """Check, then write out_dir/runs.csv, meta.json (and scale/replay);
    returns notes. Raises MergeError before writing anything."""
    sources = []
    for d in dirs:
        rows, columns, meta = read_source(d)
        sources.append((os.path.abspath(d), rows, columns, meta))
    if len({s[0] for s in sources}) != len(sources):
        raise MergeError("a results directory is given twice")
    if os.path.abspath(out_dir) in {s[0] for s in sources}:
        raise MergeError(f"--out {out_dir} is one of the directories being merged: choose a new one")
    check_machines(sources)
    rows = renumbered(sources)
    columns = []
    for _, _, cols, _ in sources:
        columns += [c for c in cols if c not in columns]
    for c in ("machine", "source"):
        if c not in columns:
            columns.append(c)
    os.makedirs(out_dir, exist_ok=True)
    write_rows(os.path.join(out_dir, "runs.csv"), rows, columns)
    meta = merged_meta(sources)
    notes = merge_extras(sources, out_dir)
    meta["merge_notes"] = notes
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    return notes
