"""Process-list layout inferred from memory, for kernels without BTF (Debian's i386 kernels).

No symbol or type file: the idle task's ``comm`` ("swapper/0", NUL-padded to 16 bytes) is found in the
kernel's data, then each field is the one offset that makes *every* task agree with the kernel's own
invariants: ``tasks`` is the list_head whose ring closes with a printable ``comm`` at the same distance
in every member; ``pid``/``tgid`` are two equal adjacent u32 that are 0 for the idle task and distinct
for the others; ``real_parent`` points at a task base for every task (which also gives the distance
from ``tasks`` to the struct start); ``mm``/``active_mm`` are equal adjacent pointers (mm NULL in kernel
threads); ``mm->pgd`` is the pointer whose tables map the kernel like the kernel's own root; and
``arg_start``/``arg_end``/``env_start`` are a run where ``arg_end == env_start`` and the range is a
NUL-terminated block of user memory. Any field without a unique answer makes inference fail cleanly.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ...arch import VirtualMemory
from ...errors import OsLayerError, PymemflowError
from ...mem.view import MemoryView
from .kread import read_obj, walk_list

IDLE_COMM = b"swapper/0" + b"\0" * 7
SCAN = 48 << 20
WINDOW = 4096
MAX_TASKS = 1 << 14


@dataclass
class InferredLayout:
    init_task: int
    tasks: int
    comm: int
    pid: int
    real_parent: int
    mm: int
    mm_pgd: int | None
    mm_arg_start: int | None


def _printable_comm(b: bytes) -> bool:
    s = b.split(b"\0", 1)[0]
    return 0 < len(s) < 16 and all(32 <= c < 127 for c in s)


def infer(phys: MemoryView, kmem: MemoryView, arch: str, dtb: int, start_va: int, page_offset: int) -> InferredLayout:
    ps = kmem.pointer_size
    fmt = "<I" if ps == 4 else "<Q"
    pa = start_va - page_offset
    data = phys.read(pa, SCAN, zero_fill=True)
    hits: list[int] = []
    at = data.find(IDLE_COMM)
    while at >= 0 and len(hits) < 16:
        hits.append(start_va + at)
        at = data.find(IDLE_COMM, at + 1)
    for comm_va in hits:
        try:
            return _from_idle_comm(phys, kmem, arch, dtb, comm_va, fmt, ps)
        except (OsLayerError, PymemflowError):
            continue
    raise OsLayerError("linux: no BTF and the task layout could not be inferred (no idle task 'swapper/0' with a "
                   "consistent task list found); pass isf=FILE")


def _from_idle_comm(phys: MemoryView, kmem: MemoryView, arch: str, dtb: int, comm_va: int, fmt: str,
                    ps: int) -> InferredLayout:
    # 1. tasks: list_head before comm whose ring closes with printable comm at the same distance everywhere
    win = read_obj(kmem, comm_va - WINDOW, WINDOW)
    best: tuple[int, list[int]] | None = None
    for delta in range(ps, WINDOW - ps, ps):
        x = comm_va - delta
        nxt = win.u(WINDOW - delta, fmt)
        if nxt < 0xC0000000 if ps == 4 else nxt < 0xFFFF800000000000:
            continue
        nodes = walk_list(kmem, x, limit=MAX_TASKS).entries  # probing: a failed walk is just no match
        if len(nodes) < 2 or len(nodes) >= MAX_TASKS:
            continue
        # the ring must close: the last node points back to the head
        last = read_obj(kmem, nodes[-1], ps)
        if last.u(0, fmt) != x:
            continue
        comms = kmem.read_batch([n + delta for n in nodes], 16)
        if comms.failures or not all(_printable_comm(comms.piece(i)) for i in range(len(nodes))):
            continue
        if best is None or len(nodes) > len(best[1]):
            best = (delta, nodes)
    if best is None:
        raise OsLayerError("no tasks list")
    delta, nodes = best
    head = comm_va - delta
    # 2. pid/tgid relative to the tasks node: 0 in the idle task, equal pairs, distinct across tasks
    span = 2 * WINDOW
    objs = [read_obj(kmem, n - WINDOW, span) for n in [head] + nodes]
    pid_rel = None
    for off in range(0, span - 8, 4):
        if objs[0].u32(off) != 0 or objs[0].u32(off + 4) != 0:
            continue
        vals = [o.u32(off) for o in objs[1:]]
        if vals[0] != 1 or any(o.u32(off + 4) != v for o, v in zip(objs[1:], vals, strict=True)):
            continue
        if len(set(vals)) == len(vals) and all(0 < v < (1 << 22) for v in vals):
            pid_rel = off - WINDOW
            break
    if pid_rel is None:
        raise OsLayerError("no pid field")
    # 3. real_parent: a pointer that, for every task, lands at (some task's node - K) for one constant K
    node_set = set([head] + nodes)
    parent_rel = tasks_off = None
    for off in range(0, span - ps, ps):
        p1 = objs[1].u(off, fmt)
        k = head - p1
        if not 0 < k < WINDOW:
            continue
        if all(o.u(off, fmt) + k in node_set for o in objs[1:]):
            parent_rel, tasks_off = off - WINDOW, k
            break
    if parent_rel is None or tasks_off is None:
        raise OsLayerError("no real_parent field")
    init_task = head - tasks_off
    # 4. mm / active_mm: equal adjacent pointers in user tasks, mm NULL and active_mm set in the idle task
    mm_rel = None
    for off in range(0, span - 2 * ps, ps):
        if objs[0].u(off, fmt) != 0 or objs[0].u(off + ps, fmt) == 0:
            continue
        users = [o for o in objs[1:] if o.u(off, fmt)]
        if users and all(o.u(off, fmt) == o.u(off + ps, fmt) for o in users) and \
                objs[1].u(off, fmt) != 0 and len(users) < len(objs) - 1:
            mm_rel = off - WINDOW
            break
    if mm_rel is None:
        raise OsLayerError("no mm field")
    mm_off = tasks_off + mm_rel
    pgd_off, arg_off = _mm_fields(phys, kmem, arch, dtb, [o.u(mm_rel + WINDOW, fmt) for o in objs[1:]], init_task, fmt, ps)
    return InferredLayout(init_task=init_task, tasks=tasks_off, comm=tasks_off + delta, pid=tasks_off + pid_rel,
                          real_parent=tasks_off + parent_rel, mm=mm_off, mm_pgd=pgd_off, mm_arg_start=arg_off)


def _mm_fields(phys: MemoryView, kmem: MemoryView, arch: str, dtb: int, mms: list[int], probe: int, fmt: str,
               ps: int) -> tuple[int | None, int | None]:
    mms = [m for m in mms if m][:8]
    if not mms:
        return None, None
    want = VirtualMemory(phys, arch, dtb, tlb=False).translate(probe)
    size = 1024
    objs = [read_obj(kmem, m, size) for m in mms]
    pgd_off = None
    for off in range(0, size - ps, ps):
        ok = True
        for o in objs:
            v = o.u(off, fmt)
            if v < 0xC0000000 if ps == 4 else v < 0xFFFF800000000000:
                ok = False
                break
            try:
                root = kmem.translate(v)  # type: ignore[attr-defined]
                if VirtualMemory(phys, arch, root, tlb=False).translate(probe) != want:
                    ok = False
                    break
            except PymemflowError:
                ok = False
                break
        if ok:
            pgd_off = off
            break
    if pgd_off is None:
        return None, None
    arg_off = None
    for off in range(0, size - 3 * ps, ps):
        good = 0
        for o in objs:
            s, e, env = o.u(off, fmt), o.u(off + ps, fmt), o.u(off + 2 * ps, fmt)
            if not (0 < s < e and e - s < 4096 and env == e):
                good = -1
                break
            um = VirtualMemory(phys, arch, kmem.translate(o.u(pgd_off, fmt)), tlb=False)  # type: ignore[attr-defined]
            data, fails = um._read_single(s, e - s)
            if fails or not data.endswith(b"\0"):
                good = -1
                break
            good += 1
        if good > 0:
            arg_off = off
            break
    return pgd_off, arg_off


def unpack_ptr(data: bytes, off: int, ps: int) -> int:
    return int(struct.unpack_from("<I" if ps == 4 else "<Q", data, off)[0])
