"""Property: for random memory maps and pieces, a batched read == per-piece single reads == a plain
bytes model of the same memory (holes read as failures and zeros), through raw, dummy, the base
class's set_mem_map path and the page cache."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pymemflow.connectors.dummy import DummyMemory
from pymemflow.connectors.raw import RawFileMemory
from pymemflow.errors import PartialReadError
from pymemflow.mem.memmap import MemoryMap
from pymemflow.mem.middleware import PageCache
from pymemflow.mem.pagetype import PageType, page_type_hint
from pymemflow.mem.phys import PhysicalMemory

STORE = 0x3000  # bytes in the backing store (ranges may point past it: those bytes fail)
SPACE = 0x6000  # physical addresses pieces are drawn from


@st.composite
def layouts(draw):
    """Non-overlapping ranges (built from sorted cut points) and a list of pieces."""
    cuts = sorted(set(draw(st.lists(st.integers(0, SPACE), min_size=2, max_size=10))))
    ranges = []
    for a, b in zip(cuts[::2], cuts[1::2], strict=False):
        if b > a:
            ranges.append((a, b - a, draw(st.integers(0, STORE + 0x100))))
    pieces = draw(st.lists(st.tuples(st.integers(0, SPACE + 0x100), st.integers(0, 0x1800)),
                           min_size=1, max_size=40))
    small = draw(st.booleans())  # many small pieces exercise the gather path
    if small:
        pieces = [(a, n % 16) for a, n in pieces] * 3
    return ranges, pieces


def model(content: bytes, ranges, addr: int, n: int) -> tuple[bytes, set[int]]:
    out = bytearray(n)
    bad: set[int] = set()
    for k in range(n):
        a = addr + k
        for base, length, real in ranges:
            if base <= a < base + length and real + (a - base) < len(content):
                out[k] = content[real + a - base]
                break
        else:
            bad.add(a)
    return bytes(out), bad


def check(mem: PhysicalMemory, content: bytes, ranges, pieces) -> None:
    res = mem.read_batch([a for a, _ in pieces], [n for _, n in pieces])
    failed: dict[int, set[int]] = {}
    for f in res.failures:
        failed.setdefault(f.index, set()).update(range(f.address, f.address + f.length))
    for i, (a, n) in enumerate(pieces):
        want, bad = model(content, ranges, a, n)
        assert res.piece(i) == want, (i, a, n)
        assert failed.get(i, set()) == bad, (i, a, n)
        try:
            single = mem.read(a, n)
            assert not bad and single == want
        except PartialReadError as e:
            assert bad and e.data == want
            assert set().union(*(range(f.address, f.address + f.length) for f in e.failures)) == bad


CONTENT = bytes(np.random.default_rng(7).integers(0, 256, STORE, dtype=np.uint8))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layouts())
def test_batched_equals_single_equals_model(tmp_path, layout):
    ranges, pieces = layout
    mmap_ = MemoryMap(ranges)
    path = tmp_path / "store.raw"
    path.write_bytes(CONTENT)
    with RawFileMemory(path, mem_map=mmap_) as mem:
        check(mem, CONTENT, ranges, pieces)
    d = DummyMemory(STORE, mem_map=mmap_)
    d.set_mem_map(None)
    d.write(0, CONTENT)
    d.set_mem_map(mmap_)
    check(d, CONTENT, ranges, pieces)
    cache = PageCache(d, size=0x2000, page_size=0x400, page_types=PageType.all())
    check(cache, CONTENT, ranges, pieces)
    with page_type_hint(PageType.PAGE_TABLE):
        check(cache, CONTENT, ranges, pieces)  # second pass: served from the cache where it can


class Plain(PhysicalMemory):
    """Identity over a bytes object, reading one piece at a time: the base set_mem_map path."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data = data
        from pymemflow.mem.phys import PhysicalMetadata

        self.metadata = PhysicalMetadata(len(data), len(data))

    def _read_batch(self, addrs, lengths, out):
        from pymemflow.errors import ReadFailure

        fails, o = [], 0
        for i, (a, n) in enumerate(zip(addrs.tolist(), lengths.tolist(), strict=True)):
            got = self.data[a : a + n]
            out[o : o + n] = 0
            out[o : o + len(got)] = np.frombuffer(got, np.uint8)
            if len(got) < n:
                fails.append(ReadFailure(i, a + len(got), n - len(got), "end"))
            o += n
        return fails


@settings(max_examples=40, deadline=None)
@given(layouts())
def test_base_class_mem_map_path(layout):
    ranges, pieces = layout
    mem = Plain(CONTENT)
    mem.set_mem_map(MemoryMap(ranges))
    check(mem, CONTENT, ranges, pieces)
