"""The batched page walker: N virtual addresses, one gathered page-table read per level.

Addresses are sorted once; at each level the entry an address needs depends only on its bits above
that level's shift (and the table reached so far), so equal entries sit next to each other and are
read once (run-length dedupe, O(N) per level instead of a hash or a sort). Results are in the
caller's order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..mem.pagetype import PageType, page_type_hint
from ..mem.view import MemoryView, U64Array
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
    REASONS,
    Architecture,
    Rule,
)
from .walk_scalar import PteHook

U8Array = npt.NDArray[np.uint8]
BoolArray = npt.NDArray[np.bool_]
_U64 = np.uint64


@dataclass
class TranslationResult:
    """Per-address results of :meth:`VirtualMemory.translate_batch`, in request order.

    ``pa``, ``page_size`` and ``flags`` are 0 where ``reason`` != 0 (see ``spec.REASONS``)."""

    pa: U64Array
    page_size: U64Array
    flags: U8Array
    reason: U8Array

    @property
    def ok(self) -> BoolArray:
        return self.reason == R_OK  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return int(self.pa.shape[0])

    def reason_str(self, i: int) -> str:
        return REASONS.get(int(self.reason[i]), f"reason {int(self.reason[i])}")

    @classmethod
    def empty(cls, n: int) -> TranslationResult:
        return cls(np.zeros(n, _U64), np.zeros(n, _U64), np.zeros(n, np.uint8), np.zeros(n, np.uint8))


def canonical_mask(arch: Architecture, va: U64Array) -> BoolArray:
    if arch.canonical == "zero":
        return (va >> _U64(arch.va_bits)) == 0  # type: ignore[no-any-return]
    if arch.canonical == "sign":
        top = va >> _U64(arch.va_bits - 1)
        return (top == 0) | (top == _U64((1 << (65 - arch.va_bits)) - 1))  # type: ignore[no-any-return]
    top = va >> _U64(arch.va_bits)
    return (top == 0) | (top == _U64((1 << (64 - arch.va_bits)) - 1))  # type: ignore[no-any-return]


def _bit(pte: U64Array, bit: int) -> BoolArray:
    return ((pte >> _U64(bit)) & _U64(1)).astype(bool)


def _rules_grant(rules: tuple[Rule, ...], pte: U64Array, leaf: BoolArray) -> BoolArray:
    ok = np.ones(pte.shape[0], dtype=bool)
    for r in rules:
        applies = leaf if r.on_leaf and not r.on_table else ~leaf if r.on_table and not r.on_leaf else None
        grant = _bit(pte, r.bit) == r.grants
        ok &= grant if applies is None else (grant | ~applies)
    return ok


def _group_forbids(group: tuple[Rule, ...], pte: U64Array, leaf: BoolArray) -> BoolArray:
    return ~_rules_grant(group, pte, leaf)


def read_entries(phys: MemoryView, addrs: U64Array, size: int) -> tuple[U64Array, BoolArray]:
    """Read one page-table entry at each address: values and an ok mask. Marked as page-table reads
    so a stacked page cache keeps them."""
    with page_type_hint(PageType.PAGE_TABLE):
        if size == 8:
            return phys.read_u64_many(addrs)
        raw, failures = phys.read_gather(addrs, size)
    ok = np.ones(addrs.shape[0], dtype=bool)
    for f in failures:
        ok[f.index] = False
    dt = np.dtype(f"<u{size}" if phys.little_endian else f">u{size}")
    return raw.reshape(-1).view(dt).astype(_U64), ok


def walk_many(
    phys: MemoryView,
    arch: Architecture,
    dtb: int,
    vas: U64Array,
    ttbr1: int | None = None,
    hook: PteHook | None = None,
) -> TranslationResult:
    """Translate every address of ``vas``. Bounded work (one entry read per level per distinct entry);
    bad tables give per-address failure reasons, never exceptions."""
    vas = np.ascontiguousarray(vas, dtype=_U64).reshape(-1)
    n = vas.shape[0]
    res = TranslationResult.empty(n)
    if n == 0:
        return res
    presorted = n < 2 or bool(np.all(vas[1:] >= vas[:-1]))
    order = None if presorted else np.argsort(vas, kind="stable")
    sva = vas if order is None else vas[order]
    pa = res.pa
    size_out = res.page_size
    flags = res.flags
    reason = res.reason

    canon = canonical_mask(arch, sva)
    reason[~canon] = R_NON_CANONICAL
    table = np.full(n, dtb & arch.dtb_mask, dtype=_U64)
    if arch.canonical == "split":
        hi = (sva >> _U64(63)).astype(bool)
        if ttbr1 is None:
            reason[hi & canon] = R_NON_CANONICAL
            canon &= ~hi
        else:
            table[hi] = ttbr1 & arch.dtb_mask
    act = np.flatnonzero(canon)
    writable = np.ones(n, dtype=bool)
    user = np.ones(n, dtype=bool)
    forbid = np.zeros((len(arch.nx_groups), n), dtype=bool)
    last = len(arch.levels) - 1
    psz = _U64(arch.pte_size)
    for li, lv in enumerate(arch.levels):
        if act.size == 0:
            break
        v = sva[act]
        ea = table[act] + ((v >> _U64(lv.shift)) & _U64(lv.entries - 1)) * psz
        # run-length dedupe: equal entries are adjacent because addresses are sorted
        if ea.shape[0] > 1:
            change = ea[1:] != ea[:-1]
            starts = np.concatenate(([0], np.flatnonzero(change) + 1))
            inv = np.zeros(ea.shape[0], dtype=np.intp)
            inv[1:] = np.cumsum(change)
            uvals, uok = read_entries(phys, ea[starts], arch.pte_size)
            pte = uvals[inv]
            ok = uok[inv]
        else:
            pte, ok = read_entries(phys, ea, arch.pte_size)
        reason[act[~ok]] = R_READ_FAILED
        present = ok & _bit(pte, arch.present_bit)
        notp = ok & ~present
        if notp.any():
            nidx = act[notp]
            reason[nidx] = R_NOT_PRESENT
            if hook is not None:
                _run_hook(hook, li, pte[notp], nidx, sva, res, writable, user, forbid, arch.min_page_size)
        lbit = _bit(pte, arch.leaf_bit)
        if li == last:
            leaf = present.copy()
            if arch.last_level_leaf_value is not None:
                bad = present & (lbit != arch.last_level_leaf_value)
                leaf &= ~bad
                reason[act[bad]] = R_BAD_ENTRY
        else:
            leaf = present & (lbit == arch.leaf_when)
            if not lv.leaf_allowed:
                reason[act[leaf]] = R_BAD_ENTRY
                leaf[:] = False
        if li == last:
            table_e = np.zeros(present.shape[0], dtype=bool)
        else:
            table_e = present & (lbit != arch.leaf_when)
        good = leaf | table_e
        if lv.rights and good.any():
            g_idx = act[good]
            g_pte = pte[good]
            g_leaf = leaf[good]
            writable[g_idx] &= _rules_grant(arch.writable, g_pte, g_leaf)
            user[g_idx] &= _rules_grant(arch.user, g_pte, g_leaf)
            for gi, group in enumerate(arch.nx_groups):
                forbid[gi, g_idx] |= _group_forbids(group, g_pte, g_leaf)
        if leaf.any():
            l_idx = act[leaf]
            l_pte = pte[leaf]
            s = lv.page_size
            base = l_pte & _U64(arch.addr_mask & ~(s - 1) & 0xFFFF_FFFF_FFFF_FFFF)
            if arch.pse36_bits and li != last:
                base |= ((l_pte >> _U64(13)) & _U64((1 << arch.pse36_bits) - 1)) << _U64(32)
            pa[l_idx] = base | (sva[l_idx] & _U64(s - 1))
            size_out[l_idx] = s
            fl = (writable[l_idx]).astype(np.int64) * F_WRITABLE | (user[l_idx]).astype(np.int64) * F_USER
            if arch.nx_groups:
                fl |= (forbid[:, l_idx].all(axis=0)).astype(np.int64) * F_NX
            if li != last:
                fl = fl | F_LARGE
            if arch.global_bit is not None:
                fl |= (_bit(l_pte, arch.global_bit)).astype(np.int64) * F_GLOBAL
            flags[l_idx] = fl
            reason[l_idx] = R_OK
        if li == last:
            break
        table[act[table_e]] = pte[table_e] & _U64(arch.addr_mask)
        act = act[table_e]
    if order is not None:
        out = TranslationResult.empty(n)
        out.pa[order] = pa
        out.page_size[order] = size_out
        out.flags[order] = flags
        out.reason[order] = reason
        return out
    return res


def _run_hook(
    hook: PteHook,
    level: int,
    ptes: U64Array,
    idx: npt.NDArray[np.intp],
    sva: U64Array,
    res: TranslationResult,
    writable: BoolArray,
    user: BoolArray,
    forbid: BoolArray,
    page_size: int,
) -> None:
    """Give the OS layer a chance to resolve non-present entries (one Python call each: only
    non-present entries reach it, and only when a hook is installed)."""
    for pte, i in zip(ptes.tolist(), idx.tolist(), strict=True):
        r = hook(int(pte), level, int(sva[i]))
        if r is None:
            continue
        fl = F_HOOK | (F_WRITABLE if writable[i] else 0) | (F_USER if user[i] else 0)
        if forbid.shape[0] and bool(forbid[:, i].all()):
            fl |= F_NX
        res.pa[i] = r
        res.page_size[i] = page_size
        res.flags[i] = fl
        res.reason[i] = R_OK
