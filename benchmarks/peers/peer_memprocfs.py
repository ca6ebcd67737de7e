"""MemProcFS (PyPI ``memprocfs``): the same raw file with ``-device FILE -dtb CR3``.

With a DTB and no Windows kernel it finds, MemProcFS opens in its "unknown OS" mode with one process
(pid 1) whose page tables are that DTB: virtual reads and translations through x64 tables, exactly
the workload the others run. Its process list needs Windows it recognises; on the synthetic machine
it reports "Unable to locate ntoskrnl.exe", which the report shows as the reason.
"""

from __future__ import annotations

import subprocess
import sys
import zlib
from importlib.metadata import version as dist_version
from typing import Any

import memprocfs
from harness import Addresses, Workload, bytes_u64_sum, crc_sum, u64_sum

NAME = "MemProcFS"
QUIET = ["-disable-symbolserver", "-disable-python", "-norefresh"]


def why_not(image: str) -> str:
    """MemProcFS's own log of a failed open (printed by its C code, so from a child process)."""
    code = f"import memprocfs\ntry: memprocfs.Vmm(['-device', {image!r}, '-printf', '-v', *{QUIET!r}])\nexcept Exception: pass"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = [ln.strip() for ln in res.stdout.splitlines() if "Unable" in ln or "Failed" in ln]
    return " / ".join(dict.fromkeys(lines)) or "(no reason logged)"


def version() -> str:
    return dist_version("memprocfs")


def setup(plan: dict[str, Any]) -> dict[str, Any]:
    vmm = memprocfs.Vmm(["-device", plan["image"], "-dtb", hex(plan["dtb"]), *QUIET])
    return {"plan": plan, "vmm": vmm, "mem": vmm.process(1).memory}


def workloads(st: dict[str, Any]) -> dict[str, Workload]:
    plan, mem = st["plan"], st["mem"]
    a = Addresses.of(plan)
    single, batch, pages, big_va, big_n, tr = a.single, a.batch, a.pages, a.big_va, a.big_n, a.translate

    def batch8() -> list[bytes]:
        sc = mem.scatter_initialize()
        prep = sc.prepare
        for va in batch:
            prep(va, 8)
        sc.execute()
        data = sc.read(pieces)
        sc.close()
        return data  # type: ignore[no-any-return]

    pieces = [[va, 8] for va in batch]
    rt, r, t = mem.read_type, mem.read, mem.virt2phys
    out = {
        "single8": Workload(lambda: [rt(va, "u64") for va in single], len(single), 8 * len(single),
                            "read_type(va, 'u64')", u64_sum),
        "batch8": Workload(batch8, len(batch), 8 * len(batch), "scatter: prepare each, execute, read(list)",
                           bytes_u64_sum),
        "read4k": Workload(lambda: [r(va, 4096) for va in pages], len(pages), 4096 * len(pages), "read", crc_sum),
        "read4k_batch": Workload(lambda: mem.read_scatter(pages), len(pages), 4096 * len(pages),
                                 "read_scatter (4 KiB pages)", lambda res: crc_sum(e["data"] for e in res)),
        "read16m": Workload(lambda: r(big_va, big_n), 1, big_n, "read", zlib.crc32),
        "translate": Workload(lambda: [t(va) for va in tr], len(tr), 0, "virt2phys", u64_sum),
    }
    win = plan.get("windows")
    if win:
        def open_ps() -> int:
            try:
                vmm = memprocfs.Vmm(["-device", win["image"], *QUIET])
            except Exception as e:
                raise RuntimeError(f"{e} MemProcFS says: {why_not(win['image'])}") from None
            try:
                return len(vmm.process_list())
            finally:
                vmm.close()

        out["open_ps"] = Workload(open_ps, 1, 0, "Vmm(-device IMG) + process_list")
    return out


def close(st: dict[str, Any]) -> None:
    st["vmm"].close()
