"""The physical limit: NumPy / memcpy of the same sizes from the same file, at the physical addresses
the plan's virtual addresses translate to (no translation, no checks: what no reader can beat)."""

from __future__ import annotations

import mmap
import struct
import zlib
from typing import Any

import numpy as np
from harness import Workload, crc_sum, u64_sum

NAME = "memcpy (limit)"


def version() -> str:
    return "numpy " + np.__version__


def setup(plan: dict[str, Any]) -> dict[str, Any]:
    f = open(plan["image"], "rb")  # noqa: SIM115 - closed in close()
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return {"plan": plan, "f": f, "mm": mm, "np": np.frombuffer(mm, dtype=np.uint8)}


def workloads(st: dict[str, Any]) -> dict[str, Workload]:
    plan, mm, arr = st["plan"], st["mm"], st["np"]
    pa = plan["pa"]
    single = pa["single8"]
    batch = np.array(pa["batch8"], dtype=np.int64)
    pages = pa["read4k"]
    pages_np = np.array(pages, dtype=np.int64)
    runs = pa["read16m_runs"]
    big_n = plan["read16m"]["size"]
    dst = np.frombuffer(mmap.mmap(-1, big_n), dtype=np.uint8)  # page-aligned, warm destination
    u64 = arr[: arr.size & ~7].view(np.uint64)
    rows = np.arange(4096, dtype=np.int64)
    up = struct.Struct("<Q").unpack_from

    def read16m() -> Any:
        pos = 0
        for a, n in runs:
            np.copyto(dst[pos : pos + n], arr[a : a + n])
            pos += n
        return dst

    return {
        "single8": Workload(lambda: [up(mm, a)[0] for a in single], len(single), 8 * len(single),
                            "struct.unpack_from on the mmap", u64_sum),
        # the plan's 8-byte addresses are 8-aligned: one NumPy gather of u64 words
        "batch8": Workload(lambda: u64[batch >> 3], len(batch), 8 * len(batch), "NumPy gather",
                           lambda v: int(v.sum(dtype=np.uint64))),
        "read4k": Workload(lambda: [mm[a : a + 4096] for a in pages], len(pages), 4096 * len(pages), "mmap slice",
                           crc_sum),
        "read4k_batch": Workload(lambda: arr[pages_np[:, None] + rows], len(pages), 4096 * len(pages),
                                 "NumPy gather", crc_sum),
        "read16m": Workload(read16m, 1, big_n, "np.copyto of the physical runs", zlib.crc32),
    }


def close(st: dict[str, Any]) -> None:
    del st["np"]
    try:
        st["mm"].close()
    except BufferError:  # a workload's view still holds it: it goes with the process
        pass
    st["f"].close()
