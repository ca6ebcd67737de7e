"""The daemon's limits and settings (``--config`` TOML ``[limits]`` keys have these names)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..errors import ArgumentError


@dataclass
class Limits:
    max_body: int = 64 << 20
    """Largest request body (writes, batch requests), bytes."""
    max_read: int = 1 << 30
    """Largest single read (``GET .../read``), bytes; streamed in ``stream_chunk`` pieces."""
    max_batch_pieces: int = 1_000_000
    """Most pieces in one batched read."""
    max_batch_bytes: int = 256 << 20
    """Most bytes one batched read returns."""
    max_concurrent: int = 64
    """Requests in progress at once; more get HTTP 503 at once (never queued without bound)."""
    workers: int = 4
    """Threads running chain calls (each connection runs one call at a time)."""
    stream_chunk: int = 4 << 20
    """Bytes read per step of a streamed read: a slow reader holds no lock between steps."""
    max_connections: int = 64
    """Most connections open at once."""
    max_clients: int = 256
    """Client connections (sockets) open at once, Unix and TCP together; one more is answered 503
    and closed."""
    client_timeout: float = 60.0
    """Seconds a client has to send a request's head (from connecting or from its previous response;
    idle kept-alive connections close after it too) and, once the head is in, its body."""
    write_timeout: float = 30.0
    """Seconds a client may leave a response unread (not one byte taken from the daemon's send buffer)
    before its connection is closed and logged; the handler and its buffers are then freed."""
    process_ttl: float = 1.0
    """Seconds a pid's process object is reused before it is looked up again (live targets)."""

    @classmethod
    def from_mapping(cls, m: dict[str, Any], where: str = "limits") -> Limits:
        known = {f.name: f for f in fields(cls)}
        out = cls()
        for k, v in m.items():
            if k not in known:
                raise ArgumentError(f"{where}: unknown key {k!r} (known: {', '.join(known)})")
            want = float if known[k].type == "float" else int
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ArgumentError(f"{where}.{k}: expected a positive number, got {v!r}")
            setattr(out, k, want(v))
        return out
