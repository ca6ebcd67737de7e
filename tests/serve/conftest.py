"""A real ``pymemflow serve`` daemon (subprocess) on a private Unix socket, and the local chain it
must agree with. Clients in the tests are real: curl, node, the Python client, the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiohttp")

ROOT = Path(__file__).resolve().parents[2]
DEMO_CHAIN = "-c demo -o win32"


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    socket: str
    log: Path
    addresses: list[str]

    @property
    def url(self) -> str:
        return f"unix:{self.socket}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_daemon(workdir: Path, *args: str, socket: bool = True, timeout: float = 120) -> Daemon:
    """Start ``pymemflow serve`` and wait for its "listening on" line."""
    sock = str(workdir / "d.sock")
    log = workdir / f"serve-{len(list(workdir.glob('serve-*.log')))}.log"
    cmd = [sys.executable, "-m", "pymemflow", "serve", *(["--socket", sock] if socket else []), *args]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=fh, cwd=workdir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        for line in text.splitlines():
            if line.startswith("listening on "):
                return Daemon(proc, sock, log, line.split()[2:])
        if proc.poll() is not None:
            raise RuntimeError(f"pymemflow serve exited {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"pymemflow serve did not start within {timeout}s:\n{log.read_text()[-3000:]}")


TOKEN = "s3cret-token-for-tests"


def tcp_daemon(tmp: Path, *extra: str) -> Daemon:
    """A daemon on 127.0.0.1 (a free port) with TOKEN, max_read 1 MiB and the demo connection, from a
    --config file."""
    token = tmp / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    cfg = tmp / "serve.toml"
    cfg.write_text(f'listen = "127.0.0.1:0"\ntoken_file = "{token}"\n[limits]\nmax_read = 1048576\n'
                   '[connections.demo]\nchain = "-c demo -o win32"\n'
                   '[connections.scratch]\nchain = "-c dummy:size=1m"\nwritable = true\n')
    return start_daemon(tmp, "--config", str(cfg), *extra, socket=False)


@pytest.fixture(scope="session")
def serve_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="pmf-serve-", dir="/tmp"))  # short: Unix socket paths <= 107 bytes
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def demo_daemon(serve_dir: Path) -> Iterator[Daemon]:
    """Connections: ``demo`` (the synthetic Windows machine, win32) and ``scratch`` (a writable dummy)."""
    work = serve_dir / "demo"
    work.mkdir()
    d = start_daemon(work, "--open", f"demo={DEMO_CHAIN}", "--open", "scratch=-c dummy:size=16m",
                     "--writable", "scratch")
    yield d
    d.stop()


@pytest.fixture(scope="session")
def demo_local() -> Iterator[Any]:
    import pymemflow

    with pymemflow.chain(DEMO_CHAIN) as ch:
        yield ch


def cli(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", "pymemflow", *args], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "COLUMNS": "200"})
    if check and p.returncode != 0:
        raise AssertionError(f"pymemflow {' '.join(args)} -> {p.returncode}\n{p.stderr}")
    return p


def curl(daemon: Daemon, path: str, *extra: str) -> subprocess.CompletedProcess[bytes]:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    return subprocess.run(["curl", "-sS", "--unix-socket", daemon.socket, *extra, f"http://pymemflow{path}"],
                          capture_output=True, timeout=120)
