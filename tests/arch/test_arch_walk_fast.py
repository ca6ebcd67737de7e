"""The compiled batched page walk (``_speedups.walk`` via arch.walk_fast) == the NumPy walker (walk_many).

Differential: the same addresses through both, field for field (pa, page size, flags, reason), on page tables
of every architecture built by ptbuild (4 KiB pages and every large-page level, rights on every level,
aarch64's TTBR1 half with and without a root), the same tables with random entries written over them, pure
random page tables (bad entries, entries pointing outside memory, either byte order), a memory map with holes
(entries C cannot read go to walk_many) and the synthetic Windows machines (x64 and x86-PAE). Then
``VirtualMemory.translate_batch`` and batched reads on a compiled view == a pure view, and the TLB tables
the walk filled serve the batch in C.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from ptbuild import LAYOUTS, VA_BITS, Perm, Tables, new_tables

from pymemflow.arch import VirtualMemory
from pymemflow.arch.spec import ARCHITECTURES, R_NON_CANONICAL, R_NOT_PRESENT, R_OK, R_READ_FAILED, get_arch
from pymemflow.arch.walk_batch import TranslationResult, walk_many
from pymemflow.arch.walk_fast import arch_tuple, walk_compiled, walk_reader
from pymemflow.connectors.dummy import DummyMemory
from pymemflow.connectors.raw import RawFileMemory
from pymemflow.mem import fast
from pymemflow.mem.memmap import MemoryMap
from pymemflow.mem.view import MemoryView

pytestmark = pytest.mark.skipif(not fast.compiled(), reason=f"compiled path not in use: {fast.READ_PATH}")

ARCHS = sorted(ARCHITECTURES)
MASK64 = (1 << 64) - 1


def _canon(arch: str, va: int) -> int:
    bits = VA_BITS[arch]
    va &= (1 << bits) - 1
    if arch in ("x64", "x64la57") and va >> (bits - 1):
        va |= MASK64 - (1 << bits) + 1
    return va


def build(arch: str, rnd: np.random.Generator, n: int = 40) -> Tables:
    """Random mappings at every leaf level, with random rights on every entry of the path."""
    t = new_tables(arch, 4 << 20)
    bits, _esz, leaf_levels = LAYOUTS[arch]
    for _ in range(n):
        va = 0
        for b in bits:  # indices from a small pool so mappings share tables, sometimes anywhere
            i = int(rnd.choice([0, 1, (1 << b) - 1, int(rnd.integers(0, 1 << b))]))
            va = (va << b) | i
        va <<= 12
        va = va | (MASK64 - (1 << 48) + 1) if arch == "aarch64" and rnd.random() < 0.4 else _canon(arch, va)
        level = int(rnd.choice(sorted(leaf_levels)))
        max_pa = (1 << 46) if arch != "x86" else (1 << 40) if level == 0 else (1 << 32)
        perms = [Perm(bool(rnd.random() < 0.8), bool(rnd.random() < 0.7), bool(rnd.random() < 0.3),
                      bool(rnd.random() < 0.3)) for _ in bits]
        t.map(va, level, int(rnd.integers(0, max_pa)), perms)
    return t


def probes(t: Tables, rnd: np.random.Generator) -> np.ndarray:
    out: list[int] = []
    for m in t.mappings:
        out += [m.va, m.va + m.size - 1, m.va + int(rnd.integers(0, m.size))]
        out += [(m.va - 1) & MASK64, (m.va + m.size) & MASK64, m.va ^ (1 << 63), m.va ^ (1 << 47)]
    bits = VA_BITS[t.arch]
    out += [int(x) for x in rnd.integers(0, MASK64, 200, dtype=np.uint64, endpoint=True)]
    out += [_canon(t.arch, int(x)) for x in rnd.integers(0, 1 << min(bits, 63), 200, dtype=np.uint64)]
    out += [0, MASK64, 1 << bits, (1 << bits) - 1, 1 << 63]
    return np.array(out, dtype=np.uint64)


def same(a: TranslationResult, b: TranslationResult, where: str) -> None:
    for f in ("pa", "page_size", "flags", "reason"):
        x, y = getattr(a, f), getattr(b, f)
        bad = np.flatnonzero(x != y)
        assert bad.size == 0, f"{where}: {f} differs at {bad.size} addresses, first {bad[0]}: {x[bad[0]]} != {y[bad[0]]}"


def compare(phys: MemoryView, arch: str, dtb: int, vas: np.ndarray, ttbr1: int | None = None,
            where: str = "") -> tuple[TranslationResult, int]:
    """Both walkers on ``vas`` and, after them, every address again elsewhere in its 4 KiB page (the C walk
    copies a page's earlier result); returns the result and how many addresses C handed to walk_many."""
    a = get_arch(arch)
    n0 = vas.shape[0]
    low = np.random.default_rng(n0).integers(0, 4096, n0, dtype=np.uint64)
    vas = np.concatenate([vas, vas ^ low])
    reader = walk_reader(phys)
    assert reader is not None, "a buffer-backed view has a compiled reader"
    n = vas.shape[0]
    outs = (np.zeros(n, np.uint64), np.zeros(n, np.uint64), np.zeros(n, np.uint8), np.zeros(n, np.uint8))
    fb = np.zeros(n, np.uint8)
    k = fast.speedups.walk(reader, arch_tuple(a), dtb, ttbr1, vas, *outs, fb)
    assert k == int(fb.sum())
    ref = walk_many(phys, a, dtb, vas, ttbr1)
    got = walk_compiled(reader, phys, a, dtb, vas, ttbr1)
    same(ref, got, f"{where} {arch}")
    c_done = fb == 0  # what C walked itself is walk_many's too, before any fall-back
    same(TranslationResult(*(x[c_done] for x in outs)),
         TranslationResult(ref.pa[c_done], ref.page_size[c_done], ref.flags[c_done], ref.reason[c_done]),
         f"{where} {arch} (C only)")
    return TranslationResult(ref.pa[:n0], ref.page_size[:n0], ref.flags[:n0], ref.reason[:n0]), k


@pytest.mark.parametrize("arch", ARCHS)
def test_built_tables_every_arch(arch: str) -> None:
    """Well-formed tables: both walkers agree with each other and with the mapping list (no walk)."""
    for seed in range(6):
        rnd = np.random.default_rng(seed)
        t = build(arch, rnd)
        vas = probes(t, rnd)
        for ttbr1 in ([t.root1, None] if arch == "aarch64" else [None]):
            ref, k = compare(t.mem, arch, t.root, vas, ttbr1, f"seed {seed}")
            assert k == 0, "every entry is inside the dummy memory: C walks all of it"
            if ttbr1 is None and arch == "aarch64":
                assert (ref.reason[vas >> np.uint64(63) == 1] == R_NON_CANONICAL).all()
                continue
            for i in range(0, vas.shape[0], 7):
                m = t.expect(int(vas[i]))
                if m is not None:
                    assert ref.reason[i] == R_OK and int(ref.pa[i]) == m.pa + int(vas[i]) - m.va
                    assert int(ref.page_size[i]) == m.size
        reasons = set(walk_many(t.mem, get_arch(arch), t.root, vas, t.root1).reason.tolist())
        assert {R_OK, R_NOT_PRESENT, R_NON_CANONICAL} <= reasons | ({R_NON_CANONICAL} if arch in ("x86", "x86pae") else set())


@pytest.mark.parametrize("arch", ARCHS)
def test_corrupted_tables_every_arch(arch: str) -> None:
    """Random entries written over the built tables: bad large bits, not-present levels, frames past memory."""
    a = get_arch(arch)
    esz = a.pte_size
    for seed in range(6):
        rnd = np.random.default_rng(100 + seed)
        t = build(arch, rnd)
        vas = probes(t, rnd)
        for _ in range(40):
            page = int(rnd.integers(1, t.next_free >> 12)) << 12
            slot = page + int(rnd.integers(0, 4096 // esz)) * esz
            v = int(rnd.integers(0, MASK64, dtype=np.uint64, endpoint=True)) & ((1 << (8 * esz)) - 1)
            if rnd.random() < 0.6:  # mostly inside memory, so the walk goes on below it
                v = (v & ~a.addr_mask & ((1 << (8 * esz)) - 1)) | (int(rnd.integers(0, t.next_free >> 12)) << 12)
            t.mem.write(slot, v.to_bytes(esz, "little"))
        ref, k = compare(t.mem, arch, t.root, vas, t.root1, f"seed {seed}")
        assert k < vas.shape[0]
        for big in (False, True):  # the same bytes read the other way round
            t.mem.little_endian = not big
            compare(t.mem, arch, t.root, vas, t.root1, f"seed {seed} big={big}")
        t.mem.little_endian = True


@pytest.mark.parametrize("arch", ARCHS)
def test_random_page_tables(arch: str) -> None:
    """Memory full of random entries (most pointing inside it): every rule of the architecture data is hit."""
    a = get_arch(arch)
    size = 1 << 20
    mem = DummyMemory(size)
    rnd = np.random.default_rng(7)
    words = rnd.integers(0, MASK64, size // 8, dtype=np.uint64, endpoint=True)
    inside = rnd.random(words.shape[0]) < 0.85
    addr_bits = np.uint64(a.addr_mask & (size - 1))
    words[inside] = (words[inside] & ~np.uint64(a.addr_mask)) | (words[inside] & addr_bits)
    mem.write(0, words.tobytes())
    vas = np.concatenate([rnd.integers(0, MASK64, 4000, dtype=np.uint64, endpoint=True),
                          rnd.integers(0, 1 << a.va_bits, 4000, dtype=np.uint64),
                          np.uint64(MASK64) - rnd.integers(0, 1 << a.va_bits, 2000, dtype=np.uint64)])
    reasons: set[int] = set()
    for dtb in rnd.integers(0, size, 8).tolist():
        ref, k = compare(mem, arch, dtb, vas, int(rnd.integers(0, size)) if arch == "aarch64" else None)
        assert k < vas.shape[0]
        reasons |= set(ref.reason.tolist())
        flags = set(ref.flags.tolist())
    assert R_READ_FAILED in reasons and R_OK in reasons and len(flags) > 2


def test_holes_go_to_the_numpy_walker() -> None:
    """Page tables next to a hole in the memory map: entries C cannot read are walked (and reported) by
    walk_many, the rest by C, and the results are one."""
    rnd = np.random.default_rng(3)
    t = build("x64", rnd, 60)
    vas = probes(t, rnd)
    # the same bytes behind a map with a hole over some table pages
    hole = (t.next_free // 2) & ~0xFFF
    mm = MemoryMap()
    mm.add(0, hole, 0)
    mm.add(hole + 0x2000, (4 << 20) - hole - 0x2000, hole + 0x2000)
    holed = DummyMemory(4 << 20, mem_map=mm)
    holed.write(0, t.mem.read(0, hole))
    holed.write(hole + 0x2000, t.mem.read(hole + 0x2000, (4 << 20) - hole - 0x2000))
    ref, k = compare(holed, "x64", t.root, vas)
    assert 0 < k < vas.shape[0] and R_READ_FAILED in set(ref.reason.tolist())


def test_architecture_beyond_the_c_walker_goes_to_numpy() -> None:
    """An MMU description past the C walker's limits (here five writable rules; it takes four) is walked by
    walk_many, with the same results."""
    from dataclasses import replace

    rnd = np.random.default_rng(4)
    t = build("x64", rnd)
    vas = probes(t, rnd)
    wide = replace(get_arch("x64"), name="x64-five-rules", writable=get_arch("x64").writable * 5)
    reader = walk_reader(t.mem)
    n = vas.shape[0]
    outs = (np.zeros(n, np.uint64), np.zeros(n, np.uint64), np.zeros(n, np.uint8), np.zeros(n, np.uint8),
            np.zeros(n, np.uint8))
    assert fast.speedups.walk(reader, arch_tuple(wide), t.root, None, vas, *outs) == -1
    same(walk_many(t.mem, get_arch("x64"), t.root, vas), walk_compiled(reader, t.mem, wide, t.root, vas), "five rules")


# ---- the synthetic Windows machines, through VirtualMemory ----------------------------------------

@pytest.fixture(scope="module", params=["win10-19041-x64", "win7-7601-x86pae"])
def windows(request: pytest.FixtureRequest) -> Iterator[tuple[Path, str, int]]:
    from pymemflow.demo import build_image

    img = build_image(request.param, seed=3, size=64 << 20)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "mem.raw"
        img.write_raw(str(path))
        yield path, ("x64" if request.param.endswith("x64") else "x86pae"), int(img.facts["dtb"])


def windows_addresses(vm: VirtualMemory, rnd: np.random.Generator) -> np.ndarray:
    lv = vm.leaves()
    pick = rnd.integers(0, lv.va.shape[0], 20000)
    inside = lv.va[pick] + rnd.integers(0, 1 << 62, 20000).astype(np.uint64) % lv.size[pick]
    other = rnd.integers(0, MASK64, 5000, dtype=np.uint64, endpoint=True)
    if vm.arch.pointer_size == 4:
        other &= np.uint64(0xFFFF_FFFF)
    return np.concatenate([inside, other, lv.va[:50] - np.uint64(1), lv.va[-50:] + lv.size[-50:]])


def test_windows_machine_walks(windows: tuple[Path, str, int]) -> None:
    path, arch, dtb = windows
    phys = RawFileMemory(path)
    try:
        vm = VirtualMemory(phys, arch, dtb)
        vas = windows_addresses(vm, np.random.default_rng(5))
        ref, k = compare(phys, arch, dtb, vas, where="synthetic Windows")
        assert k == 0 and (ref.reason == R_OK).sum() >= 20000
        assert ((ref.flags & 0x08) != 0).any(), "large pages are among them"
    finally:
        phys.close()


def test_windows_translate_and_read_compiled_equals_pure(windows: tuple[Path, str, int]) -> None:
    """translate_batch (C walk, C TLB placement) and batched reads == the pure path, cold and warm; after the
    cold batch the TLB serves the same batch to the compiled gather."""
    path, arch, dtb = windows
    phys, pphys = RawFileMemory(path), fast.force_pure(RawFileMemory(path))
    try:
        vm, pvm = VirtualMemory(phys, arch, dtb), VirtualMemory(pphys, arch, dtb)
        vas = windows_addresses(vm, np.random.default_rng(9))
        for _ in range(2):  # cold (walks), then warm (the TLB)
            same(pvm.translate_batch(vas), vm.translate_batch(vas), "translate_batch")
        vm.flush_tlb()
        ok = pvm.translate_batch(vas).reason == R_OK
        good = vas[ok] & ~np.uint64(7)
        for _ in range(2):
            v1, ok1 = vm.read_u64_many(good)
            v2, ok2 = pvm.read_u64_many(good)
            assert ok1.all() and ok2.all() and np.array_equal(v1, v2)
        out = np.empty(good.shape[0] * 8, np.uint8)
        assert vm._fast_gather_into(good, np.full(good.shape[0], 8, np.int64), out)
        assert np.array_equal(out.view(np.uint64), v2)
        r1, r2 = vm.read_batch(vas, 8), pvm.read_batch(vas, 8)  # with failures: the pure path reports them
        assert r1.failures == r2.failures and bytes(r1.data) == bytes(r2.data)
    finally:
        phys.close()
        pphys.close()


def test_pte_hook_stays_on_the_numpy_walker(windows: tuple[Path, str, int]) -> None:
    path, arch, dtb = windows
    phys = RawFileMemory(path)
    seen: list[int] = []

    def hook(pte: int, level: int, va: int) -> int | None:
        seen.append(va)
        return 0x1000 if level == len(get_arch(arch).levels) - 1 and pte else None

    try:
        vm = VirtualMemory(phys, arch, dtb, pte_hook=hook, tlb=False)
        vas = windows_addresses(vm, np.random.default_rng(1))
        got = vm.translate_batch(vas)
        n = len(seen)
        same(walk_many(phys, get_arch(arch), dtb, vas, None, hook), got, "hook")
        assert len(seen) == 2 * n
    finally:
        phys.close()


def test_tlb_placement_compiled_equals_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The TLB filled by the C placement (tlb_place, first_of) answers every look-up as the NumPy placement
    does (PYMEMFLOW_PURE=1's), through growth, repeated keys, changed values and a table at its capacity."""
    from pymemflow.arch import tlb as tlbmod

    rnd = np.random.default_rng(8)
    batches = []
    for size in (3000, 40000, 500, 70000):
        vpn = rnd.integers(0, 1 << 36, size, dtype=np.uint64)
        vpn[: size // 3] = vpn[size // 3: 2 * (size // 3)]  # repeated pages in one batch
        batches.append((vpn, rnd.integers(0, 1 << 60, size, dtype=np.uint64)))
    probe = np.concatenate([b[0] for b in batches] + [rnd.integers(0, 1 << 36, 5000, dtype=np.uint64)])

    def fill(compiled: bool, capacity: int) -> tuple[np.ndarray, np.ndarray, int]:
        if not compiled:
            monkeypatch.setattr(tlbmod.fast, "speedups", None)
        t = tlbmod.Tlb(tlbmod.TlbPolicy(capacity=capacity))
        for vpn, val in batches:
            t.insert("root", vpn, val)
        monkeypatch.undo()
        hit, val = t.lookup("root", probe)
        return hit, np.where(hit, val, 0), int(t.generation[0])

    c, p = fill(True, 1 << 20), fill(False, 1 << 20)  # room for everything: the same table contents
    assert np.array_equal(c[0], p[0]) and np.array_equal(c[1], p[1]) and c[0].sum() > 100000
    truth: dict[int, int] = {}
    for vpn, val in batches:  # a batch's first value of a page; a later batch's replaces it
        seen: set[int] = set()
        for k, v in zip(vpn.tolist(), val.tolist(), strict=True):
            if k not in seen:
                seen.add(k)
                truth[k] = v
    for compiled in (True, False):  # a table that has to start over: what it keeps is right
        hit, val, gen = fill(compiled, 1 << 14)
        assert gen > 0 and 0 < hit.sum() < hit.shape[0]
        assert all(truth[k] == v for k, v in zip(probe[hit].tolist(), val[hit].tolist(), strict=True))
