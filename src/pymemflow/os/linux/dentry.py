"""File paths from a ``struct path`` (vfsmount + dentry): walk ``d_parent`` up to the root,
crossing mount points through ``struct mount``. Bounded depth; cycles end the walk."""

from __future__ import annotations

from ...mem.view import MemoryView
from .kread import Layouts, outside, read_ptr

MAX_DEPTH = 128


class PathResolver:
    def __init__(self, kmem: MemoryView, t: Layouts) -> None:
        self.kmem = kmem
        self.d_parent = t.offset_of("dentry", "d_parent")
        self.d_name = t.offset_of("dentry", "d_name")
        self.q_len = t.offset_of("qstr", "len")
        self.q_name = t.offset_of("qstr", "name")
        self.f_dentry = t.offset_of("file", "f_path.dentry")
        self.f_mnt = t.offset_of("file", "f_path.mnt")
        self.has_mount = t.has_member("mount", "mnt") and t.has_member("mount", "mnt_mountpoint")
        if self.has_mount:
            self.mount_mnt = t.offset_of("mount", "mnt")
            self.mnt_root = t.offset_of("vfsmount", "mnt_root")
            self.mnt_parent = t.offset_of("mount", "mnt_parent")
            self.mnt_mountpoint = t.offset_of("mount", "mnt_mountpoint")
        self._cache: dict[int, str] = {}

    def _name(self, dentry: int) -> str | None:
        k = self.kmem
        if outside(k, dentry + self.d_name, self.q_name + k.pointer_size):
            return None
        data, failures = k._read_single(dentry + self.d_name, self.q_name + k.pointer_size)
        if failures:
            return None
        ln = int.from_bytes(data[self.q_len:self.q_len + 4], "little")
        ptr = int.from_bytes(data[self.q_name:self.q_name + k.pointer_size], "little")
        if not ptr or ln > 255 or outside(k, ptr, ln):  # NAME_MAX
            return None
        raw, f2 = k._read_single(ptr, ln)
        return None if f2 else raw.decode("utf-8", "replace")

    def file_path(self, file: int) -> str:
        """Path of a ``struct file *``; '' when unreadable."""
        if not file:
            return ""
        hit = self._cache.get(file)
        if hit is not None:
            return hit
        dentry = read_ptr(self.kmem, file + self.f_dentry)
        mnt = read_ptr(self.kmem, file + self.f_mnt)
        path = self.path(dentry or 0, mnt or 0)
        self._cache[file] = path
        return path

    def path(self, dentry: int, vfsmnt: int) -> str:
        k = self.kmem
        parts: list[str] = []
        mount = vfsmnt - self.mount_mnt if self.has_mount and vfsmnt else 0
        seen: set[int] = set()
        for _ in range(MAX_DEPTH):
            if not dentry or dentry in seen:
                break
            seen.add(dentry)
            if mount:
                root = read_ptr(k, mount + self.mount_mnt + self.mnt_root)
                if dentry == root:
                    parent = read_ptr(k, mount + self.mnt_parent) or 0
                    if not parent or parent == mount:
                        break
                    dentry = read_ptr(k, mount + self.mnt_mountpoint) or 0
                    mount = parent
                    seen.discard(dentry)
                    continue
            up = read_ptr(k, dentry + self.d_parent)
            if up is None or up == dentry:
                break
            name = self._name(dentry)
            if name is None:
                break
            parts.append(name)
            dentry = up
        return "/" + "/".join(reversed(parts))
