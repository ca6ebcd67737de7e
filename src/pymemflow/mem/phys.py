"""Physical memory: what every connector exposes.

A connector is a :class:`~pymemflow.mem.view.MemoryView` over guest-physical addresses plus
metadata and "hints" (facts a dump header or a live target knows that an OS layer can use:
``dtb``, ``kernel_base``, ``vmcoreinfo``, ``PsActiveProcessHead``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import ReadFailure
from .gather import copy_pieces, zero_failures
from .view import BatchResult, I64Array, MemoryView, U8Array, U64Array, _offsets

if TYPE_CHECKING:
    from .memmap import MemoryMap

if TYPE_CHECKING:
    import numpy as np
else:
    from .lazynp import np


@dataclass(frozen=True)
class PhysRange:
    """``[start, end)`` of physical addresses a connector really has.

    ``backed`` is False for ranges that read as zeros without any storage behind them (an ELF
    segment's ``p_memsz`` beyond its ``p_filesz``, a hole in a sparse raw file): a scan can skip them
    without reading, because zeros never match anything it looks for.
    """

    start: int
    end: int
    backed: bool = True

    @property
    def length(self) -> int:
        return self.end - self.start


def merge_ranges(ranges: list[PhysRange]) -> list[PhysRange]:
    """Sort, drop empty ranges and join neighbours of the same kind."""
    out: list[PhysRange] = []
    for r in sorted((r for r in ranges if r.end > r.start), key=lambda r: r.start):
        if out and out[-1].end >= r.start and out[-1].backed == r.backed:
            out[-1] = PhysRange(out[-1].start, max(out[-1].end, r.end), r.backed)
        else:
            out.append(r)
    return out


@dataclass
class PhysicalMetadata:
    max_address: int
    """Highest valid physical address + 1 (the address-space size, holes included)."""
    real_size: int
    """Bytes actually backed (sum of the memory map's ranges)."""
    readonly: bool = True
    ideal_batch_size: int = 4096
    """How many pieces a caller should put in one batch for best speed."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_address": self.max_address,
            "real_size": self.real_size,
            "readonly": self.readonly,
            "ideal_batch_size": self.ideal_batch_size,
        }


class PhysicalMemory(MemoryView):
    """Base class of connectors (and of middleware wrapping a connector).

    Subclasses implement ``_read_batch`` (and ``_write_batch`` when writable) over physical
    addresses, set ``metadata``, and may fill ``hints``. ``close()`` releases files and sockets.
    """

    name: str = "physical"
    metadata: PhysicalMetadata
    hints: dict[str, Any]

    def __init__(self) -> None:
        self.hints = {}

    @property
    def writable(self) -> bool:  # type: ignore[override]
        return not self.metadata.readonly

    mem_map: MemoryMap | None = None
    """The map set with :meth:`set_mem_map` (None: the connector's own address space)."""

    def set_mem_map(self, mem_map: MemoryMap | None) -> None:
        """Make physical address ``a`` in range ``base, length -> real_base`` read the connector's
        own address ``real_base + (a - base)``; addresses outside the map fail as holes.

        An OS layer that knows the machine's real RAM layout pushes it here. Setting replaces the
        previous map (None removes it). This base version works for every connector by routing
        ``_read_batch``/``_read_single``/``_write_batch`` through the map; connectors whose native
        addresses are file offsets (``raw``) override it to swap their own map instead.
        """
        for attr in ("_read_batch", "_read_single", "_write_batch"):
            self.__dict__.pop(attr, None)
        meta = getattr(self, "metadata", None)
        if meta is not None and "_unmapped_sizes" not in self.__dict__:
            self._unmapped_sizes = (meta.max_address, meta.real_size)
        self.mem_map = mem_map
        if mem_map is None:
            if meta is not None and "_unmapped_sizes" in self.__dict__:
                meta.max_address, meta.real_size = self.__dict__.pop("_unmapped_sizes")
            return
        self._read_batch = self._mapped_read_batch  # type: ignore[method-assign]
        self._read_single = self._mapped_read_single  # type: ignore[method-assign]
        self._write_batch = self._mapped_write_batch  # type: ignore[method-assign]
        if meta is not None:
            meta.max_address = mem_map.max_address
            meta.real_size = mem_map.real_size

    def _mapped_read_single(self, addr: int, n: int) -> tuple[bytes, list[ReadFailure]]:
        # Not the connector's own _read_single: those fall back to self._read_batch, which is the
        # mapped one now, and would map twice. The class's _read_batch is called directly.
        out = np.empty(n, dtype=np.uint8)
        failures = self._mapped_read_batch(
            np.array([addr], dtype=np.uint64), np.array([n], dtype=np.int64), out
        )
        return out.tobytes(), failures

    def _mapped_read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        assert self.mem_map is not None
        inner = type(self)._read_batch
        mp = self.mem_map.split(addrs, lengths)
        if mp.simple:
            fails = inner(self, mp.real, lengths, out)
            return [_back(f, f.index, int(mp.real[f.index]), int(addrs[f.index])) for f in fails]
        tmp = np.empty(int(mp.length.sum()), dtype=np.uint8)
        inner_fails = inner(self, mp.real, mp.length, tmp) if len(mp) else []
        copy_pieces(out, mp.out_off, tmp, _offsets(mp.length), mp.length)
        failures = list(mp.failures)
        zero_failures(out, mp.failures, addrs, _offsets(lengths))
        for f in inner_fails:
            j = f.index
            failures.append(_back(f, int(mp.index[j]), int(mp.real[j]), int(mp.addr[j])))
        failures.sort(key=lambda f: (f.index, f.address))
        return failures

    def _mapped_write_batch(self, addrs: U64Array, lengths: I64Array, data: U8Array) -> list[ReadFailure]:
        assert self.mem_map is not None
        mp = self.mem_map.split(addrs, lengths)
        if len(mp) == 0:
            return list(mp.failures)
        chunks = np.concatenate([data[o : o + n] for o, n in zip(mp.out_off.tolist(), mp.length.tolist(), strict=True)])
        inner_fails = type(self)._write_batch(self, mp.real, mp.length, chunks)
        failures = list(mp.failures)
        for f in inner_fails:
            j = f.index
            failures.append(_back(f, int(mp.index[j]), int(mp.real[j]), int(mp.addr[j])))
        failures.sort(key=lambda f: (f.index, f.address))
        return failures

    def phys_ranges(self) -> list[PhysRange]:
        """The physical ranges this connector has, sorted, with which of them are backed by data.

        Scans visit these instead of ``0..max_address`` (holes included). This base version uses the
        map set with :meth:`set_mem_map`, else ``0..metadata.max_address``; connectors that know
        better (dump runs, mmap maps, sparse files, a VM's RAM blocks) override it.
        """
        if self.mem_map is not None:
            return merge_ranges([PhysRange(r.base, r.end) for r in self.mem_map])
        meta = getattr(self, "metadata", None)
        return [PhysRange(0, int(meta.max_address))] if meta is not None and meta.max_address else []

    def direct(self, addr: int, n: int) -> tuple[Any, int] | None:
        """``(buffer, offset)`` when ``[addr, addr+n)`` lies contiguously in one in-process buffer
        (an mmap, bytes) -- scans then search it in place (``mmap.find``, ``np.frombuffer``) instead
        of copying. None when the bytes have to be fetched (the default)."""
        return None

    def _read_parts(self, addr: int, n: int) -> tuple[list[bytes | memoryview], list[ReadFailure]]:
        """A view of the in-process buffer (:meth:`direct`) when the range lies in one, else a copy."""
        d = self.direct(addr, n) if n > 0 else None
        if d is not None:
            buf, off = d
            return [memoryview(buf)[off : off + n]], []
        return super()._read_parts(addr, n)

    def target_size(self) -> int | None:
        return self.metadata.max_address if getattr(self, "metadata", None) is not None else None

    def close(self) -> None:
        """Release resources. Idempotent."""

    def __enter__(self) -> PhysicalMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def info(self) -> dict[str, Any]:
        """Metadata and hints, for ``pymemflow info``."""
        return {"connector": self.name, **self.metadata.as_dict(), "hints": dict(self.hints)}


@runtime_checkable
class Connector(Protocol):
    """The connector seam, structurally: what the chain, the front ends and the daemon use of the
    object a connector plugin's factory returns (and of middleware wrapping it).

    :class:`PhysicalMemory` implements it and adds the batched primitive (``_read_batch``) that the
    translation layer and the middleware call, so a connector is written by subclassing it; the
    chain checks a factory's result against this protocol and names what is missing."""

    @property
    def name(self) -> str: ...

    @property
    def metadata(self) -> PhysicalMetadata: ...

    @property
    def hints(self) -> dict[str, Any]: ...

    def read(self, addr: int, n: int, *, zero_fill: bool = False) -> bytes: ...

    def read_batch(self, addrs: Any, lengths: Any) -> BatchResult: ...

    def info(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def _back(f: ReadFailure, index: int, real: int, phys: int) -> ReadFailure:
    """A failure reported in the connector's own addresses, moved back to the caller's piece."""
    return ReadFailure(index, f.address - real + phys, f.length, f.reason)


@dataclass
class Hints:
    """Well-known hint keys (plain strings in ``PhysicalMemory.hints``); documented here once."""

    keys: dict[str, str] = field(
        default_factory=lambda: {
            "dtb": "int: a page-table root (CR3/TTBR) known to be valid, e.g. from a dump header",
            "arch": "str: architecture name (x64, x86, x86pae, x64la57, aarch64)",
            "vmcoreinfo": "str: Linux VMCOREINFO text",
            "kernel_base": "int: kernel image base (virtual)",
            "cpu_registers": "list[dict]: per-CPU registers from a dump (cr3, rip, ...)",
            "PsActiveProcessHead": "int: Windows, virtual address",
            "PsLoadedModuleList": "int: Windows, virtual address",
            "KdDebuggerDataBlock": "int: Windows, virtual address",
            "nt_build": "int: Windows build number",
            "machine": "str: machine type from a dump header",
        }
    )
