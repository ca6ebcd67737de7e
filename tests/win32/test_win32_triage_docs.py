"""docs/windows.md, "Triage and kernel dumps": the Python example runs as written (it writes both dumps
of the demo machine), then each command line of the section runs on them: lines marked ``# error``
must fail saying "this is a triage dump" (and dump-phys must leave no file), the others succeed."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "windows.md"


def _section() -> str:
    return DOC.read_text().split("## Triage and kernel dumps", 1)[1].split("\n## ", 1)[0]


def test_triage_section_examples_run(tmp_path: Path) -> None:
    text = _section()
    [code] = re.findall(r"```py\n(.*?)```", text, re.S)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert lines[0].startswith("0xd1 notepad.exe ") and "ntoskrnl.exe 0x" in lines[1] and "b'MZ'" in r.stdout
    assert "this is a triage dump: it holds no physical memory" in r.stdout and "ps cannot work" in r.stdout
    assert int(lines[-1].split()[0]) >= 10 and lines[-1].endswith("processes from the kernel dump")
    [sh] = re.findall(r"```sh\n(.*?)```", text, re.S)
    for line in sh.strip().splitlines():
        cmd, _, comment = line.partition("#")
        argv = shlex.split(cmd)
        assert argv[0] == "pymemflow"
        r = subprocess.run([sys.executable, "-m", "pymemflow", *argv[1:]], capture_output=True, text=True,
                           timeout=120, cwd=tmp_path)
        if "error" in comment:
            assert r.returncode == 1 and "this is a triage dump" in r.stderr, (line, r.stderr)
        else:
            assert r.returncode == 0 and r.stdout, (line, r.stderr)
    assert not (tmp_path / "out.raw").exists() and not list(tmp_path.glob("out.raw*"))
