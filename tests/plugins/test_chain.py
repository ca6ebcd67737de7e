"""Chains in command-line order, both directions: an OS layer on a connector and a connector on an
OS layer (a real child process read through the native OS layer, read by the toy OS layer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pymemflow
from pymemflow.errors import ArgumentError
from pymemflow.mem.middleware import MetricsMemory, PageCache
from pymemflow.plugins.api import ArgSpec, PluginSpec
from pymemflow.plugins.chain import Chain, LinkSpec, open_links, parse_chain_args
from pymemflow.plugins.registry import Inventory

from .conftest import PLUGIN_FOLDER, PLUGIN_PKG

TABLE = [(1, 0, "init", 0x1000, 0x2000), (42, 1, "shell", 0x400000, 0x10000), (77, 42, "editor", 0x800000, 0x3000)]


@pytest.fixture
def inv(plugin_source_on_path: Path) -> Inventory:
    """Built-ins + toyos/pattern (imported from source) + procview (plugin folder)."""
    from pmf_testplugin import pattern, toyos

    inv = Inventory.load(entry_points=False, folders=[PLUGIN_FOLDER])
    inv.add(toyos.PLUGIN)
    inv.add(pattern.PLUGIN)
    return inv


@pytest.fixture
def child_with_table(plugin_source_on_path: Path) -> Iterator[tuple[int, int]]:
    """A real process holding a toyos process table in its memory: (pid, address of the table)."""
    code = ("import ctypes, sys\n"
            "from pmf_testplugin.toyos import build_table\n"
            f"buf = ctypes.create_string_buffer(build_table({TABLE!r}), 4096)\n"
            "print(ctypes.addressof(buf), flush=True)\n"
            "sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(PLUGIN_PKG)})
    try:
        assert proc.stdout is not None
        addr = int(proc.stdout.readline())
        yield proc.pid, addr
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)


def _names(os_layer: Any) -> list[tuple[int, int, str]]:
    return [(p.pid, p.ppid, p.name) for p in os_layer.process_info_list()]


EXPECTED = [(pid, ppid, name) for pid, ppid, name, _, _ in TABLE]


def test_parse_chain_args_forms() -> None:
    links = parse_chain_args(["-c", "raw:/x", "--os=win32", "-odemo", "--connector", "qemu:vm:cache=true"])
    assert [(lk.kind, lk.name) for lk in links] == [("connector", "raw"), ("os", "win32"), ("os", "demo"),
                                                    ("connector", "qemu")]
    assert links[3].middleware == {"cache": "true"}
    assert str(links[0]) == "-c raw:/x"
    with pytest.raises(ArgumentError, match="-c needs a value"):
        parse_chain_args(["-c"])
    with pytest.raises(ArgumentError, match=r"unexpected 'ps' in a chain"):
        parse_chain_args(["-c", "raw:/x", "ps"])
    assert str(pymemflow.chain.__doc__)


def test_os_on_a_connector(inv: Inventory) -> None:
    from pmf_testplugin.toyos import build_table

    with Chain(inv).connector("dummy", size="1m").os("toyos", table="0x2000") as ch:
        ch.connector.write(0x2000, build_table(TABLE))
        assert _names(ch.os) == EXPECTED
        assert ch.os.mem is ch.connector
        assert ch.os.info()["input"] == "DummyMemory"
        assert ch.os.process_by_name("shell").module_list()[0].base == 0x400000


def test_connector_on_an_os_then_os_on_it(inv: Inventory, child_with_table: tuple[int, int]) -> None:
    """-o native -c procview:PID,base=ADDR -o toyos: native finds the child, procview exposes a
    window of its memory as physical memory, toyos reads the table there."""
    pid, addr = child_with_table
    argv = ["-o", "native", "-c", f"procview:{pid},base={addr:#x},size=4096", "-o", "toyos"]
    with pymemflow.chain(argv, inventory=inv) as ch:
        assert [lk.spec.name for lk in ch.links] == ["native", "procview", "toyos"]
        assert ch.links[1].input is ch.oses[0]  # the connector got the OS before it
        assert ch.links[2].input is ch.connector  # the OS got the connector before it
        assert _names(ch.os) == EXPECTED
        assert ch.connector.read(0, 5) == b"TOYOS"


def test_both_directions_from_the_cli(child_with_table: tuple[int, int]) -> None:
    pid, addr = child_with_table
    env = {**os.environ, "PYTHONPATH": str(PLUGIN_PKG), "PYMEMFLOW_PLUGIN_PATH": str(PLUGIN_FOLDER)}
    # toyos is not installed here (source on PYTHONPATH only): make a folder shim that re-exports it
    res = subprocess.run([sys.executable, "-m", "pymemflow.cli.main", "-o", "native", "-c",
                          f"procview:{pid},base={addr:#x}", "-o", "toyos", "ps", "--json"],
                         capture_output=True, text=True, env=env, timeout=60)
    if res.returncode == 2 and "unknown OS layer 'toyos'" in res.stderr:
        pytest.fail("toyos should be found through the plugin folder shim: " + res.stderr)
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [(r["pid"], r["ppid"], r["name"]) for r in rows] == EXPECTED
    assert set(rows[0]) == {"pid", "ppid", "name", "path", "command_line", "state", "arch", "dtb", "user_dtb",
                            "address", "wow64", "exit_code", "create_time", "extra"}


def test_middleware_from_chain_and_builder(inv: Inventory) -> None:
    with pymemflow.chain("-c dummy:size=1m:cache=true,cache_size=64k,metrics=true", inventory=inv) as ch:
        assert isinstance(ch.connector, MetricsMemory)
        assert isinstance(ch.connector.inner, PageCache)
        names = [m["name"] for m in ch.connector.info()["middleware"]]
        assert names == ["metrics", "cache"]
    with Chain(inv).connector("pattern", size=1 << 16, cache=True, seed="9") as ch:
        assert isinstance(ch.connector, PageCache)
        assert ch.connector.read(0, 2) == bytes([9, 10])
    assert str(Chain().connector("raw", "/a:b", cache=True).os("win32")) == "-c raw:\"/a:b\":cache=True -o win32"


def test_requires_input_errors(inv: Inventory) -> None:
    with pytest.raises(ArgumentError, match=r"toyos: needs a connector as input: put -c CONNECTOR before -o toyos"):
        pymemflow.chain(["-o", "toyos"], inventory=inv)
    with pytest.raises(ArgumentError, match=r"procview: needs an OS layer as input: put -o OS before -c procview"):
        pymemflow.chain(["-c", "procview:1,base=0"], inventory=inv)
    with pytest.raises(ArgumentError, match="toyos: OS layers take no middleware"):
        open_links([LinkSpec("connector", "dummy"), LinkSpec("os", "toyos", {}, {"cache": "true"})], inv)


class _Recorder:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name
        log.append(f"open {name}")

    def close(self) -> None:
        self.log.append(f"close {self.name}")


def _recording_inventory(log: list[str], fail: str | None = None) -> Inventory:
    inv = Inventory()

    def make(kind: str, name: str) -> PluginSpec:
        def factory(args: dict[str, Any], inp: Any) -> _Recorder:
            if name == fail:
                raise OSError(f"{name} cannot open")
            return _Recorder(log, f"{name}({args.get('target')})<-{getattr(inp, 'name', None)}")
        return PluginSpec(kind, name, "", factory, args=[ArgSpec("target", "t")], accepts_input=True)  # type: ignore[arg-type]

    for kind, name in (("connector", "c1"), ("connector", "c2"), ("os", "o1"), ("os", "o2")):
        inv.add(make(kind, name))
    return inv


def test_order_inputs_and_close_in_reverse() -> None:
    log: list[str] = []
    ch = pymemflow.chain(["-o", "o1:a", "-c", "c1:b", "-c", "c2:c", "-o", "o2:d"], inventory=_recording_inventory(log))
    assert log == ["open o1(a)<-None", "open c1(b)<-o1(a)<-None", "open c2(c)<-o1(a)<-None",
                   "open o2(d)<-c2(c)<-o1(a)<-None"]
    assert ch.connector.name == "c2(c)<-o1(a)<-None" and ch.os.name.startswith("o2")
    log.clear()
    with ch:
        pass
    assert log == ["close o2(d)<-c2(c)<-o1(a)<-None", "close c2(c)<-o1(a)<-None", "close c1(b)<-o1(a)<-None",
                   "close o1(a)<-None"]
    ch.close()
    assert len(log) == 4  # idempotent


def test_all_links_validated_before_anything_opens() -> None:
    log: list[str] = []
    with pytest.raises(ArgumentError, match="o2: unknown argument 'bogus'"):
        pymemflow.chain(["-c", "c1:x", "-o", "o2:bogus=1"], inventory=_recording_inventory(log))
    with pytest.raises(ArgumentError, match="unknown OS layer 'o3'"):
        pymemflow.chain(["-c", "c1:x", "-o", "o3"], inventory=_recording_inventory(log))
    assert log == []


def test_failure_closes_what_was_opened() -> None:
    log: list[str] = []
    with pytest.raises(OSError, match="o2 cannot open"):
        pymemflow.chain(["-c", "c1:x", "-o", "o1", "-o", "o2"], inventory=_recording_inventory(log, fail="o2"))
    assert log == ["open c1(x)<-None", "open o1(None)<-c1(x)<-None", "close o1(None)<-c1(x)<-None",
                   "close c1(x)<-None"]


def test_open_spec_path_and_os(inv: Inventory, tmp_path: Path) -> None:
    from pmf_testplugin.toyos import build_table

    mem = pymemflow.open("dummy:size=64k:cache=true", inventory=inv)
    assert isinstance(mem, PageCache) and mem.metadata.max_address == 64 << 10
    mem.close()
    img = tmp_path / "toy.img"
    img.write_bytes(build_table(TABLE).ljust(8192, b"\0"))
    with pytest.raises(pymemflow.FormatError, match="unknown dump format"):
        pymemflow.open(str(img), inventory=inv)  # auto refuses a file with no known magic ...
    mem = pymemflow.open(img, inventory=inv, raw=True)  # ... unless told it is a raw image
    assert mem.read(0, 5) == b"TOYOS"
    mem.close()
    toy = pymemflow.open(f"raw:{img}", os="toyos", inventory=inv)
    assert _names(toy) == EXPECTED
    conn = toy.mem
    toy.close()  # closes the whole chain: the raw connector below too
    assert toy.closed
    with pytest.raises(pymemflow.PluginError, match="closed"):
        conn.read(0, 4)


def test_builtin_links_satisfy_the_seam_protocols(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Link.obj / Link.input are typed with the Connector protocol and OsLayer; the built-in
    connectors (bare and under middleware) and OS layers really are those."""
    from pymemflow.demo import build_image
    from pymemflow.mem.phys import Connector
    from pymemflow.os.base import OsLayer

    with pymemflow.chain(["-c", "dummy:size=1m:cache=true,metrics=true"]) as ch:
        assert isinstance(ch.connector, Connector) and ch.connector.read(0, 4) == bytes(4)
    path = tmp_path / "w.raw"
    build_image("win10-19041-x64", seed=0).write_raw(path)
    with pymemflow.chain(["-c", f"raw:{path}", "-o", "win32"]) as ch:
        conn, os_link = ch.links
        assert isinstance(conn.obj, Connector) and isinstance(os_link.obj, OsLayer)
        assert os_link.input is conn.obj and ch.os is os_link.obj and ch.connectors == [conn.obj]
    assert not isinstance(object(), Connector)
