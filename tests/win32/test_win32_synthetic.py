"""The win32 layer on F1's synthetic Windows machines (x64 Windows 10 19041, x86-PAE Windows 7 7601),
checked field by field against each image's ground-truth ``facts``."""

from __future__ import annotations

import mmap
import struct
from typing import Any

import pefile
import pytest
from win32_util import phys_of

from pymemflow.errors import NotFoundError, OsLayerError, PartialReadError
from pymemflow.os.win32.kernel import Win32Kernel
from pymemflow.os.win32.plugin import PLUGIN

VAD_PROT = ["---", "r--", "--x", "r-x", "rw-", "rc-", "rwx", "rcx"]


def by_pid(img: Any) -> dict[int, dict[str, Any]]:
    return {p["pid"]: p for p in img.facts["processes"]}


def test_discovery_from_bare_memory(machine: tuple[Any, Win32Kernel]) -> None:
    img, k = machine
    f = img.facts
    assert k.facts.arch == f["arch"]
    assert k.facts.kernel_base == f["kernel_base"]
    assert k.facts.kernel_size == f["kernel_size"]
    assert k.facts.build == f["build"]
    assert k.facts.guid_age == f["guid_age"]
    assert k.facts.version == f["version"]  # memory gives major.minor.build, the exact PDB the revision
    assert k.facts.ps_active_process_head == f["symbols"]["PsActiveProcessHead"]
    assert k.facts.ps_loaded_module_list == f["symbols"]["PsLoadedModuleList"]
    system = [p for p in f["processes"] if p["pid"] == 4][0]
    assert k.facts.system_eprocess == system["eprocess"]
    assert k.offsets.source == "table"


def test_discovery_uses_hints_and_args(machine: tuple[Any, Win32Kernel]) -> None:
    img, k = machine
    f = img.facts
    phys = phys_of(img)
    phys.hints.update({"dtb": f["dtb"], "kernel_base": f["kernel_base"], "arch": f["arch"]})
    k2 = Win32Kernel.open(phys)
    assert "dtb hint" in k2.facts.how[0]
    assert [i.pid for i in k2.process_info_list()] == [i.pid for i in k.process_info_list()]
    # args: dtb and an address inside the kernel (the entry point), base searched below it
    k3 = PLUGIN.factory({"dtb": f["dtb"], "arch": f["arch"], "kernel_hint": f["symbols"]["KiSystemStartup"]},
                        phys_of(img))
    assert k3.facts.kernel_base == f["kernel_base"]


def test_process_list_matches_facts(machine: tuple[Any, Win32Kernel]) -> None:
    img, k = machine
    infos = k.process_info_list()
    want = img.facts["processes"]
    assert [i.pid for i in infos] == [p["pid"] for p in want]
    for i, p in zip(infos, want, strict=True):
        assert i.ppid == p["ppid"]
        assert i.name == p["image_file_name"][:15]
        assert i.address == p["eprocess"]
        assert i.dtb == p["dtb"]
        assert i.user_dtb == p["user_dtb"]
        assert i.wow64 == p["wow64"]
        assert i.create_time == p["create_time"]
        assert i.extra["nt_path"] == (p["nt_path"] or "")
        assert (i.state == "alive") == p["alive"]
        if p["alive"]:
            assert i.exit_code is None
            if p["peb"]:
                assert i.path == p["path"]
                assert i.command_line == p["command_line"]
        else:
            assert i.exit_code == p["exit_status"]
    assert not k.warnings


def test_process_lookup(machine: tuple[Any, Win32Kernel]) -> None:
    img, k = machine
    p = k.process("EXPLORER.EXE")
    assert p.info.pid == [x["pid"] for x in img.facts["processes"] if x["name"] == "explorer.exe"][0]
    assert k.process(str(p.info.pid)).info.address == p.info.address
    assert k.process_by_pid(4).info.name == "System"
    with pytest.raises(NotFoundError):
        k.process("nosuch.exe")


