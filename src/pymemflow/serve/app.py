"""The HTTP API (``/v1``) on aiohttp: a thin front end over the connections' chain objects.

Every route is declared once in :data:`ROUTES`; the router and the OpenAPI document
(:mod:`pymemflow.serve.openapi`) are both built from it, so they cannot disagree. Chain calls run in
a thread pool (never in the event loop), so a slow client or a slow walk does not stall the others.

Why aiohttp: a maintained asyncio HTTP/1.1 server with Unix-socket and TLS sites, streaming
responses with back-pressure (``StreamResponse.write`` waits for the slow reader, not the others),
request-size limits, and no extra ASGI server process model to configure.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web

from ..errors import ArgumentError, PartialReadError, PartialWriteError, ReadFailure, ReadOnlyError
from ..plugins.api import parse_bool, parse_int
from ..records import jsonable, record_list
from ..remote.protocol import (
    API_PREFIX,
    BATCH_CONTENT_TYPE,
    check_name,
    encode_batch_header,
    error_body,
    failures_to_json,
    status_of,
)
from .connections import Connection, ConnectionFailed, Connections, NoRoom, chain_words
from .limits import Limits
from .openapi import VERSION, document

log = logging.getLogger("pymemflow.serve")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Param:
    name: str
    where: str  # "path" | "query"
    type: str  # "string" | "integer" | "boolean"
    description: str
    required: bool = False


@dataclass
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    params: list[Param] = field(default_factory=list)
    body: str = ""  # "" | "json" | "octet" | "pieces"
    response: str = "json"  # "json" | "octet" | "batch" | "none"
    body_schema: dict[str, Any] = field(default_factory=dict)


class ApiError(Exception):
    """A request the daemon refuses: an HTTP status and a message naming what was wrong."""

    def __init__(self, status: int, message: str, type_name: str = "BadRequest") -> None:
        super().__init__(message)
        self.status = status
        self.type_name = type_name


# ---- request helpers ------------------------------------------------------------------------------

def _state(request: web.Request) -> ServerState:
    st: ServerState = request.app[STATE_KEY]
    return st


def _int(request: web.Request, name: str, required: bool = True, default: int = 0) -> int:
    text = request.query.get(name)
    if text is None:
        if required:
            raise ApiError(400, f"query parameter {name!r} is required")
        return default
    try:
        v = parse_int(text)
    except ValueError as e:
        raise ApiError(400, f"query parameter {name}={text!r}: {e}") from None
    if not 0 <= v < 1 << 64:
        raise ApiError(400, f"query parameter {name}={text!r}: out of range 0 .. 2**64-1")
    return v


def _bool(request: web.Request, name: str) -> bool:
    text = request.query.get(name)
    if text is None:
        return False
    try:
        return parse_bool(text)
    except ValueError as e:
        raise ApiError(400, f"query parameter {name}={text!r}: {e}") from None


def _conn(request: web.Request) -> Connection:
    return _state(request).connections.get(request.match_info["conn"])


def _peer_cred(request: web.Request) -> tuple[int, int, int] | None:
    """(pid, uid, gid) of a Unix-socket peer (SO_PEERCRED); None over TCP."""
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    try:
        pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                             struct.calcsize("3i")))
    except OSError:
        return None
    return pid, uid, gid


def peer(request: web.Request) -> str:
    """Who is asking, for the log: ``unix pid=N uid=N gid=N`` or ``tcp HOST:PORT``."""
    cred = _peer_cred(request)
    if cred is not None:
        return "unix pid={} uid={} gid={}".format(*cred)
    pn = request.transport.get_extra_info("peername") if request.transport else None
    return f"tcp {pn[0]}:{pn[1]}" if isinstance(pn, tuple) and len(pn) >= 2 else "unix"


def authorised(request: web.Request) -> bool:
    """May this request change things (write memory, open writable connections)? With a token
    configured the middleware has checked it already; without one (Unix socket only) the peer must be
    the daemon's own user or root."""
    if _state(request).token is not None:
        return True
    cred = _peer_cred(request)
    return cred is not None and cred[1] in (0, os.getuid())


