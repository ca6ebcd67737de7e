"""A loaded driver's FileVersion from its version resource (RT_VERSION -> VS_VERSIONINFO ->
VS_FIXEDFILEINFO), read from memory through the resource directory. Bounded: a few directory levels,
at most 64 entries each, every RVA inside SizeOfImage; any inconsistency gives None."""

from __future__ import annotations

import struct

from ....errors import PymemflowError
from ....mem.view import MemoryView
from ..pe import PeHeaders, read_headers

DIR_RESOURCE = 2
RT_VERSION = 16
FIXED_SIGNATURE = 0xFEEF04BD
MAX_ENTRIES = 64


def _entries(mem: MemoryView, base: int, hdr: PeHeaders, root: int, off: int) -> list[tuple[int, int]]:
    raw = _read(mem, base, hdr, root + off, 16)
    named, ids = struct.unpack_from("<HH", raw, 12)
    n = min(named + ids, MAX_ENTRIES)
    data = _read(mem, base, hdr, root + off + 16, 8 * n)
    return [struct.unpack_from("<II", data, 8 * i) for i in range(n)]


def _read(mem: MemoryView, base: int, hdr: PeHeaders, rva: int, n: int) -> bytes:
    if rva < 0 or rva + n > hdr.size_of_image:
        raise ValueError(f"RVA {rva:#x}+{n:#x} outside the image")
    return mem.read(base + rva, n)


def file_version(mem: MemoryView, base: int, hdr: PeHeaders | None = None) -> tuple[int, int, int, int] | None:
    """(major, minor, build, revision) of the image's FileVersion, or None without a readable one."""
    try:
        hdr = hdr or read_headers(mem, base)
        root, size = hdr.directory(DIR_RESOURCE)
        if root == 0 or size < 16:
            return None
        off = next((t & 0x7FFFFFFF for i, t in _entries(mem, base, hdr, root, 0)
                    if i == RT_VERSION and t & 0x80000000), None)
        for _ in range(2):  # name level, then language level
            if off is None:
                return None
            ents = _entries(mem, base, hdr, root, off)
            if not ents:
                return None
            target = ents[0][1]
            off = target & 0x7FFFFFFF if target & 0x80000000 else None
            if off is None:  # a leaf: the data entry
                data_rva, data_size = struct.unpack_from("<II", _read(mem, base, hdr, root + target, 8))
                blob = _read(mem, base, hdr, data_rva, min(data_size, 0x400))
                return _fixed(blob)
        return None
    except (PymemflowError, ValueError, struct.error):
        return None


def _fixed(blob: bytes) -> tuple[int, int, int, int] | None:
    at = blob.find(struct.pack("<I", FIXED_SIGNATURE))
    if at < 0 or at + 16 > len(blob):
        return None
    ms, ls = struct.unpack_from("<II", blob, at + 8)
    return ms >> 16, ms & 0xFFFF, ls >> 16, ls & 0xFFFF
