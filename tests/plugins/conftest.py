"""Fixtures for plugin tests: the out-of-tree test package (source and installed) and the plugin folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
PLUGIN_PKG = DATA / "plugin_pkg"
PLUGIN_FOLDER = DATA / "plugin_folder"


@pytest.fixture(scope="session")
def installed_plugin_pkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test package, really built and installed by pip (offline: --no-build-isolation uses
    the setuptools/wheel already installed) into a private directory. Returns that directory, to be
    put on sys.path (then importlib.metadata sees its entry points) or PYTHONPATH."""
    src = tmp_path_factory.mktemp("plugin_src") / "plugin_pkg"
    shutil.copytree(PLUGIN_PKG, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path_factory.mktemp("plugin_site")
    res = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(target), str(src)], capture_output=True, text=True)
    assert res.returncode == 0, f"pip could not install the test plugin package (needs setuptools and wheel):\n{res.stderr}"
    assert list(target.glob("pymemflow_testplugin-1.2.3.dist-info")), list(target.iterdir())
    return target


@pytest.fixture
def plugin_source_on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The test package importable from its source (no entry points): for chain tests."""
    monkeypatch.syspath_prepend(str(PLUGIN_PKG))
    yield PLUGIN_PKG
