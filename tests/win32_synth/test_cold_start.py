"""Cold start (issue 15): ``pymemflow -c raw:IMG -o win32 ps`` as a new process imports only what the command
needs -- no NumPy (100-200 ms and OpenBLAS's threads), no HTTP client, none of the forensic modules -- on the
compiled and on the pure-Python read path. Structure only: the times are benchmarks/bench_cold_start.py's."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pymemflow.demo import SyntheticImage

# runs the CLI in a fresh interpreter, then prints which modules it imported (stdout: the ps table first)
WRAPPER = """
import json, sys
from pymemflow.cli.main import main
code = main(sys.argv[1:])
print("MODULES=" + json.dumps(sorted(sys.modules)))
sys.exit(code)
"""

NOT_IMPORTED = ("numpy", "urllib.request", "http.client", "ssl",
                "pymemflow.os.win32.handles", "pymemflow.os.win32.threads", "pymemflow.os.win32.psscan",
                "pymemflow.os.win32.netscan", "pymemflow.os.win32.malfind", "pymemflow.os.win32.keyboard",
                "pymemflow.os.win32.timeline", "pymemflow.os.win32.triage", "pymemflow.os.forensics")


@pytest.fixture(scope="module")
def image(win10: SyntheticImage, tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("cold") / "win10.raw"
    win10.write_raw(str(p))
    return p


@pytest.mark.parametrize("pure", ["0", "1"], ids=["compiled", "pure"])
def test_ps_imports_no_numpy(image: Path, pure: str) -> None:
    env = {**os.environ, "PYMEMFLOW_PURE": pure}
    r = subprocess.run([sys.executable, "-c", WRAPPER, "-c", f"raw:{image}", "-o", "win32", "ps"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    table, _, mods = r.stdout.rpartition("MODULES=")
    modules = set(json.loads(mods))
    assert "System" in table and "smss.exe" in table  # it did list the processes
    built = importlib.util.find_spec("pymemflow.mem._speedups") is not None
    assert ("pymemflow.mem._speedups" in modules) == (built and pure == "0")  # the path asked for ran
    assert not modules & set(NOT_IMPORTED), sorted(modules & set(NOT_IMPORTED))


BIG_BATCH = """
import sys
import pymemflow
from pymemflow.mem import fast
os_ = pymemflow.chain(sys.argv[1]).os
procs = os_.process_list()
assert "numpy" not in sys.modules and not fast.ndarray_configured
mem = os_.kmem
addrs = [p.info.address for p in procs] * 100
res = mem.read_batch(addrs, 16)  # 1500 pieces of a list: the compiled reader needs no NumPy for them either
assert [res.piece(i) for i in range(len(procs))] == [mem.read(a, 16) for a in addrs[:len(procs)]]
data = res.data  # the documented array: NumPy is imported now
assert "numpy" in sys.modules and (fast.speedups is None or fast.ndarray_configured)
import numpy as np
again = mem.read_batch(np.array(addrs, dtype=np.uint64), np.full(len(addrs), 16))  # arrays in
assert not again.failures and again.data.tobytes() == data.tobytes()
print("OK", len(addrs))
"""


def test_numpy_loaded_when_arrays_are_asked_for(image: Path) -> None:
    """NumPy comes in when an array is asked for, and the compiled reader is then told about
    ``numpy.ndarray``; arrays and lists read the same."""
    r = subprocess.run([sys.executable, "-c", BIG_BATCH, f"-c raw:{image} -o win32"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK ")
