"""``-o remote:`` and ``-c remote:`` chains give exactly what the local chain gives (demo machine),
from the CLI and from Python (``pymemflow.connect``), with the same record objects and errors."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from conftest import DEMO_CHAIN, Daemon, cli

import pymemflow
from pymemflow.errors import NotFoundError, PartialReadError

COMMANDS = [
    ["ps"],
    ["modules", "-p", "explorer.exe"],
    ["exports", "-p", "explorer.exe", "-m", "kernel32.dll"],
    ["maps", "-p", "explorer.exe"],
]


def _chains(d: Daemon) -> dict[str, list[str]]:
    return {"local": DEMO_CHAIN.split(),
            "os-remote": ["-o", f"remote:{d.url},conn=demo"],
            "conn-remote": ["-c", f"remote:{d.url},conn=demo", "-o", "win32"]}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_cli_remote_chains_equal_local(demo_daemon: Daemon, command: list[str]) -> None:
    outs = {name: cli(*chain, *command, "--json").stdout for name, chain in _chains(demo_daemon).items()}
    assert json.loads(outs["local"]), f"{command}: the local chain listed nothing"
    assert outs["os-remote"] == outs["local"]
    assert outs["conn-remote"] == outs["local"]


def test_cli_read_bytes_equal_local(demo_daemon: Daemon, demo_local: Any, tmp_path: Any) -> None:
    proc = demo_local.os.process("explorer.exe")
    k32 = proc.module_by_name("kernel32.dll")
    for name, chain in _chains(demo_daemon).items():
        out = tmp_path / f"{name}.bin"
        cli(*chain, "read", "-p", "explorer.exe", hex(k32.base), hex(0x3000), "--out", str(out))
        assert out.read_bytes() == proc.read(k32.base, 0x3000), name
    assert (tmp_path / "local.bin").read_bytes()[:2] == b"MZ"


def test_cli_remote_errors_like_local(demo_daemon: Daemon) -> None:
    for chain in _chains(demo_daemon).values():
        p = cli(*chain, "modules", "-p", "no-such.exe", check=False)
        assert p.returncode == 1 and "no process named 'no-such.exe'" in p.stderr, p.stderr
    p = cli("-o", f"remote:{demo_daemon.url},conn=nope", "ps", check=False)
    assert p.returncode == 1 and "no connection named 'nope'" in p.stderr and "demo" in p.stderr


def test_python_connect_same_objects(demo_daemon: Daemon, demo_local: Any) -> None:
    d = pymemflow.connect(demo_daemon.url)
    names = {c["name"]: c for c in d.connections()}
    assert names["demo"]["state"] == "open" and names["demo"]["writable"] is False
    vm = d["demo"]
    ros, los = vm.os, demo_local.os
    assert ros.process_info_list() == los.process_info_list()
    assert ros.kernel_modules() == los.kernel_modules()
    rp, lp = ros.process("explorer.exe"), los.process("explorer.exe")
    assert rp.info == lp.info and rp.module_list() == lp.module_list()
    for m in lp.module_list()[:4]:
        assert rp.exports(m.name) == lp.exports(m)
        assert rp.imports(m.name) == lp.imports(m)
        assert rp.sections(m.name) == lp.sections(m)
    assert rp.maps() == lp.maps()
    assert rp.maps(vad=True) == lp.maps(vad=True)
    # bytes: single reads, typed reads, batches with failures, kernel memory, physical memory
    k32 = lp.module_by_name("kernel32.dll")
    assert rp.read(k32.base, 4096) == lp.read(k32.base, 4096)
    assert rp.memory.read_u64(k32.base + 0x3C) == lp.memory.read_u64(k32.base + 0x3C)
    addrs = [k32.base + i * 0x1000 for i in range(0, 64)] + [0x10, 0xFFFF_8000_0000_0000]
    rb, lb = rp.memory.read_batch(addrs, 0x20), lp.memory.read_batch(addrs, 0x20)
    assert rb.data.tobytes() == lb.data.tobytes() and rb.failures == lb.failures and lb.failures
    kb = ros.kernel_memory().read_batch([m.base for m in los.kernel_modules()], 64)
    assert kb.data.tobytes() == los.kernel_memory().read_batch([m.base for m in los.kernel_modules()], 64).data.tobytes()
    pa = np.arange(0, 64 << 20, 0x10000, dtype=np.uint64)
    assert (vm.connector.read_batch(pa, 16).data.tobytes()
            == demo_local.connector.read_batch(pa, 16).data.tobytes())
    assert vm.connector.hints.keys() == demo_local.connector.hints.keys()
    assert rp.memory.translate(k32.base) == lp.memory.translate(k32.base)
    # same errors
    with pytest.raises(NotFoundError, match="no-such.exe"):
        ros.process("no-such.exe")
    with pytest.raises(PartialReadError) as e:
        rp.read(0x10, 8)
    assert e.value.failures[0].address == 0x10
    with pytest.raises(NotFoundError, match="no connection named 'zzz'"):
        d["zzz"]


def test_local_os_layer_on_remote_connector(demo_daemon: Daemon, demo_local: Any) -> None:
    with pymemflow.chain(["-c", f"remote:{demo_daemon.url},conn=demo:cache=true", "-o", "win32"]) as ch:
        assert ch.os.process_info_list() == demo_local.os.process_info_list()
        assert ch.connector.metadata.max_address == demo_local.connector.metadata.max_address


def test_open_and_remove_connections_at_run_time(demo_daemon: Daemon) -> None:
    d = pymemflow.connect(demo_daemon.url)
    vm = d.open("rt-dummy", "-c dummy:size=4m")
    assert vm.connector.metadata.max_address == 4 << 20
    assert any(c["name"] == "rt-dummy" for c in d.connections())
    d.remove("rt-dummy")
    assert not any(c["name"] == "rt-dummy" for c in d.connections())
    with pytest.raises(NotFoundError):
        d["rt-dummy"]
    from pymemflow.errors import ArgumentError

    with pytest.raises(ArgumentError, match="exists already"):
        d.open("demo", "-c dummy")
    with pytest.raises(ArgumentError, match="unknown connector 'nosuch'"):
        d.open("bad", "-c nosuch")
    assert "opened by unix pid=" in demo_daemon.log_text()  # who opened what is logged


def test_remote_os_cli_imports_no_numpy(demo_daemon: Daemon) -> None:
    """The thin-client path (`pymemflow -o remote:... ps`) must start fast: no NumPy, no plugin scan."""
    import subprocess
    import sys

    code = ("import sys, pymemflow.cli.main as m\n"
            f"rc = m.main(['-o', 'remote:{demo_daemon.url},conn=demo', 'ps', '--json'])\n"
            "heavy = sorted(k for k in sys.modules if k.split('.')[0] in ('numpy', 'aiohttp', 'pefile')"
            " or k.startswith(('pymemflow.os.win32', 'pymemflow.connectors.qemu', 'pymemflow.demo')))\n"
            "print(rc, heavy, file=sys.stderr)\n"
            "sys.exit(rc or len(heavy))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)


def test_alone_plugins_are_what_the_full_scan_finds() -> None:
    import importlib

    from pymemflow.plugins.builtin import ALONE, BUILTIN_MODULES
    from pymemflow.plugins.registry import default_inventory

    inv = default_inventory()
    for (kind, name), module in ALONE.items():
        assert module in BUILTIN_MODULES
        assert importlib.import_module(module).PLUGIN is inv.get(kind, name)
