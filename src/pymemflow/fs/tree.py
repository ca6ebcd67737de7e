"""The mounted tree: paths -> directories, files and symlinks over one chain's OS-layer objects.

Why separate from the FUSE glue (:mod:`pymemflow.fs.fuse`): the layout, sizes and bytes are plain
Python that tests and other front ends can call without a kernel mount; the glue only maps errors
and calls. Nothing here walks more than the path asks for: ``pid/`` lists the process list,
``pid/<pid>/`` is a fixed set of names, file contents are produced when read (and cached).
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import NotFoundError, PymemflowError
from ..mem.phys import Connector
from ..mem.view import MemoryView
from ..os.base import ModuleInfo, OsLayer, Process, ProcessInfo
from ..os.image import module_image
from ..records import (
    EXPORT_COLUMNS,
    IMPORT_COLUMNS,
    MAP_COLUMNS,
    MODULE_COLUMNS,
    SECTION_COLUMNS,
    json_text,
    table_text,
)
from .cache import ReadAhead, TtlCache
from .physmap import phys_map_rows

log = logging.getLogger("pymemflow.fs")


class FsError(Exception):
    """A path operation's failure as an errno (the FUSE glue turns it into ``-errno``)."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message or errno.errorcode.get(code, str(code)))
        self.errno = code


@dataclass
class Dir:
    names: Callable[[], list[str]]


@dataclass
class File:
    size: Callable[[], int]
    read: Callable[[int, int], bytes]
    write: Callable[[int, bytes], int] | None = None
    memory: bool = False
    """Memory files (phys.raw, memory.vmem): fixed size, bytes straight from the chain."""


@dataclass
class Link:
    target: str


Node = Dir | File | Link

ROOT_FILES = ["phys.raw", "phys.map", "phys.map.json"]
PROC_FILES = ["info.json", "cmdline.txt", "memory.vmem", "maps.txt", "maps.json", "vad.txt", "vad.json", "modules"]
MODULE_FILES = ["info.json", "exports.txt", "exports.json", "imports.txt", "imports.json", "sections.txt",
                "sections.json", "image.bin"]


def vmem_size(mem: MemoryView, arch: str) -> int:
    """Size of ``memory.vmem``: the user half a file offset can reach (offsets are signed 64-bit,
    so kernel halves at 0xffff... cannot be file offsets)."""
    if int(getattr(mem, "pointer_size", 8)) == 4 or arch in ("x86", "x86pae"):
        return 1 << 32
    if arch == "x64la57":
        return 1 << 56
    return 1 << 47 if arch.startswith("x64") else 1 << 48


def safe_name(name: str) -> str:
    """A file-name-safe form of a process or module name ("/" and NUL cannot be in a name)."""
    s = name.replace("/", "_").replace("\0", "_").strip() or "_"
    return "_" + s if s in (".", "..") else s


