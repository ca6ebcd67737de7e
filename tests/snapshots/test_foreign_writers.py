"""Formats no tool here can write (LiME, Windows crash dumps, AVML, VMware): our writers make them
from the paused guest's pages, our readers must return the RAM page for page, and volatility3 from
PyPI must stack its own layer for the file and find the guest's Linux banner at a *physical*
address (a banner found at a raw file offset would mean vol did not understand the format).

Which spec each writer follows (fields written):
- LiME: LiME's lime.h lime_mem_range_header (magic 0x4C694D45, version 1, s_addr, e_addr inclusive).
- crash dump: DUMP_HEADER64/32 of volatility3's crash64/crash symbol tables and the WDK (Signature,
  ValidDump, DirectoryTableBase, PsLoadedModuleList, PsActiveProcessHead, MachineImageType,
  BugCheck*, KdDebuggerDataBlock, PHYSICAL_MEMORY_DESCRIPTOR runs, DumpType at 0xF98/0xF88;
  bitmap dumps: the FDMP summary header HeaderSize/Pages/BitmapSize + bitmap).
- AVML: AVML image.rs v2 blocks (header, snappy framing format stream, u64 stream length).
- VMware: vmss groups/tags as volatility3's vmware layer reads them (regionsCount, regionPPN,
  regionPageNum, regionSize; CR64 in group cpu).
"""

from __future__ import annotations

import pytest

import pymemflow.connectors.auto as auto
from pymemflow.connectors.elf import ElfCore
from pymemflow.writers.avml import write_avml
from pymemflow.writers.base import memory_ranges, write_layout
from pymemflow.writers.crashdump import write_crashdump
from pymemflow.writers.simple import lime_layout
from pymemflow.writers.vmware import write_vmware

from .helpers import assert_same_pages, vol_banners, vol_has_snappy

pytestmark = [pytest.mark.testbed, pytest.mark.slow]
WIN_HINTS = {"PsActiveProcessHead": 0xFFFFF80312345670, "PsLoadedModuleList": 0xFFFFF80312340000,
             "KdDebuggerDataBlock": 0xFFFFF80312300000, "nt_build": 19041,
             "bugcheck": {"code": 0xE2, "parameters": [1, 2, 3, 4]}}


def _write(kind: str, elf: ElfCore, folder):
    if kind == "lime":
        return write_layout(elf, folder / "g.lime", lime_layout(memory_ranges(elf))).path
    if kind == "crash64-full":
        return write_crashdump(elf, folder / "g64.dmp", hints={**elf.hints, **WIN_HINTS})
    if kind == "crash64-bitmap":
        return write_crashdump(elf, folder / "g64b.dmp", kind="bitmap", hints={**elf.hints, **WIN_HINTS})
    if kind == "crash32-full":
        return write_crashdump(elf, folder / "g32.dmp", is64=False,
                               hints={**elf.hints, **WIN_HINTS, "PsActiveProcessHead": 0x81234560})
    if kind == "avml":
        return write_avml(elf, folder / "g.avml")
    if kind == "vmware":
        return write_vmware(elf, folder / "g.vmss")
    if kind == "vmware-embedded":
        return write_vmware(elf, folder / "e.vmss", embedded=True)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind,fmt,vol", [
    ("lime", "lime", True), ("crash64-full", "crashdump", True), ("crash64-bitmap", "crashdump", True),
    ("crash32-full", "crashdump", True), ("avml", "avml", True), ("vmware", "vmware", True),
    ("vmware-embedded", "vmware", False),  # volatility3 only reads a .vmem beside its .vmss
])
def test_writer_reader_and_volatility(snapshot, tmp_path, volcache, kind, fmt, vol):
    with ElfCore(snapshot.elf) as elf:
        path = _write(kind, elf, tmp_path)
        assert auto.detect(path) == fmt
        with auto.open_dump(path) as mem:
            assert mem.name == fmt
            assert_same_pages(mem, 0, snapshot.ram)
            assert mem.memory_map() == elf.memory_map()
            if fmt == "crashdump":
                assert mem.hints["dtb"] == elf.hints["dtb"]
                assert mem.hints["nt_build"] == 19041
                assert mem.hints["bugcheck"]["code"] == 0xE2
                if kind.startswith("crash64"):
                    assert mem.hints["PsActiveProcessHead"] == WIN_HINTS["PsActiveProcessHead"]
                    assert mem.hints["KdDebuggerDataBlock"] == WIN_HINTS["KdDebuggerDataBlock"]
                    assert mem.hints["machine"] == "x64"
                else:
                    assert mem.hints["PsActiveProcessHead"] == 0x81234560 and mem.hints["machine"] == "x86"
            if fmt == "vmware":
                assert mem.hints["dtb"] == elf.hints["dtb"]
            if vol:
                if fmt == "avml" and not vol_has_snappy():
                    pytest.skip("volatility3 reads AVML only with the system libsnappy (apt install libsnappy1v5)")
                banners = vol_banners(path, volcache)
                assert banners, f"volatility3 found no Linux banner in {path.name}"
                for offset, text in banners:
                    assert text.startswith("Linux version")
                    # the offset vol prints is a physical address: the banner is there in the RAM
                    assert snapshot.ram[offset : offset + 13].tobytes() == b"Linux version"
                    assert mem.read(offset, 13) == b"Linux version"
    for p in tmp_path.iterdir():
        p.unlink()
