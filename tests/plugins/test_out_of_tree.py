"""An out-of-tree plugin package installed for real (entry points) and a plugin-folder plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pymemflow
from pymemflow.plugins.registry import Inventory

from .conftest import PLUGIN_FOLDER


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pymemflow.cli.main", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


def test_entry_points_found(installed_plugin_pkg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == "pmf_testplugin"]:
        monkeypatch.delitem(sys.modules, name)  # other tests import it from source
    monkeypatch.syspath_prepend(str(installed_plugin_pkg))
    inv = Inventory.load(folders=[])
    pattern = inv.get("connector", "pattern")  # entry point naming a PluginSpec object
    toyos = inv.get("os", "toyos")  # entry point naming a module with PLUGIN
    assert pattern.origin == toyos.origin == "entry point pymemflow-testplugin"
    assert pattern.version == "1.2.3"
    assert str(installed_plugin_pkg) in sys.modules["pmf_testplugin"].__file__
    assert not inv.has("os", "pattern")
    assert any("wrongkind" in p and "'pattern' is a connector plugin in the 'pymemflow.os' entry-point group" in p
               for p in inv.problems)
    with pymemflow.chain(["-c", "pattern:seed=3,step=5"], inventory=inv) as ch:
        mem = ch.connector
        assert mem.read(0x100, 64) == mem.expected(0x100, 64)
        assert mem.read(0x100, 1)[0] == (0x100 * 5 + 3) & 0xFF
    assert mem.closed


def test_entry_point_plugins_from_the_cli(installed_plugin_pkg: Path) -> None:
    env = {"PYTHONPATH": str(installed_plugin_pkg), "PYMEMFLOW_PLUGIN_PATH": ""}
    res = _cli("plugins", "--json", env=env)
    assert res.returncode == 0, res.stderr
    by_name = {p["name"]: p for p in json.loads(res.stdout)["plugins"]}
    assert by_name["pattern"]["origin"] == "entry point pymemflow-testplugin"
    assert [a["name"] for a in by_name["pattern"]["args"]] == ["size", "seed", "step"]
    assert by_name["toyos"]["kind"] == "os" and by_name["toyos"]["requires_input"]
    res = _cli("-c", "pattern:seed=7,size=4k", "phys-read", "0xff8", "16", "--json", env=env)
    assert res.returncode == 1  # half of it is past the end
    out = json.loads(res.stdout)
    assert bytes.fromhex(out["hex"][:16]) == bytes(((a + 7) & 0xFF) for a in range(0xFF8, 0x1000))
    assert out["hex"][16:] == "??" * 8  # unreadable, not zero data
    assert "8 of 16 bytes unreadable" in res.stderr
    res = _cli("targets", "-c", "pattern", "--json", env=env)
    assert res.returncode == 0
    assert json.loads(res.stdout) == [{"name": "p1", "description": "pattern with seed 1", "seed": 1},
                                      {"name": "p2", "description": "seed 2", "seed": 2}]


def test_plugin_folder_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYMEMFLOW_PLUGIN_PATH", str(PLUGIN_FOLDER))
    inv = Inventory.load(entry_points=False)
    spec = inv.get("connector", "procview")
    assert spec.origin == str(PLUGIN_FOLDER / "procview.py")
    assert spec.requires_input
    res = _cli("plugins", "procview", env={"PYMEMFLOW_PLUGIN_PATH": str(PLUGIN_FOLDER)})
    assert res.returncode == 0, res.stderr
    assert "usage: -c procview:TARGET,key=value...[:MIDDLEWARE]" in res.stdout
    assert str(PLUGIN_FOLDER / "procview.py") in res.stdout
