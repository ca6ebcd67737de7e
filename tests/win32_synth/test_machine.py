"""The synthetic Windows machines, checked independently of the builder: our page walker
(pymemflow.arch) and the ISF / memflow / Windows 7 x86 layout facts of tests/data/windows, pefile for PE files."""

from __future__ import annotations

import hashlib
import mmap
import struct
from pathlib import Path
from typing import Any

import pefile
import pytest

from pymemflow.arch import VirtualMemory
from pymemflow.demo import SyntheticImage, build_image
from pymemflow.demo.connector import DemoMemory
from pymemflow.errors import TranslationError
from pymemflow.mem.buffer import MmapMemory
from pymemflow.mem.memmap import MemoryMap
from pymemflow.os.win32.offsets import IsfSymbols

from .conftest import ISF_19041


def phys_of(img: SyntheticImage) -> MmapMemory:
    mm = mmap.mmap(-1, img.size)
    img.fill(mm)
    return MmapMemory(mm, MemoryMap.identity(img.size), writable=False)


def walk_list(vm: VirtualMemory, head: int, link_off: int, cap: int = 100) -> list[int]:
    out, cur = [], vm.read_u64(head) if vm.pointer_size == 8 else vm.read_u32(head)
    while cur != head and len(out) < cap:
        out.append(cur - link_off)
        cur = vm.read_u64(cur) if vm.pointer_size == 8 else vm.read_u32(cur)
    return out


def ustr(vm: VirtualMemory, addr: int, ptr_off: int) -> str:
    n = vm.read_u16(addr)
    buf = vm.read_u64(addr + ptr_off) if vm.pointer_size == 8 else vm.read_u32(addr + ptr_off)
    return vm.read(buf, n).decode("utf-16-le")


def test_deterministic_and_seeded() -> None:
    a = build_image("win10", seed=3, size=64 << 20)
    b = build_image("win10", seed=3, size=64 << 20)
    c = build_image("win10", seed=4, size=64 << 20)
    digest = lambda img: hashlib.sha256(b"".join(bytes(img.pages[k]) + k.to_bytes(8, "little")  # noqa: E731
                                                  for k in sorted(img.pages))).hexdigest()
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)
    assert a.facts["kernel_base"] != c.facts["kernel_base"]


def test_x64_processes_at_isf_offsets(win10: SyntheticImage, win_data: Path) -> None:
    """Walk PsActiveProcessHead with offsets read straight from the ISF (not from our table)."""
    isf = IsfSymbols.load(win_data / "isf" / ISF_19041)
    f = win10.facts
    vm = VirtualMemory(phys_of(win10), "x64", f["dtb"])
    head = f["kernel_base"] + isf.symbol("PsActiveProcessHead")
    links = isf.member_offset("_EPROCESS", "ActiveProcessLinks")
    eps = walk_list(vm, head, links)
    assert eps == [p["eprocess"] for p in f["processes"]]
    seen = []
    for ep, p in zip(eps, f["processes"], strict=True):
        pid = vm.read_u64(ep + isf.member_offset("_EPROCESS", "UniqueProcessId"))
        ppid = vm.read_u64(ep + isf.member_offset("_EPROCESS", "InheritedFromUniqueProcessId"))
        name = vm.read(ep + isf.member_offset("_EPROCESS", "ImageFileName"), 15).rstrip(b"\0").decode()
        dtb = vm.read_u64(ep + isf.member_offset("_EPROCESS", "Pcb.DirectoryTableBase"))
        seen.append((pid, ppid, name, dtb))
        assert (pid, ppid, name, dtb) == (p["pid"], p["ppid"], p["image_file_name"], p["dtb"])
        if not p["peb"]:
            continue
        pv = VirtualMemory(vm.phys, "x64", dtb)
        peb = vm.read_u64(ep + isf.member_offset("_EPROCESS", "Peb"))
        params = pv.read_u64(peb + isf.member_offset("_PEB", "ProcessParameters"))
        assert ustr(pv, params + isf.member_offset("_RTL_USER_PROCESS_PARAMETERS", "CommandLine"), 8) == p["command_line"]
        assert ustr(pv, params + isf.member_offset("_RTL_USER_PROCESS_PARAMETERS", "ImagePathName"), 8) == p["path"]
        ldr = pv.read_u64(peb + isf.member_offset("_PEB", "Ldr"))
        lst = ldr + isf.member_offset("_PEB_LDR_DATA", "InLoadOrderModuleList")
        mods = walk_list(pv, lst, isf.member_offset("_LDR_DATA_TABLE_ENTRY", "InLoadOrderLinks"))
        got = [(pv.read_u64(m + isf.member_offset("_LDR_DATA_TABLE_ENTRY", "DllBase")),
                ustr(pv, m + isf.member_offset("_LDR_DATA_TABLE_ENTRY", "BaseDllName"), 8)) for m in mods]
        assert got == [(m["base"], m["name"]) for m in p["modules"]]
        # every module starts with a real PE header in this process's memory
        for base, _ in got:
            assert pv.read(base, 2) == b"MZ"
    assert len(seen) >= 10 and seen[0][:3] == (4, 0, "System")
    assert sum(p["wow64"] for p in f["processes"]) == 1
    assert [p for p in f["processes"] if not p["alive"]]


