"""Build a volatility3 ISF for the synthetic Windows 7 x86 kernel from the Windows 7 SP1 x86 layouts table
(``tests/data/windows/win7_sp1_x86_layouts.json``: facts generated from Volatility 2's vtypes by
``scripts/gen_win7_x86_layouts.py``), written to a private temp folder. Used so that volatility3 can check
the x86-PAE machine too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BASE = {
    "char": ("char", 1, True), "unsigned char": ("char", 1, False), "short": ("int", 2, True),
    "unsigned short": ("int", 2, False), "long": ("int", 4, True), "unsigned long": ("int", 4, False),
    "int": ("int", 4, True), "unsigned int": ("int", 4, False), "long long": ("int", 8, True),
    "unsigned long long": ("int", 8, False), "double": ("float", 8, True), "float": ("float", 4, True),
    "wchar": ("int", 2, True), "pointer": ("int", 4, False), "void": ("void", 0, True),
    "unsigned be short": ("int", 2, False),
}


def _conv(spec: Any, types: dict[str, Any]) -> dict[str, Any]:
    name = spec[0]
    if name in ("pointer", "pointer64"):
        return {"kind": "pointer", "subtype": _conv(spec[1], types)}
    if name == "array":
        return {"kind": "array", "count": int(spec[1]), "subtype": _conv(spec[2], types)}
    if name == "BitField":
        a = spec[1]
        return {"kind": "bitfield", "bit_position": a["start_bit"], "bit_length": a["end_bit"] - a["start_bit"],
                "type": {"kind": "base", "name": a.get("native_type", "unsigned long")}}
    if name == "Enumeration":
        return {"kind": "base", "name": spec[1].get("target", "long")}
    if name in BASE:
        return {"kind": "base", "name": name}
    if name in types:
        return {"kind": "struct", "name": name}
    return {"kind": "base", "name": "void"}


def isf_from_vtypes(layouts: Path, guid: str, age: int, pdb_name: str, symbols: dict[str, int]) -> dict[str, Any]:
    types: dict[str, Any] = json.loads(layouts.read_text())
    types.pop("_source", None)
    user = {}
    for tname, (size, members) in types.items():
        user[tname] = {"kind": "struct", "size": int(size),
                       "fields": {m: {"offset": int(off), "type": _conv(t, types)} for m, (off, t) in members.items()}}
    return {
        "metadata": {"format": "6.2.0", "producer": {"name": "pymemflow-tests", "version": "1"},
                     "windows": {"pdb": {"GUID": guid, "age": age, "database": pdb_name, "machine_type": 332}}},
        "base_types": {k: {"kind": v[0], "size": v[1], "signed": v[2], "endian": "little"} for k, v in BASE.items()},
        "user_types": user, "enums": {}, "symbols": {k: {"address": v} for k, v in symbols.items()},
    }
