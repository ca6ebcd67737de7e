"""Triage dumps (DumpType 4) of the synthetic machines: written by pymemflow's crash-dump writer from
what the win32 layer reads of the machine, read back by the ``crashdump`` connector and ``-o win32``
(os/win32/triage.py), compared with the machine's ground truth (the builder's facts; PE headers
parsed here with struct from memory read through the page walker, not the OS layer)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from win32_util import phys_of

from pymemflow.arch import VirtualMemory
from pymemflow.connectors.crashdump import CrashDump
from pymemflow.errors import OsLayerError, PartialReadError
from pymemflow.os.win32.kernel import Win32Kernel
from pymemflow.os.win32.plugin import PLUGIN
from pymemflow.os.win32.triage import TriageDumpError, Win32Triage, triage_material
from pymemflow.writers.crashdump import write_triage

BUGCHECK = (0xD1, (0xFFFFF80012345678, 2, 0, 0xFFFFF80087654321))


def _victim(img: Any) -> dict[str, Any]:
    """The faulting process: the last one with a thread (not the first: the writer's default)."""
    return [p for p in img.facts["processes"] if p["threads"] and p["pid"] != 4][-1]


@pytest.fixture(scope="module")
def triage(machine: tuple[Any, Win32Kernel], tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Win32Kernel, Path]:
    img, k = machine
    out = tmp_path_factory.mktemp("triage") / f"{img.facts['profile']}.dmp"
    m = triage_material(k, pid=_victim(img)["pid"], bugcheck=BUGCHECK)
    write_triage(out, **m)
    return img, k, out


def _pe_timestamp(img: Any, base: int) -> int:
    """FileHeader.TimeDateStamp of the image at ``base``; 0 for a session driver (win32kbase.sys),
    whose header is not mapped in the system address space the writer reads."""
    f = img.facts
    vm = VirtualMemory(phys_of(img), f["arch"], f["dtb"])
    try:
        head = vm.read(base, 0x400)
    except PartialReadError:
        return 0
    assert head[:2] == b"MZ"
    (lfanew,) = struct.unpack_from("<I", head, 0x3C)
    assert head[lfanew : lfanew + 4] == b"PE\0\0"
    return int(struct.unpack_from("<I", head, lfanew + 8)[0])


def test_driver_list_is_the_machines_kernel_modules(triage: Any) -> None:
    img, _k, path = triage
    os_ = Win32Triage(CrashDump(path))
    got = [(m.name, m.base, m.size, m.timestamp) for m in os_.kernel_modules()]  # type: ignore[attr-defined]
    want = [(m["name"], m["base"], m["size"], _pe_timestamp(img, m["base"])) for m in img.facts["kernel_modules"]]
    assert got == want and len(got) >= 8
    assert os_.kernel_base == img.facts["kernel_base"] and os_.kernel_size == img.facts["kernel_size"]


def test_info_bugcheck_faulting_process_and_thread(triage: Any) -> None:
    img, _k, path = triage
    f = img.facts
    dump = CrashDump(path)
    assert dump.format_info["dump_type_name"] == "triage" and dump.memory_map() == []
    info = Win32Triage(dump).info()
    mask = (1 << 64) - 1 if f["arch"] == "x64" else 0xFFFFFFFF
    assert info["bugcheck_code"] == BUGCHECK[0]
    assert info["bugcheck_parameters"] == [p & mask for p in BUGCHECK[1]]
    v = _victim(img)
    assert info["process"]["pid"] == v["pid"] and info["process"]["ppid"] == v["ppid"]
    assert info["process"]["name"] == v["image_file_name"][:14]
    assert info["process"]["dtb"] == v["dtb"] and info["process"]["address"] == v["eprocess"]
    assert info["thread"] == {"pid": v["pid"], "tid": v["threads"][0]["tid"], "process_address": v["eprocess"]}
    assert (info["arch"], info["build"], info["dtb"]) == (f["arch"], f["build"], f["dtb"])
    assert info["guid_age"] == f["guid_age"]  # the kernel's CodeView record is among the saved blocks
    assert info["offsets"] == "table"  # so the offsets are the exact build's, not the nearest
    assert info["drivers"] == len(f["kernel_modules"]) and info["saved_blocks"] >= 3


def test_saved_blocks_read_as_the_machines_memory(triage: Any) -> None:
    img, k, path = triage
    os_ = Win32Triage(CrashDump(path))
    v = _victim(img)
    kern = os_.process("kernel")
    assert kern.read(img.facts["kernel_base"], 0x1000) == k.kmem.read(img.facts["kernel_base"], 0x1000)
    ep = os_.process(v["pid"])  # the faulting process by pid and by name: the same saved memory
    assert ep.info.name == v["image_file_name"][:14] and os_.process(v["image_file_name"][:14]).info.pid == v["pid"]
    assert ep.read(v["eprocess"], 0x100) == k.kmem.read(v["eprocess"], 0x100)
    tva = v["threads"][0]["ethread"]
    assert kern.read(tva, 0x80) == k.kmem.read(tva, 0x80)
    with pytest.raises(PartialReadError, match="not among the triage dump's"):
        kern.read(img.facts["kernel_base"] + 0x200000, 8)


def test_what_a_triage_dump_cannot_do_says_so(triage: Any) -> None:
    img, _k, path = triage
    os_ = Win32Triage(CrashDump(path))
    n = len(os_.triage.runs)
    head = f"this is a triage dump: it holds no physical memory, only {n} saved blocks; "
    for call, what in [(os_.process_info_list, "ps cannot work"),
                       (lambda: os_.process(4), "finding process 4 cannot work"),
                       (lambda: os_.process("explorer.exe"), "finding process 'explorer.exe' cannot work"),
                       (lambda: os_.process("kernel").maps(), "maps cannot work"),
                       (lambda: os_.process(_victim(img)["pid"]).module_list(), "the module list of process"),
                       (lambda: os_.process("kernel").exports("hal.dll"), "exports of hal.dll cannot work"),
                       (os_.psscan, "psscan cannot work"), (os_.threads, "threads cannot work")]:
        with pytest.raises(TriageDumpError) as ei:
            call()
        assert str(ei.value).startswith(head + what), str(ei.value)
    with pytest.raises(OsLayerError, match="this is a triage dump.*no Windows to discover"):
        Win32Kernel.open(CrashDump(path))  # the full layer, asked directly, says why too


def test_plugin_opens_the_triage_layer(triage: Any) -> None:
    _img, _k, path = triage
    layer = PLUGIN.factory({"symbols": None}, CrashDump(path))
    assert isinstance(layer, Win32Triage)


def _profiles() -> list[str]:
    from pymemflow.demo.profiles import PROFILES

    return list(PROFILES)


@pytest.mark.parametrize("profile", _profiles())
def test_every_synthetic_build(profile: str, tmp_path: Path) -> None:
    """Each synthetic build (Windows 7 to 11, x64, x86-PAE, x86): the triage dump's driver list,
    faulting process and thread are the machine's, with the offsets of the build the dump names."""
    from pymemflow.demo.machine import build_image

    img = build_image(profile, seed=0)
    k = Win32Kernel.open(phys_of(img), progress=False)
    v = _victim(img)
    out = write_triage(tmp_path / "t.dmp", **triage_material(k, pid=v["pid"], bugcheck=BUGCHECK))
    t = Win32Triage(CrashDump(out))
    assert [(m.name, m.base, m.size) for m in t.kernel_modules()] == \
        [(m["name"], m["base"], m["size"]) for m in img.facts["kernel_modules"]]
    info = t.info()
    assert (info["process"]["pid"], info["process"]["ppid"], info["process"]["name"]) == \
        (v["pid"], v["ppid"], v["image_file_name"][:14])
    assert (info["thread"]["pid"], info["thread"]["tid"]) == (v["pid"], v["threads"][0]["tid"])
    assert (info["build"], info["arch"], info["guid_age"]) == (img.facts["build"], img.facts["arch"],
                                                               img.facts["guid_age"])
