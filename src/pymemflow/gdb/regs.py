"""Registers for ``g``: gdb's register order per architecture, target descriptions, CPU state
from dump notes / QMP.

Why these orders: they are gdb's own (amd64: ``amd64_register_names``; i386: ``i386_register_names``;
aarch64: x0..x30, sp, pc, cpsr). A ``g`` reply may stop early; gdb marks the rest unavailable.
"""

from __future__ import annotations

import re
import struct
from typing import Any

GDB_ARCH = {"x64": "i386:x86-64", "x64la57": "i386:x86-64", "x86": "i386", "x86pae": "i386",
            "aarch64": "aarch64"}

AMD64_REGS: list[tuple[str, int]] = (
    [(n, 8) for n in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12",
                      "r13", "r14", "r15", "rip")]
    + [("rflags", 4)] + [(n, 4) for n in ("cs", "ss", "ds", "es", "fs", "gs")])
I386_REGS: list[tuple[str, int]] = [(n, 4) for n in ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "eip",
                                                     "eflags", "cs", "ss", "ds", "es", "fs", "gs")]
AARCH64_REGS: list[tuple[str, int]] = [(f"x{i}", 8) for i in range(31)] + [("sp", 8), ("pc", 8), ("cpsr", 4)]

_ALIASES = {"rflags": ("rflags", "eflags", "rfl"), "eflags": ("eflags", "rflags", "efl", "rfl"),
            "eip": ("eip", "rip"), "rip": ("rip", "eip")}


def layout(arch: str) -> list[tuple[str, int]]:
    gdb = GDB_ARCH.get(arch, "i386:x86-64")
    return {"i386:x86-64": AMD64_REGS, "i386": I386_REGS, "aarch64": AARCH64_REGS}[gdb]


def target_xml(arch: str, osabi: str | None = None) -> str:
    """The target description gdb reads with ``qXfer:features:read:target.xml``: the architecture
    (and OS ABI); gdb then uses its own register set for it."""
    gdb = GDB_ARCH.get(arch, "i386:x86-64")
    abi = f"<osabi>{osabi}</osabi>" if osabi else ""
    return ('<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd">'
            f'<target version="1.0"><architecture>{gdb}</architecture>{abi}</target>')


def pack_registers(arch: str, regs: dict[str, int] | None) -> bytes:
    """The ``g`` reply's bytes (little-endian), zeros for what ``regs`` lacks (or all, when None)."""
    out = bytearray()
    for name, size in layout(arch):
        value = 0
        if regs:
            for alias in _ALIASES.get(name, (name,)):
                if alias in regs:
                    value = int(regs[alias])
                    break
        out += (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    return bytes(out)


def register_offsets(arch: str) -> dict[int, tuple[str, int, int]]:
    """gdb register number -> (name, offset in the g packet, size), for ``p`` requests."""
    out, off = {}, 0
    for i, (name, size) in enumerate(layout(arch)):
        out[i] = (name, off, size)
        off += size
    return out


_GPR_RE = re.compile(r"\b(R[A-Z0-9]{1,2}|E[A-Z]{2}|RIP|EIP|RFL|EFL)\s*=\s*([0-9a-fA-F]+)")
_SEG_RE = re.compile(r"^(ES|CS|SS|DS|FS|GS)\s*=\s*([0-9a-fA-F]{4}) ([0-9a-fA-F]+)", re.M)
_CR_RE = re.compile(r"\b(CR[0234])\s*=\s*([0-9a-fA-F]+)")
_CPU_RE = re.compile(r"^CPU#(\d+)", re.M)


def parse_qemu_registers(text: str) -> list[dict[str, int]]:
    """Per-CPU general registers, segments and control registers from QEMU's ``info registers -a``."""
    starts = [m.start() for m in _CPU_RE.finditer(text)] or [0]
    cpus = []
    for k, pos in enumerate(starts):
        chunk = text[pos : starts[k + 1] if k + 1 < len(starts) else len(text)]
        regs: dict[str, int] = {}
        for name, val in _GPR_RE.findall(chunk):
            key = name.strip().lower()
            key = {"rfl": "rflags", "efl": "eflags"}.get(key, key)
            regs.setdefault(key, int(val, 16))
        for name, sel, base in _SEG_RE.findall(chunk):
            regs[name.lower()] = int(sel, 16)
            if name in ("FS", "GS"):
                regs[f"{name.lower()}_base"] = int(base, 16)
        for name, val in _CR_RE.findall(chunk):
            regs[name.lower()] = int(val, 16)
        if regs:
            cpus.append(regs)
    return cpus


def cpu_states(connector: Any, refresh: bool = True) -> tuple[list[dict[str, int]], str]:
    """CPU states the chain knows and where they came from: QMP now (a live QEMU connector), else
    the registers the connector found at open (ELF dump notes, QMP at open). Empty when none."""
    obj = connector
    for _ in range(16):
        if obj is None:
            break
        qmp = getattr(obj, "qmp", None)
        if refresh and callable(qmp):
            try:
                text = qmp("human-monitor-command", **{"command-line": "info registers -a"})
                cpus = parse_qemu_registers(str(text))
                if cpus:
                    return cpus, "QMP (info registers)"
            except Exception:  # a paused/closed monitor: fall back to what was known at open
                pass
        hinted = getattr(obj, "hints", {}).get("cpu_registers")
        if hinted:
            return [dict(c) for c in hinted], "the connector's CPU notes"
        obj = getattr(obj, "inner", None)
    return [], ""


def pick_cpu(cpus: list[dict[str, int]], dtbs: tuple[int, ...]) -> dict[str, int] | None:
    """The CPU running on one of ``dtbs`` (a process's page-table roots); with no dtbs (kernel or
    physical target) the first CPU."""
    if not cpus:
        return None
    if not dtbs:
        return cpus[0]
    want = {d & ~0xFFF & ((1 << 52) - 1) for d in dtbs if d}
    for c in cpus:
        if (int(c.get("cr3", 0)) & ~0xFFF & ((1 << 52) - 1)) in want:
            return c
    return None


def u32(v: int) -> bytes:
    return struct.pack("<I", v & 0xFFFFFFFF)
