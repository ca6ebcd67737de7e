"""Open a dump file whatever its format: detection by magic bytes (and the .vmem/.vmss pairing).

``pymemflow.open(path)`` and ``-c auto:PATH`` come here. A file no format claims raises a
:class:`FormatError` listing every format that was tried; raw images carry no magic, so they are
opened with ``raw:PATH`` (or ``auto:PATH,raw=true``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import FormatError
from ..mem.phys import PhysicalMemory
from ..types import ArgSpec, PluginSpec, parse_bool, parse_int
from .avml import AvmlDump
from .crashdump import CrashDump
from .elf import ElfCore
from .formats.source import check_memory_file, read_magic
from .kdump import KdumpCompressed
from .lime import LimeDump
from .raw import PLUGIN as RAW
from .vmware import VmwareSnapshot

TRIED = ("elf (\\x7fELF)", "kdump (KDUMP   / DISKDUMP / makedumpfile)", "crashdump (PAGEDUMP / PAGEDU64)",
         "lime (EMiL)", "avml (AVML)", "vmware (.vmem + .vmss/.vmsn, or a .vmss/.vmsn state file)")


def detect(path: str | Path) -> str | None:
    """The format name of ``path`` by its magic bytes, or None."""
    p = Path(path)
    head = read_magic(p, 16)
    u32 = struct.unpack("<I", head[:4])[0] if len(head) >= 4 else -1
    if head.startswith(b"\x7fELF"):
        return "elf"
    if head[:8] in (b"KDUMP   ", b"DISKDUMP") or head.startswith(b"makedumpfile"):
        return "kdump"
    if head[:8] in (b"PAGEDUMP", b"PAGEDU64"):
        return "crashdump"
    if u32 == 0x4C694D45:
        return "lime"
    if u32 == 0x4C4D5641:
        return "avml"
    if u32 in (0xBED2BED0, 0xBAD1BAD1, 0xBED2BED2, 0xBED3BED3):
        return "vmware"
    if p.suffix.lower() == ".vmem" and (p.with_suffix(".vmss").exists() or p.with_suffix(".vmsn").exists()):
        return "vmware"
    return None


def _openers() -> dict[str, Callable[..., PhysicalMemory]]:
    return {"elf": ElfCore, "kdump": KdumpCompressed, "crashdump": CrashDump, "lime": LimeDump,
            "avml": AvmlDump, "vmware": VmwareSnapshot}


def open_dump(path: str | Path, *, chunk_cache: int | None = None, raw: bool = False,
              memmap: str | None = None) -> PhysicalMemory:
    """Open ``path`` with the connector its format needs."""
    p = check_memory_file(path, "auto")
    fmt = detect(p)
    if fmt is None:
        if raw:
            mem: PhysicalMemory = RAW.factory({"target": str(p), "memmap": memmap}, None)
            return mem
        raise FormatError(p, 0, "magic", "unknown dump format; tried " + ", ".join(TRIED)
                          + " (a raw image has no magic: open it with raw:PATH)")
    opener = _openers()[fmt]
    if chunk_cache is not None and fmt in ("kdump", "avml"):
        return opener(p, chunk_cache=chunk_cache)
    return opener(p)


def _factory(args: dict[str, Any], _input: Any = None) -> PhysicalMemory:
    return open_dump(args["target"], chunk_cache=args.get("chunk_cache"), raw=bool(args.get("raw")) or bool(args.get("memmap")),
                     memmap=args.get("memmap"))


PLUGIN = PluginSpec(
    "connector", "auto", "any dump file, format detected by magic (ELF, kdump, crash dump, LiME, AVML, VMware)",
    _factory,
    args=[ArgSpec("target", "path of the dump file", required=True),
          ArgSpec("chunk_cache", "decoded chunks (pages/frames) kept by compressed formats "
                  "(not the page cache: that is the middleware key, NAME:TARGET:cache=true)",
                  default=None, parse=parse_int, minimum=1, maximum=1 << 20, unit=" chunks"),
          ArgSpec("raw", "open a file without a known magic as a raw image", default=False, parse=parse_bool),
          ArgSpec("memmap", "memory-map TOML for a raw image (implies raw=true)")],
)
