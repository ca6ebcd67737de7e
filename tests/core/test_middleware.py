"""Page cache (hit/miss/expiry by time and count/write invalidation/page types), delay, metrics,
and the MIDDLEWARE_ARGS/wrap entry point used by connector chains."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from pymemflow.connectors.dummy import DummyMemory
from pymemflow.errors import PartialReadError
from pymemflow.mem.memmap import MemoryMap
from pymemflow.mem.middleware import (
    MIDDLEWARE_ARGS,
    CountValidity,
    DelayMemory,
    MetricsMemory,
    PageCache,
    TimeValidity,
    wrap,
)
from pymemflow.mem.pagetype import PageType, current_page_type, page_type_hint


class CountingMemory(DummyMemory):
    """A dummy that counts the pieces that reach it, to see what the cache forwards."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.pieces = 0

    def _read_batch(self, addrs, lengths, out):
        self.pieces += int(lengths.shape[0])
        return super()._read_batch(addrs, lengths, out)

    # keep every read on the batched path so the counter sees it
    def _read_single(self, addr, n):
        return DummyMemory.__mro__[2]._read_single(self, addr, n)  # PhysicalMemory -> MemoryView


def make(validity=None, types=PageType.PAGE_TABLE, size=0x4000):
    validity = validity or TimeValidity(10.0)
    inner = CountingMemory(1 << 20)
    inner.write(0, bytes(range(256)) * 16 * 16)
    return inner, PageCache(inner, size=size, page_size=0x1000, validity=validity, page_types=types)


def test_hint_context_is_scoped():
    assert current_page_type() == PageType.UNKNOWN
    with page_type_hint(PageType.PAGE_TABLE):
        assert current_page_type() == PageType.PAGE_TABLE
    assert current_page_type() == PageType.UNKNOWN


def test_hit_and_miss_only_for_cached_page_types():
    inner, cache = make()
    assert cache.read(0x10, 8) == bytes(range(0x10, 0x18))
    assert cache.bypassed == 1 and cache.hits == 0 and cache.misses == 0  # unhinted: not cached
    with page_type_hint(PageType.PAGE_TABLE):
        vals, ok = cache.read_u64_many([0x10, 0x18, 0x1010])  # two pages, each read once
        assert ok.all() and cache.misses == 3 and cache.fills == 2
        before = inner.pieces
        vals2, _ = cache.read_u64_many([0x10, 0x18, 0x1010, 0x1FF8])
        assert (vals2[:3] == vals).all() and cache.hits == 4 and inner.pieces == before
        assert cache.read(0x1FF8, 8) == bytes(range(0xF8, 0x100))


def test_conflicting_pages_in_one_batch_served_correctly():
    inner, cache = make(size=0x1000)  # one slot: every page collides
    for page in range(3):
        inner.write(page * 0x1000, bytes([page + 1]) * 4)
    with page_type_hint(PageType.PAGE_TABLE):
        res = cache.read_batch([0x0, 0x1000, 0x2000, 0x0], 4)
        assert not res.failures
        assert [res.piece(i) for i in range(4)] == [b"\1" * 4, b"\2" * 4, b"\3" * 4, b"\1" * 4]
        again = cache.read_batch([0x0, 0x1000, 0x2000], 4)
        assert [again.piece(i) for i in range(3)] == [b"\1" * 4, b"\2" * 4, b"\3" * 4]


def test_expiry_by_time():
    inner, cache = make(validity=TimeValidity(0.05))
    with page_type_hint(PageType.PAGE_TABLE):
        assert cache.read(0x20, 2) == b"\x20\x21"
        inner.write(0x20, b"NEW!")  # behind the cache's back (a live target changing)
        assert cache.read(0x20, 2) == b"\x20\x21" and cache.hits == 1  # still valid
        time.sleep(0.08)
        assert cache.read(0x20, 4) == b"NEW!" and cache.misses == 2


def test_expiry_by_count():
    inner, cache = make(validity=CountValidity(3))
    with page_type_hint(PageType.PAGE_TABLE):
        cache.read(0x40, 1)  # read 1: fill
        inner.write(0x40, b"\x99")
        assert cache.read(0x40, 1) == b"\x40"  # read 2: hit
        assert cache.read(0x40, 1) == b"\x40"  # read 3: hit
        assert cache.read(0x40, 1) == b"\x99"  # read 4: the entry is 3 reads old -> refilled
        assert cache.hits == 2 and cache.misses == 2


def test_write_through_invalidates():
    inner, cache = make()
    with page_type_hint(PageType.PAGE_TABLE):
        cache.read(0x1000, 8)
        cache.write(0x1FFE, b"abcd")  # touches pages 1 and 2
        assert inner.read(0x1FFE, 4) == b"abcd"  # went through
        assert cache.read(0x1FFC, 4) == bytes([0xFC, 0xFD]) + b"ab"
        assert cache.read(0x2000, 2) == b"cd"
        assert cache.misses == 3


def test_failed_pages_are_not_cached_and_report_exactly():
    inner = DummyMemory(0x3000, mem_map=MemoryMap([(0, 0x1800, 0)]))
    cache = PageCache(inner, size=0x4000, page_types=PageType.all())
    res = cache.read_batch([0x10, 0x17F8, 0x1800, 0x1FF0], [4, 8, 4, 0x20])
    assert [(f.index, f.address, f.length) for f in res.failures] == [
        (2, 0x1800, 4), (3, 0x1FF0, 0x20)]
    assert cache.fills == 1  # page 0 only; page 1 is half a hole


