"""`pymemflow gdbserver` over the demo machine (x64 Windows 10, x86-PAE Windows 7) with Debian's gdb:
memory compared with `pymemflow read`, libraries with `modules`, the architecture, registers' notice,
writes only when writable, detach/kill and clients in turn. Packets gdb 13 does not send (``x``,
qXfer chunking) are checked over a raw socket."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

import pytest

from pymemflow.gdb.rsp import checksum, frame, unescape

from .conftest import CLI, gdbserver

DEMOS = {"win10": (["-c", "demo", "-o", "win32"], "i386:x86-64"),
         "win7": (["-c", "demo:win7", "-o", "win32"], "i386")}


def cli_json(*args: str) -> list[dict]:
    return json.loads(subprocess.run([*CLI, *args, "--json"], capture_output=True, check=True).stdout)


def cli_read(chain: list[str], proc: str, addr: int, n: int) -> bytes:
    return subprocess.run([*CLI, *chain, "read", "-p", proc, hex(addr), str(n), "--out", "-"], capture_output=True
                          ).stdout


def x_bytes(out: str) -> bytes:
    """Bytes of gdb's ``x/Nbx`` lines."""
    vals = []
    for line in out.splitlines():
        if re.match(r"^0x[0-9a-f]+( <[^>]*>)?:\s", line):
            vals += [int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})\b", line.split(":", 1)[1])]
    return bytes(vals)


@pytest.mark.parametrize("kind", sorted(DEMOS))
def test_gdb_reads_memory_and_lists_libraries(kind: str) -> None:
    chain, arch = DEMOS[kind]
    mods = cli_json(*chain, "modules", "-p", "notepad.exe")
    with gdbserver(chain, "-p", "notepad.exe") as srv:
        cmds = [f"x/8bx {m['base']:#x}" for m in mods[:3]]
        out = srv.gdb("show architecture", *cmds, "info sharedlibrary", "x/8bx 0x10", "monitor info")
    assert f'(currently "{arch}")' in out
    got = x_bytes(out)
    want = b"".join(cli_read(chain, "notepad.exe", m["base"], 8) for m in mods[:3])
    assert got == want and want.startswith(b"MZ")
    libs = [ln.split()[-1] for ln in out.splitlines() if re.match(r"^\s+No\s+\S", ln) or re.match(r"^0x.*(Yes|No)", ln)]
    assert libs == [m["path"] for m in mods]
    assert "Cannot access memory at address 0x10" in out  # unmapped page: an error, not zeros
    assert "registers are zeros: this chain has no CPU state" in out


def test_several_clients_in_turn_detach_and_kill() -> None:
    chain, _ = DEMOS["win10"]
    with gdbserver(chain, "-p", "notepad.exe") as srv:
        first = srv.gdb("info registers rip", "detach")
        second = srv.gdb("kill")
        third = srv.gdb("x/2bx 0x7ffe0000")
        srv.proc.terminate()
        log = srv.proc.communicate(timeout=30)[1]
    assert "rip            0x0" in first and "detached" in first.lower()
    assert "killed" in second.lower()
    assert re.search(r"0x7ffe0000:\s+0x[0-9a-f]{2}\s+0x[0-9a-f]{2}", third)
    assert log.count("attached to process") == 3
    assert "session ended: detached" in log and "session ended: killed" in log


def test_writes_only_when_writable() -> None:
    chain, _ = DEMOS["win10"]
    mods = cli_json(*chain, "modules", "-p", "notepad.exe")
    addr = mods[0]["base"] + 0x40
    with gdbserver(chain, "-p", "notepad.exe") as srv:
        out = srv.gdb(f"set {{unsigned int}}{addr:#x} = 0x41424344", f"x/1wx {addr:#x}")
    assert "Cannot access memory" in out
    with gdbserver(["-c", "demo:writable=true", "-o", "win32"], "-p", "notepad.exe", "--writable") as srv:
        out = srv.gdb(f"set {{unsigned int}}{addr:#x} = 0x41424344", f"x/1wx {addr:#x}")
    assert re.search(rf"{addr:#x}:\s+0x41424344", out), out
    r = subprocess.run([*CLI, *chain, "gdbserver", "--writable", "--listen", "127.0.0.1:0"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "read-only" in r.stderr


def _packet(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(frame(payload))
    buf = b""
    while True:
        buf += sock.recv(65536)
        start = buf.find(b"$")
        end = buf.find(b"#", start)
        if start >= 0 and end >= 0 and len(buf) >= end + 3:
            body = buf[start + 1 : end]
            assert int(buf[end + 1 : end + 3], 16) == checksum(body)
            sock.sendall(b"+")
            return body


def test_raw_packets_x_qxfer_and_loopback() -> None:
    chain, _ = DEMOS["win10"]
    mods = cli_json(*chain, "modules", "-p", "notepad.exe")
    base = mods[0]["base"]
    with gdbserver(chain, "-p", "notepad.exe") as srv:
        host, port = srv.address.split(":")
        assert host == "127.0.0.1"
        with socket.create_connection((host, int(port)), timeout=60) as s:
            assert b"qXfer:features:read+" in _packet(s, b"qSupported:multiprocess+")
            x = _packet(s, f"x{base:x},200".encode())
            assert x[:1] == b"b" and unescape(x[1:]) == cli_read(chain, "notepad.exe", base, 0x200)
            assert _packet(s, f"x{0x10:x},10".encode()).startswith(b"E")
            xml = _packet(s, b"qXfer:features:read:target.xml:0,fff")
            assert xml.startswith(b"l") and b"<architecture>i386:x86-64</architecture>" in xml
            part = _packet(s, b"qXfer:libraries:read::0,20")
            assert part.startswith(b"m") and len(part) == 0x21
            assert _packet(s, b"M10,1:00").startswith(b"E")  # read-only
            assert _packet(s, b"D") == b"OK"


def test_listen_errors() -> None:
    r = subprocess.run([*CLI, *DEMOS["win10"][0], "gdbserver", "--listen", "127.0.0.1:notaport"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "expected [HOST:]PORT" in r.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = subprocess.run([*CLI, *DEMOS["win10"][0], "gdbserver", "--listen", f"127.0.0.1:{port}"],
                           capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in r.stderr


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
