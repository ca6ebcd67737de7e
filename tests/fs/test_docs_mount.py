"""The Python examples in docs/mount.md and docs/gdbserver.md run and their assertions hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCKS = [(name, code) for name in ("mount.md", "gdbserver.md")
          for code in re.findall(r"```python\n(.*?)```", (DOCS / name).read_text(), re.S)]


def test_docs_have_examples() -> None:
    assert {n for n, _ in BLOCKS} == {"mount.md", "gdbserver.md"}


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_doc_example_runs(i: int) -> None:
    name, code = BLOCKS[i]
    exec(compile(code, f"{DOCS / name}:example{i}", "exec"), {})
