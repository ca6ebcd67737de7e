"""Which memory a scan reads: a process's readable mappings, the kernel's mapped pages, or the
connector's real physical ranges -- never holes, never pages that are not there.

A process's ranges are its OS memory map (VADs / VMAs / page-table map, ``Process.maps()``) without
inaccessible (``---``) and paged-out entries, cut down to the pages its page tables really map
when the process memory is a :class:`~pymemflow.arch.VirtualMemory`: a reserved gigabyte with a few
resident pages costs a few page reads, not a gigabyte of failures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..arch import VirtualMemory
from ..errors import PymemflowError
from ..mem.scan import plan
from ..os.base import ModuleInfo, OsLayer, Process
from .engine import Target, intersect, merge

Warn = Callable[[str], None]


def _modules(get: Callable[[], list[ModuleInfo]]) -> list[ModuleInfo]:
    try:
        return list(get())
    except (PymemflowError, NotImplementedError):
        return []  # no module names, still a scan


def process_target(proc: Process) -> Target:
    """The readable, mapped memory of one process (user space)."""
    regions = [r for r in proc.maps() if not r.protection.startswith("-") and r.kind != "pagefile"]
    ranges = merge((r.start, r.end) for r in regions)
    vm = proc.memory
    if isinstance(vm, VirtualMemory) and ranges:
        mapped = merge((r.start, r.end) for r in vm.page_map(ranges[0][0], ranges[-1][1]))
        ranges = intersect(ranges, mapped)
    info = proc.info
    return Target("process", f"pid {info.pid} {info.name}", vm, ranges, info.pid, info.name,
                  _modules(proc.module_list))


def kernel_target(os: OsLayer) -> Target:
    """The kernel's mapped supervisor pages (its page map), with the kernel modules for names."""
    km = os.kernel_memory()
    if not isinstance(km, VirtualMemory):
        raise NotImplementedError("scan --kernel needs the kernel's page tables (this OS layer has none)")
    ranges = merge((r.start, r.end) for r in km.page_map() if r.kind.startswith("kernel"))
    return Target("kernel", "kernel", km, ranges, None, "kernel", _modules(os.kernel_modules))


def phys_target(phys: Any) -> Target:
    """Physical memory: the connector's backed ranges (``phys_ranges``), holes left out."""
    return Target("phys", "physical memory", phys, [(r.start, r.end) for r in plan(phys)])


def all_process_targets(os: OsLayer, warn: Warn | None = None) -> Iterator[Target]:
    """Every process's user space, one after the other (built lazily: a hit streams before the
    next process's map is walked). The kernel pseudo-process is left to ``--kernel``; a process
    whose map cannot be read is skipped with a warning."""
    for info in os.process_info_list():
        if info.extra.get("kernel"):
            continue
        try:
            t = process_target(os.process_from_info(info))
        except (PymemflowError, NotImplementedError) as e:
            if warn is not None:
                warn(f"pid {info.pid} {info.name}: skipped ({e})")
            continue
        if t.ranges:
            yield t
