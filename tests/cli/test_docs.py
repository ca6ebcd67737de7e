"""The examples in README.md and docs/{api,cli,plugins}.md run as written: every ```python block,
and every ```sh block except the set-up commands (those with ``pip install``, which CI runs itself)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "docs/api.md", ROOT / "docs/cli.md", ROOT / "docs/plugins.md"]
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def _blocks() -> list[tuple[str, str, str]]:
    out = []
    for doc in DOCS:
        for n, m in enumerate(BLOCK.finditer(doc.read_text())):
            lang, code = m.group(1), m.group(2)
            if lang == "python" or (lang == "sh" and "pip install" not in code):
                out.append((f"{doc.relative_to(ROOT)}#{n}", lang, code))
    return out


BLOCKS = _blocks()


def test_docs_have_examples() -> None:
    assert {b[0].split("#")[0] for b in BLOCKS} == {str(d.relative_to(ROOT)) for d in DOCS}


@pytest.mark.parametrize("name, lang, code", BLOCKS, ids=[b[0] for b in BLOCKS])
def test_doc_example_runs(name: str, lang: str, code: str, tmp_path: Path) -> None:
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "PYMEMFLOW_PLUGIN_PATH": ""}
    if lang == "python":
        cmd = [sys.executable, "-c", code]
    else:
        cmd = ["bash", "-e", "-o", "pipefail", "-c", code]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"{name} failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr


def test_readme_links_every_docs_page_once_in_its_list() -> None:
    """README's Documentation section: one line per page of docs/, each a link with a short description."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Documentation\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("- ")]
    linked = [re.match(r"- \[(docs/[\w.-]+\.md)\]\(\1\) -- \S", ln) for ln in lines]
    assert all(linked), [ln for ln, m in zip(lines, linked, strict=True) if not m]
    pages = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))
    assert sorted(m.group(1) for m in linked if m) == pages


def test_records_section_lists_every_field_of_every_record() -> None:
    """docs/cli.md documents each record's fields once; they must be what --json prints (as_dict keys)."""
    import inspect

    from pymemflow.bench.readbench import BenchCell
    from pymemflow.os import base, forensics
    from pymemflow.scan import Hit
    from pymemflow.types import MemoryRegion

    classes = {c.__name__: c for c in (base.ProcessInfo, base.ModuleInfo, base.ExportInfo, base.ImportInfo,
                                       base.SectionInfo, base.LogRecord, MemoryRegion, BenchCell, Hit,
                                       forensics.ThreadInfo, forensics.HandleInfo, forensics.MalfindHit,
                                       forensics.TimelineEvent)}
    text = (ROOT / "docs/cli.md").read_text().split("## Records and their fields", 1)[1]
    rows = re.findall(r"^\| [^|]+ \| `(\w+)` \| ([^|]+) \|", text, re.M)
    assert {name for name, _ in rows} == set(classes)
    for name, fields_text in rows:
        cls = classes[name]
        # dataclasses and plain records alike: the constructor's parameters without a default
        required = {n: 0 for n, p in inspect.signature(cls).parameters.items() if p.default is p.empty}
        assert re.findall(r"`(\w+)`", fields_text) == list(cls(**required).as_dict()), name


def test_readme_setup_needs_nothing_beside_the_checkout() -> None:
    """The two set-up commands: the demo, then the whole suite with nothing from outside the repository;
    ``.ci/run`` runs the second one as written and reads nothing beside the checkout either."""
    readme = (ROOT / "README.md").read_text()
    setup = [code.strip() for lang, code in BLOCK.findall(readme) if lang == "sh" and "pip install" in code]
    assert len(setup) == 2, setup
    assert setup[0].endswith("pip install . && pymemflow -c demo -o win32 ps")
    assert setup[1] == ". .venv/bin/activate && pip install '.[test]' && python -m pytest"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install '.[test]' && python -m pytest" in ci and "python -m pytest 2>&1" in ci
    for text in (*setup, ci):
        assert "../" not in text and "shared/" not in text


def test_readme_one_time_setup_command_exists() -> None:
    """The command the README and the testbed's messages name for a non-root machine runs."""
    res = subprocess.run([sys.executable, "tests/testbed", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert "setup [x86_64|i386|all]" in res.stdout
    assert "python tests/testbed setup all" in (ROOT / "README.md").read_text()
