"""Translation cache: per (page-table root, 4 KiB virtual page), with negative entries.

Two stores share one policy: a NumPy open-addressing hash table for batched lookups (a handful of
vectorised gathers per batch, tens of millions of lookups per second) and a plain dict for the
single-address hot path (a dict lookup is what a Python caller can afford per read). Live targets
change their page tables, so a policy can expire everything after some seconds or some number of
translations; ``flush()`` drops everything at once (as ``mov cr3`` would).
"""

from __future__ import annotations

import time
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..mem import fast
from ..mem.view import U64Array

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
else:
    from ..mem.lazynp import np

_HASH = 0x9E3779B97F4A7C15
_PROBES = 8
FRAME_MASK = 0x000F_FFFF_FFFF_F000


@dataclass(frozen=True)
class TlbPolicy:
    """How a :class:`VirtualMemory` caches translations.

    ``capacity``: slots of the batched table (rounded up to a power of two; 16 bytes each).
    ``max_age``: seconds after which all entries are dropped (live targets), None = never.
    ``max_uses``: translations served after which all entries are dropped, None = never.
    ``negative``: also cache failed translations (unmapped pages)."""

    capacity: int = 1 << 20
    max_age: float | None = None
    max_uses: int | None = None
    negative: bool = True
    enabled: bool = True


NO_TLB = TlbPolicy(enabled=False)


def pack(pa: U64Array, size: U64Array, flags: npt.NDArray[np.uint8], reason: npt.NDArray[np.uint8]) -> U64Array:
    """Pack a translation of a 4 KiB piece into one u64: frame | flags | reason << 8 | log2(size) << 56."""
    log2 = np.zeros(size.shape[0], dtype=np.uint64)
    nz = size != 0
    if nz.any():
        log2[nz] = np.log2(size[nz].astype(np.float64)).astype(np.uint64)
    return (  # type: ignore[no-any-return]
        (pa & np.uint64(FRAME_MASK))
        | flags.astype(np.uint64)
        | (reason.astype(np.uint64) << np.uint64(8))
        | (log2 << np.uint64(56))
    )


def _distinct(key: U64Array, val: U64Array) -> tuple[U64Array, U64Array]:
    """Each key once, with the value of its first occurrence (compiled: a hash set, no sort)."""
    if fast.speedups is not None:
        idx = np.empty(key.shape[0], dtype=np.intp)
        m = fast.speedups.first_of(np.ascontiguousarray(key, dtype=np.uint64), idx)
        return key[idx[:m]], val[idx[:m]]
    k, first = np.unique(key, return_index=True)
    return k, val[first]


