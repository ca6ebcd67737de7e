"""The CLI on a triage dump of the synthetic Windows 10 machine: ``-c crashdump:FILE -o win32`` gives
what the dump holds (kmods, info, read in saved blocks) and says plainly what it cannot do; dump-phys
and phys-read of a dump with no physical memory are errors, and dump-phys leaves no file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pymemflow.cli.main import main
from pymemflow.os.win32.kernel import Win32Kernel
from pymemflow.os.win32.triage import triage_material
from pymemflow.writers.crashdump import write_triage

HEAD = "pymemflow: error: this is a triage dump: it holds no physical memory, only {n} saved blocks"


@pytest.fixture(scope="module")
def dump(win10_image: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, int]:
    from win32_util import phys_of

    k = Win32Kernel.open(phys_of(win10_image), progress=False)
    m = triage_material(k, bugcheck=(0x50, (0xFFFFF80000001234, 0, 0xFFFFF8006FE01000, 2)))
    out = tmp_path_factory.mktemp("cli") / "triage.dmp"
    write_triage(out, **m)
    return win10_image, out, len(m["blocks"])


class Run:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    """``pymemflow -c crashdump:PATH ARGS`` in this process (the same ``main`` as the console script)."""

    def run(path: Path, *args: str) -> Run:
        rc = main(["-c", f"crashdump:{path}", *args])
        out = capsys.readouterr()
        return Run(rc, out.out, out.err)

    return run


def test_kmods_and_info(dump: Any, cli: Any) -> None:
    img, path, _n = dump
    r = cli(path, "-o", "win32", "--json", "kmods")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [(m["name"], m["base"], m["size"]) for m in rows] == \
        [(m["name"], m["base"], m["size"]) for m in img.facts["kernel_modules"]]
    assert all("timestamp" in m for m in rows) and rows[0]["timestamp"] > 0
    r = cli(path, "-o", "win32", "--json", "info")
    assert r.returncode == 0, r.stderr
    os_ = json.loads(r.stdout)["os"]
    assert os_["dump"] == "triage" and os_["bugcheck_code"] == 0x50
    assert os_["kernel_base"] == img.facts["kernel_base"]
    p = next(p for p in img.facts["processes"] if p["pid"] not in (0, 4))  # the writer's default victim
    assert (os_["process"]["pid"], os_["process"]["name"]) == (p["pid"], p["image_file_name"][:14])
    assert os_["thread"]["tid"] == p["threads"][0]["tid"]


def test_read_inside_saved_blocks(dump: Any, cli: Any) -> None:
    img, path, _n = dump
    r = cli(path, "-o", "win32", "read", "-p", "kernel", hex(img.facts["kernel_base"]), "2")
    assert r.returncode == 0 and "4d 5a" in r.stdout, r.stderr


@pytest.mark.parametrize("args, what", [
    (["ps"], "ps cannot work"),
    (["maps", "-p", "4"], "finding process 4 cannot work"),
    (["modules", "-p", "explorer.exe"], "finding process 'explorer.exe' cannot work"),
    (["exports", "-p", "kernel", "-m", "hal.dll"], "exports of hal.dll cannot work"),
    (["keys", "--once"], "keys cannot work"),
    (["handles"], "handles cannot work"),
])
def test_commands_that_cannot_work_say_why(dump: Any, cli: Any, args: list[str], what: str) -> None:
    _img, path, n = dump
    r = cli(path, "-o", "win32", *args)
    assert r.returncode == 1
    assert r.stderr.startswith(HEAD.format(n=n) + "; " + what), r.stderr
    assert "step 2" not in r.stderr and "ntoskrnl.exe) failed" not in r.stderr


def test_dump_phys_is_an_error_and_writes_nothing(dump: Any, cli: Any, tmp_path: Path) -> None:
    _img, path, n = dump
    r = cli(path, "dump-phys", str(tmp_path / "out.raw"))
    assert r.returncode != 0
    assert r.stderr.startswith(HEAD.format(n=n) + " of virtual memory; dump-phys cannot work"), r.stderr
    assert list(tmp_path.iterdir()) == []  # no 0-byte file, no .part, no journal
    r = cli(path, "phys-read", "0x1000", "16")
    assert r.returncode == 1 and "this is a triage dump" in r.stderr
