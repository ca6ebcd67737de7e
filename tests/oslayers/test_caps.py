"""Defect 9 (issue 12): sizes read from the target are capped by plausibility and by what the target
maps, with a CappedSizeWarning -- one corrupt SizeOfImage must not cost hundreds of megabytes."""

from __future__ import annotations

import struct
import tracemalloc
from typing import Any

import pytest
from os_util import image_bytes, phys_over

from pymemflow.errors import CappedSizeWarning
from pymemflow.os.caps import capped, mapped_extent
from pymemflow.os.win32.fields import user_layout
from pymemflow.os.win32.kernel import Win32Kernel


def test_capped_notes_every_cut() -> None:
    notes: list[str] = []
    assert capped(10, 100, "n", notes) == 10 and not notes
    assert capped(1 << 40, 100, "n", notes) == 100 and "capped at 0x64" in notes[0]
    assert capped(-3, 100, "n", notes) == 0 and "negative" in notes[1]


def _process_with_module(img: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A process and a DLL of it that has exports (KERNEL32)."""
    p = [p for p in img.facts["processes"] if p["modules"] and p["name"] != "System"][1]
    return p, [m for m in p["modules"] if m["name"].lower() == "kernel32.dll"][0]


def _peak_exports(k: Win32Kernel, pid: int, name: str) -> tuple[int, list[Any]]:
    proc = k.process(pid)
    mod = proc.module_by_name(name)
    tracemalloc.start()
    try:
        exports = proc.exports(mod)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, exports


@pytest.mark.parametrize("bad_size", [0xFFFFFFFF, 0x7FFFF000, 0x10000000])
def test_corrupt_loader_size_of_image_is_capped(win10_small: Any, bad_size: int) -> None:
    k = Win32Kernel.open(phys_over(win10_small, image_bytes(win10_small)), progress=False)
    p, m = _process_with_module(win10_small)
    good_peak, good = _peak_exports(k, p["pid"], m["name"])
    lay = user_layout(k.offsets)
    mm = image_bytes(win10_small)
    vm = k.process(p["pid"]).memory
    pa = vm.translate(m["ldr_entry"] + lay.entry_size)  # the entry lives in the process's PEB heap
    mm[pa: pa + 4] = struct.pack("<I", bad_size)
    bad = Win32Kernel.open(phys_over(win10_small, mm), dtb=k.facts.dtb, kernel_base=k.facts.kernel_base,
                           arch=k.facts.arch, progress=False)
    with pytest.warns(CappedSizeWarning, match="disagrees with the PE header"):
        peak, exports = _peak_exports(bad, p["pid"], m["name"])
    assert good and [e.name for e in exports] == [e.name for e in good]
    assert peak < max(4 * good_peak, 16 << 20), f"{peak >> 20} MiB for one corrupt field"


def test_corrupt_header_and_loader_sizes_cut_to_the_sections(win10_small: Any) -> None:
    """Both sizes lie (256 MiB): the read stops where the section table says the image ends."""
    k = Win32Kernel.open(phys_over(win10_small, image_bytes(win10_small)), progress=False)
    p, m = _process_with_module(win10_small)
    vm = k.process(p["pid"]).memory
    lfanew = vm.read_u32(m["base"] + 0x3C)
    lay = user_layout(k.offsets)
    mm = image_bytes(win10_small)
    mm_pa = vm.translate(m["ldr_entry"] + lay.entry_size)
    mm[mm_pa: mm_pa + 4] = struct.pack("<I", 0x10000000)
    hdr_pa = vm.translate(m["base"] + lfanew + 0x18 + 0x38)
    mm[hdr_pa: hdr_pa + 4] = struct.pack("<I", 0x10000000)
    bad = Win32Kernel.open(phys_over(win10_small, mm), dtb=k.facts.dtb, kernel_base=k.facts.kernel_base,
                           arch=k.facts.arch, progress=False)
    assert mapped_extent(bad.process(p["pid"]).memory, m["base"], 0x10000000) < 0x10000000
    with pytest.warns(CappedSizeWarning, match="sections end"):
        peak, _ = _peak_exports(bad, p["pid"], m["name"])
    assert peak < 16 << 20, f"{peak >> 20} MiB for one corrupt field"


def test_size_past_the_last_mapped_page_is_cut(win10_small: Any) -> None:
    """What the target maps bounds a read too: 64 MiB asked at a base with one mapped page."""
    from pymemflow.os.win32 import pe

    k = Win32Kernel.open(phys_over(win10_small, image_bytes(win10_small)), progress=False)
    p, m = _process_with_module(win10_small)
    vm = k.process(p["pid"]).memory
    regions = sorted(vm.page_map(), key=lambda r: r.start)
    ends = [r.end for r, nxt in zip(regions, regions[1:] + [None], strict=True)
            if (nxt is None or nxt.start - r.end >= 64 << 20) and r.end < 1 << 47]
    base = [e - 0x1000 for e in ends if vm.read(e - 0x1000, 2) != b"MZ"][0]  # no PE header to trust
    assert mapped_extent(vm, base, 64 << 20) == 0x1000
    notes: list[str] = []
    data, _ = pe.read_image(vm, base, 64 << 20, notes)
    assert len(data) == 0x1000 and any("bytes mapped" in n for n in notes)


def test_corrupt_unicode_string_length_is_capped(win10_small: Any) -> None:
    k = Win32Kernel.open(phys_over(win10_small, image_bytes(win10_small)), progress=False)
    p, m = _process_with_module(win10_small)
    lay = user_layout(k.offsets)
    vm = k.process(p["pid"]).memory
    mm = image_bytes(win10_small)
    pa = vm.translate(m["ldr_entry"] + lay.entry_full)
    mm[pa: pa + 2] = struct.pack("<H", 0xFFFF)
    bad = Win32Kernel.open(phys_over(win10_small, mm), dtb=k.facts.dtb, kernel_base=k.facts.kernel_base,
                           arch=k.facts.arch, progress=False)
    with pytest.warns(CappedSizeWarning, match="Length"):
        mods = bad.process(p["pid"]).module_list()
    assert [x.name for x in mods if x.base == m["base"]] == [m["name"]]
