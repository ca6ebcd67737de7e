"""Architectures as data: what one generic page-table walker needs to know about an MMU.

Every supported MMU (x86 2-level, PAE, x86-64 4- and 5-level, AArch64 4 KiB granule) is a value of
:class:`Architecture`; the walkers in :mod:`.walk_scalar` and :mod:`.walk_batch` never branch on the
architecture's name. Facts come from the Intel SDM vol. 3A ch. 4 (paging) and the ARM ARM (VMSAv8-64):

* x86: an access is writable only if R/W is set at *every* level, user-accessible only if U/S is set
  at every level, and execute-disabled if XD is set at *any* level (SDM 4.6). PDPTEs in PAE mode have no
  R/W, U/S or XD (those bits are reserved there), so that level carries no rights.
* AArch64: table descriptors carry APTable/UXNTable/PXNTable that restrict everything below them;
  block/page descriptors carry AP[2:1], UXN and PXN. AP[2]=1 means read-only, AP[1]=1 grants EL0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ArgumentError

# ---- flags of a translation (bit mask, uint8) ---------------------------------------------------
F_WRITABLE = 0x01
F_USER = 0x02
F_NX = 0x04
"""Not executable at any privilege level (x86: XD somewhere on the walk; AArch64: UXN and PXN)."""
F_LARGE = 0x08
"""The leaf is larger than the smallest page (2M/1G/4M pages, AArch64 blocks)."""
F_HOOK = 0x10
"""Resolved by the OS layer's ``pte_hook`` (e.g. a Windows transition PTE), not by the MMU rules."""
F_GLOBAL = 0x20

FLAG_NAMES = {F_WRITABLE: "writable", F_USER: "user", F_NX: "nx", F_LARGE: "large", F_HOOK: "hook",
              F_GLOBAL: "global"}

# ---- failure reasons (uint8) ----------------------------------------------------------------------
R_OK = 0
R_NOT_PRESENT = 1
R_NON_CANONICAL = 2
R_BAD_ENTRY = 3
"""A present entry the MMU would reject: a large-page bit where none is allowed, a reserved descriptor."""
R_READ_FAILED = 4
"""A page-table entry could not be read (outside physical memory, a hole, a dead target)."""

REASONS = {
    R_OK: "ok",
    R_NOT_PRESENT: "page not present",
    R_NON_CANONICAL: "address outside the translatable range (non-canonical)",
    R_BAD_ENTRY: "invalid page-table entry",
    R_READ_FAILED: "page-table entry unreadable",
}


def flags_str(flags: int) -> str:
    return ",".join(n for b, n in FLAG_NAMES.items() if flags & b) or "-"


@dataclass(frozen=True)
class Rule:
    """One permission bit of one kind of entry.

    ``grants``: True when a set bit grants the right (x86 R/W), False when a set bit takes it away
    (AArch64 AP[2], APTable)."""

    bit: int
    grants: bool
    on_table: bool = True
    on_leaf: bool = True


@dataclass(frozen=True)
class Level:
    """One level of the table walk, top first."""

    shift: int
    """Lowest virtual-address bit this level indexes."""
    bits: int
    """How many VA bits index this level's table (entries = 2**bits)."""
    leaf_allowed: bool
    """Whether an entry here may map a page (the last level always does; large pages above it)."""
    rights: bool = True
    """Whether this level's entries carry access rights (False for PAE PDPTEs)."""

    @property
    def entries(self) -> int:
        return 1 << self.bits

    @property
    def page_size(self) -> int:
        """Bytes mapped by one entry of this level."""
        return 1 << self.shift


@dataclass(frozen=True)
class Architecture:
    """Everything the generic walker needs about an MMU.

    Leaf detection: the last level's entries are always leaves (or invalid, see
    ``last_level_leaf_value``); above it an entry is a leaf when bit ``leaf_bit`` equals
    ``leaf_when``; at a level whose ``leaf_allowed`` is False such an entry is invalid.
    """

    name: str
    pointer_size: int
    pte_size: int
    levels: tuple[Level, ...]
    va_bits: int
    """Bits of a virtual address the tables translate (48, 57, 32)."""
    canonical: str
    """'sign' (x86-64: the top bits copy bit va_bits-1), 'zero' (x86: nothing above va_bits) or
    'split' (AArch64: top bits all 0 -> TTBR0, all 1 -> TTBR1)."""
    dtb_mask: int
    """Bits of CR3/TTBR that hold the root table's physical address."""
    addr_mask: int
    """Bits of an entry that hold a physical address (the frame of a table or a page)."""
    present_bit: int = 0
    leaf_bit: int = 7
    leaf_when: bool = True
    last_level_leaf_value: bool | None = None
    """If not None, bit ``leaf_bit`` of a last-level entry must equal this (AArch64: 1 = page), else
    the entry is invalid."""
    writable: tuple[Rule, ...] = ()
    user: tuple[Rule, ...] = ()
    nx_groups: tuple[tuple[Rule, ...], ...] = ()
    """Execute-never: each group is OR-ed over the walk (a bit set anywhere forbids); the result is
    NX only when every group forbids (AArch64: UXN and PXN; x86: one group, XD)."""
    global_bit: int | None = None
    pse36_bits: int = 0
    """x86 2-level: a 4 MiB PDE keeps physical-address bits 32.. in its bits 13.. (PSE-36)."""
    aliases: tuple[str, ...] = field(default=())

    @property
    def min_page_size(self) -> int:
        return self.levels[-1].page_size

    @property
    def page_sizes(self) -> tuple[int, ...]:
        return tuple(lv.page_size for lv in self.levels if lv.leaf_allowed)

    @property
    def top_shift(self) -> int:
        lv = self.levels[0]
        return lv.shift + lv.bits

    @property
    def max_va(self) -> int:
        """One past the highest virtual address (2**64 for 64-bit architectures)."""
        return 1 << (64 if self.pointer_size == 8 else 32)

    def canonical_ok(self, va: int) -> bool:
        if self.canonical == "zero":
            return va >> self.va_bits == 0
        top = va >> (self.va_bits - 1)
        if self.canonical == "sign":
            return top == 0 or top == (1 << (65 - self.va_bits)) - 1
        top = va >> self.va_bits  # split
        return top == 0 or top == (1 << (64 - self.va_bits)) - 1

    def uses_ttbr1(self, va: int) -> bool:
        return self.canonical == "split" and bool(va >> 63)

    def mapped_ranges(self) -> list[tuple[int, int]]:
        """The canonical virtual ranges ``[start, end)`` with their VA-index base (for page maps)."""
        span = 1 << self.va_bits
        if self.canonical == "zero":
            return [(0, span)]
        if self.canonical == "sign":
            half = span >> 1
            return [(0, half), ((1 << 64) - half, 1 << 64)]
        return [(0, span), ((1 << 64) - span, 1 << 64)]

    def __str__(self) -> str:
        return self.name


