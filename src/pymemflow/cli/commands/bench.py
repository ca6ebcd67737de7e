"""``bench``: memflow's ``read_bench`` on any chain -- random chunks of a process's module.

    pymemflow -c demo -o win32 bench                       # a process and module picked for you
    pymemflow -c raw:/x.img -o win32 bench -p explorer.exe -m kernel32.dll --json
    pymemflow -o native bench -p 1234 --seconds 1
    pymemflow -c qemu:vm bench --phys                      # physical memory, no OS layer needed

Each cell reads random chunks (0x10000 ... 0x8 bytes) in batches of 1, 8 and 32 for ``--seconds`` and
reports MB/s and reads/s; bytes that could not be read are counted in ``failed_bytes``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...bench import BATCH_SIZES, CHUNK_SIZES, BenchCell, read_bench
from ...errors import ArgumentError, PymemflowError
from ...mem.view import MemoryView
from ...os.base import OsLayer
from ...plugins.api import parse_int
from ..context import CommandContext

MAX_PICK = 64
"""Processes tried when none is named: the module with the most readable pages wins."""
GOOD_FRACTION = 0.9
"""A module this readable ends the search."""
SAMPLE_PAGES = 4096


def _int_list(text: str) -> list[int]:
    values = [parse_int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) <= 0:
        raise ArgumentError(f"expected a comma-separated list of positive numbers, got {text!r}")
    return values


def register(sub: Any) -> None:
    p = sub.add_parser("bench", help="read benchmark (memflow's read_bench): MB/s and reads/s per chunk size")
    p.add_argument("-p", "--process", help="pid or name (default: the process whose module reads best)")
    p.add_argument("-m", "--module", help="module name (default: the process's most readable module)")
    p.add_argument("--start", type=parse_int, help="benchmark this address range instead of a module (with --size)")
    p.add_argument("--size", type=parse_int, help="length of the --start range")
    p.add_argument("--phys", action="store_true", help="benchmark the connector's physical memory")
    p.add_argument("--chunks", type=_int_list, default=list(CHUNK_SIZES),
                   help="chunk sizes (default: 0x10000,0x1000,0x100,0x10,0x8)")
    p.add_argument("--batches", type=_int_list, default=list(BATCH_SIZES), help="chunks per batch (default: 1,8,32)")
    p.add_argument("--seconds", type=float, default=0.3, help="time per cell (default 0.3)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the addresses")
    p.set_defaults(handler=run_bench)


def readable_fraction(mem: MemoryView, start: int, size: int) -> float:
    """Share of the range's pages whose first byte reads (at most ``SAMPLE_PAGES``, evenly spread)."""
    pages = np.arange(start & ~0xFFF, start + size, 0x1000, dtype=np.uint64)
    if pages.shape[0] > SAMPLE_PAGES:
        pages = pages[np.linspace(0, pages.shape[0] - 1, SAMPLE_PAGES).astype(np.intp)]
    pages[0] = start
    return float(mem.read_batch(pages, 1).ok().mean())


def _best_module(proc: Any, name: str | None, need: int) -> tuple[Any, float]:
    """The module (named, or the most readable one of the process) with its readable fraction."""
    mods = [proc.module_by_name(name)] if name else proc.module_list()
    best: tuple[Any, float] = (None, -1.0)
    for m in mods:
        if m.size >= need:
            frac = readable_fraction(proc.memory, m.base, m.size)
            if frac > best[1]:
                best = (m, frac)
            if frac >= GOOD_FRACTION:
                break
    return best


def _pick_process(os_: OsLayer, module: str | None, need: int) -> tuple[Any, Any, float]:
    best: tuple[Any, Any, float] = (None, None, 0.0)
    for info in os_.process_info_list()[:MAX_PICK]:
        try:
            proc = os_.process_from_info(info)
            mod, frac = _best_module(proc, module, need)
        except (PymemflowError, NotImplementedError, OSError):
            continue
        if mod is not None and frac > best[2]:
            best = (proc, mod, frac)
            if frac >= GOOD_FRACTION:
                break
    if best[0] is None:
        what = f"module {module!r} " if module else "module "
        raise ArgumentError(f"bench: no process has a readable {what}of at least {need:#x} bytes among the "
                            f"first {MAX_PICK}; name one with -p and -m, or give --start/--size")
    return best


