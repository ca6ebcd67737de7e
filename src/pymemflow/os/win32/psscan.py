"""psscan: process objects carved from physical memory by pool tag and structure checks.

Every EPROCESS lives in a pool block tagged ``Proc`` (``Pro\\xe3`` before Windows 8: the protected-tag
bit set). The block is found by :func:`~.pool.scan_pool`; the body is placed as Windows does -- top down
after the _OBJECT_HEADER (and optional headers) on Windows 8 and later, at the end of the block before
-- and accepted only when the structure holds: a process dispatcher header, a page-aligned DTB,
pid/ppid multiples of 4, a printable NUL-terminated image name, kernel-space list links. Its virtual
address comes from its own list heads (a list entry's Blink points back at the head) and must
translate back to where it was carved (else the kernel page tables' reverse map). Each is then flagged ``listed`` (on ActiveProcessLinks),
``exited`` (has an exit time) or ``unlinked`` (neither: hidden by DKOM).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import PymemflowError
from ...types import task_progress
from ..forensics import CarvedProcess, iso_from_filetime
from .fields import maybe
from .pool import PoolBlock, kernel_va, scan_pool

if TYPE_CHECKING:
    from .kernel import Win32Kernel

PROCESS_TAGS = (b"Proc", b"Pro\xe3")
PROCESS_OBJECT = 3
"""_DISPATCHER_HEADER.Type of a process (ProcessObject)."""
MAX_PID = 1 << 26
OPTIONAL_HEADERS = 0x80
"""Room for the optional object headers (creator, name, handle, quota, process, audit ... info) between
the pool header and the _OBJECT_HEADER: their sum on every build is below this."""


@dataclass(frozen=True)
class ProcLayout:
    ptr: int
    size: int
    pid: int
    ppid: int
    name: int
    links: int
    threads: int
    dtb: int
    create_time: int | None
    exit_time: int | None
    header_body: int

    @classmethod
    def of(cls, k: Win32Kernel) -> ProcLayout:
        o = k.offsets
        e = k.eproc
        return cls(ptr=e.ptr, size=o.size("_EPROCESS") or e.size, pid=e.pid, ppid=e.ppid or 0, name=e.name, links=e.links,
                   threads=o["_EPROCESS.ThreadListHead"], dtb=e.dtb, create_time=e.create_time,
                   exit_time=maybe(o, "_EPROCESS.ExitTime"),
                   header_body=maybe(o, "_OBJECT_HEADER.Body") or (0x30 if e.ptr == 8 else 0x18))


def kernel_space(v: int, ptr: int) -> bool:
    return v >= 0xFFFF800000000000 if ptr == 8 else v >= 0x80000000


def _u(buf: bytes, off: int, n: int) -> int:
    return int.from_bytes(buf[off : off + n], "little")


def check_eprocess(b: bytes, lay: ProcLayout, arch: str) -> str | None:
    """Why ``b`` (an EPROCESS-sized slice) is not a process object, or None when it is one."""
    if len(b) < lay.size - 16:
        return "truncated"
    if b[0] != PROCESS_OBJECT:
        return "dispatcher header type"
    dtb = _u(b, lay.dtb, lay.ptr)
    if arch == "x86pae":
        if dtb == 0 or dtb % 0x20 or dtb >> 36:
            return "DTB"
    elif dtb & ~0xFFF == 0 or dtb >> 52 or (arch == "x86" and dtb & 0xFFF):
        return "DTB"  # x64 keeps flag bits (PCID) in the low 12 bits of the process's CR3
    pid, ppid = _u(b, lay.pid, lay.ptr), _u(b, lay.ppid, lay.ptr)
    if pid % 4 or ppid % 4 or pid >= MAX_PID or ppid >= MAX_PID:
        return "pid"
    raw = b[lay.name : lay.name + 15]
    name = raw.split(b"\0", 1)[0]
    if not name or any(c < 0x20 or c > 0x7E for c in name):
        return "image name"
    for off in (lay.links, lay.threads):
        flink, blink = _u(b, off, lay.ptr), _u(b, off + lay.ptr, lay.ptr)
        if not (kernel_space(flink, lay.ptr) and kernel_space(blink, lay.ptr)):
            return "list links"
    return None


def body_candidates(blk: PoolBlock, lay: ProcLayout) -> list[int]:
    """Offsets of the EPROCESS in the block: bottom-up (end of the block) first, then top-down (after
    the object header, skipping possible optional headers)."""
    align = blk.header_size
    out = [blk.size - (lay.size + align - 1) // align * align]
    out += [oh + lay.header_body for oh in range(blk.header_size, blk.header_size + OPTIONAL_HEADERS + 1, align)]
    return [o for o in dict.fromkeys(out) if blk.header_size + lay.header_body <= o <= blk.size - lay.size + align]


def virtual_address(k: Win32Kernel, b: bytes, lay: ProcLayout, pa: int) -> int:
    """The EPROCESS's kernel address from its own list heads (the first entry's Blink, or an empty or
    self-linked head, points back at the head), checked by translating it back to ``pa``; else the
    kernel page tables' reverse map; 0 if nothing maps it."""
    for off in (lay.threads, lay.links):
        flink = _u(b, off, lay.ptr)
        try:
            head = k.kmem.read_ptr(flink + lay.ptr)
            va = head - off
            if k.kmem.translate(va) == pa:
                return va
        except PymemflowError:
            continue
    return kernel_va(k.kmem, pa)


