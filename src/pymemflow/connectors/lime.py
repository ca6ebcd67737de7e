"""LiME dumps (Linux Memory Extractor, "lime" format).

Layout (LiME's README / ``lime.h``): a sequence of ranges, each a 32-byte header
``magic 0x4C694D45 ("EMiL" on disk), version 1, s_addr u64, e_addr u64 (inclusive), reserved[8]``
followed by ``e_addr - s_addr + 1`` bytes of memory.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from ..types import PluginSpec
from .formats.base import file_plugin_args
from .formats.runs import RunMap, RunMappedMemory
from .formats.source import FileSource

LIME_MAGIC = 0x4C694D45
LIME_HEADER = struct.Struct("<IIQQ8s")
MAX_RANGES = 1 << 20
"""LiME writes one range per System RAM entry of /proc/iomem (tens); a million is not a real dump."""


class LimeDump(RunMappedMemory):
    name = "lime"
    format_name = "lime"

    def __init__(self, path: str | Path, source: FileSource | None = None) -> None:
        super().__init__(source or FileSource(path, self.format_name))
        src = self.source
        runs: list[tuple[int, int, int]] = []
        where: list[int] = []
        pos = 0
        while pos < src.size:
            if len(runs) >= MAX_RANGES:
                raise src.error(pos, "lime_mem_range_header", f"more than {MAX_RANGES} ranges")
            magic, version, start, end, _ = src.unpack(LIME_HEADER, pos, f"LiME header {len(runs)}")
            if magic != LIME_MAGIC:
                raise src.error(pos, "lime_mem_range_header.magic", f"bad magic {magic:#x} (expected {LIME_MAGIC:#x})")
            if version != 1:
                raise src.error(pos + 4, "lime_mem_range_header.version", f"unsupported version {version}")
            if end < start:
                raise src.error(pos + 16, "lime_mem_range_header.e_addr", f"end {end:#x} < start {start:#x}")
            length = end - start + 1
            data = pos + LIME_HEADER.size
            if data + length > src.size:
                raise src.error(pos + 16, "lime_mem_range_header.e_addr",
                                f"range {start:#x}..{end:#x} needs {length:#x} bytes but the file ends at {src.size:#x}")
            runs.append((start, length, data))
            where.append(pos)
            pos = data + length
        if not runs:
            raise src.error(0, "lime_mem_range_header", "no ranges (empty file)")
        self._set_runs(RunMap(src, runs, "lime_mem_range_header", where))
        self.format_info["ranges"] = len(runs)


def open_lime(args: dict[str, Any], _input: Any = None) -> LimeDump:
    return LimeDump(args["target"])


PLUGIN = PluginSpec("connector", "lime", "LiME memory dump", open_lime, args=file_plugin_args())
