"""Live smear (issue 12): a running, busy guest (BUSY=1: a spinning marker process, the init loop's
helpers starting and exiting) walked again and again through the qemu connector while it runs. Lists
change under the walker; every walk must end with a (possibly partial) result and warnings, never an
exception."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from testbed import Guest, boot

from pymemflow.connectors.qemu import open_qemu
from pymemflow.os.linux.layer import LinuxOs

ROUNDS = 40


@pytest.fixture(scope="module")
def busy_guest() -> Iterator[Guest]:
    g = boot("x64", BUSY="1", MEM="256M", SUFFIX="smear")
    try:
        yield g
    finally:
        g.stop()


def test_walks_over_a_running_busy_guest_never_raise(busy_guest: Guest) -> None:
    conn = open_qemu(busy_guest.name)
    lx = LinuxOs(conn)
    assert conn.is_running()  # reads race the guest: no pause
    sizes: list[int] = []
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for _ in range(ROUNDS):
            infos = lx.process_info_list()
            sizes.append(len(infos))
            for info in [i for i in infos if not i.extra.get("kernel_thread")][:3]:
                proc = lx.process_from_info(info)
                proc.maps()
    lx.close()
    assert min(sizes) >= 10, sizes  # every round listed processes
    assert len(set(sizes)) >= 1
    seen = {w.category.__name__ for w in rec}
    assert seen <= {"IncompleteWalkWarning", "CappedSizeWarning", "DegradedWarning", "DeclaredSizeWarning"}, seen
    print(f"{ROUNDS} rounds, processes per round {min(sizes)}..{max(sizes)}, {len(rec)} warnings")
