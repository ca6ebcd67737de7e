"""Runs: contiguous physical ranges stored contiguously in a file (LiME, ELF, crash dumps, VMware).

Look-ups are vectorised: one ``np.searchsorted`` over the run starts places every piece of a batch;
pieces inside one run are copied straight from the mapped file, the rare piece that crosses a run
boundary or a hole takes a slow path that splits it and reports the holes.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

import numpy as np

from ...errors import ReadFailure
from ...mem import fast
from ...mem.phys import PhysRange, merge_ranges
from ...mem.scan import check_declared_size
from ...mem.view import I64Array, U8Array, U64Array, _offsets
from .base import SnapshotMemory
from .source import FileSource

ZERO_FILL = -1
"""File offset of a run that reads as zeros (an ELF segment's memsz beyond its filesz)."""


class RunMap:
    """Sorted, non-overlapping runs ``(phys_start, length, file_offset)``; validated against the file.

    ``header_offsets`` (optional) says where in the file each run was described, so an error can
    point at the faulty header. Validation is vectorised: a crash dump bitmap can yield many runs.
    """

    def __init__(self, source: FileSource, runs: list[tuple[int, int, int]] | np.ndarray, field: str,
                 header_offsets: list[int] | np.ndarray | None = None) -> None:
        arr = np.asarray(runs, dtype=object).reshape(-1, 3) if len(runs) else np.zeros((0, 3), dtype=object)
        starts_o, lens_o, fos_o = arr[:, 0], arr[:, 1], arr[:, 2]
        where = np.asarray(header_offsets if header_offsets is not None else [-1] * len(arr), dtype=np.int64)
        for i in range(len(arr)):  # Python ints: catch values outside 64 bits before converting
            s0, n0, f0 = int(starts_o[i]), int(lens_o[i]), int(fos_o[i])
            if s0 < 0 or n0 < 0 or s0 + n0 > 1 << 64 or f0 < ZERO_FILL or f0 >= 1 << 63:
                raise source.error(_at(where, i), field,
                                   f"run {s0:#x}+{n0:#x} (file offset {f0:#x}) is outside the 64-bit space")
        starts = starts_o.astype(np.uint64) if len(arr) else np.zeros(0, np.uint64)
        lens = lens_o.astype(np.uint64) if len(arr) else np.zeros(0, np.uint64)
        fos = fos_o.astype(np.int64) if len(arr) else np.zeros(0, np.int64)
        keep = lens > 0
        starts, lens, fos, where = starts[keep], lens[keep], fos[keep], where[keep]
        order = np.argsort(starts, kind="stable")
        starts, lens, fos, where = starts[order], lens[order], fos[order], where[order]
        past = (fos != ZERO_FILL) & (fos.astype(np.float64) + lens.astype(np.float64) > float(source.size))
        past |= (fos != ZERO_FILL) & (fos + lens.astype(np.int64) > source.size)
        if past.any():
            i = int(np.flatnonzero(past)[0])
            raise source.error(_at(where, i), field,
                               f"run at {int(starts[i]):#x} needs file bytes {int(fos[i]):#x}.."
                               f"{int(fos[i]) + int(lens[i]):#x} past the end of the file ({source.size:#x})")
        ends = starts + lens
        if starts.size > 1:
            over = starts[1:] < ends[:-1]
            if over.any():
                i = int(np.flatnonzero(over)[0]) + 1
                raise source.error(_at(where, i), field,
                                   f"run at {int(starts[i]):#x} overlaps the run at {int(starts[i - 1]):#x}")
        self.starts: U64Array = starts
        self.lengths: U64Array = lens
        self.ends: U64Array = ends
        self.file_offsets: I64Array = fos

    def __len__(self) -> int:
        return int(self.starts.size)

    def ranges(self) -> list[tuple[int, int]]:
        """Merged ``(start, end)`` ranges."""
        out: list[tuple[int, int]] = []
        for s, e in zip(self.starts.tolist(), self.ends.tolist(), strict=True):
            if out and out[-1][1] == s:
                out[-1] = (out[-1][0], e)
            else:
                out.append((s, e))
        return out


def _at(where: np.ndarray, i: int) -> int | None:
    w = int(where[i])
    return None if w < 0 else w


class RunMappedMemory(SnapshotMemory, fast.RebindOnSettings):
    """Physical memory served from runs of a mapped file."""

    runs: RunMap
    cheap_single_reads = True

    def _set_runs(self, runs: RunMap) -> None:
        self.runs = runs
        self._finish(runs.ranges())
        self._starts_l: list[int] = runs.starts.tolist()
        self._ends_l: list[int] = runs.ends.tolist()
        self._fos_l: list[int] = runs.file_offsets.tolist()
        self._bind_compiled()
        check_declared_size(self)  # a header declaring far more than the file stores: warn at open

    def _bind_compiled(self) -> None:
        """Compiled single reads and small gathers over the runs with file bytes (:mod:`pymemflow.mem.fast`);
        zero-fill runs and holes stay with the pure path, which reports them."""
        filed = [(s, e - s, fo) for s, e, fo in zip(self._starts_l, self._ends_l, self._fos_l, strict=True) if fo >= 0]
        fast.bind_map_reader(self, self.source.buffer, [r[0] for r in filed], [r[1] for r in filed],
                             [r[2] for r in filed], RunMappedMemory)

    def close(self) -> None:
        fast.unbind(self)  # the compiled reader lets go of the mapping first
        super().close()

    def phys_ranges(self) -> list[PhysRange]:
        """Runs with file bytes are backed; zero-fill runs (ELF ``p_memsz > p_filesz``) are not."""
        rm = self.runs
        return merge_ranges([PhysRange(s, e, fo != ZERO_FILL) for s, e, fo in
                             zip(rm.starts.tolist(), rm.ends.tolist(), rm.file_offsets.tolist(), strict=True)])

    def direct(self, addr: int, n: int) -> tuple[Any, int] | None:
        j = bisect_right(self._starts_l, addr) - 1
        buf = self.source.buffer
        if j >= 0 and addr + n <= self._ends_l[j] and self._fos_l[j] >= 0 and buf is not None:
            return buf, self._fos_l[j] + addr - self._starts_l[j]
        return None

    def _read_single(self, addr: int, n: int) -> tuple[bytes, list[ReadFailure]]:
        """One read inside one run: a bisect and a slice of the mapping, no NumPy set-up."""
        j = bisect_right(self._starts_l, addr) - 1
        if j >= 0 and addr + n <= self._ends_l[j] and self._fos_l[j] >= 0 and addr >= 0:
            s = self._fos_l[j] + addr - self._starts_l[j]
            return self.source.data[s : s + n].tobytes(), []
        return super()._read_single(addr, n)

    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        if self._fast_gather_into(addrs, lengths, out):
            return []
        rm = self.runs
        offs = _offsets(lengths)
        if len(rm) == 0:
            out[:] = 0
            return [ReadFailure(i, int(a), int(n), "not in the dump")
                    for i, (a, n) in enumerate(zip(addrs.tolist(), lengths.tolist(), strict=True)) if n]
        idx = np.searchsorted(rm.starts, addrs, side="right").astype(np.int64) - 1
        idxc = np.maximum(idx, 0)
        n64 = lengths.astype(np.uint64)
        end = addrs + n64
        inside = (idx >= 0) & (end >= addrs) & (end <= rm.ends[idxc]) & (addrs >= rm.starts[idxc])
        fo = rm.file_offsets[idxc]
        src = fo + (addrs - rm.starts[idxc]).astype(np.int64)
        data = self.source.data
        fast = np.flatnonzero(inside & (fo >= 0))
        for o, s, n in zip(offs[fast].tolist(), src[fast].tolist(), lengths[fast].tolist(), strict=True):
            out[o : o + n] = data[s : s + n]
        for i in np.flatnonzero(inside & (fo < 0)).tolist():
            o = int(offs[i])
            out[o : o + int(lengths[i])] = 0
        failures: list[ReadFailure] = []
        for i in np.flatnonzero(~inside).tolist():
            self._read_slow(i, int(addrs[i]), int(lengths[i]), out, int(offs[i]), failures)
        return failures

    def _read_slow(self, index: int, addr: int, n: int, out: U8Array, o: int,
                   failures: list[ReadFailure]) -> None:
        """One piece that crosses run boundaries or holes: copy run by run, report the holes."""
        rm = self.runs
        starts, ends, fos = rm.starts, rm.ends, rm.file_offsets
        pos, stop = addr, addr + n
        while pos < stop:
            j = int(np.searchsorted(starts, np.uint64(min(pos, (1 << 64) - 1)), side="right")) - 1
            if j >= 0 and pos < int(ends[j]):
                take = min(stop, int(ends[j])) - pos
                fo = int(fos[j])
                dst = o + (pos - addr)
                if fo < 0:
                    out[dst : dst + take] = 0
                else:
                    s = fo + pos - int(starts[j])
                    out[dst : dst + take] = self.source.data[s : s + take]
            else:
                nxt = int(starts[j + 1]) if j + 1 < len(rm) else stop
                take = min(stop, nxt) - pos
                dst = o + (pos - addr)
                out[dst : dst + take] = 0
                if failures and failures[-1].index == index and \
                        failures[-1].address + failures[-1].length == pos:
                    f = failures.pop()
                    failures.append(ReadFailure(index, f.address, f.length + take, f.reason))
                else:
                    failures.append(ReadFailure(index, pos, take, "not in the dump"))
            pos += take
