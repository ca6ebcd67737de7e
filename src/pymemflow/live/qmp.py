"""A minimal QMP (QEMU Machine Protocol) client: connect, negotiate, run commands, close.

Why our own: it is ~100 lines of JSON over a socket, and we need precise control of timeouts
because a QMP socket serves one client at a time -- a second client is accepted by the kernel but
gets no greeting until the first leaves. We therefore treat "no greeting within ``timeout``" as
"busy" and let the caller try another socket, and we always close both the socket and its file.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from ..errors import PymemflowError


class QmpError(PymemflowError):
    """A QMP socket could not be used, or a command failed."""


class QmpBusyError(QmpError):
    """Another client holds the QMP socket (no greeting arrived in time)."""


class QmpClient:
    """``with QmpClient("unix:/path/qmp.sock") as q: q.cmd("query-status")``.

    ``address``: ``unix:PATH``, a plain path, or ``tcp:HOST:PORT``.
    """

    def __init__(self, address: str, timeout: float = 2.0) -> None:
        self.address = address
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._file: Any = None
        self.greeting: dict[str, Any] = {}
        self._connect()

    def _connect(self) -> None:
        addr = self.address
        try:
            if addr.startswith("tcp:"):
                host, _, port = addr[4:].rpartition(":")
                s = socket.create_connection((host or "127.0.0.1", int(port.split(",")[0])), self.timeout)
            else:
                path = addr[5:] if addr.startswith("unix:") else addr
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(self.timeout)
                s.connect(path)
        except (OSError, ValueError) as e:
            raise QmpError(f"cannot connect to QMP socket {addr}: {e}") from None
        self._sock = s
        self._file = s.makefile("rwb")
        try:
            greeting = self._read()
        except TimeoutError:
            self.close()
            raise QmpBusyError(f"QMP socket {addr} sent no greeting within {self.timeout}s "
                               "(another client holds it; QEMU serves one client per QMP socket)") from None
        if "QMP" not in greeting:
            self.close()
            raise QmpError(f"{addr} is not a QMP socket (greeting {str(greeting)[:80]!r})")
        self.greeting = greeting
        self.cmd("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        while True:
            line = self._file.readline(1 << 24)
            if not line:
                raise QmpError(f"QMP socket {self.address} closed the connection")
            try:
                msg = json.loads(line)
            except ValueError:
                raise QmpError(f"QMP socket {self.address} sent invalid JSON: {line[:80]!r}") from None
            if isinstance(msg, dict) and "event" not in msg:
                return msg

    def cmd(self, name: str, **arguments: Any) -> Any:
        """Run a QMP command and return its ``return`` value (raises :class:`QmpError` on error)."""
        if self._file is None:
            raise QmpError(f"QMP connection {self.address} is closed")
        msg: dict[str, Any] = {"execute": name}
        if arguments:
            msg["arguments"] = arguments
        try:
            self._file.write(json.dumps(msg).encode() + b"\n")
            self._file.flush()
            reply = self._read()
        except (OSError, TimeoutError) as e:
            raise QmpError(f"QMP command {name} on {self.address} failed: {e}") from None
        if "error" in reply:
            err = reply["error"]
            raise QmpError(f"QMP command {name} failed: {err.get('class')}: {err.get('desc')}")
        return reply.get("return")

    def hmp(self, command_line: str) -> str:
        """A human-monitor command through QMP (``info mtree -f``, ``gpa2hva``, ``xp`` ...)."""
        out = self.cmd("human-monitor-command", **{"command-line": command_line})
        return str(out or "").replace("\r\n", "\n")

    def close(self) -> None:
        for obj in (self._file, self._sock):
            if obj is not None:
                try:
                    obj.close()
                except OSError:
                    pass
        self._file = None
        self._sock = None

    def __enter__(self) -> QmpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
