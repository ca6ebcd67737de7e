"""The keyboard state win32k keeps for ``GetAsyncKeyState``: 256 keys, 2 bits each (64 bytes).

Bit ``(vk % 4) * 2`` of byte ``vk // 4`` is "down". Where the array lives:

* Windows 10: ``gafAsyncKeyState``, exported by ``win32kbase.sys`` (session space: read it through a
  process of the interactive session, e.g. winlogon.exe / csrss.exe / explorer.exe).
* Windows 11: per-session state reached from ``gSessionGlobalSlots`` of ``win32ksgd.sys``
  (slot 0 -> session globals -> user-session state), the array at a build-dependent offset.
  ``gSessionGlobalSlots`` is found by export when present, else by the ``mov rax, [rip+X];
  mov rax, [rax+rcx*8]`` instruction pattern that loads it.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Protocol

from ...errors import NotFoundError, OsLayerError, PymemflowError
from ...mem.view import MemoryView
from ..base import ModuleInfo, Process, ProcessInfo
from . import pe
from .discovery import KernelFacts

STATE_BYTES = 64
SESSION_PROCESSES = ("winlogon.exe", "csrss.exe", "explorer.exe", "dwm.exe")
WIN11_STATE_OFFSET = {22000: 0x3690, 22621: 0x36A8, 22631: 0x36A8}
"""Offset of gafAsyncKeyState in the Windows 11 user-session state, by build (nearest older used)."""
_SLOTS_PATTERN = re.compile(rb"\x48\x8B\x05(....)\x48\x8B\x04\xC8", re.S)


def is_down(state: bytes, vk: int) -> bool:
    """Whether virtual key ``vk`` (0..255) is down in a 64-byte async key state."""
    if not 0 <= vk < 256:
        raise ValueError(f"virtual key {vk} out of range 0..255")
    return bool(state[vk // 4] & (1 << ((vk % 4) * 2)))


def down_keys(state: bytes) -> list[int]:
    return [vk for vk in range(256) if is_down(state, vk)]


def win11_state_offset(build: int) -> int:
    known = [b for b in sorted(WIN11_STATE_OFFSET) if b <= build]
    return WIN11_STATE_OFFSET[known[-1] if known else 22000]


def find_session_slots(mem: MemoryView, base: int) -> int:
    """``gSessionGlobalSlots`` in win32ksgd.sys: its export, else the RIP-relative load pattern."""
    hdr = pe.read_headers(mem, base)
    ex = pe.export_rvas(mem, base, {"gSessionGlobalSlots"}, hdr)
    if "gSessionGlobalSlots" in ex:
        return base + ex["gSessionGlobalSlots"]
    for s in hdr.sections:
        if not s.characteristics & 0x20000000:  # IMAGE_SCN_MEM_EXECUTE
            continue
        size = min(s.virtual_size, 16 << 20)
        data, _ = pe.read_image(mem, base + s.virtual_address, size) if size else (b"", 0)
        m = _SLOTS_PATTERN.search(data)
        if m:
            (disp,) = struct.unpack("<i", m.group(1))
            return base + s.virtual_address + m.start() + 7 + disp
    raise NotFoundError("gSessionGlobalSlots: neither exported nor found by pattern in win32ksgd.sys")


def win11_state_address(mem: MemoryView, slots: int, build: int) -> int:
    """gSessionGlobalSlots -> slot 0 -> session globals -> user-session state, + the build's offset."""
    return mem.read_ptr(mem.read_ptr(mem.read_ptr(slots))) + win11_state_offset(build)


@dataclass
class Keyboard:
    """Reads the async key state; ``state()`` re-reads it each call (live targets change)."""

    mem: MemoryView
    address: int
    how: str

    def state(self) -> bytes:
        return self.mem.read(self.address, STATE_BYTES)

    def is_down(self, vk: int) -> bool:
        return is_down(self.state(), vk)

    def down_keys(self) -> list[int]:
        return down_keys(self.state())


class KeyboardHost(Protocol):
    """What the keyboard reader needs of the kernel (``Win32Kernel`` provides it). A protocol, so
    this module imports nothing from kernel.py, which imports it."""

    @property
    def facts(self) -> KernelFacts: ...

    def kernel_modules(self) -> list[ModuleInfo]: ...

    def process_info_list(self) -> list[ProcessInfo]: ...

    def process_from_info(self, info: ProcessInfo) -> Process: ...


def open_keyboard(k: KeyboardHost) -> Keyboard:
    """Locate the key state of the interactive session; says what was tried when it cannot."""
    kmods = {m.name.lower(): m for m in k.kernel_modules()}
    tried: list[str] = []
    procs = [i for i in k.process_info_list() if i.name.lower() in SESSION_PROCESSES and i.state == "alive"]
    procs.sort(key=lambda i: SESSION_PROCESSES.index(i.name.lower()))
    if not procs:
        raise OsLayerError("keyboard: no session process (winlogon.exe, csrss.exe, explorer.exe) found")
    if k.facts.build >= 22000 and "win32ksgd.sys" in kmods:
        mod = kmods["win32ksgd.sys"]
        for info in procs:
            mem = k.process_from_info(info).memory
            try:
                slots = find_session_slots(mem, mod.base)
                addr = win11_state_address(mem, slots, k.facts.build)
                return Keyboard(mem, addr, f"win32ksgd.sys gSessionGlobalSlots via {info.name}")
            except PymemflowError as e:
                tried.append(f"win32ksgd.sys through {info.name} ({info.pid}): {e}")
    if "win32kbase.sys" in kmods:
        mod = kmods["win32kbase.sys"]
        for info in procs:
            mem = k.process_from_info(info).memory
            try:
                ex = pe.export_rvas(mem, mod.base, {"gafAsyncKeyState"})
                if "gafAsyncKeyState" not in ex:
                    tried.append(f"win32kbase.sys through {info.name}: no gafAsyncKeyState export")
                    continue
                addr = mod.base + ex["gafAsyncKeyState"]
                mem.read(addr, STATE_BYTES)
                return Keyboard(mem, addr, f"win32kbase.sys!gafAsyncKeyState via {info.name}")
            except PymemflowError as e:
                tried.append(f"win32kbase.sys through {info.name} ({info.pid}): {e}")
    else:
        tried.append("no win32kbase.sys among the kernel modules")
    raise OsLayerError("keyboard: async key state not found; tried: " + "; ".join(tried))
