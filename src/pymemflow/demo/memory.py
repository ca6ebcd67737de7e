"""Sparse physical memory, a scattering frame allocator and x64 / PAE / x86 page tables that we write.

Only pages that hold something are stored (a dict of 4 KiB bytearrays), so a 1 GiB machine costs
what it contains. Frames come from a seeded permutation, so pages are scattered like on a real box.
"""

from __future__ import annotations

import struct

import numpy as np

PAGE = 0x1000
LARGE = 0x200000

# PTE bits (Intel SDM)
P, RW, US, PWT, PCD, A, D, PS, G = 1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80, 0x100
NX = 1 << 63


class SparsePhys:
    def __init__(self, size: int) -> None:
        self.size = size
        self.pages: dict[int, bytearray] = {}

    def page(self, pa: int) -> bytearray:
        base = pa & ~(PAGE - 1)
        pg = self.pages.get(base)
        if pg is None:
            if base >= self.size:
                raise ValueError(f"physical page {base:#x} beyond memory size {self.size:#x}")
            pg = self.pages[base] = bytearray(PAGE)
        return pg

    def write(self, pa: int, data: bytes) -> None:
        off = 0
        while off < len(data):
            a = pa + off
            o = a & (PAGE - 1)
            n = min(PAGE - o, len(data) - off)
            self.page(a)[o : o + n] = data[off : off + n]
            off += n

    def read(self, pa: int, n: int) -> bytes:
        out = bytearray()
        while n > 0:
            o = pa & (PAGE - 1)
            k = min(PAGE - o, n)
            pg = self.pages.get(pa & ~(PAGE - 1))
            out += pg[o : o + k] if pg is not None else bytes(k)
            pa += k
            n -= k
        return bytes(out)

    def u64(self, pa: int) -> int:
        return int(struct.unpack("<Q", self.read(pa, 8))[0])

    def put_u64(self, pa: int, v: int) -> None:
        self.write(pa, struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF))

    def entry(self, pa: int, size: int) -> int:
        """A page-table entry of ``size`` bytes (8: x64 / PAE, 4: x86 without PAE)."""
        return int.from_bytes(self.read(pa, size), "little")

    def put_entry(self, pa: int, v: int, size: int) -> None:
        self.write(pa, (v & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))