async def _run(request: web.Request, conn: Connection, fn: Callable[[Any], Any]) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_state(request).pool, conn.run, fn)


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(jsonable(obj)), status=status, content_type="application/json")


# ---- connections -----------------------------------------------------------------------------------

async def h_root(request: web.Request) -> web.StreamResponse:
    st = _state(request)
    return _json({"service": "pymemflow", "version": VERSION, "api": "v1",
                  "openapi": f"{API_PREFIX}/openapi.json", "connections": len(st.connections.list()),
                  "limits": st.limits.__dict__})


async def h_openapi(request: web.Request) -> web.StreamResponse:
    return _json(document(ROUTES))


async def h_list(request: web.Request) -> web.StreamResponse:
    return _json([c.describe() for c in _state(request).connections.list()])


async def h_create(request: web.Request) -> web.StreamResponse:
    st = _state(request)
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "body: expected a JSON object {\"name\": ..., \"chain\": ..., \"writable\": false}")
    unknown = set(body) - {"name", "chain", "writable"}
    if unknown:
        raise ApiError(400, f"body: unknown keys {sorted(unknown)} (known: name, chain, writable)")
    name, spec, writable = body.get("name"), body.get("chain"), body.get("writable", False)
    if not isinstance(name, str):
        raise ApiError(400, "body.name: expected a string")
    if not (isinstance(spec, str) or (isinstance(spec, list) and all(isinstance(w, str) for w in spec))):
        raise ApiError(400, "body.chain: expected a string such as \"-c demo -o win32\" or a list of words")
    if not isinstance(writable, bool):
        raise ApiError(400, "body.writable: expected true or false")
    if writable and not authorised(request):
        raise ApiError(403, "opening a writable connection needs an authorised request", "Forbidden")
    check_name(name)
    words = chain_words(spec)  # a malformed chain is a bad request (400) ...
    who = peer(request)
    loop = asyncio.get_running_loop()
    try:
        conn = await loop.run_in_executor(st.pool, lambda: st.connections.open(name, words, writable=writable,
                                                                                opened_by=who))
    except NoRoom as e:
        raise ApiError(409, str(e), "ArgumentError") from None
    except ArgumentError as e:  # ... a well-formed one that cannot be opened (unknown plugin, bad value) is 422
        raise ApiError(422, str(e), "ArgumentError") from None
    return _json(conn.describe(), 201)


async def h_info(request: web.Request) -> web.StreamResponse:
    conn = _conn(request)
    if conn.state != "open":
        return _json(conn.describe())
    loop = asyncio.get_running_loop()
    return _json(await loop.run_in_executor(_state(request).pool, conn.describe, True))


async def h_delete(request: web.Request) -> web.StreamResponse:
    st = _state(request)
    name = request.match_info["conn"]
    st.connections.get(name)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(st.pool, st.connections.remove, name, peer(request))
    return web.Response(status=204)


# ---- OS-layer listings ---------------------------------------------------------------------------

def _proc(request: web.Request) -> str:
    return request.match_info["proc"]


async def h_os_info(request: web.Request) -> web.StreamResponse:
    conn = _conn(request)
    return _json(await _run(request, conn, lambda ch: conn.os().info()))


async def h_processes(request: web.Request) -> web.StreamResponse:
    conn = _conn(request)
    return _json(await _run(request, conn, lambda ch: record_list(conn.os().process_info_list())))


async def h_process(request: web.Request) -> web.StreamResponse:
    conn, ref = _conn(request), _proc(request)
    return _json(await _run(request, conn, lambda ch: jsonable(conn.process(ref).info)))


async def h_modules(request: web.Request) -> web.StreamResponse:
    conn, ref = _conn(request), _proc(request)
    return _json(await _run(request, conn, lambda ch: record_list(conn.process(ref).module_list())))


async def h_kmods(request: web.Request) -> web.StreamResponse:
    conn = _conn(request)
    return _json(await _run(request, conn, lambda ch: record_list(conn.os().kernel_modules())))


