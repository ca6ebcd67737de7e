"""The compiled read path (pymemflow.mem._speedups) against the pure-Python path it replaces.

Same inputs, both paths, in one process (``fast.force_pure`` keeps a view on the pure path): bytes,
per-piece failures, exception types and values must be identical. Then the pure path on its own in a
subprocess (``PYMEMFLOW_PURE=1``), an import with the extension hidden, and ``pip install`` with no
working compiler (the extension is optional).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pymemflow.connectors.raw import RawFileMemory
from pymemflow.errors import PartialReadError, RangeError
from pymemflow.mem import fast
from pymemflow.mem.memmap import MemoryMap

ROOT = Path(__file__).resolve().parents[2]
STORE = 0x3000
SPACE = 0x6000
CONTENT = bytes(np.random.default_rng(11).integers(0, 256, STORE, dtype=np.uint8))
TYPED = ["read_u8", "read_u16", "read_u32", "read_u64", "read_i8", "read_i16", "read_i32", "read_i64",
         "read_f32", "read_f64", "read_ptr"]

compiled_only = pytest.mark.skipif(not fast.compiled(), reason=f"compiled path not in use: {fast.READ_PATH}")


def outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    """What a call did: its value, or its exception type with the data and failures it carried."""
    try:
        v = fn(*args)
    except PartialReadError as e:
        return "partial", (e.data, e.failures)
    except (RangeError, TypeError, ValueError) as e:
        return type(e).__name__, str(e)
    if isinstance(v, float) and v != v:  # NaN: compare bit patterns' classes
        return "nan", None
    return "ok", v


def batch_outcome(mem: Any, addrs: Any, lengths: Any) -> tuple[list[bytes], list[Any], list[int]]:
    res = mem.read_batch(addrs, lengths)
    return [res.piece(i) for i in range(len(res))], res.failures, res.offsets.tolist()


@st.composite
def layouts(draw: st.DrawFn) -> tuple[list[tuple[int, int, int]], list[tuple[int, int]]]:
    cuts = sorted(set(draw(st.lists(st.integers(0, SPACE), min_size=2, max_size=10))))
    ranges = [(a, b - a, draw(st.integers(0, STORE + 0x100)))
              for a, b in zip(cuts[::2], cuts[1::2], strict=False) if b > a]
    pieces = draw(st.lists(st.tuples(st.integers(0, SPACE + 0x100), st.integers(0, 0x1800)), min_size=1,
                           max_size=70))
    if draw(st.booleans()):
        pieces = [(a, n % 17) for a, n in pieces]
    return ranges, pieces


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("speedups") / "store.raw"
    p.write_bytes(CONTENT)
    return p


@compiled_only
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layouts())
def test_physical_compiled_equals_pure(store: Path, layout: Any) -> None:
    ranges, pieces = layout
    with RawFileMemory(store, mem_map=MemoryMap(ranges)) as c, \
            RawFileMemory(store, mem_map=MemoryMap(ranges)) as p:
        fast.force_pure(p)
        assert "_compiled_reader" in c.__dict__ and "_compiled_reader" not in p.__dict__
        addrs = [a for a, _ in pieces]
        lens = [n for _, n in pieces]
        for a_in, n_in in ((addrs, lens), (np.array(addrs, np.uint64), np.array(lens, np.int64)),
                           (np.array(addrs, np.uint64), 8)):
            assert batch_outcome(c, a_in, n_in) == batch_outcome(p, a_in, n_in)
        for a, n in pieces[:20]:
            assert outcome(c.read, a, n) == outcome(p.read, a, n)
            for name in TYPED:
                assert outcome(getattr(c, name), a) == outcome(getattr(p, name), a), (name, a)
        vc, okc = c.read_u64_many(addrs)
        vp, okp = p.read_u64_many(addrs)
        assert okc.tolist() == okp.tolist() and vc[okc].tolist() == vp[okp].tolist()
        rep = np.array(addrs * (300 // len(addrs) + 1), np.uint64)  # >= 2 blocks of the compiled gather
        for size in (8, 16):
            assert batch_outcome(c, rep, size) == batch_outcome(p, rep, size)
            gc, fc = c.read_gather(rep, size)
            gp, fp = p.read_gather(rep, size)
            assert fc == fp and gc.tobytes() == gp.tobytes()


@compiled_only
def test_range_hint_across_ranges(store: Path) -> None:
    """The compiled physical gather asks the range that answered last first: pieces that alternate between
    ranges, fall in the hole between them or run past a range's end must read exactly as the pure path."""
    ranges = [(0, 0x1000, 0), (0x2000, 0x800, 0x1000), (0x4000, 0x1000, 0x2000)]
    with RawFileMemory(store, mem_map=MemoryMap(ranges)) as c, RawFileMemory(store, mem_map=MemoryMap(ranges)) as p:
        fast.force_pure(p)
        good = np.array([0x10, 0x2010, 0x4010, 0x2400, 0x20, 0x4ff8, 0x27f8] * 40, np.uint64)  # > 2 blocks
        assert batch_outcome(c, good, 8) == batch_outcome(p, good, 8)
        assert c._compiled_reader.gather_into(good, 8, bytearray(good.shape[0] * 8))  # served in C
        assert c.read_batch(good, 8).failures == [] and c.read_gather(good, 8)[0].tobytes() == b"".join(
            CONTENT[r + (a - b): r + (a - b) + 8] for a in good.tolist() for b, n, r in ranges if b <= a < b + n)
        for bad in (0x1000, 0x27fc, 0x3000):  # the hole, across the end of a range, another hole
            mixed = good.copy()
            mixed[150] = bad
            assert batch_outcome(c, mixed, 8) == batch_outcome(p, mixed, 8)
            assert len(c.read_batch(mixed, 8).failures) == 1


