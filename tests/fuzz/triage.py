"""Fuzz cases for triage dumps read as Windows: a triage dump of each synthetic machine (written by
pymemflow's writer from the win32 layer's view of the machine), mutated -- mostly in the TRIAGE_DUMP
header, the driver list and the string pool -- then opened by the ``crashdump`` connector and the
win32 triage layer, which list the drivers, describe the dump and read the saved blocks.

A case passes when every step returns or raises a :class:`~pymemflow.errors.PymemflowError`."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from pymemflow.connectors.crashdump import CrashDump
from pymemflow.errors import PymemflowError
from pymemflow.os.win32.triage import Win32Triage

from .harness import mutate

PROFILES = ("win10-19041-x64", "win7-7601-x86pae")
TRIAGE_AT = {"win10-19041-x64": 0x2000, "win7-7601-x86pae": 0x1000}
"""Where the TRIAGE_DUMP header starts (after the 64-bit / 32-bit DUMP_HEADER)."""

_ORIGINALS: dict[str, bytes] = {}


def build_originals() -> None:
    """Write one triage dump per synthetic machine (the fork server calls this once)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "win32"))
    from win32_util import phys_of

    from pymemflow.demo.machine import build_image
    from pymemflow.os.win32.kernel import Win32Kernel
    from pymemflow.os.win32.triage import triage_material
    from pymemflow.writers.crashdump import write_triage

    with tempfile.TemporaryDirectory(prefix="pmf-fuzz-triage-") as d:
        for prof in PROFILES:
            if prof in _ORIGINALS:
                continue
            k = Win32Kernel.open(phys_of(build_image(prof, seed=0)), progress=False)
            out = Path(d) / f"{prof}.dmp"
            write_triage(out, **triage_material(k))
            _ORIGINALS[prof] = out.read_bytes()
            Win32Triage(CrashDump(out)).info()  # loads the offsets table once, before the forks


def open_mutated(prof: str, seed: int, folder: str) -> None:
    """One case: mutate the triage dump of ``prof`` from ``seed``, open it as Windows, use it."""
    if not _ORIGINALS:
        build_originals()
    rng = random.Random(f"triage:{prof}:{seed}")
    blob = _ORIGINALS[prof]
    at = TRIAGE_AT[prof]
    if rng.random() < 0.7:  # the triage header and what follows it (drivers, strings, block table)
        head, tail = blob[:at], mutate(blob[at:], rng, span=rng.choice((0x80, 0x1000 + 0x900, len(blob))))
        blob = head + tail
    else:
        blob = mutate(blob, rng)
    path = Path(folder) / f"{prof}-{seed}.dmp"
    path.write_bytes(blob)
    dump = CrashDump(path)
    try:
        try:
            layer = Win32Triage(dump)
        except PymemflowError:
            return
        layer.info()
        mods = layer.kernel_modules()
        kern = layer.process("kernel")
        for m in mods[:4]:
            kern.memory.read(m.base, 64, zero_fill=True)
        for s, e in layer.memory.ranges()[:8]:
            kern.memory.read(s, min(e - s, 1 << 20), zero_fill=True)
        for call in (layer.process_info_list, lambda: layer.process(4)):
            try:
                call()
            except PymemflowError:
                pass
    finally:
        dump.close()
