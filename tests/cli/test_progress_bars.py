"""Progress of the OS layers' scans is drawn by the CLI, on stderr, only for a human at a terminal."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

import pytest

from pymemflow.cli.context import CommandContext, ProgressBars
from pymemflow.demo import build_image
from pymemflow.plugins.chain import parse_chain_args


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def win7_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bars") / "win7.raw"
    build_image("win7-7601-x86pae", seed=0).write_raw(path)
    return path


def _open(path: Path, err: io.StringIO, os_args: str = "", **flags: Any) -> str:
    out = io.StringIO()
    ctx = CommandContext(argparse.Namespace(json=False, **flags),
                         parse_chain_args(["-c", f"raw:{path}", "-o", "win32" + os_args]), out=out, err=err)
    try:
        assert ctx.os().facts.arch == "x86pae"
    finally:
        ctx.close()
    assert out.getvalue() == ""  # never on stdout
    return err.getvalue()


def test_scan_progress_drawn_on_a_terminal(win7_raw: Path) -> None:
    text = _open(win7_raw, Terminal())
    assert "scanning for x64 PML4 [" in text and "100.0%" in text and text.endswith("\n")


def test_no_bars_when_stderr_is_not_a_terminal_or_json_or_turned_off(win7_raw: Path) -> None:
    assert _open(win7_raw, io.StringIO()) == ""
    assert _open(win7_raw, Terminal(), ":progress=false") == ""
    err = Terminal()
    out = io.StringIO()
    ctx = CommandContext(argparse.Namespace(json=True),
                         parse_chain_args(["-c", f"raw:{win7_raw}", "-o", "win32"]), out=out, err=err)
    ctx.os()
    ctx.close()
    assert err.getvalue() == ""


def test_one_bar_per_task_and_an_unfinished_task_is_closed() -> None:
    err = Terminal()
    bars = ProgressBars(err, True)
    bars("a", 0, 100)
    bars("a", 50, 100)
    bars("b", 10, 40)  # a new task ends the previous bar
    bars.finish()
    lines = err.getvalue().split("\n")
    assert lines[0].startswith("\ra [") and "50.0%" in lines[0]
    assert lines[1].startswith("\rb [") and "25.0%" in lines[1] and lines[2] == ""


def test_linux_vmcoreinfo_scan_reports_progress_too(tmp_path: Path) -> None:
    """The Linux layer's scan goes through the same reporter (here it finds nothing and says so)."""
    from pymemflow.errors import OsLayerError
    from pymemflow.plugins.chain import LinkSpec, open_links

    path = tmp_path / "empty.raw"
    with open(path, "wb") as f:
        f.write(b"\x5a" * (8 << 20))
    seen: list[tuple[str, int, int]] = []
    links = [LinkSpec("connector", "raw", {"target": str(path)}), LinkSpec("os", "linux")]
    with pytest.raises(OsLayerError, match="no VMCOREINFO"):
        open_links(links, progress=lambda task, done, total: seen.append((task, done, total)))
    assert seen and {t for t, _, _ in seen} == {"scanning for VMCOREINFO"}
    assert seen[-1][1] == seen[-1][2] == 8 << 20
