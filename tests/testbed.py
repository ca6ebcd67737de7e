"""Boot and stop the real QEMU Linux guests of ``../shared/testbeds`` for tests.

Each guest gets a name unique to this pytest process, so several test runs (or developers) can boot
guests at the same time. Tests skip with a clear reason when the testbed or QEMU is missing.
Use the session fixtures in ``conftest.py`` (``guest_x64`` ...) or :func:`boot` directly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
TESTBEDS = SHARED / "testbeds"
DATA = ROOT / "tests" / "data"


def skip_reason() -> str | None:
    if not (TESTBEDS / "boot_linux_guest.sh").exists():
        return f"QEMU testbed not found at {TESTBEDS} (expected ../shared/testbeds beside the project)"
    if shutil.which("qemu-system-x86_64") is None and os.geteuid() != 0:
        return "qemu-system-x86_64 is not installed and we are not root (run ../shared/testbeds/setup.sh)"
    return None


@dataclass
class Guest:
    """A running testbed guest: ``info`` holds the KEY=VALUE lines of boot_linux_guest.sh."""

    name: str
    info: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return int(self.info["PID"])

    @property
    def qmp(self) -> str:
        return self.info["QMP"]

    @property
    def qmp2(self) -> str:
        return self.info["QMP2"]

    @property
    def serial(self) -> Path:
        return Path(self.info["SERIAL"])

    @property
    def ramfile(self) -> str | None:
        return self.info.get("RAMFILE")

    @property
    def run_dir(self) -> Path:
        return self.serial.parent

    def serial_lines(self, prefix: str = "TESTBED_") -> list[str]:
        text = self.serial.read_text(errors="replace")
        return [ln.rstrip("\r") for ln in text.split("\n") if ln.startswith(prefix)]

    def ground_truth(self, *extra: str, qmp: str | None = None) -> dict:
        """Run groundtruth.py on the second QMP socket; returns its JSON."""
        cmd = [sys.executable, str(TESTBEDS / "groundtruth.py"), qmp or self.qmp2, "--serial", str(self.serial), *extra]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300).stdout
        return json.loads(out)

    def dump(self, out: Path, fmt: str = "elf") -> Path:
        subprocess.run(
            [sys.executable, str(TESTBEDS / "dump_guest.py"), str(self.run_dir), str(out), "--format", fmt],
            check=True, capture_output=True, text=True, timeout=300,
        )
        return out

    def stop(self) -> None:
        subprocess.run(["bash", str(TESTBEDS / "stop_guest.sh"), self.name], capture_output=True, timeout=60,
                       env={**os.environ, **self.env})


def boot(kind: str = "x64", **env: str) -> Guest:
    """Boot a guest. ``kind``: x64, la57, pae (i386 PAE), x86 (i386 non-PAE), q35 (x64, 4 GiB, q35).

    Extra keyword arguments become the script's environment knobs (MEM, RAM, KASLR, SYMS, BUSY ...).
    RAM defaults to ``shm`` so guest RAM can be mapped by the ``raw`` connector.
    """
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    presets: dict[str, dict[str, str]] = {
        "x64": {"ARCH": "x86_64"},
        "la57": {"ARCH": "x86_64", "CPU": "qemu64,+la57"},
        "pae": {"ARCH": "i386", "PAE": "1"},
        "x86": {"ARCH": "i386", "PAE": "0"},
        "q35": {"ARCH": "x86_64", "MACHINE": "q35", "MEM": "4G"},
    }
    name = f"pmf{os.getpid()}{kind}{env.pop('SUFFIX', '')}"
    e = {"RAM": "shm", "MEM": "512M", **presets[kind], **env, "NAME": name}
    proc = subprocess.run(["bash", str(TESTBEDS / "boot_linux_guest.sh")], capture_output=True, text=True,
                          env={**os.environ, **e}, timeout=600)
    if proc.returncode != 0:
        subprocess.run(["bash", str(TESTBEDS / "stop_guest.sh"), name], capture_output=True, timeout=60)
        raise RuntimeError(f"testbed guest {name} failed to boot:\n{proc.stderr[-3000:]}")
    info = {}
    for line in proc.stdout.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            info[k.strip()] = v.strip()
    return Guest(name, info, e)
