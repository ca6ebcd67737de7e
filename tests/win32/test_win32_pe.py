"""PE parsing over real PE files (ntoskrnl/ntdll/kernel32 linked by lld-link, see pe_build.py) laid out in
memory as a loader would."""

from __future__ import annotations

from pathlib import Path

import pefile
import pytest
from win32_sparse import SparseMemory

from pymemflow.errors import FormatError
from pymemflow.os.win32 import pe


def load_into(mem: SparseMemory, path: Path, base: int) -> pefile.PE:
    """Map a PE file the way the Windows loader does: headers, then each section at its RVA."""
    f = pefile.PE(str(path), fast_load=True)
    data = path.read_bytes()
    mem.map(base, data[: f.OPTIONAL_HEADER.SizeOfHeaders])
    for s in f.sections:
        raw = data[s.PointerToRawData : s.PointerToRawData + s.SizeOfRawData]
        vsize = max(s.Misc_VirtualSize, 1)
        mem.map(base + s.VirtualAddress, raw[:vsize].ljust(vsize, b"\0"))
    return f


@pytest.mark.parametrize("arch,name,base", [
    ("x86_64", "ntoskrnl.exe", 0xFFFFF80000400000),
    ("x86_64", "kernel32.dll", 0x7FF800000000),
    ("i386", "ntdll.dll", 0x77000000),
    ("i386", "kernel32.dll", 0x76000000),
])
def test_exports_match_pefile_on_file(pe_files: Path, arch: str, name: str, base: int) -> None:
    path = pe_files / arch / name
    mem = SparseMemory(8 if arch == "x86_64" else 4)
    ref = load_into(mem, path, base)
    ref.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_EXPORT"]])
    hdr = pe.read_headers(mem, base)
    assert hdr.is64 == (arch == "x86_64")
    assert pe.export_dir_name(mem, base, hdr).lower() == name.lower()
    image, bad = pe.read_image(mem, base)
    assert len(image) == hdr.size_of_image
    exports = pe.exports_of_image(image, base)
    want = {
        (s.name.decode() if s.name else f"#{s.ordinal}"): (base + s.address if s.address else 0)
        for s in ref.DIRECTORY_ENTRY_EXPORT.symbols
    }
    got = {e.name: e.address for e in exports}
    assert len(got) == len(want) > 100
    assert got == want
    fwd_ref = {s.name.decode() for s in ref.DIRECTORY_ENTRY_EXPORT.symbols if s.forwarder and s.name}
    assert {e.name for e in exports if e.forwarder} == fwd_ref


def test_ntoskrnl_exports_kernel_symbols(pe_files: Path) -> None:
    path = pe_files / "x86_64" / "ntoskrnl.exe"
    mem = SparseMemory()
    base = 0xFFFFF80000400000
    load_into(mem, path, base)
    image, _ = pe.read_image(mem, base)
    names = {e.name for e in pe.exports_of_image(image, base)}
    assert {"PsInitialSystemProcess", "NtBuildNumber"} <= names


def test_imports_and_sections_match_pefile(pe_files: Path) -> None:
    path = pe_files / "x86_64" / "kernel32.dll"
    mem = SparseMemory()
    base = 0x7FF800000000
    ref = load_into(mem, path, base)
    ref.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"]])
    image, _ = pe.read_image(mem, base)
    imports = pe.imports_of_image(image, base)
    want = [
        (e.dll.decode(), (i.name.decode() if i.name else f"#{i.ordinal}"), i.address - ref.OPTIONAL_HEADER.ImageBase + base)
        for e in ref.DIRECTORY_ENTRY_IMPORT for i in e.imports
    ]
    assert [(i.module, i.name, i.address) for i in imports] == want
    assert len(want) > 10
    secs = pe.sections_of_headers(pe.read_headers(mem, base), base)
    assert [s.name for s in secs] == [s.Name.rstrip(b"\0").decode() for s in ref.sections]
    assert all(s.address == base + r.VirtualAddress for s, r in zip(secs, ref.sections, strict=True))


def test_rebuilt_pe_loads_with_pefile(pe_files: Path) -> None:
    path = pe_files / "i386" / "kernel32.dll"
    mem = SparseMemory(4)
    base = 0x76000000
    ref = load_into(mem, path, base)
    image, _ = pe.read_image(mem, base)
    out = pe.rebuild_pe(image, base)
    f = pefile.PE(data=out)
    assert f.OPTIONAL_HEADER.ImageBase == base
    assert [s.Name for s in f.sections] == [s.Name for s in ref.sections]
    ref.parse_data_directories()
    assert len(f.DIRECTORY_ENTRY_EXPORT.symbols) == len(ref.DIRECTORY_ENTRY_EXPORT.symbols)
    # the code of .text is where the file says it is in the rebuilt file
    t = ref.sections[0]
    orig = path.read_bytes()[t.PointerToRawData : t.PointerToRawData + 256]
    assert out[t.VirtualAddress : t.VirtualAddress + 256] == orig


def test_codeview_rsds_record() -> None:
    mem = SparseMemory()
    base = 0x10000
    # a minimal PE32+ with a debug directory pointing at an RSDS record
    import struct
    hdr = bytearray(0x1000)
    hdr[0:2] = b"MZ"
    struct.pack_into("<I", hdr, 0x3C, 0x80)
    hdr[0x80:0x84] = b"PE\0\0"
    struct.pack_into("<HHIIIHH", hdr, 0x84, 0x8664, 0, 0, 0, 0, 0xF0, 0x22)
    opt = 0x98
    struct.pack_into("<H", hdr, opt, 0x20B)
    struct.pack_into("<II", hdr, opt + 0x38, 0x3000, 0x1000)
    struct.pack_into("<I", hdr, opt + 0x6C, 16)
    struct.pack_into("<II", hdr, opt + 0x70 + 8 * 6, 0x1000, 28)
    mem.map(base, bytes(hdr))
    dbg = bytearray(0x1000)
    struct.pack_into("<IIHHIIII", dbg, 0, 0, 0, 0, 0, 2, 24 + 13, 0x1100, 0)
    guid = bytes.fromhex("F8AF7852346C7716D7D7835C85B7B844")
    dbg[0x100:0x104] = b"RSDS"
    dbg[0x104:0x114] = guid
    struct.pack_into("<I", dbg, 0x114, 1)
    dbg[0x118:0x125] = b"ntkrnlmp.pdb\0"
    mem.map(base + 0x1000, bytes(dbg))
    cv = pe.codeview(mem, base)
    assert cv is not None
    assert cv.pdb_name == "ntkrnlmp.pdb"
    assert cv.guid_age == "5278AFF86C341677D7D7835C85B7B8441"


@pytest.mark.parametrize("blob", [b"", b"MZ", b"MZ" + b"\0" * 0x3A + b"\xff\xff\0\0", b"XX" + b"\0" * 100])
def test_bad_headers_raise_format_error(blob: bytes) -> None:
    with pytest.raises(FormatError):
        pe.parse_headers(blob.ljust(0x1000, b"\0") if blob[:2] == b"MZ" else blob)
