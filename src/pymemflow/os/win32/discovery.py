"""Finding Windows in bare physical memory: page-table root, ntoskrnl, its PDB, build, offsets.

Each step uses what the caller or the dump header already knows (``dtb``, ``kernel_base``,
``PsActiveProcessHead`` ...) and falls back to scanning. When nothing works, :class:`OsLayerError` says
which step failed and lists every attempt, so a user can tell "no Windows here" from "wrong arch".
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...arch import VirtualMemory
from ...errors import NotFoundError, OsLayerError, PymemflowError
from ...mem.memmap import MemoryMap
from ...mem.phys import PhysicalMemory
from ...mem.scan import CancelToken, describe
from ...mem.view import MemoryView
from ...types import ProgressReporter, task_progress
from . import pe, rootscan
from .offsets import Win32Offsets, resolve_offsets
from .pte import WindowsPteHook

if TYPE_CHECKING:
    pass
else:
    pass

log = logging.getLogger(__name__)

KERNEL_NAMES = {"ntoskrnl.exe", "ntkrnlmp.exe", "ntkrnlpa.exe", "ntkrpamp.exe"}
KUSER_SHARED_DATA = {"x64": 0xFFFFF78000000000, "x86": 0xFFDF0000, "x86pae": 0xFFDF0000}
KERNEL_RANGE = {
    "x64": (0xFFFFF80000000000, 0xFFFFF80800000000),
    "x86": (0x80000000, 0x100000000),
    "x86pae": (0x80000000, 0x100000000),
}
MAX_KERNEL_CANDIDATES = 1 << 18
"""Pages looked at for the kernel's MZ header when no hint narrows the search."""
HINT_SCAN = 64 << 20
"""How far below a kernel entry-point hint the kernel base may be."""


@dataclass
class KernelFacts:
    """Everything discovery learned; the OS layer is built from this."""

    arch: str
    dtb: int
    kernel_base: int
    kernel_size: int
    offsets: Win32Offsets
    build: int
    version: str
    pdb_name: str = ""
    guid_age: str | None = None
    system_eprocess: int = 0
    ps_active_process_head: int = 0
    ps_loaded_module_list: int = 0
    phys_runs: list[tuple[int, int]] = field(default_factory=list)
    how: list[str] = field(default_factory=list)
    """One line per step: what was used (hint, low stub, scan ...)."""


def _attempts(fn: Callable[[], Any], tried: list[str], what: str) -> Any:
    try:
        return fn()
    except PymemflowError as e:
        tried.append(f"{what}: {e}")
        return None


def find_roots(phys: MemoryView, max_address: int, arch: str | None, progress: ProgressReporter | None,
               tried: list[str], cancel: CancelToken | None = None) -> list[rootscan.RootCandidate]:
    """Page-table root candidates, cheapest source first."""
    out: list[rootscan.RootCandidate] = []
    if arch in (None, "x64"):
        stub = _attempts(lambda: rootscan.find_low_stub(phys), tried, "x64 low stub")
        if stub is not None:
            out.append(stub)
        else:
            tried.append("x64 low stub: none in the first MiB")
        if not out:
            c = rootscan.scan_x64_pml4(phys, max_address, task_progress(progress, "scanning for x64 PML4"), cancel=cancel)
            out += c
            if not c:
                tried.append(f"x64 PML4 self-reference scan of {describe(phys)}: none")
    if arch in (None, "x86pae") and not out:
        c = rootscan.scan_x86pae(phys, max_address, task_progress(progress, "scanning for PAE roots"), cancel=cancel)
        out += c
        if not c:
            tried.append(f"x86 PAE self-map scan of {describe(phys)}: none")
    if arch in (None, "x86") and not out:
        c = rootscan.scan_x86(phys, max_address, task_progress(progress, "scanning for x86 page directories"),
                          cancel=cancel)
        out += c
        if not c:
            tried.append(f"x86 page-directory self-reference scan of {describe(phys)}: none")
    return out


def triage_of(mem: Any) -> Any | None:
    """The connector's parsed TRIAGE_DUMP (``crashdump`` connector on a DumpType 4 file), or None.
    Duck-typed: the OS layer does not import connectors."""
    seen = 0
    while mem is not None and seen < 8:  # through middleware wrappers (each keeps its inner view)
        t = getattr(mem, "triage", None)
        if t is not None and hasattr(t, "drivers") and hasattr(t, "memory"):
            return t
        mem = getattr(mem, "inner", None)
        seen += 1
    return None


