"""GDB remote serial protocol framing: ``$data#cs`` packets, ``}`` escapes, acks, binary data.

Why hand-written: the framing is a page of the protocol spec; no maintained Python package serves
it (pygdbmi drives gdb's MI, not the stub side).
"""

from __future__ import annotations

import socket

from ..errors import PymemflowError

ESCAPED = frozenset(b"#$}*")
MAX_PACKET = 0x20000
"""Largest packet we accept (what ``PacketSize`` in qSupported announces, in hex)."""


class ProtocolError(PymemflowError):
    """The client sent something that is not a packet (or a packet too large)."""


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def frame(data: bytes) -> bytes:
    """``$data#cs`` with ``#$}*`` escaped (binary replies such as ``x`` and qXfer chunks)."""
    out = bytearray()
    for b in data:
        if b in ESCAPED:
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    return b"$" + bytes(out) + b"#" + f"{checksum(bytes(out)):02x}".encode()


def unescape(data: bytes) -> bytes:
    """Binary payload of ``X``/``vFile`` packets: ``}x`` is ``x ^ 0x20``."""
    out = bytearray()
    it = iter(data)
    for b in it:
        if b == 0x7D:
            nxt = next(it, None)
            if nxt is None:
                raise ProtocolError("binary data ends with an escape character")
            out.append(nxt ^ 0x20)
        else:
            out.append(b)
    return bytes(out)


class Connection:
    """One client: reads packets (acking them unless no-ack mode is on) and sends replies."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.ack = True
        self.interrupted = False

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read_packet(self) -> bytes | None:
        """The next packet's payload; None when the client closed the connection. A Ctrl-C byte
        (0x03) between packets sets ``interrupted``."""
        while True:
            while self.buf and self.buf[0] != ord("$"):
                if self.buf[0] == 0x03:
                    self.interrupted = True
                del self.buf[0]  # '+', '-' and noise between packets
            end = self.buf.find(b"#")
            if self.buf and end >= 0 and len(self.buf) >= end + 3:
                payload = bytes(self.buf[1:end])
                cs = bytes(self.buf[end + 1 : end + 3])
                del self.buf[: end + 3]
                try:
                    ok = int(cs, 16) == checksum(payload)
                except ValueError:
                    ok = False
                if self.ack:
                    self.sock.sendall(b"+" if ok else b"-")
                if ok:
                    return payload
                continue
            if len(self.buf) > MAX_PACKET + 4:
                raise ProtocolError(f"packet longer than {MAX_PACKET:#x} bytes")
            if not self._fill():
                return None

    def send(self, data: bytes) -> None:
        pkt = frame(data)
        for _ in range(5):
            self.sock.sendall(pkt)
            if not self.ack:
                return
            while not self.buf:
                if not self._fill():
                    return
            reply = self.buf[0]
            del self.buf[0]
            if reply == ord("+"):
                return
            if reply != ord("-"):
                self.buf[0:0] = bytes((reply,))
                return
        raise ProtocolError("client rejected the packet 5 times (bad checksums)")
