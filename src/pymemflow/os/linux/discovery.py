"""Find a Linux kernel in bare physical memory: VMCOREINFO -> architecture, page-table root, KASLR.

The root is ``SYMBOL(init_top_pgt)``/``SYMBOL(swapper_pg_dir)`` translated by the kernel's own rule
(x86-64: ``va - __START_KERNEL_map + phys_base``; i386: ``va - PAGE_OFFSET``) and accepted only when
the resulting page tables map that same symbol back onto themselves -- a self-check that rejects stale
or torn VMCOREINFO copies and a wrong guess of PAGE_OFFSET or paging mode.

When the connector already knows a page-table root (``hints["dtb"]``/``cpu_registers``: QEMU's CR3 over
QMP, a dump's CPU notes), no physical-memory scan is needed on x86-64 (:func:`vmcoreinfo_by_pointer`):
the kernel image is the only mapping in the 1 GiB after ``__START_KERNEL_map``, and the kernel keeps
page-aligned pointers to its VMCOREINFO page (``vmcoreinfo_data``, ``vmcoreinfo_note``) in its own
data, so the copy is found by following the image's page-aligned direct-map pointers -- a few tens of
MiB read, whatever the size of the machine.

Without VMCOREINFO (kernels built without it, or an image where it was overwritten) the user gives the
root and the symbols: ``dtb=`` and ``system_map=`` (:func:`root_from_dtb`); the KASLR shift is found by
the same self-check over the kernel's alignment steps, or given as ``kaslr_offset=``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...arch import VirtualMemory
from ...arch.spec import F_WRITABLE
from ...errors import OsLayerError, PymemflowError
from ...mem.scan import CancelToken, describe
from ...mem.view import MemoryView
from ...types import ProgressReporter, task_progress
from . import kallsyms as ks
from . import vmcoreinfo as vci

if TYPE_CHECKING:
    import numpy as np
else:
    from ...mem.lazynp import np

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
    how: str = ""
    """How VMCOREINFO was found: 'connector hint', 'kernel pointer (dtb ...)' or 'physical scan'."""


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


KERNEL_IMAGE_MAX = 1 << 30
"""x86-64 KERNEL_IMAGE_SIZE: the image mapping's window after __START_KERNEL_map (modules follow)."""
IMAGE_READ_MAX = 256 << 20
"""Never read more of the image mapping than this when looking for pointers."""
DIRECT_MAP_LOW = 0xFF00000000000000
"""Lowest kernel-half address a direct-map pointer can have (LA57's direct map starts at 0xff11...)."""
POINTER_CANDIDATES_MAX = 1 << 20


def root_hints(hints: dict[str, Any]) -> list[tuple[str, int]]:
    """(arch, dtb) pairs the connector knows: ``dtb`` and each CPU's CR3 (with PTI a CPU in user mode
    has the user half of an 8 KiB PGD pair loaded: bit 12 set; the kernel's half is tried too)."""
    arch = hints.get("arch")
    if arch not in ("x64", "x64la57"):
        return []
    cr3s = [int(hints["dtb"])] if hints.get("dtb") else []
    cr3s += [int(r["cr3"]) for r in hints.get("cpu_registers") or [] if r.get("cr3")]
    out: list[tuple[str, int]] = []
    for cr3 in cr3s:
        for dtb in (cr3 & 0x000FFFFFFFFFF000, cr3 & 0x000FFFFFFFFFE000):
            if (arch, dtb) not in out:
                out.append((arch, dtb))
    return out


def _runs(starts: list[int], ends: list[int], cap: int) -> tuple[list[int], list[int]]:
    """Adjacent [start, end) ranges merged, at most ``cap`` bytes in all."""
    bs: list[int] = []
    es: list[int] = []
    total = 0
    for b, e in zip(starts, ends, strict=True):
        if total + (e - b) > cap:
            e = b + cap - total
            if e <= b:
                break
        total += e - b
        if es and es[-1] == b:
            es[-1] = e
        else:
            bs.append(b)
            es.append(e)
    return bs, es


