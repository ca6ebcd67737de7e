"""The batched page walk in C (``pymemflow.mem._speedups.walk``), with :func:`.walk_batch.walk_many` for the rest.

A batch of TLB misses spread over many pages costs the NumPy walker a sort and a gather per level; the
compiled walk reads each address's entries straight from the physical buffer the compiled gather already
reads (the physical view's ``MapReader``), driven by the architecture's data, never by its name. An address
whose walk needs an entry outside that buffer is walked by ``walk_many``, so every result -- pa, page size,
flags, reason -- is exactly ``walk_many``'s (tests/arch/test_arch_walk_fast.py). Not used with a
``pte_hook`` (OS-layer entries need Python) or on the pure path.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from ..mem import fast
from ..mem.view import MemoryView, U64Array
from .spec import Architecture, Rule
from .walk_batch import TranslationResult, walk_many

_CANONICAL = {"zero": 0, "sign": 1, "split": 2}


def _rules(rules: tuple[Rule, ...]) -> tuple[tuple[int, int, int, int], ...]:
    return tuple((r.bit, int(r.grants), int(r.on_table), int(r.on_leaf)) for r in rules)


@cache
def arch_tuple(arch: Architecture) -> tuple[Any, ...]:
    """``arch`` flattened for the C walker (its field order is documented above ``w_arch`` in _speedups.c)."""
    return (
        arch.pte_size, arch.va_bits, _CANONICAL[arch.canonical], arch.dtb_mask, arch.addr_mask, arch.present_bit,
        arch.leaf_bit, int(arch.leaf_when),
        -1 if arch.last_level_leaf_value is None else int(arch.last_level_leaf_value),
        -1 if arch.global_bit is None else arch.global_bit, arch.pse36_bits,
        tuple((lv.shift, lv.bits, int(lv.leaf_allowed), int(lv.rights)) for lv in arch.levels),
        _rules(arch.writable), _rules(arch.user), tuple(_rules(g) for g in arch.nx_groups),
    )


def walk_reader(phys: MemoryView) -> Any:
    """The physical view's compiled in-process reader (a buffer the C walk may read), or None."""
    if fast.speedups is None or not getattr(phys, "_compiled_in_process", False):
        return None
    return getattr(phys, "_compiled_reader", None)


def walk_compiled(reader: Any, phys: MemoryView, arch: Architecture, dtb: int, vas: U64Array,
                  ttbr1: int | None = None) -> TranslationResult:
    """``walk_many(phys, arch, dtb, vas, ttbr1)`` (no hook), walked in C where the entries are in ``reader``'s
    buffer. ``vas``: a contiguous u64 array."""
    import numpy as np

    assert fast.speedups is not None
    n = vas.shape[0]
    res = TranslationResult.empty(n)
    fallback = np.zeros(n, dtype=np.uint8)
    k = fast.speedups.walk(reader, arch_tuple(arch), int(dtb), None if ttbr1 is None else int(ttbr1), vas,
                           res.pa, res.page_size, res.flags, res.reason, fallback)
    if k < 0:
        return walk_many(phys, arch, dtb, vas, ttbr1)
    if k:
        idx = np.flatnonzero(fallback)
        r = walk_many(phys, arch, dtb, vas[idx], ttbr1)
        res.pa[idx] = r.pa
        res.page_size[idx] = r.page_size
        res.flags[idx] = r.flags
        res.reason[idx] = r.reason
    return res
