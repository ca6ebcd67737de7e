"""malfind on the synthetic machines: the injected PAGE_EXECUTE_READWRITE private region of explorer.exe
is the only hit, with its bytes and capstone's disassembly; volatility3's windows.malfind agrees."""

from __future__ import annotations

from typing import Any

import pytest

from pymemflow.demo import SyntheticImage
from pymemflow.os.win32.kernel import Win32Kernel
from pymemflow.os.win32.malfind import disassemble

from .conftest import phys_of, vol


def test_malfind_finds_the_injected_region(machine: tuple[SyntheticImage, Win32Kernel]) -> None:
    img, k = machine
    inj = img.facts["injected"]
    hits = k.malfind()
    assert [(h.pid, h.process, h.start, h.end, h.protection, h.kind) for h in hits] == [
        (inj["pid"], inj["process"], inj["start"], inj["end"], "PAGE_EXECUTE_READWRITE", "private")]
    assert hits[0].first_bytes == bytes.fromhex(inj["first_bytes"])
    assert k.malfind(k.process("notepad.exe")) == []
    assert [h.start for h in k.malfind(k.process(inj["pid"]))] == [inj["start"]]


def test_malfind_disassembles_with_capstone(machine: tuple[SyntheticImage, Win32Kernel]) -> None:
    pytest.importorskip("capstone", reason="capstone not installed (the disasm extra)")
    img, k = machine
    (hit,) = k.malfind()
    start = img.facts["injected"]["start"]
    lines = hit.disassembly
    assert lines[0] == f"{start:#x}: nop" and lines[15] == f"{start + 15:#x}: nop"
    text = "\n".join(lines[16:])
    peb = "gs:[rcx + 0x60]" if img.facts["arch"] == "x64" else "fs:[ecx + 0x30]"
    assert f"{start + 16:#x}: cld" in text and peb in text and "lods" in text and "ret" in text


def test_disassemble_without_code_is_empty() -> None:
    pytest.importorskip("capstone", reason="capstone not installed (the disasm extra)")
    assert disassemble(b"", 0x1000, "x64") == []
    assert disassemble(b"\xc3", 0x1000, "x86") == ["0x1000: ret"]


def test_volatility_malfind_agrees(vol_env: Any) -> None:
    img = vol_env[0]
    inj = img.facts["injected"]
    rows = vol(vol_env, "windows.malfind")
    got = [(r["PID"], r["Process"], r["Start VPN"], r["End VPN"], r["Tag"], r["Protection"], r["PrivateMemory"])
           for r in rows]
    assert got == [(inj["pid"], inj["process"], inj["start"], inj["end"] - 1, "VadS", inj["protection"], 1)]
    assert bytes.fromhex(rows[0]["Hexdump"]) == bytes.fromhex(inj["first_bytes"])
    if disassemble(b"\xc3", 0, "x64"):  # capstone here: volatility used it too, the same instructions
        theirs = [" ".join(line.replace("\t", " ").split()) for line in rows[0]["Disasm"].strip('"\n').splitlines()]
        (hit,) = [h for h in Win32Kernel.open(phys_of(img), progress=False).malfind()]
        assert theirs == [" ".join(line.split()) for line in hit.disassembly]
