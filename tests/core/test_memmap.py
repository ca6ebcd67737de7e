"""MemoryMap: lookups, splitting at range boundaries, holes, memflow TOML round trip and bad TOML."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymemflow.errors import FormatError
from pymemflow.mem.memmap import HOLE, MemoryMap


def two_ranges() -> MemoryMap:
    # 0x1000-0x2000 -> 0, 0x3000-0x4000 -> 0x2000 (memflow's own doc example)
    return MemoryMap([(0x1000, 0x1000, 0), (0x3000, 0x1000, 0x2000)])


def test_lookup_single_and_holes():
    m = two_ranges()
    assert m.lookup(0x10FF) == (0xFF, 0xF01)
    assert m.lookup(0x30FF) == (0x20FF, 0xF01)
    assert m.lookup(0x0FFF) is None and m.lookup(0x2000) is None and m.lookup(0x4000) is None
    assert m.find(0x3FFF) == 1 and m.find(0x2FFF) == -1
    assert m.max_address == 0x4000 and m.real_size == 0x2000


def test_lookup_many_matches_single():
    m = MemoryMap([(i * 0x3000, 0x1000, i * 0x1000) for i in range(100)])
    addrs = np.random.default_rng(1).integers(0, 0x3000 * 101, 5000).astype(np.uint64)
    real, ok = m.lookup_many(addrs)
    for a, r, o in zip(addrs.tolist(), real.tolist(), ok.tolist(), strict=True):
        got = m.lookup(a)
        assert o == (got is not None)
        if got:
            assert r == got[0]


def test_insertion_order_does_not_matter():
    a = MemoryMap([(0x3000, 0x1000, 0x2000), (0x1000, 0x1000, 0)])
    assert a == two_ranges()
    assert [r.base for r in a] == [0x1000, 0x3000]


@pytest.mark.parametrize("rng", [(0x1800, 0x100), (0x0800, 0x1000), (0x3FFF, 0x10), (0x1000, 0x3000)])
def test_overlap_rejected(rng):
    with pytest.raises(ValueError, match="overlaps"):
        two_ranges().add(*rng)


def test_split_inside_one_range_is_simple():
    m = two_ranges()
    mp = m.split(np.array([0x1000, 0x3008], np.uint64), np.array([8, 16], np.int64))
    assert mp.simple and not mp.failures
    assert mp.real.tolist() == [0, 0x2008] and mp.out_off.tolist() == [0, 8]


def test_split_across_boundary_and_hole():
    m = two_ranges()
    # piece 0 runs from the end of range 0 through the hole into range 1; piece 1 is in a hole
    mp = m.split(np.array([0x1FF0, 0x2500], np.uint64), np.array([0x1020, 4], np.int64))
    assert not mp.simple
    chunks = sorted(zip(mp.index.tolist(), mp.addr.tolist(), mp.real.tolist(), mp.length.tolist(),
                        mp.out_off.tolist(), strict=True))
    assert chunks == [(0, 0x1FF0, 0xFF0, 0x10, 0), (0, 0x3000, 0x2000, 0x10, 0x1010)]
    assert [(f.index, f.address, f.length, f.reason) for f in mp.failures] == [
        (0, 0x2000, 0x1000, HOLE), (1, 0x2500, 4, HOLE)]


def test_split_piece_past_top_of_address_space():
    m = MemoryMap([(0xFFFF_FFFF_FFFF_F000, 0x1000, 0)])
    mp = m.split(np.array([0xFFFF_FFFF_FFFF_FFF8], np.uint64), np.array([16], np.int64))
    assert mp.length.tolist() == [8]
    assert [(f.address, f.length) for f in mp.failures] == [(1 << 64, 8)]


def test_split_empty_map_fails_everything():
    mp = MemoryMap().split(np.array([0, 5], np.uint64), np.array([1, 0], np.int64))
    assert [(f.index, f.length) for f in mp.failures] == [(0, 1)]


def test_toml_round_trip(tmp_path):
    m = MemoryMap([(0, 0x9F000, 0), (0x100000, 0x7FF00000, 0x9F000), (0xFFFF_FFFF_0000_0000, 0x1000, 0x10)])
    p = tmp_path / "map.toml"
    m.save(p)
    assert MemoryMap.load(p) == m
    assert "[[range]]" in p.read_text()


def test_toml_memflow_format_hex_strings_and_default_real_base():
    text = """
