"""Medians, ratios and goals as a Markdown table, and the same figures as a PNG chart.

Standard library for the table; the chart needs matplotlib and runs in its own environment:
``python report.py chart RESULTS.json OUT.png``. Every ratio is a speed ratio of one run on one
machine: time per operation of the other column / time per operation of pymemflow (above 1:
pymemflow is faster; against the memcpy limit it is the share of the limit pymemflow reaches).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import WORKLOADS

PMF = "pymemflow"
LIMIT = "memcpy (limit)"
ORDER = [PMF, "MemProcFS", "volatility3", "memflow-py", LIMIT]


@dataclass
class Goal:
    text: str
    check: Callable[[dict[str, dict[str, Any]]], bool | None]


def per_op(entry: dict[str, Any] | None, unit: str) -> float | None:
    """The figure shown in a cell, in the workload's unit (None: not run or failed)."""
    if not entry or "median_s" not in entry:
        return None
    t, ops, nbytes = entry["median_s"], entry["ops"], entry["bytes"]
    return {"us": t / ops * 1e6, "ms": t / ops * 1e3, "M/s": ops / t / 1e6, "GB/s": nbytes / t / 1e9}[unit]


def seconds_per_op(entry: dict[str, Any] | None) -> float | None:
    if not entry or "median_s" not in entry:
        return None
    return float(entry["median_s"]) / entry["ops"]


def ratio(row: dict[str, dict[str, Any]], other: str) -> float | None:
    a, b = seconds_per_op(row.get(PMF)), seconds_per_op(row.get(other))
    return None if a is None or b is None or a == 0 else b / a


def _value(row: dict[str, dict[str, Any]], peer: str, unit: str) -> float | None:
    return per_op(row.get(peer), unit)


GOALS: dict[str, list[Goal]] = {
    "single8": [Goal("<= 0.8 us", lambda r: (v := _value(r, PMF, "us")) is not None and v <= 0.8),
                Goal(">= 2x memflow-py", lambda r: (x := ratio(r, "memflow-py")) is not None and x >= 2)],
    "batch8": [Goal(">= 10 M/s", lambda r: (v := _value(r, PMF, "M/s")) is not None and v >= 10)],
    "read16m": [Goal(">= 50 % of memcpy", lambda r: (x := ratio(r, LIMIT)) is not None and x >= 0.5),
                Goal("ahead of MemProcFS and volatility3",
                     lambda r: all((x := ratio(r, p)) is not None and x > 1 for p in ("MemProcFS", "volatility3")))],
    "open_ps": [Goal("<= 50 ms on 1 GiB", lambda r: (v := _value(r, PMF, "ms")) is not None and v <= 50)],
}


def rows_by_workload(results: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    rows: dict[str, dict[str, dict[str, Any]]] = {w: {} for w in WORKLOADS}
    for res in results:
        for w, entry in res.get("results", {}).items():
            rows[w][res["peer"]] = entry
    return rows


def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.3g}" if v < 1000 else f"{v:,.0f}"


def _cell(entry: dict[str, Any] | None, unit: str, expected: Any, notes: list[str]) -> str:
    if not entry:
        return "n/a"
    if "error" in entry:
        notes.append(entry["error"])
        return f"failed [{len(notes)}]"
    text = _fmt(per_op(entry, unit))
    if expected is not None and entry.get("check") is not None and entry["check"] != expected:
        notes.append(f"checksum {entry['check']} differs from the plan's {expected}: other bytes were read")
        text += f" ≠[{len(notes)}]"
    if "loop" in entry.get("note", ""):
        text += " (loop)"
    return text


def markdown(results: list[dict[str, Any]], plan: dict[str, Any]) -> str:
    rows = rows_by_workload(results)
    peers = [p for p in ORDER if any(r.get("peer") == p for r in results)]
    notes: list[str] = []
    head = ["workload", "unit", *peers, *(f"{PMF} vs {p}" for p in peers if p != PMF), "goal", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for w, (label, unit) in WORKLOADS.items():
        row = rows[w]
        if not row:
            continue
        expected = plan.get(w, {}).get("check")
        cells = [_cell(row.get(p), unit, expected if p != "memflow-py" else None, notes) for p in peers]
        ratios = [(f"{x:.2f}x" if (x := ratio(row, p)) is not None else "–") for p in peers if p != PMF]
        goals = GOALS.get(w, [])
        met = [("yes" if g.check(row) else "**no**") for g in goals]
        lines.append("| " + " | ".join([label, unit, *cells, *ratios, "; ".join(g.text for g in goals),
                                         "; ".join(met)]) + " |")
    out = "\n".join(lines)
    if notes:
        out += "\n\n" + "\n".join(f"[{i}] {n}" for i, n in enumerate(notes, 1))
    return out


def setup_text(results: list[dict[str, Any]], plan: dict[str, Any]) -> str:
    vers = ", ".join(f"{r['peer']} {r.get('version', '?')}" for r in results if "version" in r)
    r16 = plan["read16m"]
    return (f"Versions: {vers} (Python {results[0].get('python', '?')}). Image: {Path(plan['image']).name} "
            f"({Path(plan['image']).stat().st_size >> 20} MiB), CR3 {plan['dtb']:#x}; "
            f"{len(plan['single8']['va']):,} single reads, {len(plan['batch8']['va']):,} batched, "
            f"{len(plan['read4k']['va']):,} pages, {len(plan['translate']['va']):,} translations; the 16 MiB "
            f"read covers {r16['kind']} pages in {r16['physical_runs']} physical runs. Medians of "
            f"{plan['repeats']['min']}..{plan['repeats']['max']} warm runs.")


def chart(results_path: str, out_png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    doc = json.loads(Path(results_path).read_text())
    rows = rows_by_workload(doc["results"])
    shown = [(w, WORKLOADS[w]) for w in WORKLOADS if rows[w]]
    cols = 3
    fig, axes = plt.subplots((len(shown) + cols - 1) // cols, cols, figsize=(13, 2.6 * ((len(shown) + 2) // 3)))
    colors = {PMF: "#1f77b4", "MemProcFS": "#ff7f0e", "volatility3": "#2ca02c", "memflow-py": "#9467bd",
              LIMIT: "#7f7f7f"}
    for ax, (w, (label, unit)) in zip(axes.flat, shown, strict=False):
        peers = [p for p in ORDER if per_op(rows[w].get(p), unit) is not None]
        vals = [per_op(rows[w][p], unit) for p in peers]
        ax.barh(range(len(peers)), vals, color=[colors[p] for p in peers])
        ax.set_yticks(range(len(peers)), [p if p != "memflow-py" else "memflow-py (dummy OS)" for p in peers],
                      fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        better = "lower is better" if unit in ("us", "ms") else "higher is better"
        ax.set_title(f"{label}\n[{unit}, {better}]", fontsize=8.5)
        for i, v in enumerate(vals):
            ax.text(v, i, " " + _fmt(v), va="center", fontsize=7.5)
        ax.tick_params(axis="x", labelsize=7)
        ax.xaxis.set_minor_formatter(NullFormatter())  # a narrow log range would print overlapping labels
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    fig.suptitle("pymemflow and its peers: same machine, same image, one run (log scale)", fontsize=11)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "chart":
        chart(sys.argv[2], sys.argv[3])
    else:
        print("usage: report.py chart RESULTS.json OUT.png", file=sys.stderr)
        raise SystemExit(2)
