"""VMware writer (for tests): a ``.vmem`` holding the ranges back to back plus a ``.vmss`` whose
"memory" group maps them (``regionsCount``, ``regionPPN[i]``, ``regionPageNum[i]``,
``regionSize[i]`` in pages), and a "cpu" group with ``CR64[0][3]`` when a DTB is known; or, with
``embedded=True``, one ``.vmss`` that also holds the memory as the "Memory" big block. Tag encoding
as volatility3's vmware layer reads it (magic 0xbed2bed2: 8-byte big-block sizes).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

from ..mem.view import MemoryView
from .base import check_output, memory_ranges

PAGE = 0x1000
MAGIC = 0xBED2BED2


def _tag(name: str, indices: tuple[int, ...], value: int, size: int = 4) -> bytes:
    nb = name.encode()
    flags = (len(indices) << 6) | size
    return struct.pack("<BB", flags, len(nb)) + nb + struct.pack(f"<{len(indices)}I", *indices) + value.to_bytes(size, "little")


def _big_tag_head(name: str, indices: tuple[int, ...], size: int) -> bytes:
    nb = name.encode()
    flags = (len(indices) << 6) | 62
    return (struct.pack("<BB", flags, len(nb)) + nb + struct.pack(f"<{len(indices)}I", *indices)
            + struct.pack("<QQ", size, size) + b"\0\0")


def write_vmware(mem: MemoryView, out: str | os.PathLike[str], *, embedded: bool = False,
                 hints: dict[str, Any] | None = None, ranges: list[tuple[int, int]] | None = None,
                 force: bool = False) -> Path:
    """``out`` is the ``.vmss`` path; the ``.vmem`` goes beside it unless ``embedded``. Returns the
    path to open (the .vmem, or the .vmss when embedded)."""
    out = Path(out).with_suffix(".vmss")
    vmem = out.with_suffix(".vmem")
    check_output(out, force)
    if not embedded:
        check_output(vmem, force)
    hints = dict(hints if hints is not None else getattr(mem, "hints", {}))
    ranges = [(s // PAGE * PAGE, (e + PAGE - 1) // PAGE * PAGE) for s, e in (ranges or memory_ranges(mem))]
    tags = _tag("regionsCount", (), len(ranges))
    page = 0
    for i, (s, e) in enumerate(ranges):
        tags += _tag("regionPPN", (i,), s // PAGE) + _tag("regionPageNum", (i,), page) + _tag("regionSize", (i,), (e - s) // PAGE)
        page += (e - s) // PAGE
    total = page * PAGE
    cpu_tags = _tag("CR64", (0, 3), int(hints["dtb"]), 8) if hints.get("dtb") else b""
    groups = [("cpu", cpu_tags + b"\0\0"), ("memory", tags)]
    head_len = 12 + 80 * len(groups)
    body = bytearray()
    entries = b""
    for name, t in groups:
        start = head_len + len(body)
        if name == "memory":
            mem_tags = t + (_big_tag_head("Memory", (0, 0), total) if embedded else b"")
            body += mem_tags
            entries += struct.pack("<64sQQ", name.encode(), start, len(mem_tags) + (total if embedded else 0) + 2)
        else:
            body += t
            entries += struct.pack("<64sQQ", name.encode(), start, len(t))
    head = struct.pack("<III", MAGIC, 0, len(groups)) + entries
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as f:
        f.write(head + body)
        if embedded:
            _copy(mem, ranges, f)
            f.write(b"\0\0")  # end of the memory group's tags
        # (non-embedded: the memory group's tags already end below)
    if not embedded:
        with open(tmp, "ab") as f:
            f.write(b"\0\0")
        vtmp = vmem.with_name(vmem.name + ".part")
        with open(vtmp, "wb") as f:
            _copy(mem, ranges, f)
        os.replace(vtmp, vmem)
    os.replace(tmp, out)
    return out if embedded else vmem


def _copy(mem: MemoryView, ranges: list[tuple[int, int]], f: Any) -> None:
    for s, e in ranges:
        for a in range(s, e, 4 << 20):
            data, _ = mem._read_single(a, min(4 << 20, e - a))
            f.write(data)
