"""The ``py`` examples of docs/forensics.md's psscan and netscan sections run as written and print what
the sections say."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "forensics.md"


def section(title: str) -> str:
    text = DOC.read_text()
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def run(block: str) -> str:
    r = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_psscan_example_runs() -> None:
    (code,) = re.findall(r"```py\n(.*?)```", section("psscan"), re.S)
    out = run(code)
    assert re.search(r"backdoor\.exe unlinked 0x[0-9a-f]+ False", out)
    assert re.search(r"cmd\.exe exited 0x[0-9a-f]+ True", out)


def test_netscan_example_runs() -> None:
    (code,) = re.findall(r"```py\n(.*?)```", section("netscan"), re.S)
    out = run(code)
    assert "tcp 192.168.56.10:49715 203.0.113.66:4444 ESTABLISHED" in out and "win10-19041-x64" in out
    assert "udp6 :::5355 *:0" in out
