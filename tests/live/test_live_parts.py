"""The pieces of the live connectors that need no guest: QEMU command lines, the machine-type RAM
layouts, ``info mtree -f`` parsing, range splitting, /proc/PID/maps parsing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymemflow.connectors.qemu import VmInfo, _parse_pause, find_vm
from pymemflow.errors import ArgumentError, FormatError, NotFoundError
from pymemflow.live.procfs import parse_maps
from pymemflow.live.qemu_cmdline import parse_command_line, parse_qemu_size, split_opts
from pymemflow.live.qemu_ram import (
    layout_from_heuristic,
    machine_layout,
    parse_mtree_flat,
    ram_candidates,
)
from pymemflow.live.qemu_regs import paging_arch, parse_registers
from pymemflow.live.rangemap import HostRange, HostRangeMap

G = 1 << 30


def test_command_line_forms():
    q = parse_command_line(["/usr/bin/qemu-system-x86_64", "-enable-kvm", "-name", "win10,debug-threads=on",
                            "-M", "pc-q35-7.2,accel=kvm", "-m", "size=8G,slots=2,maxmem=16G",
                            "-chardev", "socket,id=mon0,path=rel/qmp.sock,server=on,wait=off",
                            "-mon", "chardev=mon0,mode=control", "-daemonize",
                            "-qmp", "tcp:127.0.0.1:4444,server,nowait"], cwd="/var/run/vm")
    assert q.name == "win10" and q.machine == "pc-q35-7.2" and q.machine_family == "q35"
    assert q.accel == "kvm" and q.mem_size == 8 * G
    assert q.qmp == ["tcp:127.0.0.1:4444", "unix:/var/run/vm/rel/qmp.sock"]
    q2 = parse_command_line(["qemu-system-x86_64", "-name", "guest=a,,b", "-m", "4096", "-nodefaults",
                             "-machine", "type=pc-i440fx-8.0,memory-backend=ram0",
                             "-object", "memory-backend-file,id=ram0,size=3G,mem-path=/dev/shm/vm,share=on"])
    assert q2.name == "a,b" and q2.machine_family == "pc"
    assert q2.mem_size == 3 * G and q2.ram_file == "/dev/shm/vm"
    assert parse_command_line(["qemu-system-aarch64"]).mem_size == 128 << 20  # QEMU's default
    assert split_opts("a,,b,c") == ["a,b", "c"]
    assert parse_qemu_size("512M") == 512 << 20 and parse_qemu_size("1.5G") == 3 * G // 2
    assert parse_qemu_size("2048", 1 << 20) == 2 * G


def test_machine_layouts_follow_qemu_split_rules():
    assert machine_layout("pc", 512 << 20) == [(0, 512 << 20, 0)]
    assert machine_layout("pc", 4 * G) == [(0, 3 * G, 0), (4 * G, G, 3 * G)]
    assert machine_layout("pc", 0xD0000000) == [(0, 0xD0000000, 0)]
    assert machine_layout("q35", 4 * G) == [(0, 2 * G, 0), (4 * G, 2 * G, 2 * G)]
    assert machine_layout("q35", 0xA0000000) == [(0, 0xA0000000, 0)]
    assert machine_layout("q35", 0xB0000000) == [(0, 2 * G, 0), (4 * G, 0x30000000, 2 * G)]


MAPS = """\
55d0c0a00000-55d0c0b00000 r-xp 00000000 08:01 1234 /usr/bin/qemu-system-x86_64
7f0000000000-7f0020000000 rw-p 00000000 00:00 0
7f0020000000-7f0060000000 rwxp 00000000 00:00 0
7f0060000000-7f0060001000 rw-s 00000000 00:01 99 /dev/shm/vm ram (deleted)
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
"""


def test_ram_candidates_skip_the_tcg_code_cache():
    maps = parse_maps(MAPS)
    assert maps[3].path == "/dev/shm/vm ram (deleted)" and maps[4].path == "[stack]"
    cands = ram_candidates(maps, 512 << 20)
    assert [c.start for c in cands] == [0x7F0000000000]
    assert ram_candidates(maps, 1 << 30) == []  # the 1 GiB rwx mapping is the code cache, never RAM
    q = parse_command_line(["qemu-system-x86_64", "-m", "512M"])
    lay = layout_from_heuristic(q, maps)
    assert lay.method == "heuristic" and lay.ranges == [HostRange(0, 512 << 20, 0x7F0000000000)]


MTREE = """FlatView #3
 AS "I/O", root: io
 Root memory region: io
  0000000000000000-0000000000000007 (prio 0, i/o): dma-chan

FlatView #0
 AS "memory", root: system
 AS "cpu-memory-0", root: system
 Root memory region: system
  0000000000000000-000000000009ffff (prio 0, ram): pc.ram KVM
  00000000000c0000-00000000000dffff (prio 1, rom): pc.ram @00000000000c0000 KVM
  0000000000100000-000000007fffffff (prio 0, ram): pc.ram @0000000000100000 KVM
  00000000fffc0000-00000000ffffffff (prio 0, romd): pc.bios KVM
  0000000100000000-000000017fffffff (prio 0, ram): pc.ram @0000000080000000 KVM

FlatView #1
 AS "cpu-smm-0", root: memory
  0000000000000000-000000000009ffff (prio 0, ram): smram
