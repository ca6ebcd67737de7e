"""makedumpfile's "flattened" format: a stream of ``(offset, size)`` records that, replayed, give the
plain file. QEMU writes it when dumping kdump-compressed to a file, makedumpfile when writing to a pipe.

:class:`FlattenedStore` indexes the records once (bounded by the file size) and serves reads at
*logical* offsets, so the kdump parser reads a flattened file exactly like a plain one.
"""

from __future__ import annotations

import struct

import numpy as np

from .source import FileSource

FLAT_SIGNATURE = b"makedumpfile"
FLAT_HEADER_SIZE = 4096
_REC = struct.Struct(">qq")
MAX_RECORDS = 1 << 24
"""makedumpfile writes records of buffered chunks (thousands for a GiB); more is not a real file."""


class FlattenedStore:
    """Logical view of a flattened dump: ``read(offset, n, field)`` like :class:`FileSource`."""

    def __init__(self, source: FileSource) -> None:
        self.source = source
        self.path = source.path
        sig = source.read(0, 16, "makedumpfile_header.signature")
        if not sig.startswith(FLAT_SIGNATURE):
            raise source.error(0, "makedumpfile_header.signature", f"bad signature {sig!r}")
        ftype, version = source.unpack(">qq", 16, "makedumpfile_header.type/version")
        if ftype != 1:
            raise source.error(16, "makedumpfile_header.type", f"unknown type {ftype} (expected 1)")
        logical: list[int] = []
        physical: list[int] = []
        sizes: list[int] = []
        pos = FLAT_HEADER_SIZE
        max_records = min(source.size // _REC.size + 1, MAX_RECORDS)
        ended = False
        while pos + _REC.size <= source.size and len(sizes) < max_records:
            off, size = source.unpack(_REC, pos, "makedumpfile_data_header")
            if off == -1:
                ended = True
                break
            if off < 0 or size < 0 or pos + _REC.size + size > source.size:
                raise source.error(pos, "makedumpfile_data_header",
                                   f"record of {size:#x} bytes for offset {off:#x} runs past the end of the file")
            if size:
                logical.append(off)
                physical.append(pos + _REC.size)
                sizes.append(size)
            pos += _REC.size + size
        if len(sizes) >= MAX_RECORDS:
            raise source.error(pos, "makedumpfile_data_header", f"more than {MAX_RECORDS} records")
        if not ended and pos != source.size:
            raise source.error(pos, "makedumpfile_data_header", "truncated record header")
        order = np.argsort(np.array(logical, dtype=np.int64), kind="stable")
        self.starts = np.array(logical, dtype=np.int64)[order]
        self.sizes = np.array(sizes, dtype=np.int64)[order]
        self.file_offsets = np.array(physical, dtype=np.int64)[order]
        self.size = int((self.starts + self.sizes).max()) if self.sizes.size else 0
        self.records = int(self.sizes.size)
        self.complete = ended

    def error(self, offset: int | None, field: str, message: str) -> Exception:
        return self.source.error(offset, field, message + " (logical offset in a flattened file)")

    def check(self, offset: int, n: int, field: str) -> None:
        if offset < 0 or n < 0 or offset + n > self.size:
            raise self.error(offset, field, f"needs {n:#x} bytes but the data ends at {self.size:#x}")

    def read(self, offset: int, n: int, field: str) -> bytes:
        self.check(offset, n, field)
        i = int(np.searchsorted(self.starts, offset, side="right")) - 1
        if i >= 0 and offset + n <= self.starts[i] + self.sizes[i]:  # the common case: one record
            s = int(self.file_offsets[i] + offset - self.starts[i])
            return self.source.data[s : s + n].tobytes()
        out = bytearray(n)  # later records win, like replaying the stream; gaps read as zeros
        lo = max(i, 0)
        while lo > 0 and self.starts[lo - 1] + self.sizes[lo - 1] > offset:
            lo -= 1
        hi = int(np.searchsorted(self.starts, offset + n, side="left"))
        for j in range(lo, hi):
            a = max(offset, int(self.starts[j]))
            b = min(offset + n, int(self.starts[j] + self.sizes[j]))
            if a < b:
                s = int(self.file_offsets[j] + a - self.starts[j])
                out[a - offset : b - offset] = self.source.data[s : s + b - a].tobytes()
        return bytes(out)

    def unpack(self, fmt: str | struct.Struct, offset: int, field: str) -> tuple[object, ...]:
        s = fmt if isinstance(fmt, struct.Struct) else struct.Struct(fmt)
        return s.unpack(self.read(offset, s.size, field))
