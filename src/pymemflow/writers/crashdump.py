"""Windows crash dump writer (for tests: no Windows here). Follows the DUMP_HEADER64/32 layout of
volatility3's crash64/crash symbol tables and the WDK: unused header bytes hold the "PAGE"
fill pattern as in real dumps; DumpType 1 (full: runs in PHYSICAL_MEMORY_DESCRIPTOR, pages after
the header), 5 (bitmap full, "FDMP" summary header: HeaderSize, Pages, BitmapSize, bitmap at +0x38,
pages in pfn order), 6 (bitmap kernel, "SDMP": the same layout holding the pages given, e.g. only the
kernel's), or 4 (triage: TRIAGE_DUMP header after the dump header, driver list, copies of the faulting
process/thread/PRCB, call stack, saved virtual blocks; see :func:`write_triage`).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..connectors.crashdump import TRIAGE_FIELDS, TRIAGE_VALID, DriverLayout, TriageDriver
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
                 drivers: Sequence[TriageDriver | Mapping[str, Any]] | None = None, process: bytes = b"", thread: bytes = b"",
                 prcb: bytes = b"", context: bytes = b"", debugger_data: bytes = b"",
                 force: bool = False) -> Path:
    """A triage (kernel mini) dump, DumpType 4: the DUMP_HEADER (bugcheck code and parameters from
    ``hints["bugcheck"]``), then the TRIAGE_DUMP header (WDK field order, as rizin's and Ghidra's
    readers take it) and what it points at: ``context`` (also copied into the DUMP_HEADER's
    ContextRecord), the copies of the faulting ``prcb``/``process``/``thread``, the call ``stack``
    (top of stack, bytes below it), the driver list (DUMP_DRIVER_ENTRY with a KLDR_DATA_TABLE_ENTRY
    each; names in the string pool as DUMP_STRING: a ULONG count of UTF-16 characters, the
    characters, a NUL), ``debugger_data`` (the KDBG copy, read at the header's KdDebuggerDataBlock),
    the saved ``blocks`` (virtual address, bytes) with their TRIAGE_DATA_BLOCK table, and the
    ULONG TRIAGE_DUMP_VALID at ValidOffset, the file's last four bytes."""
    out = Path(out)
    check_output(out, force)
    hints = dict(hints or {})
    h = _header(is64, hints, 4)
    if context:
        room = (0xF00 - 0x348) if is64 else (0x7D0 - 0x320)
        h[0x348 if is64 else 0x320 : (0x348 if is64 else 0x320) + min(room, len(context))] = context[:room]
    t = bytearray(0x1000)
    body = bytearray()
    base = len(h) + len(t)
    offs: dict[str, int] = {}

    def put(name: str, blob: bytes, align: int = 8) -> int:
        body.extend(b"\0" * (-len(body) % align))
        offs[name] = base + len(body) if blob else 0
        body.extend(blob)
        return offs[name]

    put("Context", context)
    put("Prcb", prcb)
    put("Process", process)
    put("Thread", thread)
    top, stack_bytes = stack if stack is not None else (0, b"")
    put("CallStack", stack_bytes)
    dl = DriverLayout(is64)
    dlist = [d if isinstance(d, TriageDriver) else TriageDriver(**d) for d in drivers or []]
    pool = bytearray()
    name_at: list[int] = []
    pool_base = base + len(body) + (-len(body) % 8) + len(dlist) * dl.size
    for d in dlist:
        name_at.append(pool_base + len(pool))
        pool += struct.pack("<I", len(d.name)) + d.name.encode("utf-16-le") + b"\0\0"
        pool += b"\0" * (-len(pool) % 8)
    entries = bytearray(len(dlist) * dl.size)
    ptr = dl.ptr
    for i, d in enumerate(dlist):
        e = i * dl.size
        struct.pack_into("<I", entries, e, name_at[i])
        struct.pack_into(ptr, entries, e + dl.dll_base, d.base)
        struct.pack_into(ptr, entries, e + dl.entry_point, d.entry_point)
        struct.pack_into("<I", entries, e + dl.size_of_image, d.size)
        struct.pack_into("<I", entries, e + dl.checksum, d.checksum)
        struct.pack_into("<I", entries, e + dl.timestamp, d.timestamp)
    if dlist:
        put("DriverList", bytes(entries))
        put("StringPool", bytes(pool), align=1)  # right after the entries: their name offsets point here
    put("DebuggerData", debugger_data)
    table = b""
    for addr, blob in blocks:
        table += struct.pack("<QII" if is64 else "<III", addr, put("block", blob) or base + len(body), len(blob))
    put("DataBlocks", table)
    body.extend(b"\0" * (-len(body) % 4))
    valid = base + len(body)
    body += TRIAGE_VALID
    size = base + len(body)
    kd = int(hints.get("KdDebuggerDataBlock", 0))
    vals = {"ServicePackBuild": 0, "SizeOfDump": size, "ValidOffset": valid, "ContextOffset": offs["Context"],
            "ExceptionOffset": 0, "MmOffset": 0, "UnloadedDriversOffset": 0, "PrcbOffset": offs["Prcb"],
            "ProcessOffset": offs["Process"], "ThreadOffset": offs["Thread"],
            "CallStackOffset": offs["CallStack"], "SizeOfCallStack": len(stack_bytes),
            "DriverListOffset": offs.get("DriverList", 0), "DriverCount": len(dlist),
            "StringPoolOffset": offs.get("StringPool", 0), "StringPoolSize": len(pool),
            "BrokenDriverOffset": 0, "TriageOptions": 0}
    struct.pack_into("<18I", t, 0, *[vals[f] for f in TRIAGE_FIELDS])
    dd_off, dd_size = (offs["DebuggerData"], len(debugger_data)) if debugger_data and kd else (0, 0)
    if is64:
        struct.pack_into("<Q", t, 0x48, top)
        struct.pack_into("<QIIIIII", t, 0x60, 0, 0, 0, dd_off, dd_size, offs["DataBlocks"] or valid, len(blocks))
    else:
        struct.pack_into("<8I", t, 0x48, top, 0, 0, 0, dd_off, dd_size, offs["DataBlocks"] or valid, len(blocks))
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(bytes(h) + bytes(t) + bytes(body))
    os.replace(tmp, out)
    return out