def _is_kernel(mem: MemoryView, addr: int, hdr: pe.PeHeaders) -> bool:
    if hdr.size_of_image < 0x10000:
        return False
    return pe.export_dir_name(mem, addr, hdr).lower() in KERNEL_NAMES


def find_kernel(vm: VirtualMemory, arch: str, kernel_hint: int | None, tried: list[str]) -> int | None:
    """ntoskrnl's base: verify a hint / scan below an entry-point hint / scan mapped kernel pages."""
    if kernel_hint:
        start = kernel_hint & ~0xFFF
        try:
            if _is_kernel(vm, start, pe.read_headers(vm, start)):
                return start
        except PymemflowError:
            pass
        # the hint may be an entry point inside the image: 2 MiB-aligned bases first, then pages
        lo = max(start - HINT_SCAN, 0)
        big = list(range(start & ~0x1FFFFF, lo - 1, -0x200000))
        small = list(range(start, lo - 1, -0x1000))
        hit = pe.scan_for_image(big + small, vm, lambda a, h: _is_kernel(vm, a, h))
        if hit is not None:
            return hit
        tried.append(f"kernel PE scan below hint {kernel_hint:#x} ({HINT_SCAN >> 20} MiB): no ntoskrnl.exe")
    lo, hi = KERNEL_RANGE[arch]
    try:
        leaves = vm.leaves(lo, hi)
    except PymemflowError as e:
        tried.append(f"kernel page map {lo:#x}-{hi:#x}: {e}")
        return None
    pages: list[int] = []
    # candidate bases: every mapped 4 KiB page (large pages: every 4 KiB inside, bounded)
    for va, size in zip(leaves.va.tolist(), leaves.size.tolist(), strict=True):
        if va < lo or va >= hi:
            continue
        pages.extend(range(va, va + min(size, 0x200000), 0x1000))
        if len(pages) >= MAX_KERNEL_CANDIDATES:
            break
    hit = pe.scan_for_image(pages, vm, lambda a, h: _is_kernel(vm, a, h))
    if hit is None:
        tried.append(f"kernel PE scan of {len(pages)} mapped pages in {lo:#x}-{hi:#x}: no ntoskrnl.exe")
    return hit


def read_version(vm: MemoryView, arch: str, base: int, exports: dict[str, int]) -> tuple[int, str]:
    """(build, 'major.minor.build') from NtBuildNumber and KUSER_SHARED_DATA."""
    build = 0
    if "NtBuildNumber" in exports:
        try:
            build = vm.read_u32(base + exports["NtBuildNumber"]) & 0xFFFF
        except PymemflowError:
            pass
    major = minor = 0
    try:
        ksd = vm.read(KUSER_SHARED_DATA[arch] + 0x260, 0x14)
        ksd_build, = struct.unpack_from("<I", ksd, 0)
        major, minor = struct.unpack_from("<II", ksd, 0x0C)
        if not build and ksd_build:
            build = ksd_build & 0xFFFF
    except PymemflowError:
        pass
    return build, (f"{major}.{minor}.{build}" if major else str(build))


def physical_runs(vm: MemoryView, ptr_addr: int, ptr_size: int, cap: int = 256) -> list[tuple[int, int]]:
    """RAM runs (physical base, length) from ``MmPhysicalMemoryBlock`` (a pointer to a
    ``_PHYSICAL_MEMORY_DESCRIPTOR``): NumberOfRuns, NumberOfPages, then (BasePage, PageCount) pairs."""
    desc = vm.read_u64(ptr_addr) if ptr_size == 8 else vm.read_u32(ptr_addr)
    n = vm.read_u32(desc)
    if not 0 < n <= cap:
        raise OsLayerError(f"MmPhysicalMemoryBlock at {desc:#x}: implausible NumberOfRuns {n}")
    first = desc + 2 * ptr_size
    raw = vm.read(first, n * 2 * ptr_size)
    vals = struct.unpack(f"<{2 * n}{'Q' if ptr_size == 8 else 'I'}", raw)
    return [(vals[i] << 12, vals[i + 1] << 12) for i in range(0, 2 * n, 2)]


