"""A local process's virtual memory as a :class:`MemoryView` (process_vm_readv, /proc/PID/mem fallback).

Why a view of its own: virtual addresses of a live process need no translation -- the kernel does it --
so the batch goes straight to ``process_vm_readv``; unmapped pages come back as per-piece failures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import ReadFailure
from ...live.procmem import (
    AlignedReadsMixin,
    ProcessMemoryIO,
    SingleReadMixin,
    aligned_empty,
    plan_into,
    read_maybe_bounced,
)
from ...mem.view import I64Array, MemoryView, U8Array, U64Array

if TYPE_CHECKING:
    import numpy as np
else:
    from ...mem.lazynp import np


class ProcessMemoryView(AlignedReadsMixin, SingleReadMixin, MemoryView):
    """Virtual memory of local process ``pid``. ``writable=True`` enables process_vm_writev."""

    def __init__(self, pid: int, pointer_size: int = 8, writable: bool = False, io: str = "auto") -> None:
        self.pid = pid
        self.pointer_size = pointer_size
        self.writable = writable
        self.io = ProcessMemoryIO(pid, io, writable)
        self._init_single(pid)

    def _plan(self, addrs: U64Array, lengths: I64Array) -> tuple[U64Array, U64Array, U64Array, I64Array]:
        offsets = np.zeros(lengths.shape[0], dtype=np.uint64)
        if lengths.shape[0] > 1:
            np.cumsum(lengths[:-1], out=offsets[1:])
        keep = np.nonzero(lengths > 0)[0]
        return addrs[keep], lengths[keep].astype(np.uint64), offsets[keep], keep.astype(np.int64)

    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        a, n, o, idx = self._plan(addrs, lengths)
        return read_maybe_bounced(self.io, out, a, n, o, idx)

    def _write_batch(self, addrs: U64Array, lengths: I64Array, data: U8Array) -> list[ReadFailure]:
        if not self.writable:
            return super()._write_batch(addrs, lengths, data)
        a, n, o, idx = self._plan(addrs, lengths)
        data = np.ascontiguousarray(data)
        return self.io.transfer(plan_into(data, a, n, o, idx), write=True)

    def _read_single(self, addr: int, n: int) -> tuple[bytes, list[ReadFailure]]:
        if self.io.method == "readv" and n > 0:
            data = self._try_single(addr, n)
            if data is not None:
                return data, []
        out = aligned_empty(n)
        fails = self._read_batch(np.array([addr], np.uint64), np.array([n], np.int64), out)
        return out.tobytes(), fails

    def close(self) -> None:
        self.io.close()
