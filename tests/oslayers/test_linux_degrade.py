"""Defect 10 (issue 12): the linux layer degrades instead of failing. Damaged pages of kallsyms cost only
the symbols on them (blocks of 256 resynchronised through kallsyms_markers), unusable kallsyms fall back
to the VMCOREINFO symbols (init_task then found by the idle task's comm), damaged BTF keeps the types
before the damage -- each time with a DegradedWarning saying what was lost, and processes still listed."""

from __future__ import annotations

import mmap
import random
import shutil
import warnings
from pathlib import Path

import pytest

from pymemflow.connectors.raw import RawFileMemory
from pymemflow.errors import DegradedWarning, PymemflowError
from pymemflow.mem.memmap import MemoryMap
from pymemflow.os.linux.layer import LinuxOs


@pytest.fixture(scope="module")
def clean(linux_ram: Path) -> LinuxOs:
    return LinuxOs(RawFileMemory(linux_ram))


def _pids(os_: LinuxOs) -> list[int]:
    return sorted(i.pid for i in os_.process_info_list())


def _damaged(src: Path, dst: Path, pages: list[int], rng: random.Random) -> Path:
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f, mmap.mmap(f.fileno(), 0) as mm:
        for p in pages:
            mm[p * 4096:(p + 1) * 4096] = rng.randbytes(4096)
    return dst


def _without(src: Path, page_pa: int) -> RawFileMemory:
    """The image with one physical page missing (a hole: unreadable, not just wrong)."""
    size = src.stat().st_size
    return RawFileMemory(src, mem_map=MemoryMap([(0, page_pa, 0), (page_pa + 4096, size - page_pa - 4096,
                                                                     page_pa + 4096)]))


def test_damaged_names_page_costs_only_its_symbols(clean: LinuxOs, linux_ram: Path, tmp_path: Path) -> None:
    names = clean.vmcoreinfo.symbols["kallsyms_names"]
    page = clean.kmem.translate(names + 0x40000) >> 12
    path = _damaged(linux_ram, tmp_path / "d.raw", [page], random.Random(1))
    with pytest.warns(DegradedWarning, match="kallsyms: 512 of"):
        bad = LinuxOs(RawFileMemory(path))
    assert 0 < bad.symbols.lost <= 512
    assert len(bad.symbols) == len(clean.symbols) - bad.symbols.lost
    assert bad.symbols.get("init_task") == clean.symbols.get("init_task")
    assert _pids(bad) == _pids(clean)


def test_unreadable_token_index_falls_back_to_vmcoreinfo(clean: LinuxOs, linux_ram: Path) -> None:
    pa = clean.kmem.translate(clean.vmcoreinfo.symbols["kallsyms_token_index"]) & ~0xFFF
    with pytest.warns(DegradedWarning) as rec:
        bad = LinuxOs(_without(linux_ram, pa))
        pids = _pids(bad)
    texts = [str(w.message) for w in rec]
    assert any("kallsyms unusable" in t and "VMCOREINFO symbols" in t for t in texts)
    assert any("idle task found by its comm" in t for t in texts)
    assert bad.symbols.source == "VMCOREINFO"
    assert pids == _pids(clean)


def test_damaged_btf_keeps_the_types_before_the_damage(clean: LinuxOs, linux_ram: Path, tmp_path: Path) -> None:
    start, stop = clean.symbols.get("__start_BTF"), clean.symbols.get("__stop_BTF")
    assert start and stop
    page = clean.kmem.translate(start + (stop - start) * 3 // 4) >> 12  # late in the type section
    path = _damaged(linux_ram, tmp_path / "b.raw", [page], random.Random(2))
    bad = LinuxOs(RawFileMemory(path))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        pids = _pids(bad)
    assert pids == _pids(clean)
    damage = [str(w.message) for w in rec if issubclass(w.category, DegradedWarning)]
    assert not damage or "BTF damaged" in damage[0]


def test_random_page_damage_still_lists_processes(clean: LinuxOs, linux_ram: Path, tmp_path: Path) -> None:
    """The issue's experiment: 0.1 % of pages overwritten at random, 17 seeds (9 of 17 failed before).
    A run may still end in a documented error when the damage hits what no layer can do without (the
    kernel's own page tables, VMCOREINFO): at most 2 of 17. A run that misses processes says so."""
    n = linux_ram.stat().st_size // 4096
    want = set(_pids(clean))
    results: list[str] = []
    listed = 0
    for seed in range(17):
        rng = random.Random(seed)
        path = _damaged(linux_ram, tmp_path / "r.raw", rng.sample(range(n), n // 1000), rng)
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            try:
                got = set(_pids(LinuxOs(RawFileMemory(path))))
            except PymemflowError as e:
                results.append(f"seed {seed}: {type(e).__name__}: {e}")
                continue
        results.append(f"seed {seed}: {len(got & want)} of {len(want)}, {len(rec)} warnings")
        listed += len(got & want) >= 10
        if not want <= got:
            assert rec, f"seed {seed}: {len(want - got)} processes missing without a warning"
    assert listed >= 15, "\n".join(results)


def test_dmesg_with_a_torn_vmcoreinfo_is_a_clean_error(linux_ram: Path) -> None:
    """Found by the fuzz suite: a VMCOREINFO copy missing one printk OFFSET line ended in KeyError."""
    from pymemflow.errors import NotFoundError

    lx = LinuxOs(RawFileMemory(linux_ram))
    assert lx.dmesg()
    del lx.vmcoreinfo.offsets["printk_ringbuffer.text_data_ring"]
    with pytest.raises(NotFoundError, match="no printk_ringbuffer.text_data_ring"):
        lx.dmesg()
