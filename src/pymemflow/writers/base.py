"""Writing physical memory to a dump file: layouts, resumable copying, never clobbering.

A writer describes its file as a *layout*: header blobs at fixed offsets plus data extents
``(file_offset, phys_address, length)``. :func:`write_layout` writes the headers, then copies the
extents in order through ``OUT.part``, recording progress in ``OUT.part.json`` after each flushed
chunk; a rerun with the same layout continues where the last one stopped, and the finished file is
renamed to ``OUT`` at the end. An existing ``OUT`` is never replaced unless ``force`` is given.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ArgumentError
from ..mem.view import MemoryView

CHUNK = 4 << 20
Progress = Callable[[int], None]


@dataclass
class Layout:
    headers: list[tuple[int, bytes]] = field(default_factory=list)
    extents: list[tuple[int, int, int]] = field(default_factory=list)
    """(file_offset, phys_address, length), written in this order."""
    size: int = 0
    """Final file size (a raw file with a trailing hole still gets its full size)."""

    @property
    def data_bytes(self) -> int:
        return sum(n for _, _, n in self.extents)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for off, blob in self.headers:
            h.update(off.to_bytes(8, "little") + hashlib.sha256(blob).digest())
        for fo, pa, n in self.extents:
            h.update(b"%d:%d:%d;" % (fo, pa, n))
        h.update(str(self.size).encode())
        return h.hexdigest()


@dataclass
class WriteResult:
    path: Path
    bytes_written: int
    data_bytes: int
    resumed_from: int
    unreadable_bytes: int


def memory_ranges(mem: MemoryView) -> list[tuple[int, int]]:
    """The physical ranges to dump: the connector's memory map when it has one, else 0..max_address."""
    mm = getattr(mem, "memory_map", None)
    if mm is not None:  # a method (snapshot connectors) or a MemoryMap property (raw connector)
        ranges: list[tuple[int, int]] = []
        for r in (mm() if callable(mm) else mm):
            if hasattr(r, "base") and hasattr(r, "length"):  # a MemoryMap's MemRange (raw connector)
                ranges.append((int(r.base), int(r.base) + int(r.length)))
            else:
                s, e = r
                ranges.append((int(s), int(e)))
        ranges.sort()
        merged: list[tuple[int, int]] = []
        for s, e in ranges:
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
            elif e > s:
                merged.append((s, e))
        if merged:
            return merged
    md = getattr(mem, "metadata", None)
    if md is None:
        raise ArgumentError("cannot tell which addresses to dump: the source has no memory map or metadata")
    return [(0, int(md.max_address))]


def check_output(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise ArgumentError(f"{out} exists; pass --force to overwrite it")


def write_layout(mem: MemoryView, out: str | os.PathLike[str], layout: Layout, *, force: bool = False,
                 progress: Progress | None = None, chunk: int = CHUNK,
                 stop_after: int | None = None) -> WriteResult:
    """Write ``layout`` to ``out`` (see the module doc). ``stop_after`` (bytes of data) simulates a
    failure part-way, for tests of resuming."""
    out = Path(out)
    check_output(out, force)
    part = out.with_name(out.name + ".part")
    journal = out.with_name(out.name + ".part.json")
    fp = layout.fingerprint()
    done = 0
    if part.exists() and journal.exists():
        try:
            j = json.loads(journal.read_text())
            if j.get("fingerprint") == fp:
                done = int(j.get("done", 0))
        except (ValueError, OSError):
            done = 0
    resumed = done
    mode = "r+b" if done and part.exists() else "wb"
    unreadable = 0
    written = 0
    with open(part, mode) as f:
        if mode == "wb":
            for off, blob in layout.headers:
                f.seek(off)
                f.write(blob)
            f.truncate(layout.size)
            journal.write_text(json.dumps({"fingerprint": fp, "done": 0}))
        if progress and done:
            progress(done)
        pos = 0
        for fo, pa, n in layout.extents:
            if pos + n <= done:
                pos += n
                continue
            skip = max(0, done - pos)
            k = skip
            while k < n:
                m = min(chunk, n - k)
                data, failures = mem._read_single(pa + k, m)
                unreadable += sum(fl.length for fl in failures)
                f.seek(fo + k)
                f.write(data)
                k += m
                written += m
                if progress:
                    progress(m)
                if stop_after is not None and written >= stop_after:
                    f.flush()
                    os.fsync(f.fileno())
                    journal.write_text(json.dumps({"fingerprint": fp, "done": pos + k}))
                    raise InterruptedError(f"stopped after {written} bytes (test hook)")
                if written % (64 << 20) < m:
                    f.flush()
                    os.fsync(f.fileno())
                    journal.write_text(json.dumps({"fingerprint": fp, "done": pos + k}))
            pos += n
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, out)
    journal.unlink(missing_ok=True)
    return WriteResult(out, os.path.getsize(out), layout.data_bytes, resumed, unreadable)


def zero_fill_read(mem: MemoryView, addr: int, n: int) -> np.ndarray:
    """``n`` bytes at ``addr`` with unreadable bytes zeroed (writers copy what can be read)."""
    data, _ = mem._read_single(addr, n)
    return np.frombuffer(data, dtype=np.uint8)
