"""Shared by test_psscan.py and test_netscan.py: a synthetic machine written to a raw file, opened by
pymemflow as a user opens a dump (discovery, no hints), and volatility3 run offline on the same file
(tests/win32_synth/volrun.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from win32_synth.volrun import run_vol, vol_files

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
    """``name``: win10 / win7 (256 / 64 MiB) or any demo profile (64 MiB), with volatility3's symbols where
    they can be had (win32_synth.volrun.vol_files)."""
    profile, size = PROFILES.get(name, (name, 64 << 20))
    img = build_image(profile, seed=seed, size=size)
    raw, _, _ = vol_files(img, folder, data / "windows")
    return Machine(img, folder, Win32Kernel.open(RawFileMemory(raw)))


def vol_offset(m: Machine) -> Callable[[int], int]:
    """How volatility3's scanners give the address of a carved object: its kernel virtual address on x64
    (sign extension dropped), its physical address on x86."""
    if m.img.facts["arch"] == "x64":
        return lambda va: va & MASK48
    return m.kernel.kernel_memory().translate  # type: ignore[attr-defined, no-any-return]


def vol(m: Machine, plugin: str) -> list[dict[str, Any]]:
    return run_vol(m.raw, m.folder / "symbols", m.folder / "cache", plugin)