class FrameAllocator:
    """Hands out scattered 4 KiB frames and 2 MiB-aligned large frames from usable physical runs."""

    def __init__(self, size: int, seed: int, reserved: list[tuple[int, int]],
                 runs: list[tuple[int, int]]) -> None:
        rng = np.random.default_rng(seed)
        nlarge = size // LARGE
        large = [i * LARGE for i in rng.permutation(nlarge).tolist()]
        self._reserved = reserved
        self._large = [b for b in large if self._usable(b, LARGE, runs)]
        self._large_taken: list[int] = []
        frames = rng.permutation(size // PAGE).astype(np.int64) * PAGE
        self._frames = frames
        self._pos = 0
        self._runs = runs
        self._taken_ranges: list[tuple[int, int]] = []

    def _usable(self, base: int, n: int, runs: list[tuple[int, int]]) -> bool:
        if not any(s <= base and base + n <= e for s, e in runs):
            return False
        return not any(base < e and s < base + n for s, e in self._reserved)

    def reserve(self, start: int, end: int) -> None:
        """Keep [start, end) out of later allocations (fixed-address regions)."""
        self._reserved.append((start, end))

    def large(self) -> int:
        while True:
            if not self._large:
                raise MemoryError("synthetic machine: no free 2 MiB frame left (raise size=)")
            b = self._large.pop()
            if self._usable(b, LARGE, self._runs):
                self._reserved.append((b, b + LARGE))
                return b

    def frame(self) -> int:
        while True:
            if self._pos >= len(self._frames):
                raise MemoryError("synthetic machine out of physical frames (raise size=)")
            f = int(self._frames[self._pos])
            self._pos += 1
            if self._usable(f, PAGE, self._runs):
                return f


class AddressSpace:
    """One page-table tree (x64 4-level, PAE 3-level or x86 2-level with 4-byte entries and no NX bit)
    plus a Python-side map for our own writes."""

    def __init__(self, phys: SparsePhys, alloc: FrameAllocator, arch: str, root: int | None = None) -> None:
        self.phys, self.alloc, self.arch = phys, alloc, arch
        self.levels = {"x64": 4, "x86": 2}.get(arch, 3)
        self.entry = 4 if arch == "x86" else 8
        if arch == "x64":
            self.root = root if root is not None else alloc.frame()
            phys.page(self.root)
        else:
            # PAE: a 32-byte PDPT; we give it its own page (real Windows packs several per page)
            self.root = root if root is not None else alloc.frame()
            phys.page(self.root)
        self.vmap: dict[int, int] = {}  # virtual page -> physical page (4 KiB granularity)

    # ---- building ------------------------------------------------------------------------------
    def _indices(self, va: int) -> list[int]:
        if self.arch == "x64":
            return [(va >> 39) & 511, (va >> 30) & 511, (va >> 21) & 511, (va >> 12) & 511]
        if self.arch == "x86":
            return [(va >> 22) & 1023, (va >> 12) & 1023]
        return [(va >> 30) & 3, (va >> 21) & 511, (va >> 12) & 511]

    def _table_for(self, va: int, depth: int, user: bool) -> int:
        """Physical address of the table at ``depth`` (0 = root) covering ``va``, creating tables."""
        table = self.root
        for lvl, idx in enumerate(self._indices(va)[:depth]):
            ea = table + idx * self.entry
            e = self.phys.entry(ea, self.entry)
            if not e & P:
                t = self.alloc.frame()
                self.phys.page(t)
                flags = P if (self.arch == "x86pae" and lvl == 0) else (P | RW | A | (US if user else 0))
                self.phys.put_entry(ea, t | flags, self.entry)
                table = t
            else:
                if user and self.arch in ("x64", "x86") and not e & US:
                    self.phys.put_entry(ea, e | US, self.entry)
                table = e & 0x000FFFFFFFFFF000
        return table

    def map_page(self, va: int, pa: int, *, user: bool = False, write: bool = True, nx: bool = True,
                 pte_value: int | None = None) -> int:
        """Map one 4 KiB page; ``pte_value`` overrides the PTE (software / transition PTEs).
        Returns the physical address of the PTE."""
        pt = self._table_for(va, self.levels - 1, user)
        ea = pt + self._indices(va)[-1] * self.entry
        if pte_value is None:
            pte_value = pa | P | A | D | (RW if write else 0) | (US if user else 0) | (NX if nx and self.entry == 8 else 0)
            if not user and self.arch == "x64":
                pte_value |= G
            self.vmap[va >> 12] = pa
        self.phys.put_entry(ea, pte_value, self.entry)
        return ea

    def map_large(self, va: int, pa: int, *, user: bool = False, nx: bool = True) -> None:
        if self.arch == "x86":  # its large pages are 4 MiB: map the 2 MiB block with 4 KiB pages instead
            for i in range(LARGE // PAGE):
                self.map_page(va + i * PAGE, pa + i * PAGE, user=user, nx=nx)
            return
        pd = self._table_for(va, self.levels - 2, user)
        ea = pd + self._indices(va)[-2] * 8
        self.phys.put_u64(ea, pa | P | RW | A | D | PS | (US if user else 0) | (NX if nx else 0))
        for i in range(LARGE // PAGE):
            self.vmap[(va >> 12) + i] = pa + i * PAGE

    def alloc_map(self, va: int, npages: int = 1, **kw: bool) -> list[int]:
        out = []
        for i in range(npages):
            f = self.alloc.frame()
            self.phys.page(f)
            self.map_page(va + i * PAGE, f, **kw)
            out.append(f)
        return out

    def share(self, other: AddressSpace, va: int, npages: int = 1, **kw: bool) -> None:
        """Map ``other``'s pages at ``va`` into this space too (shared DLL images, KUSER_SHARED_DATA)."""
        for i in range(npages):
            pa = other.vmap[(va >> 12) + i]
            self.map_page(va + i * PAGE, pa, **kw)

    def copy_top_entries(self, src: AddressSpace, first: int, last: int) -> None:
        """Copy root entries [first, last) (the shared kernel half on x64)."""
        raw = self.phys.read(src.root + first * self.entry, (last - first) * self.entry)
        self.phys.write(self.root + first * self.entry, raw)

    # ---- writing through our own map ------------------------------------------------------------
    def pa(self, va: int) -> int:
        p = self.vmap.get(va >> 12)
        if p is None:
            raise KeyError(f"synthetic builder: {va:#x} not mapped")
        return p + (va & (PAGE - 1))

    def write(self, va: int, data: bytes) -> None:
        off = 0
        while off < len(data):
            a = va + off
            n = min(PAGE - (a & (PAGE - 1)), len(data) - off)
            self.phys.write(self.pa(a), data[off : off + n])
            off += n

    def read(self, va: int, n: int) -> bytes:
        out = b""
        while n > 0:
            k = min(PAGE - (va & (PAGE - 1)), n)
            out += self.phys.read(self.pa(va), k)
            va += k
            n -= k
        return out


class Bump:
    """A bump allocator over a virtual range of an address space, mapping pages on demand."""

    def __init__(self, aspace: AddressSpace, base: int, limit: int, *, user: bool, premapped: bool = False) -> None:
        self.a, self.base, self.cur, self.limit, self.user = aspace, base, base, limit, user
        self.premapped = premapped
        self.mapped_to = base

    def alloc(self, n: int, align: int = 16) -> int:
        self.cur = (self.cur + align - 1) & ~(align - 1)
        va = self.cur
        self.cur += max(n, 1)
        if self.cur > self.limit:
            raise MemoryError("synthetic pool exhausted")
        if not self.premapped:
            while self.mapped_to < self.cur:
                self.a.alloc_map(self.mapped_to, 1, user=self.user, nx=True)
                self.mapped_to += PAGE
        return va

    def put(self, data: bytes, align: int = 16) -> int:
        va = self.alloc(len(data), align)
        self.a.write(va, data)
        return va
