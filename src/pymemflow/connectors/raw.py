"""``raw``: a file of physical memory (a raw dump, a QEMU ``memory-backend-file``) mapped with mmap.

Byte ``real_base + k`` of the file is physical address ``base + k`` for each range of the memory
map (``memmap=FILE``, memflow's TOML); without a map the file is physical memory from address 0.
``offset=`` skips a header. Read-only unless ``writable=true``. Sparse files are fine: mmap never
reads holes until they are touched, and then the kernel hands back zero pages.
"""

from __future__ import annotations

import mmap
import os
import stat
from pathlib import Path
from typing import Any

from ..errors import ArgumentError
from ..mem.buffer import MmapMemory
from ..mem.memmap import MemoryMap
from ..mem.phys import PhysRange, merge_ranges
from ..mem.sparse import backed_parts, data_extents
from ..types import ArgSpec, PluginSpec, parse_bool, parse_size
from .formats.source import check_memory_file, open_memory_file


class RawFileMemory(MmapMemory):
    name = "raw"

    def __init__(
        self,
        path: str | Path,
        *,
        mem_map: MemoryMap | None = None,
        offset: int = 0,
        writable: bool = False,
    ) -> None:
        self.path = Path(path)
        fd, size = open_memory_file(self.path, writable=writable, who="raw")
        try:
            if offset < 0 or offset > size:
                raise ArgumentError(f"raw: offset {offset:#x} is outside the file ({size:#x} bytes)")
            # where a sparse file holds data: scans skip the holes (None: fully backed / unknown)
            self._extents = data_extents(fd, size) if stat.S_ISREG(os.fstat(fd).st_mode) else None
            if self._extents is not None and sum(e - s for s, e in self._extents) >= size:
                self._extents = None
            if size:
                mm = mmap.mmap(fd, size, access=mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ)
            else:
                mm = mmap.mmap(-1, 1)  # mmap cannot map an empty file; nothing will be readable
                size = 0
        finally:
            os.close(fd)
        self._offset = offset
        base_map = mem_map if mem_map is not None else MemoryMap.identity(size - offset)
        super().__init__(mm, base_map.shifted(offset), writable=writable, size=size)
        self.mem_map = mem_map
        self.metadata.max_address = base_map.max_address
        self.hints["file"] = str(self.path)

    def phys_ranges(self) -> list[PhysRange]:
        """The map's ranges, with the file's holes (a sparse file) marked as not backed."""
        ranges = super().phys_ranges()
        if self._extents is None:
            return ranges
        out: list[PhysRange] = []
        for r in self._map:
            out += [PhysRange(s, e, b) for s, e, b in backed_parts(r.base, r.end, r.real_base, self._extents)]
        return merge_ranges(out)

    def set_mem_map(self, mem_map: MemoryMap | None) -> None:
        """Replace the map; ``real_base`` values are file offsets after ``offset=``."""
        size = self._size - self._offset
        m = mem_map if mem_map is not None else MemoryMap.identity(size)
        self._install_map(m.shifted(self._offset))
        self.mem_map = mem_map
        self.metadata.max_address = m.max_address


def _open(args: dict[str, Any], _input: Any) -> RawFileMemory:
    target = args.get("target")
    if not target:
        raise ArgumentError("raw: missing required argument 'target' (the path of the memory file)")
    mem_map = MemoryMap.load(check_memory_file(args["memmap"], "raw: memmap")) if args.get("memmap") else None
    return RawFileMemory(target, mem_map=mem_map, offset=args.get("offset") or 0,
                         writable=bool(args.get("writable")))


PLUGIN = PluginSpec(
    kind="connector",
    name="raw",
    description="A file of physical memory (raw dump, QEMU memory-backend-file) mapped with mmap",
    factory=_open,
    args=[
        ArgSpec("target", "path of the memory file", required=True),
        ArgSpec("memmap", "memflow memory-map TOML file ([[range]] base= length= real_base=)"),
        ArgSpec("offset", "bytes to skip at the start of the file (a header)", default=0, parse=parse_size),
        ArgSpec("writable", "open read-write (writes go to the file)", default=False, parse=parse_bool),
    ],
)
