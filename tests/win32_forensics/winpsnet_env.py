"""Shared by test_psscan.py and test_netscan.py: a synthetic machine written to a raw file, opened by
pymemflow as a user opens a dump (discovery, no hints), and volatility3 run offline on the same file
(a private symbol folder and cache: volatility3 may delete a symbol file it is pointed at)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymemflow.connectors.raw import RawFileMemory
from pymemflow.demo import SyntheticImage, build_image
from pymemflow.os.win32.kernel import Win32Kernel

MASK48 = (1 << 48) - 1
PROFILES = {"win10": ("win10-19041-x64", 256 << 20), "win7": ("win7-7601-x86pae", 64 << 20)}


@dataclass
class Machine:
    img: SyntheticImage
    folder: Path
    kernel: Win32Kernel

    @property
    def raw(self) -> Path:
        return self.folder / "mem.raw"


def machine(name: str, folder: Path, data: Path, seed: int = 11) -> Machine:
    """``name``: win10 / win7 (256 / 64 MiB) or any demo profile (64 MiB). Where the repository carries the
    kernel's full ISF, it is copied into a private symbol folder for volatility3."""
    profile, size = PROFILES.get(name, (name, 64 << 20))
    img = build_image(profile, seed=seed, size=size)
    img.write_raw(str(folder / "mem.raw"))
    g = img.facts["guid_age"]
    isf = data / "windows" / "isf" / f"{g[:32]}-{int(g[32:], 16)}.json.xz"
    if isf.is_file():
        sym = folder / "symbols" / "windows" / "ntkrnlmp.pdb"
        sym.mkdir(parents=True)
        shutil.copy(isf, sym / isf.name)
    (folder / "cache").mkdir()
    return Machine(img, folder, Win32Kernel.open(RawFileMemory(folder / "mem.raw")))


def vol(m: Machine, plugin: str) -> list[dict[str, Any]]:
    cmd = [sys.executable, "-c", "import sys; sys.argv[0] = 'vol'; from volatility3.cli import main; main()",
           "--offline", "-q", "-r", "json", "-s", str(m.folder / "symbols"), "--cache-path", str(m.folder / "cache"),
           "-f", str(m.raw), plugin]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows: list[dict[str, Any]] = json.loads(r.stdout)
    return rows
