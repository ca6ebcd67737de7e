"""`pymemflow mount` over the demo machine (x64 Windows 10 and x86-PAE Windows 7), read with real
tools (ls, cat, dd, tail, grep, strings, file, Python open/seek/mmap) and compared with the CLI."""

from __future__ import annotations

import errno
import json
import mmap
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pefile
import pytest

from pymemflow.fs.fuse import MountError, check_mount_point, mounted_at

from .conftest import DEMOS, Mount, cli, cli_json, cli_read, mounted, need_fuse, start_mount

PAGE = 4096


@pytest.fixture(scope="module", params=sorted(DEMOS))
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[str], Mount]]:
    chain = DEMOS[request.param]
    with mounted(chain, tmp_path_factory.mktemp(f"f17-{request.param}") / "mnt") as m:
        yield chain, m


def _proc_with_modules(chain: list[str]) -> tuple[int, list[dict[str, Any]]]:
    for name in ("notepad.exe", "explorer.exe"):
        mods = cli_json(*chain, "modules", "-p", name)
        if mods:
            pid = next(p["pid"] for p in cli_json(*chain, "ps") if p["name"] == name)
            return pid, mods
    raise AssertionError("no process with modules in the demo machine")


def test_pid_listing_and_info_match_ps(demo: tuple[list[str], Mount]) -> None:
    chain, m = demo
    ps = cli_json(*chain, "ps")
    listed = subprocess.run(["ls", str(m.path / "pid")], capture_output=True, text=True, check=True).stdout.split()
    assert sorted(map(int, listed)) == sorted(p["pid"] for p in ps)
    for rec in ps:
        info = json.loads((m.path / "pid" / str(rec["pid"]) / "info.json").read_text())
        assert {k: info[k] for k in rec} == rec  # every ps --json field, same values
        assert (m.path / "pid" / str(rec["pid"]) / "cmdline.txt").read_text() == rec["command_line"] + "\n"
    names = os.listdir(m.path / "name")
    assert len(names) == len(ps)
    for rec in ps:
        link = m.path / "name" / f"{rec['name']}-{rec['pid']}"
        assert os.readlink(link) == f"../pid/{rec['pid']}"
        assert json.loads((link / "info.json").read_text())["pid"] == rec["pid"]


def test_memory_vmem_reads_equal_pymemflow_read(demo: tuple[list[str], Mount]) -> None:
    chain, m = demo
    pid, mods = _proc_with_modules(chain)
    vmem = m.path / "pid" / str(pid) / "memory.vmem"
    for mod in mods[:2]:  # each `pymemflow read` rebuilds the demo machine (seconds): two modules
        base = mod["base"]
        want = cli_read(chain, pid, base, 3 * PAGE)
        assert want[:2] == b"MZ"
        # dd skip= in pages
        dd = subprocess.run(["dd", f"if={vmem}", f"bs={PAGE}", f"skip={base // PAGE}", "count=3", "status=none"],
                            capture_output=True, check=True).stdout
        assert dd == want
        # a reader's mmap of the header pages
        with open(vmem, "rb") as f, mmap.mmap(f.fileno(), 2 * PAGE, prot=mmap.PROT_READ, offset=base) as mm:
            assert mm[: 2 * PAGE] == want[: 2 * PAGE]
        # odd offset and size with open/seek/read
        with open(vmem, "rb") as f:
            f.seek(base + 123)
            assert f.read(5001) == cli_read(chain, pid, base + 123, 5001)
    size = vmem.stat().st_size
    tail = subprocess.run(["tail", "-c", "300", str(vmem)], capture_output=True, check=True).stdout
    assert tail == cli_read(chain, pid, size - 300, 300) == bytes(300)  # unmapped top of user space: zeros


