"""Dump writers: raw, LiME and ELF (``dump-phys``, resumable) and, for tests, kdump (all codecs,
plain/flattened), Windows crash dumps (full, bitmap, triage), AVML and VMware."""

from __future__ import annotations

import os
from typing import Any

from ..mem.view import MemoryView
from .base import Layout, Progress, WriteResult, memory_ranges, write_layout
from .simple import elf_layout, lime_layout, raw_layout

DUMP_FORMATS = ("raw", "elf", "lime")


def layout_for(fmt: str, mem: MemoryView, ranges: list[tuple[int, int]] | None = None) -> Layout:
    r = ranges or memory_ranges(mem)
    if fmt == "raw":
        return raw_layout(r)
    if fmt == "lime":
        return lime_layout(r)
    if fmt == "elf":
        hints: dict[str, Any] = dict(getattr(mem, "hints", {}) or {})
        elf64 = getattr(mem, "pointer_size", 8) == 8 or max((e for _, e in r), default=0) > 1 << 32
        return elf_layout(r, hints, elf64=elf64, machine=62 if elf64 else 3)
    raise ValueError(f"unknown dump format {fmt!r} (use one of {', '.join(DUMP_FORMATS)})")


def dump_physical(mem: MemoryView, out: str | os.PathLike[str], fmt: str = "raw", *, force: bool = False,
                  progress: Progress | None = None, ranges: list[tuple[int, int]] | None = None,
                  stop_after: int | None = None) -> WriteResult:
    """Write ``mem`` to ``out`` as raw, ELF or LiME; resumable, never overwrites without ``force``."""
    return write_layout(mem, out, layout_for(fmt, mem, ranges), force=force, progress=progress,
                        stop_after=stop_after)


__all__ = ["DUMP_FORMATS", "Layout", "WriteResult", "dump_physical", "layout_for", "memory_ranges"]
