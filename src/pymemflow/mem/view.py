"""The one read/write contract shared by physical memory, virtual address spaces and processes.

A subclass implements a single batched primitive, :meth:`MemoryView._read_batch` (and
:meth:`MemoryView._write_batch` when writable). Everything else -- single reads, typed reads,
strings, structures, scatter batches, file-like cursors -- is built on it here, once.
A subclass may override :meth:`MemoryView._read_single` with a faster path for one small read,
because single reads are the hot case in interactive use.
"""

from __future__ import annotations

import ctypes
import io
import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import PartialReadError, PartialWriteError, RangeError, ReadFailure, ReadOnlyError
from .lazynp import is_int, is_ndarray

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    U8Array = npt.NDArray[np.uint8]
    U64Array = npt.NDArray[np.uint64]
    I64Array = npt.NDArray[np.int64]
else:
    from .lazynp import np

    U8Array = U64Array = I64Array = "numpy.ndarray"  # annotations only; NumPy is imported on first use

_S = TypeVar("_S", bound=ctypes.Structure)

# compiled once: building a struct.Struct per typed read costs more than the read itself
_LE = {f: struct.Struct("<" + f) for f in "BHIQbhiqfd"}
_BE = {f: struct.Struct(">" + f) for f in "BHIQbhiqfd"}


class BatchResult:
    """Bytes of a batched read: piece ``i`` is ``data[offsets[i]:offsets[i] + lengths[i]]``.

    Failed bytes are zero in ``data``; ``failures`` lists them (empty when all went well).
    A small batch is built without NumPy (its fixed cost is several times the reads' own):
    ``data`` may start as a bytearray and ``offsets``/``lengths`` as the caller's sequences; each
    becomes the documented NumPy array the first time it is asked for.
    """

    __slots__ = ("_data", "_offsets", "_lengths", "_count", "failures")

    def __init__(self, data: U8Array | bytearray | bytes, offsets: I64Array | None,
                 lengths: I64Array | Sequence[int] | int, failures: list[ReadFailure] | None = None,
                 count: int = -1) -> None:
        self._data: Any = data
        self._offsets = offsets
        self._lengths: Any = lengths
        self._count = count
        self.failures: list[ReadFailure] = failures if failures is not None else []

    @property
    def data(self) -> U8Array:
        d = self._data
        if not isinstance(d, np.ndarray):
            d = self._data = np.frombuffer(d, dtype=np.uint8)
        return d  # type: ignore[no-any-return]

    @property
    def lengths(self) -> I64Array:
        n = self._lengths
        if not isinstance(n, np.ndarray) or n.dtype != np.int64 or n.ndim != 1:
            if isinstance(n, (int, np.integer)):
                n = np.full(self._count, int(n), dtype=np.int64)
            else:
                n = np.asarray(n, dtype=np.int64).reshape(-1)
            self._lengths = n
        return n  # type: ignore[no-any-return]

    @property
    def offsets(self) -> I64Array:
        if self._offsets is None:
            self._offsets = _offsets(self.lengths)
        return self._offsets

    def piece(self, i: int) -> bytes:
        d = self._data
        n = self._lengths
        if self._offsets is None and isinstance(d, (bytes, bytearray)) and (is_int(n) or isinstance(n, list)):
            # a small batch as built: its offsets in plain Python (no NumPy for a few pieces)
            k = len(self)
            if not -k <= i < k:
                raise IndexError(f"piece {i} of a batch of {k}")
            i %= k
            if isinstance(n, list):
                size, o = n[i], sum(n[:i])
            else:
                size = int(n)
                o = i * size
            return bytes(d[o : o + size])
        o = int(self.offsets[i])
        if isinstance(d, (bytes, bytearray)):
            return bytes(d[o : o + int(self.lengths[i])])
        return self.data[o : o + int(self.lengths[i])].tobytes()

    def ok(self) -> npt.NDArray[np.bool_]:
        """Per-piece flag: True where the whole piece was read."""
        mask = np.ones(len(self), dtype=bool)
        for f in self.failures:
            mask[f.index] = False
        return mask

    def __len__(self) -> int:
        n = self._lengths
        if is_int(n):
            return self._count
        return len(n) if not is_ndarray(n) else int(n.size)

    def __repr__(self) -> str:
        return f"<BatchResult {len(self)} pieces, {len(self._data)} bytes, {len(self.failures)} failures>"


