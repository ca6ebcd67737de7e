"""Windows on a triage (kernel mini) dump: what the dump holds, and plain errors for the rest.

A triage dump (DumpType 4) has no physical memory: the DUMP_HEADER's bugcheck, the TRIAGE_DUMP
header's driver list (name, base, size, timestamp), copies of the faulting process, thread and
processor block, the call stack and a few saved blocks of virtual memory. :class:`Win32Triage`
serves those (``kmods``, ``info``, ``read -p kernel`` / ``-p PID`` of the faulting process inside
the saved blocks) and answers everything that needs the page tables or the process list with
:class:`TriageDumpError` saying why, instead of a discovery failure.

:func:`triage_material` is the other direction: what a triage dump of a running (or synthetic)
machine would hold, read through :class:`~.kernel.Win32Kernel`, as keyword arguments for
:func:`pymemflow.writers.crashdump.write_triage` (tests write triage dumps of the demo machines).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable
from typing import Any

from ...arch.spec import F_USER
from ...errors import NotFoundError, OsLayerError, PymemflowError
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
from . import pe
from .discovery import KERNEL_NAMES, triage_of
from .offsets import Win32Offsets, resolve_offsets

log = logging.getLogger(__name__)

EPROCESS_FALLBACK = 0x800
"""Bytes copied of an EPROCESS/ETHREAD when the offsets carry no structure size."""


class TriageDumpError(OsLayerError):
    """Something that needs physical memory (page tables, the process list) asked of a triage dump."""


class TriageModuleInfo(ModuleInfo):
    """A kernel module from the triage dump's driver list: the KLDR_DATA_TABLE_ENTRY's facts too."""

    __slots__ = ("timestamp", "checksum")

    def __init__(self, name: str, path: str, base: int, size: int, arch: str = "x64", timestamp: int = 0,
                 checksum: int = 0) -> None:
        super().__init__(name, path, base, size, arch)
        self.timestamp, self.checksum = timestamp, checksum


class Win32Triage(OsLayer):
    """``-o win32`` on a triage dump (see the module doc)."""

    name = "win32"

    def __init__(self, dump: Any, *, symbols: str | None = None) -> None:
        t = triage_of(dump)
        if t is None:
            raise OsLayerError("win32: not a triage dump (no TRIAGE_DUMP header in the connector)")
        self.dump = dump
        self.triage = t
        self.memory: MemoryView = t.memory
        hints: dict[str, Any] = dict(getattr(dump, "hints", {}) or {})
        self.hints = hints
        self.arch = str(hints.get("arch", "x64" if t.is64 else "x86"))
        self.build = int(hints.get("nt_build", 0) or 0)
        self.dtb = int(hints.get("dtb", 0) or 0)
        self.warnings: list[str] = []
        kernel = next((d for d in t.drivers if d.name.lower() in KERNEL_NAMES), None)
        if kernel is None and t.drivers:  # the loader puts the kernel first
            kernel = t.drivers[0]
        self.kernel_base = kernel.base if kernel is not None else 0
        self.kernel_size = kernel.size if kernel is not None else 0
        self.guid_age: str | None = None
        if self.kernel_base:
            try:  # the kernel's PE header is often among the saved blocks: its PDB names the exact offsets
                cv = pe.codeview(self.memory, self.kernel_base)
                self.guid_age = cv.guid_age if cv else None
            except PymemflowError as e:
                log.debug("triage: no ntoskrnl header in the saved blocks: %s", e)
        self.offsets: Win32Offsets | None = None
        self.offsets_error = ""
        try:
            self.offsets = resolve_offsets(guid_age=self.guid_age, build=self.build or None, arch=self.arch,
                                           symbols_dir=symbols)
        except NotFoundError as e:
            self.offsets_error = str(e)
        self.fault_thread = self._thread()
        self.fault_process = self._process()

    # ---- what the dump holds -------------------------------------------------------------------
    def why(self, what: str, because: str = "") -> TriageDumpError:
        """``this is a triage dump: it holds no physical memory, only N saved blocks; WHAT cannot work
        (BECAUSE)`` -- what the user asked, why the dump cannot answer, and what it can."""
        n = len(self.triage.runs)
        tail = f" ({because})" if because else ""
        return TriageDumpError(f"this is a triage dump: it holds no physical memory, only {n} saved "
                               f"block{'s' * (n != 1)}; {what} cannot work{tail}. It holds the driver list, "
                               "the bugcheck and the faulting process and thread: see info, kmods, "
                               "read -p kernel")

    def _field(self, blob: bytes, name: str, size: int) -> int | None:
        o = self.offsets
        if o is None or name not in o.fields:
            return None
        at = int(o[name])
        if at + size > len(blob):
            return None
        return int.from_bytes(blob[at : at + size], "little")

    def _thread(self) -> dict[str, Any]:
        blob = self.triage.block("ThreadOffset")
        if not blob:
            return {}
        out: dict[str, Any] = {"bytes": len(blob)}
        ps = self.triage.pointer_size
        cid = self._field(blob, "_ETHREAD.Cid", 2 * ps)
        if cid is not None and self.offsets is not None:
            up = int(self.offsets.fields.get("_CLIENT_ID.UniqueProcess", 0))
            ut = int(self.offsets.fields.get("_CLIENT_ID.UniqueThread", ps))
            raw = cid.to_bytes(2 * ps, "little")
            out["pid"] = int.from_bytes(raw[up : up + ps], "little")
            out["tid"] = int.from_bytes(raw[ut : ut + ps], "little")
        if self.offsets is not None and "_KTHREAD.Process" in self.offsets.fields:
            tcb = int(self.offsets.fields.get("_ETHREAD.Tcb", 0))
            at = tcb + int(self.offsets["_KTHREAD.Process"])
            if at + ps <= len(blob):
                out["process_address"] = int.from_bytes(blob[at : at + ps], "little")
        return out

    def _process(self) -> dict[str, Any]:
        blob = self.triage.block("ProcessOffset")
        if not blob:
            return {}
        out: dict[str, Any] = {"bytes": len(blob)}
        ps = self.triage.pointer_size
        pid = self._field(blob, "_EPROCESS.UniqueProcessId", ps)
        if pid is not None:
            out["pid"] = pid
        ppid = self._field(blob, "_EPROCESS.InheritedFromUniqueProcessId", ps)
        if ppid is not None:
            out["ppid"] = ppid
        if self.offsets is not None and "_EPROCESS.ImageFileName" in self.offsets.fields:
            at = int(self.offsets["_EPROCESS.ImageFileName"])
            out["name"] = blob[at : at + 15].split(b"\0", 1)[0].decode("latin-1")
        if self.offsets is not None and "_KPROCESS.DirectoryTableBase" in self.offsets.fields:
            at = int(self.offsets.fields.get("_EPROCESS.Pcb", 0)) + int(self.offsets["_KPROCESS.DirectoryTableBase"])
            if at + ps <= len(blob):
                out["dtb"] = int.from_bytes(blob[at : at + ps], "little")
        if "process_address" in self.fault_thread:
            out["address"] = self.fault_thread["process_address"]
        return out

    def info(self) -> dict[str, Any]:
        t = self.triage
        bug = self.hints.get("bugcheck") or {}
        offsets = self.offsets.source if self.offsets is not None else f"none ({self.offsets_error})"
        return {
            "os": "win32", "dump": "triage", "arch": self.arch, "build": self.build, "dtb": self.dtb,
            "kernel_base": self.kernel_base, "kernel_size": self.kernel_size, "guid_age": self.guid_age,
            "bugcheck_code": int(bug.get("code", 0)),
            "bugcheck_parameters": [int(p) for p in bug.get("parameters", [])],
            "process": {k: v for k, v in self.fault_process.items() if k != "bytes"},
            "thread": {k: v for k, v in self.fault_thread.items() if k != "bytes"},
            "drivers": len(t.drivers), "saved_blocks": len(t.runs),
            "saved_bytes": int(sum(t.runs.lengths.tolist())), "offsets": offsets,
            "cannot": "ps, maps, threads, handles, psscan, netscan, malfind, timeline, keys, modules of a process, "
                      "phys-read, dump-phys: a triage dump holds no physical memory",
        }

    # ---- processes: the kernel and the faulting one ---------------------------------------------
    def _kernel_info(self) -> ProcessInfo:
        return ProcessInfo(pid=0, ppid=0, name="kernel", arch="x64" if self.arch == "x64" else "x86",
                           dtb=self.dtb, extra={"kernel": True, "triage": True})

    def _fault_info(self) -> ProcessInfo | None:
        p = self.fault_process
        if "pid" not in p:
            return None
        return ProcessInfo(pid=int(p["pid"]), ppid=int(p.get("ppid", 0)), name=str(p.get("name", "")),
                           arch="x64" if self.arch == "x64" else "x86", dtb=int(p.get("dtb", 0)),
                           address=int(p.get("address", 0)),
                           extra={"faulting": True, "tid": self.fault_thread.get("tid"), "triage": True})

    def process_info_list(self) -> list[ProcessInfo]:
        raise self.why("ps", "the process list is in memory the dump did not save")

    def process_from_info(self, info: ProcessInfo) -> Process:
        return Process(self, info, self.memory)

    def _only(self) -> str:
        f = self._fault_info()
        who = f"the faulting process (pid {f.pid}, {f.name}) and " if f is not None else ""
        return f"it holds only {who}the kernel (-p kernel)"

    def process_by_pid(self, pid: int) -> Process:
        if pid == 0:
            return self.process_from_info(self._kernel_info())
        f = self._fault_info()
        if f is not None and f.pid == pid:
            return self.process_from_info(f)
        raise self.why(f"finding process {pid}", self._only())

    def process_by_name(self, name: str) -> Process:
        if name.lower() == "kernel":
            return self.process_from_info(self._kernel_info())
        f = self._fault_info()
        if f is not None and f.name.lower() == name.lower():
            return self.process_from_info(f)
        raise self.why(f"finding process {name!r}", self._only())

    def kernel_memory(self) -> MemoryView:
        return self.memory

    # ---- modules -------------------------------------------------------------------------------
    def kernel_modules(self) -> list[ModuleInfo]:
        arch = "x64" if self.triage.is64 else "x86"
        return [TriageModuleInfo(d.name, d.name, d.base, d.size, arch, d.timestamp, d.checksum)
                for d in self.triage.drivers]

    def module_list(self, proc: Process) -> list[ModuleInfo]:
        if proc.info.extra.get("kernel"):
            return self.kernel_modules()
        raise self.why(f"the module list of process {proc.info.pid}", "it lives in the process's own memory")

    def _image_or_why(self, proc: Process, module: ModuleInfo, what: str) -> bytes:
        try:
            image, bad = pe.read_image(proc.memory, module.base, module.size or None, [])
        except PymemflowError as e:
            raise self.why(f"{what} of {module.name}", str(e)) from None
        if bad:
            raise self.why(f"{what} of {module.name}", f"{bad} pages of its image are not among the saved blocks")
        return image

    def module_exports(self, proc: Process, module: ModuleInfo) -> list[ExportInfo]:
        return pe.exports_of_image(self._image_or_why(proc, module, "exports"), module.base)

    def module_imports(self, proc: Process, module: ModuleInfo) -> list[ImportInfo]:
        return pe.imports_of_image(self._image_or_why(proc, module, "imports"), module.base)

    def module_sections(self, proc: Process, module: ModuleInfo) -> list[SectionInfo]:
        try:
            return pe.sections_of_headers(pe.read_headers(proc.memory, module.base), module.base)
        except PymemflowError as e:
            raise self.why(f"sections of {module.name}", str(e)) from None

    def memory_regions(self, proc: Process, **kw: Any) -> list[MemoryRegion]:
        raise self.why("maps", "it needs page tables and VADs")

    def threads(self, proc: Process | None = None) -> Any:
        raise self.why("threads", "it needs the thread lists")

    def handles(self, proc: Process | None = None, type_name: str | None = None) -> Any:
        raise self.why("handles", "it needs the handle tables")

    def psscan(self) -> Any:
        raise self.why("psscan", "it scans physical memory")

    def netscan(self) -> Any:
        raise self.why("netscan", "it scans physical memory")

    def malfind(self, proc: Process | None = None) -> Any:
        raise self.why("malfind", "it needs VADs and page tables")

    def keyboard(self) -> Any:
        raise self.why("keys", "the key state is in win32k's session memory")

    def timeline(self) -> Any:
        raise self.why("timeline", "it needs the process, thread and socket lists")


# ---- the other direction: what a triage dump of a machine holds ---------------------------------
def _first_thread(k: Any, eprocess: int) -> int:
    """The first ETHREAD on an EPROCESS's ThreadListHead (0 when the list is empty or unreadable)."""
    o = k.offsets
    try:
        flink = k.kmem.read_ptr(eprocess + int(o["_EPROCESS.ThreadListHead"]))
    except (PymemflowError, KeyError):
        return 0
    if not flink or flink == eprocess + int(o["_EPROCESS.ThreadListHead"]):
        return 0
    return int(flink) - int(o["_ETHREAD.ThreadListEntry"])


