"""Checks that the offsets in use give answers a real Windows could give.

A wrong offsets table does not fail loudly: it reads plausible-looking bytes from the wrong place.
These checks look at whole results (every process, every VAD) for patterns no real Windows produces,
and at the offsets themselves for fields the layer reads but the source does not know, and turn both
into warnings that name the offsets' source and build, so a wrong table never passes as an answer.
"""

from __future__ import annotations

from collections.abc import Callable

from ..base import MemoryRegion, ProcessInfo
from .fields import has_default
from .offsets import Win32Offsets
from .offsets.wanted import missing_layer_fields

SYSTEM_PID = 4
NT5_BUILD = 2195
"""Windows 2000: the user-mode loader layouts ``fields.py`` takes as fixed hold from here on."""


def source_of(off: Win32Offsets) -> str:
    """'table 10.0.18362.295 (5B1E...1)': where the offsets came from, for warnings and ``info``."""
    return f"{off.source} {off.version or off.build} ({off.guid_age or 'no PDB id'})"


def missing_field_names(off: Win32Offsets) -> list[str]:
    """The struct fields the layer reads that ``off`` lacks for its build. Symbols are left out
    (discovery finds those from exports, hints and the KDBG), and so are the user-mode loader fields
    fixed by the ABI, which have defaults in ``fields.py`` (from NT 5: older kernels get no defaults)."""
    return [m for m in missing_layer_fields(off)
            if m.startswith("_") and not (has_default(m) and off.build >= NT5_BUILD)]


def missing_fields(off: Win32Offsets) -> list[str]:
    """The warning (one per kernel) naming every field of :func:`missing_field_names`."""
    missing = missing_field_names(off)
    if not missing:
        return []
    return [f"offsets {source_of(off)} lack {len(missing)} field(s) the win32 layer reads: "
            f"{', '.join(missing)}; what depends on them is unknown (shown as 0 / missing), not right"]


def check_processes(infos: list[ProcessInfo], off: Win32Offsets,
                    wow64_peb: Callable[[ProcessInfo], int]) -> list[str]:
    """Every ppid 0 but System's; WoW64 processes none of which has a 32-bit PEB."""
    out: list[str] = []
    others = [i for i in infos if i.pid not in (0, SYSTEM_PID) and i.state == "alive"]
    if len(others) >= 2 and all(i.ppid == 0 for i in others):
        at = off.get("_EPROCESS.InheritedFromUniqueProcessId")
        out.append(f"implausible: every process has parent pid 0 except System's ({len(others)} processes); "
                   f"_EPROCESS.InheritedFromUniqueProcessId "
                   f"{'unknown' if at is None else f'at {at:#x}'} in offsets {source_of(off)} is probably wrong")
    wow = [i for i in infos if i.wow64 and i.state == "alive"]
    if wow and all(not wow64_peb(i) for i in wow):
        out.append(f"implausible: {len(wow)} WoW64 process(es) (WoW64Process set) but none has a 32-bit PEB; "
                   f"the WoW64 offsets in {source_of(off)} are probably wrong")
    return out


def check_vads(regions: list[MemoryRegion], walk_warnings: list[str], pid: int, off: Win32Offsets) -> list[str]:
    """A process with a VAD root whose tree gave nothing readable, or only empty/inverted ranges."""
    bad = [r for r in regions if r.end <= r.start]
    if (not regions and walk_warnings) or (regions and len(bad) == len(regions)):
        return [f"implausible: pid {pid}: no readable VAD ({len(walk_warnings)} unreadable/bad node(s), "
                f"{len(bad)} empty range(s)); the VAD layout in offsets {source_of(off)} is probably wrong"]
    return []