"""


def test_mtree_parse_finds_the_system_view_by_name():
    e = parse_mtree_flat(MTREE)
    assert [(x.start, x.end, x.name, x.offset) for x in e if x.name == "pc.ram"] == [
        (0, 0xA0000, "pc.ram", 0), (0xC0000, 0xE0000, "pc.ram", 0xC0000),
        (0x100000, 0x80000000, "pc.ram", 0x100000), (4 * G, 6 * G, "pc.ram", 2 * G)]
    assert not any(x.name == "smram" or x.name == "dma-chan" for x in e)


def test_range_map_split_and_merge():
    m = HostRangeMap([HostRange(0, 0x1000, 0x10000), HostRange(0x1000, 0x1000, 0x11000),
                      HostRange(4 * G, 0x2000, 0x50000)])
    assert len(m.ranges) == 2 and m.real_size == 0x4000 and m.max_address == 4 * G + 0x2000
    addrs = np.array([0x10, 0x1FF8, 4 * G - 4, 0x2000], np.uint64)
    lens = np.array([8, 16, 12, 0], np.int64)
    offs = np.array([0, 8, 24, 36], np.uint64)
    plan = m.split(addrs, lens, offs)
    chunks = sorted(zip(plan.index.tolist(), plan.host.tolist(), plan.length.tolist(), plan.out_offset.tolist(),
                        strict=True))
    assert chunks == [(0, 0x10010, 8, 0), (1, 0x11FF8, 8, 8), (2, 0x50000, 8, 28)]
    assert sorted(plan.holes) == [(1, 0x2000, 8, 16), (2, 4 * G - 4, 4, 24)]
    assert m.lookup(0x1FF8, 8) == 0x11FF8 and m.lookup(0x1FF8, 9) is None and m.lookup(4 * G - 1, 1) is None
    with pytest.raises(FormatError):
        HostRangeMap([HostRange(0, 0x2000, 0), HostRange(0x1000, 0x1000, 0)])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 5000)), min_size=1, max_size=40))
def test_range_map_split_covers_every_byte_once(pieces):
    m = HostRangeMap([HostRange(0x1000, 0x8000, 0x100000), HostRange(0x20000, 0x3000, 0x900000),
                      HostRange(0x24000, 0x1000, 0x200000)])
    addrs = np.array([p[0] for p in pieces], np.uint64)
    lens = np.array([p[1] for p in pieces], np.int64)
    offs = np.zeros(len(pieces), np.uint64)
    offs[1:] = np.cumsum(lens[:-1])
    plan = m.split(addrs, lens, offs)
    covered = np.zeros(int(lens.sum()), np.int64)
    for o, n in zip(plan.out_offset.tolist(), plan.length.tolist(), strict=True):
        covered[o : o + n] += 1
    for _, _, n, o in plan.holes:
        covered[o : o + n] += 1
    assert (covered == 1).all()
    for i, h, n, o in zip(plan.index.tolist(), plan.host.tolist(), plan.length.tolist(),
                          plan.out_offset.tolist(), strict=True):
        gpa = int(addrs[i]) + o - int(offs[i])
        assert m.lookup(gpa, n) == h


def test_find_vm_and_pause_arg():
    vms = [VmInfo(10, parse_command_line(["qemu-system-x86_64", "-name", "a"])),
           VmInfo(11, parse_command_line(["qemu-system-x86_64", "-name", "guest=b"]))]
    assert find_vm("b", vms).pid == 11 and find_vm("10", vms).cmd.name == "a"
    assert find_vm(None, vms[:1]).pid == 10
    with pytest.raises(ArgumentError, match="a \\(pid 10\\)"):
        find_vm(None, vms)
    with pytest.raises(NotFoundError):
        find_vm("c", vms)
    assert _parse_pause("true") == "open" and _parse_pause("read") == "read" and _parse_pause("no") == "off"
    with pytest.raises(ValueError, match="pause=open"):
        _parse_pause("sometimes")


@settings(max_examples=80, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(list("-=,:/ab0123456789mMGgqnameobjct")), max_size=24),
                max_size=16))
def test_command_line_parser_never_crashes(args):
    q = parse_command_line(["qemu-system-x86_64", *args])
    assert q.mem_size >= 0 and isinstance(q.qmp, list)


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=2000))
def test_mtree_and_maps_parsers_take_any_text(text):
    entries = parse_mtree_flat('FlatView #0\n AS "memory", root: system\n' + text)
    assert len(entries) <= len(text.splitlines()) + 1
    assert all(e.start >= 0 and e.end >= 1 for e in entries)
    maps = parse_maps(text)
    assert len(maps) <= len(text.splitlines())
    assert all(m.start >= 0 and m.end >= 0 and isinstance(m.perms, str) for m in maps)


REGS = """CPU#0
RIP=ffffffff9ba592eb RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1
IDT=     fffffe0000000000 00000fff
CR0=80050033 CR2=00000000005794a9 CR3=00000000028fa000 CR4=000006f0
EFER=0000000000000d01
CPU#1
EIP=c10a1b2c EFL=00000246 [---Z-P-] CPL=3 II=0 A20=1 SMM=0 HLT=0
CR0=80050033 CR2=00000000 CR3=01a2b000 CR4=00000010
"""


def test_register_hints():
    r = parse_registers(REGS)
    assert [x["cpu"] for x in r] == [0, 1]
    assert r[0]["cr3"] == 0x28FA000 and r[0]["idt_base"] == 0xFFFFFE0000000000 and r[0]["cpl"] == 0
    assert r[1]["rip"] == 0xC10A1B2C and r[1]["cpl"] == 3
    assert paging_arch(r[0]) == "x64" and paging_arch(r[1]) == "x86"
    assert paging_arch({"cr0": 1 << 31, "cr4": 1 << 5}) == "x86pae"
    assert paging_arch({"cr0": 1 << 31, "cr4": 1 << 12, "efer": 1 << 10}) == "x64la57"
    assert paging_arch({"cr0": 0x11}) is None
