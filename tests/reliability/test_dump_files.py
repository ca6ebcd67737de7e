"""Issue 12, defect 7 (``dump-phys`` resume and summary) and issue 13's ``dump-module --force``.

A stale ``OUT.part.json`` made ``dump-phys`` rename a 0-byte part file to ``OUT`` and exit 0; a
journal from another source with the same layout spliced two machines into one file. A resume now
checks that the journal belongs to this layout, this source and this output, and that the part file
has the layout's size and headers; the summary says ``incomplete`` (exit 1) when bytes are missing,
and a dump of nothing is an error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pymemflow
from pymemflow.errors import ArgumentError
from pymemflow.mem.phys import PhysicalMemory, PhysicalMetadata
from pymemflow.writers import dump_physical, layout_for
from pymemflow.writers.base import memory_ranges

SIZE = 1 << 20


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pymemflow.cli.main", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture
def images(tmp_path):
    """Two raw images of the same size (same layout), different bytes."""
    out = []
    for seed in (1, 2):
        p = tmp_path / f"src{seed}.img"
        p.write_bytes(np.random.default_rng(seed).integers(0, 256, SIZE, dtype=np.uint8).tobytes())
        out.append(p)
    return out


def test_stale_journal_with_empty_part_is_not_success(tmp_path, images) -> None:
    """The issue's reproduction: a journal saying everything is done, beside an empty part file."""
    out = tmp_path / "o.raw"
    with pymemflow.open(f"raw:{images[0]}") as mem:
        fp = layout_for("raw", mem, memory_ranges(mem)).fingerprint()
    (tmp_path / "o.raw.part").write_bytes(b"")
    (tmp_path / "o.raw.part.json").write_text(json.dumps({"fingerprint": fp, "done": SIZE}))
    res = cli("-c", f"raw:{images[0]}", "--json", "dump-phys", str(out))
    assert res.returncode == 0, res.stderr
    assert "did not resume" in res.stderr
    assert out.read_bytes() == images[0].read_bytes()
    doc = json.loads(res.stdout)
    assert doc["status"] == "complete" and doc["resumed_from"] == 0 and doc["bytes"] == SIZE


def test_journal_of_another_source_is_not_resumed(tmp_path, images) -> None:
    out = tmp_path / "o.lime"
    with pymemflow.open(f"raw:{images[0]}") as a, pytest.raises(InterruptedError):
        dump_physical(a, out, "lime", stop_after=SIZE // 2)
    with pymemflow.open(f"raw:{images[1]}") as b:
        res = dump_physical(b, out, "lime")
        assert res.resumed_from == 0 and res.restarted == "o.lime.part.json belongs to another source"
    with pymemflow.open(str(out)) as lime:
        assert lime.read(0, SIZE) == images[1].read_bytes()  # not half of each machine


def test_journal_of_another_output_is_not_resumed(tmp_path, images) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    with pymemflow.open(f"raw:{images[0]}") as mem:
        with pytest.raises(InterruptedError):
            dump_physical(mem, first / "o.raw", "raw", stop_after=SIZE // 2)
        for name in ("o.raw.part", "o.raw.part.json"):
            os.replace(first / name, second / name)
        res = dump_physical(mem, second / "o.raw", "raw")
    assert res.resumed_from == 0 and res.restarted == "o.raw.part.json belongs to another output path"


def test_journal_of_another_format_and_a_damaged_part(tmp_path, images) -> None:
    out = tmp_path / "o.elf"
    with pymemflow.open(f"raw:{images[0]}") as mem:
        with pytest.raises(InterruptedError):
            dump_physical(mem, out, "elf", stop_after=SIZE // 2)
        part = tmp_path / "o.elf.part"
        with open(part, "r+b") as f:  # the header the journal's layout promises is gone
            f.write(b"\0" * 4)
        res = dump_physical(mem, out, "elf")
        assert res.resumed_from == 0 and "does not hold this layout's header at 0x0" in str(res.restarted)
    with pymemflow.open(str(out)) as elf:
        assert elf.read(0, SIZE) == images[0].read_bytes()


def test_matching_journal_still_resumes(tmp_path, images) -> None:
    out = tmp_path / "o.raw"
    with pymemflow.open(f"raw:{images[0]}") as mem:
        with pytest.raises(InterruptedError):
            dump_physical(mem, out, "raw", stop_after=SIZE // 2)
        res = dump_physical(mem, out, "raw")
    assert res.resumed_from >= SIZE // 2 and res.restarted is None
    assert out.read_bytes() == images[0].read_bytes()


class Empty(PhysicalMemory):
    name = "empty"

    def __init__(self) -> None:
        super().__init__()
        self.metadata = PhysicalMetadata(0, 0)

    def _read_batch(self, addrs, lengths, out):  # pragma: no cover - nothing to read
        return []


def test_dump_of_nothing_is_an_error(tmp_path) -> None:
    out = tmp_path / "none.raw"
    with pytest.raises(ArgumentError, match="nothing to dump into .*none.raw: the source has no memory"):
        dump_physical(Empty(), out, "raw")
    assert not out.exists() and not (tmp_path / "none.raw.part").exists()


HOLEY = textwrap.dedent('''
    """A connector whose memory map promises 64 KiB but whose second half cannot be read."""
    from pymemflow.errors import ReadFailure
    from pymemflow.mem.phys import PhysicalMemory, PhysicalMetadata
    from pymemflow.types import PluginSpec


    class Holey(PhysicalMemory):
        name = "holey"

        def __init__(self):
            super().__init__()
            self.metadata = PhysicalMetadata(0x10000, 0x10000)

        def memory_map(self):
            return [(0, 0x10000)]

        def _read_batch(self, addrs, lengths, out):
            fails, o = [], 0
            for i, (a, n) in enumerate(zip(addrs.tolist(), lengths.tolist())):
                out[o:o + n] = 0x41
                end = a + n
                if end > 0x8000:
                    s = max(a, 0x8000)
                    out[o + s - a:o + n] = 0
                    fails.append(ReadFailure(i, s, end - s, "device error"))
                o += n
            return fails


    PLUGIN = PluginSpec("connector", "holey", "test connector with unreadable memory", lambda a, i: Holey())
''')


def test_summary_never_says_success_with_bytes_missing(tmp_path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "holey.py").write_text(HOLEY)
    out = tmp_path / "h.raw"
    res = cli("-c", "holey", "--json", "dump-phys", str(out), env={"PYMEMFLOW_PLUGIN_PATH": str(plugins)})
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"] == "incomplete" and doc["unreadable_bytes"] == 0x8000
    assert f"pymemflow: error: {out} is incomplete: 32768 of 65536 bytes could not be read" in res.stderr



def test_dump_module_never_overwrites_without_force(tmp_path) -> None:
    chain = ["-c", "demo:win10,size=64m", "-o", "win32"]
    out = tmp_path / "smss.bin"
    out.write_bytes(b"keep me")
    res = cli(*chain, "dump-module", "-p", "152", "-m", "smss.exe", str(out))
    assert res.returncode == 2 and f"{out} exists; pass --force to overwrite it" in res.stderr
    assert out.read_bytes() == b"keep me"
    res = cli(*chain, "--json", "dump-module", "-p", "152", "-m", "smss.exe", str(out), "--force")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert out.stat().st_size == doc["size"] and out.read_bytes()[:2] == b"MZ"
