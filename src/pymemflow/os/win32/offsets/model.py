"""The offsets record the win32 layer consumes, whatever source (ISF, built-in table, PDB) produced it.

One flat dict keeps the layer independent of the source: ``"_EPROCESS.UniqueProcessId"`` for struct
members, bare names (``"PsActiveProcessHead"``) for kernel symbol RVAs (relative to the kernel base).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ....errors import NotFoundError

Arch = Literal["x64", "x86", "x86pae"]


@dataclass
class Win32Offsets:
    arch: str
    """'x64', 'x86' or 'x86pae'."""
    version: str
    """e.g. '10.0.19041.804' ('' when the source does not say)."""
    build: int
    guid_age: str | None
    """PDB GUID (32 upper-case hex digits) immediately followed by the age in hex, e.g. '5278...B8441'."""
    source: str
    """'isf:PATH', 'table', 'table-nearest' or 'pdb' (how the values were found)."""
    fields: dict[str, int] = field(default_factory=dict)
    """``"STRUCT.Member"`` -> byte offset; ``"Symbol"`` -> RVA from the kernel base."""
    sizes: dict[str, int] = field(default_factory=dict)
    """``"STRUCT"`` -> size in bytes."""
    bitfields: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """``"STRUCT.Member"`` -> (byte offset, bit position, bit length) for bitfield members."""
    pdb_name: str = "ntkrnlmp.pdb"
    notes: list[str] = field(default_factory=list)
    """Where extra (non-primary) facts came from, e.g. 'family constants from isf:...-1'."""
    member_types: dict[str, str] = field(default_factory=dict)
    """``"STRUCT.Member"`` -> struct type of embedded members, for nested keys like ``_EPROCESS.Pcb.X``."""
    isf: Any = None
    """The :class:`~.isf.IsfSymbols` when the source was an ISF file (for members not in ``fields``)."""

    @property
    def pointer_size(self) -> int:
        return 8 if self.arch == "x64" else 4

    def __getitem__(self, key: str) -> int:
        try:
            return self.fields[key]
        except KeyError:
            nested = self._nested(key)
            if nested is not None:
                return nested
            if self.isf is not None:
                v = self.isf.lookup(key)
                if v is not None:
                    return int(v)
            raise NotFoundError(
                f"offset {key!r} not known for {self.version or self.build} ({self.source})"
            ) from None

    def _nested(self, key: str) -> int | None:
        """``A.b.c``: offset of ``A.b`` plus ``c`` inside the type of ``b`` (bounded depth)."""
        parts = key.split(".")
        if len(parts) < 3 or len(parts) > 12:
            return None
        total, struct = 0, parts[0]
        for i, member in enumerate(parts[1:], start=1):
            k = f"{struct}.{member}"
            if k not in self.fields:
                return None
            total += self.fields[k]
            if i < len(parts) - 1:
                nxt = self.member_types.get(k)
                if nxt is None:
                    return None
                struct = nxt
        return total

    def get(self, key: str, default: int | None = None) -> int | None:
        try:
            return self[key]
        except NotFoundError:
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def size(self, struct: str, default: int | None = None) -> int | None:
        if struct in self.sizes:
            return self.sizes[struct]
        if self.isf is not None and self.isf.has_type(struct):
            return int(self.isf.struct_size(struct))
        return default

    def bits(self, key: str) -> tuple[int, int, int] | None:
        """(byte offset, bit position, bit length) of a bitfield, or None."""
        if key in self.bitfields:
            return self.bitfields[key]
        if self.isf is not None:
            s, _, m = key.partition(".")
            try:
                mem = self.isf.member(s, m)
            except (NotFoundError, KeyError):
                return None
            if mem.bit_length is not None:
                return (mem.offset, int(mem.bit_position or 0), mem.bit_length)
        return None
