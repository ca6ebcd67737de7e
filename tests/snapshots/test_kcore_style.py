"""A /proc/kcore-style ELF (kernel-virtual p_vaddr, vmalloc segments with p_paddr = -1, the kernel
text mapped twice: its own segment and inside the direct map) reads by physical address, keeping
one copy of each range; a plain core with overlapping PT_LOADs is refused."""

from __future__ import annotations

import struct

import pytest

from pymemflow.connectors.elf import ElfCore
from pymemflow.errors import FormatError

from .helpers import pattern


def _kcore(path, segs, notes=b""):
    """segs: (vaddr, paddr, data) -> ELF64 core like fs/proc/kcore.c lays it out."""
    nph = len(segs) + 1
    eh = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, 64, 0, 0, 64, 56, nph, 0, 0, 0)
    pos = 64 + 56 * nph
    ph = struct.pack("<IIQQQQQQ", 4, 0, pos, 0, 0, len(notes), 0, 0)
    pos += len(notes)
    body = b""
    for vaddr, paddr, data in segs:
        ph += struct.pack("<IIQQQQQQ", 1, 7, pos + len(body), vaddr, paddr, len(data), len(data), 0x1000)
        body += data
    path.write_bytes(eh + ph + notes + body)
    return path


def test_kcore_style(tmp_path):
    ram = pattern(0x40000, 5)
    text = ram[0x10000:0x20000]
    vmci = b"OSRELEASE=6.1.0-kcore\n"
    note = struct.pack("<III", 11, len(vmci), 0) + b"VMCOREINFO\0\0" + vmci + b"\0" * (-len(vmci) % 4)
    p = _kcore(tmp_path / "kcore", [
        (0xFFFFFFFF81000000, 0x10000, text.tobytes()),                 # KCORE_TEXT alias
        (0xFFFFC90000000000, (1 << 64) - 1, b"\xAA" * 0x2000),         # vmalloc: no physical address
        (0xFFFF888000000000, 0, ram.tobytes()),                        # KCORE_RAM direct map
    ], note)
    with ElfCore(p) as mem:
        assert mem.format_info["kcore_style"] is True
        assert mem.memory_map() == [(0, 0x40000)]
        assert mem.read(0, 0x40000) == ram.tobytes()
        assert mem.hints["kernel_release"] == "6.1.0-kcore"


def test_plain_core_with_overlap_is_refused(tmp_path):
    p = _kcore(tmp_path / "bad.core", [(0, 0, b"\1" * 0x2000), (0, 0x1000, b"\2" * 0x2000)])
    with pytest.raises(FormatError, match="overlaps") as ei:
        ElfCore(p)
    assert ei.value.offset == 64 + 56 * 2  # the second PT_LOAD's program header


def _vbox_note(name: bytes, ntype: int, desc: bytes) -> bytes:
    """VirtualBox's note encoding: n_namesz without the NUL, name and data padded to 8 bytes."""
    padded = name + b"\0" * (8 - len(name) % 8)
    return struct.pack("<III", len(name), len(desc), ntype) + padded + desc


def test_virtualbox_core(tmp_path):
    ram = pattern(0x20000, 6)
    cpu = bytearray(0x400)
    struct.pack_into("<Q", cpu, 14 * 8, 0xFFFFFFFF81000000)          # rip
    struct.pack_into("<4Q", cpu, 18 * 8 + 6 * 24, 0x80050033, 0, 0x1234000, 0x6F0)  # cr0 cr2 cr3 cr4
    notes = _vbox_note(b"VBCORE", 0xB00, bytes(24)) + _vbox_note(b"VBCPU", 0xB01, bytes(cpu))
    # one RAM range and one MMIO range (p_filesz 0), as DBGFR3CoreWrite lays them out
    p = _kcore(tmp_path / "vbox.core", [(0, 0, ram.tobytes())], notes)
    b = bytearray(p.read_bytes())
    eh_phnum = struct.unpack_from("<H", b, 0x38)[0]
    mmio = struct.pack("<IIQQQQQQ", 1, 4, len(b), 0, 0xFEE00000, 0, 0x1000, 0)
    b[0x38:0x3A] = struct.pack("<H", eh_phnum + 1)
    phend = 64 + 56 * eh_phnum
    b[phend:phend] = mmio  # append a program header; shift the rest
    # fix the offsets of the note and load segments that moved by 56 bytes
    for i in range(eh_phnum):
        at = 64 + 56 * i
        struct.pack_into("<Q", b, at + 8, struct.unpack_from("<Q", b, at + 8)[0] + 56)
    p.write_bytes(bytes(b))
    with ElfCore(p) as mem:
        assert mem.memory_map() == [(0, 0x20000)]
        assert mem.read(0, 0x20000) == ram.tobytes()
        assert mem.hints["dtb"] == 0x1234000
        assert mem.hints["cpu_registers"][0]["rip"] == 0xFFFFFFFF81000000
        assert mem._read_single(0xFEE00000, 4)[1]  # MMIO is not in the dump
