"""Fixtures for the synthetic Windows machine and the offset sources (session-scoped: built once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pymemflow.demo import SyntheticImage, build_image

from .volrun import ISF_19041  # noqa: F401  (the test modules import it from here)


@pytest.fixture(scope="session")
def win10() -> SyntheticImage:
    return build_image("win10-19041-x64", seed=7, size=256 << 20)


@pytest.fixture(scope="session")
def win7() -> SyntheticImage:
    return build_image("win7-7601-x86pae", seed=7, size=128 << 20)


@pytest.fixture(scope="session")
def win_data(ref_data: Path) -> Path:
    """tests/data/windows: ISFs, offset tables and layouts carried in the repository (see its README)."""
    return ref_data / "windows"
