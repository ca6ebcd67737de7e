"""Hostile and truncated triage dumps: each damage is refused with a FormatError naming the file, the
offset and the field (TRIAGE_DUMP64.*, DUMP_DRIVER_ENTRY[i].*, DUMP_STRING[i].*, TRIAGE_DATA_BLOCK),
never a hang, a huge allocation or a wrong answer. The dump is one of the synthetic Windows 10
machine, written by pymemflow's writer; each case patches one field of a copy."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pymemflow.connectors.crashdump import CrashDump
from pymemflow.errors import FormatError
from pymemflow.os.win32.kernel import Win32Kernel
from pymemflow.os.win32.triage import triage_material
from pymemflow.writers.crashdump import write_triage

T = 0x2000  # TRIAGE_DUMP64 follows the two-page DUMP_HEADER64


@pytest.fixture(scope="module")
def original(win10_image: Any, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from win32_util import phys_of

    k = Win32Kernel.open(phys_of(win10_image), progress=False)
    out = tmp_path_factory.mktemp("hostile") / "t.dmp"
    write_triage(out, **triage_material(k))
    return out.read_bytes()


def _u32(b: bytes, at: int) -> int:
    return int(struct.unpack_from("<I", b, at)[0])


def _put(b: bytearray, at: int, value: int) -> bytearray:
    struct.pack_into("<I", b, at, value)
    return b


def _first_name(b: bytes) -> int:
    return _u32(b, _u32(b, T + 0x30))  # DUMP_DRIVER_ENTRY[0].DriverNameOffset


CASES: list[tuple[str, Callable[[bytes], bytes], Callable[[bytes], int], str, str]] = [
    ("header cut short", lambda b: b[: T + 0x40], lambda b: T, "TRIAGE_DUMP64", "needs"),
    ("file truncated", lambda b: b[: len(b) // 2 + 0x800], lambda b: T + 4, "TRIAGE_DUMP64.SizeOfDump",
     "truncated"),
    ("absurd driver count", lambda b: bytes(_put(bytearray(b), T + 0x34, 0xFFFFFFFF)), lambda b: T + 0x34,
     "TRIAGE_DUMP64.DriverCount", "absurd count 4294967295"),
    ("driver list past the end", lambda b: bytes(_put(bytearray(b), T + 0x30, len(b) - 0x20)),
     lambda b: T + 0x30, "TRIAGE_DUMP64.DriverListOffset", "DUMP_DRIVER_ENTRY records"),
    ("name outside the string pool", lambda b: bytes(_put(bytearray(b), _u32(b, T + 0x30), 0x10)),
     lambda b: _u32(b, T + 0x30), "DUMP_DRIVER_ENTRY[0].DriverNameOffset", "outside the string pool"),
    ("absurd name length", lambda b: bytes(_put(bytearray(b), _first_name(b), 0x7FFFFFFF)), _first_name,
     "DUMP_STRING[0].Length", "absurd length"),
    ("absurd block count", lambda b: bytes(_put(bytearray(b), T + 0x7C, 0x10000000)), lambda b: T + 0x7C,
     "TRIAGE_DUMP64.DataBlocksCount", "absurd count"),
    ("block data past the end", lambda b: bytes(_put(bytearray(b), _u32(b, T + 0x78) + 8, len(b) - 4)),
     lambda b: _u32(b, T + 0x78), "TRIAGE_DATA_BLOCK", "past the end of the file"),
    ("not finished (no TRIAGE_DUMP_VALID)", lambda b: b[:-4] + b"\0\0\0\0", lambda b: T + 8,
     "TRIAGE_DUMP64.ValidOffset", "TRIAGE_DUMP_VALID"),
]


@pytest.mark.parametrize("what, damage, offset, field, words", CASES, ids=[c[0] for c in CASES])
def test_damage_is_named(original: bytes, tmp_path: Path, what: str, damage: Callable[[bytes], bytes],
                         offset: Callable[[bytes], int], field: str, words: str) -> None:
    path = tmp_path / "bad.dmp"
    path.write_bytes(damage(original))
    with pytest.raises(FormatError) as ei:
        CrashDump(path)
    e = ei.value
    assert (e.path, e.offset, e.field) == (str(path), offset(original), field), str(e)
    assert words in str(e) and str(e).startswith(f"{path} at offset {offset(original):#x}: {field}: ")


def test_overlapping_blocks_keep_the_first(original: bytes, tmp_path: Path) -> None:
    """Two saved blocks over one address (as a data block inside the data page): the first wins."""
    b = bytearray(original)
    table = _u32(b, T + 0x78)
    first_va = struct.unpack_from("<Q", b, table)[0]
    struct.pack_into("<Q", b, table + 16, first_va + 8)  # block 1 now starts inside block 0
    path = tmp_path / "overlap.dmp"
    path.write_bytes(bytes(b))
    d = CrashDump(path)
    assert d.virtual is not None and d.virtual.read(first_va, 16) == original[_u32(b, table + 8):][:16]
