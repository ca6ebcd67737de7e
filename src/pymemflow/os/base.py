"""The interface every OS layer (win32, linux, native) implements, and the records it returns.

The CLI's ``ps``, ``modules``, ``kmods``, ``maps``, ``exports``, ``read`` ... are written once
against this interface. Field names are the CLI's ``--json`` field names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError
from ..records import PlainRecord, record_dict
from ..types import MemoryRegion as MemoryRegion  # re-exported; defined at the bottom (arch uses it too)
from .modpick import pick_module

if TYPE_CHECKING:  # annotations only: listing records (the remote OS layer's ps) needs no NumPy
    from ..mem.view import MemoryView
    from .forensics import CarvedProcess, HandleInfo, MalfindHit, SocketInfo, ThreadInfo, TimelineEvent


class ProcessInfo(PlainRecord):
    """One process. ``state``: 'alive', 'dead' (exit code in ``exit_code``) or an OS-specific state such
    as 'sleeping'. ``address``: kernel address of the process object (EPROCESS, task_struct); 0 for
    native processes. ``extra``: OS-specific facts (uid, gid, threads, kernel_thread, ...)."""

    __slots__ = ("pid", "ppid", "name", "path", "command_line", "state", "arch", "dtb", "user_dtb", "address",
                 "wow64", "exit_code", "create_time", "extra")

    def __init__(self, pid: int, ppid: int, name: str, path: str = "", command_line: str = "", state: str = "alive",
                 arch: str = "x64", dtb: int = 0, user_dtb: int = 0, address: int = 0, wow64: bool = False,
                 exit_code: int | None = None, create_time: int | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        self.pid, self.ppid, self.name, self.path, self.command_line = pid, ppid, name, path, command_line
        self.state, self.arch, self.dtb, self.user_dtb, self.address = state, arch, dtb, user_dtb, address
        self.wow64, self.exit_code, self.create_time = wow64, exit_code, create_time
        self.extra: dict[str, Any] = {} if extra is None else extra

    def as_dict(self) -> dict[str, Any]:
        return record_dict(self)


class ModuleInfo(PlainRecord):
    __slots__ = ("name", "path", "base", "size", "arch")

    def __init__(self, name: str, path: str, base: int, size: int, arch: str = "x64") -> None:
        self.name, self.path, self.base, self.size, self.arch = name, path, base, size, arch

    def as_dict(self) -> dict[str, Any]:
        return record_dict(self)


class ExportInfo(PlainRecord):
    __slots__ = ("name", "address", "ordinal", "forwarder")

    def __init__(self, name: str, address: int, ordinal: int | None = None, forwarder: str | None = None) -> None:
        self.name, self.address, self.ordinal, self.forwarder = name, address, ordinal, forwarder

    def as_dict(self) -> dict[str, Any]:
        return record_dict(self)


class ImportInfo(PlainRecord):
    """One imported function; ``address`` is the address of its IAT slot."""

    __slots__ = ("module", "name", "address", "ordinal")

    def __init__(self, module: str, name: str, address: int, ordinal: int | None = None) -> None:
        self.module, self.name, self.address, self.ordinal = module, name, address, ordinal

    def as_dict(self) -> dict[str, Any]:
        return record_dict(self)


class SectionInfo(PlainRecord):
    __slots__ = ("name", "address", "size", "characteristics")

    def __init__(self, name: str, address: int, size: int, characteristics: int = 0) -> None:
        self.name, self.address, self.size, self.characteristics = name, address, size, characteristics

    def as_dict(self) -> dict[str, Any]:
        return record_dict(self)


class LogRecord(PlainRecord):
    """One kernel log record (``dmesg``): from the printk ring buffer in memory (linux) or the
    running kernel (native). ``level`` 0 (emerg) .. 7 (debug); ``timestamp`` in seconds since boot."""

    __slots__ = ("seq", "timestamp", "level", "facility", "text")

    def __init__(self, seq: int, timestamp: float, level: int, facility: int, text: str) -> None:
        self.seq, self.timestamp, self.level, self.facility, self.text = seq, timestamp, level, facility, text

    def as_dict(self) -> dict[str, Any]:
        return record_dict(self)


class Process:
    """A process: its info and its virtual memory (a :class:`MemoryView`)."""

    def __init__(self, os: OsLayer, info: ProcessInfo, memory: MemoryView) -> None:
        self.os = os
        self.info = info
        self.memory = memory

    def __repr__(self) -> str:
        return f"<Process {self.info.pid} {self.info.name!r}>"

    # Convenience pass-throughs so ``proc.read(...)`` works like memflow's process.read.
    def read(self, addr: int, n: int) -> bytes:
        return self.memory.read(addr, n)

    def module_list(self) -> list[ModuleInfo]:
        return self.os.module_list(self)

    def module_by_name(self, name: str, arch: str | None = None) -> ModuleInfo:
        """The module called ``name`` (case-insensitive) or at path ``name`` (``SysWOW64\\ntdll.dll``,
        a full path), of ``arch`` ('x86' or 'x64') if given. Two candidates (a WoW64 process's two
        ntdll.dll) raise ArgumentError listing both: never silently the first one."""
        return pick_module(self.module_list(), name, arch, f"process {self.info.pid} ({self.info.name})")

    def exports(self, module: ModuleInfo | str) -> list[ExportInfo]:
        return self.os.module_exports(self, self._mod(module))

    def imports(self, module: ModuleInfo | str) -> list[ImportInfo]:
        return self.os.module_imports(self, self._mod(module))

    def sections(self, module: ModuleInfo | str) -> list[SectionInfo]:
        return self.os.module_sections(self, self._mod(module))

    def maps(self, **kw: Any) -> list[MemoryRegion]:
        return self.os.memory_regions(self, **kw)

    def _mod(self, module: ModuleInfo | str) -> ModuleInfo:
        return module if isinstance(module, ModuleInfo) else self.module_by_name(module)


class OsLayer:
    """Base class of OS plugins. Subclasses implement ``process_info_list``, ``process_from_info``
    and whichever of the module / memory / export calls the OS supports (others raise
    ``NotImplementedError`` which the CLI reports as "not supported by this OS layer")."""

    name: str = "os"

    def info(self) -> dict[str, Any]:
        """OS facts for ``pymemflow info`` (version, build, kernel base, ...)."""
        return {"os": self.name}

    # --- processes ---
    def process_info_list(self) -> list[ProcessInfo]:
        raise NotImplementedError

    def process_from_info(self, info: ProcessInfo) -> Process:
        raise NotImplementedError

    def process_list(self) -> list[Process]:
        return [self.process_from_info(i) for i in self.process_info_list()]

    def process_by_pid(self, pid: int) -> Process:
        for i in self.process_info_list():
            if i.pid == pid:
                return self.process_from_info(i)
        raise NotFoundError(f"no process with pid {pid}")

    def process_by_name(self, name: str) -> Process:
        low = name.lower()
        for i in self.process_info_list():
            if i.name.lower() == low:
                return self.process_from_info(i)
        raise NotFoundError(f"no process named {name!r}")

    def process(self, pid_or_name: int | str) -> Process:
        """``-p`` on the command line: a pid (number) or a name."""
        if isinstance(pid_or_name, int):
            return self.process_by_pid(pid_or_name)
        s = str(pid_or_name)
        if s.isdigit():
            return self.process_by_pid(int(s))
        return self.process_by_name(s)

    def iter_processes(self) -> Iterator[Process]:
        for i in self.process_info_list():
            yield self.process_from_info(i)

    # --- kernel ---
    def kernel_memory(self) -> MemoryView:
        """The kernel's virtual address space."""
        raise NotImplementedError

    def kernel_modules(self) -> list[ModuleInfo]:
        raise NotImplementedError

    # --- per-process ---
    def module_list(self, proc: Process) -> list[ModuleInfo]:
        raise NotImplementedError

    def module_exports(self, proc: Process, module: ModuleInfo) -> list[ExportInfo]:
        raise NotImplementedError

    def module_imports(self, proc: Process, module: ModuleInfo) -> list[ImportInfo]:
        raise NotImplementedError

    def module_sections(self, proc: Process, module: ModuleInfo) -> list[SectionInfo]:
        raise NotImplementedError

    def memory_regions(self, proc: Process, **kw: Any) -> list[MemoryRegion]:
        raise NotImplementedError

    # --- forensics (records in pymemflow/os/forensics.py; commands in cli/commands/forensics.py) ---
    def threads(self, proc: Process | None = None) -> list[ThreadInfo]:
        """Threads of ``proc``, or of every process."""
        raise NotImplementedError

    def handles(self, proc: Process | None = None, type_name: str | None = None) -> list[HandleInfo]:
        """Open handles (Windows) / file descriptors (Linux) of ``proc`` or of every process;
        ``type_name`` keeps one object type (case-insensitive: 'File', 'Key', 'socket' ...)."""
        raise NotImplementedError

    def psscan(self) -> list[CarvedProcess]:
        """Processes carved from memory, not from the process list (finds unlinked ones)."""
        raise NotImplementedError

    def netscan(self) -> list[SocketInfo]:
        """Network endpoints and listeners."""
        raise NotImplementedError

    def malfind(self, proc: Process | None = None) -> list[MalfindHit]:
        """Private executable memory not backed by an image, in ``proc`` or every process."""
        raise NotImplementedError

    def timeline(self) -> list[TimelineEvent]:
        """Every timestamp the layer knows, sorted (:func:`pymemflow.os.timeline.collect`)."""
        from .timeline import collect  # lazy: timeline imports base (a cycle at import time)

        return collect(self)

    def timeline_sources(self) -> list[Callable[[], Iterable[TimelineEvent]]]:
        """Where :meth:`timeline` looks; layers extend this list (module loads, kernel log ...)."""
        from .timeline import default_sources  # lazy: timeline imports base (a cycle at import time)

        return default_sources(self)

    def close(self) -> None:
        """Release resources (and the input connector's). Idempotent."""

    def __enter__(self) -> OsLayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
