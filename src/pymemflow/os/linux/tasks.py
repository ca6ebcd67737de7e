"""Processes from ``init_task.tasks``: one read of each ``task_struct``, fields unpacked locally.

Thread-group leaders are on ``tasks``; their threads hang off ``signal->thread_head`` (5.x+) or the
older ``thread_group`` list. Every walk is capped and cycle-safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...mem.view import MemoryView
from ..base import ProcessInfo
from ..caps import capped
from .kread import Layouts, Obj, outside, read_obj, walk_list

MAX_TASKS = 1 << 16
MAX_THREADS = 1 << 14
PF_KTHREAD = 0x00200000
MAX_CMDLINE = 1 << 17

_STATES = [(0x0010, "dead"), (0x0020, "zombie"), (0x0402, "idle"), (0x0004, "stopped"), (0x0008, "traced"),
           (0x0001, "sleeping"), (0x0002, "disk-sleep")]


def state_name(state: int, exit_state: int) -> str:
    """The word for ``ps``'s state letter (R S D T t X Z I)."""
    if exit_state & 0x20:
        return "zombie"
    if exit_state & 0x10:
        return "dead"
    if state == 0:
        return "running"
    for bits, name in _STATES:
        if state & bits == bits:
            return name
    return f"state-{state:#x}"


@dataclass
class TaskOffsets:
    size: int
    tasks: int
    pid: int
    tgid: int
    comm: int
    comm_len: int
    real_parent: int
    mm: int
    flags: int
    state: int
    exit_state: int
    real_cred: int
    cred_uid: int
    cred_gid: int
    cred_euid: int
    signal: int
    thread_node: int | None
    signal_thread_head: int | None
    thread_group: int | None
    start_time: int | None
    mm_pgd: int
    mm_arg_start: int
    mm_arg_end: int
    mm_exe_file: int

    @classmethod
    def from_layouts(cls, t: Layouts) -> TaskOffsets:
        o = t.offset_of
        state = "__state" if t.has_member("task_struct", "__state") else "state"
        tn = t.has_member("task_struct", "thread_node") and t.has_member("signal_struct", "thread_head")
        return cls(
            size=t.size_of("task_struct"), tasks=o("task_struct", "tasks"), pid=o("task_struct", "pid"),
            tgid=o("task_struct", "tgid"), comm=o("task_struct", "comm"),
            comm_len=t.array_len("task_struct", "comm"), real_parent=o("task_struct", "real_parent"),
            mm=o("task_struct", "mm"), flags=o("task_struct", "flags"), state=o("task_struct", state),
            exit_state=o("task_struct", "exit_state"), real_cred=o("task_struct", "real_cred"),
            cred_uid=o("cred", "uid"), cred_gid=o("cred", "gid"), cred_euid=o("cred", "euid"),
            signal=o("task_struct", "signal"),
            thread_node=o("task_struct", "thread_node") if tn else None,
            signal_thread_head=o("signal_struct", "thread_head") if tn else None,
            thread_group=o("task_struct", "thread_group") if t.has_member("task_struct", "thread_group") else None,
            start_time=o("task_struct", "start_time") if t.has_member("task_struct", "start_time") else None,
            mm_pgd=o("mm_struct", "pgd"), mm_arg_start=o("mm_struct", "arg_start"),
            mm_arg_end=o("mm_struct", "arg_end"), mm_exe_file=o("mm_struct", "exe_file"),
        )


def task_addresses(kmem: MemoryView, init_task: int, off: TaskOffsets,
                   warnings: list[str] | None = None) -> list[int]:
    """init_task followed by every task on its ``tasks`` list; a cut-short walk adds to ``warnings``."""
    walk = walk_list(kmem, init_task + off.tasks, limit=MAX_TASKS, what="init_task.tasks",
                     link_offset=off.tasks, span=off.size)
    if warnings is not None:
        warnings += walk.warnings
    return [init_task] + [n - off.tasks for n in walk.entries]


