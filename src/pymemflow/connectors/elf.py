"""ELF core dumps: QEMU ``dump-guest-memory`` (paging off), VirtualBox/Proxmox cores, kcore-style files.

VirtualBox's ``dumpvmcore`` writes a ``VBCORE`` descriptor and one ``VBCPU`` note per CPU (CR3 -> dtb)
and PT_LOADs with no file bytes for MMIO ranges (left out of the map). Proxmox uses QEMU's dump.

Memory is taken from ``PT_LOAD`` segments by physical address (``p_paddr``). Notes give per-CPU
registers (``CORE``/``NT_PRSTATUS``; QEMU's own ``QEMU`` note carries CR0..CR4, so CR3 becomes the
``dtb`` hint) and the Linux ``VMCOREINFO`` text. A kcore-style file (segments at kernel virtual
addresses, some with ``p_paddr = -1``, the kernel text aliasing RAM) keeps the first segment for
every physical range instead of refusing the overlap.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from ..types import PluginSpec
from .formats.base import file_plugin_args
from .formats.notes import parse_elf_notes, refine_arch
from .formats.runs import ZERO_FILL, RunMap, RunMappedMemory
from .formats.source import FileSource

ELF_MAGIC = b"\x7fELF"
PT_LOAD = 1
PT_NOTE = 4
ET_CORE = 4
NT_PRSTATUS = 1
MAX_PHDRS = 1 << 16
MAX_NOTES_BYTES = 64 << 20
EM_NAMES = {3: "x86", 62: "x64", 183: "aarch64", 40: "arm"}
KERNEL_SPACE_64 = 0xFFFF800000000000

class ElfCore(RunMappedMemory):
    """An ELF core file as physical memory."""

    name = "elf"
    format_name = "elf"

    def __init__(self, path: str | Path, source: FileSource | None = None) -> None:
        super().__init__(source or FileSource(path, self.format_name))
        src = self.source
        ident = src.read(0, 16, "e_ident")
        if ident[:4] != ELF_MAGIC:
            raise src.error(0, "e_ident", f"bad magic {ident[:4]!r} (expected {ELF_MAGIC!r})")
        if ident[4] not in (1, 2):
            raise src.error(4, "EI_CLASS", f"unknown ELF class {ident[4]}")
        if ident[5] not in (1, 2):
            raise src.error(5, "EI_DATA", f"unknown byte order {ident[5]}")
        self.elf64 = ident[4] == 2
        e = "<" if ident[5] == 1 else ">"
        self.little_endian = ident[5] == 1
        if self.elf64:
            (e_type, e_machine, _v, _entry, e_phoff, _sh, _fl, _ehsz, e_phentsize, e_phnum) = src.unpack(
                e + "HHIQQQIHHH", 16, "ELF header")
            ph = struct.Struct(e + "IIQQQQQQ")
        else:
            (e_type, e_machine, _v, _entry, e_phoff, _sh, _fl, _ehsz, e_phentsize, e_phnum) = src.unpack(
                e + "HHIIIIIHHH", 16, "ELF header")
            ph = struct.Struct(e + "IIIIIIII")
        if e_type != ET_CORE:
            raise src.error(16, "e_type", f"type {e_type} is not a core file (ET_CORE = 4)")
        if e_phentsize < ph.size:
            raise src.error(0x36 if self.elf64 else 0x2A, "e_phentsize", f"{e_phentsize} < {ph.size}")
        if e_phnum == 0 or e_phnum > MAX_PHDRS:
            raise src.error(0x38 if self.elf64 else 0x2C, "e_phnum", f"absurd program header count {e_phnum}")
        src.check(e_phoff, e_phnum * e_phentsize, "program headers")
        self.machine = EM_NAMES.get(e_machine, f"em{e_machine}")
        self.pointer_size = 8 if self.elf64 else 4
        loads: list[tuple[int, int, int, int, int, int]] = []  # paddr, vaddr, filesz, memsz, offset, phoff
        notes: list[tuple[int, int]] = []
        for i in range(e_phnum):
            at = e_phoff + i * e_phentsize
            v = ph.unpack(src.read(at, ph.size, f"program header {i}"))
            if self.elf64:
                p_type, _flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, _align = v
            else:
                p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, _flags, _align = v
            if p_type == PT_LOAD:
                loads.append((p_paddr, p_vaddr, p_filesz, p_memsz, p_offset, at))
            elif p_type == PT_NOTE:
                src.check(p_offset, p_filesz, f"program header {i} (PT_NOTE) p_offset/p_filesz")
                notes.append((p_offset, p_filesz))
        self.kcore_style = self.elf64 and any(v >= KERNEL_SPACE_64 for _, v, *_ in loads)
        all_ones = (1 << 64) - 1 if self.elf64 else (1 << 32) - 1
        runs: list[tuple[int, int, int]] = []
        where: list[int] = []
        for paddr, _vaddr, filesz, memsz, offset, at in loads:
            if self.kcore_style and paddr == all_ones:
                continue  # vmalloc/module areas of /proc/kcore have no physical address
            if filesz > memsz:
                raise src.error(at, "p_filesz", f"p_filesz {filesz:#x} > p_memsz {memsz:#x}")
            if filesz == 0:
                continue  # VirtualBox writes MMIO ranges with no file bytes: not memory we have
            runs.append((paddr, filesz, offset))
            where.append(at)
            if memsz > filesz:
                runs.append((paddr + filesz, memsz - filesz, ZERO_FILL))
                where.append(at)
        if self.kcore_style:
            runs, where = _drop_aliases(runs, where)
        self._set_runs(RunMap(src, runs, "PT_LOAD", where))
        self.hints["arch"] = self.machine if self.machine != "x86" else "x86"
        self._parse_notes(notes, e)
        self.format_info.update({"elf_class": 64 if self.elf64 else 32, "machine": self.machine,
                                 "segments": len(loads), "kcore_style": self.kcore_style})

    def _parse_notes(self, notes: list[tuple[int, int]], e: str) -> None:
        src = self.source
        total = 0
        blobs: list[bytes] = []
        for offset, size in notes:
            total += size
            if total > MAX_NOTES_BYTES:
                raise src.error(offset, "PT_NOTE", f"notes larger than {MAX_NOTES_BYTES:#x} bytes")
            blobs.append(src.read(offset, size, "PT_NOTE"))
        for offset, blob in zip((o for o, _ in notes), blobs, strict=True):
            self.hints.update(parse_elf_notes(blob, e, self.elf64, src, offset))
        refine_arch(self.hints)


def _drop_aliases(runs: list[tuple[int, int, int]], where: list[int]) -> tuple[list[tuple[int, int, int]], list[int]]:
    """kcore maps the kernel text twice (text alias and direct map): keep one copy of each range."""
    order = sorted(range(len(runs)), key=lambda i: (runs[i][0], -runs[i][1]))
    kept: list[tuple[int, int, int]] = []
    kw: list[int] = []
    for i in order:
        s, n, fo = runs[i]
        if kept and s < kept[-1][0] + kept[-1][1]:
            ps, pn, _ = kept[-1]
            over = ps + pn - s
            if over >= n:
                continue
            s, n, fo = s + over, n - over, (fo + over if fo >= 0 else fo)
        kept.append((s, n, fo))
        kw.append(where[i])
    return kept, kw


def open_elf(args: dict[str, Any], _input: Any = None) -> ElfCore:
    mem = ElfCore(args["target"])
    return mem


PLUGIN = PluginSpec("connector", "elf", "ELF core dump (QEMU dump-guest-memory, VirtualBox, kcore-style)",
                    open_elf, args=file_plugin_args())
