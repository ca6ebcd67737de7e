"""Issue 12, defect 4 and issue 13's read items: reads allocate what exists, not what is asked;
long reads stream; hexdumps are capped and mark unreadable bytes ``??``, never as zero data.

The CLI runs in a subprocess under ``RLIMIT_AS`` (an address-space limit far below the 4 GiB asked):
the old code allocated the whole length first and died with ``MemoryError``."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import numpy as np
import pytest

import pymemflow
from pymemflow.errors import PartialReadError, RangeError

GIB = 1 << 30


def run(*args: str, limit: int = GIB, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run([sys.executable, "-m", "pymemflow.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=cap)


@pytest.fixture
def image(tmp_path):
    """1 MiB raw image of seeded random bytes."""
    data = np.random.default_rng(12).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
    path = tmp_path / "one.img"
    path.write_bytes(data)
    return path, data


def test_phys_read_4g_hexdump_is_capped_not_allocated() -> None:
    res = run("-c", "dummy:size=1m", "phys-read", "0", "4g")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 0x10000 // 16
    assert lines[-1].startswith("0000fff0  00 00")
    assert res.stderr == ("pymemflow: note: hexdump capped at 0x10000 of 0x100000000 bytes; use --out FILE "
                          "(or --out - for stdout) to get all of it\n")


def test_phys_read_4g_to_a_file_streams(tmp_path, image) -> None:
    path, data = image
    out = tmp_path / "out.bin"
    res = run("-c", f"raw:{path}", "phys-read", "0", "4g", "--out", str(out))
    assert res.returncode == 1, res.stderr  # 4g - 1m of it is not there
    assert res.stderr.splitlines() == [
        f"wrote 4294967296 bytes to {out}",
        f"pymemflow: error: 4293918720 of 4294967296 bytes unreadable (zero-filled in {out}): "
        "0xfff00000 at 0x100000: not in memory map"]
    assert out.stat().st_size == 4 * GIB
    with open(out, "rb") as f:
        assert f.read(1 << 20) == data
        f.seek(3 * GIB)
        assert f.read(4096) == bytes(4096)
    assert out.stat().st_blocks * 512 < 64 << 20  # the unreadable tail is a hole, not written zeros


def test_phys_read_4g_to_stdout_streams(image) -> None:
    path, data = image
    proc = subprocess.Popen([sys.executable, "-m", "pymemflow.cli.main", "-c", f"raw:{path}", "phys-read", "0",
                             "4g", "--out", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (GIB, GIB)))
    assert proc.stdout is not None and proc.stderr is not None
    head = proc.stdout.read(1 << 20)
    total = len(head)
    while chunk := proc.stdout.read(1 << 22):
        total += len(chunk)
        assert not any(chunk[::4096])
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 1, err
    assert head == data and total == 4 * GIB
    assert "4293918720 of 4294967296 bytes unreadable (zero-filled on stdout)" in err


def test_process_read_4g_to_a_file_streams(tmp_path) -> None:
    out = tmp_path / "proc.bin"
    chain = ["-c", "demo:win10,size=64m", "-o", "win32"]
    mods = json.loads(run(*chain, "--json", "modules", "-p", "152", limit=4 * GIB).stdout)
    base = next(m["base"] for m in mods if m["name"] == "smss.exe")
    res = run(*chain, "read", "-p", "152", hex(base), "4g", "--out", str(out), limit=2 * GIB)
    assert res.returncode == 1, res.stderr  # most of 4 GiB after a module is unmapped
    assert out.stat().st_size == 4 * GIB
    assert f"wrote 4294967296 bytes to {out}" in res.stderr and "unreadable (zero-filled in" in res.stderr
    with open(out, "rb") as f:
        assert f.read(2) == b"MZ"


def test_unmapped_bytes_are_question_marks_not_zeros() -> None:
    res = run("-c", "dummy:size=1m", "phys-read", "0xffff8", "0x18")
    assert res.returncode == 1
    assert res.stdout.splitlines() == [
        "000ffff8  00 00 00 00 00 00 00 00  ?? ?? ?? ?? ?? ?? ?? ??  |........        |",
        "00100008  ?? ?? ?? ?? ?? ?? ?? ??                           |        |"]
    assert res.stderr == ("pymemflow: error: 16 of 24 bytes unreadable (shown as ??): "
                          "0x10 at 0x100000: not in memory map\n")


def test_unmapped_bytes_in_json_hexdump() -> None:
    res = run("-c", "dummy:size=1m", "--json", "phys-read", "0xffffc", "8")
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    assert doc["hex"] == "00000000????????"
    assert doc["unreadable"] == [{"address": 0x100000, "length": 4, "reason": "not in memory map"}]


def test_out_file_is_not_overwritten_without_force(tmp_path, image) -> None:
    path, data = image
    out = tmp_path / "keep.bin"
    out.write_bytes(b"precious")
    res = run("-c", f"raw:{path}", "phys-read", "0", "16", "--out", str(out))
    assert res.returncode == 2 and f"{out} exists; pass --force to overwrite it" in res.stderr
    assert out.read_bytes() == b"precious"
    assert run("-c", f"raw:{path}", "phys-read", "0", "16", "--out", str(out), "--force").returncode == 0
    assert out.read_bytes() == data[:16]


def test_address_past_64_bits_is_a_usage_error() -> None:
    res = run("-c", "dummy:size=1m", "phys-read", "0x10000000000000000", "16")
    assert res.returncode == 2
    assert "0x10000000000000000 is out of range (allowed 0 .. 0xffffffffffffffff)" in res.stderr
    assert "internal error" not in res.stderr


def test_python_read_far_larger_than_target_is_refused() -> None:
    with pymemflow.open("dummy:size=1m") as mem:
        with pytest.raises(RangeError, match=r"read of 0x100000000 bytes is far larger than the target "
                                             r"\(0x100000 bytes of address space\).*iter_read"):
            mem.read(0, 4 * GIB)
        with pytest.raises(RangeError, match="batched read"):
            mem.read_batch([0] * 4096, 1 << 20)
        with pytest.raises(PartialReadError):  # a little past the end is an ordinary partial read
            mem.read(0xFF000, 0x2000)


def test_python_iter_read_streams_in_bounded_chunks() -> None:
    with pymemflow.open("dummy:size=1m") as mem:
        mem.write(0xFFFFC, b"abcd")
        sizes, bad = [], 0
        for addr, data, failures in mem.iter_read(0xFFFFC, 4 * GIB, chunk=1 << 24):
            sizes.append(len(data))
            bad += sum(f.length for f in failures)
            if addr == 0xFFFFC:
                assert data[:4] == b"abcd" and failures[0].address == 0x100000
        assert max(sizes) == 1 << 24 and sum(sizes) == 4 * GIB and bad == 4 * GIB - 4
