"""volatility3 (offline, each build's cut-down JPCERT ISF) agrees with the ground truth on threads, handles and
malfind of two more builds than test_threads/test_handles/test_malfind check: Windows 8.1 (the first
ObjectPointerBits handle entries) and Windows 11. (Windows 7 x64 is left out: the demo ends an EPROCESS body at
the end of its pool block there, so its object header is only 8-aligned, and volatility3 drops four low bits of
a Windows 7 x64 handle's object pointer where Windows drops three; pymemflow's own check of that build is
test_builds.py.)

The cut-down ISFs have no ``_CM_KEY_BODY``; volatility3 needs the type to load a kernel ISF and reads
``KeyControlBlock`` from it to name keys, so the private copy gets the head of the structure (``Type`` at 0,
``KeyControlBlock`` after it: fixed since NT 5) -- every other type and symbol is the carried file's."""

from __future__ import annotations

import json
import lzma
from pathlib import Path
from typing import Any

import pytest

from pymemflow.demo import SyntheticImage, build_image

from .conftest import MASK48, vol

pytestmark = pytest.mark.slow
BUILDS = ["win81-9600-x64", "win11-22000-x64"]
KEY_BODY_HEAD = {"kind": "struct", "size": 0x68, "fields": {
    "Type": {"offset": 0, "type": {"kind": "base", "name": "unsigned long"}},
    "KeyControlBlock": {"offset": 8, "type": {"kind": "pointer", "subtype": {"kind": "struct",
                                                                             "name": "_CM_KEY_CONTROL_BLOCK"}}}}}


@pytest.fixture(scope="module", params=BUILDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
        ref_data: Path) -> tuple[SyntheticImage, Path, Path, Path]:
    pytest.importorskip("volatility3", reason="volatility3 not installed (pip install -e .[test])")
    img = build_image(request.param, seed=13, size=64 << 20)
    d = tmp_path_factory.mktemp(request.param)
    g = img.facts["guid_age"]
    name = f"{g[:32]}-{int(g[32:], 16)}.json.xz"
    doc = json.loads(lzma.open(ref_data / "windows" / "isf-forensic" / "ntkrnlmp.pdb" / name).read())
    doc["user_types"].setdefault("_CM_KEY_BODY", KEY_BODY_HEAD)
    sym = d / "symbols" / "windows" / "ntkrnlmp.pdb"
    sym.mkdir(parents=True)
    with lzma.open(sym / name, "wb") as fh:
        fh.write(json.dumps(doc).encode())
    raw = d / "mem.raw"
    img.write_raw(str(raw))
    (d / "cache").mkdir()
    return img, raw, d / "symbols", d / "cache"


def test_threads_handles_malfind(env: Any) -> None:
    img = env[0]
    procs = img.facts["processes"]
    rows = vol(env, "windows.threads")
    assert sorted((r["TID"], r["PID"], r["Win32StartAddress"] & MASK48, r["Offset"] & MASK48) for r in rows) == \
        sorted((t["tid"], t["pid"], t["win32_start_address"] & MASK48, t["ethread"] & MASK48)
               for p in procs for t in p["threads"])
    rows = vol(env, "windows.handles")
    assert sorted((r["PID"], r["HandleValue"], r["Type"], r["Name"], r["Offset"] & MASK48, r["GrantedAccess"])
                  for r in rows) == \
        sorted((p["pid"], h["handle"], h["type"], h["name"], h["object"] & MASK48, h["access"])
               for p in procs for h in p.get("handles", []))
    inj = img.facts["injected"]
    rows = vol(env, "windows.malfind")
    assert [(r["PID"], r["Start VPN"], r["Protection"]) for r in rows] == [(inj["pid"], inj["start"], inj["protection"])]
