"""Offsets: built-in table vs its sources (CSV, memflow TOML, ISF), ISF loader, lookup order."""

from __future__ import annotations

import csv
import json
import logging
import lzma
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymemflow.errors import FormatError, NotFoundError
from pymemflow.os.win32.offsets import IsfSymbols, find_isf, resolve_offsets
from pymemflow.os.win32.offsets import table as table_file
from pymemflow.os.win32.offsets.table import TABLE_FILE, entries, load_table, read_table
from pymemflow.os.win32.offsets.wanted import flatten_isf

GUID_19041 = "5278AFF86C341677D7D7835C85B7B8441"


def test_table_holds_every_csv_row_exactly(win_data: Path) -> None:
    with open(win_data / "ntkrnlmp_offsets_x64.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 213
    for r in rows:
        o = resolve_offsets(guid_age=r["guid_age"])
        assert o.source == "table" and o.version == r["version"] and o.arch == "x64"
        for k, v in r.items():
            if k in ("guid_age", "version", "os", "pdb_name") or not v:
                continue
            if k == "EPROCESS_size":
                assert o.size("_EPROCESS") == int(v, 0)
            else:
                assert o[k] == int(v, 0), (r["guid_age"], k)


def test_memflow_tomls_agree_with_table(win_data: Path) -> None:
    import tomllib

    checked = 0
    for p in sorted((win_data / "memflow-offsets").glob("*.toml")):
        d = tomllib.loads(p.read_text())
        if not d["header"].get("pdb_guid"):
            continue
        # memflow's 10_0_22000_X86 header says X86 but its offsets are 64-bit (Blink at 8): x64
        arch = "x64" if d["header"]["arch"] == "X64" or d["offsets"]["list_blink"] == 8 else "x86pae"
        o = resolve_offsets(guid_age=d["header"]["pdb_guid"], arch=arch)
        off = d["offsets"]
        assert o["_EPROCESS.UniqueProcessId"] == off["eproc_pid"]
        assert o["_EPROCESS.ActiveProcessLinks"] == off["eproc_link"]
        assert o["_EPROCESS.ImageFileName"] == off["eproc_name"]
        assert o["_EPROCESS.Peb"] == off["eproc_peb"]
        assert o["_KPROCESS.DirectoryTableBase"] == off["kproc_dtb"]
        assert o["_EPROCESS.VadRoot"] == off["eproc_vad_root"]
        checked += 1
    assert checked >= 9


@pytest.mark.parametrize("name", ["5278AFF86C341677D7D7835C85B7B844-1", "32C1A669D5FFEFD41091F636CFDB6E99-1",
                                  "339E74133576439CBCDF7E0229DA3773-1", "C2EADB24A615E9472CE47C8ADD31F130-1",
                                  "8B11040A5928757B11390AC78F6B6925-1"])
def test_isf_path_and_table_family_agree(win_data: Path, tmp_path: Path, name: str) -> None:
    sym = tmp_path / "symbols" / "windows" / "ntkrnlmp.pdb"
    sym.mkdir(parents=True)
    shutil.copy(win_data / "isf" / f"{name}.json.xz", sym)
    guid_age = name.replace("-", "")
    o_isf = resolve_offsets(guid_age=guid_age, symbols_dir=tmp_path / "symbols")
    assert o_isf.source.startswith("isf:") and o_isf.guid_age == guid_age
    o_tab = resolve_offsets(guid_age=guid_age)
    assert o_tab.source == "table"
    # the table carries the ISF's facts for its own PDB: every flattened key agrees
    for k, v in o_tab.fields.items():
        assert o_isf[k] == v, k
    for k in ("_EPROCESS.InheritedFromUniqueProcessId", "_EPROCESS.CreateTime", "_PEB.ProcessParameters",
              "_RTL_USER_PROCESS_PARAMETERS.CommandLine", "_LDR_DATA_TABLE_ENTRY.InLoadOrderLinks",
              "_PEB32.Ldr", "_KUSER_SHARED_DATA.NtMajorVersion", "PsActiveProcessHead"):
        assert k in o_tab and k in o_isf, k
    assert o_isf.bits("_MMPTE_TRANSITION.Transition") == o_tab.bits("_MMPTE_TRANSITION.Transition") == (0, 11, 1)


def test_isf_loader_nested_members_and_symbols(win_data: Path) -> None:
    isf = IsfSymbols.load(win_data / "isf" / "5278AFF86C341677D7D7835C85B7B844-1.json.xz")
    assert isf.guid_age == GUID_19041 and isf.arch == "x64" and isf.pdb_name == "ntkrnlmp.pdb"
    assert isf.member_offset("_EPROCESS", "UniqueProcessId") == 0x440
    assert isf.member_offset("_EPROCESS", "Pcb.DirectoryTableBase") == 0x28
    prot = isf.member("_MMVAD_SHORT", "u.VadFlags.Protection")
    assert (prot.offset, prot.bit_position, prot.bit_length) == (0x30, 7, 5)
    assert isf.member_offset("_RTL_BALANCED_NODE", "Children[1]") == 8
    assert isf.symbol("PsActiveProcessHead") == 0xC1E200 and isf.symbol("NoSuchSymbol") is None
    with pytest.raises(NotFoundError):
        isf.member_offset("_EPROCESS", "NoSuchField")
    with pytest.raises(NotFoundError):
        isf.member_offset("_NO_SUCH_TYPE", "x")


def test_find_isf_layouts(win_data: Path, tmp_path: Path) -> None:
    src = win_data / "isf" / "5278AFF86C341677D7D7835C85B7B844-1.json.xz"
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(src, flat)
    assert find_isf(flat, GUID_19041) == flat / src.name
    deep = tmp_path / "deep" / "a" / "b"
    deep.mkdir(parents=True)
    plain = deep / "5278AFF86C341677D7D7835C85B7B844-1.json"
    plain.write_bytes(lzma.decompress(src.read_bytes()))
    assert find_isf(tmp_path / "deep", GUID_19041) == plain
    assert IsfSymbols.load(plain).guid_age == GUID_19041
    assert find_isf(tmp_path / "deep", "0" * 33) is None


def test_nearest_older_build_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        o = resolve_offsets(guid_age="0" * 33, build="10.0.19041.900")
    assert o.source == "table-nearest" and o.version == "10.0.19041.867"
    assert "nearest" in caplog.text
    o = resolve_offsets(build=19045)  # not in the table: newest older build of 10.0
    assert o.build == 19041 and o["_EPROCESS.InheritedFromUniqueProcessId"] == 0x540
    o = resolve_offsets(build=7601, arch="x86pae")
    assert o.arch == "x86pae" and o["_EPROCESS.UniqueProcessId"] == 0xB4 and o.pointer_size == 4
    with pytest.raises(NotFoundError, match="no Windows offsets"):
        resolve_offsets(build=1000)
    with pytest.raises(NotFoundError):
        resolve_offsets()


def test_table_generated_with_attribution() -> None:
    t = load_table()
    assert len(entries()) >= 213 + 1
    assert "JPCERT" in t["attribution"]["jpcert-csv"] and "MIT" in t["attribution"]["memflow"]
    data = Path(__import__("pymemflow.os.win32.offsets", fromlist=["x"]).__file__).parent / "data"
    assert (data / "LICENSE-JPCERT-Windows-Symbol-Tables").exists() and (data / "LICENSE-memflow-win32").exists()


def test_bad_isf_files_give_format_errors(tmp_path: Path) -> None:
    p = tmp_path / "x.json.xz"
    p.write_bytes(b"\xfd7zXZ\x00garbage")
    with pytest.raises(FormatError, match="x.json.xz"):
        IsfSymbols.load(p)
    q = tmp_path / "y.json"
    q.write_text("{not json")
    with pytest.raises(FormatError, match="json"):
        IsfSymbols.load(q)
    q.write_text(json.dumps({"user_types": {}}))
    with pytest.raises(FormatError, match="base_types"):
        IsfSymbols.load(q)


_json = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                     max_leaves=20)


