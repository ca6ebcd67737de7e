"""Reader for volatility3 ISF symbol files (``.json`` / ``.json.xz``): any member offset, size, symbol.

The ISF ("Intermediate Symbol Format") is the JSON volatility3 makes from a PDB. We only read it:
``user_types`` (structs with member offsets and types), ``base_types``, ``enums``, ``symbols``
(RVAs) and ``metadata.windows.pdb`` (GUID, age, PDB name, machine type).
"""

from __future__ import annotations

import json
import lzma
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ....errors import FormatError, NotFoundError

MAX_ISF_BYTES = 512 << 20
"""Refuse to decompress more than this (a hostile .xz could expand without bound)."""

_MACHINE_ARCH = {0x8664: "x64", 0x14C: "x86", 0xAA64: "aarch64"}
_INDEX_RE = re.compile(r"^([A-Za-z_$][\w$]*)(?:\[(\d+)\])?$")


@dataclass(frozen=True)
class IsfMember:
    offset: int
    """Byte offset from the start of the outer struct (nested paths summed)."""
    type: dict[str, Any]
    size: int
    bit_position: int | None = None
    bit_length: int | None = None


def _read_text(path: Path) -> bytes:
    try:
        if path.name.endswith(".xz"):
            with lzma.open(path) as f:
                data = f.read(MAX_ISF_BYTES + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(MAX_ISF_BYTES + 1)
    except (lzma.LZMAError, EOFError) as e:
        raise FormatError(path, None, "xz stream", str(e)) from e
    if len(data) > MAX_ISF_BYTES:
        raise FormatError(path, None, "size", f"ISF larger than {MAX_ISF_BYTES} bytes")
    return data


class IsfSymbols:
    """One loaded ISF file."""

    def __init__(self, doc: dict[str, Any], source: str = "<isf>") -> None:
        self.source = source
        for key in ("user_types", "base_types", "symbols"):
            if not isinstance(doc.get(key), dict):
                raise FormatError(source, None, key, "missing or not an object (not an ISF file?)")
        self.user_types: dict[str, Any] = doc["user_types"]
        self.base_types: dict[str, Any] = doc["base_types"]
        self.enums: dict[str, Any] = doc.get("enums") or {}
        self.symbols: dict[str, Any] = doc["symbols"]
        meta = doc.get("metadata") or {}
        win = meta.get("windows") if isinstance(meta, dict) else None
        pdb = (win.get("pdb") if isinstance(win, dict) else None) or {}
        if not isinstance(pdb, dict) or not isinstance(pdb.get("age", 0), int):
            raise FormatError(source, None, "metadata.windows.pdb", "not an object with an integer age")
        self.guid: str | None = str(pdb["GUID"]).upper() if pdb.get("GUID") else None
        self.age: int | None = int(pdb["age"]) if pdb.get("age") is not None else None
        self.pdb_name: str = str(pdb.get("database") or "ntkrnlmp.pdb")
        self.machine_type: int | None = pdb.get("machine_type")
        ptr = self.base_types.get("pointer") or {}
        psz = ptr.get("size", 8) if isinstance(ptr, dict) else None
        if psz not in (4, 8):
            raise FormatError(source, None, "base_types.pointer.size", f"expected 4 or 8, got {psz!r:.40}")
        self.pointer_size: int = int(psz)
        self._checked: set[str] = set()

    # ---- loading -------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> IsfSymbols:
        p = Path(path)
        try:
            doc = json.loads(_read_text(p))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise FormatError(p, getattr(e, "pos", None), "json", str(e)) from e
        if not isinstance(doc, dict):
            raise FormatError(p, 0, "json", "top level is not an object")
        return cls(doc, str(p))

    # ---- identity ------------------------------------------------------------------------------
    @property
    def guid_age(self) -> str | None:
        """GUID + age in hex (symbol-server spelling), e.g. ``5278AFF86C341677D7D7835C85B7B8441``."""
        if self.guid is None or self.age is None:
            return None
        return f"{self.guid}{self.age:X}"

    @property
    def arch(self) -> str:
        if self.machine_type in _MACHINE_ARCH:
            return _MACHINE_ARCH[self.machine_type]  # type: ignore[index]
        return "x64" if self.pointer_size == 8 else "x86"

    # ---- types ---------------------------------------------------------------------------------
    def has_type(self, name: str) -> bool:
        return name in self.user_types

    def _type(self, name: str) -> dict[str, Any]:
        """A user type, validated once (hostile files: wrong JSON shapes give FormatError)."""
        t = self.user_types.get(name)
        if t is None:
            raise NotFoundError(f"{self.source}: no type {name!r}")
        if name in self._checked:
            return t  # type: ignore[no-any-return]
        where = f"user_types.{name}"
        if not isinstance(t, dict) or not isinstance(t.get("size", 0), int):
            raise FormatError(self.source, None, where, "not an object with an integer size")
        fields = t.get("fields") or {}
        if not isinstance(fields, dict):
            raise FormatError(self.source, None, where + ".fields", "not an object")
        for fname, f in fields.items():
            if not isinstance(f, dict) or not isinstance(f.get("offset", 0), int) \
                    or not isinstance(f.get("type") or {}, dict):
                raise FormatError(self.source, None, f"{where}.fields.{fname}", "needs an integer offset and a type")
        self._checked.add(name)
        return t

    def struct_size(self, name: str) -> int:
        return int(self._type(name).get("size", 0))

    def type_size(self, t: dict[str, Any]) -> int:
        """Size in bytes of an ISF type descriptor (bounded: arrays of arrays resolve iteratively)."""
        mult = 1
        for _ in range(64):
            if not isinstance(t, dict):
                raise FormatError(self.source, None, "type", f"type descriptor is not an object: {t!r:.60}")
            kind = t.get("kind")
            if kind == "array":
                count = t.get("count", 0)
                if not isinstance(count, int) or not 0 <= count < (1 << 32):
                    raise FormatError(self.source, None, "array.count", f"bad count {count!r:.40}")
                mult *= count
                t = t.get("subtype") or {}
                continue
            if kind == "bitfield":
                t = t.get("type") or {}
                continue
            if kind == "pointer":
                return mult * self.pointer_size
            table = {"base": self.base_types, "struct": self.user_types, "union": self.user_types,
                     "class": self.user_types, "enum": self.enums}.get(str(kind))
            if table is None:
                return 0
            entry = table.get(str(t.get("name", ""))) or {}
            size = entry.get("size", 4 if kind == "enum" else 0) if isinstance(entry, dict) else None
            if not isinstance(size, int):
                raise FormatError(self.source, None, f"{kind}.size", f"bad size {size!r:.40}")
            return mult * size
        return 0

    def members(self, struct: str) -> dict[str, Any]:
        return self._type(struct).get("fields") or {}  # type: ignore[no-any-return]

    def member(self, struct: str, path: str) -> IsfMember:
        """Resolve ``"A.B[1].C"`` inside ``struct``: offsets summed through nested structs/arrays."""
        offset = 0
        cur_struct = struct
        t: dict[str, Any] = {"kind": "struct", "name": struct}
        parts = path.split(".")
        for i, part in enumerate(parts):
            m = _INDEX_RE.match(part)
            if not m:
                raise NotFoundError(f"{self.source}: bad member path {path!r}")
            name, index = m.group(1), m.group(2)
            if t.get("kind") not in ("struct", "union", "class"):
                raise NotFoundError(f"{self.source}: {struct}.{'.'.join(parts[:i])} is not a struct")
            cur_struct = str(t.get("name"))
            fields = self.members(cur_struct)
            if name not in fields:
                raise NotFoundError(f"{self.source}: {cur_struct} has no member {name!r}")
            f = fields[name]
            offset += int(f.get("offset", 0))
            t = f.get("type") or {}
            if index is not None:
                if t.get("kind") != "array":
                    raise NotFoundError(f"{self.source}: {cur_struct}.{name} is not an array")
                sub = t.get("subtype") or {}
                offset += int(index) * self.type_size(sub)
                t = sub
        if t.get("kind") == "bitfield":
            pos, ln = t.get("bit_position", 0), t.get("bit_length", 0)
            if not isinstance(pos, int) or not isinstance(ln, int):
                raise FormatError(self.source, None, f"{struct}.{path}", "bitfield without integer position/length")
            return IsfMember(offset, t, self.type_size(t), pos, ln)
        return IsfMember(offset, t, self.type_size(t))

    def member_offset(self, struct: str, path: str) -> int:
        return self.member(struct, path).offset

    # ---- symbols -------------------------------------------------------------------------------
    def symbol(self, name: str) -> int | None:
        """RVA of a symbol (relative to the image base), or None."""
        s = self.symbols.get(name)
        if not isinstance(s, dict) or not isinstance(s.get("address"), int):
            return None
        return int(s["address"])

    def lookup(self, key: str) -> int | None:
        """``"STRUCT.Member.Path"`` -> offset, ``"Symbol"`` -> RVA; None when unknown."""
        if "." in key:
            s, _, m = key.partition(".")
            try:
                return self.member_offset(s, m)
            except NotFoundError:
                return None
        return self.symbol(key)


def find_isf(directory: str | Path, guid_age: str, pdb_name: str | None = None,
             max_files: int = 100_000) -> Path | None:
    """Find ``GUID-AGE.json[.xz]`` in a volatility3 symbols dir (``windows/<pdb>/`` layout) or flat.

    ``guid_age`` is GUID+age (hex), as in the CSV/symbol server; the file name uses ``GUID-AGE``.
    """
    d = Path(directory)
    g = guid_age.upper()
    guid, age = g[:32], g[32:] or "1"
    names = {f"{guid}-{int(age, 16)}", f"{guid}-{age}", g}
    exts = (".json.xz", ".json")
    # fast paths first: the documented layouts
    cands: list[Path] = []
    for base in ([d / "windows" / pdb_name, d / pdb_name] if pdb_name else []) + [
            d / "windows" / "ntkrnlmp.pdb", d / "windows" / "ntkrpamp.pdb", d]:
        for n in names:
            for e in exts:
                cands.append(base / (n + e))
    for c in cands:
        if c.is_file():
            return c
    # then any depth, bounded
    lowered = {n.lower() for n in names}
    for i, p in enumerate(d.rglob("*.json*")):
        if i >= max_files:
            break
        stem = p.name[:-8] if p.name.endswith(".json.xz") else p.name[:-5] if p.name.endswith(".json") else None
        if stem is not None and stem.lower() in lowered:
            return p
    return None
