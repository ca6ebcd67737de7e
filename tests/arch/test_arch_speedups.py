"""Virtual reads on the compiled path (TLB dict + batched TLB tables in C) == the pure-Python path.

Random x64 spaces with 4 KiB and 2 MiB pages, unmapped pages and pages mapped past the end of physical
memory; every read is done twice (the second one hits the TLB, which is when the compiled path serves
it) on a compiled view and on a pure one over the same bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ptbuild import Perm, new_tables

from pymemflow.arch import VirtualMemory
from pymemflow.connectors.dummy import DummyMemory
from pymemflow.errors import PartialReadError, RangeError
from pymemflow.mem import fast

pytestmark = pytest.mark.skipif(not fast.compiled(), reason=f"compiled path not in use: {fast.READ_PATH}")

LO = 0x7000_0000_0000 - 0x8000
BIG = 0x7000_0020_0000  # one 2 MiB page
MEM = 4 << 20
TYPED = ["read_u8", "read_u16", "read_u32", "read_u64", "read_i16", "read_i64", "read_f64", "read_ptr"]


def outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        v = fn(*args)
    except PartialReadError as e:
        return "partial", (e.data, e.failures)
    except (RangeError, TypeError, ValueError) as e:
        return type(e).__name__, str(e)
    if isinstance(v, float) and v != v:
        return "nan", None
    return "ok", v


@st.composite
def spaces(draw: st.DrawFn) -> tuple[VirtualMemory, VirtualMemory]:
    t = new_tables("x64", MEM)
    rw = Perm(True, True, False)
    frames = draw(st.permutations(list(range(40))))
    for i in range(16):
        kind = draw(st.sampled_from(["map", "map", "none", "past"]))
        va = LO + i * 4096
        if kind == "map":
            t.map(va, 3, 0x100000 + frames[i] * 4096, [rw] * 4)
        elif kind == "past":  # a frame beyond physical memory: the physical read fails
            t.map(va, 3, MEM + frames[i] * 4096, [rw] * 4)
    if draw(st.booleans()):
        t.map(BIG, 2, 0x200000, [rw] * 3)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t.mem.write(0x100000, rng.integers(0, 256, MEM - 0x100000, dtype=np.uint8).tobytes())
    pure_phys = fast.force_pure(DummyMemory(MEM))
    pure_phys.write(0, t.mem.read(0, MEM))
    return VirtualMemory(t.mem, "x64", t.root), VirtualMemory(pure_phys, "x64", t.root)


def batch(vm: VirtualMemory, addrs: Any, lens: Any) -> tuple[list[bytes], list[Any]]:
    res = vm.read_batch(addrs, lens)
    return [res.piece(i) for i in range(len(res))], res.failures


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space=spaces(), data=st.data())
def test_virtual_compiled_equals_pure(space: tuple[VirtualMemory, VirtualMemory], data: st.DataObject) -> None:
    c, p = space
    assert "_compiled_reader" in c.__dict__ and "_compiled_reader" not in p.__dict__
    base = data.draw(st.sampled_from([LO, BIG - 0x2000]))
    longest = data.draw(st.sampled_from([8, 16, 4096, 3 * 4096]))
    pieces = data.draw(st.lists(st.tuples(st.integers(0, 18 * 4096), st.integers(0, longest)), min_size=1,
                                max_size=80))
    addrs = [base + a for a, _ in pieces]
    lens = [n for _, n in pieces]
    for _ in range(2):  # cold, then warm (the TLB serves the compiled path)
        assert batch(c, addrs, lens) == batch(p, addrs, lens)
        arr = np.array(addrs, dtype=np.uint64)
        assert batch(c, arr, 8) == batch(p, arr, 8)
        big_a, big_n = np.array(addrs * 3, np.uint64), np.array(lens * 3, np.int64)  # > SMALL_BATCH
        assert batch(c, big_a, big_n) == batch(p, big_a, big_n)
        vc, okc = c.read_u64_many(arr)
        vp, okp = p.read_u64_many(arr)
        assert okc.tolist() == okp.tolist() and vc[okc].tolist() == vp[okp].tolist()
        rep = np.array(addrs * (300 // len(addrs) + 1), np.uint64)  # >= 2 blocks of the compiled gather
        for size in (8, 16):
            assert batch(c, rep, size) == batch(p, rep, size)
        vc, okc = c.read_u64_many(rep)
        vp, okp = p.read_u64_many(rep)
        assert okc.tolist() == okp.tolist() and vc[okc].tolist() == vp[okp].tolist()
        for a, n in pieces[:12]:
            assert outcome(c.read, base + a, n) == outcome(p.read, base + a, n)
            for name in TYPED:
                assert outcome(getattr(c, name), base + a) == outcome(getattr(p, name), base + a), name


def test_dtb_switch_and_flush_rebind() -> None:
    """Another root (set_dtb) and flush_tlb keep the compiled reader on the right TLB dict."""
    t = new_tables("x64", MEM)
    rw = Perm(True, True, False)
    t.map(LO, 3, 0x100000, [rw] * 4)
    t.mem.write(0x100000, b"A" * 8)
    vm = VirtualMemory(t.mem, "x64", t.root)
    assert vm.read_u64(LO) == int.from_bytes(b"A" * 8, "little")
    assert vm.read_u64(LO) == int.from_bytes(b"A" * 8, "little")  # TLB hit: compiled
    vm.set_dtb(0x3FF000)  # an empty root: nothing mapped
    with pytest.raises(PartialReadError):
        vm.read_u64(LO)
    vm.set_dtb(t.root)
    assert vm.read_u64(LO) == int.from_bytes(b"A" * 8, "little")
    vm.flush_tlb()
    t.mem.write(0x100000, b"B" * 8)
    assert vm.read_u64(LO) == int.from_bytes(b"B" * 8, "little")
    assert "_compiled_reader" in vm.__dict__


# ---- the compiled reader's page cache (vpn -> host pointer of the page), kept between calls ----------------

DATA = 0x100000
PAGES = 80


def _pte_addr(mem: DummyMemory, frame: int) -> int:
    """Where the leaf entry pointing at ``frame`` is (the tables sit below DATA; one entry points there)."""
    words = np.frombuffer(mem.read(0, DATA), dtype="<u8")
    hits = np.flatnonzero(((words & np.uint64(0x000F_FFFF_FFFF_F000)) == np.uint64(frame)) & (words & np.uint64(1) == 1))
    assert hits.shape[0] == 1, hits
    return int(hits[0]) * 8


def _pair(**kw: Any) -> tuple[VirtualMemory, VirtualMemory, Any]:
    """A compiled and a pure view of PAGES mapped 4 KiB pages (frames DATA + i * 4 KiB) plus spare frames,
    and a writer that changes both physical memories alike."""
    t = new_tables("x64", MEM)
    rw = Perm(True, True, False)
    for i in range(PAGES):
        t.map(LO + i * 4096, 3, DATA + i * 4096, [rw] * 4)
    t.mem.write(DATA, np.random.default_rng(5).integers(0, 256, MEM - DATA, dtype=np.uint8).tobytes())
    pure_phys = fast.force_pure(DummyMemory(MEM))
    pure_phys.write(0, t.mem.read(0, MEM))

    def write(addr: int, data: bytes) -> None:
        t.mem.write(addr, data)
        pure_phys.write(addr, data)

    return VirtualMemory(t.mem, "x64", t.root, **kw), VirtualMemory(pure_phys, "x64", t.root, **kw), write


def _remap(c: VirtualMemory, write: Any, page: int, frame: int) -> None:
    pte = _pte_addr(c.phys, DATA + page * 4096)
    old = c.phys.read_u64(pte)
    write(pte, ((old & ~0x000F_FFFF_FFFF_F000) | frame).to_bytes(8, "little"))


def _all_reads(c: VirtualMemory, p: VirtualMemory, addrs: np.ndarray) -> Any:
    """Every compiled read shape on both views; returns the compiled batch's bytes."""
    got = batch(c, addrs, 8)
    assert got == batch(p, addrs, 8)
    assert batch(c, addrs, 16) == batch(p, addrs, 16)  # 16-byte pieces: some cross a page
    lens = np.resize(np.array([1, 8, 4095, 5000, 3], np.int64), addrs.shape[0])  # piece by piece, page-crossing
    assert batch(c, addrs, lens) == batch(p, addrs, lens)
    vc, okc = c.read_u64_many(addrs)
    vp, okp = p.read_u64_many(addrs)
    assert okc.tolist() == okp.tolist() and vc[okc].tolist() == vp[okp].tolist()
    for a in addrs[:40].tolist():
        assert outcome(c.read_u64, a) == outcome(p.read_u64, a)
        assert outcome(c.read, a, 24) == outcome(p.read, a, 24)
    return got