@settings(max_examples=60, deadline=None)
@given(doc=st.fixed_dictionaries({"user_types": st.dictionaries(st.sampled_from(["_A", "_B"]), _json, max_size=2),
                                  "base_types": st.dictionaries(st.text(max_size=3), _json, max_size=2),
                                  "symbols": st.dictionaries(st.text(max_size=3), _json, max_size=2)}),
       path=st.sampled_from(["x", "x.y", "x[1]", "a.b.c"]))
def test_fuzz_isf_lookups_never_crash(doc: dict, path: str) -> None:
    try:
        isf = IsfSymbols(doc, "fuzz")
        isf.lookup(f"_A.{path}")
        isf.lookup("sym")
        flatten_isf(isf)
    except (FormatError, NotFoundError):
        pass


def test_carried_table_is_what_the_generator_makes(win_data: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, str(root / "scripts" / "gen_win_offsets.py"), "--data", str(win_data),
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    fresh = read_table(tmp_path / TABLE_FILE)
    assert fresh == load_table()
    assert (tmp_path / TABLE_FILE).read_bytes() == (Path(table_file.__file__).parent / "data" / TABLE_FILE).read_bytes()
    assert (tmp_path / "LICENSE-JPCERT-Windows-Symbol-Tables").read_bytes() == \
        (win_data / "isf" / "LICENSE-JPCERT-Windows-Symbol-Tables").read_bytes()


def test_table_resolves_nested_members_like_the_isf(win_data: Path) -> None:
    isf = IsfSymbols.load(win_data / "isf" / "5278AFF86C341677D7D7835C85B7B844-1.json.xz")
    o = resolve_offsets(guid_age=GUID_19041)
    assert o.source == "table" and o.isf is None
    for struct, path in (("_EPROCESS", "Pcb.DirectoryTableBase"), ("_EPROCESS", "Pcb.ThreadListHead.Blink"),
                         ("_ETHREAD", "Tcb.Teb"), ("_MMVAD", "Core.VadNode"), ("_MMVAD", "Core.EndingVpnHigh"),
                         ("_EPROCESS", "SeAuditProcessCreationInfo.ImageFileName")):
        assert o[f"{struct}.{path}"] == isf.member_offset(struct, path), path
    assert o.get("_EPROCESS.Pcb.NoSuchMember") is None
    w7 = resolve_offsets(guid_age="684DA42A30CC450F81C535B4D18944B12", arch="x86pae")
    assert w7["_EPROCESS.VadRoot.BalancedRoot"] == 0x278  # volatility2 facts: _MM_AVL_TABLE embedded
