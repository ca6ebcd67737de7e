"""Picking one of a WoW64 process's two same-named modules from the CLI (issue 14): a bare ``-m ntdll.dll``
is refused with both candidates; ``--arch x86|x64`` or a path (``SysWOW64\\ntdll.dll``, a full path) picks
one. Checked against the synthetic machine's ground truth (its facts list both loader lists)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from pymemflow.demo.machine import build_image
from pymemflow.errors import ArgumentError, NotFoundError
from pymemflow.os.base import ModuleInfo
from pymemflow.os.modpick import matching_modules, pick_module


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pymemflow", "--json", "-c", "demo:win10", "-o", "win32", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def wow() -> dict[str, Any]:
    """The WoW64 process of the machine ``-c demo:win10`` builds (seed 0)."""
    img = build_image("win10-19041-x64", seed=0)
    return next(p for p in img.facts["processes"] if p["wow64"] and p["modules32"])


def _mod(p: dict[str, Any], key: str, path_part: str) -> dict[str, Any]:
    return next(m for m in p[key] if m["name"].lower() == "ntdll.dll" and path_part in m["path"])


def test_bare_name_with_two_candidates_is_refused(wow: dict[str, Any]) -> None:
    r = _cli("exports", "-p", str(wow["pid"]), "-m", "ntdll.dll")
    assert r.returncode == 2, r.stdout[:300]
    x64, x86 = _mod(wow, "modules", "SYSTEM32"), _mod(wow, "modules32", "SysWOW64")
    assert "ambiguous" in r.stderr and "2 candidates" in r.stderr
    assert x64["path"] in r.stderr and x86["path"] in r.stderr
    assert "--arch" in r.stderr and r.stdout == ""


@pytest.mark.parametrize("how", [["--arch", "x86"], ["-m", "SysWOW64\\ntdll.dll"],
                                 ["-m", "C:/Windows/SysWOW64/ntdll.dll"], ["--arch", "x64"],
                                 ["-m", "c:\\windows\\system32\\NTDLL.DLL"]])
def test_arch_or_path_picks_one(wow: dict[str, Any], how: list[str]) -> None:
    want = _mod(wow, "modules32", "SysWOW64") if "x86" in how or any("WOW64" in h.upper() for h in how) \
        else _mod(wow, "modules", "SYSTEM32")
    args = ["-m", "ntdll.dll", *how] if how[0] == "--arch" else how
    r = _cli("exports", "-p", str(wow["pid"]), *args)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert rows and all(want["base"] <= e["address"] < want["base"] + want["size"] for e in rows)
    r = _cli("sections", "-p", str(wow["pid"]), *args)
    assert r.returncode == 0, r.stderr
    assert all(want["base"] < s["address"] < want["base"] + want["size"] for s in json.loads(r.stdout))


def test_dump_module_takes_arch(wow: dict[str, Any], tmp_path: Any) -> None:
    out = tmp_path / "ntdll32.bin"
    r = _cli("dump-module", "-p", str(wow["pid"]), "-m", "ntdll.dll", "--arch", "x86", str(out))
    assert r.returncode == 0, r.stderr
    want = _mod(wow, "modules32", "SysWOW64")
    assert json.loads(r.stdout)["base"] == want["base"]
    data = out.read_bytes()
    assert data[:2] == b"MZ" and len(data) == want["size"]
    assert int.from_bytes(data[0x3C:0x40], "little") < len(data)
    pe = int.from_bytes(data[0x3C:0x40], "little")
    assert data[pe + 4 : pe + 6] == (0x14C).to_bytes(2, "little")  # IMAGE_FILE_MACHINE_I386


def test_modules_filtered_by_arch(wow: dict[str, Any]) -> None:
    r = _cli("modules", "-p", str(wow["pid"]), "--arch", "x86")
    assert r.returncode == 0, r.stderr
    got = {(m["base"], m["path"]) for m in json.loads(r.stdout)}
    assert got == {(m["base"], m["path"]) for m in wow["modules32"]}
    r = _cli("modules", "-p", str(wow["pid"]), "--arch", "x64")
    got64 = {m["path"] for m in json.loads(r.stdout)}
    assert _mod(wow, "modules", "SYSTEM32")["path"] in got64 and not any("SysWOW64" in p for p in got64)


def test_missing_arch_names_the_other_candidate(wow: dict[str, Any]) -> None:
    r = _cli("exports", "-p", str(wow["pid"]), "-m", "user32.dll", "--arch", "x64")
    assert r.returncode == 1
    assert "SysWOW64" in r.stderr and "(x86)" in r.stderr


def test_pick_module_rules() -> None:
    mods = [ModuleInfo("a.exe", "C:\\p\\a.exe", 0x400000, 0x1000, "x86"),
            ModuleInfo("a.exe", "C:\\p\\a.exe", 0x400000, 0x1000, "x86"),  # both loader lists: one image
            ModuleInfo("ntdll.dll", "C:\\Windows\\System32\\ntdll.dll", 0x7FF0000, 0x1000, "x64"),
            ModuleInfo("ntdll.dll", "C:\\Windows\\SysWOW64\\ntdll.dll", 0x77000000, 0x1000, "x86"),
            ModuleInfo("xntdll.dll", "C:\\Windows\\xSysWOW64\\xntdll.dll", 0x1000, 0x1000, "x86")]
    assert pick_module(mods, "A.EXE", None, "p").base == 0x400000
    assert pick_module(mods, "SysWOW64\\ntdll.dll", None, "p").base == 0x77000000  # folder boundary only
    assert pick_module(mods, "ntdll.dll", "x86", "p").base == 0x77000000
    assert len(matching_modules(mods, "ntdll.dll")) == 2
    with pytest.raises(ArgumentError, match="ambiguous"):
        pick_module(mods, "ntdll.dll", None, "p")
    with pytest.raises(ArgumentError, match="arch"):
        pick_module(mods, "ntdll.dll", "arm", "p")
    with pytest.raises(NotFoundError, match="no module"):
        pick_module(mods, "Windows\\ntdll.dll", None, "p")
