"""docs/windows.md's table of supported builds is the one ``scripts/gen_windows_builds_table.py`` computes
from the built-in offsets table, the synthetic machine profiles and the volatility3 tests, so it stays true;
and the facts behind its cells hold on the offsets the layer gets."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pymemflow.errors import NotFoundError
from pymemflow.os.win32.offsets import resolve_offsets
from pymemflow.os.win32.plausible import missing_field_names

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_windows_builds_table", ROOT / "scripts/gen_windows_builds_table.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_docs_table_is_current(gen: ModuleType) -> None:
    md = gen.markdown()
    text = (ROOT / "docs/windows.md").read_text()
    assert md in text, "docs/windows.md's supported-builds table is stale: run python scripts/gen_windows_builds_table.py --write"


def test_table_covers_the_data(gen: ModuleType) -> None:
    rows = {(r[0], r[2], r[3]): r for r in gen.rows()}
    # every x86 build of the reference data, in the paging mode its kernel uses
    for key in [("511", "x86", "memflow-win32"), ("1381", "x86", "memflow-win32"), ("7601", "x86", "Volatility 2 vtypes"),
                ("7601", "x86pae", "memflow-win32"), ("19041", "x86pae", "memflow-win32"), ("3790", "x64", "memflow-win32")]:
        assert key in rows, key
    # the two x86 machines are tested and checked by volatility3; at least 8 x64 builds too
    checked = [r for r in rows.values() if r[10] == "yes"]
    assert {r[2] for r in checked if r[2] != "x64"} == {"x86", "x86pae"}
    assert len({r[0] for r in checked if r[2] == "x64"}) >= 8
    assert all(r[9] != "no" for r in checked)


@pytest.mark.parametrize(("build", "arch", "absent"), [
    ("4.0.1381", "x86", "_EPROCESS.InheritedFromUniqueProcessId"),  # memflow's NT 4.0: no ppid offset
    ("4.0.1381", "x86", "_PEB.Ldr"),  # the NT 5 loader defaults are not applied to NT 4.0
    ("10.0.19041", "x86pae", "_RTL_BALANCED_NODE.Left"),  # memflow's 19041 x86 row: no VAD tree links
])
def test_partial_rows_name_the_missing_field(build: str, arch: str, absent: str) -> None:
    off = resolve_offsets(build=build, arch=arch)
    assert absent in missing_field_names(off) and off.get(absent) is None


def test_non_pae_7601_is_complete_and_non_pae() -> None:
    off = resolve_offsets(build="6.1.7601", arch="x86")
    assert off.arch == "x86" and missing_field_names(off) == []
    assert off.bits("_MMPTE_SOFTWARE.PageFileHigh") == (0, 12, 20) and off.size("_MMPTE") == 4
    pae = resolve_offsets(guid_age="684DA42A30CC450F81C535B4D18944B12", arch="x86pae")
    assert pae.bits("_MMPTE_SOFTWARE.PageFileHigh") == (0, 32, 32) and pae.size("_MMPTE") == 8
    assert pae["_EPROCESS.UniqueProcessId"] == off["_EPROCESS.UniqueProcessId"] == 0xB4


def test_nearest_stays_in_the_nt_version() -> None:
    with pytest.raises(NotFoundError):
        resolve_offsets(build=2600, arch="x86")  # Windows XP: never NT 4.0's offsets
