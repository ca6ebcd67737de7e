"""Processes: the ActiveProcessLinks walk, EPROCESS fields, PEB facts, per-process address spaces.

The list walk is one read per link (the next pointer lives in the entry); after it every EPROCESS
is read in one batch, and PEB facts per process in a couple of reads each.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Protocol

from ...arch import VirtualMemory
from ...errors import PymemflowError
from ..base import ModuleInfo, OsLayer, Process, ProcessInfo
from .discovery import KernelFacts
from .fields import first, maybe, user_layout
from .listwalk import walk_list
from .modules import parse_ustr, read_unicode_strings
from .offsets import Win32Offsets

STATUS_PENDING = 0x103
MAX_PROCESSES = 32768


@dataclass(frozen=True)
class EprocessLayout:
    pid: int
    ppid: int | None
    links: int
    name: int
    peb: int
    dtb: int
    user_dtb: int | None
    wow64: int | None
    exit_status: int | None
    create_time: int | None
    vad_root: int | None
    audit_name: int | None
    """``SeAuditProcessCreationInfo.ImageFileName``: pointer to the NT path (_OBJECT_NAME_INFORMATION)."""
    size: int
    ptr: int

    @classmethod
    def from_offsets(cls, off: Any) -> EprocessLayout:
        d = dict(
            pid=first(off, "_EPROCESS.UniqueProcessId"),
            ppid=maybe(off, "_EPROCESS.InheritedFromUniqueProcessId"),
            links=first(off, "_EPROCESS.ActiveProcessLinks"),
            name=first(off, "_EPROCESS.ImageFileName"),
            peb=first(off, "_EPROCESS.Peb"),
            dtb=first(off, "_KPROCESS.DirectoryTableBase"),
            user_dtb=maybe(off, "_KPROCESS.UserDirectoryTableBase"),
            wow64=maybe(off, "_EPROCESS.WoW64Process", "_EPROCESS.Wow64Process"),
            exit_status=maybe(off, "_EPROCESS.ExitStatus"),
            create_time=maybe(off, "_EPROCESS.CreateTime"),
            vad_root=maybe(off, "_EPROCESS.VadRoot"),
            audit_name=None,
        )
        audit = maybe(off, "_EPROCESS.SeAuditProcessCreationInfo")
        if audit is not None:
            d["audit_name"] = audit + (maybe(off, "_SE_AUDIT_PROCESS_CREATION_INFO.ImageFileName") or 0)
        last = max(v for v in d.values() if v is not None) + 16
        size = max(off.size("_EPROCESS") or 0, last)
        return cls(size=size, ptr=off.pointer_size, **d)  # type: ignore[arg-type]


class KernelContext(Protocol):
    """What the process list needs of the kernel (``Win32Kernel`` provides it). A protocol, so this
    module imports nothing from kernel.py, which imports it."""

    @property
    def facts(self) -> KernelFacts: ...

    @property
    def offsets(self) -> Win32Offsets: ...

    @property
    def kmem(self) -> VirtualMemory: ...

    @property
    def eproc(self) -> EprocessLayout: ...

    def process_vm(self, info: ProcessInfo) -> VirtualMemory: ...


class Win32Process(Process):
    """A Windows process: info, its virtual memory, and ``set_dtb`` to override the translation root."""

    def __init__(self, os: OsLayer, info: ProcessInfo, memory: VirtualMemory) -> None:
        super().__init__(os, info, memory)
        self.vm = memory
        self._modules: list[ModuleInfo] | None = None

    def set_dtb(self, dtb: int) -> None:
        """Translate through ``dtb`` from now on (e.g. the user DTB of a KVA-shadowed process).

        Gets its own address space: the one it had may be shared with other views of the process."""
        self.vm = VirtualMemory(self.vm.phys, self.vm.arch, dtb, pte_hook=self.vm.pte_hook)
        self.memory = self.vm
        self.info.dtb = dtb
        self._modules = None

    @property
    def wow64(self) -> bool:
        return self.info.wow64


def _u(raw: bytes, off: int | None, size: int) -> int:
    if off is None or off + size > len(raw):
        return 0
    return int.from_bytes(raw[off : off + size], "little")


def process_infos(k: KernelContext) -> tuple[list[ProcessInfo], list[str]]:
    """Every process of the ActiveProcessLinks list (capped, loop-safe) with its facts."""
    lay = k.eproc
    vm = k.kmem
    walk = walk_list(vm, k.facts.ps_active_process_head, ptr_size=lay.ptr, cap=MAX_PROCESSES,
                     what="ActiveProcessLinks", link_offset=lay.links, span=lay.size)
    warnings = list(walk.warnings)
    eprocs = [e - lay.links for e in walk.entries]
    if not eprocs:
        return [], warnings
    res = vm.read_batch(eprocs, lay.size)
    bad = {f.index for f in res.failures}
    infos: list[ProcessInfo] = []
    ptr = lay.ptr
    for i, ep in enumerate(eprocs):
        raw = res.piece(i)
        if i in bad and _u(raw, lay.pid, ptr) == 0:
            warnings.append(f"EPROCESS {ep:#x} unreadable; skipped")
            continue
        name = raw[lay.name : lay.name + 15].split(b"\0", 1)[0].decode("latin-1")
        exit_status = _u(raw, lay.exit_status, 4) if lay.exit_status is not None else STATUS_PENDING
        alive = exit_status == STATUS_PENDING
        wow = _u(raw, lay.wow64, ptr) if lay.wow64 is not None else 0
        info = ProcessInfo(
            pid=_u(raw, lay.pid, ptr),
            ppid=_u(raw, lay.ppid, ptr),
            name=name,
            state="alive" if alive else "dead",
            arch="x86" if (wow or k.facts.arch != "x64") else "x64",
            dtb=_u(raw, lay.dtb, ptr),
            user_dtb=_u(raw, lay.user_dtb, ptr),
            address=ep,
            wow64=bool(wow) and k.facts.arch == "x64",
            exit_code=None if alive else exit_status,
            create_time=_u(raw, lay.create_time, 8) if lay.create_time is not None else None,
            extra={"peb": _u(raw, lay.peb, ptr), "wow64_process": wow,
                   "audit_name": _u(raw, lay.audit_name, ptr),
                   "vad_root": ep + lay.vad_root if lay.vad_root is not None else 0},
        )
        infos.append(info)
    _fill_nt_paths(k, infos)
    _fill_peb_facts(k, infos, warnings)
    return infos, warnings


def _fill_nt_paths(k: KernelContext, infos: list[ProcessInfo]) -> None:
    """``extra["nt_path"]`` (\\Device\\HarddiskVolumeN\\...) from each process's audit info: one
    batched read of the UNICODE_STRINGs, one of their text."""
    ptr = k.eproc.ptr
    todo = [i for i in infos if i.extra.get("audit_name")]
    for i in infos:
        i.extra["nt_path"] = ""
    if not todo:
        return
    res = k.kmem.read_batch([i.extra["audit_name"] for i in todo], 2 * ptr)
    bad = {f.index for f in res.failures}
    strings = [(0, 0) if j in bad else parse_ustr(res.piece(j), 0, ptr, ptr) for j in range(len(todo))]
    for info, text in zip(todo, read_unicode_strings(k.kmem, strings), strict=True):
        info.extra["nt_path"] = text


def _fill_peb_facts(k: KernelContext, infos: list[ProcessInfo], warnings: list[str]) -> None:
    """Image path and command line from each PEB's RTL_USER_PROCESS_PARAMETERS."""
    lay = user_layout(k.offsets)
    fmt = "<Q" if lay.ptr == 8 else "<I"
    for info in infos:
        peb = info.extra.get("peb", 0)
        if not peb or info.state != "alive":
            continue
        mem = k.process_vm(info)
        try:
            params = struct.unpack(fmt, mem.read(peb + lay.peb_params, lay.ptr))[0]
            if not params:
                continue
            span = max(lay.params_image, lay.params_cmdline) + 2 * lay.ptr
            raw = mem.read(params + lay.params_image, span - lay.params_image)
            img = parse_ustr(raw, 0, lay.ptr, lay.ustr_buffer)
            cmd = parse_ustr(raw, lay.params_cmdline - lay.params_image, lay.ptr, lay.ustr_buffer)
            info.path, info.command_line = read_unicode_strings(mem, [img, cmd])
        except PymemflowError as e:
            warnings.append(f"pid {info.pid} ({info.name}): PEB {peb:#x} unreadable: {e}")