[[range]]
base=0x1000
length=0x1000

[[range]]
base="0x3000"
length="4k"
real_base=0x2000
"""
    m = MemoryMap.loads(text)
    assert [(r.base, r.length, r.real_base) for r in m] == [(0x1000, 0x1000, 0x1000), (0x3000, 0x1000, 0x2000)]


@pytest.mark.parametrize(
    "text, field",
    [
        ("[[range]]\nbase=0x1000\n", "range[0].length"),
        ("[[range]]\nbase=0\nlength=0x1000\n[[range]]\nbase=0x800\nlength=0x10\n", "range[1]"),
        ('[[range]]\nbase="zz"\nlength=1\n', "range[0].base"),
        ("[[range]]\nbase=-1\nlength=1\n", "range[0].base"),
        ("[[range]]\nbase=1.5\nlength=1\n", "range[0].base"),
        ("[[range]]\nbase=0\nlength=1\nsize=3\n", "range[0].size"),
        ("[ranges]\nx=1\n", "ranges"),
        ("range = 5\n", "range"),
        ("[[range]\nbase=", "toml"),
        ('[[range]]\nbase="0xffffffffffffffff"\nlength=2\n', "range[0]"),
    ],
)
def test_bad_toml_is_format_error(text, field, tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(FormatError) as e:
        MemoryMap.load(p)
    assert e.value.field == field and str(p) in str(e.value)


def test_missing_and_binary_files_are_format_errors(tmp_path):
    with pytest.raises(FormatError, match="cannot read"):
        MemoryMap.load(tmp_path / "nope.toml")
    p = tmp_path / "bin.toml"
    p.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(FormatError, match="UTF-8"):
        MemoryMap.load(p)


def test_clipped_and_shifted():
    m = two_ranges()
    assert m.clipped(0x1800).ranges == MemoryMap([(0x1000, 0x1000, 0)]).ranges
    assert [r.length for r in m.clipped(0x2800)] == [0x1000, 0x800]
    assert [r.real_base for r in m.shifted(0x40)] == [0x40, 0x2040]


def test_many_ranges_load_in_linearithmic_time():
    # 20k ranges in reverse order: quadratic insertion would take minutes
    text = "".join(f"[[range]]\nbase={(20_000 - i) * 0x2000:#x}\nlength=0x1000\n" for i in range(20_000))
    m = MemoryMap.loads(text)
    assert len(m) == 20_000 and m.lookup(0x2000 * 7 + 5) == (0x2000 * 7 + 5, 0xFFB)
    real, ok = m.lookup_many(np.array([0x2000 * 9, 0x2000 * 9 + 0x1000], np.uint64))
    assert ok.tolist() == [True, False]


@settings(max_examples=150, deadline=None)
@given(st.one_of(
    st.binary(max_size=300),
    st.text(alphabet='[]"=\n0x123abcdefgrangelthbs_ .,-+', max_size=300),
    st.lists(st.tuples(st.sampled_from(["base", "length", "real_base", "size"]),
                       st.one_of(st.integers(-2, 2**65), st.text(max_size=8), st.booleans())),
             max_size=6).map(lambda kv: "[[range]]\n" + "".join(
                 f"{k} = {v!r}\n".replace("'", '"').replace("True", "true").replace("False", "false")
                 for k, v in kv)),
))
def test_fuzz_loads_only_format_errors(data):
    try:
        m = MemoryMap.loads(data)
    except FormatError as e:
        assert e.field
        return
    for a, b in zip(m.ranges, m.ranges[1:], strict=False):
        assert a.end <= b.base
