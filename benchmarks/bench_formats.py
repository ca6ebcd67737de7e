"""Random 4 KiB reads per snapshot format, printed as a table (reads/s, MB/s).

  python benchmarks/bench_formats.py [--ram FILE] [--size 256M] [--reads 20000] [--batch 1024]

The source is a raw RAM image (``--ram``, e.g. a testbed guest's RAM file) or synthetic memory of
``--size`` bytes (60% zero bytes, some zero pages: compressible like real RAM). Every format is
written from it by our writers into a temporary folder, opened fresh, then read at the same random
page-aligned addresses: batched (``read_gather`` of ``--batch`` pages) and one ``read`` a page.
Compressed formats are measured cold (fresh connector, each page decoded on first touch).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from pymemflow.connectors import auto
from pymemflow.connectors.formats import codecs
from pymemflow.errors import ReadFailure
from pymemflow.mem.phys import PhysicalMemory, PhysicalMetadata
from pymemflow.mem.view import I64Array, U8Array, U64Array, _offsets
from pymemflow.plugins.api import parse_int
from pymemflow.writers import dump_physical
from pymemflow.writers.avml import write_avml
from pymemflow.writers.crashdump import write_crashdump
from pymemflow.writers.kdump import write_kdump
from pymemflow.writers.vmware import write_vmware

PAGE = 4096


class BufferMemory(PhysicalMemory):
    """The benchmark's source: one contiguous buffer at physical address 0."""

    name = "buffer"

    def __init__(self, data: np.ndarray) -> None:
        super().__init__()
        self.data = data
        self.metadata = PhysicalMetadata(data.size, data.size)
        self.hints = {"dtb": 0x1000}

    def memory_map(self) -> list[tuple[int, int]]:
        return [(0, int(self.data.size))]

    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        for a, n, o in zip(addrs.tolist(), lengths.tolist(), _offsets(lengths).tolist(), strict=True):
            out[o : o + n] = self.data[a : a + n]
        return []


def make_all(src: BufferMemory, folder: Path, only: list[str] | None = None) -> dict[str, Path]:
    """Every format (or those whose name contains one of ``only``) written from ``src``."""
    writers: dict[str, Callable[[], Path]] = {
        "raw (raw connector)": lambda: dump_physical(src, folder / "m.raw", "raw").path,
        "elf": lambda: dump_physical(src, folder / "m.elf", "elf").path,
        "lime": lambda: dump_physical(src, folder / "m.lime", "lime").path,
        "crashdump full": lambda: write_crashdump(src, folder / "m.dmp"),
        "crashdump bitmap": lambda: write_crashdump(src, folder / "mb.dmp", kind="bitmap"),
        "vmware": lambda: write_vmware(src, folder / "m.vmss"),
    }
    for codec in ("none", "zlib", "lzo", "snappy", "zstd"):
        if codec in ("none", "zlib") or codecs.available(codec):
            writers[f"kdump {codec}"] = partial(write_kdump, src, folder / f"m.{codec}.kdump", codec)
    writers["kdump zlib flattened"] = lambda: write_kdump(src, folder / "mf.kdump", "zlib", flattened=True)
    if codecs.available("snappy"):
        writers["avml (snappy)"] = lambda: write_avml(src, folder / "m.avml")
    return {name: write() for name, write in writers.items() if not only or any(o == name for o in only)}


def bench(path: Path, addrs: np.ndarray, batch: int, expect: np.ndarray) -> tuple[float, float]:
    raw = path.suffix == ".raw"  # no magic: opened with the raw connector
    mem = auto.open_dump(path, raw=raw)
    t = time.perf_counter()
    for i in range(0, addrs.size, batch):
        got, fails = mem.read_gather(addrs[i : i + batch], PAGE)
        assert not fails
    batched = addrs.size / (time.perf_counter() - t)
    assert got.tobytes() == expect.tobytes(), f"{path.name}: wrong bytes"
    mem.close()
    mem = auto.open_dump(path, raw=raw)
    n = min(addrs.size, 5000)
    t = time.perf_counter()
    for a in addrs[:n].tolist():
        mem.read(a, PAGE)
    single = n / (time.perf_counter() - t)
    mem.close()
    return batched, single


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ram", help="raw RAM image to use as the source")
    ap.add_argument("--size", default="256M", help="synthetic source size (without --ram)")
    ap.add_argument("--reads", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--formats", help="comma-separated format names to measure (default: all), e.g. "
                    "'kdump zlib,kdump lzo'")
    a = ap.parse_args(argv)
    if a.ram:
        data = np.fromfile(a.ram, dtype=np.uint8)
        data = data[: data.size // PAGE * PAGE]
    else:
        n = parse_int(a.size) // PAGE * PAGE
        rng = np.random.default_rng(1)
        data = rng.integers(0, 256, n, dtype=np.uint8)
        data[rng.random(n) < 0.6] = 0
        data.reshape(-1, PAGE)[::3] = 0
    src = BufferMemory(data)
    folder = Path(tempfile.mkdtemp(prefix="bench-formats-"))
    try:
        t = time.perf_counter()
        files = make_all(src, folder, a.formats.split(",") if a.formats else None)
        print(f"source {data.size >> 20} MiB ({'RAM image ' + a.ram if a.ram else 'synthetic'}); "
              f"wrote {len(files)} files in {time.perf_counter() - t:.1f} s; {a.reads} random 4 KiB reads, "
              f"batches of {a.batch}; single = one read() call a page (first 5000)")
        rng = np.random.default_rng(7)
        addrs = (rng.integers(0, data.size // PAGE, a.reads) * PAGE).astype(np.uint64)
        last = addrs[(a.reads - 1) // a.batch * a.batch :]
        expect = data.reshape(-1, PAGE)[(last // PAGE).astype(np.int64)]
        print(f"{'format':<22}{'file MiB':>10}{'batched reads/s':>18}{'batched MB/s':>14}{'single reads/s':>17}"
              f"{'single MB/s':>13}")
        for name, path in files.items():
            size = path.stat().st_size >> 20
            batched, single = bench(path, addrs, a.batch, expect)
            print(f"{name:<22}{size:>10}{batched:>18,.0f}{batched * PAGE / 1e6:>14,.0f}{single:>17,.0f}"
                  f"{single * PAGE / 1e6:>13,.0f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
