"""A small, bounded ELF reader: header (class, endianness, machine), program and section headers,
and symbol tables (``.dynsym`` / ``.symtab``).

Why not pyelftools: we need four things from possibly thousands of files (the arch of every process's
executable for ``ps``, the load segments of /proc/kcore, exports of mapped libraries) and want every
bound explicit -- counts are limited by the file size, names by a maximum length -- with a
:class:`FormatError` naming the file, offset and field on bad input. That is ~150 lines.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from ..errors import FormatError

EM_386, EM_ARM, EM_X86_64, EM_AARCH64, EM_RISCV = 3, 40, 62, 183, 243
ET_EXEC, ET_DYN, ET_CORE = 2, 3, 4
PT_LOAD = 1
SHT_SYMTAB, SHT_RELA, SHT_REL, SHT_DYNSYM = 2, 4, 9, 11
SHT_GNU_VERNEED, SHT_GNU_VERSYM = 0x6FFFFFFE, 0x6FFFFFFF
IMPORT_RELOCS = {EM_X86_64: (6, 7), EM_386: (6, 7), EM_AARCH64: (1025, 1026), EM_ARM: (21, 22)}
"""GLOB_DAT and JUMP_SLOT relocation types: the GOT slots through which a module imports a symbol."""
STT_OBJECT, STT_FUNC, STT_GNU_IFUNC = 1, 2, 10
STB_GLOBAL, STB_WEAK = 1, 2
MAX_NAME = 4096


def arch_name(machine: int, elf_class: int) -> str:
    """pymemflow arch name of an ELF machine (``x64``, ``x86``, ``aarch64``; others ``arm``, ``riscv64``...)."""
    if machine == EM_X86_64:
        return "x64" if elf_class == 2 else "x32"
    if machine == EM_386:
        return "x86"
    if machine == EM_AARCH64:
        return "aarch64"
    if machine == EM_ARM:
        return "arm"
    if machine == EM_RISCV:
        return "riscv64" if elf_class == 2 else "riscv32"
    return f"elf-machine-{machine}"


@dataclass(frozen=True)
class ProgramHeader:
    type: int
    flags: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int


@dataclass(frozen=True)
class SectionHeader:
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    entsize: int


@dataclass(frozen=True)
class Symbol:
    name: str
    value: int
    size: int
    type: int
    bind: int
    shndx: int


class ElfFile:
    """An ELF file read with ``pread`` (works on /proc/kcore, whose size reads as 0 or huge)."""

    def __init__(self, path: str, size_limit: int | None = None) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        try:
            self.size = size_limit if size_limit is not None else os.fstat(self.fd).st_size
            self._parse_header()
        except BaseException:
            os.close(self.fd)
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> ElfFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pread(self, offset: int, n: int, field: str) -> bytes:
        if offset < 0 or n < 0 or (self.size and offset + n > self.size):
            raise FormatError(self.path, offset, field, f"{n} bytes at {offset:#x} lie past the end of the file")
        data = os.pread(self.fd, n, offset)
        if len(data) != n:
            raise FormatError(self.path, offset, field, f"file ends after {len(data)} of {n} bytes")
        return data

    def _parse_header(self) -> None:
        ident = os.pread(self.fd, 64, 0)
        if len(ident) < 52 or ident[:4] != b"\x7fELF":
            raise FormatError(self.path, 0, "e_ident", "not an ELF file")
        self.elf_class = ident[4]
        if self.elf_class not in (1, 2):
            raise FormatError(self.path, 4, "EI_CLASS", f"bad class {self.elf_class}")
        if ident[5] not in (1, 2):
            raise FormatError(self.path, 5, "EI_DATA", f"bad data encoding {ident[5]}")
        self.e = "<" if ident[5] == 1 else ">"
        if self.elf_class == 2:
            if len(ident) < 64:
                raise FormatError(self.path, 0, "e_ident", "truncated ELF64 header")
            (self.type, self.machine, _, self.entry, self.phoff, self.shoff, _, _, self.phentsize, self.phnum,
             self.shentsize, self.shnum, self.shstrndx) = struct.unpack_from(self.e + "HHIQQQIHHHHHH", ident, 16)
        else:
            (self.type, self.machine, _, self.entry, self.phoff, self.shoff, _, _, self.phentsize, self.phnum,
             self.shentsize, self.shnum, self.shstrndx) = struct.unpack_from(self.e + "HHIIIIIHHHHHH", ident, 16)
        want_ph = 56 if self.elf_class == 2 else 32
        if self.phnum and self.phentsize < want_ph:
            raise FormatError(self.path, 0x36 if self.elf_class == 2 else 0x2A, "e_phentsize",
                              f"{self.phentsize} < {want_ph}")

    @property
    def arch(self) -> str:
        return arch_name(self.machine, self.elf_class)

    def program_headers(self) -> list[ProgramHeader]:
        if not self.phnum:
            return []
        raw = self.pread(self.phoff, self.phnum * self.phentsize, "e_phoff")
        out = []
        for i in range(self.phnum):
            o = i * self.phentsize
            if self.elf_class == 2:
                t, fl, off, va, pa, fs, ms, _ = struct.unpack_from(self.e + "IIQQQQQQ", raw, o)
            else:
                t, off, va, pa, fs, ms, fl, _ = struct.unpack_from(self.e + "IIIIIIII", raw, o)
            out.append(ProgramHeader(t, fl, off, va, pa, fs, ms))
        return out

    def section_headers(self) -> list[SectionHeader]:
        want = 64 if self.elf_class == 2 else 40
        if not self.shnum or not self.shoff:
            return []
        if self.shentsize < want:
            raise FormatError(self.path, None, "e_shentsize", f"{self.shentsize} < {want}")
        raw = self.pread(self.shoff, self.shnum * self.shentsize, "e_shoff")
        rows = []
        for i in range(self.shnum):
            o = i * self.shentsize
            if self.elf_class == 2:
                rows.append(struct.unpack_from(self.e + "IIQQQQIIQQ", raw, o))
            else:
                rows.append(struct.unpack_from(self.e + "IIIIIIIIII", raw, o))
        names = b""
        if self.shstrndx < len(rows):
            r = rows[self.shstrndx]
            names = self.pread(r[4], min(r[5], 1 << 20), "sh_offset of .shstrtab")
        out = []
        for r in rows:
            out.append(SectionHeader(_cstr(names, r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[9]))
        return out

    def symbols(self, kind: int = SHT_DYNSYM, limit: int = 1 << 22) -> list[Symbol]:
        """Symbols of the first section of type ``kind`` (at most ``limit``)."""
        secs = self.section_headers()
        sec = next((s for s in secs if s.type == kind), None)
        if sec is None:
            return []
        ent = 24 if self.elf_class == 2 else 16
        if sec.entsize and sec.entsize < ent:
            raise FormatError(self.path, sec.offset, "sh_entsize", f"{sec.entsize} < {ent}")
        step = sec.entsize or ent
        count = min(sec.size // step, limit)
        raw = self.pread(sec.offset, count * step, "symbol table")
        strtab = b""
        if sec.link < len(secs):
            st = secs[sec.link]
            strtab = self.pread(st.offset, min(st.size, 64 << 20), "string table")
        out = []
        for i in range(count):
            o = i * step
            if self.elf_class == 2:
                name, info, _, shndx, value, size = struct.unpack_from(self.e + "IBBHQQ", raw, o)
            else:
                name, value, size, info, _, shndx = struct.unpack_from(self.e + "IIIBBH", raw, o)
            out.append(Symbol(_cstr(strtab, name), value, size, info & 0xF, info >> 4, shndx))
        return out


    def import_slots(self, limit: int = 1 << 20) -> list[tuple[int, str, str]]:
        """(GOT slot address as linked, symbol name, library from symbol versioning or "") of every
        GLOB_DAT/JUMP_SLOT relocation against an undefined dynamic symbol."""
        kinds = IMPORT_RELOCS.get(self.machine)
        if kinds is None:
            return []
        secs = self.section_headers()
        syms = self.symbols(SHT_DYNSYM)
        files = self._version_files(secs)
        versym = next((s for s in secs if s.type == SHT_GNU_VERSYM), None)
        vers: bytes = b""
        if versym is not None:
            vers = self.pread(versym.offset, min(versym.size, 2 * len(syms)), "versym")
        out: list[tuple[int, str, str]] = []
        wide = self.elf_class == 2
        for sec in secs:
            if sec.type not in (SHT_RELA, SHT_REL):
                continue
            rela = sec.type == SHT_RELA
            ent = (24 if rela else 16) if wide else (12 if rela else 8)
            if sec.entsize and sec.entsize < ent:
                raise FormatError(self.path, sec.offset, "sh_entsize", f"{sec.entsize} < {ent}")
            step = sec.entsize or ent
            count = min(sec.size // step, limit - len(out))
            raw = self.pread(sec.offset, count * step, "relocations")
            for i in range(count):
                if wide:
                    off, info = struct.unpack_from(self.e + "QQ", raw, i * step)
                    typ, sym = info & 0xFFFFFFFF, info >> 32
                else:
                    off, info = struct.unpack_from(self.e + "II", raw, i * step)
                    typ, sym = info & 0xFF, info >> 8
                if typ not in kinds or not 0 < sym < len(syms) or syms[sym].shndx != 0:
                    continue
                lib = ""
                if 2 * sym + 2 <= len(vers):
                    lib = files.get(struct.unpack_from(self.e + "H", vers, 2 * sym)[0] & 0x7FFF, "")
                out.append((off, syms[sym].name, lib))
        return out

    def _version_files(self, secs: list[SectionHeader]) -> dict[int, str]:
        """Version index -> needed library file, from ``.gnu.version_r`` (bounded by its size)."""
        sec = next((s for s in secs if s.type == SHT_GNU_VERNEED), None)
        if sec is None or sec.link >= len(secs):
            return {}
        data = self.pread(sec.offset, min(sec.size, 1 << 20), ".gnu.version_r")
        st = secs[sec.link]
        strtab = self.pread(st.offset, min(st.size, 64 << 20), ".dynstr")
        out: dict[int, str] = {}
        pos, seen = 0, 0
        while pos + 16 <= len(data) and seen < 4096:
            _, cnt, file_off, aux, nxt = struct.unpack_from(self.e + "HHIII", data, pos)
            lib = _cstr(strtab, file_off)
            apos = pos + aux
            for _ in range(min(cnt, 4096)):
                if apos + 16 > len(data):
                    break
                _, _, other, _, anext = struct.unpack_from(self.e + "IHHII", data, apos)
                out[other & 0x7FFF] = lib
                if not anext:
                    break
                apos += anext
            seen += 1
            if not nxt:
                break
            pos += nxt
        return out


def _cstr(table: bytes, off: int) -> str:
    if off >= len(table):
        return ""
    end = table.find(b"\0", off, off + MAX_NAME)
    return table[off : end if end >= 0 else off + MAX_NAME].decode("utf-8", errors="replace")


def elf_arch(path: str) -> str | None:
    """Arch of an ELF file from its first 20 bytes; None when not ELF or unreadable."""
    try:
        with open(path, "rb") as f:
            h = f.read(20)
    except OSError:
        return None
    if len(h) < 20 or h[:4] != b"\x7fELF" or h[5] not in (1, 2):
        return None
    machine = struct.unpack_from("<H" if h[5] == 1 else ">H", h, 18)[0]
    return arch_name(machine, h[4])
