"""Real FUSE mounts of `pymemflow mount` (a subprocess, as users run it) and the CLI to compare with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pymemflow.fs.fuse import mounted_at

CLI = [sys.executable, "-m", "pymemflow.cli.main"]
DEMOS = {"win10": ["-c", "demo", "-o", "win32"], "win7": ["-c", "demo:win7", "-o", "win32"]}


def need_fuse() -> None:
    if not os.path.exists("/dev/fuse"):
        pytest.skip("/dev/fuse is missing: this machine cannot mount FUSE file systems")


def cli(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*CLI, *args], capture_output=True, check=check, timeout=timeout)


def cli_json(*args: str) -> Any:
    return json.loads(cli(*args, "--json").stdout)


def cli_read(chain: list[str], pid: int, addr: int, n: int) -> bytes:
    """`pymemflow read --out -`: the bytes the mount must return (unreadable parts zero)."""
    return cli(*chain, "read", "-p", str(pid), hex(addr), hex(n), "--out", "-", check=False).stdout


class Mount:
    def __init__(self, proc: subprocess.Popen[bytes], path: Path) -> None:
        self.proc = proc
        self.path = path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        return rc


def start_mount(chain: list[str], path: Path, *extra: str, timeout: float = 120) -> Mount:
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([*CLI, *chain, "mount", str(path), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while mounted_at(path) is None:
        if proc.poll() is not None:
            raise AssertionError(f"mount exited with {proc.returncode}: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("mount did not appear in time")
        time.sleep(0.05)
    return Mount(proc, path)


@contextmanager
def mounted(chain: list[str], path: Path, *extra: str) -> Iterator[Mount]:
    need_fuse()
    m = start_mount(chain, path, *extra)
    try:
        yield m
    finally:
        if m.proc.poll() is None:
            m.stop()
        if mounted_at(path) is not None:  # never leave a dead mount behind
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