def _codeview_ranges(mem: MemoryView, base: int) -> list[tuple[int, int]]:
    """The kernel's debug directory and its CodeView record: with them a reader finds the PDB GUID
    (the exact offsets) in the saved blocks, as a debugger finds it in a real triage dump."""
    try:
        hdr = pe.read_headers(mem, base)
        rva, size = hdr.directory(pe.DIR_DEBUG)
        if not rva or not size:
            return []
        raw = mem.read(base + rva, min(size, 28 * 16))
    except PymemflowError:
        return []
    out = [(base + rva, len(raw))]
    for at in range(0, len(raw) - 27, 28):
        n, data_rva = struct.unpack_from("<II", raw, at + 16)
        if data_rva and 0 < n <= 0x1000:
            out.append((base + data_rva, n))
    return out


def triage_material(k: Any, *, pid: int | None = None, bugcheck: tuple[int, Iterable[int]] = (0xD1, (0, 2, 0, 0)),
                    blocks: Iterable[tuple[int, int]] = ()) -> dict[str, Any]:
    """Keyword arguments for ``write_triage`` describing machine ``k`` (a :class:`~.kernel.Win32Kernel`)
    crashed in process ``pid`` (default: the first process after System) on its first thread: the
    driver list (with each image's PE TimeDateStamp and CheckSum), copies of the EPROCESS and ETHREAD,
    and saved blocks -- the kernel's PE header page and CodeView record (a reader finds the PDB GUID),
    the EPROCESS, the ETHREAD, plus ``blocks`` (virtual address, size) read from kernel memory."""
    ps = k.offsets.pointer_size
    procs = k.process_info_list()
    info = next((p for p in procs if p.pid == pid), None) if pid is not None else \
        next((p for p in procs if p.pid not in (0, 4)), procs[0])
    if info is None:
        raise NotFoundError(f"no process with pid {pid}")
    sizes = getattr(k.offsets, "sizes", {}) or {}
    ep_size = int(sizes.get("_EPROCESS", EPROCESS_FALLBACK))
    th_size = int(sizes.get("_ETHREAD", EPROCESS_FALLBACK))
    ethread = _first_thread(k, info.address)
    drivers: list[dict[str, Any]] = []
    for m in k.kernel_modules():
        stamp = checksum = entry = 0
        try:
            hdr = pe.read_headers(k.kmem, m.base)
            stamp = hdr.timestamp
            opt = hdr.nt_offset + 24
            raw = k.kmem.read(m.base + opt, 0x48)
            entry = m.base + struct.unpack_from("<I", raw, 16)[0]
            checksum = struct.unpack_from("<I", raw, 64)[0]
        except PymemflowError as e:
            log.warning("triage: %s: PE header unreadable (%s); timestamp 0", m.name, e)
        drivers.append({"name": m.name, "base": m.base, "size": m.size, "timestamp": stamp,
                        "checksum": checksum, "entry_point": entry})
    want = [(k.facts.kernel_base, 0x1000), *_codeview_ranges(k.kmem, k.facts.kernel_base), (info.address, ep_size)]
    if ethread:
        want.append((ethread, th_size))
    want += list(blocks)
    saved = [(a, k.kmem.read(a, n)) for a, n in want]
    code, params = bugcheck
    hints = {"dtb": k.facts.dtb, "arch": k.facts.arch, "nt_build": k.facts.build,
             "PsLoadedModuleList": k.facts.ps_loaded_module_list,
             "PsActiveProcessHead": k.facts.ps_active_process_head,
             "bugcheck": {"code": int(code), "parameters": [int(x) for x in params]}}
    return {"blocks": saved, "is64": ps == 8, "hints": hints, "drivers": drivers,
            "process": k.kmem.read(info.address, ep_size),
            "thread": k.kmem.read(ethread, th_size) if ethread else b""}


def kernel_dump_ranges(k: Any) -> list[tuple[int, int]]:
    """The physical ranges a kernel memory dump of machine ``k`` holds (for ``write_crashdump(...,
    kind="kernel")``, DumpType 6): every page mapped in the kernel half of the system address space
    -- the kernel, drivers, pools, and through the page-table self-map the system's page tables --
    plus the page-table root. User memory is left out, as Windows leaves it out of a kernel dump."""
    lv = k.kmem.leaves()
    keep = (lv.flags & F_USER) == 0
    root = k.facts.dtb & ~0xFFF
    pages = {(pa, pa + n) for pa, n in zip(lv.pa[keep].tolist(), lv.size[keep].tolist(), strict=True)}
    pages.add((root, root + 0x1000))
    limit = max((b + n for b, n in k.facts.phys_runs), default=1 << 64)  # large pages may overhang RAM
    out: list[tuple[int, int]] = []
    for s, e in sorted(pages):
        e = min(e, limit)
        if s >= e:
            continue
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(e, out[-1][1]))
        else:
            out.append((s, e))
    return out
