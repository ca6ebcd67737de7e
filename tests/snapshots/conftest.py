"""One testbed guest per session: paused, dumped by QEMU itself (ELF, kdump-zlib), its RAM copied,
then resumed, so every format can be checked page by page against the same RAM."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from testbed import QMP


@dataclass
class Snapshot:
    ram: np.ndarray
    elf: Path
    kdump: Path
    folder: Path
    guest: object


@pytest.fixture(scope="session")
def snapshot(guest_x64, tmp_path_factory) -> Iterator[Snapshot]:
    folder = tmp_path_factory.mktemp("snapshots")
    q = QMP(guest_x64.qmp2, timeout=600)
    try:
        q.execute("stop")
        elf = guest_x64.dump(folder / "guest.elf", "elf")
        kdump = guest_x64.dump(folder / "guest.kdump", "kdump-zlib")
        ram = np.fromfile(guest_x64.ramfile, dtype=np.uint8)
    finally:
        q.execute("cont")
        q.close()
    yield Snapshot(ram, elf, kdump, folder, guest_x64)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def volcache(tmp_path_factory) -> Path:
    """A private volatility3 cache folder (see tests/data/windows/README.md: never share one)."""
    return tmp_path_factory.mktemp("volcache")
