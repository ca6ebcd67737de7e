"""The VAD tree: a process's reserved ranges as the memory manager sees them.

Windows 8+ keeps ``_MMVAD_SHORT`` nodes in an AVL tree of ``_RTL_BALANCED_NODE`` (root in
``_EPROCESS.VadRoot``, an ``_RTL_AVL_TREE``); Windows 7 uses ``_MMADDRESS_NODE`` children
(``LeftChild``/``RightChild``) under ``_MM_AVL_TABLE.BalancedRoot``, whose *right* child is the real
root. Protection, type and private bits live in the ``u.VadFlags`` bitfield. The walk is iterative,
remembers every node, and stops at a cap, so a cyclic or smeared tree ends.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from ...errors import PymemflowError
from ...mem.view import MemoryView
from ..base import MemoryRegion
from ..walk import impossible_link
from .fields import maybe
from .modules import read_unicode_strings

MAX_NODES = 1 << 16
PROTECTION = ["---", "r--", "--x", "r-x", "rw-", "rc-", "rwx", "rcx"]
"""MM_* protection codes 0..7 (c = copy-on-write)."""
VAD_IMAGE = 2


@dataclass(frozen=True)
class VadLayout:
    left: int
    right: int
    start: int
    end: int
    start_high: int | None
    end_high: int | None
    flags: int
    protection: tuple[int, int]
    private: tuple[int, int] | None
    vad_type: tuple[int, int] | None
    win7: bool
    subsection: int | None
    ptr: int
    vpn_size: int = 4
    """Bytes of StartingVpn/EndingVpn: 4 with the high bytes (Windows 8.1+), pointer-wide without
    (Windows 7 x64 keeps 64-bit VPNs)."""
    flags_size: int = 4
    """Bytes of ``u.VadFlags`` to read: 8 where the flags are a 64-bit ULONG_PTR (Windows 7 x64,
    Protection at bit 56, PrivateMemory at bit 63), else 4."""

    @classmethod
    def from_offsets(cls, off: Any) -> VadLayout | None:
        ptr = off.pointer_size
        flags = maybe(off, "_MMVAD_SHORT.u")
        start = maybe(off, "_MMVAD_SHORT.StartingVpn")
        end = maybe(off, "_MMVAD_SHORT.EndingVpn")
        if flags is None or start is None or end is None:
            return None
        win7 = maybe(off, "_MMVAD_SHORT.LeftChild") is not None
        if win7:
            left, right = off["_MMVAD_SHORT.LeftChild"], off["_MMVAD_SHORT.RightChild"]
        else:
            node = maybe(off, "_MMVAD_SHORT.VadNode") or 0
            left = node + (maybe(off, "_RTL_BALANCED_NODE.Left") or 0)
            right = node + (maybe(off, "_RTL_BALANCED_NODE.Right") or ptr)

        def bits(name: str) -> tuple[int, int] | None:
            b = off.bits(f"_MMVAD_FLAGS.{name}")
            return (b[1], b[2]) if b else None

        prot = bits("Protection") or ((24, 5) if win7 else (7, 5))
        private, vad_type = bits("PrivateMemory"), bits("VadType")
        start_high = maybe(off, "_MMVAD_SHORT.StartingVpnHigh")
        top = max(p + n for p, n in (prot, private or (0, 0), vad_type or (0, 0)))
        return cls(left, right, start, end, start_high, maybe(off, "_MMVAD_SHORT.EndingVpnHigh"), flags, prot,
                   private, vad_type, win7, maybe(off, "_MMVAD.Subsection"), ptr,
                   vpn_size=4 if start_high is not None else ptr, flags_size=8 if top > 32 else 4)


def vad_root(kmem: MemoryView, vad_root_addr: int, lay: VadLayout) -> int:
    """The first node: ``_RTL_AVL_TREE.Root`` (Win8+) or ``BalancedRoot.RightChild`` (Win7)."""
    if lay.win7:
        return kmem.read_ptr(vad_root_addr + lay.right)
    return kmem.read_ptr(vad_root_addr)


def walk_vads(kmem: MemoryView, vad_root_addr: int, lay: VadLayout, off: Any = None,
              cap: int = MAX_NODES, file_names: bool = True) -> tuple[list[MemoryRegion], list[str]]:
    """All VADs of a tree, sorted by start address, plus warnings for loops/unreadable nodes."""
    warnings: list[str] = []
    try:
        root = vad_root(kmem, vad_root_addr, lay)
    except PymemflowError as e:
        return [], [f"VAD root at {vad_root_addr:#x} unreadable: {e}"]
    span = max(lay.flags + lay.flags_size, lay.end + lay.vpn_size, (lay.end_high or 0) + 1, lay.right + lay.ptr,
               (lay.subsection or 0) + lay.ptr)
    fmt = "<Q" if lay.ptr == 8 else "<I"
    seen: set[int] = set()
    stack = [root] if root else []
    nodes: list[tuple[int, bytes]] = []
    while stack:
        batch, stack = stack, []
        batch = [n for n in dict.fromkeys(batch) if n not in seen]  # a child shared by two parents once
        if not batch:
            continue
        if len(seen) + len(batch) > cap:
            warnings.append(f"VAD tree: stopped at {cap} nodes (cap)")
            batch = batch[: max(cap - len(seen), 0)]
            if not batch:
                break
        seen.update(batch)
        res = kmem.read_batch(batch, span)  # one batched read per tree level
        bad = {f.index for f in res.failures}
        for i, n in enumerate(batch):
            if i in bad:
                warnings.append(f"VAD node {n:#x} unreadable")
                continue
            raw = res.piece(i)
            nodes.append((n, raw))
            for o in (lay.left, lay.right):
                (child,) = struct.unpack_from(fmt, raw, o)
                if lay.win7 and child == vad_root_addr:
                    continue
                if child:
                    why = impossible_link(child, ptr_size=lay.ptr, span=span)
                    if why is not None:
                        warnings.append(f"VAD node {n:#x}: impossible child link {why}; not followed")
                    elif child in seen:
                        warnings.append(f"VAD tree: node {child:#x} reached twice (loop); not followed")
                    else:
                        stack.append(child)
    regions: list[MemoryRegion] = []
    file_ptrs: list[tuple[int, int]] = []
    user_top = 1 << (56 if lay.ptr == 8 else 32)  # VADs describe user space (LA57 included)
    for node, raw in nodes:
        vfmt = "<Q" if lay.vpn_size == 8 else "<I"
        (s,) = struct.unpack_from(vfmt, raw, lay.start)
        (last,) = struct.unpack_from(vfmt, raw, lay.end)
        if lay.start_high is not None:
            s |= raw[lay.start_high] << 32
        if lay.end_high is not None:
            last |= raw[lay.end_high] << 32
        (flags,) = struct.unpack_from("<Q" if lay.flags_size == 8 else "<I", raw, lay.flags)
        prot = (flags >> lay.protection[0]) & ((1 << lay.protection[1]) - 1)
        private = bool((flags >> lay.private[0]) & 1) if lay.private else False
        vtype = (flags >> lay.vad_type[0]) & ((1 << lay.vad_type[1]) - 1) if lay.vad_type else 0
        kind = "private" if private else ("image" if vtype == VAD_IMAGE else "mapped")
        if last < s or (last + 1) << 12 > user_top:
            warnings.append(f"VAD node {node:#x}: pages {s:#x}..{last:#x} are not a user range; skipped")
            continue
        r = MemoryRegion(s << 12, (last + 1) << 12, PROTECTION[prot & 7], kind)
        regions.append(r)
        if not private and lay.subsection is not None:
            (sub,) = struct.unpack_from(fmt, raw, lay.subsection)
            file_ptrs.append((len(regions) - 1, sub))
    if file_names and off is not None and file_ptrs:
        _file_names(kmem, off, regions, file_ptrs, lay.ptr)
    regions.sort(key=lambda r: r.start)
    return regions, warnings


def _file_names(kmem: MemoryView, off: Any, regions: list[MemoryRegion], subs: list[tuple[int, int]],
                ptr: int) -> None:
    """Subsection -> ControlArea -> FilePointer (an _EX_FAST_REF) -> FileName, batched per hop."""
    ca = maybe(off, "_SUBSECTION.ControlArea")
    fp = maybe(off, "_CONTROL_AREA.FilePointer")
    fn = maybe(off, "_FILE_OBJECT.FileName")
    if ca is None or fp is None or fn is None:
        return
    fmt = "<Q" if ptr == 8 else "<I"
    refmask = ~0xF if ptr == 8 else ~0x7

    top = 1 << (8 * ptr)

    def hop(addrs: list[int], o: int) -> list[int]:
        addrs = [a if a + o + ptr <= top else 0 for a in addrs]  # impossible pointers: no object
        ok = [a for a in addrs if a]
        res = kmem.read_batch([a + o for a in ok], ptr)
        bad = {f.index for f in res.failures}
        vals = iter(0 if i in bad else struct.unpack(fmt, res.piece(i))[0] for i in range(len(ok)))
        return [next(vals) if a else 0 for a in addrs]

    areas = hop([s for _, s in subs], ca)
    files = [f & refmask for f in hop(areas, fp)]
    files = [f if f + fn + 2 * ptr <= top else 0 for f in files]
    okf = [f for f in files if f]
    if not okf:
        return
    res = kmem.read_batch([f + fn for f in okf], 2 * ptr)
    bad = {f.index for f in res.failures}
    strs = []
    for i in range(len(okf)):
        if i in bad:
            strs.append((0, 0))
            continue
        raw = res.piece(i)
        (length,) = struct.unpack_from("<H", raw, 0)
        (buf,) = struct.unpack_from(fmt, raw, ptr)
        strs.append((length, buf))
    names = iter(read_unicode_strings(kmem, strs))
    for (ri, _), f in zip(subs, files, strict=True):
        if f:
            regions[ri].path = next(names)