def _runs_plausible(runs: list[tuple[int, int]], dtb: int, max_address: int | None) -> bool:
    """Sorted, non-overlapping, non-empty runs that contain the page-table root (and, when the
    connector knows its size, lie inside it): anything else would hide real memory if pushed."""
    end = 0
    for base, size in runs:
        if size <= 0 or base < end:
            return False
        end = base + size
    if max_address and runs[-1][0] >= max_address:
        return False
    return any(b <= (dtb & ~0xFFF) < b + n for b, n in runs)


def discover(
    phys: PhysicalMemory,
    *,
    dtb: int | None = None,
    kernel_hint: int | None = None,
    kernel_base: int | None = None,
    arch: str | None = None,
    symbols: str | None = None,
    symstore: str | None = None,
    symcache: str | None = None,
    push_mem_map: bool = True,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
) -> KernelFacts:
    """Find Windows in ``phys`` (a PhysicalMemory). Arguments override the connector's hints; a
    ``dtb`` (from the arguments, QMP or a dump's CPU notes) skips the page-table scans. ``progress``
    hears about the long scans (silent without one); ``cancel`` stops a scan
    (:class:`~pymemflow.mem.scan.ScanCancelled`)."""
    hints: dict[str, Any] = dict(getattr(phys, "hints", {}) or {})
    dtb = dtb if dtb is not None else hints.get("dtb")
    kernel_base = kernel_base if kernel_base is not None else hints.get("kernel_base")
    arch = arch or hints.get("arch")
    if arch not in (None, "x64", "x86", "x86pae"):
        raise OsLayerError(f"win32: arch {arch!r} is not a Windows architecture (x64, x86, x86pae)")
    if symbols and not os.path.exists(symbols):  # before the scans: a typo must not cost minutes
        raise OsLayerError(f"win32: symbols={symbols}: no such file or folder")
    no_phys = getattr(phys, "no_physical_memory", None)
    if getattr(phys, "triage", None) is not None and callable(no_phys):
        raise OsLayerError(f"win32: {no_phys()}: there is no Windows to discover in it "
                           "(the win32 plugin reads such a dump with Win32Triage: driver list, bugcheck, "
                           "faulting process and thread)")
    meta = getattr(phys, "metadata", None)
    max_address = int(meta.max_address) if meta is not None else 1 << 32
    tried: list[str] = []
    how: list[str] = []

    # step 1: a page-table root
    if kernel_hint is None and kernel_base is None and hints.get("KdDebuggerDataBlock"):
        kernel_hint = int(hints["KdDebuggerDataBlock"])  # the debugger block lives inside ntoskrnl
    if dtb is not None:
        order = {None: ("x64", "x86pae", "x86"), "x64": ("x64",), "x86pae": ("x86pae", "x86"),
                 "x86": ("x86", "x86pae")}[arch]
        roots = [rootscan.RootCandidate(a, int(dtb), kernel_hint or kernel_base, "dtb hint") for a in order]
    else:
        roots = find_roots(phys, max_address, arch, progress, tried, cancel)
        if kernel_hint or kernel_base:
            for r in roots:
                r.kernel_hint = kernel_hint or kernel_base
    if not roots:
        raise OsLayerError("win32: step 1 (page-table root) failed; tried: " + "; ".join(tried))

    # step 2: ntoskrnl in each root's kernel space
    for root in roots:
        vm = VirtualMemory(phys, root.arch, root.dtb, pte_hook=WindowsPteHook(root.arch))
        base = find_kernel(vm, root.arch, root.kernel_hint, tried)
        if base is None:
            tried.append(f"root {root.dtb:#x} ({root.arch}, {root.how}): no kernel found")
            continue
        how.append(f"dtb {root.dtb:#x} ({root.arch}) from {root.how}")
        how.append(f"ntoskrnl at {base:#x}")
        return _finish(phys, vm, root.arch, root.dtb, base, hints, symbols, symstore, symcache,
                       push_mem_map, how, tried)
    raise OsLayerError("win32: step 2 (find ntoskrnl.exe) failed; tried: " + "; ".join(tried))


