"""`pymemflow gdbserver` as users run it (a subprocess on loopback) and Debian's gdb as the client."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

CLI = [sys.executable, "-m", "pymemflow.cli.main"]


def need_gdb() -> str:
    gdb = shutil.which("gdb")
    if gdb is None:
        pytest.skip("gdb is not installed (Debian: apt-get install gdb)")
    return gdb


class Server:
    def __init__(self, proc: subprocess.Popen[str], address: str) -> None:
        self.proc = proc
        self.address = address
        self.log: list[str] = []

    def gdb(self, *commands: str, timeout: float = 300) -> str:
        """``gdb -batch -nx -ex 'target remote ADDR' -ex ...``: stdout and stderr together."""
        argv = [need_gdb(), "-batch", "-nx", "-ex", "set confirm off", "-ex", f"target remote {self.address}"]
        for c in commands:
            argv += ["-ex", c]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        return r.stdout + r.stderr


@contextmanager
def gdbserver(chain: list[str], *args: str, timeout: float = 300) -> Iterator[Server]:
    need_gdb()
    proc = subprocess.Popen([*CLI, *chain, "gdbserver", *args, "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    address = ""
    assert proc.stderr is not None
    while not address:
        line = proc.stderr.readline()
        if not line:
            raise AssertionError(f"gdbserver exited ({proc.wait()}) before listening")
        m = re.search(r"on (127\.0\.0\.1:\d+);", line)
        if m:
            address = m.group(1)
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("gdbserver did not start in time")
    server = Server(proc, address)
    try:
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
