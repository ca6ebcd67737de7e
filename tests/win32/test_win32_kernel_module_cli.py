"""Kernel modules' exports, imports and sections from the CLI (``-p kernel -m NAME``) on the demo
machine, checked against the PE files the builder placed, parsed by pefile from memory read through
the page walker (not the OS layer)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pefile
import pytest
from win32_util import phys_of

from pymemflow.arch import VirtualMemory


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pymemflow", "--json", "-c", "demo:win10", "-o", "win32", *args],
                          capture_output=True, text=True, timeout=300)


def _pe(img: Any, name: str) -> tuple[int, pefile.PE]:
    mod = next(m for m in img.facts["kernel_modules"] if m["name"] == name)
    vm = VirtualMemory(phys_of(img), "x64", img.facts["dtb"])
    head = vm.read(mod["base"], 0x1000)
    size = pefile.PE(data=head, fast_load=True).OPTIONAL_HEADER.SizeOfImage
    data = bytearray(size)
    for off in range(0, size, 0x1000):  # page by page: an image may have unmapped pages
        try:
            data[off : off + 0x1000] = vm.read(mod["base"] + off, min(0x1000, size - off))
        except Exception:  # noqa: BLE001 - unmapped page of the image: zeros, as in the file
            pass
    pe = pefile.PE(data=bytes(data), fast_load=True)
    pe.parse_data_directories()
    return mod["base"], pe


@pytest.mark.parametrize("name", ["ntoskrnl.exe", "hal.dll"])
def test_kernel_module_exports_and_sections(win10_image: Any, name: str) -> None:
    base, pe = _pe(win10_image, name)
    want = {(e.name.decode(), base + e.address) for e in pe.DIRECTORY_ENTRY_EXPORT.symbols}
    assert want
    r = _cli("exports", "-p", "kernel", "-m", name)
    assert r.returncode == 0, r.stderr
    assert {(e["name"], e["address"]) for e in json.loads(r.stdout)} == want
    r = _cli("sections", "-p", "kernel", "-m", name.upper())  # case-insensitive
    assert r.returncode == 0, r.stderr
    got = [(s["name"], s["address"], s["size"]) for s in json.loads(r.stdout)]
    assert got == [(s.Name.rstrip(b"\0").decode(), base + s.VirtualAddress, s.Misc_VirtualSize) for s in pe.sections]


@pytest.mark.parametrize("name", ["disk.sys", "ntoskrnl.exe"])
def test_kernel_module_imports(win10_image: Any, name: str) -> None:
    base, pe = _pe(win10_image, name)
    want = sorted((d.dll.decode().lower(), (i.name or b"").decode(), i.address)
                  for d in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []) for i in d.imports)
    r = _cli("imports", "-p", "kernel", "-m", name)
    assert r.returncode == 0, r.stderr
    assert sorted((x["module"].lower(), x["name"] or "", x["address"]) for x in json.loads(r.stdout)) == want
    # the demo's kernel modules import nothing (its PE builder gives drivers no import table), so this
    # checks agreement with pefile and that the command works on kernel modules, not import parsing
    # itself (tests/win32/test_win32_pe.py does that on real linked PE files)
    assert want == []


def test_kernel_module_asked_of_a_process_says_where_it_is() -> None:
    r = _cli("exports", "-p", "4", "-m", "ntoskrnl.exe")
    assert r.returncode == 1
    assert "ntoskrnl.exe is a kernel module: use -p kernel" in r.stderr
    r = _cli("exports", "-p", "4", "-m", "nosuch.dll")
    assert r.returncode == 1 and "no module 'nosuch.dll' in process 4" in r.stderr and "kernel module" not in r.stderr
