"""psscan and netscan on every synthetic build (x64 Windows 7 SP1 .. 11, x86 PAE and non-PAE Windows 7):
top-down (8+) and bottom-up (7) process carving, each build's tcpip layout (Windows 11 22000 has none
in the table: the nearest older one is taken with a warning naming both builds). volatility3 checks
Windows 7 x64 (bottom-up pool, the win7 tcpip layout) with its full ISF; 19041 is in test_psscan.py /
test_netscan.py."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from pymemflow.demo import PROFILES

from .winpsnet_env import Machine, machine, vol

BUILDS = sorted(n for n in PROFILES if n != "win10-19041-x64")
NO_LAYOUT = {"win11-22000-x64": "22000"}


@pytest.fixture(scope="module", params=BUILDS)
def m(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, ref_data: Path) -> Machine:
    return machine(request.param, tmp_path_factory.mktemp(request.param), ref_data)


def test_psscan_and_netscan_match_ground_truth(m: Machine) -> None:
    f = m.img.facts
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        carved = m.kernel.psscan()
        sockets = m.kernel.netscan()
    want = {(p["pid"], p["eprocess"], "listed" if p["alive"] else "exited") for p in f["processes"]}
    want |= {(p["pid"], p["eprocess"], "unlinked") for p in f["unlinked_processes"]}
    assert {(p.pid, p.address, p.flag) for p in carved} == want
    assert sorted((s.local_address, s.local_port, s.remote_address, s.remote_port, s.state, s.pid, s.address)
                  for s in sockets) == \
        sorted((r["local"], r["local_port"], r["remote"], r["remote_port"], r["state"], r["pid"], r["address"])
               for r in f["network"])
    said = [str(w.message) for w in caught if "tcpip layout" in str(w.message)]
    build = NO_LAYOUT.get(f["profile"])
    if build:
        assert len(said) == 1 and build in said[0] and f["tcpip"]["layout"] in said[0]
    else:
        assert not said


@pytest.fixture(scope="module")
def win7x64(tmp_path_factory: pytest.TempPathFactory, ref_data: Path) -> Machine:
    return machine("win7-7601-x64", tmp_path_factory.mktemp("vol-win7-x64"), ref_data)


@pytest.mark.slow
def test_volatility_agrees_on_windows7_x64(win7x64: Machine) -> None:
    """volatility3 runs on Windows 7 x64 (bottom-up carving) and 19041 only (CI time)."""
    pytest.importorskip("volatility3")
    m = win7x64
    # before Windows 10 volatility3 scans the physical layer: its offsets are physical addresses
    theirs = {(r["PID"], r["ImageFileName"], r["ExitTime"] is not None, r["Offset(V)"])
              for r in vol(m, "windows.psscan")}
    assert theirs == {(p.pid, p.name, p.exited, p.physical_address) for p in m.kernel.psscan()}
    rows = vol(m, "windows.netscan")
    theirs_n = sorted((r["LocalAddr"], r["LocalPort"], r["ForeignAddr"], r["ForeignPort"], r["State"], r["PID"],
                       r["Offset"]) for r in rows)
    assert theirs_n == sorted((s.local_address, s.local_port, s.remote_address, s.remote_port, s.state, s.pid,
                               s.extra["physical_address"]) for s in m.kernel.netscan())
