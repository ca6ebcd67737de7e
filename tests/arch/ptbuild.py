"""Build page tables of every supported MMU in a dummy physical memory, with an independent model.

The entry encodings here are written from the Intel SDM / ARM ARM, not from ``pymemflow.arch.spec``,
and the expected translation of an address is a lookup in the list of mappings (no page walk), so
the tests compare the engine against a second, walk-free description of the same tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pymemflow.connectors.dummy import DummyMemory

# (name, bits per level top first, page shift, entry size, levels where a leaf may sit)
LAYOUTS = {
    "x64": ([9, 9, 9, 9], 8, {1, 2, 3}),
    "x64la57": ([9, 9, 9, 9, 9], 8, {2, 3, 4}),
    "x86pae": ([2, 9, 9], 8, {1, 2}),
    "x86": ([10, 10], 4, {0, 1}),
    "aarch64": ([9, 9, 9, 9], 8, {1, 2, 3}),
}
VA_BITS = {"x64": 48, "x64la57": 57, "x86pae": 32, "x86": 32, "aarch64": 48}


@dataclass
class Perm:
    writable: bool
    user: bool
    nx: bool  # x86: XD; aarch64: this entry forbids EL1 and EL0 execution
    uxn_only: bool = False  # aarch64: forbid only EL0 execution (still executable by the kernel)


@dataclass
class Mapping:
    va: int
    size: int
    pa: int
    writable: bool
    user: bool
    nx: bool


@dataclass
class Tables:
    arch: str
    mem: DummyMemory
    root: int
    next_free: int
    root1: int | None = None
    mappings: list[Mapping] = field(default_factory=list)
    # (root, level, prefix) -> (table address, Perm of the entry pointing at it)
    nodes: dict[tuple[int, int, int], tuple[int, Perm]] = field(default_factory=dict)
    leaves: dict[tuple[int, int, int], int] = field(default_factory=dict)

    @property
    def shifts(self) -> list[int]:
        bits = LAYOUTS[self.arch][0]
        out, s = [], 12
        for b in reversed(bits):
            out.append(s)
            s += b
        return list(reversed(out))

    def alloc(self) -> int:
        a = self.next_free
        self.next_free += 4096
        if self.next_free > self.mem.metadata.max_address:
            raise MemoryError("out of table memory")
        return a

    def _write(self, addr: int, value: int) -> None:
        esz = LAYOUTS[self.arch][1]
        self.mem.write(addr, value.to_bytes(esz, "little"))

    # ---- entry encodings (SDM vol. 3A 4.3-4.5, ARM ARM D8.3) ----
    def _table_entry(self, level: int, frame: int, p: Perm) -> int:
        if self.arch == "aarch64":
            v = frame | 0b11
            v |= (1 << 62) if not p.writable else 0  # APTable[1]: no write below
            v |= (1 << 61) if not p.user else 0  # APTable[0]: no EL0 below
            if p.nx:
                v |= (1 << 60) | (1 << 59)
            elif p.uxn_only:
                v |= 1 << 60
            return v
        if self.arch == "x86pae" and level == 0:
            return frame | 1  # PDPTE: P only, R/W U/S XD reserved
        v = frame | 1 | (2 if p.writable else 0) | (4 if p.user else 0)
        if p.nx and self.arch != "x86":
            v |= 1 << 63
        return v

    def _leaf_entry(self, level: int, pa: int, p: Perm, last: bool) -> int:
        if self.arch == "aarch64":
            v = pa | (0b11 if last else 0b01) | (1 << 10)  # AF
            v |= (1 << 7) if not p.writable else 0  # AP[2] read-only
            v |= (1 << 6) if p.user else 0  # AP[1] EL0
            if p.nx:
                v |= (1 << 54) | (1 << 53)
            elif p.uxn_only:
                v |= 1 << 54
            return v
        v = 1 | (2 if p.writable else 0) | (4 if p.user else 0)
        if not last:
            v |= 0x80
        if self.arch == "x86" and not last:
            v |= (pa & 0xFFC0_0000) | (((pa >> 32) & 0xFF) << 13)  # PSE-36
        else:
            v |= pa
        if p.nx and self.arch != "x86":
            v |= 1 << 63
        return v

    def map(self, va: int, level: int, pa: int, path_perms: list[Perm]) -> bool:
        """Map the page of ``level`` containing ``va`` to ``pa``; False if it conflicts with what is
        there. ``path_perms[i]`` is used for the entry of level i (when the entry is created)."""
        shifts = self.shifts
        size = 1 << shifts[level]
        va &= ~(size - 1)
        pa &= ~(size - 1)
        root = self.root
        top = VA_BITS[self.arch]
        if self.arch == "aarch64" and va >> 63:
            assert self.root1 is not None
            root = self.root1
        idx_va = va & ((1 << top) - 1)
        # conflicts: a leaf above, or anything below where we want a leaf
        for lv in range(level + 1):
            if (root, lv, idx_va >> shifts[lv]) in self.leaves:
                return False
        if (root, level, idx_va >> shifts[level]) in self.nodes:
            return False
        table = root
        eff = []
        for lv in range(level):
            key = (root, lv, idx_va >> shifts[lv])
            ent_addr = table + ((idx_va >> shifts[lv]) & ((1 << LAYOUTS[self.arch][0][lv]) - 1)) * LAYOUTS[self.arch][1]
            if self.arch == "x86pae" and lv == 0:
                ent_addr = table + ((idx_va >> 30) & 3) * 8
            if key not in self.nodes:
                t = self.alloc()
                self.nodes[key] = (t, path_perms[lv])
                self._write(ent_addr, self._table_entry(lv, t, path_perms[lv]))
            t, perm = self.nodes[key]
            if not (self.arch == "x86pae" and lv == 0):
                eff.append(perm)
            table = t
        last = level == len(shifts) - 1
        ent_addr = table + ((idx_va >> shifts[level]) & ((1 << LAYOUTS[self.arch][0][level]) - 1)) * LAYOUTS[self.arch][1]
        p = path_perms[level]
        self._write(ent_addr, self._leaf_entry(level, pa, p, last))
        self.leaves[(root, level, idx_va >> shifts[level])] = pa
        eff.append(p)
        # the independent model of rights: AND of writable/user, execute-never if forbidden anywhere
        wr = all(x.writable for x in eff)
        us = all(x.user for x in eff)
        if self.arch == "x86":
            nx = False
        elif self.arch == "aarch64":
            # UXN anywhere + PXN anywhere = never executable; uxn_only never sets PXN
            pxn = any(x.nx for x in eff)
            uxn = any(x.nx or x.uxn_only for x in eff)
            nx = pxn and uxn
        else:
            nx = any(x.nx for x in eff)
        self.mappings.append(Mapping(va, size, pa, wr, us, nx))
        return True

    def expect(self, va: int) -> Mapping | None:
        for m in self.mappings:
            if m.va <= va < m.va + m.size:
                return m
        return None


def new_tables(arch: str, mem_size: int = 8 << 20, ttbr1: bool = True) -> Tables:
    mem = DummyMemory(mem_size)
    t = Tables(arch, mem, 0, 0x1000)
    t.root = t.alloc()
    if arch == "x86pae":
        t.root += 0x20  # a PDPT only needs 32-byte alignment: exercise that
    if arch == "aarch64" and ttbr1:
        t.root1 = t.alloc()
    return t
