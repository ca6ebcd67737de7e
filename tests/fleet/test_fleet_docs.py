"""The runnable (``py``) example of docs/fleet.md runs as written, on a local cluster it starts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "fleet.md"

pytestmark = pytest.mark.slow


def test_python_example_runs() -> None:
    [code] = re.findall(r"```py\n(.*?)```", DOC.read_text(), re.S)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert sum(1 for ln in lines if ln.startswith("demo:") and "explorer.exe" not in ln) == 2
    assert any(ln.startswith("FAILED /no/such/dump.raw") for ln in lines)


def test_readme_links_the_page() -> None:
    readme = (DOC.parents[1] / "README.md").read_text()
    assert "(docs/fleet.md)" in readme
