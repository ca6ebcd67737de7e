"""Per-socket protection around aiohttp's HTTP/1.1 protocol: a cap on open client connections, a
deadline for a request's head (slowloris), a deadline for a client that stops reading a response, and
JSON errors for bytes that are not HTTP.

aiohttp parses requests itself; these are the four points its public options do not cover:

* **Request head deadline.** aiohttp's ``keepalive_timeout`` is armed when a connection is accepted
  and again after every response, and closes the connection if no complete request head has arrived
  by then (it checks that the handler is still waiting for a message, so partial headers do not
  count). Set to :attr:`Limits.client_timeout`, it is both the idle keep-alive limit and the time a
  client has to send a request's head, however slowly it drips it. Bodies get the same deadline in
  the app's body reads (408 after it).
* **Open connections.** :class:`GuardedHandler` counts its server's connections (Unix and TCP sites
  share one server) and answers one past :attr:`Limits.max_clients` with a 503 JSON error and a close,
  before reading a byte.
* **A client that stops reading.** aiohttp's writes wait (back-pressure) once a connection's send
  buffer passes its high-water mark, so a client that stops reading mid-response holds at most that
  much memory -- but holds it, and its handler, forever. :func:`watch_writes` samples every client's
  send-buffer size; one that has not moved for :attr:`Limits.write_timeout` seconds (the kernel's
  socket buffer and ours both full) is logged and aborted, which ends the waiting handler. Other
  clients never wait on it: each connection has its own buffers.
* **Non-HTTP input.** aiohttp answers what its parser rejects (``HttpProcessingError``) through
  ``RequestHandler.handle_error`` with plain text, outside the application's middlewares;
  :class:`GuardedHandler` overrides that method so the answer is the API's JSON error (status 400, the
  parser's own message) followed by a close. Bytes that could still become a request head (a
  partial request line) get no answer until they are complete or the deadline closes the connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ..remote.protocol import error_body

log = logging.getLogger("pymemflow.serve")


def raw_json_response(status: int, type_name: str, message: str) -> bytes:
    """A whole HTTP/1.1 response (JSON error, ``Connection: close``) for a socket that has no request
    object (refused before its first byte is parsed)."""
    body = json.dumps(error_body(status, type_name, message)).encode()
    reason = {503: "Service Unavailable"}.get(status, "Error")
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


class GuardedHandler(RequestHandler):
    """aiohttp's per-connection protocol with the connection cap and JSON parser errors."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        manager = self._manager
        cap = getattr(manager, "max_clients", 0)
        if manager is not None and cap and len(manager.connections) >= cap:
            peer = transport.get_extra_info("peername")
            log.warning("refused a client connection (%s): %d open, max_clients %d", peer or "unix",
                        len(manager.connections), cap)
            tr: Any = transport
            tr.write(raw_json_response(503, "Busy", f"{len(manager.connections)} client connections are open "
                                       f"(max_clients {cap}); retry later"))
            tr.close()
            self._manager = None  # connection_lost is then a no-op: this one was never counted
            return
        super().connection_made(transport)

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs; raises if a response already began
        if status >= 500:
            type_name, text = "InternalError", "internal error (see the daemon's log)"
        else:
            type_name = "BadRequest"
            text = f"not a valid HTTP/1.1 request: {' '.join((message or str(exc or '')).split())}"
        resp = web.Response(text=json.dumps(error_body(status, type_name, text)), status=status,
                            content_type="application/json")
        resp.force_close()
        return resp


async def watch_writes(server: web.Server, timeout: float, period: float | None = None) -> None:
    """Abort client connections whose send buffer has not moved for ``timeout`` seconds (runs until
    cancelled). A buffer that shrinks or grows counts as progress; an empty one is not waiting."""
    loop = asyncio.get_running_loop()
    step = period if period is not None else max(0.05, min(1.0, timeout / 4))
    seen: dict[int, tuple[int, float]] = {}  # id(protocol) -> (buffered bytes, since when unchanged)
    while True:
        await asyncio.sleep(step)
        now = loop.time()
        still: dict[int, tuple[int, float]] = {}
        for proto in list(server.connections):
            tr: Any = proto.transport
            if tr is None or tr.is_closing():
                continue
            size = tr.get_write_buffer_size()
            if not size:
                continue
            last = seen.get(id(proto))
            if last is None or last[0] != size:
                still[id(proto)] = (size, now)
                continue
            if now - last[1] < timeout:
                still[id(proto)] = last
                continue
            log.warning("closed a client connection (%s): it stopped reading, %d bytes unsent for %.1f s "
                        "(write_timeout %g s)", tr.get_extra_info("peername") or "unix", size, now - last[1],
                        timeout)
            tr.abort()
        seen = still


class GuardedServer(web.Server):
    """aiohttp's server (the sites' protocol factory) making :class:`GuardedHandler` protocols."""

    max_clients = 0

    def __call__(self) -> RequestHandler:
        return GuardedHandler(self, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """An ``AppRunner`` whose server is a :class:`GuardedServer`: ``client_timeout`` is aiohttp's
    ``keepalive_timeout`` (see the module's docstring), ``max_clients`` the connection cap."""

    def __init__(self, app: web.Application, *, max_clients: int, client_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=client_timeout, **kwargs)
        self.max_clients = max_clients

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = GuardedServer  # the same object and state; only the protocol class differs
        server.max_clients = self.max_clients  # type: ignore[attr-defined]
        return server
