"""Helpers shared by the win32 tests (a uniquely named module: ``conftest`` names clash across folders)."""

from __future__ import annotations

import mmap
from typing import Any

from pymemflow.mem.buffer import MmapMemory
from pymemflow.mem.memmap import MemoryMap


def phys_of(img: Any, mm: mmap.mmap | None = None) -> MmapMemory:
    """Physical memory over a synthetic image (anonymous mmap; untouched pages cost nothing).
    Pass ``mm`` (filled by the caller) to corrupt bytes before opening."""
    if mm is None:
        mm = mmap.mmap(-1, img.size)
        img.fill(mm)
    return MmapMemory(mm, MemoryMap.identity(img.size), writable=False)