def test_unreadable_pages_read_as_zeros_and_are_listed(demo: tuple[list[str], Mount]) -> None:
    chain, m = demo
    pid, mods = _proc_with_modules(chain)
    maps = json.loads((m.path / "pid" / str(pid) / "maps.json").read_text())
    assert maps == cli_json(*chain, "maps", "-p", str(pid))
    mapped = [(r["start"], r["end"]) for r in maps]
    # first page of a module that is not in the page-table map: zeros, exactly like `read`
    base = mods[0]["base"]
    gap = next(a for a in range(base, base + mods[0]["size"], PAGE) if not any(s <= a < e for s, e in mapped))
    with open(m.path / "pid" / str(pid) / "memory.vmem", "rb") as f:
        f.seek(gap)
        assert f.read(PAGE) == bytes(PAGE) == cli_read(chain, pid, gap, PAGE)
    assert "START" in (m.path / "pid" / str(pid) / "maps.txt").read_text().splitlines()[0]
    assert (m.path / "pid" / str(pid) / "vad.json").read_text().startswith("[")


def test_phys_raw_and_phys_map(demo: tuple[list[str], Mount]) -> None:
    chain, m = demo
    raw = m.path / "phys.raw"
    info = cli_json(*chain, "info")
    assert raw.stat().st_size == info["connector"]["metadata"]["max_address"] if "metadata" in info["connector"] \
        else raw.stat().st_size > 0
    for off, n in ((0x1234567, 0x3001), (raw.stat().st_size - 4096, 4096)):
        with open(raw, "rb") as f:
            f.seek(off)
            got = f.read(n)
        assert got == cli("-c", chain[1], "phys-read", hex(off), hex(n), "--out", "-").stdout
    dd = subprocess.run(["dd", f"if={raw}", "bs=1M", "skip=3", "count=2", "status=none"], capture_output=True,
                        check=True).stdout
    assert dd == cli("-c", chain[1], "phys-read", "3m", "2m", "--out", "-").stdout
    rows = json.loads((m.path / "phys.map.json").read_text())
    holes = [r for r in rows if r["kind"].startswith("hole")]
    assert rows[0]["start"] == 0 and rows[-1]["end"] == raw.stat().st_size
    assert (m.path / "phys.map").read_text().splitlines()[0].split() == ["START", "END", "SIZE", "KIND"]
    for hole in holes:  # win10's machine has BIOS-style holes; win7's RAM is one range
        with open(raw, "rb") as f, mmap.mmap(f.fileno(), PAGE, prot=mmap.PROT_READ, offset=hole["start"]) as mm:
            assert mm[:] == bytes(PAGE)  # a hole reads as zeros
    assert bool(holes) == (chain[1] == "demo")


def test_modules_exports_and_image_with_real_tools(demo: tuple[list[str], Mount]) -> None:
    chain, m = demo
    pid, mods = _proc_with_modules(chain)
    mdir = m.path / "pid" / str(pid) / "modules"
    assert sorted(os.listdir(mdir)) == sorted(x["name"] for x in mods)
    for mod in mods[:2]:  # each CLI call rebuilds the demo machine: two modules keep the test short
        d = mdir / mod["name"]
        assert json.loads((d / "info.json").read_text()) == mod
        exports = json.loads((d / "exports.json").read_text())
        assert exports == cli_json(*chain, "exports", "-p", str(pid), "-m", mod["name"])
        assert json.loads((d / "sections.json").read_text()) == cli_json(*chain, "sections", "-p", str(pid), "-m",
                                                                          mod["name"])
        image = (d / "image.bin").read_bytes()
        out = Path(m.path.parent / f"dump-{mod['name']}")
        cli(*chain, "dump-module", "-p", str(pid), "-m", mod["name"], str(out))
        assert image == out.read_bytes()  # the same code as dump-module
        pe = pefile.PE(data=image)
        assert pe.OPTIONAL_HEADER.ImageBase == mod["base"]
        exp = getattr(pe, "DIRECTORY_ENTRY_EXPORT", None)
        names = sorted(e.name.decode() for e in exp.symbols if e.name) if exp is not None else []
        assert names == sorted(e["name"] for e in exports if e["name"])
        kind = subprocess.run(["file", "-b", str(d / "image.bin")], capture_output=True, text=True).stdout
        assert kind.startswith("PE32"), kind
        strings = subprocess.run(["strings", str(d / "image.bin")], capture_output=True, text=True).stdout
        assert "This program cannot be run in DOS mode" in strings
        if exports:
            txt = d / "exports.txt"
            hits = subprocess.run(["grep", "-c", exports[0]["name"], str(txt)], capture_output=True, text=True)
            assert int(hits.stdout) >= 1


