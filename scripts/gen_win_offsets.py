#!/usr/bin/env python3
"""Generate pymemflow's built-in Windows offset table from the reference data in tests/data/windows/.

Sources (all facts; attribution and licence texts are copied next to the table):
- ``ntkrnlmp_offsets_x64.csv``: 213 x64 ntkrnlmp.pdb builds (JPCERT/CC Windows-Symbol-Tables, BSD-3).
- ``memflow-offsets/*.toml``: memflow-win32's built-in offsets (MIT), incl. x86 builds.
- ``isf-forensic/ntkrnlmp.pdb/*.json.xz``: the cut-down ISFs of all 213 x64 kernels (JPCERT/CC, BSD-3).
  Each entry's own ISF gives its complete member list (ppid, VAD layout, PEB32, PTE bits ...) and its
  symbol RVAs; identical struct layouts are stored once (a *layout family* ``x64-BUILD-HASH``).
- ``isf/*.json.xz``: five complete volatility3 ISF files (JPCERT/CC, BSD-3). Each gives the full
  member list (ppid, CreateTime, VAD, PEB32, KUSER_SHARED_DATA, PTE bits ...) for its *build family*;
  a CSV/TOML row of the same arch and build gets those extra facts only if every offset it has
  agrees with the ISF (checked here), and the row records which ISF they came from.
- ``win7_sp1_x86_layouts.json``: Windows 7 SP1 x86 layouts (facts from Volatility 2's vtypes, made by
  ``scripts/gen_win7_x86_layouts.py``) for two x86 7601 families: ``x86pae-7601`` (memflow's PAE kernel
  ntkrpamp.pdb; the vtypes' PTE layouts are the non-PAE kernel's, so PAE software-PTE bits replace them)
  and ``x86-7601`` (the non-PAE kernel ntkrnlmp.pdb, vtypes as they are, PTE layouts included). No
  non-PAE PDB identity is in the data, so that family's entry is found by arch and build only.
- memflow's NT 3.1 / 4.0 TOMLs have no PDB identity either: they become build-only entries with the
  fields memflow gives (memflow writes 0 for "not in this version": those are left out, so the layer
  names them as missing instead of reading offset 0).

Run: ``python scripts/gen_win_offsets.py [--data tests/data/windows]``. Output:
``src/pymemflow/os/win32/offsets/data/win_offsets.zip`` (+ LICENSE files, + the 19041 ISF): a zip of
LZMA-compressed JSON members written by ``pymemflow.os.win32.offsets.table.write_table`` (an index, the
offsets of each build, each layout family), so a lookup decompresses only what it needs; the script
reads the file back with the package's own reader and checks it gives this document.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from gen_win7_x86_layouts import load_layouts  # noqa: E402

from pymemflow.os.win32.offsets.isf import IsfSymbols  # noqa: E402
from pymemflow.os.win32.offsets.table import FORMAT, TABLE_FILE, read_table, write_table  # noqa: E402
from pymemflow.os.win32.offsets.wanted import WANTED_STRUCTS, flatten_isf, member_struct_types  # noqa: E402

OUT = ROOT / "src/pymemflow/os/win32/offsets/data"
CARRIED_ISF = "5278AFF86C341677D7D7835C85B7B844-1.json.xz"  # 10.0.19041.804, for the demo machine

MEMFLOW_KEYS = {
    "list_blink": "_LIST_ENTRY.Blink",
    "eproc_link": "_EPROCESS.ActiveProcessLinks",
    "phys_mem_block": "MmPhysicalMemoryBlock",
    "kproc_dtb": "_KPROCESS.DirectoryTableBase",
    "eproc_pid": "_EPROCESS.UniqueProcessId",
    "eproc_name": "_EPROCESS.ImageFileName",
    "eproc_peb": "_EPROCESS.Peb",
    "eproc_section_base": "_EPROCESS.SectionBaseAddress",
    "eproc_exit_status": "_EPROCESS.ExitStatus",
    "eproc_thread_list": "_EPROCESS.ThreadListHead",
    "eproc_wow64": "_EPROCESS.WoW64Process",
    "eproc_vad_root": "_EPROCESS.VadRoot",
    "kthread_teb": "_KTHREAD.Teb",
    "ethread_list_entry": "_ETHREAD.ThreadListEntry",
    "teb_peb": "_TEB.ProcessEnvironmentBlock",
    "teb_peb_x86": "_TEB32.ProcessEnvironmentBlock",
}
MEMFLOW_VAD_KEYS = {
    "starting_vpn": "_MMVAD_SHORT.StartingVpn",
    "ending_vpn": "_MMVAD_SHORT.EndingVpn",
    "starting_vpn_high": "_MMVAD_SHORT.StartingVpnHigh",
    "ending_vpn_high": "_MMVAD_SHORT.EndingVpnHigh",
    "u": "_MMVAD_SHORT.u",
}

# PAE software-PTE bits (Intel SDM PAE format; Windows uses the same low-bit layout as on x64:
# bit 0 Valid, 1-4 PageFileLow, 5-9 Protection, 10 Prototype, 11 Transition, 32-63 PageFileHigh;
# transition PTEs keep the frame number in bits 12-35). Documented in docs/windows.md.
PAE_PTE_BITS = {
    "_MMPTE_SOFTWARE.Valid": (0, 0, 1), "_MMPTE_SOFTWARE.PageFileLow": (0, 1, 4),
    "_MMPTE_SOFTWARE.Protection": (0, 5, 5), "_MMPTE_SOFTWARE.Prototype": (0, 10, 1),
    "_MMPTE_SOFTWARE.Transition": (0, 11, 1), "_MMPTE_SOFTWARE.PageFileHigh": (0, 32, 32),
    "_MMPTE_TRANSITION.Valid": (0, 0, 1), "_MMPTE_TRANSITION.Protection": (0, 5, 5),
    "_MMPTE_TRANSITION.Prototype": (0, 10, 1), "_MMPTE_TRANSITION.Transition": (0, 11, 1),
    "_MMPTE_TRANSITION.PageFrameNumber": (0, 12, 24),
}

# KUSER_SHARED_DATA is at a fixed address on every Windows build (part of the user ABI).
FIXED = {"KUSER_SHARED_DATA_KERNEL_VA_X64": 0xFFFFF78000000000, "KUSER_SHARED_DATA_KERNEL_VA_X86": 0xFFDF0000,
         "KUSER_SHARED_DATA_USER_VA": 0x7FFE0000}


def build_of(version: str) -> int:
    return int(version.split(".")[2])


def read_csv(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            fields: dict[str, int] = {}
            sizes: dict[str, int] = {}
            for k, v in r.items():
                if k in ("guid_age", "version", "os", "pdb_name") or v in (None, ""):
                    continue
                if k == "EPROCESS_size":
                    sizes["_EPROCESS"] = int(v, 0)
                else:
                    fields[k] = int(v, 0)
            fields["_LIST_ENTRY.Flink"] = 0
            fields["_LIST_ENTRY.Blink"] = 8
            rows.append({"guid_age": r["guid_age"].upper(), "version": r["version"], "build": build_of(r["version"]),
                         "arch": "x64", "pdb_name": r["pdb_name"], "os": r["os"], "origin": "jpcert-csv",
                         "fields": fields, "sizes": sizes, "bitfields": {}})
    return rows


def read_memflow(folder: Path) -> list[dict[str, Any]]:
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - py3.10
        import tomli as tomllib  # type: ignore[no-redef]
    rows = []
    for p in sorted(folder.glob("*.toml")):
        d = tomllib.loads(p.read_text())
        h, o = d["header"], d["offsets"]
        build = int(h["nt_build_number"])
        pdb = h.get("pdb_file_name") or ""
        old = not h.get("pdb_guid")  # NT 3.1 / 4.0: no PDB identity, found by arch and build only
        arch = "x64" if h["arch"].upper() == "X64" else ("x86pae" if pdb == "ntkrpamp.pdb" else "x86")
        if o.get("list_blink") == 8:
            # pointer-sized Blink offset 8 => a 64-bit kernel, whatever the header says (memflow's
            # 10_0_22000_X86 file has x64 offsets: Windows 11 has no 32-bit kernel)
            arch = "x64"
        fields: dict[str, int] = {}
        for k, name in MEMFLOW_KEYS.items():
            if k in o and not (k in ("eproc_wow64", "phys_mem_block") and o[k] == 0) and not (old and o[k] == 0):
                fields[name] = int(o[k])
        fields["_LIST_ENTRY.Flink"] = 0
        vad = o.get("mmvad") or {}
        bits: dict[str, tuple[int, int, int]] = {}
        for k, name in MEMFLOW_VAD_KEYS.items():
            if k in vad and not (k.endswith("_high") and vad[k] == 0):
                fields[name if not old else name.replace("_MMVAD_SHORT", "_MMVAD")] = int(vad[k])
        if "vad_node" in vad and not old:  # NT 4.0's _MMVAD has its own child links (not the layer's walk)
            fields["_MMVAD_SHORT.VadNode" if build >= 9200 else "_MMADDRESS_NODE.LeftChild"] = int(vad["vad_node"])
        if "protection_bit" in vad and not (old and vad["protection_bit"] == 0):
            bits["_MMVAD_FLAGS.Protection"] = (0, int(vad["protection_bit"]), 5)
        ver = f"{h['nt_major_version']}.{h['nt_minor_version']}.{build}"
        rows.append({"guid_age": str(h.get("pdb_guid") or "").upper(), "version": ver, "build": build, "arch": arch,
                     "pdb_name": pdb or "ntoskrnl.exe", "os": f"memflow {p.stem}", "origin": "memflow",
                     "fields": fields, "sizes": {}, "bitfields": bits})
    return rows


def vol2_family(path: Path, pae: bool = True) -> dict[str, Any]:
    """Windows 7 SP1 x86 facts from the table generated out of Volatility 2's vtypes (the non-PAE
    kernel's; ``pae``: its PTE layouts replaced by the PAE software-PTE bits)."""
    types = load_layouts(path)
    skip = {"_MMPTE", "_MMPTE_HARDWARE", "_MMPTE_SOFTWARE", "_MMPTE_TRANSITION", "_MMPTE_PROTOTYPE",
            "_HARDWARE_PTE"} if pae else set()
    fields: dict[str, int] = {}
    sizes: dict[str, int] = {}
    bits: dict[str, tuple[int, int, int]] = dict(PAE_PTE_BITS) if pae else {}
    member_types: dict[str, str] = {}
    for s in WANTED_STRUCTS:
        if s in skip or s not in types:
            continue
        size, members = types[s]
        sizes[s] = int(size)
        for name, (off, t) in sorted(members.items()):
            fields[f"{s}.{name}"] = int(off)
            if isinstance(t, list) and len(t) == 1 and isinstance(t[0], str) and t[0] in types:
                member_types[f"{s}.{name}"] = t[0]
            if isinstance(t, list) and t and t[0] == "BitField":
                a = t[1]
                bits[f"{s}.{name}"] = (int(off), int(a["start_bit"]), int(a["end_bit"]) - int(a["start_bit"]))
    sizes["_MMPTE"] = 8 if pae else 4
    how = "PTE bits: PAE format" if pae else "non-PAE kernel, its own PTE layouts"
    return {"from": f"volatility2 win7_sp1_x86_vtypes (facts; {how})", "fields": fields,
            "sizes": sizes, "bitfields": bits, "member_types": member_types}


