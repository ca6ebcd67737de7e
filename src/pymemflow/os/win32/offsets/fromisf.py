"""An ISF symbol file (volatility3's format) turned into :class:`Win32Offsets`.

Its own module because both the resolver and the symbol-server download use it (the resolver
calls the download, so it cannot live in either without an import circle)."""

from __future__ import annotations

from . import table
from .isf import IsfSymbols
from .model import Win32Offsets
from .wanted import flatten_isf, member_struct_types


def offsets_from_isf(isf: IsfSymbols, path: str, build: int | str | None = None,
                     arch: str | None = None) -> Win32Offsets:
    fields, sizes, bits = flatten_isf(isf)
    ga = isf.guid_age
    known = table.lookup_guid(ga) if ga else None
    version = known.version if known else (str(build) if isinstance(build, str) else "")
    b = known.build if known else (table._parse_version(build)[0] if build is not None else 0)
    a = arch if arch in ("x86", "x86pae") and isf.arch == "x86" else isf.arch
    return Win32Offsets(arch=a, version=version, build=b, guid_age=ga, source=f"isf:{path}", fields=fields,
                        sizes=sizes, bitfields=bits, pdb_name=isf.pdb_name, isf=isf,
                        member_types=member_struct_types(isf))
