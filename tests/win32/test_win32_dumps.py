"""The layer on real dump formats of the synthetic machines: Windows crash dumps (full, 64-bit and
32-bit PAE) written by pymemflow's writer and read by its ``crashdump`` connector. The dump header's
facts (DTB, list heads, KdDebuggerDataBlock, build) become hints the layer uses instead of scanning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from win32_util import phys_of

from pymemflow.os.win32.kernel import Win32Kernel


@pytest.mark.parametrize("which", ["win10", "win7"])
def test_crash_dump_hints(which: str, win10_image: Any, win7_image: Any, tmp_path: Path) -> None:
    crashdump = pytest.importorskip("pymemflow.connectors.crashdump")
    writer = pytest.importorskip("pymemflow.writers.crashdump")
    img = win10_image if which == "win10" else win7_image
    f = img.facts
    hints = {"dtb": f["dtb"], "arch": f["arch"], "nt_build": f["build"],
             "PsActiveProcessHead": f["symbols"]["PsActiveProcessHead"],
             "PsLoadedModuleList": f["symbols"]["PsLoadedModuleList"],
             "KdDebuggerDataBlock": f["symbols"]["PsInitialSystemProcess"]}  # any address inside ntoskrnl
    out = tmp_path / f"{which}.dmp"
    writer.write_crashdump(phys_of(img), out, kind="full", is64=f["arch"] == "x64", hints=hints,
                           ranges=[tuple(r) for r in f["phys_runs"]])
    dump = crashdump.CrashDump(out)
    assert dump.hints["dtb"] == f["dtb"] and dump.hints["arch"] == f["arch"]
    k = Win32Kernel.open(dump, progress=False)
    assert "dtb hint" in k.facts.how[0]
    assert k.facts.kernel_base == f["kernel_base"]
    assert k.facts.ps_active_process_head == f["symbols"]["PsActiveProcessHead"]
    assert [(i.pid, i.name) for i in k.process_info_list()] == [(p["pid"], p["image_file_name"][:15])
                                                                for p in f["processes"]]
    assert [m.base for m in k.kernel_modules()] == [m["base"] for m in f["kernel_modules"]]