def _target(ctx: CommandContext) -> tuple[MemoryView, int, int, dict[str, Any]]:
    """The memory, range and description of what to read; ``readable_fraction`` included."""
    a = ctx.args
    need = max(a.chunks)
    if (a.start is None) != (a.size is None):
        raise ArgumentError("bench: --start and --size go together")
    has_os = any(lk.kind == "os" for lk in ctx.links)
    if a.phys or not has_os:
        phys = ctx.connector()
        start = a.start if a.start is not None else 0
        size = a.size if a.size is not None else int(phys.metadata.max_address) - start
        _check_range(start, size)
        return phys, start, size, {"memory": "physical", "start": start, "size": size,
                                   "readable_fraction": readable_fraction(phys, start, size)}
    os_: OsLayer = ctx.os()
    if a.process is not None:
        proc = os_.process(a.process)
        mod, frac = None, 0.0
        if a.start is None:
            mod, frac = _best_module(proc, a.module, need)
            if mod is None:
                raise ArgumentError(f"bench: process {proc.info.name} ({proc.info.pid}) has no module of at least "
                                    f"{need:#x} bytes; give -m or --start/--size")
    elif a.start is not None:
        raise ArgumentError("bench: --start/--size need -p PROCESS (or --phys)")
    else:
        proc, mod, frac = _pick_process(os_, a.module, need)
    if mod is None:  # an explicit range
        start, size = a.start, a.size
        _check_range(start, size)
        frac = readable_fraction(proc.memory, start, size)
    else:
        start, size = mod.base, mod.size
    target = {"memory": "virtual", "pid": proc.info.pid, "process": proc.info.name,
              "module": mod.name if mod is not None else None, "start": start, "size": size,
              "readable_fraction": frac}
    return proc.memory, start, size, target


def _check_range(start: int, size: int) -> None:
    if size <= 0 or start < 0:
        raise ArgumentError(f"bench: empty range (start {start:#x}, size {size:#x}): give --start below the end "
                            "of memory and a positive --size")


def _rows(cells: list[BenchCell]) -> list[dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = {}
    for c in cells:
        row = rows.setdefault(c.chunk, {"size": f"{c.chunk:#x}"})
        row[f"x{c.batch} MB/s"] = round(c.mb_per_s, 1)
        row[f"x{c.batch} reads/s"] = round(c.reads_per_s)
    return list(rows.values())


def run_bench(ctx: CommandContext) -> int:
    a = ctx.args
    if a.seconds <= 0:
        raise ArgumentError("bench: --seconds must be positive")
    mem, start, size, target = _target(ctx)
    try:
        with ctx.progress(len(a.chunks) * len(a.batches), "bench") as bar:
            cells = read_bench(mem, start, size, chunk_sizes=a.chunks, batch_sizes=a.batches, seconds=a.seconds,
                               seed=a.seed, on_cell=lambda _c: bar.advance())
    except ValueError as e:
        raise ArgumentError(f"bench: {e}") from None
    failed = sum(c.failed_bytes for c in cells)
    if ctx.format == "json":
        ctx.write_json({"target": target, "seconds_per_cell": a.seconds, "cells": [c.as_dict() for c in cells]})
        return 0
    if ctx.machine:  # --jsonl / --csv: one record per cell
        ctx.emit([c.as_dict() for c in cells])
        return 0
    where = (f"{target['process']} (pid {target['pid']})" + (f", {target['module']}" if target["module"] else "")
             if target["memory"] == "virtual" else "physical memory")
    ctx.out.write(f"read bench: {where}, {start:#x}..{start + size:#x} ({size:#x} bytes, "
                  f"{target['readable_fraction']:.0%} of pages readable), {a.seconds:g} s per cell\n")
    ctx.emit(_rows(cells))
    if failed:
        total = sum(c.bytes for c in cells)
        ctx.err.write(f"pymemflow: warning: {failed} of {total} bytes read were unreadable (zero-filled)\n")
    return 0
