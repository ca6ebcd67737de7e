"""volatility3 (PyPI ``volatility3``): its own layer stack, FileLayer -> Intel32e with the same CR3.

Layers are the library's read path (what every vol plugin uses); they have no batched read or
translate, so the "batched" workloads are loops over single calls, and say so. The process list is
``vol windows.pslist`` on the synthetic Windows image, with the real ISF of its build copied to a
private folder (vol may delete a symbol file it was pointed at, see tests/data/windows/README.md).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zlib
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

from harness import Addresses, Workload, bytes_u64_sum, crc_sum, u64_sum
from volatility3.framework import contexts
from volatility3.framework.layers import intel, physical

NAME = "volatility3"


def version() -> str:
    return dist_version("volatility3")


def setup(plan: dict[str, Any]) -> dict[str, Any]:
    ctx = contexts.Context()
    ctx.config["pmf.base.location"] = Path(plan["image"]).resolve().as_uri()
    ctx.layers.add_layer(physical.FileLayer(ctx, "pmf.base", "base"))
    ctx.config["pmf.virt.memory_layer"] = "base"
    ctx.config["pmf.virt.page_map_offset"] = plan["dtb"]
    layer = intel.Intel32e(ctx, "pmf.virt", "virt")
    ctx.layers.add_layer(layer)
    return {"plan": plan, "layer": layer, "tmp": tempfile.mkdtemp(prefix="peer_vol3_")}


def workloads(st: dict[str, Any]) -> dict[str, Workload]:
    plan, layer = st["plan"], st["layer"]
    a = Addresses.of(plan)
    single, batch, pages, big_va, big_n, tr = a.single, a.batch, a.pages, a.big_va, a.big_n, a.translate

    r = layer.read

    def read16m() -> bytes:
        type(layer).read.cache_clear()  # read() is an lru_cache: the same 16 MiB again would be a hit
        return r(big_va, big_n)  # type: ignore[no-any-return]

    def translate() -> list[int]:
        t = layer.translate
        return [t(va)[0] for va in tr]

    out = {
        "single8": Workload(lambda: [r(va, 8) for va in single], len(single), 8 * len(single), "layer.read(va, 8)",
                            bytes_u64_sum),
        "batch8": Workload(lambda: [r(va, 8) for va in batch], len(batch), 8 * len(batch),
                           "loop of layer.read: no batch API", bytes_u64_sum),
        "read4k": Workload(lambda: [r(va, 4096) for va in pages], len(pages), 4096 * len(pages), "layer.read",
                           crc_sum),
        "read4k_batch": Workload(lambda: [r(va, 4096) for va in pages], len(pages), 4096 * len(pages),
                                 "loop of layer.read: no batch API", crc_sum),
        "read16m": Workload(read16m, 1, big_n, "layer.read (its read cache cleared first)", zlib.crc32),
        "translate": Workload(translate, len(tr), 0, "layer.translate", u64_sum),
    }
    win = plan.get("windows")
    vol = shutil.which("vol", path=str(Path(sys.executable).parent))
    if win and win.get("isf") and vol:
        sym = Path(st["tmp"]) / "symbols" / "windows" / "ntkrnlmp.pdb"
        sym.mkdir(parents=True)
        (Path(st["tmp"]) / "cache").mkdir()
        shutil.copy(win["isf"], sym / Path(win["isf"]).name)
        cmd = [vol, "--offline", "-q", "--cache-path", str(Path(st["tmp"]) / "cache"), "-s",
               str(Path(st["tmp"]) / "symbols"), "-r", "json", "-f", win["image"], "windows.pslist"]

        def ps_cli() -> int:
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            return len(json.loads(res.stdout))

        out["ps_cli"] = Workload(ps_cli, 1, 0, "vol -r json windows.pslist (warm symbol cache)")
    return out


def close(st: dict[str, Any]) -> None:
    shutil.rmtree(st["tmp"], ignore_errors=True)
