"""Kernel objects: the ``_OBJECT_HEADER`` before every object body, its type and its name.

``TypeIndex`` indexes ``ObTypeIndexTable`` (pointers to ``_OBJECT_TYPE``, whose ``Name`` is the type
name); Windows 10 stores it encoded: ``TypeIndex ^ ObHeaderCookie ^ second byte of the header's
address``. Optional headers sit *before* the object header; which ones exist is ``InfoMask``, and the
name info header lies ``ObpInfoMaskToOffset[InfoMask & 3]`` bytes before it -- the sizes of the
creator-info (bit 0) and name-info (bit 1) headers, which we take from the layout instead of reading
the kernel's table.

When the kernel's symbols do not give ``ObTypeIndexTable`` (an x86 kernel without an ISF), the
table is found in the kernel image by its shape: a null pointer, the 0xBAD0B0B0 marker Windows puts at
index 1, then a pointer to the ``_OBJECT_TYPE`` named "Type" whose ``Index`` is 2.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import NotFoundError, PymemflowError
from .fields import maybe
from .modules import read_unicode_strings

if TYPE_CHECKING:
    from .kernel import Win32Kernel

MAX_TYPES = 256
"""TypeIndex is one byte."""
BAD_TYPE_MARKER = 0xBAD0B0B0
SCAN_CHUNK = 1 << 20


@dataclass(frozen=True)
class ObjectLayout:
    body: int
    """Offset of the body in ``_OBJECT_HEADER`` (header address = object address - body)."""
    type_index: int
    info_mask: int
    name_info_size: int
    creator_info_size: int
    name: int
    """``_OBJECT_HEADER_NAME_INFO.Name`` (a UNICODE_STRING)."""
    ustr_buffer: int
    ptr: int

    @classmethod
    def from_offsets(cls, off: Any) -> ObjectLayout:
        body, ti, mask = (maybe(off, f"_OBJECT_HEADER.{m}") for m in ("Body", "TypeIndex", "InfoMask"))
        if body is None or ti is None or mask is None:
            raise NotFoundError("objects need _OBJECT_HEADER.Body/TypeIndex/InfoMask (Windows 7+); "
                                f"offsets {off.source} lack them")
        ptr = off.pointer_size
        return cls(body, ti, mask, off.size("_OBJECT_HEADER_NAME_INFO") or 4 * ptr,
                   off.size("_OBJECT_HEADER_CREATOR_INFO") or 4 * ptr,
                   maybe(off, "_OBJECT_HEADER_NAME_INFO.Name") or ptr, maybe(off, "_UNICODE_STRING.Buffer") or ptr,
                   ptr)

    def name_info(self, header: int, info_mask: int) -> int | None:
        """Address of the name info header, or None when the object has no name."""
        if not info_mask & 2:
            return None
        return header - self.name_info_size - (self.creator_info_size if info_mask & 1 else 0)


class ObjectTypes:
    """Type names by index, and the cookie that decodes ``TypeIndex`` (Windows 10+)."""

    def __init__(self, names: dict[int, str], cookie: int | None) -> None:
        self.names = names
        self.cookie = cookie

    def type_of(self, header: int, raw_index: int) -> str:
        i = raw_index
        if self.cookie is not None:
            i = (raw_index ^ self.cookie ^ (header >> 8)) & 0xFF
        return self.names.get(i, f"type#{i}")

    @classmethod
    def load(cls, k: Win32Kernel) -> ObjectTypes:
        off = k.offsets
        base = k.facts.kernel_base
        cookie = None
        if off.get("ObHeaderCookie") is not None:
            try:
                cookie = k.kmem.read_u8(base + off["ObHeaderCookie"])
            except PymemflowError as e:
                raise NotFoundError(f"ObHeaderCookie at {base + off['ObHeaderCookie']:#x} unreadable: {e}") from e
        elif k.facts.build >= 10240:
            raise NotFoundError(f"Windows 10+ encodes object types with ObHeaderCookie; offsets {off.source} "
                                "lack its address (give an ISF with --symbols)")
        rva = off.get("ObTypeIndexTable")
        table = base + rva if rva is not None else find_type_table(k)
        return cls(read_type_names(k, table), cookie)


def read_type_names(k: Win32Kernel, table: int) -> dict[int, str]:
    ptr = k.kmem.pointer_size
    name_off = k.offsets.get("_OBJECT_TYPE.Name")
    if name_off is None:
        raise NotFoundError(f"_OBJECT_TYPE.Name unknown in offsets {k.offsets.source}")
    try:
        k.kmem.read(table, 3 * ptr)  # the table's start must be there; its end may lie on a page never used
        raw = k.kmem.read(table, MAX_TYPES * ptr, zero_fill=True)
    except PymemflowError as e:
        raise NotFoundError(f"ObTypeIndexTable at {table:#x} unreadable: {e}") from e
    ptrs = struct.unpack(f"<{MAX_TYPES}{'Q' if ptr == 8 else 'I'}", raw)
    idx = [i for i in range(2, MAX_TYPES) if ptrs[i]]
    end = next((i for i in range(2, MAX_TYPES) if not ptrs[i]), MAX_TYPES)
    idx = [i for i in idx if i < end]  # the table ends at its first null after index 1
    res = k.kmem.read_batch([ptrs[i] + name_off for i in idx], 2 * ptr)
    bad = {f.index for f in res.failures}
    fmt = "<Q" if ptr == 8 else "<I"
    strings = []
    for j in range(len(idx)):
        if j in bad:
            strings.append((0, 0))
            continue
        piece = res.piece(j)
        strings.append((struct.unpack_from("<H", piece, 0)[0], struct.unpack_from(fmt, piece, ptr)[0]))
    names = read_unicode_strings(k.kmem, strings)
    return {i: n for i, n in zip(idx, names, strict=True) if n}


def find_type_table(k: Win32Kernel) -> int:
    """ObTypeIndexTable located in the kernel image by its shape (see the module docstring)."""
    ptr = k.kmem.pointer_size
    base, size = k.facts.kernel_base, k.facts.kernel_size
    if not base or not size:
        raise NotFoundError("ObTypeIndexTable: no symbol and no kernel image range to search")
    pattern = (struct.pack("<QQ", 0, BAD_TYPE_MARKER) if ptr == 8 else struct.pack("<II", 0, BAD_TYPE_MARKER))
    for start in range(base, base + size, SCAN_CHUNK):
        n = min(SCAN_CHUNK, base + size - start)
        data = k.kmem.read(start, n, zero_fill=True)
        at = data.find(pattern)
        while at >= 0:
            if at % ptr == 0:
                table = start + at
                try:
                    if read_type_names(k, table).get(2) == "Type":
                        return table
                except PymemflowError:
                    pass
            at = data.find(pattern, at + 1)
    raise NotFoundError("ObTypeIndexTable: no symbol, and no table of object types found in the kernel image "
                        f"{base:#x}+{size:#x}")
