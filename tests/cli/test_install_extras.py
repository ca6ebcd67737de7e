"""Every extra of pyproject.toml installs from wheels alone into a fresh venv (a fresh Debian machine has
no compiler headers such as liblzo2-dev), and the installed command runs.

The extras are read from pyproject.toml, so a new one is tested too. Uses pip normally (PyPI, pip's cache).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = sorted(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])

INSTALLED = """
import sys
from importlib.metadata import requires, version
from packaging.requirements import Requirement
extra = sys.argv[1]
for text in requires("pymemflow") or []:
    req = Requirement(text)
    if req.marker is not None and req.marker.evaluate({"extra": extra}):
        print(req.name, version(req.name))
"""
"""Prints every distribution the extra asks for with its installed version (fails when one is missing)."""

CHECKS = {
    "compress": "from pymemflow.connectors.formats import codecs; "
                "assert all(codecs.available(c) for c in ('zlib', 'lzo', 'snappy', 'zstd'))",
}
"""What an extra must make work, beyond its distributions being there."""


@pytest.mark.slow
@pytest.mark.parametrize("extra", EXTRAS)
def test_extra_installs_from_wheels_in_a_fresh_venv(tmp_path: Path, extra: str) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    # --only-binary: a dependency that has no wheel (and would need a compiler) fails here, as on a fresh
    # machine without build headers. The project itself is built from this source tree.
    res = subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                          "--only-binary=:all:", f"{ROOT}[{extra}]"],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"pip install '.[{extra}]' failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    res = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "packaging"],
                         capture_output=True, text=True, timeout=300)
    res = subprocess.run([str(py), "-c", INSTALLED, extra], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip(), res.stderr
    if extra in CHECKS:
        res = subprocess.run([str(py), "-c", CHECKS[extra]], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
    res = subprocess.run([str(venv / "bin" / "pymemflow"), "-c", "dummy:size=64k", "info", "--json"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0 and '"max_address": 65536' in res.stdout, res.stderr
