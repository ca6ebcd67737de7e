"""Agreement with volatility3 (from PyPI) on the synthetic x64 Windows 10 image: pslist, dlllist, modules.

volatility3 gets a private copy of the ISF and a private cache folder (see tests/data/windows/README.md:
a stale shared cache once made it delete the ISF it was pointed at). The raw image is written to a
temporary file and opened by both tools; our side uses the ``raw`` connector.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pymemflow.os.win32.kernel import Win32Kernel

ISF = Path(__file__).resolve().parents[1] / "data" / "windows" / "isf"
GUID = "5278AFF86C341677D7D7835C85B7B844-1"
MASK48 = (1 << 48) - 1

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vol_results(win10_image: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    vol = shutil.which("vol")
    if vol is None:
        pytest.skip("volatility3 (vol) not installed: pip install volatility3")
    src = ISF / f"{GUID}.json.xz"
    d = tmp_path_factory.mktemp("vol")
    symdir = d / "symbols" / "windows" / "ntkrnlmp.pdb"
    symdir.mkdir(parents=True)
    shutil.copy(src, symdir / src.name)
    image = d / "win10.raw"
    win10_image.write_raw(str(image))
    (d / "cache").mkdir()
    out: dict[str, Any] = {}
    # the first run builds volatility's cache; the other two then run side by side
    cmds = {name: [vol, "--offline", "-q", "--cache-path", str(d / "cache"), "-s", str(d / "symbols"),
                   "-r", "json", "-f", str(image), plugin]
            for name, plugin in (("pslist", "windows.pslist"), ("dlllist", "windows.dlllist"),
                                 ("modules", "windows.modules"))}
    first = subprocess.run(cmds["pslist"], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    out["pslist"] = json.loads(first.stdout)
    procs = {n: subprocess.Popen(cmds[n], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in ("dlllist", "modules")}
    for n, p in procs.items():
        so, se = p.communicate(timeout=300)
        assert p.returncode == 0, se[-2000:]
        out[n] = json.loads(so)
    return image, out


@pytest.fixture(scope="module")
def ours(vol_results: tuple[Path, dict[str, Any]]) -> Win32Kernel:
    from pymemflow.connectors.raw import RawFileMemory

    return Win32Kernel.open(RawFileMemory(vol_results[0]), progress=False)


def test_pslist_agrees(vol_results: tuple[Path, dict[str, Any]], ours: Win32Kernel) -> None:
    vol = vol_results[1]["pslist"]
    got = [(i.pid, i.ppid, i.name, i.address & MASK48, i.wow64) for i in ours.process_info_list()]
    want = [(r["PID"], r["PPID"], r["ImageFileName"], r["Offset(V)"] & MASK48, r["Wow64"]) for r in vol]
    assert len(want) >= 10
    assert got == want


def test_dlllist_agrees(vol_results: tuple[Path, dict[str, Any]], ours: Win32Kernel) -> None:
    vol = vol_results[1]["dlllist"]
    want: dict[int, list[tuple[str, str, int, int]]] = {}
    for r in vol:
        want.setdefault(r["PID"], []).append((r["Name"], r["Path"], r["Base"], r["Size"]))
    got: dict[int, list[tuple[str, str, int, int]]] = {}
    for p in ours.process_list():
        mods = p.module_list()  # WoW64: native list then the 32-bit list, as volatility lists them
        if mods:
            got[p.info.pid] = [(m.name, m.path, m.base, m.size) for m in mods]
    assert sum(len(v) for v in want.values()) > 20
    assert got == want


def test_modules_agree(vol_results: tuple[Path, dict[str, Any]], ours: Win32Kernel) -> None:
    vol = vol_results[1]["modules"]
    got = [(m.name, m.path, m.base & MASK48, m.size) for m in ours.kernel_modules()]
    want = [(r["Name"], r["Path"], r["Base"] & MASK48, r["Size"]) for r in vol]
    assert len(want) >= 5
    assert got == want
