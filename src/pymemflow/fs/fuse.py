"""FUSE glue: :class:`~pymemflow.fs.tree.MemoryFs` mounted with mfusepy over the system's libfuse.

Why mfusepy: maintained ctypes bindings for libfuse 2 and 3 (no compiler, no headers), the
successor of fusepy. The loop runs single-threaded (``nothreads``): the OS layers are not
thread-safe and one lock would serialise the calls anyway. libfuse's own signal handlers turn
Ctrl-C / SIGTERM into a clean unmount; an external ``umount`` ends the loop the same way.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any

from ..errors import PartialWriteError, PymemflowError, ReadOnlyError
from .tree import Dir, File, FsError, Link, MemoryFs, Node

log = logging.getLogger("pymemflow.fs")

DEV_FUSE = "/dev/fuse"


class MountError(PymemflowError):
    """The mount could not start (no /dev/fuse, no libfuse, a bad or busy mount point)."""


def mounted_at(path: str | Path) -> str | None:
    """The file-system type mounted exactly at ``path`` (from /proc/self/mountinfo), or None."""
    target = os.path.realpath(path)
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(" ")
        if len(fields) < 10 or "-" not in fields:
            continue
        mnt = fields[4].encode().decode("unicode_escape")
        if mnt == target:
            return fields[fields.index("-") + 1]
    return None


def check_mount_point(mountpoint: str | Path, dev_fuse: str = DEV_FUSE) -> Path:
    """Clear errors before libfuse prints its own: missing /dev/fuse, missing or non-directory
    mount point, something already mounted there."""
    if not os.path.exists(dev_fuse):
        raise MountError(f"{dev_fuse} does not exist: this machine (or container) has no FUSE device "
                         "(load the fuse module, or run the container with --device /dev/fuse)")
    if not os.access(dev_fuse, os.R_OK | os.W_OK):
        raise MountError(f"{dev_fuse}: permission denied (add yourself to the 'fuse' group or run as root)")
    p = Path(mountpoint)
    if not p.exists():
        raise MountError(f"mount point {p} does not exist (create it with mkdir first)")
    if not p.is_dir():
        raise MountError(f"mount point {p} is not a directory")
    fstype = mounted_at(p)
    if fstype is not None:
        raise MountError(f"{p} is already a mount point ({fstype}); unmount it first (umount {p})")
    return p


def load_mfusepy() -> Any:
    """mfusepy, or a clear error naming what to install (the Python extra, the system libfuse)."""
    try:
        import mfusepy
    except ImportError as e:
        raise MountError("mount needs the 'fuse' extra: pip install 'pymemflow[fuse]' "
                         f"(mfusepy is not installed: {e})") from None
    except OSError as e:  # mfusepy loads libfuse at import
        raise MountError(f"mount needs the system's libfuse (Debian: apt-get install fuse3): {e}") from None
    return mfusepy


class FuseOperations:
    """mfusepy ``Operations``: each call resolves the path in the tree and maps errors to errno."""

    use_ns = True

    def __init__(self, fs: MemoryFs, live: bool) -> None:
        self.fs = fs
        self.live = live
        self.uid, self.gid = os.getuid(), os.getgid()
        self.mtime = time.time_ns()
        self._handles: dict[int, tuple[Node, bytes | None]] = {}
        self._next = itertools.count(1)
        self.served = False
        """Set once libfuse calls init (the mount is up): its loop ending after that is an unmount."""

    def init(self, path: str) -> None:
        self.served = True

    # ---- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _fh(fi: Any) -> int | None:
        """With ``raw_fi`` mfusepy passes the fuse_file_info struct; its ``fh`` is our handle."""
        if fi is None:
            return None
        return int(fi.fh) if hasattr(fi, "fh") else int(fi)

    def _node(self, path: str) -> Node:
        try:
            return self.fs.node(path)
        except FsError as e:
            raise OSError(e.errno, str(e)) from None

    def _mode(self, node: Node) -> int:
        if isinstance(node, Dir):
            return stat.S_IFDIR | 0o555
        if isinstance(node, Link):
            return stat.S_IFLNK | 0o777
        return stat.S_IFREG | (0o644 if node.write is not None else 0o444)

    @staticmethod
    def _call(fn: Any, *args: Any) -> Any:
        """Run an OS-layer call; its failures become EIO (logged), not a dead file system."""
        try:
            return fn(*args)
        except OSError:
            raise
        except (PymemflowError, NotImplementedError) as e:
            log.warning("%s", e)
            raise OSError(errno.EIO, str(e)) from None

    # ---- metadata --------------------------------------------------------------------------------
    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        handle = self._handles.get(self._fh(fh) or 0)
        node = handle[0] if handle is not None else self._node(path)
        mode = self._mode(node)
        size = 0
        if isinstance(node, File):
            snap = handle[1] if handle is not None else None
            size = len(snap) if snap is not None else int(self._call(node.size))
        elif isinstance(node, Link):
            size = len(node.target)
        return {"st_mode": mode, "st_nlink": 2 if isinstance(node, Dir) else 1, "st_size": size,
                "st_uid": self.uid, "st_gid": self.gid, "st_blksize": 1 << 17,
                "st_blocks": 0 if isinstance(node, File) and node.memory else (size + 511) // 512,
                "st_atime": self.mtime, "st_mtime": self.mtime, "st_ctime": self.mtime}

    def readdir(self, path: str, fh: int) -> list[Any]:
        node = self._node(path)
        if not isinstance(node, Dir):
            raise OSError(errno.ENOTDIR, path)
        out: list[Any] = [".", ".."]
        base = path.rstrip("/")
        for name in self._call(node.names):
            try:
                out.append((name, {"st_mode": self._mode(self.fs.node(f"{base}/{name}"))}, 0))
            except (FsError, PymemflowError, NotImplementedError):
                out.append(name)
        return out

    def readlink(self, path: str) -> str:
        node = self._node(path)
        if not isinstance(node, Link):
            raise OSError(errno.EINVAL, path)
        return node.target

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255}

    def access(self, path: str, amode: int) -> int:
        node = self._node(path)
        if amode & os.W_OK and not (isinstance(node, File) and node.write is not None):
            raise OSError(errno.EROFS, path)
        return 0

    # ---- files -------------------------------------------------------------------------------------
    def open(self, path: str, fi: Any) -> int:
        node = self._node(path)
        if not isinstance(node, File):
            raise OSError(errno.EISDIR, path)
        if (fi.flags & os.O_ACCMODE) != os.O_RDONLY and node.write is None:
            raise OSError(errno.EROFS, f"{path}: read-only (mount with --writable on a writable chain)")
        snapshot: bytes | None = None
        if not node.memory:
            # one consistent content per open file; on live targets read past the size the
            # kernel saw at lookup (direct_io), on dumps let the page cache keep it
            snapshot = self._call(node.read, 0, 1 << 62)
            fi.direct_io = 1 if self.live else 0
            fi.keep_cache = 0 if self.live else 1
        fh = next(self._next)
        self._handles[fh] = (node, snapshot)
        fi.fh = fh
        return 0

    def read(self, path: str, size: int, offset: int, fh: Any) -> bytes:
        node, snapshot = self._handles[self._fh(fh) or 0]
        if snapshot is not None:
            return snapshot[offset : offset + size]
        assert isinstance(node, File)
        return bytes(self._call(node.read, offset, size))

    def write(self, path: str, data: bytes, offset: int, fh: Any) -> int:
        node, _ = self._handles[self._fh(fh) or 0]
        assert isinstance(node, File)
        if node.write is None:
            raise OSError(errno.EROFS, path)
        try:
            return int(node.write(offset, bytes(data)))
        except (PartialWriteError, ReadOnlyError) as e:
            raise OSError(errno.EIO, str(e)) from None

    def truncate(self, path: str, length: int, fh: Any = None) -> int:
        raise OSError(errno.EPERM, "memory files have a fixed size")

    def release(self, path: str, fh: Any) -> int:
        self._handles.pop(self._fh(fh) or 0, None)
        return 0


def mount(fs: MemoryFs, mountpoint: str | Path, *, live: bool = False, debug: bool = False,
          extra_options: dict[str, Any] | None = None) -> None:
    """Mount ``fs`` at ``mountpoint`` and serve it in the foreground until unmounted
    (``umount``, Ctrl-C, SIGTERM)."""
    mfusepy = load_mfusepy()
    p = check_mount_point(mountpoint)
    timeout = 1.0 if live else 60.0
    opts: dict[str, Any] = {"foreground": True, "nothreads": True, "debug": debug, "fsname": "pymemflow",
                            "subtype": "pymemflow", "ro": not fs.writable, "attr_timeout": timeout,
                            "entry_timeout": timeout}
    opts.update(extra_options or {})
    logging.getLogger("mfusepy").setLevel(logging.WARNING if not debug else logging.DEBUG)
    ops = FuseOperations(fs, live)
    try:
        mfusepy.FUSE(ops, str(p), raw_fi=True, **opts)
    except RuntimeError as e:
        # libfuse 3 ends its loop with status 8 when a signal (Ctrl-C, SIGTERM) stopped it; it has
        # unmounted by then. Before init, a status means the mount itself failed.
        if ops.served and mounted_at(p) is None:
            log.info("libfuse loop ended with status %s after serving (signal); unmounted", e)
            return
        raise MountError(f"libfuse could not mount {p} (exit status {e}); see the message above") from None
