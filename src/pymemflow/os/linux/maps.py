"""A process' memory areas (``vm_area_struct``): maple tree (6.1+) or the ``mmap`` list (older).

Maple tree nodes are 256-byte ``maple_node``s addressed by tagged pointers: in ``ma_root`` bit 1 set
(and above 4096) marks a node rather than a single entry; bits 3..6 give the node type (0 dense, 1 leaf_64, 2 range_64, 3 arange_64); the low 8 bits are
tags. Leaves hold VMA pointers; interior nodes hold child nodes with pivots bounding each slot's range.
Pivots and slot counts come from the layouts (``maple_range_64.pivot``/``slot`` ...), so 32-bit
kernels (more slots per node) work the same. Bounded: depth, node count and cycles.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...mem.view import MemoryView
from ..base import MemoryRegion
from .dentry import PathResolver
from .kread import Layouts, read_obj, read_ptr

MAX_NODES = 1 << 15
MAX_VMAS = 1 << 16
MAX_DEPTH = 12
VM_READ, VM_WRITE, VM_EXEC, VM_SHARED = 0x1, 0x2, 0x4, 0x8
NODE_SIZE = 256


@dataclass
class VmaOffsets:
    start: int
    end: int
    flags: int
    file: int
    pgoff: int
    next: int | None
    mm_mmap: int | None
    mm_mt_root: int | None
    r64_pivot: int
    r64_slot: int
    r64_slots: int
    a64_pivot: int
    a64_slot: int
    a64_slots: int
    mm_start_stack: int
    mm_start_brk: int
    mm_brk: int
    mm_vdso: int | None = None

    @classmethod
    def from_layouts(cls, t: Layouts) -> VmaOffsets:
        o = t.offset_of
        maple = t.has_member("mm_struct", "mm_mt")
        mt = o("mm_struct", "mm_mt") + o("maple_tree", "ma_root") if maple else None
        return cls(
            start=o("vm_area_struct", "vm_start"), end=o("vm_area_struct", "vm_end"),
            flags=o("vm_area_struct", "vm_flags"), file=o("vm_area_struct", "vm_file"),
            pgoff=o("vm_area_struct", "vm_pgoff"),
            next=o("vm_area_struct", "vm_next") if t.has_member("vm_area_struct", "vm_next") else None,
            mm_mmap=o("mm_struct", "mmap") if t.has_member("mm_struct", "mmap") else None,
            mm_mt_root=mt,
            r64_pivot=o("maple_range_64", "pivot") if maple else 0,
            r64_slot=o("maple_range_64", "slot") if maple else 0,
            r64_slots=t.array_len("maple_range_64", "slot") if maple else 0,
            a64_pivot=o("maple_arange_64", "pivot") if maple else 0,
            a64_slot=o("maple_arange_64", "slot") if maple else 0,
            a64_slots=t.array_len("maple_arange_64", "slot") if maple else 0,
            mm_start_stack=o("mm_struct", "start_stack"), mm_start_brk=o("mm_struct", "start_brk"),
            mm_brk=o("mm_struct", "brk"),
            mm_vdso=o("mm_struct", "context.vdso") if t.has_member("mm_struct", "context.vdso") else None,
        )


def _is_node(entry: int) -> bool:
    return entry & 3 == 2 and entry > 4096


def maple_entries(kmem: MemoryView, root: int, off: VmaOffsets, ulong_max: int,
                  warnings: list[str] | None = None) -> list[int]:
    """Every non-null leaf entry (VMA pointer) of a maple tree, in index order; nodes that are
    unreadable, met twice, too deep, or past the caps add to ``warnings``."""
    lost: list[str] = [] if warnings is None else warnings
    if not root:
        return []
    if not _is_node(root):
        return [root]  # a single entry stored in the root
    out: list[int] = []
    seen: set[int] = set()
    stack: list[tuple[int, int, int, int]] = [(root, 0, ulong_max, 0)]  # (enode, min, max, depth)
    ps = kmem.pointer_size
    while stack and len(seen) < MAX_NODES and len(out) < MAX_VMAS:
        enode, lo, hi, depth = stack.pop()
        node = enode & ~0xFF
        ntype = (enode >> 3) & 0xF
        if node in seen:
            lost.append(f"maple tree: node {node:#x} reached twice (loop); not followed")
            continue
        if depth > MAX_DEPTH:
            lost.append(f"maple tree: node {node:#x} deeper than {MAX_DEPTH} levels; not followed")
            continue
        seen.add(node)
        if ntype == 3:
            piv_off, slot_off, nslots = off.a64_pivot, off.a64_slot, off.a64_slots
        elif ntype in (1, 2):
            piv_off, slot_off, nslots = off.r64_pivot, off.r64_slot, off.r64_slots
        else:
            continue  # dense nodes are not used for mm trees
        n = read_obj(kmem, node, NODE_SIZE)
        if not n.ok:
            lost.append(f"maple tree: node {node:#x} unreadable")
            continue
        children: list[tuple[int, int, int, int]] = []
        cur_lo = lo
        for i in range(nslots):
            piv = n.ptr(piv_off + i * ps) if i < nslots - 1 else hi
            if i > 0 and piv == 0:
                break
            if piv > hi:
                piv = hi
            slot = n.ptr(slot_off + i * ps)
            if slot:
                if ntype == 1:
                    out.append(slot)
                elif slot > 4096:  # interior slots are tagged child pointers (no root bit)
                    children.append((slot, cur_lo, piv, depth + 1))
            if piv >= hi:
                break
            cur_lo = piv + 1
        stack.extend(reversed(children))
    if stack:
        lost.append(f"maple tree: stopped at {len(seen)} nodes / {len(out)} entries (cap)")
    return out


def vma_list(kmem: MemoryView, mm: int, off: VmaOffsets, warnings: list[str] | None = None) -> list[int]:
    ulong_max = (1 << (8 * kmem.pointer_size)) - 1
    lost: list[str] = [] if warnings is None else warnings
    if off.mm_mt_root is not None:
        root = read_ptr(kmem, mm + off.mm_mt_root) or 0
        return maple_entries(kmem, root, off, ulong_max, lost)
    if off.mm_mmap is not None and off.next is not None:
        out: list[int] = []
        seen: set[int] = set()
        cur = read_ptr(kmem, mm + off.mm_mmap) or 0
        while cur and cur not in seen and len(out) < MAX_VMAS:
            seen.add(cur)
            out.append(cur)
            nxt = read_ptr(kmem, cur + off.next)
            if nxt is None:
                lost.append(f"VMA list: vm_next of {cur:#x} unreadable after {len(out)} entries")
            cur = nxt or 0
        if cur:
            lost.append(f"VMA list: stopped at {cur:#x} after {len(out)} entries (loop or cap)")
        return out
    return []


def regions(kmem: MemoryView, mm: int, off: VmaOffsets, paths: PathResolver,
            warnings: list[str] | None = None) -> list[MemoryRegion]:
    """``/proc/PID/maps`` as :class:`MemoryRegion` records, sorted by start; what could not be
    read adds to ``warnings``."""
    lost: list[str] = [] if warnings is None else warnings
    if not mm:
        return []
    span = max(off.start, off.end, off.flags, off.file, off.pgoff) + 8
    mmo = read_obj(kmem, mm, max(off.mm_start_stack, off.mm_start_brk, off.mm_brk) + 8)
    stack, sbrk, brk = mmo.ptr(off.mm_start_stack), mmo.ptr(off.mm_start_brk), mmo.ptr(off.mm_brk)
    vdso = (read_ptr(kmem, mm + off.mm_vdso) or 0) if off.mm_vdso is not None else 0
    out: dict[int, MemoryRegion] = {}
    user_top = 1 << (56 if kmem.pointer_size == 8 else 32)  # TASK_SIZE with LA57 at most
    for vma in vma_list(kmem, mm, off, lost):
        v = read_obj(kmem, vma, span)
        if not v.ok:
            lost.append(f"VMA {vma:#x} unreadable; skipped")
            continue
        start, end, flags = v.ptr(off.start), v.ptr(off.end), v.ptr(off.flags)
        if end <= start or end > user_top:
            lost.append(f"VMA {vma:#x}: {start:#x}-{end:#x} is not a user range; skipped")
            continue
        if start in out:
            continue
        file = v.ptr(off.file)
        prot = ("r" if flags & VM_READ else "-") + ("w" if flags & VM_WRITE else "-") + ("x" if flags & VM_EXEC else "-")
        path = paths.file_path(file) if file else ""
        if file:
            kind = "shared" if flags & VM_SHARED else "mapped"
        elif vdso and start == vdso:
            kind, path = "vdso", "[vdso]"
        elif vdso and end == vdso and not flags & VM_WRITE:
            kind, path = "vdso", "[vvar]"
        elif start <= stack < end:
            kind, path = "stack", "[stack]"
        elif brk and start <= brk and end >= sbrk:
            kind, path = "heap", "[heap]"
        else:
            kind = "private"
        out[start] = MemoryRegion(start, end, prot, kind, path)
    return [out[k] for k in sorted(out)]
