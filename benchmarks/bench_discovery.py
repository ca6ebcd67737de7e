"""Discovery scans against the memory's own bandwidth (issues 12 and 15), one run, same file.

Measures, on a file of random bytes mapped by the ``raw`` connector (page cache warm):

* the limit: ``mmap.find`` of an absent needle over the whole mapping, and ``bytes.count`` of a copy;
* the VMCOREINFO scan (``pymemflow.os.linux.vmcoreinfo.scan``: nothing to find, so it reads everything);
* the x64 page-table-root scan (``rootscan.scan_x64_pml4``);
* the old way of scanning, kept here for the ratio: ``phys.read`` of each chunk, then ``find``;
* sparse targets: 16 MiB of RAM at 64 GiB and 256 GiB (memory-map TOML) and an ELF core whose one
  PT_LOAD declares 64 TiB -- seconds for ``LinuxOs``/``Win32Kernel.open`` to give up (the old code
  read every hole: 38 s at 64 GiB, hours at 64 TiB).

Prints GB/s and each scan's ratio to ``mmap.find`` (goal: >= 0.5).

    python benchmarks/bench_discovery.py [--size 512m] [--json]
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import struct
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymemflow.connectors.elf import ElfCore
from pymemflow.connectors.raw import RawFileMemory
from pymemflow.errors import PymemflowError
from pymemflow.mem.memmap import MemoryMap
from pymemflow.os.linux import vmcoreinfo
from pymemflow.os.linux.layer import LinuxOs
from pymemflow.os.win32 import rootscan
from pymemflow.os.win32.kernel import Win32Kernel
from pymemflow.types import parse_size

GIB = 1 << 30


def best(fn: Callable[[], Any], runs: int = 3) -> float:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def old_scan(phys: Any, size: int, chunk: int = 16 << 20) -> None:
    """The pre-issue-12 loop: copy each chunk out of the connector, then search the copy."""
    pos = 0
    while pos < size:
        data = phys.read(pos, min(chunk, size - pos), zero_fill=True)
        data.find(b"OSRELEASE=")
        pos += chunk


def sparse_targets(tmp: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    ram = tmp / "ram.raw"
    ram.write_bytes(os.urandom(16 << 20))
    for at in (64, 256):
        toml = tmp / f"map{at}.toml"
        toml.write_text(f'[[range]]\nbase = "{at * GIB:#x}"\nlength = "16m"\nreal_base = 0\n')
        for name, opener in (("linux", LinuxOs), ("win32", Win32Kernel.open)):
            t = time.perf_counter()
            try:
                opener(RawFileMemory(ram, mem_map=MemoryMap.load(toml)))
            except PymemflowError:
                pass
            out[f"{name} open, 16 MiB RAM at {at} GiB (s)"] = time.perf_counter() - t
    eh = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, b"\0" * 7, 4, 62, 1, 0, 64, 0, 0,
                     64, 56, 1, 0, 0, 0)
    ph = struct.pack("<IIQQQQQQ", 1, 7, 0x1000, 0, 0, 0x1000, 64 << 40, 0x1000)
    elf = tmp / "huge.elf"
    elf.write_bytes((eh + ph).ljust(0x1000, b"\0") + os.urandom(0x1000))
    for name, opener in (("linux", LinuxOs), ("win32", Win32Kernel.open)):
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                opener(ElfCore(elf))
            except PymemflowError:
                pass
        out[f"{name} open, 8 KiB ELF declaring 64 TiB (s)"] = time.perf_counter() - t
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="512m", help="scanned file size (default 512m)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    size = parse_size(a.size)
    with tempfile.TemporaryDirectory(prefix="pmf-bench-discovery-") as d:
        tmp = Path(d)
        path = tmp / "random.raw"
        with open(path, "wb") as f:
            for _ in range(size >> 24):
                f.write(os.urandom(16 << 20))
        phys = RawFileMemory(path)
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            mm.find(b"\xff" * 16)  # warm the page cache
            t_find = best(lambda: mm.find(b"OSRELEASE="))  # noqa: B023
        t_vmci = best(lambda: list(vmcoreinfo.scan(phys)))
        t_root = best(lambda: rootscan.scan_x64_pml4(phys, size))
        t_old = best(lambda: old_scan(phys, size))
        gb = size / 1e9
        res: dict[str, Any] = {
            "size_bytes": size,
            "mmap.find GB/s (limit)": gb / t_find,
            "vmcoreinfo.scan GB/s": gb / t_vmci,
            "vmcoreinfo.scan / mmap.find": t_find / t_vmci,
            "rootscan.scan_x64_pml4 GB/s": gb / t_root,
            "rootscan / mmap.find": t_find / t_root,
            "old read+find loop GB/s": gb / t_old,
            "old loop / mmap.find": t_find / t_old,
        }
        phys.close()
        res.update(sparse_targets(tmp))
    if a.json:
        print(json.dumps(res, indent=2))
        return
    for k, v in res.items():
        print(f"{k:48s} {v:10.3f}" if isinstance(v, float) else f"{k:48s} {v}")


if __name__ == "__main__":
    main()
