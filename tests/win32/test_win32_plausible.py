"""Never silently wrong: missing offsets and implausible results are warnings naming the field, the
build and the offsets' source; a missing ``symbols=`` path is an error. Checked by breaking one offset
of the synthetic 19041 machine at a time."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import pytest
from win32_util import phys_of

from pymemflow.errors import ImplausibleResultWarning, NotFoundError, OsLayerError
from pymemflow.os.win32.discovery import KernelFacts, discover
from pymemflow.os.win32.kernel import Win32Kernel
from pymemflow.os.win32.offsets import resolve_offsets
from pymemflow.os.win32.plugin import PLUGIN

SOURCE = "table 10.0.19041.804 (5278AFF86C341677D7D7835C85B7B8441)"


@pytest.fixture(scope="module")
def facts(win10_image: Any) -> tuple[Any, KernelFacts]:
    phys = phys_of(win10_image)
    return phys, discover(phys)


def broken(facts: KernelFacts, **change: int | None) -> KernelFacts:
    """``facts`` with offsets changed (``_EPROCESS__VadRoot=...``) or removed (``=None``)."""
    o = facts.offsets
    fields = dict(o.fields)
    for k, v in change.items():
        k = k.replace("__", ".")
        if v is None:
            fields.pop(k)
        else:
            fields[k] = v
    return dataclasses.replace(facts, offsets=dataclasses.replace(o, fields=fields))


def implausible(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, ImplausibleResultWarning)]


def test_correct_offsets_give_no_implausibility_warning(facts: tuple[Any, KernelFacts]) -> None:
    phys, f = facts
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        k = Win32Kernel(phys, f)
        procs = k.process_list()
        for p in procs:
            if p.info.pid > 4:
                p.maps(vad=True)
    assert implausible(rec) == []
    assert k.info()["offsets"] == "table" and k.info()["offsets_missing"] == []
    assert "jpcert-isf (10.0.19041.804 5278AFF86C341677D7D7835C85B7B8441)" in k.info()["offsets_from"]
    assert [p.info.ppid for p in procs if p.info.pid > 4].count(0) == 0


def test_missing_ppid_field_is_named_and_all_zero_ppids_flagged(facts: tuple[Any, KernelFacts]) -> None:
    phys, f = facts
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        k = Win32Kernel(phys, broken(f, _EPROCESS__InheritedFromUniqueProcessId=None))
        k.process_info_list()
        k.process_info_list()  # checked once per kernel, not once per listing
    assert k.info()["offsets_missing"] == ["_EPROCESS.InheritedFromUniqueProcessId"]
    msgs = implausible(rec)
    assert len(msgs) == 2, msgs
    assert "_EPROCESS.InheritedFromUniqueProcessId" in msgs[0] and "10.0.19041.804" in msgs[0]
    assert "every process has parent pid 0 except System's" in msgs[1] and SOURCE in msgs[1]


def test_wrong_ppid_offset_flagged(facts: tuple[Any, KernelFacts]) -> None:
    phys, f = facts
    o = f.offsets
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        # ExitTime: 0 in every live process
        k = Win32Kernel(phys, broken(f, _EPROCESS__InheritedFromUniqueProcessId=o["_EPROCESS.ExitTime"]))
        infos = k.process_info_list()
    assert all(i.ppid == 0 for i in infos if i.pid > 4 and i.state == "alive")
    msgs = implausible(rec)
    assert len(msgs) == 1 and f"at {o['_EPROCESS.ExitTime']:#x}" in msgs[0] and SOURCE in msgs[0]


def test_no_wow64_peb_flagged(facts: tuple[Any, KernelFacts], win10_image: Any) -> None:
    phys, f = facts
    assert any(p.get("wow64") for p in win10_image.facts["processes"])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        k = Win32Kernel(phys, broken(f, _EWOW64PROCESS__Peb=f.offsets["_EWOW64PROCESS.Peb"] + 0x40))
        k.process_info_list()
    msgs = implausible(rec)
    assert len(msgs) == 1 and "WoW64" in msgs[0] and "32-bit PEB" in msgs[0] and SOURCE in msgs[0]


def test_unreadable_vads_flagged(facts: tuple[Any, KernelFacts]) -> None:
    phys, f = facts
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        k = Win32Kernel(phys, broken(f, _EPROCESS__VadRoot=f.offsets["_EPROCESS.VadRoot"] + 0x10))
        p = next(p for p in k.process_list() if p.info.name == "explorer.exe")
        assert p.maps(vad=True) == []
    msgs = implausible(rec)
    assert len(msgs) == 1 and f"pid {p.info.pid}: no readable VAD" in msgs[0] and SOURCE in msgs[0]


def test_missing_vad_layout_names_fields_and_source(facts: tuple[Any, KernelFacts]) -> None:
    phys, f = facts
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        k = Win32Kernel(phys, broken(f, _MMVAD_SHORT__StartingVpn=None))
        p = next(p for p in k.process_list() if p.info.pid > 4)
        with pytest.raises(NotFoundError, match=r"_MMVAD_SHORT\.StartingVpn.*10\.0\.19041\.804"):
            p.maps(vad=True)
    assert any("_MMVAD_SHORT.StartingVpn" in m for m in implausible(rec))


def test_missing_symbols_path_is_an_error(win10_image: Any, tmp_path: Any) -> None:
    with pytest.raises(OsLayerError, match="symbols=/nonexistent/isf: no such file or folder"):
        PLUGIN.factory({"symbols": "/nonexistent/isf"}, phys_of(win10_image))
    with pytest.raises(NotFoundError, match="symbols=/nonexistent: no such file or folder"):
        resolve_offsets(guid_age="5278AFF86C341677D7D7835C85B7B8441", symbols_dir="/nonexistent")
    # an existing folder without this kernel's ISF: the table, with a warning (not silently)
    empty = tmp_path / "syms"
    empty.mkdir()
    o = resolve_offsets(guid_age="5278AFF86C341677D7D7835C85B7B8441", symbols_dir=empty)
    assert o.source == "table"


def test_symbols_may_name_one_isf_file_which_must_match(win10_image: Any, win_isf: Any) -> None:
    k = PLUGIN.factory({"symbols": str(win_isf)}, phys_of(win10_image))
    assert k.offsets.source == f"isf:{win_isf}" and k.info()["offsets"] == f"isf:{win_isf}"
    with pytest.raises(NotFoundError, match="the ISF is for PDB 5278AFF86C341677D7D7835C85B7B8441"):
        resolve_offsets(guid_age="32C1A669D5FFEFD41091F636CFDB6E991", symbols_dir=win_isf)


@pytest.fixture
def win_isf() -> Any:
    from pathlib import Path

    return Path(__file__).resolve().parents[1] / "data" / "windows" / "isf" / "5278AFF86C341677D7D7835C85B7B844-1.json.xz"