def test_x64_wow64_peb32(win10: SyntheticImage, win_data: Path) -> None:
    isf = IsfSymbols.load(win_data / "isf" / ISF_19041)
    p = next(p for p in win10.facts["processes"] if p["wow64"])
    phys = phys_of(win10)
    vm = VirtualMemory(phys, "x64", win10.facts["dtb"])
    wow = vm.read_u64(p["eprocess"] + isf.member_offset("_EPROCESS", "WoW64Process"))
    peb32 = vm.read_u64(wow + isf.member_offset("_EWOW64PROCESS", "Peb"))
    assert peb32 == p["peb32"] and peb32 < 1 << 32
    pv = VirtualMemory(phys, "x64", p["dtb"])
    ldr32 = pv.read_u32(peb32 + isf.member_offset("_PEB32", "Ldr"))
    # 32-bit loader structures (x86 layout): InLoadOrderModuleList at 0xC, DllBase 0x18, BaseDllName 0x2C
    cur, names = pv.read_u32(ldr32 + 0xC), []
    while cur != ldr32 + 0xC and len(names) < 20:
        names.append((pv.read_u32(cur + 0x18), ustr(pv, cur + 0x2C, 4)))
        cur = pv.read_u32(cur)
    assert names == [(m["base"], m["name"]) for m in p["modules32"]]
    assert pv.read(p["modules32"][1]["base"], 2) == b"MZ"
    pe = pefile.PE(data=pv.read(p["modules32"][0]["base"], 0x1000), fast_load=True)
    assert pe.FILE_HEADER.Machine == 0x14C


def test_kernel_image_pe_exports_and_codeview(win10: SyntheticImage) -> None:
    f = win10.facts
    vm = VirtualMemory(phys_of(win10), "x64", f["dtb"], zero_fill=True)
    kb = f["kernel_base"]
    # the loaded image, sparse: read header + .rdata pages (others may be absent, as in a real dump)
    data = bytearray(0x10000)
    data[:] = vm.read(kb, 0x10000)
    pe = pefile.PE(data=bytes(data) + bytes(0x100), fast_load=True)
    pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_EXPORT"],
                                           pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_DEBUG"]])
    assert pe.OPTIONAL_HEADER.ImageBase == kb and pe.OPTIONAL_HEADER.SizeOfImage == f["kernel_size"]
    assert pe.DIRECTORY_ENTRY_EXPORT.name == b"ntoskrnl.exe"
    exports = {e.name.decode(): kb + e.address for e in pe.DIRECTORY_ENTRY_EXPORT.symbols}
    for sym in ("PsInitialSystemProcess", "PsLoadedModuleList", "NtBuildNumber"):
        assert exports[sym] == f["symbols"][sym]
    assert "PsActiveProcessHead" not in exports  # not exported on real Windows either
    cv = pe.DIRECTORY_ENTRY_DEBUG[0].entry
    guid = f"{cv.Signature_Data1:08X}{cv.Signature_Data2:04X}{cv.Signature_Data3:04X}{cv.Signature_Data4:02X}" \
           f"{cv.Signature_Data5:02X}{cv.Signature_Data6.hex().upper()}"
    assert guid + f"{cv.Age:X}" == f["guid_age"] and cv.PdbFileName.rstrip(b"\0") == b"ntkrnlmp.pdb"
    assert vm.read_u32(f["symbols"]["NtBuildNumber"]) == 0xF0000000 | 19041
    assert vm.read_u64(f["symbols"]["PsInitialSystemProcess"]) == f["processes"][0]["eprocess"]


