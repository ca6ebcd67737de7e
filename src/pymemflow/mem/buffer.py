"""Physical memory backed by an ``mmap`` (a file for ``raw``, anonymous memory for ``dummy``).

The speed of the whole framework rests on this class, so it has three paths:

* one small read (``read``, ``read_u64``, ...): pure Python -- ``bisect`` on the range bases,
  an mmap slice, ``struct.unpack_from``; no NumPy call, whose fixed cost is several microseconds;
* a batch of small pieces: the memory map is applied with ``np.searchsorted`` and the bytes are
  fetched with one fancy-index gather over an ``np.frombuffer`` view of the mmap;
* large pieces: one slice copy (memcpy) per piece straight into the caller's buffer.

With the compiled fast path (:mod:`pymemflow.mem.fast`) a :class:`~pymemflow.mem._speedups.MapReader`
serves the first two in C (bound as instance attributes, so ``mem.read_u64(a)`` is one C call); it hands
anything it cannot serve exactly to the pure-Python methods below, which stay the reference.
"""

from __future__ import annotations

import mmap
import struct
from bisect import bisect_right
from typing import TYPE_CHECKING, Any

from ..errors import PluginError, ReadFailure, ReadOnlyError
from . import fast
from .gather import copy_pieces, zero_failures
from .memmap import MemoryMap
from .phys import PhysicalMemory, PhysicalMetadata, PhysRange, merge_ranges
from .view import SMALL_BATCH, BatchResult, I64Array, U8Array, U64Array, _offsets, small_pieces

if TYPE_CHECKING:
    import numpy as np
else:
    from .lazynp import np

_LE = {f: struct.Struct("<" + f) for f in "BHIQbhiqfd"}
_BE = {f: struct.Struct(">" + f) for f in "BHIQbhiqfd"}


