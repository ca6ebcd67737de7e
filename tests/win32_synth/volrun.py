"""One way to run volatility3 offline in the tests: ``vol -r json`` in a fresh interpreter, tree rows flattened."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_vol(raw: Path, symbols: Path, cache: Path, *plugin: str) -> list[dict[str, Any]]:
    cmd = [sys.executable, "-c", "import sys; sys.argv[0] = 'vol'; from volatility3.cli import main; main()",
           "--offline", "-q", "-r", "json", "-s", str(symbols), "--cache-path", str(cache), "-f", str(raw), *plugin]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    flat: list[dict[str, Any]] = []
    stack = list(json.loads(r.stdout))
    while stack:
        row = stack.pop(0)
        stack[:0] = row.pop("__children", [])
        flat.append(row)
    return flat
