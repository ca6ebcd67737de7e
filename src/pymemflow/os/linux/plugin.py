"""``linux`` OS plugin: a Linux kernel in physical memory, found through VMCOREINFO/kallsyms/BTF."""

from __future__ import annotations

from typing import Any

from ...errors import ArgumentError
from ...types import PROGRESS_ARG, ArgSpec, PluginSpec, parse_bool, parse_int
from .layer import LinuxOs


def _factory(args: dict[str, Any], input: Any) -> LinuxOs:
    if input is None:
        raise ArgumentError("linux: needs a connector (physical memory), e.g. -c raw:/dev/shm/guest.ram -o linux")
    progress = args.get(PROGRESS_ARG)  # the front end's reporter, or False/None: silent
    return LinuxOs(input, system_map=args.get("system_map") or None, isf=args.get("isf") or None,
                   progress=progress if callable(progress) else None, dtb=args.get("dtb"),
                   kaslr_offset=args.get("kaslr_offset"))


PLUGIN = PluginSpec(
    kind="os",
    name="linux",
    description="Linux from bare physical memory: VMCOREINFO + kallsyms + BTF (no symbol files needed)",
    factory=_factory,
    accepts_input=True,
    requires_input=True,
    args=[
        ArgSpec("system_map", "System.map of the kernel (symbols when kallsyms is not in VMCOREINFO)"),
        ArgSpec("isf", "volatility3 Linux ISF JSON (struct layouts for kernels without BTF)"),
        ArgSpec("dtb", "kernel page-table root (CR3); with system_map= it opens kernels without VMCOREINFO",
                parse=parse_int),
        ArgSpec("kaslr_offset", "KASLR shift of the kernel (default: from VMCOREINFO, or found with dtb=)",
                parse=parse_int),
        ArgSpec(PROGRESS_ARG, "report scan progress to the front end (the CLI draws a bar when stderr is a "
                "terminal); false: silent", default=True, parse=parse_bool),
    ],
)
