"""Filling kernel/user structures at their real offsets (from :class:`Win32Offsets`) in a buffer."""

from __future__ import annotations

import struct

from ..os.win32.offsets import Win32Offsets


class StructBuf:
    """A zeroed struct image; ``set("Member", value)`` writes at ``offsets["STRUCT.Member"]``.

    ``size`` is the width in bytes (1, 2, 4, 8; "p" = pointer size). A missing member raises, so the
    builder never silently writes a field the profile's offsets lack.
    """

    def __init__(self, o: Win32Offsets, struct_name: str, size: int | None = None) -> None:
        self.o = o
        self.name = struct_name
        n = size if size is not None else o.size(struct_name)
        if n is None:
            raise KeyError(f"size of {struct_name} unknown")
        self.buf = bytearray(n)
        self.ps = o.pointer_size

    def off(self, member: str) -> int:
        return self.o[f"{self.name}.{member}"]

    def put(self, off: int, value: int, width: int | str) -> None:
        w = self.ps if width == "p" else int(width)
        fmt = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}[w]
        struct.pack_into(fmt, self.buf, off, value & ((1 << (8 * w)) - 1))

    def set(self, member: str, value: int, width: int | str = "p", add: int = 0) -> None:
        self.put(self.off(member) + add, value, width)

    def set_bytes(self, member: str, data: bytes, add: int = 0) -> None:
        o = self.off(member) + add
        self.buf[o : o + len(data)] = data

    def set_bits(self, key: str, value: int, base: int = 0) -> None:
        """Set a bitfield ``"STRUCT.Member"`` (offsets.bits) inside this buffer at ``base``."""
        b = self.o.bits(key)
        if b is None:
            raise KeyError(f"bitfield {key} unknown")
        off, pos, ln = b
        cur = int.from_bytes(self.buf[base + off : base + off + 8].ljust(8, b"\0"), "little")
        cur &= ~(((1 << ln) - 1) << pos)
        cur |= (value & ((1 << ln) - 1)) << pos
        n = min(8, len(self.buf) - base - off)
        self.buf[base + off : base + off + n] = cur.to_bytes(8, "little")[:n]


def bits_value(o: Win32Offsets, parts: dict[str, int]) -> int:
    """Compose an integer from bitfields, e.g. a PTE from ``{"_MMPTE_TRANSITION.Transition": 1, ...}``."""
    v = 0
    for key, val in parts.items():
        b = o.bits(key)
        if b is None:
            raise KeyError(f"bitfield {key} unknown")
        _, pos, ln = b
        v |= (val & ((1 << ln) - 1)) << pos
    return v


def utf16(s: str) -> bytes:
    return s.encode("utf-16-le")
