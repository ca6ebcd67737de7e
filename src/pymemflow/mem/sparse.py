"""Where a sparse file really holds data (``SEEK_DATA``/``SEEK_HOLE``), so scans skip its holes.

A raw dump of a machine with RAM high up, or a ``memory-backend-file`` that was never touched, is
mostly holes: the kernel hands back zero pages for them, so reading them only costs time.
"""

from __future__ import annotations

import os

MAX_EXTENTS = 1 << 16
"""Beyond this many data extents the file is treated as fully backed (asking costs more than it saves)."""


def data_extents(fd: int, size: int, max_extents: int = MAX_EXTENTS) -> list[tuple[int, int]] | None:
    """``(start, end)`` file offsets holding data, or None when the file system cannot say."""
    seek_data = getattr(os, "SEEK_DATA", None)
    seek_hole = getattr(os, "SEEK_HOLE", None)
    if seek_data is None or seek_hole is None or size <= 0:
        return None
    out: list[tuple[int, int]] = []
    pos = 0
    try:
        while pos < size:
            try:
                start = os.lseek(fd, pos, seek_data)
            except OSError:  # ENXIO: no data after pos
                break
            end = min(os.lseek(fd, start, seek_hole), size)
            if end <= start:
                break
            out.append((start, end))
            if len(out) > max_extents:
                return None
            pos = end
    except OSError:
        return None
    return out


def backed_parts(start: int, end: int, real: int, extents: list[tuple[int, int]]
                 ) -> list[tuple[int, int, bool]]:
    """Split physical ``[start, end)`` stored at file offset ``real`` into (start, end, backed) parts."""
    out: list[tuple[int, int, bool]] = []
    pos = start
    for es, ee in extents:
        s = max(es - real + start, pos)
        e = min(ee - real + start, end)
        if e <= s:
            continue
        if s > pos:
            out.append((pos, s, False))
        out.append((s, e, True))
        pos = e
    if pos < end:
        out.append((pos, end, False))
    return out
