"""Threads of a Windows process: the ETHREAD list (``_EPROCESS.ThreadListHead`` /
``_ETHREAD.ThreadListEntry``), read in one batch after a bounded, loop-safe walk.

Per thread: ``Cid`` (pid, tid), ``Win32StartAddress`` (the routine the creator passed; for user threads
``StartAddress`` is ntdll's RtlUserThreadStart) or ``StartAddress``, the module it falls in (the
process's modules, then the kernel's), ``KTHREAD.State``, create/exit FILETIMEs, the TEB.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import NotFoundError, PymemflowError
from ..base import ModuleInfo, Process
from ..forensics import ThreadInfo, iso_from_filetime
from .fields import maybe
from .listwalk import walk_list

if TYPE_CHECKING:
    from .kernel import Win32Kernel

MAX_THREADS = 1 << 16
"""Threads per process at most (a bound on smeared lists; real processes have far fewer)."""

KTHREAD_STATES = ("Initialized", "Ready", "Running", "Standby", "Terminated", "Waiting", "Transition",
                  "DeferredReady", "GateWaitObsolete", "WaitingForProcessInSwap")
"""``_KTHREAD_STATE`` names (the enum has been stable since Windows Vista)."""


@dataclass(frozen=True)
class EthreadLayout:
    list_entry: int
    cid: int
    start: int | None
    win32_start: int | None
    create: int | None
    exit: int | None
    state: int | None
    teb: int | None
    span: int
    ptr: int

    @classmethod
    def from_offsets(cls, off: Any) -> EthreadLayout:
        entry = maybe(off, "_ETHREAD.ThreadListEntry")
        cid = maybe(off, "_ETHREAD.Cid")
        head = maybe(off, "_EPROCESS.ThreadListHead")
        if entry is None or cid is None or head is None:
            raise NotFoundError("threads need _EPROCESS.ThreadListHead, _ETHREAD.ThreadListEntry and _ETHREAD.Cid; "
                                f"offsets {off.source} lack them")
        tcb = maybe(off, "_ETHREAD.Tcb") or 0
        state = maybe(off, "_KTHREAD.State")
        teb = maybe(off, "_KTHREAD.Teb")
        d = dict(list_entry=entry, cid=cid, start=maybe(off, "_ETHREAD.StartAddress"),
                 win32_start=maybe(off, "_ETHREAD.Win32StartAddress"), create=maybe(off, "_ETHREAD.CreateTime"),
                 exit=maybe(off, "_ETHREAD.ExitTime"), state=None if state is None else tcb + state,
                 teb=None if teb is None else tcb + teb)
        ptr = off.pointer_size
        span = max(v for v in d.values() if v is not None) + 2 * ptr
        return cls(span=max(span, off.size("_ETHREAD") or 0), ptr=ptr, **d)  # type: ignore[arg-type]


class ModuleRanges:
    """Which module an address falls in (sorted bases, one bisect per lookup)."""

    def __init__(self, mods: list[ModuleInfo]) -> None:
        self.mods = sorted((m for m in mods if m.size), key=lambda m: m.base)
        self.bases = [m.base for m in self.mods]

    def name_of(self, addr: int) -> str:
        i = bisect.bisect_right(self.bases, addr) - 1
        if i >= 0 and addr < self.mods[i].base + self.mods[i].size:
            return self.mods[i].name
        return ""


def process_threads(k: Win32Kernel, proc: Process, kernel_mods: ModuleRanges) -> tuple[list[ThreadInfo], list[str]]:
    """Threads of one process (bounded walk; unreadable threads become warnings, not zeros)."""
    lay = EthreadLayout.from_offsets(k.offsets)
    info = proc.info
    head = info.address + k.offsets["_EPROCESS.ThreadListHead"]
    what = f"pid {info.pid} ThreadListHead"
    walk = walk_list(k.kmem, head, ptr_size=lay.ptr, cap=MAX_THREADS, what=what, link_offset=lay.list_entry,
                     span=lay.span)
    warnings = list(walk.warnings)
    ethreads = [e - lay.list_entry for e in walk.entries]
    if not ethreads:
        return [], warnings
    res = k.kmem.read_batch(ethreads, lay.span)
    bad = {f.index for f in res.failures}
    user = ModuleRanges([]) if info.extra.get("kernel") else _user_modules(k, proc, warnings)
    fmt = "<Q" if lay.ptr == 8 else "<I"
    out: list[ThreadInfo] = []
    for i, et in enumerate(ethreads):
        if i in bad:
            warnings.append(f"{what}: ETHREAD {et:#x} unreadable; skipped")
            continue
        raw = res.piece(i)

        def ptr_at(off: int | None, raw: bytes = raw) -> int:
            return 0 if off is None else int(struct.unpack_from(fmt, raw, off)[0])

        def time_at(off: int | None, raw: bytes = raw) -> str | None:
            return None if off is None else iso_from_filetime(struct.unpack_from("<q", raw, off)[0])

        pid, tid = ptr_at(lay.cid), ptr_at(lay.cid + lay.ptr)
        if pid != info.pid:
            warnings.append(f"{what}: ETHREAD {et:#x} belongs to pid {pid}, not {info.pid} (smeared list?)")
        start, win32_start = ptr_at(lay.start), ptr_at(lay.win32_start)
        addr = win32_start or start
        state = raw[lay.state] if lay.state is not None else None
        out.append(ThreadInfo(
            tid=tid, pid=pid, start_address=addr,
            start_module=user.name_of(addr) or kernel_mods.name_of(addr),
            state="" if state is None else (KTHREAD_STATES[state] if state < len(KTHREAD_STATES) else f"state {state}"),
            create_time=time_at(lay.create), exit_time=time_at(lay.exit), address=et, teb=ptr_at(lay.teb),
            extra={"start_address": start, "win32_start_address": win32_start,
                   "start_address_module": user.name_of(start) or kernel_mods.name_of(start)}))
    return out, warnings


def _user_modules(k: Win32Kernel, proc: Process, warnings: list[str]) -> ModuleRanges:
    try:
        return ModuleRanges(k.module_list(proc))
    except PymemflowError as e:
        warnings.append(f"pid {proc.info.pid}: modules unreadable ({e}); start modules from kernel modules only")
        return ModuleRanges([])


def all_threads(k: Win32Kernel, proc: Process | None) -> list[ThreadInfo]:
    """Threads of ``proc`` or of every listed process; walk warnings are reported by the kernel."""
    try:
        kmods = ModuleRanges(k.kernel_modules())
    except PymemflowError:
        kmods = ModuleRanges([])
    procs = [proc] if proc is not None else k.process_list()
    out: list[ThreadInfo] = []
    warnings: list[str] = []
    for p in procs:
        if p.info.extra.get("kernel"):
            continue  # the kernel pseudo-process (pid 0) has no EPROCESS; System (pid 4) has the threads
        got, w = process_threads(k, p, kmods)
        out += got
        warnings += w
    k._warn(warnings)
    return out
