"""Open files of Linux processes: ``task->files->fdt`` (the fd table: ``max_fds`` pointers to ``struct file``),
each with its fd, path, open flags and type, named the way ``/proc/PID/fd`` names them.

Pseudo files are named as their filesystem's ``d_dname`` would (``socket:[INODE]``, ``pipe:[INODE]``,
``anon_inode:[eventfd]``): the dentry's ``d_op->d_dname`` is named by kallsyms; without symbols the inode's
type decides. Other files get their dentry path (mount points crossed, ``(deleted)`` for unlinked ones). The
flags are ``/proc/PID/fdinfo``'s: ``f_flags`` plus ``O_CLOEXEC`` from the table's close-on-exec bitmap.
Bounded: ``max_fds`` is capped, every read is checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...mem.view import MemoryView
from ..caps import capped
from ..forensics import HandleInfo
from .dentry import PathResolver
from .kread import Layouts, read_obj, read_ptr

MAX_FDS = 1 << 20
"""The kernel's own ceiling (``sysctl fs.nr_open`` defaults to 1048576); a bigger table is corrupt."""
O_CLOEXEC = 0o2000000
S_IFMT = 0o170000
TYPES = {0o140000: "socket", 0o120000: "link", 0o100000: "file", 0o060000: "blk", 0o040000: "dir",
         0o020000: "chr", 0o010000: "fifo", 0: "anon_inode"}
"""Inode type (``i_mode & S_IFMT``) -> handle type; a FIFO on pipefs is a ``pipe``."""
PSEUDO = {"sockfs_dname": "socket", "pipefs_dname": "pipe", "anon_inodefs_dname": "anon_inode",
          "pidfs_dname": "anon_inode"}
"""The ``d_dname`` functions of the pseudo filesystems -> how ``/proc/PID/fd`` names their files."""


@dataclass
class FileOffsets:
    task_files: int
    fdt: int
    max_fds: int
    fd: int
    close_on_exec: int
    f_flags: int
    f_inode: int
    f_dentry: int
    private_data: int
    i_mode: int
    i_ino: int
    d_op: int
    d_dname: int
    d_pprev: int
    d_parent: int

    @classmethod
    def from_layouts(cls, t: Layouts, pointer_size: int) -> FileOffsets:
        o = t.offset_of
        return cls(task_files=o("task_struct", "files"), fdt=o("files_struct", "fdt"),
                   max_fds=o("fdtable", "max_fds"), fd=o("fdtable", "fd"), close_on_exec=o("fdtable", "close_on_exec"),
                   f_flags=o("file", "f_flags"), f_inode=o("file", "f_inode"), f_dentry=o("file", "f_path.dentry"),
                   private_data=o("file", "private_data"), i_mode=o("inode", "i_mode"), i_ino=o("inode", "i_ino"),
                   d_op=o("dentry", "d_op"), d_dname=o("dentry_operations", "d_dname"), d_pprev=o("dentry", "d_hash") + pointer_size,
                   d_parent=o("dentry", "d_parent"))


@dataclass
class OpenFile:
    """One fd: the HandleInfo fields plus what the socket reader needs."""

    fd: int
    file: int
    type: str
    name: str
    flags: int
    inode: int
    private_data: int


