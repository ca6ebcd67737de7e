"""The synthetic Windows machines with threads, handle tables and injected code, built once per session,
and volatility3 run offline on them (the ISF beside the raw image in a private folder)."""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

import pytest
from win32_synth.volrun import run_vol, vol_files

from pymemflow.demo import SyntheticImage, build_image
from pymemflow.mem.buffer import MmapMemory
from pymemflow.mem.memmap import MemoryMap
from pymemflow.os.win32.kernel import Win32Kernel

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
    img = images[request.param]
    return (img, *vol_files(img, tmp_path_factory.mktemp(f"vol-{request.param}"), ref_data / "windows"))


def vol(env: tuple[SyntheticImage, Path, Path, Path], *plugin: str) -> list[dict[str, Any]]:
    """Rows of ``vol --offline -r json PLUGIN ...`` (tree rows flattened)."""
    _, raw, sym, cache = env
    return run_vol(raw, sym, cache, *plugin)
