"""Windows kernel structure offsets and symbol RVAs: ISF directory, built-in table, symbol server.

Public API::

    from pymemflow.os.win32.offsets import Win32Offsets, resolve_offsets, IsfSymbols, find_isf
    o = resolve_offsets(guid_age="5278AFF86C341677D7D7835C85B7B8441", build=19041, symbols_dir=None)
    o["_EPROCESS.UniqueProcessId"], o["PsActiveProcessHead"], o.size("_EPROCESS"), o.bits("_MMVAD_FLAGS.Protection")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .model import Win32Offsets
from .resolve import resolve_offsets
from .table import builtin_isf_path, fixed_constants

if TYPE_CHECKING:
    from .fromisf import offsets_from_isf
    from .isf import IsfMember, IsfSymbols, find_isf

_LAZY = {"offsets_from_isf": "fromisf", "IsfMember": "isf", "IsfSymbols": "isf", "find_isf": "isf"}
"""Exported names whose modules load on first use: a process that only looks offsets up in the built-in
table (a cold ``ps``) never reads an ISF file."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)  # lazy: see _LAZY
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["IsfMember", "IsfSymbols", "Win32Offsets", "builtin_isf_path", "find_isf", "fixed_constants",
           "offsets_from_isf", "resolve_offsets"]
