"""A direct-mapped physical page cache that keeps only chosen page types.

Translation reads the same page-table pages again and again; caching them (and read-only pages)
turns most physical reads of a page walk into array lookups. Page ``p`` lives in slot
``p % slots``: one comparison per lookup, vectorised over a whole batch. An entry is valid for a
time (:class:`TimeValidity`) or for a number of batched reads (:class:`CountValidity`). Writes go
through to the target and drop the pages they touch.

Which reads are cached is decided by the page-type hint of the caller
(:func:`pymemflow.mem.pagetype.page_type_hint`); unhinted reads are ``UNKNOWN`` and pass through
unless ``UNKNOWN`` is among the cached types (``cache=all``). Pieces that cross a page boundary
also pass through (page-table entries never do).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import ReadFailure
from ...types import parse_duration
from ..gather import copy_pieces
from ..memmap import MemoryMap
from ..pagetype import DEFAULT_CACHED, PageType, current_page_type_bits
from ..phys import PhysicalMemory
from ..view import I64Array, U8Array, U64Array, _offsets
from .base import Middleware

if TYPE_CHECKING:
    import numpy as np
else:
    from ...mem.lazynp import np

_EMPTY = 0xFFFF_FFFF_FFFF_FFFF


@dataclass(frozen=True)
class TimeValidity:
    """Entries stay valid for ``seconds`` after they were filled."""

    seconds: float

    def now(self, counter: int) -> float:
        return time.monotonic()

    def valid(self, stamps: np.ndarray, now: float) -> np.ndarray:
        return (now - stamps) < self.seconds  # type: ignore[no-any-return]

    def valid_one(self, stamp: float, now: float) -> bool:
        return now - stamp < self.seconds


@dataclass(frozen=True)
class CountValidity:
    """Entries stay valid for ``count`` batched reads after they were filled."""

    count: int

    def now(self, counter: int) -> float:
        return float(counter)

    def valid(self, stamps: np.ndarray, now: float) -> np.ndarray:
        return (now - stamps) < self.count  # type: ignore[no-any-return]

    def valid_one(self, stamp: float, now: float) -> bool:
        return now - stamp < self.count


Validity = TimeValidity | CountValidity

_COUNT_RE = re.compile(r"^\s*([0-9]+)\s*(r|reads?)\s*$", re.I)


def parse_validity(text: str | float | Validity) -> Validity:
    """``cache_time``: a duration (``1s``, ``250ms``; a bare number is milliseconds, as in memflow)
    or a count of batched reads (``100reads``)."""
    if isinstance(text, (TimeValidity, CountValidity)):
        return text
    if isinstance(text, (int, float)):
        return TimeValidity(float(text))
    m = _COUNT_RE.match(text)
    if m:
        return CountValidity(int(m.group(1)))
    t = text.strip()
    if re.fullmatch(r"[0-9]*\.?[0-9]+", t):
        return TimeValidity(float(t) / 1000.0)
    try:
        return TimeValidity(parse_duration(t))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a cache validity (a duration like 1s or 250ms, a bare number of ms, "
            "or a count of reads like 100reads)"
        ) from None


class PageCache(Middleware):
    """Direct-mapped cache of ``size // page_size`` pages in front of ``inner``."""

    name = "cache"

    def __init__(
        self,
        inner: PhysicalMemory,
        size: int = 2 << 20,
        page_size: int = 4096,
        validity: Validity = TimeValidity(1.0),
        page_types: PageType = DEFAULT_CACHED,
        *,
        time_validity: float | None = None,
        count_validity: int | None = None,
    ) -> None:
        """``time_validity`` (seconds) / ``count_validity`` (reads) are shorthands for ``validity``."""
        super().__init__(inner)
        if time_validity is not None:
            validity = TimeValidity(time_validity)
        if count_validity is not None:
            validity = CountValidity(count_validity)
        if page_size <= 0 or size < page_size:
            raise ValueError(f"cache size {size:#x} must hold at least one page of {page_size:#x} bytes")
        self.page_size = page_size
        self.slots = size // page_size
        self.validity = validity
        self.page_types = page_types
        self._type_bits = int(page_types)
        self._tags = np.full(self.slots, _EMPTY, dtype=np.uint64)
        self._stamps = np.zeros(self.slots, dtype=np.float64)
        self._data = np.zeros((self.slots, page_size), dtype=np.uint8)
        self._counter = 0
        self.hits = 0
        self.misses = 0
        self.bypassed = 0
        self.fills = 0

    # ---- bookkeeping --------------------------------------------------------------------------
    def invalidate(self) -> None:
        """Drop every cached page."""
        self._tags[:] = _EMPTY

    def set_mem_map(self, mem_map: MemoryMap | None) -> None:
        self.invalidate()
        super().set_mem_map(mem_map)

    def middleware_info(self) -> dict[str, Any]:
        return {"size": self.slots * self.page_size, "page_size": self.page_size, "hits": self.hits,
                "misses": self.misses, "bypassed": self.bypassed, "validity": repr(self.validity),
                "page_types": "+".join(str(m.name).lower() for m in PageType if m & self.page_types)}

    # ---- reads --------------------------------------------------------------------------------
    def _passthrough(self, idx: np.ndarray, addrs: U64Array, lengths: I64Array, starts: I64Array,
                     out: U8Array) -> list[ReadFailure]:
        if idx.size == 0:
            return []
        sub_n = lengths[idx]
        tmp = np.empty(int(sub_n.sum()), dtype=np.uint8)
        fails = self.inner._read_batch(addrs[idx], sub_n, tmp)
        copy_pieces(out, starts[idx], tmp, _offsets(sub_n), sub_n)
        return [ReadFailure(int(idx[f.index]), f.address, f.length, f.reason) for f in fails]

    def _read_single(self, addr: int, n: int) -> tuple[bytes, list[ReadFailure]]:
        """One read without building arrays: a hit is a slot check and a slice; anything else
        (bypass, miss, a piece crossing pages) takes the batched path or the target's own."""
        if not (current_page_type_bits() & self._type_bits):
            self._counter += 1
            self.bypassed += 1
            return self.inner._read_single(addr, n)
        page, off = divmod(addr, self.page_size)
        if 0 < n and off + n <= self.page_size:
            slot = page % self.slots
            if self._tags.item(slot) == page:
                counter = self._counter + 1
                if self.validity.valid_one(self._stamps.item(slot), self.validity.now(counter)):
                    self._counter = counter
                    self.hits += 1
                    return self._data[slot, off : off + n].tobytes(), []
        return super()._read_single_batched(addr, n)

    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        self._counter += 1
        if not (current_page_type_bits() & self._type_bits):
            self.bypassed += int(lengths.shape[0])
            return self.inner._read_batch(addrs, lengths, out)
        ps = np.uint64(self.page_size)
        starts = _offsets(lengths)
        page = addrs // ps
        inoff = (addrs - page * ps).astype(np.int64)
        fits = (inoff + lengths <= self.page_size) & (lengths > 0)
        cand = np.flatnonzero(fits)
        rest = [np.flatnonzero(~fits)]
        if cand.size:
            now = self.validity.now(self._counter)
            cpage = page[cand]
            slot = (cpage % np.uint64(self.slots)).astype(np.int64)
            hit = (self._tags[slot] == cpage) & self.validity.valid(self._stamps[slot], now)
            hit_idx = cand[hit]
            flat = self._data.reshape(-1)
            if hit_idx.size:
                copy_pieces(out, starts[hit_idx], flat,
                            slot[hit] * self.page_size + inoff[hit_idx], lengths[hit_idx])
            self.hits += int(hit_idx.size)
            miss_idx = cand[~hit]
            if miss_idx.size:
                self.misses += int(miss_idx.size)
                mpages, inverse = np.unique(page[miss_idx], return_inverse=True)
                buf = np.empty(mpages.shape[0] * self.page_size, dtype=np.uint8)
                fails = self.inner._read_batch(
                    mpages * ps, np.full(mpages.shape[0], self.page_size, dtype=np.int64), buf
                )
                good = np.ones(mpages.shape[0], dtype=bool)
                for f in fails:
                    good[f.index] = False
                gp = np.flatnonzero(good)
                if gp.size:
                    s = (mpages[gp] % np.uint64(self.slots)).astype(np.int64)
                    self._tags[s] = mpages[gp]
                    self._data[s] = buf.reshape(-1, self.page_size)[gp]
                    self._stamps[s] = now
                    self.fills += int(gp.size)
                served = good[inverse]
                sidx = miss_idx[served]
                if sidx.size:
                    copy_pieces(out, starts[sidx], buf,
                                inverse[served].astype(np.int64) * self.page_size + inoff[sidx], lengths[sidx])
                # pages that did not read whole: let the target say exactly what failed per piece
                rest.append(miss_idx[~served])
        others = np.concatenate(rest)
        failures = self._passthrough(others, addrs, lengths, starts, out)
        failures.sort(key=lambda f: (f.index, f.address))
        return failures

    # ---- writes -------------------------------------------------------------------------------
    def _write_batch(self, addrs: U64Array, lengths: I64Array, data: U8Array) -> list[ReadFailure]:
        try:
            return self.inner._write_batch(addrs, lengths, data)
        finally:
            self._drop(addrs, lengths)

    def _drop(self, addrs: U64Array, lengths: I64Array) -> None:
        ps = self.page_size
        for a, n in zip(addrs.tolist(), lengths.tolist(), strict=True):
            if n <= 0:
                continue
            first, last = a // ps, (a + n - 1) // ps
            if last - first + 1 >= self.slots:
                self.invalidate()
                return
            pages = np.arange(first, last + 1, dtype=np.uint64)
            s = (pages % np.uint64(self.slots)).astype(np.int64)
            stale = self._tags[s] == pages
            self._tags[s[stale]] = np.uint64(_EMPTY)