def test_page_cache_hits_and_tlb_flush_between_calls() -> None:
    """Warm reads are served by the kept page cache; a flush of the Tlb object itself (no rebind of the
    reader) empties it, so a page remapped meanwhile is read at its new frame, exactly as the pure path."""
    c, p, write = _pair()
    rng = np.random.default_rng(1)
    first, last = 8, 40  # pages LO + 8 * 4 KiB on share their upper vpn bits: no two in one cache slot
    addrs = np.uint64(LO + first * 4096) + rng.integers(0, (last - first) * 4096 - 8, 600).astype(np.uint64)
    reader = c.__dict__["_compiled_reader"]
    out = bytearray(600 * 8)
    before = _all_reads(c, p, addrs)
    assert _all_reads(c, p, addrs) == before
    assert reader.gather_into(addrs, 8, out) and out == b"".join(before[0])  # served from the page cache alone
    _remap(c, write, 9, DATA + PAGES * 4096)  # page 9 -> a frame no page used
    assert _all_reads(c, p, addrs) == before  # both TLBs still hold the old translation
    gen = c.tlb.generation[0]  # type: ignore[union-attr]
    c.tlb.flush()  # type: ignore[union-attr]
    p.tlb.flush()  # type: ignore[union-attr]
    assert c.tlb.generation[0] == gen + 1  # type: ignore[union-attr]
    assert c.__dict__["_compiled_reader"] is reader  # the same reader: its cache had to notice by itself
    assert not reader.gather_into(addrs, 8, out)  # an empty TLB translates nothing: the pure path walks
    after = _all_reads(c, p, addrs)
    assert after != before
    new9 = c.phys.read(DATA + PAGES * 4096, 4096 + 8)
    for a, piece in zip(addrs.tolist(), after[0], strict=True):
        if 9 * 4096 <= a - LO < 10 * 4096:
            off = a - LO - 9 * 4096
            assert piece == new9[off:off + 8] or off > 4096 - 8
    assert reader.gather_into(addrs, 8, out) and out == b"".join(after[0])