class MemoryFs:
    """The tree of one opened chain. ``ttl`` is how long listings and produced files are reused
    (None: forever, right for dumps; a second or two on live targets)."""

    def __init__(self, connector: Connector | None, os_layer: OsLayer | None, *, writable: bool = False,
                 ttl: float | None = None, cache_bytes: int = 256 << 20) -> None:
        if connector is None and os_layer is None:
            raise PymemflowError("mount needs a chain with a connector or an OS layer")
        self.phys = connector
        self.os = os_layer
        self.writable = writable
        self.cache = TtlCache(ttl, cache_bytes)
        self.lock = threading.RLock()
        """One chain, one lock: OS layers are not thread-safe."""
        self._readahead = ReadAhead(0.05 if ttl is not None else None)

    # ---- lookups ---------------------------------------------------------------------------------
    def node(self, path: str) -> Node:
        parts = [p for p in path.split("/") if p]
        with self.lock:
            try:
                return self._node(parts)
            except FsError:
                raise
            except (NotFoundError, KeyError) as e:
                raise FsError(errno.ENOENT, str(e)) from e

    def _node(self, parts: list[str]) -> Node:
        if not parts:
            return Dir(self._root_names)
        head, rest = parts[0], parts[1:]
        if head in ("phys.raw", "phys.map", "phys.map.json") and not rest and self.phys is not None:
            return self._phys_node(head)
        if head == "sys" and self.os is not None:
            return self._sys_node(rest)
        if head == "pid" and self.os is not None:
            if not rest:
                return Dir(lambda: [str(p) for p in self._procs()])
            return self._proc_node(self._pid(rest[0]), rest[1:])
        if head == "name" and self.os is not None:
            if not rest:
                return Dir(lambda: list(self._names()))
            pid = self._names().get(rest[0])
            if pid is None:
                raise FsError(errno.ENOENT)
            if len(rest) == 1:
                return Link(f"../pid/{pid}")
            return self._proc_node(pid, rest[1:])
        raise FsError(errno.ENOENT)

    def _root_names(self) -> list[str]:
        names = list(ROOT_FILES) if self.phys is not None else []
        return names + (["sys", "pid", "name"] if self.os is not None else [])

    # ---- physical memory ----------------------------------------------------------------------------
    def _phys_node(self, name: str) -> Node:
        phys = self.phys
        assert phys is not None
        if name == "phys.raw":
            return File(lambda: int(phys.metadata.max_address), lambda off, n: self._read_mem(phys, off, n, None),
                        self._writer(phys), memory=True)
        if name == "phys.map":
            return self._generated(("phys.map",), lambda: table_text(phys_map_rows(phys), ["start", "end", "size",
                                                                                         "kind"]).encode())
        return self._generated(("phys.map.json",), lambda: json_text(phys_map_rows(phys)).encode())

    def _read_mem(self, mem: MemoryView | Connector, off: int, n: int, size: int | None) -> bytes:
        if size is None and self.phys is not None and mem is self.phys:
            size = int(self.phys.metadata.max_address)
        if size is not None:
            n = max(0, min(n, size - off))
        if n <= 0:
            return b""
        with self.lock:
            return self._readahead.read(mem, off, n, size)

    def _writer(self, mem: MemoryView | Connector) -> Callable[[int, bytes], int] | None:
        """Writes through ``mem`` (connectors that can write have ``write``; the protocol does not
        promise it, so a chain without it stays read-only)."""
        write_to = getattr(mem, "write", None)
        if not self.writable or write_to is None:
            return None

        def write(off: int, data: bytes) -> int:
            with self.lock:
                write_to(off, data)
            self.cache.clear()
            self._readahead.clear()
            return len(data)
        return write

    # ---- sys/ ---------------------------------------------------------------------------------------
    def _sys_node(self, rest: list[str]) -> Node:
        os_layer = self.os
        assert os_layer is not None
        has_dmesg = callable(getattr(os_layer, "dmesg", None))
        names = ["info.json", "kmods.txt", "kmods.json"] + (["dmesg.txt", "dmesg.json"] if has_dmesg else [])
        if not rest:
            return Dir(lambda: names)
        if len(rest) > 1 or rest[0] not in names:
            raise FsError(errno.ENOENT)
        name = rest[0]
        if name == "info.json":
            return self._generated(("sys", name), lambda: json_text(os_layer.info()).encode())
        if name.startswith("kmods"):
            def kmods() -> list[dict[str, Any]]:
                return [m.as_dict() for m in os_layer.kernel_modules()]
            return self._listing(("sys", name), name, kmods, MODULE_COLUMNS)

        def dmesg() -> list[Any]:
            return os_layer.dmesg()  # type: ignore[attr-defined,no-any-return]
        if name == "dmesg.json":
            return self._generated(("sys", name), lambda: json_text([r.as_dict() for r in dmesg()]).encode())
        return self._generated(("sys", name), lambda: "".join(
            f"[{r.timestamp:12.6f}] {r.text}\n" for r in dmesg()).encode())

    # ---- processes ----------------------------------------------------------------------------------
    def _procs(self) -> dict[int, ProcessInfo]:
        os_layer = self.os
        assert os_layer is not None
        return self.cache.get(("procs",), lambda: {i.pid: i for i in os_layer.process_info_list()})

    def _names(self) -> dict[str, int]:
        def build() -> dict[str, int]:
            return {f"{safe_name(i.name)}-{pid}": pid for pid, i in self._procs().items()}
        return self.cache.get(("names",), build)

    def _pid(self, text: str) -> int:
        if not text.isdigit() or int(text) not in self._procs():
            raise FsError(errno.ENOENT, f"no process {text}")
        return int(text)

    def process(self, pid: int) -> Process:
        info = self._procs()[pid]
        os_layer = self.os
        assert os_layer is not None
        return self.cache.get(("proc", pid, info.address, info.dtb), lambda: os_layer.process_from_info(info))

    def _proc_node(self, pid: int, rest: list[str]) -> Node:
        if not rest:
            return Dir(lambda: list(PROC_FILES))
        name = rest[0]
        if name == "modules":
            if len(rest) == 1:
                return Dir(lambda: list(self._modules(pid)))
            mod = self._modules(pid).get(rest[1])
            if mod is None:
                raise FsError(errno.ENOENT, f"no module {rest[1]} in process {pid}")
            return self._module_node(pid, mod, rest[2:])
        if len(rest) > 1 or name not in PROC_FILES:
            raise FsError(errno.ENOENT)
        key = ("p", pid, name)
        if name == "info.json":
            return self._generated(key, lambda: json_text(self._procs()[pid].as_dict())
                                   .encode())
        if name == "cmdline.txt":
            return self._generated(key, lambda: (self._procs()[pid].command_line + "\n").encode())
        if name == "memory.vmem":
            proc = self.process(pid)
            size = vmem_size(proc.memory, proc.info.arch)
            return File(lambda: size, lambda off, n: self._read_mem(proc.memory, off, n, size),
                        self._writer(proc.memory), memory=True)
        vad = name.startswith("vad")
        return self._listing(key, name, lambda: [r.as_dict() for r in self.process(pid).maps(
            **({"vad": True} if vad else {}))], MAP_COLUMNS)

    def _modules(self, pid: int) -> dict[str, ModuleInfo]:
        def build() -> dict[str, ModuleInfo]:
            out: dict[str, ModuleInfo] = {}
            try:
                mods = self.process(pid).module_list()
            except NotImplementedError:
                return out
            for m in mods:
                name = safe_name(m.name)
                if name in out:
                    name = f"{name}@{m.base:x}"
                out[name] = m
            return out
        return self.cache.get(("mods", pid), build)

    def _module_node(self, pid: int, mod: ModuleInfo, rest: list[str]) -> Node:
        if not rest:
            return Dir(lambda: list(MODULE_FILES))
        name = rest[0]
        if len(rest) > 1 or name not in MODULE_FILES:
            raise FsError(errno.ENOENT)
        key = ("m", pid, mod.base, name)
        if name == "info.json":
            return self._generated(key, lambda: json_text(mod.as_dict()).encode())
        if name == "image.bin":
            return self._generated(key, lambda: module_image(self.process(pid), mod).data)
        kind = name.split(".")[0]
        columns = {"exports": EXPORT_COLUMNS, "imports": IMPORT_COLUMNS, "sections": SECTION_COLUMNS}[kind]

        def rows() -> list[dict[str, Any]]:
            proc = self.process(pid)
            getter: Callable[[ModuleInfo], list[Any]] = getattr(proc, kind)
            return [i.as_dict() for i in getter(mod)]
        return self._listing(key, name, rows, columns)

    # ---- produced files ------------------------------------------------------------------------------
    def _listing(self, key: tuple[Any, ...], name: str, rows: Callable[[], list[dict[str, Any]]],
                 columns: list[str]) -> File:
        """A ``.txt`` table or its ``.json`` twin (the CLI's ``--json`` rows)."""
        if name.endswith(".json"):
            return self._generated(key, lambda: json_text(rows()).encode())
        return self._generated(key, lambda: table_text(rows(), columns, width=4096).encode())

    def _generated(self, key: tuple[Any, ...], produce: Callable[[], bytes]) -> File:
        def content() -> bytes:
            return self.cache.get(key, lambda: self._produce(key, produce))

        def read(off: int, n: int) -> bytes:
            return content()[off : off + n]
        return File(lambda: len(content()), read)

    def _produce(self, key: tuple[Any, ...], produce: Callable[[], bytes]) -> bytes:
        """Run a producer; what the OS layer cannot do becomes a one-line note in the file (so
        ``cat`` and ``grep -r`` say why instead of failing with EIO)."""
        try:
            with self.lock:
                return produce()
        except NotImplementedError as e:
            what = f"not supported by the {getattr(self.os, 'name', '?')} OS layer" + (f": {e}" if str(e) else "")
        except PymemflowError as e:
            log.warning("%s: %s", "/".join(map(str, key)), e)
            what = f"{type(e).__name__}: {e}"
        if str(key[-1]).endswith(".json"):
            return json_text({"error": what}).encode()
        return f"# {what}\n".encode()



LIVE_CONNECTORS = frozenset({"qemu", "remote"})
"""Connectors whose memory changes under us (besides those with ``hints["live"]``)."""


def looks_live(phys: Connector | None, os_layer: OsLayer | None) -> bool:
    """True for running targets (a QEMU VM, /proc/kcore, the host's processes, a daemon): their
    listings and produced files get a short validity instead of being kept."""
    if os_layer is not None and getattr(os_layer, "name", "") in ("native", "remote"):
        return True
    obj: Any = phys
    for _ in range(16):
        if obj is None:
            break
        if getattr(obj, "name", "") in LIVE_CONNECTORS or bool(getattr(obj, "hints", {}).get("live")):
            return True
        obj = getattr(obj, "inner", None)
    return False

__all__ = ["Dir", "File", "FsError", "Link", "MemoryFs", "Node", "looks_live", "safe_name", "vmem_size"]
