"""The MemoryView API over real in-process memory with holes: partial reads, typed reads, strings,
structures, Batcher and MemoryCursor."""

from __future__ import annotations

import ctypes
import io
import struct

import numpy as np
import pytest

from pymemflow.connectors.dummy import DummyMemory
from pymemflow.errors import PartialReadError, PartialWriteError
from pymemflow.mem.memmap import HOLE, MemoryMap

PAGE = 0x1000


@pytest.fixture
def mem():
    """Physical 0x0-0x2000 and 0x3000-0x4000 backed; 0x2000-0x3000 is a hole."""
    m = DummyMemory(0x3000, mem_map=MemoryMap([(0, 0x2000, 0), (0x3000, 0x1000, 0x2000)]))
    m.write(0, bytes(range(256)) * 32)
    m.write(0x3000, b"\xee" * PAGE)
    yield m
    m.close()


def test_partial_read_reports_failed_piece_and_keeps_bytes(mem):
    res = mem.read_batch([0x10, 0x1FF0, 0x2800, 0x3000], [4, 0x20, 8, 2])
    assert res.ok().tolist() == [True, False, False, True]
    assert [(f.index, f.address, f.length, f.reason) for f in res.failures] == [
        (1, 0x2000, 0x10, HOLE), (2, 0x2800, 8, HOLE)]
    assert res.piece(0) == bytes([0x10, 0x11, 0x12, 0x13])
    # the readable half of piece 1 is kept, the failed half is zero
    assert res.piece(1) == bytes(range(0xF0, 0x100)) + b"\0" * 0x10
    assert res.piece(2) == b"\0" * 8
    assert res.piece(3) == b"\xee\xee"


def test_read_raises_partial_read_error_with_content(mem):
    with pytest.raises(PartialReadError) as e:
        mem.read(0x1FFC, 8)
    assert e.value.data == bytes([0xFC, 0xFD, 0xFE, 0xFF, 0, 0, 0, 0])
    assert [(f.address, f.length) for f in e.value.failures] == [(0x2000, 4)]
    assert "0x2000" in str(e.value)


def test_zero_fill_only_when_asked(mem):
    assert mem.read(0x1FFE, 4, zero_fill=True) == b"\xfe\xff\0\0"
    buf = bytearray(b"\x55" * 6)
    mem.read_into(0x1FFD, buf, zero_fill=True)
    assert bytes(buf) == b"\xfd\xfe\xff\0\0\0"
    with pytest.raises(PartialReadError):
        mem.read_into(0x1FFD, bytearray(6))


def test_piece_crossing_hole_into_next_range(mem):
    data = mem.read(0x1FFF, 0x1002, zero_fill=True)
    assert data[0] == 0xFF and data[1:0x1001] == b"\0" * 0x1000 and data[0x1001] == 0xEE


def test_typed_reads(mem):
    mem.write(0x100, struct.pack("<QqIiHhBbfd", 2**64 - 2, -5, 0xDEADBEEF, -7, 0xBEEF, -2, 0xAB, -1, 1.5, -2.25))
    assert mem.read_u64(0x100) == 2**64 - 2
    assert mem.read_i64(0x108) == -5
    assert mem.read_u32(0x110) == 0xDEADBEEF and mem.read_i32(0x114) == -7
    assert mem.read_u16(0x118) == 0xBEEF and mem.read_i16(0x11A) == -2
    assert mem.read_u8(0x11C) == 0xAB and mem.read_i8(0x11D) == -1
    assert mem.read_f32(0x11E) == 1.5 and mem.read_f64(0x122) == -2.25
    assert mem.read_ptr(0x100) == 2**64 - 2
    mem.pointer_size = 4
    assert mem.read_ptr(0x100) == 0xFFFFFFFE
    mem.little_endian = False
    assert mem.read_u32(0x110) == 0xEFBEADDE
    assert mem.read_u16(0x118) == 0xEFBE
    with pytest.raises(PartialReadError):
        mem.read_u64(0x1FFC)


def test_read_array_and_u64_many(mem):
    arr = mem.read_array(0, np.uint16, 4)
    assert arr.tolist() == [0x0100, 0x0302, 0x0504, 0x0706]
    vals, ok = mem.read_u64_many([0, 0x1FFC, 0x3000])
    assert ok.tolist() == [True, False, True]
    assert int(vals[0]) == 0x0706050403020100 and int(vals[2]) == 0xEEEEEEEEEEEEEEEE


