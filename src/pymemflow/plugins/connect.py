"""``pymemflow.connect``: a daemon's connections from Python, as the same objects a local chain gives.

    d = pymemflow.connect("unix:/run/pymemflow.sock")
    vm = d.open("vm1", "-c qemu:vm1 -o win32")       # or d["vm1"] for one the daemon has open
    explorer = vm.os.process("explorer.exe")          # ProcessInfo, ModuleInfo ... as locally
    assert explorer.read(explorer.module_by_name("explorer.exe").base, 2) == b"MZ"

``vm.os`` is the ``remote`` OS layer (the daemon's OS layer does the walking), ``vm.connector`` the
``remote`` connector (physical memory; put a local OS layer on it with ``pymemflow.chain``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..os.remote.layer import RemoteOs
from ..remote.client import DEFAULT_TIMEOUT, Client
from ..remote.protocol import check_name


class RemoteChain:
    """One daemon connection: ``os`` and ``connector`` made on first use, like an ``OpenedChain``."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = check_name(name)
        self._os: Any = None
        self._connector: Any = None

    @property
    def os(self) -> Any:
        if self._os is None:
            self._os = RemoteOs(self.client, self.name)
        return self._os

    @property
    def connector(self) -> Any:
        if self._connector is None:
            from ..connectors.remote import RemoteConnector  # lazy: NumPy only for physical memory

            self._connector = RemoteConnector(self.client, self.name)
        return self._connector

    def virtual_memory(self, dtb: int, arch: str = "x64") -> Any:
        """The address space under page-table root ``dtb``, walked by the daemon on its connector."""
        from ..os.remote.memory import RemoteMemory  # lazy: NumPy only for memory

        return RemoteMemory(self.client, f"/connections/{self.name}/vmem/{arch}/{int(dtb):#x}",
                            4 if arch in ("x86", "x86pae") else 8)

    def info(self) -> dict[str, Any]:
        """The daemon's view: chain, state, connector metadata and hints, OS facts."""
        return dict(self.client.get(f"/connections/{self.name}"))

    def close(self) -> None:
        """Closes this client's link; the daemon keeps the connection open (``Daemon.remove`` closes it)."""
        self.client.close()

    def __enter__(self) -> RemoteChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RemoteChain {self.client.url} conn={self.name}>"


class Daemon:
    """A ``pymemflow serve`` daemon: list, open and remove its connections."""

    def __init__(self, url: str, *, token: str | None = None, token_file: str | Path | None = None,
                 cafile: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.client = Client(url, token=token, token_file=token_file, cafile=cafile, timeout=timeout)

    def version(self) -> dict[str, Any]:
        return dict(self.client.get("/v1"))

    def connections(self) -> list[dict[str, Any]]:
        return list(self.client.get("/connections"))

    def open(self, name: str, chain: str | Sequence[str], *, writable: bool = False) -> RemoteChain:
        """Open ``chain`` (``"-c raw:/x.img -o win32"``) on the daemon as ``name``."""
        self.client.post("/connections", {"name": check_name(name), "chain": chain if isinstance(chain, str)
                                          else list(chain), "writable": writable})
        return RemoteChain(self.client, name)

    def __getitem__(self, name: str) -> RemoteChain:
        self.client.get(f"/connections/{check_name(name)}")  # NotFoundError naming the open ones
        return RemoteChain(self.client, name)

    def remove(self, name: str) -> None:
        self.client.delete(f"/connections/{check_name(name)}")

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(url: str, *, token: str | None = None, token_file: str | Path | None = None,
            cafile: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> Daemon:
    """A :class:`Daemon` at ``url``: ``unix:/run/pymemflow.sock``, ``http://127.0.0.1:8750``, ``https://...``."""
    return Daemon(url, token=token, token_file=token_file, cafile=cafile, timeout=timeout)
