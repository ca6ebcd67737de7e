"""raw (sparse file, memmap TOML, offset, read-only refusal, writable) and dummy connectors,
opened through their plugin factories as the chain code does; set_mem_map on the base class."""

from __future__ import annotations

import os

import numpy as np
import pytest

from pymemflow.connectors import dummy, raw
from pymemflow.errors import ArgumentError, FormatError, PartialReadError, PluginError, ReadOnlyError
from pymemflow.mem.memmap import MemoryMap
from pymemflow.mem.phys import PhysicalMemory, PhysicalMetadata

GIB = 1 << 30


def parse(spec, **given):
    """Apply a plugin's ArgSpecs the way the chain code does (parse text, defaults)."""
    out = {}
    for a in spec.args:
        out[a.name] = a.parse(given[a.name]) if a.name in given else a.default
    return out


@pytest.fixture
def sparse(tmp_path):
    """A 1 GiB sparse file with data at three places."""
    p = tmp_path / "mem.raw"
    with open(p, "wb") as f:
        f.truncate(GIB)
        for off in (0, 0x1234_5000, GIB - 0x1000):
            f.seek(off)
            f.write(off.to_bytes(8, "little") * 512)
    assert os.stat(p).st_blocks * 512 < 64 << 20  # really sparse
    return p


def test_raw_sparse_identity(sparse):
    with raw.PLUGIN.factory(parse(raw.PLUGIN, target=str(sparse)), None) as mem:
        assert mem.metadata.max_address == GIB and mem.metadata.readonly and not mem.writable
        assert mem.read_u64(0x1234_5008) == 0x1234_5000
        assert mem.read_u64(GIB - 8) == GIB - 0x1000
        assert mem.read(0x4000_0000 - 0x2000, 4) == b"\0" * 4  # a hole in the file reads as zeros
        res = mem.read_batch([0, GIB - 4, GIB], 8)
        assert [(f.index, f.address, f.length) for f in res.failures] == [(1, GIB, 4), (2, GIB, 8)]
        with pytest.raises(PartialReadError):
            mem.read_u64(GIB - 4)


def test_raw_with_memmap_toml_and_offset(sparse, tmp_path):
    # physical 0x100000.. -> file 0x12345000.. ; physical 0x80000000.. -> last page of the file
    mm = tmp_path / "map.toml"
    mm.write_text('[[range]]\nbase=0x100000\nlength=0x1000\nreal_base=0x12345000\n\n'
                  '[[range]]\nbase="0x80000000"\nlength=0x2000\nreal_base=0x3FFFF000\n')
    with raw.PLUGIN.factory(parse(raw.PLUGIN, target=str(sparse), memmap=str(mm)), None) as mem:
        assert mem.metadata.max_address == 0x80002000
        assert mem.metadata.real_size == 0x2000  # the second range is cut at the end of the file
        assert mem.read_u64(0x100000) == 0x1234_5000
        assert mem.read_u64(0x8000_0ff8) == GIB - 0x1000
        res = mem.read_batch([0x0, 0x100FFC, 0x8000_1000], 8)
        assert [(f.index, f.address, f.length) for f in res.failures] == [
            (0, 0, 8), (1, 0x101000, 4), (2, 0x8000_1000, 8)]
    with raw.PLUGIN.factory(parse(raw.PLUGIN, target=str(sparse), offset="0x12345000"), None) as mem:
        assert mem.read_u64(0) == 0x1234_5000 and mem.metadata.max_address == GIB - 0x1234_5000


def test_raw_bad_inputs(sparse, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[range]]\nbase=0\n")
    with pytest.raises(FormatError, match="length"):
        raw.PLUGIN.factory(parse(raw.PLUGIN, target=str(sparse), memmap=str(bad)), None)
    with pytest.raises(PluginError, match="cannot open"):
        raw.PLUGIN.factory(parse(raw.PLUGIN, target=str(tmp_path / "missing")), None)
    with pytest.raises(ArgumentError, match="offset"):
        raw.RawFileMemory(sparse, offset=2 * GIB)
    with pytest.raises(ArgumentError, match="target"):
        raw.PLUGIN.factory(parse(raw.PLUGIN), None)
    assert raw.PLUGIN.arg("target").required


def test_raw_read_only_refuses_writes(sparse):
    with raw.RawFileMemory(sparse) as mem:
        with pytest.raises(ReadOnlyError, match="writable=true"):
            mem.write(0, b"x")
        with pytest.raises(ReadOnlyError):
            mem.write_batch([0, 8], [b"a", b"b"])
        assert not mem.cursor().writable()
        with pytest.raises(ReadOnlyError):
            mem.cursor().write(b"x")


def test_raw_writable_writes_to_file(sparse):
    with raw.PLUGIN.factory(parse(raw.PLUGIN, target=str(sparse), writable="true"), None) as mem:
        assert mem.writable
        mem.write_u64(0x2000, 0xDEADBEEF)
        mem.write_batch([0x3000, 0x3008], [b"abc", b"def"])
        mem.flush()
    with open(sparse, "rb") as f:
        f.seek(0x2000)
        assert int.from_bytes(f.read(8), "little") == 0xDEADBEEF
        f.seek(0x3000)
        assert f.read(11) == b"abc\0\0\0\0\0def"


