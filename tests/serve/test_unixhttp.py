"""The Unix-socket HTTP/1.1 client (pymemflow.remote.unixhttp) against real servers: the daemon itself,
an aiohttp server sending chunked responses, and a raw socket server sending what a broken or hostile
peer could (close-delimited bodies, bad status lines, truncation, endless headers)."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from conftest import Daemon

from pymemflow.errors import NotFoundError
from pymemflow.remote.client import Client
from pymemflow.remote.protocol import RemoteError
from pymemflow.remote.unixhttp import HttpProtocolError, RemoteDisconnected, UnixHTTPConnection


class _StdlibUnix(http.client.HTTPConnection):
    """The standard library's client on a Unix socket: the reference the small client must agree with."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path)


def test_same_responses_as_http_client_from_the_daemon(demo_daemon: Daemon) -> None:
    mine, ref = UnixHTTPConnection(demo_daemon.socket, 30), _StdlibUnix(demo_daemon.socket)
    for path in ("/v1", "/v1/connections/demo/processes", "/v1/connections/demo/phys/read?addr=4096&length=70000",
                 "/v1/connections/nope/processes", "/v1/openapi.json"):
        mine.request("GET", path)  # one kept-alive connection for all of them
        a = mine.getresponse()
        ref.request("GET", path)
        b = ref.getresponse()
        assert a.status == b.status
        assert a.getheader("content-type") == b.getheader("content-type")
        assert a.read() == b.read(), path
    assert mine.sock is not None  # still the same connection
    mine.close()
    ref.close()


def test_client_errors_and_bytes_over_the_small_transport(demo_daemon: Daemon, demo_local) -> None:
    c = Client(demo_daemon.url)
    with pytest.raises(NotFoundError):
        c.get("/connections/nope/processes")
    pid = demo_local.os.process("explorer.exe").info.pid
    assert [p["pid"] for p in c.get("/connections/demo/processes")].count(pid) == 1
    data, fails = c.read_one("/v1/connections/demo/phys/read-batch", 0x1000, 0x3000)
    assert data == demo_local.connector.read(0x1000, 0x3000) and not fails
    c.close()


@pytest.fixture(scope="module")
def chunky(tmp_path_factory) -> Iterator[str]:
    """An aiohttp server on a Unix socket whose responses are chunked (no Content-Length)."""
    path = str(tmp_path_factory.mktemp("uh") / "a.sock")
    loop = asyncio.new_event_loop()
    parts = [b"a" * 1, b"", b"b" * 70000, b"c" * 3]

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for p in parts:
            await resp.write(p)
        await resp.write_eof()
        return resp

    async def start() -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/chunked", chunked)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.UnixSite(runner, path).start()
        return runner

    runner = loop.run_until_complete(start())
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    yield path
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    t.join(10)


def test_chunked_responses_read_whole_in_pieces_and_into(chunky: str) -> None:
    want = b"a" + b"b" * 70000 + b"ccc"
    c = UnixHTTPConnection(chunky, 30)
    for _ in range(3):  # keep-alive across chunked responses
        c.request("GET", "/chunked")
        r = c.getresponse()
        assert r.status == 200 and r.getheader("Transfer-Encoding", "").lower() == "chunked"
        assert r.read() == want
    c.request("GET", "/chunked")
    r = c.getresponse()
    assert r.read(5) + r.read(100000) == want and r.read() == b""
    c.request("GET", "/chunked")
    r = c.getresponse()
    buf = bytearray(len(want))
    got = 0
    while n := r.readinto(memoryview(buf)[got:]):
        got += n
    assert bytes(buf) == want
    c.close()


def _one_shot(tmp: Path, answer: bytes, close: bool = True) -> str:
    """A raw server: accepts one connection, reads the request head, sends ``answer``, closes."""
    path = str(tmp / f"raw{abs(hash(answer))}.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)

    def run() -> None:
        conn, _ = srv.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(4096)
        conn.sendall(answer)
        if close:
            conn.close()
        srv.close()

    threading.Thread(target=run, daemon=True).start()
    return path


def _get(path: str) -> bytes:
    c = UnixHTTPConnection(path, 10)
    c.request("GET", "/x")
    return c.getresponse().read()


def test_close_delimited_body_and_hostile_peers(tmp_path: Path) -> None:
    assert _get(_one_shot(tmp_path, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")) == b"until the end"
    with pytest.raises(RemoteDisconnected):
        _get(_one_shot(tmp_path, b""))
    with pytest.raises(HttpProtocolError, match="status line"):
        _get(_one_shot(tmp_path, b"SSH-2.0-OpenSSH\r\n\r\n"))
    with pytest.raises(HttpProtocolError, match="body"):
        _get(_one_shot(tmp_path, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"))
    with pytest.raises(HttpProtocolError, match="chunk size"):
        _get(_one_shot(tmp_path, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"))
    with pytest.raises(HttpProtocolError, match="header lines"):
        _get(_one_shot(tmp_path, b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 1000 + b"\r\n"))
    with pytest.raises(HttpProtocolError, match="longer than"):
        _get(_one_shot(tmp_path, b"HTTP/1.1 200 OK\r\nX: " + b"y" * 100000 + b"\r\n\r\n"))
    # through the Client: one clear RemoteError, never a hang
    body = json.dumps({"error": {"status": 500}}).encode()
    c = Client("unix:" + _one_shot(tmp_path, b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n" + body))
    with pytest.raises(RemoteError, match="broken off"):
        c.get("/connections")
