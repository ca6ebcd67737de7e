"""``LinuxOs``: a Linux kernel read from bare physical memory, no symbol files needed.

VMCOREINFO gives the page-table root and the kallsyms tables; kallsyms gives every symbol (``init_task``,
``__start_BTF``, ``modules``); BTF gives the struct layouts. A ``System.map`` (symbols) and a
volatility3 ISF (layouts, symbols) can stand in for kernels built without them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from ...arch import VirtualMemory
from ...errors import DegradedWarning, FormatError, NotFoundError, OsLayerError, PymemflowError
from ...mem.phys import PhysicalMemory
from ...mem.scan import CancelToken
from ...mem.view import MemoryView
from ...types import ProgressReporter
from ..base import MemoryRegion, ModuleInfo, OsLayer, Process, ProcessInfo
from ..forensics import CarvedProcess, HandleInfo, MalfindHit, SocketInfo, ThreadInfo, TimelineEvent
from ..walk import report
from . import boottime as boottime_mod
from . import dmesg as dmesg_mod
from . import files as files_mod
from . import infer as infer_mod
from . import kallsyms as ks
from . import malfind as malfind_mod
from . import maps as maps_mod
from . import modules as modules_mod
from . import net as net_mod
from . import psscan as psscan_mod
from . import tasks as tasks_mod
from . import threads as threads_mod
from . import timeline as timeline_mod
from .btf import Btf
from .dentry import PathResolver
from .discovery import START_KERNEL_MAP, discover
from .isf import IsfTypes, isf_symbols
from .kread import Layouts, read_obj, read_ptr, walk_list

BTF_SCAN = 128 << 20
BTF_MAX = 64 << 20


class LinuxOs(OsLayer):
    name = "linux"

    def __init__(self, phys: PhysicalMemory, *, system_map: str | None = None, isf: str | None = None,
                 cancel: CancelToken | None = None, progress: ProgressReporter | None = None,
                 dtb: int | None = None, kaslr_offset: int | None = None) -> None:
        self.phys = phys
        self.warnings: list[str] = []
        """What walks and decoders could not read (also issued as Python warnings)."""
        self._init_task_found: int | None = None
        hints = getattr(phys, "hints", {}) or {}
        max_addr = int(getattr(getattr(phys, "metadata", None), "max_address", 0) or 0)
        if not max_addr:
            raise OsLayerError("linux: the connector does not say how much physical memory it has (max_address)")
        self.vmcoreinfo, self.root = discover(phys, hints, max_addr, dtb=dtb, kaslr_offset=kaslr_offset,
                                              system_map=system_map, cancel=cancel, progress=progress)
        vi = self.vmcoreinfo
        self.arch = self.root.arch
        self.proc_arch = "x64" if vi.is_64bit else "x86"
        self.kmem: VirtualMemory = VirtualMemory(phys, self.arch, self.root.dtb)
        self.symbols = self._load_symbols(system_map, isf)
        if isf and self.symbols.source == "kallsyms":
            self.symbols = self.symbols.merged(self._isf_symbols(isf))
        self._isf = isf
        self._types: Layouts | None = None
        self._toff_: tasks_mod.TaskOffsets | None = None
        self._voff: maps_mod.VmaOffsets | None = None
        self._paths_: PathResolver | None = None
        self._closed = False
        self._inferred: infer_mod.InferredLayout | None = None
        self._no_types_error: OsLayerError | None = None
        self._boot: tuple[boottime_mod.BootTime | None] | None = None
        self._files: files_mod.FileReader | None = None

    @property
    def types(self) -> Layouts:
        """Struct layouts (BTF, or the ISF), loaded on first use: symbols, ``info`` and ``dmesg`` work
        without them, so a kernel without BTF still gets those."""
        if self._types is None:
            self._types = self._load_types(self._isf)
        return self._types

    @property
    def _toff(self) -> tasks_mod.TaskOffsets:
        if self._toff_ is None:
            self._toff_ = tasks_mod.TaskOffsets.from_layouts(self.types)
        return self._toff_

    @property
    def _paths(self) -> PathResolver:
        if self._paths_ is None:
            self._paths_ = PathResolver(self.kmem, self.types)
        return self._paths_

    # ---- discovery ---------------------------------------------------------------------------------
    def _load_symbols(self, system_map: str | None, isf: str | None) -> ks.SymbolTable:
        vi = self.vmcoreinfo
        s = vi.symbols
        stext = s.get("_stext")
        if system_map:
            table = ks.load_system_map(system_map)
            shift = (stext - table["_stext"]) if stext is not None and "_stext" in table else self.root.kaslr_offset
            return ks.load_system_map(system_map, shift) if shift else table
        need = ("kallsyms_names", "kallsyms_num_syms", "kallsyms_token_table", "kallsyms_token_index",
                "kallsyms_offsets")
        if all(n in s for n in need):
            ps = self.kmem.pointer_size
            base_sym = s.get("kallsyms_relative_base")
            base = (read_ptr(self.kmem, base_sym) if base_sym else None) or 0
            num = read_obj(self.kmem, s["kallsyms_num_syms"], 4)
            why = "kallsyms_num_syms unreadable"
            if num.ok:
                tables = ks.KallsymsTables(s["kallsyms_names"], num.u32(0), s["kallsyms_token_table"],
                                           s["kallsyms_token_index"], s["kallsyms_offsets"], base)
                try:
                    table = ks.decode(self.kmem, tables, check={"_stext": stext} if stext else None,
                                      pointer_size=ps)
                except PymemflowError as e:
                    why = str(e)
                else:
                    if table.lost:
                        self._degraded(f"kallsyms: {table.lost} of {tables.num_syms} symbols lost to damaged "
                                       "pages; the rest are used")
                    return table
            if isf:
                return self._isf_symbols(isf)
            self._degraded(f"kallsyms unusable ({why}); only the {len(s)} VMCOREINFO symbols are known")
            return ks.SymbolTable(list(s), ["?"] * len(s), list(s.values()), "VMCOREINFO")
        if isf:
            return self._isf_symbols(isf)
        raise OsLayerError(f"linux {vi.osrelease}: no symbol table: VMCOREINFO lists no kallsyms tables "
                       "(kernels before 6.x); pass system_map=FILE (System.map) or isf=FILE")

    def _isf_symbols(self, isf: str) -> ks.SymbolTable:
        """ISF symbols are link-time addresses: shift them so ``_stext`` lands where VMCOREINFO says."""
        syms = isf_symbols(isf)
        names = list(syms)
        stext = self.vmcoreinfo.symbols.get("_stext")
        shift = self.root.kaslr_offset
        if stext is not None and "_stext" in syms:
            shift = stext - syms["_stext"]
        return ks.SymbolTable(names, ["?"] * len(names), [syms[n] + shift for n in names], f"ISF {isf}")

    def _load_types(self, isf: str | None) -> Layouts:
        if isf:
            return IsfTypes.load(isf)
        blob, where = self._find_btf()
        if blob is None:
            raise OsLayerError(f"linux {self.vmcoreinfo.osrelease}: no BTF type information in this kernel "
                           f"({where}; CONFIG_DEBUG_INFO_BTF is off?): pass isf=FILE "
                           "(a volatility3 Linux ISF for this exact kernel)")
        btf = Btf(blob, source=where, pointer_size=self.kmem.pointer_size)
        if btf.damage:
            self._degraded(f"BTF damaged, {len(btf)} types kept: {btf.damage}")
        return btf

    def _degraded(self, text: str) -> None:
        """Part of the kernel's metadata is damaged: say what was lost, go on with the rest."""
        report("linux", [text], self.warnings, DegradedWarning)

    def _find_btf(self) -> tuple[bytes | None, str]:
        start, stop = self.symbols.get("__start_BTF"), self.symbols.get("__stop_BTF")
        if start and stop and 0 < stop - start <= BTF_MAX:
            res = self.kmem.read_batch([start], [stop - start])  # damaged pages read as zeros
            if res.failures:
                self._degraded(f"BTF at {start:#x}: {sum(f.length for f in res.failures):#x} bytes unreadable")
            return res.data.tobytes(), f"BTF at {start:#x}"
        # No data symbols (CONFIG_KALLSYMS_ALL off): scan the kernel image for a BTF header.
        stext = self.symbols.get("_etext") or self.vmcoreinfo.symbols.get("_stext")
        if stext is None:
            return None, "no __start_BTF symbol and no _stext to scan from"
        if self.vmcoreinfo.is_64bit:
            pa = stext - START_KERNEL_MAP + (self.vmcoreinfo.phys_base or 0)
        else:
            pa = stext - (self.root.page_offset or 0xC0000000)
        import struct as _st
        magic = b"\x9f\xeb\x01\x00\x18\x00\x00\x00"
        end = min(pa + BTF_SCAN, int(self.phys.metadata.max_address))
        chunk = 16 << 20
        pos = pa
        while pos < end:
            data = self.phys.read(pos, min(chunk + 64, end - pos), zero_fill=True)
            at = data.find(magic)
            while 0 <= at < chunk:
                hdr = data[at:at + 24]
                if len(hdr) == 24:
                    _m, _v, _f, hl, to, tl, so, sl = _st.unpack("<HBBIIIII", hdr)
                    total = hl + max(to + tl, so + sl)
                    if to == 0 and so == tl and 0 < total <= BTF_MAX:
                        return self.phys.read(pos + at, total, zero_fill=True), f"BTF at physical {pos + at:#x}"
                at = data.find(magic, at + 1)
            pos += chunk
        return None, f"no __start_BTF symbol and no BTF header in {BTF_SCAN >> 20} MiB after the kernel text"

    def info(self) -> dict[str, Any]:
        vi = self.vmcoreinfo
        return {"os": "linux", "release": vi.osrelease, "build_id": vi.build_id, "arch": self.arch,
                "dtb": self.root.dtb, "kaslr_offset": self.root.kaslr_offset,
                "kernel_base": vi.symbols.get("_stext", 0), "symbols": len(self.symbols),
                "symbol_source": self.symbols.source, "types": getattr(self._types, "source", "not loaded"),
                "vmcoreinfo_at": vi.location, "vmcoreinfo_from": self.root.how}

    # ---- processes ---------------------------------------------------------------------------------
    def init_task(self) -> int:
        a = self.symbols.get("init_task")
        if a is None:
            a = self._init_task_by_comm()
        if a is None:
            raise OsLayerError("linux: no init_task symbol (kallsyms damaged or without CONFIG_KALLSYMS_ALL) and "
                               "no idle task 'swapper/0' with a closed task list found: pass system_map=FILE")
        return a

    def _init_task_by_comm(self) -> int | None:
        """init_task located without its symbol: the idle task's comm "swapper/0" in the kernel's data,
        accepted when its ``tasks`` ring closes (next->prev comes back). Needs the types (BTF/ISF)."""
        if self._init_task_found is not None:
            return self._init_task_found or None
        self._init_task_found = 0
        start = self.symbols.get("_etext") or self.vmcoreinfo.symbols.get("_stext")
        if start is None:
            return None
        off = self._toff
        po = self.root.page_offset if self.root.page_offset is not None else START_KERNEL_MAP
        base = (self.vmcoreinfo.phys_base or 0) if self.vmcoreinfo.is_64bit else 0
        pa = start - po + base
        data = self.phys.read(pa, infer_mod.SCAN, zero_fill=True)
        at = data.find(infer_mod.IDLE_COMM)
        tries = 0
        while at >= 0 and tries < 16:
            tries += 1
            task = start + at - off.comm
            nxt = read_ptr(self.kmem, task + off.tasks)
            back = read_ptr(self.kmem, nxt + self.kmem.pointer_size) if nxt else None
            if nxt and nxt != task + off.tasks and back == task + off.tasks:
                self._init_task_found = task
                self._degraded(f"init_task symbol lost; idle task found by its comm at {task:#x}")
                return task
            at = data.find(infer_mod.IDLE_COMM, at + 1)
        return None

    def _user_dtb(self, mm: int) -> int:
        if not mm:
            return 0
        pgd = read_ptr(self.kmem, mm + self._toff.mm_pgd)
        if not pgd:
            return 0
        try:
            return self.kmem.translate(pgd)
        except PymemflowError:
            return 0

    def process_info_list(self) -> list[ProcessInfo]:
        if self._isf is None and self._types is None and self._infer_ok():
            return self._inferred_process_list()
        lost: list[str] = []
        out = [info for addr in tasks_mod.task_addresses(self.kmem, self.init_task(), self._toff, lost)
               if (info := self._task_info(addr, lost)) is not None]
        self._warn(lost)
        return out

    def _task_info(self, addr: int, lost: list[str]) -> ProcessInfo | None:
        """The ProcessInfo of the task_struct at ``addr`` (None when unreadable)."""
        off = self._toff
        t = read_obj(self.kmem, addr, off.size)
        if not t.ok:
            return None
        d = tasks_mod.task_info(self.kmem, t, off, self.proc_arch)
        if addr == self.init_task():
            d["kernel_thread"] = True
        mm = d["mm"]
        dtb, path, cmd = 0, "", ""
        if mm and not d["kernel_thread"]:
            m = read_obj(self.kmem, mm, max(off.mm_pgd, off.mm_arg_end, off.mm_exe_file) + 8)
            dtb = self._user_dtb(mm)
            if m.ok:
                path = self._paths.file_path(m.ptr(off.mm_exe_file))
                if dtb:
                    um = VirtualMemory(self.phys, self.arch, dtb, tlb=False)
                    cmd = tasks_mod.command_line(um, m.ptr(off.mm_arg_start), m.ptr(off.mm_arg_end), lost)
        threads = tasks_mod.thread_ids(self.kmem, t, off, lost)
        return tasks_mod.make_info(d, address=addr, arch=self.proc_arch, dtb=dtb, path=path, cmdline=cmd,
                                   threads=threads)

    def _warn(self, texts: list[str]) -> None:
        """Python warnings (stderr in the CLI) and kept in ``self.warnings``."""
        report("linux", texts, self.warnings)

    def _infer_ok(self) -> bool:
        """True when the kernel has no BTF: then the task layout is inferred from memory (infer.py)."""
        try:
            _ = self.types
            return False
        except OsLayerError as e:
            self._no_types_error = e
            return True

    def _inferred_process_list(self) -> list[ProcessInfo]:
        """pid, ppid, comm, command line and DTB without any type information (kernels without BTF)."""
        if self._inferred is None:
            try:
                start = self.symbols.get("_etext") or self.vmcoreinfo.symbols["_stext"]
                po = self.root.page_offset if self.root.page_offset is not None else START_KERNEL_MAP
                self._inferred = infer_mod.infer(self.phys, self.kmem, self.arch, self.root.dtb, start, po)
            except (OsLayerError, KeyError) as e:
                raise OsLayerError(f"{self._no_types_error}; inferring the task layout from memory failed too: {e}") from None
        lay = self._inferred
        ps = self.kmem.pointer_size
        span = max(lay.comm + 16, lay.pid + 8, lay.real_parent + ps, lay.mm + ps)
        out = []
        walk = walk_list(self.kmem, lay.init_task + lay.tasks, what="init_task.tasks", link_offset=lay.tasks, span=span)
        self._warn(walk.warnings)
        for node in [lay.init_task + lay.tasks] + walk.entries:
            addr = node - lay.tasks
            t = read_obj(self.kmem, addr, span)
            if not t.ok:
                continue
            parent = t.ptr(lay.real_parent)
            p = read_obj(self.kmem, parent + lay.pid + 4, 4) if parent and parent != addr else None
            mm = t.ptr(lay.mm)
            dtb, cmd = 0, ""
            if mm and lay.mm_pgd is not None:
                pgd = read_ptr(self.kmem, mm + lay.mm_pgd)
                try:
                    dtb = self.kmem.translate(pgd) if pgd else 0
                except PymemflowError:
                    dtb = 0
                if dtb and lay.mm_arg_start is not None:
                    m = read_obj(self.kmem, mm + lay.mm_arg_start, 2 * ps)
                    um = VirtualMemory(self.phys, self.arch, dtb, tlb=False)
                    cmd = tasks_mod.command_line(um, m.ptr(0), m.ptr(ps)) if m.ok else ""
            out.append(ProcessInfo(pid=t.i32(lay.pid + 4), ppid=p.i32(0) if p is not None and p.ok else 0,
                                   name=t.cstr(lay.comm, 16), command_line=cmd, arch=self.proc_arch, dtb=dtb,
                                   user_dtb=dtb, address=addr,
                                   extra={"tid": t.i32(lay.pid), "kernel_thread": not mm or addr == lay.init_task,
                                          "mm": mm, "layout": "inferred"}))
        return out

    def process_from_info(self, info: ProcessInfo) -> Process:
        mem: MemoryView = VirtualMemory(self.phys, self.arch, info.dtb) if info.dtb else self.kmem
        return Process(self, info, mem)

    # ---- kernel ------------------------------------------------------------------------------------
    def kernel_memory(self) -> MemoryView:
        return self.kmem

    def kernel_modules(self) -> list[ModuleInfo]:
        head = self.symbols.get("modules")
        if head is None:
            raise NotFoundError("linux: no 'modules' symbol (kallsyms without CONFIG_KALLSYMS_ALL?)")
        lost: list[str] = []
        mods = modules_mod.kernel_modules(self.kmem, head, self.types, self.proc_arch, lost)
        self._warn(lost)
        return mods

    def dmesg(self) -> list[dmesg_mod.LogRecord]:
        lost: list[str] = []
        out = dmesg_mod.read_log(self.kmem, self.vmcoreinfo, lost)
        self._warn(lost)
        return out

    # ---- per process -------------------------------------------------------------------------------
    def memory_regions(self, proc: Process, **kw: Any) -> list[MemoryRegion]:
        if proc.info.extra.get("layout") == "inferred":
            raise NotImplementedError("memory maps need BTF or isf=FILE (only the process list is inferred)")
        if self._voff is None:
            self._voff = maps_mod.VmaOffsets.from_layouts(self.types)
        mm = int(proc.info.extra.get("mm") or 0)
        if proc.info.extra.get("kernel_thread"):
            return []
        lost: list[str] = []
        out = maps_mod.regions(self.kmem, mm, self._voff, self._paths, lost)
        self._warn([f"pid {proc.info.pid}: {w}" for w in lost])
        return out

    def module_list(self, proc: Process) -> list[ModuleInfo]:
        """Mapped files of a process (one record per file: lowest start to highest end)."""
        spans: dict[str, list[int]] = {}
        for r in self.memory_regions(proc):
            if r.kind in ("mapped", "shared") and r.path:
                s = spans.setdefault(r.path, [r.start, r.end])
                s[0], s[1] = min(s[0], r.start), max(s[1], r.end)
        return [ModuleInfo(os.path.basename(p), p, s, e - s, proc.info.arch) for p, (s, e) in
                sorted(spans.items(), key=lambda kv: kv[1][0])]

    # ---- forensics (issue 18): threads, open files, sockets, pid-idr scan, injected code, timeline ------
    def boot_time(self) -> boottime_mod.BootTime | None:
        """The boot's wall-clock time from the kernel's timekeeper (:mod:`.boottime`); None when it
        cannot be trusted (then start times are left out, with a warning)."""
        if self._boot is None:
            lost: list[str] = []
            self._boot = (boottime_mod.read_boot_time(self.kmem, self.symbols, self.types, lost),)
            self._warn(lost)
        return self._boot[0]

    def _leaders(self, proc: Process | None) -> list[int]:
        """task_struct addresses of ``proc``, or of every thread-group leader: those on the task list, then
        those only the pid idr knows (hidden by unlinking: their threads, files and sockets are shown too)."""
        if proc is not None:
            if proc.info.extra.get("layout") == "inferred":
                raise NotImplementedError("threads, files and sockets need BTF or isf=FILE")
            return [proc.info.address]
        try:
            return [p.address for p in sorted(self.psscan(), key=lambda p: not p.listed)]
        except NotFoundError:  # no init_pid_ns symbol: the task list alone
            lost: list[str] = []
            out = tasks_mod.task_addresses(self.kmem, self.init_task(), self._toff, lost)
            self._warn(lost)
            return out

    def threads(self, proc: Process | None = None) -> list[ThreadInfo]:
        lost: list[str] = []
        out = threads_mod.thread_records(self.kmem, self._leaders(proc), self._toff,
                                         threads_mod.ThreadOffsets.from_layouts(self.types), self.boot_time(),
                                         self.symbols.symbolize, lost)
        self._warn(lost)
        return out

    def _open_files(self, proc: Process | None) -> list[tuple[int, str, files_mod.OpenFile]]:
        """(pid, name, open file) of every fd of ``proc`` or of every process."""
        if self._files is None:
            self._files = files_mod.FileReader(self.kmem, self.types, self._paths, self.symbols.symbolize)
        off = self._toff
        out = []
        lost: list[str] = []
        for addr in self._leaders(proc):
            t = read_obj(self.kmem, addr, max(off.tgid, off.comm + off.comm_len) + 4)
            if not t.ok:
                continue
            pid, name = t.i32(off.tgid), t.cstr(off.comm, off.comm_len)
            out += [(pid, name, f) for f in self._files.open_files(addr, f"pid {pid}", lost)]
        self._warn(lost)
        return out

    def handles(self, proc: Process | None = None, type_name: str | None = None) -> list[HandleInfo]:
        rows = [files_mod.handle_record(pid, f) for pid, _name, f in self._open_files(proc)]
        return [h for h in rows if type_name is None or h.type.lower() == type_name.lower()]

    def netscan(self) -> list[SocketInfo]:
        lost: list[str] = []
        socks = [o for o in self._open_files(None) if o[2].type == "socket" and o[2].private_data]
        out = net_mod.SocketReader(self.kmem, self.types).sockets(socks, lost)
        self._warn(lost)
        return out

    def psscan(self) -> list[CarvedProcess]:
        ns = self.symbols.get("init_pid_ns")
        if ns is None:
            raise NotFoundError("linux: no init_pid_ns symbol (kallsyms without CONFIG_KALLSYMS_ALL?): "
                                "the pid idr cannot be found; pass system_map=FILE")
        lost: list[str] = []
        off = self._toff
        listed = tasks_mod.task_addresses(self.kmem, self.init_task(), off, lost)
        found = psscan_mod.pid_tasks(self.kmem, ns, psscan_mod.IdrOffsets.from_layouts(self.types), lost)
        if set(found) - set(listed):  # a running machine may have forked since the list was read: read it again
            listed = tasks_mod.task_addresses(self.kmem, self.init_task(), off, [])
        out = psscan_mod.carved(self.kmem, listed, found, off, threads_mod.ThreadOffsets.from_layouts(self.types),
                                self.boot_time(), lost)
        self._warn(lost)
        return out

    def malfind(self, proc: Process | None = None) -> list[MalfindHit]:
        out: list[MalfindHit] = []
        if proc is not None:
            procs = [proc]
        else:  # every listed process, then those only the pid idr knows (unlinked ones)
            lost: list[str] = []
            infos = [i for a in self._leaders(None) if (i := self._task_info(a, lost)) is not None]
            self._warn(lost)
            procs = [self.process_from_info(i) for i in infos]
        for p in procs:
            if p.info.extra.get("kernel_thread") or not p.info.dtb:
                continue
            out += malfind_mod.hits(p.info.pid, p.info.name, p.info.arch, self.memory_regions(p), p.memory)
        return out

    def timeline_sources(self) -> list[Callable[[], Iterable[TimelineEvent]]]:
        """Process and thread start times (carved processes included), sockets, and the kernel log."""
        return [*super().timeline_sources(), lambda: timeline_mod.log_events(self.dmesg(), self.boot_time())]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            close = getattr(self.phys, "close", None)
            if close is not None:
                close()


__all__ = ["LinuxOs", "FormatError"]
