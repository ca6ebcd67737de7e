"""``pymemflow bench`` (memflow's read_bench grid) on real chains: the synthetic Windows machine,
this Linux machine (-o native) and physical memory; what it counts must add up."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from pymemflow.bench import BATCH_SIZES, CHUNK_SIZES, read_bench
from pymemflow.cli.main import main
from pymemflow.connectors.dummy import DummyMemory


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def check_grid(doc: dict, chunks: tuple[int, ...] = CHUNK_SIZES, batches: tuple[int, ...] = BATCH_SIZES) -> None:
    cells = doc["cells"]
    assert [(c["chunk"], c["batch"]) for c in cells] == [(c, b) for c in chunks for b in batches]
    for c in cells:
        assert c["reads"] >= c["batch"] and c["seconds"] > 0
        assert c["bytes"] == c["reads"] * c["chunk"]
        assert 0 <= c["failed_bytes"] <= c["bytes"]
        assert c["reads_per_s"] == pytest.approx(c["reads"] / c["seconds"])
        assert c["mb_per_s"] == pytest.approx(c["bytes"] / c["seconds"] / 1e6)


def test_bench_win32_demo_picks_a_module_of_a_real_process(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "-c", "demo", "-o", "win32", "bench", "--seconds", "0.01")
    check_grid(doc)
    t = doc["target"]
    assert t["memory"] == "virtual"
    ps = run_json(capsys, "-c", "demo", "-o", "win32", "ps")
    assert {"pid": t["pid"], "name": t["process"]} in [{"pid": p["pid"], "name": p["name"]} for p in ps]
    mods = run_json(capsys, "-c", "demo", "-o", "win32", "modules", "-p", str(t["pid"]))
    mod = next(m for m in mods if m["name"] == t["module"])
    assert (t["start"], t["size"]) == (mod["base"], mod["size"])
    # the synthetic machine maps only some pages of each module (the rest is paged out): failures are
    # counted, and in the same proportion as the readable pages
    assert 0 < t["readable_fraction"] < 1
    failed = sum(c["failed_bytes"] for c in doc["cells"]) / sum(c["bytes"] for c in doc["cells"])
    assert failed == pytest.approx(1 - t["readable_fraction"], abs=0.15)


def test_bench_named_process_and_module(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "-c", "demo", "-o", "win32", "bench", "-p", "explorer.exe", "-m", "kernel32.dll",
                   "--chunks", "0x1000,8", "--batches", "1,4", "--seconds", "0.005")
    check_grid(doc, (0x1000, 8), (1, 4))
    assert doc["target"]["process"] == "explorer.exe" and doc["target"]["module"].lower() == "kernel32.dll"


def test_bench_native_own_process(capsys: pytest.CaptureFixture[str]) -> None:
    """This process's memory through process_vm_readv: a range we know is mapped reads without failures."""
    buf = np.frombuffer(os.urandom(1 << 20), dtype=np.uint8)
    addr = buf.ctypes.data
    doc = run_json(capsys, "-o", "native", "bench", "-p", str(os.getpid()), "--start", hex(addr),
                   "--size", hex(buf.size), "--seconds", "0.005")
    check_grid(doc)
    assert doc["target"]["pid"] == os.getpid() and doc["target"]["readable_fraction"] == 1.0
    assert all(c["failed_bytes"] == 0 for c in doc["cells"])
    doc = run_json(capsys, "-o", "native", "bench", "-p", str(os.getpid()), "--chunks", "0x100",
                   "--seconds", "0.005")
    assert doc["target"]["module"] and doc["target"]["size"] >= 0x100


def test_bench_physical_counts_unreadable_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "-c", "dummy:size=1m", "bench", "--seconds", "0.005")
    check_grid(doc)
    assert doc["target"] == {"memory": "physical", "start": 0, "size": 1 << 20, "readable_fraction": 1.0}
    assert all(c["failed_bytes"] == 0 for c in doc["cells"])
    # half of the range lies past the end of memory: about half of the bytes fail
    doc = run_json(capsys, "-c", "dummy:size=1m", "bench", "--start", "0xe0000", "--size", "0x40000",
                   "--chunks", "0x10", "--batches", "1,32", "--seconds", "0.01")
    assert doc["target"]["readable_fraction"] == 0.5
    for c in doc["cells"]:
        assert c["failed_bytes"] == pytest.approx(c["bytes"] / 2, rel=0.2)


def test_bench_text_output_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", "dummy:size=1m", "bench", "--chunks", "0x100,8", "--batches", "1,8", "--seconds",
                 "0.002"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("read bench: physical memory, 0x0..0x100000 (0x100000 bytes, 100% of pages readable)")
    assert "X1 MB/S" in out and "X8 READS/S" in out and "0x100" in out
    for argv, msg in ((["--start", "0x1000"], "--start and --size go together"),
                      (["--start", "0", "--size", "0x10"], "larger than the range"),
                      (["--chunks", "0"], "positive numbers"),
                      (["--seconds", "0"], "--seconds must be positive"),
                      (["--start", "0x1000", "--size", "0"], "bench: empty range")):
        assert main(["-c", "dummy:size=1m", "bench", *argv]) == 2
        assert msg in capsys.readouterr().err
    assert main(["-c", "demo", "-o", "win32", "bench", "--start", "0", "--size", "0x10000"]) == 2
    assert "need -p PROCESS" in capsys.readouterr().err


def test_read_bench_library_reads_what_is_there() -> None:
    mem = DummyMemory(1 << 20)
    mem.write(0, bytes(range(256)) * 4096)
    cells = read_bench(mem, 0x1000, 0x2000, chunk_sizes=(0x1000, 8), batch_sizes=(1, 3), seconds=0.002, seed=1)
    assert [(c.chunk, c.batch) for c in cells] == [(0x1000, 1), (0x1000, 3), (8, 1), (8, 3)]
    assert all(c.failed_bytes == 0 and c.reads > 0 for c in cells)
    with pytest.raises(ValueError, match="larger than the range"):
        read_bench(mem, 0, 0x100, chunk_sizes=(0x1000,))