def _module(conn: Connection, ref: str, name: str, base: int | None) -> tuple[Any, Any]:
    proc = conn.process(ref)
    if base is None:
        return proc, proc.module_by_name(name)
    for m in proc.module_list():
        if m.base == base and m.name.lower() == name.lower():
            return proc, m
    return proc, proc.module_by_name(name)


def _module_route(kind: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        conn, ref, name = _conn(request), _proc(request), request.match_info["module"]
        base = _int(request, "base", required=False, default=-1)

        def work(ch: Any) -> Any:
            proc, mod = _module(conn, ref, name, None if base < 0 else base)
            return record_list(getattr(proc, kind)(mod))

        return _json(await _run(request, conn, work))

    handler.__name__ = f"h_module_{kind}"
    return handler


async def h_maps(request: web.Request) -> web.StreamResponse:
    conn, ref, vad = _conn(request), _proc(request), _bool(request, "vad")
    return _json(await _run(request, conn, lambda ch: record_list(
        conn.process(ref).maps(vad=True) if vad else conn.process(ref).maps())))


async def h_dmesg(request: web.Request) -> web.StreamResponse:
    conn = _conn(request)

    def work(ch: Any) -> Any:
        fn = getattr(conn.os(), "dmesg", None)
        if fn is None:
            raise NotImplementedError(f"dmesg: not supported by the {conn.os().name} OS layer (Linux only)")
        return record_list(fn())

    return _json(await _run(request, conn, work))


async def h_keys(request: web.Request) -> web.StreamResponse:
    conn = _conn(request)

    def work(ch: Any) -> Any:
        fn = getattr(conn.os(), "keyboard", None)
        if fn is None:
            raise NotImplementedError(f"keys: the {conn.os().name} layer has no keyboard state (Windows only)")
        return {"down": list(fn().down_keys())}

    return _json(await _run(request, conn, work))


# ---- memory ------------------------------------------------------------------------------------

MemGetter = Callable[[Connection, web.Request], Any]


def _phys(conn: Connection, request: web.Request) -> Any:
    return conn.connector()


def _kernel(conn: Connection, request: web.Request) -> Any:
    return conn.kernel_memory()


def _procmem(conn: Connection, request: web.Request) -> Any:
    return conn.process(_proc(request)).memory


def _space(conn: Connection, request: web.Request) -> Any:
    dtb_text = request.match_info["dtb"]
    try:
        dtb = parse_int(dtb_text)
    except ValueError as e:
        raise ApiError(400, f"dtb {dtb_text!r}: {e}") from None
    return conn.address_space(request.match_info["arch"], dtb)


def _read_route(getter: MemGetter) -> Handler:
    """``GET ...?addr=&length=``: raw bytes, streamed in ``stream_chunk`` steps."""

    async def handler(request: web.Request) -> web.StreamResponse:
        st, conn = _state(request), _conn(request)
        addr, length, zero_fill = _int(request, "addr"), _int(request, "length"), _bool(request, "zero_fill")
        if length > st.limits.max_read:
            raise ApiError(413, f"length {length:#x} exceeds the daemon's max_read {st.limits.max_read:#x}",
                           "TooLarge")
        if addr + length > 1 << 64:
            raise ApiError(400, f"addr {addr:#x} + length {length:#x} passes the end of the address space")
        chunk = st.limits.stream_chunk

        def read(a: int, n: int) -> tuple[list[Buffer], list[ReadFailure]]:
            return getter(conn, request).read_parts(a, n)  # type: ignore[no-any-return]

        first_n = min(length, chunk)
        data, fails = await _run(request, conn, lambda ch: read(addr, first_n))
        if fails and not zero_fill:
            raise PartialReadError(b"".join(data), fails)
        resp = web.StreamResponse(headers={"Content-Type": BATCH_CONTENT_TYPE})
        if length <= chunk:  # known before the headers go: how many bytes came back as zeros
            resp.headers["Pymemflow-Unreadable-Bytes"] = str(sum(f.length for f in fails))
        resp.content_length = length
        await resp.prepare(request)
        await _send(resp, data)
        off = first_n
        while off < length:
            n = min(chunk, length - off)
            data, fails = await _run(request, conn, functools.partial(_read_at, read, addr + off, n))
            if fails and not zero_fill:
                # headers are gone: end the response short, which every HTTP client reports as an error
                log.warning("%s: read at %#x failed mid-stream (%s); response cut", peer(request), addr + off,
                            fails[0])
                if request.transport is not None:
                    request.transport.close()
                return resp
            await _send(resp, data)
            off += n
        await resp.write_eof()
        return resp

    handler.__name__ = f"h_read_{getter.__name__.strip('_')}"
    return handler


async def _pieces(request: web.Request) -> tuple[Any, Any]:
    st = _state(request)
    lim = st.limits
    if request.content_type == "application/json":
        body = await _json_body(request)
        raw = body.get("pieces") if isinstance(body, dict) else None
        if not isinstance(raw, list):
            raise ApiError(400, "body: expected {\"pieces\": [[address, length], ...]}")
        if len(raw) > lim.max_batch_pieces:
            raise ApiError(413, f"{len(raw)} pieces exceed max_batch_pieces {lim.max_batch_pieces}", "TooLarge")
        for i, p in enumerate(raw):
            if (not isinstance(p, list) or len(p) != 2 or not all(isinstance(v, int) and not isinstance(v, bool)
                                                                   for v in p)):
                raise ApiError(400, f"body.pieces[{i}]: expected [address, length] as two integers, got {p!r}")
            if not 0 <= p[0] < 1 << 64:
                raise ApiError(400, f"body.pieces[{i}]: address {p[0]} out of range 0 .. 2**64-1")
            if not 0 <= p[1] <= lim.max_read:
                raise ApiError(400, f"body.pieces[{i}]: length {p[1]} out of range 0 .. {lim.max_read}")
        arr = np.array(raw, dtype=np.uint64).reshape(-1, 2)
    else:
        body_bytes = await _body(request)
        if len(body_bytes) % 16:
            raise ApiError(400, f"body: {len(body_bytes)} bytes is not a whole number of 16-byte "
                                "(u64 address, u64 length) pieces")
        if len(body_bytes) // 16 > lim.max_batch_pieces:
            raise ApiError(413, f"{len(body_bytes) // 16} pieces exceed max_batch_pieces {lim.max_batch_pieces}",
                           "TooLarge")
        arr = np.frombuffer(body_bytes, dtype="<u8").reshape(-1, 2)
    addrs = np.ascontiguousarray(arr[:, 0], dtype=np.uint64)
    lens_u = arr[:, 1]
    if lens_u.size:
        big = int(np.argmax(lens_u))
        if int(lens_u[big]) > lim.max_read:
            raise ApiError(400, f"piece {big}: length {int(lens_u[big])} exceeds max_read {lim.max_read}")
    lengths = lens_u.astype(np.int64)
    total = int(lengths.sum())
    if total > lim.max_batch_bytes:
        raise ApiError(413, f"the pieces add up to {total} bytes, more than max_batch_bytes {lim.max_batch_bytes}",
                       "TooLarge")
    over = np.nonzero((lengths > 0) & (addrs > np.uint64((1 << 64) - 1) - (lengths.astype(np.uint64) - 1)))[0]
    if over.size:
        i = int(over[0])
        raise ApiError(400, f"piece {i}: address {int(addrs[i]):#x} + length {int(lengths[i])} passes 2**64")
    return addrs, lengths


def _read_at(read: Callable[[int, int], Any], a: int, n: int, chain: Any) -> Any:
    return read(a, n)


WRITE_STEP = 1 << 20
"""Bytes handed to the transport at a time (it copies what the socket does not take at once)."""

Buffer = bytes | memoryview


async def _send(resp: web.StreamResponse, parts: list[Any]) -> None:
    """Write buffers (bytes, views of the connector's mmap, NumPy arrays) in ``WRITE_STEP`` slices,
    never joined: a slow reader holds little in buffers and no byte is copied on the way."""
    for part in parts:
        mv = memoryview(part).cast("B")
        for off in range(0, len(mv), WRITE_STEP):
            await resp.write(mv[off : off + WRITE_STEP])


def _read_pieces(mem: Any, addrs: Any, lengths: Any) -> tuple[list[Any], list[ReadFailure]]:
    """(buffers holding the pieces' bytes back to back, failures): ``mem.read_batch``, except that one
    big piece goes through ``read_parts`` (views of the connector's buffer where it has one: no copy)."""
    if len(lengths) == 1 and int(lengths[0]) >= 1 << 16:
        parts, fails = mem.read_parts(int(addrs[0]), int(lengths[0]))
        return parts, [ReadFailure(0, f.address, f.length, f.reason) for f in fails]
    res = mem.read_batch(addrs, lengths)
    return [res.data], res.failures


def _batch_route(getter: MemGetter) -> Handler:
    """``POST .../read-batch``: many pieces in, the binary batch response out."""

    async def handler(request: web.Request) -> web.StreamResponse:
        conn = _conn(request)
        addrs, lengths = await _pieces(request)
        parts, failures = await _run(request, conn, lambda ch: _read_pieces(getter(conn, request), addrs, lengths))
        count = len(lengths)
        size = int(lengths.sum())
        status = np.zeros(count, dtype=np.uint8)
        if failures:
            status[[f.index for f in failures]] = 1
        fj = failures_to_json(failures) if failures else b""
        head = encode_batch_header(count, fj, size)
        resp = web.StreamResponse(headers={"Content-Type": BATCH_CONTENT_TYPE})
        resp.content_length = len(head) + count + len(fj) + size
        await resp.prepare(request)
        await resp.write(head + status.tobytes() + fj)
        await _send(resp, parts)
        await resp.write_eof()
        return resp

    handler.__name__ = f"h_batch_{getter.__name__.strip('_')}"
    return handler


def _write_route(getter: MemGetter) -> Handler:
    """``PUT ...?addr=``: the body's bytes written at ``addr`` (writable connection + authorised)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        conn = _conn(request)
        addr = _int(request, "addr")
        if not conn.writable:
            raise ReadOnlyError(f"connection {conn.name!r} was opened read-only (open it with writable: true)")
        if not authorised(request):
            raise ApiError(403, "writing needs an authorised request", "Forbidden")
        data = await _body(request)
        if addr + len(data) > 1 << 64:
            raise ApiError(400, f"addr {addr:#x} + {len(data)} bytes passes the end of the address space")
        await _run(request, conn, lambda ch: getter(conn, request).write(addr, data))
        log.warning("%s wrote %d bytes at %#x on %s (%s)", peer(request), len(data), addr, conn.name,
                    request.path)
        return _json({"address": addr, "written": len(data)})

    handler.__name__ = f"h_write_{getter.__name__.strip('_')}"
    return handler


def _translate_route(getter: MemGetter) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        conn, va = _conn(request), _int(request, "addr")

        def work(ch: Any) -> Any:
            mem = getter(conn, request)
            if not hasattr(mem, "translate"):
                raise NotImplementedError("this memory has no page-table translation")
            return {"va": va, "pa": int(mem.translate(va))}

        return _json(await _run(request, conn, work))

    handler.__name__ = f"h_translate_{getter.__name__.strip('_')}"
    return handler


async def _body(request: web.Request) -> bytes:
    """The request body, or 408 if it does not arrive within ``client_timeout`` (a client dripping
    its body cannot hold a connection and a request slot for ever)."""
    timeout = _state(request).limits.client_timeout
    try:
        return await asyncio.wait_for(request.read(), timeout)
    except asyncio.TimeoutError:
        raise ApiError(408, f"request body not received within client_timeout {timeout:g} s",
                       "RequestTimeout") from None


async def _json_body(request: web.Request) -> Any:
    raw = await _body(request)
    try:
        return json.loads(raw)
    except ValueError as e:
        raise ApiError(400, f"body is not valid JSON: {e}") from None


# ---- the route table -----------------------------------------------------------------------------

C = Param("conn", "path", "string", "connection name", True)
P = Param("proc", "path", "string", "process: a pid (digits) or a name", True)
M = Param("module", "path", "string", "module name (case-insensitive)", True)
ADDR = Param("addr", "query", "integer", "address (decimal or 0x hex)", True)
LEN = Param("length", "query", "integer", "bytes to read", True)
ZF = Param("zero_fill", "query", "boolean", "unreadable bytes come back as zeros instead of an error")
BASE = Param("base", "query", "integer", "module base, to pick among modules of the same name")
VAD = Param("vad", "query", "boolean", "from the OS's own records (VADs) instead of page tables")

CONN_BODY = {"type": "object", "required": ["name", "chain"], "additionalProperties": False, "properties": {
    "name": {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"},
    "chain": {"oneOf": [{"type": "string", "pattern": r"^\s*-(c|o|-connector|-os)\s+\S"},
                        {"type": "array", "items": {"type": "string"}, "minItems": 2}],
              "description": "the chain as on the command line: \"-c demo -o win32\""},
    "writable": {"type": "boolean", "default": False}}}


def _memory_routes(prefix: str, getter: MemGetter, what: str, params: list[Param]) -> list[Route]:
    return [
        Route("GET", f"{prefix}/read", _read_route(getter), f"read {what} (raw bytes, streamed)",
              params + [ADDR, LEN, ZF], response="octet"),
        Route("POST", f"{prefix}/read-batch", _batch_route(getter),
              f"batched read of {what}: many (address, length) pieces, binary response with per-piece status",
              params, body="pieces", response="batch"),
        Route("PUT", f"{prefix}/write", _write_route(getter), f"write {what} (writable connections only)",
              params + [ADDR], body="octet"),
    ]


CP = "/v1/connections/{conn}"
PP = CP + "/processes/{proc}"
VP = CP + "/vmem/{arch}/{dtb}"
ARCH = Param("arch", "path", "string", "MMU: x64, x64la57, x86, x86pae, aarch64", True)
DTB = Param("dtb", "path", "string", "page-table root (CR3), decimal or 0x hex", True)

ROUTES: list[Route] = [
    Route("GET", "/v1", h_root, "service version, API version and limits"),
    Route("GET", "/v1/openapi.json", h_openapi, "this API's OpenAPI 3 document"),
    Route("GET", "/v1/connections", h_list, "list connections"),
    Route("POST", "/v1/connections", h_create, "open a chain as a new named connection", body="json",
          body_schema=CONN_BODY),
    Route("GET", CP, h_info, "a connection: its chain, state, connector metadata and hints, OS facts", [C]),
    Route("DELETE", CP, h_delete, "close and remove a connection", [C], response="none"),
    Route("GET", CP + "/os", h_os_info, "OS facts (as `pymemflow info`)", [C]),
    Route("GET", CP + "/processes", h_processes, "processes (the fields of `pymemflow ps --json`)", [C]),
    Route("GET", PP, h_process, "one process by pid or name", [C, P]),
    Route("GET", PP + "/modules", h_modules, "modules of a process", [C, P]),
    Route("GET", PP + "/modules/{module}/exports", _module_route("exports"), "exports of a module", [C, P, M, BASE]),
    Route("GET", PP + "/modules/{module}/imports", _module_route("imports"), "imports of a module", [C, P, M, BASE]),
    Route("GET", PP + "/modules/{module}/sections", _module_route("sections"), "sections of a module",
          [C, P, M, BASE]),
    Route("GET", PP + "/maps", h_maps, "memory map of a process", [C, P, VAD]),
    Route("GET", PP + "/translate", _translate_route(_procmem), "virtual -> physical in a process", [C, P, ADDR]),
    *_memory_routes(PP, _procmem, "a process's virtual memory", [C, P]),
    Route("GET", CP + "/kernel/modules", h_kmods, "kernel modules / drivers", [C]),
    Route("GET", CP + "/kernel/translate", _translate_route(_kernel), "virtual -> physical in the kernel",
          [C, ADDR]),
    *_memory_routes(CP + "/kernel", _kernel, "the kernel's virtual memory", [C]),
    *_memory_routes(CP + "/phys", _phys, "physical memory", [C]),
    Route("GET", VP + "/translate", _translate_route(_space), "virtual -> physical under a page-table root",
          [C, ARCH, DTB, ADDR]),
    *_memory_routes(VP, _space, "virtual memory under a page-table root walked on the connector", [C, ARCH, DTB]),
    Route("GET", CP + "/extras/dmesg", h_dmesg, "Linux kernel log records", [C]),
    Route("GET", CP + "/extras/keys", h_keys, "Windows: virtual-key codes held down", [C]),
]


# ---- the application -----------------------------------------------------------------------------

@dataclass
class ServerState:
    connections: Connections
    limits: Limits
    token: bytes | None
    pool: ThreadPoolExecutor
    in_flight: int = 0


STATE_KEY: web.AppKey[ServerState] = web.AppKey("pymemflow_state", ServerState)


def _error_response(status: int, type_name: str, message: str, **extra: Any) -> web.Response:
    return web.Response(text=json.dumps(error_body(status, type_name, message, **extra)), status=status,
                        content_type="application/json")


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Token check, concurrency limit, and every failure turned into a JSON error."""
    st = _state(request)
    if st.token is not None:
        got = request.headers.get("Authorization", "")
        given = got[7:].strip().encode() if got[:7].lower() == "bearer " else b""
        if not hmac.compare_digest(given, st.token):
            return _error_response(401, "Unauthorized", "missing or wrong bearer token "
                                   "(send Authorization: Bearer TOKEN)")
    if st.in_flight >= st.limits.max_concurrent:
        return _error_response(503, "Busy", f"{st.in_flight} requests in progress (max_concurrent "
                               f"{st.limits.max_concurrent}); retry later")
    if request.content_length is not None and request.content_length > st.limits.max_body:
        # refused from the header, before reading a byte of the body; the connection is not reused
        resp = _error_response(413, "TooLarge", f"request body of {request.content_length} bytes exceeds "
                               f"max_body {st.limits.max_body}")
        resp.force_close()
        return resp
    st.in_flight += 1
    try:
        return await handler(request)
    except ApiError as e:
        resp = _error_response(e.status, e.type_name, str(e))
        if e.status == 408:  # the rest of the body may still come: the connection cannot be reused
            resp.force_close()
        return resp
    except ConnectionFailed as e:
        return _error_response(503, "ConnectionFailed", str(e))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        what = {404: f"no such endpoint {request.method} {request.path} (see {API_PREFIX}/openapi.json)",
                405: f"method {request.method} not allowed on {request.path}",
                413: f"request body too large (max_body {st.limits.max_body} bytes)"}.get(e.status, e.reason)
        resp = _error_response(e.status, type(e).__name__.removeprefix("HTTP"), what)
        if isinstance(e, web.HTTPMethodNotAllowed):
            resp.headers["Allow"] = ", ".join(sorted(e.allowed_methods))
        return resp
    except (PartialReadError, PartialWriteError) as e:
        fails = [[f.index, f.address, f.length, f.reason] for f in e.failures[:100]]
        return _error_response(422, type(e).__name__, str(e), failures=fails)
    except Exception as e:
        status = status_of(e)
        extra: dict[str, Any] = {}
        if hasattr(e, "address") and hasattr(e, "reason"):
            extra = {"address": e.address, "reason": e.reason}
        if status >= 500 and status != 501:
            log.exception("%s %s %s: internal error", peer(request), request.method, request.path)
        return _error_response(status, type(e).__name__, str(e) or type(e).__name__, **extra)
    finally:
        st.in_flight -= 1


def make_app(connections: Connections, limits: Limits | None = None, token: str | None = None) -> web.Application:
    lim = limits or Limits()
    app = web.Application(middlewares=[guard], client_max_size=lim.max_body)
    pool = ThreadPoolExecutor(max_workers=lim.workers, thread_name_prefix="pymemflow-serve")
    app[STATE_KEY] = ServerState(connections, lim, token.encode() if token else None, pool)
    for r in ROUTES:
        app.router.add_route(r.method, r.path, r.handler)

    async def on_cleanup(app: web.Application) -> None:
        pool.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(on_cleanup)
    return app


__all__ = ["ROUTES", "ApiError", "Route", "ServerState", "authorised", "make_app", "peer"]