ADDRESS_END = 1 << 64

LARGE_READ = 256 << 20
"""A single read this large is checked against the size of the memory behind the view ..."""
READ_SLACK = 64 << 20
"""... and refused when it asks for more than that size plus this much: it would allocate what is
asked, not what exists (``iter_read`` streams any length in bounded chunks instead)."""


def check_span(addr: object, n: object, what: str = "read") -> None:
    """:class:`RangeError` unless ``addr`` is an integer in ``0 .. 2**64-1`` and ``n`` a length in
    ``0 .. 2**64``: the one check every public entry point of the read contract makes."""
    if not is_int(addr):
        raise RangeError(f"{what}: address must be an integer, got {type(addr).__name__}")
    if not is_int(n):
        raise RangeError(f"{what}: length must be an integer, got {type(n).__name__}")
    if not 0 <= addr < ADDRESS_END:
        raise RangeError(f"{what}: address {addr:#x} is outside 0 .. 0xffffffffffffffff" if addr >= 0 else
                         f"{what}: address {addr} is negative (addresses are 0 .. 0xffffffffffffffff)")
    if not 0 <= n <= ADDRESS_END:
        raise RangeError(f"{what}: length {n} is negative" if n < 0 else
                         f"{what}: length {n:#x} is larger than the 64-bit address space")


def as_pieces(
    addrs: Iterable[int] | npt.ArrayLike, lengths: int | Iterable[int] | npt.ArrayLike
) -> tuple[U64Array, I64Array]:
    """Normalise (addresses, lengths) into uint64 / int64 arrays of equal size."""
    if isinstance(addrs, np.ndarray):
        if addrs.dtype.kind not in "ui":
            raise TypeError(f"addresses must be integers, got an array of {addrs.dtype}")
        a = addrs.astype(np.uint64, copy=False).reshape(-1)
    else:
        # straight to uint64: going through int64/float64 would lose addresses >= 2**63
        items = list(addrs) if isinstance(addrs, Iterable) else [addrs]
        try:
            a = np.array(items, dtype=np.uint64).reshape(-1)
        except (OverflowError, ValueError, TypeError):
            bad = next((x for x in items if not isinstance(x, (int, np.integer)) or not 0 <= x < ADDRESS_END), None)
            raise RangeError(f"addresses must be integers in 0 .. 0xffffffffffffffff, got {bad!r}") from None
    try:
        if isinstance(lengths, (int, np.integer)):
            n = np.full(a.shape[0], int(lengths), dtype=np.int64)
        else:
            n = np.asarray(lengths if isinstance(lengths, np.ndarray) else list(lengths))  # type: ignore[arg-type]
            if n.size and n.dtype.kind not in "ui":
                raise TypeError(f"lengths must be integers, got {n.dtype}")
            n = n.astype(np.int64, copy=False).reshape(-1)
    except (OverflowError, TypeError, ValueError) as e:
        raise RangeError(f"read lengths must be integers in 0 .. 2**63-1 ({e})") from None
    if n.shape != a.shape:
        raise RangeError(f"{a.shape[0]} addresses but {n.shape[0]} lengths")
    if n.size and int(n.min()) < 0:
        raise RangeError(f"negative read length {int(n.min())}")
    return a, n


SMALL_BATCH = 48
"""Below this many pieces a batch is read piece by piece: NumPy's fixed cost per batch (~100 us of
array set-up) exceeds ~1 us per scalar read (measured with ``pymemflow bench``: x8 batches of 8-byte
reads went from ~30 k to ~1 M reads/s)."""


