"""Defect 1 (issue 12) and discovery at memory speed (issue 15): physical scans visit only the ranges a
connector has, skip zero-filled tails without reading them, warn about absurd declared sizes, and stop
when cancelled; a known page-table root (QMP, a dump's CPU notes) skips the scans."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from os_util import image_bytes, phys_over, run_cli

from pymemflow.connectors.elf import ElfCore
from pymemflow.connectors.raw import RawFileMemory
from pymemflow.errors import DeclaredSizeWarning
from pymemflow.mem.memmap import MemoryMap
from pymemflow.mem.phys import PhysRange
from pymemflow.mem.scan import CancelToken, ScanCancelled, scan_chunks
from pymemflow.os.linux import vmcoreinfo
from pymemflow.os.win32 import discovery, rootscan

GIB = 1 << 30


def _high_ram(tmp_path: Path, at: int, size: int = 16 << 20, fill: bytes | None = None) -> RawFileMemory:
    raw = tmp_path / "ram.raw"
    raw.write_bytes(fill if fill is not None else os.urandom(size))
    toml = tmp_path / "map.toml"
    toml.write_text(f'[[range]]\nbase = "{at:#x}"\nlength = "{size:#x}"\nreal_base = 0\n')
    return RawFileMemory(raw, mem_map=MemoryMap.load(toml))


def _elf_core(path: Path, memsz: int, filesz: int = 0x1000, paddr: int = 0, data: bytes | None = None) -> Path:
    """An ELF core with one PT_LOAD whose p_memsz may dwarf its p_filesz."""
    eh = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, b"\0" * 7, 4, 62, 1, 0, 64, 0, 0,
                     64, 56, 1, 0, 0, 0)
    ph = struct.pack("<IIQQQQQQ", 1, 7, 0x1000, 0, paddr, filesz, memsz, 0x1000)
    body = data if data is not None else os.urandom(filesz)
    path.write_bytes((eh + ph).ljust(0x1000, b"\0") + body)
    return path


def _scanned(phys: Any, limit: int) -> int:
    """Bytes the root scan reads (stops counting past ``limit``: the old code read every hole)."""
    total = 0
    for _base, data in rootscan.iter_chunks(phys, phys.metadata.max_address):
        total += data.size
        if total > limit:
            break
    return total


def test_high_ram_scan_reads_only_the_memory_map(tmp_path: Path) -> None:
    phys = _high_ram(tmp_path, 64 * GIB)
    assert phys.metadata.max_address == 64 * GIB + (16 << 20)
    assert phys.phys_ranges() == [PhysRange(64 * GIB, 64 * GIB + (16 << 20))]
    assert _scanned(phys, 64 << 20) == 16 << 20


def test_elf_zero_filled_tail_is_not_backed_and_not_read(tmp_path: Path) -> None:
    with pytest.warns(DeclaredSizeWarning, match="64.0 TiB"):  # said when the dump is opened
        core = ElfCore(_elf_core(tmp_path / "huge.elf", 64 << 40))
    ranges = core.phys_ranges()
    assert ranges == [PhysRange(0, 0x1000, True), PhysRange(0x1000, 64 << 40, False)]
    assert _scanned(core, 1 << 20) == 0x1000


def test_small_zero_tail_gives_no_warning(tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    core = ElfCore(_elf_core(tmp_path / "ok.elf", 0x3000))
    assert _scanned(core, 1 << 20) == 0x1000
    assert not [w for w in recwarn if issubclass(w.category, DeclaredSizeWarning)]


def test_sparse_raw_file_holes_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "sparse.raw"
    with open(path, "wb") as f:
        f.truncate(1 * GIB)
        f.seek(512 << 20)
        f.write(os.urandom(1 << 20))
    phys = RawFileMemory(path)
    backed = [r for r in phys.phys_ranges() if r.backed]
    if sum(r.length for r in backed) >= GIB:
        pytest.skip("this file system does not report holes (SEEK_DATA)")
    assert any(r.start <= 512 << 20 < r.end for r in backed)
    assert sum(r.length for r in backed) < 64 << 20
    assert _scanned(phys, 128 << 20) < 64 << 20


def test_vmcoreinfo_found_high_and_across_chunk_boundary(tmp_path: Path) -> None:
    text = b"OSRELEASE=6.1.0-test\nPAGESIZE=4096\nSYMBOL(swapper_pg_dir)=ffffffff82a0c000\n"
    buf = bytearray(4 << 20)
    at = (1 << 20) - 5  # straddles the 1 MiB chunk boundary used below
    buf[at: at + len(text)] = text
    phys = _high_ram(tmp_path, 256 * GIB, len(buf), bytes(buf))
    found = list(vmcoreinfo.scan(phys, chunk=1 << 20))
    assert [f.location for f in found] == [256 * GIB + at]
    assert found[0].osrelease == "6.1.0-test"


def test_cancel_token_stops_a_scan(tmp_path: Path) -> None:
    phys = _high_ram(tmp_path, 0, 64 << 20, bytes(64 << 20))
    token = CancelToken()
    seen = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done >= 16 << 20:
            token.cancel()

    with pytest.raises(ScanCancelled):
        rootscan.scan_x64_pml4(phys, phys.metadata.max_address, progress, cancel=token)
    assert seen[-1] == 16 << 20  # stopped at the next chunk, not at the end


def test_scan_chunks_are_views_of_the_mapping(tmp_path: Path) -> None:
    phys = _high_ram(tmp_path, 8 * GIB, 4 << 20)
    chunks = list(scan_chunks(phys, chunk=1 << 20))
    assert [c.base for c in chunks] == [8 * GIB + (i << 20) for i in range(4)]
    assert all(c.buffer is phys._mm for c in chunks)  # no copy: mmap.find / np.frombuffer in place


@pytest.mark.parametrize("layer", ["win32", "linux"])
@pytest.mark.parametrize("target", ["high", "elf"])
def test_cli_ps_on_huge_sparse_targets_finishes_with_a_clear_error(tmp_path: Path, layer: str, target: str) -> None:
    if target == "high":
        _high_ram(tmp_path, 256 * GIB)
        chain = f"raw:{tmp_path / 'ram.raw'},memmap={tmp_path / 'map.toml'}"
    else:
        chain = f"elf:{_elf_core(tmp_path / 'huge.elf', 64 << 40, filesz=0x1000)}"
    t0 = time.monotonic()
    r = run_cli("-c", chain, "-o", layer, "ps", timeout=90)
    assert time.monotonic() - t0 < 90
    assert r.returncode == 1, r.stderr
    assert "internal error" not in r.stderr
    assert ("page-table root" if layer == "win32" else "no VMCOREINFO") in r.stderr
    assert "16.0 MiB stored" in r.stderr or "4.0 KiB stored" in r.stderr
    if target == "elf":
        assert "warning: " in r.stderr and "declares 64.0 TiB" in r.stderr


def test_dtb_hint_skips_the_root_scans(win10_small: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CR3 from QMP or a dump's CPU notes (the connector's ``dtb`` hint) is used before any scan."""
    def no_scan(*_a: Any, **_k: Any) -> None:
        raise AssertionError("scanned although the connector knew the page-table root")

    for name in ("scan_x64_pml4", "scan_x86pae", "scan_x86", "find_low_stub"):
        monkeypatch.setattr(rootscan, name, no_scan)
    phys = phys_over(win10_small, image_bytes(win10_small))
    phys.hints["dtb"] = win10_small.facts["dtb"]
    facts = discovery.discover(phys, progress=False)
    assert facts.dtb == win10_small.facts["dtb"] and "dtb hint" in facts.how[0]


def test_os_layers_take_a_cancel_token(tmp_path: Path) -> None:
    """A cancelled token stops discovery in both layers with ScanCancelled (a PymemflowError)."""
    from pymemflow.os.linux.layer import LinuxOs
    from pymemflow.os.win32.kernel import Win32Kernel

    phys = _high_ram(tmp_path, 4 * GIB)
    token = CancelToken()
    token.cancel()
    with pytest.raises(ScanCancelled):
        LinuxOs(phys, cancel=token)
    with pytest.raises(ScanCancelled):
        Win32Kernel.open(phys, cancel=token)


def test_ctrl_c_in_a_scan_propagates_cleanly(tmp_path: Path) -> None:
    """KeyboardInterrupt (Ctrl-C) raised while scanning leaves the scan at once (the CLI exits 130)."""
    phys = _high_ram(tmp_path, 0, 64 << 20, bytes(64 << 20))
    calls = []

    def progress(done: int, total: int) -> None:
        calls.append(done)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        list(vmcoreinfo.scan(phys, progress=progress))
    assert len(calls) == 1
