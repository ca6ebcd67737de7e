"""Find a Linux kernel in bare physical memory: VMCOREINFO -> architecture, page-table root, KASLR.

The root is ``SYMBOL(init_top_pgt)``/``SYMBOL(swapper_pg_dir)`` translated by the kernel's own rule
(x86-64: ``va - __START_KERNEL_map + phys_base``; i386: ``va - PAGE_OFFSET``) and accepted only when
the resulting page tables map that same symbol back onto themselves -- a self-check that rejects stale
or torn VMCOREINFO copies and a wrong guess of PAGE_OFFSET or paging mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...arch import VirtualMemory
from ...errors import OsLayerError, PymemflowError
from ...mem.scan import CancelToken, describe
from ...mem.view import MemoryView
from ...types import ProgressReporter, task_progress
from . import vmcoreinfo as vci

START_KERNEL_MAP = 0xFFFFFFFF80000000
I386_PAGE_OFFSETS = (0xC0000000, 0x80000000, 0xB0000000, 0x78000000, 0x40000000)
"""VMSPLIT_3G (Debian's), 2G, 3G_OPT, 2G_OPT, 1G."""


@dataclass
class KernelRoot:
    arch: str
    dtb: int
    root_va: int
    kaslr_offset: int
    page_offset: int | None = None
    """i386: start of the linear map; None on x86-64 (randomized page_offset_base)."""


def _self_maps(phys: MemoryView, arch: str, dtb: int, va: int) -> bool:
    try:
        return VirtualMemory(phys, arch, dtb, tlb=False).translate(va) == dtb
    except PymemflowError:
        return False


def kernel_root(phys: MemoryView, info: vci.VmcoreInfo, max_address: int) -> KernelRoot | None:
    """Architecture and page-table root from one VMCOREINFO copy, or None when it does not check out."""
    va = info.symbols.get("init_top_pgt") or info.symbols.get("swapper_pg_dir")
    if va is None:
        return None
    if info.is_64bit:
        if info.phys_base is None:
            return None
        dtb = (va - START_KERNEL_MAP + info.phys_base) & ((1 << 64) - 1)
        arch = "x64la57" if info.pgtable_l5 else "x64"
        if dtb >= max_address or not _self_maps(phys, arch, dtb, va):
            return None
        return KernelRoot(arch, dtb, va, info.kerneloffset)
    archs = ("x86pae", "x86") if info.pae else ("x86", "x86pae")
    for po in I386_PAGE_OFFSETS:
        if va < po:
            continue
        dtb = va - po
        if dtb >= max_address:
            continue
        for arch in archs:
            if _self_maps(phys, arch, dtb, va):
                stext = info.symbols.get("_stext", 0)
                kaslr = info.kerneloffset or (stext - (po + 0x1000000) if stext else 0)
                return KernelRoot(arch, dtb, va, kaslr, po)
    return None


def find_vmcoreinfo(phys: MemoryView, hints: dict[str, Any], max_address: int,
                    cancel: CancelToken | None = None, progress: ProgressReporter | None = None,
                    ) -> tuple[vci.VmcoreInfo, KernelRoot]:
    """The first VMCOREINFO (dump hint first, then physical memory, lowest first) whose root checks
    out; the scan is reported to ``progress``."""
    tried = 0
    hint = hints.get("vmcoreinfo")
    if hint:
        try:
            info = vci.parse(hint, source="connector hint 'vmcoreinfo'")
            root = kernel_root(phys, info, max_address)
            if root is not None:
                return info, root
        except PymemflowError:
            pass
        tried += 1
    for info in vci.scan(phys, max_address, cancel=cancel,
                         progress=task_progress(progress, "scanning for VMCOREINFO")):
        tried += 1
        root = kernel_root(phys, info, max_address)
        if root is not None:
            return info, root
        if tried > 64:
            break
    what = (f"{tried} VMCOREINFO cop{'y' if tried == 1 else 'ies'} found but none gives page tables that map "
            "swapper_pg_dir onto itself" if tried else
            f"no VMCOREINFO text ('OSRELEASE=<release>') in {describe(phys)}")
    raise OsLayerError(f"linux: {what}; the kernel needs CONFIG_CRASH_CORE/VMCOREINFO (or use a dump whose "
                   "header carries it, or pass dtb= and system_map=)")
