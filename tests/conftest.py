"""Shared fixtures. Guests are session-scoped: one boot per kind per test run, stopped at the end."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from testbed import DATA, Guest, boot  # noqa: E402


def _guest(kind: str, **env: str) -> Iterator[Guest]:
    g = boot(kind, **env)
    try:
        yield g
    finally:
        g.stop()


@pytest.fixture(scope="session")
def guest_x64() -> Iterator[Guest]:
    """x86-64 Debian kernel with KASLR, 512 MiB, RAM in /dev/shm (``guest.ramfile``)."""
    yield from _guest("x64")


@pytest.fixture(scope="session")
def guest_la57() -> Iterator[Guest]:
    """x86-64 with 5-level paging (LA57)."""
    yield from _guest("la57")


@pytest.fixture(scope="session")
def guest_pae() -> Iterator[Guest]:
    """i386 PAE kernel."""
    yield from _guest("pae")


@pytest.fixture(scope="session")
def guest_x86() -> Iterator[Guest]:
    """i386 non-PAE kernel (2-level paging)."""
    yield from _guest("x86")


@pytest.fixture(scope="session")
def ref_data() -> Path:
    """tests/data: reference data carried in the repository (``windows/`` holds ISFs and offset tables)."""
    return DATA


@pytest.fixture(scope="session")
def shared_data(ref_data: Path) -> Path:
    """Old name of ``ref_data`` (the data used to live in ../shared/data; same folder layout)."""
    return ref_data


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fuzz-cases", type=int, default=None,
                     help="fuzz cases per target for long runs (sets PYMEMFLOW_FUZZ_CASES; see tests/fuzz/harness.py)")


def pytest_configure(config: pytest.Config) -> None:
    n = config.getoption("--fuzz-cases", None)
    if n is not None:
        import os

        os.environ["PYMEMFLOW_FUZZ_CASES"] = str(n)
