"""Defects 2 and 8 (issue 12): an impossible pointer in any list or tree walk (a link smaller than its
offset in the structure, an odd address, one at the top of the address space) ends that walk with a
warning and a partial result -- in both OS layers, from Python (``warnings`` + the layer's
``warnings``) and in the CLI (stderr, exit 0)."""

from __future__ import annotations

import mmap
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from os_util import image_bytes, pack_ptr, phys_over, put_virtual, run_cli

from pymemflow.connectors.raw import RawFileMemory
from pymemflow.errors import IncompleteWalkWarning
from pymemflow.os.linux.layer import LinuxOs
from pymemflow.os.walk import impossible_link
from pymemflow.os.win32.kernel import Win32Kernel

SMALL = [1, 8, 0x10, 0x447]


def test_impossible_link_rules() -> None:
    assert impossible_link(0x447, ptr_size=8, link_offset=0x448) is not None
    assert impossible_link(0x1001, ptr_size=8) is not None  # not pointer aligned
    assert impossible_link((1 << 64) - 8, ptr_size=8, link_offset=0, span=0x100) is not None
    assert impossible_link(0xFFFF8000_00001000, ptr_size=8, link_offset=0x448, span=0x800) is None


@pytest.fixture(params=["win10", "win7"])
def win(request: Any, win10_small: Any, win7_small: Any) -> tuple[Any, Win32Kernel]:
    img = win10_small if request.param == "win10" else win7_small
    return img, Win32Kernel.open(phys_over(img, image_bytes(img)), progress=False)


def _win_with(img: Any, k: Win32Kernel, va: int, value: int) -> Win32Kernel:
    mm = image_bytes(img)
    put_virtual(k, mm, va, pack_ptr(value, k.eproc.ptr))
    return Win32Kernel.open(phys_over(img, mm), dtb=k.facts.dtb, kernel_base=k.facts.kernel_base,
                            arch=k.facts.arch, progress=False)


@pytest.mark.parametrize("value", SMALL)
def test_win32_small_flink_is_a_warning_and_a_partial_list(win: tuple[Any, Win32Kernel], value: int) -> None:
    img, k = win
    infos = k.process_info_list()
    victim = infos[3]
    bad = _win_with(img, k, victim.address + k.eproc.links, value)
    with pytest.warns(IncompleteWalkWarning, match="ActiveProcessLinks"):
        got = bad.process_info_list()
    assert [i.pid for i in got] == [i.pid for i in infos[:4]]
    assert any("impossible link" in w for w in bad.warnings)


def test_win32_small_loader_flink(win: tuple[Any, Win32Kernel]) -> None:
    img, k = win
    mods = k.kernel_modules()
    head = k.facts.ps_loaded_module_list
    first = k.kmem.read_ptr(head)
    bad = _win_with(img, k, first, 0x10)  # the first loader entry's Flink
    with pytest.warns(IncompleteWalkWarning):
        got = bad.kernel_modules()
    assert [m.name for m in got] == [mods[0].name]


def test_win32_vad_child_at_top_of_address_space(win10_small: Any) -> None:
    k = Win32Kernel.open(phys_over(win10_small, image_bytes(win10_small)), progress=False)
    p = [p for p in win10_small.facts["processes"] if p["vads"]][0]
    node = p["vads"][0]["node"]
    left = k.offsets["_MMVAD_SHORT.VadNode"] + k.offsets["_RTL_BALANCED_NODE.Left"]
    bad = _win_with(win10_small, k, node + left, (1 << 64) - 8)
    with pytest.warns(IncompleteWalkWarning, match="impossible child link"):
        regions = bad.process(p["pid"]).maps(vad=True)
    assert regions


def test_win32_cli_warns_and_lists_the_rest(win10_small: Any, tmp_path: Path) -> None:
    k = Win32Kernel.open(phys_over(win10_small, image_bytes(win10_small)), progress=False)
    victim = k.process_info_list()[2]
    mm = image_bytes(win10_small)
    put_virtual(k, mm, victim.address + k.eproc.links, pack_ptr(8, 8))
    path = tmp_path / "bad.raw"
    path.write_bytes(mm[:])
    r = run_cli("-c", f"raw:{path}", "-o", "win32", "ps")
    assert r.returncode == 0, r.stderr
    assert "internal error" not in r.stderr
    assert "pymemflow: warning: win32: ActiveProcessLinks: impossible link after 3 entries" in r.stderr
    assert victim.name in r.stdout


