"""The second x86 synthetic machine: Windows 7 SP1 x86 *without* PAE (2-level page tables, 4-byte PTEs,
PDE 0x300 self-map), built from the non-PAE kernel's own layouts (Volatility 2's Windows 7 SP1 x86 vtypes,
PTE bits included) with a synthetic PDB GUID and symbol RVAs (see demo/profiles.py).

Checked twice, independently: volatility3 from PyPI (offline; the ISF is written from the layouts table,
as for the PAE machine) and pymemflow with no hints (``-c raw:IMG -o win32``); both must equal the builder's
ground truth for processes, DLLs, kernel modules and VADs, and the software PTEs (transition, pagefile)
must read in the non-PAE format. The pymemflow checks run on the x86-PAE machine too (volatility3 checks
that one in test_volatility.py), so both x86 builds are read from a raw file with no hints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pymemflow.demo import SyntheticImage, build_image

from .volrun import run_vol, vol_files

pytestmark = pytest.mark.slow
PROFILE = "win7-7601-x86"
PROT = {1: "r--", 3: "r-x", 4: "rw-", 6: "rwx", 7: "rcx"}  # MM_* protection -> the layer's rwx (c: execute-write-copy)
PAGE_NAMES = {1: "PAGE_READONLY", 3: "PAGE_EXECUTE_READ", 4: "PAGE_READWRITE", 6: "PAGE_EXECUTE_READWRITE",
              7: "PAGE_EXECUTE_WRITECOPY"}


def _make(tmp_path_factory: pytest.TempPathFactory, win_data: Path, profile: str) -> tuple[SyntheticImage, Path, Path]:
    """(image, raw file, private volatility3 symbols folder)."""
    img = build_image(profile, seed=11, size=64 << 20)
    raw, symbols, _ = vol_files(img, tmp_path_factory.mktemp(profile), win_data)
    return img, raw, symbols


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory, win_data: Path) -> tuple[SyntheticImage, Path, Path]:
    """The non-PAE machine."""
    return _make(tmp_path_factory, win_data, PROFILE)


@pytest.fixture(scope="module", params=[PROFILE, "win7-7601-x86pae"])
def x86(request: pytest.FixtureRequest, machine: tuple[SyntheticImage, Path, Path],
        tmp_path_factory: pytest.TempPathFactory, win_data: Path) -> tuple[SyntheticImage, Path, Path]:
    """Each x86 machine: without PAE and with it."""
    return machine if request.param == PROFILE else _make(tmp_path_factory, win_data, request.param)


def test_machine_is_non_pae(machine: tuple[SyntheticImage, Path, Path]) -> None:
    img = machine[0]
    f = img.facts
    assert f["arch"] == "x86" and f["pdb_name"] == "ntkrnlmp.pdb"
    pde300 = int.from_bytes(img.read(f["dtb"] + 0x300 * 4, 4), "little")
    assert pde300 & ~0xFFF == f["dtb"] and pde300 & 1  # PDE 0x300 maps the page directory itself
    t, p = f["transition_pages"][0], f["pagefile_pages"][0]
    assert t["pte"] < 1 << 32 and (t["pte"] >> 11) & 1 and not t["pte"] & 1 and t["pte"] >> 12 == t["pa"] >> 12
    assert (p["pte"] >> 12) == p["page_offset"] and (p["pte"] >> 1) & 0xF == p["pagefile"]  # non-PAE bit layout


# ---- volatility3 ------------------------------------------------------------------------------------------


def vol(machine: tuple[SyntheticImage, Path, Path], plugin: str, tmp: Path) -> list[dict[str, Any]]:
    _, raw, sym = machine
    cache = tmp / "cache"
    cache.mkdir(exist_ok=True)
    return run_vol(raw, sym, cache, plugin)


@pytest.fixture(scope="module")
def vol_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("volatility3", reason="volatility3 not installed (pip install -e .[test])")
    return tmp_path_factory.mktemp("vol-x86")


def test_vol_pslist(machine: tuple[SyntheticImage, Path, Path], vol_tmp: Path) -> None:
    rows = vol(machine, "windows.pslist", vol_tmp)
    got = [(r["PID"], r["PPID"], r["ImageFileName"], r["Offset(V)"], r["ExitTime"] is not None) for r in rows]
    want = [(p["pid"], p["ppid"], p["image_file_name"], p["eprocess"], not p["alive"])
            for p in machine[0].facts["processes"]]
    assert got == want


def test_vol_dlllist(machine: tuple[SyntheticImage, Path, Path], vol_tmp: Path) -> None:
    got: dict[int, set[tuple[int, str, str]]] = {}
    for r in vol(machine, "windows.dlllist", vol_tmp):
        got.setdefault(r["PID"], set()).add((r["Base"], r["Name"], r["Path"]))
    want = {p["pid"]: {(m["base"], m["name"], m["path"]) for m in p["modules"]}
            for p in machine[0].facts["processes"] if p["modules"]}
    assert got == want and len(want) >= 8


def test_vol_modules(machine: tuple[SyntheticImage, Path, Path], vol_tmp: Path) -> None:
    got = [(r["Base"], r["Size"], r["Name"], r["Path"]) for r in vol(machine, "windows.modules", vol_tmp)]
    assert got == [(m["base"], m["size"], m["name"], m["path"]) for m in machine[0].facts["kernel_modules"]]


def test_vol_vadinfo(machine: tuple[SyntheticImage, Path, Path], vol_tmp: Path) -> None:
    got: dict[int, set[tuple[int, int, str, int, str | None]]] = {}
    for r in vol(machine, "windows.vadinfo", vol_tmp):
        f = r["File"] if isinstance(r["File"], str) else None
        got.setdefault(r["PID"], set()).add((r["Start VPN"], r["End VPN"], r["Protection"], r["PrivateMemory"], f))
    want = {p["pid"]: {(v["start"], v["end"], PAGE_NAMES[v["protection"]], int(v["private"]), v.get("file_name"))
                       for v in p["vads"]} for p in machine[0].facts["processes"] if p["vads"]}
    assert got == want


# ---- pymemflow, no hints ----------------------------------------------------------------------------------


def cli(raw: Path, *args: str) -> Any:
    r = subprocess.run([sys.executable, "-m", "pymemflow", "--json", "-c", f"raw:{raw}", "-o", "win32", *args],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_pymemflow_ps_and_info(x86: tuple[SyntheticImage, Path, Path]) -> None:
    img, raw, _ = x86
    rows = cli(raw, "ps")
    got = [(r["pid"], r["ppid"], r["name"], r["arch"], r["dtb"], r["address"], r["state"], r["command_line"])
           for r in rows]
    want = [(p["pid"], p["ppid"], p["image_file_name"], "x86", p["dtb"], p["eprocess"], "alive" if p["alive"] else "dead",
             p["command_line"] if p["alive"] else "") for p in img.facts["processes"]]
    assert got == want
    info = cli(raw, "info")
    os_info = info["os"] if "os" in info else info
    arch = img.facts["arch"]
    assert os_info["arch"] == arch and os_info["offsets_missing"] == []
    assert f"family {arch}-7601 from volatility2" in os_info["offsets_from"]


def test_pymemflow_modules_kmods_vads_translate(x86: tuple[SyntheticImage, Path, Path]) -> None:
    from pymemflow.connectors.raw import RawFileMemory
    from pymemflow.os.win32.kernel import Win32Kernel

    img, raw, _ = x86
    k = Win32Kernel.open(RawFileMemory(str(raw)), progress=False)
    assert k.facts.arch == k.offsets.arch == img.facts["arch"]
    kmods = [(m.name, m.path, m.base, m.size) for m in k.kernel_modules()]
    assert kmods == [(m["name"], m["path"], m["base"], m["size"]) for m in img.facts["kernel_modules"]]
    for p in img.facts["processes"]:
        if not p["alive"]:
            continue
        proc = k.process(p["pid"])
        assert [(m.name, m.path, m.base, m.size) for m in proc.module_list()] == \
            [(m["name"], m["path"], m["base"], m["size"]) for m in p["modules"]]
        vads = {(r.start, r.end - 1, r.kind, r.protection) for r in proc.maps(vad=True)}
        assert vads == {(v["start"], v["end"], "private" if v["private"] else "image" if v["type"] == 2 else "mapped",
                         PROT[v["protection"]]) for v in p["vads"]}
    t = img.facts["transition_pages"][0]
    row = cli(raw, "translate", "-p", str(t["pid"]), hex(t["va"]))
    assert (row["pa"], row["status"]) == (t["pa"], "transition")
    pf = img.facts["pagefile_pages"][0]
    r = subprocess.run([sys.executable, "-m", "pymemflow", "--json", "-c", f"raw:{raw}", "-o", "win32", "translate",
                        "-p", str(pf["pid"]), hex(pf["va"])], capture_output=True, text=True, timeout=300)
    assert json.loads(r.stdout)["status"] == f"paged out (pagefile {pf['pagefile']}, offset {pf['page_offset'] << 12:#x})"
