"""A client that stops reading mid-response, against a real daemon: it holds the daemon's buffers only
until ``write_timeout``, then its connection is closed and logged; other clients are served meanwhile
with the right bytes."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Daemon, start_daemon

from pymemflow.remote.client import Client

WRITE_TIMEOUT = 1.5
SIZE = 64 << 20


@pytest.fixture(scope="module")
def stalled(serve_dir: Path) -> Iterator[Daemon]:
    work = serve_dir / "stall"
    work.mkdir()
    cfg = work / "serve.toml"
    cfg.write_text(f'socket = "{work / "d.sock"}"\n[limits]\nwrite_timeout = {WRITE_TIMEOUT}\n'
                   f'[connections.big]\nchain = "-c dummy:size={SIZE}"\nwritable = true\n')
    d = start_daemon(work, "--config", str(cfg), socket=False)
    d.socket = str(work / "d.sock")
    yield d
    d.stop()


def test_client_that_stops_reading_is_closed_and_others_are_served(stalled: Daemon) -> None:
    fill = bytes(range(256)) * 4096  # 1 MiB pattern at 32 MiB, read back by the other client
    good = Client(stalled.url)
    good.request("PUT", "/connections/big/phys/write", query={"addr": 32 << 20}, body=fill,
                 content_type="application/octet-stream")
    # the stalled client: asks for all 64 MiB, takes the first 4 KiB, then reads nothing
    s = socket.socket(socket.AF_UNIX)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(stalled.socket)
    s.sendall(f"GET /v1/connections/big/phys/read?addr=0&length={SIZE} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    s.settimeout(30)
    got = s.recv(4096)
    assert got.startswith(b"HTTP/1.1 200")
    t0 = time.monotonic()
    # while it is stalled, another client reads the right bytes, again and again
    reads = 0
    while time.monotonic() - t0 < WRITE_TIMEOUT:
        assert good.request("GET", "/connections/big/phys/read", query={"addr": 32 << 20, "length": len(fill)})[2] \
            == fill
        reads += 1
    assert reads >= 2
    # the daemon gives up on the stalled one: its log says so, and the socket reaches EOF short of 64 MiB
    deadline = time.monotonic() + 30
    while "stopped reading" not in stalled.log_text():
        assert time.monotonic() < deadline, stalled.log_text()[-2000:]
        time.sleep(0.1)
    closed_after = time.monotonic() - t0
    assert closed_after >= WRITE_TIMEOUT * 0.9
    total = len(got)
    while chunk := s.recv(1 << 20):
        total += len(chunk)
    s.close()
    assert total < SIZE  # cut short: the daemon did not keep streaming into its buffers
    assert stalled.alive()
    assert good.request("GET", "/connections/big/phys/read", query={"addr": 32 << 20, "length": 16})[2] == fill[:16]
    good.close()