def thread_tasks(kmem: MemoryView, task: Obj, off: TaskOffsets, warnings: list[str] | None = None) -> list[int]:
    """task_struct addresses of a thread group (the leader first); a cut-short walk adds to ``warnings``."""
    what = f"threads of pid {task.i32(off.tgid)}"
    if off.thread_node is not None and off.signal_thread_head is not None:
        sig = task.ptr(off.signal)
        if not sig:
            return [task.addr]
        walk = walk_list(kmem, sig + off.signal_thread_head, limit=MAX_THREADS, what=what,
                         link_offset=off.thread_node, span=off.size)
        base = off.thread_node
        nodes = walk.entries
    elif off.thread_group is not None:
        walk = walk_list(kmem, task.addr + off.thread_group, limit=MAX_THREADS, what=what,
                         link_offset=off.thread_group, span=off.size)
        base = off.thread_group
        nodes = [task.addr + off.thread_group] + walk.entries
    else:
        return [task.addr]
    if warnings is not None:
        warnings += walk.warnings
    out = [task.addr]
    for n in nodes:
        if n - base != task.addr:
            out.append(n - base)
    return out


def thread_ids(kmem: MemoryView, task: Obj, off: TaskOffsets, warnings: list[str] | None = None) -> list[int]:
    """TIDs of a thread group (the leader's included); a cut-short walk adds to ``warnings``."""
    tids = []
    for a in thread_tasks(kmem, task, off, warnings):
        o = read_obj(kmem, a + off.pid, 4)
        if o.ok:
            tids.append(o.i32(0))
    return sorted(set(tids)) or [task.i32(off.pid)]


def task_info(kmem: MemoryView, task: Obj, off: TaskOffsets, arch: str) -> dict[str, Any]:
    """The facts of one task_struct that need no further reads except its parent and cred."""
    parent = task.ptr(off.real_parent)
    ppid = 0
    if parent and parent != task.addr:
        p = read_obj(kmem, parent + off.tgid, 4)
        ppid = p.i32(0) if p.ok else 0
    cred = task.ptr(off.real_cred)
    uid = gid = euid = None
    if cred:
        c = read_obj(kmem, cred, max(off.cred_uid, off.cred_gid, off.cred_euid) + 4)
        if c.ok:
            uid, gid, euid = c.u32(off.cred_uid), c.u32(off.cred_gid), c.u32(off.cred_euid)
    flags = task.u32(off.flags)
    mm = task.ptr(off.mm)
    return {"pid": task.i32(off.tgid), "tid": task.i32(off.pid), "ppid": ppid,
            "name": task.cstr(off.comm, off.comm_len), "state": state_name(task.u32(off.state), task.u32(off.exit_state)),
            "uid": uid, "gid": gid, "euid": euid, "flags": flags, "mm": mm,
            "kernel_thread": bool(flags & PF_KTHREAD) or not mm}


def command_line(mem: MemoryView, start: int, end: int, warnings: list[str] | None = None) -> str:
    """``/proc/PID/cmdline`` joined with spaces (what ``ps`` shows); '' when unreadable. A length
    over :data:`MAX_CMDLINE` is cut (noted in ``warnings``)."""
    if not start or end <= start:
        return ""
    n = capped(end - start, MAX_CMDLINE, f"command line at {start:#x}: length", warnings)
    if outside(mem, start, n):
        return ""
    data, failures = mem._read_single(start, n)
    if failures:
        return ""
    return data.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")


def make_info(d: dict[str, Any], *, address: int, arch: str, dtb: int, path: str, cmdline: str,
              threads: list[int]) -> ProcessInfo:
    extra = {"tid": d["tid"], "uid": d["uid"], "gid": d["gid"], "euid": d["euid"], "threads": threads,
             "kernel_thread": d["kernel_thread"], "flags": d["flags"], "mm": d["mm"]}
    return ProcessInfo(pid=d["pid"], ppid=d["ppid"], name=d["name"], path=path, command_line=cmdline,
                       state=d["state"], arch=arch, dtb=dtb, user_dtb=dtb, address=address, extra=extra)