def test_pieces_crossing_pages_pass_through():
    inner, cache = make(types=PageType.all())
    assert cache.read(0xFF8, 0x10) == bytes(range(0xF8, 0x100)) + bytes(range(0, 8))
    assert cache.fills == 0


def test_delay_adds_latency_per_call():
    inner = DummyMemory(1 << 16)
    slow = DelayMemory(inner, 0.02)
    t0 = time.perf_counter()
    slow.read_batch(np.arange(100, dtype=np.uint64) * 8, 8)  # one batch: one delay
    assert 0.02 <= time.perf_counter() - t0 < 0.5


def test_metrics_counts_and_logs(caplog):
    inner = DummyMemory(1 << 16, mem_map=MemoryMap([(0, 0x8000, 0)]))
    m = MetricsMemory(inner, log_interval=0.0)
    with caplog.at_level(logging.INFO, logger="pymemflow.metrics"):
        m.read_batch([0, 8, 0x9000], 8)
        m.read(0x10, 16)
    s = m.stats()
    assert s["read_calls"] == 2 and s["read_pieces"] == 4 and s["read_bytes"] == 40
    assert s["failed_pieces"] == 1 and s["reads_per_s"] > 0 and s["avg_latency_s"] > 0
    assert any("reads in" in r.getMessage() for r in caplog.records)


def test_middleware_args_parse():
    args = {a.name: a for a in MIDDLEWARE_ARGS}
    assert set(args) == {"cache", "cache_size", "cache_time", "cache_page_size", "delay", "metrics"}
    assert args["cache"].parse("true") == PageType.PAGE_TABLE | PageType.READ_ONLY
    assert args["cache"].parse("page_table+unknown") == PageType.PAGE_TABLE | PageType.UNKNOWN
    assert args["cache"].parse("off") == PageType(0)
    assert args["cache_size"].parse("4m") == 4 << 20
    assert args["cache_time"].parse("250ms") == TimeValidity(0.25)
    assert args["cache_time"].parse("500") == TimeValidity(0.5)  # bare = ms, like memflow
    assert args["cache_time"].parse("10reads") == CountValidity(10)
    assert args["cache_page_size"].parse("0x1000") == 4096
    assert args["delay"].parse("200") == pytest.approx(200e-6)  # bare = us, like memflow
    assert args["delay"].parse("2ms") == pytest.approx(0.002)
    assert args["metrics"].parse("5s") == 5.0 and args["metrics"].parse("no") is None
    for key, bad in [("cache", "pages"), ("cache_time", "soon"), ("cache_page_size", "3000"),
                     ("delay", "slow"), ("metrics", "maybe"), ("cache_size", "big")]:
        with pytest.raises(ValueError):
            args[key].parse(bad)


def test_wrap_order_and_forwarding():
    inner = DummyMemory(1 << 20)
    inner.hints["dtb"] = 0x1000
    w = wrap(inner, {"cache": PageType.all(), "cache_size": 1 << 16, "cache_time": CountValidity(5),
                     "delay": 1e-5, "metrics": 1.0})
    assert isinstance(w, MetricsMemory) and isinstance(w.inner, PageCache)
    assert isinstance(w.inner.inner, DelayMemory) and w.inner.inner.inner is inner
    assert w.inner.slots == 16 and w.inner.validity == CountValidity(5)
    assert w.hints["dtb"] == 0x1000 and w.metadata is inner.metadata and w.writable
    assert [m["name"] for m in w.info()["middleware"]] == ["metrics", "cache", "delay"]
    w.write(0x10, b"hi")
    assert w.read(0x10, 2) == b"hi"
    assert wrap(inner, {}) is inner
    assert wrap(inner, {"cache": None, "delay": None, "metrics": None}) is inner
    assert isinstance(wrap(inner, {"cache_size": 1 << 16}), PageCache)  # tuning implies cache
    with pytest.raises(ValueError, match="unknown"):
        wrap(inner, {"cahce": True})
    live = DummyMemory(1 << 16)
    live.hints["cache_time"] = 0.1  # a live connector asks for short validity
    assert wrap(live, {"cache": PageType.all()}).validity == TimeValidity(0.1)
    assert wrap(live, {"cache": PageType.all(), "cache_time": CountValidity(2)}).validity == CountValidity(2)
    w.set_mem_map(MemoryMap([(0x1000, 0x1000, 0)]))
    assert w.read(0x1010, 2) == b"hi" and inner.mem_map is not None
    w.close()


def test_single_reads_through_the_stack_use_fast_paths_and_count():
    inner = DummyMemory(1 << 20, mem_map=MemoryMap([(0, 0x8000, 0)]))
    inner.write_u64(0x100, 42)
    w = wrap(inner, {"cache": PageType.PAGE_TABLE, "metrics": 60.0})
    cache = w.inner
    assert w.read_u64(0x100) == 42 and cache.bypassed == 1  # unhinted: straight to the connector
    with page_type_hint(PageType.PAGE_TABLE):
        assert w.read_u64(0x100) == 42 and cache.misses == 1
        assert w.read_u64(0x108) == 0 and cache.hits == 1  # same page: a hit without arrays
        with pytest.raises(PartialReadError):
            w.read_u64(0x7FFC)  # crosses into the hole
    assert w.stats()["read_pieces"] == 4 and w.stats()["failed_pieces"] == 1
