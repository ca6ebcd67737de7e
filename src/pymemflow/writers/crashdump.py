"""Windows crash dump writer (for tests: no Windows here). Follows the DUMP_HEADER64/32 layout of
volatility3's crash64/crash symbol tables and the WDK: unused header bytes hold the "PAGE"
fill pattern as in real dumps; DumpType 1 (full: runs in PHYSICAL_MEMORY_DESCRIPTOR, pages after
the header), 5 (bitmap full, "FDMP" summary header: HeaderSize, Pages, BitmapSize, bitmap at +0x38,
pages in pfn order), or 4 (triage: TRIAGE_DUMP header after the dump header, saved virtual blocks).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..mem.view import MemoryView
from .base import check_output, memory_ranges

PAGE = 0x1000


def _header(is64: bool, hints: dict[str, Any], dump_type: int) -> bytearray:
    size = 0x2000 if is64 else 0x1000
    h = bytearray(b"PAGE" * (size // 4))
    p = "<Q" if is64 else "<I"
    struct.pack_into("<4s4sII", h, 0, b"PAGE", b"DU64" if is64 else b"DUMP", 0xF, int(hints.get("nt_build", 19041)))
    bug = hints.get("bugcheck") or {"code": 0xE2, "parameters": [0, 0, 0, 0]}
    if is64:
        struct.pack_into("<QQQQIII", h, 0x10, int(hints.get("dtb", 0)), int(hints.get("PfnDataBase", 0)),
                         int(hints.get("PsLoadedModuleList", 0)), int(hints.get("PsActiveProcessHead", 0)),
                         0x8664, 1, int(bug["code"]))
        struct.pack_into("<4Q", h, 0x40, *[int(x) for x in bug["parameters"]])
        struct.pack_into(p, h, 0x80, int(hints.get("KdDebuggerDataBlock", 0)))
        struct.pack_into("<I", h, 0xF98, dump_type)
    else:
        m32 = 0xFFFFFFFF
        struct.pack_into("<IIIIIII", h, 0x10, int(hints.get("dtb", 0)) & m32, int(hints.get("PfnDataBase", 0)) & m32,
                         int(hints.get("PsLoadedModuleList", 0)) & m32,
                         int(hints.get("PsActiveProcessHead", 0)) & m32, 0x14C, 1, int(bug["code"]))
        struct.pack_into("<4I", h, 0x2C, *[int(x) & 0xFFFFFFFF for x in bug["parameters"]])
        h[0x5C] = 1 if hints.get("arch") == "x86pae" else 0
        struct.pack_into(p, h, 0x60, int(hints.get("KdDebuggerDataBlock", 0)) & m32)
        struct.pack_into("<I", h, 0xF88, dump_type)
    return h


def write_crashdump(mem: MemoryView, out: str | os.PathLike[str], *, kind: str = "full", is64: bool = True,
                    hints: dict[str, Any] | None = None, ranges: list[tuple[int, int]] | None = None,
                    force: bool = False) -> Path:
    """``kind``: "full" (DumpType 1, runs), "bitmap" (DumpType 5, FDMP) or "kernel" (DumpType 6, SDMP:
    the same bitmap layout, as a kernel-memory dump is written)."""
    out = Path(out)
    check_output(out, force)
    hints = dict(hints if hints is not None else getattr(mem, "hints", {}))
    ranges = [(s // PAGE * PAGE, (e + PAGE - 1) // PAGE * PAGE) for s, e in (ranges or memory_ranges(mem))]
    total_pages = sum((e - s) // PAGE for s, e in ranges)
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as f:
        if kind == "full":
            h = _header(is64, hints, 1)
            max_runs = (0x348 - 0x98) // 16 if is64 else (0x320 - 0x6C) // 8
            if len(ranges) > max_runs:
                raise ValueError(f"{len(ranges)} ranges do not fit a full dump's {max_runs} runs")
            if is64:
                struct.pack_into("<IIQ", h, 0x88, len(ranges), 0, total_pages)
                for i, (s, e) in enumerate(ranges):
                    struct.pack_into("<QQ", h, 0x98 + 16 * i, s // PAGE, (e - s) // PAGE)
            else:
                struct.pack_into("<II", h, 0x64, len(ranges), total_pages)
                for i, (s, e) in enumerate(ranges):
                    struct.pack_into("<II", h, 0x6C + 8 * i, s // PAGE, (e - s) // PAGE)
            f.write(h)
        elif kind in ("bitmap", "kernel"):
            h = _header(is64, hints, 5 if kind == "bitmap" else 6)
            bits = max(e for _, e in ranges) // PAGE
            bitmap = np.zeros(((bits + 31) // 32) * 32, dtype=np.uint8)
            for s, e in ranges:
                bitmap[s // PAGE : e // PAGE] = 1
            packed = np.packbits(bitmap, bitorder="little").tobytes()
            header_size = len(h) + 0x38 + len(packed)
            header_size = (header_size + PAGE - 1) // PAGE * PAGE
            sig = b"FDMP" if kind == "bitmap" else b"SDMP"
            summary = struct.pack("<4s4sI20xQQQ", sig, b"DUMP", 0, header_size, total_pages, bits) + packed
            f.write(h + summary)
            f.write(b"\0" * (header_size - len(h) - len(summary)))
        else:
            raise ValueError(f"unknown crash dump kind {kind!r}")
        for s, e in ranges:
            for a in range(s, e, 4 << 20):
                data, _ = mem._read_single(a, min(4 << 20, e - a))
                f.write(data)
    os.replace(tmp, out)
    return out


def write_triage(out: str | os.PathLike[str], blocks: list[tuple[int, bytes]], *, is64: bool = True,
                 hints: dict[str, Any] | None = None, stack: tuple[int, bytes] | None = None,
                 force: bool = False) -> Path:
    """A triage (kernel mini) dump saving ``blocks`` of (virtual address, bytes) and an optional
    call stack (top of stack, bytes below it). TRIAGE_DUMP64/32 field offsets as in the WDK."""
    out = Path(out)
    check_output(out, force)
    hints = dict(hints or {})
    h = _header(is64, hints, 4)
    t = bytearray(0x1000)
    data = bytearray()
    base = len(h) + len(t)
    block_entries = b""
    stack_off = stack_size = top = 0
    if stack is not None:
        top, sb = stack
        stack_off, stack_size = base + len(data), len(sb)
        data += sb
    for addr, blob in blocks:
        block_entries += struct.pack("<QII" if is64 else "<III", addr, base + len(data), len(blob))
        data += blob
    blocks_off = base + len(data)
    data += block_entries
    size = base + len(data)
    struct.pack_into("<IIII", t, 0, 0, size, 0, 0)
    struct.pack_into("<II", t, 0x28, stack_off, stack_size)
    if is64:
        struct.pack_into("<Q", t, 0x48, top)
        struct.pack_into("<QIIIIII", t, 0x60, 0, 0, 0, 0, 0, blocks_off, len(blocks))
    else:
        struct.pack_into("<8I", t, 0x48, top, 0, 0, 0, 0, 0, blocks_off, len(blocks))
    with open(out, "wb") as f:
        f.write(h + t + data)
    return out