class MmapMemory(PhysicalMemory, fast.RebindOnSettings):
    """Physical addresses mapped through a :class:`MemoryMap` onto offsets of an mmap."""

    name = "mmap"
    cheap_single_reads = True

    def __init__(self, mm: mmap.mmap, mem_map: MemoryMap, *, writable: bool, size: int | None = None) -> None:
        super().__init__()
        self._mm: Any = mm
        self._size = len(mm) if size is None else size
        self._np_store: Any = None  # the store as a NumPy array, made by the first big batch (``_np``)
        self._writable_store = writable
        self.metadata = PhysicalMetadata(0, 0, readonly=not writable, ideal_batch_size=1 << 16)
        self._install_map(mem_map)

    @property
    def _np(self) -> Any:
        """The store as a uint8 array for NumPy gathers, made on first use: single reads and small batches
        never need NumPy (see :mod:`.lazynp`)."""
        a = self._np_store
        if a is None and self._mm is not None:
            a = self._np_store = np.frombuffer(self._mm, dtype=np.uint8) if self._size else np.zeros(0, np.uint8)
        return a

    # ---- map handling --------------------------------------------------------------------------
    def _install_map(self, mem_map: MemoryMap) -> None:
        self._user_map = mem_map
        eff = mem_map.clipped(self._size)
        self._map = eff
        rs = eff.ranges
        self._bl = [r.base for r in rs]
        self._lens = [r.length for r in rs]
        self._reals = [r.real_base for r in rs]
        self.metadata.max_address = mem_map.max_address
        self.metadata.real_size = eff.real_size
        self._bind_compiled()

    def _bind_compiled(self) -> None:
        """(Re)build the compiled reader over the current map (:mod:`.fast`); unbinds it once closed."""
        if self._mm is None:
            fast.unbind(self)
        else:
            fast.bind_map_reader(self, self._mm if self._size else None, self._bl, self._lens, self._reals,
                                 MmapMemory)

    def set_mem_map(self, mem_map: MemoryMap | None) -> None:
        """Replace the map from physical addresses to offsets of the backing store (None: identity
        over the whole store)."""
        self.mem_map = mem_map
        self._install_map(mem_map if mem_map is not None else MemoryMap.identity(self._size))

    @property
    def memory_map(self) -> MemoryMap:
        """The effective map (clipped to what the backing store holds)."""
        return self._map

    def phys_ranges(self) -> list[PhysRange]:
        """The map's ranges that the backing store really holds."""
        return merge_ranges([PhysRange(r.base, r.end) for r in self._map])

    def direct(self, addr: int, n: int) -> tuple[Any, int] | None:
        r = self._real(addr, n)
        return (self._mm, r) if r >= 0 and self._mm is not None else None

    # ---- single reads: pure Python ---------------------------------------------------------------
    def _real(self, addr: int, n: int) -> int:
        """Offset in the store of a read that lies inside one range, else -1."""
        bl = self._bl
        i = bisect_right(bl, addr) - 1
        if i >= 0:
            off = addr - bl[i]
            if off + n <= self._lens[i]:
                return self._reals[i] + off  # type: ignore[no-any-return]
        return -1

    def _read_single(self, addr: int, n: int) -> tuple[bytes, list[ReadFailure]]:
        r = self._real(addr, n)
        if r >= 0:
            return self._mm[r : r + n], []
        return super()._read_single(addr, n)

    def read(self, addr: int, n: int, *, zero_fill: bool = False) -> bytes:
        bl = self._bl
        try:
            i = bisect_right(bl, addr) - 1
        except TypeError:  # not an integer: the base class says so
            i = -1
        if i >= 0:
            off = addr - bl[i]
            if off + n <= self._lens[i] and n >= 0:
                r = self._reals[i] + off
                return self._mm[r : r + n]  # type: ignore[no-any-return]
        return super().read(addr, n, zero_fill=zero_fill)

    def _typed(self, addr: int, f: str) -> Any:
        s = (_LE if self.little_endian else _BE)[f]
        bl = self._bl
        i = bisect_right(bl, addr) - 1
        if i >= 0:
            off = addr - bl[i]
            if off + s.size <= self._lens[i]:
                return s.unpack_from(self._mm, self._reals[i] + off)[0]
        return s.unpack(self.read(addr, s.size))[0]

    def read_u64(self, addr: int) -> int:
        bl = self._bl
        i = bisect_right(bl, addr) - 1
        if i >= 0:
            off = addr - bl[i]
            if off + 8 <= self._lens[i]:
                return (_LE if self.little_endian else _BE)["Q"].unpack_from(  # type: ignore[no-any-return]
                    self._mm, self._reals[i] + off
                )[0]
        return self._typed(addr, "Q")  # type: ignore[no-any-return]

    def read_u8(self, addr: int) -> int:
        return self._typed(addr, "B")  # type: ignore[no-any-return]

    def read_u16(self, addr: int) -> int:
        return self._typed(addr, "H")  # type: ignore[no-any-return]

    def read_u32(self, addr: int) -> int:
        return self._typed(addr, "I")  # type: ignore[no-any-return]

    def read_i8(self, addr: int) -> int:
        return self._typed(addr, "b")  # type: ignore[no-any-return]

    def read_i16(self, addr: int) -> int:
        return self._typed(addr, "h")  # type: ignore[no-any-return]

    def read_i32(self, addr: int) -> int:
        return self._typed(addr, "i")  # type: ignore[no-any-return]

    def read_i64(self, addr: int) -> int:
        return self._typed(addr, "q")  # type: ignore[no-any-return]

    def read_f32(self, addr: int) -> float:
        return self._typed(addr, "f")  # type: ignore[no-any-return]

    def read_f64(self, addr: int) -> float:
        return self._typed(addr, "d")  # type: ignore[no-any-return]

    def read_ptr(self, addr: int) -> int:
        return self.read_u64(addr) if self.pointer_size == 8 else self._typed(addr, "I")  # type: ignore[no-any-return]

    def _read_small(self, addrs: Any, lengths: Any) -> BatchResult | None:
        """A small batch with every piece inside one range: slices of the store joined once (the pure
        path; the compiled one does this in C). Anything else: the base class's piece-by-piece path."""
        small = small_pieces(addrs, lengths)
        if small is None or self._mm is None:
            return None
        al, ln = small
        bl, lens, reals, mm = self._bl, self._lens, self._reals, self._mm
        parts = []
        for a, n in zip(al, ln, strict=True):
            i = bisect_right(bl, a) - 1
            if i < 0 or a - bl[i] + n > lens[i]:
                return super()._read_small(addrs, lengths)
            r = reals[i] + a - bl[i]
            parts.append(mm[r : r + n])
        return BatchResult(bytearray(b"".join(parts)), None, ln, [], len(al))

    # ---- batches: NumPy ---------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._mm is None:
            raise PluginError(f"{self.name} connector is closed")

    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        self._check_open()
        if self._fast_gather_into(addrs, lengths, out):
            return []
        if addrs.shape[0] <= SMALL_BATCH:
            lens = lengths.tolist()
            reals = [self._real(a, n) for a, n in zip(addrs.tolist(), lens, strict=True)]
            if min(reals, default=0) >= 0:  # every piece inside one range: slices of the store
                mm = self._mm
                out[:] = np.frombuffer(b"".join([mm[r : r + n] for r, n in zip(reals, lens, strict=True)]),
                                       dtype=np.uint8)
                return []
        mp = self._map.split(addrs, lengths)
        copy_pieces(out, None if mp.back_to_back else mp.out_off, self._np, mp.real, mp.length)
        if mp.failures:
            zero_failures(out, mp.failures, addrs, _offsets(lengths))
        return mp.failures

    def _write_batch(self, addrs: U64Array, lengths: I64Array, data: U8Array) -> list[ReadFailure]:
        self._check_open()
        if not self._writable_store:
            raise ReadOnlyError(f"{self.name} connector is read-only (open it with writable=true to write)")
        mp = self._map.split(addrs, lengths)
        copy_pieces(self._np, mp.real.astype(np.int64), data, mp.out_off, mp.length)
        return mp.failures

    def flush(self) -> None:
        """Push writes to the backing file (no-op for anonymous memory)."""
        if self._mm is not None and self._writable_store:
            self._mm.flush()

    def close(self) -> None:
        if self._mm is None:
            return
        mm = self._mm
        self._np_store = None
        self._mm = None
        self._bl, self._lens, self._reals = [], [], []
        self._map = MemoryMap()
        self._bind_compiled()  # releases the compiled reader's hold on the mmap and unbinds it
        try:
            mm.close()
        except BufferError:  # a caller still holds a view; the mapping goes when it does
            pass