class Tlb:
    """The cache; see the module docstring. Keys are (root, vpn) with vpn = va >> 12."""

    def __init__(self, policy: TlbPolicy | None = None) -> None:
        self.policy = policy or TlbPolicy()
        cap = 1
        while cap < max(self.policy.capacity, 64):
            cap <<= 1
        self._bits = cap.bit_length() - 1
        self._mask = cap - 1
        self._tables: dict[object, tuple[U64Array, list[int]]] = {}
        self.single: dict[object, dict[int, tuple[int, int, int, int]]] = {}
        """Per root: vpn -> (pa of the 4 KiB frame, page size, flags, reason); read by VirtualMemory's
        single-read fast path directly."""
        self.generation = array("Q", [0])
        """Bumped whenever an entry is dropped or changed (flush, start-over, eviction): the compiled
        reader's page cache (filled from these entries) is valid while it has not moved."""
        self._born = time.monotonic()
        self._uses = 0
        self.hits = 0
        self.misses = 0

    # ---- validity ---------------------------------------------------------------------------------
    def bump(self) -> None:
        """Say that cached entries were dropped or changed (see ``generation``)."""
        self.generation[0] += 1

    def flush(self) -> None:
        self.bump()
        self._tables.clear()
        for d in self.single.values():  # in place: VirtualMemory objects hold these dicts
            d.clear()
        self._born = time.monotonic()
        self._uses = 0

    def check(self, uses: int = 1) -> None:
        """Expire everything when the policy says the cache is stale."""
        p = self.policy
        if p.max_uses is not None:
            self._uses += uses
            if self._uses > p.max_uses:
                self.flush()
        if p.max_age is not None and time.monotonic() - self._born > p.max_age:
            self.flush()

    @property
    def volatile(self) -> bool:
        return self.policy.max_uses is not None or self.policy.max_age is not None

    # ---- batched store ------------------------------------------------------------------------------
    # Per root: a (capacity, 2) u64 table of (vpn + 1, packed value) rows -- key and value side by
    # side, so a lookup costs one random memory access per address -- plus the number of entries.
    # Tables start small (cache-friendly) and double while under ``policy.capacity``.
    def _slot(self, key: U64Array, bits: int) -> npt.NDArray[np.int64]:
        # intp indices: NumPy gathers with them several times faster than with uint64 indices
        return ((key * np.uint64(_HASH)) >> np.uint64(64 - bits)).view(np.int64)

    @staticmethod
    def _rows(table: U64Array, slot: npt.NDArray[np.int64]) -> U64Array:
        """Gather whole (key, value) rows: a 16-byte record view is ~30x faster than 2-D fancy indexing."""
        return np.take(table.view("V16").reshape(-1), slot).view(np.uint64).reshape(-1, 2)  # type: ignore[no-any-return]

    def tables(self, root: object, shifts: tuple[int, ...]) -> list[tuple[int, object]]:
        """``(shift, table)`` of the batched store for ``root`` per page-size shift that has one (for the
        compiled gather, which probes them exactly as :meth:`lookup` does)."""
        t = self._tables
        return [(s, t[(root, s)][0]) for s in shifts if (root, s) in t]

    def has(self, root: object) -> bool:
        return root in self._tables

    def lookup(self, root: object, vpn: U64Array) -> tuple[npt.NDArray[np.bool_], U64Array]:
        """Hit mask and packed values (valid where hit) for each vpn."""
        n = vpn.shape[0]
        t = self._tables.get(root)
        if t is None or n == 0:
            self.misses += n
            return np.zeros(n, dtype=bool), np.zeros(n, dtype=np.uint64)
        table, count = t
        bits = table.shape[0].bit_length() - 1
        key = vpn + np.uint64(1)
        slot = self._slot(key, bits)
        rows = self._rows(table, slot)
        val = rows[:, 1].copy()
        hit = rows[:, 0] == key
        if not hit.all():
            mask = table.shape[0] - 1
            pending = np.flatnonzero(~hit & (rows[:, 0] != 0))
            for p in range(1, _PROBES):
                if pending.size == 0:
                    break
                r = self._rows(table, (slot[pending] + p) & mask)
                m = r[:, 0] == key[pending]
                hit[pending[m]] = True
                val[pending[m]] = r[m, 1]
                pending = pending[~m & (r[:, 0] != 0)]
        nh = int(np.count_nonzero(hit))
        self.hits += nh
        self.misses += n - nh
        return hit, val

    def insert(self, root: object, vpn: U64Array, packed: U64Array) -> None:
        if vpn.shape[0] == 0:
            return
        key, val = _distinct(vpn + np.uint64(1), packed)
        t = self._tables.get(root)
        limit = self._mask + 1
        need = (0 if t is None else t[1][0]) + key.shape[0]
        left: list[tuple[U64Array, U64Array]] = []
        if t is None or need > t[0].shape[0] // 2:
            cap = min(1 << 12, limit) if t is None else t[0].shape[0]
            while cap < limit and need > cap // 2:
                cap <<= 1
            if t is not None and need > cap // 2:  # at the capacity limit: start over
                self.bump()
                t = None
                need = key.shape[0]
            if key.shape[0] > cap // 2:  # the lowest pages (np.unique's sorted order; _distinct's may not be)
                keep = np.argsort(key, kind="stable")[: cap // 2]
                key, val = key[keep], val[keep]
            t, left = self._rebuild(root, t, cap)
        left += self._place(t, key, val)
        # keys that found no free slot within _PROBES: grow while allowed, so that every translation the
        # walker made stays in the table (the compiled gather serves a batch only when all of it is here)
        while left and t[0].shape[0] < limit:
            keys, vals = np.concatenate([k for k, _ in left]), np.concatenate([v for _, v in left])
            t, left = self._rebuild(root, t, t[0].shape[0] * 2)
            left += self._place(t, keys, vals)
        if left:
            self.bump()  # dropped after all (a table at its capacity limit): entries were lost

    def _rebuild(self, root: object, old: tuple[U64Array, list[int]] | None,
                 cap: int) -> tuple[tuple[U64Array, list[int]], list[tuple[U64Array, U64Array]]]:
        """A new table of ``cap`` rows for ``root`` holding ``old``'s entries; what did not fit is returned."""
        t = (np.zeros((cap, 2), dtype=np.uint64), [0])
        self._tables[root] = t
        if old is None:
            return t, []
        live = old[0][:, 0] != 0
        return t, self._place(t, old[0][live, 0], old[0][live, 1])

    def _place(self, t: tuple[U64Array, list[int]], key: U64Array,
               val: U64Array) -> list[tuple[U64Array, U64Array]]:
        """Put the entries in; returns those that found no free slot within ``_PROBES`` (none: [])."""
        table, count = t
        if fast.speedups is not None:  # one sequential pass in C: the same rows a look-up finds
            left = np.zeros(key.shape[0], dtype=np.uint8)
            added, changed = fast.speedups.tlb_place(table, np.ascontiguousarray(key, dtype=np.uint64),
                                                     np.ascontiguousarray(val, dtype=np.uint64), left)
            count[0] += added
            if changed:
                self.bump()  # an entry changed
            rest = np.flatnonzero(left)
            return [(key[rest], val[rest])] if rest.size else []
        bits = table.shape[0].bit_length() - 1
        slot = self._slot(key, bits)
        mask = table.shape[0] - 1
        pending = np.arange(key.shape[0])
        for p in range(_PROBES):
            if pending.size == 0:
                break
            s = (slot[pending] + p) & mask
            k = table[s, 0]
            same = k == key[pending]
            if same.any():
                if (table[s[same], 1] != val[pending[same]]).any():
                    self.bump()  # an entry changed
                table[s[same], 1] = val[pending[same]]
            fresh = k == 0
            cand = pending[fresh]
            if cand.size:
                us, fi = np.unique(s[fresh], return_index=True)
                win = cand[fi]
                table[us, 0] = key[win]
                table[us, 1] = val[win]
                count[0] += int(us.shape[0])
            placed = table[s, 0] == key[pending]
            pending = pending[~placed]
        return [(key[pending], val[pending])] if pending.size else []