def psscan(k: Win32Kernel) -> list[CarvedProcess]:
    lay = ProcLayout.of(k)
    x64 = k.facts.arch == "x64"
    listed: set[int] = set()
    warnings: list[str] = []
    try:
        infos = k.process_info_list()
    except PymemflowError as e:  # carving does not need the list; every process is then "unlinked"
        infos = []
        warnings.append(f"psscan: process list unreadable ({e}): the listed/unlinked flags are unknown")
    for info in infos:
        try:
            listed.add(k.kmem.translate(info.address))
        except PymemflowError:
            continue
    min_size = lay.size // 2
    out: list[CarvedProcess] = []
    seen: set[int] = set()
    progress = task_progress(getattr(k, "progress", None), "psscan: scanning for process pool blocks")
    for blk in scan_pool(k.phys, {t: min_size for t in PROCESS_TAGS}, x64, progress=progress,
                         warnings=warnings):
        for off in body_candidates(blk, lay):
            b = blk.data[off : off + lay.size]
            if check_eprocess(b, lay, k.facts.arch) is not None:
                continue
            pa = blk.pa + off
            if pa in seen:
                break
            seen.add(pa)
            exit_ft = _u(b, lay.exit_time, 8) if lay.exit_time is not None else 0
            create_ft = _u(b, lay.create_time, 8) if lay.create_time is not None else 0
            va = virtual_address(k, b, lay, pa)
            name = b[lay.name : lay.name + 15].split(b"\0", 1)[0].decode("ascii")
            extra = {"pool_tag": blk.tag.decode("latin-1"), "pool_free": blk.pool_type == 0}
            if not va:
                extra["note"] = "virtual address not recovered from the list heads"
            out.append(CarvedProcess(pid=_u(b, lay.pid, lay.ptr), ppid=_u(b, lay.ppid, lay.ptr), name=name,
                                     address=va, physical_address=pa, listed=pa in listed,
                                     exited=bool(iso_from_filetime(exit_ft)),
                                     create_time=iso_from_filetime(create_ft), exit_time=iso_from_filetime(exit_ft),
                                     dtb=_u(b, lay.dtb, lay.ptr) & (~0x1F if k.facts.arch == "x86pae" else ~0xFFF),
                                     extra=extra))
            break
    if warnings:
        k._warn(warnings)
    out.sort(key=lambda p: (p.create_time or "", p.pid))
    return out


__all__ = ["PROCESS_TAGS", "check_eprocess", "psscan"]