def _finish(phys: PhysicalMemory, vm: VirtualMemory, arch: str, dtb: int, base: int, hints: dict[str, Any],
            symbols: str | None, symstore: str | None, symcache: str | None, push_mem_map: bool,
            how: list[str], tried: list[str]) -> KernelFacts:
    hdr = pe.read_headers(vm, base)
    cv = pe.codeview(vm, base, hdr)
    exports = pe.export_rvas(vm, base, {"NtBuildNumber", "PsInitialSystemProcess", "PsLoadedModuleList",
                                        "PsActiveProcessHead"}, hdr)
    build, version = read_version(vm, arch, base, exports)
    if build == 0 and hints.get("nt_build"):
        build = int(hints["nt_build"])
    how.append(f"build {build} ({version}); PDB {cv.pdb_name + ' ' + cv.guid_age if cv else 'none'}")

    # step 3: offsets
    try:
        off = resolve_offsets(guid_age=cv.guid_age if cv else None, build=build or None, arch=arch,
                              symbols_dir=symbols, symstore=symstore, cache_dir=symcache,
                              pdb_name=cv.pdb_name if cv else "ntkrnlmp.pdb")
    except NotFoundError as e:
        raise OsLayerError(f"win32: step 3 (offsets) failed for kernel at {base:#x} build {build}: {e}") from e
    how.append(f"offsets from {off.source}")
    ps = off.pointer_size

    def sym(name: str) -> int | None:
        if name in hints and hints[name]:
            return int(hints[name])
        if name in exports:
            return base + exports[name]
        rva = off.fields.get(name)
        if rva is not None and off.guid_age and cv and off.guid_age == cv.guid_age:
            return base + rva
        return None

    # step 4: the System process
    system = 0
    p = sym("PsInitialSystemProcess")
    if p is not None:
        try:
            system = vm.read_ptr(p)
        except PymemflowError as e:
            tried.append(f"PsInitialSystemProcess at {p:#x}: {e}")
    apl = off["_EPROCESS.ActiveProcessLinks"]
    head = sym("PsActiveProcessHead")
    if head is None and system:
        try:  # System is the first process: its Blink is the list head
            head = vm.read_ptr(system + apl + ps)
        except PymemflowError as e:
            tried.append(f"System EPROCESS {system:#x} ActiveProcessLinks.Blink: {e}")
    if not head:
        raise OsLayerError("win32: step 4 (process list head) failed: no PsActiveProcessHead symbol or hint, "
                       "and no System process; tried: " + "; ".join(tried))
    if not system:
        try:
            system = vm.read_ptr(head) - apl
        except PymemflowError:
            system = 0
    mods = sym("PsLoadedModuleList") or 0

    runs: list[tuple[int, int]] = []
    mm = sym("MmPhysicalMemoryBlock")
    if mm is not None:
        try:
            runs = physical_runs(vm, mm, ps)
            how.append(f"{len(runs)} physical memory runs from MmPhysicalMemoryBlock")
        except PymemflowError as e:
            tried.append(f"MmPhysicalMemoryBlock: {e}")
    if runs and not _runs_plausible(runs, dtb, getattr(getattr(phys, "metadata", None), "max_address", None)):
        tried.append(f"MmPhysicalMemoryBlock runs {runs[:4]} implausible (overlap, or miss the DTB); ignored")
        runs = []
    if runs and push_mem_map and hasattr(phys, "set_mem_map") and getattr(phys, "mem_map", None) is None:
        try:
            mmap = MemoryMap()
            for b, n in runs:
                mmap.add(b, n)
            phys.set_mem_map(mmap)
            how.append("memory map pushed to the connector")
        except (PymemflowError, ValueError) as e:
            tried.append(f"set_mem_map: {e}")
    return KernelFacts(arch=arch, dtb=dtb, kernel_base=base, kernel_size=hdr.size_of_image, offsets=off,
                       build=build or off.build,
                       version=(off.version if off.source != "table-nearest" and off.version.startswith(version)
                                else version) if build else off.version,
                       pdb_name=cv.pdb_name if cv else "", guid_age=cv.guid_age if cv else None,
                       system_eprocess=system, ps_active_process_head=head, ps_loaded_module_list=mods,
                       phys_runs=runs, how=how)