_X86_RW = (Rule(1, True),)
_X86_US = (Rule(2, True),)
_X86_XD = ((Rule(63, False),),)
_X64_ADDR = 0x000F_FFFF_FFFF_F000

X64 = Architecture(
    name="x64", pointer_size=8, pte_size=8, va_bits=48, canonical="sign",
    levels=(Level(39, 9, False), Level(30, 9, True), Level(21, 9, True), Level(12, 9, True)),
    dtb_mask=_X64_ADDR, addr_mask=_X64_ADDR,
    writable=_X86_RW, user=_X86_US, nx_groups=_X86_XD, global_bit=8,
    aliases=("x86_64", "amd64", "x86-64"),
)

X64_LA57 = Architecture(
    name="x64la57", pointer_size=8, pte_size=8, va_bits=57, canonical="sign",
    levels=(Level(48, 9, False), Level(39, 9, False), Level(30, 9, True), Level(21, 9, True),
            Level(12, 9, True)),
    dtb_mask=_X64_ADDR, addr_mask=_X64_ADDR,
    writable=_X86_RW, user=_X86_US, nx_groups=_X86_XD, global_bit=8,
    aliases=("la57", "x86_64la57", "x64_la57"),
)

X86_PAE = Architecture(
    name="x86pae", pointer_size=4, pte_size=8, va_bits=32, canonical="zero",
    levels=(Level(30, 2, False, rights=False), Level(21, 9, True), Level(12, 9, True)),
    dtb_mask=0xFFFF_FFE0, addr_mask=_X64_ADDR,
    writable=_X86_RW, user=_X86_US, nx_groups=_X86_XD, global_bit=8,
    aliases=("pae", "i386pae", "x86_pae"),
)

X86 = Architecture(
    name="x86", pointer_size=4, pte_size=4, va_bits=32, canonical="zero",
    levels=(Level(22, 10, True), Level(12, 10, True)),
    dtb_mask=0xFFFF_F000, addr_mask=0xFFFF_F000,
    writable=_X86_RW, user=_X86_US, nx_groups=(), global_bit=8, pse36_bits=8,
    aliases=("i386", "x86_32", "ia32"),
)

_ARM_ADDR = 0x0000_FFFF_FFFF_F000
AARCH64 = Architecture(
    name="aarch64", pointer_size=8, pte_size=8, va_bits=48, canonical="split",
    levels=(Level(39, 9, False), Level(30, 9, True), Level(21, 9, True), Level(12, 9, True)),
    dtb_mask=_ARM_ADDR, addr_mask=_ARM_ADDR,
    leaf_bit=1, leaf_when=False, last_level_leaf_value=True,
    # AP[2] (bit 7) set = read-only; APTable[1] (bit 62) set = no writes below.
    writable=(Rule(7, False, on_table=False), Rule(62, False, on_leaf=False)),
    # AP[1] (bit 6) set = EL0 may access; APTable[0] (bit 61) set = no EL0 access below.
    user=(Rule(6, True, on_table=False), Rule(61, False, on_leaf=False)),
    # UXN (54) / UXNTable (60) and PXN (53) / PXNTable (59).
    nx_groups=((Rule(54, False, on_table=False), Rule(60, False, on_leaf=False)),
               (Rule(53, False, on_table=False), Rule(59, False, on_leaf=False))),
    aliases=("arm64", "aarch64_4k"),
)

ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (X64, X64_LA57, X86, X86_PAE, AARCH64)}
_BY_ALIAS = {n: a for a in ARCHITECTURES.values() for n in (a.name, *a.aliases)}


def get_arch(name: str | Architecture) -> Architecture:
    """The architecture called ``name`` (``x64``, ``x64la57``, ``x86``, ``x86pae``, ``aarch64`` or an
    alias such as ``x86_64``, ``i386``, ``pae``, ``la57``, ``arm64``)."""
    if isinstance(name, Architecture):
        return name
    a = _BY_ALIAS.get(str(name).strip().lower())
    if a is None:
        raise ArgumentError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    return a
