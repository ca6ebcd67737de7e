"""The Python example of docs/windows.md (win32 layer section) runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "windows.md"


def test_python_examples_run() -> None:
    text = DOC.read_text()
    section = text.split("## The win32 layer", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks
    for code in blocks:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "explorer.exe" in r.stdout and "CloseHandle" in r.stdout
