"""What a build produces: the sparse physical memory with its ground truth, and module records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .memory import PAGE


@dataclass
class SyntheticImage:
    """Sparse physical memory (4 KiB pages) + ground truth ``facts``."""

    size: int
    pages: dict[int, bytearray]
    facts: dict[str, Any]

    def array(self) -> np.ndarray:
        """The whole memory as a uint8 array (anonymous mmap: untouched pages cost nothing)."""
        import mmap

        mm = mmap.mmap(-1, self.size)
        self.fill(mm)
        return np.frombuffer(mm, dtype=np.uint8)

    def fill(self, buf: Any) -> None:
        """Copy the pages into a writable buffer of ``size`` bytes (mmap, bytearray, ...)."""
        mv = memoryview(buf)
        for pa, pg in self.pages.items():
            mv[pa : pa + PAGE] = pg

    def to_bytes(self) -> bytes:
        b = bytearray(self.size)
        self.fill(b)
        return bytes(b)

    def write_raw(self, path: str) -> None:
        """A raw (flat) memory image; holes stay sparse on file systems that support it."""
        with open(path, "wb") as f:
            f.truncate(self.size)
            for pa in sorted(self.pages):
                f.seek(pa)
                f.write(self.pages[pa])

    def read(self, pa: int, n: int) -> bytes:
        out = bytearray()
        while n > 0:
            o = pa & (PAGE - 1)
            k = min(PAGE - o, n)
            pg = self.pages.get(pa - o)
            out += pg[o : o + k] if pg is not None else bytes(k)
            pa, n = pa + k, n - k
        return bytes(out)


@dataclass
class Module:
    name: str
    path: str
    base: int
    size: int
    arch: str
    exports: dict[str, int] = field(default_factory=dict)  # name -> VA
