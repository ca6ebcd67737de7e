"""Finding a kernel page-table root (DTB) in bare physical memory.

Three ways, cheapest first:

* x64: the *low stub* (``PROCESSOR_START_BLOCK``) the boot processor leaves in the first MiB:
  a ``jmp`` at offset 0, the kernel entry point at 0x70 and the kernel CR3 at 0xA0. One MiB to read.
* x64 without a low stub: a PML4 page with a *self-reference* (an entry in the kernel half that
  points at the page itself -- Windows maps its page tables through one, at a random index since
  Windows 10 1607) and present user and kernel entries. Only pages whose entry 0x1EF (the fixed
  KUSER_SHARED_DATA address) is present are examined closely, which keeps the scan at memory speed.
* x86: a page directory whose entry 0x300 (``0xC0000000``) points at itself; x86 PAE: a page
  directory (the one for 3-4 GiB) whose entries 0..3 map the four page directories, entry 3 being
  itself, plus the 32-byte PDPT that points at those four directories (the CR3 value).

Memory is scanned in chunks with NumPy, over the ranges the connector really has (never holes or
zero-filled tails); a progress callback sees the bytes done, a cancel token stops a scan.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...mem.scan import CancelToken, scan_chunks
from ...mem.view import MemoryView

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
else:
    from ...mem.lazynp import np

PAGE = 0x1000
CHUNK = 16 << 20
KUSER_PML4_INDEX = (0xFFFFF78000000000 >> 39) & 511
_STUB = struct.Struct("<Q104xQ40xQ")
"""PROCESSOR_START_BLOCK: the jump at 0, the kernel entry at 0x70, CR3 at 0xA0."""

Progress = Callable[[int, int], None]
"""``progress(done_bytes, total_bytes)``."""


@dataclass
class RootCandidate:
    arch: str
    dtb: int
    kernel_hint: int | None = None
    how: str = ""


def find_low_stub(phys: MemoryView, limit: int = 0x100000) -> RootCandidate | None:
    """The x64 ``PROCESSOR_START_BLOCK`` in the first MiB (pages 1..255), or None."""
    for h in range(limit // PAGE):  # 256 small reads: cheaper than setting up a NumPy gather
        q = _STUB.unpack(phys.read(h * PAGE, _STUB.size, zero_fill=True))
        if ((q[0] & 0xFFFFFFFFFFFF00FF) == 0x00000001000600E9 and (q[1] & 0xFFFFF80000000003) == 0xFFFFF80000000000
                and not q[2] & 0xFFFFFF0000000FFF and q[2]):
            return RootCandidate("x64", q[2], q[1], f"low stub at {h * PAGE:#x}")
    return None


def iter_chunks(phys: MemoryView, max_address: int | None = None, progress: Progress | None = None,
                chunk: int = CHUNK, cancel: CancelToken | None = None
                ) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    """Yield (page-aligned base, uint8 array of whole pages) over the connector's backed ranges.

    Holes and zero-filled ranges are skipped (:func:`pymemflow.mem.scan.scan_chunks`); the arrays
    are views of the connector's mmap where it has one. ``max_address`` bounds the scan when given.
    """
    for c in scan_chunks(phys, chunk=chunk, progress=progress, cancel=cancel, limit=max_address):
        head = -c.base % PAGE
        n = (c.length - head) // PAGE * PAGE
        if n <= 0:
            continue
        yield c.base + head, c.array()[head: head + n]


def scan_x64_pml4(phys: MemoryView, max_address: int, progress: Progress | None = None,
                  limit: int = 8, cancel: CancelToken | None = None) -> list[RootCandidate]:
    """PML4 pages with a kernel-half self-reference, present kernel entries and some user entries."""
    out: list[RootCandidate] = []
    addr_mask = np.uint64(0x000FFFFFFFFFF000)
    for base, data in iter_chunks(phys, max_address, progress, cancel=cancel):
        e = data.view("<u8").reshape(-1, 512)
        # pre-filter: Windows always maps KUSER_SHARED_DATA (0xFFFFF780'00000000, PML4 index 0x1EF)
        cand = np.flatnonzero((e[:, KUSER_PML4_INDEX] & np.uint64(1)) == 1)
        if cand.size == 0:
            continue
        kern = e[cand, 256:]
        page_addr = (cand.astype(np.uint64) * np.uint64(PAGE) + np.uint64(base))[:, None]
        selfref = ((kern & addr_mask) == page_addr) & ((kern & np.uint64(0x3)) == np.uint64(0x3)) & (
            (kern & np.uint64(1 << 63)) == 0)
        rows = cand[np.nonzero(selfref.any(axis=1))[0]]
        for r in rows:
            row = e[r]
            present = (row & np.uint64(1)) == 1
            n_kernel = int(present[256:].sum())
            n_user = int(present[:256].sum())
            addrs = row[present] & addr_mask
            if n_kernel < 2 or n_user < 1 or int(addrs.max()) >= max(max_address, 1) << 4:
                continue
            out.append(RootCandidate("x64", base + int(r) * PAGE, None, "PML4 self-reference scan"))
            if len(out) >= limit:
                return out
    return out


def scan_x86(phys: MemoryView, max_address: int, progress: Progress | None = None,
             limit: int = 8, cancel: CancelToken | None = None) -> list[RootCandidate]:
    """Non-PAE page directories whose entry 0x300 points at themselves."""
    out: list[RootCandidate] = []
    for base, data in iter_chunks(phys, max_address, progress, cancel=cancel):
        e = data.view("<u4").reshape(-1, 1024)
        page_addr = np.arange(e.shape[0], dtype=np.uint64) * np.uint64(PAGE) + np.uint64(base)
        ent = e[:, 0x300].astype(np.uint64)
        hits = np.nonzero((ent & np.uint64(0xFFFFF003)) == (page_addr + np.uint64(3)))[0]
        for r in hits:
            row = e[r]
            if int(((row[0x200:] & 1) == 1).sum()) < 4:
                continue
            out.append(RootCandidate("x86", base + int(r) * PAGE, None, "page-directory self-reference scan"))
            if len(out) >= limit:
                return out
    return out


def scan_x86pae(phys: MemoryView, max_address: int, progress: Progress | None = None,
                limit: int = 8, cancel: CancelToken | None = None) -> list[RootCandidate]:
    """PAE roots: the self-mapping page directory plus the 32-byte PDPT that names the same 4 PDs."""
    mask = np.uint64(0x0000000FFFFFF000)
    self_maps: list[tuple[int, ...]] = []
    pdpts: list[tuple[int, tuple[int, ...]]] = []
    pdpt_flags = np.uint64(0xFFFFFFF0000001E7)
    for base, data in iter_chunks(phys, max_address, progress, cancel=cancel):
        e = data.view("<u8").reshape(-1, 512)
        # cheap pre-filter on one column, full checks only on the few survivors
        col3 = e[:, 3]
        rows = np.flatnonzero((col3 & mask) == (np.arange(e.shape[0], dtype=np.uint64) * np.uint64(PAGE)
                                                 + np.uint64(base)))
        for r in rows.tolist():
            ent = e[r, :4]
            if not bool(((ent & np.uint64(1)) == 1).all()):
                continue
            pds = tuple(int(x) for x in (ent & mask))
            if len(set(pds)) == 4:
                self_maps.append(pds)
        # PDPT candidates: 4 consecutive entries with only the present bit (and PWT/PCD) set
        q = data.view("<u8")
        first = np.flatnonzero((q[0::4] & pdpt_flags) == np.uint64(1))
        for r in first.tolist():
            ent = q[4 * r : 4 * r + 4]
            if bool(((ent & pdpt_flags) == np.uint64(1)).all()) and bool(((ent & mask) != 0).all()):
                pdpts.append((base + r * 32, tuple(int(x) for x in (ent & mask))))
    out: list[RootCandidate] = []
    wanted = set(self_maps)
    for addr, pds in pdpts:
        if pds in wanted:
            out.append(RootCandidate("x86pae", addr, None, "PAE self-map + PDPT scan"))
            if len(out) >= limit:
                break
    return out
