"""pymemflow's own QEMU testbed: real Debian Linux guests under QEMU/TCG with ground truth, for the tests.

- :mod:`testbed.provision`: first-use set-up (apt packages; kernels and busybox through a private apt state)
- :mod:`testbed.initramfs`: the guest's initramfs (busybox, ``guest/init``, the marker and worker programs)
- :mod:`testbed.guest`: :func:`boot` / :class:`Guest` (stop, dump, serial facts), the knobs
- :mod:`testbed.truth`: the facts the guest printed, parsed (processes, threads, fds, sockets, modules, maps)
- :mod:`testbed.groundtruth`: QEMU's own translations (``gva2gpa``, ``xp``) over QMP
- ``python tests/testbed setup|boot|stop|truth|dump``: the same from a shell

State lives in ``$PYMEMFLOW_TESTBED_HOME`` (default ``~/.cache/pymemflow-own-testbed``).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
"""Reference data carried in the repository (see tests/data/windows/README.md)."""
TESTBEDS = Path(__file__).resolve().parent
"""This folder; it holds ``groundtruth.py`` (``from groundtruth import QMP`` after adding it to sys.path)."""

from testbed.guest import PRESETS, BootError, Guest, boot, find, skip_reason  # noqa: E402
from testbed.provision import HOME, ProvisionError  # noqa: E402
from testbed.qmp import QMP, QmpError  # noqa: E402
from testbed.truth import GroundTruth, Socket, parse_ground_truth  # noqa: E402

__all__ = ["DATA", "HOME", "PRESETS", "QMP", "ROOT", "TESTBEDS", "BootError", "GroundTruth", "Guest",
           "ProvisionError", "QmpError", "Socket", "boot", "find", "parse_ground_truth", "skip_reason"]