def test_strings_near_unreadable_memory(mem):
    mem.write(0x1FF0, b"0123456789abcdef")  # no NUL before the hole
    assert mem.read_cstr(0x1FF0) == "0123456789abcdef"
    mem.write(0x500, "grüße\0".encode())
    assert mem.read_cstr(0x500) == "grüße"
    assert mem.read_cstr(0x500, max_len=3) == "gr\ufffd"  # cut inside a UTF-8 sequence
    mem.write(0x600, "Wïn\0".encode("utf-16-le") + b"\0")
    assert mem.read_utf16(0x600) == "Wïn"
    mem.write(0x1FFA, "ab\0".encode("utf-16-le")[:6])
    assert mem.read_utf16(0x1FFA) == "ab"
    with pytest.raises(PartialReadError):
        mem.read_cstr(0x2100)


def test_read_struct(mem):
    class Hdr(ctypes.LittleEndianStructure):
        _pack_ = 1
        _fields_ = [("magic", ctypes.c_uint32), ("count", ctypes.c_uint16), ("flag", ctypes.c_uint8)]

    mem.write(0x700, struct.pack("<IHB", 0x464C457F, 3, 1))
    h = mem.read_struct(0x700, Hdr)
    assert (h.magic, h.count, h.flag) == (0x464C457F, 3, 1)
    with pytest.raises(PartialReadError):
        mem.read_struct(0x1FFE, Hdr)


def test_batcher(mem):
    b = mem.batcher()
    h1 = b.read(0x10, 4)
    h2 = b.read_u64(0x3000)
    h3 = b.read_u32(0x2004)
    h4 = b.read_ptr(0x0)
    assert len(b) == 4
    res = b.commit()
    assert len(res) == 4
    assert b[h1] == bytes([0x10, 0x11, 0x12, 0x13])
    assert b[h2] == 0xEEEEEEEEEEEEEEEE
    assert b[h4] == 0x0706050403020100
    assert b.ok(h1) and not b.ok(h3)
    with pytest.raises(PartialReadError) as e:
        b[h3]
    assert e.value.failures[0].address == 0x2004


def test_cursor_read_seek_write(mem):
    c = mem.cursor(0x1000)
    assert isinstance(c, io.RawIOBase) and c.readable() and c.seekable() and c.writable()
    assert c.read(4) == bytes([0, 1, 2, 3]) and c.tell() == 0x1004
    assert c.seek(4, io.SEEK_CUR) == 0x1008
    assert c.write(b"XYZ") == 3 and c.tell() == 0x100B
    c.seek(0x1008)
    assert c.read(3) == b"XYZ"
    assert mem.read(0x1008, 3) == b"XYZ"
    buf = bytearray(2)
    assert c.readinto(buf) == 2 and bytes(buf) == bytes([0x0B, 0x0C])
    br = io.BufferedReader(mem.cursor(0x20))
    assert br.read(3) == bytes([0x20, 0x21, 0x22])
    with pytest.raises(io.UnsupportedOperation):
        c.seek(0, io.SEEK_END)
    with pytest.raises(ValueError):
        c.seek(-1)
    c.seek(0x1FFE)
    assert c.read(4) == bytes([0xFE, 0xFF])  # a short read up to the hole
    with pytest.raises(PartialReadError):
        c.read(4)  # at the hole itself
    br = io.BufferedReader(mem.cursor(0x1FF0))  # read-ahead hits the hole: still works
    assert br.read(0x10) == bytes(range(0xF0, 0x100))


def test_write_into_hole_is_partial_write_error(mem):
    with pytest.raises(PartialWriteError) as e:
        mem.write(0x1FFE, b"abcd")
    assert [(f.address, f.length) for f in e.value.failures] == [(0x2000, 2)]
    assert mem.read(0x1FFE, 2) == b"ab"  # the mapped part was written
    fails = mem.write_batch([0x10, 0x2800], [b"Q", b"R"])
    assert [f.index for f in fails] == [1] and mem.read(0x10, 1) == b"Q"


def test_zero_length_pieces(mem):
    assert mem.read(0x2800, 0) == b""  # nothing to read, even in a hole
    assert mem.read_batch([], []).failures == []
    res = mem.read_batch([0x2800] * 20 + [0x10], [0] * 20 + [3])
    assert res.failures == [] and res.piece(20) == bytes([0x10, 0x11, 0x12])
    assert len(mem.read_batch([0x10] * 20, 0).data) == 0
    arr, fails = mem.read_gather([1, 2, 3], 0)
    assert arr.shape == (3, 0) and fails == []


def test_addresses_above_2_63_are_not_rounded():
    m = DummyMemory(0x1000, mem_map=MemoryMap([(0xFFFF_FFFF_FFFF_F000, 0x1000, 0)]))
    m.write(0xFFFF_FFFF_FFFF_FFF8, b"topbytes")
    res = m.read_batch([0x10, 0xFFFF_FFFF_FFFF_FFF8], 8)  # a Python list mixing small and huge
    assert res.piece(1) == b"topbytes" and [f.index for f in res.failures] == [0]
    with pytest.raises(ValueError):
        m.read_batch([-1], 1)
