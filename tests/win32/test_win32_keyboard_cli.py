"""Keyboard: Windows 11 session-slot layout on a hand-made win32ksgd.sys image; the ``keys`` CLI command
and OS-generic commands on the demo machine."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

from win32_sparse import SparseMemory

from pymemflow.os.win32 import keyboard

BASE = 0xFFFFF96000000000


def _pe_with_code(mem: SparseMemory, base: int, code: bytes, text_rva: int = 0x1000) -> None:
    hdr = bytearray(0x1000)
    hdr[0:2] = b"MZ"
    struct.pack_into("<I", hdr, 0x3C, 0x80)
    hdr[0x80:0x84] = b"PE\0\0"
    struct.pack_into("<HHIIIHH", hdr, 0x84, 0x8664, 1, 0, 0, 0, 0xF0, 0x22)
    opt = 0x98
    struct.pack_into("<H", hdr, opt, 0x20B)
    struct.pack_into("<II", hdr, opt + 0x38, 0x10000, 0x1000)
    struct.pack_into("<I", hdr, opt + 0x6C, 16)
    sec = opt + 0xF0
    hdr[sec : sec + 8] = b".text\0\0\0"
    struct.pack_into("<IIII", hdr, sec + 8, len(code), text_rva, len(code), text_rva)
    struct.pack_into("<I", hdr, sec + 36, 0x60000020)
    mem.map(base, bytes(hdr))
    mem.map(base + text_rva, code)


def test_win11_session_slots_by_pattern() -> None:
    mem = SparseMemory()
    slots_va = BASE + 0x8000
    code = bytearray(b"\x90" * 0x40)
    insn_at = 0x10
    # mov rax, [rip+disp]; mov rax, [rax+rcx*8]
    disp = slots_va - (BASE + 0x1000 + insn_at + 7)
    code[insn_at : insn_at + 11] = b"\x48\x8B\x05" + struct.pack("<i", disp) + b"\x48\x8B\x04\xC8"
    _pe_with_code(mem, BASE, bytes(code))
    assert keyboard.find_session_slots(mem, BASE) == slots_va
    # slots -> slot array -> session globals -> user session state
    arr, glob, state = 0xFFFF900000010000, 0xFFFF900000020000, 0xFFFF900000030000
    mem.put_u64(slots_va, arr)
    mem.put_u64(arr, glob)
    mem.put_u64(glob, state)
    keys = bytearray(64)
    keys[0x41 // 4] |= 1 << ((0x41 % 4) * 2)
    mem.map(state + 0x36A8, bytes(keys))
    addr = keyboard.win11_state_address(mem, slots_va, 22621)
    assert addr == state + 0x36A8
    kb = keyboard.Keyboard(mem, addr, "test")
    assert kb.down_keys() == [0x41] and kb.is_down(0x41)
    assert keyboard.win11_state_offset(22000) == 0x3690
    assert keyboard.win11_state_offset(26100) == 0x36A8


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pymemflow", *args], capture_output=True, text=True, timeout=120)


def test_keys_cli_on_demo(win10_image) -> None:  # type: ignore[no-untyped-def]
    r = _cli("--json", "-c", "demo:win10", "-o", "win32", "keys", "--once")
    assert r.returncode == 0, r.stderr
    assert [row["vk"] for row in json.loads(r.stdout)] == win10_image.facts["keyboard"]["pressed"]
    r = _cli("-c", "demo:win10", "-o", "win32", "keys", "--count", "2", "--interval", "1ms")
    assert r.returncode == 0 and "SHIFT" in r.stdout
    r = _cli("-c", "demo:win7", "-o", "win32", "keys", "--once")
    assert r.returncode == 1 and "win32kbase.sys" in r.stderr


def test_ps_json_on_demo(win10_image) -> None:  # type: ignore[no-untyped-def]
    r = _cli("--json", "-c", "demo:win10", "-o", "win32", "ps")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [(p["pid"], p["wow64"]) for p in rows] == [(p["pid"], p["wow64"]) for p in win10_image.facts["processes"]]
