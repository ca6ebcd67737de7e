"""Records of the analyst's next questions (threads, handles, carved processes, sockets, timeline,
injected code) and the time helpers they share.

Every OS layer answers them through :class:`~pymemflow.os.base.OsLayer` (``threads()``, ``handles()``,
``psscan()``, ``netscan()``, ``malfind()``, ``timeline()``); the CLI commands of
:mod:`pymemflow.cli.commands.forensics` and the daemon print these records. Times are ISO-8601 UTC
strings (``2021-03-11T08:00:00.000000Z``) so every front end shows the same text and sorts them as text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

EPOCH_1601 = datetime(1601, 1, 1, tzinfo=timezone.utc)
FILETIME_MAX = 0x7FFF_FFFF_FFFF_FFFF  # beyond year 30828: never a real time


def iso_from_filetime(ft: int | None) -> str | None:
    """A Windows FILETIME (100 ns since 1601) as ISO-8601 UTC; 0, negative or absurd values are None."""
    if not ft or ft <= 0 or ft > FILETIME_MAX:
        return None
    try:
        return (EPOCH_1601 + timedelta(microseconds=ft // 10)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except OverflowError:
        return None


def iso_from_unix(seconds: float | None) -> str | None:
    """Seconds since 1970 (may be fractional) as ISO-8601 UTC; None/negative/absurd values are None."""
    if seconds is None or seconds < 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except (OverflowError, OSError, ValueError):
        return None


def disassemble(code: bytes, address: int, arch: str) -> list[str]:
    """``ADDRESS: mnemonic operands`` lines of x86/x64 ``code`` (malfind's hits), or [] without capstone
    (the optional ``disasm`` extra)."""
    try:
        import capstone
    except ImportError:
        return []
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64 if arch == "x64" else capstone.CS_MODE_32)
    return [f"{i.address:#x}: {i.mnemonic} {i.op_str}".rstrip() for i in md.disasm(code, address)]


@dataclass
class ThreadInfo:
    tid: int
    pid: int
    start_address: int = 0
    start_module: str = ""
    """The module the start address falls in (``ntdll.dll+0x1234`` style is the CLI's job)."""
    state: str = ""
    create_time: str | None = None
    exit_time: str | None = None
    address: int = 0
    """Kernel address of the thread object (ETHREAD, task_struct)."""
    teb: int = 0
    """Windows: the thread environment block (0 elsewhere)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class HandleInfo:
    pid: int
    handle: int
    """Windows: the handle value; Linux: the file descriptor."""
    type: str
    name: str = ""
    address: int = 0
    """Kernel address of the object (the object body on Windows, ``struct file`` on Linux)."""
    access: int = 0
    """Windows: granted access mask; Linux: the file's f_flags."""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SocketInfo:
    protocol: str
    """'tcp', 'tcp6', 'udp', 'udp6', 'unix' ..."""
    local_address: str
    local_port: int
    remote_address: str = ""
    remote_port: int = 0
    state: str = ""
    pid: int | None = None
    owner: str = ""
    create_time: str | None = None
    address: int = 0
    """Kernel address of the endpoint / socket object."""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CarvedProcess:
    """A process found by scanning memory (pool tags / structure checks), not by walking the list.

    ``listed``: also on the OS's process list; ``exited``: has an exit time / is a zombie. A carved,
    unlisted, not exited process is what unlinking (DKOM) hides."""

    pid: int
    ppid: int
    name: str
    address: int
    physical_address: int | None = None
    listed: bool = True
    exited: bool = False
    create_time: str | None = None
    exit_time: str | None = None
    dtb: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def flag(self) -> str:
        return "exited" if self.exited else ("listed" if self.listed else "unlinked")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "flag": self.flag}


@dataclass
class MalfindHit:
    """Private (not image-backed) executable memory: where code is injected."""

    pid: int
    process: str
    start: int
    end: int
    protection: str
    kind: str
    first_bytes: bytes = b""
    disassembly: list[str] = field(default_factory=list)
    """``ADDRESS: mnemonic operands`` lines when capstone is installed, else empty."""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TimelineEvent:
    time: str
    """ISO-8601 UTC (sorts as text)."""
    source: str
    """'process', 'thread', 'module', 'socket', 'log' ..."""
    action: str
    """'created', 'exited', 'loaded', 'logged' ..."""
    description: str
    pid: int | None = None
    address: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


THREAD_COLUMNS = ["tid", "pid", "start_address", "start_module", "state", "create_time", "exit_time", "teb"]
HANDLE_COLUMNS = ["pid", "handle", "type", "access", "address", "name"]
SOCKET_COLUMNS = ["protocol", "local_address", "local_port", "remote_address", "remote_port", "state", "pid",
                  "owner", "create_time"]
PSSCAN_COLUMNS = ["pid", "ppid", "name", "flag", "address", "create_time", "exit_time"]
MALFIND_COLUMNS = ["pid", "process", "start", "end", "protection", "kind"]
TIMELINE_COLUMNS = ["time", "source", "action", "pid", "description"]
