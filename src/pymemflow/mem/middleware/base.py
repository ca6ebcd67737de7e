"""Base of middleware: a :class:`PhysicalMemory` that wraps another one and forwards to it."""

from __future__ import annotations

from typing import Any

from ...errors import ReadFailure
from ..memmap import MemoryMap
from ..phys import PhysicalMemory, PhysicalMetadata, PhysRange
from ..view import I64Array, U8Array, U64Array


class Middleware(PhysicalMemory):
    """Forwards everything to ``inner``; subclasses override ``_read_batch``/``_write_batch``.

    Hints and metadata are the inner connector's own objects, so an OS layer sees one target.
    """

    name = "middleware"

    def __init__(self, inner: PhysicalMemory) -> None:
        self.inner = inner
        self.hints = inner.hints
        self.little_endian = inner.little_endian
        self.pointer_size = inner.pointer_size

    @property
    def metadata(self) -> PhysicalMetadata:  # type: ignore[override]
        return self.inner.metadata

    @property
    def innermost(self) -> PhysicalMemory:
        """The connector at the bottom of the stack."""
        m: PhysicalMemory = self
        while isinstance(m, Middleware):
            m = m.inner
        return m

    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        return self.inner._read_batch(addrs, lengths, out)

    def _read_single(self, addr: int, n: int) -> tuple[bytes, list[ReadFailure]]:
        # keep the connector's own single-read fast path (pure Python for raw/dummy)
        return self.inner._read_single(addr, n)

    def _read_single_batched(self, addr: int, n: int) -> tuple[bytes, list[ReadFailure]]:
        """One read through this middleware's own ``_read_batch``."""
        return PhysicalMemory._read_single(self, addr, n)

    def _write_batch(self, addrs: U64Array, lengths: I64Array, data: U8Array) -> list[ReadFailure]:
        return self.inner._write_batch(addrs, lengths, data)

    def set_mem_map(self, mem_map: MemoryMap | None) -> None:
        self.inner.set_mem_map(mem_map)

    @property
    def mem_map(self) -> MemoryMap | None:  # type: ignore[override]
        return self.inner.mem_map

    def phys_ranges(self) -> list[PhysRange]:
        return self.inner.phys_ranges()

    def close(self) -> None:
        self.inner.close()

    def middleware_info(self) -> dict[str, Any]:
        return {}

    def info(self) -> dict[str, Any]:
        out = self.inner.info()
        out.setdefault("middleware", []).insert(0, {"name": self.name, **self.middleware_info()})
        return out
