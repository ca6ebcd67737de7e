"""A small HTTP/1.1 client for the daemon: :mod:`.unixhttp` over a Unix socket, the standard library's
``http.client`` over TCP and TLS.

Why not aiohttp/requests here: the client runs in short-lived CLI processes (``pymemflow -o remote:...
ps`` must start in well under 100 ms) and inside OS-layer walks that do many small synchronous reads.
Both transports speak keep-alive HTTP/1.1, and ``readinto`` lets a batch response land straight in the
caller's NumPy buffer without a copy. The Unix-socket one imports nothing beyond ``socket``
(``http.client`` brings ``email``, ``ssl`` and ``urllib``: a third of a thin client's start-up), so
``http.client``, ``ssl`` and ``urllib.parse`` are imported only when a TCP URL or a query needs them.
One connection per thread (neither is thread-safe).
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from .protocol import (
    API_PREFIX,
    BATCH_CONTENT_TYPE,
    BATCH_HEADER,
    PIECE,
    Endpoint,
    RemoteError,
    decode_batch_header,
    error_from_body,
    failures_from_json,
)
from .unixhttp import HttpProtocolError, UnixHTTPConnection

if TYPE_CHECKING:
    import ssl
    from pathlib import Path

    from ..errors import ReadFailure

DEFAULT_TIMEOUT = 300.0
IDLE_REUSE = 20.0
"""Seconds after which an idle kept-alive connection is not reused (the daemon closes idle
connections after its ``client_timeout``, 60 s by default; a request that is not safe to repeat must
not meet a connection closed under it)."""


def read_token(token_file: str | Path) -> str:
    """The bearer token: the file's first line, stripped."""
    try:
        with open(token_file, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise RemoteError(f"cannot read token file {token_file}: {e.strerror or e}") from None
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not token:
        raise RemoteError(f"token file {token_file} is empty")
    return token


class Client:
    """Requests to one daemon. ``url``: ``unix:PATH``, ``http://HOST:PORT`` or ``https://HOST:PORT``;
    ``token``/``token_file`` add ``Authorization: Bearer``; ``cafile`` trusts a self-signed TLS cert."""

    def __init__(self, url: str, *, token: str | None = None, token_file: str | Path | None = None,
                 cafile: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.endpoint = Endpoint.parse(url)
        self.url = str(self.endpoint)
        self.timeout = timeout
        self.token = token if token is not None else (read_token(token_file) if token_file else None)
        self._ssl: ssl.SSLContext | None = None
        if self.endpoint.scheme == "https":
            import ssl  # lazy: TLS only for https:// daemons (40 ms of a thin client's start-up otherwise)

            self._ssl = ssl.create_default_context(cafile=cafile)
        self._local = threading.local()

    # ---- transport -------------------------------------------------------------------------------
    def _conn(self) -> Any:
        c: Any = getattr(self._local, "conn", None)
        now = time.monotonic()
        if c is not None and now - self._local.used > IDLE_REUSE:
            self._drop()  # the daemon closes idle connections (client_timeout): start afresh
            c = None
        self._local.used = now
        if c is None:
            ep = self.endpoint
            if ep.scheme == "unix":
                c = UnixHTTPConnection(ep.path, self.timeout)
            else:
                import http.client  # lazy: TCP daemons only; the Unix-socket client is .unixhttp

                if ep.scheme == "https":
                    c = http.client.HTTPSConnection(ep.host, ep.port, timeout=self.timeout, context=self._ssl)
                else:
                    c = http.client.HTTPConnection(ep.host, ep.port, timeout=self.timeout)
            self._local.conn = c
        return c

    def _drop(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    def close(self) -> None:
        """Close this thread's connection (others close when their threads' clients are collected)."""
        self._drop()

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str],
              retry: bool) -> Any:
        hdrs = {"Accept": "application/json, application/octet-stream", **headers}
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        for attempt in (0, 1):
            conn = self._conn()
            try:
                conn.request(method, path, body=body, headers=hdrs)
                return conn.getresponse()
            except (BrokenPipeError, ConnectionResetError) as e:  # http.client's RemoteDisconnected is one
                # a kept-alive connection the daemon closed while idle: one fresh try for safe requests
                self._drop()
                if attempt or not retry:
                    raise RemoteError(f"daemon {self.url}: connection lost: {e}") from None
            except HttpProtocolError as e:
                self._drop()
                raise RemoteError(f"daemon {self.url}: bad HTTP response: {e}") from None
            except OSError as e:
                self._drop()
                raise RemoteError(f"cannot reach the pymemflow daemon at {self.url}: "
                                  f"{e.strerror or e}") from None
        raise AssertionError("unreachable")

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                body: bytes | None = None, json_body: Any = None, content_type: str | None = None,
                retry: bool | None = None) -> tuple[int, dict[str, str], bytes]:
        """One request, response read whole; a 4xx/5xx JSON error raises the matching local error."""
        full = self._path(path, query)
        headers: dict[str, str] = {}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            content_type = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        resp = self._send(method, full, body, headers, method in ("GET", "HEAD") if retry is None else retry)
        try:
            data = resp.read()
        except (OSError, ValueError) as e:
            self._drop()
            raise RemoteError(f"daemon {self.url}: response to {method} {full} broken off: {e}") from None
        if resp.status >= 400:
            raise self._error(resp.status, data)
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    @staticmethod
    def _path(path: str, query: dict[str, Any] | None) -> str:
        full = path if path.startswith(API_PREFIX) else API_PREFIX + path
        if query:
            q = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in query.items() if v is not None}
            from urllib.parse import urlencode  # lazy: only requests with a query string (15 ms at start-up)

            full += "?" + urlencode(q)
        return full

    def _error(self, status: int, data: bytes) -> BaseException:
        try:
            body = json.loads(data)
        except ValueError:
            body = {"error": {"message": data[:200].decode("utf-8", "replace") or f"HTTP {status}"}}
        return error_from_body(status, body)

    # ---- JSON ---------------------------------------------------------------------------------------
    def get(self, path: str, **query: Any) -> Any:
        return json.loads(self.request("GET", path, query=query)[2])

    def post(self, path: str, obj: Any) -> Any:
        return json.loads(self.request("POST", path, json_body=obj)[2] or b"null")

    def delete(self, path: str) -> Any:
        return json.loads(self.request("DELETE", path)[2] or b"null")

    # ---- bytes --------------------------------------------------------------------------------------
    def _batch(self, path: str, pieces: bytes, expect: int) -> tuple[Any, list[ReadFailure]]:
        """POST packed ``(address, length)`` pieces; the response positioned at its data."""
        resp = self._send("POST", self._path(path, None), pieces, {"Content-Type": BATCH_CONTENT_TYPE}, True)
        if resp.status >= 400:
            raise self._error(resp.status, resp.read())
        count, flen, dlen = decode_batch_header(_read_exact(resp, BATCH_HEADER.size))
        if dlen != expect:
            resp.close()
            self._drop()
            raise RemoteError(f"batch response carries {dlen} bytes, expected {expect}")
        _read_exact(resp, count)  # per-piece status; the failures below say the same in detail
        return resp, (failures_from_json(_read_exact(resp, flen)) if flen else [])

    def read_batch_into(self, path: str, pieces: bytes, out: Any) -> list[ReadFailure]:
        """POST the packed ``(address, length)`` pieces to a ``.../read-batch`` path; the bytes land in
        ``out`` (a writable buffer of the pieces' total length). Returns the failures."""
        mv = memoryview(out).cast("B")
        resp, failures = self._batch(path, pieces, mv.nbytes)
        dlen = mv.nbytes
        got = 0
        while got < dlen:
            n = resp.readinto(mv[got:])
            if not n:
                self._drop()
                raise RemoteError(f"daemon {self.url}: batch response ended after {got} of {dlen} bytes")
            got += n
        return failures


    def read_arrays(self, path: str, addrs: Any, lengths: Any, out: Any) -> list[ReadFailure]:
        """A ``MemoryView._read_batch`` over ``path`` (``.../read-batch``): NumPy address and length
        arrays in, bytes into ``out``."""
        import numpy as np

        pieces = np.empty((addrs.shape[0], 2), dtype="<u8")
        pieces[:, 0] = addrs
        pieces[:, 1] = lengths
        return self.read_batch_into(path, pieces.tobytes(), out)

    def read_one(self, path: str, addr: int, n: int) -> tuple[bytes, list[ReadFailure]]:
        """A ``MemoryView._read_single``: one piece, no NumPy; the bytes object is filled straight
        from the socket (no second copy)."""
        resp, fails = self._batch(path, PIECE.pack(addr, n), n)
        return _read_exact(resp, n), fails

    def write_arrays(self, path: str, addrs: Any, lengths: Any, data: Any) -> list[ReadFailure]:
        """A ``MemoryView._write_batch`` over ``path`` (``.../write``): one PUT per piece."""
        off = 0
        for a, n in zip(addrs.tolist(), lengths.tolist(), strict=True):
            self.request("PUT", path, query={"addr": a}, body=bytes(data[off : off + n]),
                         content_type=BATCH_CONTENT_TYPE)
            off += n
        return []


def _read_exact(resp: Any, n: int) -> bytes:
    data = resp.read(n) if n else b""
    if len(data) != n:
        raise RemoteError(f"daemon response ended early ({len(data)} of {n} bytes)")
    return data
