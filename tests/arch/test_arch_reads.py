"""Reads and writes through VirtualMemory, TLB policy, hooks, and hostile page tables."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ptbuild import Perm, new_tables

from pymemflow.arch import (
    F_HOOK,
    NO_TLB,
    TlbPolicy,
    VirtualMemory,
    get_arch,
    walk_leaves,
    walk_many,
    walk_one,
)
from pymemflow.arch.spec import R_BAD_ENTRY, R_NOT_PRESENT, R_OK, R_READ_FAILED
from pymemflow.connectors.dummy import DummyMemory
from pymemflow.errors import FormatError, PartialReadError, TranslationError
from pymemflow.mem.view import SMALL_BATCH

RW = Perm(True, True, False)
DATA = 0x400000  # data pages live from 4 MiB in the 8 MiB dummy memory


def _space() -> tuple[VirtualMemory, bytes]:
    """x64: va 0x10000000.. maps 8 data pages in shuffled order, a hole at page 3, then a 2 MiB page."""
    t = new_tables("x64")
    rnd = np.random.default_rng(7)
    frames = rnd.permutation(8)
    pattern = rnd.integers(0, 256, 8 * 4096, dtype=np.uint8).tobytes()
    for i in range(8):
        if i == 3:
            continue
        t.map(0x10000000 + i * 4096, 3, DATA + int(frames[i]) * 4096, [RW] * 4)
        t.mem.write(DATA + int(frames[i]) * 4096, pattern[i * 4096:(i + 1) * 4096])
    t.map(0x10200000, 2, 0x600000, [RW] * 4)
    t.mem.write(0x600000, pattern[:4096])
    expected = pattern[:3 * 4096] + bytes(4096) + pattern[4 * 4096:]
    return VirtualMemory(t.mem, "x64", t.root), expected


def test_reads_split_at_pages_and_report_unmapped_piece_with_virtual_address() -> None:
    vm, exp = _space()
    base = 0x10000000
    assert vm.read(base + 100, 3 * 4096 - 200) == exp[100:3 * 4096 - 100]
    with pytest.raises(PartialReadError) as ei:
        vm.read(base + 4096, 4 * 4096)
    f = ei.value.failures
    assert [(x.index, x.address, x.length) for x in f] == [(0, base + 3 * 4096, 4096)]
    assert ei.value.data == exp[4096:5 * 4096]
    assert vm.read(base + 4096, 4 * 4096, zero_fill=True) == exp[4096:5 * 4096]
    with pytest.raises(PartialReadError) as ei:  # a small read crossing into the hole
        vm.read(base + 3 * 4096 - 8, 16)
    assert [(x.address, x.length) for x in ei.value.failures] == [(base + 3 * 4096, 8)]
    assert ei.value.data == exp[3 * 4096 - 8:3 * 4096] + bytes(8)
    assert vm.read(base + 2 * 4096 - 8, 16) == exp[2 * 4096 - 8:2 * 4096 + 8]
    # batched: pieces spanning pages, an unmapped piece, one spanning mapped+unmapped+mapped
    res = vm.read_batch([base + 4000, base + 3 * 4096 + 8, base + 2 * 4096 + 10, 0x10200ff8], [200, 16, 3 * 4096, 16])
    assert res.piece(0) == exp[4000:4200]
    assert res.piece(2) == exp[2 * 4096 + 10: 5 * 4096 + 10]
    assert res.piece(3) == exp[0xff8:0x1000] + bytes(8)  # the 2 MiB page continues physically
    got = sorted((x.index, x.address, x.length) for x in res.failures)
    assert got == [(1, base + 3 * 4096 + 8, 16), (2, base + 3 * 4096, 4096)]
    assert list(res.ok()) == [True, False, False, True]


def test_zero_fill_space_reports_nothing_and_typed_reads_work() -> None:
    vm, exp = _space()
    zf = VirtualMemory(vm.phys, "x64", vm.dtb, zero_fill=True)
    res = zf.read_batch([0x10000000 + 3 * 4096], [64])
    assert res.failures == [] and res.piece(0) == bytes(64)
    assert vm.read_u64(0x10000008) == int.from_bytes(exp[8:16], "little")
    assert vm.read_u32(0x10000ffc) == int.from_bytes(exp[0xffc:0x1000], "little")
    assert vm.read_u64(0x10000ffc) == int.from_bytes(exp[0xffc:0x1004], "little")  # crosses a page
    assert vm.read_ptr(0x10000010) == int.from_bytes(exp[16:24], "little")
    with pytest.raises(TranslationError):
        vm.translate(0x10003000)
    with pytest.raises(PartialReadError):
        vm.read_u64(0x10003000)


def test_writes_go_to_the_translated_frames() -> None:
    vm, exp = _space()
    assert vm.writable
    vm.write(0x10000ffe, b"\xaa\xbb\xcc\xdd")
    assert vm.read(0x10000ffc, 8) == exp[0xffc:0xffe] + b"\xaa\xbb\xcc\xdd" + exp[0x1002:0x1004]
    fails = vm.write_batch([0x10002ffe, 0x10005000], [b"\x01" * 4, b"\x02" * 2])
    assert [(f.index, f.address, f.length) for f in fails] == [(0, 0x10003000, 2)]
    assert vm.read(0x10002ffe, 2) == b"\x01\x01"
    assert vm.read(0x10005000, 2) == b"\x02\x02"


def test_tlb_serves_stale_entries_until_flushed_and_expires_by_count_and_time() -> None:
    vm, _ = _space()
    t_va = 0x10000000
    pa0 = vm.translate(t_va)
    walk = walk_one(vm.phys, vm.arch, vm.dtb, t_va)
    assert int(vm.translate_batch([t_va]).pa[0]) == walk.pa == pa0  # warms the batch store
    # remap the page behind the TLB's back: find the PTE and point it elsewhere
    pt = [a for a in range(0x1000, 0x20000, 8) if vm.phys.read_u64(a) & ~0xFFF == pa0 & ~0xFFF]
    assert pt, "PTE not found"
    vm.phys.write_u64(pt[0], 0x7FF000 | 7)
    assert vm.translate(t_va) == pa0  # cached
    assert int(vm.translate_batch([t_va]).pa[0]) == walk.pa  # cached in the batch store too
    vm.flush_tlb()
    assert vm.translate(t_va) == 0x7FF000
    counted = VirtualMemory(vm.phys, "x64", vm.dtb, tlb=TlbPolicy(max_uses=3))
    assert counted.translate(t_va) == 0x7FF000
    vm.phys.write_u64(pt[0], 0x7FE000 | 7)
    seen = [counted.translate(t_va) for _ in range(6)]
    assert seen[0] == 0x7FF000 and seen[-1] == 0x7FE000
    timed = VirtualMemory(vm.phys, "x64", vm.dtb, tlb=TlbPolicy(max_age=0.05))
    assert timed.translate(t_va) == 0x7FE000
    vm.phys.write_u64(pt[0], 0x7FD000 | 7)
    assert timed.translate(t_va) == 0x7FE000
    vm.phys.write_u64(0x7FE000, 0x1111)
    vm.phys.write_u64(0x7FD000, 0x2222)
    assert timed.read_u64(t_va) == 0x1111  # the fast typed read honours the policy too
    time.sleep(0.06)
    assert timed.read_u64(t_va) == 0x2222
    assert timed.translate(t_va) == 0x7FD000
    # negative entries: an unmapped page stays unmapped until flushed
    hole = 0x10003000
    assert vm.translate_info(hole).reason == R_NOT_PRESENT
    assert int(vm.translate_batch([hole]).reason[0]) == R_NOT_PRESENT
    vm.phys.write_u64(pt[0] + 3 * 8, 0x7FC000 | 7)
    assert vm.translate_info(hole).reason == R_NOT_PRESENT
    assert int(vm.translate_batch([hole]).reason[0]) == R_NOT_PRESENT
    vm.flush_tlb()
    assert vm.translate(hole) == 0x7FC000


def test_set_dtb_switches_spaces() -> None:
    a = new_tables("x64")
    a.map(0x1000, 3, 0x500000, [RW] * 4)
    root_a = a.root
    a.root = a.alloc()
    a.nodes.clear()
    a.leaves.clear()
    a.map(0x1000, 3, 0x501000, [RW] * 4)
    vm = VirtualMemory(a.mem, "x64", root_a)
    assert vm.translate(0x1000) == 0x500000
    vm.set_dtb(a.root)
    assert vm.translate(0x1000) == 0x501000
    assert int(vm.translate_batch([0x1000]).pa[0]) == 0x501000
    vm.set_dtb(root_a)
    assert vm.translate(0x1000) == 0x500000


def test_pte_hook_resolves_non_present_entries() -> None:
    t = new_tables("x64")
    t.map(0x20000000, 3, 0x500000, [RW] * 4)
    pte_addr = [a for a in range(0x1000, 0x10000, 8) if t.mem.read_u64(a) == 0x500000 | 7][0]
    t.mem.write_u64(pte_addr + 8, 0x0BAD_0800)  # not present, "transition" bit 11 set, frame 0x0BAD0000
    calls = []

    def hook(pte: int, level: int, va: int) -> int | None:
        calls.append((pte, level, va))
        return (pte & ~0xFFF) | (va & 0xFFF) if pte & 0x800 else None

    vm = VirtualMemory(t.mem, "x64", t.root, pte_hook=hook, tlb=NO_TLB)
    assert vm.translate(0x20001234) == 0x0BAD0234
    assert calls[-1] == (0x0BAD_0800, 3, 0x20001234)
    r = vm.translate_batch([0x20001010, 0x20002000, 0x20000010])
    assert r.pa.tolist() == [0x0BAD0010, 0, 0x500010]
    assert r.reason.tolist() == [R_OK, R_NOT_PRESENT, R_OK]
    assert r.flags[0] & F_HOOK and not r.flags[2] & F_HOOK
    assert any("hook" in reg.kind for reg in vm.page_map())


# ---- hostile tables -------------------------------------------------------------------------


def test_self_referencing_tables_terminate() -> None:
    mem = DummyMemory(1 << 20)
    root = 0x1000
    for i in range(512):  # every PML4 entry points back at the PML4
        mem.write_u64(root + 8 * i, root | 7)
    vm = VirtualMemory(mem, "x64", root, tlb=NO_TLB)
    # a 4-step walk through the same table is a (strange but) valid translation
    assert vm.translate(0x1234) == root | 0x234
    r = vm.translate_batch(np.arange(0, 1 << 47, 1 << 35, dtype=np.uint64))
    assert (r.reason == R_OK).all()
    t0 = time.perf_counter()
    with pytest.raises(FormatError, match="present entries"):
        vm.page_map()
    assert time.perf_counter() - t0 < 30


def test_entries_past_end_of_memory_and_bad_large_bits_fail_cleanly() -> None:
    mem = DummyMemory(1 << 20)
    root = 0x1000
    mem.write_u64(root, (0xFFFF_FFFF << 12) | 7)  # PDPT far past the end of memory
    mem.write_u64(root + 8, 0x2000 | 0x87)  # PS set in a PML4E: reserved
    mem.write_u64(root + 16, 0x3000 | 7)
    mem.write_u64(0x3000, 0x4000 | 7)
    mem.write_u64(0x4000, (1 << 51) | 0x87)  # a 2 MiB page far past memory: translation is fine
    vm = VirtualMemory(mem, "x64", root)
    r = vm.translate_batch([0, 1 << 39, 2 << 39, (2 << 39) + 0x1234])
    assert r.reason.tolist() == [R_READ_FAILED, R_BAD_ENTRY, R_OK, R_OK]
    assert int(r.pa[3]) == (1 << 51) + 0x1234
    with pytest.raises(PartialReadError):
        vm.read(2 << 39, 8)  # the frame itself is not backed
    assert [reg.size for reg in vm.page_map()] == [1 << 21]
    assert vm.translate_info(1 << 39).reason == R_BAD_ENTRY


@settings(max_examples=30, deadline=None)
@given(arch=st.sampled_from(["x64", "x64la57", "x86pae", "x86", "aarch64"]), seed=st.integers(0, 2**32 - 1))
def test_random_garbage_tables_never_hang_or_raise(arch: str, seed: int) -> None:
    """Four pages of random bytes, all entries pointing among them (or anywhere): every walk ends."""
    rnd = np.random.default_rng(seed)
    junk = rnd.integers(0, 256, 4 * 4096, dtype=np.uint8).tobytes()
    mem = DummyMemory(1 << 16)
    mem.write(0x1000, junk)
    if rnd.random() < 0.5:  # make most entries point inside the four pages (deep, looping walks)
        esz = get_arch(arch).pte_size
        vals = np.frombuffer(junk, dtype=f"<u{esz}").copy()
        vals = (vals & np.array(0xFFF | (1 << (8 * esz - 1)), dtype=vals.dtype)) | (
            (rnd.integers(1, 5, vals.shape[0]) << 12).astype(vals.dtype))
        mem.write(0x1000, vals.tobytes())
    a = get_arch(arch)
    vas = rnd.integers(0, 2**63, 300, dtype=np.uint64)
    vas[:100] &= np.uint64((1 << 32) - 1)
    b = walk_many(mem, a, 0x1000, vas, 0x2000)
    for i in range(0, 300, 7):
        assert tuple(walk_one(mem, a, 0x1000, int(vas[i]), 0x2000)) == (
            int(b.pa[i]), int(b.page_size[i]), int(b.flags[i]), int(b.reason[i]))
    try:
        lv = walk_leaves(mem, a, 0x1000, 0x2000, max_entries=100_000)
    except FormatError:
        return
    assert bool((lv.size > 0).all()) and bool((lv.va[1:] >= lv.va[:-1]).all())


def test_page_table_reads_go_through_a_stacked_page_cache() -> None:
    from pymemflow.mem.cache import PageCache
    from pymemflow.mem.middleware.metrics import MetricsMemory

    vm0, _ = _space()
    counted = MetricsMemory(vm0.phys, log_interval=None)  # type: ignore[arg-type]
    cache = PageCache(counted, size=1 << 20, time_validity=60.0)
    vm = VirtualMemory(cache, "x64", vm0.dtb, tlb=NO_TLB)
    vas = [0x10000000 + i * 4096 for i in (0, 1, 2, 4, 5)]
    vm.translate_batch(vas)
    fills = cache.fills
    assert fills > 0 and cache.hits == 0
    counted.reset()
    r = vm.translate_batch(vas)  # every entry now comes from the cache
    assert bool(r.ok.all()) and counted.read_pieces == 0 and cache.hits > 0
    assert vm.translate(0x10000000) == int(r.pa[0]) and counted.read_pieces == 0
    vm.read(0x10000000, 64)  # data reads are not page-table reads: they pass through
    assert counted.read_pieces > 0


def test_small_tlb_overflows_without_wrong_answers_and_page_map_ranges_clip() -> None:
    t = new_tables("x64", 16 << 20)
    for i in range(600):
        t.map(0x40000000 + i * 4096, 3, 0x800000 + ((i * 7919) % 600) * 4096, [RW] * 4)
    vas = np.arange(0x40000000 - 0x10000, 0x40000000 + 700 * 4096, 512, dtype=np.uint64)
    tiny = VirtualMemory(t.mem, "x64", t.root, tlb=TlbPolicy(capacity=64))
    plain = VirtualMemory(t.mem, "x64", t.root, tlb=NO_TLB).translate_batch(vas)
    for _ in range(3):
        r = tiny.translate_batch(vas)
        assert np.array_equal(r.pa, plain.pa) and np.array_equal(r.reason, plain.reason)
    assert all(tiny.translate(int(v)) == int(p) for v, p in zip(vas[::97], plain.pa[::97], strict=True)
               if int(p))
    regions = tiny.page_map(0x40001800, 0x40003800)
    assert [(g.start, g.end) for g in regions] == [(0x40001800, 0x40003800)]
    assert tiny.page_map(0x50000000, 0x60000000) == []


def test_large_pages_take_one_tlb_entry_each() -> None:
    t = new_tables("x64", 8 << 20)
    t.map(0x40000000, 2, 0x200000, [RW] * 4)  # one 2 MiB page
    t.map(0x80000000, 1, 0, [RW] * 4)  # one 1 GiB page (beyond memory: translation only)
    vm = VirtualMemory(t.mem, "x64", t.root)
    vas = np.concatenate([np.arange(0x40000000, 0x40200000, 0x1000, dtype=np.uint64) + np.uint64(5),
                          np.arange(0x80000000, 0xC0000000, 1 << 20, dtype=np.uint64)])
    first = vm.translate_batch(vas)
    second = vm.translate_batch(vas)
    assert np.array_equal(first.pa, second.pa) and np.array_equal(first.page_size, second.page_size)
    assert int(second.pa[7]) == 0x200000 + 7 * 0x1000 + 5 and int(second.page_size[-1]) == 1 << 30
    tlb = vm.tlb
    assert tlb is not None
    counts = {k[1]: v[1][0] for k, v in tlb._tables.items()}
    assert counts == {21: 1, 30: 1}


def test_big_reads_over_large_pages_and_holes() -> None:
    vm, exp = _space()
    mem = vm.phys
    assert vm.read(0x10200000 + 100, 1 << 20) == mem.read(0x600000 + 100, 1 << 20)  # one 2 MiB page
    with pytest.raises(PartialReadError) as ei:  # 128 KiB over 4K pages, a hole, then nothing
        vm.read(0x10000000, 0x20000)
    assert [(f.address, f.length) for f in ei.value.failures] == [
        (0x10003000, 0x1000), (0x10008000, 0x18000)]
    assert ei.value.data[:0x8000] == exp
    assert vm.read(0x101ff000, 0x11000, zero_fill=True) == bytes(0x1000) + mem.read(0x600000, 0x10000)


def test_big_single_read_bytes_path_equals_batch_path() -> None:
    """read() of >= 64 KiB returns the physical runs' bytes directly (one copy); it must give the same
    bytes and failures as the batched path, also when a run ends past the end of physical memory."""
    mem = DummyMemory(7 << 20)  # the second 2 MiB page below runs 1 MiB past the end of memory
    p, rw, ps = 1, 2, 0x80
    mem.write_u64(0x1000, 0x2000 | p | rw)
    mem.write_u64(0x2000, 0x3000 | p | rw)
    mem.write_u64(0x3000 + 8 * 1, (4 << 20) | p | rw | ps)  # va 2M -> pa 4M (2 MiB)
    mem.write_u64(0x3000 + 8 * 2, (6 << 20) | p | rw | ps)  # va 4M -> pa 6M, half of it beyond 7M
    mem.write_u64(0x3000 + 8 * 3, (2 << 20) | p | rw | ps)  # va 6M -> pa 2M (not contiguous)
    rng = np.random.default_rng(5)
    mem.write(2 << 20, rng.integers(0, 256, 5 << 20, dtype=np.uint8).tobytes())
    vm = VirtualMemory(mem, "x64", 0x1000)
    good_va, good_n = (2 << 20) + 123, 128 << 10
    assert vm.read(good_va, good_n) == mem.read((4 << 20) + 123, good_n)
    span = (6 << 20) - (2 << 20) + (64 << 10)  # three pages, two physical runs, a hole inside
    with pytest.raises(PartialReadError) as e:
        vm.read(2 << 20, span)
    batch = vm.read_batch([2 << 20] * (SMALL_BATCH + 1), [span] * (SMALL_BATCH + 1))  # the NumPy path
    assert e.value.data == batch.piece(0)
    assert [(f.address, f.length, f.reason) for f in e.value.failures] == \
        [(f.address, f.length, f.reason) for f in batch.failures if f.index == 0]
    assert [(f.address, f.length) for f in e.value.failures] == [((5 << 20), 1 << 20)]
    assert vm.read(2 << 20, span, zero_fill=True) == e.value.data

