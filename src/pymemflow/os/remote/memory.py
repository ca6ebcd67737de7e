"""Virtual memory of a process (or the kernel) read through the daemon."""

from __future__ import annotations

from ...errors import ReadFailure
from ...mem.view import I64Array, MemoryView, U8Array, U64Array
from ...remote.client import Client


class RemoteMemory(MemoryView):
    """``path`` is the daemon's ``.../processes/PID`` or ``.../kernel``; reads are batched requests."""

    def __init__(self, client: Client, path: str, pointer_size: int = 8, writable: bool = False) -> None:
        self.client = client
        self.path = path
        self.pointer_size = pointer_size
        self.writable = writable

    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        return self.client.read_arrays(self.path + "/read-batch", addrs, lengths, out)

    def _read_single(self, addr: int, n: int) -> tuple[bytes, list[ReadFailure]]:
        return self.client.read_one(self.path + "/read-batch", addr, n)

    def _write_batch(self, addrs: U64Array, lengths: I64Array, data: U8Array) -> list[ReadFailure]:
        return self.client.write_arrays(self.path + "/write", addrs, lengths, data)

    def translate(self, va: int) -> int:
        """Physical address of ``va`` (the daemon's page-table walk)."""
        return int(self.client.get(self.path + "/translate", addr=va)["pa"])

    def __repr__(self) -> str:
        return f"<RemoteMemory {self.client.url} {self.path}>"
