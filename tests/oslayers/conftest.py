from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def win10_small() -> Any:
    """A 64 MiB synthetic Windows 10 x64 machine (small: written to files and corrupted many times)."""
    from pymemflow.demo import build_image

    return build_image("win10-19041-x64", seed=3, size=64 << 20)


@pytest.fixture(scope="session")
def win7_small() -> Any:
    from pymemflow.demo import build_image

    return build_image("win7-7601-x86pae", seed=3, size=64 << 20)


@pytest.fixture(scope="session")
def linux_ram(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real x86-64 testbed guest's RAM (256 MiB, KASLR), paused and copied to a file; the guest is
    stopped right after, so tests mutate copies of the file without a running VM."""
    import shutil

    from testbed import boot

    from pymemflow.live.qmp import QmpClient

    g = boot("x64", MEM="256M", SUFFIX="os")
    try:
        q = QmpClient(g.qmp, 10.0)
        try:
            q.cmd("stop")
        finally:
            q.close()
        if not g.ramfile:
            pytest.skip("testbed guest has no RAM file")
        out = tmp_path_factory.mktemp("linux_ram") / "x64-256m.raw"
        shutil.copyfile(g.ramfile, out)
    finally:
        g.stop()
    return out
