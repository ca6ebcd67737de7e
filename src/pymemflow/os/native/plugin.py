"""``native`` OS plugin: the local Linux machine (see :mod:`pymemflow.os.native.layer`)."""

from __future__ import annotations

from typing import Any

from ...errors import ArgumentError
from ...types import ArgSpec, PluginSpec, choice, parse_bool
from .layer import NativeOs


def _factory(args: dict[str, Any], input: Any) -> NativeOs:
    if input is not None:
        raise ArgumentError("native: this OS layer reads the local machine and takes no connector as input")
    return NativeOs(proc=args.get("proc") or "/proc", writable=bool(args.get("writable")),
                    io=args.get("io") or "auto")


PLUGIN = PluginSpec(
    kind="os",
    name="native",
    description="The local Linux machine: processes, mapped files, memory maps, ELF exports, process memory",
    factory=_factory,
    args=[
        ArgSpec("proc", "procfs mount point", default="/proc"),
        ArgSpec("writable", "allow writes to process memory (process_vm_writev)", default=False, parse=parse_bool),
        ArgSpec("io", "auto | readv (process_vm_readv) | procmem (/proc/PID/mem)", default="auto",
                parse=choice("auto", "readv", "procmem")),
    ],
)
