"""Writing physical memory to a dump file: layouts, resumable copying, never clobbering.

A writer describes its file as a *layout*: header blobs at fixed offsets plus data extents
``(file_offset, phys_address, length)``. :func:`write_layout` writes the headers, then copies the
extents in order through ``OUT.part``, recording progress in ``OUT.part.json`` after each flushed
chunk; a rerun continues where the last one stopped -- only when the journal names the same layout,
the same source (:func:`source_identity`) and the same output, and the part file has the layout's
size and headers; otherwise the copy starts over. The finished file is renamed to ``OUT`` at the end. An existing ``OUT`` is never replaced unless ``force`` is given.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArgumentError, PymemflowError
from ..mem.view import MemoryView

log = logging.getLogger(__name__)

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
    """Bytes that could not be read (zero in the file): a dump with any is incomplete."""
    restarted: str | None = None
    """Why a journal found beside the output was not resumed from (None: there was none, or it was)."""

    @property
    def complete(self) -> bool:
        return self.unreadable_bytes == 0


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


JOURNAL_VERSION = 2


def source_identity(mem: MemoryView) -> dict[str, Any]:
    """What a resume journal records about the source, so a rerun against another source (another
    file, VM or size) starts over instead of splicing two machines into one file: the connector's
    name, the file or label it names, its metadata, and for a file the file's size, mtime and inode."""
    hints = getattr(mem, "hints", None) or {}
    md = getattr(mem, "metadata", None)
    ident: dict[str, Any] = {"connector": getattr(mem, "name", type(mem).__name__),
                             "file": str(hints.get("file", getattr(mem, "path", "")) or ""),
                             "label": str(hints.get("label", "")),
                             "metadata": md.as_dict() if md is not None and hasattr(md, "as_dict") else {}}
    if ident["file"]:
        try:
            st = os.stat(ident["file"])
            ident["stat"] = [st.st_size, st.st_mtime_ns, st.st_ino]
        except OSError:
            pass
    return ident


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _resume_point(part: Path, journal: Path, expect: dict[str, Any], layout: Layout) -> tuple[int, str | None]:
    """Bytes of data already in ``part`` per ``journal``, or 0 and why the journal was not used.
    Trusted only when the journal names this layout, this source and this output, the part file
    has the layout's size and its headers, and ``done`` is within the data."""
    if not journal.exists():
        return 0, None
    if not part.exists():
        return 0, f"{journal.name} has no {part.name} beside it"
    try:
        j = json.loads(journal.read_text())
    except (ValueError, OSError) as e:
        return 0, f"{journal.name} is unreadable ({e})"
    if not isinstance(j, dict):
        return 0, f"{journal.name} is not a journal object"
    for key, what in (("version", "journal version"), ("layout", "layout (format or memory map)"),
                      ("source", "source"), ("output", "output path")):
        if j.get(key) != expect[key]:
            return 0, f"{journal.name} belongs to another {what}"
    done = j.get("done")
    if not isinstance(done, int) or not 0 <= done <= layout.data_bytes:
        return 0, f"{journal.name} records an impossible progress {done!r}"
    size = part.stat().st_size
    if size != layout.size:
        return 0, f"{part.name} has {size} bytes, the layout {layout.size}"
    with open(part, "rb") as f:
        for off, blob in layout.headers:
            f.seek(off)
            if f.read(len(blob)) != blob:
                return 0, f"{part.name} does not hold this layout's header at {off:#x}"
    return done, None


def write_layout(mem: MemoryView, out: str | os.PathLike[str], layout: Layout, *, force: bool = False,
                 progress: Progress | None = None, chunk: int = CHUNK,
                 stop_after: int | None = None) -> WriteResult:
    """Write ``layout`` to ``out`` (see the module doc). ``stop_after`` (bytes of data) simulates a
    failure part-way, for tests of resuming. A layout with no data is an error (a dump of nothing);
    a journal that does not belong to this layout, source and output is ignored (the copy starts
    over; ``WriteResult.restarted`` says why); the result counts unreadable bytes (zero in the file)."""
    out = Path(out)
    check_output(out, force)
    if layout.data_bytes <= 0:
        raise ArgumentError(f"nothing to dump into {out}: the source has no memory "
                            f"(its memory map is empty; max_address {getattr(getattr(mem, 'metadata', None), 'max_address', 0):#x})")
    part = out.with_name(out.name + ".part")
    journal = out.with_name(out.name + ".part.json")
    ident = {"version": JOURNAL_VERSION, "layout": layout.fingerprint(), "source": _fingerprint(source_identity(mem)),
             "output": str(out.resolve())}

    def record(done: int) -> None:
        tmp = journal.with_name(journal.name + ".tmp")
        tmp.write_text(json.dumps({**ident, "done": done}))
        os.replace(tmp, journal)  # never a half-written journal

    done, restarted = _resume_point(part, journal, ident, layout)
    if restarted:
        log.warning("not resuming %s: %s; starting over", out, restarted)
    resumed = done
    unreadable = 0
    written = 0
    with open(part, "r+b" if done else "wb") as f:
        if not done:
            for off, blob in layout.headers:
                f.seek(off)
                f.write(blob)
            f.truncate(layout.size)
            record(0)
        if progress and done:
            progress(done)
        pos = 0
        for fo, pa, n in layout.extents:
            if pos + n <= done:
                pos += n
                continue
            k = max(0, done - pos)
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
                    record(pos + k)
                    raise InterruptedError(f"stopped after {written} bytes (test hook)")
                if written % (64 << 20) < m:
                    f.flush()
                    os.fsync(f.fileno())
                    record(pos + k)
            pos += n
        f.flush()
        os.fsync(f.fileno())
        size = f.seek(0, os.SEEK_END)
    if pos != layout.data_bytes or written + resumed != layout.data_bytes or size != layout.size:
        raise PymemflowError(f"{part}: copy incomplete ({written + resumed} of {layout.data_bytes} data bytes, "
                             f"file {size} of {layout.size} bytes); kept with its journal for a rerun")
    os.replace(part, out)
    journal.unlink(missing_ok=True)
    return WriteResult(out, os.path.getsize(out), layout.data_bytes, resumed, unreadable, restarted)


def zero_fill_read(mem: MemoryView, addr: int, n: int) -> np.ndarray:
    """``n`` bytes at ``addr`` with unreadable bytes zeroed (writers copy what can be read)."""
    data, _ = mem._read_single(addr, n)
    return np.frombuffer(data, dtype=np.uint8)