@compiled_only
def test_compiled_edges(store: Path) -> None:
    """Addresses the C code must hand back to Python: negative, 2**64 and beyond, non-integers, bool."""
    with RawFileMemory(store) as c, RawFileMemory(store) as p:
        fast.force_pure(p)
        for a in (-1, 2**64 - 1, 2**64, 2**70, STORE - 1, STORE - 8, STORE):
            for name in ("read_u8", "read_u64", "read_i32"):
                assert outcome(getattr(c, name), a) == outcome(getattr(p, name), a), (name, a)
            for n in (0, 1, 8, -1):
                assert outcome(c.read, a, n) == outcome(p.read, a, n), (a, n)
        with pytest.raises(TypeError):
            c.read_u64("0x10")  # type: ignore[arg-type]
        for bad in ([1.5], [-1], [2**64], ["x"], [True], np.array([-1], np.int64), [[0, 8]]):
            assert outcome(batch_outcome, c, bad, 8) == outcome(batch_outcome, p, bad, 8), bad
            assert outcome(batch_outcome, c, [0], bad) == outcome(batch_outcome, p, [0], bad), bad
        assert batch_outcome(c, [0, 8], [8, 1]) == batch_outcome(p, [0, 8], [8, 1])


@compiled_only
def test_setting_changes_and_close_rebuild(store: Path) -> None:
    """Byte order and pointer width set after opening, a new memory map and close() all reach the reader."""
    c = RawFileMemory(store)
    assert c.read_u32(0x10) == int.from_bytes(CONTENT[0x10:0x14], "little")
    c.little_endian = False
    assert c.read_u32(0x10) == int.from_bytes(CONTENT[0x10:0x14], "big")
    c.pointer_size = 4
    assert c.read_ptr(0x10) == int.from_bytes(CONTENT[0x10:0x14], "big")
    c.set_mem_map(MemoryMap([(0x10000, 0x1000, 0x100)]))
    assert c.read(0x10000, 4) == CONTENT[0x100:0x104]
    with pytest.raises(PartialReadError):
        c.read(0, 4)
    c.close()
    assert "_compiled_reader" not in c.__dict__
    with pytest.raises(Exception, match="closed"):
        c.read_batch([0x10000], 8)


def test_read_path_is_reported() -> None:
    """``--version`` and ``info`` say which read path runs, and PYMEMFLOW_PURE=1 switches it."""
    assert fast.READ_PATH.startswith("compiled" if fast.compiled() else "pure")
    for env, want in (({}, fast.READ_PATH), ({"PYMEMFLOW_PURE": "1"}, "pure Python (PYMEMFLOW_PURE=1)")):
        r = subprocess.run([sys.executable, "-m", "pymemflow", "--version"], capture_output=True, text=True,
                           env={**os.environ, **env}, timeout=120)
        assert r.returncode == 0 and f"read path: {want}" in r.stdout, r.stdout + r.stderr
        r = subprocess.run([sys.executable, "-m", "pymemflow", "-c", "dummy:size=1m", "info", "--json"],
                           capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
        assert r.returncode == 0 and json.loads(r.stdout)["read_path"] == want, r.stdout + r.stderr


def _run(code: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})}, **kw)


