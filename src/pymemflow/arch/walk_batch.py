"""The batched page walker: N virtual addresses, one gathered page-table read per level.

Addresses are sorted once; at each level the entry an address needs depends only on its bits above
that level's shift (and the table reached so far), so equal entries sit next to each other and are
read once (run-length dedupe, O(N) per level instead of a hash or a sort). Results are in the
caller's order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..mem.pagetype import PageType, page_type_hint
from ..mem.view import MemoryView, U8Array, U64Array
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

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    BoolArray = npt.NDArray[np.bool_]
else:
    from ..mem.lazynp import np


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
        return cls(np.zeros(n, np.uint64), np.zeros(n, np.uint64), np.zeros(n, np.uint8), np.zeros(n, np.uint8))


def canonical_mask(arch: Architecture, va: U64Array) -> BoolArray:
    if arch.canonical == "zero":
        return (va >> np.uint64(arch.va_bits)) == 0  # type: ignore[no-any-return]
    if arch.canonical == "sign":
        top = va >> np.uint64(arch.va_bits - 1)
        return (top == 0) | (top == np.uint64((1 << (65 - arch.va_bits)) - 1))  # type: ignore[no-any-return]
    top = va >> np.uint64(arch.va_bits)
    return (top == 0) | (top == np.uint64((1 << (64 - arch.va_bits)) - 1))  # type: ignore[no-any-return]


def _bit(pte: U64Array, bit: int) -> BoolArray:
    return ((pte >> np.uint64(bit)) & np.uint64(1)).astype(bool)


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
    return raw.reshape(-1).view(dt).astype(np.uint64), ok


# per-entry classification codes (computed once per distinct entry, then gathered per address)
_C_READ_FAILED, _C_NOT_PRESENT, _C_BAD, _C_LEAF, _C_TABLE = range(5)
_CODE_REASON = (R_READ_FAILED, R_NOT_PRESENT, R_BAD_ENTRY, R_OK, R_OK)
# per-entry rights byte: bit 0 grants write, bit 1 grants user, bits 2.. forbid execution (one per
# nx group), bit 7 global. Accumulated per address: bits 0-1 AND-ed, bits 2-6 OR-ed.
_R_AND = 0x03
_R_OR = 0x7C
_R_GLOBAL = 0x80


def _classify(arch: Architecture, li: int, vals: U64Array, ok: BoolArray) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], U64Array]:
    """Code, rights byte and address (next table, or page frame for a leaf) of distinct entries."""
    lv = arch.levels[li]
    last = li == len(arch.levels) - 1
    present = ok & _bit(vals, arch.present_bit)
    lbit = _bit(vals, arch.leaf_bit)
    code = np.where(ok, _C_NOT_PRESENT, _C_READ_FAILED).astype(np.uint8)
    if last:
        leaf = present
        if arch.last_level_leaf_value is not None:
            code[present & (lbit != arch.last_level_leaf_value)] = _C_BAD
            leaf = present & (lbit == arch.last_level_leaf_value)
        table = np.zeros(vals.shape[0], dtype=bool)
    else:
        leaf = present & (lbit == arch.leaf_when)
        table = present & ~leaf
        if not lv.leaf_allowed:
            code[leaf] = _C_BAD
            leaf = np.zeros(vals.shape[0], dtype=bool)
    code[leaf] = _C_LEAF
    code[table] = _C_TABLE
    rights = np.full(vals.shape[0], _R_AND, dtype=np.uint8)
    if lv.rights:
        rights = (_rules_grant(arch.writable, vals, leaf).astype(np.uint8)
                  | (_rules_grant(arch.user, vals, leaf).astype(np.uint8) << np.uint8(1))).astype(np.uint8)
        for gi, group in enumerate(arch.nx_groups):
            rights |= _group_forbids(group, vals, leaf).astype(np.uint8) << (2 + gi)
    if arch.global_bit is not None:
        rights |= (leaf & _bit(vals, arch.global_bit)).astype(np.uint8) << 7
    addr = vals & np.uint64(arch.addr_mask)
    if leaf.any():
        s = lv.page_size
        base = vals[leaf] & np.uint64(arch.addr_mask & ~(s - 1))
        if arch.pse36_bits and not last:
            base |= ((vals[leaf] >> np.uint64(13)) & np.uint64((1 << arch.pse36_bits) - 1)) << np.uint64(32)
        addr[leaf] = base
    return code, rights, addr


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
    vas = np.ascontiguousarray(vas, dtype=np.uint64).reshape(-1)
    n = vas.shape[0]
    res = TranslationResult.empty(n)
    if n == 0:
        return res
    presorted = n < 2 or bool(np.all(vas[1:] >= vas[:-1]))
    order = None if presorted else np.argsort(vas)
    sva = vas if order is None else vas[order]
    pa = res.pa
    size_out = res.page_size
    flags = res.flags
    reason = res.reason

    canon = canonical_mask(arch, sva)
    reason[~canon] = R_NON_CANONICAL
    table = np.full(n, dtb & arch.dtb_mask, dtype=np.uint64)
    if arch.canonical == "split":
        hi = (sva >> np.uint64(63)).astype(bool)
        if ttbr1 is None:
            reason[hi & canon] = R_NON_CANONICAL
            canon &= ~hi
        else:
            table[hi] = ttbr1 & arch.dtb_mask
    act = np.flatnonzero(canon)
    acc = np.full(n, _R_AND, dtype=np.uint8)
    ng = len(arch.nx_groups)
    nx_all = np.uint8(((1 << ng) - 1) << 2)
    last = len(arch.levels) - 1
    psz = np.uint64(arch.pte_size)
    for li, lv in enumerate(arch.levels):
        if act.size == 0:
            break
        v = sva[act]
        ea = table[act] + ((v >> np.uint64(lv.shift)) & np.uint64(lv.entries - 1)) * psz
        # run-length dedupe: equal entries are adjacent because addresses are sorted
        if ea.shape[0] > 1:
            change = ea[1:] != ea[:-1]
            inv = np.empty(ea.shape[0], dtype=np.intp)
            inv[0] = 0
            np.cumsum(change, out=inv[1:])
            starts = np.flatnonzero(np.concatenate(([True], change)))
            uvals, uok = read_entries(phys, ea[starts], arch.pte_size)
        else:
            inv = np.zeros(ea.shape[0], dtype=np.intp)
            uvals, uok = read_entries(phys, ea, arch.pte_size)
        ucode, urights, uaddr = _classify(arch, li, uvals, uok)
        code = ucode[inv]
        r = urights[inv]
        a = acc[act]
        a = (a & (r | np.uint8(~_R_AND & 0xFF))) | (r & np.uint8(_R_OR))
        acc[act] = a
        fail = code < _C_LEAF
        if fail.any():
            fidx = act[fail]
            reason[fidx] = np.array(_CODE_REASON, dtype=np.uint8)[code[fail]]
            if hook is not None:
                notp = code == _C_NOT_PRESENT
                if notp.any():
                    _run_hook(hook, li, uvals[inv[notp]], act[notp], sva, res, acc, nx_all,
                              arch.min_page_size)
        leaf = code == _C_LEAF
        if leaf.any():
            l_idx = act[leaf]
            s = lv.page_size
            pa[l_idx] = uaddr[inv[leaf]] | (sva[l_idx] & np.uint64(s - 1))
            size_out[l_idx] = s
            la = a[leaf]
            fl = (la & np.uint8(F_WRITABLE | F_USER)) | ((r[leaf] >> np.uint8(7)) * np.uint8(F_GLOBAL))
            if ng:
                fl |= ((la & nx_all) == nx_all).astype(np.uint8) * np.uint8(F_NX)
            if li != last:
                fl |= np.uint8(F_LARGE)
            flags[l_idx] = fl
            reason[l_idx] = R_OK
        if li == last:
            break
        tab = code == _C_TABLE
        nxt = act[tab]
        table[nxt] = uaddr[inv[tab]]
        act = nxt
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
    acc: npt.NDArray[np.uint8],
    nx_all: np.uint8,
    page_size: int,
) -> None:
    """Give the OS layer a chance to resolve non-present entries (one Python call each: only
    non-present entries reach it, and only when a hook is installed). Rights are those of the
    levels above the entry."""
    for pte, i in zip(ptes.tolist(), idx.tolist(), strict=True):
        r = hook(int(pte), level, int(sva[i]))
        if r is None:
            continue
        a = int(acc[i])
        fl = F_HOOK | (a & (F_WRITABLE | F_USER))
        if nx_all and (a & int(nx_all)) == int(nx_all):
            fl |= F_NX
        res.pa[i] = r
        res.page_size[i] = page_size
        res.flags[i] = fl
        res.reason[i] = R_OK
