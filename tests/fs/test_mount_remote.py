"""`pymemflow mount` on a daemon connection (`-o remote:` / `-c remote:` over `pymemflow serve`): the same
files and bytes as the local chain."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import DEMOS, cli, cli_json, cli_read, mounted

pytest.importorskip("aiohttp")

from serve.conftest import Daemon, start_daemon  # noqa: E402  (tests/ is on sys.path: tests/conftest.py)


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    work = Path(tempfile.mkdtemp(prefix="pmf-f17-", dir="/tmp"))  # short: Unix socket paths <= 107 bytes
    d = start_daemon(work, "--open", f"demo={' '.join(DEMOS['win10'])}")
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_mount_through_the_daemon(daemon: Daemon, tmp_path: Path) -> None:
    local = DEMOS["win10"]
    ps = cli_json(*local, "ps")
    with mounted(["-o", f"remote:{daemon.url},conn=demo"], tmp_path / "os") as m:
        assert sorted(map(int, os.listdir(m.path / "pid"))) == sorted(p["pid"] for p in ps)
        rec = next(p for p in ps if p["name"] == "notepad.exe")
        info = json.loads((m.path / "pid" / str(rec["pid"]) / "info.json").read_text())
        assert info == rec
        mods = cli_json(*local, "modules", "-p", "notepad.exe")
        assert sorted(os.listdir(m.path / "pid" / str(rec["pid"]) / "modules")) == sorted(x["name"] for x in mods)
        base = mods[0]["base"]
        dd = subprocess.run(["dd", f"if={m.path / 'pid' / str(rec['pid']) / 'memory.vmem'}", "bs=4096",
                             f"skip={base // 4096}", "count=3", "status=none"], capture_output=True, check=True).stdout
        assert dd == cli_read(local, rec["pid"], base, 3 * 4096)
        exports = json.loads((m.path / "pid" / str(rec["pid"]) / "modules" / mods[1]["name"] / "exports.json")
                             .read_text())
        assert exports == cli_json(*local, "exports", "-p", "notepad.exe", "-m", mods[1]["name"])
    with mounted(["-c", f"remote:{daemon.url},conn=demo", "-o", "win32"], tmp_path / "phys") as m:
        with open(m.path / "phys.raw", "rb") as f:
            f.seek(0x1234000)
            got = f.read(0x3000)
        want = cli("-c", "demo", "phys-read", "0x1234000", "0x3000", "--out", "-").stdout
        assert got == want
        assert sorted(map(int, os.listdir(m.path / "pid"))) == sorted(p["pid"] for p in ps)