def test_modules_match_facts(machine: tuple[Any, Win32Kernel]) -> None:
    img, k = machine
    facts = by_pid(img)
    n = 0
    for proc in k.process_list():
        p = facts[proc.info.pid]
        got = [(m.name, m.path, m.base, m.size, m.arch) for m in proc.module_list()]
        want = [(m["name"], m["path"], m["base"], m["size"], m["arch"]) for m in p["modules"]]
        want += [(m["name"], m["path"], m["base"], m["size"], "x86") for m in p["modules32"]]
        assert got == want, proc.info.name
        n += len(got)
    assert n > 20


def test_wow64_process_has_both_loader_lists(win10_image: Any) -> None:
    k = Win32Kernel.open(phys_of(win10_image))
    wow = [p for p in win10_image.facts["processes"] if p["wow64"]]
    assert len(wow) == 1
    proc = k.process(wow[0]["pid"])
    assert proc.info.wow64 and proc.info.arch == "x86"
    mods = proc.module_list()
    n32 = len(wow[0]["modules32"])
    x86 = mods[-n32:]
    assert [m.base for m in x86] == [m["base"] for m in wow[0]["modules32"]]
    assert all(m.arch == "x86" and m.base < 1 << 32 for m in x86)
    native = mods[:-n32]
    assert any(m.name.lower() == "wow64.dll" and m.arch == "x64" for m in native)
    assert native[0].arch == "x86"  # the 32-bit exe, as its PE header says


def test_kernel_modules_match_facts(machine: tuple[Any, Win32Kernel]) -> None:
    img, k = machine
    got = [(m.name, m.path, m.base, m.size) for m in k.kernel_modules()]
    assert got == [(m["name"], m["path"], m["base"], m["size"]) for m in img.facts["kernel_modules"]]
    assert got[0][0].lower() == "ntoskrnl.exe"
    kp = k.kernel_process()
    assert kp.info.name == "kernel" and [m.base for m in kp.module_list()] == [g[2] for g in got]


def test_exports_imports_sections(machine: tuple[Any, Win32Kernel]) -> None:
    img, k = machine
    kp = k.kernel_process()
    nt = kp.module_list()[0]
    exports = {e.name: e.address for e in kp.exports(nt)}
    for name in ("PsInitialSystemProcess", "NtBuildNumber"):
        assert exports[name] == img.facts["symbols"][name]
    proc = k.process("notepad.exe")
    mods = proc.module_list()
    k32 = [m for m in mods if m.name.lower() == "kernel32.dll"][0]
    ex = proc.exports(k32)
    assert ex and all(k32.base <= e.address < k32.base + k32.size for e in ex if not e.forwarder)
    exe = mods[0]
    imps = proc.imports(exe)
    assert imps and {i.module.lower() for i in imps} & {"kernel32.dll"}
    secs = proc.sections(exe)
    assert secs and secs[0].address > exe.base


def test_dump_module_is_a_loadable_pe(machine: tuple[Any, Win32Kernel]) -> None:
    _, k = machine
    proc = k.process("explorer.exe")
    mod = proc.module_list()[1]
    data = k.dump_module(proc, mod)
    pe = pefile.PE(data=data)
    assert pe.OPTIONAL_HEADER.ImageBase == mod.base
    assert pe.OPTIONAL_HEADER.SizeOfImage == mod.size
    names = {s.name.decode() for s in pe.DIRECTORY_ENTRY_EXPORT.symbols if s.name}
    assert names == {e.name for e in proc.exports(mod) if not e.name.startswith("#")}


def test_vad_tree_matches_facts(machine: tuple[Any, Win32Kernel]) -> None:
    img, k = machine
    facts = by_pid(img)
    checked = 0
    for proc in k.process_list():
        p = facts[proc.info.pid]
        if not p["vads"] or proc.info.state != "alive":
            continue
        got = [(r.start, r.end, r.protection, r.kind, r.path) for r in proc.maps(vad=True)]
        want = sorted(
            (v["start"], v["end"] + 1, VAD_PROT[v["protection"]],
             "private" if v["private"] else ("image" if v["type"] == 2 else "mapped"),
             (v["file"][2:] if v["file"] and v["file"][1:2] == ":" else v["file"]) or "")
            for v in p["vads"])
        assert got == want, proc.info.name
        checked += 1
    assert checked >= 5


