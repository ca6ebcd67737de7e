"""Choosing one module out of a process's list by name, path or architecture.

A WoW64 process holds two modules of many names (``ntdll.dll`` in System32 and in SysWOW64): a bare
name that matches both is refused with the two candidates and how to pick one (``arch='x86'`` or a
path such as ``SysWOW64\\ntdll.dll``), never answered silently with the first (64-bit) one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import ArgumentError, NotFoundError

if TYPE_CHECKING:
    from .base import ModuleInfo

ARCH_FAMILIES = {"x86": ("x86", "x86pae", "i386"), "x64": ("x64", "x86_64", "amd64")}
"""``--arch`` value -> the module arch strings it selects (x86 modules of an x86-PAE machine too)."""


def _norm_path(p: str) -> str:
    return p.replace("\\", "/").lower().lstrip("/")


def is_path(name: str) -> bool:
    return "\\" in name or "/" in name


def arch_matches(module_arch: str, want: str | None) -> bool:
    if want is None:
        return True
    w = want.lower()
    return module_arch.lower() in ARCH_FAMILIES.get(w, (w,))


def matching_modules(mods: Iterable[ModuleInfo], name: str, arch: str | None = None) -> list[ModuleInfo]:
    """Modules whose name is ``name`` (case-insensitive), or, when ``name`` holds a path separator, whose
    path is ``name`` or ends with it at a folder boundary (``SysWOW64\\ntdll.dll``). The same image listed
    twice (a WoW64 exe is in both loader lists at one base) counts once."""
    if arch is not None and arch.lower() not in ARCH_FAMILIES:
        raise ArgumentError(f"arch {arch!r}: give one of {', '.join(ARCH_FAMILIES)}")
    if is_path(name):
        q = _norm_path(name)
        hit = [m for m in mods if (p := _norm_path(m.path)) == q or p.endswith("/" + q)]
    else:
        low = name.lower()
        hit = [m for m in mods if m.name.lower() == low]
    out: list[ModuleInfo] = []
    bases: set[int] = set()
    for m in hit:
        if arch_matches(m.arch, arch) and m.base not in bases:
            bases.add(m.base)
            out.append(m)
    return out


def pick_module(mods: list[ModuleInfo], name: str, arch: str | None, where: str) -> ModuleInfo:
    """The one module ``name`` (and ``arch``) names in ``mods``; ``where`` names the process in errors."""
    found = matching_modules(mods, name, arch)
    if len(found) == 1:
        return found[0]
    what = f"{name!r}" + (f" ({arch})" if arch else "")
    if not found:
        others = matching_modules(mods, name) if arch else []
        hint = (f"; there is {', '.join(f'{m.path or m.name} ({m.arch})' for m in others)}" if others else "")
        raise NotFoundError(f"no module {what} in {where}{hint}")
    listing = "; ".join(f"{m.path or m.name} ({m.arch}) at {m.base:#x}" for m in found)
    archs = sorted({m.arch for m in found})
    how = (f"give the architecture (--arch {' or --arch '.join(archs)}) or a path" if len(archs) > 1 and not arch
           else "give a path")
    raise ArgumentError(f"module {what} is ambiguous in {where}: {len(found)} candidates: {listing}; {how} "
                        f"(e.g. -m {found[-1].path or found[-1].name})")
