"""``dummy``: physical memory held in this process (anonymous mmap), writable, for tests and demos.

The pages are allocated lazily by the kernel, so ``size=4g`` costs nothing until written.
"""

from __future__ import annotations

import mmap
from typing import Any

from ..errors import PluginError, RangeError
from ..mem.buffer import MmapMemory
from ..mem.memmap import MemoryMap
from ..types import ArgSpec, PluginSpec, TargetInfo, parse_size

PAGE = 0x1000
MAX_SIZE = 1 << 40
"""Pages are allocated lazily, but the kernel still has to agree to reserve the range."""


class DummyMemory(MmapMemory):
    """``size`` bytes of zeroed, writable memory at physical address 0 (or laid out by ``mem_map``,
    whose ``real_base`` values are then offsets into the buffer)."""

    name = "dummy"

    def __init__(self, size: int = 64 << 20, mem_map: MemoryMap | None = None) -> None:
        if not PAGE <= size <= MAX_SIZE:
            raise RangeError(f"dummy: size {size:#x} is out of range (allowed {PAGE:#x} .. {MAX_SIZE:#x})")
        try:
            mm = mmap.mmap(-1, size)
        except OSError as e:  # the kernel's overcommit limit: how much depends on the machine
            raise PluginError(f"dummy: cannot reserve {size:#x} bytes of memory on this machine: "
                              f"{e.strerror or e}") from None
        super().__init__(mm, mem_map if mem_map is not None else MemoryMap.identity(size), writable=True)
        self.mem_map = mem_map


def _open(args: dict[str, Any], _input: Any) -> DummyMemory:
    mem = DummyMemory(args["size"])
    if args.get("target"):
        mem.hints["label"] = args["target"]
    return mem


PLUGIN = PluginSpec(
    kind="connector",
    name="dummy",
    description="Zeroed, writable physical memory held in this process (for tests and experiments)",
    factory=_open,
    args=[
        ArgSpec("target", "optional label for this memory (ignored otherwise)"),
        ArgSpec("size", "bytes of memory, e.g. 64m, 1g, 0x100000", default=64 << 20, parse=parse_size,
                minimum=PAGE, maximum=MAX_SIZE),
    ],
    targets=lambda: [TargetInfo("dummy", "in-process memory; no target needed")],
)