def read_pieces_singly(read_single: Any, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
    """Fill ``out`` from one ``read_single(addr, n) -> (bytes, failures)`` call per piece; failures are
    re-indexed to their piece. The caller guarantees ``read_single`` never comes back to the batch path."""
    chunks: list[bytes] = []
    failures: list[ReadFailure] = []
    for i, (a, n) in enumerate(zip(addrs.tolist(), lengths.tolist(), strict=True)):
        if n:
            data, fails = read_single(a, n)
            chunks.append(data)
            if fails:
                failures += [ReadFailure(i, f.address, f.length, f.reason) for f in fails]
    if chunks:
        out[:] = np.frombuffer(b"".join(chunks), dtype=np.uint8)
    return failures


SMALL_PIECE = 4096
"""Pieces up to this size count as small for :meth:`MemoryView._read_small`."""


def _small_list(x: Any) -> list[Any] | None:
    """``x`` as a list of Python ints when it is a short list/tuple/1-D integer array, else None."""
    if is_ndarray(x):
        if x.ndim != 1 or x.dtype.kind not in "ui" or x.shape[0] > SMALL_BATCH:
            return None
        return x.tolist()  # type: ignore[no-any-return]
    if isinstance(x, (list, tuple)) and len(x) <= SMALL_BATCH:
        return list(x)
    return None


def small_pieces(addrs: Any, lengths: Any) -> tuple[list[int], list[int]] | None:
    """(addresses, lengths) as Python lists when the batch is small: at most ``SMALL_BATCH`` pieces of at
    most ``SMALL_PIECE`` bytes, plain ints inside the address space; else None (the general path)."""
    al = _small_list(addrs)
    if al is None:
        return None
    k = len(al)
    if is_int(lengths):
        ln = [int(lengths)] * k
    else:
        ln = _small_list(lengths)  # type: ignore[assignment]
        if ln is None or len(ln) != k:
            return None
    for a, n in zip(al, ln, strict=True):
        if type(a) is not int or type(n) is not int or not (0 <= n <= SMALL_PIECE and 0 <= a < ADDRESS_END
                                                            and a + n <= ADDRESS_END):
            return None
    return al, ln


def merge_failures(fs: list[ReadFailure]) -> list[ReadFailure]:
    """Sort failures by piece and address and join neighbours of one piece with one reason."""
    fs.sort(key=lambda f: (f.index, f.address))
    out: list[ReadFailure] = []
    for f in fs:
        if out and out[-1].index == f.index and out[-1].address + out[-1].length == f.address \
                and out[-1].reason == f.reason:
            p = out[-1]
            out[-1] = ReadFailure(p.index, p.address, p.length + f.length, p.reason)
        else:
            out.append(f)
    return out


def _offsets(lengths: I64Array) -> I64Array:
    off = np.zeros(lengths.shape[0], dtype=np.int64)
    if lengths.shape[0] > 1:
        np.cumsum(lengths[:-1], out=off[1:])
    return off


class MemoryView:
    """Base of every readable address space.

    Attributes a subclass sets: ``little_endian`` (bool), ``pointer_size`` (4 or 8), ``writable``.
    """

    little_endian: bool = True
    pointer_size: int = 8
    writable: bool = False

    # ---- the primitive a subclass implements -------------------------------------------------
    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        """Fill ``out`` (size ``lengths.sum()``) with piece ``i`` at the exclusive cumulative sum of
        ``lengths``; zero failed bytes and return what failed. Must never raise for unreadable
        addresses (report them) -- only for programming errors or a dead target."""
        raise NotImplementedError

    def _write_batch(self, addrs: U64Array, lengths: I64Array, data: U8Array) -> list[ReadFailure]:
        raise ReadOnlyError(f"{type(self).__name__} is read-only (open it with writable=true to write)")

    def _read_single(self, addr: int, n: int) -> tuple[bytes, list[ReadFailure]]:
        """One read; subclasses override for speed. Returns (bytes with failed parts zeroed, failures)."""
        out = np.empty(n, dtype=np.uint8)
        failures = self._read_batch(
            np.array([addr], dtype=np.uint64), np.array([n], dtype=np.int64), out
        )
        return out.tobytes(), failures

    def read_parts(self, addr: int, n: int) -> tuple[list[bytes | memoryview], list[ReadFailure]]:
        """``_read_single`` as buffers that concatenate to the ``n`` bytes (failed parts zeroed) plus
        the failures: views of the target's own buffer (an mmap) where it has one, so a front end can
        send a big read without copying it. A view shows the memory as it is when it is used (live
        targets change under it) and keeps the mapping alive until it is released. Never raises for
        unreadable bytes; :class:`RangeError` as :meth:`read` for a bad span."""
        check_span(addr, n)
        self._check_size(n)
        return self._read_parts(addr, n)

    def _read_parts(self, addr: int, n: int) -> tuple[list[bytes | memoryview], list[ReadFailure]]:
        """:meth:`read_parts` on a valid span; subclasses with their own buffers override it."""
        data, failures = self._read_single(addr, n)
        return [data], failures

    # ---- batched API ---------------------------------------------------------------------------
    _compiled_reader: Any = None
    """The compiled path's reader bound to this instance (:mod:`pymemflow.mem.fast`), None on the pure path."""
    _compiled_in_process = False
    """True when that reader reads a buffer of this process (an mmap), not another process's memory."""

    cheap_single_reads = False
    """True when ``_read_single`` is a local, cheap call (an mmap slice, a TLB hit): a small batch is then
    read piece by piece (no NumPy set-up). False where each single read is a request, a syscall or is
    counted/delayed as a call of its own (remote targets, middleware)."""

    def read_batch(
        self,
        addrs: Iterable[int] | npt.ArrayLike,
        lengths: int | Iterable[int] | npt.ArrayLike,
    ) -> BatchResult:
        """Read many pieces in one pass. Never raises for unreadable pieces: see ``failures``."""
        small = self._read_small(addrs, lengths)
        if small is not None:
            return small
        a, n = as_pieces(addrs, lengths)
        total = int(n.sum())
        self._check_size(total, "batched read")
        out = np.empty(total, dtype=np.uint8)
        failures = self._read_batch(a, n, out) if a.size else []
        return BatchResult(out, _offsets(n), n, failures)

    def _read_small(self, addrs: Any, lengths: Any) -> BatchResult | None:
        """A batch of at most ``SMALL_BATCH`` pieces of at most a page each, read piece by piece with
        the view's own fast single read and no NumPy array set-up (which costs more than the reads);
        None when the batch is not like that (or ``cheap_single_reads`` is False) -- the general path
        then reads it, and reports anything malformed."""
        if not self.cheap_single_reads:
            return None
        small = small_pieces(addrs, lengths)
        if small is None:
            return None
        al, ln = small
        k = len(al)
        chunks: list[bytes] = []
        failures: list[ReadFailure] = []
        single = self._read_single
        for i, (a, n) in enumerate(zip(al, ln, strict=True)):
            if n:
                data, fails = single(a, n)
                chunks.append(data)
                if fails:
                    failures += [ReadFailure(i, f.address, f.length, f.reason) for f in fails]
        return BatchResult(bytearray(b"".join(chunks)), None, ln, merge_failures(failures) if failures else failures, k)

    def _fast_gather_into(self, addrs: Any, lengths: Any, out: U8Array) -> bool:
        """The compiled path's batch into ``out`` (:mod:`pymemflow.mem.fast`): True when it read every
        piece; False (nothing promised about ``out``) sends the batch down the pure-Python path."""
        reader = self._compiled_reader
        return reader is not None and bool(reader.gather_into(addrs, lengths, out))

    def read_gather(
        self, addrs: Iterable[int] | npt.ArrayLike, size: int
    ) -> tuple[npt.NDArray[np.uint8], list[ReadFailure]]:
        """Read ``size`` bytes at each address: an ``(n, size)`` uint8 array plus failures."""
        if (is_ndarray(addrs) and addrs.dtype == np.uint64 and addrs.ndim == 1 and type(size) is int
                and 0 < size and self._compiled_reader is not None):
            k = addrs.shape[0]  # the compiled path takes the one size as is: no array of lengths to build
            self._check_size(k * size, "gathered read")
            out = np.empty(k * size, dtype=np.uint8)
            if self._fast_gather_into(addrs, size, out):
                return out.reshape(k, size), []
        a, n = as_pieces(addrs, size)
        self._check_size(a.shape[0] * size, "gathered read")
        out = np.empty(a.shape[0] * size, dtype=np.uint8)
        failures = self._read_batch(a, n, out) if a.size else []
        return out.reshape(a.shape[0], size), failures

    def read_u64_many(self, addrs: Iterable[int] | npt.ArrayLike) -> tuple[U64Array, npt.NDArray[np.bool_]]:
        """Read a u64 at each address; returns values and a per-address ok mask."""
        raw, failures = self.read_gather(addrs, 8)
        ok = np.ones(raw.shape[0], dtype=bool)
        for f in failures:
            ok[f.index] = False
        dt = np.dtype("<u8" if self.little_endian else ">u8")
        return raw.reshape(-1).view(dt).astype(np.uint64, copy=False), ok

    def write_batch(
        self, addrs: Iterable[int] | npt.ArrayLike, datas: Sequence[bytes | bytearray | memoryview]
    ) -> list[ReadFailure]:
        a, n = as_pieces(addrs, [len(d) for d in datas])
        buf = np.frombuffer(b"".join(bytes(d) for d in datas), dtype=np.uint8)
        return self._write_batch(a, n, buf)

    # ---- single reads --------------------------------------------------------------------------
    def target_size(self) -> int | None:
        """Bytes of address space behind this view (None: unknown); reads far larger are refused."""
        return None

    def _check_size(self, n: int, what: str = "read") -> None:
        if n > LARGE_READ:
            size = self.target_size()
            if size is not None and n > size + READ_SLACK:
                raise RangeError(f"{what} of {n:#x} bytes is far larger than the target ({size:#x} bytes of "
                                 "address space) and would allocate what is asked, not what exists; "
                                 "use iter_read() to stream it in bounded chunks")

    def read(self, addr: int, n: int, *, zero_fill: bool = False) -> bytes:
        """Read ``n`` bytes. Raises :class:`PartialReadError` on failure unless ``zero_fill``;
        :class:`RangeError` for an address or length outside ``0 .. 2**64`` or a read far larger
        than the target (stream those with :meth:`iter_read`)."""
        try:
            plain = 0 <= addr < ADDRESS_END and 0 <= n <= LARGE_READ
        except TypeError:
            plain = False
        if not plain:
            check_span(addr, n)
            self._check_size(n)
        data, failures = self._read_single(addr, n)
        if failures and not zero_fill:
            raise PartialReadError(data, failures)
        return data

    def iter_read(self, addr: int, n: int, chunk: int = 1 << 20) -> Iterator[tuple[int, bytes, list[ReadFailure]]]:
        """Stream ``n`` bytes from ``addr`` as ``(address, data, failures)`` chunks of at most
        ``chunk`` bytes: memory stays bounded whatever ``n`` is. Failed bytes are zero in ``data``
        and listed in ``failures`` (addresses absolute); reading stops at the end of the address space."""
        check_span(addr, n, "iter_read")
        if not 0 < chunk <= LARGE_READ:
            raise RangeError(f"iter_read: chunk {chunk:#x} must be in 1 .. {LARGE_READ:#x}")
        end = min(addr + n, ADDRESS_END)
        while addr < end:
            k = min(chunk, end - addr)
            data, failures = self._read_single(addr, k)
            yield addr, data, [ReadFailure(0, f.address, f.length, f.reason) for f in failures]
            addr += k

    def read_into(self, addr: int, buf: bytearray | memoryview, *, zero_fill: bool = False) -> None:
        mv = memoryview(buf).cast("B")
        check_span(addr, len(mv))
        out = np.frombuffer(mv, dtype=np.uint8)
        failures = self._read_batch(
            np.array([addr], dtype=np.uint64), np.array([len(mv)], dtype=np.int64), out
        )
        if failures and not zero_fill:
            raise PartialReadError(mv.tobytes(), failures)

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        d = np.frombuffer(bytes(data), dtype=np.uint8)
        check_span(addr, d.size, "write")
        failures = self._write_batch(
            np.array([addr], dtype=np.uint64), np.array([d.size], dtype=np.int64), d
        )
        if failures:
            raise PartialWriteError(failures)

    # ---- typed reads ---------------------------------------------------------------------------
    def _unpack(self, fmt: str, addr: int) -> Any:
        s = (_LE if self.little_endian else _BE)[fmt]
        return s.unpack(self.read(addr, s.size))[0]

    def read_u8(self, addr: int) -> int:
        return self._unpack("B", addr)  # type: ignore[no-any-return]

    def read_u16(self, addr: int) -> int:
        return self._unpack("H", addr)  # type: ignore[no-any-return]

    def read_u32(self, addr: int) -> int:
        return self._unpack("I", addr)  # type: ignore[no-any-return]

    def read_u64(self, addr: int) -> int:
        return self._unpack("Q", addr)  # type: ignore[no-any-return]

    def read_i8(self, addr: int) -> int:
        return self._unpack("b", addr)  # type: ignore[no-any-return]

    def read_i16(self, addr: int) -> int:
        return self._unpack("h", addr)  # type: ignore[no-any-return]

    def read_i32(self, addr: int) -> int:
        return self._unpack("i", addr)  # type: ignore[no-any-return]

    def read_i64(self, addr: int) -> int:
        return self._unpack("q", addr)  # type: ignore[no-any-return]

    def read_f32(self, addr: int) -> float:
        return self._unpack("f", addr)  # type: ignore[no-any-return]

    def read_f64(self, addr: int) -> float:
        return self._unpack("d", addr)  # type: ignore[no-any-return]

    def read_ptr(self, addr: int) -> int:
        """A pointer of the target's width (``pointer_size``)."""
        return self.read_u64(addr) if self.pointer_size == 8 else self.read_u32(addr)

    def write_u64(self, addr: int, value: int) -> None:
        self.write(addr, (_LE if self.little_endian else _BE)["Q"].pack(value))

    def write_u32(self, addr: int, value: int) -> None:
        self.write(addr, (_LE if self.little_endian else _BE)["I"].pack(value))

    def read_array(self, addr: int, dtype: npt.DTypeLike, count: int) -> npt.NDArray[Any]:
        dt = np.dtype(dtype)
        return np.frombuffer(self.read(addr, dt.itemsize * count), dtype=dt).copy()

    def read_struct(self, addr: int, ctype: type[_S]) -> _S:
        """Read a ctypes ``Structure`` (or ``BigEndianStructure``)."""
        return ctype.from_buffer_copy(self.read(addr, ctypes.sizeof(ctype)))

    # ---- strings -------------------------------------------------------------------------------
    def read_cstr(self, addr: int, max_len: int = 4096, encoding: str = "utf-8") -> str:
        """A NUL-terminated string of at most ``max_len`` bytes; reads in chunks so a string near an
        unmapped page still reads."""
        data = self._read_until(addr, max_len, b"\0", 1)
        return data.decode(encoding, errors="replace")

    def read_utf16(self, addr: int, max_len: int = 4096) -> str:
        """A NUL-terminated UTF-16 string of at most ``max_len`` bytes."""
        data = self._read_until(addr, max_len, b"\0\0", 2)
        return data.decode("utf-16-le" if self.little_endian else "utf-16-be", errors="replace")

    def _read_until(self, addr: int, max_len: int, terminator: bytes, unit: int) -> bytes:
        out = bytearray()
        pos = addr
        while len(out) < max_len:
            # read up to the next 256-byte boundary so we never cross into an unread page needlessly
            chunk = min(256 - (pos & 0xFF), max_len - len(out))
            data, failures = self._read_single(pos, chunk)
            if failures:
                good = failures[0].address - pos
                data = data[: max(good, 0)]
            start = len(out) - (len(out) % unit)
            out += data
            for i in range(start, len(out) - unit + 1, unit):
                if out[i : i + unit] == terminator:
                    return bytes(out[:i])
            if failures:
                if not out:
                    raise PartialReadError(b"", failures, "string read")
                break
            pos += chunk
        return bytes(out[: max_len - (max_len % unit)])

    # ---- batches and cursors -------------------------------------------------------------------
    def batcher(self) -> Batcher:
        """Queue many reads, commit once, fetch results by handle."""
        return Batcher(self)

    def scatter(self) -> Scatter:
        """MemProcFS-style scatter reads: ``s.prepare(addr, n)`` many times, ``s.execute()`` once (one
        batched read), then ``s.read(addr, n)`` / ``s.read_u64(addr)`` for each, from memory."""
        return Scatter(self)

    def cursor(self, start: int = 0) -> MemoryCursor:
        """A file-like object over this address space (``io.RawIOBase``)."""
        return MemoryCursor(self, start)


class Batcher:
    """Scatter reads: ``h = b.read(addr, n)`` ... ``b.commit()`` ... ``b[h]`` -> bytes.

    ``b.read_u64(addr)`` queues a typed read whose result is decoded on access.
    """

    def __init__(self, view: MemoryView) -> None:
        self._view = view
        self._addrs: list[int] = []
        self._lens: list[int] = []
        self._decoders: list[str | None] = []
        self._result: BatchResult | None = None

    def read(self, addr: int, n: int) -> int:
        self._addrs.append(addr)
        self._lens.append(n)
        self._decoders.append(None)
        self._result = None
        return len(self._addrs) - 1

    def _typed(self, addr: int, fmt: str) -> int:
        h = self.read(addr, struct.calcsize(fmt))
        self._decoders[h] = fmt
        return h

    def read_u32(self, addr: int) -> int:
        return self._typed(addr, "I")

    def read_u64(self, addr: int) -> int:
        return self._typed(addr, "Q")

    def read_ptr(self, addr: int) -> int:
        return self._typed(addr, "Q" if self._view.pointer_size == 8 else "I")

    def commit(self) -> BatchResult:
        self._result = self._view.read_batch(self._addrs, self._lens)
        self._failed = {f.index for f in self._result.failures}
        return self._result

    def ok(self, handle: int) -> bool:
        if self._result is None:
            self.commit()
        return handle not in self._failed

    def __getitem__(self, handle: int) -> Any:
        if self._result is None:
            self.commit()
        assert self._result is not None
        if handle in self._failed:
            fails = [f for f in self._result.failures if f.index == handle]
            raise PartialReadError(self._result.piece(handle), fails)
        data = self._result.piece(handle)
        fmt = self._decoders[handle]
        if fmt is None:
            return data
        return struct.unpack(("<" if self._view.little_endian else ">") + fmt, data)[0]

    def __len__(self) -> int:
        return len(self._addrs)


class Scatter:
    """Prepare many reads, execute them as one batch, then read each (MemProcFS's ``VmmScatter`` shape).

    ``read(addr, n)`` may ask for any part of a prepared range; asking for bytes that were not prepared
    raises ``KeyError``, bytes that failed raise :class:`PartialReadError` (with the failures), exactly as
    :meth:`MemoryView.read` would. ``clear()`` empties it for the next round (entity lists every frame).
    """

    def __init__(self, view: MemoryView) -> None:
        self._view = view
        self.clear()

    def clear(self) -> None:
        """Forget prepared ranges and results (reuse the object for the next round)."""
        self._addrs: list[int] = []
        self._lens: list[int] = []
        self._seen: dict[tuple[int, int], int] = {}
        self._result: BatchResult | None = None
        self._data: bytes | bytearray = b""
        self._offs: list[int] = []
        self._failed: dict[int, list[ReadFailure]] = {}

    def prepare(self, addr: int, n: int) -> None:
        """Queue ``n`` bytes at ``addr`` (a range asked twice is read once)."""
        check_span(addr, n, "scatter prepare")
        if (addr, n) not in self._seen:
            self._seen[(addr, n)] = len(self._addrs)
            self._addrs.append(int(addr))
            self._lens.append(int(n))
            self._result = None

    def prepare_many(self, addrs: Iterable[int], n: int) -> None:
        """Queue ``n`` bytes at each address."""
        for a in addrs:
            self.prepare(a, n)

    def execute(self) -> Scatter:
        """Read everything prepared in one batched read; per-range failures are kept for ``read``."""
        res = self._view.read_batch(self._addrs, self._lens)
        self._result = res
        raw = res._data
        self._data = raw if isinstance(raw, (bytes, bytearray)) else res.data.tobytes()
        offs, o = [], 0
        for n in self._lens:
            offs.append(o)
            o += n
        self._offs = offs
        self._failed = {}
        for f in res.failures:
            self._failed.setdefault(f.index, []).append(f)
        return self

    @property
    def result(self) -> BatchResult:
        """The batch result of the last :meth:`execute`."""
        if self._result is None:
            raise RuntimeError("scatter: execute() has not run since the last prepare()")
        return self._result

    def _find(self, addr: int, n: int) -> int:
        i = self._seen.get((addr, n))
        if i is not None:
            return i
        for j, (a, m) in enumerate(zip(self._addrs, self._lens, strict=True)):
            if a <= addr and addr + n <= a + m:
                return j
        raise KeyError(f"scatter: {n:#x} bytes at {addr:#x} were not prepared")

    def read(self, addr: int, n: int, *, zero_fill: bool = False) -> bytes:
        """Bytes of a prepared range (or part of one), from the last :meth:`execute`."""
        if self._result is None:
            raise RuntimeError("scatter: execute() has not run since the last prepare()")
        i = self._find(addr, n)
        start = self._offs[i] + addr - self._addrs[i]
        data = bytes(self._data[start : start + n])
        fails = self._failed.get(i)
        if fails and not zero_fill:
            hit = [ReadFailure(0, max(f.address, addr), min(f.address + f.length, addr + n) - max(f.address, addr),
                               f.reason) for f in fails if f.address < addr + n and addr < f.address + f.length]
            if hit:
                raise PartialReadError(data, hit)
        return data

    def ok(self, addr: int, n: int) -> bool:
        """True when every byte of the (prepared) range was read."""
        try:
            self.read(addr, n)
        except PartialReadError:
            return False
        return True

    def _typed(self, addr: int, f: str) -> Any:
        s = (_LE if self._view.little_endian else _BE)[f]
        return s.unpack(self.read(addr, s.size))[0]

    def read_u8(self, addr: int) -> int:
        return self._typed(addr, "B")  # type: ignore[no-any-return]

    def read_u16(self, addr: int) -> int:
        return self._typed(addr, "H")  # type: ignore[no-any-return]

    def read_u32(self, addr: int) -> int:
        return self._typed(addr, "I")  # type: ignore[no-any-return]

    def read_u64(self, addr: int) -> int:
        return self._typed(addr, "Q")  # type: ignore[no-any-return]

    def read_ptr(self, addr: int) -> int:
        return self._typed(addr, "Q" if self._view.pointer_size == 8 else "I")  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return len(self._addrs)

    def __enter__(self) -> Scatter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()


class MemoryCursor(io.RawIOBase):
    """File-like access: ``read``/``readinto``/``seek``/``tell`` and ``write`` when writable.

    A read that reaches unreadable memory returns the bytes before it; reading at an unreadable
    position raises :class:`PartialReadError` (an ``OSError`` would not say what failed)."""

    def __init__(self, view: MemoryView, start: int = 0) -> None:
        super().__init__()
        self._view = view
        self._pos = start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return bool(self._view.writable)

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        else:
            raise io.UnsupportedOperation("memory has no end to seek from")
        if self._pos < 0:
            raise ValueError("negative seek position")
        return self._pos

    def readinto(self, b: Any) -> int:
        """Fill ``b``; stops short at the first unreadable byte (a short read, as files do at EOF,
        so buffered readers that read ahead still work). Raises :class:`PartialReadError` only
        when the very first byte is unreadable."""
        mv = memoryview(b).cast("B")
        out = np.frombuffer(mv, dtype=np.uint8)
        n = len(mv)
        if n == 0:
            return 0
        failures = self._view._read_batch(
            np.array([self._pos], dtype=np.uint64), np.array([n], dtype=np.int64), out
        )
        if failures:
            good = min(f.address for f in failures) - self._pos
            if good <= 0:
                raise PartialReadError(b"", failures, "cursor read")
            n = good
        self._pos += n
        return n

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._view.write(self._pos, data)
        self._pos += len(data)
        return len(data)
