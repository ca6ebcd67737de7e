"""Address translation: architectures as data, one batched page walker, virtual address spaces.

``VirtualMemory(phys, "x64", cr3)`` is a :class:`~pymemflow.mem.view.MemoryView` over virtual
addresses; ``get_arch(name)`` gives the MMU description (``x64``, ``x64la57``, ``x86``, ``x86pae``,
``aarch64``). See docs/translation.md.
"""

from .pagemap import Leaves, walk_leaves
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
from .walk_batch import TranslationResult, walk_many
from .walk_scalar import PteHook, Walk, walk_one

__all__ = [
    "ARCHITECTURES", "Architecture", "F_GLOBAL", "F_HOOK", "F_LARGE", "F_NX", "F_USER", "F_WRITABLE",
    "Leaves", "Level", "NO_TLB", "PteHook", "REASONS", "Rule", "Tlb", "TlbPolicy", "TranslationResult",
    "VirtualMemory", "Walk", "flags_str", "get_arch", "walk_leaves", "walk_many", "walk_one",
]
