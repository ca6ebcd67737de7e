"""Our LZO1X decoder against real LZO streams: liblzo2's lzo1x_1 and lzo1x_999 (tests/data/lzo, made by
scripts/gen_lzo_fixtures.py), Debian's lzop files, liblzo2 live through ctypes when installed, and lzokay;
and against hostile input (truncations, wrong sizes, random bytes): an LzoError, never a hang or overrun."""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymemflow.connectors.formats import codecs
from pymemflow.connectors.formats.lzo import LzoError, decompress
from pymemflow.errors import FormatError

DATA = Path(__file__).resolve().parents[1] / "data" / "lzo"
SAMPLES = sorted(p.stem for p in DATA.glob("*.bin"))
LZOP_MAGIC = b"\x89LZO\x00\r\n\x1a\n"


def test_fixtures_are_there() -> None:
    assert SAMPLES == ["far", "pagetable", "random", "text", "zero"]


@pytest.mark.parametrize("level", [1, 999])
@pytest.mark.parametrize("name", SAMPLES)
def test_liblzo2_streams(name: str, level: int) -> None:
    raw = (DATA / f"{name}.bin").read_bytes()
    stream = (DATA / f"{name}.lzo1x_{level}").read_bytes()
    assert decompress(stream, len(raw)) == raw
    out = codecs.decode("lzo", stream, len(raw), "x.kdump", 0x1000, "page")  # what the kdump connector calls
    assert out.tobytes() == raw


def lzop_blocks(path: Path) -> list[tuple[bytes, int, int]]:
    """The blocks of an lzop file: (LZO1X stream or stored bytes, uncompressed size, adler32 of it)."""
    b = path.read_bytes()
    assert b.startswith(LZOP_MAGIC)
    version = struct.unpack_from(">H", b, 9)[0]
    pos = 9 + 2 + 2 + (2 if version >= 0x0940 else 0)
    method = b[pos]
    assert method in (1, 2, 3)  # LZO1X-1, LZO1X-1(15), LZO1X-999
    pos += 1 + (1 if version >= 0x0940 else 0)
    flags = struct.unpack_from(">I", b, pos)[0]
    pos += 4 + (4 if flags & 0x800 else 0) + 4 + 4 + (4 if version >= 0x0940 else 0)
    pos += 1 + b[pos] + 4  # file name, header checksum
    if flags & 0x40:
        pos += 4 + struct.unpack_from(">I", b, pos)[0] + 4
    blocks = []
    while True:
        dst_len = struct.unpack_from(">I", b, pos)[0]
        pos += 4
        if dst_len == 0:
            return blocks
        src_len = struct.unpack_from(">I", b, pos)[0]
        pos += 4
        adler = struct.unpack_from(">I", b, pos)[0] if flags & 1 else -1
        pos += (4 if flags & 1 else 0) + (4 if flags & 0x100 else 0)
        if src_len < dst_len:
            pos += (4 if flags & 2 else 0) + (4 if flags & 0x200 else 0)
        blocks.append((b[pos:pos + src_len], dst_len, adler))
        pos += src_len


@pytest.mark.parametrize("level", ["-1", "-9"])
def test_lzop_files(level: str) -> None:
    raw = (DATA / "far.bin").read_bytes()
    out = b""
    for data, size, adler in lzop_blocks(DATA / f"far{level}.lzop"):
        block = data if len(data) == size else decompress(data, size)
        assert adler in (-1, zlib.adler32(block))
        out += block
    assert out == raw


def _liblzo2() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("lzo2")
    return ctypes.CDLL(name) if name else None


def _lzo2_compress(lib: ctypes.CDLL, data: bytes, level: int) -> bytes:
    dst = ctypes.create_string_buffer(len(data) + len(data) // 16 + 64 + 3)
    dst_len = ctypes.c_size_t(len(dst))
    fn = lib.lzo1x_999_compress if level == 999 else lib.lzo1x_1_compress
    work = ctypes.create_string_buffer(14 * 16384 * 8)
    assert fn(data, ctypes.c_size_t(len(data)), dst, ctypes.byref(dst_len), work) == 0
    return dst.raw[:dst_len.value]


_pages = st.lists(st.one_of(st.binary(min_size=1, max_size=300), st.sampled_from([b"\0" * 600, b"abcd" * 90])),
                  min_size=1, max_size=40).map(b"".join)
"""Mixes of fresh bytes and runs that repeat: literals, short and long matches, overlapping copies."""


@settings(max_examples=150, deadline=None)
@given(data=_pages, level=st.sampled_from([1, 999]))
def test_liblzo2_live(data: bytes, level: int) -> None:
    lib = _liblzo2()
    if lib is None:
        pytest.skip("liblzo2 is not installed (apt-get install liblzo2-2); the fixtures cover it")
    assert decompress(_lzo2_compress(lib, data, level), len(data)) == data


@settings(max_examples=150, deadline=None)
@given(data=_pages)
def test_lzokay_streams(data: bytes) -> None:
    lzokay = pytest.importorskip("lzokay")
    assert decompress(lzokay.compress(data), len(data)) == data


def test_truncated_and_wrong_size_streams_are_errors() -> None:
    for name in ("text", "pagetable", "far"):
        raw = (DATA / f"{name}.bin").read_bytes()
        stream = (DATA / f"{name}.lzo1x_999").read_bytes()
        for cut in range(0, len(stream), max(1, len(stream) // 200)):
            with pytest.raises(LzoError):
                decompress(stream[:cut], len(raw))
        with pytest.raises(LzoError, match="passes the expected size"):
            decompress(stream, len(raw) - 1)
        with pytest.raises(LzoError, match=f"decodes to {len(raw)} bytes, expected {len(raw) + 1}"):
            decompress(stream, len(raw) + 1)
        with pytest.raises(LzoError, match="1 bytes after the end-of-stream marker"):
            decompress(stream + b"\0", len(raw))
    with pytest.raises(LzoError, match="looks back"):
        decompress(bytes([0x11, 0x04, 0x00]), 4096)  # a far match before anything was written
    with pytest.raises(FormatError, match=r"x.kdump at offset 0x2000: page: corrupt lzo data: .*passes the expected"):
        codecs.decode("lzo", (DATA / "zero.lzo1x_1").read_bytes(), 100, "x.kdump", 0x2000, "page")


@settings(max_examples=400, deadline=None)
@given(junk=st.binary(min_size=0, max_size=200), size=st.integers(0, 8192))
def test_random_input_never_overruns(junk: bytes, size: int) -> None:
    try:
        out = decompress(junk, size)
    except LzoError:
        return
    assert len(out) == size


def test_lzo_reading_needs_no_package() -> None:
    assert codecs.available("lzo")
