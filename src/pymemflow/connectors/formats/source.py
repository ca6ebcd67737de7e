"""A dump file opened for bounded, read-only access.

Every header field is read through :meth:`FileSource.read`, which refuses reads past the end of the
file with a :class:`FormatError` naming the file, the offset and the field: parsers never read
past the end and never allocate more than the file holds.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import FormatError, PluginError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
else:
    from ...mem.lazynp import np

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"))


def _cannot(who: str, path: object, why: str) -> PluginError:
    return PluginError(f"{who + ': ' if who else ''}cannot open {path}: {why}")


def _refuse(who: str, path: Path, mode: int) -> None:
    """Raise unless ``mode`` is a regular file or a block device: reading a FIFO or a socket blocks
    forever, a directory or a character device is not memory."""
    for test, what in _KINDS:
        if test(mode):
            raise _cannot(who, path, f"it is {what}, not a memory file (give a dump file, a raw image or "
                          "a block device)")


def check_memory_file(path: str | os.PathLike[str], who: str = "") -> Path:
    """Check, without opening it, that ``path`` exists and is a regular file or a block device
    (:class:`PluginError` naming ``who``, the path and what it is otherwise). For files read whole
    (memory-map TOML) and before format detection."""
    if not str(path).strip():
        raise _cannot(who, "''", "empty path (give the path of a dump file or raw image)")
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as e:
        raise _cannot(who, p, e.strerror or str(e)) from None
    _refuse(who, p, st.st_mode)
    return p


def open_memory_file(path: str | os.PathLike[str], *, writable: bool = False, who: str = "") -> tuple[int, int]:
    """Open ``path`` for a connector: ``(fd, size)``. Every file-opening connector comes here, so
    a FIFO, socket, directory or character device gets the same clear error instead of a hang or
    an errno. Opened non-blocking (a FIFO would block in ``open`` itself), checked on the open
    descriptor (no race with a rename), then switched back to blocking. A block device's size is
    where seeking stops."""
    p = check_memory_file(path, who)
    try:
        fd = os.open(p, (os.O_RDWR if writable else os.O_RDONLY) | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise _cannot(who, p, e.strerror or str(e)) from None
    try:
        st = os.fstat(fd)
        _refuse(who, p, st.st_mode)
        os.set_blocking(fd, True)
        size = st.st_size if stat.S_ISREG(st.st_mode) else os.lseek(fd, 0, os.SEEK_END)
    except BaseException:
        os.close(fd)
        raise
    return fd, size


class FileSource:
    """A read-only file mapped into memory (``data`` is a uint8 array over the mapping)."""

    def __init__(self, path: str | os.PathLike[str], who: str = "") -> None:
        self.path = Path(path)
        fd, self.size = open_memory_file(self.path, who=who)
        self._fh = os.fdopen(fd, "rb")
        self._mm: mmap.mmap | None = None
        if self.size:
            self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
            self.data: npt.NDArray[np.uint8] = np.frombuffer(self._mm, dtype=np.uint8)
        else:
            self.data = np.zeros(0, dtype=np.uint8)

    @property
    def buffer(self) -> mmap.mmap | None:
        """The file's mapping (searchable in place with ``find``), None for an empty or closed file."""
        return self._mm

    def error(self, offset: int | None, field: str, message: str) -> FormatError:
        return FormatError(self.path, offset, field, message)

    def check(self, offset: int, n: int, field: str) -> None:
        """Raise unless ``[offset, offset + n)`` lies inside the file."""
        if offset < 0 or n < 0 or offset + n > self.size:
            raise self.error(offset, field, f"needs {n:#x} bytes but the file ends at {self.size:#x}")

    def read(self, offset: int, n: int, field: str) -> bytes:
        self.check(offset, n, field)
        return self.data[offset : offset + n].tobytes()

    def unpack(self, fmt: str | struct.Struct, offset: int, field: str) -> tuple[Any, ...]:
        s = fmt if isinstance(fmt, struct.Struct) else struct.Struct(fmt)
        return s.unpack(self.read(offset, s.size, field))

    def close(self) -> None:
        self.data = np.zeros(0, dtype=np.uint8)
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:
                pass  # a caller still holds a view; the mapping goes when it does
            self._mm = None
        self._fh.close()


def read_magic(path: str | os.PathLike[str], n: int = 4096) -> bytes:
    """The first ``n`` bytes of a file (fewer when it is shorter), for format detection."""
    fd, _ = open_memory_file(path)
    with os.fdopen(fd, "rb") as f:
        return f.read(n)
