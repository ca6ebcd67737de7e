"""What a gdb client debugs: one address space of the chain (a process, the kernel, or physical
memory), its modules and, where the chain has CPU state, registers.

Built from the OS layer's objects (``os.process``, ``module_list``, ``kernel_memory``,
``kernel_modules``): the stub is a front end, not a second implementation.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from ..errors import ArgumentError
from ..mem.view import MemoryView
from ..os.base import ModuleInfo, OsLayer
from .regs import GDB_ARCH, cpu_states, pack_registers, pick_cpu


@dataclass
class GdbTarget:
    memory: MemoryView
    arch: str
    description: str
    connector: Any = None
    modules_fn: Any = None
    dtbs: tuple[int, ...] = ()
    osabi: str | None = None
    pid: int = 1
    writable: bool = False
    notices: list[str] = field(default_factory=list)

    @property
    def gdb_arch(self) -> str:
        return GDB_ARCH.get(self.arch, "i386:x86-64")

    def modules(self) -> list[ModuleInfo]:
        if self.modules_fn is None:
            return []
        try:
            return list(self.modules_fn())
        except NotImplementedError:
            return []

    def registers(self) -> tuple[bytes, str | None]:
        """The ``g`` bytes and, when they are zeros, why (the notice shown to the user)."""
        cpus, source = cpu_states(self.connector)
        cpu = pick_cpu(cpus, self.dtbs)
        if cpu is None:
            why = ("this chain has no CPU state (no dump notes, no QMP)" if not cpus else
                   f"no CPU in {source} runs this address space (CR3 not among {[hex(d) for d in self.dtbs]})")
            return pack_registers(self.arch, None), f"registers are zeros: {why}"
        return pack_registers(self.arch, cpu), None

    def libraries_xml(self) -> str:
        """``qXfer:libraries:read``: each module at its load address (gdb's ``info sharedlibrary``)."""
        parts = ['<library-list version="1.0">']
        for m in self.modules():
            name = html.escape(m.path or m.name, quote=True)
            parts.append(f'<library name="{name}"><segment address="{m.base:#x}"/></library>')
        parts.append("</library-list>")
        return "".join(parts)


def build_target(phys: Any, os_layer: OsLayer | None, process: str | None, kernel: bool,
                 writable: bool) -> GdbTarget:
    """``-p PID|NAME`` (a process), ``--kernel``, or physical memory when the chain has no OS layer."""
    if process is not None and kernel:
        raise ArgumentError("gdbserver: give -p PROCESS or --kernel, not both")
    if os_layer is None:
        if process is not None or kernel:
            raise ArgumentError("gdbserver: -p and --kernel need an OS layer (-o ...)")
        if phys is None:
            raise ArgumentError("gdbserver: the chain has neither a connector nor an OS layer")
        arch = str(getattr(phys, "hints", {}).get("arch") or "x64")
        return GdbTarget(phys, arch, "physical memory", phys, writable=writable)
    osabi = "none"
    if process is None:
        mem = os_layer.kernel_memory()
        arch = str(getattr(mem, "arch_name", None) or getattr(getattr(mem, "arch", None), "name", None)
                   or getattr(phys, "hints", {}).get("arch") or "x64")
        return GdbTarget(mem, arch, f"the kernel of {os_layer.name}", phys, os_layer.kernel_modules,
                         osabi=osabi, writable=writable)
    proc = os_layer.process(process)
    info = proc.info
    arch = info.arch
    return GdbTarget(proc.memory, arch, f"process {info.pid} ({info.name})", phys, proc.module_list,
                     dtbs=tuple(d for d in (info.dtb, info.user_dtb) if d), osabi=osabi, pid=max(info.pid, 1),
                     writable=writable)
