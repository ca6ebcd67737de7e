"""Find offsets for a kernel: local ISF directory, then the built-in table, then a symbol server."""

from __future__ import annotations

import logging
from pathlib import Path

from ....errors import NotFoundError
from . import table
from .model import Win32Offsets

log = logging.getLogger(__name__)


def _symbols_given(path: Path, guid_age: str | None, pdb_name: str) -> Path | None:
    """The ISF a ``symbols=`` argument names: a folder to search, or one file (which must be this
    kernel's). A path that does not exist is an error, never silently skipped."""
    from .isf import IsfSymbols, find_isf  # lazy: only a symbols= argument reads ISF files

    if not path.exists():
        raise NotFoundError(f"symbols={path}: no such file or folder")
    if path.is_file():
        isf = IsfSymbols.load(path)
        if guid_age and isf.guid_age and isf.guid_age.upper() != guid_age.upper():
            raise NotFoundError(f"symbols={path}: the ISF is for PDB {isf.guid_age}, this kernel is {guid_age}")
        return path
    return find_isf(path, guid_age, pdb_name) if guid_age else None


def resolve_offsets(*, guid_age: str | None = None, build: int | str | None = None, arch: str = "x64",
                    symbols_dir: str | Path | None = None, symstore: str | None = None,
                    cache_dir: str | Path | None = None, pdb_name: str = "ntkrnlmp.pdb") -> Win32Offsets:
    """Offsets for the kernel whose PDB is ``guid_age`` (GUID + hex age) and/or whose build is ``build``.

    Order: (1) ``symbols_dir`` ISF file for the exact GUID; (2) the built-in table, exact GUID;
    (3) ``symstore`` PDB download (exact GUID, cached in ``cache_dir``); (4) the built-in table's
    nearest older build of the same version, with a warning. Raises NotFoundError saying what was tried.
    """
    tried: list[str] = []
    if symbols_dir is not None and str(symbols_dir) != "":
        found = _symbols_given(Path(symbols_dir), guid_age, pdb_name)
        if found is not None:
            from .fromisf import offsets_from_isf  # lazy: only a symbols= argument reads ISF files
            from .isf import IsfSymbols  # lazy: as above

            return offsets_from_isf(IsfSymbols.load(found), str(found), build, arch)
        log.warning("symbols=%s holds no ISF for %s (%s); trying the built-in table", symbols_dir,
                    guid_age or "this kernel", pdb_name)
        tried.append(f"no ISF for {guid_age} under {symbols_dir}")
    if guid_age:
        exact = table.lookup_guid(guid_age, arch)
        if exact is not None:
            return table.to_offsets(exact, "table")
        tried.append(f"{guid_age} not in the built-in table")
    if guid_age and symstore:
        from .symstore import offsets_from_symstore  # lazy: PDB download and parsing, when asked for

        try:
            return offsets_from_symstore(symstore, pdb_name, guid_age, cache_dir=cache_dir, arch=arch,
                                         build=build)
        except (OSError, NotFoundError) as err:
            tried.append(f"symbol server {symstore}: {err}")
    if build is not None:
        near = table.lookup_nearest(build, arch)
        if near is not None:
            log.warning("no exact offsets for %s build %s; using the nearest older table entry %s (%s)",
                        guid_age or "unknown PDB", build, near.version, near.guid_age)
            o = table.to_offsets(near, "table-nearest")
            o.notes.append(f"asked for {guid_age or '?'} build {build}: nearest entry used")
            return o
        tried.append(f"no table entry for {arch} build {build} or older of that version")
    raise NotFoundError("no Windows offsets found: " + "; ".join(tried or ["neither guid_age nor build given"]))
