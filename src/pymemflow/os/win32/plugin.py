"""``win32`` OS plugin: Windows (x64, x86 PAE, x86) found in a connector's physical memory."""

from __future__ import annotations

from typing import Any

from ...errors import ArgumentError
from ...types import PROGRESS_ARG, ArgSpec, PluginSpec, choice, parse_bool, parse_int
from ..base import OsLayer
from .discovery import triage_of
from .kernel import Win32Kernel


def _factory(args: dict[str, Any], input: Any) -> OsLayer:
    if input is None:
        raise ArgumentError("win32: needs a connector (e.g. -c raw:FILE -o win32, or -c demo:win10)")
    if triage_of(input) is not None:  # a triage dump: no physical memory to discover Windows in
        from .triage import Win32Triage  # lazy: only a triage dump needs it

        return Win32Triage(input, symbols=args.get("symbols"))
    kw: dict[str, Any] = {k: args.get(k) for k in ("dtb", "kernel_hint", "kernel_base", "arch", "symbols",
                                                   "symstore", "symcache")}
    progress = args.get(PROGRESS_ARG)  # the front end's reporter, or False/None: silent
    kw["progress"] = progress if callable(progress) else None
    kw["transition"] = bool(args.get("transition", True))
    return Win32Kernel.open(input, **kw)


PLUGIN = PluginSpec(
    kind="os",
    name="win32",
    description="Windows from physical memory: processes, modules, exports, VAD/page-table maps, keyboard",
    factory=_factory,
    accepts_input=True,
    requires_input=True,
    args=[
        ArgSpec("dtb", "kernel page-table root (CR3); skips the root scan", parse=parse_int),
        ArgSpec("kernel_hint", "an address inside ntoskrnl (e.g. an entry point); the base is searched below it",
                parse=parse_int),
        ArgSpec("kernel_base", "ntoskrnl base address (checked, not searched)", parse=parse_int),
        ArgSpec("arch", "x64 | x86pae | x86 (default: detect)", parse=choice("x64", "x86pae", "x86")),
        ArgSpec("symbols", "folder of volatility3 ISF files (.json / .json.xz) to take offsets from"),
        ArgSpec("symstore", "symbol server URL for PDB download (off by default)"),
        ArgSpec("symcache", "cache folder for downloaded PDBs"),
        ArgSpec("transition", "read transition PTEs as present", default=True, parse=parse_bool),
        ArgSpec(PROGRESS_ARG, "report scan progress to the front end (the CLI draws a bar when stderr is a "
                "terminal); false: silent", default=True, parse=parse_bool),
    ],
)
