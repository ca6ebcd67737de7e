"""``pattern``: physical memory whose byte at address ``a`` is ``(a * step + seed) & 0xff``.

Every byte is predictable, so a test can check any read without a file. Addresses at or past
``size`` fail (a hole), so partial reads can be checked too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pymemflow.errors import ReadFailure
from pymemflow.mem.phys import PhysicalMemory, PhysicalMetadata
from pymemflow.plugins.api import ArgSpec, PluginSpec, TargetInfo, parse_int


class PatternMemory(PhysicalMemory):
    name = "pattern"

    def __init__(self, size: int, seed: int, step: int) -> None:
        super().__init__()
        self.size, self.seed, self.step = size, seed, step
        self.metadata = PhysicalMetadata(max_address=size, real_size=size, readonly=True)
        self.closed = False

    def expected(self, addr: int, n: int) -> bytes:
        a = np.arange(addr, addr + n, dtype=np.uint64)
        return ((a * np.uint64(self.step) + np.uint64(self.seed)) & np.uint64(0xFF)).astype(np.uint8).tobytes()

    def _read_batch(self, addrs: Any, lengths: Any, out: Any) -> list[ReadFailure]:
        failures = []
        pos = 0
        for i, (a, n) in enumerate(zip(addrs.tolist(), lengths.tolist(), strict=True)):
            ok = max(0, min(n, self.size - a))
            out[pos : pos + ok] = np.frombuffer(self.expected(a, ok), dtype=np.uint8)
            if ok < n:
                out[pos + ok : pos + n] = 0
                failures.append(ReadFailure(i, a + ok, n - ok, "beyond the pattern's size"))
            pos += n
        return failures

    def close(self) -> None:
        self.closed = True


def _open(args: dict[str, Any], _input: Any) -> PatternMemory:
    return PatternMemory(args["size"], args["seed"], args["step"])


PLUGIN = PluginSpec(
    kind="connector",
    name="pattern",
    description="Predictable test memory: byte a = (a*step + seed) & 0xff",
    factory=_open,
    version="1.2.3",
    args=[
        ArgSpec("size", "bytes of memory", default=1 << 20, parse=parse_int),
        ArgSpec("seed", "value added to every byte", default=0, parse=parse_int),
        ArgSpec("step", "multiplier of the address", default=1, parse=parse_int),
    ],
    targets=lambda: [TargetInfo("p1", "pattern with seed 1", {"seed": 1}), TargetInfo("p2", "seed 2", {"seed": 2})],
)
