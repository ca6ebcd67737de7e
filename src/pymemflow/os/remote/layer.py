"""The client side of a daemon connection's OS layer: same methods and records as a local one."""

from __future__ import annotations

from typing import Any

from ...remote.client import Client
from ...remote.protocol import quote_segment
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


def _records(cls: Any, rows: list[dict[str, Any]], drop: tuple[str, ...] = ()) -> list[Any]:
    return [cls(**{k: v for k, v in r.items() if k not in drop}) for r in rows]


class RemoteProcess(Process):
    """A process whose memory view is made on first use (listing needs no NumPy)."""

    def __init__(self, os: RemoteOs, info: ProcessInfo) -> None:
        self._memory: Any = None
        super().__init__(os, info, None)  # type: ignore[arg-type]

    @property  # type: ignore[override]
    def memory(self) -> Any:
        if self._memory is None:
            from .memory import RemoteMemory  # lazy: NumPy only once process memory is used

            os_layer: RemoteOs = self.os  # type: ignore[assignment]
            self._memory = RemoteMemory(os_layer.client, os_layer.process_path(self.info.pid),
                                        4 if self.info.arch in ("x86", "x86pae") or self.info.wow64 else 8)
        return self._memory

    @memory.setter
    def memory(self, value: Any) -> None:
        if value is not None:
            self._memory = value


class Record:
    """An OS-specific record from the daemon (``dmesg`` ...): its fields as attributes, ``as_dict()``."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.__dict__.update(fields)
        self._fields = list(fields)

    def as_dict(self) -> dict[str, Any]:
        return {k: self.__dict__[k] for k in self._fields}

    def __repr__(self) -> str:
        return f"Record({self.as_dict()!r})"


class RemoteKeyboard:
    def __init__(self, client: Client, path: str) -> None:
        self.client, self.path = client, path

    def down_keys(self) -> list[int]:
        return [int(v) for v in self.client.get(self.path)["down"]]


class RemoteOs(OsLayer):
    """The daemon's OS layer. Opening sends nothing: the connection's OS facts (``name``, ``info()``)
    are asked for on first use, so ``ps`` is one request; an unknown connection fails at the first
    request with the daemon's message."""

    def __init__(self, client: Client, conn: str) -> None:
        self.client = client
        self.conn = conn
        self.base = f"/connections/{conn}"
        self._facts: dict[str, Any] | None = None
        self._kernel: Any = None

    def _os_facts(self) -> dict[str, Any]:
        if self._facts is None:
            self._facts = dict(self.client.get(self.base + "/os"))
        return self._facts

    @property
    def name(self) -> str:  # type: ignore[override]
        """The daemon's OS layer's name ('win32', 'linux' ...)."""
        return str(self._os_facts().get("os", "remote"))

    def process_path(self, pid: int) -> str:
        return f"{self.base}/processes/{int(pid)}"

    def _module_path(self, proc: Process, module: ModuleInfo, what: str) -> str:
        return f"{self.process_path(proc.info.pid)}/modules/{quote_segment(module.name)}/{what}"

    def info(self) -> dict[str, Any]:
        return {**self._os_facts(), "daemon": self.client.url, "conn": self.conn}

    # --- processes ---
    def process_info_list(self) -> list[ProcessInfo]:
        return _records(ProcessInfo, self.client.get(self.base + "/processes"))

    def process_from_info(self, info: ProcessInfo) -> Process:
        return RemoteProcess(self, info)

    def process_by_pid(self, pid: int) -> Process:
        return self.process_from_info(ProcessInfo(**self.client.get(self.process_path(pid))))

    def process_by_name(self, name: str) -> Process:
        if not name or name.isdigit() or name != name.strip():
            return super().process_by_name(name)  # the daemon reads digits as a pid: filter here
        info = self.client.get(f"{self.base}/processes/{quote_segment(name)}")
        return self.process_from_info(ProcessInfo(**info))

    # --- kernel ---
    def kernel_memory(self) -> Any:
        if self._kernel is None:
            from .memory import RemoteMemory  # lazy: NumPy only once kernel memory is used

            self._kernel = RemoteMemory(self.client, self.base + "/kernel")
        return self._kernel

    def kernel_modules(self) -> list[ModuleInfo]:
        return _records(ModuleInfo, self.client.get(self.base + "/kernel/modules"))

    # --- per process ---
    def module_list(self, proc: Process) -> list[ModuleInfo]:
        return _records(ModuleInfo, self.client.get(self.process_path(proc.info.pid) + "/modules"))

    def module_exports(self, proc: Process, module: ModuleInfo) -> list[ExportInfo]:
        return _records(ExportInfo, self.client.get(self._module_path(proc, module, "exports"), base=module.base))

    def module_imports(self, proc: Process, module: ModuleInfo) -> list[ImportInfo]:
        return _records(ImportInfo, self.client.get(self._module_path(proc, module, "imports"), base=module.base))

    def module_sections(self, proc: Process, module: ModuleInfo) -> list[SectionInfo]:
        return _records(SectionInfo, self.client.get(self._module_path(proc, module, "sections"),
                                                     base=module.base))

    def memory_regions(self, proc: Process, **kw: Any) -> list[MemoryRegion]:
        unknown = set(kw) - {"vad"}
        if unknown:
            raise NotImplementedError(f"maps: option(s) {sorted(unknown)} not available through the daemon")
        rows = self.client.get(self.process_path(proc.info.pid) + "/maps", vad=bool(kw.get("vad", False)))
        return _records(MemoryRegion, rows, drop=("size",))

    # --- OS extras ---
    def dmesg(self) -> list[Any]:
        """The daemon's OS layer's kernel log (Linux): records with the same fields and ``as_dict``."""
        return [Record(r) for r in self.client.get(self.base + "/extras/dmesg")]

    def keyboard(self) -> RemoteKeyboard:
        return RemoteKeyboard(self.client, self.base + "/extras/keys")

    def close(self) -> None:
        self.client.close()