def layout_key(arch: str, build: int, fam: dict[str, Any]) -> str:
    """A stable name for one struct layout: arch, build and a short hash of its content."""
    blob = json.dumps({k: fam[k] for k in ("fields", "sizes", "bitfields", "member_types")}, sort_keys=True)
    return f"{arch}-{build}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def forensic_layouts(folder: Path, full: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Per-PDB facts from the cut-down ISFs: ``{guid_age: {fam, symbols, file}}``.

    Where a complete ISF of the same PDB exists (``full``), its members are added (a superset)."""
    per_guid: dict[str, dict[str, Any]] = {}
    for p in sorted(folder.glob("*.json.xz")):
        isf = IsfSymbols.load(p)
        ga = (isf.guid_age or "").upper()
        f, s, b = flatten_isf(isf)
        mt = member_struct_types(isf)
        if ga in full:
            big = IsfSymbols.load(full[ga])
            f2, s2, b2 = flatten_isf(big)
            f = {**f2, **f}
            s = {**s2, **s}
            b = {**b2, **b}
            mt = {**member_struct_types(big), **mt}
        syms = {k: v for k, v in f.items() if not k.startswith("_")}
        fam = {"fields": {k: v for k, v in f.items() if k.startswith("_")}, "sizes": s,
               "bitfields": {k: list(v) for k, v in b.items()}, "member_types": mt}
        per_guid[ga] = {"fam": fam, "symbols": syms, "file": p.name}
    return per_guid


def agrees(row: dict[str, Any], fam: dict[str, Any]) -> list[str]:
    """Struct offsets of a row that contradict the family (symbol RVAs differ per revision: ignored)."""
    bad = []
    for k, v in row["fields"].items():
        fv = fam["fields"].get(k)
        if k.startswith("_") and fv is not None and fv != v:
            bad.append(f"{k}: row {v} vs family {fv}")
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "tests/data/windows"), help="the reference data folder")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args()
    data, out = Path(a.data), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    rows = read_csv(data / "ntkrnlmp_offsets_x64.csv")
    csv_guids = {r["guid_age"] for r in rows}
    for r in read_memflow(data / "memflow-offsets"):
        if r["guid_age"] and r["guid_age"] in csv_guids:
            continue  # the CSV row has more; memflow's agrees (checked by tests)
        rows.append(r)

    families: dict[str, Any] = {}
    versions = {}
    vt = (data / "isf/JPCERT-version-table.md").read_text()
    for line in vt.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.match(r"^\d+\.\d+\.\d+\.\d+$", cells[0]) and len(cells[1]) >= 33:
            versions[cells[1].upper()] = cells[0]
    for p in sorted((data / "isf").glob("*.json.xz")):
        isf = IsfSymbols.load(p)
        ga = isf.guid_age or ""
        ver = versions.get(ga, "")
        f, s, b = flatten_isf(isf)
        key = f"{isf.arch}-{build_of(ver)}"
        families[key] = {"from": f"isf:{p.name} ({ver})", "guid_age": ga, "version": ver,
                         "fields": f, "sizes": s, "bitfields": {k: list(v) for k, v in b.items()},
                         "member_types": member_struct_types(isf)}
    fam7 = vol2_family(data / "win7_sp1_x86_layouts.json")
    fam7["bitfields"] = {k: list(v) for k, v in fam7["bitfields"].items()}
    families["x86pae-7601"] = fam7
    fam7n = vol2_family(data / "win7_sp1_x86_layouts.json", pae=False)
    fam7n["bitfields"] = {k: list(v) for k, v in fam7n["bitfields"].items()}
    families["x86-7601"] = fam7n
    # the non-PAE Windows 7 SP1 x86 kernel: every struct fact from the vtypes, no PDB identity or symbol
    # RVAs in the data (discovery finds the lists through the kernel's exports)
    rows.append({"guid_age": "", "version": "6.1.7601", "build": 7601, "arch": "x86", "pdb_name": "ntkrnlmp.pdb",
                 "os": "Windows 7 SP1 x86 (non-PAE)", "origin": "volatility2",
                 "fields": {"_LIST_ENTRY.Flink": 0, "_LIST_ENTRY.Blink": 4}, "sizes": {}, "bitfields": {}})

    notes = []
    full = {}
    for p in sorted((data / "isf").glob("*.json.xz")):
        full[(IsfSymbols.load(p).guid_age or "").upper()] = p
    per_guid = forensic_layouts(data / "isf-forensic/ntkrnlmp.pdb", full)
    for r in rows:
        g = per_guid.get(r["guid_age"])
        if g is not None and r["arch"] == "x64":
            fam = g["fam"]
            bad = agrees(r, fam)
            if bad:
                raise SystemExit(f"{r['guid_age']} {r['version']}: CSV row contradicts its own ISF: {bad[:3]}")
            key = layout_key(r["arch"], r["build"], fam)
            if key not in families:
                families[key] = {"from": f"isf-forensic:{g['file']} ({r['version']})", "guid_age": r["guid_age"],
                                 "version": r["version"], **fam}
            r["family"] = key
            r["fields"].update(g["symbols"])  # symbol RVAs differ per revision: kept on the row
            r["origin"] = "jpcert-isf"
            continue
        key = f"{r['arch']}-{r['build']}"
        fam = families.get(key)
        if fam is None:
            continue
        bad = agrees(r, fam)
        if bad:
            notes.append(f"{r['guid_age']} {r['version']}: not given {key} family facts: {bad[:3]}")
            continue
        r["family"] = key
    rows.sort(key=lambda r: (r["arch"], r["build"], tuple(int(x) for x in r["version"].split(".")), r["guid_age"]))
    doc = {"format": FORMAT, "generator": "scripts/gen_win_offsets.py",
           "attribution": {
               "jpcert-csv": "JPCERT/CC Windows-Symbol-Tables, BSD-3-Clause (LICENSE-JPCERT-Windows-Symbol-Tables)",
               "jpcert-isf": "JPCERT/CC Windows-Symbol-Tables cut-down ISFs, BSD-3-Clause (LICENSE-JPCERT-Windows-Symbol-Tables)",
               "memflow": "memflow-win32 built-in offsets, MIT (LICENSE-memflow-win32)",
               "isf": "JPCERT/CC Windows-Symbol-Tables ISF files, BSD-3-Clause",
               "volatility2": "facts (offsets) read from Volatility 2 vtypes; no code or text carried"},
           "fixed": FIXED, "entries": rows, "families": families, "notes": notes}
    write_table(doc, out / TABLE_FILE)
    if read_table(out / TABLE_FILE) != json.loads(json.dumps(doc)):
        raise SystemExit(f"{out / TABLE_FILE}: reading the table back does not give the document written")
    (out / "win_offsets.json.xz").unlink(missing_ok=True)  # the one-document form before the zip
    shutil.copyfile(data / "isf/LICENSE-JPCERT-Windows-Symbol-Tables", out / "LICENSE-JPCERT-Windows-Symbol-Tables")
    shutil.copyfile(data / "memflow-offsets/LICENSE-memflow-win32", out / "LICENSE-memflow-win32")
    (out / "isf").mkdir(exist_ok=True)
    shutil.copyfile(data / "isf" / CARRIED_ISF, out / "isf" / CARRIED_ISF)
    shutil.copyfile(data / "isf/LICENSE-JPCERT-Windows-Symbol-Tables", out / "isf/LICENSE-JPCERT-Windows-Symbol-Tables")
    print(f"{len(rows)} entries, {len(families)} families ({', '.join(sorted(families))}), "
          f"{sum(1 for r in rows if r.get('family'))} with family facts; notes: {len(notes)}")
    for n in notes:
        print("  note:", n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
