"""threads / handles / malfind / timeline on the synthetic Windows machine: records per second.

    python benchmarks/bench_win32_forensics.py [--processes 200] [--repeat 3]

Builds the demo machine with ``processes`` processes (extra service hosts), opens the win32 layer with
no hints, and times each call over every process (best and median of N runs, warm caches after the
first), printing how many records each gave and the rate.
"""

from __future__ import annotations

import argparse
import mmap
import statistics
import time
from collections.abc import Callable
from typing import Any

from pymemflow.demo import build_image
from pymemflow.mem.buffer import MmapMemory
from pymemflow.mem.memmap import MemoryMap
from pymemflow.os.win32.kernel import Win32Kernel


def timed(fn: Callable[[], list[Any]], repeat: int) -> tuple[float, float, int]:
    times, n = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        n = len(fn())
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="win10-19041-x64")
    ap.add_argument("--processes", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    img = build_image(a.profile, seed=1, size=1 << 30, processes=a.processes)
    mm = mmap.mmap(-1, img.size)
    img.fill(mm)
    k = Win32Kernel.open(MmapMemory(mm, MemoryMap.identity(img.size), writable=False), progress=False)
    print(f"{a.profile}: {len(k.process_info_list())} processes")
    for name, fn in (("threads", k.threads), ("handles", k.handles), ("malfind", k.malfind),
                     ("timeline", k.timeline)):
        best, med, n = timed(fn, a.repeat)
        print(f"{name:9s} {n:6d} records  best {best * 1e3:8.1f} ms  median {med * 1e3:8.1f} ms  "
              f"{n / best:10.0f} records/s")


if __name__ == "__main__":
    main()
