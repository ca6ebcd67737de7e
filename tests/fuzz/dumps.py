"""Fuzz cases for every dump format: a small dump written by our own writers (tests/snapshots/synth.py),
mutated from a seed, opened with ``pymemflow.open`` and read.

A case passes when the file either opens and answers reads (failures reported, never raised) or is
refused with a :class:`~pymemflow.errors.PymemflowError`; the harness catches everything else.
"""

from __future__ import annotations

import random
import re
import tempfile
from pathlib import Path

import numpy as np

import pymemflow
from pymemflow.connectors.formats import codecs
from pymemflow.errors import FormatError
from pymemflow.writers.base import memory_ranges

from .harness import INTERESTING, mutate

FORMATS = ["elf", "elf32", "lime", "avml", "kdump-zlib-plain", "kdump-zlib-flat", "kdump-snappy-plain",
           "kdump-zstd-plain", "kdump-lzo-plain", "crash64", "crash64b", "crash64k", "crash32", "crash32b", "triage",
           "vmware", "vmware-embedded", "raw-memmap"]
"""Every dump format pymemflow reads (kdump with each codec and both containers, every crash-dump kind)."""

HEADER_SPAN = {"kdump-zlib-plain": 0x6000, "kdump-zlib-flat": 0x7000, "kdump-snappy-plain": 0x6000,
               "kdump-zstd-plain": 0x6000, "kdump-lzo-plain": 0x6000, "crash64": 0x2000, "crash64b": 0x3000,
               "crash32": 0x1000, "crash32b": 0x2000, "crash64k": 0x3000, "triage": 0x3000, "elf": 0x400,
               "elf32": 0x400, "lime": 0x20, "avml": 0x200, "vmware": 0x400, "vmware-embedded": 0x200}
"""Where the headers and tables are: half of the cases mutate only there."""

MEMMAP = """[[range]]
base = 0x0
length = 0x10000
real_base = 0x0

[[range]]
base = 0x100000
length = 0x8000
real_base = 0x100000
"""

_ORIGINALS: dict[str, dict[str, bytes]] = {}


def available(fmt: str) -> bool:
    """Whether this build can write and read ``fmt`` (optional codec packages: writing LZO needs
    lzokay even where reading it is built in)."""
    codec = fmt.split("-")[1] if fmt.startswith("kdump") else ("snappy" if fmt == "avml" else "zlib")
    try:
        codecs.compressor(codec)
    except FormatError:
        return False
    return codecs.available(codec)


def build_originals() -> None:
    """Write every available format once and load the plugin inventory (the fork server calls this;
    cases inherit both instead of paying for them each time)."""
    from snapshots.synth import make

    pymemflow.default_inventory()

    with tempfile.TemporaryDirectory(prefix="pmf-fuzz-orig-") as d:
        for fmt in FORMATS:
            if fmt in _ORIGINALS or not available(fmt):
                continue
            folder = Path(d) / fmt
            folder.mkdir()
            main = make("raw" if fmt == "raw-memmap" else fmt, folder)
            files = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
            files["__main__"] = main.name.encode()
            if fmt == "raw-memmap":
                files["map.toml"] = MEMMAP.encode()
            _ORIGINALS[fmt] = files


def _mutate_toml(text: bytes, rng: random.Random) -> bytes:
    """Numbers replaced by interesting ones (sizes, overlaps, 2**64), or plain byte mutations."""
    if rng.random() < 0.3:
        return mutate(text, rng)
    s = text.decode()
    nums = list(re.finditer(r"0x[0-9a-fA-F]+", s))
    for _ in range(rng.randint(1, 3)):
        m = rng.choice(nums)
        value = rng.choice([*INTERESTING, -1, 1 << 64, (1 << 64) + 0x1000])
        s = s[: m.start()] + (hex(value) if value >= 0 else str(value)) + s[m.end():]
        nums = list(re.finditer(r"-?0x[0-9a-fA-F]+|-\d+", s))
    return s.encode()


def open_mutated(fmt: str, seed: int, folder: str) -> None:
    """One case: mutate one file of ``fmt``'s dump from ``seed``, open it, read it."""
    if not _ORIGINALS:
        build_originals()
    rng = random.Random(f"{fmt}:{seed}")
    files = dict(_ORIGINALS[fmt])
    main = files.pop("__main__").decode()
    names = sorted(files)
    victim = "map.toml" if fmt == "raw-memmap" and rng.random() < 0.6 else (
        main if rng.random() < 0.8 or len(names) == 1 else rng.choice(names))
    span = HEADER_SPAN.get(fmt) if rng.random() < 0.5 else None
    out = Path(folder) / f"{fmt}-{seed}"
    out.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        if name == victim:
            blob = _mutate_toml(blob, rng) if name.endswith(".toml") else mutate(blob, rng, span=span)
        (out / name).write_bytes(blob)
    spec = f"raw:{out / main},memmap={out / 'map.toml'}" if fmt == "raw-memmap" else str(out / main)
    mem = pymemflow.open(spec)
    try:
        exercise(mem)
    finally:
        mem.close()


def exercise(mem: pymemflow.PhysicalMemory) -> None:
    """What a user does first with a dump: info, its map, reads at every range edge and at absurd
    addresses (batched and single), and the virtual view a dump may carry."""
    mem.info()
    ranges = memory_ranges(mem)[:16]
    addrs = [s for s, _ in ranges] + [max(e - 8, 0) for _, e in ranges] + [0, 1 << 63, (1 << 64) - 8]
    res = mem.read_batch(np.array(addrs, dtype=np.uint64), 4096)
    assert len(res.data) == 4096 * len(addrs), "batched read returned the wrong size"
    for a in addrs[:4]:
        mem.read(a, 256, zero_fill=True)
    virt = getattr(mem, "virtual", None)
    if virt is not None:
        virt.read_batch([0, 0xFFFFF80000001000], 64)