class FileReader:
    def __init__(self, kmem: MemoryView, t: Layouts, paths: PathResolver,
                 symbolize: Callable[[int], tuple[str, int] | None]) -> None:
        self.kmem = kmem
        self.off = FileOffsets.from_layouts(t, kmem.pointer_size)
        self.paths = paths
        self.symbolize = symbolize
        self._dname: dict[int, str] = {}
        o = self.off
        self._fspan = max(o.f_flags + 4, o.f_inode, o.f_dentry, o.private_data) + kmem.pointer_size
        self._ispan = max(o.i_mode + 2, o.i_ino + kmem.pointer_size)
        self._dspan = max(o.d_op, o.d_pprev, o.d_parent) + kmem.pointer_size

    def fd_table(self, task: int, what: str, warnings: list[str]) -> list[tuple[int, int, bool]]:
        """(fd, struct file address, close-on-exec) of every open fd of the task at ``task``."""
        k, o, ps = self.kmem, self.off, self.kmem.pointer_size
        files = read_ptr(k, task + o.task_files)
        if not files:
            return []
        fdt = read_ptr(k, files + o.fdt)
        if not fdt:
            warnings.append(f"{what}: files_struct {files:#x} has no readable fd table")
            return []
        tab = read_obj(k, fdt, max(o.max_fds + 4, o.fd, o.close_on_exec) + ps)
        if not tab.ok:
            warnings.append(f"{what}: fd table {fdt:#x} unreadable")
            return []
        n = capped(tab.u32(o.max_fds), MAX_FDS, f"{what}: fd table max_fds", warnings)
        if not n:
            return []
        arr = read_obj(k, tab.ptr(o.fd), n * ps)
        cloexec = read_obj(k, tab.ptr(o.close_on_exec), (n + 7) // 8)
        if not arr.ok:
            warnings.append(f"{what}: fd array at {tab.ptr(o.fd):#x} ({n} entries) unreadable")
            return []
        out = []
        for fd in range(n):
            f = arr.ptr(fd * ps)
            if f:
                out.append((fd, f, bool(cloexec.ok and cloexec.data[fd // 8] >> (fd % 8) & 1)))
        return out

    def open_files(self, task: int, what: str, warnings: list[str]) -> list[OpenFile]:
        k, o = self.kmem, self.off
        out = []
        for fd, fp, cloexec in self.fd_table(task, what, warnings):
            f = read_obj(k, fp, self._fspan)
            if not f.ok:
                warnings.append(f"{what}: fd {fd}: struct file {fp:#x} unreadable")
                continue
            ino_obj = read_obj(k, f.ptr(o.f_inode), self._ispan)
            mode = ino_obj.u(o.i_mode, "<H") if ino_obj.ok else 0
            ino = ino_obj.ptr(o.i_ino) if ino_obj.ok else 0
            kind = TYPES.get(mode & S_IFMT, "unknown") if ino_obj.ok else "unknown"
            name = self._name(fp, f.ptr(o.f_dentry), kind, ino)
            if kind == "fifo" and name.startswith("pipe:"):
                kind = "pipe"
            flags = f.u32(o.f_flags) | (O_CLOEXEC if cloexec else 0)
            out.append(OpenFile(fd, fp, kind, name, flags, ino, f.ptr(o.private_data)))
        return out

    def _name(self, file: int, dentry: int, kind: str, ino: int) -> str:
        k, o = self.kmem, self.off
        d = read_obj(k, dentry, self._dspan) if dentry else None
        if d is None or not d.ok:
            return f"{kind}:[{ino}]"
        fn = read_ptr(k, d.ptr(o.d_op) + o.d_dname) if d.ptr(o.d_op) else 0
        if fn:
            pseudo = self._pseudo(fn)
            if pseudo == "anon_inode":
                return "anon_inode:" + (self.paths._name(dentry) or "")
            if pseudo:
                return f"{pseudo}:[{ino}]"
            if kind in ("socket", "fifo"):  # a d_dname kallsyms cannot name: the inode type decides
                return f"{'socket' if kind == 'socket' else 'pipe'}:[{ino}]"
        if kind == "anon_inode":
            return "anon_inode:" + (self.paths._name(dentry) or "")
        path = self.paths.file_path(file)
        if not d.ptr(o.d_pprev) and d.ptr(o.d_parent) != dentry:  # d_unlinked: unhashed and not a root
            path += " (deleted)"
        return path

    def _pseudo(self, fn: int) -> str:
        hit = self._dname.get(fn)
        if hit is None:
            sym = self.symbolize(fn)
            hit = PSEUDO.get(sym[0], "") if sym and sym[1] == 0 else ""
            self._dname[fn] = hit
        return hit


def handle_record(pid: int, f: OpenFile) -> HandleInfo:
    return HandleInfo(pid=pid, handle=f.fd, type=f.type, name=f.name, address=f.file, access=f.flags,
                      extra={"inode": f.inode})