def test_transition_pte_reads_as_present(machine: tuple[Any, Win32Kernel]) -> None:
    img, k = machine
    tps = img.facts["transition_pages"]
    assert tps
    for t in tps:
        proc = k.process(t["pid"])
        assert proc.memory.read(t["va"], len(t["marker"])) == t["marker"].encode()
        regions = [r for r in proc.maps() if r.start <= t["va"] < r.end]
        assert regions and regions[0].kind.endswith("transition")
    off = Win32Kernel(k.phys, k.facts, transition=False)
    with pytest.raises(PartialReadError):
        off.process(tps[0]["pid"]).memory.read(tps[0]["va"], 8)


def test_pagefile_pte_reported(machine: tuple[Any, Win32Kernel]) -> None:
    img, k = machine
    pps = img.facts["pagefile_pages"]
    assert pps
    for pf in pps:
        proc = k.process(pf["pid"])
        with pytest.raises(PartialReadError):
            proc.memory.read(pf["va"], 8)
        hits = [r for r in proc.maps() if r.kind == "pagefile" and r.start == pf["va"]]
        assert len(hits) == 1
        assert hits[0].path == f"pagefile{pf['pagefile']}:{pf['page_offset'] << 12:#x}"


def test_keyboard_win10(win10_image: Any) -> None:
    k = Win32Kernel.open(phys_of(win10_image))
    kb = k.keyboard()
    want = win10_image.facts["keyboard"]
    assert kb.address == want["address"]
    assert kb.down_keys() == want["pressed"]
    assert kb.is_down(want["pressed"][0]) and not kb.is_down(0x01)


def test_set_dtb_override(win10_image: Any) -> None:
    k = Win32Kernel.open(phys_of(win10_image))
    p = k.process("notepad.exe")
    peb = p.info.extra["peb"]
    assert p.memory.read(peb, 8)
    other = k.process("System")
    p.set_dtb(other.info.dtb)  # the System address space has no user-mode PEB there
    with pytest.raises(PartialReadError):
        p.memory.read(peb, 8)


def _corrupted(img: Any, k: Win32Kernel, edits: list[tuple[int, bytes]]) -> Win32Kernel:
    mm = mmap.mmap(-1, img.size)
    img.fill(mm)
    for va, data in edits:
        pa = k.kmem.translate(va)
        mm[pa : pa + len(data)] = data
    return Win32Kernel.open(phys_of(img, mm), dtb=k.facts.dtb, kernel_base=k.facts.kernel_base,
                            arch=k.facts.arch)


def test_corrupted_process_list_loop_and_dangling(machine: tuple[Any, Win32Kernel]) -> None:
    img, k = machine
    infos = k.process_info_list()
    apl = k.eproc.links
    ptr = k.eproc.ptr
    fmt = "<Q" if ptr == 8 else "<I"
    # loop: the 6th process's Flink points back at the 3rd
    bad = _corrupted(img, k, [(infos[5].address + apl, struct.pack(fmt, infos[2].address + apl))])
    got = bad.process_info_list()
    assert [i.pid for i in got] == [i.pid for i in infos[:6]]
    assert any("loop" in w for w in bad.warnings)
    # dangling: Flink into unmapped kernel space
    dangling = 0xFFFFF6FB00000000 if ptr == 8 else 0xFEC00000
    bad = _corrupted(img, k, [(infos[3].address + apl, struct.pack(fmt, dangling))])
    got = bad.process_info_list()
    assert [i.pid for i in got] == [i.pid for i in infos[:4]]
    assert any("dangling" in w or "unreadable" in w for w in bad.warnings)


