"""psscan on the synthetic Windows machines: every process object carved from physical memory by pool
tag, the DKOM-unlinked one flagged ``unlinked``, the exited one ``exited``; checked against the
machines' ground truth and against volatility3's windows.psscan on the same raw file."""

from __future__ import annotations

import json
import mmap
import random
import struct
from pathlib import Path

import pytest

from pymemflow.cli.main import main
from pymemflow.mem.buffer import MmapMemory
from pymemflow.mem.memmap import MemoryMap
from pymemflow.os.win32.pool import scan_pool
from pymemflow.os.win32.psscan import ProcLayout, check_eprocess

from .winpsnet_env import MASK48, Machine, machine, vol, vol_offset


@pytest.fixture(scope="module", params=["win10", "win7"])
def m(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, ref_data: Path) -> Machine:
    return machine(request.param, tmp_path_factory.mktemp(f"psscan-{request.param}"), ref_data)


def want(m: Machine) -> set[tuple[int, int, str, str, int]]:
    f = m.img.facts
    rows = {(p["pid"], p["ppid"], p["image_file_name"], "listed" if p["alive"] else "exited", p["eprocess"])
            for p in f["processes"]}
    return rows | {(p["pid"], p["ppid"], p["image_file_name"], "unlinked", p["eprocess"])
                   for p in f["unlinked_processes"]}


def test_psscan_finds_every_process_with_its_flag(m: Machine) -> None:
    got = m.kernel.psscan()
    assert {(p.pid, p.ppid, p.name, p.flag, p.address) for p in got} == want(m)
    assert {p.physical_address for p in got} == {m.kernel.kmem.translate(p.address) for p in got}
    by_pid = {p.pid: p for p in got}
    for p in m.img.facts["processes"]:
        assert by_pid[p["pid"]].dtb == p["dtb"]
    assert not m.kernel.warnings


def test_unlinked_process_is_missing_from_the_list_and_found_by_psscan(m: Machine) -> None:
    (hidden,) = m.img.facts["unlinked_processes"]
    assert hidden["pid"] not in {p.pid for p in m.kernel.process_info_list()}
    (carved,) = [p for p in m.kernel.psscan() if p.flag == "unlinked"]
    assert (carved.pid, carved.name, carved.exited, carved.listed) == (hidden["pid"], "backdoor.exe", False, False)
    (dead,) = [p for p in m.kernel.psscan() if p.flag == "exited"]
    assert dead.exit_time is not None and dead.exit_time > (dead.create_time or "")


@pytest.mark.slow
def test_volatility_psscan_agrees(m: Machine) -> None:
    pytest.importorskip("volatility3")
    rows = vol(m, "windows.psscan")
    theirs = {(r["PID"], r["PPID"], r["ImageFileName"], r["ExitTime"] is not None, r["Offset(V)"] & MASK48)
              for r in rows}
    where = vol_offset(m)
    ours = {(p.pid, p.ppid, p.name, p.exited, where(p.address)) for p in m.kernel.psscan()}
    assert ours == theirs


def test_cli_psscan_json(m: Machine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", f"raw:{m.raw}", "-o", "win32", "psscan", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["pid"], r["flag"]) for r in rows} == {(w[0], w[3]) for w in want(m)}


def test_garbage_with_process_tags_yields_nothing(m: Machine) -> None:
    """Random memory full of aligned 'Proc' pool headers: the headers pass, no EPROCESS validates."""
    size = 4 << 20
    data = bytearray(random.Random(5).randbytes(size))
    x64 = m.img.facts["arch"] == "x64"
    for at in range(0, size, 0x1000):
        head = struct.pack("<BBBB4s", 0, 0, 0xC0, 2, b"Proc") if x64 else struct.pack("<I4s", (0x180 << 16) | (2 << 25), b"Proc")
        data[at + 0x40 : at + 0x40 + len(head)] = head
    mm = mmap.mmap(-1, size)
    mm[:] = data
    mem = MmapMemory(mm, MemoryMap.identity(size), writable=False)
    blocks = list(scan_pool(mem, {b"Proc": 0x400}, x64))
    assert len(blocks) == size // 0x1000
    said: list[str] = []
    assert len(list(scan_pool(mem, {b"Proc": 0x400}, x64, warnings=said, max_hits=100))) == 100
    assert len(said) == 1 and "more than 100 tagged blocks" in said[0]
    lay = ProcLayout.of(m.kernel)
    assert all(check_eprocess(b.data[off : off + lay.size], lay, m.img.facts["arch"]) is not None
               for b in blocks for off in range(8, b.size - 64, 8))


def test_psscan_reports_progress_over_the_stored_ranges(m: Machine) -> None:
    seen: list[tuple[str, int, int]] = []
    m.kernel.progress = lambda task, done, total: seen.append((task, done, total))
    try:
        m.kernel.psscan()
    finally:
        m.kernel.progress = None
    assert seen and all(t.startswith("psscan") for t, _, _ in seen)
    task, done, total = seen[-1]
    assert done == total == sum(r.length for r in m.kernel.phys.phys_ranges() if r.backed)
