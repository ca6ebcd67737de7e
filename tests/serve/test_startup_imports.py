"""What ``pymemflow -o remote:... ps`` imports, as a new process against a real daemon (issue 16: a warm
``ps`` through the daemon as a new process in <= 100 ms; benchmarks/bench_serve.py measures it).

A structural guard, not a timing assert: the thin client's start-up is mostly imports, so the modules
a run must never load are listed here. The process runs ``python -m pymemflow ARGS`` (runpy, as ``-m``
does) and writes ``sys.modules`` to a file when it exits; ``-X importtime`` would miss the modules
loaded through ``importlib.import_module`` (the command modules, the plugins).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Daemon

RUN = """
import atexit, json, os, runpy, sys
def dump():
    with open(os.environ["PMF_MODULES_OUT"], "w") as f:
        json.dump(sorted(sys.modules), f)
atexit.register(dump)
sys.argv = ["pymemflow", *sys.argv[1:]]
runpy.run_module("pymemflow", run_name="__main__", alter_sys=True)
"""
BASE = """
import json, os, sys
with open(os.environ["PMF_MODULES_OUT"], "w") as f:
    json.dump(sorted(sys.modules), f)
"""
WRAPPER = {"atexit", "runpy", "json", "json.decoder", "json.encoder", "json.scanner", "_json"}
"""The wrappers' own imports, taken out of both runs (the CLI imports json itself, never the others)."""

NEVER = {
    # NumPy, the plugin scan (importlib.metadata), other plugins' modules, the daemon's server side
    "numpy", "importlib.metadata", "aiohttp", "pefile",
    # TCP/TLS transport (a Unix socket needs none of it) and what pathlib, quoting or a query would bring
    "http.client", "ssl", "email", "urllib.parse", "ipaddress", "pathlib",
    # other commands' needs: typos (difflib), one-string chains (shlex), --csv, forensic times, hashes
    "difflib", "shlex", "csv", "datetime", "hashlib", "tomllib",
    # records are plain slotted classes (records.PlainRecord): no dataclasses with inspect, ast and dis;
    # the Unix-socket client uses _socket (socket.py builds enums and imports selectors)
    "dataclasses", "inspect", "ast", "dis", "socket", "selectors",
}
NEVER_PREFIXES = ("pymemflow.os.win32", "pymemflow.os.linux", "pymemflow.os.native", "pymemflow.connectors",
                  "pymemflow.demo", "pymemflow.mem", "pymemflow.arch", "pymemflow.serve", "pymemflow.fleet",
                  "pymemflow.os.forensics", "pymemflow.os.image", "pymemflow.writers")


def imported(tmp: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``python -m pymemflow ARGS``; its result and the modules it imported beyond the interpreter's
    start-up (and the wrapper's)."""
    out = tmp / "modules.json"
    env = {**os.environ, "COLUMNS": "200", "PMF_MODULES_OUT": str(out)}
    subprocess.run([sys.executable, "-c", BASE], check=True, timeout=60, env=env)
    base = set(json.loads(out.read_text())) | WRAPPER
    p = subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True, timeout=120, env=env)
    return p, set(json.loads(out.read_text())) - base


def forbidden(mods: set[str]) -> list[str]:
    return sorted(m for m in mods if m in NEVER or m.split(".")[0] in NEVER or m.startswith(NEVER_PREFIXES))


@pytest.mark.parametrize("fmt", [[], ["--json"]])
def test_remote_ps_imports_only_the_thin_client(demo_daemon: Daemon, fmt: list[str], tmp_path: Path) -> None:
    p, mods = imported(tmp_path, "-o", f"remote:{demo_daemon.url},conn=demo", "ps", *fmt)
    assert p.returncode == 0, p.stderr[-2000:]
    # it ran for real: the daemon's process list, through the remote OS layer and the osinfo command
    assert "explorer.exe" in p.stdout
    if fmt:
        assert {r["name"] for r in json.loads(p.stdout)} >= {"System", "explorer.exe"}
    assert {"pymemflow.os.remote.layer", "pymemflow.remote.unixhttp", "pymemflow.cli.commands.osinfo"} <= mods
    assert forbidden(mods) == []
    # only the command's own module registers parsers
    others = {m for m in mods if m.startswith("pymemflow.cli.commands.")} - {"pymemflow.cli.commands.osinfo"}
    assert others == set()


def test_the_guard_sees_what_a_local_chain_imports(tmp_path: Path) -> None:
    """The same list flags a local chain (the demo machine: NumPy, the win32 layer), so an empty list
    above means something."""
    p, mods = imported(tmp_path, "-c", "demo", "-o", "win32", "ps")
    assert p.returncode == 0, p.stderr[-2000:]
    bad = forbidden(mods)
    assert "numpy" in bad and any(m.startswith("pymemflow.os.win32") for m in bad)
