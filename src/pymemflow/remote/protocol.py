"""The daemon's wire format, shared by the server (:mod:`pymemflow.serve`) and the clients.

Batched reads travel as binary, never base64 in JSON:

Request body (``application/octet-stream``): ``count`` pairs of little-endian u64
``(address, length)``. (``application/json`` ``{"pieces": [[address, length], ...]}`` is accepted too.)

Response body (``application/octet-stream``)::

    offset  size            field
    0       8               magic b"PMFBATCH"
    8       4               u32 version (1)
    12      4               u32 reserved (0)
    16      8               u64 count: pieces, in request order
    24      8               u64 failures_length: bytes of the failures JSON
    32      8               u64 data_length: sum of the pieces' lengths
    40      count           u8 status per piece: 0 read whole, 1 some bytes failed (zero-filled)
    ..      failures_length JSON array of [index, address, length, reason] (the ReadFailure fields)
    ..      data_length     the pieces' bytes back to back, in request order

All integers little-endian. Errors are JSON objects ``{"error": {"status", "type", "message", ...}}``.
"""

from __future__ import annotations

import json
import re
import struct
from typing import Any

from .. import errors as _errors
from ..errors import PymemflowError, ReadFailure
from ..records import FrozenRecord

API_PREFIX = "/v1"
BATCH_MAGIC = b"PMFBATCH"
BATCH_VERSION = 1
BATCH_HEADER = struct.Struct("<8sIIQQQ")
"""magic, version, reserved, count, failures_length, data_length (40 bytes)."""
PIECE = struct.Struct("<QQ")
BATCH_CONTENT_TYPE = "application/octet-stream"

NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
"""Connection names: letters, digits, ``_``, ``.``, ``-``; 1..64 characters, no leading dot or dash
(so a name can never be ``..`` or a path)."""


def quote_segment(text: str) -> str:
    """``text`` as one URL path segment (all but letters, digits and ``_.-~`` percent-encoded). Imports
    ``urllib.parse`` (with ``ipaddress``) only when called: listing processes through a daemon needs no
    quoting, and a thin client's start-up skips them."""
    from urllib.parse import quote

    return quote(text, safe="")


def check_name(name: str, what: str = "connection name") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise _errors.ArgumentError(
            f"bad {what} {name!r}: use 1-64 letters, digits, '_', '.', '-' (not starting with '.' or '-')")
    return name


def encode_batch_header(count: int, failures_json: bytes, data_length: int) -> bytes:
    return BATCH_HEADER.pack(BATCH_MAGIC, BATCH_VERSION, 0, count, len(failures_json), data_length)


def decode_batch_header(head: bytes) -> tuple[int, int, int]:
    """(count, failures_length, data_length) of a batch response; raises on anything else."""
    if len(head) != BATCH_HEADER.size:
        raise PymemflowError(f"batch response: header is {len(head)} bytes, expected {BATCH_HEADER.size}")
    magic, version, _, count, flen, dlen = BATCH_HEADER.unpack(head)
    if magic != BATCH_MAGIC or version != BATCH_VERSION:
        raise PymemflowError(f"batch response: bad magic/version {magic!r}/{version}")
    return count, flen, dlen


def failures_to_json(failures: list[ReadFailure]) -> bytes:
    return json.dumps([[f.index, f.address, f.length, f.reason] for f in failures]).encode()


def failures_from_json(raw: bytes) -> list[ReadFailure]:
    return [ReadFailure(int(i), int(a), int(n), str(r)) for i, a, n, r in json.loads(raw or b"[]")]


# ---- errors ----------------------------------------------------------------------------------

STATUS_OF: list[tuple[type[BaseException], int]] = [
    (_errors.ArgumentError, 400),
    (_errors.NotFoundError, 404),
    (_errors.ReadOnlyError, 403),
    (NotImplementedError, 501),
    (_errors.PartialReadError, 422),
    (_errors.PartialWriteError, 422),
    (_errors.TranslationError, 422),
    (_errors.FormatError, 422),
    (_errors.OsLayerError, 422),
    (_errors.PluginError, 422),
    (ValueError, 400),
    (PymemflowError, 422),
]
"""HTTP status of an exception raised by the chain (first match wins)."""


def status_of(exc: BaseException) -> int:
    for cls, status in STATUS_OF:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(status: int, type_name: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"status": status, "type": type_name, "message": message, **extra}}


class RemoteError(PymemflowError):
    """An error the daemon reported that has no closer local class (or a transport failure).
    ``status`` is the HTTP status (0 when the daemon could not be reached)."""

    def __init__(self, message: str, status: int = 0, type_name: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.type_name = type_name


class ConnectionFailedError(RemoteError):
    """The daemon's connection is in the failed state (its target went away)."""


def error_from_body(status: int, body: Any) -> BaseException:
    """The local exception for a daemon's JSON error: the same class a local chain raises."""
    err = body.get("error", {}) if isinstance(body, dict) else {}
    typ = str(err.get("type", ""))
    msg = str(err.get("message", "")) or f"HTTP {status}"
    if typ == "ConnectionFailed":
        return ConnectionFailedError(msg, status, typ)
    if typ == "TranslationError" and "address" in err:
        return _errors.TranslationError(int(err["address"]), str(err.get("reason", msg)))
    if typ == "NotImplementedError":
        return NotImplementedError(msg)
    simple = {c.__name__: c for c in (_errors.ArgumentError, _errors.NotFoundError, _errors.ReadOnlyError,
                                       _errors.OsLayerError, _errors.PluginError)}
    if typ in simple:
        return simple[typ](msg)
    if status == 400:
        return _errors.ArgumentError(msg)
    if status == 404:
        return _errors.NotFoundError(msg)
    return RemoteError(msg, status, typ)


# ---- addresses -------------------------------------------------------------------------------

class Endpoint(FrozenRecord):
    """Where the daemon listens: ``unix:/run/pymemflow.sock``, ``http://127.0.0.1:8750``, ``https://...``."""

    __slots__ = ("scheme", "path", "host", "port")
    scheme: str
    path: str
    host: str
    port: int

    def __init__(self, scheme: str, path: str = "", host: str = "", port: int = 0) -> None:
        self._init(scheme=scheme, path=path, host=host, port=port)

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        if url.startswith("unix:"):
            path = url[5:]
            if path.startswith("//"):
                path = path[2:]
            if not path:
                raise _errors.ArgumentError(f"{url!r}: unix: needs a socket path (unix:/run/pymemflow.sock)")
            return cls("unix", path=path)
        m = re.match(r"^(https?)://(\[[^\]]+\]|[^:/]+)(?::(\d+))?/?$", url)
        if not m:
            raise _errors.ArgumentError(f"{url!r} is not a daemon address (unix:PATH, http://HOST:PORT, "
                                        "https://HOST:PORT)")
        port = int(m.group(3) or (443 if m.group(1) == "https" else 80))
        return cls(m.group(1), host=m.group(2).strip("[]"), port=port)

    def __str__(self) -> str:
        return f"unix:{self.path}" if self.scheme == "unix" else f"{self.scheme}://{self.host}:{self.port}"
