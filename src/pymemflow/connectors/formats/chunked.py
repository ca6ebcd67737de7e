"""Compressed snapshots: memory stored as independently decodable chunks (kdump pages, AVML frames).

A chunk is decoded once and kept in a small LRU cache, so the many small reads of a page-table walk
over one page decompress it once. Decoders must bound their output (see ``codecs``): a chunk that
decodes to more than its declared size is a :class:`FormatError`, never an unbounded allocation.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict

import numpy as np

from ...errors import FormatError, ReadFailure
from ...mem.view import I64Array, U8Array, U64Array, _offsets
from .base import SnapshotMemory

DEFAULT_CACHE_CHUNKS = 1024


class ChunkedMemory(SnapshotMemory):
    """Physical memory made of chunks ``[chunk_starts[i], chunk_starts[i] + chunk_lengths[i])``.

    Subclasses set ``chunk_starts``/``chunk_lengths`` (sorted, non-overlapping, via
    :meth:`_set_chunks`) and implement :meth:`_decode_chunk`.
    """

    cheap_single_reads = True  # a bisect and a slice of a cached decoded chunk: small batches go piece by piece

    chunk_starts: U64Array
    chunk_ends: U64Array
    cache_chunks: int = DEFAULT_CACHE_CHUNKS

    def _set_chunks(self, starts: U64Array, lengths: U64Array) -> None:
        self.chunk_starts = starts.astype(np.uint64)
        self.chunk_ends = self.chunk_starts + lengths.astype(np.uint64)
        self._cache: OrderedDict[int, U8Array] = OrderedDict()
        self._starts_l: list[int] = self.chunk_starts.tolist()
        self._ends_l: list[int] = self.chunk_ends.tolist()
        self.cache_hits = 0
        self.cache_misses = 0
        ranges: list[tuple[int, int]] = []
        for s, e in zip(self.chunk_starts.tolist(), self.chunk_ends.tolist(), strict=True):
            if ranges and ranges[-1][1] == s:
                ranges[-1] = (ranges[-1][0], e)
            else:
                ranges.append((s, e))
        self._finish(ranges)

    def _read_single(self, addr: int, n: int) -> tuple[bytes, list[ReadFailure]]:
        """One read inside one chunk: a bisect and the cached chunk."""
        starts = self._starts_l
        j = bisect_right(starts, addr) - 1
        if j >= 0 and addr >= 0 and addr + n <= self._ends_l[j]:
            try:
                c = self._chunk(j)
            except FormatError:
                return super()._read_single(addr, n)
            s = addr - starts[j]
            return c[s : s + n].tobytes(), []
        return super()._read_single(addr, n)

    def _hole_reason(self, addr: int) -> str:
        """Why ``addr`` is not readable (formats that know more say so)."""
        return "not in the dump"

    def _decode_chunk(self, i: int) -> U8Array:
        """The decoded bytes of chunk ``i`` (exactly its length). Raise FormatError when corrupt."""
        raise NotImplementedError

    def _chunk(self, i: int) -> U8Array:
        c = self._cache.get(i)
        if c is not None:
            self._cache.move_to_end(i)
            self.cache_hits += 1
            return c
        self.cache_misses += 1
        c = self._decode_chunk(i)
        want = int(self.chunk_ends[i] - self.chunk_starts[i])
        if c.size != want:
            raise FormatError(self.path, None, f"chunk {i}",
                              f"decodes to {c.size:#x} bytes, expected {want:#x}")
        self._cache[i] = c
        if len(self._cache) > self.cache_chunks:
            self._cache.popitem(last=False)
        return c

    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        offs = _offsets(lengths)
        starts, ends = self.chunk_starts, self.chunk_ends
        failures: list[ReadFailure] = []
        if starts.size == 0:
            out[:] = 0
            return [ReadFailure(i, int(a), int(n), "not in the dump")
                    for i, (a, n) in enumerate(zip(addrs.tolist(), lengths.tolist(), strict=True)) if n]
        first = (np.searchsorted(starts, addrs, side="right").astype(np.int64) - 1).tolist()
        nchunks = starts.size
        for i, (a, n, o, j) in enumerate(zip(addrs.tolist(), lengths.tolist(), offs.tolist(), first,
                                             strict=True)):
            pos, stop = a, a + n
            while pos < stop:
                if j + 1 < nchunks and pos >= int(starts[j + 1]):
                    j += 1
                    continue
                if j >= 0 and pos < int(ends[j]):
                    take = min(stop, int(ends[j])) - pos
                    try:
                        c = self._chunk(j)
                    except FormatError as e:
                        out[o + pos - a : o + pos - a + take] = 0
                        failures.append(ReadFailure(i, pos, take, str(e)))
                    else:
                        s = pos - int(starts[j])
                        out[o + pos - a : o + pos - a + take] = c[s : s + take]
                else:
                    nxt = int(starts[j + 1]) if j + 1 < nchunks else stop
                    take = min(stop, nxt) - pos
                    out[o + pos - a : o + pos - a + take] = 0
                    if failures and failures[-1].index == i and \
                            failures[-1].address + failures[-1].length == pos:
                        f = failures.pop()
                        failures.append(ReadFailure(i, f.address, f.length + take, f.reason))
                    else:
                        failures.append(ReadFailure(i, pos, take, self._hole_reason(pos)))
                pos += take
        return failures
