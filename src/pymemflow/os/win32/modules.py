"""Loader lists: a process's modules (PEB, native and WoW64) and the kernel's (PsLoadedModuleList).

Both are ``LIST_ENTRY`` chains of ``_LDR_DATA_TABLE_ENTRY``. The walk is sequential (each link is
in the previous entry) but everything after it is batched: all entries in one read, all names in one.
"""

from __future__ import annotations

import struct

from ...mem.view import MemoryView
from ..base import ModuleInfo
from ..caps import capped
from .fields import UserLayout
from .listwalk import walk_list

MAX_MODULES = 4096
MAX_STRING = 0x1000
"""UNICODE_STRING bytes read at most (Length is a u16 anyway; paths are far shorter)."""


def read_unicode_strings(mem: MemoryView, strings: list[tuple[int, int]],
                         warnings: list[str] | None = None) -> list[str]:
    """Decode many (byte length, buffer address) UNICODE_STRINGs in one batched read; lengths over
    :data:`MAX_STRING` are cut (noted in ``warnings``)."""
    if not strings:
        return []
    lens = [capped(n, MAX_STRING, f"UNICODE_STRING at {a:#x}: Length", warnings) & ~1 if a else 0
            for n, a in strings]
    addrs = [a for _, a in strings]
    res = mem.read_batch(addrs, lens)
    bad = {f.index for f in res.failures}
    out = []
    for i in range(len(strings)):
        if i in bad or lens[i] == 0:
            out.append("")
            continue
        out.append(res.piece(i).decode("utf-16-le", errors="replace").split("\0", 1)[0])
    return out


def parse_ustr(raw: bytes, off: int, ptr: int, buffer_off: int) -> tuple[int, int]:
    """(Length, Buffer) of a UNICODE_STRING at ``off`` in ``raw``."""
    (length,) = struct.unpack_from("<H", raw, off)
    fmt = "<Q" if ptr == 8 else "<I"
    (buf,) = struct.unpack_from(fmt, raw, off + buffer_off)
    return length, buf


def walk_ldr(mem: MemoryView, head: int, lay: UserLayout, arch: str,
             cap: int = MAX_MODULES, what: str = "loader list") -> tuple[list[ModuleInfo], list[str]]:
    """Modules of the ``InLoadOrderModuleList`` whose head ``LIST_ENTRY`` is at ``head``.

    ``InLoadOrderLinks`` is the first member of an entry, so a link address is the entry address.
    """
    walk = walk_list(mem, head, ptr_size=lay.ptr, cap=cap, what=what, span=lay.entry_span)
    if not walk.entries:
        return [], walk.warnings
    res = mem.read_batch(walk.entries, lay.entry_span)
    bad = {f.index for f in res.failures}
    fmt = "<Q" if lay.ptr == 8 else "<I"
    rows = []
    strings: list[tuple[int, int]] = []
    for i, e in enumerate(walk.entries):
        if i in bad:
            walk.warnings.append(f"{what}: entry {e:#x} unreadable")
            continue
        raw = res.piece(i)
        (base,) = struct.unpack_from(fmt, raw, lay.entry_base)
        (size,) = struct.unpack_from("<I", raw, lay.entry_size)
        strings.append(parse_ustr(raw, lay.entry_full, lay.ptr, lay.ustr_buffer))
        strings.append(parse_ustr(raw, lay.entry_name, lay.ptr, lay.ustr_buffer))
        rows.append((base, size))
    names = read_unicode_strings(mem, strings, walk.warnings)
    mods = []
    for j, (base, size) in enumerate(rows):
        full, name = names[2 * j], names[2 * j + 1]
        if not name and full:
            name = full.replace("/", "\\").rsplit("\\", 1)[-1]
        mods.append(ModuleInfo(name, full, base, size, arch))
    return mods, walk.warnings

