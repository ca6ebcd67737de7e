"""Injected code: VADs that are writable and executable (``VadS`` private memory above all: no
image file behind it), as volatility's malfind flags them.

The VAD flags give the protection (an MM_* code, printed as its PAGE_* name); each hit carries the
region's first bytes and, when capstone is installed (the ``disasm`` extra), their disassembly.
Regions whose first page is unreadable or all zero are skipped (nothing was written there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import PymemflowError
from ..base import MemoryRegion, Process
from ..forensics import MalfindHit, disassemble

if TYPE_CHECKING:
    from .kernel import Win32Kernel

FIRST_BYTES = 64
PAGE_NAMES = {"---": "PAGE_NOACCESS", "r--": "PAGE_READONLY", "--x": "PAGE_EXECUTE", "r-x": "PAGE_EXECUTE_READ",
              "rw-": "PAGE_READWRITE", "rc-": "PAGE_WRITECOPY", "rwx": "PAGE_EXECUTE_READWRITE",
              "rcx": "PAGE_EXECUTE_WRITECOPY"}
"""The eight MM_* base protections (vad.py's strings) as the PAGE_* names Windows tools print."""


def suspicious(r: MemoryRegion) -> bool:
    """Writable and executable (volatility's rule): any VAD that is PAGE_EXECUTE_READWRITE, and
    private memory that is PAGE_EXECUTE_WRITECOPY. (Execute-read memory is suspicious only with a
    dirty page, which the VAD does not record: left out.)"""
    return r.protection == "rwx" or (r.kind == "private" and r.protection == "rcx")


def process_malfind(k: Win32Kernel, proc: Process) -> list[MalfindHit]:
    info = proc.info
    try:
        regions = [r for r in k.vad_regions(proc) if suspicious(r)]
    except PymemflowError as e:
        k._warn([f"malfind: pid {info.pid}: no VAD tree ({e})"])
        return []
    if not regions:
        return []
    res = proc.memory.read_batch([r.start for r in regions], FIRST_BYTES)
    bad = {f.index for f in res.failures}
    hits = []
    for i, r in enumerate(regions):
        data = bytes(res.piece(i))
        if i in bad or not any(data):
            continue
        hits.append(MalfindHit(info.pid, info.name, r.start, r.end, PAGE_NAMES.get(r.protection, r.protection),
                               r.kind, data,
                               disassemble(data, r.start, info.arch), {"path": r.path}))
    return hits


def all_malfind(k: Win32Kernel, proc: Process | None) -> list[MalfindHit]:
    procs = [proc] if proc is not None else k.process_list()
    out: list[MalfindHit] = []
    for p in procs:
        if p.info.extra.get("kernel") or not p.info.extra.get("vad_root"):
            continue
        out += process_malfind(k, p)
    return out
