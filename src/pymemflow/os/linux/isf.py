"""Struct layouts and symbols from a volatility3 Linux ISF (JSON, optionally .json.xz/.gz).

For kernels built without BTF (Debian's i386 kernels): ``isf=FILE`` gives the same
``offset_of``/``size_of`` interface as :class:`~pymemflow.os.linux.btf.Btf`, and its ``symbols``
can stand in for kallsyms. ISF addresses are link-time: the caller adds the KASLR offset.
"""

from __future__ import annotations

import gzip
import json
import lzma
from pathlib import Path
from typing import Any

from ...errors import FormatError, NotFoundError


def _load_json(path: str) -> dict[str, Any]:
    p = Path(path)
    opener: Any = lzma.open if p.suffix == ".xz" else gzip.open if p.suffix == ".gz" else open
    try:
        with opener(p, "rt", encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError, lzma.LZMAError, EOFError) as e:
        raise FormatError(path, None, "json", f"not a readable ISF JSON file: {e}") from None
    if not isinstance(doc, dict) or "user_types" not in doc:
        raise FormatError(path, None, "user_types", "not a volatility3 ISF (no 'user_types')")
    return doc


class IsfTypes:
    """Layouts from ISF ``user_types`` (anonymous members are searched like in BTF)."""

    def __init__(self, doc: dict[str, Any], source: str, pointer_size: int = 8) -> None:
        self.source = source
        self.types: dict[str, Any] = doc.get("user_types") or {}
        self.base_types: dict[str, Any] = doc.get("base_types") or {}
        self.pointer_size = pointer_size
        ptr = self.base_types.get("pointer")
        if isinstance(ptr, dict) and ptr.get("size") in (4, 8):
            self.pointer_size = int(ptr["size"])

    @classmethod
    def load(cls, path: str) -> IsfTypes:
        return cls(_load_json(path), f"ISF {path}")

    def has(self, name: str) -> bool:
        return name in self.types

    def _fields(self, name: str) -> dict[str, Any]:
        t = self.types.get(name)
        if not isinstance(t, dict):
            raise NotFoundError(f"{self.source}: no type {name!r}")
        f = t.get("fields") or {}
        if not isinstance(f, dict):
            raise FormatError(self.source, None, f"user_types.{name}.fields", "not an object")
        return f

    def _member(self, name: str, member: str, depth: int = 0) -> tuple[int, dict[str, Any]] | None:
        if depth > 16:
            return None
        fields = self._fields(name)
        f = fields.get(member)
        if isinstance(f, dict):
            return int(f.get("offset", 0)), f.get("type") or {}
        for fname, f in fields.items():  # anonymous members: volatility names them unnamed_field_N
            t = f.get("type") or {}
            if fname.startswith("unnamed_field") and t.get("kind") in ("struct", "union"):
                hit = self._member(t.get("name", ""), member, depth + 1)
                if hit is not None:
                    return int(f.get("offset", 0)) + hit[0], hit[1]
        return None

    def offset_of(self, struct_name: str, path: str) -> int:
        name, off = struct_name, 0
        for part in path.split("."):
            hit = self._member(name, part)
            if hit is None:
                raise NotFoundError(f"{self.source}: struct {struct_name} has no member {path!r}")
            off += hit[0]
            name = hit[1].get("name", "")
        return off

    def has_member(self, struct_name: str, path: str) -> bool:
        try:
            self.offset_of(struct_name, path)
            return True
        except NotFoundError:
            return False

    def size_of(self, struct_name: str) -> int:
        t = self.types.get(struct_name)
        if not isinstance(t, dict):
            raise NotFoundError(f"{self.source}: no type {struct_name!r}")
        return int(t.get("size", 0))

    def array_len(self, struct_name: str, path: str) -> int:
        name, t = struct_name, {}
        for part in path.split("."):
            hit = self._member(name, part)
            if hit is None:
                raise NotFoundError(f"{self.source}: struct {struct_name} has no member {path!r}")
            t = hit[1]
            name = t.get("name", "")
        if t.get("kind") != "array":
            raise FormatError(self.source, None, f"{struct_name}.{path}", "not an array")
        return int(t.get("count", 0))


def isf_symbols(path: str) -> dict[str, int]:
    doc = _load_json(path)
    out = {}
    for name, s in (doc.get("symbols") or {}).items():
        if isinstance(s, dict) and "address" in s:
            out[name] = int(s["address"])
    return out
