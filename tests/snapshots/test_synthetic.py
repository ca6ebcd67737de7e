"""Every format on small synthetic files: detection, exact bytes, holes reported, metadata, hints,
and the bad-input cases (truncation, wrong magic, runs past the end, overlaps, absurd counts,
decompression bombs) -> FormatError naming file, offset and field."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest

import pymemflow.connectors.auto as auto
from pymemflow.connectors.crashdump import CrashDump
from pymemflow.connectors.formats import codecs
from pymemflow.connectors.kdump import KdumpCompressed
from pymemflow.errors import FormatError, PartialReadError

from .helpers import assert_same_pages
from .synth import FORMATS, HIGH, HIGH_AT, HINTS, LOW, expected, make

NAMES = {"elf32": "elf", "crash64": "crashdump", "crash64b": "crashdump", "crash32": "crashdump",
         "crash32b": "crashdump", "crash64k": "crashdump",
         "vmware-embedded": "vmware"}


def _need(fmt: str) -> None:
    for codec in ("lzo", "snappy"):
        if codec in fmt and not codecs.available(codec):
            pytest.skip(f"{codec} package not installed")
    if fmt == "avml" and not codecs.available("snappy"):
        pytest.skip("cramjam not installed")


@pytest.mark.parametrize("fmt", FORMATS)
def test_roundtrip(tmp_path, fmt):
    _need(fmt)
    path = make(fmt, tmp_path)
    name = NAMES.get(fmt, fmt.split("-")[0])
    assert auto.detect(path) == name
    with auto.open_dump(path) as mem:
        parts = expected()
        assert mem.memory_map() == [(0, LOW), (HIGH_AT, HIGH_AT + HIGH)]
        assert mem.metadata.real_size == LOW + HIGH and mem.metadata.max_address == HIGH_AT + HIGH
        assert_same_pages(mem, 0, parts[0])
        assert_same_pages(mem, HIGH_AT, parts[HIGH_AT])
        # a piece spanning the hole: both ends read, the hole is reported exactly
        data, fails = mem._read_single(LOW - 16, HIGH_AT - LOW + 32)
        assert data[:16] == parts[0][-16:].tobytes() and data[-16:] == parts[HIGH_AT][:16].tobytes()
        assert [(f.address, f.length) for f in fails] == [(LOW, HIGH_AT - LOW)]
        with pytest.raises(PartialReadError):
            mem.read(HIGH_AT + HIGH - 4, 8)
        info = mem.info()
        assert info["connector"] == name and info["format"] == name
        assert json.loads(json.dumps(info))["max_address"] == HIGH_AT + HIGH  # `info --json` can print it
        if name in ("elf", "kdump"):
            assert mem.hints["dtb"] == HINTS["dtb"]
            assert mem.hints["vmcoreinfo"].startswith("OSRELEASE=6.1.0-test")
            assert mem.hints["kaslr_offset"] == 0x1A000000
            assert mem.hints["vmcoreinfo_symbols"]["init_task"] == 0xFFFFFFFF82A15940


def test_triage_virtual_blocks(tmp_path):
    path = make("triage", tmp_path)
    with auto.open_dump(path) as mem:
        assert isinstance(mem, CrashDump) and mem.format_info["dump_type_name"] == "triage"
        assert mem.memory_map() == [] and mem.hints["dtb"] == 0x1AA000
        v = mem.virtual
        assert v is not None
        assert v.read(0xFFFFF80000001000, 0x100) == b"A" * 0x100
        assert v.read(0xFFFFF80000002FF0, 16) == b"B" * 16
        assert v.read(0xFFFFA00000010000 - 0x800, 4) == b"SSSS"  # the saved stack below TopOfStack
        with pytest.raises(PartialReadError):
            v.read(0xFFFFF80000001100, 1)
        assert v.ranges()[0] == (0xFFFFA00000010000 - 0x800, 0xFFFFA00000010000)


def _fmt_error(path, field_part: str | None = None) -> FormatError:
    with pytest.raises(FormatError) as ei:
        auto.open_dump(path).close()
    e = ei.value
    assert str(path) in str(e)
    if field_part:
        assert field_part in e.field, e
    return e


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_files(tmp_path, fmt):
    _need(fmt)
    path = make(fmt, tmp_path)
    if fmt == "vmware":  # the memory lives in the .vmem
        path = path.with_suffix(".vmem")
    full = path.read_bytes()
    for cut in (len(full) - 1, len(full) - 4096, len(full) // 2, 100, 20):
        path.write_bytes(full[:cut])
        e = _fmt_error(path)
        assert e.offset is None or e.offset >= 0


def test_unknown_and_wrong_magic(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"\x01\x02" * 5000)
    e = _fmt_error(p, "magic")
    for name in ("elf", "kdump", "crashdump", "lime", "avml", "vmware"):
        assert name in str(e)
    from pymemflow.connectors.elf import ElfCore
    from pymemflow.connectors.lime import LimeDump

    with pytest.raises(FormatError, match="e_ident"):
        ElfCore(p)
    with pytest.raises(FormatError, match="magic"):
        LimeDump(p)
    lime = make("lime", tmp_path)
    b = bytearray(lime.read_bytes())
    b[32 + LOW : 32 + LOW + 4] = b"XXXX"  # second header's magic
    lime.write_bytes(bytes(b))
    e = _fmt_error(lime, "magic")
    assert e.offset == 32 + LOW


def test_overlapping_and_past_end_runs(tmp_path):
    lime = make("lime", tmp_path)
    b = bytearray(lime.read_bytes())
    struct.pack_into("<QQ", b, 32 + LOW + 8, 0x8000, 0x8000 + HIGH - 1)  # second range inside the first
    lime.write_bytes(bytes(b))
    assert "overlaps" in str(_fmt_error(lime))
    dmp = make("crash64", tmp_path)
    b = bytearray(dmp.read_bytes())
    struct.pack_into("<QQ", b, 0x98 + 16, HIGH_AT // 4096, 1 << 40)  # run of 2^40 pages
    dmp.write_bytes(bytes(b))
    e = _fmt_error(dmp, "PHYSICAL_MEMORY_RUN")
    assert e.offset == 0x98 + 16 and "past the end" in str(e)
    struct.pack_into("<I", b, 0x88, 100000)  # absurd NumberOfRuns
    dmp.write_bytes(bytes(b))
    _fmt_error(dmp, "NumberOfRuns")


def test_absurd_counts(tmp_path):
    elf = make("elf", tmp_path)
    b = bytearray(elf.read_bytes())
    struct.pack_into("<H", b, 0x38, 0xFFFF)
    elf.write_bytes(bytes(b))
    e = _fmt_error(elf)
    assert "program headers" in e.field or "e_phnum" in e.field
    kd = make("kdump-zlib-plain", tmp_path)
    b = bytearray(kd.read_bytes())
    struct.pack_into("<I", b, 436, 0x7FFFFFFE)  # bitmap_blocks
    kd.write_bytes(bytes(b))
    _fmt_error(kd, "bitmap")
    vm = make("vmware", tmp_path).with_suffix(".vmss")
    b = bytearray(vm.read_bytes())
    struct.pack_into("<I", b, 8, 1 << 30)  # group count
    vm.write_bytes(bytes(b))
    _fmt_error(vm, "group_count")


def test_kdump_descriptor_past_end_and_decompression_bomb(tmp_path):
    kd = make("kdump-zlib-plain", tmp_path)
    full = bytearray(kd.read_bytes())
    with KdumpCompressed(kd) as mem:
        bitmap_blocks = struct.unpack_from("<I", full, 436)[0]
        desc_off = (2 + bitmap_blocks) * 4096  # header block, sub-header block, bitmaps
        first = mem.desc[0].copy()
    bad = bytearray(full)
    struct.pack_into("<q", bad, desc_off, len(full) + 10)
    kd.write_bytes(bytes(bad))
    e = _fmt_error(kd, "page descriptor 0")
    assert e.offset == desc_off
    # bomb: a page whose zlib stream inflates to 1 MiB (its compressed size is still < a page)
    bomb = zlib.compress(bytes(1 << 20), 9)
    assert len(bomb) < 4096
    bad = bytearray(full) + bomb
    struct.pack_into("<qII", bad, desc_off, len(full), len(bomb), 1)
    kd.write_bytes(bytes(bad))
    with KdumpCompressed(kd) as mem:
        with pytest.raises(FormatError) as ei:
            mem._chunk(0)
        assert ei.value.offset == len(full) and "pfn" in ei.value.field
        data, fails = mem._read_single(0, 4096)  # through the read contract: a reported failure
        assert data == bytes(4096) and fails and "zlib" in fails[0].reason
        assert int(first["size"]) > 0


def test_avml_frame_bomb_and_reserved_chunk(tmp_path):
    _need("avml")
    p = make("avml", tmp_path)
    b = bytearray(p.read_bytes())
    # the first data chunk follows the 32-byte header and the 10-byte stream identifier
    at = 32 + 10
    ctype, clen = b[at], int.from_bytes(b[at + 1 : at + 4], "little")
    assert ctype in (0, 1)
    if ctype == 0:
        b[at + 8 : at + 11] = bytes([0xFF, 0xFF, 0x7F])  # varint length: 2 MiB > 64 KiB
        p.write_bytes(bytes(b))
        e = _fmt_error(p, "snappy frame length")
        assert e.offset == at
    b[at] = 0x05  # reserved unskippable chunk type
    p.write_bytes(bytes(b))
    _fmt_error(p, "snappy frame type")
    assert clen > 4


def test_vmware_vmem_without_state_file(tmp_path):
    p = tmp_path / "lonely.vmem"
    p.write_bytes(bytes(8192))
    from pymemflow.connectors.vmware import VmwareSnapshot

    with pytest.raises(FormatError, match="vmss"):
        VmwareSnapshot(p)


def test_missing_codec_is_a_clear_error(tmp_path, monkeypatch):
    if not codecs.available("snappy"):
        pytest.skip("cramjam not installed")
    path = make("kdump-snappy-plain", tmp_path)
    monkeypatch.setattr(codecs, "_module", lambda codec: None)
    with KdumpCompressed(path) as mem:
        i = int(np.flatnonzero(mem.desc["flags"] == 4)[0])
        with pytest.raises(FormatError, match=r"cramjam \(pip install cramjam\)"):
            mem._chunk(i)


def test_all_ones_bitmaps_are_refused_before_allocating(tmp_path):
    kd = make("kdump-zlib-plain", tmp_path)
    b = bytearray(kd.read_bytes())
    bitmap_blocks = struct.unpack_from("<I", b, 436)[0]
    half = bitmap_blocks * 4096 // 2
    b2 = 2 * 4096 + half
    b[b2 : b2 + half] = b"\xff" * half
    struct.pack_into("<I", b, 440, half * 8)  # max_mapnr covering the whole bitmap
    struct.pack_into("<Q", b, 4096 + 96, half * 8)  # and max_mapnr_64 (header version 6)
    kd.write_bytes(bytes(b))
    e = _fmt_error(kd, "bitmap 2")
    assert e.offset == b2 and "page descriptors" in str(e)
    dmp = make("crash64b", tmp_path)
    b = bytearray(dmp.read_bytes())
    bits = struct.unpack_from("<Q", b, 0x2000 + 0x30)[0]
    b[0x2038 : 0x2038 + bits // 8] = b"\xff" * (bits // 8)
    struct.pack_into("<Q", b, 0x2028, 0)  # Pages unknown: only the file size bounds the count
    dmp.write_bytes(bytes(b))
    e = _fmt_error(dmp, "bitmap")
    assert e.offset == 0x2038 or "HeaderSize" in e.field or "past the end" in str(e)


def test_kdump_excluded_zero_pages(tmp_path):
    """makedumpfile's dump level 1 leaves zero pages out (valid in bitmap 1, absent from bitmap 2):
    they fail to read with a reason that says so, every other page reads exactly."""
    from pymemflow.writers.kdump import write_kdump

    from .synth import source

    src = source()
    path = write_kdump(src, tmp_path / "lvl1.kdump", "zlib", exclude_zero=True)
    with KdumpCompressed(path) as mem:
        assert mem.format_info["dump_level"] == 1
        for at, part in expected().items():
            pages = part.reshape(-1, 4096)
            zero = ~pages.any(axis=1)
            assert zero.any() and (~zero).any()
            addrs = at + 4096 * np.arange(pages.shape[0], dtype=np.uint64)
            got, fails = mem.read_gather(addrs, 4096)
            failed = {f.index for f in fails}
            assert failed == set(np.flatnonzero(zero).tolist())
            assert all("excluded" in f.reason for f in fails)
            assert (got[~zero] == pages[~zero]).all()
