"""The testbed itself: the ground truth its guests print is complete and consistent, and the knobs work.

The session's guests (x86-64, LA57, i386 PAE and 2-level) are checked for the worker's threads, open files and
sockets, the marker's maps and the loaded modules; one extra guest checks KASLR=0, BUSY=1, SYMS=none, ports,
memory size, a kernel given by path, and that stop() leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import time
from pathlib import Path

import pytest

from testbed import GroundTruth, Guest, boot, provision

pytestmark = pytest.mark.testbed

LISTEN, ESTABLISHED, UDP_UNCONNECTED = 0x0A, 0x01, 0x07


@pytest.fixture(scope="module", params=["x64", "la57", "pae", "x86"])
def guest(request: pytest.FixtureRequest) -> Guest:
    return request.getfixturevalue(f"guest_{request.param}")


def test_worker_threads_files_and_sockets(guest: Guest) -> None:
    t: GroundTruth = guest.truth
    pid = t.worker_pid
    assert pid == int(guest.info["WORKER_PID"]) and t.procs[pid]["exe"] == "/bin/pmfwork"
    assert t.procs[pid]["threads"] == int(t.worker["threads"]) == 4
    assert sorted(t.tasks[pid].values()) == ["pmfwork", "pmfwork-t0", "pmfwork-t1", "pmfwork-t2"]
    assert min(t.tasks[pid]) == pid  # the thread-group leader is the process
    fds = t.fds[pid]
    assert fds[3] == t.worker["file"] and fds[4] == "/proc/version" and fds[5] == "/dev/null"
    assert re.fullmatch(r"pipe:\[\d+\]", fds[6]) and fds[6] == fds[7]  # both ends of one pipe
    tcp, udp = int(guest.info["TCP_PORT"]), int(guest.info["UDP_PORT"])
    socks = {(s.proto, s.local, s.remote, s.state) for s in t.sockets_of(pid)}
    established = [s for s in t.sockets_of(pid) if s.proto == "tcp" and s.state == ESTABLISHED]
    assert ("tcp", ("0.0.0.0", tcp), ("0.0.0.0", 0), LISTEN) in socks
    assert len(established) == 2 and established[0].local == established[1].remote
    assert {s.local[1] for s in established} >= {tcp}
    assert ("udp", ("0.0.0.0", udp), ("0.0.0.0", 0), UDP_UNCONNECTED) in socks
    assert any(s.proto == "udp" and s.remote == ("127.0.0.1", udp) for s in t.sockets_of(pid))
    unix = [int(m.group(1)) for f in fds.values() if (m := re.fullmatch(r"socket:\[(\d+)\]", f))]
    v6 = sum(int(t.worker[k]) >= 0 for k in ("tcp6fd", "udp6fd"))  # IPv6 sockets when the kernel has IPv6
    assert len(unix) == 7 + v6 and len(set(unix) & t.unix_inodes) == 2  # 5 inet (+ v6) sockets + a unix pair


def test_marker_maps_modules_and_process_list(guest: Guest) -> None:
    t = guest.truth
    va = int(guest.info["MARKER_VA"], 16)
    maps = t.maps[t.marker_pid]
    assert any(lo <= va and va + 16 * 4096 <= hi and perms == "rw-" for lo, hi, perms, _ in maps)
    assert any(path == "/bin/marker" and perms[2] == "x" for _, _, perms, path in maps)
    assert {m[0] for m in t.modules} >= {"dummy", "crc_itu_t"} and all(m[2] for m in t.modules)
    assert {t.marker_pid, t.worker_pid, 1} <= set(t.ps) <= set(t.procs) | set(t.ps)
    assert t.machine == ("x86_64" if guest.arch == "x86_64" else "i686")
    lasting = [1, t.marker_pid, t.worker_pid, *(p for p, i in t.procs.items() if not i["cmd"])]  # + kernel threads
    for pid in lasting:
        assert len(t.tasks[pid]) == t.procs[pid]["threads"], pid


def test_knobs_and_stop() -> None:
    """KASLR=0, BUSY=1, SYMS=none, other ports and memory size, a kernel given by path; stop cleans up."""
    kernel = provision.vmlinuz("x86_64")
    g = boot("x64", KASLR="0", BUSY="1", SYMS="none", TCP="9100", UDP="9101", MEM="384M", KERNEL=str(kernel),
             SUFFIX="knobs")
    try:
        t = g.truth
        assert "nokaslr" in g.serial_lines("TESTBED_CMDLINE")[0]
        assert t.syms["_text"] == 0xFFFFFFFF81000000  # the link address: no randomization
        assert not t.ksample
        assert g.ramfile and os.path.getsize(g.ramfile) == 384 << 20
        assert g.info["KERNEL"] == str(kernel)
        assert any(s.local == ("0.0.0.0", 9100) and s.state == LISTEN for s in t.sockets_of(t.worker_pid))
        pa = int(g.info["MARKER_PA0"], 16) + 64  # the marker's heartbeat counter

        def beat() -> int:
            with open(g.ramfile, "rb") as f:  # type: ignore[arg-type]
                f.seek(pa)
                return int(struct.unpack("<Q", f.read(8))[0])

        first = beat()
        time.sleep(1.0)
        assert beat() - first > 100  # BUSY=1 spins; an idle marker adds 1 a second
        pid, ramfile = g.pid, g.ramfile
    finally:
        g.stop()
    assert not Path(ramfile).exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_extra_kernel_packages_resolve() -> None:
    """A kernel named by Debian metapackage resolves to its image package in the private apt state (the
    download itself is what the session's guests already did for the default kernels)."""
    if not shutil.which("apt-cache"):
        pytest.skip("no apt on this machine (not Debian): kernels come from Debian's archive")
    pkg = provision._image_package("amd64", "linux-image-cloud-amd64")
    assert re.fullmatch(r"linux-image-\d+\.\d+\.\d+-\d+-cloud-amd64(-unsigned)?", pkg), pkg