def vmcoreinfo_by_pointer(phys: MemoryView, arch: str, dtb: int, max_address: int
                          ) -> tuple[vci.VmcoreInfo, KernelRoot] | None:
    """VMCOREINFO of an x86-64 kernel whose page tables are at ``dtb``, without scanning physical memory:
    the image mapping's writable pages' page-aligned pointers into the kernel half below it (the direct map) are
    translated and the first page starting with ``OSRELEASE=`` (``vmcoreinfo_data``) or with the
    ``VMCOREINFO`` ELF note (``vmcoreinfo_note``) is parsed and accepted when its root checks out."""
    kmem = VirtualMemory(phys, arch, dtb, tlb=False)
    try:
        leaves = kmem.leaves(START_KERNEL_MAP, START_KERNEL_MAP + KERNEL_IMAGE_MAX)
    except PymemflowError:
        return None
    # vmcoreinfo_data/vmcoreinfo_note live in .data/.bss: only the image's writable pages are read
    w = (leaves.flags & np.uint8(F_WRITABLE)) != 0
    starts, ends = _runs(leaves.va[w].tolist(), (leaves.va[w] + leaves.size[w]).tolist(), IMAGE_READ_MAX)
    if not starts:
        return None
    res = kmem.read_batch(starts, [e - b for b, e in zip(starts, ends, strict=True)])  # holes read as zeros
    words = np.frombuffer(res.data, dtype="<u8")
    kernel_half = np.flatnonzero(np.frombuffer(res.data, dtype=np.uint8)[7::8] == 0xFF)  # >= DIRECT_MAP_LOW
    sub = words[kernel_half]
    cands = np.unique(sub[((sub & np.uint64(0xFFF)) == 0) & (sub < np.uint64(START_KERNEL_MAP))])
    cands = cands[:POINTER_CANDIDATES_MAX]
    if not cands.size:
        return None
    tr = kmem.translate_batch(cands)
    pas = tr.pa[tr.ok]
    pas = pas[pas < np.uint64(max_address)]
    if not pas.size:
        return None
    heads, _ = phys.read_gather(pas, 32)
    tries = 0
    for pa, head in zip(pas.tolist(), heads, strict=True):
        b = head.tobytes()
        if b.startswith(vci.NEEDLE) and b[len(vci.NEEDLE):len(vci.NEEDLE) + 1].isdigit():
            at = pa
        elif b[12:24] == b"VMCOREINFO\0\0" and b[24:24 + len(vci.NEEDLE)] == vci.NEEDLE:
            at = pa + 24
        else:
            continue
        tries += 1
        if tries > 64:  # as many copies as the scan tries: hostile memory full of lookalikes stays bounded
            break
        try:
            info = vci.parse(phys.read(at, vci.MAX_TEXT, zero_fill=True), source="kernel pointer",
                             location=at)
        except PymemflowError:
            continue
        root = kernel_root(phys, info, max_address)
        if root is not None and root.arch == arch:
            root.how = f"kernel pointer (dtb {dtb:#x} from the connector)"
            return info, root
    return None


def find_vmcoreinfo(phys: MemoryView, hints: dict[str, Any], max_address: int,
                    cancel: CancelToken | None = None, progress: ProgressReporter | None = None,
                    ) -> tuple[vci.VmcoreInfo, KernelRoot]:
    """The first VMCOREINFO whose root checks out: the dump's note (hint ``vmcoreinfo``), then the kernel's
    pointer from a page-table root the connector knows (:func:`vmcoreinfo_by_pointer`), then a scan of
    physical memory, lowest first, reported to ``progress``."""
    tried = 0
    hint = hints.get("vmcoreinfo")
    if hint:
        try:
            info = vci.parse(hint, source="connector hint 'vmcoreinfo'")
            root = kernel_root(phys, info, max_address)
            if root is not None:
                root.how = "connector hint"
                return info, root
        except PymemflowError:
            pass
        tried += 1
    for arch, dtb in root_hints(hints):
        found = vmcoreinfo_by_pointer(phys, arch, dtb, max_address)
        if found is not None:
            return found
    for info in vci.scan(phys, max_address, cancel=cancel,
                         progress=task_progress(progress, "scanning for VMCOREINFO")):
        tried += 1
        root = kernel_root(phys, info, max_address)
        if root is not None:
            root.how = "physical scan"
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
            return info, KernelRoot(arch, dtb, va, shift, page_offset, "dtb= and system_map=")
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
