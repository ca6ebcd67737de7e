"""The scan loop: a set of address ranges of one memory view, read in big batched chunks, searched
with every matcher, hits streamed as found.

Chunks reach ``overlap`` bytes into the next one and only matches *starting* in a chunk's own part
are kept, so a match across a chunk boundary is reported exactly once. Physical memory goes through
:func:`pymemflow.mem.scan.scan_chunks` (the connector's real ranges, searched in place in its mmap);
virtual memory is cut into pieces that one ``read_batch`` call fetches together, so a process made
of thousands of small mappings costs a few batched reads, not thousands. Bytes that failed to read
are zero in the buffer and no hit that touches them is reported.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import PymemflowError
from ..mem.scan import PAGE, CancelToken, scan_chunks
from ..mem.view import MemoryView
from ..os.base import ModuleInfo
from .matchers import FoldedMatcher, Matcher

CHUNK = 16 << 20
"""Bytes searched per batch (memory stays within about twice this)."""
CONTEXT = 16
"""Bytes of context shown before and after a match."""
MAX_MATCH_BYTES = 64
"""Matched bytes carried in a hit (a long YARA string is cut here)."""


@dataclass
class Target:
    """What to scan: ``ranges`` of ``memory`` (virtual, or physical for ``kind == 'phys'``)."""

    kind: str
    """``process``, ``kernel`` or ``phys``."""
    label: str
    memory: MemoryView
    ranges: list[tuple[int, int]]
    pid: int | None = None
    process: str | None = None
    modules: list[ModuleInfo] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.modules = sorted(self.modules, key=lambda m: m.base)
        self._bases = [m.base for m in self.modules]

    @property
    def size(self) -> int:
        return sum(e - s for s, e in self.ranges)

    def module_at(self, va: int) -> ModuleInfo | None:
        """The module holding ``va``: the one starting at or below it, or one of the few before that
        (modules can nest or overlap on a smeared image)."""
        i = bisect.bisect_right(self._bases, va) - 1
        for j in range(i, max(i - 8, -1), -1):
            m = self.modules[j]
            if m.base <= va < m.base + m.size:
                return m
        return None

    def translate(self, va: int) -> int | None:
        if self.kind == "phys":
            return va
        tr = getattr(self.memory, "translate", None)
        if not callable(tr):
            return None
        try:
            return int(tr(va))
        except (PymemflowError, ValueError, NotImplementedError):
            return None


@dataclass
class Hit:
    """One match: where (target, module + offset, virtual and physical address), what and which bytes."""

    target: str
    pid: int | None
    process: str | None
    rule: str
    address: int
    """Virtual address (physical for a ``phys`` scan)."""
    phys: int | None
    """Physical address (None: the address did not translate, or the view has no page tables)."""
    length: int
    module: str | None
    module_offset: int | None
    data: str
    """The matched bytes, hex (at most 64)."""
    context: str
    """Hex of the bytes around the match: ``context_offset`` bytes before it, then the match, then more."""
    context_offset: int

    @property
    def where(self) -> str:
        """``kernel32.dll+0x1a2`` or '' outside modules."""
        return f"{self.module}+{self.module_offset:#x}" if self.module is not None else ""

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["where"] = self.where
        return d


Reporter = Callable[[str, int, int], None]


class Scanner:
    """Runs matchers over targets; ``scan(targets)`` yields :class:`Hit` as they are found."""

    def __init__(self, matchers: Iterable[Matcher], *, chunk: int = CHUNK, overlap: int | None = None,
                 context: int = CONTEXT, max_hits: int | None = None, progress: Reporter | None = None,
                 cancel: CancelToken | None = None) -> None:
        self.matchers = list(matchers)
        if not self.matchers:
            raise ValueError("scan: nothing to look for (give a pattern, a string or YARA rules)")
        if chunk <= 0 or chunk % PAGE:
            raise ValueError(f"scan: chunk {chunk:#x} must be a positive multiple of {PAGE:#x}")
        self.chunk = chunk
        need = max(m.max_length for m in self.matchers) - 1
        self.overlap = need if overlap is None else overlap
        if self.overlap < need:
            raise ValueError(f"scan: overlap {self.overlap} is shorter than the longest match - 1 ({need})")
        self.context = max(0, context)
        self.max_hits = max_hits
        self.progress = progress
        self.cancel = cancel
        self.hits = 0
        self.bytes_scanned = 0

    def scan(self, targets: Iterable[Target]) -> Iterator[Hit]:
        try:
            yield from self._scan(targets)
        finally:
            FoldedMatcher.release()

    def _scan(self, targets: Iterable[Target]) -> Iterator[Hit]:
        for t in targets:
            if self.max_hits is not None and self.hits >= self.max_hits:
                return
            it: Generator[Hit, None, None] = self._phys(t) if t.kind == "phys" else self._virtual(t)
            for hit in it:
                yield hit
                self.hits += 1
                if self.max_hits is not None and self.hits >= self.max_hits:
                    it.close()
                    self._report(t, 1, 1)
                    return

    # ---- one target --------------------------------------------------------------------------------
    def _report(self, t: Target, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(f"scan {t.label}", done, total)

    def _search(self, t: Target, buf: Any, lo: int, own: int, hi: int, base: int,
                bad: list[tuple[int, int]]) -> Iterator[Hit]:
        """Hits in ``buf[lo:hi]`` starting before ``lo + own``; ``buf[lo]`` is at address ``base``;
        ``bad``: sorted failed ``(start, end)`` buffer offsets."""
        gens = [m.find(buf, lo, lo + own, hi) for m in self.matchers]
        found = gens[0] if len(gens) == 1 else heapq.merge(*gens)  # lazy: a match-everything pattern stays bounded
        starts = [s for s, _ in bad]
        for at, n, name in found:
            if bad:
                i = bisect.bisect_right(starts, at + max(n, 1) - 1) - 1
                if i >= 0 and bad[i][1] > at:
                    continue  # the match touches bytes that did not read (zeros)
            va = base + (at - lo)
            c0 = max(lo, at - self.context)
            c1 = min(hi, at + n + self.context)
            mod = t.module_at(va) if t.modules else None
            yield Hit(t.kind, t.pid, t.process, name, va, t.translate(va), n,
                      mod.name if mod else None, va - mod.base if mod else None,
                      bytes(buf[at:at + min(n, MAX_MATCH_BYTES)]).hex(), bytes(buf[c0:c1]).hex(), at - c0)

    def _phys(self, t: Target) -> Generator[Hit, None, None]:
        total = t.size
        done = 0
        for c in scan_chunks(t.memory, chunk=self.chunk, overlap=self.overlap, cancel=self.cancel):
            own = min(self.chunk, c.length)
            yield from self._search(t, c.buffer, c.offset, own, c.offset + c.length, c.base, [])
            done += own
            self.bytes_scanned += own
            self._report(t, done, total)

    def _virtual(self, t: Target) -> Generator[Hit, None, None]:
        total = t.size
        done = 0
        self._report(t, 0, total)
        for batch in self._batches(t.ranges):
            if self.cancel is not None:
                self.cancel.check()
            addrs = [a for a, _, _ in batch]
            lens = [m for _, _, m in batch]
            res = t.memory.read_batch(addrs, lens)
            buf = res.data.tobytes()  # bytes: find()/re need a plain buffer; one copy per batch
            bad: dict[int, list[tuple[int, int]]] = {}
            for f in res.failures:
                o = int(res.offsets[f.index]) + (f.address - addrs[f.index])
                bad.setdefault(f.index, []).append((o, o + f.length))
            for i, (addr, own, m) in enumerate(batch):
                lo = int(res.offsets[i])
                yield from self._search(t, buf, lo, own, lo + m, addr, sorted(bad.get(i, [])))
                done += own
            self.bytes_scanned += sum(own for _, own, _ in batch)
            self._report(t, done, total)

    def _batches(self, ranges: list[tuple[int, int]]) -> Iterator[list[tuple[int, int, int]]]:
        """``(address, own, length)`` pieces, grouped so one batch reads about ``chunk`` bytes."""
        batch: list[tuple[int, int, int]] = []
        size = 0
        for s, e in ranges:
            pos = s
            while pos < e:
                own = min(self.chunk, e - pos)
                m = min(own + self.overlap, e - pos)
                batch.append((pos, own, m))
                size += m
                pos += own
                if size >= self.chunk:
                    yield batch
                    batch, size = [], 0
        if batch:
            yield batch


def merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, touching/overlapping ranges joined (a match may run from one mapping into the next)."""
    out: list[tuple[int, int]] = []
    for s, e in sorted(r for r in ranges if r[1] > r[0]):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def intersect(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of merged ranges ``a`` that are also in merged ranges ``b``."""
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        s, e = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if s < e:
            out.append((s, e))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out
