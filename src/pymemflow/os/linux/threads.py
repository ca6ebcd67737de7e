"""Threads of Linux processes: every task of each thread group (``signal->thread_head`` or the older
``thread_group`` list, see :func:`tasks.thread_tasks`), with tid, tgid, state, comm and start time.

The start time is the task's CLOCK_BOOTTIME stamp (``start_boottime``, 5.5+; ``real_start_time`` before),
or its CLOCK_MONOTONIC ``start_time`` when neither exists, turned into UTC with the boot time of
:mod:`boottime`. Kernel threads also get their start address: the ``threadfn`` of their ``struct kthread``
(``task->worker_private``, ``set_child_tid`` before 5.17), named by kallsyms, and their full name
(``kthread->full_name``: what ``/proc/PID/comm`` shows past comm's 15 characters, except for workqueue
threads, named by comm there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ...mem.view import MemoryView
from ..forensics import ThreadInfo, iso_from_unix
from . import tasks as tasks_mod
from .boottime import BootTime
from .kread import Layouts, Obj, read_obj, read_ptr

PF_WQ_WORKER = 0x20


@dataclass
class ThreadOffsets:
    start: int | None
    """Offset of the start stamp in task_struct, of clock ``clock``."""
    clock: str
    """'boottime' or 'monotonic'."""
    kthread_ptr: int | None
    """task_struct member pointing at the kernel thread's struct kthread."""
    threadfn: int | None
    full_name: int | None
    """struct kthread's ``full_name`` (6.x): a kernel thread's name beyond comm's 15 characters."""

    @classmethod
    def from_layouts(cls, t: Layouts) -> ThreadOffsets:
        start, clock = None, "boottime"
        for name in ("start_boottime", "real_start_time"):
            if t.has_member("task_struct", name):
                start = t.offset_of("task_struct", name)
                break
        else:
            if t.has_member("task_struct", "start_time"):
                start, clock = t.offset_of("task_struct", "start_time"), "monotonic"
        kp = next((t.offset_of("task_struct", n) for n in ("worker_private", "set_child_tid")
                   if t.has_member("task_struct", n)), None)
        fn = t.offset_of("kthread", "threadfn") if t.has_member("kthread", "threadfn") else None
        full = t.offset_of("kthread", "full_name") if t.has_member("kthread", "full_name") else None
        return cls(start, clock, kp, fn, full)


def start_ns(task: Obj, off: ThreadOffsets) -> int | None:
    """The task's start stamp (ns after boot on its clock), or None when the kernel has none."""
    return task.u64(off.start) if off.start is not None else None


def start_iso(ns: int | None, off: ThreadOffsets, boot: BootTime | None) -> str | None:
    if ns is None or boot is None:
        return None
    return iso_from_unix(boot.from_boottime(ns) if off.clock == "boottime" else boot.from_monotonic(ns))


def kthread_facts(kmem: MemoryView, task: Obj, off: ThreadOffsets) -> tuple[int, str]:
    """The function a kernel thread runs (0 when unknown) and its full name ('' when none)."""
    if off.kthread_ptr is None or off.threadfn is None:
        return 0, ""
    kt = task.ptr(off.kthread_ptr)
    if not kt:
        return 0, ""
    fn = read_ptr(kmem, kt + off.threadfn) or 0
    name = ""
    at = read_ptr(kmem, kt + off.full_name) if off.full_name is not None else None
    if at:
        raw = read_obj(kmem, at, 64 - at % 64)  # up to 64 bytes, never across a page boundary
        name = raw.cstr(0, 64) if raw.ok else ""
    return fn, name


def thread_records(kmem: MemoryView, leaders: Iterable[int], toff: tasks_mod.TaskOffsets, off: ThreadOffsets,
                   boot: BootTime | None, symbolize: Callable[[int], tuple[str, int] | None],
                   warnings: list[str]) -> list[ThreadInfo]:
    """One record per task of each thread group led by a task in ``leaders``."""
    out: list[ThreadInfo] = []
    for leader in leaders:
        lt = read_obj(kmem, leader, toff.size)
        if not lt.ok:
            warnings.append(f"task {leader:#x} unreadable; its threads are left out")
            continue
        for addr in tasks_mod.thread_tasks(kmem, lt, toff, warnings):
            t = lt if addr == leader else read_obj(kmem, addr, toff.size)
            if not t.ok:
                warnings.append(f"thread task {addr:#x} of pid {lt.i32(toff.tgid)} unreadable; left out")
                continue
            kernel = bool(t.u32(toff.flags) & tasks_mod.PF_KTHREAD)
            fn, full = kthread_facts(kmem, t, off) if kernel else (0, "")
            if t.u32(toff.flags) & PF_WQ_WORKER:
                full = ""  # workqueue threads are named by comm (+ their work item), as /proc does
            sym = symbolize(fn) if fn else None
            ns = start_ns(t, off)
            out.append(ThreadInfo(
                tid=t.i32(toff.pid), pid=t.i32(toff.tgid), start_address=fn,
                start_module=(sym[0] if sym[1] == 0 else f"{sym[0]}+{sym[1]:#x}") if sym else "",
                state=tasks_mod.state_name(t.u32(toff.state), t.u32(toff.exit_state)),
                create_time=start_iso(ns, off, boot), address=addr,
                extra={"name": full or t.cstr(toff.comm, toff.comm_len), "kernel_thread": kernel,
                       "start_ns": ns, "start_clock": off.clock}))
    return out
