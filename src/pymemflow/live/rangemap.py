"""Guest-physical ranges -> host addresses, and the splitting of a batch of reads over them.

Why: a VM's RAM is a few ranges (below 4 GiB, above 4 GiB, around the PCI hole) each backed by a
contiguous host mapping. A batch of pieces is translated with one ``np.searchsorted``; the common
case -- every piece inside one range -- is fully vectorised, and only the rare pieces that cross a
range edge or fall in a hole take a short Python loop. Holes are reported as failures, never read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..errors import FormatError, ReadFailure
from ..mem.view import I64Array, U64Array


@dataclass(frozen=True)
class HostRange:
    """``size`` bytes of guest-physical memory at ``base`` live at host address ``host``."""

    base: int
    size: int
    host: int

    @property
    def end(self) -> int:
        return self.base + self.size


@dataclass
class SplitPlan:
    """Host pieces of a request: piece ``index[i]`` has ``length[i]`` bytes at ``host[i]`` that go to
    ``out_offset[i]`` of the destination; ``holes`` are the parts that map to nothing."""

    host: U64Array
    length: U64Array
    out_offset: U64Array
    index: I64Array
    holes: list[tuple[int, int, int, int]]
    """(piece index, guest address, length, out offset) of unmapped parts."""


class HostRangeMap:
    """Sorted, non-overlapping guest-physical ranges; adjacent ranges that are contiguous on the host
    too are merged."""

    def __init__(self, ranges: list[HostRange]) -> None:
        rs = sorted((r for r in ranges if r.size > 0), key=lambda r: r.base)
        merged: list[HostRange] = []
        for r in rs:
            if merged and r.base < merged[-1].end:
                raise FormatError("memory map", None, "ranges", f"overlap at {r.base:#x}")
            if merged and merged[-1].end == r.base and merged[-1].host + merged[-1].size == r.host:
                p = merged.pop()
                r = HostRange(p.base, p.size + r.size, p.host)
            merged.append(r)
        self.ranges = merged
        self._bases = np.array([r.base for r in merged], dtype=np.uint64)
        self._ends = np.array([r.end for r in merged], dtype=np.uint64)
        self._hosts = np.array([r.host for r in merged], dtype=np.uint64)
        self._bases_list = [r.base for r in merged]

    @property
    def max_address(self) -> int:
        return self.ranges[-1].end if self.ranges else 0

    @property
    def real_size(self) -> int:
        return sum(r.size for r in self.ranges)

    def lookup(self, addr: int, n: int) -> int | None:
        """Host address of ``[addr, addr+n)`` when it lies inside one range (the single-read fast path)."""
        import bisect

        i = bisect.bisect_right(self._bases_list, addr) - 1
        if i < 0:
            return None
        r = self.ranges[i]
        if addr + n <= r.end:
            return r.host + (addr - r.base)
        return None

    def host_of(self, addr: int) -> int | None:
        return self.lookup(addr, 1)

    def split(self, addrs: U64Array, lengths: I64Array, out_offsets: U64Array) -> SplitPlan:
        n = addrs.shape[0]
        if not self.ranges:
            return SplitPlan(np.empty(0, np.uint64), np.empty(0, np.uint64), np.empty(0, np.uint64),
                             np.empty(0, np.int64),
                             [(i, int(addrs[i]), int(lengths[i]), int(out_offsets[i])) for i in range(n) if lengths[i]])
        idx = np.searchsorted(self._bases, addrs, side="right").astype(np.int64) - 1
        ridx = np.maximum(idx, 0)
        ends = addrs + lengths.astype(np.uint64)
        inside = (idx >= 0) & (ends <= self._ends[ridx]) & (ends >= addrs)
        nonzero = lengths > 0
        good = inside & nonzero
        if bool(good.all()):
            host = self._hosts[ridx] + (addrs - self._bases[ridx])
            return SplitPlan(host, lengths.astype(np.uint64), out_offsets, np.arange(n, dtype=np.int64), [])
        gi = np.nonzero(good)[0]
        hosts = [self._hosts[ridx[gi]] + (addrs[gi] - self._bases[ridx[gi]])]
        lens = [lengths[gi].astype(np.uint64)]
        offs = [out_offsets[gi]]
        index = [gi.astype(np.int64)]
        holes: list[tuple[int, int, int, int]] = []
        bad = np.nonzero(~inside & nonzero)[0]
        for i in bad.tolist():
            h, ln, of, hl = self._split_one(i, int(addrs[i]), int(lengths[i]), int(out_offsets[i]))
            hosts.append(np.array(h, np.uint64))
            lens.append(np.array(ln, np.uint64))
            offs.append(np.array(of, np.uint64))
            index.append(np.full(len(h), i, np.int64))
            holes.extend(hl)
        return SplitPlan(np.concatenate(hosts), np.concatenate(lens), np.concatenate(offs),
                         np.concatenate(index), holes)

    def _split_one(self, i: int, addr: int, length: int, off: int
                   ) -> tuple[list[int], list[int], list[int], list[tuple[int, int, int, int]]]:
        import bisect

        h: list[int] = []
        ln: list[int] = []
        of: list[int] = []
        holes: list[tuple[int, int, int, int]] = []
        pos = addr
        end = addr + length
        k = max(bisect.bisect_right(self._bases_list, addr) - 1, 0)
        while pos < end:
            while k < len(self.ranges) and self.ranges[k].end <= pos:
                k += 1
            if k >= len(self.ranges):
                holes.append((i, pos, end - pos, off + pos - addr))
                break
            r = self.ranges[k]
            if pos < r.base:
                stop = min(end, r.base)
                holes.append((i, pos, stop - pos, off + pos - addr))
                pos = stop
                continue
            stop = min(end, r.end)
            h.append(r.host + pos - r.base)
            ln.append(stop - pos)
            of.append(off + pos - addr)
            pos = stop
        return h, ln, of, holes

    def hole_failures(self, plan: SplitPlan, out: npt.NDArray[np.uint8]) -> list[ReadFailure]:
        """Zero the unmapped parts in ``out`` and describe them."""
        fails = []
        for i, a, n, o in plan.holes:
            out[o : o + n] = 0
            fails.append(ReadFailure(i, a, n, "no guest RAM at this physical address"))
        return fails
