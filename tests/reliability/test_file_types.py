"""Issue 12, defect 3: a FIFO, socket, directory or character device given as a memory file is
refused before it is read (a FIFO used to hang ``raw:``, ``auto:`` and ``elf:``; ``raw:/etc`` said
``[Errno 12] Cannot allocate memory``), by one check every file-opening connector shares."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

import pymemflow
from pymemflow.errors import PluginError

FILE_CONNECTORS = ["raw", "auto", "elf", "lime", "kdump", "crashdump", "avml", "vmware"]


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "mem.fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("connector", ["raw", "auto", "elf", "lime", "kdump"])
def test_fifo_is_refused_not_hung(fifo, connector) -> None:
    """Through the CLI in a subprocess: the old code blocked in open() until the timeout."""
    res = subprocess.run([sys.executable, "-m", "pymemflow.cli.main", "-c", f"{connector}:{fifo}", "info"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, res.stderr
    assert res.stderr.strip() == (f"pymemflow: error: {connector}: cannot open {fifo}: it is a FIFO (named pipe), "
                                  "not a memory file (give a dump file, a raw image or a block device)")


@pytest.mark.parametrize("connector", FILE_CONNECTORS)
def test_directory_is_refused(tmp_path, connector) -> None:
    with pytest.raises(PluginError, match=f"^{connector}: cannot open {tmp_path}: it is a directory, not a memory file"):
        pymemflow.open(f"{connector}:{tmp_path}")


@pytest.mark.parametrize("connector", FILE_CONNECTORS)
def test_character_device_is_refused(connector) -> None:
    with pytest.raises(PluginError, match=f"^{connector}: cannot open /dev/null: it is a character device"):
        pymemflow.open(f"{connector}:/dev/null")


def test_socket_is_refused(tmp_path) -> None:
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        for connector in ("raw", "auto", "elf"):
            with pytest.raises(PluginError, match="it is a socket"):
                pymemflow.open(f"{connector}:{path}")


def test_memory_map_that_is_a_fifo_is_refused(tmp_path, fifo) -> None:
    img = tmp_path / "x.img"
    img.write_bytes(bytes(4096))
    res = subprocess.run([sys.executable, "-m", "pymemflow.cli.main", "-c", f"raw:{img},memmap={fifo}", "info"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and f"raw: memmap: cannot open {fifo}: it is a FIFO" in res.stderr, res.stderr


def test_plain_path_open_refuses_a_directory(tmp_path) -> None:
    with pytest.raises(PluginError, match=f"auto: cannot open {tmp_path}: it is a directory"):
        pymemflow.open(str(tmp_path))


def test_regular_files_still_open(tmp_path) -> None:
    img = tmp_path / "x.img"
    img.write_bytes(b"\x5a" * 8192)
    with pymemflow.open(f"raw:{img}") as mem:
        assert mem.read(0x1000, 4) == b"\x5a" * 4
