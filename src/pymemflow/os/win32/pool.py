"""Pool-tag scanning of physical memory: every _POOL_HEADER carrying one of the wanted tags.

Windows tags each kernel pool block (``Proc`` process objects, ``TcpE`` TCP endpoints ...); objects
unlinked from every list still sit in their pool blocks, which is why scanning finds what walking
cannot. Only the connector's real ranges are read, chunk by chunk (:func:`~pymemflow.mem.scan.scan_chunks`,
progress and cancel supported), and a header must be plausible (aligned, block size large enough for
the object, non-paged or free pool) before its block is handed out. The number of hits is capped.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from ...arch import VirtualMemory
from ...errors import PymemflowError
from ...mem.scan import CancelToken, Progress, scan_chunks
from ...mem.view import MemoryView

MAX_HITS = 1_000_000
"""More tagged blocks than this is no real pool (a hostile or corrupt image): the scan stops there."""
PAGE = 0x1000


@dataclass
class PoolBlock:
    """One tagged pool block found in physical memory."""

    pa: int
    """Physical address of the _POOL_HEADER."""
    tag: bytes
    size: int
    """Block size in bytes (header included)."""
    pool_type: int
    data: bytes
    """The block's bytes, header included (read physically: a small block never crosses a page, a
    large-page pool is physically contiguous)."""
    header_size: int

    @property
    def body_pa(self) -> int:
        return self.pa + self.header_size


def parse_header(raw: bytes, x64: bool) -> tuple[int, int]:
    """(block size in bytes, pool type) of a _POOL_HEADER (x64: bytes, 16-byte units; x86: packed
    9/7/9/7 bits, 8-byte units)."""
    if x64:
        return raw[2] * 16, raw[3]
    (v,) = struct.unpack_from("<I", raw, 0)
    return ((v >> 16) & 0x1FF) * 8, (v >> 25) & 0x7F


def nonpaged_or_free(pool_type: int) -> bool:
    """Vista and later store the pool type + 1: even and non-zero is non-paged, 0 a free block."""
    return pool_type == 0 or pool_type % 2 == 0


def scan_pool(phys: MemoryView, tags: dict[bytes, int], x64: bool, *, progress: Progress | None = None,
              cancel: CancelToken | None = None, warnings: list[str] | None = None,
              max_hits: int = MAX_HITS) -> Iterator[PoolBlock]:
    """Blocks tagged with one of ``tags`` (tag -> smallest plausible block size in bytes, header
    included), lowest physical address first; at most ``max_hits`` (then a warning)."""
    hs = 16 if x64 else 8
    hits = 0
    for chunk in scan_chunks(phys, progress=progress, cancel=cancel):
        for tag, min_size in tags.items():
            at = chunk.find(tag)
            while at >= 0:
                start = at - 4
                pa = chunk.base + start
                if start >= 0 and pa % hs == 0:
                    head = chunk.take(start, start + hs)
                    if len(head) == hs:
                        size, ptype = parse_header(head, x64)
                        if size >= max(min_size, hs) and nonpaged_or_free(ptype):
                            data = chunk.take(start, start + size)
                            if len(data) < size:
                                data = phys.read(pa, size, zero_fill=True)
                            hits += 1
                            if hits > max_hits:
                                if warnings is not None:
                                    warnings.append(f"pool scan: more than {max_hits} tagged blocks; stopped at "
                                                    f"{pa:#x} (corrupt or hostile image?)")
                                return
                            yield PoolBlock(pa, tag, size, ptype, data, hs)
                at = chunk.find(tag, at + 1)


def kernel_va(kmem: VirtualMemory, pa: int) -> int:
    """A kernel-space virtual address mapping physical ``pa`` (the kernel page tables' reverse map,
    walked once per address space and cached), or 0 when none maps it."""
    top = 0xFFFF800000000000 if kmem.pointer_size == 8 else 0x80000000
    try:
        return next((va for va in kmem.reverse(pa) if va >= top), 0)
    except PymemflowError:
        return 0
