"""What the guest's init printed about itself, parsed: the ground truth of the OS-layer tests.

Lines (serial log, one fact each): ``TESTBED_BOOT/SYM/KSAMPLE/PS/MARKER_PROC/WORKER``; ``PMF_PROC pid ppid uid
gid threads exe= cmd=``, ``PMF_TASK pid tid comm``, ``PMF_MAPS pid <maps line>``, ``PMF_FD pid fd target``,
``PMF_NET proto <line of /proc/net/proto>``, ``PMF_MODULE <line of /proc/modules>``, ``PMF_DMESG``, ``PMF_BTF``,
``PMF_TSTAT pid tid state starttime`` (the thread's state letter and start in USER_HZ ticks after boot, from
/proc/PID/task/TID/stat), ``PMF_BTIME seconds`` (boot time, /proc/stat), ``PMF_FDFLAGS pid fd octal`` (/proc/PID/fdinfo/FD ``flags``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Socket:
    """One row of /proc/net/{tcp,udp,tcp6,udp6}: addresses decoded, ``state`` as the kernel's number."""

    proto: str
    local: tuple[str, int]
    remote: tuple[str, int]
    state: int
    inode: int


@dataclass
class GroundTruth:
    release: str = ""
    machine: str = ""
    syms: dict[str, int] = field(default_factory=dict)
    ksample: dict[str, int] = field(default_factory=dict)
    ps: dict[int, str] = field(default_factory=dict)
    procs: dict[int, dict] = field(default_factory=dict)
    """pid -> {ppid, uid, gid, threads, exe, cmd}."""
    tasks: dict[int, dict[int, str]] = field(default_factory=dict)
    """pid -> {tid: comm} from /proc/PID/task."""
    tstat: dict[int, dict[int, tuple[str, int]]] = field(default_factory=dict)
    """pid -> {tid: (state letter, start time in USER_HZ=100 ticks after boot)} from /proc/PID/task/TID/stat."""
    btime: int = 0
    """Boot time, whole seconds since 1970 UTC (/proc/stat ``btime``)."""
    maps: dict[int, list[tuple[int, int, str, str]]] = field(default_factory=dict)
    """pid -> [(start, end, perms[:3], path)] of user processes."""
    fds: dict[int, dict[int, str]] = field(default_factory=dict)
    """pid -> {fd: readlink target} (``socket:[inode]``, ``pipe:[inode]``, paths) of user processes."""
    fd_flags: dict[int, dict[int, int]] = field(default_factory=dict)
    """pid -> {fd: open flags} (/proc/PID/fdinfo/FD ``flags``: f_flags plus O_CLOEXEC from the fd table)."""
    sockets: list[Socket] = field(default_factory=list)
    unix_inodes: set[int] = field(default_factory=set)
    modules: list[tuple[str, int, int]] = field(default_factory=list)
    """(name, size, base) from /proc/modules."""
    dmesg: list[str] = field(default_factory=list)
    btf: bool = False
    marker_pid: int = 0
    worker: dict[str, str] = field(default_factory=dict)
    """The worker's TESTBED_WORKER fields: pid, tcp, udp, threads, file, fds."""

    @property
    def worker_pid(self) -> int:
        return int(self.worker.get("pid", 0))

    def sockets_of(self, pid: int) -> list[Socket]:
        """The TCP/UDP sockets a process holds open (matched through the fd table's inode numbers)."""
        inodes = {int(m.group(1)) for t in self.fds.get(pid, {}).values() if (m := re.match(r"socket:\[(\d+)\]", t))}
        return [s for s in self.sockets if s.inode in inodes]


def _addr(text: str) -> tuple[str, int]:
    """``0100007F:1E61`` (IPv4, host-order hex words as the kernel prints them) or the IPv6 form."""
    hexaddr, port = text.split(":")
    raw = bytes.fromhex(hexaddr)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    if len(raw) == 4:
        return ".".join(str(b) for b in words), int(port, 16)
    return ":".join(words[i:i + 2].hex() for i in range(0, 16, 2)), int(port, 16)


def parse_ground_truth(lines: list[str]) -> GroundTruth:
    gt = GroundTruth()
    for ln in lines:
        tag, _, rest = ln.rstrip("\r").partition(" ")
        f = rest.split()
        if tag == "TESTBED_BOOT":
            gt.release = re.search(r"uname=(\S+)", rest).group(1)  # type: ignore[union-attr]
            m = re.search(r"machine=(\S+)", rest)
            gt.machine = m.group(1) if m else ""
        elif tag in ("TESTBED_SYM", "TESTBED_KSAMPLE") and len(f) >= 3:
            (gt.syms if tag == "TESTBED_SYM" else gt.ksample)[f[2]] = int(f[0], 16)
        elif tag == "TESTBED_PS":
            pid, _, comm = rest.partition(" ")
            if pid.isdigit():
                gt.ps[int(pid)] = comm
        elif tag == "TESTBED_MARKER_PROC":
            gt.marker_pid = int(re.search(r"pid=(\d+)", rest).group(1))  # type: ignore[union-attr]
        elif tag == "TESTBED_WORKER":
            gt.worker = dict(x.split("=", 1) for x in f if "=" in x)
        elif tag == "PMF_PROC":
            m = re.match(r"(\d+) (\d+) (\d+) (\d+) (\d+) exe=(\S*) cmd=(.*)$", rest)
            if m:
                gt.procs[int(m.group(1))] = {
                    "ppid": int(m.group(2)), "uid": int(m.group(3)), "gid": int(m.group(4)),
                    "threads": int(m.group(5)), "exe": "" if m.group(6) == "-" else m.group(6),
                    "cmd": m.group(7).rstrip()}
        elif tag == "PMF_TASK" and len(f) >= 2:
            gt.tasks.setdefault(int(f[0]), {})[int(f[1])] = rest.split(" ", 2)[2] if len(f) > 2 else ""
        elif tag == "PMF_TSTAT" and len(f) >= 4 and f[3].isdigit():
            gt.tstat.setdefault(int(f[0]), {})[int(f[1])] = (f[2], int(f[3]))
        elif tag == "PMF_BTIME" and f and f[0].isdigit():
            gt.btime = int(f[0])
        elif tag == "PMF_MAPS" and len(f) >= 2:
            lo, hi = (int(x, 16) for x in f[1].split("-"))
            gt.maps.setdefault(int(f[0]), []).append((lo, hi, f[2][:3], f[6] if len(f) > 6 else ""))
        elif tag == "PMF_FD" and len(f) >= 3 and f[1].isdigit():
            gt.fds.setdefault(int(f[0]), {})[int(f[1])] = rest.split(" ", 2)[2]
        elif tag == "PMF_FDFLAGS" and len(f) >= 3 and f[1].isdigit():
            gt.fd_flags.setdefault(int(f[0]), {})[int(f[1])] = int(f[2], 8)
        elif tag == "PMF_NET" and len(f) >= 2:
            if f[0] == "unix":
                if len(f) > 7 and f[7].isdigit():
                    gt.unix_inodes.add(int(f[7]))
            elif len(f) >= 11 and ":" in f[2]:
                gt.sockets.append(Socket(f[0], _addr(f[2]), _addr(f[3]), int(f[4], 16), int(f[10])))
        elif tag == "PMF_MODULE" and f:
            gt.modules.append((f[0], int(f[1]), int(f[5], 16) if len(f) > 5 else 0))
        elif tag == "PMF_DMESG":
            gt.dmesg.append(rest.split("] ", 1)[1] if "] " in rest else rest)
        elif tag == "PMF_BTF":
            gt.btf = rest.strip() == "present"
    return gt
