"""A small sparse MemoryView for hand-made structures (lists, PE images) in tests that need no machine."""

from __future__ import annotations

import struct

import numpy as np

from pymemflow.errors import ReadFailure
from pymemflow.mem.view import MemoryView

PAGE = 0x1000


class SparseMemory(MemoryView):
    """Pages that exist are readable; everything else fails (reported, never raised)."""

    def __init__(self, pointer_size: int = 8) -> None:
        self.pointer_size = pointer_size
        self.pages: dict[int, bytearray] = {}

    def map(self, addr: int, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            a = addr + pos
            page = a & ~(PAGE - 1)
            n = min(PAGE - (a - page), len(data) - pos)
            buf = self.pages.setdefault(page, bytearray(PAGE))
            buf[a - page : a - page + n] = data[pos : pos + n]
            pos += n

    def put_u64(self, addr: int, v: int) -> None:
        self.map(addr, struct.pack("<Q", v))

    def put_u32(self, addr: int, v: int) -> None:
        self.map(addr, struct.pack("<I", v))

    def _read_batch(self, addrs, lengths, out):  # type: ignore[no-untyped-def]
        fails: list[ReadFailure] = []
        pos = 0
        for i, (a, n) in enumerate(zip(addrs.tolist(), lengths.tolist(), strict=True)):
            done = 0
            while done < n:
                cur = a + done
                page = cur & ~(PAGE - 1)
                k = min(PAGE - (cur - page), n - done)
                buf = self.pages.get(page)
                if buf is None:
                    out[pos + done : pos + done + k] = 0
                    fails.append(ReadFailure(i, cur, k, "unmapped"))
                else:
                    out[pos + done : pos + done + k] = np.frombuffer(bytes(buf[cur - page : cur - page + k]), np.uint8)
                done += k
            pos += n
        return fails
