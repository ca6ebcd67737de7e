"""The Windows OS layer: processes, modules, exports, memory maps over a connector.

Built from :class:`~.discovery.KernelFacts`. Walk warnings (smeared or looping lists) are logged and
kept in ``warnings`` so callers can show them; results hold whatever could be read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ...arch import VirtualMemory
from ...errors import CappedSizeWarning, ImplausibleResultWarning, NotFoundError, PymemflowError
from ...mem.phys import PhysicalMemory
from ...mem.view import MemoryView
from ..base import (
    ExportInfo,
    ImportInfo,
    MemoryRegion,
    ModuleInfo,
    OsLayer,
    Process,
    ProcessInfo,
    SectionInfo,
)
from ..walk import report
from . import pe
from .discovery import KernelFacts, discover
from .fields import kernel_ldr_layout, user_layout
from .modules import walk_ldr
from .plausible import check_processes, check_vads, missing_field_names, missing_fields, source_of
from .process import EprocessLayout, Win32Process, kernel_info, process_infos, wow64_peb
from .pte import PagefileBits, WindowsPteHook

if TYPE_CHECKING:
    from ..forensics import CarvedProcess, HandleInfo, MalfindHit, SocketInfo, ThreadInfo, TimelineEvent
    from .keyboard import Keyboard

log = logging.getLogger(__name__)

USER_END = {"x64": 0x0000800000000000, "x86": 0x80000000, "x86pae": 0x80000000}


class Win32Kernel(OsLayer):
    """``Win32Kernel.open(connector, **args)`` finds Windows; or build from known facts."""

    name = "win32"

    def __init__(self, phys: PhysicalMemory, facts: KernelFacts, *, transition: bool = True) -> None:
        self.phys = phys
        self.facts = facts
        self.offsets = facts.offsets
        self.transition = transition
        self.pf_bits = PagefileBits.from_offsets(self.offsets, facts.arch, facts.build)
        self.kernel_hook = self._hook()
        self.kmem = VirtualMemory(phys, facts.arch, facts.dtb, pte_hook=self.kernel_hook)
        self.eproc = EprocessLayout.from_offsets(self.offsets)
        self.warnings: list[str] = []
        self._vms: dict[int, VirtualMemory] = {}
        self._closed = False
        self._processes_checked = False
        self.progress: Any = None
        """The front end's progress reporter (``progress(task, done, total)``) for long scans, or None."""
        report("win32", missing_fields(self.offsets), self.warnings, ImplausibleResultWarning)

    @classmethod
    def open(cls, phys: PhysicalMemory, **kw: Any) -> Win32Kernel:
        transition = kw.pop("transition", True)
        layer = cls(phys, discover(phys, **kw), transition=transition)
        layer.progress = kw.get("progress")
        return layer

    def _hook(self) -> WindowsPteHook:
        return WindowsPteHook(self.facts.arch, resolve_transition=self.transition, bits=self.pf_bits)

    def _warn(self, warnings: list[str]) -> None:
        """Python warnings (stderr in the CLI) and kept in ``self.warnings``."""
        report("win32", warnings, self.warnings)

    def info(self) -> dict[str, Any]:
        f = self.facts
        return {"os": "win32", "arch": f.arch, "build": f.build, "version": f.version, "dtb": f.dtb,
                "kernel_base": f.kernel_base, "kernel_size": f.kernel_size, "pdb": f.pdb_name,
                "guid_age": f.guid_age, "offsets": self.offsets.source,
                "offsets_from": "; ".join(self.offsets.notes) or self.offsets.source,
                "offsets_missing": missing_field_names(self.offsets),
                "process_list_head_address": f.ps_active_process_head,
                "module_list_head_address": f.ps_loaded_module_list,
                "system_eprocess_address": f.system_eprocess, "physical_runs": len(f.phys_runs), "how": list(f.how)}

    # ---- address spaces ------------------------------------------------------------------------
    def kernel_memory(self) -> MemoryView:
        return self.kmem

    def process_vm(self, info: ProcessInfo) -> VirtualMemory:
        """One cached VirtualMemory per DTB (transition PTEs read as present)."""
        vm = self._vms.get(info.dtb)
        if vm is None:
            vm = VirtualMemory(self.phys, self.facts.arch, info.dtb,
                               pte_hook=self._hook())
            if len(self._vms) > 4096:
                self._vms.clear()
            self._vms[info.dtb] = vm
        return vm

    # ---- processes -----------------------------------------------------------------------------
    def process_info_list(self) -> list[ProcessInfo]:
        infos, warnings = process_infos(self)
        if not self._processes_checked:  # once per kernel: the layout does not change between calls
            self._processes_checked = True
            report("win32", check_processes(infos, self.offsets, lambda i: wow64_peb(self, i)),
                   self.warnings, ImplausibleResultWarning)
        self._warn(warnings)
        return infos

    def process_from_info(self, info: ProcessInfo) -> Win32Process:
        if info.extra.get("kernel"):
            return Win32Process(self, info, VirtualMemory(self.phys, self.facts.arch, self.facts.dtb,
                                                          pte_hook=self.kernel_hook))
        return Win32Process(self, info, self.process_vm(info))  # shared per DTB: its TLB is warm

    def kernel_process(self) -> Win32Process:
        """The kernel address space as a pseudo-process (pid 0, name 'kernel', kernel modules)."""
        return self.process_from_info(kernel_info(self))

    def process_by_pid(self, pid: int) -> Process:
        """pid 0 (never in the list: it is the Idle process on Windows) gives the kernel pseudo-process."""
        if pid == 0:
            return self.kernel_process()
        return super().process_by_pid(pid)

    def process_by_name(self, name: str) -> Process:
        if name.lower() == "kernel":
            return self.kernel_process()
        return super().process_by_name(name)

    def system_process(self) -> Process:
        return self.process_by_pid(4)

    # ---- modules -------------------------------------------------------------------------------
    def kernel_modules(self) -> list[ModuleInfo]:
        head = self.facts.ps_loaded_module_list
        if not head:
            raise NotFoundError("PsLoadedModuleList unknown (no symbol, export or hint)")
        mods, warnings = walk_ldr(self.kmem, head, kernel_ldr_layout(self.offsets),
                                  "x64" if self.facts.arch == "x64" else "x86", what="PsLoadedModuleList")
        self._warn(warnings)
        return mods

    def module_list(self, proc: Process) -> list[ModuleInfo]:
        info = proc.info
        if info.extra.get("kernel"):
            return self.kernel_modules()
        if isinstance(proc, Win32Process) and proc._modules is not None:
            return proc._modules
        mods: list[ModuleInfo] = []
        warnings: list[str] = []
        mem = proc.memory
        peb = info.extra.get("peb", 0)
        native_arch = "x64" if self.facts.arch == "x64" else "x86"
        if peb:
            lay = user_layout(self.offsets)
            try:
                ldr = mem.read_ptr(peb + lay.peb_ldr) if lay.ptr == mem.pointer_size else mem.read_u32(peb + lay.peb_ldr)
                if ldr:
                    m, w = walk_ldr(mem, ldr + lay.ldr_list, lay, native_arch, what=f"pid {info.pid} PEB.Ldr")
                    mods += m
                    warnings += w
            except PymemflowError as e:
                warnings.append(f"pid {info.pid}: PEB {peb:#x} loader data unreadable: {e}")
        if info.wow64:
            self._fix_native_arch(mem, mods)
            peb32 = wow64_peb(self, info)
            lay32 = user_layout(self.offsets, wow64=True)
            if peb32:
                try:
                    ldr32 = mem.read_u32(peb32 + lay32.peb_ldr)
                    if ldr32:
                        m, w = walk_ldr(mem, ldr32 + lay32.ldr_list, lay32, "x86", what=f"pid {info.pid} PEB32.Ldr")
                        mods += m
                        warnings += w
                except PymemflowError as e:
                    warnings.append(f"pid {info.pid}: PEB32 {peb32:#x} unreadable: {e}")
        self._warn(warnings)
        if isinstance(proc, Win32Process):
            proc._modules = mods
        return mods

    @staticmethod
    def _fix_native_arch(mem: MemoryView, mods: list[ModuleInfo]) -> None:
        """A WoW64 process's 64-bit loader list also holds its 32-bit exe: take each module's arch
        from its PE header (one batched read)."""
        if not mods:
            return
        raw, _ = mem.read_gather([m.base for m in mods], 0x400)
        for m, row in zip(mods, raw, strict=True):
            try:
                hdr = pe.parse_headers(row.tobytes())
            except PymemflowError:
                continue
            m.arch = "x64" if hdr.is64 else "x86"

    def _image(self, proc: Process, module: ModuleInfo) -> bytes:
        cut: list[str] = []
        image, bad = pe.read_image(proc.memory, module.base, module.size or None, cut)
        report("win32", [f"{module.name}: {c}" for c in cut], self.warnings, CappedSizeWarning)  # all are cuts
        if bad:
            self._warn([f"{module.name}: {bad} pages of the image unreadable (zero in the result)"])
        return image

    def module_exports(self, proc: Process, module: ModuleInfo) -> list[ExportInfo]:
        return pe.exports_of_image(self._image(proc, module), module.base)

    def module_imports(self, proc: Process, module: ModuleInfo) -> list[ImportInfo]:
        return pe.imports_of_image(self._image(proc, module), module.base)

    def module_sections(self, proc: Process, module: ModuleInfo) -> list[SectionInfo]:
        return pe.sections_of_headers(pe.read_headers(proc.memory, module.base), module.base)

    def dump_module(self, proc: Process, module: ModuleInfo) -> bytes:
        """The module as a PE file rebuilt from memory (sections at their RVAs, ImageBase = load address)."""
        return self.rebuild_module(self._image(proc, module), module)

    def rebuild_module(self, image: bytes, module: ModuleInfo) -> bytes:
        """A PE file from the module's memory image (see :func:`pymemflow.os.image.module_image`)."""
        return pe.rebuild_pe(image, module.base)

    def kernel_exports(self) -> list[ExportInfo]:
        kp = self.kernel_process()
        m = ModuleInfo("ntoskrnl.exe", "", self.facts.kernel_base, self.facts.kernel_size,
                       kp.info.arch)
        return self.module_exports(kp, m)

    # ---- memory maps ---------------------------------------------------------------------------
    def memory_regions(self, proc: Process, **kw: Any) -> list[MemoryRegion]:
        """Page-table map (default) or the VAD tree (``vad=True``) of a process's user space.

        Page-table regions resolved through transition PTEs say 'hook' in their kind; pagefile
        PTEs are listed as regions of kind 'pagefile'."""
        if kw.get("vad"):
            return self.vad_regions(proc)
        vm = proc.memory
        kernel = bool(proc.info.extra.get("kernel"))
        start, end = (USER_END[self.facts.arch], None) if kernel else (0, USER_END[self.facts.arch])
        if isinstance(vm, VirtualMemory):
            hook = vm.pte_hook if isinstance(vm.pte_hook, WindowsPteHook) else None
            if hook is not None:
                hook.pagefile.clear()
            regions = vm.page_map(start, end, gap=int(kw.get("gap", 0)))
            for r in regions:  # pages resolved by the hook are transition pages (software PTEs)
                if r.kind.endswith(" hook"):
                    r.kind = ("kernel " if kernel else "user ") + r.kind.split()[1] + " transition"
            if hook is not None and hook.pagefile:
                for va in sorted(hook.pagefile):
                    if start <= va < (end or 1 << 64):
                        pf, off = hook.pagefile[va]
                        regions.append(MemoryRegion(va, va + 0x1000, "---", "pagefile",
                                                    f"pagefile{pf}:{off << 12:#x}"))
                regions.sort(key=lambda r: r.start)
            return regions
        raise NotImplementedError("memory map needs a VirtualMemory")

    def vad_regions(self, proc: Process) -> list[MemoryRegion]:
        from .vad import VadLayout, walk_vads  # lazy: only VAD maps need it (a cold `ps` does not)

        lay = VadLayout.from_offsets(self.offsets)
        root = proc.info.extra.get("vad_root", 0)
        if lay is None:
            raise NotFoundError(f"no VAD layout (_MMVAD_SHORT.StartingVpn/EndingVpn/u) in offsets "
                                f"{source_of(self.offsets)}")
        if not root:
            raise NotFoundError(f"no VadRoot for pid {proc.info.pid} (offsets {source_of(self.offsets)})")
        regions, warnings = walk_vads(self.kmem, root, lay, self.offsets)
        self._warn(warnings)
        report("win32", check_vads(regions, warnings, proc.info.pid, self.offsets), self.warnings,
               ImplausibleResultWarning)
        return regions

    # ---- forensics (threads.py, handles.py, malfind.py, timeline.py) ---------------------------
    # each imported by the command that needs it: a cold `ps` imports none of them (issue 15)
    def threads(self, proc: Process | None = None) -> list[ThreadInfo]:
        from .threads import all_threads  # lazy: a forensic command's module

        return all_threads(self, proc)

    def handles(self, proc: Process | None = None, type_name: str | None = None) -> list[HandleInfo]:
        from .handles import all_handles  # lazy: a forensic command's module

        return all_handles(self, proc, type_name)

    def malfind(self, proc: Process | None = None) -> list[MalfindHit]:
        from .malfind import all_malfind  # lazy: a forensic command's module

        return all_malfind(self, proc)

    def timeline_sources(self) -> list[Callable[[], Iterable[TimelineEvent]]]:
        from .timeline import win32_timeline_sources  # lazy: a forensic command's module

        return win32_timeline_sources(self)

    # ---- pool scans (psscan.py, netscan.py) ----------------------------------------------------
    def psscan(self) -> list[CarvedProcess]:
        """Processes carved from physical memory by pool tag, flagged listed / unlinked / exited."""
        from .psscan import psscan  # lazy: a forensic command's module

        return psscan(self)

    def netscan(self) -> list[SocketInfo]:
        """TCP/UDP endpoints and listeners carved from physical memory by pool tag."""
        from .netscan import netscan  # lazy: a forensic command's module

        return netscan(self)

    # ---- keyboard ------------------------------------------------------------------------------
    def keyboard(self) -> Keyboard:
        from .keyboard import open_keyboard  # lazy: a forensic command's module

        return open_keyboard(self)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        close = getattr(self.phys, "close", None)
        if close is not None:
            close()
