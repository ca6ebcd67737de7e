"""The plain one-address page walker: the reference the batched walker is tested against, and the
fast path for a single cold translation (no NumPy overhead for one address)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from ..mem.pagetype import PageType, page_type_hint
from ..mem.view import MemoryView
from .spec import (
    F_GLOBAL,
    F_HOOK,
    F_LARGE,
    F_NX,
    F_USER,
    F_WRITABLE,
    R_BAD_ENTRY,
    R_NON_CANONICAL,
    R_NOT_PRESENT,
    R_OK,
    R_READ_FAILED,
    Architecture,
    Rule,
)

PteHook = Callable[[int, int, int], "int | None"]
"""``pte_hook(pte_value, level, va) -> physical address of va, or None``: called for a non-present
entry (level 0 = the root table) so an OS layer can resolve e.g. Windows transition PTEs."""


class Walk(NamedTuple):
    """Result of translating one address. ``pa``/``page_size``/``flags`` are 0 when ``reason`` != 0."""

    pa: int
    page_size: int
    flags: int
    reason: int


def _apply(rules: tuple[Rule, ...], pte: int, leaf: bool) -> bool:
    """True when every applicable rule grants."""
    for r in rules:
        if (r.on_leaf if leaf else r.on_table) and bool((pte >> r.bit) & 1) != r.grants:
            return False
    return True


def _forbids(group: tuple[Rule, ...], pte: int, leaf: bool) -> bool:
    for r in group:
        if (r.on_leaf if leaf else r.on_table) and bool((pte >> r.bit) & 1) != r.grants:
            return True
    return False


def root_for(arch: Architecture, va: int, dtb: int, ttbr1: int | None) -> int | None:
    if arch.uses_ttbr1(va):
        return None if ttbr1 is None else ttbr1 & arch.dtb_mask
    return dtb & arch.dtb_mask


def walk_one(
    phys: MemoryView,
    arch: Architecture,
    dtb: int,
    va: int,
    ttbr1: int | None = None,
    hook: PteHook | None = None,
) -> Walk:
    """Translate ``va`` by reading one entry per level. Never raises for bad tables: the walk is
    bounded by the number of levels, and unreadable or invalid entries give a failure reason."""
    with page_type_hint(PageType.PAGE_TABLE):
        return _walk(phys, arch, dtb, va, ttbr1, hook)


def _walk(
    phys: MemoryView,
    arch: Architecture,
    dtb: int,
    va: int,
    ttbr1: int | None,
    hook: PteHook | None,
) -> Walk:
    if not arch.canonical_ok(va):
        return Walk(0, 0, 0, R_NON_CANONICAL)
    table = root_for(arch, va, dtb, ttbr1)
    if table is None:
        return Walk(0, 0, 0, R_NON_CANONICAL)
    size = arch.pte_size
    last = len(arch.levels) - 1
    writable = user = True
    forbid = [False] * len(arch.nx_groups)
    for li, lv in enumerate(arch.levels):
        ea = table + ((va >> lv.shift) & (lv.entries - 1)) * size
        data, failures = phys._read_single(ea, size)
        if failures:
            return Walk(0, 0, 0, R_READ_FAILED)
        pte = int.from_bytes(data, "little" if phys.little_endian else "big")
        if not (pte >> arch.present_bit) & 1:
            if hook is not None:
                pa = hook(pte, li, va)
                if pa is not None:
                    fl = F_HOOK | (F_WRITABLE if writable else 0) | (F_USER if user else 0)
                    if forbid and all(forbid):
                        fl |= F_NX
                    return Walk(pa, arch.min_page_size, fl, R_OK)
            return Walk(0, 0, 0, R_NOT_PRESENT)
        leaf_bit = bool((pte >> arch.leaf_bit) & 1)
        if li == last:
            if arch.last_level_leaf_value is not None and leaf_bit != arch.last_level_leaf_value:
                return Walk(0, 0, 0, R_BAD_ENTRY)
            leaf = True
        else:
            leaf = leaf_bit == arch.leaf_when
            if leaf and not lv.leaf_allowed:
                return Walk(0, 0, 0, R_BAD_ENTRY)
        if lv.rights:
            writable = writable and _apply(arch.writable, pte, leaf)
            user = user and _apply(arch.user, pte, leaf)
            for g, group in enumerate(arch.nx_groups):
                forbid[g] = forbid[g] or _forbids(group, pte, leaf)
        if leaf:
            psize = lv.page_size
            base = pte & arch.addr_mask & ~(psize - 1)
            if arch.pse36_bits and li != last:
                base |= ((pte >> 13) & ((1 << arch.pse36_bits) - 1)) << 32
            fl = (F_WRITABLE if writable else 0) | (F_USER if user else 0)
            if forbid and all(forbid):
                fl |= F_NX
            if li != last:
                fl |= F_LARGE
            if arch.global_bit is not None and (pte >> arch.global_bit) & 1:
                fl |= F_GLOBAL
            return Walk(base | (va & (psize - 1)), psize, fl, R_OK)
        table = pte & arch.addr_mask
    raise AssertionError("unreachable: the last level always ends the walk")


def walk_trace(phys: MemoryView, arch: Architecture, dtb: int, va: int,
               ttbr1: int | None = None) -> list[tuple[int, int, int | None]]:
    """The entries a walk of ``va`` reads, for people: ``[(level, entry address, value or None)]``,
    ending at the leaf, the first non-present entry or the first unreadable one."""
    out: list[tuple[int, int, int | None]] = []
    table = root_for(arch, va, dtb, ttbr1)
    if table is None or not arch.canonical_ok(va):
        return out
    last = len(arch.levels) - 1
    with page_type_hint(PageType.PAGE_TABLE):
        for li, lv in enumerate(arch.levels):
            ea = table + ((va >> lv.shift) & (lv.entries - 1)) * arch.pte_size
            data, failures = phys._read_single(ea, arch.pte_size)
            if failures:
                out.append((li, ea, None))
                break
            pte = int.from_bytes(data, "little" if phys.little_endian else "big")
            out.append((li, ea, pte))
            if not (pte >> arch.present_bit) & 1 or li == last:
                break
            if bool((pte >> arch.leaf_bit) & 1) == arch.leaf_when:
                break
            table = pte & arch.addr_mask
    return out
