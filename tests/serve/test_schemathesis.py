"""Schemathesis generates requests from the daemon's own OpenAPI document (valid and invalid ones,
every operation, undeclared methods) against a real daemon: no 5xx, responses match the document,
the daemon survives.

``positive_data_acceptance`` is left out: a chain's validity (plugin names, argument values) cannot be
expressed in a schema, so a schema-valid ``{"chain": "-c 0"}`` is rightly refused (422)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TOKEN, tcp_daemon


@pytest.mark.slow
def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    here = str(Path(sys.executable).parent)  # the venv's scripts, also when it is not activated
    st = shutil.which("st", path=here) or shutil.which("st") or shutil.which("schemathesis")
    if st is None:
        pytest.skip("schemathesis is not installed (pip install '.[test]')")
    d = tcp_daemon(tmp_path)
    try:
        url = d.addresses[0]
        p = subprocess.run([st, "run", f"{url}/v1/openapi.json", "-H", f"Authorization: Bearer {TOKEN}",
                            "--max-examples", "15", "--checks", "all", "--exclude-checks",
                            "positive_data_acceptance", "--workers", "1", "--request-timeout", "30",
                            "--seed", "16"], capture_output=True, text=True, timeout=900, cwd=tmp_path)
        assert p.returncode == 0, p.stdout[-6000:]
        assert d.alive()
        assert "internal error" not in d.log_text()
    finally:
        d.stop()
