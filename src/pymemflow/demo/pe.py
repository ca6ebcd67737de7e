"""A small PE image writer (PE32 and PE32+) for the synthetic machine: headers, sections, export and
import directories, and a CodeView (RSDS) debug record.

It writes the *loaded* image layout (RVA = offset), as the loader leaves it in memory; pefile reads
the result (tests check that). Only what the machine needs; not a linker.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field

IMAGE_FILE_MACHINE = {"x64": 0x8664, "x86": 0x14C}


@dataclass
class Section:
    name: str
    rva: int
    vsize: int
    characteristics: int


@dataclass
class PeSpec:
    name: str
    """Module file name, e.g. 'ntoskrnl.exe' (the export directory's name)."""
    arch: str
    image_base: int
    size_of_image: int
    sections: list[Section]
    entry_rva: int = 0x1000
    exports: dict[str, int] = field(default_factory=dict)
    """Export name -> RVA."""
    imports: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    """DLL name -> [(function name, bound address written in the IAT)]."""
    pdb_name: str | None = None
    pdb_guid: str | None = None
    """32 hex digits (as in the symbol-server path)."""
    pdb_age: int = 1
    timestamp: int = 0x5F8F8C6A
    subsystem: int = 1
    dll: bool = True
    meta_rva: int = 0x1000
    """Where export/import/debug blobs go (must be inside a mapped section, usually .rdata)."""


def guid_bytes(guid_hex: str) -> bytes:
    """A GUID's on-disk bytes (Data1..3 little-endian) from its 32-digit symbol-server spelling."""
    return uuid.UUID(hex=guid_hex).bytes_le


def build_pe(spec: PeSpec) -> dict[int, bytes]:
    """Blobs to write at RVAs of the loaded image: headers at 0, directories at ``meta_rva``..."""
    is64 = spec.arch == "x64"
    out: dict[int, bytes] = {}
    meta = bytearray()
    meta_rva = spec.meta_rva

    def add(blob: bytes, align: int = 8) -> int:
        while len(meta) % align:
            meta.append(0)
        rva = meta_rva + len(meta)
        meta.extend(blob)
        return rva

    dirs = [(0, 0)] * 16
    # ---- exports
    if spec.exports:
        names = sorted(spec.exports)
        name_rva = add(spec.name.encode() + b"\0", 2)
        rvas = [spec.exports[n] for n in names]
        aof = add(struct.pack(f"<{len(rvas)}I", *rvas), 4)
        name_rvas = [add(n.encode() + b"\0", 1) for n in names]
        aon = add(struct.pack(f"<{len(names)}I", *name_rvas), 4)
        aoo = add(struct.pack(f"<{len(names)}H", *range(len(names))), 2)
        ed = struct.pack("<IIHHIIIIIII", 0, spec.timestamp, 0, 0, name_rva, 1, len(rvas), len(names), aof, aon, aoo)
        ed_rva = add(ed, 4)
        dirs[0] = (ed_rva, len(ed))
    # ---- imports (descriptors, lookup tables, IAT with bound addresses, hint/name entries)
    if spec.imports:
        psz = 8 if is64 else 4
        fmt = "<Q" if is64 else "<I"
        descs = []
        iat_start = None
        iat_len = 0
        for dll, imp in spec.imports.items():
            funcs: list[tuple[str, int]] = imp
            dll_rva = add(dll.encode() + b"\0", 2)
            hn = [add(struct.pack("<H", i) + f.encode() + b"\0", 2) for i, (f, _) in enumerate(funcs)]
            ilt = add(b"".join(struct.pack(fmt, r) for r in hn) + bytes(psz), psz)
            iat = add(b"".join(struct.pack(fmt, a) for _, a in funcs) + bytes(psz), psz)
            if iat_start is None:
                iat_start = iat
            iat_len = iat + (len(funcs) + 1) * psz - iat_start
            descs.append(struct.pack("<IIIII", ilt, 0, 0, dll_rva, iat))
        blob = b"".join(descs) + bytes(20)
        dirs[1] = (add(blob, 4), len(blob))
        if iat_start is not None:
            dirs[12] = (iat_start, iat_len)
    # ---- debug directory with a CodeView RSDS record
    if spec.pdb_name and spec.pdb_guid:
        rsds = b"RSDS" + guid_bytes(spec.pdb_guid) + struct.pack("<I", spec.pdb_age) + spec.pdb_name.encode() + b"\0"
        rsds_rva = add(rsds, 4)
        dbg = struct.pack("<IIHHIIII", 0, spec.timestamp, 0, 0, 2, len(rsds), rsds_rva, rsds_rva)
        dirs[6] = (add(dbg, 4), len(dbg))
    if meta:
        out[meta_rva] = bytes(meta)

    # ---- headers
    e_lfanew = 0xF0
    dos = bytearray(e_lfanew)
    dos[0:2] = b"MZ"
    struct.pack_into("<HHHHHHHHH", dos, 2, 0x90, 3, 0, 4, 0, 0xFFFF, 0, 0xB8, 0)
    struct.pack_into("<H", dos, 0x18, 0x40)
    struct.pack_into("<I", dos, 0x3C, e_lfanew)
    dos[0x4E:0x4E + 39] = b"This program cannot be run in DOS mode."
    chars = 0x0022 if is64 else 0x0102  # EXECUTABLE_IMAGE | LARGE_ADDRESS_AWARE / 32BIT_MACHINE
    if spec.dll:
        chars |= 0x2000
    opt_size = 0xF0 if is64 else 0xE0
    fh = struct.pack("<HHIIIHH", IMAGE_FILE_MACHINE[spec.arch], len(spec.sections), spec.timestamp, 0, 0,
                     opt_size, chars)
    code_size = sum(s.vsize for s in spec.sections if s.characteristics & 0x20)
    data_size = sum(s.vsize for s in spec.sections if s.characteristics & 0x40)
    hdr_size = 0x1000
    common = struct.pack("<HBBIIIII", 0x20B if is64 else 0x10B, 14, 20, code_size, data_size, 0,
                         spec.entry_rva, spec.sections[0].rva if spec.sections else 0x1000)
    if is64:
        opt = common + struct.pack("<QIIHHHHHHIIIIHHQQQQII", spec.image_base, 0x1000, 0x200, 10, 0, 10, 0, 10, 0, 0,
                                   spec.size_of_image, hdr_size, 0, spec.subsystem, 0x4160,
                                   0x80000, 0x2000, 0x100000, 0x1000, 0, 16)
    else:
        opt = common + struct.pack("<IIIIHHHHHHIIIIHHIIIIII", 0, spec.image_base, 0x1000, 0x200, 6, 1, 6, 1, 6, 1,
                                   0, spec.size_of_image, hdr_size, 0, spec.subsystem, 0x4140,
                                   0x40000, 0x1000, 0x100000, 0x1000, 0, 16)
    opt += b"".join(struct.pack("<II", *d) for d in dirs)
    assert len(opt) == opt_size, (len(opt), opt_size)
    sh = b""
    for s in spec.sections:
        raw = s.vsize if s.characteristics & 0xE0 else 0
        sh += struct.pack("<8sIIIIIIHHI", s.name.encode()[:8], s.vsize, s.rva, raw, s.rva if raw else 0,
                          0, 0, 0, 0, s.characteristics)
    out[0] = bytes(dos) + b"PE\0\0" + fh + opt + sh
    return out


TEXT = 0x60000020  # CODE | EXECUTE | READ
RDATA = 0x40000040  # INITIALIZED_DATA | READ
DATA = 0xC0000040  # INITIALIZED_DATA | READ | WRITE
