"""The stub: answers gdb's packets over one :class:`~pymemflow.gdb.target.GdbTarget`.

Memory is read on demand (``m``, ``x``), written only when the target is writable (``M``, ``X``).
The target never runs: ``?`` says stopped by SIGTRAP, ``c``/``s`` stop again at once with a
notice, breakpoints are refused (gdb then says it cannot insert them). ``D`` (detach) and ``k``/
``vKill`` (kill: nothing is killed, the session ends) close the connection; the server then takes
the next one, one client at a time, until Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import IO

from ..errors import PartialReadError, PymemflowError
from .regs import register_offsets, target_xml
from .rsp import MAX_PACKET, Connection, ProtocolError, unescape
from .target import GdbTarget

log = logging.getLogger("pymemflow.gdb")

MAX_READ = 0x10000
"""Largest ``m``/``x`` read served at once (gdb splits bigger ones by PacketSize)."""


def _hex_args(text: bytes) -> tuple[int, int]:
    a, _, n = text.partition(b",")
    return int(a, 16), int(n, 16)


class Session:
    """One client connection's packet loop."""

    def __init__(self, target: GdbTarget, conn: Connection, notify: Callable[[str], None]) -> None:
        self.t = target
        self.conn = conn
        self.notify = notify
        self._noticed: set[str] = set()

    def _notice(self, text: str) -> None:
        if text not in self._noticed:
            self._noticed.add(text)
            self.notify(text)

    def run(self) -> str:
        """Serve until detach/kill/EOF; returns why the session ended."""
        while True:
            pkt = self.conn.read_packet()
            if pkt is None:
                return "client closed the connection"
            try:
                reply, end = self.handle(pkt)
            except PymemflowError as e:
                log.warning("%r: %s", pkt[:40], e)
                reply, end = b"E01", None
            except (ValueError, IndexError):
                reply, end = b"E22", None  # malformed arguments
            if reply is not None:
                self.conn.send(reply)
            if end:
                return end

    # ---- packets ---------------------------------------------------------------------------------
    def handle(self, pkt: bytes) -> tuple[bytes | None, str | None]:
        c = pkt[:1]
        if c == b"?":
            return b"S05", None
        if c == b"q" or c == b"Q":
            return self.query(pkt), None
        if c == b"m":
            return self.read_mem(pkt[1:], binary=False), None
        if c == b"x":
            return self.read_mem(pkt[1:], binary=True), None
        if c in (b"M", b"X"):
            return self.write_mem(pkt), None
        if c == b"g":
            data, why = self.t.registers()
            if why:
                self._notice(why)
            return data.hex().encode(), None
        if c == b"p":
            return self.read_register(int(pkt[1:], 16)), None
        if c in (b"G", b"P"):
            return b"E01", None  # registers of a snapshot/live VM are not ours to set
        if c == b"H" or c == b"T":
            return b"OK", None
        if c == b"D":
            return b"OK", "detached"
        if c == b"k":
            return None, "killed (the target is not touched; the session ends)"
        if pkt.startswith(b"vKill"):
            return b"OK", "killed (the target is not touched; the session ends)"
        if pkt.startswith(b"vMustReplyEmpty") or pkt.startswith(b"vCont"):
            return b"", None
        if c in (b"c", b"s", b"C", b"S"):
            self._notice("the target cannot run or step (memory introspection): stopped again")
            return b"S05", None
        if c in (b"Z", b"z"):
            return b"", None
        return b"", None  # unknown packet: the empty reply is the protocol's "not supported"

    def query(self, pkt: bytes) -> bytes | None:
        if pkt.startswith(b"qSupported"):
            return (f"PacketSize={MAX_PACKET:x};qXfer:features:read+;qXfer:libraries:read+;"
                    "QStartNoAckMode+;vContSupported-").encode()
        if pkt == b"QStartNoAckMode":
            self.conn.send(b"OK")
            self.conn.ack = False
            return None  # the OK went out with acks still on
        if pkt.startswith(b"qXfer:"):
            return self.xfer(pkt)
        if pkt == b"qAttached":
            return b"1"
        if pkt == b"qC":
            return f"QC{self.t.pid:x}".encode()
        if pkt == b"qfThreadInfo":
            return f"m{self.t.pid:x}".encode()
        if pkt == b"qsThreadInfo":
            return b"l"
        if pkt.startswith(b"qThreadExtraInfo"):
            return self.t.description.encode().hex().encode()
        if pkt == b"qOffsets":
            return b"Text=0;Data=0;Bss=0"
        if pkt.startswith(b"qRcmd,"):
            return self.monitor(bytes.fromhex(pkt[6:].decode()).decode("utf-8", "replace"))
        return b""

    def monitor(self, cmd: str) -> bytes:
        """``monitor info``: what this stub serves, in gdb's console."""
        _, why = self.t.registers()
        text = (f"pymemflow gdbserver: {self.t.description}, arch {self.t.gdb_arch}, "
                f"{'writable' if self.t.writable else 'read-only'}\n" + (f"{why}\n" if why else ""))
        for n in self.t.notices:
            text += n + "\n"
        if cmd.strip() not in ("", "info", "help"):
            text = f"unknown monitor command {cmd!r}; try 'monitor info'\n" + text
        self.conn.send(b"O" + text.encode().hex().encode())
        return b"OK"

    def xfer(self, pkt: bytes) -> bytes:
        parts = pkt.split(b":", 4)
        if len(parts) != 5 or parts[2] != b"read":
            return b""
        obj, annex = parts[1], parts[3].decode()
        off, length = _hex_args(parts[4])
        if obj == b"features":
            if annex != "target.xml":
                return b"E00"
            doc = target_xml(self.t.arch, self.t.osabi)
        elif obj == b"libraries":
            doc = self.t.libraries_xml()
        else:
            return b""
        data = doc.encode()
        chunk = data[off : off + length]
        return (b"l" if off + length >= len(data) else b"m") + chunk

    def read_mem(self, args: bytes, binary: bool) -> bytes:
        addr, n = _hex_args(args)
        n = min(n, MAX_READ)
        if n == 0:
            return b"b" if binary else b""
        try:
            data = self.t.memory.read(addr, n)
        except PartialReadError as e:
            first_bad = min(f.address for f in e.failures) - addr if e.failures else 0
            data = e.data[: max(first_bad, 0)]
            if not data:
                return b"E0e"  # EFAULT: nothing readable at addr
        return b"b" + data if binary else data.hex().encode()

    def write_mem(self, pkt: bytes) -> bytes:
        if not self.t.writable:
            self._notice("write refused: the target is read-only (start gdbserver with --writable "
                         "on a writable chain)")
            return b"E01"
        head, _, payload = pkt[1:].partition(b":")
        addr, n = _hex_args(head)
        data = bytes.fromhex(payload.decode()) if pkt[:1] == b"M" else unescape(payload)
        if len(data) != n:
            return b"E22"
        if n:
            self.t.memory.write(addr, data)
        return b"OK"

    def read_register(self, num: int) -> bytes:
        regs = register_offsets(self.t.arch)
        if num not in regs:
            return b"E45"
        data, _ = self.t.registers()
        _, off, size = regs[num]
        return data[off : off + size].hex().encode()


