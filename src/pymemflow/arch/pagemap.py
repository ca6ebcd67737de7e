"""Enumerate every mapping of an address space: a breadth-first walk reading whole tables, one
batched read per level, so a full 64-bit kernel address space takes a few batched reads instead of
millions of single ones. Also the raw material for physical -> virtual reverse lookups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import FormatError
from ..mem.pagetype import PageType, page_type_hint
from ..mem.view import MemoryView, U64Array
from .spec import F_GLOBAL, F_HOOK, F_LARGE, F_NX, F_USER, F_WRITABLE, Architecture
from .walk_batch import _bit, _group_forbids, _rules_grant
from .walk_scalar import PteHook

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
else:
    from ..mem.lazynp import np

MAX_ENTRIES = 1 << 23
"""Present entries a page map may visit before it gives up: hostile tables (every entry pointing
back at one table) describe astronomically many pages; real kernels need well under a million."""
_CHUNK = 2048


@dataclass
class Leaves:
    """All leaf mappings of an address space, sorted by virtual address."""

    va: U64Array
    pa: U64Array
    size: U64Array
    flags: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.va.shape[0])


def _sext(arch: Architecture, va: U64Array) -> U64Array:
    if arch.canonical != "sign":
        return va
    hi = ((va >> np.uint64(arch.va_bits - 1)) & np.uint64(1)).astype(bool)
    ext = np.uint64((1 << 64) - (1 << arch.va_bits))
    return np.where(hi, va | ext, va)  # type: ignore[no-any-return]


def _read_tables(phys: MemoryView, tables: U64Array, entries: int, pte_size: int) -> U64Array:
    """(m, entries) entry values; unreadable bytes read as 0 (= not present)."""
    with page_type_hint(PageType.PAGE_TABLE):
        res = phys.read_batch(tables, entries * pte_size)
    dt = np.dtype(f"<u{pte_size}" if phys.little_endian else f">u{pte_size}")
    return res.data.view(dt).reshape(tables.shape[0], entries).astype(np.uint64, copy=False)


def walk_leaves(
    phys: MemoryView,
    arch: Architecture,
    dtb: int,
    ttbr1: int | None = None,
    start: int = 0,
    end: int | None = None,
    hook: PteHook | None = None,
    max_entries: int = MAX_ENTRIES,
) -> Leaves:
    """Every leaf whose virtual range intersects ``[start, end)``. Raises :class:`FormatError` when
    the tables describe more than ``max_entries`` present entries (self-referencing or hostile)."""
    end = (1 << 64) if end is None else end
    roots = [(dtb & arch.dtb_mask, 0)]
    if arch.canonical == "split" and ttbr1 is not None:
        roots.append((ttbr1 & arch.dtb_mask, (1 << 64) - (1 << arch.va_bits)))
    tbl = np.array([r[0] for r in roots], dtype=np.uint64)
    base = np.array([r[1] for r in roots], dtype=np.uint64)
    ng = len(arch.nx_groups)
    wr = np.ones(tbl.shape[0], dtype=bool)
    us = np.ones(tbl.shape[0], dtype=bool)
    forbid = np.zeros((ng, tbl.shape[0]), dtype=bool)
    out_va: list[U64Array] = []
    out_pa: list[U64Array] = []
    out_size: list[U64Array] = []
    out_fl: list[npt.NDArray[np.uint8]] = []
    last = len(arch.levels) - 1
    seen = 0
    for li, lv in enumerate(arch.levels):
        if tbl.shape[0] == 0:
            break
        rows, cols, ptes = [], [], []
        for c0 in range(0, tbl.shape[0], _CHUNK):  # bounded memory however wide the level is
            ents = _read_tables(phys, tbl[c0:c0 + _CHUNK], lv.entries, arch.pte_size)
            sel = _bit(ents, arch.present_bit)
            if hook is not None and li == last:
                sel |= ents != 0
            r, c = np.nonzero(sel)
            seen += r.shape[0]
            if seen > max_entries:
                raise FormatError("page tables", dtb, "page_map",
                                  f"more than {max_entries} present entries (self-referencing or hostile tables?)")
            rows.append(r + c0)
            cols.append(c)
            ptes.append(ents[r, c])
        row, col, pte = np.concatenate(rows), np.concatenate(cols), np.concatenate(ptes)
        va = base[row] + (col.astype(np.uint64) << np.uint64(lv.shift))
        if li == 0:
            va = _sext(arch, va)
        span = lv.page_size
        # keep only entries whose range meets [start, end)
        keep = (va <= np.uint64(min(end - 1, (1 << 64) - 1))) & ((va + np.uint64(span - 1)) >= np.uint64(start))
        row, pte, va = row[keep], pte[keep], va[keep]
        p = _bit(pte, arch.present_bit)
        lbit = _bit(pte, arch.leaf_bit)
        if li == last:
            leaf = p.copy()
            if arch.last_level_leaf_value is not None:
                leaf &= lbit == arch.last_level_leaf_value
            table_e = np.zeros(leaf.shape[0], dtype=bool)
        else:
            leaf = p & (lbit == arch.leaf_when) & lv.leaf_allowed
            table_e = p & (lbit != arch.leaf_when)
        good = leaf | table_e
        e_wr = wr[row].copy()
        e_us = us[row].copy()
        e_fb = forbid[:, row].copy()
        if lv.rights and good.any():
            e_wr[good] &= _rules_grant(arch.writable, pte[good], leaf[good])
            e_us[good] &= _rules_grant(arch.user, pte[good], leaf[good])
            for gi, group in enumerate(arch.nx_groups):
                e_fb[gi, good] |= _group_forbids(group, pte[good], leaf[good])
        if leaf.any():
            lp = pte[leaf]
            pbase = lp & np.uint64(arch.addr_mask & ~(span - 1))
            if arch.pse36_bits and li != last:
                pbase |= ((lp >> np.uint64(13)) & np.uint64((1 << arch.pse36_bits) - 1)) << np.uint64(32)
            fl = (e_wr[leaf]).astype(np.int64) * F_WRITABLE | (e_us[leaf]).astype(np.int64) * F_USER
            if ng:
                fl |= (e_fb[:, leaf].all(axis=0)).astype(np.int64) * F_NX
            if li != last:
                fl = fl | F_LARGE
            if arch.global_bit is not None:
                fl |= (_bit(lp, arch.global_bit)).astype(np.int64) * F_GLOBAL
            out_va.append(va[leaf])
            out_pa.append(pbase)
            out_size.append(np.full(lp.shape[0], span, dtype=np.uint64))
            out_fl.append(fl.astype(np.uint8))
        if hook is not None and li == last:
            np_idx = np.flatnonzero(~p)
            hv, hp = [], []
            for i in np_idx.tolist():
                hr = hook(int(pte[i]), li, int(va[i]))
                if hr is not None:
                    hv.append(int(va[i]))
                    hp.append(int(hr) & ~(span - 1))
            if hv:
                out_va.append(np.array(hv, dtype=np.uint64))
                out_pa.append(np.array(hp, dtype=np.uint64))
                out_size.append(np.full(len(hv), span, dtype=np.uint64))
                out_fl.append(np.full(len(hv), F_HOOK, dtype=np.uint8))
        tbl = pte[table_e] & np.uint64(arch.addr_mask)
        base = va[table_e]
        wr, us, forbid = e_wr[table_e], e_us[table_e], e_fb[:, table_e]
    if not out_va:
        z = np.zeros(0, dtype=np.uint64)
        return Leaves(z, z.copy(), z.copy(), np.zeros(0, dtype=np.uint8))
    va_all = np.concatenate(out_va)
    order = np.argsort(va_all, kind="stable")
    return Leaves(va_all[order], np.concatenate(out_pa)[order], np.concatenate(out_size)[order],
                  np.concatenate(out_fl)[order])


def size_str(n: int) -> str:
    for unit, s in ((1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")):
        if n >= unit and n % unit == 0:
            return f"{n // unit}{s}"
    return str(n)


def protection(flags: int) -> str:
    return "r" + ("w" if flags & F_WRITABLE else "-") + ("-" if flags & F_NX else "x")


def merge_ranges(leaves: Leaves, gap: int = 0) -> list[tuple[int, int, int, int]]:
    """Merge leaves into ``(start, end, flags, page_size)`` ranges: neighbours (at most ``gap`` bytes
    apart) with equal flags and page size become one range."""
    n = len(leaves)
    if n == 0:
        return []
    va, size, fl = leaves.va, leaves.size, leaves.flags
    endv = va + size  # wraps to 0 for the very last page of a 64-bit space
    brk = np.ones(n, dtype=bool)
    if n > 1:
        nxt = va[1:]
        e = endv[:-1]
        contiguous = (e != 0) & (nxt >= e) & ((nxt - e) <= np.uint64(gap))
        brk[1:] = ~(contiguous & (fl[1:] == fl[:-1]) & (size[1:] == size[:-1]))
    starts = np.flatnonzero(brk)
    ends = np.concatenate((starts[1:], [n])) - 1
    return list(zip(va[starts].tolist(), (va[ends] + size[ends]).tolist(), fl[starts].tolist(),
                    size[starts].tolist(), strict=True))
