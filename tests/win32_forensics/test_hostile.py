"""Corrupt handle tables and key chains: the walks stay bounded, warn, and keep what they could read."""

from __future__ import annotations

import mmap
import struct
import time

import pytest

from pymemflow.demo import SyntheticImage
from pymemflow.os.win32.kernel import Win32Kernel

from .conftest import by_pid, phys_of


def corrupted(img: SyntheticImage, writes: list[tuple[int, bytes]]) -> Win32Kernel:
    """A fresh kernel over a copy of ``img`` with ``writes`` (kernel VA, bytes) applied."""
    k = Win32Kernel.open(phys_of(img), progress=False)
    mm = mmap.mmap(-1, img.size)
    img.fill(mm)
    for va, data in writes:
        pa = k.kmem.translate(va)
        mm[pa : pa + len(data)] = data
    return Win32Kernel.open(phys_of(img, mm), progress=False)


def table_of(img: SyntheticImage, name: str) -> tuple[Win32Kernel, int, int]:
    """(kernel, address of the process's _HANDLE_TABLE.TableCode, its value)."""
    k = Win32Kernel.open(phys_of(img), progress=False)
    proc = k.process(name)
    table = k.kmem.read_u64(proc.info.address + k.offsets["_EPROCESS.ObjectTable"])
    at = table + k.offsets["_HANDLE_TABLE.TableCode"]
    return k, at, k.kmem.read_u64(at)


def test_impossible_level_count_is_a_warning(images: dict[str, SyntheticImage]) -> None:
    img = images["win10"]
    _, at, code = table_of(img, "notepad.exe")
    k = corrupted(img, [(at, struct.pack("<Q", code | 3))])
    with pytest.warns(Warning, match="3 levels"):
        assert k.handles(k.process("notepad.exe")) == []
    assert k.handles(k.process("explorer.exe"))  # the other processes still answer


def test_table_of_pointers_to_one_page_reads_it_once(images: dict[str, SyntheticImage]) -> None:
    """A two-level table whose 512 pointers all name the same entry page (and a self-pointer)."""
    img = images["win10"]
    pid = img.facts["big_handle_table"]
    k0, at, code = table_of(img, by_pid(img)[pid]["name"])
    top = code & ~3
    first = k0.kmem.read_u64(top)
    k = corrupted(img, [(top, struct.pack("<Q", first) * 511 + struct.pack("<Q", top))])
    t = time.perf_counter()
    with pytest.warns(Warning, match="repeat a page"):
        rows = k.handles(k.process(pid))
    assert time.perf_counter() - t < 30
    want = [h for h in by_pid(img)[pid]["handles"] if h["handle"] < 0x400]
    assert [(h.handle, h.name) for h in rows][: len(want)] == [(h["handle"], h["name"]) for h in want]


def test_key_control_block_loop_is_cut(images: dict[str, SyntheticImage]) -> None:
    img = images["win10"]
    k0 = Win32Kernel.open(phys_of(img), progress=False)
    key = next(h for h in k0.handles(k0.process("notepad.exe"), "Key"))
    kcb = k0.kmem.read_u64(key.address + k0.offsets["_CM_KEY_BODY.KeyControlBlock"])
    parent_at = kcb + k0.offsets["_CM_KEY_CONTROL_BLOCK.ParentKcb"]
    parent = k0.kmem.read_u64(parent_at)
    # the parent's parent points back at the key's own block: a cycle that never reaches the root
    k = corrupted(img, [(parent + k0.offsets["_CM_KEY_CONTROL_BLOCK.ParentKcb"], struct.pack("<Q", kcb))])
    with pytest.warns(Warning, match="control block chain broken"):
        rows = k.handles(k.process("notepad.exe"), "Key")
    assert rows[0].handle == key.handle and rows[0].name.endswith("CurrentVersion")