def test_x64_low_stub_self_map_kuser_large_page(win10: SyntheticImage) -> None:
    f = win10.facts
    phys = phys_of(win10)
    stub = f["low_stub_pa"]
    assert stub < 0x100000 and phys.read_u64(stub) & 0xFFFFFFFFFFFF00FF == 0x00000001000600E9
    assert phys.read_u64(stub + 0xA0) == f["dtb"] and phys.read_u64(stub + 0x70) == f["symbols"]["KiSystemStartup"]
    assert 0x150000 <= f["dtb"] < 0x2A0000  # where Windows 10 puts it (volatility3 looks there first)
    assert phys.read_u64(f["dtb"] + 8 * f["self_ref_index"]) & 0xFFFFFFFFFF000 == f["dtb"]
    vm = VirtualMemory(phys, "x64", f["dtb"])
    assert vm.translate(0xFFFFF78000000000) == f["kuser_pa"]
    assert vm.read_u32(0xFFFFF78000000000 + 0x26C) == 10  # NtMajorVersion
    for p in f["processes"][2:5]:
        assert VirtualMemory(phys, "x64", p["dtb"]).translate(0x7FFE0000) == f["kuser_pa"]
    big = f["large_pages"][0]
    assert big["pa"] % (2 << 20) == 0 and vm.translate(big["va"] + 0x12345) == big["pa"] + 0x12345
    # pages are scattered, not laid out in address order
    eps = [p["eprocess"] for p in f["processes"]]
    assert len({vm.translate(m["base"]) >> 21 for m in f["kernel_modules"][:5]}) > 1 or eps


def test_x64_transition_and_pagefile_ptes(win10: SyntheticImage) -> None:
    f = win10.facts
    phys = phys_of(win10)
    (t,) = f["transition_pages"]
    pte = phys.read_u64(t["pte_pa"])
    assert pte == t["pte"] and not pte & 1 and pte & (1 << 11) and not pte & (1 << 10)
    assert (pte >> 12) & ((1 << 36) - 1) == t["pa"] >> 12
    assert phys.read(t["pa"], len(t["marker"])).decode() == t["marker"]
    proc = next(p for p in f["processes"] if p["pid"] == t["pid"])
    vm = VirtualMemory(phys, "x64", proc["dtb"])
    with pytest.raises(TranslationError):  # a hardware walk must not see it as present
        vm.translate(t["va"])
    (pf,) = f["pagefile_pages"]
    pte = phys.read_u64(pf["pte_pa"])
    assert not pte & 1 and not pte & (1 << 11) and pte >> 32 == pf["page_offset"]


