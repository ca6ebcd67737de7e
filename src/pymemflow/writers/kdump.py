"""kdump-compressed writer (makedumpfile layout, see ``connectors/kdump.py``) for zlib, lzo, snappy,
zstd or stored pages, plain or flattened. QEMU here only writes zlib; tests use this for the rest.

Follows makedumpfile's ``diskdump_mod.h``: header version 6 (``max_mapnr_64`` in the sub header),
block size 4096, one sub-header block, bitmap 1 = bitmap 2 = pages written, one page descriptor
per dumped page, pages that compress to no less than a page stored uncompressed (flags 0), and
all-zero pages sharing one descriptor target, as makedumpfile does.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..connectors.formats.codecs import compressor
from ..mem.view import MemoryView
from .base import check_output, memory_ranges
from .simple import qemu_cpu_note

PAGE = 4096
FLAGS = {"zlib": 0x1, "lzo": 0x2, "snappy": 0x4, "zstd": 0x20, "none": 0}


def write_kdump(mem: MemoryView, out: str | os.PathLike[str], codec: str = "zlib", *, flattened: bool = False,
                hints: dict[str, Any] | None = None, ranges: list[tuple[int, int]] | None = None,
                force: bool = False, machine: str = "x86_64", is32: bool = False,
                exclude_zero: bool = False) -> Path:
    out = Path(out)
    check_output(out, force)
    hints = dict(hints if hints is not None else getattr(mem, "hints", {}))
    ranges = ranges or memory_ranges(mem)
    comp = compressor(codec) if codec != "none" else None
    flag = FLAGS[codec]
    max_pfn = max(e for _, e in ranges) // PAGE
    bitmap_bytes = ((max_pfn + 7) // 8 + PAGE - 1) // PAGE * PAGE
    bitmap = np.zeros(bitmap_bytes * 8, dtype=np.uint8)
    pfn_list = [np.arange(s // PAGE, (e + PAGE - 1) // PAGE, dtype=np.int64) for s, e in ranges]
    pfns = np.unique(np.concatenate(pfn_list)) if pfn_list else np.zeros(0, np.int64)
    bitmap[pfns] = 1
    packed = np.packbits(bitmap, bitorder="little").tobytes()
    bitmap_blocks = 2 * len(packed) // PAGE
    notes = b""
    for c in hints.get("cpu_registers") or ([{"cr3": hints["dtb"]}] if hints.get("dtb") else []):
        notes += qemu_cpu_note(int(c.get("cr3", 0)), c) if not is32 else b""
    vmcoreinfo = str(hints.get("vmcoreinfo", "")).encode()
    sub_blocks = 1
    # page data first, at offsets relative to the data area: its start depends on how many pages
    # are dumped, which an excluding writer only knows at the end
    rel: list[tuple[int, int, int]] = []
    dumped = np.ones(pfns.size, dtype=bool)
    chunks: list[bytes] = []
    pos = 0
    zero_desc: tuple[int, int, int] | None = None
    zero = bytes(PAGE)
    for run_start in range(0, pfns.size, 256):
        batch = pfns[run_start : run_start + 256]
        data, _ = mem.read_gather(batch.astype(np.uint64) * PAGE, PAGE)
        for k, row in enumerate(data):
            page = row.tobytes()
            if page == zero:
                if exclude_zero:  # makedumpfile dump level bit 1: zero pages left out
                    dumped[run_start + k] = False
                    continue
                if zero_desc is not None:
                    rel.append(zero_desc)
                    continue
            blob, pflags = page, 0
            if comp is not None:
                z = comp(page)
                if len(z) < PAGE:
                    blob, pflags = z, flag
            rel.append((pos, len(blob), pflags))
            if page == zero:
                zero_desc = rel[-1]
            chunks.append(blob)
            pos += len(blob)
    bitmap2 = np.zeros_like(bitmap)
    bitmap2[pfns[dumped]] = 1
    packed2 = np.packbits(bitmap2, bitorder="little").tobytes()
    desc_off = (1 + sub_blocks + bitmap_blocks) * PAGE
    note_off = desc_off + 24 * len(rel)
    vmci_off = note_off + len(notes)
    pages_off = vmci_off + len(vmcoreinfo)
    descs = b"".join(struct.pack("<qIIQ", pages_off + o, n, f, 0) for o, n, f in rel)
    uts = b"".join(s.ljust(65, b"\0") for s in (b"Linux", b"pymemflow", str(hints.get("kernel_release", "")).encode(),
                                                b"", machine.encode(), b""))
    head = b"KDUMP   " + struct.pack("<i", 6) + uts
    # 64-bit makedumpfile/QEMU layout: timeval of two longs at 408; a 32-bit makedumpfile (i386 host)
    # aligns it to 4 (404) with 4-byte longs, moving every later field and the sub-header's longs.
    head = head.ljust(412 if is32 else 424, b"\0")
    head += struct.pack("<IiiIIIIIIi", 0, PAGE, sub_blocks, bitmap_blocks, min(max_pfn, 0xFFFFFFFF), 0, 0, 0, 0, 1)
    sub = struct.pack("<IiiIIQIQIQIQQQ" if is32 else "<QiiQQQQQQQQQQQ", int(hints.get("phys_base", 0)),
                      1 if exclude_zero else 0, 0, 0,
                      max_pfn, vmci_off if vmcoreinfo else 0, len(vmcoreinfo), note_off if notes else 0, len(notes),
                      0, 0, 0, max_pfn, max_pfn)
    image = [(0, head.ljust(PAGE, b"\0")), (PAGE, sub.ljust(PAGE, b"\0")), (2 * PAGE, packed), (2 * PAGE + len(packed), packed2),
             (desc_off, descs), (note_off, notes), (vmci_off, vmcoreinfo)]
    pieces = [(o, b) for o, b in image if b]
    o = pages_off
    for blob in chunks:
        pieces.append((o, blob))
        o += len(blob)
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as f:
        if flattened:
            f.write(b"makedumpfile".ljust(16, b"\0") + struct.pack(">qq", 1, 1) + b"\0" * (PAGE - 32))
            for off, blob in _coalesce(pieces):
                f.write(struct.pack(">qq", off, len(blob)) + blob)
            f.write(struct.pack(">qq", -1, -1))
        else:
            for off, blob in pieces:
                f.seek(off)
                f.write(blob)
    os.replace(tmp, out)
    return out


def _coalesce(pieces: list[tuple[int, bytes]], limit: int = 1 << 16) -> list[tuple[int, bytes]]:
    """Group adjacent pieces into records of up to ``limit`` bytes, like makedumpfile's buffered writes."""
    out: list[tuple[int, bytes]] = []
    cur_off, cur = -1, bytearray()
    for off, blob in pieces:
        if cur and off == cur_off + len(cur) and len(cur) + len(blob) <= limit:
            cur += blob
            continue
        if cur:
            out.append((cur_off, bytes(cur)))
        cur_off, cur = off, bytearray(blob)
    if cur:
        out.append((cur_off, bytes(cur)))
    return out
