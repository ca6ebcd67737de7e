"""Which structs and symbols the win32 layer needs; flattening an ISF into ``Win32Offsets`` dicts.

Shared by the ISF path at run time and by ``scripts/gen_win_offsets.py`` (which stores the same
flattening per build family in the built-in table), so both sources give the same keys.
"""

from __future__ import annotations

from typing import Any

WANTED_STRUCTS: tuple[str, ...] = (
    # processes and threads
    "_EPROCESS", "_KPROCESS", "_ETHREAD", "_KTHREAD", "_EWOW64PROCESS", "_CLIENT_ID",
    "_SE_AUDIT_PROCESS_CREATION_INFO", "_OBJECT_NAME_INFORMATION", "_EX_FAST_REF",
    "_DISPATCHER_HEADER", "_OBJECT_HEADER", "_OBJECT_HEADER_NAME_INFO", "_OBJECT_HEADER_CREATOR_INFO",
    "_OBJECT_TYPE", "_POOL_HEADER",
    # user-mode loader data (native and WoW64 32-bit)
    "_PEB", "_PEB32", "_TEB", "_TEB32", "_PEB_LDR_DATA", "_LDR_DATA_TABLE_ENTRY",
    "_KLDR_DATA_TABLE_ENTRY", "_RTL_USER_PROCESS_PARAMETERS", "_UNICODE_STRING", "_STRING32",
    "_LIST_ENTRY", "_CURDIR",
    # VAD trees (Windows 8+: AVL of _RTL_BALANCED_NODE; Windows 7: _MMADDRESS_NODE / _MM_AVL_TABLE)
    "_RTL_AVL_TREE", "_RTL_BALANCED_NODE", "_MMVAD_SHORT", "_MMVAD", "_MMVAD_FLAGS", "_MMVAD_FLAGS1",
    "_MMVAD_FLAGS2", "_MMADDRESS_NODE", "_MM_AVL_TABLE", "_SUBSECTION", "_CONTROL_AREA", "_FILE_OBJECT",
    # page tables: hardware and software (transition / prototype / pagefile) PTE bits
    "_MMPTE", "_MMPTE_HARDWARE", "_MMPTE_SOFTWARE", "_MMPTE_TRANSITION", "_MMPTE_PROTOTYPE",
    "_HARDWARE_PTE",
    # system
    "_KUSER_SHARED_DATA", "_MM_SESSION_SPACE", "_PHYSICAL_MEMORY_DESCRIPTOR", "_PHYSICAL_MEMORY_RUN", "_DBGKD_GET_VERSION64",
)

WANTED_SYMBOLS: tuple[str, ...] = (
    "PsActiveProcessHead", "PsLoadedModuleList", "PsInitialSystemProcess", "KdDebuggerDataBlock",
    "NtBuildNumber", "NtBuildLab", "MmPfnDatabase", "KiSystemStartup", "KdVersionBlock",
    "MmPhysicalMemoryBlock", "KeNumberProcessors", "MmSystemRangeStart", "MmHighestUserAddress",
    "MmUserProbeAddress", "ObHeaderCookie", "ObTypeIndexTable", "PsIdleProcess", "PspCidTable",
    "KiKvaShadow", "PsProcessType", "CmNtCSDVersion", "KeServiceDescriptorTable", "MmProtectToValue",
)


def flatten_isf(isf: Any, structs: tuple[str, ...] = WANTED_STRUCTS,
                symbols: tuple[str, ...] = WANTED_SYMBOLS
                ) -> tuple[dict[str, int], dict[str, int], dict[str, tuple[int, int, int]]]:
    """Direct members of ``structs`` (offsets; bitfields separately) plus ``symbols`` RVAs."""
    fields: dict[str, int] = {}
    sizes: dict[str, int] = {}
    bits: dict[str, tuple[int, int, int]] = {}
    for s in structs:
        if not isf.has_type(s):
            continue
        sizes[s] = isf.struct_size(s)
        for name, f in sorted(isf.members(s).items()):
            off = int(f.get("offset", 0))
            t = f.get("type") or {}
            if not isinstance(t, dict):
                continue
            if t.get("kind") == "bitfield":
                bits[f"{s}.{name}"] = (off, int(t.get("bit_position", 0)), int(t.get("bit_length", 0)))
            fields[f"{s}.{name}"] = off
    for sym in symbols:
        a = isf.symbol(sym)
        if a is not None:
            fields[sym] = a
    return fields, sizes, bits


def member_struct_types(isf: Any, structs: tuple[str, ...] = WANTED_STRUCTS) -> dict[str, str]:
    """``"STRUCT.Member"`` -> type name for members that are embedded structs/unions (lets the table
    resolve nested keys such as ``_EPROCESS.Pcb.DirectoryTableBase`` without the ISF)."""
    out: dict[str, str] = {}
    for s in structs:
        if not isf.has_type(s):
            continue
        for name, f in isf.members(s).items():
            t = f.get("type") or {}
            if isinstance(t, dict) and t.get("kind") in ("struct", "union") and isinstance(t.get("name"), str):
                out[f"{s}.{name}"] = t["name"]
    return out
