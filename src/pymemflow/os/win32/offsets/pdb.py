"""A small, bounded PDB reader (MSF 7.0: PDB info, TPI types, DBI publics/globals, section headers)
that turns a kernel PDB into the ISF-shaped dict :class:`~.isf.IsfSymbols` reads.

Why our own: no maintained PDB parser on PyPI fits (pdbparse is unmaintained and pins an old
``construct``). We read only what offsets need: struct/union layouts with member offsets, bitfields,
arrays and pointers; public and global data symbols as RVAs; GUID, age and machine. Every count and
index is checked against the file, so a corrupt or hostile PDB gives FormatError, never a hang.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from ....errors import FormatError

MSF_MAGIC = b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\x00\x00\x00"
MAX_PDB_BYTES = 1 << 30
MAX_TYPE_RECORDS = 2_000_000

LF_MODIFIER, LF_POINTER, LF_FIELDLIST, LF_BITFIELD = 0x1001, 0x1002, 0x1203, 0x1205
LF_ARRAY, LF_CLASS, LF_STRUCTURE, LF_UNION, LF_ENUM = 0x1503, 0x1504, 0x1505, 0x1506, 0x1507
LF_MEMBER, LF_STMEMBER, LF_NESTTYPE, LF_ENUMERATE, LF_INDEX = 0x150D, 0x150E, 0x1510, 0x1502, 0x1404
LF_BCLASS, LF_VFUNCTAB, LF_METHOD, LF_ONEMETHOD = 0x1400, 0x1409, 0x150F, 0x1511
S_PUB32, S_GDATA32, S_LDATA32 = 0x110E, 0x110D, 0x110C
_NUMERIC = {0x8000: "<b", 0x8001: "<h", 0x8002: "<H", 0x8003: "<i", 0x8004: "<I", 0x8009: "<q", 0x800A: "<Q"}
# simple (built-in) type sizes by the low byte of the type index; pointers by mode bits 8-11
_SIMPLE_SIZE = {0x03: 0, 0x10: 1, 0x20: 1, 0x68: 1, 0x69: 1, 0x70: 1, 0x11: 2, 0x21: 2, 0x71: 2, 0x72: 2, 0x7A: 2,
                0x7B: 4, 0x12: 4, 0x22: 4, 0x74: 4, 0x75: 4, 0x13: 8, 0x23: 8, 0x76: 8, 0x77: 8, 0x40: 4,
                0x41: 8, 0x30: 1, 0x08: 4}


class MsfFile:
    """The multi-stream container: stream ``i`` as bytes."""

    def __init__(self, data: bytes, path: str = "<pdb>") -> None:
        self.data, self.path = data, path
        if data[:32] != MSF_MAGIC:
            raise FormatError(path, 0, "MSF superblock", "not a PDB 7.0 (MSF) file")
        bs, _fpm, nblocks, dir_bytes, _unk, map_addr = struct.unpack_from("<6I", data, 32)
        if bs not in (512, 1024, 2048, 4096, 8192, 16384, 32768) or nblocks * bs > len(data) + bs:
            raise FormatError(path, 32, "BlockSize/NumBlocks", f"block size {bs}, {nblocks} blocks vs file size")
        self.bs, self.nblocks = bs, nblocks
        ndir = -(-dir_bytes // bs)
        if dir_bytes > len(data) or map_addr >= nblocks:
            raise FormatError(path, 44, "NumDirectoryBytes/BlockMapAddr", "outside the file")
        dir_blocks = self._u32s(map_addr * bs, ndir, "block map")
        d = self._gather(dir_blocks, dir_bytes, "stream directory")
        n = struct.unpack_from("<I", d, 0)[0]
        if 4 + 4 * n > len(d):
            raise FormatError(path, None, "stream directory", f"{n} streams do not fit")
        sizes = list(struct.unpack_from(f"<{n}I", d, 4))
        pos = 4 + 4 * n
        self.streams: list[list[int] | None] = []
        self.sizes: list[int] = []
        for s in sizes:
            if s == 0xFFFFFFFF:
                self.streams.append(None)
                self.sizes.append(0)
                continue
            k = -(-s // bs)
            if pos + 4 * k > len(d):
                raise FormatError(path, None, "stream directory", "block lists run past the directory")
            self.streams.append(list(struct.unpack_from(f"<{k}I", d, pos)))
            self.sizes.append(s)
            pos += 4 * k

    def _u32s(self, off: int, n: int, what: str) -> list[int]:
        if off + 4 * n > len(self.data):
            raise FormatError(self.path, off, what, "runs past the end of the file")
        return list(struct.unpack_from(f"<{n}I", self.data, off))

    def _gather(self, blocks: list[int], size: int, what: str) -> bytes:
        out = bytearray()
        for b in blocks:
            if b >= self.nblocks or (b + 1) * self.bs > len(self.data) + self.bs:
                raise FormatError(self.path, None, what, f"block {b} outside the file")
            out += self.data[b * self.bs : (b + 1) * self.bs]
        return bytes(out[:size])

    def stream(self, i: int) -> bytes:
        if i >= len(self.streams) or self.streams[i] is None:
            return b""
        return self._gather(self.streams[i] or [], self.sizes[i], f"stream {i}")


def _numeric(buf: bytes, pos: int) -> tuple[int, int]:
    v = struct.unpack_from("<H", buf, pos)[0]
    if v < 0x8000:
        return v, pos + 2
    fmt = _NUMERIC.get(v)
    if fmt is None:
        raise ValueError(f"numeric leaf {v:#x}")
    return struct.unpack_from(fmt, buf, pos + 2)[0], pos + 2 + struct.calcsize(fmt)


def _cstr(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.index(b"\0", pos)
    return buf[pos:end].decode("utf-8", "replace"), end + 1


class PdbReader:
    def __init__(self, path: str | Path) -> None:
        p = Path(path)
        self.path = str(p)
        if p.stat().st_size > MAX_PDB_BYTES:
            raise FormatError(p, None, "size", f"larger than {MAX_PDB_BYTES} bytes")
        self.msf = MsfFile(p.read_bytes(), self.path)
        info = self.msf.stream(1)
        if len(info) < 28:
            raise FormatError(p, None, "PDB info stream", "too short")
        _ver, _sig, self.age = struct.unpack_from("<III", info, 0)
        d1, d2, d3 = struct.unpack_from("<IHH", info, 12)
        self.guid = f"{d1:08X}{d2:04X}{d3:04X}{info[20:28].hex().upper()}"
        self.types: dict[int, tuple[int, bytes]] = {}
        self._read_tpi()
        self.machine = 0
        self.symbols: dict[str, int] = {}
        self._read_dbi()

    # ---- types ---------------------------------------------------------------------------------
    def _read_tpi(self) -> None:
        tpi = self.msf.stream(2)
        if len(tpi) < 56:
            raise FormatError(self.path, None, "TPI stream", "too short")
        _ver, hdr, begin, end, nbytes = struct.unpack_from("<5I", tpi, 0)
        if hdr > len(tpi) or hdr + nbytes > len(tpi) or end < begin or end - begin > MAX_TYPE_RECORDS:
            raise FormatError(self.path, None, "TPI header", "sizes do not fit the stream")
        pos, ti, stop = hdr, begin, hdr + nbytes
        while pos + 4 <= stop and ti < end:
            ln, kind = struct.unpack_from("<HH", tpi, pos)
            if ln < 2 or pos + 2 + ln > stop:
                raise FormatError(self.path, pos, f"type record {ti:#x}", f"length {ln} runs past the stream")
            self.types[ti] = (kind, tpi[pos + 4 : pos + 2 + ln])
            pos += 2 + ln
            ti += 1

    def _struct_record(self, kind: int, rec: bytes) -> tuple[int, int, int, str] | None:
        """(field list, size, property, name) of a struct/class/union record."""
        if kind in (LF_STRUCTURE, LF_CLASS):
            _count, prop, fl = struct.unpack_from("<HHI", rec, 0)
            size, pos = _numeric(rec, 16)
        elif kind == LF_UNION:
            _count, prop, fl = struct.unpack_from("<HHI", rec, 0)
            size, pos = _numeric(rec, 8)
        else:
            return None
        name, _ = _cstr(rec, pos)
        return fl, size, prop, name

    def _type_desc(self, ti: int, depth: int = 0) -> tuple[dict[str, Any], int]:
        """ISF-style type descriptor and size of type index ``ti``."""
        if depth > 16:
            return {"kind": "base", "name": "void"}, 0
        if ti < 0x1000:
            mode = (ti >> 8) & 0xF
            if mode:
                sz = 8 if mode == 6 else 4
                return {"kind": "pointer", "subtype": {"kind": "base", "name": "void"}}, sz
            sz = _SIMPLE_SIZE.get(ti & 0xFF, 0)
            return {"kind": "base", "name": f"u{sz}" if sz else "void"}, sz
        kind, rec = self.types.get(ti, (0, b""))
        try:
            if kind == LF_MODIFIER:
                return self._type_desc(struct.unpack_from("<I", rec, 0)[0], depth + 1)
            if kind == LF_POINTER:
                attrs = struct.unpack_from("<I", rec, 4)[0]
                return {"kind": "pointer", "subtype": {"kind": "base", "name": "void"}}, (attrs >> 13) & 0x3F or 8
            if kind == LF_BITFIELD:
                base, _ = self._type_desc(struct.unpack_from("<I", rec, 0)[0], depth + 1)
                ln, pos = rec[4], rec[5]
                return {"kind": "bitfield", "bit_length": ln, "bit_position": pos, "type": base}, 0
            if kind == LF_ARRAY:
                elem, _idx = struct.unpack_from("<II", rec, 0)
                size, _ = _numeric(rec, 8)
                sub, esz = self._type_desc(elem, depth + 1)
                return {"kind": "array", "count": size // esz if esz else 0, "subtype": sub}, size
            sr = self._struct_record(kind, rec)
            if sr is not None:
                return {"kind": "union" if kind == LF_UNION else "struct", "name": sr[3]}, sr[1]
            if kind == LF_ENUM:
                return {"kind": "base", "name": "u4"}, 4
        except (struct.error, ValueError, IndexError):
            raise FormatError(self.path, None, f"type {ti:#x}", "malformed type record") from None
        return {"kind": "base", "name": "void"}, 0

    def _fields(self, fl: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        seen: set[int] = set()
        while fl and fl not in seen and len(seen) < 64:
            seen.add(fl)
            kind, rec = self.types.get(fl, (0, b""))
            if kind != LF_FIELDLIST:
                break
            pos, nxt = 0, 0
            try:
                while pos + 2 <= len(rec):
                    if rec[pos] >= 0xF0:  # padding
                        pos += rec[pos] & 0x0F or 1
                        continue
                    sub = struct.unpack_from("<H", rec, pos)[0]
                    if sub == LF_MEMBER:
                        _attr, ti = struct.unpack_from("<HI", rec, pos + 2)
                        off, p2 = _numeric(rec, pos + 8)
                        name, pos = _cstr(rec, p2)
                        desc, _ = self._type_desc(ti)
                        out[name] = {"offset": off, "type": desc}
                    elif sub == LF_NESTTYPE:
                        _, pos = _cstr(rec, pos + 8)
                    elif sub == LF_STMEMBER:
                        _, pos = _cstr(rec, pos + 8)
                    elif sub == LF_ENUMERATE:
                        _, p2 = _numeric(rec, pos + 4)
                        _, pos = _cstr(rec, p2)
                    elif sub == LF_BCLASS:
                        _, pos = _numeric(rec, pos + 8)
                    elif sub == LF_VFUNCTAB:
                        pos += 8
                    elif sub == LF_INDEX:
                        nxt = struct.unpack_from("<I", rec, pos + 4)[0]
                        pos += 8
                    else:
                        break  # methods etc.: not in C kernel types; stop this list safely
            except (struct.error, ValueError, IndexError):
                raise FormatError(self.path, None, f"field list {fl:#x}", "malformed member record") from None
            fl = nxt
        return out

    def user_types(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind, rec in self.types.values():
            try:
                sr = self._struct_record(kind, rec)
            except (struct.error, ValueError, IndexError):
                raise FormatError(self.path, None, "type record", "malformed struct record") from None
            if sr is None:
                continue
            fl, size, prop, name = sr
            if prop & 0x80 or name in out:  # forward reference / already defined
                continue
            out[name] = {"kind": "union" if kind == LF_UNION else "struct", "size": size, "fields": self._fields(fl)}
        return out

    # ---- symbols -------------------------------------------------------------------------------
    def _read_dbi(self) -> None:
        dbi = self.msf.stream(3)
        if len(dbi) < 64:
            return
        sym_stream = struct.unpack_from("<H", dbi, 20)[0]
        sizes = struct.unpack_from("<5i", dbi, 24)  # modinfo, seccontr, secmap, fileinfo, type server map
        opt_size, ec_size = struct.unpack_from("<ii", dbi, 48)
        self.machine = struct.unpack_from("<H", dbi, 58)[0]
        pos = 64 + sizes[0] + sizes[1] + sizes[2] + sizes[3] + sizes[4] + ec_size
        if min(sizes) < 0 or opt_size < 0 or ec_size < 0 or pos + opt_size > len(dbi):
            raise FormatError(self.path, None, "DBI header", "substream sizes do not fit the stream")
        sections: list[int] = []
        if opt_size >= 12:
            sh = struct.unpack_from("<H", dbi, pos + 10)[0]  # optional debug header [5] = section headers
            raw = self.msf.stream(sh) if sh != 0xFFFF else b""
            sections = [struct.unpack_from("<I", raw, i + 12)[0] for i in range(0, len(raw) - 39, 40)]
        syms = self.msf.stream(sym_stream) if sym_stream != 0xFFFF else b""
        pos = 0
        while pos + 4 <= len(syms):
            ln, kind = struct.unpack_from("<HH", syms, pos)
            if ln < 2:
                break
            body = syms[pos + 4 : pos + 2 + ln]
            pos += 2 + ln
            try:
                if kind == S_PUB32:
                    _flags, off, seg = struct.unpack_from("<IIH", body, 0)
                    name, _ = _cstr(body, 10)
                elif kind in (S_GDATA32, S_LDATA32):
                    _ti, off, seg = struct.unpack_from("<IIH", body, 0)
                    name, _ = _cstr(body, 10)
                else:
                    continue
            except (struct.error, ValueError):
                continue
            if 1 <= seg <= len(sections):
                if self.machine == 0x14C and name.startswith("_"):
                    name = name[1:].split("@")[0]  # x86 C decoration: _Name / _Name@N
                self.symbols.setdefault(name, sections[seg - 1] + off)

    # ---- ISF view ------------------------------------------------------------------------------
    def to_isf(self, pdb_name: str) -> dict[str, Any]:
        ptr = 8 if self.machine in (0x8664, 0xAA64) else 4
        base = {f"u{n}": {"kind": "int", "size": n, "signed": False, "endian": "little"} for n in (1, 2, 4, 8)}
        base["void"] = {"kind": "void", "size": 0, "signed": False, "endian": "little"}
        base["pointer"] = {"kind": "int", "size": ptr, "signed": False, "endian": "little"}
        return {"metadata": {"format": "6.1.0", "producer": {"name": "pymemflow-pdb"},
                             "windows": {"pdb": {"GUID": self.guid, "age": self.age, "database": pdb_name,
                                                 "machine_type": self.machine}}},
                "base_types": base, "user_types": self.user_types(), "enums": {},
                "symbols": {k: {"address": v} for k, v in self.symbols.items()}}
