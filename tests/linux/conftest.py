"""Linux-layer guests: the testbed guests themselves (their init prints /proc/PID/status, cmdline, exe, maps,
threads, fds, /proc/net, /proc/modules and dmesg as ``PMF_*`` lines, see tests/testbed/guest/init).
``lx_KIND`` is the session's ``guest_KIND`` with the parsed ground truth; one boot per kind per session."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from testbed import GroundTruth, Guest, parse_ground_truth

__all__ = ["TRANSIENT", "GroundTruth", "LinuxGuest", "parse_ground_truth"]

TRANSIENT = {"sleep", "ps", "sh", "awk", "cat", "tr", "readlink", "grep", "usleep", "head", "dmesg", "ls", "tail"}
"""Short-lived helpers of the guest's init loops: they come and go between boot and our reads."""


@dataclass
class LinuxGuest:
    guest: Guest
    kind: str
    truth: GroundTruth


@pytest.fixture(scope="session")
def lx_x64(guest_x64: Guest) -> LinuxGuest:
    return LinuxGuest(guest_x64, "x64", guest_x64.truth)


@pytest.fixture(scope="session")
def lx_la57(guest_la57: Guest) -> LinuxGuest:
    return LinuxGuest(guest_la57, "la57", guest_la57.truth)


@pytest.fixture(scope="session")
def lx_pae(guest_pae: Guest) -> LinuxGuest:
    return LinuxGuest(guest_pae, "pae", guest_pae.truth)


@pytest.fixture(scope="session")
def lx_x86(guest_x86: Guest) -> LinuxGuest:
    return LinuxGuest(guest_x86, "x86", guest_x86.truth)
