"""docs/forensics.md: the Windows examples (``py`` blocks and ``pymemflow`` command lines of the threads,
handles, malfind and timeline sections) run as written on the demo machine and print what they say."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "forensics.md"
SECTIONS = ("## Threads (Windows)", "## Handles (Windows)", "## Injected code: malfind (Windows)", "## Timeline")


def section(title: str) -> str:
    text = DOC.read_text()
    assert title in text, title
    return text.split(title, 1)[1].split("\n## ", 1)[0]


def run_py(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_python_examples_run() -> None:
    out = {t: "".join(run_py(c) for c in re.findall(r"```py\n(.*?)```", section(t), re.S)) for t in SECTIONS}
    assert "<no module>" in out[SECTIONS[0]] and "Terminated" in out[SECTIONS[0]]
    assert "notes.txt" in out[SECTIONS[1]] and "Mutant" in out[SECTIONS[1]]
    assert "PAGE_EXECUTE_READWRITE" in out[SECTIONS[2]]
    assert "process created" in out[SECTIONS[3]] and "thread created" in out[SECTIONS[3]]


def test_command_lines_run() -> None:
    lines = [line for t in SECTIONS for block in re.findall(r"```sh\n(.*?)```", section(t), re.S)
             for line in block.splitlines() if line.startswith("pymemflow ")]
    assert len(lines) >= 6
    for line in lines:
        argv = shlex.split(line)[1:]
        r = subprocess.run([sys.executable, "-m", "pymemflow.cli.main", *argv], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0 and r.stdout.strip(), (line, r.stderr[-2000:])
