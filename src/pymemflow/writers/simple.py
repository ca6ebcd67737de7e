"""Layouts of the dump formats ``dump-phys`` writes: raw, LiME and ELF core.

- raw: file offset = physical address (holes stay sparse);
- LiME: per range the 32-byte ``lime_mem_range_header`` (magic 0x4C694D45, version 1, s_addr,
  e_addr inclusive, reserved) then the bytes (LiME ``README``/``lime.h``);
- ELF: an ``ET_CORE`` ELF64 (x86-64) or ELF32 file as QEMU's ``dump-guest-memory`` writes it with
  paging off: a ``PT_NOTE`` (VMCOREINFO and a QEMU CPU-state note carrying CR3 when the source's
  hints know them) and one ``PT_LOAD`` per range with ``p_paddr`` = physical address, ``p_vaddr`` 0.
"""

from __future__ import annotations

import struct
from typing import Any

from .base import Layout

PAGE = 0x1000


def _align(x: int, a: int = PAGE) -> int:
    return (x + a - 1) // a * a


def raw_layout(ranges: list[tuple[int, int]]) -> Layout:
    lay = Layout()
    for s, e in ranges:
        lay.extents.append((s, s, e - s))
    lay.size = max((e for _, e in ranges), default=0)
    return lay


def lime_layout(ranges: list[tuple[int, int]]) -> Layout:
    lay = Layout()
    pos = 0
    for s, e in ranges:
        lay.headers.append((pos, struct.pack("<IIQQ8s", 0x4C694D45, 1, s, e - 1, b"\0" * 8)))
        lay.extents.append((pos + 32, s, e - s))
        pos += 32 + e - s
    lay.size = pos
    return lay


def _note(name: bytes, ntype: int, desc: bytes) -> bytes:
    name0 = name + b"\0"
    pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(name0), len(desc), ntype) + pad(name0) + pad(desc)


def qemu_cpu_note(cr3: int, regs: dict[str, int] | None = None) -> bytes:
    """QEMU's QEMUCPUState note (version 1): GPRs, 10 segments, CR0..CR4, kernel_gs_base."""
    r = regs or {}
    gprs = [int(r.get(k, 0)) for k in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10",
                                       "r11", "r12", "r13", "r14", "r15", "rip", "rflags")]
    crs = [int(r.get(f"cr{i}", 0)) for i in range(5)]
    crs[3] = cr3
    desc = struct.pack("<II", 1, 0x1B8) + struct.pack("<18Q", *gprs) + b"\0" * 240 + struct.pack("<5Q", *crs) + b"\0" * 8
    return _note(b"QEMU", 0, desc)


def elf_notes(hints: dict[str, Any]) -> bytes:
    notes = b""
    cpus = hints.get("cpu_registers") or []
    if cpus:
        for c in cpus:
            notes += qemu_cpu_note(int(c.get("cr3", hints.get("dtb", 0)) or 0), c)
    elif hints.get("dtb"):
        notes += qemu_cpu_note(int(hints["dtb"]))
    if hints.get("vmcoreinfo"):
        notes += _note(b"VMCOREINFO", 0, str(hints["vmcoreinfo"]).encode())
    return notes


def elf_layout(ranges: list[tuple[int, int]], hints: dict[str, Any] | None = None, elf64: bool = True,
               machine: int = 62) -> Layout:
    notes = elf_notes(hints or {})
    nph = len(ranges) + (1 if notes else 0)
    lay = Layout()
    if elf64:
        ehsize, phsize = 64, 56
        ident = b"\x7fELF\x02\x01\x01" + b"\0" * 9
        eh = ident + struct.pack("<HHIQQQIHHHHHH", 4, machine, 1, 0, ehsize, 0, 0, ehsize, phsize, nph, 0, 0, 0)
    else:
        ehsize, phsize = 52, 32
        ident = b"\x7fELF\x01\x01\x01" + b"\0" * 9
        eh = ident + struct.pack("<HHIIIIIHHHHHH", 4, machine, 1, 0, ehsize, 0, 0, ehsize, phsize, nph, 0, 0, 0)
    ph = b""
    note_off = ehsize + nph * phsize
    if notes:
        ph += _phdr(elf64, 4, note_off, 0, 0, len(notes), len(notes), 0)
    pos = _align(note_off + len(notes))
    for s, e in ranges:
        ph += _phdr(elf64, 1, pos, 0, s, e - s, e - s, 7)
        lay.extents.append((pos, s, e - s))
        pos += e - s
    lay.headers.append((0, eh + ph + notes))
    lay.size = pos
    return lay


def _phdr(elf64: bool, ptype: int, off: int, vaddr: int, paddr: int, filesz: int, memsz: int, flags: int) -> bytes:
    if elf64:
        return struct.pack("<IIQQQQQQ", ptype, flags, off, vaddr, paddr, filesz, memsz, 0)
    return struct.pack("<IIIIIIII", ptype, off, vaddr, paddr, filesz, memsz, flags, 0)
