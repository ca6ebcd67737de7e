"""Address translation: architectures as data, one batched page walker, virtual address spaces.

``VirtualMemory(phys, "x64", cr3)`` is a :class:`~pymemflow.mem.view.MemoryView` over virtual
addresses; ``get_arch(name)`` gives the MMU description (``x64``, ``x64la57``, ``x86``, ``x86pae``,
``aarch64``). See docs/translation.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .spec import (
    ARCHITECTURES,
    F_GLOBAL,
    F_HOOK,
    F_LARGE,
    F_NX,
    F_USER,
    F_WRITABLE,
    REASONS,
    Architecture,
    Level,
    Rule,
    flags_str,
    get_arch,
)
from .tlb import NO_TLB, Tlb, TlbPolicy
from .virtual import VirtualMemory
from .walk_scalar import PteHook, Walk, walk_one

if TYPE_CHECKING:
    from .pagemap import Leaves, walk_leaves
    from .walk_batch import TranslationResult, walk_many

_LAZY = {"Leaves": "pagemap", "walk_leaves": "pagemap", "TranslationResult": "walk_batch", "walk_many": "walk_batch"}
"""Exported names whose modules (the vectorised walkers) load on first use: reads of a few addresses
translate with the scalar walker."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)  # lazy: see _LAZY
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ARCHITECTURES", "Architecture", "F_GLOBAL", "F_HOOK", "F_LARGE", "F_NX", "F_USER", "F_WRITABLE",
    "Leaves", "Level", "NO_TLB", "PteHook", "REASONS", "Rule", "Tlb", "TlbPolicy", "TranslationResult",
    "VirtualMemory", "Walk", "flags_str", "get_arch", "walk_leaves", "walk_many", "walk_one",
]
