"""Where a single 8-byte virtual read spends its time, layer by layer, on the last peers run's plan.

    python benchmarks/peers/profile_single.py [PLAN.json]

Times (best of 7, 20k reads each) the whole ``VirtualMemory.read_u64`` on the plan's random addresses
and on one address repeated, the connector's physical ``read_u64`` at the translated addresses, and a
bare ``struct.unpack_from`` on the same mmap (the floor for any Python call that returns an int), then
a cProfile of the virtual reads: the gap between the rows is what each layer costs.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymemflow.arch import VirtualMemory
from pymemflow.connectors.raw import RawFileMemory


def best_us(fn: Callable[[Any], Any], xs: list[int], rep: int = 7) -> float:
    best = float("inf")
    for _ in range(rep):
        t0 = time.perf_counter()
        for x in xs:
            fn(x)
        best = min(best, time.perf_counter() - t0)
    return best / len(xs) * 1e6


def main() -> int:
    if len(sys.argv) > 1:
        plan_path = Path(sys.argv[1])
    else:
        runs = sorted((Path.home() / ".cache" / "pymemflow-bench" / "runs").glob("*/plan.json"))
        if not runs:
            print("no plan: run benchmarks/peers/run.py first, or give PLAN.json", file=sys.stderr)
            return 2
        plan_path = runs[-1]
    plan = json.loads(plan_path.read_text())
    phys = RawFileMemory(plan["image"])
    vm = VirtualMemory(phys, plan["arch"], plan["dtb"])
    vas, pas = plan["single8"]["va"], plan["pa"]["single8"]
    for va in vas:  # warm the TLB, as the peers run does
        vm.read_u64(va)
    unpack = struct.Struct("<Q").unpack_from
    mm = phys._mm
    rows = [
        ("VirtualMemory.read_u64, the plan's random addresses", best_us(vm.read_u64, vas)),
        ("VirtualMemory.read_u64, one address again and again", best_us(vm.read_u64, [vas[0]] * len(vas))),
        ("connector read_u64 at the translated addresses", best_us(phys.read_u64, pas)),
        ("struct.unpack_from on the mmap, same addresses", best_us(lambda a: unpack(mm, a), pas)),
        ("struct.unpack_from, one address again and again", best_us(lambda a: unpack(mm, a), [pas[0]] * len(pas))),
    ]
    print(f"plan {plan_path} ({len(vas):,} addresses on {len({v >> 12 for v in vas}):,} distinct pages)")
    for label, us in rows:
        print(f"  {label:55} {us:6.3f} us")
    prof = cProfile.Profile()
    prof.enable()
    for va in vas:
        vm.read_u64(va)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(6)
    phys.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
