"""PE images as they sit in memory: headers, CodeView, exports/imports/sections, dumping.

Two layers: a small hand-written header reader (a few hundred bytes, no allocation of the whole
image) for discovery, where thousands of candidate pages are checked; and ``pefile`` over the whole
image read from memory for exports, imports and sections, where a maintained parser is worth more
than speed. ``pefile`` expects a file layout, so the image is first "unmapped" in place: every
section's raw pointer/size is set to its virtual address/size, which makes RVAs and file offsets
coincide -- the same trick gives a loadable PE file for ``dump_module``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...errors import FormatError, PymemflowError
from ...mem.view import SMALL_BATCH, MemoryView
from ..base import ExportInfo, ImportInfo, SectionInfo
from ..caps import capped, mapped_extent

if TYPE_CHECKING:
    import numpy as np
else:
    from ...mem.lazynp import np

PAGE = 0x1000
MAX_IMAGE = 256 << 20
QUIET_IMAGE = 16 << 20
"""Images up to this size are trimmed to their last mapped page without a warning."""
"""No real module is larger; a bound on SizeOfImage read from hostile memory."""

MACHINE_I386 = 0x14C
MACHINE_AMD64 = 0x8664
DIR_EXPORT = 0
DIR_IMPORT = 1
DIR_DEBUG = 6


@dataclass
class PeSection:
    name: str
    virtual_address: int
    virtual_size: int
    raw_pointer: int
    raw_size: int
    characteristics: int


@dataclass
class PeHeaders:
    """The facts of a PE header needed to find and walk an image in memory."""

    machine: int
    is64: bool
    size_of_image: int
    size_of_headers: int
    timestamp: int
    image_base: int
    nt_offset: int
    directories: list[tuple[int, int]] = field(default_factory=list)
    sections: list[PeSection] = field(default_factory=list)

    def directory(self, index: int) -> tuple[int, int]:
        return self.directories[index] if index < len(self.directories) else (0, 0)


def parse_headers(data: bytes, where: str = "memory", base: int = 0) -> PeHeaders:
    """Parse DOS + NT headers + section table from the first bytes of an image.

    Raises :class:`FormatError` naming the field that is wrong.
    """
    if len(data) < 0x40 or data[:2] != b"MZ":
        raise FormatError(where, base, "IMAGE_DOS_HEADER.e_magic", "no MZ signature")
    (lfanew,) = struct.unpack_from("<I", data, 0x3C)
    if lfanew < 0x40 or lfanew + 0x18 > len(data):
        raise FormatError(where, base + 0x3C, "IMAGE_DOS_HEADER.e_lfanew", f"{lfanew:#x} outside the header page")
    if data[lfanew : lfanew + 4] != b"PE\0\0":
        raise FormatError(where, base + lfanew, "IMAGE_NT_HEADERS.Signature", "no PE signature")
    machine, nsec, timestamp, _, _, opt_size, _ = struct.unpack_from("<HHIIIHH", data, lfanew + 4)
    opt = lfanew + 0x18
    if opt + 2 > len(data):
        raise FormatError(where, base + opt, "IMAGE_OPTIONAL_HEADER.Magic", "truncated")
    (magic,) = struct.unpack_from("<H", data, opt)
    if magic == 0x20B:
        is64 = True
        if opt + 0x70 > len(data):
            raise FormatError(where, base + opt, "IMAGE_OPTIONAL_HEADER64", "truncated")
        (image_base,) = struct.unpack_from("<Q", data, opt + 0x18)
        size_of_image, size_of_headers = struct.unpack_from("<II", data, opt + 0x38)
        (ndirs,) = struct.unpack_from("<I", data, opt + 0x6C)
        dir_off = opt + 0x70
    elif magic == 0x10B:
        is64 = False
        if opt + 0x60 > len(data):
            raise FormatError(where, base + opt, "IMAGE_OPTIONAL_HEADER32", "truncated")
        (image_base,) = struct.unpack_from("<I", data, opt + 0x1C)
        size_of_image, size_of_headers = struct.unpack_from("<II", data, opt + 0x38)
        (ndirs,) = struct.unpack_from("<I", data, opt + 0x5C)
        dir_off = opt + 0x60
    else:
        raise FormatError(where, base + opt, "IMAGE_OPTIONAL_HEADER.Magic", f"unknown magic {magic:#x}")
    if not 0 < size_of_image <= MAX_IMAGE:
        raise FormatError(where, base + opt + 0x38, "SizeOfImage", f"{size_of_image:#x} is implausible")
    ndirs = min(ndirs, 16)
    dirs = []
    for i in range(ndirs):
        o = dir_off + 8 * i
        if o + 8 > len(data):
            break
        dirs.append(struct.unpack_from("<II", data, o))
    sections = []
    sec_off = opt + opt_size
    for i in range(min(nsec, 96)):
        o = sec_off + 40 * i
        if o + 40 > len(data):
            break
        name = data[o : o + 8].rstrip(b"\0").decode("latin-1")
        vsize, va, rsize, rptr = struct.unpack_from("<IIII", data, o + 8)
        (chars,) = struct.unpack_from("<I", data, o + 36)
        sections.append(PeSection(name, va, vsize, rptr, rsize, chars))
    return PeHeaders(machine, is64, size_of_image, size_of_headers, timestamp, image_base, lfanew,
                     dirs, sections)


def read_headers(mem: MemoryView, base: int) -> PeHeaders:
    """Read and parse the header page of the image at virtual address ``base``."""
    try:
        data = mem.read(base, PAGE)
    except PymemflowError as e:
        raise FormatError("memory", base, "PE header", f"unreadable: {e}") from e
    return parse_headers(data, base=base)


def _read_rva(mem: MemoryView, base: int, hdr: PeHeaders, rva: int, n: int) -> bytes:
    if rva + n > hdr.size_of_image:
        raise FormatError("memory", base + rva, "RVA", f"{rva:#x}+{n:#x} beyond SizeOfImage {hdr.size_of_image:#x}")
    return mem.read(base + rva, n)


def export_dir_name(mem: MemoryView, base: int, hdr: PeHeaders | None = None) -> str:
    """The module name stored in the export directory (``ntoskrnl.exe`` for the kernel), or ''."""
    hdr = hdr or read_headers(mem, base)
    rva, size = hdr.directory(DIR_EXPORT)
    if rva == 0 or size < 40:
        return ""
    try:
        raw = _read_rva(mem, base, hdr, rva, 40)
        (name_rva,) = struct.unpack_from("<I", raw, 12)
        if not 0 < name_rva < hdr.size_of_image:
            return ""
        return mem.read_cstr(base + name_rva, 64, "latin-1")
    except PymemflowError:
        return ""


@dataclass
class CodeView:
    pdb_name: str
    guid: str
    age: int

    @property
    def guid_age(self) -> str:
        """``GUID`` (32 hex digits, upper case) followed by the age in hex, as symbol servers name it."""
        return f"{self.guid}{self.age:X}"


def codeview(mem: MemoryView, base: int, hdr: PeHeaders | None = None) -> CodeView | None:
    """The RSDS CodeView record of the debug directory: PDB name, GUID and age (None when absent)."""
    hdr = hdr or read_headers(mem, base)
    rva, size = hdr.directory(DIR_DEBUG)
    if rva == 0 or size < 28:
        return None
    count = min(size // 28, 16)
    try:
        raw = _read_rva(mem, base, hdr, rva, 28 * count)
    except PymemflowError:
        return None
    for i in range(count):
        _, _, _, _, typ, dsize, drva, _ = struct.unpack_from("<IIHHIIII", raw, 28 * i)
        if typ != 2 or dsize < 24 or drva == 0:
            continue
        try:
            rec = _read_rva(mem, base, hdr, drva, min(dsize, 24 + 260))
        except PymemflowError:
            continue
        if rec[:4] != b"RSDS":
            continue
        d1, d2, d3 = struct.unpack_from("<IHH", rec, 4)
        guid = f"{d1:08X}{d2:04X}{d3:04X}" + rec[12:20].hex().upper()
        (age,) = struct.unpack_from("<I", rec, 20)
        name = rec[24:].split(b"\0", 1)[0].decode("latin-1")
        return CodeView(name, guid, age)
    return None


# ---------------------------------------------------------------------------------------------
# whole images


def _sections_end(hdr: PeHeaders) -> int:
    """Page-aligned end of the last section (0 without sections): what the image really spans."""
    end = max((sec.virtual_address + max(sec.virtual_size, sec.raw_size) for sec in hdr.sections), default=0)
    return (end + PAGE - 1) & ~(PAGE - 1)


def read_image(mem: MemoryView, base: int, size: int | None = None,
               warnings: list[str] | None = None) -> tuple[bytes, int]:
    """Read a whole mapped image page by page in one batch; unreadable pages are zero.

    Returns (bytes, number of unreadable pages). ``size`` (a loader entry's SizeOfImage) is checked
    against the header's, cut to :data:`MAX_IMAGE` and to the last mapped page, each cut noted in
    ``warnings`` -- one corrupt size field must not cost gigabytes.
    """
    try:
        hdr = read_headers(mem, base)
        hdr_size: int | None = hdr.size_of_image
        span = _sections_end(hdr)
        if span and hdr.size_of_image > span + PAGE:
            if warnings is not None:
                warnings.append(f"image at {base:#x}: SizeOfImage {hdr.size_of_image:#x} but the sections end "
                                f"at {span:#x}; using the sections' end")
            hdr_size = span
    except PymemflowError:
        hdr_size = None
    if size is None:
        if hdr_size is None:
            hdr_size = read_headers(mem, base).size_of_image  # raises the header's own error
        size = hdr_size
    elif hdr_size is not None and size != hdr_size:
        if warnings is not None:
            warnings.append(f"image at {base:#x}: loader size {size:#x} disagrees with the PE header's "
                            f"SizeOfImage {hdr_size:#x}; using the smaller")
        size = min(size, hdr_size)
    size = capped(size, MAX_IMAGE, f"image at {base:#x}: size", warnings)
    mapped = mapped_extent(mem, base, size)
    if mapped < size:
        # untouched image pages are often not mapped: trimming them is silent (they would read as
        # zeros); a big size that the page tables do not back is a corrupt field worth a warning
        if warnings is not None and size > QUIET_IMAGE:
            warnings.append(f"image at {base:#x}: size {size:#x} but only {mapped:#x} bytes mapped; "
                            "read up to the last mapped page")
        size = mapped
    npages = (size + PAGE - 1) // PAGE
    addrs = np.arange(npages, dtype=np.uint64) * np.uint64(PAGE) + np.uint64(base)
    res = mem.read_batch(addrs, PAGE)
    bad = len({f.index for f in res.failures})
    return res.data[:size].tobytes(), bad


def unmap_image(image: bytes) -> bytes:
    """A file-layout copy of a memory image: raw pointers/sizes set to the virtual ones.

    Also sets FileAlignment to SectionAlignment, so loaders and ``pefile`` accept the result.
    """
    buf = bytearray(image)
    hdr = parse_headers(bytes(buf[:PAGE]) if len(buf) >= PAGE else bytes(buf))
    opt = hdr.nt_offset + 0x18
    (section_align,) = struct.unpack_from("<I", buf, opt + 0x20)
    if section_align:
        struct.pack_into("<I", buf, opt + 0x24, section_align)
    (opt_size,) = struct.unpack_from("<H", buf, hdr.nt_offset + 4 + 16)
    sec_off = opt + opt_size
    for i, s in enumerate(hdr.sections):
        o = sec_off + 40 * i
        vsize = s.virtual_size or s.raw_size
        vsize = max(0, min(vsize, len(buf) - s.virtual_address))
        struct.pack_into("<II", buf, o + 16, vsize, s.virtual_address)
    return bytes(buf)


def _pefile(image: bytes, directories: list[int]) -> object:
    import pefile  # local: import cost only when exports/imports are asked for

    pe = pefile.PE(data=unmap_image(image), fast_load=True)
    pe.parse_data_directories(directories=[
        pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_EXPORT"] if d == DIR_EXPORT
        else pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"] for d in directories
    ])
    return pe


def _s(b: bytes | None) -> str:
    return b.decode("latin-1") if b else ""


def exports_of_image(image: bytes, base: int) -> list[ExportInfo]:
    """Exports of an image (memory layout), with absolute addresses; forwarders keep their target."""
    pe = _pefile(image, [DIR_EXPORT])
    out: list[ExportInfo] = []
    ed = getattr(pe, "DIRECTORY_ENTRY_EXPORT", None)
    if ed is None:
        return out
    for sym in ed.symbols:
        fwd = _s(sym.forwarder) or None
        name = _s(sym.name) or f"#{sym.ordinal}"
        out.append(ExportInfo(name, base + sym.address if sym.address else 0, sym.ordinal, fwd))
    return out


def imports_of_image(image: bytes, base: int) -> list[ImportInfo]:
    """Imports (module, name or ordinal, IAT slot address) of an image in memory layout."""
    pe = _pefile(image, [DIR_IMPORT])
    out: list[ImportInfo] = []
    for entry in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []):
        mod = _s(entry.dll)
        for imp in entry.imports:
            name = _s(imp.name) or f"#{imp.ordinal}"
            slot = imp.address - pe.OPTIONAL_HEADER.ImageBase + base  # type: ignore[attr-defined]
            out.append(ImportInfo(mod, name, slot, imp.ordinal))
    return out


def sections_of_headers(hdr: PeHeaders, base: int) -> list[SectionInfo]:
    return [
        SectionInfo(s.name, base + s.virtual_address, s.virtual_size or s.raw_size, s.characteristics)
        for s in hdr.sections
    ]


def rebuild_pe(image: bytes, base: int) -> bytes:
    """A PE file from a memory image: unmapped section table and ImageBase set to where it was loaded."""
    buf = bytearray(unmap_image(image))
    hdr = parse_headers(bytes(buf[:PAGE]))
    opt = hdr.nt_offset + 0x18
    if hdr.is64:
        struct.pack_into("<Q", buf, opt + 0x18, base)
    else:
        struct.pack_into("<I", buf, opt + 0x1C, base & 0xFFFFFFFF)
    return bytes(buf)


# ---------------------------------------------------------------------------------------------
# scanning for an image


def scan_for_image(
    pages: list[int],
    mem: MemoryView,
    accept: Callable[[int, PeHeaders], bool],
    *,
    batch: int = 512,
) -> int | None:
    """Return the first virtual page address among ``pages`` holding a PE image that ``accept``s.

    Reads the first 2 bytes of pages in batches so that a few thousand candidates cost a few
    batched reads, then parses headers only where ``MZ`` is found. The first batch is small (the likeliest
    candidates come first, and a small batch needs no NumPy set-up); unreadable pages read as zeros.
    """
    i, step = 0, SMALL_BATCH
    while i < len(pages):
        chunk = pages[i : i + step]
        i, step = i + step, batch
        res = mem.read_batch(chunk, 2)
        if len(chunk) <= SMALL_BATCH:
            hits = [h for h in range(len(chunk)) if res.piece(h) == b"MZ"]
        else:
            raw = res.data.reshape(-1, 2)
            hits = np.nonzero((raw[:, 0] == 0x4D) & (raw[:, 1] == 0x5A))[0].tolist()
        for h in hits:
            addr = chunk[h]
            try:
                hdr = read_headers(mem, addr)
            except PymemflowError:
                continue
            if accept(addr, hdr):
                return addr
    return None


def export_rvas(mem: MemoryView, base: int, names: set[str], hdr: PeHeaders | None = None,
                max_names: int = 1 << 16) -> dict[str, int]:
    """RVAs of a few named exports, read straight from the export directory in memory.

    Cheaper than parsing the whole image when only ``PsInitialSystemProcess`` and friends are needed:
    the name-pointer and ordinal arrays are read in one piece each, and each name is found by binary search
    (the loader's own lookup: names are sorted by byte value), reading a dozen names instead of thousands.
    Should the names read show they are not sorted (a damaged image), every name is read and compared.
    """
    hdr = hdr or read_headers(mem, base)
    rva, size = hdr.directory(DIR_EXPORT)
    if rva == 0 or size < 40:
        return {}
    try:
        raw = _read_rva(mem, base, hdr, rva, 40)
        nfuncs, nnames, funcs_rva, names_rva, ords_rva = struct.unpack_from("<IIIII", raw, 20)
        nnames = min(nnames, max_names)
        nfuncs = min(nfuncs, max_names)
        if nnames == 0:
            return {}
        name_ptrs = struct.unpack(f"<{nnames}I", _read_rva(mem, base, hdr, names_rva, 4 * nnames))
        ords = struct.unpack(f"<{nnames}H", _read_rva(mem, base, hdr, ords_rva, 2 * nnames))
        funcs = struct.unpack(f"<{nfuncs}I", _read_rva(mem, base, hdr, funcs_rva, 4 * nfuncs))
    except PymemflowError:
        return {}
    longest = max(len(n) for n in names) + 1  # a longer name read cut to this still sorts the same
    seen: dict[int, bytes] = {}

    def name(i: int) -> bytes:
        s = seen.get(i)
        if s is None:  # unreadable bytes read as zeros (an empty name), as a batched read gives them
            s = seen[i] = mem.read((base + name_ptrs[i]) & ((1 << 64) - 1), longest, zero_fill=True).split(b"\0", 1)[0]
        return s

    found: dict[bytes, int] = {}
    for want in sorted(n.encode() for n in names):
        lo, hi = 0, nnames
        while lo < hi:
            mid = (lo + hi) // 2
            if name(mid) < want:
                lo = mid + 1
            else:
                hi = mid
        if lo < nnames and name(lo) == want:
            found[want] = lo
    probed = [seen[i] for i in sorted(seen)]
    if len(found) < len(names) and any(a > b for a, b in zip(probed, probed[1:], strict=False)):
        for i in range(nnames):  # not sorted: look at every name
            if name(i).decode("latin-1") in names:
                found.setdefault(name(i), i)
    out: dict[str, int] = {}
    for want, i in found.items():
        if ords[i] < nfuncs:
            out[want.decode("latin-1")] = funcs[ords[i]]
    return out
