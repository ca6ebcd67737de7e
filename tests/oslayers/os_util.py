"""Helpers of the OS-layer reliability tests: synthetic machines with bytes changed, CLI runs."""

from __future__ import annotations

import mmap
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

from pymemflow.mem.buffer import MmapMemory
from pymemflow.mem.memmap import MemoryMap

ROOT = Path(__file__).resolve().parents[2]


def image_bytes(img: Any) -> mmap.mmap:
    mm = mmap.mmap(-1, img.size)
    img.fill(mm)
    return mm


def phys_over(img: Any, mm: mmap.mmap) -> MmapMemory:
    return MmapMemory(mm, MemoryMap.identity(img.size), writable=False)


def put_virtual(kernel: Any, mm: mmap.mmap, va: int, data: bytes) -> None:
    """Write ``data`` at kernel virtual ``va`` of the image bytes (page by page)."""
    done = 0
    while done < len(data):
        pa = kernel.kmem.translate(va + done)
        n = min(len(data) - done, 0x1000 - ((va + done) & 0xFFF))
        mm[pa: pa + n] = data[done: done + n]
        done += n


def pack_ptr(value: int, ptr: int) -> bytes:
    return struct.pack("<Q" if ptr == 8 else "<I", value & ((1 << (8 * ptr)) - 1))


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``pymemflow ARGS`` as a new process (the user's view: exit code, stdout, stderr)."""
    # PMF_CLI_SRC: run the CLI of another checkout (to show a test fails on the old code)
    env = {**os.environ, "PYTHONPATH": os.environ.get("PMF_CLI_SRC", str(ROOT / "src"))}
    return subprocess.run([sys.executable, "-m", "pymemflow", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)
