"""Injected code in Linux processes: executable memory no program file explains.

A mapping is reported when it is executable and anonymous (no ``vm_file``: shellcode, a JIT, a reflective
loader), writable and executable at once (whatever backs it), or backed by a deleted file (``memfd`` /
unlinked payloads). The vDSO is the kernel's own and is left out. Each hit carries its first bytes
(:data:`FIRST_BYTES`) and, where ``capstone`` is installed, their disassembly.
"""

from __future__ import annotations

from ...errors import PymemflowError
from ...mem.view import MemoryView
from ..base import MemoryRegion
from ..forensics import MalfindHit, disassemble

FIRST_BYTES = 64


def suspicious(r: MemoryRegion) -> str | None:
    """Why region ``r`` is reported ('anonymous', 'rwx-file', 'deleted-file'), or None."""
    if "x" not in r.protection or r.kind == "vdso":
        return None
    if r.kind in ("private", "heap", "stack"):
        return "anonymous" if r.kind == "private" else r.kind
    if r.path.endswith(" (deleted)"):
        return "deleted-file"
    if "w" in r.protection:
        return "rwx-file"
    return None


def hits(pid: int, name: str, arch: str, regions: list[MemoryRegion], mem: MemoryView) -> list[MalfindHit]:
    out = []
    for r in regions:
        why = suspicious(r)
        if why is None:
            continue
        try:
            data = mem.read(r.start, min(FIRST_BYTES, r.end - r.start))
        except PymemflowError:
            data = b""  # not resident (never touched, or paged out): reported without bytes
        out.append(MalfindHit(pid, name, r.start, r.end, r.protection, why, data,
                              disassemble(data, r.start, arch) if data else [],
                              extra={"path": r.path} if r.path else {}))
    return out
