"""HTTP/1.1 client connection over a Unix socket, for the daemon's local clients.

Why not ``http.client`` here: importing it pulls in ``email.parser``, ``ssl`` and ``urllib`` -- about a
third of a thin client's start-up (``pymemflow -o remote:unix:... ps`` must start in well under 100 ms).
A Unix socket needs none of that: no TLS, no proxies, one peer we know (aiohttp's server). This is the
response side of RFC 9112 that the daemon can send -- status line, headers, bodies framed by
``Content-Length``, ``chunked`` or the connection's close -- with limits on line length and header count,
so a broken or hostile peer ends in an error, never a hang or unbounded memory. TCP and HTTPS keep
``http.client``. The interface is the part of ``HTTPConnection``/``HTTPResponse`` the client uses.
"""

from __future__ import annotations

import _socket  # socket's C core: socket.py builds its enums (~3 ms of a new process); AF_UNIX needs none
import io
from typing import Any

MAX_LINE = 65536
MAX_HEADERS = 100
_NO_BODY = (204, 304)


class HttpProtocolError(ConnectionError):
    """The peer sent something that is not an HTTP/1.1 response (or closed mid-response)."""


class RemoteDisconnected(ConnectionResetError):
    """The peer closed the connection before sending a status line (an idle keep-alive closed)."""


class _SocketReader(io.RawIOBase):
    """The raw stream under the response's buffered reader (``socket.makefile("rb")`` without socket.py):
    ``recv_into`` waits up to the socket's timeout (TimeoutError) and retries EINTR itself."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        return int(self._sock.recv_into(b))


class UnixResponse:
    def __init__(self, conn: UnixHTTPConnection, method: str) -> None:
        self._conn = conn
        self._f = conn._file
        line = self._line(first=True)
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise HttpProtocolError(f"bad status line {line[:80]!r}")
        self.status = int(parts[1])
        self.reason = parts[2].strip().decode("latin-1") if len(parts) > 2 else ""
        self._headers: list[tuple[str, str]] = []
        while True:
            h = self._line()
            if h in (b"\r\n", b"\n"):
                break
            if len(self._headers) >= MAX_HEADERS:
                raise HttpProtocolError(f"more than {MAX_HEADERS} header lines")
            name, sep, value = h.decode("latin-1").partition(":")
            if not sep:
                raise HttpProtocolError(f"bad header line {h[:80]!r}")
            self._headers.append((name.strip(), value.strip()))
        hv = {k.lower(): v for k, v in self._headers}
        self.will_close = hv.get("connection", "").lower() == "close"
        self._chunked = "chunked" in hv.get("transfer-encoding", "").lower()
        self._left: int | None = None  # bytes left in the body (chunked: in the current chunk)
        self._done = False
        if method == "HEAD" or self.status in _NO_BODY or 100 <= self.status < 200:
            self._left, self._chunked = 0, False
        elif not self._chunked and "content-length" in hv:
            try:
                self._left = int(hv["content-length"])
            except ValueError:
                raise HttpProtocolError(f"bad Content-Length {hv['content-length'][:40]!r}") from None
            if self._left < 0:
                raise HttpProtocolError("negative Content-Length")
        elif not self._chunked:
            self.will_close = True  # body ends with the connection
        if self._left == 0 and not self._chunked:
            self._finish()

    def _line(self, first: bool = False) -> bytes:
        line = self._f.readline(MAX_LINE + 1)
        if not line:
            if first:
                raise RemoteDisconnected("the daemon closed the connection without a response")
            raise HttpProtocolError("connection closed inside the response head")
        if len(line) > MAX_LINE:
            raise HttpProtocolError(f"response line longer than {MAX_LINE} bytes")
        return line

    def getheaders(self) -> list[tuple[str, str]]:
        return list(self._headers)

    def getheader(self, name: str, default: str | None = None) -> str | None:
        n = name.lower()
        return next((v for k, v in self._headers if k.lower() == n), default)

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._conn._response_done(self)

    def _next_chunk(self) -> None:
        """Position at the next chunk's data; at the last chunk read the trailers and finish."""
        if self._left == 0:
            if self._line() not in (b"\r\n", b"\n"):  # CRLF after the previous chunk's data
                raise HttpProtocolError("chunk data not followed by CRLF")
        size_line = self._line().split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise HttpProtocolError(f"bad chunk size {size_line[:40]!r}") from None
        if size < 0:
            raise HttpProtocolError("negative chunk size")
        if size == 0:
            for _ in range(MAX_HEADERS + 1):
                if self._line() in (b"\r\n", b"\n"):
                    break
            else:
                raise HttpProtocolError("too many trailer lines")
            self._left = None
            self._finish()
            return
        self._left = size

    def readinto(self, buf: Any) -> int:
        """Up to ``len(buf)`` body bytes into ``buf``; 0 at the end of the body."""
        mv = memoryview(buf).cast("B")
        if self._done or not mv.nbytes:
            return 0
        if self._chunked and not self._left:
            self._next_chunk()
            if self._done:
                return 0
        want = mv.nbytes if self._left is None else min(mv.nbytes, self._left)
        n = self._f.readinto(mv[:want])
        if not n:
            if self._left is None and not self._chunked:  # close-delimited body: this is its end
                self._finish()
                return 0
            raise HttpProtocolError("connection closed inside the response body")
        if self._left is not None:
            self._left -= n
            if self._left == 0 and not self._chunked:
                self._finish()
        return n

    def read(self, amt: int | None = None) -> bytes:
        """``amt`` bytes (fewer only at the end of the body), or the whole rest of the body."""
        if amt is not None:
            out = bytearray(amt)
            got = 0
            while got < amt:
                n = self.readinto(memoryview(out)[got:])
                if not n:
                    break
                got += n
            return bytes(out[:got])
        parts = []
        while not self._done:
            if self._left:
                parts.append(self.read(self._left))
            else:
                chunk = self.read(1 << 16)
                if not chunk:
                    break
                parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        if not self._done:  # an unread body leaves the stream mid-response: the connection cannot be reused
            self._done = True
            self._conn.close()


class UnixHTTPConnection:
    """Keep-alive HTTP/1.1 to a Unix socket; one request at a time (like ``http.client``)."""

    def __init__(self, path: str, timeout: float) -> None:
        self.socket_path = path
        self.timeout = timeout
        self.sock: _socket.socket | None = None
        self._file: Any = None
        self._method = "GET"
        self._pending: UnixResponse | None = None

    def connect(self) -> None:
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.socket_path)
        except OSError:
            s.close()
            raise
        self.sock = s
        self._file = io.BufferedReader(_SocketReader(s))

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> None:
        if self._pending is not None:  # the last response was not read to its end
            self.close()
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        body = body or b""
        head = [f"{method} {path} HTTP/1.1", "Host: localhost"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        self.sock.sendall(data + body if len(body) < 65536 else data)
        if len(body) >= 65536:
            self.sock.sendall(body)
        self._method = method

    def getresponse(self) -> UnixResponse:
        if self.sock is None:
            raise RemoteDisconnected("no request sent")
        resp = UnixResponse(self, self._method)
        if not resp._done:
            self._pending = resp
        return resp

    def _response_done(self, resp: UnixResponse) -> None:
        if self._pending is resp:
            self._pending = None
        if resp.will_close:
            self.close()

    def close(self) -> None:
        self._pending = None
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None
