"""``toyos``: an OS layer for a toy operating system whose process table sits in physical memory.

Layout at physical address ``table`` (argument, default 0): the magic ``b"TOYOS\\0\\0\\0"``, a u32
count, a u32 pad, then ``count`` records of (u32 pid, u32 ppid, 16-byte NUL-padded name, u64 base,
u64 size). A process's memory is the connector's physical memory (no paging in a toy OS). Needs a
connector as input -- the OS side of a chain.
"""

from __future__ import annotations

import struct
from typing import Any

from pymemflow.errors import FormatError
from pymemflow.os.base import ModuleInfo, OsLayer, Process, ProcessInfo
from pymemflow.plugins.api import ArgSpec, PluginSpec, parse_int

MAGIC = b"TOYOS\0\0\0"
RECORD = struct.Struct("<II16sQQ")
MAX_PROCESSES = 4096


def build_table(procs: list[tuple[int, int, str, int, int]]) -> bytes:
    """The bytes of a process table (tests write them into memory)."""
    out = MAGIC + struct.pack("<II", len(procs), 0)
    for pid, ppid, name, base, size in procs:
        out += RECORD.pack(pid, ppid, name.encode()[:16], base, size)
    return out


class ToyOs(OsLayer):
    name = "toyos"

    def __init__(self, mem: Any, table: int) -> None:
        self.mem = mem
        self.table = table
        self.closed = False

    def info(self) -> dict[str, Any]:
        return {"os": self.name, "table": self.table, "input": type(self.mem).__name__}

    def _records(self) -> list[tuple[int, int, str, int, int]]:
        head = self.mem.read(self.table, 16)
        if head[:8] != MAGIC:
            raise FormatError("toyos memory", self.table, "magic", f"expected {MAGIC!r}, found {head[:8]!r}")
        count = struct.unpack_from("<I", head, 8)[0]
        if count > MAX_PROCESSES:
            raise FormatError("toyos memory", self.table + 8, "count", f"{count} processes is implausible")
        data = self.mem.read(self.table + 16, count * RECORD.size)
        out = []
        for i in range(count):
            pid, ppid, name, base, size = RECORD.unpack_from(data, i * RECORD.size)
            out.append((pid, ppid, name.rstrip(b"\0").decode(errors="replace"), base, size))
        return out

    def process_info_list(self) -> list[ProcessInfo]:
        return [ProcessInfo(pid, ppid, name, extra={"base": base, "size": size})
                for pid, ppid, name, base, size in self._records()]

    def process_from_info(self, info: ProcessInfo) -> Process:
        return Process(self, info, self.mem)

    def module_list(self, proc: Process) -> list[ModuleInfo]:
        x = proc.info.extra
        return [ModuleInfo(proc.info.name, f"/toy/{proc.info.name}", x["base"], x["size"])]

    def close(self) -> None:
        self.closed = True


def _open(args: dict[str, Any], input: Any) -> ToyOs:
    return ToyOs(input, args["table"])


PLUGIN = PluginSpec(
    kind="os",
    name="toyos",
    description="Toy OS: process table in physical memory (test plugin)",
    factory=_open,
    version="1.2.3",
    args=[ArgSpec("table", "physical address of the process table", default=0, parse=parse_int)],
    accepts_input=True,
    requires_input=True,
)