def test_raw_closed_and_empty(tmp_path):
    p = tmp_path / "empty.raw"
    p.write_bytes(b"")
    with raw.RawFileMemory(p) as mem:
        assert mem.metadata.max_address == 0
        assert mem.read_batch([0], 1).failures
    p.write_bytes(b"12345678")
    mem = raw.RawFileMemory(p)
    mem.close()
    mem.close()
    with pytest.raises(PluginError, match="closed"):
        mem.read(0, 1)


def test_dummy_plugin_writes_and_size():
    mem = dummy.PLUGIN.factory(parse(dummy.PLUGIN, size="1m"), None)
    assert mem.metadata.max_address == 1 << 20 and mem.writable
    mem.write(0xFFFF8, b"12345678")
    mem.write_u32(0x10, 7)
    assert mem.read(0xFFFF8, 8) == b"12345678" and mem.read_u32(0x10) == 7
    assert mem.read_batch([0xFFFFC], 8).failures[0].length == 4
    big = dummy.DummyMemory(4 * GIB)  # lazily allocated
    big.write_u64(4 * GIB - 8, 1)
    assert big.read_u64(4 * GIB - 8) == 1
    big.close()
    with pytest.raises(ValueError):
        dummy.DummyMemory(0)


def test_raw_set_mem_map_replaces(sparse):
    with raw.RawFileMemory(sparse) as mem:
        mem.set_mem_map(MemoryMap([(0x1000, 0x1000, 0x1234_5000)]))
        assert mem.read_u64(0x1000) == 0x1234_5000 and mem.metadata.max_address == 0x2000
        assert mem.read_batch([0], 8).failures
        mem.set_mem_map(None)
        assert mem.read_u64(0x1234_5000) == 0x1234_5000


class ListMemory(PhysicalMemory):
    """A connector that only implements _read_batch/_write_batch (no mem-map support of its own)."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.buf = bytearray(data)
        self.metadata = PhysicalMetadata(len(data), len(data), readonly=False)

    def _read_batch(self, addrs, lengths, out):
        fails = []
        o = 0
        for i, (a, n) in enumerate(zip(addrs.tolist(), lengths.tolist(), strict=True)):
            got = self.buf[a : a + n]
            out[o : o + len(got)] = np.frombuffer(bytes(got), np.uint8)
            if len(got) < n:
                from pymemflow.errors import ReadFailure

                out[o + len(got) : o + n] = 0
                fails.append(ReadFailure(i, a + len(got), n - len(got), "past end"))
            o += n
        return fails

    def _read_single(self, addr, n):
        # a connector's own fast path knows nothing of maps: set_mem_map must route around it
        return bytes(self.buf[addr : addr + n]).ljust(n, b"\0"), []

    def _write_batch(self, addrs, lengths, data):
        o = 0
        for a, n in zip(addrs.tolist(), lengths.tolist(), strict=True):
            self.buf[a : a + n] = data[o : o + n].tobytes()
            o += n
        return []


def test_base_set_mem_map_works_for_any_connector():
    mem = ListMemory(bytes(range(256)) * 2)
    mem.set_mem_map(MemoryMap([(0x1000, 0x100, 0x100), (0x2000, 0x200, 0x100)]))
    assert mem.metadata.max_address == 0x2200
    assert mem.read(0x1000, 2) == b"\0\1"
    with pytest.raises(PartialReadError):
        mem.read(0x0, 2)  # unmapped now, though the connector's own fast path would read it
    res = mem.read_batch([0x10FE, 0x21FE, 0x0], [4, 4, 1])
    # 0x10FE: 2 bytes then a hole; 0x21FE: real 0x2FE is past the connector's end (reported in
    # physical addresses), then the map ends
    assert [(f.index, f.address, f.length, f.reason) for f in res.failures] == [
        (0, 0x1100, 2, "not in memory map"), (1, 0x21FE, 2, "past end"),
        (1, 0x2200, 2, "not in memory map"), (2, 0, 1, "not in memory map")]
    assert res.piece(0) == b"\xfe\xff\0\0"
    mem.set_mem_map(MemoryMap([(0x1000, 0x400, 0x100)]))  # replaces: real 0x100..0x500 (buffer ends 0x200)
    res = mem.read_batch([0x10FC], 8)
    assert [(f.address, f.length, f.reason) for f in res.failures] == [(0x1100, 4, "past end")]
    assert res.piece(0)[:4] == bytes([0xFC, 0xFD, 0xFE, 0xFF])
    mem.write(0x1000, b"ZZ")
    assert bytes(mem.buf[0x100:0x102]) == b"ZZ"
    mem.set_mem_map(None)
    assert mem.read(0x100, 2) == b"ZZ"
    assert mem.metadata.max_address == 0x200 and mem.metadata.real_size == 0x200  # restored


def test_allocator_tuning_applied_on_glibc():
    import platform

    from pymemflow.mem.tuning import allocator_tuned

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("allocator tuning is glibc-only")
    assert allocator_tuned()


def test_raw_on_a_block_device(tmp_path):
    """A block device reports size 0 in stat; raw finds its end by seeking (loop device, root only)."""
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("losetup") is None:
        pytest.skip("needs root and losetup to make a loop device")
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(4 << 20)
        f.seek(0x2000)
        f.write(b"LOOPDATA")
    proc = subprocess.run(["losetup", "--find", "--show", "-r", str(img)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"losetup failed: {proc.stderr.strip()}")
    dev = proc.stdout.strip()
    try:
        with raw.RawFileMemory(dev) as mem:
            assert mem.metadata.max_address == 4 << 20
            assert mem.read(0x2000, 8) == b"LOOPDATA"
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)
