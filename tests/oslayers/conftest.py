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
def linux_ram(guest_ram_x64: Path) -> Path:
    return guest_ram_x64
