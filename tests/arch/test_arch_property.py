"""Random page tables of every architecture: batched walker == scalar walker == independent model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ptbuild import LAYOUTS, VA_BITS, Perm, Tables, new_tables

from pymemflow.arch import (
    F_LARGE,
    F_NX,
    F_USER,
    F_WRITABLE,
    NO_TLB,
    VirtualMemory,
    get_arch,
    walk_many,
    walk_one,
)
from pymemflow.arch.spec import R_NON_CANONICAL, R_NOT_PRESENT, R_OK
from pymemflow.mem.view import SMALL_BATCH

ARCHS = list(LAYOUTS)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

perms = st.builds(Perm, st.booleans(), st.booleans(), st.booleans(), st.booleans())


def _canon(arch: str, va: int) -> int:
    bits = VA_BITS[arch]
    va &= (1 << bits) - 1
    if arch in ("x64", "x64la57") and va >> (bits - 1):
        va |= (1 << 64) - (1 << bits)
    return va


@st.composite
def tables(draw: st.DrawFn, arch: str) -> Tables:
    t = new_tables(arch)
    bits, _esz, leaf_levels = LAYOUTS[arch]
    nlev = len(bits)
    for _ in range(draw(st.integers(1, 24))):
        # indices from a small pool so mappings share tables; sometimes anywhere
        idx = [draw(st.sampled_from([0, 1, 2, (1 << b) - 1, (1 << b) >> 1]) | st.integers(0, (1 << b) - 1))
               for b in bits]
        va = 0
        for b, i in zip(bits, idx, strict=True):
            va = (va << b) | (i & ((1 << b) - 1))
        va <<= 12
        if arch == "aarch64" and draw(st.booleans()):
            va |= (1 << 64) - (1 << 48)
        else:
            va = _canon(arch, va)
        level = draw(st.sampled_from(sorted(leaf_levels)))
        max_pa = (1 << 46) if arch != "x86" else (1 << 40) if level == 0 else (1 << 32)
        pa = draw(st.integers(0, max_pa - 1))
        t.map(va, level, pa, [draw(perms) for _ in range(nlev)])
    return t


def _probe_addresses(t: Tables, rnd: np.random.Generator) -> list[int]:
    out = []
    for m in t.mappings:
        out += [m.va, m.va + m.size - 1, m.va + int(rnd.integers(0, m.size))]
        out += [(m.va - 1) & ((1 << 64) - 1), (m.va + m.size) & ((1 << 64) - 1)]
    bits = VA_BITS[t.arch]
    out += [int(x) for x in rnd.integers(0, 1 << 63, 40, dtype=np.uint64)]
    out += [_canon(t.arch, int(x)) for x in rnd.integers(0, 1 << min(bits, 63), 40, dtype=np.uint64)]
    return out


def _expected(t: Tables, va: int) -> tuple[int, int, int, int]:
    """(pa, size, rights flags, reason) from the mapping list alone."""
    arch = get_arch(t.arch)
    if not arch.canonical_ok(va):
        return 0, 0, 0, R_NON_CANONICAL
    m = t.expect(va)
    if m is None:
        return 0, 0, 0, R_NOT_PRESENT
    fl = (F_WRITABLE if m.writable else 0) | (F_USER if m.user else 0) | (F_NX if m.nx else 0)
    if m.size > arch.min_page_size:
        fl |= F_LARGE
    return m.pa + (va - m.va), m.size, fl, R_OK


RIGHTS = F_WRITABLE | F_USER | F_NX | F_LARGE


@pytest.mark.parametrize("arch", ARCHS)
@SETTINGS
@given(data=st.data())
def test_batched_equals_scalar_equals_model(arch: str, data: st.DataObject) -> None:
    t = data.draw(tables(arch))
    a = get_arch(arch)
    rnd = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    vas = _probe_addresses(t, rnd)
    batch = walk_many(t.mem, a, t.root, np.array(vas, dtype=np.uint64), t.root1)
    for i, va in enumerate(vas):
        s = walk_one(t.mem, a, t.root, va, t.root1)
        b = (int(batch.pa[i]), int(batch.page_size[i]), int(batch.flags[i]), int(batch.reason[i]))
        assert b == tuple(s), f"{arch} va={va:#x}: batch {b} scalar {s}"
        e = _expected(t, va)
        got = (s.pa, s.page_size, s.flags & RIGHTS, s.reason)
        assert got == e, f"{arch} va={va:#x}: engine {got} model {e}"


@pytest.mark.parametrize("arch", ARCHS)
@SETTINGS
@given(data=st.data())
def test_virtual_memory_tlb_and_page_map_agree_with_model(arch: str, data: st.DataObject) -> None:
    t = data.draw(tables(arch))
    rnd = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    vas = np.array(_probe_addresses(t, rnd), dtype=np.uint64)
    vm = VirtualMemory(t.mem, arch, t.root, ttbr1=t.root1)
    cold = vm.translate_batch(vas)
    warm = vm.translate_batch(vas)  # served by the TLB, positive and negative entries
    plain = VirtualMemory(t.mem, arch, t.root, ttbr1=t.root1, tlb=NO_TLB).translate_batch(vas)
    for r in (warm, plain):
        assert np.array_equal(cold.pa, r.pa) and np.array_equal(cold.reason, r.reason)
        assert np.array_equal(cold.flags, r.flags) and np.array_equal(cold.page_size, r.page_size)
    for i, va in enumerate(vas.tolist()):
        e = _expected(t, va)
        assert (int(cold.pa[i]), int(cold.reason[i])) == (e[0], e[3])
        if e[3] == R_OK:
            assert vm.translate(va) == e[0]
    # the page map lists exactly the model's mappings (merged ranges cover the same bytes)
    regions = vm.page_map()
    covered = sum(r.size for r in regions)
    assert covered == sum(m.size for m in t.mappings)
    lv = vm.leaves()
    got = sorted(zip(lv.va.tolist(), lv.size.tolist(), lv.pa.tolist(), strict=True))
    want = sorted((m.va, m.size, m.pa) for m in t.mappings)
    assert got == want
    # reverse lookup finds every mapping of a physical address
    for m in t.mappings[:5]:
        pa = m.pa + m.size // 2
        want_va = sorted(x.va + (pa - x.pa) for x in t.mappings if x.pa <= pa < x.pa + x.size)
        assert vm.reverse(pa) == want_va


def test_every_arch_is_data() -> None:
    for name in ARCHS:
        a = get_arch(name)
        assert a.name == name
        assert sum(lv.bits for lv in a.levels) + 12 == a.va_bits
    assert get_arch("x86").pointer_size == 4 and get_arch("x86pae").pointer_size == 4
    assert get_arch("x64").page_sizes == (1 << 30, 1 << 21, 1 << 12)
    assert get_arch("x86").page_sizes == (1 << 22, 1 << 12)
    assert get_arch("i386").name == "x86" and get_arch("arm64").name == "aarch64"


@st.composite
def read_space(draw: st.DrawFn) -> tuple[VirtualMemory, dict[int, int]]:
    """x64 space over 16 virtual pages starting at 0x7000_0000_0000 - 0x8000 (straddling nothing
    special), each mapped (to a random frame of real memory) or not; returns the space and the
    model vpn -> frame."""
    t = new_tables("x64", 2 << 20)
    rw = Perm(True, True, False)
    frames = draw(st.permutations(list(range(32))))
    model: dict[int, int] = {}
    for i in range(16):
        if draw(st.booleans()):
            va = 0x7000_0000_0000 - 0x8000 + i * 4096
            pa = 0x100000 + frames[i] * 4096
            t.map(va, 3, pa, [rw] * 4)
            model[va >> 12] = pa
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t.mem.write(0x100000, rng.integers(0, 256, 32 * 4096, dtype=np.uint8).tobytes())
    return VirtualMemory(t.mem, "x64", t.root), model


@settings(max_examples=80, deadline=None)
@given(space=read_space(), data=st.data())
def test_batched_reads_equal_a_byte_model(space: tuple[VirtualMemory, dict[int, int]], data: st.DataObject) -> None:
    vm, model = space
    lo = 0x7000_0000_0000 - 0x8000
    longest = data.draw(st.sampled_from([16, 4096, 3 * 4096]))  # <= a page: the piece-by-piece path
    pieces = data.draw(st.lists(st.tuples(st.integers(0, 16 * 4096), st.integers(0, longest)), min_size=1,
                                max_size=12))
    addrs = [lo + a for a, _ in pieces]
    lens = [n for _, n in pieces]
    res = vm.read_batch(addrs, lens)
    for i, (a, n) in enumerate(zip(addrs, lens, strict=True)):
        want = bytearray(n)
        bad = []
        for off in range(0, n):
            va = a + off
            pa = model.get(va >> 12)
            if pa is None:
                bad.append(va)
            else:
                want[off] = vm.phys.read(pa + (va & 0xFFF), 1)[0]
        assert res.piece(i) == bytes(want)
        failed = sorted(v for f in res.failures if f.index == i for v in range(f.address, f.address + f.length))
        assert failed == bad
        single, fails = vm._read_single(a, n)  # the scalar fast paths agree with the batch
        assert single == bytes(want)
        assert sorted(v for f in fails for v in range(f.address, f.address + f.length)) == bad
    # the same pieces in a batch too big for the piece-by-piece path: the NumPy path gives the same
    # bytes and the very same failures (index, address, length, reason) for each copy of the pieces
    reps = SMALL_BATCH // len(pieces) + 1
    big = vm.read_batch(addrs * reps, lens * reps)
    assert len(big) > SMALL_BATCH
    for r in range(reps):
        for i in range(len(pieces)):
            assert big.piece(r * len(pieces) + i) == res.piece(i)
        got = [(f.index - r * len(pieces), f.address, f.length, f.reason) for f in big.failures
               if r * len(pieces) <= f.index < (r + 1) * len(pieces)]
        assert got == [(f.index, f.address, f.length, f.reason) for f in res.failures]
