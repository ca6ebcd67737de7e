"""A dump file opened for bounded, read-only access.

Every header field is read through :meth:`FileSource.read`, which refuses reads past the end of the
file with a :class:`FormatError` naming the file, the offset and the field: parsers never read
past the end and never allocate more than the file holds.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ...errors import FormatError


class FileSource:
    """A read-only file mapped into memory (``data`` is a uint8 array over the mapping)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self._fh = open(self.path, "rb")
        except OSError as e:
            raise FormatError(self.path, None, "file", f"cannot open: {e.strerror or e}") from e
        self.size = os.fstat(self._fh.fileno()).st_size
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
    with open(path, "rb") as f:
        return f.read(n)