def test_sys_files_match_cli(demo: tuple[list[str], Mount]) -> None:
    chain, m = demo
    kmods = cli_json(*chain, "kmods")
    assert json.loads((m.path / "sys" / "kmods.json").read_text()) == kmods
    count = subprocess.run(["grep", "-c", ".", str(m.path / "sys" / "kmods.txt")], capture_output=True, text=True)
    assert int(count.stdout) == len(kmods) + 1  # header + one line each
    assert json.loads((m.path / "sys" / "info.json").read_text()) == cli_json(*chain, "info")["os"]
    listing = subprocess.run(["ls", "-R", str(m.path / "pid")], capture_output=True, text=True, check=True).stdout
    assert "memory.vmem" in listing and "image.bin" in listing


def test_read_only_mount_refuses_writes(demo: tuple[list[str], Mount]) -> None:
    _, m = demo
    with pytest.raises(OSError) as e:
        open(m.path / "phys.raw", "r+b")
    assert e.value.errno in (errno.EROFS, errno.EACCES)


def test_writable_mount_writes_through(tmp_path: Path) -> None:
    chain = ["-c", "demo:writable=true", "-o", "win32"]
    r = cli("-c", "demo", "-o", "win32", "mount", str(tmp_path), "--writable", check=False)
    assert r.returncode == 2 and b"read-only" in r.stderr
    pid, mods = _proc_with_modules(chain)
    with mounted(chain, tmp_path / "mnt", "--writable") as m:
        vmem = m.path / "pid" / str(pid) / "memory.vmem"
        with open(vmem, "r+b", buffering=0) as f:
            f.seek(mods[0]["base"] + 0x40)
            f.write(b"pymemflow-f17")
        with open(vmem, "rb") as f:
            f.seek(mods[0]["base"] + 0x40)
            assert f.read(13) == b"pymemflow-f17"


@pytest.mark.parametrize("how", ["sigterm", "sigint", "umount"])
def test_clean_unmount(tmp_path: Path, how: str) -> None:
    need_fuse()
    m = start_mount(DEMOS["win10"], tmp_path / "mnt")
    assert (m.path / "pid").is_dir()
    if how == "umount":
        subprocess.run(["umount", str(m.path)], check=True)
        rc = m.proc.wait(timeout=60)
    else:
        rc = m.stop(signal.SIGTERM if how == "sigterm" else signal.SIGINT)
    assert rc == 0, m.proc.stderr.read()  # type: ignore[union-attr]
    assert mounted_at(m.path) is None and os.listdir(m.path) == []


def test_mount_errors_are_clear(tmp_path: Path) -> None:
    r = cli(*DEMOS["win10"], "mount", str(tmp_path / "missing"), check=False)
    assert r.returncode == 1 and b"does not exist" in r.stderr
    with pytest.raises(MountError, match="/nonexistent/fuse does not exist"):
        check_mount_point(tmp_path, dev_fuse="/nonexistent/fuse")
    (tmp_path / "file").write_text("x")
    with pytest.raises(MountError, match="not a directory"):
        check_mount_point(tmp_path / "file")
    with mounted(DEMOS["win10"], tmp_path / "mnt"):
        r = cli(*DEMOS["win10"], "mount", str(tmp_path / "mnt"), check=False)
        assert r.returncode == 1 and b"already a mount point" in r.stderr
