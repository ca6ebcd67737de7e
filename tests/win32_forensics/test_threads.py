"""threads on the synthetic Windows machines: every ETHREAD of every process against the ground truth,
the start module, a smeared list (bounded, warned), and volatility3's windows.threads agreeing."""

from __future__ import annotations

import mmap
import struct
from typing import Any

import pytest

from pymemflow.demo import SyntheticImage
from pymemflow.os.forensics import iso_from_filetime
from pymemflow.os.win32.kernel import Win32Kernel

from .conftest import MASK48, by_pid, phys_of, vol


def expected_threads(img: SyntheticImage) -> list[tuple[Any, ...]]:
    return sorted((t["tid"], t["pid"], t["win32_start_address"], t["state"], iso_from_filetime(t["create_time"]),
                   iso_from_filetime(t["exit_time"]), t["teb"], t["ethread"])
                  for p in img.facts["processes"] for t in p["threads"])


def test_threads_match_ground_truth(machine: tuple[SyntheticImage, Win32Kernel]) -> None:
    img, k = machine
    got = sorted((t.tid, t.pid, t.start_address, t.state, t.create_time, t.exit_time, t.teb, t.address)
                 for t in k.threads())
    want = expected_threads(img)
    assert len(want) >= 25 and got == want
    states = {t[3] for t in want}
    assert {"Running", "Waiting", "Ready", "Terminated"} <= states
    assert not [w for w in k.warnings if "Thread" in w]


def test_start_modules_and_one_process(machine: tuple[SyntheticImage, Win32Kernel]) -> None:
    img, k = machine
    inj = img.facts["injected"]
    rows = k.threads(k.process(inj["pid"]))
    assert {t.pid for t in rows} == {inj["pid"]}
    assert len(rows) == len(by_pid(img)[inj["pid"]]["threads"]) == 4
    mods = {t.start_module for t in rows}
    assert {"explorer.exe", "ntdll.dll", "KERNELBASE.dll", ""} == mods
    injected = [t for t in rows if inj["start"] <= t.start_address < inj["end"]]
    assert len(injected) == 1 and injected[0].start_module == ""  # started in no module: injected code
    ntdll = next(m for m in by_pid(img)[inj["pid"]]["modules"] if m["name"] == "ntdll.dll")
    assert all(ntdll["base"] <= t.extra["start_address"] < ntdll["base"] + ntdll["size"] for t in rows)
    system = k.threads(k.process(4))
    assert {t.start_module for t in system} <= {m["name"] for m in img.facts["kernel_modules"]}
    assert all(t.teb == 0 for t in system)


def test_smeared_thread_list_is_bounded_and_warned(images: dict[str, SyntheticImage]) -> None:
    """A thread list whose second entry points back at the first (a loop that never reaches the head)."""
    img = images["win10"]
    k = Win32Kernel.open(phys_of(img), progress=False)
    proc = k.process("explorer.exe")
    threads = by_pid(img)[proc.info.pid]["threads"]
    link = k.offsets["_ETHREAD.ThreadListEntry"]
    second = threads[1]["ethread"] + link
    pa = k.kmem.translate(second)
    mm = mmap.mmap(-1, img.size)
    img.fill(mm)
    mm[pa : pa + 8] = struct.pack("<Q", threads[0]["ethread"] + link)  # Flink of #2 -> #1
    k2 = Win32Kernel.open(phys_of(img, mm), progress=False)
    with pytest.warns(Warning, match="loop"):
        rows = k2.threads(k2.process("explorer.exe"))
    assert [t.tid for t in rows] == [t["tid"] for t in threads[:2]]


def test_volatility_threads_agree(vol_env: Any) -> None:
    img = vol_env[0]
    rows = vol(vol_env, "windows.threads")
    got = sorted((r["TID"], r["PID"], r["Win32StartAddress"] & MASK48, r["StartAddress"] & MASK48,
                  r["Offset"] & MASK48, r["ExitTime"] is not None) for r in rows)
    want = sorted((t["tid"], t["pid"], t["win32_start_address"] & MASK48, t["start_address"] & MASK48,
                   t["ethread"] & MASK48, bool(t["exit_time"])) for p in img.facts["processes"] for t in p["threads"])
    assert got == want
    created = {r["TID"]: r["CreateTime"][:19] for r in rows}  # volatility prints whole seconds
    for p in img.facts["processes"]:
        for t in p["threads"]:
            assert created[t["tid"]].replace(" ", "T") == iso_from_filetime(t["create_time"])[:19]
