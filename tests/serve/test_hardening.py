"""Per-socket protection, with real sockets against a real daemon: a deadline for slowly sent request
heads and bodies (slowloris), a cap on open client connections (Unix and TCP together), and JSON
errors for bytes that are not HTTP."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Daemon, curl, start_daemon

TIMEOUT = 2.0
MAX_CLIENTS = 4
AUTH = "Authorization: Bearer tok"


@pytest.fixture(scope="module")
def guarded(serve_dir: Path) -> Iterator[Daemon]:
    work = serve_dir / "hard"
    work.mkdir()
    cfg = work / "serve.toml"
    cfg.write_text(f'socket = "{work / "d.sock"}"\nlisten = "127.0.0.1:0"\n'
                   f'token_file = "{work / "token"}"\n'
                   f"[limits]\nclient_timeout = {TIMEOUT}\nmax_clients = {MAX_CLIENTS}\n"
                   '[connections.scratch]\nchain = "-c dummy:size=1m"\n')
    (work / "token").write_text("tok\n")
    (work / "token").chmod(0o600)
    d = start_daemon(work, "--config", str(cfg), socket=False)
    d.socket = str(work / "d.sock")
    yield d
    d.stop()


def unix(d: Daemon) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(d.socket)
    return s


def tcp(d: Daemon) -> socket.socket:
    port = int(next(a for a in d.addresses if a.startswith("http://")).rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    return s


def response(s: socket.socket) -> tuple[bytes, bytes]:
    """(status line, body) of one response the daemon sends before closing the socket."""
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body


def test_slow_request_head_is_cut_and_others_are_served(guarded: Daemon) -> None:
    s = unix(guarded)
    t0 = time.monotonic()
    s.sendall(b"GET /v1 HTTP/1.1\r\n")
    closed = False
    for ch in b"Host: pymemflow\r\nX-Slow: " + b"a" * 200:  # one byte every 0.2 s: never a whole head
        try:
            s.sendall(bytes([ch]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        s.settimeout(0.2)
        try:
            if s.recv(4096) == b"":
                closed = True
                break
        except TimeoutError:
            pass
        # meanwhile another client is served at once
        if ch == ord("H"):
            ok = curl(guarded, "/v1", "-H", AUTH, "-w", "\n%{http_code}")
            assert ok.stdout.endswith(b"200")
    elapsed = time.monotonic() - t0
    s.close()
    assert closed, "a request head dripped byte by byte was never cut"
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 15


def test_silent_connection_is_closed(guarded: Daemon) -> None:
    s = tcp(guarded)
    t0 = time.monotonic()
    assert s.recv(4096) == b""
    assert TIMEOUT * 0.9 <= time.monotonic() - t0 < TIMEOUT + 15
    s.close()


def test_slow_body_gets_408(guarded: Daemon) -> None:
    s = unix(guarded)
    s.sendall(b"POST /v1/connections/scratch/phys/read-batch HTTP/1.1\r\nHost: x\r\n"
              b"Authorization: Bearer tok\r\nContent-Type: application/octet-stream\r\nContent-Length: 32\r\n\r\n" + b"\0" * 8)
    status, body = response(s)
    s.close()
    assert b" 408 " in status
    err = json.loads(body)["error"]
    assert err["status"] == 408 and "client_timeout" in err["message"]


def test_connection_cap_counts_unix_and_tcp(guarded: Daemon) -> None:
    held = [unix(guarded), tcp(guarded), unix(guarded), tcp(guarded)]  # MAX_CLIENTS open, idle
    try:
        time.sleep(0.3)
        for extra in (unix(guarded), tcp(guarded)):
            status, body = response(extra)
            extra.close()
            assert b" 503 " in status
            err = json.loads(body)["error"]
            assert err["type"] == "Busy" and f"max_clients {MAX_CLIENTS}" in err["message"]
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 20  # the freed slots serve again
    while True:
        p = curl(guarded, "/v1", "-H", AUTH, "-w", "\n%{http_code}")
        if p.stdout.endswith(b"200") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert p.stdout.endswith(b"200")
    assert guarded.alive()


@pytest.mark.parametrize("garbage", [b"\x16\x03\x01\x00\xa5garbage\r\n\r\n", b"HELLO\r\n\r\n",
                                     b"GET /v1 HTTP/9.9\r\n\r\n", b"GET /v1 HTTP/1.1\r\nBad Header\r\n\r\n"])
def test_not_http_gets_a_json_400(guarded: Daemon, garbage: bytes) -> None:
    s = unix(guarded)
    s.sendall(garbage)
    status, body = response(s)
    s.close()
    assert b" 400 " in status
    err = json.loads(body)["error"]
    assert err["status"] == 400 and err["type"] == "BadRequest"
    assert err["message"].startswith("not a valid HTTP/1.1 request: ") and len(err["message"]) > 35
    assert guarded.alive()


def test_python_client_survives_the_idle_close(guarded: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon closes connections idle for client_timeout; a request that is not safe to repeat
    (POST /connections) on such a connection fails, so the client reconnects after IDLE_REUSE."""
    from pymemflow.remote import client as rc

    c = rc.Client(f"unix:{guarded.socket}", token="tok")
    c.get("/v1")
    time.sleep(TIMEOUT + 1)
    with pytest.raises(rc.RemoteError, match="connection lost"):  # IDLE_REUSE (20 s) not reached
        c.post("/connections", {"name": "late1", "chain": "-c dummy:size=1m"})
    monkeypatch.setattr(rc, "IDLE_REUSE", TIMEOUT / 2)
    c.get("/v1")
    time.sleep(TIMEOUT + 1)
    assert c.post("/connections", {"name": "late2", "chain": "-c dummy:size=1m"})["name"] == "late2"
    c.delete("/connections/late2")
