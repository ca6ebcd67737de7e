"""psscan / netscan (pool-tag carving over physical memory) on the synthetic Windows machine: GB/s.

    python benchmarks/bench_poolscan.py [--size 1g] [--repeat 3]

Builds the demo win10 machine of ``size`` bytes, writes it as a dense raw file (the free memory filled
with pseudo-random bytes, as a real dump has no holes to skip), opens it with
``-c raw:FILE -o win32`` (no hints) and times psscan and netscan (best and median of N runs). Beside
them: one ``bytes.find`` pass per tag over the same file's bytes (mmap), the floor any tag scan pays.
Rates are over the bytes the scan reads (the connector's backed ranges).
"""

from __future__ import annotations

import argparse
import mmap
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from pymemflow.connectors.raw import RawFileMemory
from pymemflow.demo import build_image
from pymemflow.os.win32.kernel import Win32Kernel
from pymemflow.types import parse_size


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times), out


def find_all(buf: mmap.mmap, tags: list[bytes]) -> int:
    n = 0
    for tag in tags:
        at = buf.find(tag)
        while at >= 0:
            n += 1
            at = buf.find(tag, at + 1)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=parse_size, default=1 << 30)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mem.raw")
        img = build_image("win10-19041-x64", seed=1, size=args.size)
        noise = random.Random(1).randbytes(1 << 20)
        with open(path, "wb") as f:
            for _ in range(args.size // len(noise)):
                f.write(noise)
            for pa, page in img.pages.items():
                f.seek(pa)
                f.write(page)
        k = Win32Kernel.open(RawFileMemory(path))
        scanned = sum(r.length for r in k.phys.phys_ranges() if r.backed)
        gb = scanned / 1e9
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            for label, tags, fn in (("psscan", [b"Proc", b"Pro\xe3"], k.psscan),
                                    ("netscan", [b"TcpE", b"TcpL", b"UdpA"], k.netscan)):
                best, med, rows = timed(fn, args.repeat)
                fbest, _, hits = timed(lambda tags=tags: find_all(mm, tags), args.repeat)
                print(f"{label:8s} {len(rows):4d} rows  best {best:6.3f} s ({gb / best:5.2f} GB/s)  median {med:6.3f} s"
                      f"  | find-only floor {fbest:6.3f} s ({gb / fbest:5.2f} GB/s, {hits} tag hits)"
                      f"  ratio {best / fbest:4.2f}x")
        print(f"scanned {scanned / (1 << 20):.0f} MiB of backed ranges per call")


if __name__ == "__main__":
    main()
