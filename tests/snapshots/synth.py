"""Small synthetic dumps of every format, made by our writers from an in-memory source (for error
and fuzz tests that must run in milliseconds, without a guest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pymemflow.writers.avml import write_avml
from pymemflow.writers.base import write_layout
from pymemflow.writers.crashdump import write_crashdump, write_triage
from pymemflow.writers.kdump import write_kdump
from pymemflow.writers.simple import elf_layout, lime_layout, raw_layout
from pymemflow.writers.vmware import write_vmware

from .helpers import ArrayMemory, pattern

LOW = 0x10000
HIGH_AT, HIGH = 0x100000, 0x8000
HINTS = {"dtb": 0x5000, "vmcoreinfo": "OSRELEASE=6.1.0-test\nKERNELOFFSET=1a000000\nSYMBOL(init_task)=ffffffff82a15940\n",
         "kernel_release": "6.1.0-test"}


def source() -> ArrayMemory:
    return ArrayMemory({0: pattern(LOW, 1), HIGH_AT: pattern(HIGH, 2)}, HINTS)


def make(fmt: str, folder: Path) -> Path:
    m = source()
    r = m.memory_map()
    if fmt == "elf":
        return write_layout(m, folder / "s.elf", elf_layout(r, m.hints)).path
    if fmt == "elf32":
        return write_layout(m, folder / "s32.elf", elf_layout(r, m.hints, elf64=False, machine=3)).path
    if fmt == "lime":
        return write_layout(m, folder / "s.lime", lime_layout(r)).path
    if fmt == "raw":
        return write_layout(m, folder / "s.raw", raw_layout(r)).path
    if fmt.startswith("kdump"):
        _, codec, flat = fmt.split("-")
        return write_kdump(m, folder / f"s.{codec}.{flat}", codec, flattened=flat == "flat")
    if fmt == "crash64":
        return write_crashdump(m, folder / "s64.dmp")
    if fmt == "crash64b":
        return write_crashdump(m, folder / "s64b.dmp", kind="bitmap")
    if fmt == "crash32":
        return write_crashdump(m, folder / "s32.dmp", is64=False)
    if fmt == "crash32b":
        return write_crashdump(m, folder / "s32b.dmp", is64=False, kind="bitmap")
    if fmt == "crash64k":
        return write_crashdump(m, folder / "s64k.dmp", kind="kernel")
    if fmt == "triage":
        return write_triage(folder / "t.dmp", [(0xFFFFF80000001000, b"A" * 0x100), (0xFFFFF80000002000, b"B" * 0x2000)],
                            hints={"dtb": 0x1AA000}, stack=(0xFFFFA00000010000, b"S" * 0x800))
    if fmt == "avml":
        return write_avml(m, folder / "s.avml")
    if fmt == "vmware":
        return write_vmware(m, folder / "s.vmss")
    if fmt == "vmware-embedded":
        return write_vmware(m, folder / "e.vmss", embedded=True)
    raise AssertionError(fmt)


FORMATS = ["elf", "elf32", "lime", "kdump-zlib-plain", "kdump-zlib-flat", "kdump-snappy-plain", "kdump-lzo-plain",
           "crash64", "crash64b", "crash64k", "crash32", "crash32b", "avml", "vmware", "vmware-embedded"]


def expected() -> dict[int, np.ndarray]:
    return source().parts
