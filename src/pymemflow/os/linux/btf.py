"""BTF (the kernel's own compact type information, magic 0xEB9F) -> struct layouts.

Only what an OS layer needs: struct/union sizes and member offsets (through anonymous members),
array lengths, pointer and typedef resolution. One pass over the type section records where each type
starts and the names of structs/unions/typedefs; members are decoded on demand, so opening a ~5 MiB
vmlinux BTF costs one linear scan. Every count is bounded by the blob's own length.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ...errors import FormatError, NotFoundError

MAGIC = 0xEB9F
HEADER = struct.Struct("<HBBIIIII")

K_INT, K_PTR, K_ARRAY, K_STRUCT, K_UNION, K_ENUM, K_FWD, K_TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
K_VOLATILE, K_CONST, K_RESTRICT, K_FUNC, K_FUNC_PROTO, K_VAR, K_DATASEC = 9, 10, 11, 12, 13, 14, 15
K_FLOAT, K_DECL_TAG, K_TYPE_TAG, K_ENUM64 = 16, 17, 18, 19
_MODIFIERS = {K_TYPEDEF, K_VOLATILE, K_CONST, K_RESTRICT, K_TYPE_TAG}
_EXTRA = {K_INT: (4, 0), K_ARRAY: (12, 0), K_STRUCT: (0, 12), K_UNION: (0, 12), K_ENUM: (0, 8),
          K_FUNC_PROTO: (0, 8), K_VAR: (4, 0), K_DATASEC: (0, 12), K_DECL_TAG: (4, 0), K_ENUM64: (0, 12)}
"""kind -> (fixed extra bytes, bytes per vlen item)."""


@dataclass(frozen=True)
class Member:
    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int = 0

    @property
    def offset(self) -> int:
        return self.bit_offset // 8


class Btf:
    """Parsed BTF. ``offset_of("task_struct", "mm")``, ``size_of("task_struct")``,
    ``offset_of("mm_struct", "arg_start")`` (anonymous sub-structs are searched), dotted paths
    (``offset_of("task_struct", "thread_pid")``, ``"f_path.dentry"``) follow embedded members."""

    def __init__(self, blob: bytes, *, source: str = "BTF", pointer_size: int = 8) -> None:
        self.source = source
        self.pointer_size = pointer_size
        if len(blob) < HEADER.size:
            raise FormatError(source, 0, "btf_header", f"{len(blob)} bytes is shorter than the header")
        magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = HEADER.unpack_from(blob)
        if magic != MAGIC:
            raise FormatError(source, 0, "magic", f"{magic:#06x} is not 0xeb9f")
        if version != 1 or hdr_len < HEADER.size:
            raise FormatError(source, 2, "version/hdr_len", f"unsupported BTF version {version} header {hdr_len}")
        ts, ss = hdr_len + type_off, hdr_len + str_off
        if ts + type_len > len(blob) or ss + str_len > len(blob):
            raise FormatError(source, 8, "type_len/str_len", f"sections run past the {len(blob)}-byte blob")
        self._blob = blob
        self._strs = blob[ss:ss + str_len]
        self._pos: list[int] = [0]  # type id -> offset of its btf_type in blob (id 0 = void)
        self._by_name: dict[str, int] = {}
        self.damage: str | None = None
        """Why indexing stopped early (a damaged type record); the types before it are usable."""
        try:
            self._parse_index(ts, ts + type_len)
        except FormatError as e:
            if len(self._pos) < 2:
                raise
            self.damage = f"{e} (types after id {len(self._pos) - 1} lost)"
        self._member_cache: dict[int, list[Member]] = {}
        self._off_cache: dict[tuple[str, str], int] = {}

    def _parse_index(self, pos: int, end: int) -> None:
        blob = self._blob
        unpack = struct.unpack_from
        positions = self._pos
        by_name = self._by_name
        extra = _EXTRA
        while pos < end:
            if pos + 12 > end:
                raise FormatError(self.source, pos, "btf_type", "truncated type record")
            name_off, info, _size = unpack("<III", blob, pos)
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            if kind == 0 or kind > K_ENUM64:
                raise FormatError(self.source, pos, "btf_type.info", f"unknown kind {kind}")
            fixed, per = extra.get(kind, (0, 0))
            if pos + 12 + fixed + per * vlen > end:
                raise FormatError(self.source, pos, "btf_type", "type record runs past the type section")
            positions.append(pos)
            if kind in (K_STRUCT, K_UNION, K_TYPEDEF, K_ENUM) and name_off:
                name = self.name_at(name_off)
                key = name if kind != K_TYPEDEF else "typedef " + name
                if kind == K_UNION:
                    key = "union " + name
                if kind == K_ENUM:
                    key = "enum " + name
                prev = by_name.get(key)
                # A forward-declared or zero-size duplicate must not shadow the real definition.
                if prev is None or unpack("<I", blob, positions[prev] + 8)[0] == 0:
                    by_name[key] = len(positions) - 1
            pos += 12 + fixed + per * vlen
        if pos != end:
            raise FormatError(self.source, pos, "btf_type", "last type runs past the type section")

    def name_at(self, off: int) -> str:
        if off >= len(self._strs):
            return ""
        e = self._strs.find(b"\0", off)
        return self._strs[off:e if e >= 0 else len(self._strs)].decode("latin-1")

    def __len__(self) -> int:
        return len(self._pos) - 1

    # ---- raw type access ------------------------------------------------------------------------
    def _hdr(self, tid: int) -> tuple[int, int, int, int]:
        if not 0 < tid < len(self._pos):
            raise FormatError(self.source, None, "type id", f"{tid} out of range")
        name_off, info, size = struct.unpack_from("<III", self._blob, self._pos[tid])
        return (info >> 24) & 0x1F, info & 0xFFFF, size, name_off

    def kind(self, tid: int) -> int:
        return self._hdr(tid)[0]

    def type_name(self, tid: int) -> str:
        return self.name_at(self._hdr(tid)[3]) if tid else "void"

    def find(self, name: str) -> int:
        """Type id of struct ``name`` (``"union x"``, ``"typedef x"``, ``"enum x"`` for the others)."""
        tid = self._by_name.get(name)
        if tid is None:
            raise NotFoundError(f"{self.source}: no type {name!r}")
        return tid

    def has(self, name: str) -> bool:
        return name in self._by_name

    def resolve(self, tid: int) -> int:
        """Skip typedefs and qualifiers (bounded)."""
        for _ in range(64):
            if tid == 0:
                return 0
            k, _v, size, _n = self._hdr(tid)
            if k not in _MODIFIERS:
                return tid
            tid = size
        raise FormatError(self.source, None, "type chain", "typedef/qualifier chain longer than 64")

    def size(self, tid: int) -> int:
        tid = self.resolve(tid)
        if tid == 0:
            return 0
        k, _v, size, _n = self._hdr(tid)
        if k == K_PTR:
            return self.pointer_size
        if k == K_ARRAY:
            elem, _idx, n = struct.unpack_from("<III", self._blob, self._pos[tid] + 12)
            return self.size(elem) * n
        return size

    def array_info(self, tid: int) -> tuple[int, int]:
        """(element type id, element count) of an array type."""
        tid = self.resolve(tid)
        if self.kind(tid) != K_ARRAY:
            raise FormatError(self.source, None, self.type_name(tid), "not an array")
        elem, _idx, n = struct.unpack_from("<III", self._blob, self._pos[tid] + 12)
        return elem, n

    def pointee(self, tid: int) -> int:
        tid = self.resolve(tid)
        if self.kind(tid) != K_PTR:
            raise FormatError(self.source, None, self.type_name(tid), "not a pointer")
        return self._hdr(tid)[2]

    def members(self, tid: int) -> list[Member]:
        tid = self.resolve(tid)
        cached = self._member_cache.get(tid)
        if cached is not None:
            return cached
        k, vlen, _size, _n = self._hdr(tid)
        kflag = (struct.unpack_from("<I", self._blob, self._pos[tid] + 4)[0] >> 31) & 1
        if k not in (K_STRUCT, K_UNION):
            raise FormatError(self.source, None, self.type_name(tid), "not a struct or union")
        out = []
        base = self._pos[tid] + 12
        for i in range(vlen):
            name_off, mtype, off = struct.unpack_from("<III", self._blob, base + 12 * i)
            bits = off >> 24 if kflag else 0
            out.append(Member(self.name_at(name_off), mtype, off & 0xFFFFFF if kflag else off, bits))
        self._member_cache[tid] = out
        return out

    def member(self, tid: int, name: str, _depth: int = 0) -> tuple[int, Member] | None:
        """(byte offset, member) of ``name`` in struct ``tid``, searching anonymous members."""
        if _depth > 16:
            return None
        for m in self.members(tid):
            if m.name == name:
                return m.offset, m
        for m in self.members(tid):
            if not m.name and self.kind(self.resolve(m.type_id)) in (K_STRUCT, K_UNION):
                hit = self.member(m.type_id, name, _depth + 1)
                if hit is not None:
                    return m.offset + hit[0], hit[1]
        return None

    def offset_of(self, struct_name: str, path: str) -> int:
        key = (struct_name, path)
        cached = self._off_cache.get(key)
        if cached is not None:
            return cached
        tid = self.find(struct_name)
        off = 0
        for part in path.split("."):
            hit = self.member(tid, part)
            if hit is None:
                raise NotFoundError(f"{self.source}: struct {struct_name} has no member {path!r}")
            off += hit[0]
            tid = hit[1].type_id
        self._off_cache[key] = off
        return off

    def has_member(self, struct_name: str, path: str) -> bool:
        try:
            self.offset_of(struct_name, path)
            return True
        except NotFoundError:
            return False

    def member_type(self, struct_name: str, path: str) -> int:
        tid = self.find(struct_name)
        for part in path.split("."):
            hit = self.member(tid, part)
            if hit is None:
                raise NotFoundError(f"{self.source}: struct {struct_name} has no member {path!r}")
            tid = hit[1].type_id
        return tid

    def size_of(self, struct_name: str) -> int:
        return self.size(self.find(struct_name))

    def array_len(self, struct_name: str, path: str) -> int:
        return self.array_info(self.member_type(struct_name, path))[1]


def to_isf(btf: Btf, roots: list[str] | None = None, symbols: dict[str, int] | None = None,
           limit: int = 200_000) -> dict[str, object]:
    """A volatility3-style ISF (``user_types``, ``base_types``, ``enums``, ``symbols``) for the structs in
    ``roots`` and every type they reach (all named structs/unions when ``roots`` is None). Lets a kernel's
    own BTF stand in for a dwarf2json symbol file (``symbols`` should be link-time addresses)."""
    user: dict[str, dict[str, object]] = {}
    enums: dict[str, dict[str, object]] = {}
    base: dict[str, dict[str, object]] = {
        "pointer": {"kind": "int", "size": btf.pointer_size, "signed": False, "endian": "little"},
        "void": {"kind": "void", "size": 0, "signed": False, "endian": "little"},
    }
    names: dict[int, str] = {}
    todo: list[int] = []

    def tname(tid: int) -> str:
        n = names.get(tid)
        if n is None:
            n = btf.type_name(tid) or f"unnamed_{tid}"
            names[tid] = n
            todo.append(tid)
        return n

    def desc(tid: int) -> dict[str, object]:
        for _ in range(64):
            if tid == 0:
                return {"kind": "base", "name": "void"}
            k, vlen, size, name_off = btf._hdr(tid)
            if k in _MODIFIERS:
                tid = size
                continue
            if k == K_PTR:
                return {"kind": "pointer", "subtype": desc(size)}
            if k == K_ARRAY:
                elem, n = btf.array_info(tid)
                return {"kind": "array", "count": n, "subtype": desc(elem)}
            if k in (K_STRUCT, K_UNION):
                return {"kind": "struct" if k == K_STRUCT else "union", "name": tname(tid)}
            if k in (K_ENUM, K_ENUM64):
                ename = btf.type_name(tid) or f"unnamed_enum_{tid}"
                enums.setdefault(ename, {"size": size, "base": "int", "constants": {}})
                return {"kind": "enum", "name": ename}
            if k in (K_INT, K_FLOAT):
                bname = btf.name_at(name_off)
                base.setdefault(bname, {"kind": "int" if k == K_INT else "float", "size": size,
                                    "signed": bool(k == K_INT and (struct.unpack_from("<I", btf._blob, btf._pos[tid] + 12)[0] >> 24) & 1),
                                    "endian": "little"})
                return {"kind": "base", "name": bname}
            if k in (K_FUNC_PROTO, K_FUNC):
                return {"kind": "function"}
            if k == K_FWD:
                return {"kind": "struct", "name": btf.name_at(name_off)}
            return {"kind": "base", "name": "void"}
        return {"kind": "base", "name": "void"}

    for r in roots if roots is not None else [n for n in btf._by_name if " " not in n]:
        tname(btf.find(r))
    while todo and len(user) < limit:
        tid = todo.pop()
        k, _vlen, size, _n = btf._hdr(tid)
        fields: dict[str, object] = {}
        for i, m in enumerate(btf.members(tid)):
            d = desc(m.type_id)
            if m.bitfield_size:
                d = {"kind": "bitfield", "bit_length": m.bitfield_size, "bit_position": m.bit_offset % 8, "type": d}
            fields[m.name or f"unnamed_field_{i}"] = {"offset": m.bit_offset // 8, "type": d,
                                                     **({"anonymous": True} if not m.name else {})}
        user[names[tid]] = {"kind": "struct" if k == K_STRUCT else "union", "size": size, "fields": fields}
    return {"metadata": {"format": "6.2.0", "producer": {"name": "pymemflow", "version": "0.1.0"}},
            "base_types": base, "user_types": user, "enums": enums,
            "symbols": {n: {"address": a} for n, a in (symbols or {}).items()}}
