"""AVML writer (for tests): version-2 blocks as AVML's ``image.rs`` writes them -- a 32-byte header
(magic "AVML", version 2, start, end inclusive, padding), a snappy framed stream of the block made
by a fresh frame encoder (``cramjam.snappy.compress`` writes the framing format with CRC-32C), and a
u64 with the stream's length. Blocks are at most 16 MiB like AVML's ``MAX_BLOCK_SIZE``.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from ..connectors.formats.codecs import require
from ..mem.view import MemoryView
from .base import check_output, memory_ranges

MAX_BLOCK = 0x1000 * 0x1000


def write_avml(mem: MemoryView, out: str | os.PathLike[str], *, ranges: list[tuple[int, int]] | None = None,
               force: bool = False) -> Path:
    out = Path(out)
    check_output(out, force)
    cj = require("snappy", out, None, "AVML writer")
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as f:
        for s, e in ranges or memory_ranges(mem):
            for a in range(s, e, MAX_BLOCK):
                n = min(MAX_BLOCK, e - a)
                data, _ = mem._read_single(a, n)
                stream = bytes(cj.snappy.compress(data))
                f.write(struct.pack("<IIQQQ", 0x4C4D5641, 2, a, a + n - 1, 0) + stream + struct.pack("<Q", len(stream)))
    os.replace(tmp, out)
    return out
