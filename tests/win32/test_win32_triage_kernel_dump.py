"""Kernel memory dumps (DumpType 6, "SDMP" bitmap of the kernel's pages) of both synthetic machines:
the pages come from :func:`kernel_dump_ranges` (kernel half of the system address space + the root),
the file from pymemflow's crash-dump writer. ``-o win32`` must find Windows in it with the dump
header's hints and list the processes and kernel modules of the machine's ground truth, while user
memory (the PEBs) is absent and said so. volatility3 (2.28) reads only DumpType 1 and 5 crash dumps,
so it is not a check here (see docs/windows.md)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from win32_util import phys_of

from pymemflow.connectors.crashdump import CrashDump
from pymemflow.errors import PartialReadError
from pymemflow.os.win32.kernel import Win32Kernel
from pymemflow.os.win32.triage import kernel_dump_ranges
from pymemflow.writers.crashdump import write_crashdump


@pytest.fixture(scope="module")
def kdump(machine: tuple[Any, Win32Kernel], tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, list]:
    img, k = machine
    f = img.facts
    ranges = kernel_dump_ranges(k)
    hints = {"dtb": f["dtb"], "arch": f["arch"], "nt_build": f["build"],
             "PsActiveProcessHead": f["symbols"]["PsActiveProcessHead"],
             "PsLoadedModuleList": f["symbols"]["PsLoadedModuleList"]}
    out = tmp_path_factory.mktemp("kdump") / f"{f['profile']}.dmp"
    write_crashdump(phys_of(img), out, kind="kernel", is64=f["arch"] == "x64", hints=hints, ranges=ranges)
    return img, out, ranges


def test_kernel_dump_holds_only_kernel_pages(kdump: Any) -> None:
    img, out, ranges = kdump
    d = CrashDump(out)
    assert d.format_info["dump_type_name"] == "bitmap kernel" and d.format_info["summary_signature"] == "SDMP"
    held = sum(e - s for s, e in d.memory_map())
    assert held == sum(e - s for s, e in ranges) and held < img.facts["size"] // 50
    for s, e in ranges[:8]:  # the pages are the machine's
        assert d.read(s, min(e - s, 0x2000)) == img.read(s, min(e - s, 0x2000))


def test_win32_on_a_kernel_dump(kdump: Any) -> None:
    img, out, _ranges = kdump
    f = img.facts
    k = Win32Kernel.open(CrashDump(out), progress=False)
    assert k.facts.kernel_base == f["kernel_base"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        infos = k.process_info_list()
    assert [(i.pid, i.ppid, i.name, i.dtb) for i in infos] == \
        [(p["pid"], p["ppid"], p["image_file_name"][:15], p["dtb"]) for p in f["processes"]]
    assert any("PEB" in str(w.message) and "unreadable" in str(w.message) for w in caught)  # user memory: absent
    assert [(m.name, m.base, m.size) for m in k.kernel_modules()] == \
        [(m["name"], m["base"], m["size"]) for m in f["kernel_modules"]]
    p = next(p for p in f["processes"] if p["peb"])
    proc = k.process_from_info(next(i for i in infos if i.pid == p["pid"]))
    with pytest.raises(PartialReadError):
        proc.read(p["peb"], 8)
