"""Root scans on hand-made page tables (x86 2-level has no synthetic machine) and hypothesis fuzzing
of the PE readers used on hostile memory (headers, CodeView, export directory)."""

from __future__ import annotations

import mmap
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from win32_sparse import SparseMemory

from pymemflow.errors import FormatError
from pymemflow.mem.buffer import MmapMemory
from pymemflow.mem.memmap import MemoryMap
from pymemflow.os.win32 import pe, rootscan

SIZE = 4 << 20


def _phys(mm: mmap.mmap) -> MmapMemory:
    return MmapMemory(mm, MemoryMap.identity(len(mm)), writable=False)


def test_scan_x86_two_level() -> None:
    mm = mmap.mmap(-1, SIZE)
    pd = 0x123000
    for i in range(0x200, 0x210):  # a few kernel PDEs
        struct.pack_into("<I", mm, pd + 4 * i, (0x200000 + 0x1000 * i) | 0x63)
    struct.pack_into("<I", mm, pd + 4 * 0x300, pd | 0x63)  # self-map at 0xC0000000
    decoy = 0x200000  # self-reference but no kernel entries: rejected
    struct.pack_into("<I", mm, decoy + 4 * 0x300, decoy | 0x63)
    got = rootscan.scan_x86(_phys(mm), SIZE)
    assert [c.dtb for c in got] == [pd] and got[0].arch == "x86"


def test_scan_x86pae_self_map_and_pdpt() -> None:
    mm = mmap.mmap(-1, SIZE)
    pds = [0x300000, 0x301000, 0x302000, 0x303000]
    for i, p in enumerate(pds):
        struct.pack_into("<Q", mm, pds[3] + 8 * i, p | 0x63)  # PD3[0..3] map the four PDs
    pdpt = 0x1A0 + 0x100000  # 32-byte aligned inside a page, as Windows places it
    for i, p in enumerate(pds):
        struct.pack_into("<Q", mm, pdpt + 8 * i, p | 0x1)
    got = rootscan.scan_x86pae(_phys(mm), SIZE)
    assert [c.dtb for c in got] == [pdpt] and got[0].arch == "x86pae"


def test_scan_x64_pml4_and_low_stub() -> None:
    mm = mmap.mmap(-1, SIZE)
    pml4 = 0x2AB000
    struct.pack_into("<Q", mm, pml4 + 8 * 0x1ED, pml4 | 0x63)  # self reference
    struct.pack_into("<Q", mm, pml4 + 8 * rootscan.KUSER_PML4_INDEX, 0x2AC000 | 0x63)
    struct.pack_into("<Q", mm, pml4 + 8 * 0x1F0, 0x2AD000 | 0x63)
    struct.pack_into("<Q", mm, pml4, 0x2AE000 | 0x67)
    got = rootscan.scan_x64_pml4(_phys(mm), SIZE)
    assert [c.dtb for c in got] == [pml4]
    assert rootscan.find_low_stub(_phys(mm)) is None
    stub = 0x9000
    struct.pack_into("<Q", mm, stub, 0x00000001000600E9)
    struct.pack_into("<Q", mm, stub + 0x70, 0xFFFFF80012345000)
    struct.pack_into("<Q", mm, stub + 0xA0, pml4)
    c = rootscan.find_low_stub(_phys(mm))
    assert c is not None and (c.dtb, c.kernel_hint) == (pml4, 0xFFFFF80012345000)


def _header(nt: int, magic: int, nsec: int, opt_size: int, size_of_image: int, ndirs: int) -> bytearray:
    h = bytearray(0x1000)
    h[0:2] = b"MZ"
    struct.pack_into("<I", h, 0x3C, nt)
    if nt + 0x120 < len(h):
        h[nt : nt + 4] = b"PE\0\0"
        struct.pack_into("<HHIIIHH", h, nt + 4, 0x8664, nsec, 0, 0, 0, opt_size, 0x22)
        struct.pack_into("<H", h, nt + 0x18, magic)
        struct.pack_into("<II", h, nt + 0x18 + 0x38, size_of_image, 0x1000)
        struct.pack_into("<I", h, nt + 0x18 + 0x6C, ndirs)
    return h


@settings(max_examples=60, deadline=None)
@given(nt=st.integers(0, 0x1100), magic=st.sampled_from([0x10B, 0x20B, 0, 0xFFFF]),
       nsec=st.integers(0, 0xFFFF), opt_size=st.integers(0, 0xFFFF), size=st.integers(0, 2**32 - 1),
       ndirs=st.integers(0, 2**32 - 1), noise=st.binary(max_size=64), at=st.integers(0, 0xFC0))
def test_header_parser_never_crashes(nt: int, magic: int, nsec: int, opt_size: int, size: int, ndirs: int,
                                     noise: bytes, at: int) -> None:
    h = _header(nt, magic, nsec, opt_size, size, ndirs)
    h[at : at + len(noise)] = noise
    try:
        hdr = pe.parse_headers(bytes(h[:0x1000]))
    except FormatError:
        return
    assert 0 < hdr.size_of_image <= pe.MAX_IMAGE
    assert len(hdr.sections) <= 96 and len(hdr.directories) <= 16


@settings(max_examples=40, deadline=None)
@given(dirs=st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), min_size=16, max_size=16),
       body=st.binary(min_size=0, max_size=512))
def test_export_and_codeview_readers_on_garbage(dirs: list[tuple[int, int]], body: bytes) -> None:
    """Random data directories pointing anywhere (including at random bytes): results or empty, no hang."""
    mem = SparseMemory()
    base = 0x400000
    h = _header(0x80, 0x20B, 0, 0xF0, 0x3000, 16)
    for i, (rva, size) in enumerate(dirs):
        struct.pack_into("<II", h, 0x80 + 0x18 + 0x70 + 8 * i, rva, size)
    mem.map(base, bytes(h))
    mem.map(base + 0x1000, body.ljust(0x1000, b"\xff"))
    hdr = pe.read_headers(mem, base)
    names = pe.export_rvas(mem, base, {"NtBuildNumber"}, hdr)
    assert set(names) <= {"NtBuildNumber"}
    assert isinstance(pe.export_dir_name(mem, base, hdr), str)
    cv = pe.codeview(mem, base, hdr)
    assert cv is None or len(cv.guid) == 32
