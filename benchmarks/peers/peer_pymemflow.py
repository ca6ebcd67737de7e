"""pymemflow: the ``raw`` connector, x86-64 page tables through ``VirtualMemory``, the win32 layer."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from harness import Addresses, Workload, crc_sum, u64_sum

import pymemflow
from pymemflow.arch import VirtualMemory
from pymemflow.connectors.raw import RawFileMemory
from pymemflow.os.win32.kernel import Win32Kernel

NAME = "pymemflow"


def np_sum(values: Any) -> int:
    return int(values.sum(dtype=np.uint64))


def version() -> str:
    return pymemflow.__version__


def setup(plan: dict[str, Any]) -> dict[str, Any]:
    phys = RawFileMemory(plan["image"])
    return {"plan": plan, "phys": phys, "vm": VirtualMemory(phys, plan["arch"], plan["dtb"])}


def workloads(st: dict[str, Any]) -> dict[str, Workload]:
    plan, vm = st["plan"], st["vm"]
    a = Addresses.of(plan)
    single, pages, big_va, big_n, tr = a.single, a.pages, a.big_va, a.big_n, a.translate
    batch = np.array(a.batch, dtype=np.uint64)
    pages_np = np.array(pages, dtype=np.uint64)
    tr_np = np.array(tr, dtype=np.uint64)

    def batch8() -> Any:
        values, ok = vm.read_u64_many(batch)
        assert ok.all()
        return values

    def read4k_batch() -> Any:
        data, fails = vm.read_gather(pages_np, 4096)
        assert not fails
        return data

    def translate_batch() -> Any:
        res = vm.translate_batch(tr_np)
        assert res.ok.all()
        return res.pa

    r8, r, t = vm.read_u64, vm.read, vm.translate
    out = {
        "single8": Workload(lambda: [r8(va) for va in single], len(single), 8 * len(single), "read_u64", u64_sum),
        "batch8": Workload(batch8, len(batch), 8 * len(batch), "read_u64_many", np_sum),
        "read4k": Workload(lambda: [r(va, 4096) for va in pages], len(pages), 4096 * len(pages), "read", crc_sum),
        "read4k_batch": Workload(read4k_batch, len(pages), 4096 * len(pages), "read_gather", crc_sum),
        "read16m": Workload(lambda: r(big_va, big_n), 1, big_n, "read", zlib.crc32),
        "translate": Workload(lambda: [t(va) for va in tr], len(tr), 0, "translate", u64_sum),
        "translate_batch": Workload(translate_batch, len(tr), 0, "translate_batch", np_sum),
    }
    win = plan.get("windows")
    if win:
        def open_ps() -> int:
            with RawFileMemory(win["image"]) as phys:
                return len(Win32Kernel.open(phys, progress=False).process_info_list())

        out["open_ps"] = Workload(open_ps, 1, 0, "raw + win32 + process_info_list")
        exe = shutil.which("pymemflow", path=str(Path(sys.executable).parent)) or shutil.which("pymemflow")
        if exe:
            def ps_cli() -> int:
                res = subprocess.run([exe, "-c", f"raw:{win['image']}", "-o", "win32", "ps", "--json"],
                                     capture_output=True, text=True, check=True)
                return res.stdout.count('"pid"')

            out["ps_cli"] = Workload(ps_cli, 1, 0, "pymemflow -c raw:IMG -o win32 ps --json")
    return out


def close(st: dict[str, Any]) -> None:
    st["phys"].close()
