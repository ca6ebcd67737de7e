"""``procview``: a connector that runs on top of an OS layer -- a window of one process's virtual
memory exposed as physical memory ``0 .. size``.

``-o native -c procview:PID,base=ADDR,size=N -o toyos``: the native OS layer finds the process, this
connector reads its memory, and an OS layer reads that. A plugin-folder plugin (PYMEMFLOW_PLUGIN_PATH).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pymemflow.errors import ArgumentError, ReadFailure
from pymemflow.mem.phys import PhysicalMemory, PhysicalMetadata
from pymemflow.plugins.api import ArgSpec, PluginSpec, parse_int


class ProcessWindow(PhysicalMemory):
    name = "procview"

    def __init__(self, proc: Any, base: int, size: int) -> None:
        super().__init__()
        self.proc, self.base = proc, base
        self.metadata = PhysicalMetadata(max_address=size, real_size=size, readonly=True)

    def _read_batch(self, addrs: Any, lengths: Any, out: Any) -> list[ReadFailure]:
        size = self.metadata.max_address
        inside = (addrs + lengths.astype(np.uint64)) <= np.uint64(size)
        fails = self.proc.memory._read_batch(addrs + np.uint64(self.base), lengths, out)
        fails = [ReadFailure(f.index, f.address - self.base, f.length, f.reason) for f in fails]
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        for i in np.flatnonzero(~inside).tolist():
            a, n = int(addrs[i]), int(lengths[i])
            ok = max(0, size - a)
            out[int(starts[i]) + ok : int(starts[i]) + n] = 0
            fails.append(ReadFailure(i, a + ok, n - ok, "outside the window"))
        return fails


def _open(args: dict[str, Any], os_layer: Any) -> ProcessWindow:
    if os_layer is None:
        raise ArgumentError("procview: needs an OS layer before it (-o native -c procview:PID,...)")
    return ProcessWindow(os_layer.process(args["target"]), args["base"], args["size"])


PLUGIN = PluginSpec(
    kind="connector",
    name="procview",
    description="A window of a process's memory as physical memory (runs on an OS layer; test plugin)",
    factory=_open,
    args=[
        ArgSpec("target", "pid or name of the process", required=True),
        ArgSpec("base", "virtual address where the window starts", required=True, parse=parse_int),
        ArgSpec("size", "window size", default=4096, parse=parse_int),
    ],
    accepts_input=True,
    requires_input=True,
)
