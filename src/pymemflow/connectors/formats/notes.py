"""Facts pulled out of Linux VMCOREINFO text for the hints (kernel base, page-table root, ...)."""

from __future__ import annotations

import struct
from typing import Any

from .source import FileSource

NT_PRSTATUS = 1


def parse_vmcoreinfo(text: str) -> dict[str, Any]:
    """Hints derivable from VMCOREINFO: ``kernel_release``, ``phys_base``, ``kaslr_offset``, symbols.

    Only well-formed ``KEY=VALUE`` lines are used; anything else is ignored (the raw text stays
    available in ``hints["vmcoreinfo"]``).
    """
    out: dict[str, Any] = {}
    fields: dict[str, str] = {}
    for line in text.splitlines()[:10000]:
        k, sep, v = line.partition("=")
        if sep:
            fields[k.strip()] = v.strip()
    if "OSRELEASE" in fields:
        out["kernel_release"] = fields["OSRELEASE"]
    for key, hint, base in (("KERNELOFFSET", "kaslr_offset", 16), ("NUMBER(phys_base)", "phys_base", 10)):
        if key in fields:
            try:
                out[hint] = int(fields[key], base)
            except ValueError:
                pass
    syms: dict[str, int] = {}
    for k, v in fields.items():
        if k.startswith("SYMBOL(") and k.endswith(")"):
            try:
                syms[k[7:-1]] = int(v, 16)
            except ValueError:
                continue
    if syms:
        out["vmcoreinfo_symbols"] = syms
    return out


# x86-64 elf_prstatus: pr_reg at 112, the kernel's struct user_regs_struct order.
_PRSTATUS64_REGS = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
                    "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "rflags", "rsp", "ss", "fs_base",
                    "gs_base", "ds", "es", "fs", "gs")
# i386 elf_prstatus: pr_reg at 72.
_PRSTATUS32_REGS = ("ebx", "ecx", "edx", "esi", "edi", "ebp", "eax", "ds", "es", "fs", "gs", "orig_eax",
                    "eip", "cs", "eflags", "esp", "ss")
# QEMU's QEMUCPUState (target/i386/arch_dump.c): version, size, 18 GPRs + rip/rflags, 10 segments
# of 24 bytes, then cr[5]: CR3 is at 8 + 18*8 + 240 + 3*8 = 416.
_QEMU_GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11", "r12",
              "r13", "r14", "r15", "rip", "rflags")
_QEMU_CR_OFFSET = 8 + 18 * 8 + 10 * 24



def parse_elf_notes(blob: bytes, e: str, elf64: bool, src: FileSource | None = None,
                    base: int = 0) -> dict[str, Any]:
    """Hints from a block of ELF notes: ``cpu_registers`` (CORE prstatus merged with QEMU's
    CPU state), ``dtb`` (first non-zero CR3), ``vmcoreinfo`` and what it says."""
    hints: dict[str, Any] = {}
    cpus_core: list[dict[str, int]] = []
    cpus_qemu: list[dict[str, int]] = []
    pos, end = 0, len(blob)
    while pos + 12 <= end:
        namesz, descsz, ntype = struct.unpack_from(e + "III", blob, pos)
        name_at = pos + 12
        desc_at = name_at + ((namesz + 3) & ~3)
        nxt = desc_at + ((descsz + 3) & ~3)
        if nxt > end + 3:
            if src is not None:
                raise src.error(base + pos, "note", f"note of {namesz}+{descsz} bytes runs past its segment")
            break
        name = blob[name_at : name_at + namesz].rstrip(b"\0")
        desc = blob[desc_at : desc_at + descsz]
        if name == b"CORE" and ntype == NT_PRSTATUS:
            regs = _prstatus(desc, e, elf64)
            if regs:
                cpus_core.append(regs)
        elif name == b"QEMU":
            regs = _qemu_cpu_state(desc, e)
            if regs:
                cpus_qemu.append(regs)
        elif name == b"VBCPU":
            regs = _vbox_cpu(desc, e)
            if regs:
                cpus_qemu.append(regs)
        elif name == b"VMCOREINFO":
            text = desc.rstrip(b"\0").decode("utf-8", "replace")
            hints["vmcoreinfo"] = text
            hints.update(parse_vmcoreinfo(text))
        pos = nxt
    cpus: list[dict[str, int]] = []
    for i in range(max(len(cpus_core), len(cpus_qemu))):
        d: dict[str, int] = {}
        if i < len(cpus_core):
            d.update(cpus_core[i])
        if i < len(cpus_qemu):
            d.update(cpus_qemu[i])
        cpus.append(d)
    if cpus:
        hints["cpu_registers"] = cpus
        for c in cpus:
            if c.get("cr3"):
                hints["dtb"] = c["cr3"] & ~0xFFF & ((1 << 52) - 1)
                break
    return hints


def _prstatus(desc: bytes, e: str, elf64: bool) -> dict[str, int]:
    if elf64 and len(desc) >= 112 + 27 * 8:
        vals = struct.unpack_from(e + "27Q", desc, 112)
        return dict(zip(_PRSTATUS64_REGS, vals, strict=True))
    if not elf64 and len(desc) >= 72 + 17 * 4:
        vals = struct.unpack_from(e + "17I", desc, 72)
        return dict(zip(_PRSTATUS32_REGS, vals, strict=True))
    return {}


def _qemu_cpu_state(desc: bytes, e: str) -> dict[str, int]:
    if len(desc) < _QEMU_CR_OFFSET + 5 * 8:
        return {}
    version, size = struct.unpack_from(e + "II", desc, 0)
    if version != 1:
        return {}
    regs = dict(zip(_QEMU_GPRS, struct.unpack_from(e + "18Q", desc, 8), strict=True))
    for i, v in enumerate(struct.unpack_from(e + "5Q", desc, _QEMU_CR_OFFSET)):
        regs[f"cr{i}"] = v
    return regs




def refine_arch(hints: dict[str, Any]) -> None:
    """Use the dumped CR4 to tell PAE from 2-level i386 paging and LA57 from 4-level x86-64."""
    cpus = hints.get("cpu_registers") or []
    cr4 = next((c["cr4"] for c in cpus if c.get("cr4")), None)
    if cr4 is None:
        return
    if hints.get("arch") == "x86" and cr4 & 0x20:
        hints["arch"] = "x86pae"
    elif hints.get("arch") == "x64" and cr4 & 0x1000:
        hints["arch"] = "x64la57"


# VirtualBox's DBGFCORECPU (VBox/vmm/dbgfcorefmt.h, note "VBCPU"): 18 u64 registers, six 24-byte
# segment selectors, then cr0, cr2, cr3, cr4.
_VBOX_GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
              "rip", "rsp", "rbp", "rflags")
_VBOX_CR_OFFSET = 18 * 8 + 6 * 24


def _vbox_cpu(desc: bytes, e: str) -> dict[str, int]:
    if len(desc) < _VBOX_CR_OFFSET + 32:
        return {}
    regs = dict(zip(_VBOX_GPRS, struct.unpack_from(e + "18Q", desc, 0), strict=True))
    cr0, cr2, cr3, cr4 = struct.unpack_from(e + "4Q", desc, _VBOX_CR_OFFSET)
    regs.update({"cr0": cr0, "cr2": cr2, "cr3": cr3, "cr4": cr4})
    return regs