def test_page_cache_with_an_evicting_tlb() -> None:
    """A TLB far smaller than the pages read starts over (and clears its dict) again and again; the page
    cache must never serve a translation the TLB dropped: remapped pages read like the pure path."""
    from pymemflow.arch.tlb import TlbPolicy

    c, p, write = _pair(tlb=TlbPolicy(capacity=64))
    addrs = np.uint64(LO) + np.arange(0, PAGES * 4096, 4096 // 4, dtype=np.uint64)  # every page, 4 words each
    _all_reads(c, p, addrs)
    for page in (0, 7, PAGES - 1):
        _remap(c, write, page, DATA + (PAGES + page) * 4096)
        for _ in range(2):
            _all_reads(c, p, addrs)
            _all_reads(c, p, addrs[:200])
    assert c.tlb.generation[0] > 0  # type: ignore[union-attr]


def test_page_cache_sets_that_overflow() -> None:
    """Small batches keep the smallest page cache (64 slots in 2-way sets) while 80 pages go through it in
    random order: a set overflows on almost every call, so entries are pushed out and filled again all the
    time; every piece must still read like the pure path, also after pages are remapped and the TLB flushed."""
    c, p, write = _pair()
    rng = np.random.default_rng(7)
    reader = c.__dict__["_compiled_reader"]
    served = 0
    remapped: set[int] = set()
    for rnd in range(60):
        pages = rng.permutation(PAGES)[:8]
        addrs = (np.uint64(LO) + pages.astype(np.uint64) * np.uint64(4096)
                 + rng.integers(0, 4096 - 8, 8).astype(np.uint64))
        assert batch(c, addrs, 8) == batch(p, addrs, 8)
        served += reader.gather_into(addrs, 8, bytearray(64))
        if rnd in (20, 40):
            for page in [q for q in pages.tolist() if q not in remapped][:3]:  # _remap finds a page by its frame
                _remap(c, write, page, DATA + (PAGES + page) * 4096)
                remapped.add(page)
            c.tlb.flush()  # type: ignore[union-attr]
            p.tlb.flush()  # type: ignore[union-attr]
    assert served >= 50  # most calls were served in C, through the overflowing cache


def test_single_reads_over_more_pages_than_the_cache() -> None:
    """Single reads alone (no batch to size the cache): 80 pages through a 64-slot cache that doubles once
    it has been filled more often than it has slots; every value as the pure path's, before and after
    pages are remapped and the TLB flushed, and after the cache has grown."""
    c, p, write = _pair()
    rng = np.random.default_rng(3)
    for rnd in range(6):
        addrs = (np.uint64(LO) + rng.permutation(PAGES).astype(np.uint64) * np.uint64(4096)
                 + rng.integers(0, 4096 - 8, PAGES).astype(np.uint64)).tolist()
        assert [outcome(c.read_u64, a) for a in addrs] == [outcome(p.read_u64, a) for a in addrs]
        assert [outcome(c.read, a, 8) for a in addrs[:20]] == [outcome(p.read, a, 8) for a in addrs[:20]]
        if rnd in (2, 4):
            for page in (rnd - 1, 50 + rnd, PAGES - rnd):  # each page remapped once (_remap finds it by frame)
                _remap(c, write, page, DATA + (PAGES + page) * 4096)
            c.tlb.flush()  # type: ignore[union-attr]
            p.tlb.flush()  # type: ignore[union-attr]


def test_page_cache_failures_like_pure() -> None:
    """After a warm batch, one that also touches an unmapped page and a page past physical memory is handed
    to the pure path and reports the same failures; the cache still serves the next good batch."""
    c, p, write = _pair()
    _remap(c, write, 3, MEM + 0x5000)  # page 3 -> past the end of physical memory
    good = np.uint64(LO) + np.arange(8, 3 * 4096, 40, dtype=np.uint64)
    _all_reads(c, p, good)
    bad = np.concatenate([good, np.array([LO + 3 * 4096 + 16, LO + PAGES * 4096 + 8, LO - 8], np.uint64), good])
    for _ in range(2):
        res_c, res_p = c.read_batch(bad, 8), p.read_batch(bad, 8)
        assert [res_c.piece(i) for i in range(len(res_c))] == [res_p.piece(i) for i in range(len(res_p))]
        assert res_c.failures == res_p.failures and len(res_c.failures) == 3
        assert outcome(c.read_u64, LO + 3 * 4096) == outcome(p.read_u64, LO + 3 * 4096)
    _all_reads(c, p, good)


def test_page_cache_page_cut_by_a_range(tmp_path: Any) -> None:
    """A page whose frame is cut by the end of a physical range is never cached whole: bytes before the
    cut are served, bytes after it fail, as on the pure path."""
    from pymemflow.connectors.raw import RawFileMemory
    from pymemflow.mem.memmap import MemoryMap

    c0, _p0, _w = _pair()
    img = tmp_path / "phys.raw"
    img.write_bytes(c0.phys.read(0, MEM))
    cut = DATA + 2 * 4096 + 0x800  # the middle of page 2's frame
    ranges = [(0, cut, 0), (DATA + 4 * 4096, MEM - DATA - 4 * 4096, DATA + 4 * 4096)]
    with RawFileMemory(img, mem_map=MemoryMap(ranges)) as cm, RawFileMemory(img, mem_map=MemoryMap(ranges)) as pm:
        fast.force_pure(pm)
        c, p = VirtualMemory(cm, "x64", c0.dtb), VirtualMemory(pm, "x64", c0.dtb)
        assert "_compiled_reader" in c.__dict__
        inside = np.uint64(LO + 2 * 4096) + np.arange(0, 0x800, 8, dtype=np.uint64)  # before the cut
        res = c.read_batch(inside, 8)
        assert not res.failures and bytes(res.data) == c0.phys.read(DATA + 2 * 4096, 0x800)
        for _ in range(2):
            _all_reads(c, p, inside)
            _all_reads(c, p, inside + np.uint64(0x7F8))  # across the cut: failures, as pure
            _all_reads(c, p, np.uint64(LO) + np.arange(0, 8 * 4096, 24, dtype=np.uint64))


def test_reader_without_a_generation_caches_per_call() -> None:
    """A VirtReader built without the TLB's counter keeps its page cache for one call only: after a flush
    it serves nothing the emptied TLB does not hold. A counter that is not one u64 is refused."""
    c, _p, _w = _pair()
    addrs = np.uint64(LO + 8 * 4096) + np.arange(0, 4 * 4096, 8, dtype=np.uint64)
    c.read_batch(addrs, 8)
    c.read_batch(addrs, 8)  # the batched TLB holds these pages now
    phys_reader = c.phys.__dict__["_compiled_reader"]
    pt, pr, pb = fast._fallbacks(c)
    r = fast.speedups.VirtReader(c._single, phys_reader, None, 8, pt, pr, pb)  # type: ignore[union-attr]
    out = bytearray(addrs.shape[0] * 8)
    assert r.gather_into(addrs, 8, out, c._tlb_tables()) and bytes(out) == bytes(c.read_batch(addrs, 8).data)
    c.tlb.flush()  # type: ignore[union-attr]
    assert not r.gather_into(addrs, 8, out, c._tlb_tables())
    with pytest.raises(TypeError):
        fast.speedups.VirtReader(c._single, phys_reader, None, 8, pt, pr, pb, bytearray(4))  # type: ignore[union-attr]


def test_tlb_table_keeps_every_inserted_translation() -> None:
    """A key that finds no free slot within the probe limit makes the batched table grow instead of being
    dropped: the compiled gather serves a batch only when the table holds all of it (before, a batch of
    55k distinct pages went to the pure path on every call for a few dozen such keys)."""
    from pymemflow.arch.tlb import Tlb, TlbPolicy

    rng = np.random.default_rng(3)
    tlb = Tlb(TlbPolicy())
    vpn = np.unique(rng.integers(0, 1 << 36, 60000).astype(np.uint64))
    packed = (vpn << np.uint64(12)) | (np.uint64(12) << np.uint64(56))
    for part in np.array_split(np.arange(vpn.shape[0]), 7):
        tlb.insert("root", vpn[part], packed[part])
    hit, val = tlb.lookup("root", vpn)
    assert hit.all() and np.array_equal(val, packed)
    assert tlb.generation[0] == 0  # growing keeps every entry: nothing to invalidate
    small = Tlb(TlbPolicy(capacity=64))  # at its capacity limit it still starts over, and says so
    small.insert("root", vpn[:20], packed[:20])
    small.insert("root", vpn[20:40], packed[20:40])
    assert small.generation[0] >= 1 and small.lookup("root", vpn[20:40])[0].all()