def test_x64_keyboard_state_in_session_space(win10: SyntheticImage) -> None:
    f = win10.facts
    k = f["keyboard"]
    phys = phys_of(win10)
    win32k = next(m for m in f["kernel_modules"] if m["name"] == "win32kbase.sys")
    pid = k["session_pids"][0]
    p = next(p for p in f["processes"] if p["pid"] == pid)
    vm = VirtualMemory(phys, "x64", p["dtb"])
    pe = pefile.PE(data=vm.read(win32k["base"], 0x2000), fast_load=True)
    pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_EXPORT"]])
    exp = {e.name: win32k["base"] + e.address for e in pe.DIRECTORY_ENTRY_EXPORT.symbols}
    assert exp[b"gafAsyncKeyState"] == k["address"]
    state = vm.read(k["address"], 64)
    down = [vk for vk in range(256) if state[vk // 4] & (1 << (vk % 4 * 2))]
    assert down == k["pressed"]
    sysvm = VirtualMemory(phys, "x64", f["dtb"])
    with pytest.raises(TranslationError):  # session space is not mapped in the System process
        sysvm.translate(k["address"])


def test_x64_vad_tree(win10: SyntheticImage, win_data: Path) -> None:
    isf = IsfSymbols.load(win_data / "isf" / ISF_19041)
    f = win10.facts
    vm = VirtualMemory(phys_of(win10), "x64", f["dtb"])
    p = next(p for p in f["processes"] if p["name"] == "notepad.exe")
    root = vm.read_u64(p["eprocess"] + isf.member_offset("_EPROCESS", "VadRoot"))
    prot = isf.member("_MMVAD_SHORT", "u.VadFlags.Protection")
    out: list[tuple[int, int, int]] = []

    def visit(node: int, depth: int = 0) -> None:
        if not node or depth > 40:
            return
        visit(vm.read_u64(node + isf.member_offset("_RTL_BALANCED_NODE", "Left")), depth + 1)
        sv = vm.read_u32(node + isf.member_offset("_MMVAD_SHORT", "StartingVpn")) | \
            vm.read_u8(node + isf.member_offset("_MMVAD_SHORT", "StartingVpnHigh")) << 32
        ev = vm.read_u32(node + isf.member_offset("_MMVAD_SHORT", "EndingVpn")) | \
            vm.read_u8(node + isf.member_offset("_MMVAD_SHORT", "EndingVpnHigh")) << 32
        flags = vm.read_u32(node + prot.offset)
        out.append((sv << 12, (ev << 12) | 0xFFF, (flags >> prot.bit_position) & 31))
        visit(vm.read_u64(node + isf.member_offset("_RTL_BALANCED_NODE", "Right")), depth + 1)

    visit(root)
    assert out == [(v["start"], v["end"], v["protection"]) for v in p["vads"]]
    assert vm.read_u64(p["eprocess"] + isf.member_offset("_EPROCESS", "VadCount")) == len(out)


def memflow_toml(win_data: Path, stem: str) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(next((win_data / "memflow-offsets").glob(f"{stem}*.toml")).read_text())


def test_x86pae_win7_processes_at_memflow_offsets(win7: SyntheticImage, win_data: Path) -> None:
    """The Windows 7 x86-PAE machine, walked with memflow's ntkrpamp offsets (independent source)."""
    off = memflow_toml(win_data, "6_1_7601_X86")["offsets"]
    f = win7.facts
    assert f["arch"] == "x86pae" and f["pdb_name"] == "ntkrpamp.pdb"
    phys = phys_of(win7)
    vm = VirtualMemory(phys, "x86pae", f["dtb"])
    eps = walk_list(vm, f["symbols"]["PsActiveProcessHead"], off["eproc_link"])
    assert eps == [p["eprocess"] for p in f["processes"]]
    for ep, p in zip(eps, f["processes"], strict=True):
        assert vm.read_u32(ep + off["eproc_pid"]) == p["pid"]
        assert vm.read(ep + off["eproc_name"], 15).rstrip(b"\0").decode() == p["image_file_name"]
        assert vm.read_u32(ep + off["kproc_dtb"]) == p["dtb"]
        assert vm.read_u32(ep + off["eproc_peb"]) == p["peb"]
        if p["peb"]:
            pv = VirtualMemory(phys, "x86pae", p["dtb"])
            assert pv.read(pv.read_u32(p["peb"] + 8), 2) == b"MZ"  # PEB.ImageBaseAddress
            assert pv.read_u32(0x7FFE0000 + 0x26C) == 6
    assert vm.read_u32(0xFFDF0000 + 0x26C) == 6 and vm.read_u32(0xFFDF0000 + 0x270) == 1
    # kernel PE found by its export name, 32-bit
    pe = pefile.PE(data=vm.read(f["kernel_base"], 0x2000), fast_load=True)
    assert pe.FILE_HEADER.Machine == 0x14C and pe.OPTIONAL_HEADER.ImageBase == f["kernel_base"]
    # PsLoadedModuleList walk with the x86 _LDR_DATA_TABLE_ENTRY layout (volatility2 facts: DllBase 0x18)
    mods = walk_list(vm, f["symbols"]["PsLoadedModuleList"], 0)
    assert [vm.read_u32(m + 0x18) for m in mods] == [m["base"] for m in f["kernel_modules"]]
    # PAE self map: PD of 0xC0000000 maps the four page directories
    pdpt = [phys.read_u64(f["dtb"] + 8 * i) & 0xFFFFFFFFF000 for i in range(4)]
    assert [phys.read_u64(pdpt[3] + 8 * i) & 0xFFFFFFFFF000 for i in range(4)] == pdpt


def test_x86pae_vad_tree_win7_layout(win7: SyntheticImage) -> None:
    f = win7.facts
    vm = VirtualMemory(phys_of(win7), "x86pae", f["dtb"])
    p = next(p for p in f["processes"] if p["name"] == "explorer.exe")
    # _EPROCESS.VadRoot (0x278) is an _MM_AVL_TABLE; BalancedRoot.RightChild (+8) holds the tree
    root = vm.read_u32(p["eprocess"] + 0x278 + 8)
    out: list[int] = []

    def visit(n: int, d: int = 0) -> None:
        if n and d < 40:
            visit(vm.read_u32(n + 4), d + 1)
            out.append(vm.read_u32(n + 12) << 12)
            visit(vm.read_u32(n + 8), d + 1)

    visit(root)
    assert out == [v["start"] for v in p["vads"]]


def test_raw_file_roundtrip(tmp_path: Path) -> None:
    img = build_image("win7", seed=1, size=32 << 20)
    path = tmp_path / "w7.raw"
    img.write_raw(str(path))
    assert path.stat().st_size == 32 << 20
    raw = path.read_bytes()
    for pa in list(img.pages)[:50]:
        assert raw[pa : pa + 4096] == bytes(img.pages[pa])
    assert img.read(img.facts["dtb"], 8) == raw[img.facts["dtb"] : img.facts["dtb"] + 8]


def test_demo_connector_hints_and_facts() -> None:
    m = DemoMemory("win10", seed=2, size=64 << 20)
    assert "dtb" not in m.hints and m.facts["profile"] == "win10-19041-x64"
    assert m.metadata.max_address == 64 << 20 and not m.writable
    h = DemoMemory("win7", seed=2, size=64 << 20, hints=True)
    assert h.hints["dtb"] == h.facts["dtb"] and h.hints["arch"] == "x86pae"
    vm = VirtualMemory(h, "x86pae", h.hints["dtb"])
    assert vm.read(h.hints["kernel_base"], 2) == b"MZ"
    struct.unpack("<I", vm.read(h.hints["PsActiveProcessHead"], 4))


@pytest.mark.parametrize("profile,arch,link,pid_off", [("win10", "x64", 0x448, 0x440), ("win7", "x86pae", 0xB8, 0xB4)])
def test_many_seeds_build_consistent_machines(profile: str, arch: str, link: int, pid_off: int) -> None:
    for seed in range(1, 6):
        img = build_image(profile, seed=seed, size=48 << 20)
        f = img.facts
        vm = VirtualMemory(phys_of(img), arch, f["dtb"])
        eps = walk_list(vm, f["symbols"]["PsActiveProcessHead"], link)
        assert eps == [p["eprocess"] for p in f["processes"]]
        pids = [vm.read_u64(e + pid_off) if arch == "x64" else vm.read_u32(e + pid_off) for e in eps]
        assert pids == [p["pid"] for p in f["processes"]] and len(set(pids)) == len(pids)
        assert all(pid % 4 == 0 for pid in pids)
        assert max(img.pages) < 48 << 20
