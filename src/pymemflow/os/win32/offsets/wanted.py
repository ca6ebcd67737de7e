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
    # handle tables and the objects named from their bodies (registry keys: key body -> control blocks)
    "_HANDLE_TABLE", "_HANDLE_TABLE_ENTRY", "_CM_KEY_BODY", "_CM_KEY_CONTROL_BLOCK", "_CM_NAME_CONTROL_BLOCK",
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
    "ObpInfoMaskToOffset",
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


# What the win32 layer reads (process.py, vad.py, fields.py, kernel.py, discovery.py). Each item is a
# tuple of alternatives (the first one a build knows is used) and the first build that has it, so a
# table can be checked complete per build and a missing field reported by name (never read as 0).
LAYER_FIELDS: tuple[tuple[tuple[str, ...], int], ...] = (
    (("_EPROCESS.UniqueProcessId",), 0), (("_EPROCESS.ActiveProcessLinks",), 0),
    (("_EPROCESS.ImageFileName",), 0), (("_EPROCESS.Peb",), 0), (("_KPROCESS.DirectoryTableBase",), 0),
    (("_EPROCESS.InheritedFromUniqueProcessId",), 0), (("_EPROCESS.WoW64Process", "_EPROCESS.Wow64Process"), 0),
    (("_EPROCESS.ExitStatus",), 0), (("_EPROCESS.CreateTime",), 0), (("_EPROCESS.VadRoot",), 0),
    (("_EPROCESS.SeAuditProcessCreationInfo",), 0), (("_SE_AUDIT_PROCESS_CREATION_INFO.ImageFileName",), 0),
    (("_EWOW64PROCESS.Peb",), 10240),
    (("_PEB32.Ldr",), 0), (("_PEB32.ProcessParameters",), 0), (("_PEB32.ImageBaseAddress",), 0),
    (("_PEB.Ldr",), 0), (("_PEB.ProcessParameters",), 0), (("_PEB.ImageBaseAddress",), 0),
    (("_PEB_LDR_DATA.InLoadOrderModuleList",), 0), (("_LDR_DATA_TABLE_ENTRY.DllBase",), 0),
    (("_LDR_DATA_TABLE_ENTRY.SizeOfImage",), 0), (("_LDR_DATA_TABLE_ENTRY.FullDllName",), 0),
    (("_LDR_DATA_TABLE_ENTRY.BaseDllName",), 0), (("_RTL_USER_PROCESS_PARAMETERS.ImagePathName",), 0),
    (("_RTL_USER_PROCESS_PARAMETERS.CommandLine",), 0), (("_UNICODE_STRING.Buffer",), 0),
    (("_MMVAD_SHORT.StartingVpn",), 0), (("_MMVAD_SHORT.EndingVpn",), 0), (("_MMVAD_SHORT.u",), 0),
    (("_MMVAD_SHORT.StartingVpnHigh",), 9600), (("_MMVAD_SHORT.EndingVpnHigh",), 9600),
    (("_MMVAD_SHORT.VadNode", "_MMVAD_SHORT.LeftChild"), 0), (("_MMVAD.Subsection",), 0),
    (("_RTL_BALANCED_NODE.Left",), 9200), (("_RTL_BALANCED_NODE.Right",), 9200),
    (("_SUBSECTION.ControlArea",), 0), (("_CONTROL_AREA.FilePointer",), 0), (("_FILE_OBJECT.FileName",), 0),
    (("PsActiveProcessHead",), 0), (("PsLoadedModuleList",), 0), (("PsInitialSystemProcess",), 0),
    (("KdDebuggerDataBlock",), 0),
)
LAYER_BITFIELDS: tuple[tuple[str, int], ...] = (
    ("_MMVAD_FLAGS.Protection", 0), ("_MMVAD_FLAGS.PrivateMemory", 0), ("_MMVAD_FLAGS.VadType", 0),
    ("_MMPTE_SOFTWARE.PageFileLow", 0), ("_MMPTE_SOFTWARE.PageFileHigh", 0),
)


X64_ONLY = ("_EPROCESS.WoW64Process", "_EWOW64PROCESS.", "_PEB32.", "_MMVAD_SHORT.StartingVpnHigh",
            "_MMVAD_SHORT.EndingVpnHigh")
"""WoW64 and 64-bit VPN high bytes exist only on 64-bit Windows: an x86 kernel has none of these."""


def missing_layer_fields(off: Any) -> list[str]:
    """Names of the fields the layer reads that ``off`` (a ``Win32Offsets``) cannot resolve for its build."""
    out = [" / ".join(alts) for alts, since in LAYER_FIELDS
           if off.build >= since and all(off.get(a) is None for a in alts)
           and (off.arch == "x64" or not alts[0].startswith(X64_ONLY))]
    out += [f"{k} (bitfield)" for k, since in LAYER_BITFIELDS if off.build >= since and off.bits(k) is None]
    return out
