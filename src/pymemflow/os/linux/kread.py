"""Small helpers to read kernel objects: one read per object, fields unpacked from the bytes."""

from __future__ import annotations

import struct
from typing import Protocol

from ...mem.view import MemoryView


class Layouts(Protocol):
    """What BTF and an ISF both give: offsets, sizes, array lengths."""

    def offset_of(self, struct_name: str, path: str) -> int: ...
    def has_member(self, struct_name: str, path: str) -> bool: ...
    def size_of(self, struct_name: str) -> int: ...
    def array_len(self, struct_name: str, path: str) -> int: ...


class Obj:
    """The bytes of one kernel object and typed field getters (bounds-checked: out of range -> 0)."""

    __slots__ = ("addr", "data", "ok", "_ptr")

    def __init__(self, addr: int, data: bytes, ok: bool, pointer_size: int) -> None:
        self.addr = addr
        self.data = data
        self.ok = ok
        self._ptr = "<Q" if pointer_size == 8 else "<I"

    def u(self, off: int, fmt: str) -> int:
        if off < 0 or off + struct.calcsize(fmt) > len(self.data):
            return 0
        return int(struct.unpack_from(fmt, self.data, off)[0])

    def ptr(self, off: int) -> int:
        return self.u(off, self._ptr)

    def u32(self, off: int) -> int:
        return self.u(off, "<I")

    def i32(self, off: int) -> int:
        return self.u(off, "<i")

    def u64(self, off: int) -> int:
        return self.u(off, "<Q")

    def cstr(self, off: int, n: int) -> str:
        raw = self.data[off:off + n]
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def read_obj(mem: MemoryView, addr: int, size: int) -> Obj:
    data, failures = mem._read_single(addr, size)
    return Obj(addr, data, not failures, mem.pointer_size)


def read_ptr(mem: MemoryView, addr: int) -> int | None:
    data, failures = mem._read_single(addr, mem.pointer_size)
    if failures:
        return None
    return int.from_bytes(data, "little")


def walk_list(mem: MemoryView, head: int, *, limit: int = 1 << 16) -> list[int]:
    """Addresses of the ``list_head`` nodes after ``head`` (excluding it); stops at a cycle, an
    unreadable or null pointer, or ``limit`` nodes."""
    out: list[int] = []
    seen = {head}
    cur = read_ptr(mem, head)
    while cur and cur not in seen and len(out) < limit:
        seen.add(cur)
        out.append(cur)
        cur = read_ptr(mem, cur)
    return out
