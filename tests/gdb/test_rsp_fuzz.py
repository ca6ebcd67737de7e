"""Hostile or broken clients: random bytes and random packets never hang the stub, never grow its buffer
past the packet limit and never escape as anything but a closed session."""

from __future__ import annotations

import socket
import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pymemflow.connectors.dummy import DummyMemory
from pymemflow.gdb.rsp import MAX_PACKET, Connection, ProtocolError, frame, unescape
from pymemflow.gdb.server import Session
from pymemflow.gdb.target import build_target

TARGET = build_target(DummyMemory(1 << 20), None, None, False, False)


def _serve(data: bytes) -> str:
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    out: list[str] = []

    def run() -> None:
        try:
            out.append(Session(TARGET, Connection(a), lambda _t: None).run())
        except (ProtocolError, OSError) as e:
            out.append(f"dropped: {e}")
        finally:
            a.close()  # as GdbServer does: the client sees the end

    t = threading.Thread(target=run)
    t.start()
    try:
        b.sendall(data)
    except OSError:
        pass
    b.shutdown(socket.SHUT_WR)
    while True:  # drain replies so the stub never blocks on a full socket
        try:
            if not b.recv(65536):
                break
        except OSError:
            break
    t.join(30)
    assert not t.is_alive(), "the session hung"
    b.close()
    return out[0]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    _serve(data)


PACKETS = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda c, rest: c + rest, st.sampled_from([b"m", b"x", b"M", b"X", b"g", b"p", b"q", b"Q", b"qXfer:",
                                                         b"qRcmd,", b"H", b"D", b"vKill", b"?", b"c", b"Z0,"]),
              st.binary(max_size=40)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PACKETS, max_size=12))
def test_random_packets(packets: list[bytes]) -> None:
    why = _serve(b"".join(frame(p) for p in packets))
    assert why  # ended: EOF, detach, kill or a dropped connection, never an uncaught error


def test_oversized_packet_is_refused() -> None:
    assert "longer than" in _serve(b"$" + b"A" * (MAX_PACKET + 100))


@given(st.binary(max_size=256))
def test_escape_roundtrip(data: bytes) -> None:
    body = frame(data)[1:-3]
    assert unescape(body) == data
