"""scan from the command line on real targets: a live process on this machine (``-o native``), and the
progress bar a person at a terminal sees."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from pymemflow.cli.commands.scan import run_scan
from pymemflow.cli.context import CommandContext
from pymemflow.cli.main import build_parser, main
from pymemflow.plugins.chain import parse_chain_args

HOLDER = """
import ctypes, sys, time
buf = bytearray(b"S18-LIVE-MARKER-" + sys.argv[1].encode())
print(ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf)), flush=True)
time.sleep(120)
"""


def test_a_live_process_on_this_machine(capsys: pytest.CaptureFixture[str]) -> None:
    nonce = "x7Qz9"
    p = subprocess.Popen([sys.executable, "-c", HOLDER, nonce], stdout=subprocess.PIPE, text=True)
    try:
        addr = int(p.stdout.readline())  # type: ignore[union-attr]
        code = main(["-o", "native", "scan", "-p", str(p.pid), "--string", f"S18-LIVE-MARKER-{nonce}",
                     "--encoding", "ascii", "--jsonl"])
        out, err = capsys.readouterr()
        if code != 0 and "ermission" in err:
            pytest.skip(f"this machine does not let us read another process's memory: {err.strip()}")
        assert code == 0, err
        hits = [json.loads(x) for x in out.splitlines()]
        assert addr in {h["address"] for h in hits}, "the bytearray's buffer, where the process says it is"
        for h in hits:
            assert h["pid"] == p.pid and bytes.fromhex(h["data"]) == f"S18-LIVE-MARKER-{nonce}".encode()
            assert h["phys"] is None  # /proc/PID/mem has no page tables to translate through
    finally:
        p.kill()
        p.wait()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_and_never_on_stdout() -> None:
    argv = ["scan", "-p", "explorer.exe", "--pattern", "4D 5A 90 00"]
    args = build_parser().parse_args(argv)
    for fmt, bar in (("table", True), ("json", False)):
        args.format = fmt
        out, err = io.StringIO(), Terminal()
        ctx = CommandContext(args, parse_chain_args(["-c", "demo", "-o", "win32"]), out=out, err=err)
        try:
            assert run_scan(ctx) == 0
        finally:
            ctx.close()
        assert ("scan pid 1328 explorer.exe [" in err.getvalue() and "100.0%" in err.getvalue()) == bar, fmt
        assert "explorer.exe [" not in out.getvalue()
        if fmt == "json":
            assert json.loads(out.getvalue())
