"""CPU registers of a QEMU guest from QMP (``info registers -a``), as hints for OS layers.

Why: an OS layer on a live VM has to find a page-table root and the paging mode; QEMU knows both.
We pass the raw facts (CR0/CR3/CR4/EFER/RIP/CPL/IDT base per CPU) as ``hints["cpu_registers"]`` and
derive ``hints["arch"]`` from the paging bits. They are taken once, when the connector opens: a
running guest switches CR3 all the time, so treat them as "a valid root", not "the current one".
"""

from __future__ import annotations

import re
from typing import Any

_CPU_RE = re.compile(r"^CPU#(\d+)", re.M)
_REG_RE = re.compile(r"\b(RIP|EIP|CR0|CR2|CR3|CR4|EFER|CPL)\s*=\s*([0-9a-fA-F]+)")
_IDT_RE = re.compile(r"^IDT=\s*([0-9a-fA-F]+)", re.M)

CR0_PG = 1 << 31
CR4_PAE = 1 << 5
CR4_LA57 = 1 << 12
EFER_LMA = 1 << 10


def parse_registers(text: str) -> list[dict[str, Any]]:
    """Per-CPU register dicts (lower-case names, ints) from ``info registers -a`` (or one CPU's)."""
    starts = [(m.start(), int(m.group(1))) for m in _CPU_RE.finditer(text)] or [(0, 0)]
    out = []
    for k, (pos, cpu) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(text)
        chunk = text[pos:end]
        regs: dict[str, Any] = {"cpu": cpu}
        for name, val in _REG_RE.findall(chunk):
            key = "rip" if name in ("RIP", "EIP") else name.lower()
            regs.setdefault(key, int(val, 16) if key != "cpl" else int(val))
        m = _IDT_RE.search(chunk)
        if m:
            regs["idt_base"] = int(m.group(1), 16)
        if "cr3" in regs:
            out.append(regs)
    return out


def paging_arch(regs: dict[str, Any]) -> str | None:
    """pymemflow arch name from CR0/CR4/EFER: x64la57, x64, x86pae, x86; None when paging is off."""
    cr0, cr4, efer = regs.get("cr0", 0), regs.get("cr4", 0), regs.get("efer", 0)
    if not cr0 & CR0_PG:
        return None
    if efer & EFER_LMA:
        return "x64la57" if cr4 & CR4_LA57 else "x64"
    return "x86pae" if cr4 & CR4_PAE else "x86"
