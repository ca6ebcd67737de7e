"""``kcore`` connector: /proc/kcore when this host has a readable one; the same ELF-core reading on a
real QEMU ``dump-guest-memory`` core; and a kcore-shaped ELF for what only /proc/kcore has
(segments without a physical address, kernel text aliasing the direct map)."""

from __future__ import annotations

import os
import struct

import pytest

from pymemflow.connectors.kcore import PLUGIN, KcoreConnector
from pymemflow.errors import FormatError, PluginError


def _kcore_reason() -> str | None:
    if not os.path.exists("/proc/kcore"):
        return "/proc/kcore does not exist on this host (kernel built without CONFIG_PROC_KCORE)"
    try:
        with open("/proc/kcore", "rb") as f:
            f.read(64)
    except OSError as e:
        return f"/proc/kcore is not readable here: {e}"
    return None


def test_proc_kcore_matches_iomem():
    reason = _kcore_reason()
    if reason:
        with pytest.raises(PluginError, match="kcore"):
            KcoreConnector("/proc/kcore")
        pytest.skip(reason)
    with KcoreConnector() as k:
        ram = []
        with open("/proc/iomem") as f:
            for line in f:
                if line.strip().endswith("System RAM") and not line.startswith(" "):
                    a, b = line.split(":")[0].strip().split("-")
                    ram.append((int(a, 16), int(b, 16) + 1))
        # every direct-map segment lies inside System RAM (iomem addresses are 0 without root)
        if ram and ram[-1][1] > 1:
            for r in k.map.ranges:
                assert any(a <= r.base and r.base + r.size <= b for a, b in ram), hex(r.base)
        assert k.metadata.real_size > 0
        res = k.read_batch([r.base for r in k.map.ranges[:4]], 8)
        assert not res.failures


def test_qemu_elf_core(guest_x64, tmp_path):
    core = guest_x64.dump(tmp_path / "g.core", "elf")
    marker = guest_x64.info["MARKER"].encode()
    with PLUGIN.factory({"target": str(core)}, None) as k:
        assert k.hints["arch"] == "x64"
        assert k.metadata.real_size >= 512 << 20
        assert k.read(int(guest_x64.info["MARKER_PA0"], 16), len(marker)) == marker
        res = k.read_batch([(512 << 20) - 4, 0x3F000000], [8, 8])
        assert sorted((f.index, f.length) for f in res.failures) == [(0, 4), (1, 8)]


def _kcore_like(path, segments, vmcoreinfo: bytes = b"") -> None:
    """ELF64 core: PT_NOTE (VMCOREINFO) + PT_LOAD (vaddr, paddr, data) segments, like /proc/kcore."""
    phnum = 1 + len(segments)
    note = b""
    if vmcoreinfo:
        name = b"VMCOREINFO\0"
        note = struct.pack("<III", len(name), len(vmcoreinfo), 0) + name.ljust(12, b"\0") + vmcoreinfo.ljust(
            (len(vmcoreinfo) + 3) & ~3, b"\0")
    off = 64 + 56 * phnum
    ph = struct.pack("<IIQQQQQQ", 4, 0, off, 0, 0, len(note), 0, 0)
    body = note
    pos = off + len(note)
    for vaddr, paddr, data in segments:
        ph += struct.pack("<IIQQQQQQ", 1, 7, pos, vaddr, paddr, len(data), len(data), 4096)
        body += data
        pos += len(data)
    hdr = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, 64, 0, 0, 64, 56, phnum,
                                                               0, 0, 0)
    path.write_bytes(hdr + ph + body)


def test_kcore_shaped_segments(tmp_path):
    ram0 = bytes(range(256)) * 16
    ram1 = b"\xab" * 8192
    text = b"T" * 4096  # kernel text: aliases the first page of ram1 (p_paddr inside it)
    vmalloc = b"V" * 4096  # no physical address (-1)
    p = tmp_path / "kcore"
    _kcore_like(p, [
        (0xFFFF888000000000, 0x0, ram0),
        (0xFFFFFFFF81000000, 0x100000, text),
        (0xFFFF888000100000, 0x100000, ram1),
        (0xFFFFC90000000000, (1 << 64) - 1, vmalloc),
    ], vmcoreinfo=b"OSRELEASE=6.1.0\nPAGESIZE=4096\n")
    with KcoreConnector(str(p)) as k:
        assert [(r.base, r.size) for r in k.map.ranges] == [(0, 4096), (0x100000, 8192)]
        assert k.read(0x10, 4) == bytes([16, 17, 18, 19])
        assert k.read(0x100000, 4) == b"\xab" * 4  # the direct map wins over the text alias
        assert k.hints["vmcoreinfo"].startswith("OSRELEASE=6.1.0")
        res = k.read_batch([0x2000], [8])
        assert res.failures[0].reason.startswith("no guest RAM")


def test_kcore_bad_files(tmp_path):
    p = tmp_path / "nophys"
    _kcore_like(p, [(0xFFFFC90000000000, (1 << 64) - 1, b"x" * 4096)])
    with pytest.raises(FormatError, match="p_paddr"):
        KcoreConnector(str(p))
    with pytest.raises(PluginError, match="does not exist"):
        KcoreConnector(str(tmp_path / "missing"))
