"""Processes found through the pid allocator, not the task list: a task unlinked from ``init_task.tasks``
(the classic DKOM hiding) keeps its ``struct pid`` in ``init_pid_ns.idr``, so it shows up here as
``unlinked``.

The idr is an XArray (4.20+; a radix tree before, same node shape with another internal-node tag): each
leaf is a ``struct pid``, whose ``tasks[PIDTYPE_PID]`` list holds the task through ``task->pid_links[0]``
(``pids[0].node`` before 4.19). Threads have pids too; only thread-group leaders (tid == tgid) are processes.
Bounded: node count, depth and cycles.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import PymemflowError
from ...mem.view import MemoryView
from ..forensics import CarvedProcess
from . import tasks as tasks_mod
from . import threads as threads_mod
from .boottime import BootTime
from .kread import Layouts, read_obj, read_ptr

MAX_NODES = 1 << 16
MAX_PIDS = 1 << 22
"""PID_MAX_LIMIT (4M on 64-bit): more entries than a pid namespace can hold means a corrupt tree."""
MAX_DEPTH = 12


@dataclass
class IdrOffsets:
    idr_head: int
    """init_pid_ns -> the tree's root pointer (``idr.idr_rt.xa_head`` / ``.rnode``)."""
    node_shift: int
    node_parent: int
    node_slots: int
    nslots: int
    internal_tag: int
    pid_tasks: int
    task_pid_link: int

    @classmethod
    def from_layouts(cls, t: Layouts) -> IdrOffsets:
        o = t.offset_of
        xa = t.has_member("xa_node", "slots")
        node, root = ("xa_node", "xa_head") if xa else ("radix_tree_node", "rnode")
        rt = "xarray" if xa else "radix_tree_root"
        if t.has_member("task_struct", "pid_links"):
            link = o("task_struct", "pid_links")
        else:
            link = o("task_struct", "pids") + o("pid_link", "node")
        return cls(idr_head=o("pid_namespace", "idr") + o("idr", "idr_rt") + o(rt, root),
                   node_shift=o(node, "shift"), node_parent=o(node, "parent"), node_slots=o(node, "slots"), nslots=t.array_len(node, "slots"),
                   internal_tag=2 if xa else 1, pid_tasks=o("pid", "tasks"), task_pid_link=link)


def idr_entries(kmem: MemoryView, head: int, off: IdrOffsets, warnings: list[str]) -> list[int]:
    """Every leaf pointer of the tree whose root pointer is at ``head`` (in index order)."""
    root = read_ptr(kmem, head)
    if root is None:
        warnings.append(f"pid idr: root at {head:#x} unreadable")
        return []
    ps = kmem.pointer_size
    tag = off.internal_tag

    def is_node(e: int) -> bool:
        return e & 3 == tag and e > 4096

    step = off.nslots.bit_length() - 1  # bits of index per level (XA_CHUNK_SHIFT)
    out: list[int] = []
    stack: list[tuple[int, int, int, int]] = [(root, 0, -1, 0)]  # (entry, depth, expected shift, parent)
    seen: set[int] = set()
    while stack:
        e, depth, want, parent = stack.pop()
        if not e:
            continue
        if not is_node(e):
            if e & (ps - 1) == 0:  # a pointer (value entries have bit 0, internal entries are tags)
                out.append(e)
                if len(out) >= MAX_PIDS:
                    warnings.append(f"pid idr: stopped after {MAX_PIDS} entries (cap)")
                    return out
            continue
        node = e - tag
        if node in seen or depth > MAX_DEPTH or len(seen) >= MAX_NODES:
            warnings.append(f"pid idr: node {node:#x} {'met twice' if node in seen else 'past the caps'}; "
                            "not followed")
            continue
        seen.add(node)
        n = read_obj(kmem, node, off.node_slots + off.nslots * ps)
        if not n.ok:
            warnings.append(f"pid idr: node {node:#x} unreadable; its pids are lost")
            continue
        shift = n.data[off.node_shift]
        # a real node: its shift a multiple of the chunk bits, one chunk below its parent's, and its
        # parent pointer back to that parent (random memory passing all three is not followed blindly)
        if shift % step or (want >= 0 and shift != want) or (parent and n.ptr(off.node_parent) != parent):
            warnings.append(f"pid idr: node {node:#x} is not a tree node (shift {shift}, parent "
                            f"{n.ptr(off.node_parent):#x}); its pids are lost")
            continue
        stack.extend((n.ptr(off.node_slots + i * ps), depth + 1, shift - step, node)
                     for i in reversed(range(off.nslots)))
    return out


def pid_tasks(kmem: MemoryView, init_pid_ns: int, off: IdrOffsets, warnings: list[str]) -> list[int]:
    """task_struct addresses of every pid in the namespace's idr that has a task."""
    out = []
    for pid in idr_entries(kmem, init_pid_ns + off.idr_head, off, warnings):
        first = read_ptr(kmem, pid + off.pid_tasks)  # tasks[PIDTYPE_PID].first
        if first is None:
            warnings.append(f"pid idr: struct pid {pid:#x} unreadable")
        elif first:
            out.append(first - off.task_pid_link)
    return out


def carved(kmem: MemoryView, listed: list[int], found: list[int], off: tasks_mod.TaskOffsets,
           toff: threads_mod.ThreadOffsets, boot: BootTime | None, warnings: list[str]) -> list[CarvedProcess]:
    """Processes of the pid idr (``found``) and of the task list (``listed``), each flagged: on the list
    or not (``unlinked``), exited (zombie / dead). ``extra["sources"]`` says which of the two saw it (the
    idle task has no pid, so it is on the list only)."""
    on_list = set(listed)
    in_idr = set(found)
    out = []
    for addr in dict.fromkeys([*found, *listed]):
        t = read_obj(kmem, addr, off.size)
        if not t.ok:
            warnings.append(f"psscan: task {addr:#x} unreadable")
            continue
        if t.i32(off.pid) != t.i32(off.tgid):
            continue  # a thread (its own pid in the idr), not a process
        d = tasks_mod.task_info(kmem, t, off, "")
        translate = getattr(kmem, "translate", None)  # page-table views only
        try:
            phys: int | None = translate(addr) if translate is not None else None
        except PymemflowError:
            phys = None
        out.append(CarvedProcess(
            pid=d["pid"], ppid=d["ppid"], name=d["name"], address=addr, physical_address=phys,
            listed=addr in on_list, exited=t.u32(off.exit_state) != 0,
            create_time=threads_mod.start_iso(threads_mod.start_ns(t, toff), toff, boot),
            extra={"state": d["state"], "sources": [s for s, on in (("pid_idr", addr in in_idr),
                                                                     ("tasks", addr in on_list)) if on]}))
    return sorted(out, key=lambda p: (p.pid, p.address))
