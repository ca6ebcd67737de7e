"""Real dumps written by QEMU's dump-guest-memory (ELF, kdump-zlib flattened) and kdump files our
writer makes from the same pages with the codecs Debian's QEMU lacks (lzo, snappy, zstd), read back
and compared page by page with the guest's RAM file (taken while the guest was paused)."""

from __future__ import annotations

import numpy as np
import pytest

import pymemflow.connectors.auto as auto
from pymemflow.connectors.elf import ElfCore
from pymemflow.connectors.formats import codecs
from pymemflow.connectors.kdump import KdumpCompressed
from pymemflow.writers.kdump import write_kdump

from .helpers import assert_same_pages

pytestmark = pytest.mark.testbed
RAM = 512 << 20


def test_elf_detect_pages_metadata_hints(snapshot):
    assert auto.detect(snapshot.elf) == "elf"
    with auto.open_dump(snapshot.elf) as mem:
        assert isinstance(mem, ElfCore)
        assert_same_pages(mem, 0, snapshot.ram)
        ranges = mem.memory_map()
        assert ranges[0] == (0, RAM)  # guest RAM; QEMU also dumps the BIOS ROM below 4 GiB
        assert mem.metadata.max_address == ranges[-1][1]
        assert mem.metadata.real_size == sum(e - s for s, e in ranges)
        regs = mem.hints["cpu_registers"][0]
        assert regs["cr3"] & ~0xFFF == mem.hints["dtb"]
        assert 0 < mem.hints["dtb"] < RAM
        assert regs["cr0"] & 0x80000001 == 0x80000001  # paging and protection on in the guest
        assert mem.hints["arch"] == "x64"
        info = mem.info()
        assert info["format"] == "elf" and info["hints"]["dtb"] == mem.hints["dtb"]
        # a read across the end of RAM reports the hole instead of inventing bytes
        data, fails = mem._read_single(RAM - 8, 16)
        assert data[:8] == snapshot.ram[-8:].tobytes() and fails and fails[0].address == RAM


def test_qemu_kdump_flattened_zlib(snapshot):
    assert auto.detect(snapshot.kdump) == "kdump"
    with auto.open_dump(snapshot.kdump) as mem:
        assert isinstance(mem, KdumpCompressed)
        assert mem.format_info["flattened"] is True  # QEMU writes the flattened layout
        assert "zlib" in mem.format_info["compression"]
        assert_same_pages(mem, 0, snapshot.ram)
        with ElfCore(snapshot.elf) as elf:
            assert mem.hints["dtb"] == elf.hints["dtb"]  # two independent QEMU outputs agree
            assert mem.memory_map() == elf.memory_map()
        # the per-page cache: reading one page many times decodes it once
        mem._cache.clear()
        before = mem.cache_misses
        for _ in range(10):
            mem.read(0x1000 * 1234 + 8, 64)
        assert mem.cache_misses - before == 1


@pytest.mark.parametrize("codec,flattened", [("lzo", False), ("snappy", False), ("zstd", True), ("zlib", False),
                                             ("none", False)])
def test_kdump_codecs_from_our_writer(snapshot, tmp_path, codec, flattened):
    if codec not in ("zlib", "none") and not codecs.available(codec):
        pytest.skip(f"{codec} codec package not installed")
    with ElfCore(snapshot.elf) as elf:
        out = write_kdump(elf, tmp_path / f"k.{codec}", codec, flattened=flattened)
        with KdumpCompressed(out) as mem:
            assert mem.format_info["flattened"] is flattened
            if codec != "none":
                assert codec in mem.format_info["compression"]
            assert_same_pages(mem, 0, snapshot.ram)
            assert mem.hints["dtb"] == elf.hints["dtb"]
            assert mem.memory_map() == elf.memory_map()
    out.unlink()


