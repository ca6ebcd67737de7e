"""docs/reliability.md's OS-layer examples run as written."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"


def _os_section() -> str:
    text = DOC.read_text()
    start = text.index("## OS layers")
    nxt = text.find("\n## ", start + 1)
    return text[start: nxt if nxt > 0 else len(text)]


def test_python_examples_run(capsys) -> None:  # type: ignore[no-untyped-def]
    blocks = re.findall(r"```python\n(.*?)```", _os_section(), re.S)
    assert len(blocks) >= 2
    with warnings.catch_warnings():
        for code in blocks:
            exec(compile(code, str(DOC), "exec"), {})
    out = capsys.readouterr().out
    assert "PhysRange(start=0, end=2097152, backed=True)" in out and "0x100000 -1" in out


def test_named_tests_exist() -> None:
    root = DOC.parents[1]
    for path in set(re.findall(r"`(tests/[\w/]+\.py)", _os_section())):
        assert (root / path).exists(), path
