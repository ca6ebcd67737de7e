"""The examples of docs/serve.md run as written against a real daemon (its socket path swapped for a
private one): the Python block and every ``sh`` block that talks to ``/tmp/pmf.sock``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, Daemon

DOC = ROOT / "docs" / "serve.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def _blocks() -> list[tuple[str, str]]:
    out = []
    for m in BLOCK.finditer(DOC.read_text()):
        lang, code = m.group(1), m.group(2)
        if lang == "python" or (lang == "sh" and "/tmp/pmf.sock" in code and "pymemflow serve" not in code):
            out.append((lang, code))
    return out


BLOCKS = _blocks()


def test_doc_has_runnable_examples() -> None:
    assert {lang for lang, _ in BLOCKS} == {"python", "sh"} and len(BLOCKS) >= 3


@pytest.mark.parametrize("lang, code", BLOCKS, ids=[f"{lang}{i}" for i, (lang, _) in enumerate(BLOCKS)])
def test_doc_example_runs(demo_daemon: Daemon, lang: str, code: str, tmp_path: Path) -> None:
    code = code.replace("/tmp/pmf.sock", demo_daemon.socket)
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [sys.executable, "-c", code] if lang == "python" else ["bash", "-e", "-o", "pipefail", "-c", code]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr
    if lang == "sh" and "curl" in code:
        assert (tmp_path / "mz.bin").read_bytes()[:2] == b"MZ"
        assert (tmp_path / "ram.bin").stat().st_size == 64 << 20
