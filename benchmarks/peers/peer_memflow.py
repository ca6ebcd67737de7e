"""memflow's Python bindings (PyPI ``memflow`` 0.2): its own dummy OS, labelled as such.

memflow-py reaches files and VMs only through native connector plugins that PyPI does not ship, so
it cannot read the image the others read; it runs the same workloads, with the same counts, on a
process of memflow's built-in dummy OS (x86-64 page tables over its in-memory physical memory).
Its checksums are of its own bytes and are not compared. It has no translate call and no batched
read in Python: batched workloads are loops and say so; a 4 KiB read returns a ctypes-like array.
"""

from __future__ import annotations

import random
from importlib.metadata import version as dist_version
from typing import Any

import memflow
from harness import Workload
from memflow import dummy

NAME = "memflow-py"
MODULE_SPAN = 24 << 20


def no_digest(_result: Any) -> None:
    return None


def version() -> str:
    return dist_version("memflow")


def setup(plan: dict[str, Any]) -> dict[str, Any]:
    mem = dummy.DummyMemory(256 << 20)
    dos = dummy.DummyOs(mem)
    pid = dos.alloc_process_with_module(MODULE_SPAN)
    os_ = dos.retrieve_os()
    proc = os_.process_from_pid(pid)
    mod = proc.module_info_list()[0]
    return {"plan": plan, "dos": dos, "os": os_, "proc": proc, "mod": mod}


def workloads(st: dict[str, Any]) -> dict[str, Workload]:
    plan, proc, mod = st["plan"], st["proc"], st["mod"]
    rng = random.Random(0)
    span = min(mod.size, MODULE_SPAN)

    def vas(n: int, align: int) -> list[int]:
        return [mod.base + (rng.randrange(0, span - 4096) & ~(align - 1)) for _ in range(n)]

    single = vas(len(plan["single8"]["va"]), 8)
    batch = vas(len(plan["batch8"]["va"]), 8)
    pages = vas(len(plan["read4k"]["va"]), 4096)
    big_n = min(plan["read16m"]["size"], span & ~0xFFF)
    u64, page_t, big_t = memflow.c_uint64, memflow.c_uint8 * 4096, memflow.c_uint8 * big_n

    r = proc.read

    label = "own dummy OS; "
    return {
        "single8": Workload(lambda: [r(va, u64) for va in single], len(single), 8 * len(single),
                            label + "read(va, c_uint64)", no_digest),
        "batch8": Workload(lambda: [r(va, u64) for va in batch], len(batch), 8 * len(batch),
                           label + "loop: no batch API", no_digest),
        "read4k": Workload(lambda: [r(va, page_t) for va in pages], len(pages), 4096 * len(pages),
                           label + "read(va, c_uint8 * 4096)", no_digest),
        "read16m": Workload(lambda: r(mod.base, big_t), 1, big_n, label + f"read(va, c_uint8 * {big_n:#x})",
                            no_digest),
    }


def close(st: dict[str, Any]) -> None:
    pass
