"""The plugin inventory: built-ins, plugin folders, precedence on name clashes, broken plugins."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from pymemflow.errors import ArgumentError
from pymemflow.plugins import registry
from pymemflow.plugins.api import PluginSpec
from pymemflow.plugins.registry import Inventory, plugin_folders, specs_of

FOLDER_PLUGIN = '''
from pymemflow.plugins.api import ArgSpec, PluginSpec
PLUGIN = PluginSpec("connector", "{name}", "{desc}", lambda a, i: None, args=[ArgSpec("x", "an x")])
'''


def _write(folder: Path, stem: str, name: str, desc: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{stem}.py"
    p.write_text(FOLDER_PLUGIN.format(name=name, desc=desc))
    return p


def test_builtins_present() -> None:
    inv = Inventory.load(entry_points=False, folders=[])
    for kind, name in (("connector", "raw"), ("connector", "dummy"), ("connector", "auto"), ("os", "native")):
        spec = inv.get(kind, name)
        assert spec.origin == "builtin" and spec.kind == kind
    assert [s.name for s in inv.connectors()] == sorted(s.name for s in inv.connectors())
    assert all(s.kind == "os" for s in inv.oses())


def test_broken_builtin_module_is_skipped_with_a_warning(monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(registry, "BUILTIN_MODULES", ["pymemflow.connectors.no_such_plugin", "pymemflow.connectors.raw"])
    with caplog.at_level(logging.WARNING, logger="pymemflow.plugins.registry"):
        inv = Inventory.load(entry_points=False, folders=[])
    assert inv.has("connector", "raw")
    assert any("no_such_plugin" in p and "ModuleNotFoundError" in p for p in inv.problems)
    assert any("no_such_plugin" in r.getMessage() for r in caplog.records)


def test_plugin_folders_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("PYMEMFLOW_PLUGIN_PATH", f"{a}{os.pathsep}{b}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert plugin_folders() == [a, b, tmp_path / "home" / ".local/lib/pymemflow"]


def test_folder_plugins_precedence_and_clashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second, home = tmp_path / "first", tmp_path / "second", tmp_path / "home"
    p1 = _write(first, "one", "clash", "from first")
    p2 = _write(second, "two", "clash", "from second")
    _write(second, "fakeraw", "raw", "pretends to be raw")
    _write(home / ".local/lib/pymemflow", "mine", "homeplug", "from home")
    monkeypatch.setenv("PYMEMFLOW_PLUGIN_PATH", f"{first}{os.pathsep}{second}")
    monkeypatch.setenv("HOME", str(home))
    inv = Inventory.load(entry_points=False)
    clash = inv.get("connector", "clash")
    assert clash.description == "from first" and clash.origin == str(p1)
    assert inv.get("connector", "raw").origin == "builtin"  # built-ins always win
    assert inv.get("connector", "homeplug").description == "from home"
    lost = {(lo.name, lo.origin, w.origin) for lo, w in inv.shadowed}
    assert ("clash", str(p2), str(p1)) in lost
    assert ("raw", str(second / "fakeraw.py"), "builtin") in lost


def test_broken_folder_files_are_reported(tmp_path: Path) -> None:
    (tmp_path / "noplugin.py").write_text("X = 1\n")
    (tmp_path / "crash.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "wrongtype.py").write_text("PLUGIN = 42\n")
    _write(tmp_path, "good", "goodplug", "fine")
    inv = Inventory.load(builtin=False, entry_points=False, folders=[tmp_path])
    assert inv.names("connector") == ["goodplug"]
    text = "\n".join(inv.problems)
    assert "neither PLUGIN nor PLUGINS" in text
    assert "RuntimeError: boom at import" in text
    assert "int is not a PluginSpec" in text


def test_plugins_list_in_a_module(tmp_path: Path) -> None:
    (tmp_path / "multi.py").write_text(
        "from pymemflow.plugins.api import PluginSpec\n"
        "PLUGINS = [PluginSpec('connector', 'm1', '', lambda a, i: None), PluginSpec('os', 'm2', '', lambda a, i: None)]\n")
    inv = Inventory.load(builtin=False, entry_points=False, folders=[tmp_path])
    assert inv.names("connector") == ["m1"] and inv.names("os") == ["m2"]


def test_unknown_name_lists_available_and_hints_the_kind() -> None:
    inv = Inventory.load(entry_points=False, folders=[])
    with pytest.raises(ArgumentError, match=r"unknown connector 'rawx' \(did you mean 'raw'\?\); available: .*raw"):
        inv.get("connector", "rawx")
    with pytest.raises(ArgumentError, match=r"'native' is an OS layer: use -o native"):
        inv.get("connector", "native")


def test_specs_of_rejects_other_objects() -> None:
    spec = PluginSpec("os", "s", "", lambda a, i: None)
    assert specs_of(spec, "x") == [spec] and specs_of([spec], "x") == [spec]
    with pytest.raises(TypeError, match="not a PluginSpec"):
        specs_of([spec, 3], "x")
    with pytest.raises(TypeError, match="str is not a PluginSpec"):
        specs_of("raw", "x")
