"""`pymemflow gdbserver` over a live testbed guest (``-c qemu:VM -o linux``) with Debian's gdb: a process's
memory and libraries compared with `pymemflow read` and `modules`, the kernel with the CPU registers
QEMU reports over QMP."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from pymemflow.live.qmp import QmpClient

from .conftest import CLI, gdbserver
from .test_gdbserver_demo import x_bytes

pytestmark = [pytest.mark.testbed, pytest.mark.slow]


def test_live_guest_gdb(guest_x64) -> None:  # type: ignore[no-untyped-def]
    chain = ["-c", f"qemu:{guest_x64.name}", "-o", "linux"]
    pid, va = guest_x64.info["MARKER_PID"], int(guest_x64.info["MARKER_VA"], 16)
    marker = guest_x64.info["MARKER"].encode()
    mods = json.loads(subprocess.run([*CLI, *chain, "modules", "-p", pid, "--json"], capture_output=True,
                                     check=True).stdout)
    with gdbserver(chain, "-p", pid) as srv:
        out = srv.gdb("show architecture", f"x/{len(marker)}bx {va:#x}", "info sharedlibrary")
    assert '(currently "i386:x86-64")' in out
    assert x_bytes(out) == marker
    libs = [ln.split()[-1] for ln in out.splitlines() if re.match(r"^(0x\S+\s+0x\S+|\s+)\s+(Yes|No)\S*\s+/", ln)]
    assert libs == [m["path"] for m in mods]
    with QmpClient(guest_x64.qmp2, timeout=30) as q:
        q.cmd("stop")
        try:
            regs = q.cmd("human-monitor-command", **{"command-line": "info registers"})
            with gdbserver(chain, "--kernel") as srv:
                out = srv.gdb("info registers rip", "info registers rsp", "monitor info")
        finally:
            q.cmd("cont")
    rip = int(re.search(r"RIP=([0-9a-f]+)", regs).group(1), 16)  # type: ignore[union-attr]
    rsp = int(re.search(r"RSP=([0-9a-f]+)", regs).group(1), 16)  # type: ignore[union-attr]
    assert re.search(rf"^rip\s+{rip:#x}", out, re.M), out
    assert re.search(rf"^rsp\s+{rsp:#x}", out, re.M), out
    assert "registers are zeros" not in out
