"""The two offline offset sources each drive the whole layer: an ISF symbol folder (``symbols=DIR``)
and the built-in table; plus discovery without the x64 low stub (PML4 self-reference scan)."""

from __future__ import annotations

import mmap
import shutil
from pathlib import Path
from typing import Any

from win32_util import phys_of

from pymemflow.os.win32.kernel import Win32Kernel
from pymemflow.os.win32.plugin import PLUGIN

ISF = Path(__file__).resolve().parents[1] / "data" / "windows" / "isf"
GUID = "5278AFF86C341677D7D7835C85B7B844-1"


def summary(k: Win32Kernel) -> list[tuple[Any, ...]]:
    out = []
    for p in k.process_list():
        i = p.info
        mods = [(m.name, m.base, m.size) for m in p.module_list()]
        vads = [(r.start, r.end, r.protection, r.kind) for r in p.maps(vad=True)] if i.state == "alive" else []
        out.append((i.pid, i.ppid, i.name, i.path, i.command_line, i.dtb, i.wow64, tuple(mods), tuple(vads)))
    return out


def test_isf_folder_and_builtin_table_agree(win10_image: Any, tmp_path: Path) -> None:
    src = ISF / f"{GUID}.json.xz"
    d = tmp_path / "symbols" / "windows" / "ntkrnlmp.pdb"
    d.mkdir(parents=True)
    shutil.copy(src, d / src.name)
    table = Win32Kernel.open(phys_of(win10_image))
    isf = PLUGIN.factory({"symbols": str(tmp_path / "symbols")}, phys_of(win10_image))
    assert table.offsets.source == "table"
    assert isf.offsets.source.startswith("isf:")
    s = summary(isf)
    assert s == summary(table)
    assert len(s) == len(win10_image.facts["processes"])
    assert [m.base for m in isf.kernel_modules()] == [m["base"] for m in win10_image.facts["kernel_modules"]]


def test_x64_without_low_stub_uses_pml4_scan(win10_image: Any) -> None:
    mm = mmap.mmap(-1, win10_image.size)
    win10_image.fill(mm)
    stub = win10_image.facts["low_stub_pa"]
    mm[stub : stub + 0x100] = bytes(0x100)  # no processor start block: the PML4 scan must find a root
    k = Win32Kernel.open(phys_of(win10_image, mm), progress=False)
    assert "PML4 self-reference" in k.facts.how[0]
    assert k.facts.kernel_base == win10_image.facts["kernel_base"]
    assert [i.pid for i in k.process_info_list()] == [p["pid"] for p in win10_image.facts["processes"]]
