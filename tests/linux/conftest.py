"""Linux-layer guests: the testbed kernels booted with our initramfs (tests/linux/guest/build_initrd.sh),
whose init also prints /proc/PID/status+cmdline+exe+maps, /proc/modules and dmesg (``PMF_*`` lines).
One boot per kind per session; ``GroundTruth`` parses what the guest printed."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from testbed import Guest, boot, skip_reason

HERE = Path(__file__).resolve().parent
TRANSIENT = {"sleep", "ps", "sh", "awk", "cat", "tr", "readlink", "grep", "usleep", "head", "dmesg"}
"""Short-lived helpers of the guest's init loops: they come and go between boot and our reads."""


@dataclass
class GroundTruth:
    release: str = ""
    syms: dict[str, int] = field(default_factory=dict)
    ksample: dict[str, int] = field(default_factory=dict)
    ps: dict[int, str] = field(default_factory=dict)
    procs: dict[int, dict] = field(default_factory=dict)
    maps: dict[int, list[tuple[int, int, str, str]]] = field(default_factory=dict)
    modules: list[tuple[str, int, int]] = field(default_factory=list)
    """(name, size, base) from /proc/modules."""
    dmesg: list[str] = field(default_factory=list)
    btf: bool = False
    marker_pid: int = 0


def parse_ground_truth(lines: list[str]) -> GroundTruth:
    gt = GroundTruth()
    for ln in lines:
        tag, _, rest = ln.partition(" ")
        if tag == "TESTBED_BOOT":
            gt.release = re.search(r"uname=(\S+)", rest).group(1)  # type: ignore[union-attr]
        elif tag in ("TESTBED_SYM", "TESTBED_KSAMPLE"):
            a, t, name = rest.split()[:3]
            (gt.syms if tag == "TESTBED_SYM" else gt.ksample)[name] = int(a, 16)
        elif tag == "TESTBED_PS":
            pid, _, comm = rest.partition(" ")
            if pid.isdigit():
                gt.ps[int(pid)] = comm
        elif tag == "TESTBED_MARKER_PROC":
            gt.marker_pid = int(re.search(r"pid=(\d+)", rest).group(1))  # type: ignore[union-attr]
        elif tag == "PMF_PROC":
            m = re.match(r"(\d+) (\d+) (\d+) (\d+) (\d+) exe=(\S*) cmd=(.*)$", rest)
            if m:
                pid = int(m.group(1))
                gt.procs[pid] = {"ppid": int(m.group(2)), "uid": int(m.group(3)), "gid": int(m.group(4)),
                                 "threads": int(m.group(5)), "exe": "" if m.group(6) == "-" else m.group(6),
                                 "cmd": m.group(7).rstrip()}
        elif tag == "PMF_MAPS":
            f = rest.split()
            lo, hi = (int(x, 16) for x in f[1].split("-"))
            gt.maps.setdefault(int(f[0]), []).append((lo, hi, f[2][:3], f[6] if len(f) > 6 else ""))
        elif tag == "PMF_MODULE":
            f = rest.split()
            gt.modules.append((f[0], int(f[1]), int(f[5], 16) if len(f) > 5 else 0))
        elif tag == "PMF_DMESG":
            gt.dmesg.append(rest.split("] ", 1)[1] if "] " in rest else rest)
        elif tag == "PMF_BTF":
            gt.btf = rest.strip() == "present"
    return gt


@dataclass
class LinuxGuest:
    guest: Guest
    kind: str
    truth: GroundTruth


def _linux_guest(kind: str, arch: str) -> Iterator[LinuxGuest]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    initrd = subprocess.run(["bash", str(HERE / "guest" / "build_initrd.sh"), arch], check=True,
                            capture_output=True, text=True, timeout=300).stdout.strip().splitlines()[-1]
    g = boot(kind, INITRD=initrd, SUFFIX="lx")
    try:
        yield LinuxGuest(g, kind, parse_ground_truth(g.serial_lines("") ))
    finally:
        g.stop()


@pytest.fixture(scope="session")
def lx_x64() -> Iterator[LinuxGuest]:
    yield from _linux_guest("x64", "x86_64")


@pytest.fixture(scope="session")
def lx_la57() -> Iterator[LinuxGuest]:
    yield from _linux_guest("la57", "x86_64")


@pytest.fixture(scope="session")
def lx_pae() -> Iterator[LinuxGuest]:
    yield from _linux_guest("pae", "i386")


@pytest.fixture(scope="session")
def lx_x86() -> Iterator[LinuxGuest]:
    yield from _linux_guest("x86", "i386")
