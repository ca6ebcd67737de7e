"""kdump-compressed dumps (makedumpfile's diskdump layout; QEMU ``dump-guest-memory -z``).

Layout (makedumpfile ``diskdump_mod.h``): block 0 holds ``disk_dump_header`` ("KDUMP   ", block
size, sub-header and bitmap sizes, max_mapnr), the next ``sub_hdr_size`` blocks ``kdump_sub_header``
(VMCOREINFO and ELF-notes locations, 64-bit max_mapnr from header version 6), then two bitmaps of
equal size (1: valid pages, 2: dumped pages; bit i = pfn i, LSB first), then one 24-byte page
descriptor ``(offset, size, flags, page_flags)`` per dumped page in pfn order, then page data:
zlib (flag 1), lzo (2), snappy (4), zstd (0x20) or stored. Plain and flattened files are both read.
Pages are decoded on demand through the chunk cache.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..types import PluginSpec
from .formats import codecs
from .formats.base import file_plugin_args
from .formats.bitmaps import bitmap_pfns
from .formats.chunked import ChunkedMemory
from .formats.flattened import FLAT_SIGNATURE, FlattenedStore
from .formats.notes import parse_elf_notes, parse_vmcoreinfo, refine_arch
from .formats.source import FileSource

KDUMP_SIGNATURE = b"KDUMP   "
DISKDUMP_SIGNATURE = b"DISKDUMP"
FLAG_CODECS = {0x1: "zlib", 0x2: "lzo", 0x4: "snappy", 0x20: "zstd"}
MAX_BLOCK_SIZE = 1 << 20
MAX_NOTE_BYTES = 64 << 20
MAX_VMCOREINFO = 1 << 20
PAGE_DESC = np.dtype([("offset", "<i8"), ("size", "<u4"), ("flags", "<u4"), ("page_flags", "<u8")])
ARCH_32 = {"i386", "i486", "i586", "i686", "arm", "ppc", "s390", "mips"}
ARCH_NAMES = {"x86_64": "x64", "i386": "x86", "i486": "x86", "i586": "x86", "i686": "x86",
              "aarch64": "aarch64"}


class KdumpCompressed(ChunkedMemory):
    """A kdump-compressed (plain or flattened) dump as physical memory."""

    name = "kdump"
    format_name = "kdump"

    def __init__(self, path: str | Path, chunk_cache: int = 1024, source: FileSource | None = None) -> None:
        src = source or FileSource(path, self.format_name)
        super().__init__(src)
        self.cache_chunks = max(1, chunk_cache)
        head = src.read(0, min(src.size, 16), "signature")
        self.flattened = head.startswith(FLAT_SIGNATURE)
        store: Any = FlattenedStore(src) if self.flattened else src
        self.store = store
        sig = store.read(0, 8, "disk_dump_header.signature")
        if sig not in (KDUMP_SIGNATURE, DISKDUMP_SIGNATURE):
            raise store.error(0, "disk_dump_header.signature", f"bad signature {sig!r} (expected 'KDUMP   ')")
        (version,) = store.unpack("<i", 8, "disk_dump_header.header_version")
        uts = [store.read(12 + 65 * i, 65, "disk_dump_header.utsname").split(b"\0")[0].decode("ascii", "replace")
               for i in range(6)]
        machine = uts[4]
        # The header's layout (64- or 32-bit timeval/longs) follows the dump writer's ELF class, not
        # the guest: QEMU writes i386 guests with the 64-bit layout. Take the layout whose block
        # size is valid, preferring the one the machine name suggests.
        order = (True, False) if machine in ARCH_32 else (False, True)
        fields = None
        for is32 in order:
            base = 412 if is32 else 424
            vals = store.unpack("<IiiIIIIIIi", base, "disk_dump_header")
            bs = vals[1]
            if 0 < bs <= MAX_BLOCK_SIZE and not bs & (bs - 1):
                fields, self.is32 = vals, is32
                break
        if fields is None:
            base = 412 if order[0] else 424
            raise store.error(base + 4, "disk_dump_header.block_size",
                              f"bad block size {store.unpack('<i', base + 4, 'disk_dump_header.block_size')[0]}")
        (status, block_size, sub_hdr_size, bitmap_blocks, max_mapnr, _total, _dev, _written, current_cpu,
         nr_cpus) = fields
        bitmap_off = (1 + sub_hdr_size) * block_size
        bitmap_len = bitmap_blocks * block_size
        store.check(bitmap_off, bitmap_len, "bitmaps (disk_dump_header.bitmap_blocks)")
        sub = self._sub_header(store, block_size, version)
        if version >= 6 and sub.get("max_mapnr_64"):
            max_mapnr = sub["max_mapnr_64"]
        half = bitmap_len // 2
        nbits = min(max_mapnr, half * 8)
        b2 = np.frombuffer(store.read(bitmap_off + half, half, "bitmap 2"), dtype=np.uint8)
        self._valid = np.frombuffer(store.read(bitmap_off, half, "bitmap 1"), dtype=np.uint8)
        self._nbits = nbits
        desc_off = bitmap_off + bitmap_len
        room = max(0, store.size - desc_off) // PAGE_DESC.itemsize
        pfns = bitmap_pfns(b2, nbits, room, lambda n: store.error(
            bitmap_off + half, "bitmap 2", f"{n} dumped pages need more page descriptors than the file holds"))
        count = int(pfns.size)
        store.check(desc_off, count * PAGE_DESC.itemsize, "page descriptors (count from bitmap 2)")
        desc = np.frombuffer(store.read(desc_off, count * PAGE_DESC.itemsize, "page descriptors"), dtype=PAGE_DESC)
        self._validate(store, desc, desc_off, block_size)
        self.page_size = block_size
        self.desc = desc
        self.pfns = pfns
        self._set_chunks(pfns * np.uint64(block_size), np.full(count, block_size, dtype=np.uint64))
        self.hints["arch"] = ARCH_NAMES.get(machine, machine)
        if uts[2]:  # QEMU leaves utsname empty; VMCOREINFO's OSRELEASE may still say it
            self.hints["kernel_release"] = uts[2]
        self.hints["machine"] = machine
        self.pointer_size = 4 if self.is32 else 8
        self._hints_from_sub(store, sub)
        refine_arch(self.hints)
        codecs_used = sorted({FLAG_CODECS.get(int(f) & 0x27, "none") for f in np.unique(desc["flags"])})
        self.format_info.update({
            "flattened": self.flattened, "header_version": version, "block_size": block_size,
            "max_mapnr": int(max_mapnr), "dumped_pages": count, "status": status, "nr_cpus": nr_cpus,
            "current_cpu": current_cpu, "compression": codecs_used, "utsname": uts[:5],
            "dump_level": sub.get("dump_level"),
        })

    def _sub_header(self, store: Any, block_size: int, version: int) -> dict[str, int]:
        at = block_size
        names: tuple[str, ...]
        if self.is32:
            names = ("phys_base", "dump_level", "split", "start_pfn", "end_pfn", "offset_vmcoreinfo",
                     "size_vmcoreinfo", "offset_note", "size_note", "offset_eraseinfo", "size_eraseinfo",
                     "start_pfn_64", "end_pfn_64", "max_mapnr_64")
            fmt = "<IiiIIQIQIQIQQQ"
        else:
            names = ("phys_base", "dump_level", "split", "start_pfn", "end_pfn", "offset_vmcoreinfo",
                     "size_vmcoreinfo", "offset_note", "size_note", "offset_eraseinfo", "size_eraseinfo",
                     "start_pfn_64", "end_pfn_64", "max_mapnr_64")
            fmt = "<QiiQQQQQQQQQQQ"
        size = struct.calcsize(fmt)
        if version < 6:  # the *_64 fields came with version 6
            fmt = fmt[:-3]
            names = names[:-3]
            size = struct.calcsize(fmt)
        return dict(zip(names, store.unpack(fmt, at, "kdump_sub_header")[: len(names)], strict=True)) \
            if size else {}

    def _validate(self, store: Any, desc: Any, desc_off: int, block_size: int) -> None:
        if not desc.size:
            return
        off = desc["offset"].astype(np.int64)
        size = desc["size"].astype(np.int64)
        flags = desc["flags"].astype(np.int64)
        bad = (off < 0) | (off + size > store.size)
        compressed = (flags & 0x27) != 0
        bad |= (~compressed) & (size != block_size)
        bad |= size > block_size
        bad |= (flags & ~0x27) != 0
        bad |= np.isin(flags & 0x27, [0, 1, 2, 4, 0x20], invert=True)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise store.error(desc_off + i * PAGE_DESC.itemsize, f"page descriptor {i}",
                              f"offset {int(off[i]):#x} size {int(size[i]):#x} flags {int(flags[i]):#x} "
                              f"is outside the file ({store.size:#x}) or not a valid page")

    def _hints_from_sub(self, store: Any, sub: dict[str, int]) -> None:
        if sub.get("phys_base"):
            self.hints["phys_base"] = sub["phys_base"]
        n, o = sub.get("size_note", 0), sub.get("offset_note", 0)
        if 0 < n <= MAX_NOTE_BYTES and o > 0:
            blob = store.read(o, n, "kdump_sub_header.offset_note/size_note")
            self.hints.update(parse_elf_notes(blob, "<", not self.is32, None, o))
        n, o = sub.get("size_vmcoreinfo", 0), sub.get("offset_vmcoreinfo", 0)
        if 0 < n <= MAX_VMCOREINFO and o > 0:
            text = store.read(o, n, "kdump_sub_header.offset_vmcoreinfo").rstrip(b"\0").decode("utf-8", "replace")
            self.hints["vmcoreinfo"] = text
            self.hints.update(parse_vmcoreinfo(text))

    def _hole_reason(self, addr: int) -> str:
        pfn = addr // self.page_size
        if pfn < self._nbits and self._valid[pfn >> 3] >> (pfn & 7) & 1:
            return f"page excluded from the dump (makedumpfile dump level {self.format_info.get('dump_level')})"
        return "not in the dump"

    def _decode_chunk(self, i: int) -> Any:
        d = self.desc[i]
        off, size, flags = int(d["offset"]), int(d["size"]), int(d["flags"]) & 0x27
        data = self.store.read(off, size, f"page data of pfn {int(self.pfns[i]):#x}")
        if flags == 0:
            return np.frombuffer(data, dtype=np.uint8)
        return codecs.decode(FLAG_CODECS[flags], data, self.page_size, self.path, off,
                             f"page data of pfn {int(self.pfns[i]):#x}")


def open_kdump(args: dict[str, Any], _input: Any = None) -> KdumpCompressed:
    return KdumpCompressed(args["target"], chunk_cache=int(args.get("chunk_cache") or 1024))


PLUGIN = PluginSpec("connector", "kdump",
                    "kdump-compressed dump (makedumpfile / QEMU -z: zlib, lzo, snappy, zstd; plain or flattened)",
                    open_kdump, args=file_plugin_args(compressed=True))