PURE_SUBSET = ["tests/core/test_property.py", "tests/core/test_view.py", "tests/core/test_speedups.py::test_scatter",
               "tests/arch/test_arch_reads.py"]


@pytest.mark.slow
def test_pure_path_subset_in_subprocess() -> None:
    """A representative subset of the suite on the pure-Python path (PYMEMFLOW_PURE=1), in its own process."""
    r = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *PURE_SUBSET],
                       capture_output=True, text=True, timeout=1800, cwd=ROOT,
                       env={**os.environ, "PYMEMFLOW_PURE": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert " passed" in r.stdout
    check = _run("from pymemflow.mem import fast; print(fast.READ_PATH)", {"PYMEMFLOW_PURE": "1"})
    assert check.stdout.startswith("pure Python (PYMEMFLOW_PURE=1)")


HIDE = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "pymemflow.mem._speedups":
            raise ImportError("hidden by the test")
sys.meta_path.insert(0, Hide())
"""


def test_works_with_the_extension_hidden(store: Path) -> None:
    code = HIDE + f"""
from pymemflow.connectors.raw import RawFileMemory
from pymemflow.mem import fast
assert not fast.compiled(), fast.READ_PATH
m = RawFileMemory({str(store)!r})
assert m.read_u64(8) == int.from_bytes({CONTENT[8:16]!r}, "little")
res = m.read_batch([0, 16], [4, 4])
assert res.piece(1) == {CONTENT[16:20]!r} and not res.failures
print(fast.READ_PATH)
"""
    r = _run(code, {"PYMEMFLOW_PURE": "0"})  # the hidden extension, not PYMEMFLOW_PURE=1, must be the reason
    assert r.returncode == 0, r.stderr
    assert "compiled path not available" in r.stdout


@pytest.mark.slow
def test_pip_install_without_a_compiler(tmp_path: Path, store: Path) -> None:
    """``pip install .`` with CC=false: the build of the extension fails, the install does not."""
    target = tmp_path / "site"
    # a copy without build products: a checkout installed before keeps a built extension in build/ (and an
    # editable install one beside the sources), which setuptools would reuse instead of compiling
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns("build", ".venv", ".git", "*.so", "*.egg-info",
                                                                 "tests", "benchmarks", "__pycache__"))
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-cache-dir",
                        "-q", "--target", str(target), str(source)], capture_output=True, text=True, timeout=900,
                       env={**os.environ, "CC": "false", "LDSHARED": "false"}, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert (target / "pymemflow" / "mem" / "fast.py").exists()
    assert not list((target / "pymemflow" / "mem").glob("_speedups*.so"))
    code = f"""
import pymemflow, sys
assert pymemflow.__file__.startswith({str(target)!r}), pymemflow.__file__
from pymemflow.connectors.raw import RawFileMemory
from pymemflow.mem import fast
m = RawFileMemory({str(store)!r})
assert m.read(0, 8) == {CONTENT[:8]!r}
print(fast.READ_PATH)
"""
    r = _run(code, {"PYTHONPATH": str(target), "PYMEMFLOW_PURE": "0"}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "compiled path not available" in r.stdout


def test_scatter(store: Path) -> None:
    with RawFileMemory(store, mem_map=MemoryMap([(0, 0x1000, 0), (0x2000, 0x1000, 0x1000)])) as m:
        s = m.scatter()
        s.prepare(0x10, 8)
        s.prepare(0x2000, 0x100)
        s.prepare(0xFF8, 0x10)  # runs into the hole at 0x1000
        s.prepare(0x10, 8)  # asked twice, read once
        assert len(s) == 3
        with pytest.raises(RuntimeError):
            s.read(0x10, 8)
        s.execute()
        assert s.read(0x10, 8) == CONTENT[0x10:0x18]
        assert s.read_u64(0x10) == int.from_bytes(CONTENT[0x10:0x18], "little")
        assert s.read(0x2010, 4) == CONTENT[0x1010:0x1014]  # part of a prepared range
        assert s.read(0xFF8, 8) == CONTENT[0xFF8:0x1000] and s.ok(0xFF8, 8)
        assert not s.ok(0xFF8, 0x10)
        with pytest.raises(PartialReadError) as e:
            s.read(0xFF8, 0x10)
        assert e.value.data == CONTENT[0xFF8:0x1000] + bytes(8)
        assert [(f.address, f.length) for f in e.value.failures] == [(0x1000, 8)]
        assert s.read(0xFF8, 0x10, zero_fill=True) == e.value.data
        with pytest.raises(KeyError):
            s.read(0x3000, 1)
        s.clear()
        assert len(s) == 0
