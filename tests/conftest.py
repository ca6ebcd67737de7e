"""Shared fixtures. Guests come from the project's own QEMU testbed (tests/testbed; set up on first use) and
are session-scoped: one boot per kind per test run, stopped at the end. Reference data is in tests/data."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from testbed import DATA, Guest, boot, provision  # noqa: E402


def pytest_sessionstart(session: pytest.Session) -> None:
    """First use on a Debian machine as root: install the suite's system tools (clang, lld, llvm,
    libsnappy1v5, liblzo2-2 ...), so no test skips for want of them. Otherwise the skips say what
    to install."""
    if os.geteuid() != 0:
        return
    for missing, install in ((provision.missing_test_tools, provision.install_test_tools),):
        if missing():
            print(f"\ntestbed: first use, installing {', '.join(missing())}", file=sys.stderr)
            try:
                install()
            except provision.ProvisionError as e:
                print(f"testbed: could not install them: {e}", file=sys.stderr)


def _guest(kind: str, **knobs: str) -> Iterator[Guest]:
    g = boot(kind, **knobs)
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
    """i386 PAE kernel (Debian 686-pae)."""
    yield from _guest("pae")


@pytest.fixture(scope="session")
def guest_x86() -> Iterator[Guest]:
    """i386 non-PAE kernel (Debian 686, 2-level paging)."""
    yield from _guest("x86")


@pytest.fixture(scope="session")
def guest_ram_x64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real x86-64 testbed guest's RAM (256 MiB, KASLR), paused and copied to a file; the guest is
    stopped right after, so tests (the OS-layer fuzz suite ...) mutate copies without a running VM."""
    import shutil

    from pymemflow.live.qmp import QmpClient

    g = boot("x64", MEM="256M", SUFFIX="ram")
    try:
        if not g.ramfile:
            pytest.skip("testbed guest has no RAM file")
        q = QmpClient(g.qmp, 10.0)
        try:
            q.cmd("stop")
        finally:
            q.close()
        out = tmp_path_factory.mktemp("guest_ram") / "x64-256m.raw"
        shutil.copyfile(g.ramfile, out)
    finally:
        g.stop()
    return out


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
