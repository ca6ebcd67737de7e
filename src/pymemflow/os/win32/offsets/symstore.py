"""Fetch a kernel PDB from a symbol server (``symstore=URL``) into a cache folder and read it.

Layout is the symbol-server one: ``URL/<pdb>/<GUID><age>/<pdb>``. The converted ISF is cached as
``CACHE/windows/<pdb>/<GUID>-<age>.json.xz`` so later runs find it with no network (the same folder
then works as ``symbols=``). Set ``PYMEMFLOW_OFFLINE=1`` to forbid downloads.
"""

from __future__ import annotations

import json
import lzma
import os
import tempfile
from pathlib import Path

from ....errors import NotFoundError
from .fromisf import offsets_from_isf
from .isf import IsfSymbols, find_isf
from .model import Win32Offsets

MAX_DOWNLOAD = 512 << 20
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pymemflow" / "symbols"


def download_pdb(url: str, pdb_name: str, guid_age: str, cache_dir: str | Path | None = None,
                 timeout: float = 30.0) -> Path:
    """The PDB's path in the cache, downloading it first if needed. Raises NotFoundError/OSError."""
    cache = Path(cache_dir) if cache_dir else DEFAULT_CACHE
    dest = cache / pdb_name / guid_age.upper() / pdb_name
    if dest.is_file():
        return dest
    if os.environ.get("PYMEMFLOW_OFFLINE"):
        raise NotFoundError(f"{pdb_name} {guid_age} not cached and PYMEMFLOW_OFFLINE is set")
    src = f"{url.rstrip('/')}/{pdb_name}/{guid_age.upper()}/{pdb_name}"
    import urllib.error  # here: http.client, ssl and email cost ~25 ms of every start otherwise
    import urllib.request

    try:
        with urllib.request.urlopen(src, timeout=timeout) as r:  # noqa: S310 - user-given symbol server
            dest.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
                total = 0
                while chunk := r.read(1 << 20):
                    total += len(chunk)
                    if total > MAX_DOWNLOAD:
                        raise NotFoundError(f"{src}: larger than {MAX_DOWNLOAD} bytes")
                    tmp.write(chunk)
            os.replace(tmp.name, dest)
    except urllib.error.HTTPError as e:
        raise NotFoundError(f"{src}: HTTP {e.code}") from None
    except urllib.error.URLError as e:
        raise NotFoundError(f"{src}: {e.reason}") from None
    return dest


def offsets_from_symstore(url: str, pdb_name: str, guid_age: str, *, cache_dir: str | Path | None = None,
                          arch: str = "x64", build: int | str | None = None) -> Win32Offsets:
    cache = Path(cache_dir) if cache_dir else DEFAULT_CACHE
    cached = find_isf(cache, guid_age, pdb_name) if cache.is_dir() else None
    if cached is not None:
        o = offsets_from_isf(IsfSymbols.load(cached), str(cached), build, arch)
        o.source = "pdb"
        return o
    pdb = download_pdb(url, pdb_name, guid_age, cache)
    from .pdb import PdbReader  # lazy: only a PDB not cached as ISF yet is parsed

    reader = PdbReader(pdb)
    if f"{reader.guid}{reader.age:X}" != guid_age.upper():
        raise NotFoundError(f"{pdb}: GUID/age {reader.guid}{reader.age:X} is not the requested {guid_age}")
    doc = reader.to_isf(pdb_name)
    isf_path = cache / "windows" / pdb_name / f"{reader.guid}-{reader.age}.json.xz"
    isf_path.parent.mkdir(parents=True, exist_ok=True)
    with lzma.open(isf_path, "wb") as f:
        f.write(json.dumps(doc).encode())
    o = offsets_from_isf(IsfSymbols(doc, str(pdb)), str(pdb), build, arch)
    o.source = "pdb"
    return o
