"""Linux layer benchmark: time from opening a 512 MiB guest's memory to its process list, including
VMCOREINFO discovery, kallsyms decoding and BTF parsing (no symbol files). Goal: under 1 s.

Boots the testbed's x86-64 KASLR guest (RAM in /dev/shm) unless ``--ram FILE`` names a RAM file,
and also measures the same from QEMU's own ELF dump of it. Each run opens a fresh connector and a
fresh OS layer; the first run (cold page cache of the mapping) and the best run are printed, with
each phase's share.

    python benchmarks/bench_linux.py [--ram FILE] [--runs 5] [--json] [--no-dump]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pymemflow.connectors.elf import ElfCore
from pymemflow.connectors.raw import RawFileMemory
from pymemflow.mem.phys import PhysicalMemory
from pymemflow.os.linux.layer import LinuxOs

ROOT = Path(__file__).resolve().parent.parent
GOAL_S = 1.0


def one_run(open_phys: Any) -> dict[str, float]:
    """Phases: discovery (VMCOREINFO + page-table root), kallsyms, BTF, process list."""
    t0 = time.perf_counter()
    phys: PhysicalMemory = open_phys()
    marks: dict[str, float] = {}
    orig_symbols, orig_types = LinuxOs._load_symbols, LinuxOs._load_types

    def timed_symbols(self: LinuxOs, *a: Any) -> Any:
        marks["discovery"] = time.perf_counter()
        r = orig_symbols(self, *a)
        marks["kallsyms"] = time.perf_counter()
        return r

    def timed_types(self: LinuxOs, *a: Any) -> Any:
        s = time.perf_counter()
        r = orig_types(self, *a)
        marks["btf_s"] = time.perf_counter() - s
        return r

    LinuxOs._load_symbols = timed_symbols  # type: ignore[method-assign]
    LinuxOs._load_types = timed_types  # type: ignore[method-assign]
    try:
        os_ = LinuxOs(phys)
        procs = os_.process_info_list()
    finally:
        LinuxOs._load_symbols, LinuxOs._load_types = orig_symbols, orig_types  # type: ignore[method-assign]
    t_end = time.perf_counter()
    total = t_end - t0
    os_.close()
    return {"total_s": total, "discovery_s": marks["discovery"] - t0, "kallsyms_s": marks["kallsyms"] - marks["discovery"],
            "btf_s": marks["btf_s"], "tasks_s": t_end - marks["kallsyms"] - marks["btf_s"],
            "processes": float(len(procs)), "symbols": float(len(os_.symbols))}


def measure(name: str, open_phys: Any, runs: int) -> dict[str, Any]:
    res = [one_run(open_phys) for _ in range(runs)]
    best = min(res, key=lambda r: r["total_s"])
    return {"source": name, "first": res[0], "best": best, "runs": runs, "goal_s": GOAL_S,
            "meets_goal": best["total_s"] < GOAL_S}


def _print(r: dict[str, Any]) -> None:
    b, f = r["best"], r["first"]
    print(f"{r['source']}: open -> process list best {b['total_s'] * 1000:.0f} ms, first {f['total_s'] * 1000:.0f} ms "
          f"({int(b['processes'])} processes, {int(b['symbols'])} symbols); goal < {GOAL_S * 1000:.0f} ms: "
          f"{'met' if r['meets_goal'] else 'MISSED'} (ratio best/goal {b['total_s'] / GOAL_S:.2f})")
    for k in ("discovery_s", "kallsyms_s", "btf_s", "tasks_s"):
        print(f"    {k[:-2]:10s} {b[k] * 1000:7.1f} ms  ({b[k] / b['total_s'] * 100:4.1f} %)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ram", help="a guest RAM file (default: boot the testbed's x86-64 guest)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-dump", action="store_true", help="skip the ELF dump measurement")
    a = ap.parse_args()
    guest = None
    if a.ram:
        ram = a.ram
    else:
        sys.path.insert(0, str(ROOT / "tests"))
        from testbed import boot  # type: ignore[import-not-found]

        guest = boot("x64", SUFFIX="bench")
        ram = guest.ramfile
    results = []
    try:
        results.append(measure("raw (live RAM file)", lambda: RawFileMemory(ram), a.runs))
        if guest is not None and not a.no_dump:
            with tempfile.TemporaryDirectory() as td:
                elf = guest.dump(Path(td) / "guest.elf", "elf")
                results.append(measure("elf (QEMU dump-guest-memory)", lambda: ElfCore(elf), a.runs))
    finally:
        if guest is not None:
            guest.stop()
    if a.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            _print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