def wow64_peb(k: KernelContext, info: ProcessInfo) -> int:
    """The 32-bit PEB of a WoW64 process.

    Windows 10+: ``WoW64Process`` points at an ``_EWOW64PROCESS`` whose ``Peb`` member is the PEB32.
    Vista / Server 2003: at a ``_WOW64_PROCESS`` whose ``Wow64`` member is. Windows 7 and 8.1 have
    neither structure: ``Wow64Process`` (a ``void *``) *is* the PEB32's address.
    """
    wp = int(info.extra.get("wow64_process", 0))
    if not wp:
        return 0
    off = maybe(k.offsets, "_EWOW64PROCESS.Peb", "_WOW64_PROCESS.Wow64")
    if off is None:
        # Windows 10+ always has _EWOW64PROCESS: offsets lacking it are incomplete (plausible.py names
        # the field), and the pointer is not the PEB32 there
        return wp if k.facts.build < 10240 else 0
    try:
        return k.kmem.read_ptr(wp + off)
    except PymemflowError:
        return 0


def kernel_info(k: KernelContext) -> ProcessInfo:
    """The kernel as a pseudo-process (pid 0 is the Idle process on Windows; we name it 'kernel')."""
    return ProcessInfo(pid=0, ppid=0, name="kernel", path="", state="alive",
                       arch="x64" if k.facts.arch == "x64" else "x86", dtb=k.facts.dtb, address=0,
                       extra={"kernel": True})

