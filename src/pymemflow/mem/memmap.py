"""Memory maps: which physical addresses exist, and where each range lives in the backing store.

A map is a sorted list of non-overlapping ranges ``base, length -> real_base`` (``real_base`` is a
file offset for dumps, an offset into a buffer for in-process memory, or another connector's
physical address). Single lookups use :mod:`bisect`; batches use ``np.searchsorted`` so a whole
request is split in one pass. The on-disk form is memflow's TOML::

    [[range]]
    base = 0x1000
    length = 0x1000
    real_base = 0x3000     # optional, defaults to base

Values may be TOML integers or strings (``"0x1000"``, ``"4k"``) because TOML integers are signed
64-bit and cannot hold addresses at or above 2**63.
"""

from __future__ import annotations

import sys
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import FormatError, ReadFailure
from ..types import parse_int
from .lazynp import is_int
from .view import I64Array, U64Array

if TYPE_CHECKING:
    import numpy as np
else:
    from .lazynp import np

_U64_MAX = (1 << 64) - 1
HOLE = "not in memory map"


@dataclass(frozen=True)
class MemRange:
    base: int
    length: int
    real_base: int

    @property
    def end(self) -> int:
        return self.base + self.length


@dataclass
class MappedPieces:
    """The result of splitting a request along a map.

    Chunk ``j`` is ``length[j]`` bytes of piece ``index[j]`` at physical ``addr[j]``, found at
    ``real[j]`` in the backing store, to be placed at ``out_off[j]`` in the caller's output
    buffer. ``failures`` are the holes. ``simple`` means chunk ``j`` is exactly piece ``j``
    (every piece lies inside one range), so callers can skip any scatter step.
    """

    given_index: I64Array | None
    addr: U64Array
    real: U64Array
    length: I64Array
    given_out_off: I64Array | None
    failures: list[ReadFailure] = field(default_factory=list)
    simple: bool = False

    def __len__(self) -> int:
        return int(self.length.shape[0])

    @property
    def index(self) -> I64Array:
        if self.given_index is None:  # simple: chunk j is piece j
            self.given_index = np.arange(self.length.shape[0], dtype=np.int64)
        return self.given_index

    @property
    def back_to_back(self) -> bool:
        """Chunk ``j`` goes right after chunk ``j-1`` from offset 0 (no offsets array needed)."""
        return self.given_out_off is None and self.simple

    @property
    def out_off(self) -> I64Array:
        if self.given_out_off is None:
            self.given_out_off = _exclusive_cumsum(self.length)
        return self.given_out_off


def _exclusive_cumsum(n: I64Array) -> I64Array:
    off = np.zeros(n.shape[0], dtype=np.int64)
    if n.shape[0] > 1:
        np.cumsum(n[:-1], out=off[1:])
    return off


def delta_arr(delta: list[np.uint64]) -> U64Array:
    return np.array(delta, dtype=np.uint64)


def _parse_value(raw: Any, path: object, field_name: str) -> int:
    if isinstance(raw, bool):
        raise FormatError(path, None, field_name, f"expected an integer, got {raw!r}")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str):
        try:
            value = parse_int(raw)
        except ValueError as e:
            raise FormatError(path, None, field_name, str(e)) from None
    else:
        raise FormatError(path, None, field_name, f"expected an integer or a hex string, got {raw!r}")
    if not 0 <= value <= _U64_MAX:
        raise FormatError(path, None, field_name, f"{value:#x} is outside 0..2**64-1")
    return value


def _toml_int(v: int) -> str:
    # TOML integers are signed 64-bit; larger values go in as hex strings (which load() accepts).
    return f"{v:#x}" if v < (1 << 63) else f'"{v:#x}"'


