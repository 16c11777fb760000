"""Every figure of two sets of ``edplog perf compare`` runs side by side: before and after a
change, as a Markdown table with both values and the ratio after/before.

Each side may hold several runs (``results.json`` files, or the ``--out`` directories that hold
them); a figure's value on a side is the median of all its timed samples there, and its
spread is the min-max of those samples. Throughput figures are records/s (higher is better);
latency figures give p50, p99 and p99.9 in ms (lower is better) and the rate they ran at,
which follows that run's own acks=1 figure. The verdict calls a change beyond noise only when
the two sides' samples do not overlap at all (every sample of one side is better than every
sample of the other); on a shared two-core machine anything less is read as noise.

Run: .venv-test/bin/python bench/compare_results.py --before B1 B2 --after A1 A2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from typing import Any

LATENCY = ("p50", "p99", "p99.9")


def load(paths: list[str]) -> dict[str, dict[str, Any]]:
    """figure id -> {'spec', 'samples' (pooled over the runs), 'runs', 'skipped'}."""
    figures: dict[str, dict[str, Any]] = {}
    for path in paths:
        if os.path.isdir(path):
            path = os.path.join(path, "results.json")
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        for fig in doc["figures"]:
            spec = fig["spec"]
            fid = f"{spec['key']}@{spec['record_size']}"
            entry = figures.setdefault(fid, {"spec": spec, "samples": [], "runs": 0, "skipped": ""})
            if fig["samples"]:
                entry["samples"].extend(fig["samples"])
                entry["runs"] += 1
            elif fig["skipped"]:
                entry["skipped"] = fig["skipped"]
    return figures


def _values(samples: list[dict[str, Any]], metric: str) -> list[float]:
    if metric == "records_per_s":
        return [s["records"] / s["seconds"] for s in samples if s["seconds"] > 0]
    if metric == "rate":
        return [s["latency_ms"]["achieved_rate"] for s in samples if s.get("latency_ms")]
    return [s["latency_ms"][metric] for s in samples if s.get("latency_ms")]


def _other_load(samples: list[dict[str, Any]]) -> str:
    total = sum(s["total_jiffies"] for s in samples)
    if total <= 0:
        return "-"
    return f"{max(0.0, sum(s['foreign_jiffies'] for s in samples) / total):.0%}"


def _fmt(value: float, metric: str) -> str:
    if metric in LATENCY:
        return f"{value:.2f}"
    for factor, prefix in ((1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.3g} {prefix}"
    return f"{value:.3g}"


def _cell(values: list[float], metric: str) -> str:
    mid = statistics.median(values)
    return f"{_fmt(mid, metric)} ({_fmt(min(values), metric)}-{_fmt(max(values), metric)})"


def _verdict(before: list[float], after: list[float], higher_is_better: bool) -> str:
    if higher_is_better:
        worse, better = max(after) < min(before), min(after) > max(before)
    else:
        worse, better = min(after) > max(before), max(after) < min(before)
    return "WORSE beyond noise" if worse else ("better beyond noise" if better else "noise")


def rows(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[str]:
    out = [
        "| figure | metric | before | after | after/before | verdict | other load b/a |",
        "|---|---|---|---|---|---|---|",
    ]
    for fid in list(dict.fromkeys([*before, *after])):
        b, a = before.get(fid), after.get(fid)
        if not b or not a or not b["samples"] or not a["samples"]:
            why = (b or a or {}).get("skipped", "") or "missing on one side"
            out.append(f"| {fid} | - | - | - | - | not measured: {why[:60]} | - |")
            continue
        latency = bool(b["samples"][0].get("latency_ms"))
        metrics = [*LATENCY, "rate"] if latency else ["records_per_s"]
        for metric in metrics:
            bv, av = _values(b["samples"], metric), _values(a["samples"], metric)
            ratio = statistics.median(av) / statistics.median(bv)
            label = "ms" if metric in LATENCY else ("rec/s" if metric != "rate" else "rate rec/s")
            name = f"{metric} {label}" if metric in LATENCY else label
            verdict = _verdict(bv, av, higher_is_better=metric not in LATENCY)
            if metric == "rate":
                verdict = "(the load, set by the run's acks=1 figure)"
            out.append(
                f"| {fid} | {name} | {_cell(bv, metric)} | {_cell(av, metric)} | "
                f"{ratio:.2f}x | {verdict} | "
                f"{_other_load(b['samples'])} / {_other_load(a['samples'])} |"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", nargs="+", required=True, metavar="RUN")
    ap.add_argument("--after", nargs="+", required=True, metavar="RUN")
    args = ap.parse_args(argv)
    before, after = load(args.before), load(args.after)
    print(
        f"before: {len(args.before)} run(s), after: {len(args.after)} run(s); value: median of "
        "every timed sample of a side (min-max)"
    )
    print()
    for line in rows(before, after):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
