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