class MemoryMap:
    """Sorted, non-overlapping ``base, length -> real_base`` ranges with O(log n) lookups."""

    def __init__(self, ranges: Iterable[tuple[int, int, int] | tuple[int, int] | MemRange] = ()) -> None:
        self._ranges: list[MemRange] = []
        self._bases: list[int] = []
        self.extend(ranges)

    @classmethod
    def identity(cls, size: int, base: int = 0) -> MemoryMap:
        """One range ``[base, base+size)`` mapped onto itself (or onto offset ``base`` ... ``size``)."""
        return cls([(base, size, base)]) if size > 0 else cls()

    # ---- building -----------------------------------------------------------------------------
    @staticmethod
    def _checked(base: int, length: int, real_base: int | None) -> MemRange | None:
        real = base if real_base is None else real_base
        for name, v in (("base", base), ("length", length), ("real_base", real)):
            if not is_int(v) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        if base + length - 1 > _U64_MAX or real + length - 1 > _U64_MAX:
            raise ValueError(f"range {base:#x}+{length:#x} -> {real:#x} runs past 2**64")
        if length == 0:
            return None
        return MemRange(int(base), int(length), int(real))

    def _changed(self) -> None:
        self._arrays = None
        self._delta_cache = None

    def add(self, base: int, length: int, real_base: int | None = None) -> MemoryMap:
        """Insert a range; ``real_base`` defaults to ``base``. Empty ranges are ignored (as memflow
        does); overlaps and values outside 64 bits raise ValueError."""
        r = self._checked(base, length, real_base)
        if r is None:
            return self
        i = bisect_right(self._bases, r.base)
        if i > 0 and self._ranges[i - 1].end > r.base:
            o = self._ranges[i - 1]
            raise ValueError(f"range {r.base:#x}-{r.end:#x} overlaps {o.base:#x}-{o.end:#x}")
        if i < len(self._ranges) and self._ranges[i].base < r.end:
            o = self._ranges[i]
            raise ValueError(f"range {r.base:#x}-{r.end:#x} overlaps {o.base:#x}-{o.end:#x}")
        self._ranges.insert(i, r)
        self._bases.insert(i, r.base)
        self._changed()
        return self

    def extend(self, ranges: Iterable[tuple[int, int, int] | tuple[int, int] | MemRange]) -> MemoryMap:
        """Add many ranges in O(n log n) (one sort, one overlap pass) -- ``add`` in a loop would be
        quadratic for maps with many ranges."""
        new: list[MemRange] = []
        for item in ranges:
            r = (self._checked(item.base, item.length, item.real_base) if isinstance(item, MemRange)
                 else self._checked(*item))
            if r is not None:
                new.append(r)
        if not new:
            return self
        merged = sorted(self._ranges + new, key=lambda r: r.base)
        for prev, cur in zip(merged, merged[1:], strict=False):
            if prev.end > cur.base:
                raise ValueError(f"range {cur.base:#x}-{cur.end:#x} overlaps {prev.base:#x}-{prev.end:#x}")
        self._ranges = merged
        self._bases = [r.base for r in merged]
        self._changed()
        return self

    def clipped(self, real_limit: int) -> MemoryMap:
        """A copy whose ranges are cut so no byte maps at or beyond ``real_limit`` in the backing
        store (a memory map that promises more than a file holds)."""
        out = MemoryMap()
        for r in self._ranges:
            if r.real_base < real_limit:
                out.add(r.base, min(r.length, real_limit - r.real_base), r.real_base)
        return out

    def shifted(self, delta: int) -> MemoryMap:
        """A copy with every ``real_base`` moved by ``delta`` (a header before the data)."""
        return MemoryMap((r.base, r.length, r.real_base + delta) for r in self._ranges)

    # ---- inspection ---------------------------------------------------------------------------
    @property
    def ranges(self) -> list[MemRange]:
        return list(self._ranges)

    def __iter__(self) -> Iterator[MemRange]:
        return iter(list(self._ranges))

    def __len__(self) -> int:
        return len(self._ranges)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MemoryMap) and self._ranges == other._ranges

    def __repr__(self) -> str:
        inner = ", ".join(f"{r.base:#x}+{r.length:#x}->{r.real_base:#x}" for r in self._ranges[:4])
        more = f", ... ({len(self._ranges)} ranges)" if len(self._ranges) > 4 else ""
        return f"MemoryMap([{inner}{more}])"

    @property
    def max_address(self) -> int:
        """One past the highest mapped address (0 for an empty map)."""
        return self._ranges[-1].end if self._ranges else 0

    @property
    def real_size(self) -> int:
        """Bytes covered by the ranges."""
        return sum(r.length for r in self._ranges)

    # ---- lookups ------------------------------------------------------------------------------
    _arrays: tuple[list[int], U64Array, U64Array, U64Array, list[int], list[int]] | None = None
    _delta_cache: list[np.uint64] | None = None

    def _arr(self) -> tuple[list[int], U64Array, U64Array, U64Array, list[int], list[int]]:
        if self._arrays is None:
            bl = [r.base for r in self._ranges]
            self._arrays = (
                bl,
                np.array(bl, dtype=np.uint64),
                np.array([r.end - 1 for r in self._ranges], dtype=np.uint64),  # last byte: 2**64 does not fit
                np.array([r.real_base for r in self._ranges], dtype=np.uint64),
                [r.length for r in self._ranges],
                [r.real_base for r in self._ranges],
            )
        return self._arrays

    def _deltas(self) -> list[np.uint64]:
        """Per range ``real_base - base`` modulo 2**64 (adding it to a uint64 address maps it)."""
        d = getattr(self, "_delta_cache", None)
        if d is None or len(d) != len(self._ranges):
            d = [np.uint64((r.real_base - r.base) & _U64_MAX) for r in self._ranges]
            self._delta_cache = d
        return d

    def _range_index(self, a: U64Array, ba: U64Array) -> I64Array:
        """Index of the last range whose base is <= each address (-1 before the first). With few
        ranges, one comparison per range beats a binary search per address (5-10x)."""
        if len(ba) <= 8:
            idx = np.full(a.shape[0], -1, dtype=np.int64)
            for b in ba:
                idx += a >= b
            return idx
        idx = np.searchsorted(ba, a, side="right").astype(np.int64, copy=False)
        idx -= 1
        return idx

    def find(self, addr: int) -> int:
        """Index of the range holding ``addr``, or -1."""
        bl, _, _, _, lens, _ = self._arr()
        i = bisect_right(bl, addr) - 1
        if i >= 0 and addr - bl[i] < lens[i]:
            return i
        return -1

    def lookup(self, addr: int) -> tuple[int, int] | None:
        """``(real_address, bytes left in that range)`` for ``addr``, or None in a hole."""
        bl, _, _, _, lens, reals = self._arr()
        i = bisect_right(bl, addr) - 1
        if i >= 0:
            off = addr - bl[i]
            if off < lens[i]:
                return reals[i] + off, lens[i] - off
        return None

    def lookup_many(self, addrs: U64Array) -> tuple[U64Array, np.ndarray]:
        """Vectorised :meth:`lookup`: real addresses (0 where unmapped) and an ok mask."""
        _, ba, ea, ra, _, _ = self._arr()
        a = np.asarray(addrs, dtype=np.uint64)
        if not len(ba):
            return np.zeros(a.shape, np.uint64), np.zeros(a.shape, bool)
        idx = np.searchsorted(ba, a, side="right").astype(np.int64) - 1
        safe = np.maximum(idx, 0)
        ok = (idx >= 0) & (a <= ea[safe])
        real = np.where(ok, a - ba[safe] + ra[safe], np.uint64(0))
        return real.astype(np.uint64, copy=False), ok

    def split(self, addrs: U64Array, lengths: I64Array, out_offsets: I64Array | None = None) -> MappedPieces:
        """Split pieces at range boundaries; holes become :class:`ReadFailure` s.

        Pieces that lie inside one range (the common case) are handled with array operations --
        and when the whole batch lies in one range, with just min/max reductions; only pieces that
        cross a boundary or touch a hole take the per-piece path. ``out_offsets`` default to the
        pieces laid back to back (the :meth:`MemoryView._read_batch` layout).
        """
        a = np.asarray(addrs, dtype=np.uint64).reshape(-1)
        n = np.asarray(lengths, dtype=np.int64).reshape(-1)
        k = int(a.shape[0])
        given_off = None if out_offsets is None else np.asarray(out_offsets, dtype=np.int64)
        bl, ba, ea, ra, lens, reals = self._arr()
        delta = self._deltas()
        if k == 0:
            return MappedPieces(np.zeros(0, np.int64), a, a.copy(), n, given_off, [], True)
        nr = len(bl)
        nmin = int(n.min())
        nmax = int(n.max())
        amax = int(a.max())
        no_wrap = nmin > 0 and amax + nmax - 1 <= _U64_MAX
        if nr and no_wrap:
            amin = int(a.min())
            i = bisect_right(bl, amin) - 1
            if i >= 0 and amax + nmax - 1 < bl[i] + lens[i]:
                # the whole batch lies inside range i: one add maps it
                real = a + delta[i] if delta[i] else a.copy()
                return MappedPieces(None, a, real, n, given_off, [], True)
            idx = self._range_index(a, ba)
            # last byte of each piece (a scalar add when all pieces have one length)
            last = a + np.uint64(nmax - 1) if nmin == nmax else a + (n - 1).astype(np.uint64)
            if amin < bl[0]:
                np.maximum(idx, 0, out=idx)
            sel = np.take(ea, idx)
            inside = np.less_equal(last, sel)
            if amin < bl[0]:
                inside &= a >= ba[0]
            if bool(inside.all()):
                # reuse the buffer: real = a + (real_base - base) of each piece's range
                np.take(delta_arr(delta), idx, out=sel)
                np.add(a, sel, out=sel)
                return MappedPieces(None, a, sel, n, given_off, [], True)
        elif nr:
            idx = np.searchsorted(ba, a, side="right").astype(np.int64) - 1
            safe = np.maximum(idx, 0)
            last = ea[safe]
            # inside: a in [base, last] and a + n - 1 <= last, written so nothing overflows uint64
            inside = (idx >= 0) & (a <= last)
            room = np.where(inside, last - np.where(inside, a, last), np.uint64(0))
            inside &= (n > 0) & ((n - 1).astype(np.uint64) <= room)
            inside |= n == 0
            idx = safe
        else:
            inside = n == 0
            idx = np.zeros(k, np.int64)
        if bool(inside.all()):
            real = a + delta_arr(delta)[idx] if nr else a.copy()
            return MappedPieces(None, a, real, n, given_off, [], True)
        off = given_off if given_off is not None else _exclusive_cumsum(n)
        safe = idx
        good = np.flatnonzero(inside)
        parts_i: list[np.ndarray] = [good]
        parts_a: list[np.ndarray] = [a[good]]
        parts_r: list[np.ndarray] = [a[good] + delta_arr(delta)[safe[good]] if nr else a[good]]
        parts_n: list[np.ndarray] = [n[good]]
        parts_o: list[np.ndarray] = [off[good]]
        si: list[int] = []
        sa: list[int] = []
        sr: list[int] = []
        sn: list[int] = []
        so: list[int] = []
        failures: list[ReadFailure] = []
        ranges = self._ranges
        for p in np.flatnonzero(~inside).tolist():
            pos = int(a[p])
            left = int(n[p])
            o = int(off[p])
            if pos + left - 1 > _U64_MAX:  # a piece running past the top of the address space
                cut = _U64_MAX + 1 - pos
                tail_len = left - cut
                left = cut
            else:
                tail_len = 0
            i = bisect_right(bl, pos) - 1
            if i < 0 or pos >= ranges[i].end:
                i += 1
            while left > 0:
                if i >= len(ranges) or ranges[i].base >= pos + left:
                    failures.append(ReadFailure(p, pos, left, HOLE))
                    break
                r = ranges[i]
                if r.base > pos:
                    gap = r.base - pos
                    failures.append(ReadFailure(p, pos, gap, HOLE))
                    pos += gap
                    o += gap
                    left -= gap
                take = min(left, r.end - pos)
                si.append(p)
                sa.append(pos)
                sr.append(r.real_base + pos - r.base)
                sn.append(take)
                so.append(o)
                pos += take
                o += take
                left -= take
                i += 1
            if tail_len:
                failures.append(ReadFailure(p, _U64_MAX + 1, tail_len, "past the end of the 64-bit address space"))
        parts_i.append(np.array(si, dtype=np.int64))
        parts_a.append(np.array(sa, dtype=np.uint64))
        parts_r.append(np.array(sr, dtype=np.uint64))
        parts_n.append(np.array(sn, dtype=np.int64))
        parts_o.append(np.array(so, dtype=np.int64))
        failures.sort(key=lambda f: (f.index, f.address))
        return MappedPieces(
            np.concatenate(parts_i),
            np.concatenate(parts_a).astype(np.uint64),
            np.concatenate(parts_r).astype(np.uint64),
            np.concatenate(parts_n),
            np.concatenate(parts_o),
            failures,
            False,
        )

    # ---- TOML ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> MemoryMap:
        """Read memflow's memory-map TOML. Bad syntax, values or overlaps raise FormatError."""
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as e:
            raise FormatError(p, None, "file", f"cannot read memory map: {e.strerror or e}") from None
        return cls.loads(raw, p)

    @classmethod
    def loads(cls, text: str | bytes, path: object = "<memory map>") -> MemoryMap:
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as e:
                raise FormatError(path, e.start, "file", "memory map is not UTF-8 text") from None
        if sys.version_info >= (3, 11):  # here: tomllib (and datetime) only when a map file is read
            import tomllib
        else:  # pragma: no cover - exercised on 3.10 only
            import tomli as tomllib
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise FormatError(path, None, "toml", str(e)) from None
        unknown = sorted(set(doc) - {"range"})
        if unknown:
            raise FormatError(path, None, unknown[0], "unknown top-level key (only [[range]] tables are allowed)")
        ranges = doc.get("range", [])
        if not isinstance(ranges, list):
            raise FormatError(path, None, "range", "must be an array of tables ([[range]])")
        parsed: list[tuple[int, MemRange]] = []
        for i, r in enumerate(ranges):
            where = f"range[{i}]"
            if not isinstance(r, dict):
                raise FormatError(path, None, where, "must be a table")
            extra = sorted(set(r) - {"base", "length", "real_base"})
            if extra:
                raise FormatError(path, None, f"{where}.{extra[0]}", "unknown key (allowed: base, length, real_base)")
            for k in ("base", "length"):
                if k not in r:
                    raise FormatError(path, None, f"{where}.{k}", "missing")
            base = _parse_value(r["base"], path, f"{where}.base")
            length = _parse_value(r["length"], path, f"{where}.length")
            real = _parse_value(r["real_base"], path, f"{where}.real_base") if "real_base" in r else base
            try:
                checked = cls._checked(base, length, real)
            except ValueError as e:
                raise FormatError(path, None, where, str(e)) from None
            if checked is not None:
                parsed.append((i, checked))
        parsed.sort(key=lambda t: t[1].base)
        for (_, prev), (j, cur) in zip(parsed, parsed[1:], strict=False):
            if prev.end > cur.base:
                raise FormatError(path, None, f"range[{j}]",
                                  f"{cur.base:#x}-{cur.end:#x} overlaps {prev.base:#x}-{prev.end:#x}")
        return cls(r for _, r in parsed)

    def dumps(self) -> str:
        lines: list[str] = []
        for r in self._ranges:
            lines += [
                "[[range]]",
                f"base = {_toml_int(r.base)}",
                f"length = {_toml_int(r.length)}",
                f"real_base = {_toml_int(r.real_base)}",
                "",
            ]
        return "\n".join(lines)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.dumps(), encoding="utf-8")
