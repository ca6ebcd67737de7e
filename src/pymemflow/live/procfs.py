"""Small readers of ``/proc`` for live targets: process lists, command lines, status, memory maps.

Why a module of its own: the QEMU connector (find VMs, find guest RAM in the QEMU process) and the
``native`` OS layer (processes, modules, maps) read the same files. Every reader is bounded: a
process that exits between listing and reading yields ``None``/empty results, never an exception.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

PROC = "/proc"
_MAX_FILE = 64 << 20
"""Upper bound for any /proc file we read (a maps file of a huge process stays far below)."""


@dataclass(frozen=True)
class MapEntry:
    """One line of /proc/PID/maps."""

    start: int
    end: int
    perms: str
    """'rw-p', 'r-xp', 'rw-s' ..."""
    offset: int
    dev: str
    inode: int
    path: str

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def readable(self) -> bool:
        return self.perms[:1] == "r"

    @property
    def writable(self) -> bool:
        return self.perms[1:2] == "w"

    @property
    def shared(self) -> bool:
        return self.perms[3:4] == "s"

    @property
    def anonymous(self) -> bool:
        return self.inode == 0 and (self.path == "" or self.path.startswith("["))


def read_text(path: str, limit: int = _MAX_FILE) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None


def read_bytes(path: str, limit: int = _MAX_FILE) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError:
        return None


def pids(proc: str = PROC) -> list[int]:
    """Numeric entries of /proc, sorted."""
    try:
        return sorted(int(d) for d in os.listdir(proc) if d.isdigit())
    except OSError:
        return []


def cmdline(pid: int, proc: str = PROC) -> list[str] | None:
    raw = read_bytes(f"{proc}/{pid}/cmdline")
    if raw is None:
        return None
    parts = raw.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    return [p.decode("utf-8", errors="replace") for p in parts]


def parse_maps(text: str) -> list[MapEntry]:
    """Parse the text of /proc/PID/maps (paths may contain spaces; ' (deleted)' is kept)."""
    out: list[MapEntry] = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        rng, perms, off, dev, inode = parts[:5]
        path = parts[5].strip() if len(parts) > 5 else ""
        a, _, b = rng.partition("-")
        try:
            out.append(MapEntry(int(a, 16), int(b, 16), perms, int(off, 16), dev, int(inode), path))
        except ValueError:
            continue
    return out


def maps(pid: int, proc: str = PROC) -> list[MapEntry]:
    text = read_text(f"{proc}/{pid}/maps")
    return parse_maps(text) if text else []


@dataclass(frozen=True)
class StatInfo:
    """Fields of /proc/PID/stat we use (comm is the part inside the outermost parentheses)."""

    pid: int
    comm: str
    state: str
    ppid: int
    starttime: int
    num_threads: int


_STATE = {"R": "running", "S": "sleeping", "D": "disk-sleep", "Z": "zombie", "T": "stopped",
          "t": "tracing-stop", "X": "dead", "I": "idle", "P": "parked", "W": "waking", "K": "wakekill"}


def state_name(code: str) -> str:
    return _STATE.get(code, code)


def stat(pid: int, proc: str = PROC) -> StatInfo | None:
    text = read_text(f"{proc}/{pid}/stat", 8192)
    if not text:
        return None
    lp, rp = text.find("("), text.rfind(")")
    if lp < 0 or rp < lp:
        return None
    rest = text[rp + 2 :].split()
    try:
        return StatInfo(pid, text[lp + 1 : rp], rest[0], int(rest[1]), int(rest[19]), int(rest[17]))
    except (IndexError, ValueError):
        return None


def status(pid: int, proc: str = PROC) -> dict[str, str]:
    text = read_text(f"{proc}/{pid}/status", 65536) or ""
    d: dict[str, str] = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        d[k.strip()] = v.strip()
    return d


def exe(pid: int, proc: str = PROC) -> str:
    try:
        return os.readlink(f"{proc}/{pid}/exe")
    except OSError:
        return ""
