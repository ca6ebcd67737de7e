"""The local Linux machine as an OS layer: processes from /proc, modules = mapped files, memory maps,
ELF exports from the files on disk, and process memory through process_vm_readv.

Why: ``pymemflow -o native ps`` works on any Linux box, and ``-o native -c qemu:VM`` chains a VM
connector onto the host exactly like memflow's native plugin. Everything is read fresh on each call
(processes come and go); a process that exits mid-listing is skipped, not an error.
"""

from __future__ import annotations

import os
import platform
import shlex
from typing import Any

from ...errors import FormatError, NotFoundError, OsLayerError
from ...live import procfs
from ...live.elf import (
    ET_EXEC,
    PT_LOAD,
    SHT_DYNSYM,
    SHT_SYMTAB,
    STB_GLOBAL,
    STB_WEAK,
    STT_FUNC,
    STT_GNU_IFUNC,
    STT_OBJECT,
    ElfFile,
    elf_arch,
)
from ...mem.view import MemoryView
from ..base import (
    ExportInfo,
    ImportInfo,
    LogRecord,
    MemoryRegion,
    ModuleInfo,
    OsLayer,
    Process,
    ProcessInfo,
    SectionInfo,
)
from . import kmsg
from .memory import ProcessMemoryView

_HOST_ARCH = {"x86_64": "x64", "amd64": "x64", "i386": "x86", "i686": "x86", "aarch64": "aarch64",
              "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())


class NativeOs(OsLayer):
    """This machine's processes. ``proc`` is the procfs mount (default /proc)."""

    name = "native"
    is_local_host = True
    """Connectors chained on top (``-o native -c qemu:VM``) may use the host directly."""

    def __init__(self, proc: str = procfs.PROC, writable: bool = False, io: str = "auto") -> None:
        self.proc = proc
        self.writable = writable
        self.io = io
        self._arch_cache: dict[tuple[int, int], str] = {}
        self._views: dict[int, ProcessMemoryView] = {}

    def info(self) -> dict[str, Any]:
        u = os.uname()
        return {"os": "native", "kernel": u.release, "version": u.version, "machine": u.machine,
                "hostname": u.nodename, "arch": _HOST_ARCH}

    # -- processes --------------------------------------------------------------------------------
    def _exe_arch(self, pid: int, exe: str) -> str:
        try:
            st = os.stat(f"{self.proc}/{pid}/exe")
        except OSError:
            return _HOST_ARCH
        key = (st.st_dev, st.st_ino)
        arch = self._arch_cache.get(key)
        if arch is None:
            arch = elf_arch(f"{self.proc}/{pid}/exe") or _HOST_ARCH
            self._arch_cache[key] = arch
        return arch

    def _info(self, pid: int) -> ProcessInfo | None:
        st = procfs.stat(pid, self.proc)
        if st is None:
            return None
        exe = procfs.exe(pid, self.proc)
        argv = procfs.cmdline(pid, self.proc) or []
        kernel_thread = not argv and not exe
        name = st.comm
        base = os.path.basename(exe.removesuffix(" (deleted)")) if exe else ""
        if base and len(name) >= 15 and base.startswith(name):
            name = base  # comm is cut at 15 characters
        status = procfs.status(pid, self.proc)
        uid = status.get("Uid", "").split()
        return ProcessInfo(
            pid=pid, ppid=st.ppid, name=name, path=exe, command_line=shlex.join(argv) if argv else "",
            state=procfs.state_name(st.state), arch=_HOST_ARCH if kernel_thread else self._exe_arch(pid, exe),
            create_time=st.starttime,
            extra={"uid": int(uid[0]) if uid else None, "threads": st.num_threads,
                   "kernel_thread": kernel_thread, "comm": st.comm},
        )

    def process_info_list(self) -> list[ProcessInfo]:
        out = []
        for pid in procfs.pids(self.proc):
            info = self._info(pid)
            if info is not None:
                out.append(info)
        return out

    def process_by_pid(self, pid: int) -> Process:
        info = self._info(pid)
        if info is None:
            raise NotFoundError(f"no process with pid {pid}")
        return self.process_from_info(info)

    def process_from_info(self, info: ProcessInfo) -> Process:
        ptr = 4 if info.arch in ("x86", "arm", "x32", "riscv32") else 8
        return Process(self, info, self.memory_of(info.pid, ptr))

    def memory_of(self, pid: int, pointer_size: int = 8) -> MemoryView:
        """The virtual memory of process ``pid`` (one view per pid, reused)."""
        v = self._views.get(pid)
        if v is None or v.pointer_size != pointer_size:
            v = ProcessMemoryView(pid, pointer_size, self.writable, self.io)
            self._views[pid] = v
        return v

    # -- memory maps and modules ------------------------------------------------------------------
    def _maps(self, proc: Process) -> list[procfs.MapEntry]:
        path = f"{self.proc}/{proc.info.pid}/maps"
        try:
            with open(path) as f:
                return procfs.parse_maps(f.read())
        except FileNotFoundError:
            raise NotFoundError(f"process {proc.info.pid} exited") from None
        except PermissionError:
            raise OsLayerError(f"cannot read {path}: permission denied (needs ptrace access: same user, or "
                           "root with CAP_SYS_PTRACE)") from None

    def memory_regions(self, proc: Process, **kw: Any) -> list[MemoryRegion]:
        out = []
        for m in self._maps(proc):
            if m.path == "[stack]":
                kind = "stack"
            elif m.path == "[heap]":
                kind = "heap"
            elif m.path.startswith("["):
                kind = m.path.strip("[]")
            elif m.path:
                kind = "mapped"
            else:
                kind = "private"
            out.append(MemoryRegion(m.start, m.end, m.perms[:3], kind, m.path))
        return out

    def module_list(self, proc: Process) -> list[ModuleInfo]:
        """Mapped files (one module per path, spanning all its mappings), in address order."""
        spans: dict[str, list[int]] = {}
        for m in self._maps(proc):
            if not m.path.startswith("/") or m.inode == 0:
                continue
            s = spans.setdefault(m.path, [m.start, m.end])
            s[0] = min(s[0], m.start)
            s[1] = max(s[1], m.end)
        mods = []
        for path, (lo, hi) in sorted(spans.items(), key=lambda kv: kv[1][0]):
            clean = path.removesuffix(" (deleted)")
            mods.append(ModuleInfo(os.path.basename(clean), path, lo, hi - lo,
                                   elf_arch(self._file_of(proc, path)) or proc.info.arch))
        return mods

    def _file_of(self, proc: Process, path: str) -> str:
        """The mapped file as this process sees it (its root may differ from ours: containers)."""
        root = f"{self.proc}/{proc.info.pid}/root"
        cand = root + path.removesuffix(" (deleted)")
        return cand if os.path.exists(cand) else path

    def _elf(self, proc: Process, module: ModuleInfo) -> tuple[ElfFile, int]:
        try:
            elf = ElfFile(self._file_of(proc, module.path))
        except FileNotFoundError:
            raise NotFoundError(f"module file {module.path} is gone") from None
        except PermissionError:
            raise OsLayerError(f"cannot read module file {module.path}: permission denied") from None
        try:
            loads = [p for p in elf.program_headers() if p.type == PT_LOAD]
            first = min((p.vaddr - p.offset for p in loads), default=0) if loads else 0
            first &= ~0xFFF
            bias = 0 if elf.type == ET_EXEC else module.base - first
        except FormatError:
            elf.close()
            raise
        return elf, bias

    def module_exports(self, proc: Process, module: ModuleInfo) -> list[ExportInfo]:
        """Defined global/weak functions and objects of the module's dynamic symbol table (``.dynsym``;
        ``.symtab`` when a file has no dynsym), at their run-time addresses."""
        elf, bias = self._elf(proc, module)
        with elf:
            syms = elf.symbols(SHT_DYNSYM) or elf.symbols(SHT_SYMTAB)
        out = []
        seen: set[str] = set()
        for s in syms:
            if (s.shndx == 0 or not s.name or s.bind not in (STB_GLOBAL, STB_WEAK)
                    or s.type not in (STT_FUNC, STT_OBJECT, STT_GNU_IFUNC)):
                continue
            name = s.name.split("@", 1)[0]
            if name in seen:
                continue
            seen.add(name)
            out.append(ExportInfo(name, bias + s.value))
        return out

    def module_imports(self, proc: Process, module: ModuleInfo) -> list[ImportInfo]:
        """GOT slots (GLOB_DAT/JUMP_SLOT relocations) of undefined dynamic symbols; ``module`` is the
        library named by the symbol's version requirement ("" for unversioned symbols)."""
        elf, bias = self._elf(proc, module)
        with elf:
            return [ImportInfo(lib, name, bias + off) for off, name, lib in elf.import_slots()]

    def module_sections(self, proc: Process, module: ModuleInfo) -> list[SectionInfo]:
        elf, bias = self._elf(proc, module)
        with elf:
            return [SectionInfo(s.name, bias + s.addr if s.addr else 0, s.size, s.flags)
                    for s in elf.section_headers() if s.name]

    # -- kernel -----------------------------------------------------------------------------------
    def kernel_modules(self) -> list[ModuleInfo]:
        """Loaded kernel modules from /proc/modules (addresses are 0 without root / kptr_restrict)."""
        text = procfs.read_text(f"{self.proc}/modules") or ""
        out = []
        for line in text.splitlines():
            p = line.split()
            if len(p) >= 6:
                try:
                    out.append(ModuleInfo(p[0], p[0], int(p[5], 16), int(p[1]), _HOST_ARCH))
                except ValueError:
                    continue
        return out

    def dmesg(self) -> list[LogRecord]:
        """The running kernel's log, oldest first (/dev/kmsg, else klogctl; see :mod:`.kmsg`)."""
        return kmsg.kernel_log()

    def close(self) -> None:
        for v in self._views.values():
            v.close()
        self._views.clear()