class GdbServer:
    """Listens on ``host:port`` and serves one client at a time over ``target``."""

    def __init__(self, target: GdbTarget, host: str = "127.0.0.1", port: int = 1234,
                 err: IO[str] | None = None) -> None:
        self.target = target
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as e:
            self.sock.close()
            raise PymemflowError(f"gdbserver: cannot listen on {host}:{port}: {e.strerror or e}") from None
        self.sock.listen(1)
        self.address = self.sock.getsockname()[:2]
        self.err = err
        self.sessions = 0

    def say(self, text: str) -> None:
        if self.err is not None:
            self.err.write(f"pymemflow gdbserver: {text}\n")
            self.err.flush()

    def serve(self, max_sessions: int | None = None) -> None:
        """Accept and serve clients in turn (``max_sessions``: stop after that many)."""
        try:
            while max_sessions is None or self.sessions < max_sessions:
                client, peer = self.sock.accept()
                self.sessions += 1
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.say(f"client {peer[0]}:{peer[1]} attached to {self.target.description}")
                try:
                    why = Session(self.target, Connection(client), self.say).run()
                except (ProtocolError, OSError) as e:
                    why = f"connection dropped: {e}"
                finally:
                    client.close()
                self.say(f"session ended: {why}")
        finally:
            self.sock.close()
