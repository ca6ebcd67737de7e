"""Small helpers to read kernel objects: one read per object, fields unpacked from the bytes."""

from __future__ import annotations

import struct
from typing import Protocol

from ...errors import OsLayerError
from ...mem.view import MemoryView
from ..walk import DEFAULT_CAP, ListWalk
from ..walk import walk_list as shared_walk


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


def outside(mem: MemoryView, addr: int, size: int) -> bool:
    """An object that cannot exist: below 0 or running past the top of the address space (a bad
    pointer minus a member offset) -- read as unreadable instead of overflowing."""
    return addr < 0 or size < 0 or addr + size > 1 << (8 * mem.pointer_size)


def read_obj(mem: MemoryView, addr: int, size: int) -> Obj:
    if outside(mem, addr, size):
        return Obj(addr, b"", False, mem.pointer_size)
    data, failures = mem._read_single(addr, size)
    return Obj(addr, data, not failures, mem.pointer_size)


def read_ptr(mem: MemoryView, addr: int) -> int | None:
    if outside(mem, addr, mem.pointer_size):
        return None
    data, failures = mem._read_single(addr, mem.pointer_size)
    if failures:
        return None
    return int.from_bytes(data, "little")


def _read_link(mem: MemoryView, addr: int) -> int:
    v = read_ptr(mem, addr)
    if v is None:
        raise OsLayerError(f"unreadable at {addr:#x}")
    return v


def walk_list(mem: MemoryView, head: int, *, limit: int = DEFAULT_CAP, what: str = "list",
              link_offset: int = 0, span: int = 0) -> ListWalk:
    """The ``list_head`` nodes after ``head`` (excluding it) with the shared walker of
    :mod:`pymemflow.os.walk`: stops with a warning at a cycle, an unreadable, null or impossible
    pointer (one that leaves no room for the ``link_offset`` bytes of the structure before the
    node), or after ``limit`` nodes."""
    return shared_walk(mem, head, ptr_size=mem.pointer_size, cap=limit, what=what, link_offset=link_offset,
                       span=span, reader=lambda a: _read_link(mem, a))
