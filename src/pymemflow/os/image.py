"""A module's image read from memory and, where the OS layer can, rebuilt into a loadable file.

Why here: ``pymemflow dump-module``, ``MOUNT/pid/<pid>/modules/<m>/image.bin`` and the daemon give
the same bytes for the same module; they all call :func:`module_image`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ArgumentError

if TYPE_CHECKING:  # the CLI's osinfo imports this module; remote-only runs start without NumPy
    from ..mem.view import MemoryView
    from .base import ModuleInfo, Process

MAX_IMAGE = 1 << 32
"""A module larger than this is a misread list entry, not an image."""

STEP = 1 << 20


@dataclass
class ModuleImage:
    data: bytes
    unreadable: int
    """Bytes of the image that could not be read (zero in ``data``)."""
    rebuilt: bool
    """True when the OS layer turned the memory image into a file (PE: sections unmapped, ImageBase set)."""


def read_zero_filled(mem: MemoryView, addr: int, size: int,
                     progress: Callable[[int], None] | None = None) -> tuple[bytes, int]:
    """``size`` bytes at ``addr`` (``iter_read``'s 1 MiB chunks); unreadable bytes are zero and counted."""
    parts: list[bytes] = []
    unreadable = 0
    for _, chunk, failures in mem.iter_read(addr, size, STEP):
        parts.append(chunk)
        unreadable += sum(f.length for f in failures)
        if progress is not None:
            progress(len(chunk))
    return b"".join(parts), unreadable


def module_image(proc: Process, mod: ModuleInfo, progress: Callable[[int], None] | None = None) -> ModuleImage:
    """The module's bytes from ``proc``'s memory, rebuilt by the OS layer's ``rebuild_module`` when
    it has one (win32: a PE file whose sections sit at their file offsets). Linux ELF objects are
    mapped file-offset = RVA, so their memory image is already the file's layout."""
    if mod.size <= 0 or mod.size > MAX_IMAGE:
        raise ArgumentError(f"module {mod.name} at {mod.base:#x} has an implausible size {mod.size:#x}")
    raw, bad = read_zero_filled(proc.memory, mod.base, mod.size, progress)
    rebuild = getattr(proc.os, "rebuild_module", None)
    if rebuild is None:
        return ModuleImage(raw, bad, False)
    return ModuleImage(rebuild(raw, mod), bad, True)
