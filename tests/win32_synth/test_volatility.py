"""volatility3 from PyPI must accept both synthetic machines: pslist, dlllist, modules, cmdline and
vadinfo agree with the ground truth. Runs ``vol --offline`` with the matching ISF copied into a private folder
(volatility3 can delete the symbol file it is pointed at when its cache is stale)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pymemflow.demo import SyntheticImage, build_image

from .volrun import run_vol, vol_files

pytest.importorskip("volatility3", reason="volatility3 not installed (pip install -e .[test])")
pytestmark = pytest.mark.slow

MASK48 = (1 << 48) - 1


@pytest.fixture(scope="module", params=["win10", "win7"])
def vol_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            win_data: Path) -> tuple[SyntheticImage, Path, Path, Path]:
    """x64: the real 19041 ISF. x86-PAE Windows 7: no ntkrpamp ISF exists here, so one is made in the
    private folder from the Windows 7 x86 layouts table (tests/win32_synth/vtypes_isf.py) plus the
    synthetic kernel's own symbol RVAs -- the structures volatility3 reads are then independent facts."""
    if request.param == "win10":
        img = build_image("win10-19041-x64", seed=11, size=256 << 20)
    else:
        img = build_image("win7-7601-x86pae", seed=11, size=64 << 20)
    return (img, *vol_files(img, tmp_path_factory.mktemp(f"vol-{request.param}"), win_data))


def vol(env: tuple[SyntheticImage, Path, Path, Path], plugin: str) -> list[dict[str, Any]]:
    _, raw, sym, cache = env
    return run_vol(raw, sym, cache, plugin)


def test_vol_pslist(vol_env: tuple[SyntheticImage, Path, Path, Path]) -> None:
    img = vol_env[0]
    rows = vol(vol_env, "windows.pslist")
    got = [(r["PID"], r["PPID"], r["ImageFileName"], r["Offset(V)"] & MASK48, r["Wow64"], r["ExitTime"] is not None,
            r["SessionId"]) for r in rows]
    want = [(p["pid"], p["ppid"], p["image_file_name"], p["eprocess"] & MASK48, p["wow64"], not p["alive"],
             p["session"]) for p in img.facts["processes"]]
    assert got == want


def test_vol_dlllist(vol_env: tuple[SyntheticImage, Path, Path, Path]) -> None:
    img = vol_env[0]
    rows = vol(vol_env, "windows.dlllist")
    got: dict[int, set[tuple[int, str, str]]] = {}
    for r in rows:
        got.setdefault(r["PID"], set()).add((r["Base"], r["Name"], r["Path"]))
    want = {p["pid"]: {(m["base"], m["name"], m["path"]) for m in p["modules"] + p["modules32"]}
            for p in img.facts["processes"] if p["modules"]}
    assert got == want
    if img.facts["arch"] == "x64":  # the WoW64 side is in there too
        assert any(len(p["modules32"]) > 0 for p in img.facts["processes"])


def test_vol_modules(vol_env: tuple[SyntheticImage, Path, Path, Path]) -> None:
    img = vol_env[0]
    rows = vol(vol_env, "windows.modules")
    got = [(r["Base"] & MASK48, r["Size"], r["Name"], r["Path"]) for r in rows]
    want = [(m["base"] & MASK48, m["size"], m["name"], m["path"]) for m in img.facts["kernel_modules"]]
    assert got == want


def test_vol_cmdline(vol_env: tuple[SyntheticImage, Path, Path, Path]) -> None:
    img = vol_env[0]
    rows = vol(vol_env, "windows.cmdline")
    got = {r["PID"]: r["Args"] for r in rows if isinstance(r["Args"], str) and r["Args"] not in ("", "-")}
    want = {p["pid"]: p["command_line"] for p in img.facts["processes"] if p["peb"]}
    assert got == want


PAGE_NAMES = {1: "PAGE_READONLY", 3: "PAGE_EXECUTE_READ", 4: "PAGE_READWRITE", 6: "PAGE_EXECUTE_READWRITE",
              7: "PAGE_EXECUTE_WRITECOPY"}


def test_vol_vadinfo(vol_env: tuple[SyntheticImage, Path, Path, Path]) -> None:
    img = vol_env[0]
    rows = vol(vol_env, "windows.vadinfo")
    got: dict[int, set[tuple[int, int, str, int, str | None]]] = {}
    for r in rows:
        f = r["File"] if isinstance(r["File"], str) else None
        got.setdefault(r["PID"], set()).add((r["Start VPN"], r["End VPN"], r["Protection"], r["PrivateMemory"], f))
    want = {p["pid"]: {(v["start"], v["end"], PAGE_NAMES[v["protection"]], int(v["private"]),
                        v.get("file_name")) for v in p["vads"]}
            for p in img.facts["processes"] if p["vads"]}
    assert got == want


def test_vol_psscan_carves_every_process_from_pool(vol_env: tuple[SyntheticImage, Path, Path, Path]) -> None:
    """Pool scanning: _POOL_HEADER tags, _OBJECT_HEADER, ObTypeIndexTable are laid out as Windows does."""
    img = vol_env[0]
    rows = vol(vol_env, "windows.psscan")
    got = {(r["PID"], r["PPID"], r["ImageFileName"], r["ExitTime"] is not None) for r in rows}
    want = {(p["pid"], p["ppid"], p["image_file_name"], not p["alive"])
            for p in img.facts["processes"] + img.facts["unlinked_processes"]}
    assert got == want
