"""Fleet vs a shell loop: N targets x `ps` (and x `scan` when that command exists), on this machine.

  python benchmarks/bench_fleet.py [--targets 50] [--workers N] [--dir DIR] [--size 32m]

Targets are small dumps of the synthetic Windows machine (pymemflow.demo, a different seed each,
written as ELF / LiME / kdump / VMware with the project's writers; kept in --dir between runs).
Measured in one run, on the same files:

* sequential: one `pymemflow -c auto:FILE -o win32 ps --json` process per target, one after the
  other (what a shell loop does today);
* fleet: one `pymemflow fleet FILES... -o win32 ps --json` (local Dask cluster started and stopped
  inside the timing, `--workers` processes, default one per CPU) -- the ratio's goal is >= 1.8x on 2 cores;
* scheduler overhead per target: the fleet run again from Python on an already started cluster:
  (wall time x worker slots - time the targets spent in the command) / targets, and the round trip
  of a target that does almost nothing (`info` of a 1 MiB dummy connector).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pymemflow
from pymemflow.fleet.cluster import Cluster, FleetOptions, run_fleet, usable_cpus
from pymemflow.fleet.runner import command_names
from pymemflow.fleet.targets import resolve_targets
from pymemflow.plugins.api import parse_size
from pymemflow.writers import dump_physical
from pymemflow.writers.kdump import write_kdump
from pymemflow.writers.vmware import write_vmware

FORMATS = ("elf", "lime", "kdump", "vmware")
PYMEMFLOW = [sys.executable, "-m", "pymemflow"]


def make_targets(folder: Path, n: int, size: int) -> list[str]:
    """``n`` dumps, seeds 1..n, formats in turn; existing files are reused."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        fmt = FORMATS[i % len(FORMATS)]
        base = folder / f"win10-s{i + 1}"
        path = base.with_suffix(".vmem" if fmt == "vmware" else f".{fmt}")
        if not path.exists():
            mem = pymemflow.open(f"demo:win10,seed={i + 1},size={size},hints=true")
            try:
                if fmt == "kdump":
                    write_kdump(mem, path)
                elif fmt == "vmware":
                    write_vmware(mem, base.with_suffix(".vmss"))
                else:
                    dump_physical(mem, path, fmt)
            finally:
                mem.close()
        paths.append(str(path))
    return paths


def sequential(paths: list[str], command: list[str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    rows = 0
    for p in paths:
        out = subprocess.run([*PYMEMFLOW, "-c", f"auto:{p}", "-o", "win32", *command, "--json"],
                             capture_output=True, text=True, check=True).stdout
        rows += len(json.loads(out))
    return time.perf_counter() - t0, rows


def fleet_cli(paths: list[str], command: list[str], workers: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    p = subprocess.run([*PYMEMFLOW, "fleet", *paths, "-o", "win32", *command, "--jsonl", "--workers", str(workers)],
                       capture_output=True, text=True)
    took = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"fleet failed ({p.returncode}): {p.stderr[-2000:]}")
    return took, len(p.stdout.splitlines())


def overhead(paths: list[str], command: list[str], workers: int) -> dict[str, float]:
    """On a started cluster: per-target scheduler overhead of real targets and of a near-empty one."""
    targets = resolve_targets(paths, "win32")
    tiny = resolve_targets(["dummy:size=1m"] * 1, None) * len(paths)
    out: dict[str, float] = {}
    opts = FleetOptions(workers=workers)
    with Cluster(opts) as cluster:
        slots = cluster.slots()
        ready = FleetOptions(client=cluster.client)
        list(run_fleet(targets[:2], command, ready))  # warm the workers' imports and caches
        for label, tlist, cmd in (("real", targets, command), ("tiny", tiny, ["info"])):
            t0 = time.perf_counter()
            results = list(run_fleet(tlist, cmd, ready))
            wall = time.perf_counter() - t0
            busy = sum(r.seconds for r in results)
            bad = [r for r in results if not r.ok]
            if bad:
                raise SystemExit(f"{label}: {len(bad)} targets failed: {bad[0].error}")
            out[f"{label}_wall"] = wall
            out[f"{label}_task_mean"] = busy / len(results)
            out[f"{label}_overhead"] = (wall * slots - busy) / len(results)
        out["slots"] = slots
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", type=int, default=50)
    ap.add_argument("--workers", type=int, default=usable_cpus())
    ap.add_argument("--size", type=parse_size, default=32 << 20, help="RAM of each synthetic machine")
    ap.add_argument("--dir", type=Path, help="keep the dumps here (default: a temporary folder)")
    a = ap.parse_args()
    folder = a.dir or Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    try:
        t0 = time.perf_counter()
        paths = make_targets(folder, a.targets, a.size)
        print(f"{len(paths)} targets ({', '.join(FORMATS)}; {a.size >> 20} MiB each) ready in "
              f"{time.perf_counter() - t0:.1f} s; {usable_cpus()} usable CPUs, fleet --workers {a.workers}")
        commands = [["ps"]]
        if "scan" in command_names():
            commands.append(["scan", "--pattern", "4D 5A 90 00"])  # MZ headers, every process (docs/cli.md)
        else:
            print("scan: no `scan` command in this build (issue 18); only ps is measured")
        for cmd in commands:
            seq, seq_rows = sequential(paths, cmd)
            flt, flt_rows = fleet_cli(paths, cmd, a.workers)
            print(f"\n{len(paths)} targets x {' '.join(cmd)}")
            print(f"  sequential pymemflow loop : {seq:7.2f} s  ({seq / len(paths) * 1000:6.1f} ms/target, {seq_rows} rows)")
            print(f"  pymemflow fleet (local)   : {flt:7.2f} s  ({flt / len(paths) * 1000:6.1f} ms/target, "
                  f"{flt_rows} rows, cluster start/stop included)")
            print(f"  speed-up                  : {seq / flt:7.2f}x  (goal >= 1.8x)")
            if seq_rows != flt_rows:
                print(f"  ROW COUNT MISMATCH: {seq_rows} vs {flt_rows}")
        ov = overhead(paths, ["ps"], a.workers)
        print(f"\nscheduler overhead on a started cluster ({ov['slots']:.0f} slots):")
        print(f"  {len(paths)} x ps            : wall {ov['real_wall']:.2f} s, command {ov['real_task_mean'] * 1000:.1f} "
              f"ms/target, overhead {ov['real_overhead'] * 1000:.1f} ms/target")
        print(f"  {len(paths)} x info (1 MiB dummy): wall {ov['tiny_wall']:.2f} s, command {ov['tiny_task_mean'] * 1000:.1f} "
              f"ms/target, overhead {ov['tiny_overhead'] * 1000:.1f} ms/target")
    finally:
        if a.dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
