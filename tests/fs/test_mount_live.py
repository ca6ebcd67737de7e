"""`pymemflow mount` over a live testbed guest (``-c qemu:VM -o linux``), read with real tools while the
VM is paused (exact comparisons with the CLI) and while it runs (listings follow it)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from pymemflow.live.qmp import QmpClient

from .conftest import cli, cli_json, mounted

pytestmark = [pytest.mark.testbed, pytest.mark.slow]


@contextmanager
def paused(guest) -> Iterator[None]:  # type: ignore[no-untyped-def]
    with QmpClient(guest.qmp2, timeout=30) as q:
        q.cmd("stop")
        try:
            yield
        finally:
            q.cmd("cont")


def test_live_guest_mount(guest_x64, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    chain = ["-c", f"qemu:{guest_x64.name}", "-o", "linux"]
    pid, va, pa = int(guest_x64.info["MARKER_PID"]), int(guest_x64.info["MARKER_VA"], 16), \
        int(guest_x64.info["MARKER_PA0"], 16)
    marker = guest_x64.info["MARKER"].encode()
    with mounted(chain, tmp_path / "mnt") as m:
        with paused(guest_x64):
            time.sleep(1.2)  # past the mount's 1 s validity on live targets: what follows is the paused VM
            ps = cli_json(*chain, "ps")
            assert sorted(map(int, os.listdir(m.path / "pid"))) == sorted(p["pid"] for p in ps)
            d = m.path / "pid" / str(pid)
            assert json.loads((d / "info.json").read_text()) == next(p for p in ps if p["pid"] == pid)
            assert json.loads((d / "maps.json").read_text()) == cli_json(*chain, "maps", "-p", str(pid))
            page = subprocess.run(["dd", f"if={d / 'memory.vmem'}", "bs=4096", f"skip={va // 4096}", "count=1",
                                   "status=none"], capture_output=True, check=True).stdout
            assert page == cli(*chain, "read", "-p", str(pid), hex(va), "4096", "--out", "-").stdout
            assert page.startswith(marker)
            grep = subprocess.run(f"dd if={d / 'memory.vmem'} bs=4096 skip={va // 4096} count=1 status=none"
                                  f" | grep -ac {marker.decode()}", shell=True, capture_output=True, text=True)
            assert int(grep.stdout) >= 1
            with open(m.path / "phys.raw", "rb") as f:
                f.seek(pa)
                assert f.read(4096) == cli(*chain, "phys-read", hex(pa), "4096", "--out", "-").stdout
            mods = cli_json(*chain, "modules", "-p", str(pid))
            assert sorted(os.listdir(d / "modules")) == sorted(x["name"] for x in mods)
            image = d / "modules" / mods[0]["name"] / "image.bin"
            data = image.read_bytes()
            cli(*chain, "dump-module", "-p", str(pid), "-m", mods[0]["name"], str(tmp_path / "module.bin"))
            assert data[:4] == b"\x7fELF" and data == (tmp_path / "module.bin").read_bytes()
            elf = ELFFile(io.BytesIO(data))  # an independent ELF reader accepts the image rebuilt from memory
            assert elf.header["e_type"] in ("ET_DYN", "ET_EXEC") and elf.header["e_machine"] == "EM_X86_64"
            loads = [seg for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD"]
            assert loads and loads[0]["p_offset"] == 0 and all(seg["p_offset"] < len(data) for seg in loads)
            kind = subprocess.run(["file", "-b", str(image)], capture_output=True, text=True).stdout
            assert kind.startswith("ELF"), kind
            kmods = cli_json(*chain, "kmods")
            assert json.loads((m.path / "sys" / "kmods.json").read_text()) == kmods
            dmesg = (m.path / "sys" / "dmesg.txt").read_text()
            assert dmesg == cli(*chain, "dmesg").stdout.decode() and "Linux version" in dmesg
            strings = subprocess.run(f"strings {m.path / 'sys' / 'dmesg.txt'} | grep -c 'Linux version'", shell=True,
                                     capture_output=True, text=True)
            assert int(strings.stdout) >= 1
        # running again: the listing follows the VM (short validity), reads still work
        time.sleep(1.2)
        assert str(pid) in os.listdir(m.path / "pid")
        with open(m.path / "pid" / str(pid) / "memory.vmem", "rb") as f:
            f.seek(va)
            assert f.read(len(marker)) == marker
