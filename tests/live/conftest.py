"""Guests for the live-target tests: the shared ``guest_x64`` (RAM in /dev/shm) plus guests whose RAM is
QEMU's default anonymous memory -- the real case for the ``qemu`` connector."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from testbed import Guest, boot


@pytest.fixture(scope="session")
def guest_anon() -> Iterator[Guest]:
    """x86-64, 512 MiB, pc machine, anonymous RAM (QEMU's default)."""
    g = boot("x64", RAM="anon", SUFFIX="anon")
    try:
        yield g
    finally:
        g.stop()


@pytest.fixture(scope="session")
def guest_q35() -> Iterator[Guest]:
    """x86-64 q35 with 4 GiB: RAM split around the PCI hole (2 GiB below 4 GiB, 2 GiB above)."""
    g = boot("q35", RAM="anon", SUFFIX="q35anon")
    try:
        yield g
    finally:
        g.stop()
