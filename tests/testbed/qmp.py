"""A small synchronous QMP client over a unix socket (standard library only).

QEMU serves one client per QMP socket at a time; every testbed guest has two (``qmp`` and ``qmp2``) so a
connector and a ground-truth reader can each hold one. Closing matters: the ``makefile()`` object keeps
the descriptor open, so both it and the socket are closed, or QEMU never sees the client leave.
"""

from __future__ import annotations

import json
import socket
from types import TracebackType
from typing import Any


class QmpError(RuntimeError):
    """QEMU answered a command with an error."""


class QMP:
    def __init__(self, path: str, timeout: float = 30) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
            self.f = self.sock.makefile("rwb", buffering=0)
        except OSError:
            self.sock.close()
            raise
        self.events: list[dict[str, Any]] = []
        self.greeting = self._read()
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        line = self.f.readline()
        if not line:
            raise ConnectionError(f"QMP {self.path}: connection closed by QEMU")
        return json.loads(line)

    def execute(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        msg: dict[str, Any] = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise QmpError(f"QMP {cmd}: {r['error'].get('class')}: {r['error'].get('desc')}")
            self.events.append(r)

    def hmp(self, line: str, cpu_index: int | None = None) -> str:
        """A human-monitor command (``gva2gpa``, ``xp``, ``info tlb`` ...); returns its text."""
        args: dict[str, Any] = {"command-line": line}
        if cpu_index is not None:
            args["cpu-index"] = cpu_index
        return str(self.execute("human-monitor-command", args))

    def close(self) -> None:
        for c in (self.f, self.sock):
            try:
                c.close()
            except OSError:
                pass

    def __enter__(self) -> QMP:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
