"""``remote`` connector: the physical memory of a ``pymemflow serve`` connection.

``-c remote:unix:/run/pymemflow.sock,conn=vm1 -o win32`` runs the OS layer here and reads physical
memory through the daemon (memflow-daemon-connector's role): the daemon keeps the target open,
every batch is one HTTP request with a binary body. Metadata and hints are the daemon connection's
connector's, so OS layers find ``dtb``/``kernel_base`` hints as they would locally.
"""

from __future__ import annotations

from typing import Any

from ..errors import ArgumentError, ReadFailure
from ..mem.phys import PhysicalMemory, PhysicalMetadata
from ..mem.view import I64Array, U8Array, U64Array
from ..remote.args import REMOTE_ARGS, client_from_args
from ..remote.client import Client
from ..remote.protocol import ConnectionFailedError
from ..types import PluginSpec


class RemoteConnector(PhysicalMemory):
    name = "remote"

    def __init__(self, client: Client, conn: str) -> None:
        super().__init__()
        self.client = client
        self.conn = conn
        info = client.get(f"/connections/{conn}")
        if info.get("state") != "open":
            raise ConnectionFailedError(f"daemon connection {conn!r} is {info.get('state')}: {info.get('error')}")
        c = info.get("connector")
        if not c:
            raise ArgumentError(f"daemon connection {conn!r} has no connector (chain: {info.get('chain')})")
        self.metadata = PhysicalMetadata(int(c["max_address"]), int(c["real_size"]),
                                         bool(c.get("readonly", True)) or not info.get("writable", False),
                                         int(c.get("ideal_batch_size", 4096)))
        self.hints = dict(c.get("hints") or {})
        self.remote_connector = str(c.get("connector", ""))
        self._base = f"/connections/{conn}/phys"

    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        return self.client.read_arrays(self._base + "/read-batch", addrs, lengths, out)

    def _read_single(self, addr: int, n: int) -> tuple[bytes, list[ReadFailure]]:
        return self.client.read_one(self._base + "/read-batch", addr, n)

    def _write_batch(self, addrs: U64Array, lengths: I64Array, data: U8Array) -> list[ReadFailure]:
        return self.client.write_arrays(self._base + "/write", addrs, lengths, data)

    def info(self) -> dict[str, Any]:
        d = super().info()
        d.update({"daemon": self.client.url, "conn": self.conn, "remote_connector": self.remote_connector})
        return d

    def close(self) -> None:
        self.client.close()


def _open(args: dict[str, Any], _input: Any) -> RemoteConnector:
    client, conn = client_from_args(args)
    return RemoteConnector(client, conn)


PLUGIN = PluginSpec(
    kind="connector",
    name="remote",
    description="physical memory of a `pymemflow serve` daemon's connection (unix:PATH or http(s)://)",
    factory=_open,
    args=REMOTE_ARGS,
)
