"""Find a Linux kernel in bare physical memory: VMCOREINFO -> architecture, page-table root, KASLR.

The root is ``SYMBOL(init_top_pgt)``/``SYMBOL(swapper_pg_dir)`` translated by the kernel's own rule
(x86-64: ``va - __START_KERNEL_map + phys_base``; i386: ``va - PAGE_OFFSET``) and accepted only when
the resulting page tables map that same symbol back onto themselves -- a self-check that rejects stale
or torn VMCOREINFO copies and a wrong guess of PAGE_OFFSET or paging mode.

Without VMCOREINFO (kernels built without it, or an image where it was overwritten) the user gives the
root and the symbols: ``dtb=`` and ``system_map=`` (:func:`root_from_dtb`); the KASLR shift is found by
the same self-check over the kernel's alignment steps, or given as ``kaslr_offset=``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...arch import VirtualMemory
from ...errors import OsLayerError, PymemflowError
from ...mem.scan import CancelToken, describe
from ...mem.view import MemoryView
from ...types import ProgressReporter, task_progress
from . import kallsyms as ks
from . import vmcoreinfo as vci

START_KERNEL_MAP = 0xFFFFFFFF80000000
I386_PAGE_OFFSETS = (0xC0000000, 0x80000000, 0xB0000000, 0x78000000, 0x40000000)
"""VMSPLIT_3G (Debian's), 2G, 3G_OPT, 2G_OPT, 1G."""
KASLR_ALIGN = 0x200000
"""x86 kernels are placed at CONFIG_PHYSICAL_ALIGN (2 MiB) steps ..."""
KASLR_MAX = 1 << 30
"""... within KERNEL_IMAGE_SIZE (1 GiB on x86-64) of the link address."""


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


def _banner_release(kmem: VirtualMemory, banner_va: int | None) -> str:
    """``6.1.0-18-amd64`` from ``linux_banner`` ("Linux version 6.1.0-18-amd64 (...)"), "" if unreadable."""
    if banner_va is None:
        return ""
    try:
        text = kmem.read(banner_va, 256).split(b"\0", 1)[0].decode("ascii", "replace")
    except PymemflowError:
        return ""
    parts = text.split()
    return parts[2] if len(parts) > 2 and parts[:2] == ["Linux", "version"] else ""


def root_from_dtb(phys: MemoryView, dtb: int, system_map: str, kaslr_offset: int | None = None
                  ) -> tuple[vci.VmcoreInfo, KernelRoot]:
    """Architecture, KASLR shift and the facts VMCOREINFO would give, from a page-table root and a
    System.map: the shift (given, or tried in 2 MiB steps up to 1 GiB) and the paging mode are the ones
    whose tables at ``dtb`` map the kernel's own root symbol onto ``dtb``."""
    table = ks.load_system_map(system_map)
    name = "init_top_pgt" if table.get("init_top_pgt") else "swapper_pg_dir"
    link_va = table.get(name)
    if not link_va:
        raise OsLayerError(f"linux: {system_map} has neither init_top_pgt nor swapper_pg_dir: is it the kernel's "
                           "System.map?")
    is64 = link_va > 0xFFFFFFFF
    archs = ("x64", "x64la57") if is64 else ("x86pae", "x86")
    shifts = [kaslr_offset] if kaslr_offset is not None else range(0, KASLR_MAX, KASLR_ALIGN)
    top = 1 << (64 if is64 else 32)
    for arch in archs:
        for shift in shifts:
            va = link_va + shift
            if va >= top or not _self_maps(phys, arch, dtb, va):
                continue
            known = {n: table.get(n) for n in (name, "_stext", "_text", "linux_banner", "init_task")}
            symbols = {n: a + shift for n, a in known.items() if a}
            info = vci.VmcoreInfo(text="", kerneloffset=shift, symbols=symbols, pgtable_l5=arch == "x64la57",
                                  pae=arch == "x86pae")
            page_offset = None
            if is64:
                info.phys_base = (dtb - (va - START_KERNEL_MAP)) % (1 << 64)
            else:
                page_offset = next((po for po in I386_PAGE_OFFSETS if va - po == dtb), None)
            info.osrelease = _banner_release(VirtualMemory(phys, arch, dtb, tlb=False), symbols.get("linux_banner"))
            return info, KernelRoot(arch, dtb, va, shift, page_offset)
    tried = (f"kaslr_offset={kaslr_offset:#x}" if kaslr_offset is not None else
             f"KASLR shifts 0..{KASLR_MAX:#x} in {KASLR_ALIGN:#x} steps")
    raise OsLayerError(f"linux: the page tables at dtb={dtb:#x} do not map {name} ({link_va:#x} in {system_map}, "
                       f"{tried}, paging {' or '.join(archs)}) onto themselves: check dtb= (the kernel's CR3, "
                       "e.g. from the dump header or QEMU) and that the System.map is this kernel's")


def discover(phys: MemoryView, hints: dict[str, Any], max_address: int, *, dtb: int | None = None,
             kaslr_offset: int | None = None, system_map: str | None = None, cancel: CancelToken | None = None,
             progress: ProgressReporter | None = None) -> tuple[vci.VmcoreInfo, KernelRoot]:
    """VMCOREINFO first (``dtb=``/``kaslr_offset=``, when given, override what it says); without it,
    ``dtb=`` and ``system_map=`` (:func:`root_from_dtb`)."""
    try:
        info, root = find_vmcoreinfo(phys, hints, max_address, cancel, progress)
    except OsLayerError as e:
        if dtb is None or not system_map:
            missing = " and ".join(n for n, v in (("dtb=", dtb), ("system_map=", system_map)) if v is None)
            if dtb is not None or system_map:
                raise OsLayerError(f"{e}: {missing} is missing") from None
            raise
        return root_from_dtb(phys, dtb, system_map, kaslr_offset)
    if dtb is not None:
        root.dtb = dtb
    if kaslr_offset is not None:
        root.kaslr_offset = kaslr_offset
    return info, root
