"""PDB path: a REAL PDB made here with clang + lld-link, served by a local HTTP symbol server on
127.0.0.1, fetched, parsed by our MSF/TPI/DBI reader and checked against llvm-pdbutil."""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pefile
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymemflow.errors import FormatError, NotFoundError
from pymemflow.os.win32.offsets import resolve_offsets
from pymemflow.os.win32.offsets.pdb import PdbReader

TOOLS = ("clang", "lld-link", "llvm-pdbutil")
pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                                reason="needs clang, lld and llvm (apt-get install clang lld llvm)")

SOURCE = r"""
typedef struct _LIST_ENTRY { struct _LIST_ENTRY *Flink; struct _LIST_ENTRY *Blink; } LIST_ENTRY;
typedef struct _UNICODE_STRING { unsigned short Length; unsigned short MaximumLength; unsigned short *Buffer; } UNICODE_STRING;
typedef struct _MMVAD_FLAGS { unsigned long Lock:1; unsigned long LockContended:1; unsigned long DeleteInProgress:1;
  unsigned long NoChange:1; unsigned long VadType:3; unsigned long Protection:5; unsigned long PreferredNode:6;
  unsigned long PageSize:2; unsigned long PrivateMemory:1; } MMVAD_FLAGS;
typedef struct _KPROCESS { char Header[24]; LIST_ENTRY ProfileListHead; unsigned long long DirectoryTableBase;
  char pad[0x388]; } KPROCESS;
typedef struct _EPROCESS {
  KPROCESS Pcb; char pad1[0x440 - sizeof(KPROCESS)];
  void *UniqueProcessId; LIST_ENTRY ActiveProcessLinks; char pad2[0x540 - 0x458];
  void *InheritedFromUniqueProcessId; char pad3[0x5a8 - 0x548];
  unsigned char ImageFileName[15];
  union { unsigned long Flags; MMVAD_FLAGS VadFlags; } u;
  UNICODE_STRING Name;
} EPROCESS;
EPROCESS *PsInitialSystemProcess;
LIST_ENTRY PsActiveProcessHead;
LIST_ENTRY PsLoadedModuleList;
unsigned long NtBuildNumber = 0xF0004A61;
__declspec(dllexport) unsigned long long KiSystemStartup(EPROCESS *p) {
  return (unsigned long long)p->UniqueProcessId + p->u.VadFlags.Protection + p->Name.Length + NtBuildNumber;
}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    d = tmp_path_factory.mktemp("pdb")
    (d / "k.c").write_text(SOURCE)
    subprocess.run(["clang", "--target=x86_64-pc-windows-msvc", "-g", "-gcodeview", "-O0", "-c", "k.c", "-o", "k.obj"],
                   cwd=d, check=True, capture_output=True)
    subprocess.run(["lld-link", "/debug", "/entry:KiSystemStartup", "/subsystem:native", "/nodefaultlib",
                    "/out:ntoskrnl.exe", "/pdb:ntkrnlmp.pdb", "k.obj"], cwd=d, check=True, capture_output=True)
    pe = pefile.PE(str(d / "ntoskrnl.exe"))
    cv = pe.DIRECTORY_ENTRY_DEBUG[0].entry
    guid = (f"{cv.Signature_Data1:08X}{cv.Signature_Data2:04X}{cv.Signature_Data3:04X}"
            f"{cv.Signature_Data4:02X}{cv.Signature_Data5:02X}{cv.Signature_Data6.hex().upper()}")
    return d / "ntkrnlmp.pdb", d / "ntoskrnl.exe", guid + f"{cv.Age:X}"


@pytest.fixture()
def symbol_server(built: tuple[Path, Path, str], tmp_path: Path) -> Iterator[str]:
    pdb, _, guid_age = built
    root = tmp_path / "server"
    (root / "ntkrnlmp.pdb" / guid_age).mkdir(parents=True)
    shutil.copy(pdb, root / "ntkrnlmp.pdb" / guid_age / "ntkrnlmp.pdb")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_reader_matches_llvm_pdbutil(built: tuple[Path, Path, str]) -> None:
    pdb, _, guid_age = built
    r = PdbReader(pdb)
    assert f"{r.guid}{r.age:X}" == guid_age and r.machine == 0x8664
    types = r.user_types()
    dump = subprocess.run(["llvm-pdbutil", "dump", "-types", str(pdb)], capture_output=True, text=True, check=True).stdout
    members = re.findall(r"LF_MEMBER \[name = `(\w+)`, Type = [^,]+, offset = (\d+)", dump)
    assert len(members) >= 20
    ours = {(n, f["offset"]) for t in types.values() for n, f in t["fields"].items()}
    assert {(n, int(o)) for n, o in members} == ours
    sizes = dict(re.findall(r"LF_STRUCTURE \[size = \d+\] `(\w+)`[^\n]*\n[^\n]*\n[^\n]*size = (\d+)", dump))
    for name, size in sizes.items():
        assert types[name]["size"] == int(size)
    # publics: llvm-pdbutil gives section:offset; the section headers give the RVA
    pubs = re.findall(r"S_PUB32 \[size = \d+\] `(\w+)`\s+flags = [^,]+, addr = (\d+):(\d+)", dump + subprocess.run(
        ["llvm-pdbutil", "dump", "-publics", str(pdb)], capture_output=True, text=True, check=True).stdout)
    pe = pefile.PE(str(built[1]), fast_load=True)
    for name, seg, off in pubs:
        assert r.symbols[name] == pe.sections[int(seg) - 1].VirtualAddress + int(off)
    assert {"PsActiveProcessHead", "PsInitialSystemProcess", "NtBuildNumber", "KiSystemStartup"} <= set(r.symbols)


def test_resolve_offsets_from_symbol_server(built: tuple[Path, Path, str], symbol_server: str, tmp_path: Path) -> None:
    _, exe, guid_age = built
    cache = tmp_path / "cache"
    o = resolve_offsets(guid_age=guid_age, build=19041, symstore=symbol_server, cache_dir=cache)
    assert o.source == "pdb" and o.guid_age == guid_age and o.arch == "x64"
    # the same offsets as the real 10.0.19041 kernel for the members the source reproduces
    assert o["_EPROCESS.UniqueProcessId"] == 0x440 and o["_EPROCESS.ActiveProcessLinks"] == 0x448
    assert o["_EPROCESS.InheritedFromUniqueProcessId"] == 0x540 and o["_EPROCESS.ImageFileName"] == 0x5A8
    assert o["_KPROCESS.DirectoryTableBase"] == 0x28 and o["_EPROCESS.Pcb.DirectoryTableBase"] == 0x28
    assert o.bits("_MMVAD_FLAGS.Protection") == (0, 7, 5) and o.size("_EPROCESS") == 0x5D0
    pe = pefile.PE(str(exe), fast_load=True)
    data = next(s for s in pe.sections if s.Name.rstrip(b"\0") == b".data")
    assert data.VirtualAddress <= o["PsActiveProcessHead"] < data.VirtualAddress + data.Misc_VirtualSize
    # cached: the PDB and the converted ISF are there, a second resolve needs no server
    assert (cache / "ntkrnlmp.pdb" / guid_age / "ntkrnlmp.pdb").is_file()
    assert list((cache / "windows" / "ntkrnlmp.pdb").glob("*.json.xz"))
    o2 = resolve_offsets(guid_age=guid_age, symstore="http://127.0.0.1:9", cache_dir=cache)
    assert o2.source == "pdb" and o2.fields == o.fields
    # the cache folder doubles as an ISF symbols directory
    o3 = resolve_offsets(guid_age=guid_age, symbols_dir=cache)
    assert o3.source.startswith("isf:") and o3["_EPROCESS.UniqueProcessId"] == 0x440


def test_symbol_server_miss_falls_back_with_reason(symbol_server: str, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="HTTP 404"):
        resolve_offsets(guid_age="AB" * 16 + "1", symstore=symbol_server, cache_dir=tmp_path)
    o = resolve_offsets(guid_age="AB" * 16 + "1", build=19041, symstore=symbol_server, cache_dir=tmp_path)
    assert o.source == "table-nearest"


def test_corrupt_pdb_gives_format_error(built: tuple[Path, Path, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.pdb"
    bad.write_bytes(b"not a pdb" * 100)
    with pytest.raises(FormatError, match="MSF"):
        PdbReader(bad)
    data = built[0].read_bytes()
    bad.write_bytes(data[:5000])
    with pytest.raises(FormatError):
        PdbReader(bad)


@settings(max_examples=40, deadline=None)
@given(flips=st.lists(st.tuples(st.integers(0, 60000), st.integers(0, 255)), min_size=1, max_size=12),
       cut=st.integers(64, 70000))
def test_fuzz_pdb_reader(built: tuple[Path, Path, str], tmp_path_factory: pytest.TempPathFactory,
                         flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(built[0].read_bytes()[:cut])
    for pos, val in flips:
        if pos < len(data):
            data[pos] = val
    p = tmp_path_factory.mktemp("fz") / "f.pdb"
    p.write_bytes(bytes(data))
    try:
        r = PdbReader(p)
        r.to_isf("ntkrnlmp.pdb")
    except FormatError:
        pass
