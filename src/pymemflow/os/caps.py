"""Sizes read from the target, cut to what is plausible and to what the target maps.

One corrupt field (a ``SizeOfImage``, a string length, a count) must not make a reader allocate
gigabytes: every OS layer passes such values through :func:`capped`, and image-sized reads through
:func:`mapped_extent`, and reports the cut as a :class:`~pymemflow.errors.CappedSizeWarning`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..mem.view import MemoryView
from .walk import CAPPED

if TYPE_CHECKING:
    import numpy as np
else:
    from ..mem.lazynp import np

PAGE = 0x1000


def capped(value: int, limit: int, what: str, warnings: list[str] | None = None, why: str = "implausible") -> int:
    """``value`` cut to ``limit`` (a note added to ``warnings`` when cut); negative values become 0."""
    if value < 0:
        if warnings is not None:
            warnings.append(f"{what}: {value} is negative; using 0")
        return 0
    if value > limit:
        if warnings is not None:
            warnings.append(f"{what}: {value:#x} is {why}{CAPPED}{limit:#x}")
        return limit
    return value


def mapped_extent(mem: MemoryView, base: int, size: int) -> int:
    """Bytes from ``base`` to the end of the last mapped page inside ``[base, base+size)`` -- the
    part worth reading. A view without page tables (no ``translate_batch``) maps everything."""
    translate = getattr(mem, "translate_batch", None)
    if translate is None or size <= 0:
        return size
    top = 1 << (8 * mem.pointer_size)
    n = (min(base + size, top) - base + PAGE - 1) // PAGE
    if n <= 0:
        return 0
    pages = np.arange(n, dtype=np.uint64) * np.uint64(PAGE) + np.uint64(base & ~(PAGE - 1))
    ok = np.flatnonzero(translate(pages).ok)
    if ok.size == 0:
        return 0
    return min(size, (int(ok[-1]) + 1) * PAGE - (base & (PAGE - 1)))
