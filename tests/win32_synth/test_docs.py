"""The ``py`` examples of docs/windows.md (offsets and synthetic machine sections) run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "windows.md"


def test_offsets_and_synthetic_examples_run() -> None:
    section = DOC.read_text().split("## Offsets and symbols", 1)[1]
    blocks = re.findall(r"```py\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    for code in blocks:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([sys.executable, "-c", blocks[1]], capture_output=True, text=True, timeout=120)
    assert "explorer.exe" in r.stdout and "demo32.exe" in r.stdout
