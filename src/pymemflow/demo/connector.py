"""``demo``: a synthetic Windows machine built in memory from a seed (``-c demo:win10`` / ``demo:win7``).

No files, no ``../shared`` data: the offsets come from the built-in table. Discovery is exercised
because no hints are given unless ``hints=true`` (then dtb, arch, kernel_base and list heads are).
The ground truth is on ``connector.facts``.
"""

from __future__ import annotations

import mmap
from typing import Any

from ..mem.buffer import MmapMemory
from ..mem.memmap import MemoryMap
from ..types import ArgSpec, PluginSpec, TargetInfo, parse_bool, parse_int, parse_size
from .machine import ALIASES, PROFILES, build_image

MIN_SIZE = 32 << 20
"""Below this the fixed-address regions of the machines (win7's sit above 16 MiB) do not fit."""
MAX_SIZE = 16 << 30
"""The frame allocator keeps a permutation of every frame: 16 GiB is 32 MiB of it."""


class DemoMemory(MmapMemory):
    """Physical memory of a synthetic Windows machine (read-only unless ``writable=true``)."""

    name = "demo"

    def __init__(self, profile: str = "win10", seed: int = 0, size: int | None = None, *,
                 hints: bool = False, writable: bool = False, processes: int = 0) -> None:
        img = build_image(profile, seed=seed, size=size, processes=processes)
        mm = mmap.mmap(-1, img.size)
        img.fill(mm)
        super().__init__(mm, MemoryMap.identity(img.size), writable=writable)
        self.facts: dict[str, Any] = img.facts
        self.hints["label"] = f"demo:{img.facts['profile']} seed={seed}"
        if hints:
            f = img.facts
            self.hints.update({"dtb": f["dtb"], "arch": f["arch"], "kernel_base": f["kernel_base"],
                               "nt_build": f["build"],
                               "PsActiveProcessHead": f["symbols"]["PsActiveProcessHead"],
                               "PsLoadedModuleList": f["symbols"]["PsLoadedModuleList"]})


def _profile(text: str) -> str:
    name = ALIASES.get(text or "win10", text or "win10")
    if name not in PROFILES:
        raise ValueError(f"{text!r} is not a demo machine (use {', '.join([*ALIASES, *PROFILES])})")
    return name


def _open(args: dict[str, Any], _input: Any) -> DemoMemory:
    return DemoMemory(_profile(args.get("target") or "win10"), args["seed"], args.get("size"),
                      hints=args["hints"], writable=args["writable"], processes=args["processes"])


PLUGIN = PluginSpec(
    kind="connector",
    name="demo",
    description="A synthetic Windows machine built in memory (x64 Windows 7 .. 11 builds, x86-PAE Windows 7)",
    factory=_open,
    args=[
        ArgSpec("target", "win10 (default), win7 (x86 PAE), win7x64, win81, win1607, win1809, win1903, win2022, "
                "win11, or a full profile name", parse=_profile),
        ArgSpec("seed", "seed of the deterministic layout", default=0, parse=parse_int, minimum=0,
                maximum=(1 << 63) - 1),
        ArgSpec("size", "physical memory size (default 1g for win10, 512m for win7)", parse=parse_size,
                minimum=MIN_SIZE, maximum=MAX_SIZE),
        ArgSpec("hints", "give dtb/kernel_base/list heads as hints (default: discover them)", default=False,
                parse=parse_bool),
        ArgSpec("writable", "allow writes to the in-memory machine", default=False, parse=parse_bool),
        ArgSpec("processes", "at least this many processes (extra svchost.exe, for benchmarks)", default=0,
                parse=parse_int),
    ],
    targets=lambda: [TargetInfo(a, f"synthetic {p}") for a, p in ALIASES.items()],
)
