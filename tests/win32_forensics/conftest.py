"""The synthetic Windows machines with threads, handle tables and injected code, built once per session,
and volatility3 run offline on them (the ISF beside the raw image in a private folder)."""

from __future__ import annotations

import json
import lzma
import mmap
import shutil
from pathlib import Path
from typing import Any

import pytest
from win32_synth.volrun import run_vol

from pymemflow.demo import SyntheticImage, build_image
from pymemflow.mem.buffer import MmapMemory
from pymemflow.mem.memmap import MemoryMap
from pymemflow.os.win32.kernel import Win32Kernel

ISF_19041 = "5278AFF86C341677D7D7835C85B7B844-1.json.xz"
MASK48 = (1 << 48) - 1
SIZES = {"win10": ("win10-19041-x64", 256 << 20), "win7": ("win7-7601-x86pae", 128 << 20)}


def phys_of(img: SyntheticImage, mm: mmap.mmap | None = None) -> MmapMemory:
    """Physical memory over a synthetic image; pass ``mm`` (filled, maybe corrupted) to use it."""
    if mm is None:
        mm = mmap.mmap(-1, img.size)
        img.fill(mm)
    return MmapMemory(mm, MemoryMap.identity(img.size), writable=False)


@pytest.fixture(scope="session")
def images() -> dict[str, SyntheticImage]:
    return {name: build_image(profile, seed=5, size=size) for name, (profile, size) in SIZES.items()}


@pytest.fixture(scope="session", params=["win10", "win7"])
def machine(request: pytest.FixtureRequest, images: dict[str, SyntheticImage]) -> tuple[SyntheticImage, Win32Kernel]:
    img = images[request.param]
    return img, Win32Kernel.open(phys_of(img), progress=False)


def by_pid(img: SyntheticImage) -> dict[int, dict[str, Any]]:
    return {p["pid"]: p for p in img.facts["processes"]}


@pytest.fixture(scope="session", params=["win10", "win7"])
def vol_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            images: dict[str, SyntheticImage], ref_data: Path) -> tuple[SyntheticImage, Path, Path, Path]:
    """(image, raw file, symbols folder, cache folder). x86 Windows 7: no ntkrpamp ISF exists here, so one
    is made from the Windows 7 x86 layouts plus the synthetic kernel's symbol RVAs (as tests/win32_synth)."""
    pytest.importorskip("volatility3", reason="volatility3 not installed (pip install -e .[test])")
    from win32_synth.vtypes_isf import isf_from_vtypes

    win_data = ref_data / "windows"
    img = images[request.param]
    d = tmp_path_factory.mktemp(f"vol-{request.param}")
    f = img.facts
    if request.param == "win10":
        sym = d / "symbols" / "windows" / "ntkrnlmp.pdb"
        sym.mkdir(parents=True)
        shutil.copy(win_data / "isf" / ISF_19041, sym / ISF_19041)
    else:
        guid, age = f["guid_age"][:32], int(f["guid_age"][32:], 16)
        doc = isf_from_vtypes(win_data / "win7_sp1_x86_layouts.json", guid, age, f["pdb_name"], f["symbol_rvas"])
        sym = d / "symbols" / "windows" / f["pdb_name"]
        sym.mkdir(parents=True)
        with lzma.open(sym / f"{guid}-{age}.json.xz", "wb") as fh:
            fh.write(json.dumps(doc).encode())
    raw = d / "mem.raw"
    img.write_raw(str(raw))
    cache = d / "cache"
    cache.mkdir()
    return img, raw, d / "symbols", cache


def vol(env: tuple[SyntheticImage, Path, Path, Path], *plugin: str) -> list[dict[str, Any]]:
    """Rows of ``vol --offline -r json PLUGIN ...`` (tree rows flattened)."""
    _, raw, sym, cache = env
    return run_vol(raw, sym, cache, *plugin)
