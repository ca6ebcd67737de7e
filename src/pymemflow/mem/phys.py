"""Physical memory: what every connector exposes.

A connector is a :class:`~pymemflow.mem.view.MemoryView` over guest-physical addresses plus
metadata and "hints" (facts a dump header or a live target knows that an OS layer can use:
``dtb``, ``kernel_base``, ``vmcoreinfo``, ``PsActiveProcessHead``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .view import MemoryView


@dataclass
class PhysicalMetadata:
    max_address: int
    """Highest valid physical address + 1 (the address-space size, holes included)."""
    real_size: int
    """Bytes actually backed (sum of the memory map's ranges)."""
    readonly: bool = True
    ideal_batch_size: int = 4096
    """How many pieces a caller should put in one batch for best speed."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_address": self.max_address,
            "real_size": self.real_size,
            "readonly": self.readonly,
            "ideal_batch_size": self.ideal_batch_size,
        }


class PhysicalMemory(MemoryView):
    """Base class of connectors (and of middleware wrapping a connector).

    Subclasses implement ``_read_batch`` (and ``_write_batch`` when writable) over physical
    addresses, set ``metadata``, and may fill ``hints``. ``close()`` releases files and sockets.
    """

    name: str = "physical"
    metadata: PhysicalMetadata
    hints: dict[str, Any]

    def __init__(self) -> None:
        self.hints = {}

    @property
    def writable(self) -> bool:  # type: ignore[override]
        return not self.metadata.readonly

    def close(self) -> None:
        """Release resources. Idempotent."""

    def __enter__(self) -> PhysicalMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def info(self) -> dict[str, Any]:
        """Metadata and hints, for ``pymemflow info``."""
        return {"connector": self.name, **self.metadata.as_dict(), "hints": dict(self.hints)}


@dataclass
class Hints:
    """Well-known hint keys (plain strings in ``PhysicalMemory.hints``); documented here once."""

    keys: dict[str, str] = field(
        default_factory=lambda: {
            "dtb": "int: a page-table root (CR3/TTBR) known to be valid, e.g. from a dump header",
            "arch": "str: architecture name (x64, x86, x86pae, x64la57, aarch64)",
            "vmcoreinfo": "str: Linux VMCOREINFO text",
            "kernel_base": "int: kernel image base (virtual)",
            "cpu_registers": "list[dict]: per-CPU registers from a dump (cr3, rip, ...)",
            "PsActiveProcessHead": "int: Windows, virtual address",
            "PsLoadedModuleList": "int: Windows, virtual address",
            "KdDebuggerDataBlock": "int: Windows, virtual address",
            "nt_build": "int: Windows build number",
            "machine": "str: machine type from a dump header",
        }
    )