# ---- linux: a real guest's RAM -------------------------------------------------------------------------
class LinuxCase:
    def __init__(self, src: Path, tmp: Path) -> None:
        self.path = tmp / "lx.raw"
        shutil.copyfile(src, self.path)
        self.os = LinuxOs(RawFileMemory(self.path))
        self.infos = self.os.process_info_list()
        self.off = self.os._toff

    def poke(self, va: int, value: int) -> LinuxOs:
        pa = self.os.kmem.translate(va)
        with open(self.path, "r+b") as f, mmap.mmap(f.fileno(), 0) as mm:
            mm[pa: pa + 8] = struct.pack("<Q", value & ((1 << 64) - 1))
        return LinuxOs(RawFileMemory(self.path))


@pytest.fixture()
def lx(linux_ram: Path, tmp_path: Path) -> LinuxCase:
    return LinuxCase(linux_ram, tmp_path)


@pytest.mark.parametrize("value", SMALL)
def test_linux_small_tasks_next_is_a_warning_and_a_partial_list(lx: LinuxCase, value: int) -> None:
    victim = lx.infos[5]
    bad = lx.poke(victim.address + lx.off.tasks, value)
    with pytest.warns(IncompleteWalkWarning, match="init_task.tasks"):
        got = bad.process_info_list()
    assert [i.address for i in got] == [i.address for i in lx.infos[:6]]
    assert any("impossible link" in w for w in bad.warnings)


def test_linux_list_loop_warns(lx: LinuxCase) -> None:
    """Defect 8: a loop used to print 11 of 50 tasks with no warning."""
    a, b = lx.infos[3], lx.infos[10]
    bad = lx.poke(b.address + lx.off.tasks, a.address + lx.off.tasks)
    with pytest.warns(IncompleteWalkWarning, match="loop"):
        got = bad.process_info_list()
    assert len(got) == 11
    assert any("loop" in w for w in bad.warnings)


def test_linux_unreadable_tasks_next_warns(lx: LinuxCase) -> None:
    victim = lx.infos[7]
    bad = lx.poke(victim.address + lx.off.tasks, 0xFFFF_8880_DEAD_0000)
    with pytest.warns(IncompleteWalkWarning, match="dangling"):
        got = bad.process_info_list()
    assert len(got) == 8


def test_linux_cli_warns_on_a_cut_short_list(lx: LinuxCase) -> None:
    victim = lx.infos[10]
    lx.poke(victim.address + lx.off.tasks, 0x447)
    r = run_cli("-c", f"raw:{lx.path}", "-o", "linux", "ps")
    assert r.returncode == 0, r.stderr
    assert "pymemflow: warning: linux: init_task.tasks: impossible link after 10 entries" in r.stderr
    assert len(r.stdout.strip().splitlines()) == 1 + 11


def test_linux_dmesg_with_an_unreadable_ring_page_warns(lx: LinuxCase) -> None:
    from pymemflow.mem.memmap import MemoryMap

    full = lx.os.dmesg()
    vi = lx.os.vmcoreinfo
    prb = lx.os.kmem.read_ptr(vi.symbols["prb"])
    data_at = lx.os.kmem.read_ptr(prb + vi.offsets["printk_ringbuffer.text_data_ring"]
                                  + vi.offsets["prb_data_ring.data"])
    pa = lx.os.kmem.translate(data_at) & ~0xFFF
    size = lx.path.stat().st_size
    holed = RawFileMemory(lx.path, mem_map=MemoryMap([(0, pa, 0), (pa + 0x1000, size - pa - 0x1000, pa + 0x1000)]))
    bad = LinuxOs(holed)
    with pytest.warns(IncompleteWalkWarning, match="printk ring: 0x[0-9a-f]+ of 0x[0-9a-f]+ bytes of the text ring unreadable"):
        got = bad.dmesg()
    assert 0 < len(got) < len(full)
