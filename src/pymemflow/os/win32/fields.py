"""Struct offsets the layer reads, with the values that never changed across Windows builds as defaults.

The offsets source (ISF / table / PDB) is asked first; only members whose offset is fixed by the
ABI since NT 5 (PEB, loader data, process parameters, UNICODE_STRING) have defaults, so an offsets
table that lacks them still lets us walk user-mode loader lists.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import NotFoundError
from .offsets import Win32Offsets

# (x64, x86) defaults for user-mode structs, stable since Windows XP / Server 2003
_STABLE: dict[str, tuple[int, int]] = {
    "_PEB.Ldr": (0x18, 0x0C),
    "_PEB.ProcessParameters": (0x20, 0x10),
    "_PEB.ImageBaseAddress": (0x10, 0x08),
    "_PEB_LDR_DATA.InLoadOrderModuleList": (0x10, 0x0C),
    "_LDR_DATA_TABLE_ENTRY.InLoadOrderLinks": (0, 0),
    "_LDR_DATA_TABLE_ENTRY.DllBase": (0x30, 0x18),
    "_LDR_DATA_TABLE_ENTRY.SizeOfImage": (0x40, 0x20),
    "_LDR_DATA_TABLE_ENTRY.FullDllName": (0x48, 0x24),
    "_LDR_DATA_TABLE_ENTRY.BaseDllName": (0x58, 0x2C),
    "_RTL_USER_PROCESS_PARAMETERS.ImagePathName": (0x60, 0x38),
    "_RTL_USER_PROCESS_PARAMETERS.CommandLine": (0x70, 0x40),
    "_UNICODE_STRING.Buffer": (0x8, 0x4),
}


STABLE_PEB32 = ("_PEB32.Ldr", "_PEB32.ProcessParameters", "_PEB32.ImageBaseAddress")
"""WoW64 PEB members the 32-bit layout takes from the x86 column of the defaults when unknown."""


def has_default(key: str) -> bool:
    """True if the layer has an ABI-fixed default for ``key`` (so an offsets source may lack it)."""
    return key in _STABLE or key in STABLE_PEB32


def first(off: Win32Offsets, *keys: str) -> int:
    """The first of ``keys`` the offsets know (e.g. ``WoW64Process`` vs Windows 7's ``Wow64Process``)."""
    for k in keys:
        v = off.get(k)
        if v is not None:
            return v
    raise NotFoundError(f"none of {', '.join(keys)} known for {off.version or off.build} ({off.source})")


def maybe(off: Win32Offsets, *keys: str) -> int | None:
    for k in keys:
        v = off.get(k)
        if v is not None:
            return v
    return None


@dataclass(frozen=True)
class UserLayout:
    """Offsets of the user-mode loader structures for one pointer width (native or WoW64)."""

    ptr: int
    peb_ldr: int
    peb_params: int
    peb_image_base: int
    ldr_list: int
    entry_base: int
    entry_size: int
    entry_full: int
    entry_name: int
    params_image: int
    params_cmdline: int
    ustr_buffer: int

    @property
    def entry_span(self) -> int:
        """Bytes of an LDR entry to read to get all fields (through BaseDllName)."""
        return self.entry_name + 2 * self.ptr


def user_layout(off: Win32Offsets, wow64: bool = False) -> UserLayout:
    """Native layout from the offsets (defaults above); WoW64 32-bit layout from the x86 defaults
    (or ``_PEB32`` members when the offsets source has them)."""
    if wow64:
        d = {k: v[1] for k, v in _STABLE.items()}
        return UserLayout(4, off.get("_PEB32.Ldr", d["_PEB.Ldr"]) or d["_PEB.Ldr"],
                          off.get("_PEB32.ProcessParameters", d["_PEB.ProcessParameters"]) or d["_PEB.ProcessParameters"],
                          off.get("_PEB32.ImageBaseAddress", d["_PEB.ImageBaseAddress"]) or d["_PEB.ImageBaseAddress"],
                          d["_PEB_LDR_DATA.InLoadOrderModuleList"], d["_LDR_DATA_TABLE_ENTRY.DllBase"],
                          d["_LDR_DATA_TABLE_ENTRY.SizeOfImage"], d["_LDR_DATA_TABLE_ENTRY.FullDllName"],
                          d["_LDR_DATA_TABLE_ENTRY.BaseDllName"], d["_RTL_USER_PROCESS_PARAMETERS.ImagePathName"],
                          d["_RTL_USER_PROCESS_PARAMETERS.CommandLine"], d["_UNICODE_STRING.Buffer"])
    col = 0 if off.pointer_size == 8 else 1

    def g(k: str) -> int:
        v = off.get(k)
        return v if v is not None else _STABLE[k][col]

    return UserLayout(off.pointer_size, g("_PEB.Ldr"), g("_PEB.ProcessParameters"), g("_PEB.ImageBaseAddress"),
                      g("_PEB_LDR_DATA.InLoadOrderModuleList"), g("_LDR_DATA_TABLE_ENTRY.DllBase"),
                      g("_LDR_DATA_TABLE_ENTRY.SizeOfImage"), g("_LDR_DATA_TABLE_ENTRY.FullDllName"),
                      g("_LDR_DATA_TABLE_ENTRY.BaseDllName"), g("_RTL_USER_PROCESS_PARAMETERS.ImagePathName"),
                      g("_RTL_USER_PROCESS_PARAMETERS.CommandLine"), g("_UNICODE_STRING.Buffer"))


def kernel_ldr_layout(off: Win32Offsets) -> UserLayout:
    """PsLoadedModuleList entries (``_KLDR_DATA_TABLE_ENTRY``) share the LDR entry's field offsets."""
    base = user_layout(off)
    col = 0 if off.pointer_size == 8 else 1

    def g(k: str, fallback: str) -> int:
        v = off.get(k)
        if v is not None:
            return v
        v = off.get(fallback)
        return v if v is not None else _STABLE[fallback][col]

    return UserLayout(
        base.ptr, 0, 0, 0, 0,
        g("_KLDR_DATA_TABLE_ENTRY.DllBase", "_LDR_DATA_TABLE_ENTRY.DllBase"),
        g("_KLDR_DATA_TABLE_ENTRY.SizeOfImage", "_LDR_DATA_TABLE_ENTRY.SizeOfImage"),
        g("_KLDR_DATA_TABLE_ENTRY.FullDllName", "_LDR_DATA_TABLE_ENTRY.FullDllName"),
        g("_KLDR_DATA_TABLE_ENTRY.BaseDllName", "_LDR_DATA_TABLE_ENTRY.BaseDllName"),
        0, 0, base.ustr_buffer,
    )
