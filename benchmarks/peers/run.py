"""pymemflow side by side with its peers: the same workloads, on the same image, in one run.

    python benchmarks/peers/run.py                 # small run (about 2 minutes once the venvs exist)
    python benchmarks/peers/run.py --full          # 5x the addresses and more repeats
    python benchmarks/peers/run.py --image RAM.raw --dtb 0x1234000   # your own raw image and CR3
    python benchmarks/peers/run.py --peers pymemflow,MemProcFS --no-docs

Run it with the Python that has pymemflow installed (pymemflow and the memcpy limit run there).
Each other peer gets its own virtual environment, made with pip once and kept in the cache
(``--cache``, default ~/.cache/pymemflow-bench; ``--upgrade`` rebuilds them): MemProcFS (``memprocfs``),
volatility3 (``volatility3``), memflow's Python bindings (``memflow``) and matplotlib for the chart.
Every peer runs in a fresh interpreter of its own (``harness.py PEER PLAN OUT``), one after the other.

The image is the RAM of a real Linux guest (the project's QEMU testbed, tests/testbed, 1 GiB, paused
while copied) read through its own x86-64 page tables with the CR3 QEMU reports; the process list
uses the synthetic 1 GiB Windows 10 machine (pymemflow's win32 layer, ``vol windows.pslist``).
Writes docs/performance.png and the table between the markers of docs/performance.md.
"""

from __future__ import annotations

import argparse
import ctypes.util
import json
import os
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import report  # noqa: E402
import targets  # noqa: E402

DOCS = targets.ROOT / "docs"
BEGIN, END = "<!-- peers-table:begin -->", "<!-- peers-table:end -->"
ENVS: dict[str, list[str]] = {
    "MemProcFS": ["memprocfs"],
    "volatility3": ["volatility3"],
    "memflow-py": ["memflow"],
    "chart": ["matplotlib"],
}
PEERS = {"pymemflow": "pymemflow", "MemProcFS": "memprocfs", "volatility3": "volatility3",
         "memflow-py": "memflow", "memcpy (limit)": "limit"}
QUICK = {"single8": 20_000, "batch8": 100_000, "read4k": 2_000, "translate": 20_000}
REPEATS = {"quick": {"min": 3, "max": 9, "budget_s": 1.0}, "full": {"min": 7, "max": 31, "budget_s": 8.0}}


def env_python(cache: Path, name: str, upgrade: bool) -> Path:
    """The interpreter of ``name``'s own venv, created (or rebuilt) with pip when needed."""
    d = cache / "venvs" / name.replace(" ", "_")
    py = d / "bin" / "python"
    stamp = d / "pymemflow-bench.json"
    want = json.dumps(ENVS[name])
    if upgrade or not (py.exists() and stamp.exists() and stamp.read_text() == want):
        print(f"peers: making the {name} environment ({' '.join(ENVS[name])}) ...", file=sys.stderr, flush=True)
        venv.EnvBuilder(clear=True, with_pip=True).create(d)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *ENVS[name]],
                       check=True)
        stamp.write_text(want)
    return py


def missing_system_library(peer: str) -> str | None:
    if peer == "MemProcFS" and ctypes.util.find_library("usb-1.0") is None:
        return "MemProcFS's leechcore needs libusb-1.0 (apt-get install libusb-1.0-0)"
    return None


def run_worker(py: Path, peer: str, plan_path: Path, out: Path, timeout: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        subprocess.run([str(py), str(HERE / "harness.py"), PEERS[peer], str(plan_path), str(out)],
                       check=True, timeout=timeout, stdout=subprocess.DEVNULL)
        res: dict[str, Any] = json.loads(out.read_text())
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, FileNotFoundError) as e:
        res = {"peer": peer, "error": f"worker failed: {e}", "results": {}}
    print(f"peers: {peer} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return res


def write_docs(results: list[dict[str, Any]], plan: dict[str, Any], chart_python: Path, full: bool,
               results_path: Path) -> None:
    DOCS.mkdir(exist_ok=True)
    png = DOCS / "performance.png"
    subprocess.run([str(chart_python), str(HERE / "report.py"), "chart", str(results_path), str(png)], check=True)
    cmd = "python benchmarks/peers/run.py" + (" --full" if full else "")
    section = "\n".join([
        BEGIN,
        f"Produced by `{cmd}` on {time.strftime('%Y-%m-%d')} ({os.cpu_count()} cores). "
        + report.setup_text(results, plan),
        "",
        report.markdown(results, plan),
        "",
        "![pymemflow and its peers](performance.png)",
        END,
    ])
    doc = DOCS / "performance.md"
    text = doc.read_text() if doc.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        raise SystemExit(f"peers: {doc} has no {BEGIN} ... {END} markers to write the table between")
    head, rest = text.split(BEGIN, 1)
    doc.write_text(head + section + rest.split(END, 1)[1])
    print(f"peers: wrote {doc} and {png}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="5x the addresses, more repeats (several minutes)")
    ap.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated subset of: {', '.join(PEERS)}")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "pymemflow-bench")
    ap.add_argument("--upgrade", action="store_true", help="rebuild the peers' environments (newest releases)")
    ap.add_argument("--image", type=Path, help="a raw physical-memory image to use instead of the testbed guest")
    ap.add_argument("--dtb", type=lambda s: int(s, 0), help="its x86-64 page-table root (CR3), with --image")
    ap.add_argument("--mem", default="1G", help="testbed guest RAM (default 1G)")
    ap.add_argument("--fresh-image", action="store_true", help="boot the guest again instead of the cached copy")
    ap.add_argument("--no-docs", action="store_true", help="print the table, write nothing under docs/")
    ap.add_argument("--timeout", type=float, default=900, help="seconds one peer may take")
    args = ap.parse_args()
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        ap.error(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    if (args.image is None) != (args.dtb is None):
        ap.error("--image and --dtb go together")
    scale = 5 if args.full else 1
    counts = {k: v * scale for k, v in QUICK.items()}
    cache: Path = args.cache
    if args.image:
        image, pairs = args.image, []
    else:
        image, meta = targets.linux_image(cache, args.mem, args.fresh_image)
        args.dtb, pairs = meta["dtb"], [tuple(p) for p in meta["pairs"]]
    windows = targets.windows_image(cache)
    plan = targets.build_plan(image, args.dtb, pairs, counts, windows, REPEATS["full" if args.full else "quick"])
    run_dir = cache / "runs" / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True)
    plan_path = run_dir / "plan.json"
    plan_path.write_text(json.dumps(plan))
    results: list[dict[str, Any]] = []
    for peer in peers:
        if (why := missing_system_library(peer)) is not None:
            print(f"peers: {peer} skipped: {why}", file=sys.stderr)
            results.append({"peer": peer, "error": why, "results": {}})
            continue
        py = Path(sys.executable) if peer in ("pymemflow", "memcpy (limit)") else env_python(cache, peer, args.upgrade)
        results.append(run_worker(py, peer, plan_path, run_dir / f"{PEERS[peer]}.json", args.timeout))
    results_path = run_dir / "results.json"
    results_path.write_text(json.dumps({"plan": {k: v for k, v in plan.items() if k != "pa"}, "results": results}))
    print(report.markdown([r for r in results if r.get("results")], plan))
    for r in results:
        if r.get("error"):
            print(f"{r['peer']}: {r['error']}")
    print(f"\nraw results: {results_path}")
    if not args.no_docs:
        write_docs([r for r in results if r.get("results")], plan, env_python(cache, "chart", args.upgrade),
                   args.full, results_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
