"""Latency simulation: sleep before every call to the inner connector.

Useful to see how code behaves against a slow target (DMA hardware, a remote VM) -- a program
that batches well barely notices, one that reads byte by byte crawls.
"""

from __future__ import annotations

import time
from typing import Any

from ...errors import ReadFailure
from ..phys import PhysicalMemory
from ..view import I64Array, U8Array, U64Array
from .base import Middleware


class DelayMemory(Middleware):
    """Adds ``delay`` seconds to each batched read or write (one round trip per batch)."""

    name = "delay"

    def __init__(self, inner: PhysicalMemory, delay: float) -> None:
        super().__init__(inner)
        if delay < 0:
            raise ValueError(f"delay must not be negative, got {delay}")
        self.delay = delay

    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        time.sleep(self.delay)
        return self.inner._read_batch(addrs, lengths, out)

    def _read_single(self, addr: int, n: int) -> tuple[bytes, list[ReadFailure]]:
        time.sleep(self.delay)
        return self.inner._read_single(addr, n)

    def _write_batch(self, addrs: U64Array, lengths: I64Array, data: U8Array) -> list[ReadFailure]:
        time.sleep(self.delay)
        return self.inner._write_batch(addrs, lengths, data)

    def middleware_info(self) -> dict[str, Any]:
        return {"delay": self.delay}