def test_random_reads_match_ram(snapshot):
    """Unaligned pieces of random sizes, some crossing pages, through every QEMU-written format."""
    rng = np.random.default_rng(4)
    addrs = rng.integers(0, RAM - 9000, 2000).astype(np.uint64)
    sizes = rng.integers(1, 9000, 2000)
    for path in (snapshot.elf, snapshot.kdump):
        with auto.open_dump(path) as mem:
            res = mem.read_batch(addrs, sizes)
            assert not res.failures
            for i in range(0, 2000, 97):
                a, n = int(addrs[i]), int(sizes[i])
                assert res.piece(i) == snapshot.ram[a : a + n].tobytes()


def _plugin_args(spec, **given):
    """Parsed plugin arguments with defaults, as the plugin inventory hands them to a factory."""
    args = {a.name: a.default for a in spec.args}
    for k, v in given.items():
        a = spec.arg(k)
        args[k] = a.parse(v) if a is not None and isinstance(v, str) else v
    return args


def test_dump_phys_of_a_live_vm(snapshot, tmp_path):
    """A live VM (the qemu connector, VM paused while open) turned into an ELF snapshot by the
    dump-phys writer: the snapshot reads back the guest RAM page for page."""
    try:
        from pymemflow.connectors.qemu import PLUGIN as QEMU
    except ImportError:
        pytest.skip("the qemu connector is not in this tree")
    from pymemflow.writers import dump_physical

    g = snapshot.guest
    try:
        live = QEMU.factory(_plugin_args(QEMU, target=str(g.pid), pause="open", qmp=g.qmp2), None)
    except Exception as e:  # the qemu connector's own preconditions (ptrace, QMP)
        pytest.skip(f"qemu connector cannot open the guest here: {e}")
    try:
        progress: list[int] = []
        res = dump_physical(live, tmp_path / "live.elf", "elf", progress=progress.append)
        ram = np.fromfile(g.ramfile, dtype=np.uint8)  # still paused: the same moment
    finally:
        live.close()
    assert sum(progress) == res.data_bytes and res.unreadable_bytes == 0
    with ElfCore(res.path) as mem:
        assert mem.memory_map()[0][0] == 0
        assert_same_pages(mem, 0, ram[:RAM])


def _walk_x64(mem, dtb: int, va: int) -> int:
    """A minimal independent 4-level x86-64 walk (test-only): physical address of ``va``."""
    table = dtb & 0x000FFFFFFFFFF000
    for level, shift in enumerate((39, 30, 21, 12)):
        e = mem.read_u64(table + ((va >> shift) & 0x1FF) * 8)
        assert e & 1, f"not present at level {level}"
        if level in (1, 2) and e & 0x80:  # 1 GiB / 2 MiB page
            return (e & 0x000FFFFFFFFFF000 & ~((1 << shift) - 1)) | (va & ((1 << shift) - 1))
        table = e & 0x000FFFFFFFFFF000
    return table | (va & 0xFFF)


def test_dtb_hint_translates_kernel_addresses(snapshot):
    """The CR3 the dumps carry is a real page-table root: through it, the guest's linux_banner
    symbol (printed by the guest) reads "Linux version" from the ELF and the kdump alike (with the
    project's VirtualMemory when it is there, and with a minimal walk of our own)."""
    syms = {}
    for line in snapshot.guest.serial_lines("TESTBED_SYM"):
        parts = line.split()
        if len(parts) == 4:
            syms[parts[3]] = int(parts[1], 16)
    if "linux_banner" not in syms:
        pytest.skip("the guest did not print linux_banner")
    va = syms["linux_banner"]
    try:
        from pymemflow.arch import VirtualMemory
    except ImportError:
        VirtualMemory = None
    for path in (snapshot.elf, snapshot.kdump):
        with auto.open_dump(path) as mem:
            pa = _walk_x64(mem, mem.hints["dtb"], va)
            assert mem.read(pa, 13) == b"Linux version"
            if VirtualMemory is not None:
                vm = VirtualMemory(mem, mem.hints["arch"], mem.hints["dtb"])
                assert vm.read(va, 13) == b"Linux version"
