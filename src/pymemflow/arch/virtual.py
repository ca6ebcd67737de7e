"""A virtual address space (physical memory + architecture + page-table root) as a MemoryView.

Reads are split at page boundaries, every piece is translated in one batch (TLB first, then the
batched walker for the misses), physically contiguous neighbours are coalesced and the whole lot
is fetched with one batched physical read. Unmapped pieces are reported per piece with their
virtual address, never silently zero-filled unless the space was opened with ``zero_fill=True``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import PartialReadError, ReadFailure, TranslationError
from ..mem import fast
from ..mem.view import (
    SMALL_BATCH,
    I64Array,
    MemoryView,
    U8Array,
    U64Array,
    merge_failures,
    read_pieces_singly,
)
from ..types import MemoryRegion
from .spec import F_HOOK, F_USER, R_OK, REASONS, Architecture, get_arch
from .tlb import FRAME_MASK, Tlb, TlbPolicy, pack
from .walk_scalar import PteHook, Walk, walk_one

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from .pagemap import Leaves
    from .walk_batch import TranslationResult
else:
    from ..mem.lazynp import np

_PAGE = 4096
_PMASK = _PAGE - 1
_BIG_READ = 64 << 10
"""Single reads from this size on first try one translation per page (cheap over large pages)."""
_BIG_READ_STEPS = 64


def _excl_cumsum(a: I64Array) -> I64Array:
    out = np.zeros(a.shape[0], dtype=np.int64)
    if a.shape[0] > 1:
        np.cumsum(a[:-1], out=out[1:])
    return out


class VirtualMemory(MemoryView):
    """``VirtualMemory(phys, "x64", cr3)``: read and translate virtual addresses.

    ``tlb``: a :class:`TlbPolicy` (``TlbPolicy(max_age=0.05)`` for live targets), a shared
    :class:`Tlb`, or False to translate every time. ``pte_hook(pte, level, va) -> pa | None`` lets an OS
    layer resolve non-present entries. ``ttbr1`` (AArch64) is the root of the upper half.
    """
    cheap_single_reads = True

    def __init__(
        self,
        phys: MemoryView,
        arch: str | Architecture,
        dtb: int,
        *,
        ttbr1: int | None = None,
        zero_fill: bool = False,
        tlb: TlbPolicy | Tlb | bool | None = None,
        pte_hook: PteHook | None = None,
    ) -> None:
        self.phys = phys
        self.arch = get_arch(arch)
        self.pointer_size = self.arch.pointer_size
        self.little_endian = True
        self.zero_fill = zero_fill
        self.pte_hook = pte_hook
        if isinstance(tlb, Tlb):
            self.tlb: Tlb | None = tlb
        elif tlb is False or (isinstance(tlb, TlbPolicy) and not tlb.enabled):
            self.tlb = None
        else:
            live_age = getattr(phys, "hints", {}).get("cache_time")  # live targets: short validity
            self.tlb = Tlb(tlb if isinstance(tlb, TlbPolicy) else TlbPolicy(max_age=float(live_age)) if live_age else None)
        self._volatile = self.tlb is not None and self.tlb.volatile
        self._large_shifts = sorted(lv.shift for lv in self.arch.levels if lv.leaf_allowed and lv.shift > 12)
        self._walk_sizes = sorted({0, self.arch.min_page_size, *self.arch.page_sizes})
        self._phys_u64 = phys.read_u64
        self._phys_u32 = phys.read_u32
        self._leaves: Leaves | None = None
        self.dtb = 0
        self.ttbr1 = ttbr1
        self.set_dtb(dtb, ttbr1)

    # ---- configuration ----------------------------------------------------------------------------
    @property
    def writable(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.phys, "writable", False))

    def set_dtb(self, dtb: int, ttbr1: int | None = None) -> None:
        """Switch to another page-table root (another process). Cached translations of other roots
        stay valid and are kept."""
        self.dtb = int(dtb)
        if ttbr1 is not None:
            self.ttbr1 = int(ttbr1)
        self._root = (self.dtb, self.ttbr1)
        self._single: dict[int, tuple[int, int, int, int]] | None = None
        if self.tlb is not None:
            self._single = self.tlb.single.setdefault(self._root, {})
        self._sget = self._single.get if self._single is not None else _no_entry
        self._leaves = None
        self._bind_compiled()

    def _bind_compiled(self) -> None:
        """Compiled reads (:mod:`pymemflow.mem.fast`) when the physical view has a compiled reader and the
        TLB keeps entries until flushed (a volatile TLB's expiry check stays in Python)."""
        phys_reader = getattr(self.phys, "_compiled_reader", None) if getattr(self.phys, "_compiled_in_process",
                                                                               False) else None
        if (self._single is None or self._volatile or phys_reader is None
                or self.phys.little_endian != self.little_endian):
            fast.unbind(self)
        else:
            fast.bind_virt_reader(self, self._single, phys_reader, VirtualMemory,
                                  self.tlb.generation if self.tlb is not None else None)

    def _fast_gather_into(self, addrs: Any, lengths: Any, out: U8Array) -> bool:
        reader = self._compiled_reader
        return reader is not None and bool(reader.gather_into(addrs, lengths, out, self._tlb_tables()))

    def _tlb_tables(self) -> list[tuple[int, object]]:
        """The batched TLB's tables of this root, 4 KiB first, for the compiled batch gather."""
        tlb = self.tlb
        return [] if tlb is None else tlb.tables(self._root, (12, *self._large_shifts))

    def flush_tlb(self) -> None:
        """Forget every cached translation (and the cached page map used by :meth:`reverse`)."""
        if self.tlb is not None:
            self.tlb.flush()
            self._single = self.tlb.single.setdefault(self._root, {})
            self._sget = self._single.get
        self._leaves = None
        self._bind_compiled()

    def __repr__(self) -> str:
        return f"<VirtualMemory {self.arch.name} dtb={self.dtb:#x}>"

    # ---- translation ------------------------------------------------------------------------------
    def _walk1(self, va: int) -> tuple[int, int, int, int]:
        """(frame of va's 4 KiB piece, page size, flags, reason), through the single-address TLB."""
        single = self._single
        if single is not None:
            if self._volatile:
                self.tlb.check()  # type: ignore[union-attr]  # a flush clears the dict in place
            e = single.get(va >> 12)
            if e is not None:
                return e
        tlb = self.tlb
        w: Walk = walk_one(self.phys, self.arch, self.dtb, va, self.ttbr1, self.pte_hook)
        e = (w.pa & ~_PMASK, w.page_size, w.flags, w.reason)
        if tlb is not None and (w.reason == R_OK or tlb.policy.negative):
            single = self._single
            assert single is not None
            if len(single) >= tlb.policy.capacity:
                tlb.bump()
                single.clear()
            single[va >> 12] = e
        return e

    def translate(self, va: int) -> int:
        """Physical address of ``va``; raises :class:`TranslationError` with the reason."""
        va = int(va)
        e = None if self._volatile else self._sget(va >> 12)  # the TLB hit inline: one dict lookup
        frame, _size, _fl, reason = e if e is not None else self._walk1(va)
        if reason:
            raise TranslationError(va, REASONS.get(reason, str(reason)))
        return frame | (va & _PMASK)

    def translate_info(self, va: int) -> Walk:
        """Physical address, page size, flags and reason for one address (no exception)."""
        frame, size, fl, reason = self._walk1(int(va))
        return Walk(frame | (int(va) & _PMASK) if not reason else 0, size, fl, reason)

    def translate_batch(self, vas: Iterable[int] | npt.ArrayLike) -> TranslationResult:
        """Translate many addresses at once: per-address pa, page size, flags and failure reason."""
        if isinstance(vas, np.ndarray):
            va = vas.astype(np.uint64, copy=False).reshape(-1)
        else:  # never via np.asarray: a list mixing ints above 2**63 with small ones becomes float64
            va = np.array([int(v) for v in vas], dtype=np.uint64)  # type: ignore[union-attr,arg-type]
        tlb = self.tlb
        if tlb is None:
            return self._walk_many(va)
        if self._volatile:
            tlb.check(va.shape[0])
        # one store per page size: a 2 MiB page is one entry, not 512 (the 4 KiB store is probed
        # first, larger ones only for what it missed)
        hit, val = tlb.lookup((self._root, 12), va >> np.uint64(12))
        n = va.shape[0]
        for shift in self._large_shifts:
            if bool(hit.all()):
                break
            if not tlb.has((self._root, shift)):
                continue
            pend = np.flatnonzero(~hit)
            h2, v2 = tlb.lookup((self._root, shift), va[pend] >> np.uint64(shift))
            hit[pend[h2]] = True
            val[pend[h2]] = v2[h2]
        if bool(hit.all()):
            return self._decode(va, val)
        miss = np.flatnonzero(~hit)
        r = self._walk_many(va[miss])
        keep = r.reason == R_OK if not tlb.policy.negative else np.ones(miss.shape[0], dtype=bool)
        mva = va[miss]
        for size in self._walk_sizes:  # what walk_many gives: 0 (failures) or a page size of the arch
            sel = keep & (r.page_size == np.uint64(size))
            if not sel.any():
                continue
            shift = 12 if size <= _PAGE else int(size).bit_length() - 1
            base = r.pa[sel] & ~np.uint64(size - 1 if size else 0)
            tlb.insert((self._root, shift), mva[sel] >> np.uint64(shift),
                       pack(base, r.page_size[sel], r.flags[sel], r.reason[sel]))
        if miss.shape[0] == n:
            return r
        res = self._decode(va, val)
        res.pa[miss] = r.pa
        res.page_size[miss] = r.page_size
        res.flags[miss] = r.flags
        res.reason[miss] = r.reason
        return res

    def _walk_many(self, va: U64Array) -> TranslationResult:
        """Walk the page tables for every address (TLB misses): in C when the physical view has a compiled
        in-process reader and no OS hook is installed, else (and for entries C cannot read) with NumPy."""
        from .walk_batch import walk_many  # lazy: see translate_batch
        if self.pte_hook is None:
            from .walk_fast import walk_compiled, walk_reader  # lazy: imports walk_batch (NumPy)
            reader = walk_reader(self.phys)
            if reader is not None:
                return walk_compiled(reader, self.phys, self.arch, self.dtb, np.ascontiguousarray(va), self.ttbr1)
        return walk_many(self.phys, self.arch, self.dtb, va, self.ttbr1, self.pte_hook)

    @staticmethod
    def _decode(va: U64Array, val: U64Array) -> TranslationResult:
        from .walk_batch import TranslationResult  # lazy: see translate_batch

        reason = ((val >> np.uint64(8)) & np.uint64(0xF)).astype(np.uint8)
        size = np.uint64(1) << (val >> np.uint64(56))
        pa = (val & np.uint64(FRAME_MASK)) | (va & (size - np.uint64(1)))
        flags = val.astype(np.uint8)  # the low byte
        if reason.any():
            bad = reason != 0
            pa[bad] = 0
            size[bad] = 0
        return TranslationResult(pa, size, flags, reason)

    # ---- reads ------------------------------------------------------------------------------------
    def target_size(self) -> int | None:
        """The physical memory behind the mappings: a virtual read far larger is refused."""
        return self.phys.target_size()

    def _read_single(self, addr: int, n: int) -> tuple[bytes, list[ReadFailure]]:
        off = addr & _PMASK
        if off + n <= _PAGE and n > 0:
            frame, _s, _f, reason = self._walk1(addr)
            if reason:
                if self.zero_fill:
                    return bytes(n), []
                return bytes(n), [ReadFailure(0, addr, n, "virtual address: " + REASONS.get(reason, str(reason)))]
            data, failures = self.phys._read_single(frame | off, n)
            if failures:
                if self.zero_fill:
                    return data, []
                failures = [ReadFailure(0, addr + (f.address - (frame | off)), f.length, f.reason)
                            for f in failures]
            return data, failures
        if 0 < n <= _PAGE:  # crosses one page boundary: two single reads beat a NumPy batch
            first = _PAGE - off
            d0, f0 = self._read_single(addr, first)
            d1, f1 = self._read_single(addr + first, n - first)
            return d0 + d1, f0 + f1
        if n >= _BIG_READ:
            done = self._read_large_bytes(addr, n)
            if done is not None:
                return done
        return super()._read_single(addr, n)

    def read_u64(self, addr: int) -> int:
        # the hot path of OS layers: one dict lookup, then the connector's own fast typed read
        if self._volatile:
            self.tlb.check()  # type: ignore[union-attr]  # may flush: the dict is cleared in place
        e = self._sget(addr >> 12)
        if e is not None and not e[3]:
            off = addr & _PMASK
            if off <= _PAGE - 8:
                try:
                    return self._phys_u64(e[0] | off)
                except PartialReadError:
                    pass  # report it with the virtual address below
        return super().read_u64(addr)

    def read_u32(self, addr: int) -> int:
        if self._volatile:
            self.tlb.check()  # type: ignore[union-attr]  # may flush: the dict is cleared in place
        e = self._sget(addr >> 12)
        if e is not None and not e[3]:
            off = addr & _PMASK
            if off <= _PAGE - 4:
                try:
                    return self._phys_u32(e[0] | off)
                except PartialReadError:
                    pass
        return super().read_u32(addr)

    def read_ptr(self, addr: int) -> int:
        return self.read_u64(addr) if self.pointer_size == 8 else self.read_u32(addr)

    def _split(self, addrs: U64Array, lengths: I64Array) -> tuple[U64Array, I64Array, npt.NDArray[np.intp]]:
        """Cut pieces (none running past 2**64) at 4 KiB boundaries: (sub addresses, sub lengths,
        owning piece index)."""
        nz = lengths > 0
        first = addrs >> np.uint64(12)
        lastb = addrs + (np.maximum(lengths, 1) - 1).astype(np.uint64)
        count = np.where(nz, ((lastb >> np.uint64(12)) - first).astype(np.int64) + 1, 0)
        total = int(count.sum())
        if total == addrs.shape[0] and bool(nz.all()):
            return addrs, lengths, np.arange(addrs.shape[0])
        owner = np.repeat(np.arange(addrs.shape[0]), count)
        within = np.arange(total, dtype=np.int64) - np.repeat(_excl_cumsum(count), count)
        page = first[owner] + within.astype(np.uint64)
        sub_va = np.where(within == 0, addrs[owner], page << np.uint64(12))
        page_end = (page + np.uint64(1)) << np.uint64(12)  # 0 for the very last page of the space
        piece_end = addrs[owner] + lengths[owner].astype(np.uint64)
        last = within == count[owner] - 1
        sub_end = np.where(last, piece_end, page_end)
        sub_len = (sub_end - sub_va).astype(np.int64)
        return sub_va, sub_len, owner

    @staticmethod
    def _wraps(addrs: U64Array, lengths: I64Array) -> npt.NDArray[np.bool_]:
        return (lengths > 0) & ((addrs + (np.maximum(lengths, 1) - 1).astype(np.uint64)) < addrs)  # type: ignore[no-any-return]

    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        if self._fast_gather_into(addrs, lengths, out):
            return []  # every piece translated by the TLB and inside the physical buffer
        if addrs.shape[0] == 1 and int(lengths[0]) >= _BIG_READ:
            done = self._read_large(int(addrs[0]), int(lengths[0]), out)
            if done is not None:
                return done
        if addrs.shape[0] <= SMALL_BATCH and int(lengths.max()) <= _PAGE and int(addrs.max()) + _PAGE <= 1 << 64:
            # per-piece scalar reads (TLB dict, one physical read each); pieces of at most one page
            # never send _read_single back here, and nothing runs past 2**64
            singly = read_pieces_singly(self._read_single, addrs, lengths, out)
            return merge_failures(singly) if singly else singly
        wraps = self._wraps(addrs, lengths)
        if wraps.any():
            return self._read_wrapping(addrs, lengths, out, wraps)
        sub_va, sub_len, owner = self._split(addrs, lengths)
        if sub_va.shape[0] == 0:
            return []
        tr = self.translate_batch(sub_va)
        ok = tr.reason == R_OK
        failures: list[ReadFailure] = []
        if bool(ok.all()):
            if self._fast_gather_into(addrs, lengths, out):
                return []  # the walk has filled the TLB: the compiled gather serves the batch
            self._read_ok(tr.pa, sub_va, sub_len, owner, ok, out, failures, scatter=False)
        else:
            self._read_ok(tr.pa, sub_va, sub_len, owner, ok, out, failures, scatter=True)
            failures += self._translation_failures(tr, sub_va, sub_len, owner, ok)
        if self.zero_fill:
            return []
        failures.sort(key=lambda f: (f.index, f.address))
        return failures

    def _large_runs(self, addr: int, n: int) -> list[list[int]] | None:
        """Physically contiguous runs ``[pa, length, va]`` of one big read, from one scalar translation
        per page; None (use the batched path) on a failed translation or too many small pages."""
        end = addr + n
        if end > 1 << 64:
            return None
        runs: list[list[int]] = []
        a = addr
        for _ in range(_BIG_READ_STEPS):
            if a >= end:
                break
            frame, size, _fl, reason = self._walk1(a)
            if reason:
                return None
            chunk = min(end, (a & ~(size - 1)) + size) - a
            pa = frame | (a & _PMASK)
            if runs and runs[-1][0] + runs[-1][1] == pa:
                runs[-1][1] += chunk
            else:
                runs.append([pa, chunk, a])
            a += chunk
        return runs if a >= end else None

    def _run_failures(self, runs: list[list[int]], pf: list[ReadFailure]) -> list[ReadFailure]:
        if not pf or self.zero_fill:
            return []
        return merge_failures([ReadFailure(0, runs[f.index][2] + (f.address - runs[f.index][0]), f.length, f.reason)
                                for f in pf])

    def _read_large(self, addr: int, n: int, out: U8Array) -> list[ReadFailure] | None:
        """One big read over large pages, fetched run by run straight into ``out``."""
        runs = self._large_runs(addr, n)
        if runs is None:
            return None
        pf = self.phys._read_batch(np.array([r[0] for r in runs], dtype=np.uint64),
                                   np.array([r[1] for r in runs], dtype=np.int64), out)
        return self._run_failures(runs, pf)

    def _large_parts(self, addr: int, n: int, views: bool) -> tuple[list[bytes | memoryview], list[ReadFailure]] | None:
        """One big read over large pages as one buffer per physical run (views of the connector's
        buffer with ``views``, else one copy each); None: use the batched path."""
        runs = self._large_runs(addr, n)
        if runs is None or len(runs) > _BIG_READ_STEPS // 4:
            return None
        parts: list[bytes | memoryview] = []
        pf: list[ReadFailure] = []
        for i, (pa, ln, _va) in enumerate(runs):
            if views:
                got, fails = self.phys._read_parts(pa, ln)
                parts += got
            else:
                try:  # the connector's public read: the compiled path copies a big run with two threads
                    data, fails = self.phys.read(pa, ln), []
                except PartialReadError as e:
                    data, fails = e.data, e.failures
                parts.append(data)
            pf += [ReadFailure(i, f.address, f.length, f.reason) for f in fails]
        return parts, self._run_failures(runs, pf)

    def _read_large_bytes(self, addr: int, n: int) -> tuple[bytes, list[ReadFailure]] | None:
        """The same for ``read()``, which returns bytes: each run is one physical single read (an mmap
        slice is one copy) and a lone run is returned as is -- filling an array and then calling
        ``tobytes()`` copied every byte twice (16 MiB: 3.2 GB/s against memcpy's 9)."""
        done = self._large_parts(addr, n, views=False)
        if done is None:
            return None
        parts, failures = done
        return (bytes(parts[0]) if len(parts) == 1 else b"".join(parts)), failures

    def _read_parts(self, addr: int, n: int) -> tuple[list[bytes | memoryview], list[ReadFailure]]:
        """A big read as views of the connector's buffer, one per physical run (see
        :meth:`MemoryView.read_parts`); small or scattered reads are copied once as by ``read``."""
        if n >= _BIG_READ:
            done = self._large_parts(addr, n, views=True)
            if done is not None:
                return done
        return super()._read_parts(addr, n)

    def _read_wrapping(self, addrs: U64Array, lengths: I64Array, out: U8Array,
                       wraps: npt.NDArray[np.bool_]) -> list[ReadFailure]:
        """Pieces running past 2**64 (only hostile or buggy callers): read what exists, piece by piece."""
        failures: list[ReadFailure] = []
        off = _excl_cumsum(lengths)
        for i in range(addrs.shape[0]):
            a, n, o = int(addrs[i]), int(lengths[i]), int(off[i])
            have = min(n, (1 << 64) - a)
            fs = self._read_batch(np.array([a], np.uint64), np.array([have], np.int64), out[o:o + have])
            failures += [ReadFailure(i, f.address, f.length, f.reason) for f in fs]
            if have < n:
                out[o + have:o + n] = 0
                if not self.zero_fill:
                    failures.append(ReadFailure(i, 0, n - have, "address wraps past 2**64"))
        return failures

    def _coalesce(self, pa: U64Array, ln: I64Array) -> tuple[U64Array, I64Array, npt.NDArray[np.intp]]:
        """Merge neighbours that are physically contiguous: (addresses, lengths, first sub index)."""
        if pa.shape[0] <= 1:
            return pa, ln, np.arange(pa.shape[0])
        brk = np.ones(pa.shape[0], dtype=bool)
        brk[1:] = (pa[:-1] + ln[:-1].astype(np.uint64)) != pa[1:]
        starts = np.flatnonzero(brk)
        if starts.shape[0] == pa.shape[0]:
            return pa, ln, starts
        mlen = np.add.reduceat(ln, starts)
        return pa[starts], mlen.astype(np.int64), starts

    def _read_ok(self, pa: U64Array, sub_va: U64Array, sub_len: I64Array,
                 owner: npt.NDArray[np.intp], ok: npt.NDArray[np.bool_], out: U8Array,
                 failures: list[ReadFailure], scatter: bool) -> None:
        if scatter:
            idx = np.flatnonzero(ok)
            if idx.size == 0:
                out[:] = 0
                return
            opa, oln = pa[idx], sub_len[idx]
            mpa, mln, mstart = self._coalesce(opa, oln)
            tmp = np.empty(int(oln.sum()), dtype=np.uint8)
            pf = self.phys._read_batch(mpa, mln, tmp)
            bytemask = np.repeat(ok, sub_len)
            out[~bytemask] = 0
            out[bytemask] = tmp
            if pf:
                failures += self._phys_failures(pf, mstart, idx, opa, oln, sub_va, owner)
        else:
            mpa, mln, mstart = self._coalesce(pa, sub_len)
            pf = self.phys._read_batch(mpa, mln, out)
            if pf:
                idx = np.arange(pa.shape[0])
                failures += self._phys_failures(pf, mstart, idx, pa, sub_len, sub_va, owner)

    @staticmethod
    def _phys_failures(pf: list[ReadFailure], mstart: npt.NDArray[np.intp], idx: npt.NDArray[np.intp],
                       opa: U64Array, oln: I64Array, sub_va: U64Array,
                       owner: npt.NDArray[np.intp]) -> list[ReadFailure]:
        """Map failures of the coalesced physical read back to pieces and virtual addresses."""
        out: list[ReadFailure] = []
        nsub = idx.shape[0]
        mend = np.concatenate((mstart[1:], [nsub]))
        for f in pf:
            a0, a1 = f.address, f.address + f.length
            for j in range(int(mstart[f.index]), int(mend[f.index])):
                p0 = int(opa[j])
                p1 = p0 + int(oln[j])
                lo, hi = max(a0, p0), min(a1, p1)
                if lo < hi:
                    k = int(idx[j])
                    out.append(ReadFailure(int(owner[k]), int(sub_va[k]) + lo - p0, hi - lo, f.reason))
        return merge_failures(out)

    @staticmethod
    def _translation_failures(tr: TranslationResult, sub_va: U64Array, sub_len: I64Array,
                              owner: npt.NDArray[np.intp], ok: npt.NDArray[np.bool_]) -> list[ReadFailure]:
        bad = np.flatnonzero(~ok)
        # runs of consecutive failed sub-pieces of one piece with one reason become one failure
        o, r = owner[bad], tr.reason[bad]
        brk = np.ones(bad.shape[0], dtype=bool)
        brk[1:] = (bad[1:] != bad[:-1] + 1) | (o[1:] != o[:-1]) | (r[1:] != r[:-1])
        starts = np.flatnonzero(brk)
        lens = np.add.reduceat(sub_len[bad], starts) if starts.size else np.zeros(0, np.int64)
        return [
            ReadFailure(int(o[s]), int(sub_va[bad[s]]), int(n), "virtual address: " + REASONS.get(int(r[s]), "?"))
            for s, n in zip(starts.tolist(), lens.tolist(), strict=True)
        ]

    # ---- writes -------------------------------------------------------------------------------------
    def _write_batch(self, addrs: U64Array, lengths: I64Array, data: U8Array) -> list[ReadFailure]:
        if not self.writable:
            return super()._write_batch(addrs, lengths, data)
        wraps = self._wraps(addrs, lengths)
        if wraps.any():
            raise ValueError("a write runs past the end of the 64-bit address space")
        sub_va, sub_len, owner = self._split(addrs, lengths)
        tr = self.translate_batch(sub_va)
        ok = tr.reason == R_OK
        failures: list[ReadFailure] = []
        idx = np.flatnonzero(ok)
        if idx.size:
            bytemask = np.repeat(ok, sub_len)
            payload = data[: bytemask.shape[0]][bytemask]
            mpa, mln, mstart = self._coalesce(tr.pa[idx], sub_len[idx])
            pf = self.phys._write_batch(mpa, mln, payload)
            if pf:
                failures += self._phys_failures(pf, mstart, idx, tr.pa[idx], sub_len[idx], sub_va, owner)
        if not ok.all():
            failures += self._translation_failures(tr, sub_va, sub_len, owner, ok)
        return failures

    # ---- page maps ----------------------------------------------------------------------------------
    def leaves(self, start: int = 0, end: int | None = None) -> Leaves:
        """Every leaf mapping (va, pa, size, flags) in ``[start, end)``, sorted by va."""
        from .pagemap import walk_leaves  # lazy: page maps (NumPy) only for commands that list them

        if start == 0 and end is None:
            if self._leaves is None or (self.tlb is not None and self.tlb.volatile):
                self._leaves = walk_leaves(self.phys, self.arch, self.dtb, self.ttbr1, hook=self.pte_hook)
            return self._leaves
        return walk_leaves(self.phys, self.arch, self.dtb, self.ttbr1, start, end, hook=self.pte_hook)

    def page_map(self, start: int = 0, end: int | None = None, gap: int = 0) -> list[MemoryRegion]:
        """Mapped ranges, merged when neighbours (at most ``gap`` bytes apart) share flags and page size.

        ``protection`` is 'r', 'w' or '-', 'x' or '-'; ``kind`` is 'user' or 'kernel' plus the page
        size (e.g. 'kernel 2M'), with ' hook' when an OS layer's pte_hook resolved the pages."""
        from .pagemap import merge_ranges, protection, size_str  # lazy: see leaves

        lv = self.leaves(start, end)
        labels: dict[tuple[int, int], tuple[str, str]] = {}
        regions = []
        clip = start != 0 or end is not None
        for s, e, fl, size in merge_ranges(lv, gap):
            lab = labels.get((fl, size))
            if lab is None:
                kind = ("user " if fl & F_USER else "kernel ") + size_str(size) + (" hook" if fl & F_HOOK else "")
                lab = labels[(fl, size)] = (protection(fl), kind)
            if e == 0:  # the last page of the 64-bit space
                e = 1 << 64
            if clip:
                s, e = max(s, start), e if end is None else min(e, end)
            regions.append(MemoryRegion(s, e, lab[0], lab[1]))
        return regions

    def reverse(self, pa: int) -> list[int]:
        """Every virtual address that maps to physical address ``pa`` (sorted)."""
        lv = self.leaves()
        p = np.uint64(pa)
        hit = (lv.pa <= p) & (p - lv.pa < lv.size)
        return sorted(int(v) + (pa - int(b)) for v, b in zip(lv.va[hit].tolist(), lv.pa[hit].tolist(), strict=True))


def _no_entry(_vpn: int) -> None:
    return None
