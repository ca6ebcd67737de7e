"""Windows software PTEs: what a non-present page-table entry means to the memory manager.

A PTE with the valid bit clear is still informative on Windows (``_MMPTE_SOFTWARE`` and friends):

* **transition** (bit 11 set, prototype bit 10 clear): the page was trimmed from the working set but
  its frame still holds the data, at the PFN in the usual place. We read it as present.
* **prototype** (bit 10 set): the data is described by a shared prototype PTE (mapped files).
* **pagefile** (neither, PageFileHigh != 0): the page was written to page file ``PageFileLow``
  at page offset ``PageFileHigh``. Not readable from RAM; reported, not guessed.
* demand-zero / protection-only otherwise.

:class:`WindowsPteHook` is the ``pte_hook`` handed to :class:`~pymemflow.arch.VirtualMemory`; it
also remembers pagefile entries it met, so page maps can list them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

VALID = 1 << 0
PROTOTYPE = 1 << 10
TRANSITION = 1 << 11

_LEVELS = {"x64": 4, "x64la57": 5, "x86pae": 3, "x86": 2}
_ADDR_MASK = {"x64": 0x000FFFFFFFFFF000, "x64la57": 0x000FFFFFFFFFF000, "x86pae": 0x0000000FFFFFF000,
              "x86": 0xFFFFF000}


@dataclass(frozen=True)
class SoftwarePte:
    kind: str
    """'valid', 'transition', 'prototype', 'pagefile', 'demand-zero' or 'empty'."""
    pfn: int | None = None
    pagefile: int | None = None
    """Page-file number (PageFileLow)."""
    pagefile_offset: int | None = None
    """Page offset in that page file (PageFileHigh)."""
    protection: int = 0

    def status(self) -> str:
        """How ``translate`` says it: the MM's meaning of a PTE the MMU would not use."""
        if self.kind == "transition":
            return "transition"
        if self.kind == "pagefile":
            return f"paged out (pagefile {self.pagefile}, offset {(self.pagefile_offset or 0) << 12:#x})"
        if self.kind == "prototype":
            return "prototype PTE (shared section page; the prototype PTE is not followed)"
        if self.kind == "demand-zero":
            return "demand zero (never touched; reads as zeros once faulted in)"
        return "page not present"


@dataclass(frozen=True)
class PagefileBits:
    """Where ``_MMPTE_SOFTWARE`` keeps the page-file number and offset: (bit position, bit length).

    Windows 7 (and x86): PageFileLow at bit 1, PageFileHigh at 32 (PAE/x64) or 12 (x86).
    Windows 10+ x64 moved PageFileLow to bit 12 (bits 1-4 became PageFileReserved/Allocated/...)."""

    low: tuple[int, int] = (1, 4)
    high: tuple[int, int] = (32, 32)

    @classmethod
    def default(cls, arch: str, build: int = 0) -> PagefileBits:
        if arch == "x86":
            return cls((1, 4), (12, 20))
        if arch == "x64" and build >= 10240:
            return cls((12, 4), (32, 32))
        return cls()

    @classmethod
    def from_offsets(cls, off: object, arch: str, build: int = 0) -> PagefileBits:
        d = cls.default(arch, build)
        bits = getattr(off, "bits", None)
        lo = bits("_MMPTE_SOFTWARE.PageFileLow") if bits else None
        hi = bits("_MMPTE_SOFTWARE.PageFileHigh") if bits else None
        return cls((lo[1], lo[2]) if lo else d.low, (hi[1], hi[2]) if hi else d.high)

    def split(self, pte: int) -> tuple[int, int]:
        return ((pte >> self.low[0]) & ((1 << self.low[1]) - 1), (pte >> self.high[0]) & ((1 << self.high[1]) - 1))


def decode_pte(pte: int, arch: str, pf: PagefileBits | None = None) -> SoftwarePte:
    """Classify one PTE value of ``arch`` ('x64', 'x86pae' or 'x86') the way the Windows MM does."""
    if pte == 0:
        return SoftwarePte("empty")
    mask = _ADDR_MASK.get(arch, _ADDR_MASK["x64"])
    if pte & VALID:
        return SoftwarePte("valid", (pte & mask) >> 12)
    protection = (pte >> 5) & 0x1F
    if pte & PROTOTYPE:
        return SoftwarePte("prototype", protection=protection)
    if pte & TRANSITION:
        return SoftwarePte("transition", (pte & mask) >> 12, protection=protection)
    low, high = (pf or PagefileBits.default(arch)).split(pte)
    if high:
        return SoftwarePte("pagefile", pagefile=low, pagefile_offset=high, protection=protection)
    return SoftwarePte("demand-zero", protection=protection)


@dataclass
class WindowsPteHook:
    """``pte_hook(pte, level, va)``: transition PTEs resolve to their frame; pagefile PTEs are noted.

    Only last-level entries are interpreted (Windows software PDEs are rare and not handled).
    ``pagefile`` maps a virtual page to (page file number, page offset) for every pagefile PTE met,
    capped at ``max_noted`` entries so a hostile table cannot grow it without bound.
    """

    arch: str
    resolve_transition: bool = True
    bits: PagefileBits | None = None
    max_noted: int = 1 << 20
    pagefile: dict[int, tuple[int, int]] = field(default_factory=dict)
    transition_hits: int = 0

    def __post_init__(self) -> None:
        self.last_level = _LEVELS.get(self.arch, 4) - 1
        self.mask = _ADDR_MASK.get(self.arch, _ADDR_MASK["x64"])
        if self.bits is None:
            self.bits = PagefileBits.default(self.arch)

    def describe(self, pte: int, level: int) -> SoftwarePte | None:
        """The software meaning of a last-level PTE whose valid bit is clear (None for any other entry):
        what ``translate`` shows instead of a bare "not present"."""
        if level != self.last_level or pte & VALID:
            return None
        return decode_pte(pte, self.arch, self.bits)

    def __call__(self, pte: int, level: int, va: int) -> int | None:
        if level != self.last_level or pte & VALID:
            return None
        if pte & PROTOTYPE:
            return None
        if pte & TRANSITION:
            if not self.resolve_transition:
                return None
            self.transition_hits += 1
            return (pte & self.mask) | (va & 0xFFF)
        assert self.bits is not None
        low, high = self.bits.split(pte)
        if high and len(self.pagefile) < self.max_noted:
            self.pagefile[va & ~0xFFF] = (low, high)
        return None
