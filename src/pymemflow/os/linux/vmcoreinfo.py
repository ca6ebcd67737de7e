"""VMCOREINFO: the ``KEY=VALUE`` text every crash-dump-capable kernel keeps in its own memory.

It names the kernel release, the page-table root (``SYMBOL(swapper_pg_dir)``), the KASLR offset,
``phys_base``, the paging depth and -- since 6.x -- the kallsyms tables, which is all we need to start
walking a kernel without symbol files. Found in a dump's ELF/kdump note (connector hint
``vmcoreinfo``) or by scanning physical memory for ``OSRELEASE=``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from ...errors import FormatError
from ...mem.scan import CancelToken, Progress, scan_chunks
from ...mem.view import MemoryView

MAX_TEXT = 16384
"""VMCOREINFO is one page in the kernel (VMCOREINFO_BYTES = PAGE_SIZE); never parse more."""

_LINE = re.compile(r"^([A-Z_]+)(?:\(([^)]*)\))?=(.*)$")


@dataclass
class VmcoreInfo:
    """Parsed VMCOREINFO. ``symbols`` hold runtime (already relocated) virtual addresses."""

    text: str
    osrelease: str = ""
    build_id: str = ""
    page_size: int = 4096
    kerneloffset: int = 0
    phys_base: int | None = None
    pgtable_l5: bool = False
    pae: bool = False
    symbols: dict[str, int] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    numbers: dict[str, int] = field(default_factory=dict)
    lengths: dict[str, int] = field(default_factory=dict)
    configs: set[str] = field(default_factory=set)
    location: int | None = None
    """Physical address where the text was found (None when it came from a dump header)."""

    @property
    def is_64bit(self) -> bool:
        return any(v > 0xFFFFFFFF for v in self.symbols.values())


def _int(text: str, base: int) -> int:
    t = text.strip()
    neg = t.startswith("-")
    v = int(t.lstrip("-"), base)
    return -v if neg else v


def parse(text: str | bytes, *, source: str = "vmcoreinfo", location: int | None = None) -> VmcoreInfo:
    """Parse VMCOREINFO text; raises :class:`FormatError` when it lacks ``OSRELEASE``/``swapper_pg_dir``."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text[:MAX_TEXT]).split(b"\0", 1)[0].decode("ascii", "replace")
    text = text[:MAX_TEXT]
    info = VmcoreInfo(text=text, location=location)
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("CONFIG_") and line.endswith("=y"):
            info.configs.add(line[len("CONFIG_"):-2])  # i386 writes CONFIG_X86_PAE=y
            continue
        m = _LINE.match(line)
        if not m:
            continue
        key, arg, val = m.groups()
        try:
            if key == "OSRELEASE":
                info.osrelease = val
            elif key == "BUILD-ID" or key == "BUILD_ID":
                info.build_id = val
            elif key == "PAGESIZE":
                info.page_size = int(val)
            elif key == "KERNELOFFSET":
                info.kerneloffset = int(val, 16)
            elif key == "SYMBOL" and arg:
                info.symbols[arg] = int(val, 16)
            elif key == "OFFSET" and arg:
                info.offsets[arg] = int(val)
            elif key == "SIZE" and arg:
                info.sizes[arg] = int(val)
            elif key == "LENGTH" and arg:
                info.lengths[arg] = int(val)
            elif key == "NUMBER" and arg:
                info.numbers[arg] = _int(val, 10)
            elif key == "CONFIG" and arg:
                if val.strip() == "y":
                    info.configs.add(arg)
        except ValueError:
            continue  # one bad line (a torn copy) must not hide the rest
    if "BUILD-ID" in text and not info.build_id:
        m2 = re.search(r"BUILD-ID=([0-9a-f]+)", text)
        info.build_id = m2.group(1) if m2 else ""
    info.phys_base = info.numbers.get("phys_base")
    info.pgtable_l5 = bool(info.numbers.get("pgtable_l5_enabled", 0))
    info.pae = "X86_PAE" in info.configs
    if not info.osrelease:
        raise FormatError(source, location, "OSRELEASE", "VMCOREINFO text has no OSRELEASE= line")
    if "swapper_pg_dir" not in info.symbols and "init_top_pgt" not in info.symbols:
        raise FormatError(source, location, "SYMBOL(swapper_pg_dir)",
                          "VMCOREINFO names no page-table root (swapper_pg_dir/init_top_pgt)")
    return info


CHUNK = 16 << 20
NEEDLE = b"OSRELEASE="


def scan(phys: MemoryView, max_address: int | None = None, *, chunk: int = CHUNK,
         cancel: CancelToken | None = None, progress: Progress | None = None) -> Iterator[VmcoreInfo]:
    """Yield every parseable VMCOREINFO copy in physical memory, lowest address first.

    Visits only the connector's backed ranges (:func:`pymemflow.mem.scan.scan_chunks`), searching
    each chunk in place with ``find`` (memchr speed on the connector's mmap); chunks overlap by
    ``MAX_TEXT`` so a copy across a boundary is seen. A caller stops at the first copy that validates.
    """
    for c in scan_chunks(phys, chunk=chunk, overlap=MAX_TEXT, cancel=cancel, progress=progress,
                         limit=max_address):
        own = min(chunk, c.length)  # matches in the overlap belong to the next chunk
        at = c.find(NEEDLE, 0, own + len(NEEDLE) - 1)
        while 0 <= at < own:
            # The format string "OSRELEASE=%s" in .rodata is not VMCOREINFO: require a digit.
            if c.take(at + len(NEEDLE), at + len(NEEDLE) + 1).isdigit():
                blob = c.take(at, at + MAX_TEXT)
                try:
                    yield parse(blob, source="physical memory", location=c.base + at)
                except FormatError:
                    pass
            at = c.find(NEEDLE, at + 1, own + len(NEEDLE) - 1)
