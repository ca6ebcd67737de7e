"""One way to run volatility3 offline in the tests: the files it needs for a synthetic machine (raw image,
private symbols folder, cache), and ``vol -r json`` in a fresh interpreter, tree rows flattened."""

from __future__ import annotations

import json
import lzma
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from pymemflow.demo import SyntheticImage

from .vtypes_isf import isf_from_vtypes

ISF_19041 = "5278AFF86C341677D7D7835C85B7B844-1.json.xz"


def vol_files(img: SyntheticImage, folder: Path, win_data: Path) -> tuple[Path, Path, Path]:
    """(raw file, symbols folder, cache folder) for ``img`` in ``folder`` (private: volatility3 may delete a
    symbol file it is pointed at). A kernel whose full ISF the reference data holds gets a copy of it; an x86
    Windows 7 machine (no ntkrpamp/ntoskrnl ISF exists here) one made from the Windows 7 x86 layouts table plus
    the synthetic kernel's own symbol RVAs -- the structures volatility3 reads are then independent facts;
    any other machine gets an empty symbols folder."""
    f = img.facts
    guid, age = f["guid_age"][:32], int(f["guid_age"][32:], 16)
    isf = win_data / "isf" / f"{guid}-{age}.json.xz"
    sym = folder / "symbols" / "windows" / f["pdb_name"]
    sym.mkdir(parents=True)
    if isf.is_file():
        shutil.copy(isf, sym / isf.name)
    elif f["arch"] in ("x86", "x86pae") and f["build"] == 7601:
        doc = isf_from_vtypes(win_data / "win7_sp1_x86_layouts.json", guid, age, f["pdb_name"], f["symbol_rvas"])
        with lzma.open(sym / f"{guid}-{age}.json.xz", "wb") as fh:
            fh.write(json.dumps(doc).encode())
    raw = folder / "mem.raw"
    img.write_raw(str(raw))
    cache = folder / "cache"
    cache.mkdir()
    return raw, folder / "symbols", cache


def run_vol(raw: Path, symbols: Path, cache: Path, *plugin: str) -> list[dict[str, Any]]:
    cmd = [sys.executable, "-c", "import sys; sys.argv[0] = 'vol'; from volatility3.cli import main; main()",
           "--offline", "-q", "-r", "json", "-s", str(symbols), "--cache-path", str(cache), "-f", str(raw), *plugin]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    flat: list[dict[str, Any]] = []
    stack = list(json.loads(r.stdout))
    while stack:
        row = stack.pop(0)
        stack[:0] = row.pop("__children", [])
        flat.append(row)
    return flat