def test_corrupted_module_list(machine: tuple[Any, Win32Kernel]) -> None:
    img, k = machine
    mods = k.kernel_modules()
    fmt = "<Q" if k.eproc.ptr == 8 else "<I"
    entries = [m["ldr_entry"] for m in img.facts["kernel_modules"]]
    bad = _corrupted(img, k, [(entries[3], struct.pack(fmt, entries[1]))])
    got = bad.kernel_modules()
    assert [m.base for m in got] == [m.base for m in mods[:4]]
    assert any("loop" in w for w in bad.warnings)


def test_no_windows_says_what_was_tried() -> None:
    from pymemflow.mem.buffer import MmapMemory
    from pymemflow.mem.memmap import MemoryMap

    mm = mmap.mmap(-1, 8 << 20)
    mm[0x5000:0x5010] = b"not windows here"
    with pytest.raises(OsLayerError) as e:
        Win32Kernel.open(MmapMemory(mm, MemoryMap.identity(8 << 20), writable=False), progress=False)
    msg = str(e.value)
    assert "step 1" in msg and "low stub" in msg and "PAE" in msg and "x86 page-directory" in msg


def test_plugin_spec() -> None:
    assert PLUGIN.kind == "os" and PLUGIN.name == "win32" and PLUGIN.requires_input
    with pytest.raises(Exception, match="needs a connector"):
        PLUGIN.factory({}, None)


def test_memory_runs_pushed_to_connector(win10_image: Any) -> None:
    phys = phys_of(win10_image)
    k = Win32Kernel.open(phys)
    assert k.facts.phys_runs == [(s, e - s) for s, e in win10_image.facts["phys_runs"]]  # facts: (start, end)
    assert phys.mem_map is not None
    assert [(r.base, r.length) for r in phys.mem_map] == k.facts.phys_runs
    assert len(k.process_info_list()) == len(win10_image.facts["processes"])


def test_dump_header_hints_are_used() -> None:
    from pymemflow.demo.connector import DemoMemory

    phys = DemoMemory("win10", hints=True)
    k = Win32Kernel.open(phys)
    assert "dtb hint" in k.facts.how[0]
    assert k.facts.ps_active_process_head == phys.hints.get("PsActiveProcessHead", k.facts.ps_active_process_head)
    assert len(k.process_info_list()) >= 10


def test_corrupted_vad_tree_terminates(win10_image: Any) -> None:
    k = Win32Kernel.open(phys_of(win10_image))
    facts = [p for p in win10_image.facts["processes"] if p["name"] == "explorer.exe"][0]
    nodes = [v["node"] for v in facts["vads"]]
    lay_left = k.offsets["_MMVAD_SHORT.VadNode"] + k.offsets["_RTL_BALANCED_NODE.Left"]
    right = k.offsets["_MMVAD_SHORT.VadNode"] + k.offsets["_RTL_BALANCED_NODE.Right"]
    # every node's children point back at the first node and at an unmapped address
    edits = [(n + lay_left, struct.pack("<Q", nodes[0])) for n in nodes]
    edits += [(n + right, struct.pack("<Q", 0xFFFFF6FB00001000)) for n in nodes]
    bad = _corrupted(win10_image, k, edits)
    regions = bad.process("explorer.exe").maps(vad=True)
    assert 1 <= len(regions) <= len(nodes)
    assert any("VAD" in w for w in bad.warnings)


def test_kernel_pseudo_process_by_name_and_pid(machine: tuple[Any, Win32Kernel]) -> None:
    img, k = machine
    for key in ("kernel", "0", 0):
        kp = k.process(key)
        assert kp.info.name == "kernel" and kp.info.dtb == k.facts.dtb
    kp = k.process("kernel")
    assert kp.read(img.facts["kernel_base"], 2) == b"MZ"
    assert kp.module_list()[0].base == img.facts["kernel_base"]
    assert 0 not in [i.pid for i in k.process_info_list()]
