"""Test helpers: an in-memory physical source for small synthetic dumps, page comparison, volatility3."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from pymemflow.errors import ReadFailure
from pymemflow.mem.phys import PhysicalMemory, PhysicalMetadata
from pymemflow.mem.view import I64Array, U8Array, U64Array, _offsets

PAGE = 4096


class ArrayMemory(PhysicalMemory):
    """Physical memory from numpy arrays at given addresses (the source for small synthetic dumps)."""

    name = "array"

    def __init__(self, parts: dict[int, np.ndarray], hints: dict | None = None) -> None:
        super().__init__()
        self.parts = {a: np.asarray(p, dtype=np.uint8) for a, p in sorted(parts.items())}
        self.hints = dict(hints or {})
        ends = [a + p.size for a, p in self.parts.items()]
        self.metadata = PhysicalMetadata(max(ends), sum(p.size for p in self.parts.values()))

    def memory_map(self) -> list[tuple[int, int]]:
        return [(a, a + p.size) for a, p in self.parts.items()]

    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        fails = []
        for i, (a, n, o) in enumerate(zip(addrs.tolist(), lengths.tolist(), _offsets(lengths).tolist(), strict=True)):
            out[o : o + n] = 0
            got = False
            for base, p in self.parts.items():
                if base <= a and a + n <= base + p.size:
                    out[o : o + n] = p[a - base : a - base + n]
                    got = True
            if not got and n:
                fails.append(ReadFailure(i, a, n, "unmapped"))
        return fails


def pattern(n: int, seed: int) -> np.ndarray:
    """Compressible but page-distinct data: each page starts with its index, then a seeded mix of
    zeros and random bytes."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, n, dtype=np.uint8)
    a[rng.random(n) < 0.6] = 0
    pages = a.reshape(-1, PAGE)
    pages[:, :8] = np.arange(pages.shape[0], dtype="<u8").view(np.uint8).reshape(-1, 8)
    pages[2::5] = 0  # some all-zero pages (kdump shares their data)
    return a


def assert_same_pages(mem: PhysicalMemory, start: int, expected: np.ndarray, batch: int = 16384) -> None:
    """Every page of ``expected`` reads the same at ``start`` (vectorised compare, batches of pages)."""
    ref = expected.reshape(-1, PAGE)
    bad_total = 0
    first_bad = None
    for i in range(0, ref.shape[0], batch):
        addrs = start + PAGE * np.arange(i, min(i + batch, ref.shape[0]), dtype=np.uint64)
        got, failures = mem.read_gather(addrs, PAGE)
        assert not failures, f"{len(failures)} failed reads, first {failures[0]}"
        bad = np.flatnonzero((got != ref[i : i + len(addrs)]).any(axis=1))
        if bad.size and first_bad is None:
            first_bad = start + (i + int(bad[0])) * PAGE
        bad_total += int(bad.size)
    assert bad_total == 0, f"{bad_total} pages differ, first at {first_bad:#x}"


def vol_banners(path: Path, cache: Path) -> list[tuple[int, str]]:
    """Run volatility3's banners.Banners on ``path`` with a private cache; (offset, banner) pairs."""
    vol = shutil.which("vol")
    assert vol, "volatility3's vol is not installed (pip install volatility3)"
    cache.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(cache), "XDG_CACHE_HOME": str(cache)}
    r = subprocess.run([vol, "-q", "--offline", "--cache-path", str(cache), "-f", str(path), "banners.Banners"],
                       capture_output=True, text=True, timeout=600, env=env)
    out = []
    for line in r.stdout.splitlines():
        m = re.match(r"^(0x[0-9a-f]+)\s+(Linux version .*)$", line)
        if m:
            out.append((int(m.group(1), 16), m.group(2)))
    return out


def vol_has_snappy() -> bool:
    try:
        from volatility3.framework.layers import avml
    except Exception:
        return False
    return bool(getattr(avml, "HAS_SNAPPY", False))
