"""Scanning physical memory: only the ranges a connector really has, in place where possible, cancellable.

Discovery (page-table roots, kernel images, VMCOREINFO) has to look through physical memory before it
knows anything. :func:`scan_chunks` visits :meth:`~pymemflow.mem.phys.PhysicalMemory.phys_ranges`
instead of ``0..max_address``: holes are never read, ranges that read as zeros without storage (an
ELF ``p_memsz`` beyond ``p_filesz``, a sparse file's holes) are skipped, and each chunk is handed out
as the connector's own buffer (an mmap) when it has one, so ``mmap.find``/``np.frombuffer`` search it
without a copy. A :class:`CancelToken` (or Ctrl-C) stops a scan between chunks.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import DeclaredSizeWarning, PymemflowError
from .phys import PhysRange
from .view import MemoryView

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
else:
    from .lazynp import np

CHUNK = 16 << 20
PAGE = 0x1000
ABSURD_RATIO = 64
"""A dump declaring this many times more zero-filled than stored memory is suspicious ..."""
ABSURD_MIN = 1 << 30
"""... once the zero-filled part is at least this large (small BIOS gaps are normal)."""

Progress = Callable[[int, int], None]
"""``progress(done_bytes, total_bytes)`` over the bytes a scan will really read."""


class ScanCancelled(PymemflowError):
    """A scan was stopped through its :class:`CancelToken`."""


class CancelToken:
    """Set from any thread (a UI, a timer, a signal handler) to stop scans at the next chunk."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self, what: str = "scan") -> None:
        if self._event.is_set():
            raise ScanCancelled(f"{what} cancelled")


@dataclass
class Chunk:
    """``length`` bytes of physical memory at ``base``: ``buffer[offset:offset+length]``.

    ``buffer`` is the connector's own mmap (no copy) or bytes read for this chunk.
    """

    base: int
    buffer: Any
    offset: int
    length: int

    def find(self, needle: bytes, start: int = 0, end: int | None = None) -> int:
        """Offset (from ``base``) of the first ``needle`` in ``[start, end)``, or -1."""
        stop = self.length if end is None else min(end, self.length)
        at = self.buffer.find(needle, self.offset + start, self.offset + stop)
        return -1 if at < 0 else at - self.offset

    def array(self) -> npt.NDArray[np.uint8]:
        """The bytes as a uint8 array (a view of the buffer, read-only)."""
        return np.frombuffer(self.buffer, dtype=np.uint8, count=self.length, offset=self.offset)

    def take(self, start: int, end: int) -> bytes:
        """A copy of bytes ``[start, end)`` (offsets from ``base``, clipped to the chunk)."""
        start = max(start, 0)
        end = min(end, self.length)
        if end <= start:
            return b""
        return bytes(self.buffer[self.offset + start: self.offset + end])


def ranges_of(phys: MemoryView, limit: int | None = None) -> list[PhysRange]:
    """The connector's ranges (``phys_ranges``), else ``0..metadata.max_address`` (a plain
    MemoryView: ``0..limit``)."""
    get = getattr(phys, "phys_ranges", None)
    if callable(get):
        return list(get())
    meta = getattr(phys, "metadata", None)
    top = int(getattr(meta, "max_address", 0) or 0) or (limit or 0)
    return [PhysRange(0, top)] if top else []


def check_declared_size(phys: MemoryView, ranges: list[PhysRange] | None = None) -> str | None:
    """Warn (:class:`DeclaredSizeWarning`) when zero-filled ranges dwarf the stored ones; returns the text."""
    if getattr(phys, "_declared_size_checked", False):
        return None  # said once per target (at open, not again at every scan)
    try:
        phys._declared_size_checked = True  # type: ignore[attr-defined]
    except AttributeError:
        pass
    rs = ranges_of(phys) if ranges is None else ranges
    stored = sum(r.length for r in rs if r.backed)
    empty = sum(r.length for r in rs if not r.backed)
    if empty < ABSURD_MIN or empty < ABSURD_RATIO * max(stored, 1):
        return None
    where = getattr(phys, "path", None) or getattr(phys, "name", "target")
    text = (f"{where}: declares {_size(stored + empty)} of physical memory but stores only {_size(stored)}; "
            f"the other {_size(empty)} read as zeros and are not scanned (corrupt or hostile header?)")
    warnings.warn(text, DeclaredSizeWarning, stacklevel=3)
    return text


def _size(n: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} bytes"


def plan(phys: MemoryView, *, limit: int | None = None) -> list[PhysRange]:
    """The backed ranges a scan will read (below ``limit`` when given), after the size check."""
    rs = ranges_of(phys, limit)
    check_declared_size(phys, rs)
    out = []
    for r in rs:
        if not r.backed:
            continue
        end = r.end if limit is None else min(r.end, limit)
        if end > r.start:
            out.append(PhysRange(r.start, end))
    return out


def scan_chunks(phys: MemoryView, *, chunk: int = CHUNK, overlap: int = 0, align: int = PAGE,
                progress: Progress | None = None, cancel: CancelToken | None = None,
                limit: int | None = None) -> Iterator[Chunk]:
    """Chunks of every backed range, lowest address first.

    Each chunk reaches ``overlap`` bytes into the next (inside one range) so a match across a chunk
    boundary is seen; chunk starts are ``align``-aligned relative to the range. Unreadable parts of
    a fetched chunk read as zeros.
    """
    if chunk <= 0 or chunk % align:
        raise ValueError(f"chunk {chunk:#x} must be a positive multiple of {align:#x}")
    todo = plan(phys, limit=limit)
    total = sum(r.length for r in todo)
    done = 0
    direct = getattr(phys, "direct", None)
    for r in todo:
        pos = r.start
        while pos < r.end:
            if cancel is not None:
                cancel.check()
            n = min(chunk, r.end - pos)
            m = min(n + overlap, r.end - pos)
            d = direct(pos, m) if callable(direct) else None
            if d is not None:
                yield Chunk(pos, d[0], d[1], m)
            else:
                yield Chunk(pos, phys.read(pos, m, zero_fill=True), 0, m)
            pos += n
            done += n
            if progress is not None:
                progress(done, total)


def describe(phys: MemoryView) -> str:
    """'N ranges, X stored' -- what a scan covered, for error messages."""
    rs = ranges_of(phys)
    stored = sum(r.length for r in rs if r.backed)
    return f"{len(rs)} physical range{'s' if len(rs) != 1 else ''} ({_size(stored)} stored)"
